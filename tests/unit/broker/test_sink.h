// Test sinks for the broker tests: one records every event per loop (thread-safe), one only
// counts deliveries and never allocates (for the allocation test and benchmarks).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "broker/engine.h"

namespace sb::broker::testing {

class RecordingSink : public LoopSink {
public:
    void deliver(uint32_t loop_id, Event ev) override {
        std::lock_guard lock(mu_);
        events_[loop_id].push_back(std::move(ev));
    }

    std::vector<Event> events(uint32_t loop_id) {
        std::lock_guard lock(mu_);
        return events_[loop_id];
    }

    // Offsets of the publications loop_id received, in arrival order.
    std::vector<uint64_t> offsets(uint32_t loop_id) {
        std::lock_guard lock(mu_);
        std::vector<uint64_t> out;
        for (const Event& ev : events_[loop_id]) {
            if (ev.kind == EventKind::kPublication) {
                out.push_back(ev.pub->offset);
            }
        }
        return out;
    }

    size_t total() {
        std::lock_guard lock(mu_);
        size_t n = 0;
        for (const auto& v : events_) {
            n += v.size();
        }
        return n;
    }

private:
    std::mutex mu_;
    std::array<std::vector<Event>, kMaxLoops> events_;
};

class CountingSink : public LoopSink {
public:
    void deliver(uint32_t loop_id, Event ev) override {
        counts_[loop_id].fetch_add(1, std::memory_order_relaxed);
    }
    uint64_t count(uint32_t loop_id) const { return counts_[loop_id].load(); }

private:
    std::array<std::atomic<uint64_t>, kMaxLoops> counts_{};
};

}  // namespace sb::broker::testing
