// A non-blocking TCP connection on an event loop: reads into the loop's shared receive buffer,
// batches writes in the loop's shared cork buffer (one send per dispatch however many frames
// were written), and keeps only the bytes the kernel refused in a per-connection backlog,
// allocated on first EAGAIN and freed when drained. Idle connections own no buffer.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "loop/event_loop.h"

namespace sb::net {

class StreamConn : public loop::Pollable {
public:
    StreamConn(loop::EventLoop* loop, int fd);
    ~StreamConn() override;
    StreamConn(const StreamConn&) = delete;
    StreamConn& operator=(const StreamConn&) = delete;

    // Registers the fd with the loop (edge-triggered in+out, registered once, never modified).
    bool attach();
    // Takes over another connection's fd and registration (protocol upgrade). `from` is
    // closed without touching the fd and destroyed at the end of the iteration.
    void adoptFrom(StreamConn* from);

    // Queues bytes for the peer (loop thread). Batched in the cork until uncork(); if a backlog
    // exists they go behind it, so order is always kept. No-op once closed.
    void write(const void* data, size_t len);
    // Header + payload without joining them first (large payloads are sent with writev).
    void write2(const void* head, size_t head_len, const void* body, size_t body_len);
    // Sends whatever this connection has in the cork now.
    void uncork();

    // Closes the socket now (the object lives until the end of the loop iteration); calls
    // onClosed() once. Unsent bytes are dropped.
    void close();
    // Flushes, then half-closes the write side (the peer sees EOF after our last byte).
    void shutdownWrite();

    bool isClosed() const { return closed_; }
    size_t backlogBytes() const;
    int fd() const { return fd_; }
    loop::EventLoop* loop() const { return loop_; }

    // Installs the end-of-iteration flush of the cork on a loop; call once per loop.
    static void installLoopHooks(loop::EventLoop& loop);
    // Sends whatever connection holds the loop's cork now (loop thread).
    static void flushCork(loop::EventLoop& loop);

protected:
    // `data` lies in the loop's receive buffer, writable, valid only during the call.
    virtual void onData(uint8_t* data, size_t len) = 0;
    // The peer closed its side or the socket failed. The subclass decides to close().
    virtual void onEof() = 0;
    // Called once from close().
    virtual void onClosed() {}
    // The backlog has been fully sent.
    virtual void onDrained() {}

    void onEvents(uint32_t events) final;

private:
    void takeCork();
    // Drops the cork if held, closes the fd, releases the backlog (and its accounting).
    void releaseSocket();
    void sendv(iovec* iov, int iovcnt);
    void appendBacklog(const uint8_t* data, size_t len);
    bool flushBacklog();

    struct Backlog;
    loop::EventLoop* loop_;
    std::unique_ptr<Backlog> backlog_;
    int fd_;
    bool closed_ = false;
    bool shut_wr_pending_ = false;
};

}  // namespace sb::net
