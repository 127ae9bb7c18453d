// The declarations of Switchboard's settings (the reasons for their defaults live with the
// defaults, in the option structs) and the layering of file, environment and flags.
#include "server/settings.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "broker/engine.h"
#include "config/units.h"

namespace sb::server {

namespace {

using config::Apply;
using config::Kind;

config::Schema<ServeConfig> buildSchema() {
    config::Schema<ServeConfig> s("SWITCHBOARD_", "server");
    // [server]
    s.add(
        {.key = "server.host", .flag = "--host", .kind = Kind::kString, .help = "listen address"},
        [](auto& c) -> auto& { return c.server.host; });
    s.add(
        {.key = "server.port",
         .flag = "--port",
         .kind = Kind::kUint,
         .help = "listen port; 0 = any free port (printed)"},
        [](auto& c) -> auto& { return c.server.port; });
    s.add(
        {.key = "server.threads",
         .flag = "--threads",
         .kind = Kind::kUint,
         .help = "event loops; 0 = one per core (shared-nothing, SO_REUSEPORT)",
         .max = broker::kMaxLoops},
        [](auto& c) -> auto& { return c.server.threads; });
    s.add(
        {.key = "server.reuse_port",
         .flag = "--reuse-port",
         .kind = Kind::kBool,
         .help = "join other processes already listening on the port (SO_REUSEPORT across "
                 "processes); off = another listener on the port is a startup error"},
        [](auto& c) -> auto& { return c.server.reuse_port; });
    s.add(
        {.key = "server.handover_socket",
         .flag = "--handover-socket",
         .kind = Kind::kString,
         .help = "Unix socket path for zero-downtime restarts: a new server started with the "
                 "same path takes over the listening sockets, the old one drains; empty = off"},
        [](auto& c) -> auto& { return c.server.handover_socket; });
    s.add(
        {.key = "server.io_uring",
         .flag = "--io-uring",
         .kind = Kind::kBool,
         .help = "send through io_uring, one system call per loop iteration for up to 1,024 "
                 "sockets written (fan-out); off = one send() per socket"},
        [](auto& c) -> auto& { return c.server.io_uring; });
    s.add(
        {.key = "server.log_level",
         .flag = "--log-level",
         .kind = Kind::kLogLevel,
         .help = "least severe log lines written",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.log_level; });
    s.add(
        {.key = "server.log_json",
         .flag = "--log-json",
         .kind = Kind::kBool,
         .help = "structured JSON log lines"},
        [](auto& c) -> auto& { return c.log_json; });
    s.add(
        {.key = "server.max_header_bytes",
         .flag = "--max-header-bytes",
         .kind = Kind::kSize,
         .help = "largest HTTP request head (431 above): real browsers send < 2 KiB"},
        [](auto& c) -> auto& { return c.server.max_head_bytes; });
    s.add(
        {.key = "server.handshake_timeout",
         .flag = "--handshake-timeout",
         .kind = Kind::kDuration,
         .help = "time to complete the HTTP request/upgrade (slowloris guard)"},
        [](auto& c) -> auto& { return c.server.handshake_timeout_ms; });
    s.add(
        {.key = "server.shutdown_timeout",
         .flag = "--shutdown-timeout",
         .kind = Kind::kDuration,
         .help = "SIGTERM: time allowed for close handshakes and draining"},
        [](auto& c) -> auto& { return c.server.shutdown_timeout_ms; });
    s.add(
        {.key = "server.reconnect_spread",
         .flag = "--reconnect-spread",
         .kind = Kind::kDuration,
         .help = "SIGTERM: clients are told to reconnect after a random delay up to this (so "
                 "they do not all come back at once); 0 = at once"},
        [](auto& c) -> auto& { return c.server.reconnect_spread_ms; });
    s.add(
        {.key = "server.admission_rate",
         .flag = "--admission-rate",
         .kind = Kind::kUint,
         .help = "new sessions/s this node admits (WebSocket, SSE, poll; 503 + Retry-After "
                 "above): a reconnect storm waits in the clients' backoff; 0 = unlimited",
         .max = 10'000'000},
        [](auto& c) -> auto& { return c.server.admission_rate; });
    s.add(
        {.key = "server.max_connections",
         .flag = "--max-connections",
         .kind = Kind::kUint,
         .help = "global connection limit (503 above); the OS file limit usually bites first"},
        [](auto& c) -> auto& { return c.server.max_connections; });
    s.add(
        {.key = "server.max_connections_per_ip",
         .flag = "--max-connections-per-ip",
         .kind = Kind::kUint,
         .help = "open connections per client IP; 0 = unlimited (proxies share one IP)"},
        [](auto& c) -> auto& { return c.server.max_connections_per_ip; });
    s.add(
        {.key = "server.connection_rate_per_ip",
         .flag = "--connection-rate-per-ip",
         .kind = Kind::kUint,
         .help = "new connections/s per client IP (burst 2x; 429 above); 0 = unlimited",
         .max = 1'000'000},
        [](auto& c) -> auto& { return c.server.connection_rate_per_ip; });
    s.add(
        {.key = "server.limit_loopback",
         .flag = "--limit-loopback",
         .kind = Kind::kBool,
         .help = "apply connection_rate_per_ip to loopback peers too (off: a local proxy or tool "
                 "speaks for many users)"},
        [](auto& c) -> auto& { return c.server.limit_loopback; });
    s.add(
        {.key = "server.trusted_proxies",
         .flag = "--trusted-proxies",
         .kind = Kind::kList,
         .help = "addresses of load balancers in front: exempt from per-IP limits at accept; "
                 "X-Forwarded-For from them names the client (ignored from anyone else)"},
        [](auto& c) -> auto& { return c.server.trusted_proxies; });
    s.add(
        {.key = "server.allowed_origins",
         .flag = "--allowed-origins",
         .kind = Kind::kList,
         .help = "Origin allowlist for WebSocket upgrades; empty = any (set it for browsers)"},
        [](auto& c) -> auto& { return c.server.allowed_origins; });
    s.add(
        {.key = "server.send_buffer",
         .flag = "--send-buffer",
         .kind = Kind::kSize,
         .help = "SO_SNDBUF per accepted socket; 0 = kernel autotuning (up to 4 MiB a socket); "
                 "a cap bounds the kernel memory a stalled client pins"},
        [](auto& c) -> auto& { return c.server.send_buffer; });
    // [tls]
    s.add(
        {.key = "tls.cert_file",
         .flag = "--tls-cert",
         .kind = Kind::kString,
         .help = "PEM certificate chain (leaf first); with tls.key_file turns TLS on (wss://, "
                 "https://); SIGHUP reloads it",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.server.tls.cert_file; });
    s.add(
        {.key = "tls.key_file",
         .flag = "--tls-key",
         .kind = Kind::kString,
         .help = "PEM private key of tls.cert_file; SIGHUP reloads it",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.server.tls.key_file; });
    s.add(
        {.key = "tls.port",
         .flag = "--tls-port",
         .kind = Kind::kUint,
         .help = "0 = the main port speaks TLS only; another port = a TLS listener there and "
                 "the main port stays plain",
         .max = 65535},
        [](auto& c) -> auto& { return c.server.tls.port; });
    s.add(
        {.key = "tls.session_tickets",
         .flag = "--tls-session-tickets",
         .kind = Kind::kBool,
         .help = "resume sessions from tickets (cheap reconnect storms)",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.server.tls.session_tickets; });
    s.add(
        {.key = "tls.ticket_key_file",
         .flag = "--tls-ticket-key",
         .kind = Kind::kString,
         .help = "80 random bytes keying session tickets (openssl rand 80 > FILE); share it "
                 "between nodes and restarts so reconnects resume anywhere; empty = per process",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.server.tls.ticket_key_file; });
    // [websocket]: the /echo route and raw WebSocket routes.
    s.add(
        {.key = "websocket.max_message_size",
         .flag = "--max-message-size",
         .kind = Kind::kSize,
         .help = "largest message after reassembly/inflation (close 1009 above); 16 MiB covers "
                 "Autobahn 9.x"},
        [](auto& c) -> auto& { return c.websocket.max_message_size; });
    s.add(
        {.key = "websocket.max_backlog",
         .flag = "--max-backlog",
         .kind = Kind::kSize,
         .help = "unsent bytes per connection before it is cut off as a slow consumer"},
        [](auto& c) -> auto& { return c.websocket.max_backlog; });
    s.add(
        {.key = "websocket.ping_interval",
         .flag = "--ping-interval",
         .kind = Kind::kDuration,
         .help = "server ping interval (0 = off); below common 30-60 s proxy idle timeouts"},
        [](auto& c) -> auto& { return c.websocket.ping_interval_ms; });
    s.add(
        {.key = "websocket.idle_timeout",
         .flag = "--idle-timeout",
         .kind = Kind::kDuration,
         .help = "close a connection silent this long",
         .derived = "ping_interval + 10s when not set; 0 when pings are off"},
        [](auto& c) -> auto& { return c.websocket.idle_timeout_ms; });
    s.add(
        {.key = "websocket.max_pings_per_s",
         .flag = "--max-pings-per-s",
         .kind = Kind::kUint,
         .help = "WebSocket pings a peer may send per second (each costs a pong); close 1008 "
                 "above; 0 = unlimited",
         .max = 65535},
        [](auto& c) -> auto& { return c.websocket.max_pings_per_s; });
    s.add(
        {.key = "websocket.compression",
         .flag = "--compression",
         .kind = Kind::kBool,
         .help = "negotiate permessage-deflate when the client offers it"},
        [](auto& c) -> auto& { return c.deflate.enabled; });
    s.add(
        {.key = "websocket.compression_takeover",
         .flag = "--compression-takeover",
         .kind = Kind::kBool,
         .help = "keep each connection's compression contexts between messages (better ratio "
                 "on similar messages, up to ~300 KiB per connection); off: one shared "
                 "compressor and decompressor per loop, a fan-out message compressed once"},
        [](auto& c) -> auto& { return c.deflate.context_takeover; });
    // [messaging]: the /ws native protocol.
    s.add(
        {.key = "messaging.outbound_limit",
         .flag = "--outbound-limit",
         .kind = Kind::kSize,
         .help = "bytes queued per /ws client before its namespace's slow_consumer policy acts"},
        [](auto& c) -> auto& { return c.messaging.outbound_limit; });
    s.add(
        {.key = "messaging.rate_limit",
         .flag = "--rate-limit",
         .kind = Kind::kUint,
         .help = "requests/s per /ws connection (burst 2x); rate_limited errors, then close 1008",
         .min = 1},
        [](auto& c) -> auto& { return c.messaging.rate_limit; });
    s.add(
        {.key = "messaging.max_subscriptions",
         .flag = "--max-subscriptions",
         .kind = Kind::kUint,
         .help = "channels one connection may subscribe to"},
        [](auto& c) -> auto& { return c.messaging.max_subscriptions; });
    s.add(
        {.key = "messaging.max_message_size",
         .kind = Kind::kSize,
         .help = "largest /ws message (close 1009 above); 0 = derived",
         .derived = "0 = the largest namespace max_data_bytes + 4KiB"},
        [](auto& c) -> auto& { return c.messaging.max_message_size; });
    // [api]
    s.add(
        {.key = "api.key",
         .flag = "--api-key",
         .kind = Kind::kString,
         .help = "key for /api/* (Authorization: apikey KEY); empty = HTTP API off",
         .apply = Apply::kReload,
         .secret = true},
        [](auto& c) -> auto& { return c.messaging.api_key; });
    s.add(
        {.key = "api.rate_limit",
         .flag = "--api-rate-limit",
         .kind = Kind::kUint,
         .help = "HTTP API calls/s with the key (burst 2x; 429 above); 0 = unlimited",
         .apply = Apply::kReload,
         .max = 10'000'000},
        [](auto& c) -> auto& { return c.messaging.api_rate_limit; });
    // [admin]: the /admin dashboard (docs/admin.md).
    s.add(
        {.key = "admin.password",
         .flag = "--admin-password",
         .kind = Kind::kString,
         .help = "password of the /admin dashboard (prefer SWITCHBOARD_ADMIN_PASSWORD: a flag "
                 "shows in process lists); empty = /admin off; a new one ends every login",
         .apply = Apply::kReload,
         .secret = true},
        [](auto& c) -> auto& { return c.admin.password; });
    s.add(
        {.key = "admin.session_ttl",
         .flag = "--admin-session-ttl",
         .kind = Kind::kDuration,
         .help = "how long a dashboard login lasts (from the login, not renewed by activity)",
         .apply = Apply::kReload,
         .min = 60'000},
        [](auto& c) -> auto& { return c.admin.session_ttl_ms; });
    // [broker]: the engine (docs/cluster.md).
    s.add(
        {.key = "broker.engine",
         .flag = "--broker-engine",
         .kind = Kind::kEnum,
         .help = "memory: one node, in-process; redis / nats: nodes share channels, presence, "
                 "history and sessions through Redis / NATS JetStream",
         .choices = {"memory", "redis", "nats"}},
        [](auto& c) -> auto& { return c.broker.engine; });
    s.add(
        {.key = "broker.redis_address",
         .flag = "--redis-address",
         .kind = Kind::kString,
         .help = "host:port of Redis; a comma-separated list is tried in turn on reconnect"},
        [](auto& c) -> auto& { return c.broker.redis.address; });
    s.add(
        {.key = "broker.redis_username",
         .flag = "--redis-username",
         .kind = Kind::kString,
         .help = "Redis ACL user (AUTH user password); empty = the default user"},
        [](auto& c) -> auto& { return c.broker.redis.username; });
    s.add(
        {.key = "broker.redis_password",
         .flag = "--redis-password",
         .kind = Kind::kString,
         .help = "Redis password (AUTH); empty = none",
         .secret = true},
        [](auto& c) -> auto& { return c.broker.redis.password; });
    s.add(
        {.key = "broker.redis_db",
         .flag = "--redis-db",
         .kind = Kind::kUint,
         .help = "Redis database (SELECT) for keys; pub/sub is server-wide: use redis_prefix to "
                 "separate deployments",
         .max = 1'000'000},
        [](auto& c) -> auto& { return c.broker.redis.db; });
    s.add(
        {.key = "broker.redis_tls",
         .flag = "--redis-tls",
         .kind = Kind::kBool,
         .help = "TLS to Redis (certificate checked against the host name)"},
        [](auto& c) -> auto& { return c.broker.redis.tls; });
    s.add(
        {.key = "broker.redis_tls_ca",
         .flag = "--redis-tls-ca",
         .kind = Kind::kString,
         .help = "PEM CA certificates trusted for Redis's certificate; empty = the system store"},
        [](auto& c) -> auto& { return c.broker.redis.tls_ca_file; });
    s.add(
        {.key = "broker.redis_prefix",
         .flag = "--redis-prefix",
         .kind = Kind::kString,
         .help = "prefix of every Redis key and pub/sub channel (deployments sharing a Redis)"},
        [](auto& c) -> auto& { return c.broker.redis.prefix; });
    s.add(
        {.key = "broker.redis_subscribers",
         .flag = "--redis-subscribers",
         .kind = Kind::kUint,
         .help = "pub/sub connections per node; channels are spread over them by hash",
         .min = 1,
         .max = 64},
        [](auto& c) -> auto& { return c.broker.redis.subscribers; });
    s.add(
        {.key = "broker.redis_timeout",
         .flag = "--redis-timeout",
         .kind = Kind::kDuration,
         .help = "longest wait for Redis before a request fails with `unavailable` (and the "
                 "connection is reset)",
         .min = 100},
        [](auto& c) -> auto& { return c.broker.redis.timeout_ms; });
    s.add(
        {.key = "broker.node_ttl",
         .flag = "--node-ttl",
         .kind = Kind::kDuration,
         .help = "a node silent this long is dead: its clients leave presence (heartbeat 1s)",
         .min = 2000},
        [](auto& c) -> auto& { return c.broker.node_ttl_ms; });
    s.add(
        {.key = "broker.node_name",
         .flag = "--node-name",
         .kind = Kind::kString,
         .help = "this node's name in /api/info and /metrics; empty = hostname:pid"},
        [](auto& c) -> auto& { return c.broker.node_name; });
    s.add(
        {.key = "broker.nats_url",
         .flag = "--nats-url",
         .kind = Kind::kString,
         .help = "NATS server URL (nats://host:port); a comma-separated list for a NATS cluster"},
        [](auto& c) -> auto& { return c.broker.nats.url; });
    s.add(
        {.key = "broker.nats_user",
         .flag = "--nats-user",
         .kind = Kind::kString,
         .help = "NATS user (with nats_password); empty = none"},
        [](auto& c) -> auto& { return c.broker.nats.user; });
    s.add(
        {.key = "broker.nats_password",
         .flag = "--nats-password",
         .kind = Kind::kString,
         .help = "NATS password",
         .secret = true},
        [](auto& c) -> auto& { return c.broker.nats.password; });
    s.add(
        {.key = "broker.nats_token",
         .flag = "--nats-token",
         .kind = Kind::kString,
         .help = "NATS token authentication; empty = none",
         .secret = true},
        [](auto& c) -> auto& { return c.broker.nats.token; });
    s.add(
        {.key = "broker.nats_tls",
         .flag = "--nats-tls",
         .kind = Kind::kBool,
         .help = "TLS to NATS (certificate checked against the host name)"},
        [](auto& c) -> auto& { return c.broker.nats.tls; });
    s.add(
        {.key = "broker.nats_tls_ca",
         .flag = "--nats-tls-ca",
         .kind = Kind::kString,
         .help = "PEM CA certificates trusted for NATS's certificate; empty = the system store"},
        [](auto& c) -> auto& { return c.broker.nats.tls_ca_file; });
    s.add(
        {.key = "broker.nats_prefix",
         .flag = "--nats-prefix",
         .kind = Kind::kString,
         .help = "first token of every subject and start of every stream and bucket name "
                 "(deployments sharing a NATS); letters, digits, _ and -"},
        [](auto& c) -> auto& { return c.broker.nats.prefix; });
    s.add(
        {.key = "broker.nats_storage",
         .flag = "--nats-storage",
         .kind = Kind::kEnum,
         .help = "JetStream storage: file survives a NATS restart; memory is lost with it "
                 "(clients are then told recovered:false)",
         .choices = {"file", "memory"}},
        [](auto& c) -> auto& { return c.broker.nats_storage; });
    s.add(
        {.key = "broker.nats_timeout",
         .flag = "--nats-timeout",
         .kind = Kind::kDuration,
         .help = "longest wait for NATS before a request fails with `unavailable`",
         .min = 100},
        [](auto& c) -> auto& { return c.broker.nats.timeout_ms; });
    // [auth]: JWT verification (docs/security.md).
    s.add(
        {.key = "auth.hmac_secrets",
         .flag = "--auth-hmac-secrets",
         .kind = Kind::kList,
         .help = "HS256 secrets (>= 32 bytes each; several = rotation); any key turns auth on",
         .apply = Apply::kReload,
         .secret = true},
        [](auto& c) -> auto& { return c.messaging.auth.hmac_secrets; });
    s.add(
        {.key = "auth.public_key_files",
         .flag = "--auth-public-keys",
         .kind = Kind::kList,
         .help = "PEM files of RS256 (RSA >= 2048) / ES256 (P-256) public keys or certificates",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.messaging.auth.public_key_files; });
    s.add(
        {.key = "auth.jwks_file",
         .flag = "--auth-jwks",
         .kind = Kind::kString,
         .help = "a JWKS file (RFC 7517) of RSA, EC and oct keys",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.messaging.auth.jwks_file; });
    s.add(
        {.key = "auth.audience",
         .flag = "--auth-audience",
         .kind = Kind::kString,
         .help = "required in a token's \"aud\" when set",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.messaging.auth.audience; });
    s.add(
        {.key = "auth.issuer",
         .flag = "--auth-issuer",
         .kind = Kind::kString,
         .help = "a token's \"iss\" must equal it when set",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.messaging.auth.issuer; });
    s.add(
        {.key = "auth.leeway",
         .flag = "--auth-leeway",
         .kind = Kind::kDuration,
         .help = "clock skew allowed on exp, nbf and iat",
         .apply = Apply::kReload,
         .max = 3'600'000},
        [](auto& c) -> auto& { return c.messaging.auth.leeway_ms; });
    s.add(
        {.key = "auth.require_exp",
         .flag = "--auth-require-exp",
         .kind = Kind::kBool,
         .help = "refuse tokens without \"exp\" (a leaked one would never expire)",
         .apply = Apply::kReload},
        [](auto& c) -> auto& { return c.messaging.auth.require_exp; });
    // [echo]
    s.add(
        {.key = "echo.enabled",
         .flag = "--echo",
         .kind = Kind::kBool,
         .help = "serve the /echo WebSocket route"},
        [](auto& c) -> auto& { return c.echo_enabled; });
    s.add(
        {.key = "echo.subprotocols",
         .flag = "--subprotocols",
         .kind = Kind::kList,
         .help = "subprotocols of /echo in preference order"},
        [](auto& c) -> auto& { return c.echo_subprotocols; });

    // [namespaces.NAME] (docs/protocol.md, "Namespace options").
    s.section(
         {.key = "namespaces",
          .help = "channels \"NAME:...\" get these options; \"default\" (channels without "
                  "':') exists unless configured",
          .name_rule = "[a-z0-9_-]{1,64}",
          .valid_name = &messaging::isValidNamespaceName,
          .apply = Apply::kReload},
         [](auto& c) -> auto& { return c.messaging.namespaces; })
        .add(
            {.key = "presence", .kind = Kind::kBool, .help = "keep who is in a channel"},
            [](auto& o) -> auto& { return o.presence; })
        .add(
            {.key = "join_leave", .kind = Kind::kBool, .help = "push join/leave events"},
            [](auto& o) -> auto& { return o.join_leave; })
        .add(
            {.key = "history_size",
             .kind = Kind::kUint,
             .help = "publications kept per channel; 0 = no history (at_least_once: 1000)"},
            [](auto& o) -> auto& { return o.history_size; })
        .add(
            {.key = "history_ttl",
             .kind = Kind::kDuration,
             .help = "and for how long; 0 = until pushed out by history_size"},
            [](auto& o) -> auto& { return o.history_ttl_ms; })
        .add(
            {.key = "client_publish",
             .kind = Kind::kBool,
             .help = "clients may publish (false: only the HTTP API)"},
            [](auto& o) -> auto& { return o.client_publish; })
        .add(
            {.key = "delivery",
             .kind = Kind::kEnum,
             .help = "at_least_once keeps un-acked publications per session",
             .choices = {"at_most_once", "at_least_once"}},
            [](auto& o) -> auto& { return o.delivery; })
        .add(
            {.key = "slow_consumer",
             .kind = Kind::kEnum,
             .help = "outbound limit passed: close 4000 (client recovers) or skip messages",
             .choices = {"disconnect", "drop"}},
            [](auto& o) -> auto& { return o.slow_consumer; })
        .add(
            {.key = "max_data_bytes", .kind = Kind::kSize, .help = "largest publication data"},
            [](auto& o) -> auto& { return o.max_data_bytes; })
        .add(
            {.key = "max_unacked",
             .kind = Kind::kUint,
             .help = "un-acked publications kept per session and channel (at_least_once)"},
            [](auto& o) -> auto& { return o.max_unacked; })
        .add(
            {.key = "session_ttl",
             .kind = Kind::kDuration,
             .help = "how long a disconnected session can be resumed"},
            [](auto& o) -> auto& { return o.session_ttl_ms; })
        .add(
            {.key = "idempotency_window",
             .kind = Kind::kDuration,
             .help = "how long a publish idempotency key is remembered"},
            [](auto& o) -> auto& { return o.idempotency_window_ms; })
        .add(
            {.key = "anonymous",
             .kind = Kind::kBool,
             .help = "clients without a token may use it (auth on; without auth everyone may)"},
            [](auto& o) -> auto& { return o.anonymous; })
        .add(
            {.key = "allow_subscribe",
             .kind = Kind::kEnum,
             .help = "who may subscribe: any client allowed here, authenticated ones, or those "
                     "whose token's \"channels\" claim matches",
             .choices = {"any", "authenticated", "claim"}},
            [](auto& o) -> auto& { return o.subscribe_access; })
        .add(
            {.key = "allow_publish",
             .kind = Kind::kEnum,
             .help = "who may publish (client_publish must be on)",
             .choices = {"any", "authenticated", "claim"}},
            [](auto& o) -> auto& { return o.publish_access; })
        .add(
            {.key = "allow_presence",
             .kind = Kind::kEnum,
             .help = "who may read presence",
             .choices = {"any", "authenticated", "claim"}},
            [](auto& o) -> auto& { return o.presence_access; })
        .add(
            {.key = "allow_history",
             .kind = Kind::kEnum,
             .help = "who may read history",
             .choices = {"any", "authenticated", "claim"}},
            [](auto& o) -> auto& { return o.history_access; })
        .add(
            {.key = "private",
             .kind = Kind::kBool,
             .help = "subscribing needs a per-channel subscribe token (JWT with a \"channel\" "
                     "claim) from the application backend"},
            [](auto& o) -> auto& { return o.private_channels; });
    return s;
}

// What the layers leave for the loader: values derived from others, and the messaging
// defaults normalize() fills in.
void finish(LoadedConfig* loaded) {
    ServeConfig& c = loaded->config;
    if (!loaded->sources.contains("websocket.idle_timeout")) {
        // A connection silent for ping interval + 10 s is closed.
        uint32_t ping = c.websocket.ping_interval_ms;
        constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
        c.websocket.idle_timeout_ms = ping == 0 ? 0 : (ping > kMax - 10'000 ? kMax : ping + 10'000);
    }
    if (c.messaging.namespaces.empty()) {
        // No [namespaces.*] table at all (e.g. `switchboard serve` with no arguments): a
        // built-in "chat" namespace, for the chat demo at `/` (web/). Any configured namespace
        // replaces it.
        messaging::NamespaceOptions chat;
        chat.presence = true;
        chat.join_leave = true;
        chat.history_size = 100;
        chat.history_ttl_ms = 3'600'000;  // 1 h
        c.messaging.namespaces.emplace("chat", chat);
        for (const char* key :
             {"namespaces.chat", "namespaces.chat.presence", "namespaces.chat.join_leave",
              "namespaces.chat.history_size", "namespaces.chat.history_ttl"}) {
            loaded->sources.emplace(key, "built-in: no namespace configured");
        }
    }
    c.messaging.normalize();
}

base::Result<std::string> readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return base::fail("cannot read config file '" + path + "': " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        return base::fail("cannot read config file '" + path + "': read error");
    }
    return ss.str();
}

}  // namespace

const config::Schema<ServeConfig>& serveSchema() {
    static const config::Schema<ServeConfig> kSchema = buildSchema();
    return kSchema;
}

std::string envName(std::string_view key) {
    return serveSchema().envName(key);
}

base::Result<LoadedConfig> loadConfig(int argc, char** argv, char** envp) {
    const auto& schema = serveSchema();
    auto cmd = schema.parseCommandLine(argc, argv);
    if (!cmd) {
        return base::unexpected(cmd.error());
    }
    LoadedConfig out;
    if (cmd->help) {
        out.help = true;
        return out;
    }
    out.config_path = cmd->config_path;
    if (!out.config_path.empty()) {
        auto text = readFile(out.config_path);
        if (!text) {
            return base::unexpected(text.error());
        }
        if (auto r = schema.applyToml(&out.config, &out.sources, *text, out.config_path); !r) {
            return base::unexpected(r.error());
        }
    }
    if (auto r = schema.applyEnv(&out.config, &out.sources, envp); !r) {
        return base::unexpected(r.error());
    }
    if (auto r = schema.applyFlags(&out.config, &out.sources, *cmd); !r) {
        return base::unexpected(r.error());
    }
    finish(&out);
    return out;
}

base::Result<LoadedConfig> loadText(std::string_view text, const std::string& origin) {
    LoadedConfig out;
    out.config_path = origin;
    if (auto r = serveSchema().applyToml(&out.config, &out.sources, text, origin); !r) {
        return base::unexpected(r.error());
    }
    finish(&out);
    return out;
}

std::string describe(const LoadedConfig& loaded) {
    const messaging::Options& m = loaded.config.messaging;
    std::string out = "# effective settings (later wins: default < " +
                      (loaded.config_path.empty() ? std::string("file") : loaded.config_path) +
                      " < SWITCHBOARD_* < flags)\n";
    out += serveSchema().describe(loaded.config, loaded.sources);
    size_t ws_max = m.effectiveMaxMessageSize();
    out += "# /ws max message size: " + config::formatSize(ws_max);
    if (m.max_message_size == 0) {
        size_t largest = messaging::NamespaceOptions{}.max_data_bytes;
        for (const auto& entry : m.namespaces) {
            largest = std::max(largest, entry.second.max_data_bytes);
        }
        out += " (derived: largest namespace max_data_bytes " + config::formatSize(largest) +
               " + " + config::formatSize(messaging::kEnvelopeAllowance) + ")";
    } else {
        out += " (messaging.max_message_size)";
    }
    // Secret settings print as "<set>"; credentials inside a URL (nats://user:pass@host) would
    // still show: they go too.
    return admin::redactUrlCredentials(out + "\n");
}

std::string helpText(std::string_view cmd) {
    std::string c(cmd);
    return "usage: switchboard " + c +
           " [--config FILE] [flags]\n\n"
           "Settings come from (later wins): defaults < --config FILE (TOML) < SWITCHBOARD_*\n"
           "environment variables < flags. Boolean flags take no value; --no-X turns X off.\n"
           "A flag's value may also follow '=' (--port=9000). SIGHUP reloads the settings marked\n"
           "\"applies on SIGHUP\"; the others need a restart.\n\n"
           "  --config FILE                a TOML config file (see docs/configuration.md)\n" +
           serveSchema().help();
}

void printHelp(std::string_view cmd) {
    std::fputs(helpText(cmd).c_str(), stdout);
}

std::vector<std::string> restartOnlyChanges(const LoadedConfig& running,
                                            const LoadedConfig& fresh) {
    return serveSchema().changed(running.config, fresh.config, Apply::kRestart);
}

}  // namespace sb::server
