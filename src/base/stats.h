// Statistics written by one thread and read by any: each event loop keeps its own, and a
// /metrics scrape sums them. A single writer needs no atomic read-modify-write (no locked
// instruction, no cache line bouncing between loops); relaxed loads and stores keep the reads
// well-defined.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sb::base {

// A monotonic counter with one writing thread.
class Counter {
public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// A gauge with one writing thread (may go down).
class Gauge {
public:
    void add(int64_t n) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    int64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<int64_t> v_{0};
};

// Fixed-bucket latency histogram in milliseconds (Prometheus `le` buckets), one writer.
class LatencyHistogram {
public:
    static constexpr std::array<double, 13> kBoundsMs = {0.1, 0.25, 0.5, 1,   2.5,  5,   10,
                                                         25,  50,   100, 250, 1000, 5000};
    // The sum of several histograms (a scrape over every loop).
    struct Snapshot {
        std::array<uint64_t, kBoundsMs.size() + 1> buckets{};  // last: above the largest bound
        uint64_t count = 0;
        uint64_t sum_us = 0;
    };

    // Records `count` observations of the same value (e.g. one publication's deliveries).
    void observeUs(uint64_t us, uint64_t count = 1) {
        const double ms = static_cast<double>(us) / 1000.0;
        size_t i = 0;
        while (i < kBoundsMs.size() && ms > kBoundsMs[i]) {
            ++i;
        }
        buckets_[i].add(count);
        count_.add(count);
        sum_us_.add(us * count);
    }
    void addTo(Snapshot* s) const {
        for (size_t i = 0; i < buckets_.size(); ++i) {
            s->buckets[i] += buckets_[i].value();
        }
        s->count += count_.value();
        s->sum_us += sum_us_.value();
    }

private:
    std::array<Counter, kBoundsMs.size() + 1> buckets_{};
    Counter count_;
    Counter sum_us_;
};

}  // namespace sb::base
