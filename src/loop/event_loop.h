// One event loop per thread on edge-triggered epoll. It owns the per-loop shared buffers
// (one receive buffer for all its sockets, and the net layer's cork and batch of sends through
// netState(): idle sockets own no buffer),
// the timer wheel, a cross-thread task queue with an eventfd wakeup, and deferred destruction
// (an object is never freed inside its own callback: it is freed at the end of the iteration).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "loop/timer_wheel.h"

namespace sb::loop {

// Anything registered with the loop's epoll set, or destroyed through it.
class Pollable {
public:
    virtual ~Pollable() = default;
    // Loop thread only. `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, ...).
    virtual void onEvents(uint32_t events) = 0;

private:
    friend class EventLoop;
    // Links of the loop's list of owned objects (see EventLoop::own).
    Pollable* owned_prev_ = nullptr;
    Pollable* owned_next_ = nullptr;
};

// State a higher layer keeps per loop (the net layer: the cork and the batched sends). Owned
// by the loop, destroyed after the loop's remaining objects.
class LoopAttachment {
public:
    virtual ~LoopAttachment() = default;
    // On the thread that runs the loop: run() starts, and run() ends (after its last
    // iteration's hooks). Resources that belong to a thread are set up and put away here.
    virtual void onRunStart() {}
    virtual void onRunEnd() {}
};

class EventLoop {
public:
    static constexpr size_t kRecvBufferSize = 512 * 1024;  // one read drains most bursts
    static constexpr int kMaxEvents = 1024;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Loop thread (or before run()). Registration keeps `p` until remove(); p must outlive it.
    bool add(int fd, Pollable* p, uint32_t events);
    bool modify(int fd, Pollable* p, uint32_t events);
    void remove(int fd);

    // Runs until stop(). Must be called on the thread that owns the loop.
    void run();
    // Before run(): never sleep in epoll_wait (poll with a zero timeout). For a load generator
    // with a core of its own: on loopback a sender's send() runs the receiver's TCP receive
    // and, if the receiver sleeps, its wake-up (an inter-processor interrupt), so a generator
    // that keeps falling asleep makes the server under test pay for waking it. Burns the core.
    void setBusyPoll(bool on) { busy_poll_ = on; }
    // Any thread.
    void stop();
    // Any thread: runs fn on the loop thread in its next iteration.
    void post(std::function<void()> fn);
    // Loop thread: deletes p at the end of the current iteration.
    void destroyLater(Pollable* p);
    // Loop thread: the loop deletes `p` in its destructor if it is still alive then (so
    // connections left open when a loop stops are freed, not leaked). `p` must disown itself
    // in its destructor. Connections own themselves this way.
    void own(Pollable* p);
    void disown(Pollable* p);
    // Loop thread: fn runs at the end of every iteration, before deferred destruction.
    void addIterationHook(std::function<void()> fn);
    // Same, but runs before the hooks added so far: for work that produces output (a fan-out
    // drain) ahead of the hook that flushes it (the transport's cork).
    void prependIterationHook(std::function<void()> fn);
    // Loop thread: fn runs at the end of this iteration, before the hooks and before any object
    // is destroyed (so fn may touch objects closed during the iteration). This is how a
    // connection reports its end to its owner outside of whatever call decided it: never
    // inside the caller. Deferred work may defer more; the loop runs it, then the hooks, until
    // none is left. Work still pending when the loop is destroyed is dropped, not run.
    void defer(std::function<void()> fn);
    // Loop thread: `p` gets onEvents(EPOLLIN) again next iteration (reads capped for fairness).
    void readAgain(Pollable* p);

    // The loop's index among its siblings (0..N-1), set by the owner before run().
    uint32_t id() const { return id_; }
    void setId(uint32_t id) { id_ = id; }

    // The loop whose run() is executing on this thread, or null.
    static EventLoop* current();

    // True on the thread currently inside run().
    bool inLoopThread() const {
        return owner_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
    }

    uint64_t nowMs() const { return now_ms_; }

    // Bytes held in the backlogs of this loop's connections (written by the loop thread,
    // readable from any thread for metrics).
    std::atomic<uint64_t> backlog_bytes{0};  // cached once per iteration (monotonic)
    TimerWheel& timers() { return timers_; }
    std::span<uint8_t> recvBuffer() { return {recv_buf_.data(), recv_buf_.size()}; }

    // The net layer's per-loop write state (net::LoopWrites: the cork and the batched sends),
    // created on first use. Loop thread only.
    std::unique_ptr<LoopAttachment>& netState() { return net_state_; }

    static uint64_t monotonicMs();

private:
    void drainPosted();
    void endIteration();

    uint32_t id_ = 0;
    std::atomic<std::thread::id> owner_thread_{};
    int epfd_ = -1;
    int wake_fd_ = -1;
    std::atomic<bool> stop_{false};
    bool busy_poll_ = false;
    uint64_t now_ms_;
    TimerWheel timers_;
    std::vector<uint8_t> recv_buf_;
    std::mutex posted_mu_;
    std::vector<std::function<void()>> posted_;
    std::vector<std::function<void()>> hooks_;
    std::vector<std::function<void()>> deferred_;
    std::vector<Pollable*> dead_;
    Pollable* owned_head_ = nullptr;
    std::vector<Pollable*> again_;
    std::vector<Pollable*> again_next_;
    // Last: the loop's objects are deleted in the destructor's body, and theirs may use it.
    std::unique_ptr<LoopAttachment> net_state_;
};

}  // namespace sb::loop
