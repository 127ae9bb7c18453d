#include "server/metrics.h"

#include <cstdio>

namespace sb::server {

void LatencyHistogram::observeUs(uint64_t us, uint64_t count) {
    const double ms = static_cast<double>(us) / 1000.0;
    size_t i = 0;
    while (i < kBoundsMs.size() && ms > kBoundsMs[i]) {
        ++i;
    }
    buckets_[i].fetch_add(count, std::memory_order_relaxed);
    count_.fetch_add(count, std::memory_order_relaxed);
    sum_us_.fetch_add(us * count, std::memory_order_relaxed);
}

void LatencyHistogram::render(std::string* out, const char* name, const char* help) const {
    char line[256];
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    *out += line;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBoundsMs.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, kBoundsMs[i] / 1000.0,
                      static_cast<unsigned long long>(cumulative));
        *out += line;
    }
    cumulative += buckets_[kBoundsMs.size()].load(std::memory_order_relaxed);
    std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                  name, static_cast<unsigned long long>(cumulative), name,
                  static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6, name,
                  static_cast<unsigned long long>(count_.load(std::memory_order_relaxed)));
    *out += line;
}

std::string Metrics::render(uint64_t backlog_bytes, uint64_t channels, uint64_t sessions) const {
    std::string out;
    char line[256];
    auto metric = [&](const char* name, const char* type, const char* help, uint64_t v,
                      const char* labels = "") {
        std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", name, help,
                      name, type, name, labels, static_cast<unsigned long long>(v));
        out += line;
    };
    auto r = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    int64_t open = ws_connections.load(std::memory_order_relaxed);
    metric("switchboard_connections", "gauge", "Open connections by transport.",
           static_cast<uint64_t>(open < 0 ? 0 : open), "{transport=\"websocket\"}");
    metric("switchboard_connections_total", "counter", "Connections accepted by transport.",
           r(ws_connections_total), "{transport=\"websocket\"}");
    metric("switchboard_messages_in_total", "counter", "Protocol messages received.",
           r(messages_in));
    metric("switchboard_messages_out_total", "counter", "Protocol messages sent.", r(messages_out));
    metric("switchboard_bytes_in_total", "counter", "Payload bytes received.", r(bytes_in));
    metric("switchboard_bytes_out_total", "counter", "Payload bytes sent.", r(bytes_out));
    metric("switchboard_publications_total", "counter", "Publications accepted.", r(publications));
    metric("switchboard_deliveries_total", "counter", "Publications written to subscribers.",
           r(deliveries));
    metric("switchboard_outbound_backlog_bytes", "gauge",
           "Bytes queued for clients that the kernel has not taken yet.", backlog_bytes);
    metric("switchboard_slow_consumer_disconnects_total", "counter",
           "Connections closed by the slow-consumer policy.", r(slow_consumer_disconnects));
    metric("switchboard_slow_consumer_drops_total", "counter",
           "Publications skipped by the drop policy.", r(slow_consumer_drops));
    std::snprintf(line, sizeof line,
                  "# HELP switchboard_recoveries_total Subscribe-with-since results.\n"
                  "# TYPE switchboard_recoveries_total counter\n"
                  "switchboard_recoveries_total{result=\"recovered\"} %llu\n"
                  "switchboard_recoveries_total{result=\"not_recovered\"} %llu\n",
                  static_cast<unsigned long long>(r(recoveries_recovered)),
                  static_cast<unsigned long long>(r(recoveries_failed)));
    out += line;
    metric("switchboard_rate_limited_total", "counter", "Requests refused by the rate limit.",
           r(rate_limited));
    metric("switchboard_protocol_errors_total", "counter", "Invalid client requests.",
           r(protocol_errors));
    metric("switchboard_channels", "gauge", "Live channels.", channels);
    metric("switchboard_sessions", "gauge", "Live sessions.", sessions);
    delivery_latency.render(&out, "switchboard_delivery_latency_seconds",
                            "Publish to socket write, per delivery.");
    return out;
}

}  // namespace sb::server
