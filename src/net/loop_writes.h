// A loop's outgoing bytes before they reach the kernel: the cork (the bytes of the connection
// writing now, see StreamConn) and, where io_uring is available, the corks of the connections
// that wrote earlier in this iteration, queued as one batch of sends. On a virtual machine a
// system call's entry and exit are costly; one io_uring_enter for hundreds of sends pays them
// once (measured on our 2-core test VM: 9.0 us of CPU per 4.8 KB loopback send as sendmsg,
// 5.4 us as one of 1,000 batched sends).
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "loop/event_loop.h"

struct io_uring;

namespace sb::net {

class StreamConn;

// Loop thread only. The cork lives in an arena: once the connection holding it is done (another
// one writes, or the iteration ends) its bytes stay where they are and become one queued send,
// and the next cork starts after them. flush() submits the queue and waits for it (every send
// is non-blocking, so they complete at once), then hands each connection what the kernel did
// not take, for its backlog. Nothing queued outlives the iteration.
//
// Only the thread running the loop touches the ring: it is set up when run() first starts and
// used only while run() runs on that thread (other threads, and writes before or after run(),
// send with a system call). The reason: when a ring closes, the kernel interrupts every live
// thread that set it up or submitted to it (task work with TWA_SIGNAL), and a blocking call
// there may fail with EINTR (a socket read with SO_RCVTIMEO does). An embedding app's own
// threads must never see that; the loop's thread may, once, if it is still alive when the loop
// is destroyed.
class LoopWrites final : public loop::LoopAttachment {
public:
    // One connection's batched frames: one send however many frames it wrote.
    static constexpr size_t kCorkBufferSize = 64 * 1024;

    static LoopWrites& of(loop::EventLoop& loop) {
        auto& slot = loop.netState();
        if (!slot) [[unlikely]] {
            slot = std::make_unique<LoopWrites>();
        }
        return static_cast<LoopWrites&>(*slot);
    }

    LoopWrites();
    ~LoopWrites() override;
    LoopWrites(const LoopWrites&) = delete;
    LoopWrites& operator=(const LoopWrites&) = delete;

    // The connection whose bytes the cork holds (null: none).
    StreamConn* owner = nullptr;

    uint8_t* corkData() { return arena_.get() + begin_; }
    size_t corkSize() const { return end_ - begin_; }
    // The caller keeps corkSize() + len <= kCorkBufferSize.
    void corkAppend(const void* data, size_t len) {
        std::memcpy(arena_.get() + end_, data, len);
        end_ += len;
    }
    void corkClear() { end_ = begin_; }

    // The cork's bytes become a send of `c`, made at the next flush(); the cork starts empty
    // after them. False when sends are not batched on this loop (the caller sends them now).
    bool deferCork(StreamConn* c);
    // Makes every queued send. Calls StreamConn::onBatchSent for each, nothing else.
    void flush();
    // The end-of-iteration hook is installed (StreamConn::installLoopHooks), so deferred sends
    // are flushed before the loop sleeps; without it nothing is deferred. batch: queue sends
    // on an io_uring, set up when the loop first runs (false, or where io_uring cannot be set
    // up: every send is a system call, as before). Any thread, before the loop runs.
    void setHooked(bool batch);
    // Sends are queued now: run() is running on the ring's thread.
    bool batching() const { return active_; }
    // The ring was set up (the loop ran at least once and the kernel allowed it).
    bool hasRing() const { return ring_ != nullptr; }
    size_t queued() const { return queue_.size(); }

    void onRunStart() override;
    void onRunEnd() override;

private:
    struct Queued {
        StreamConn* conn;
        uint32_t offset;  // in the arena
        uint32_t len;
        bool done = false;
    };
    void failRing(int rc);
    void finishFlush();
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_size_;
    size_t begin_ = 0;  // the cork is [begin_, end_)
    size_t end_ = 0;
    std::vector<Queued> queue_;
    std::unique_ptr<io_uring> ring_;  // null: sends are system calls
    pthread_t ring_thread_{};         // the thread that set the ring up
    bool want_ring_ = false;          // setHooked(true), not tried yet
    bool active_ = false;  // batching(): the ring is set up and run() runs on ring_thread_
};

}  // namespace sb::net
