#include "loop/timer_wheel.h"

namespace sb::loop {

TimerWheel::TimerWheel(uint64_t now_ms) : current_tick_(now_ms / kTickMs) {
    for (auto& s : slots_) {
        s.prev = s.next = &s;
    }
}

void TimerWheel::schedule(TimerNode* node, uint64_t delay_ms) {
    if (node->armed()) {
        cancel(node);
    }
    uint64_t ticks = (delay_ms + kTickMs - 1) / kTickMs;
    if (ticks == 0) {
        ticks = 1;
    }
    node->due_tick = current_tick_ + ticks;
    TimerNode* head = &slots_[node->due_tick % kSlots];
    node->next = head;
    node->prev = head->prev;
    head->prev->next = node;
    head->prev = node;
    ++armed_;
}

void TimerWheel::cancel(TimerNode* node) {
    if (!node->armed()) {
        return;
    }
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = nullptr;
    --armed_;
}

void TimerWheel::advance(uint64_t now_ms) {
    const uint64_t target = now_ms / kTickMs;
    while (current_tick_ < target) {
        ++current_tick_;
        TimerNode* head = &slots_[current_tick_ % kSlots];
        if (head->next == head) {
            continue;
        }
        // Detach the slot first: callbacks may schedule into this very slot (a full turn later).
        TimerNode pending;
        pending.next = head->next;
        pending.prev = head->prev;
        pending.next->prev = &pending;
        pending.prev->next = &pending;
        head->next = head->prev = head;
        while (pending.next != &pending) {
            TimerNode* n = pending.next;
            n->prev->next = n->next;
            n->next->prev = n->prev;
            if (n->due_tick > current_tick_) {  // a later lap: put it back
                n->next = head;
                n->prev = head->prev;
                head->prev->next = n;
                head->prev = n;
                continue;
            }
            n->prev = n->next = nullptr;
            --armed_;
            n->fire(n);
        }
    }
}

int TimerWheel::msUntilNextTick(uint64_t now_ms) const {
    const uint64_t next = (now_ms / kTickMs + 1) * kTickMs;
    return static_cast<int>(next - now_ms);
}

}  // namespace sb::loop
