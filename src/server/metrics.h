// Process-wide counters and histograms, rendered in the Prometheus text format at /metrics.
// Everything is a relaxed atomic: loops bump them without locks; /metrics reads a snapshot
// that may be a few increments apart between series (fine for monitoring).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace sb::server {

// Fixed-bucket latency histogram in milliseconds (Prometheus `le` buckets).
class LatencyHistogram {
public:
    static constexpr std::array<double, 13> kBoundsMs = {0.1, 0.25, 0.5, 1,   2.5,  5,   10,
                                                         25,  50,   100, 250, 1000, 5000};
    // Records `count` observations of the same value (e.g. one publication's deliveries).
    void observeUs(uint64_t us, uint64_t count = 1);
    void render(std::string* out, const char* name, const char* help) const;

private:
    std::array<std::atomic<uint64_t>, kBoundsMs.size() + 1> buckets_{};
    std::atomic<uint64_t> count_{0};
    std::atomic<uint64_t> sum_us_{0};
};

struct Metrics {
    std::atomic<int64_t> ws_connections{0};  // open native-protocol WebSockets
    std::atomic<uint64_t> ws_connections_total{0};
    std::atomic<uint64_t> messages_in{0};
    std::atomic<uint64_t> messages_out{0};
    std::atomic<uint64_t> bytes_in{0};
    std::atomic<uint64_t> bytes_out{0};
    std::atomic<uint64_t> publications{0};
    std::atomic<uint64_t> deliveries{0};
    std::atomic<uint64_t> slow_consumer_disconnects{0};
    std::atomic<uint64_t> slow_consumer_drops{0};
    std::atomic<uint64_t> recoveries_recovered{0};
    std::atomic<uint64_t> recoveries_failed{0};
    std::atomic<uint64_t> rate_limited{0};
    std::atomic<uint64_t> protocol_errors{0};
    LatencyHistogram delivery_latency;  // publish → written to the subscriber's socket

    // `backlog_bytes` and `channels` are gauges sampled by the caller.
    std::string render(uint64_t backlog_bytes, uint64_t channels, uint64_t sessions) const;
};

}  // namespace sb::server
