#include "net/stream_conn.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sb::net {

// Bytes the kernel did not take yet. `off` advances as they are sent; compacted lazily.
struct StreamConn::Backlog {
    std::vector<uint8_t> buf;
    size_t off = 0;
    size_t size() const { return buf.size() - off; }
};

namespace {
constexpr int kMaxReadsPerEvent = 16;  // then yield to other sockets (fairness under floods)
}

StreamConn::StreamConn(loop::EventLoop* loop, int fd) : loop_(loop), fd_(fd) {
    loop_->own(this);
}

StreamConn::~StreamConn() {
    loop_->disown(this);
    releaseSocket();
}

void StreamConn::releaseSocket() {
    if (loop_->corkOwner() == this) {
        loop_->corkOwner() = nullptr;
        loop_->corkBuffer().clear();
    }
    if (fd_ >= 0) {
        loop_->remove(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    if (backlog_) {
        loop_->backlog_bytes.fetch_sub(backlog_->size(), std::memory_order_relaxed);
        backlog_.reset();
    }
}

void StreamConn::installLoopHooks(loop::EventLoop& loop) {
    loop::EventLoop* l = &loop;
    loop.addIterationHook([l] { flushCork(*l); });
}

void StreamConn::flushCork(loop::EventLoop& loop) {
    if (void* owner = loop.corkOwner()) {
        static_cast<StreamConn*>(owner)->uncork();
    }
}

bool StreamConn::attach() {
    return loop_->add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

void StreamConn::adoptFrom(StreamConn* from) {
    from->uncork();
    fd_ = from->fd_;
    from->fd_ = -1;
    backlog_ = std::move(from->backlog_);
    loop_->modify(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    from->closed_ = true;
    loop_->destroyLater(from);
}

size_t StreamConn::backlogBytes() const {
    return backlog_ ? backlog_->size() : 0;
}

void StreamConn::takeCork() {
    void*& owner = loop_->corkOwner();
    if (owner != this) {
        if (owner != nullptr) {
            static_cast<StreamConn*>(owner)->uncork();
        }
        owner = this;
    }
}

void StreamConn::write(const void* data, size_t len) {
    write2(data, len, nullptr, 0);
}

void StreamConn::write2(const void* head, size_t head_len, const void* body, size_t body_len) {
    if (closed_) {
        return;
    }
    const size_t total = head_len + body_len;
    if (backlog_ && backlog_->size() > 0) {
        appendBacklog(static_cast<const uint8_t*>(head), head_len);
        appendBacklog(static_cast<const uint8_t*>(body), body_len);
        return;
    }
    takeCork();
    auto& cork = loop_->corkBuffer();
    if (cork.size() + total > loop::EventLoop::kCorkBufferSize) {
        uncork();
        if (closed_ || (backlog_ && backlog_->size() > 0)) {
            write2(head, head_len, body, body_len);  // goes to the backlog now
            return;
        }
        if (total > loop::EventLoop::kCorkBufferSize) {
            // Too big to batch: hand both parts to the kernel in one writev.
            iovec iov[2] = {{const_cast<void*>(head), head_len},
                            {const_cast<void*>(body), body_len}};
            sendv(iov, 2);
            return;
        }
        takeCork();
    }
    const auto* h = static_cast<const uint8_t*>(head);
    cork.insert(cork.end(), h, h + head_len);
    if (body_len > 0) {
        const auto* b = static_cast<const uint8_t*>(body);
        cork.insert(cork.end(), b, b + body_len);
    }
}

void StreamConn::uncork() {
    if (loop_->corkOwner() != this) {
        return;
    }
    loop_->corkOwner() = nullptr;
    auto& cork = loop_->corkBuffer();
    if (!cork.empty() && !closed_) {
        iovec iov{cork.data(), cork.size()};
        sendv(&iov, 1);
    }
    cork.clear();
    if (shut_wr_pending_ && backlogBytes() == 0 && !closed_) {
        shut_wr_pending_ = false;
        ::shutdown(fd_, SHUT_WR);
    }
}

void StreamConn::sendv(iovec* iov, int iovcnt) {
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
    if (!backlog_) {
        backlog_ = std::make_unique<Backlog>();
    } else if (backlog_->off > 64 * 1024 && backlog_->off > backlog_->buf.size() / 2) {
        // A reader that drains slowly but never fully: drop what was sent, keep memory bounded.
        backlog_->buf.erase(backlog_->buf.begin(),
                            backlog_->buf.begin() + static_cast<ptrdiff_t>(backlog_->off));
        backlog_->off = 0;
    }
    backlog_->buf.insert(backlog_->buf.end(), data, data + len);
    loop_->backlog_bytes.fetch_add(len, std::memory_order_relaxed);
}

bool StreamConn::flushBacklog() {
    Backlog& b = *backlog_;
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
    backlog_.reset();  // drained: give the memory back
    return true;
}

void StreamConn::shutdownWrite() {
    if (closed_) {
        return;
    }
    uncork();
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

void StreamConn::onEvents(uint32_t events) {
    if (closed_) {
        return;
    }
    if ((events & EPOLLOUT) && backlog_) {
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
        auto buf = loop_->recvBuffer();
        for (int i = 0;; ++i) {
            if (i == kMaxReadsPerEvent) {
                loop_->readAgain(this);
                break;
            }
            ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n > 0) {
                onData(buf.data(), static_cast<size_t>(n));
                if (closed_) {
                    return;
                }
                if (static_cast<size_t>(n) < buf.size() &&
                    !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                    break;  // drained for now: more data raises a new edge
                }
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            onEof();
            if (closed_) {
                return;
            }
            break;
        }
    }
    uncork();
}

}  // namespace sb::net
