// A non-blocking TCP connection on an event loop: reads into the loop's shared receive buffer,
// batches writes in the loop's shared cork buffer (one send per dispatch however many frames
// were written; sends of one iteration go to the kernel together, see net/loop_writes.h), and
// keeps only the bytes the kernel refused in a per-connection backlog,
// allocated on first EAGAIN and freed when drained. Idle connections own no buffer. With
// startTls() the same connection speaks TLS (net/tls.h): plaintext in the cork and in onData(),
// ciphertext on the socket and in the backlog.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "loop/event_loop.h"

namespace sb::net {

class LoopWrites;
class TlsSession;

class StreamConn : public loop::Pollable {
public:
    StreamConn(loop::EventLoop* loop, int fd);
    ~StreamConn() override;
    StreamConn(const StreamConn&) = delete;
    StreamConn& operator=(const StreamConn&) = delete;

    // Registers the fd with the loop (edge-triggered in+out, registered once, never modified).
    bool attach();
    // Takes over another connection's fd and registration (protocol upgrade), and its TLS
    // session if any (records already received but not yet read are delivered to this object
    // on the next iteration). `from` is closed without touching the fd and destroyed at the end
    // of the iteration.
    void adoptFrom(StreamConn* from);

    // Loop thread, after attach(), before anything was written: the connection speaks TLS from
    // now on (the role is the session's context's). write() takes plaintext and onData()
    // receives plaintext. The handshake starts at once (client: the ClientHello leaves through
    // the ordinary write path, so a connect still in progress just queues it in the backlog)
    // and advances as ciphertext arrives; onTlsHandshake() reports its end. Bytes written
    // before it ends are held and sent right after. If not even the first flight can be
    // produced, onTlsHandshake() reports it before this returns.
    void startTls(std::unique_ptr<TlsSession> session);
    bool isTls() const { return tls_; }
    bool tlsHandshakeDone() const;
    // TLS, after the handshake: the client resumed an earlier session (no full handshake).
    bool tlsResumed() const;

    // Queues bytes for the peer (loop thread). Batched in the cork until uncork(); if a backlog
    // exists they go behind it, so order is always kept. No-op once closed.
    void write(const void* data, size_t len);
    // Header + payload without joining them first (large payloads are sent with writev).
    void write2(const void* head, size_t head_len, const void* body, size_t body_len);
    // Sends whatever this connection has in the cork now. defer: on a loop that batches sends
    // (LoopWrites), queue them for the batch made at the end of the iteration instead (the
    // loop's hooks and a cork changing hands do this).
    void uncork(bool defer = false);

    // Closes the socket now (the object lives until the end of the loop iteration); calls
    // onClosed() once. Unsent bytes are dropped.
    void close();
    // Flushes, then half-closes the write side (the peer sees EOF after our last byte). TLS:
    // close_notify goes out before the FIN (our clean close).
    void shutdownWrite();

    bool isClosed() const { return closed_; }
    size_t backlogBytes() const;
    int fd() const { return fd_; }
    loop::EventLoop* loop() const { return loop_; }

    // Installs the end-of-iteration flush of the cork on a loop; call once per loop, before
    // its first write. batch_sends: the corks of the connections written in one iteration go
    // to the kernel as one io_uring batch of sends (net/loop_writes.h), not a system call each.
    static void installLoopHooks(loop::EventLoop& loop, bool batch_sends = true);
    // Sends whatever connection holds the loop's cork now, and the loop's batch (loop thread).
    static void flushCork(loop::EventLoop& loop);
    // LoopWrites: the queued send of this connection's cork was made; `result` is its byte
    // count or -errno. What the kernel did not take goes to the backlog.
    void onBatchSent(const uint8_t* data, size_t len, int result);

protected:
    // `data` lies in the loop's receive buffer, writable, valid only during the call.
    virtual void onData(uint8_t* data, size_t len) = 0;
    // The peer closed its side or the socket failed. The subclass decides to close().
    virtual void onEof() = 0;
    // Called once from close().
    virtual void onClosed() {}
    // The backlog has been fully sent.
    virtual void onDrained() {}
    // TLS only, at most once: the handshake completed (`error` empty) or failed (`error` is
    // OpenSSL's reason, e.g. "certificate verify failed: self-signed certificate"). It may
    // write, close() or hand the socket over (adoptFrom). The default closes on failure. A
    // peer that closes TCP during the handshake is reported by onEof(), not here.
    virtual void onTlsHandshake(std::string_view error);

    void onEvents(uint32_t events) final;

private:
    LoopWrites& takeCork();
    // Drops the cork if held, closes the fd, releases the backlog (and its accounting).
    void releaseSocket();
    void sendv(iovec* iov, int iovcnt);
    void sendRaw(iovec* iov, int iovcnt);
    void appendBacklog(const uint8_t* data, size_t len);
    bool flushBacklog();
    // TLS paths (tls_ set): encrypt then sendRaw; recv ciphertext and deliver plaintext.
    void sendTls(const iovec* iov, int iovcnt);
    void flushTlsOutput();
    bool readTls(uint32_t events);
    template <class OnBytes>
    bool recvLoop(uint32_t events, uint8_t* dst, size_t cap, OnBytes on_bytes);
    bool pumpTls(uint8_t* plain, size_t cap);

    // What most connections never need, allocated on demand: the bytes the kernel refused
    // (while there are any) and the TLS session (for the connection's life).
    struct Extra;
    loop::EventLoop* loop_;
    std::unique_ptr<Extra> extra_;
    int fd_;
    bool closed_ = false;
    bool shut_wr_pending_ = false;
    // extra_->tls is set. A flag in the padding, so the plain path tests one byte it already
    // has in cache and an idle plain connection stays 48 bytes (pinned in stream_conn.cpp).
    bool tls_ = false;
    // The cork's bytes wait in the loop's batch of sends (LoopWrites). Cleared by
    // onBatchSent(); anything that needs them on the wire first flushes the batch.
    bool send_pending_ = false;
};

}  // namespace sb::net
