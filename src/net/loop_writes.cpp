#include "net/loop_writes.h"

#include <liburing.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "net/stream_conn.h"

namespace sb::net {

namespace {

// Sends queued per flush at most (the submission queue's size): enough to spread one
// io_uring_enter over hundreds of connections.
constexpr unsigned kQueueDepth = 1024;
// Corks kept between flushes: a 64 KiB cork always fits after the others, and a fan-out of
// ~5 KB per subscriber flushes every ~200 subscribers. Untouched pages cost no memory.
constexpr size_t kBatchArena = 1024 * 1024 + LoopWrites::kCorkBufferSize;

}  // namespace

LoopWrites::LoopWrites()
    : arena_(std::make_unique_for_overwrite<uint8_t[]>(kCorkBufferSize)),
      arena_size_(kCorkBufferSize) {}

void LoopWrites::setHooked(bool batch) {
    want_ring_ = batch;
}

void LoopWrites::onRunStart() {
    if (want_ring_ && !ring_) {
        want_ring_ = false;  // one attempt: a refusal is for good
        auto ring = std::make_unique<io_uring>();
        const int rc = io_uring_queue_init(kQueueDepth, ring.get(), 0);
        if (rc != 0) {
            // Disabled by the kernel (kernel.io_uring_disabled, a seccomp profile) or out of
            // locked memory: every send stays a system call, as with io_uring = false.
            static std::atomic<bool> said{false};
            if (!said.exchange(true)) {
                SB_WARN(
                    "io_uring unavailable (%s): each send is its own system call (set "
                    "server.io_uring = false to silence this)",
                    std::strerror(-rc));
            }
        } else {
            ring_ = std::move(ring);
            ring_thread_ = pthread_self();
            // A cork may be open (written before the loop ran): it moves to the new arena.
            auto arena = std::make_unique_for_overwrite<uint8_t[]>(kBatchArena);
            std::memcpy(arena.get(), arena_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
            arena_ = std::move(arena);
            arena_size_ = kBatchArena;
            queue_.reserve(kQueueDepth);  // never grows on the data path
        }
    }
    active_ = ring_ && pthread_equal(ring_thread_, pthread_self()) != 0;
}

void LoopWrites::onRunEnd() {
    flush();  // empty already: the last iteration's hooks flushed (kept for a loop without them)
    active_ = false;
}

LoopWrites::~LoopWrites() {
    if (ring_) {
        io_uring_queue_exit(ring_.get());
    }
}

bool LoopWrites::deferCork(StreamConn* c) {
    if (!batching()) {
        return false;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) {
        return false;  // cannot happen: the queue is flushed before it fills
    }
    const size_t len = corkSize();
    // MSG_DONTWAIT: a full socket answers EAGAIN at once (the bytes go to the backlog, as with
    // send()) instead of io_uring waiting for room, which would keep the arena busy.
    io_uring_prep_send(sqe, c->fd(), arena_.get() + begin_, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, queue_.size());
    queue_.push_back({c, static_cast<uint32_t>(begin_), static_cast<uint32_t>(len), false});
    begin_ = end_;
    if (arena_size_ - end_ < kCorkBufferSize || queue_.size() == kQueueDepth) {
        flush();
    }
    return true;
}

void LoopWrites::flush() {
    if (queue_.empty()) {
        return;
    }
    size_t done = 0;
    while (done < queue_.size()) {
        const int rc = io_uring_submit_and_wait(ring_.get(), 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            failRing(rc);
            return;
        }
        io_uring_cqe* cqe;
        unsigned head;
        unsigned seen = 0;
        io_uring_for_each_cqe(ring_.get(), head, cqe) {
            Queued& q = queue_[io_uring_cqe_get_data64(cqe)];
            q.done = true;
            q.conn->onBatchSent(arena_.get() + q.offset, q.len, cqe->res);
            ++seen;
        }
        io_uring_cq_advance(ring_.get(), seen);
        done += seen;
    }
    finishFlush();
}

void LoopWrites::failRing(int rc) {
    // Not seen in practice (the ring is only ever given non-blocking socket sends). Give up on
    // io_uring for this loop and make what is left as plain system calls, in order.
    SB_ERROR("io_uring_submit_and_wait: %s: sends on this loop are no longer batched",
             std::strerror(-rc));
    io_uring_queue_exit(ring_.get());
    ring_.reset();
    active_ = false;
    for (Queued& q : queue_) {
        if (!q.done) {
            const ssize_t n =
                ::send(q.conn->fd(), arena_.get() + q.offset, q.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            q.conn->onBatchSent(arena_.get() + q.offset, q.len, n >= 0 ? int(n) : -errno);
        }
    }
    finishFlush();
}

void LoopWrites::finishFlush() {
    queue_.clear();
    // A cork may be open (a connection wrote after the queued ones and still holds it): move
    // its bytes to the arena's start.
    const size_t open = end_ - begin_;
    if (begin_ > 0 && open > 0) {
        std::memmove(arena_.get(), arena_.get() + begin_, open);
    }
    begin_ = 0;
    end_ = open;
}

}  // namespace sb::net
