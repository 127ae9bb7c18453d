#include "net/stream_conn.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "net/loop_writes.h"
#include "net/tls.h"

namespace sb::net {

struct StreamConn::Extra {
    // Bytes the kernel did not take yet (ciphertext on TLS connections). `off` advances as
    // they are sent; compacted lazily.
    std::vector<uint8_t> buf;
    size_t off = 0;
    std::unique_ptr<TlsSession> tls;
    size_t size() const { return buf.size() - off; }
};

// Thousands of idle connections per loop: their size is the server's memory floor. TLS state
// lives behind extra_, so plain connections do not pay for it.
static_assert(sizeof(void*) != 8 || sizeof(StreamConn) == 48,
              "idle plain connection grew: keep rare state in StreamConn::Extra");

namespace {
constexpr int kMaxReadsPerEvent = 16;  // then yield to other sockets (fairness under floods)
// Plaintext encrypted per SSL_write before the ciphertext is sent: bounds the thread's TLS
// output buffer when a 16 MiB message goes out (4 records of 16 KiB per chunk).
constexpr size_t kTlsWriteChunk = 64 * 1024;
}  // namespace

StreamConn::StreamConn(loop::EventLoop* loop, int fd) : loop_(loop), fd_(fd) {
    loop_->own(this);
}

StreamConn::~StreamConn() {
    loop_->disown(this);
    releaseSocket();
}

void StreamConn::releaseSocket() {
    LoopWrites& w = LoopWrites::of(*loop_);
    if (send_pending_) {
        w.flush();  // promised bytes go out before the fd closes (or is handed over)
    }
    if (w.owner == this) {
        w.owner = nullptr;
        w.corkClear();
    }
    if (fd_ >= 0) {
        loop_->remove(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    if (extra_) {
        loop_->backlog_bytes.fetch_sub(extra_->size(), std::memory_order_relaxed);
        if (tls_) {
            // The session stays until the destructor: close() may run inside pumpTls(), which
            // still holds it.
            std::vector<uint8_t>().swap(extra_->buf);
            extra_->off = 0;
        } else {
            extra_.reset();
        }
    }
}

void StreamConn::installLoopHooks(loop::EventLoop& loop, bool batch_sends) {
    loop::EventLoop* l = &loop;
    LoopWrites::of(loop).setHooked(batch_sends);
    loop.addIterationHook([l] { flushCork(*l); });
}

void StreamConn::flushCork(loop::EventLoop& loop) {
    LoopWrites& w = LoopWrites::of(loop);
    if (w.owner != nullptr) {
        w.owner->uncork(true);
    }
    w.flush();
}

void StreamConn::onBatchSent(const uint8_t* data, size_t len, int result) {
    send_pending_ = false;
    if (closed_) {
        return;
    }
    // As sendRaw: what the kernel did not take waits in the backlog for EPOLLOUT; an error
    // means the peer is gone, which the read side reports.
    if (result < 0 && result != -EAGAIN && result != -EINTR) {
        return;
    }
    const size_t sent = result > 0 ? static_cast<size_t>(result) : 0;
    if (sent < len) {
        appendBacklog(data + sent, len - sent);
    }
    if (shut_wr_pending_ && backlogBytes() == 0) {
        shut_wr_pending_ = false;
        ::shutdown(fd_, SHUT_WR);
    }
}

bool StreamConn::attach() {
    return loop_->add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

void StreamConn::adoptFrom(StreamConn* from) {
    from->uncork();  // also makes a send of its still queued in the loop's batch
    fd_ = from->fd_;
    from->fd_ = -1;
    extra_ = std::move(from->extra_);
    tls_ = from->tls_;
    from->tls_ = false;
    loop_->modify(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    from->closed_ = true;
    loop_->destroyLater(from);
    if (tls_) {
        // `from` may be handing over from inside its onData(), with ciphertext of this read
        // still unconsumed in the loop's receive buffer and whole records decrypted-ready in
        // the session: keep the former, and read both on the next iteration (edge-triggered
        // epoll would not say so again).
        extra_->tls->stashInput();
        loop_->readAgain(this);
    }
}

size_t StreamConn::backlogBytes() const {
    return extra_ ? extra_->size() : 0;
}

LoopWrites& StreamConn::takeCork() {
    LoopWrites& w = LoopWrites::of(*loop_);
    if (w.owner != this) {
        if (w.owner != nullptr) {
            w.owner->uncork(true);  // its bytes join the loop's batch of sends
        }
        w.owner = this;
    }
    return w;
}

void StreamConn::write(const void* data, size_t len) {
    write2(data, len, nullptr, 0);
}

void StreamConn::write2(const void* head, size_t head_len, const void* body, size_t body_len) {
    if (closed_) {
        return;
    }
    if (send_pending_) [[unlikely]] {
        // Written to again in the iteration its cork was queued: make that send first, so
        // these bytes go after it (or behind the backlog it left).
        LoopWrites::of(*loop_).flush();
    }
    const size_t total = head_len + body_len;
    if (extra_ && extra_->size() > 0) {
        if (tls_) {
            const iovec iov[2] = {{const_cast<void*>(head), head_len},
                                  {const_cast<void*>(body), body_len}};
            sendTls(iov, 2);  // ciphertext queues behind the backlog
            return;
        }
        appendBacklog(static_cast<const uint8_t*>(head), head_len);
        appendBacklog(static_cast<const uint8_t*>(body), body_len);
        return;
    }
    LoopWrites* w = &takeCork();
    if (w->corkSize() + total > LoopWrites::kCorkBufferSize) {
        uncork();
        if (closed_ || (extra_ && extra_->size() > 0)) {
            write2(head, head_len, body, body_len);  // goes to the backlog now
            return;
        }
        if (total > LoopWrites::kCorkBufferSize) {
            // Too big to batch: hand both parts to the kernel in one writev.
            iovec iov[2] = {{const_cast<void*>(head), head_len},
                            {const_cast<void*>(body), body_len}};
            sendv(iov, 2);
            return;
        }
        w = &takeCork();
    }
    w->corkAppend(head, head_len);
    if (body_len > 0) {
        w->corkAppend(body, body_len);
    }
}

void StreamConn::uncork(bool defer) {
    LoopWrites& w = LoopWrites::of(*loop_);
    if (send_pending_ && !defer) {
        w.flush();  // "sent now" includes what waits in the loop's batch
    }
    if (w.owner != this) {
        return;
    }
    w.owner = nullptr;
    if (w.corkSize() > 0 && !closed_) {
        // Plain connections only: TLS encrypts into its own buffers first. The flag is set
        // first because deferCork() may make the batch at once (arena or queue full), and
        // onBatchSent() clears it.
        if (defer && !tls_) {
            send_pending_ = true;
            if (w.deferCork(this)) {
                return;  // onBatchSent() reports the outcome; the cork moved on
            }
            send_pending_ = false;
        }
        iovec iov{w.corkData(), w.corkSize()};
        sendv(&iov, 1);
    }
    w.corkClear();
    if (shut_wr_pending_ && backlogBytes() == 0 && !closed_) {
        shut_wr_pending_ = false;
        ::shutdown(fd_, SHUT_WR);
    }
}

void StreamConn::sendv(iovec* iov, int iovcnt) {
    // The one branch TLS adds to the plain write path: once per syscall, always the same way
    // for a given connection.
    if (tls_) [[unlikely]] {
        sendTls(iov, iovcnt);
        return;
    }
    sendRaw(iov, iovcnt);
}

void StreamConn::sendRaw(iovec* iov, int iovcnt) {
    size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) {
        total += iov[i].iov_len;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            // The peer is gone; the read side reports it (EOF/error) and the owner closes.
            return;
        }
        n = 0;
    }
    size_t sent = static_cast<size_t>(n);
    if (sent == total) {
        return;
    }
    for (int i = 0; i < iovcnt; ++i) {
        const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
        size_t len = iov[i].iov_len;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        appendBacklog(p + sent, len - sent);
        sent = 0;
    }
}

void StreamConn::appendBacklog(const uint8_t* data, size_t len) {
    if (len == 0) {
        return;
    }
    if (!extra_) {
        extra_ = std::make_unique<Extra>();
    } else if (extra_->off > 64 * 1024 && extra_->off > extra_->buf.size() / 2) {
        // A reader that drains slowly but never fully: drop what was sent, keep memory bounded.
        extra_->buf.erase(extra_->buf.begin(),
                          extra_->buf.begin() + static_cast<ptrdiff_t>(extra_->off));
        extra_->off = 0;
    }
    extra_->buf.insert(extra_->buf.end(), data, data + len);
    loop_->backlog_bytes.fetch_add(len, std::memory_order_relaxed);
}

bool StreamConn::flushBacklog() {
    Extra& b = *extra_;
    while (b.size() > 0) {
        ssize_t n = ::send(fd_, b.buf.data() + b.off, b.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;  // EAGAIN: wait for the next EPOLLOUT edge; errors surface on read
        }
        b.off += static_cast<size_t>(n);
        loop_->backlog_bytes.fetch_sub(static_cast<size_t>(n), std::memory_order_relaxed);
    }
    // Drained: give the memory back (a TLS connection keeps its session).
    if (tls_) {
        std::vector<uint8_t>().swap(b.buf);
        b.off = 0;
    } else {
        extra_.reset();
    }
    return true;
}

void StreamConn::shutdownWrite() {
    if (closed_) {
        return;
    }
    uncork();
    if (tls_) {
        // close_notify: the peer can tell our clean end from a truncation (RFC 8446 §6.1).
        extra_->tls->shutdown();
        flushTlsOutput();
    }
    if (backlogBytes() == 0) {
        ::shutdown(fd_, SHUT_WR);
    } else {
        shut_wr_pending_ = true;
    }
}

void StreamConn::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    releaseSocket();
    onClosed();
    loop_->destroyLater(this);
}

// Reads until the socket is drained (edge-triggered: a short read means empty for now, unless
// the peer hung up, when we read on to the EOF), handing each chunk to `on_bytes(n)`, which
// returns false when this object must stop reading (closed, or its socket handed over). After
// kMaxReadsPerEvent reads it yields to other sockets and asks the loop to come back. Returns
// false when the object must not be touched further by the caller.
template <class OnBytes>
bool StreamConn::recvLoop(uint32_t events, uint8_t* dst, size_t cap, OnBytes on_bytes) {
    for (int i = 0;; ++i) {
        if (i == kMaxReadsPerEvent) {
            loop_->readAgain(this);
            return true;
        }
        ssize_t n = ::recv(fd_, dst, cap, 0);
        if (n > 0) {
            if (!on_bytes(static_cast<size_t>(n))) {
                return false;
            }
            if (static_cast<size_t>(n) < cap && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                return true;  // drained for now: more data raises a new edge
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        onEof();
        return !closed_;
    }
}

void StreamConn::onEvents(uint32_t events) {
    if (closed_) {
        return;
    }
    if ((events & EPOLLOUT) && extra_ && extra_->size() > 0) {
        if (flushBacklog()) {
            if (shut_wr_pending_) {
                shut_wr_pending_ = false;
                ::shutdown(fd_, SHUT_WR);
            }
            onDrained();
            if (closed_) {
                return;
            }
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        bool go_on;
        if (tls_) [[unlikely]] {
            go_on = readTls(events);
        } else {
            auto buf = loop_->recvBuffer();
            go_on = recvLoop(events, buf.data(), buf.size(), [&](size_t n) {
                onData(buf.data(), n);
                return !closed_;
            });
        }
        if (!go_on) {
            return;
        }
    }
    // Deferred: the replies of every socket this iteration read (echo, a publisher's reply)
    // join the loop's batch of sends, one io_uring_enter for all of them, as fan-out's do.
    uncork(true);
}

// ---- TLS --------------------------------------------------------------------------------
// The session never touches the socket: ciphertext read here is handed to it, ciphertext it
// produces is sent by sendRaw() (or queued in the backlog), so EAGAIN handling, slow-consumer
// accounting and the half-close stay one code path for both kinds of connection. OpenSSL
// never waits for the socket to become writable: its output waits in the backlog, which the
// EPOLLOUT edge flushes; readable events carry the handshake forward.

void StreamConn::startTls(std::unique_ptr<TlsSession> session) {
    if (!extra_) {
        extra_ = std::make_unique<Extra>();
    }
    extra_->tls = std::move(session);
    tls_ = true;
    const TlsSession::Status st = extra_->tls->handshake();
    flushTlsOutput();  // the ClientHello (a server waits for the client's)
    if (st == TlsSession::Status::kError) {
        onTlsHandshake(extra_->tls->error());  // no first flight: out of memory, in practice
    }
}

bool StreamConn::tlsHandshakeDone() const {
    return tls_ && extra_->tls->handshakeDone();
}

bool StreamConn::tlsResumed() const {
    return tls_ && extra_->tls->resumed();
}

void StreamConn::onTlsHandshake(std::string_view error) {
    if (!error.empty()) {
        SB_DEBUG("tls fd=%d handshake failed: %.*s", fd_, static_cast<int>(error.size()),
                 error.data());
        close();
    }
}

void StreamConn::flushTlsOutput() {
    auto out = TlsSession::output();
    if (out.empty()) {
        return;
    }
    if (closed_) {
        // Dropped, like bytes written after close().
    } else if (extra_->size() > 0) {
        appendBacklog(out.data(), out.size());
    } else {
        iovec iov{const_cast<uint8_t*>(out.data()), out.size()};
        sendRaw(&iov, 1);
    }
    TlsSession::clearOutput();
}

void StreamConn::sendTls(const iovec* iov, int iovcnt) {
    TlsSession& s = *extra_->tls;
    for (int i = 0; i < iovcnt; ++i) {
        const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
        size_t left = iov[i].iov_len;
        while (left > 0) {
            const size_t n = std::min(left, kTlsWriteChunk);
            if (!s.write(p, n)) {
                TlsSession::clearOutput();
                return;  // after close_notify or a fatal error: dropped (reads report it)
            }
            p += n;
            left -= n;
            if (left > 0) {
                flushTlsOutput();
            }
        }
    }
    flushTlsOutput();
}

bool StreamConn::readTls(uint32_t events) {
    // Ciphertext lands in the upper half of the loop's receive buffer and plaintext is written
    // to the lower half: decrypting never overwrites ciphertext OpenSSL has not read yet, and
    // onData() still gets a writable span in the receive buffer (no per-connection buffer).
    auto buf = loop_->recvBuffer();
    const size_t half = buf.size() / 2;
    uint8_t* plain = buf.data();
    uint8_t* cipher = buf.data() + half;
    if (extra_->tls->hasBufferedInput() && !pumpTls(plain, half)) {
        return false;  // left from a handover (adoptFrom)
    }
    return recvLoop(events, cipher, half, [&](size_t n) {
        extra_->tls->setInput(cipher, n);
        return pumpTls(plain, half);
    });
}

// Runs the session over the input just set: handshake, then plaintext to onData(). False when
// this object must stop reading: it was closed, handed its socket over, or the TLS stream
// ended (close_notify, fatal error).
bool StreamConn::pumpTls(uint8_t* plain, size_t cap) {
    TlsSession* s = extra_->tls.get();
    if (s->failed()) {
        s->setInput(nullptr, 0);
        return false;
    }
    if (!s->handshakeDone()) {
        const TlsSession::Status st = s->handshake();
        flushTlsOutput();  // the next flight, or our alert on failure
        if (st == TlsSession::Status::kWantInput) {
            return true;
        }
        onTlsHandshake(st == TlsSession::Status::kOk ? std::string_view() : s->error());
        if (closed_ || st != TlsSession::Status::kOk) {
            return false;
        }
        // The same input may carry application data right behind the server's Finished.
    }
    for (;;) {
        size_t got = 0;
        const TlsSession::Status st = s->read(plain, cap, &got);
        flushTlsOutput();  // TLS 1.3 key updates answer while reading
        if (got > 0) {
            onData(plain, got);
            if (closed_) {
                return false;  // closed, or adopted: the new owner continues (adoptFrom)
            }
        }
        switch (st) {
            case TlsSession::Status::kOk:
                continue;  // `plain` was full
            case TlsSession::Status::kWantInput:
                return true;
            case TlsSession::Status::kClosed:
                onEof();  // close_notify: the peer's clean end of the stream
                return false;
            case TlsSession::Status::kError:
                SB_INFO("tls fd=%d: %s", fd_, s->error().c_str());
                onEof();
                return false;
        }
    }
}

}  // namespace sb::net
