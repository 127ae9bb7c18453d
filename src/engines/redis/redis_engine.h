// The `redis` engine: many Switchboard nodes share channels through one Redis server. Offsets,
// history (a Redis stream per channel), idempotency keys, presence and sessions live in Redis;
// publications reach every node through Redis pub/sub. A publish is one Lua script — idempotency
// check, offset, history append and PUBLISH in one atomic step — so a channel's order is the
// same on every node. All Redis I/O runs on one event loop of the engine's own, over a few
// connections: one for commands (pipelined) and `subscribers` for pub/sub, channels spread over
// them by hash, so one connection's socket is not the ceiling of fan-out.
//
// Calls from other threads (the server's loops, the housekeeping thread) are posted to that loop;
// those that need an answer (subscribe, publish, history, presence, channels, loadSession) wait
// for it, up to `timeout_ms`, and report `unavailable` if Redis does not answer. Redis down: the
// engine says unavailable (/readyz 503), local connections stay, and it reconnects with
// exponential backoff; on the way back it re-subscribes, re-registers the node and its presence
// entries. A subscriber that missed publications meanwhile is told by a gap (see
// messaging::Hub); a stream lost in Redis (restart without persistence, eviction) gets a new
// epoch, so recovery from a position in the old one answers recovered:false.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "broker/engine.h"

namespace sb::engines::redis {

struct RedisOptions {
    // host:port of the Redis server; a comma-separated list is tried in turn on each reconnect
    // (a failover pair without a virtual IP).
    std::string address = "127.0.0.1:6379";
    std::string username;     // Redis 6 ACL user; empty = the default user
    std::string password;     // empty = no AUTH
    uint32_t db = 0;          // SELECT: several deployments can share a server (or use prefix)
    bool tls = false;         // TLS to Redis (rediss://)
    std::string tls_ca_file;  // PEM CAs trusted for Redis's certificate (empty: system store)
    // Every key and pub/sub channel starts with it: several deployments share one Redis.
    std::string prefix = "sb:";
    // Pub/sub connections per node. Four spreads a node's channels so one socket's read rate
    // is not the limit, and costs Redis only four connections per node.
    uint32_t subscribers = 4;
    // How long a caller waits for Redis before `unavailable`: longer than any healthy round
    // trip, short enough that a client's request is not left hanging.
    uint64_t timeout_ms = 2000;
    // A node that has not refreshed its heartbeat for this long is dead: its presence entries
    // are removed (leave events sent) by the other nodes. Heartbeats go every second.
    uint64_t node_ttl_ms = 10'000;
    std::string node_name;  // shown in /api/info; empty = hostname:pid
};

// Parses "host:port[,host:port...]".
base::Result<std::vector<std::pair<std::string, uint16_t>>> parseAddresses(std::string_view list);

// Starts the engine's loop thread and its first connection attempt (it does not wait: the
// engine is unavailable until Redis answers). Fails only on invalid options.
base::Result<std::unique_ptr<broker::Engine>> makeRedisEngine(RedisOptions options);

}  // namespace sb::engines::redis
