// Counters of the messaging core, one set per event loop (single writer: that loop's thread),
// summed when /metrics is scraped. Adapters count what only they see (bytes, slow-consumer
// closes) into the same set.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/stats.h"

namespace sb::messaging {

// The close codes /metrics counts disconnects by (the reconnect rate, by why): each of the
// protocol's codes (docs/protocol.md, Close codes) and "other". A fixed set: bounded labels.
inline constexpr std::array<uint16_t, 12> kCountedCloseCodes = {1000, 1001, 1002, 1006, 1007, 1008,
                                                                1009, 4000, 4001, 4003, 4004, 4005};
// The index of `code` in kCountedCloseCodes, or its size for "other".
constexpr size_t closeCodeIndex(uint16_t code) {
    for (size_t i = 0; i < kCountedCloseCodes.size(); ++i) {
        if (kCountedCloseCodes[i] == code) {
            return i;
        }
    }
    return kCountedCloseCodes.size();
}

struct Stats {
    base::Gauge clients;  // open connections of the core's adapters (all transports)
    base::Counter clients_total;
    base::Counter messages_in;
    base::Counter bytes_in;
    base::Counter messages_out;
    base::Counter bytes_out;
    base::Counter publications;
    base::Counter deliveries;
    base::Counter slow_consumer_disconnects;
    base::Counter slow_consumer_drops;
    base::Counter recoveries_recovered;
    base::Counter recoveries_failed;
    base::Counter rate_limited;
    base::Counter protocol_errors;
    base::Counter takeovers;       // sessions resumed while another connection held them
    base::Counter resumes;         // connects that resumed their session
    base::Counter resumes_failed;  // connects that named a session gone (expired, unknown)
    // Messaging connections that ended, by close code (kCountedCloseCodes, then "other").
    std::array<base::Counter, kCountedCloseCodes.size() + 1> disconnects;
    base::LatencyHistogram delivery_latency;  // publish → handed to the subscriber's transport
};

// One namespace's figures (bounded labels: namespaces are configured). Counters per loop, each
// written by that loop's thread (slot kMaxLoops: threads that are not loops), on a cache line
// of its own; an entry lives as long as the Hub, so a pointer to it stays valid.
struct NamespaceStats {
    struct alignas(64) PerLoop {
        base::Counter publications;  // accepted (duplicates excluded)
        base::Counter deliveries;    // publications handed to subscribers' transports
        base::Gauge subscriptions;   // open subscriptions of this loop's clients
    };
    std::string name;
    std::array<PerLoop, 65> loops;  // broker::kMaxLoops + 1
};

// A namespace's figures summed over the loops (a scrape).
struct NamespaceTotals {
    std::string name;
    uint64_t publications = 0, deliveries = 0;
    int64_t subscriptions = 0;
};

// The sum of every loop's Stats at one moment (a scrape).
struct StatsTotals {
    int64_t clients = 0;
    uint64_t clients_total = 0, messages_in = 0, bytes_in = 0, messages_out = 0, bytes_out = 0,
             publications = 0, deliveries = 0, slow_consumer_disconnects = 0,
             slow_consumer_drops = 0, recoveries_recovered = 0, recoveries_failed = 0,
             rate_limited = 0, protocol_errors = 0, takeovers = 0, resumes = 0, resumes_failed = 0;
    std::array<uint64_t, kCountedCloseCodes.size() + 1> disconnects{};
    base::LatencyHistogram::Snapshot delivery_latency;

    void add(const Stats& s) {
        clients += s.clients.value();
        clients_total += s.clients_total.value();
        messages_in += s.messages_in.value();
        bytes_in += s.bytes_in.value();
        messages_out += s.messages_out.value();
        bytes_out += s.bytes_out.value();
        publications += s.publications.value();
        deliveries += s.deliveries.value();
        slow_consumer_disconnects += s.slow_consumer_disconnects.value();
        slow_consumer_drops += s.slow_consumer_drops.value();
        recoveries_recovered += s.recoveries_recovered.value();
        recoveries_failed += s.recoveries_failed.value();
        rate_limited += s.rate_limited.value();
        protocol_errors += s.protocol_errors.value();
        takeovers += s.takeovers.value();
        resumes += s.resumes.value();
        resumes_failed += s.resumes_failed.value();
        for (size_t i = 0; i < disconnects.size(); ++i) {
            disconnects[i] += s.disconnects[i].value();
        }
        s.delivery_latency.addTo(&delivery_latency);
    }
};

}  // namespace sb::messaging
