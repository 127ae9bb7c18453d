// Hashed timer wheel: O(1) schedule/cancel with an intrusive node embedded in its owner, so a
// connection's timeout costs no allocation and no per-connection timerfd. Resolution is one
// tick (kTickMs); timers further than the wheel's span wrap around and are re-checked.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sb::loop {

struct TimerNode {
    TimerNode* prev = nullptr;
    TimerNode* next = nullptr;
    uint64_t due_tick = 0;
    // Called on the loop thread when the timer expires; the node is already unarmed, so the
    // callback may re-schedule it or destroy its owner.
    void (*fire)(TimerNode*) = nullptr;

    bool armed() const { return prev != nullptr; }
};

class TimerWheel {
public:
    static constexpr uint64_t kTickMs = 250;  // finer than any timeout we configure (>= 1 s)
    static constexpr size_t kSlots = 512;     // 128 s span: heartbeats fit without wrapping

    explicit TimerWheel(uint64_t now_ms);
    TimerWheel(const TimerWheel&) = delete;
    TimerWheel& operator=(const TimerWheel&) = delete;

    // Arms (or re-arms) `node` to fire in at least `delay_ms` (rounded up to whole ticks).
    void schedule(TimerNode* node, uint64_t delay_ms);
    void cancel(TimerNode* node);
    // Fires every timer due at or before now_ms.
    void advance(uint64_t now_ms);
    // Milliseconds until the next tick boundary (the loop's epoll timeout).
    int msUntilNextTick(uint64_t now_ms) const;
    size_t armedCount() const { return armed_; }

private:
    TimerNode slots_[kSlots];  // sentinels of circular lists
    uint64_t current_tick_;
    size_t armed_ = 0;
};

}  // namespace sb::loop
