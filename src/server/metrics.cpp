#include "server/metrics.h"

#include <cstdio>
#include <initializer_list>
#include <utility>

namespace sb::server {

namespace {

void renderHistogram(std::string* out, const base::LatencyHistogram::Snapshot& h, const char* name,
                     const char* help) {
    char line[256];
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    *out += line;
    uint64_t cumulative = 0;
    const auto& bounds = base::LatencyHistogram::kBoundsMs;
    for (size_t i = 0; i < bounds.size(); ++i) {
        cumulative += h.buckets[i];
        std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i] / 1000.0,
                      static_cast<unsigned long long>(cumulative));
        *out += line;
    }
    cumulative += h.buckets[bounds.size()];
    std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                  name, static_cast<unsigned long long>(cumulative), name,
                  static_cast<double>(h.sum_us) / 1e6, name,
                  static_cast<unsigned long long>(h.count));
    *out += line;
}

}  // namespace

std::string renderMetrics(const MetricsSnapshot& m) {
    std::string out;
    char line[512];
    auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
        std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                      type, name, static_cast<unsigned long long>(v));
        out += line;
    };
    // One family with one label, e.g. connections{transport="websocket"|"http"}.
    auto labelled = [&](const char* name, const char* type, const char* help, const char* label,
                        std::initializer_list<std::pair<const char*, uint64_t>> values) {
        std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        out += line;
        for (const auto& [value, v] : values) {
            std::snprintf(line, sizeof line, "%s{%s=\"%s\"} %llu\n", name, label, value,
                          static_cast<unsigned long long>(v));
            out += line;
        }
    };
    const messaging::StatsTotals& s = m.stats;
    labelled("switchboard_connections", "gauge", "Open connections by transport.", "transport",
             {{"websocket", m.websocket_connections},
              {"sse", m.sse_connections},
              {"poll", m.poll_sessions},
              {"http", m.http_connections}});
    labelled("switchboard_connections_refused_total", "counter",
             "Connections refused before a session opened, by the limit that refused them.",
             "reason",
             {{"max_connections", m.refused_max},
              {"max_connections_per_ip", m.refused_ip},
              {"connection_rate_per_ip", m.refused_rate},
              {"admission_rate", m.refused_admission}});
    metric("switchboard_poll_waiting", "gauge",
           "Long-polling GETs parked on the server, waiting for events or their wait to end.",
           m.poll_waiting);
    metric("switchboard_clients", "gauge",
           "Open connections of the messaging protocol (the /ws endpoint).",
           static_cast<uint64_t>(s.clients < 0 ? 0 : s.clients));
    metric("switchboard_clients_total", "counter", "Messaging connections accepted.",
           s.clients_total);
    metric("switchboard_messages_in_total", "counter", "Protocol messages received.",
           s.messages_in);
    metric("switchboard_messages_out_total", "counter", "Protocol messages sent.", s.messages_out);
    metric("switchboard_bytes_in_total", "counter", "Payload bytes received.", s.bytes_in);
    metric("switchboard_bytes_out_total", "counter", "Payload bytes sent.", s.bytes_out);
    metric("switchboard_publications_total", "counter", "Publications accepted.", s.publications);
    metric("switchboard_deliveries_total", "counter", "Publications written to subscribers.",
           s.deliveries);
    metric("switchboard_outbound_backlog_bytes", "gauge",
           "Bytes queued for clients that the kernel has not taken yet.", m.backlog_bytes);
    metric("switchboard_slow_consumer_disconnects_total", "counter",
           "Connections closed by the slow-consumer policy.", s.slow_consumer_disconnects);
    metric("switchboard_slow_consumer_drops_total", "counter",
           "Publications skipped by the drop policy.", s.slow_consumer_drops);
    labelled("switchboard_recoveries_total", "counter", "Subscribe-with-since results.", "result",
             {{"recovered", s.recoveries_recovered}, {"not_recovered", s.recoveries_failed}});
    if (m.tls) {
        labelled("switchboard_tls_handshakes_total", "counter",
                 "TLS handshakes: full, resumed from a ticket or session id, failed.", "result",
                 {{"full", m.tls_full}, {"resumed", m.tls_resumed}, {"failed", m.tls_failed}});
    }
    labelled("switchboard_session_resumes_total", "counter",
             "Connects that named a session: resumed, or gone (expired or unknown: a new one).",
             "result", {{"resumed", s.resumes}, {"not_found", s.resumes_failed}});
    // The reconnect rate, by why connections ended (WebSocket close codes, a fixed set).
    std::snprintf(line, sizeof line,
                  "# HELP switchboard_disconnects_total Messaging WebSocket connections that "
                  "ended, by close code.\n# TYPE switchboard_disconnects_total counter\n");
    out += line;
    for (size_t i = 0; i < s.disconnects.size(); ++i) {
        const std::string code = i < messaging::kCountedCloseCodes.size()
                                     ? std::to_string(messaging::kCountedCloseCodes[i])
                                     : std::string("other");
        std::snprintf(line, sizeof line, "switchboard_disconnects_total{code=\"%s\"} %llu\n",
                      code.c_str(), static_cast<unsigned long long>(s.disconnects[i]));
        out += line;
    }
    std::snprintf(line, sizeof line,
                  "# HELP switchboard_handshake_failures_total WebSocket upgrades refused, by "
                  "reason.\n# TYPE switchboard_handshake_failures_total counter\n");
    out += line;
    for (size_t i = 0; i < kHandshakeFailureReasons.size(); ++i) {
        std::snprintf(line, sizeof line,
                      "switchboard_handshake_failures_total{reason=\"%.*s\"} %llu\n",
                      static_cast<int>(kHandshakeFailureReasons[i].size()),
                      kHandshakeFailureReasons[i].data(),
                      static_cast<unsigned long long>(m.handshake_failures[i]));
        out += line;
    }
    std::snprintf(line, sizeof line,
                  "# HELP switchboard_loop_lag_seconds Longest event-loop iteration over the last "
                  "10-20 s, per loop (how long a ready event may wait).\n# TYPE "
                  "switchboard_loop_lag_seconds gauge\n");
    out += line;
    for (size_t i = 0; i < m.loop_lag_ms.size(); ++i) {
        std::snprintf(line, sizeof line, "switchboard_loop_lag_seconds{loop=\"%zu\"} %.3f\n", i,
                      m.loop_lag_ms[i] / 1000.0);
        out += line;
    }
    // Per namespace: configured names only ([a-z0-9_-]), so the label set stays small.
    auto per_namespace = [&](const char* name, const char* type, const char* help, auto value) {
        std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        out += line;
        for (const messaging::NamespaceTotals& ns : m.namespaces) {
            std::snprintf(line, sizeof line, "%s{namespace=\"%s\"} %lld\n", name, ns.name.c_str(),
                          static_cast<long long>(value(ns)));
            out += line;
        }
    };
    per_namespace("switchboard_namespace_publications_total", "counter",
                  "Publications accepted, per namespace.",
                  [](const messaging::NamespaceTotals& n) { return n.publications; });
    per_namespace("switchboard_namespace_deliveries_total", "counter",
                  "Publications handed to subscribers, per namespace.",
                  [](const messaging::NamespaceTotals& n) { return n.deliveries; });
    per_namespace("switchboard_namespace_subscriptions", "gauge",
                  "Open subscriptions, per namespace.",
                  [](const messaging::NamespaceTotals& n) { return n.subscriptions; });
    metric("switchboard_session_takeovers_total", "counter",
           "Sessions resumed while another connection held them (that one closed 4004).",
           s.takeovers);
    metric("switchboard_rate_limited_total", "counter", "Requests refused by the rate limit.",
           s.rate_limited);
    metric("switchboard_ping_flood_closes_total", "counter",
           "WebSockets closed 1008 for sending more pings than websocket.max_pings_per_s.",
           m.ping_floods);
    metric("switchboard_api_rate_limited_total", "counter",
           "HTTP API calls refused by api.rate_limit.", m.api_rate_limited);
    metric("switchboard_protocol_errors_total", "counter", "Invalid client requests.",
           s.protocol_errors);
    metric("switchboard_channels", "gauge", "Live channels.", m.channels);
    metric("switchboard_sessions", "gauge", "Live sessions.", m.sessions);
    metric("switchboard_engine_available", "gauge",
           "1 while the broker engine serves requests (always, for the memory engine).",
           m.engine.available ? 1 : 0);
    if (!m.engine.node_id.empty()) {
        metric("switchboard_engine_reconnects_total", "counter",
               "Connections to the shared engine re-established after a loss.",
               m.engine.reconnects);
        metric("switchboard_cluster_nodes", "gauge",
               "Live nodes sharing the engine (heartbeat within broker.node_ttl).",
               m.engine.nodes.size());
        out +=
            "# HELP switchboard_cluster_node_connections Messaging connections per live node "
            "(from its heartbeat).\n# TYPE switchboard_cluster_node_connections gauge\n";
        for (const auto& n : m.engine.nodes) {
            // Node ids are [0-9a-f]; names are free text: escaped for the label.
            std::string name;
            for (char ch : n.name) {
                if (ch == '"' || ch == '\\') {
                    name.push_back('\\');
                    name.push_back(ch);
                } else if (ch == '\n') {
                    name += "\\n";
                } else {
                    name.push_back(ch);
                }
            }
            out += "switchboard_cluster_node_connections{node=\"" + n.id + "\",name=\"" + name +
                   "\"} " + std::to_string(n.connections) + "\n";
        }
    }
    renderHistogram(&out, s.delivery_latency, "switchboard_delivery_latency_seconds",
                    "Publish to socket write, per delivery.");
    return out;
}

}  // namespace sb::server
