// /metrics in the Prometheus text format. Nothing here is bumped per message: each loop keeps
// its own counters (messaging::Stats, the App's connection counts) and a scrape sums them.
#pragma once

#include <cstdint>
#include <string>

#include "broker/engine.h"
#include "messaging/stats.h"
#include "server/app.h"

namespace sb::server {

struct MetricsSnapshot {
    messaging::StatsTotals stats;
    uint64_t websocket_connections = 0;  // every WebSocket route (/ws, /echo, …)
    uint64_t sse_connections = 0;        // open Server-Sent Event streams (/sse)
    uint64_t poll_sessions = 0;          // long-polling sessions (/poll)
    uint64_t poll_waiting = 0;           // of their GETs, those parked waiting for events
    uint64_t http_connections = 0;       // plain HTTP connections (API, pages, probes)
    uint64_t backlog_bytes = 0;          // queued for clients, not yet taken by the kernel
    uint64_t channels = 0;
    uint64_t sessions = 0;
    uint64_t refused_max = 0, refused_ip = 0, refused_rate = 0;  // connections refused at accept
    uint64_t refused_admission = 0;  // sessions refused by server.admission_rate
    uint64_t api_rate_limited = 0;
    uint64_t ping_floods = 0;  // WebSockets closed 1008 for too many pings  // HTTP API calls
                               // refused by api.rate_limit
    HandshakeFailures handshake_failures{};              // by kHandshakeFailureReasons
    std::vector<uint32_t> loop_lag_ms;                   // per loop (App::loopLagMs)
    std::vector<messaging::NamespaceTotals> namespaces;  // Hub::namespaceTotals
    broker::EngineStatus engine;  // availability and, for a shared engine, the cluster's nodes
    bool tls = false;             // the server speaks TLS: the handshake family is rendered
    uint64_t tls_full = 0, tls_resumed = 0, tls_failed = 0;
};

std::string renderMetrics(const MetricsSnapshot& m);

}  // namespace sb::server
