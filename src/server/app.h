// The embeddable server: an App holds HTTP and WebSocket routes, listens on one port with one
// event loop per thread (SO_REUSEPORT), upgrades requests to WebSockets, and shuts down
// gracefully. `switchboard serve` is built on this same API.
//
//   sb::server::App app;
//   app.ws("/echo", {.behavior = {.on_message = [](auto& ws, auto op, auto data) {
//       ws.send(op, data); }}});
//   app.get("/healthz", [](const sb::http::Request&, std::string_view) {
//       return sb::server::HttpReply{.body = "ok"}; });
//   app.listen("0.0.0.0", 8080); app.run();
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "http/request.h"
#include "loop/event_loop.h"
#include "transport/event_stream.h"
#include "transport/websocket.h"
#include "ws/deflate.h"

namespace sb::server {

// What a route's upgrade check decided (WsRoute::on_upgrade).
struct UpgradeCheck {
    // 0: accept. Otherwise the refusal's HTTP status (401, 403, ...) with a JSON body
    // {"error": code, "message": message}; a 401 also carries "WWW-Authenticate: Bearer".
    uint16_t status = 0;
    std::string code;
    std::string message;
    // Accepted: set as the socket's data before on_open (which may take it over), e.g. the
    // verified credentials the request carried.
    std::unique_ptr<transport::SocketData> data;
};

struct WsRoute {
    // Subprotocols the route speaks, in preference order (the first one the client offers
    // wins). Empty: the handshake never selects one.
    std::vector<std::string> subprotocols;
    ws::DeflateServerPolicy deflate;
    transport::WebSocketBehavior behavior;
    // Optional, on the connection's loop thread: looks at a valid upgrade request (after the
    // RFC 6455 checks, before the 101) and accepts or refuses it, e.g. by its credentials.
    std::function<UpgradeCheck(const http::Request&)> on_upgrade;
    // Other protocols on the same path (/ws: native JSON or STOMP), chosen by the subprotocol
    // the handshake negotiated, which must also be listed in `subprotocols`: a connection that
    // negotiated one of these keys gets that variant's behavior and upgrade check instead of
    // the route's own.
    struct Variant {
        transport::WebSocketBehavior behavior;
        std::function<UpgradeCheck(const http::Request&)> on_upgrade;
    };
    std::map<std::string, Variant, std::less<>> variants;
};

struct HttpReply {
    uint16_t status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::string extra_headers;  // "Name: value\r\n" lines
};
// Runs on the loop thread of the connection; `body` is the whole request body (POST/PUT),
// valid during the call.
using HttpHandler = std::function<HttpReply(const http::Request&, std::string_view body)>;

// A reply that comes later: from another loop (a request about a connection that lives there)
// or after a wait (long-polling). Copyable; the first reply() wins, from any thread, and is
// written on the connection's loop. If the client has gone by then, the reply is dropped.
// Until it replies the connection reads no further request (pipelined ones wait); a handler
// that never replies gets a 504 after the route's timeout.
class HttpResponder {
public:
    struct State;
    HttpResponder() = default;
    explicit HttpResponder(std::shared_ptr<State> s) : s_(std::move(s)) {}
    // A responder whose reply goes to `sink` (called once, on the replying thread) instead of
    // a connection: a request that another node relayed here (server/session_relay.h).
    static HttpResponder to(std::function<void(HttpReply)> sink);
    void reply(HttpReply r) const;
    // The client is still there (loop thread of the connection only; a sink's: always).
    bool clientPresent() const;

private:
    std::shared_ptr<State> s_;
};
// Runs on the loop thread of the connection; `body` is valid during the call only.
using AsyncHttpHandler =
    std::function<void(const http::Request&, std::string_view body, HttpResponder)>;

// What a stream route's check decided (StreamRoute::on_request).
struct StreamAccept {
    // 0: accept. Otherwise the refusal's HTTP status with a JSON body {"error": code,
    // "message": message} and `extra_headers` ("Name: value\r\n" lines).
    uint16_t status = 0;
    std::string code;
    std::string message;
    std::string extra_headers;
    // Accepted: set as the stream's data before on_open.
    std::unique_ptr<transport::SocketData> data;
};

// A GET whose response stays open (Server-Sent Events): the head is written with
// `content_type`, no length, "Cache-Control: no-cache" and "Connection: close", then the
// socket becomes a transport::EventStream driven by `behavior`.
struct StreamRoute {
    std::string content_type = "text/event-stream";
    transport::EventStreamBehavior behavior;
    // On the loop thread: accept or refuse the request (credentials, parameters).
    std::function<StreamAccept(const http::Request&)> on_request;
};

// The most event loops a server runs: the messaging core addresses a loop in 6 bits of a
// client's serial (broker::kMaxLoops), and past a few dozen cores one process per NUMA node
// serves better anyway.
inline constexpr unsigned kMaxThreads = 64;

// TLS (wss://, https://) for every route: WebSocket, API, metrics, pages.
struct TlsOptions {
    // PEM certificate chain (leaf first) and its private key. Both set = TLS on; SIGHUP reads
    // them again (new connections get the new certificate, open ones keep theirs).
    std::string cert_file;
    std::string key_file;
    // 0: the main port speaks TLS only. Another port: a TLS listener there while the main port
    // stays plain (side by side, e.g. 8080 for a proxy on the same host and 8443 for the rest).
    uint16_t port = 0;
    // Session tickets: reconnecting clients resume without a full handshake (a reconnect storm
    // after a restart costs one round trip and no signature per client).
    bool session_tickets = true;
    // 80 random bytes keying the tickets (`openssl rand 80 > FILE`), shared by every node and
    // kept across restarts and reloads so a reconnect resumes anywhere; empty = a random key
    // per process and reload.
    std::string ticket_key_file;
    bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

struct ServerOptions {
    std::string host = "0.0.0.0";
    uint16_t port = 8080;
    // Event loops (threads); 0 = one per core, at most kMaxThreads either way.
    unsigned threads = 0;
    // Request heads above this are refused with 431 (slow or abusive clients).
    size_t max_head_bytes = 8192;
    // Request bodies (HTTP API) above this are refused with 413 before they are read.
    size_t max_body_bytes = 1 << 20;
    // A connection that has not completed its HTTP request / upgrade in this time is closed
    // (slowloris). Also the keep-alive idle limit of plain HTTP connections.
    uint32_t handshake_timeout_ms = 10'000;
    // Accepted connections over this are answered 503 and closed. The default stays under
    // the per-process open-file limit of a typical host (ulimit -n), with room for files.
    size_t max_connections = 1'000'000;
    // Per client IP; 0 = unlimited.
    size_t max_connections_per_ip = 0;
    // New connections per second from one client IP (token bucket, burst twice this); more are
    // answered 429 and closed before any parsing. 0 = unlimited. 500/s lets a NAT of
    // thousands of users reconnect within seconds after a restart while a single flooding
    // host gets no further than that.
    uint32_t connection_rate_per_ip = 500;
    // New sessions per second this node admits (WebSocket upgrades, SSE streams and
    // long-polling opens, from every client together; token bucket, burst one second's worth).
    // Over it a client gets a fast 503 with a jittered Retry-After before any session work
    // (resume, recovery, presence) is done, so a reconnect storm after a restart queues in the
    // clients' backoff instead of in the server. 0 = unlimited. See docs/benchmarks.md
    // (Reconnect storms) for the figures behind the default.
    uint32_t admission_rate = 0;
    // Graceful shutdown: each client is told to reconnect after a random delay in
    // [0, reconnect_spread_ms) (native `disconnect`'s reconnect_after_ms; Retry-After of
    // refusals), so N clients come back at about N per spread rather than all at once.
    uint32_t reconnect_spread_ms = 5'000;
    // Apply connection_rate_per_ip to loopback peers too. Off by default: a loopback peer is a
    // proxy or a tool on this host, and limiting it would throttle every user behind it.
    bool limit_loopback = false;
    // Load balancers / reverse proxies in front of the server (exact addresses). A connection
    // from one of them is not subject to the per-IP limits at accept (it speaks for many
    // clients); its requests' client address is taken from X-Forwarded-For (the rightmost
    // entry that is not itself a trusted proxy), used in logs and for connection_rate_per_ip
    // at the WebSocket upgrade. From anyone else X-Forwarded-For is ignored: any client can
    // send the header.
    std::vector<std::string> trusted_proxies;
    // Origins allowed to open WebSockets (exact match); empty = any (non-browser clients
    // send none). Set it in production to stop cross-site WebSocket hijacking.
    std::vector<std::string> allowed_origins;
    // SIGTERM: close every WebSocket with 1001, wait at most this long for them to finish.
    // Plain HTTP connections idle between requests are closed at once; one in the middle of a
    // request gets its response with "Connection: close" and is closed after it (a request
    // that never completes ends at handshake_timeout_ms with 408, as always).
    uint32_t shutdown_timeout_ms = 10'000;
    // Handle SIGTERM/SIGINT inside run() (off when the embedding app owns signals).
    bool handle_signals = true;
    // Printed once listening, for scripts and tests (port 0 resolves to the chosen port).
    bool print_listening = true;
    // Join other processes already listening on the port (SO_REUSEPORT across processes, e.g.
    // several servers past the per-process file limit). Off: a port another process listens
    // on is a startup error, because the kernel would silently split the traffic; this also
    // covers a wildcard listener when `host` is a specific address and the reverse (see
    // net::addressInUse). The loops of this App share the port either way.
    bool reuse_port = false;
    TlsOptions tls;
    // A Unix socket path (e.g. /run/switchboard/handover.sock) for restarts that refuse no
    // connection: a new server started with the same path takes this one's listening sockets
    // over (and the connections queued on them), then this one stops accepting and drains
    // (its clients are told to reconnect, and do, to the new one). Empty: off. The file is
    // the owner's only (0600) and the peer must be the same user.
    std::string handover_socket;
    // SO_SNDBUF of accepted sockets; 0 = the kernel's autotuning (up to net.ipv4.tcp_wmem's
    // maximum, 4 MiB on Debian). A cap bounds the kernel memory a stalled client can pin on
    // top of our own outbound limit, at the cost of throughput on long fat links.
    size_t send_buffer = 0;
    // Socket sends through io_uring, batched per loop iteration: a loop that writes to many
    // connections in one iteration (a fan-out) makes one system call for up to 1,024 sends
    // instead of one each (on a VM a call's entry and exit cost ~40% of a small loopback send;
    // docs/benchmarks.md). Off, or where the kernel refuses io_uring (a warning says so),
    // every send is a sendmsg() call.
    bool io_uring = true;
};

// TLS handshakes of an App since it started (see App::tlsCounts).
struct TlsCounts {
    uint64_t full = 0;     // completed with a full handshake
    uint64_t resumed = 0;  // completed by resuming a session (ticket or session id)
    uint64_t failed = 0;   // failed: bad records, unsupported versions, plain HTTP on a TLS port
};

// Connections refused at accept since the App started (see App::refusedCounts).
struct RefusedCounts {
    uint64_t max_connections = 0;  // server.max_connections reached
    uint64_t per_ip = 0;           // server.max_connections_per_ip reached
    uint64_t rate = 0;             // server.connection_rate_per_ip exceeded
    uint64_t admission = 0;        // server.admission_rate exceeded (upgrades and opens)
    uint64_t ping_floods = 0;      // WebSockets closed 1008 for too many pings (not at accept)
};

// WebSocket upgrades refused, by reason (see App::handshakeFailures): the label values of
// /metrics, a fixed set.
inline constexpr std::array<std::string_view, 12> kHandshakeFailureReasons = {
    "method_not_allowed", "bad_http_version", "not_upgrade", "missing_connection_upgrade",
    "missing_host",       "bad_key",          "bad_version", "forbidden_origin",
    "request_has_body",   "unauthorized",     "forbidden",   "shutting_down"};
using HandshakeFailures = std::array<uint64_t, kHandshakeFailureReasons.size()>;

// Open connections of an App (see App::connectionCounts).
struct ConnectionCounts {
    uint64_t websocket = 0;  // open WebSockets, every route
    uint64_t stream = 0;     // open streamed responses (Server-Sent Events), every route
    uint64_t http = 0;       // accepted, not upgraded: idle keep-alive ones included
};

class App {
public:
    explicit App(ServerOptions options = {});
    ~App();
    App(const App&) = delete;
    App& operator=(const App&) = delete;

    // Routes are registered before listen(); paths match exactly.
    App& ws(std::string path, WsRoute route);
    App& get(std::string path, HttpHandler handler);
    App& post(std::string path, HttpHandler handler);
    // Handlers that reply later (see HttpResponder); `timeout_ms`: a 504 if they have not.
    App& getAsync(std::string path, AsyncHttpHandler handler, uint32_t timeout_ms);
    App& postAsync(std::string path, AsyncHttpHandler handler, uint32_t timeout_ms);
    App& stream(std::string path, StreamRoute route);

    // Binds the listening sockets (one per loop). Startup error → message saying how to fix,
    // e.g. "127.0.0.1:8080 is already in use by another process (...)" when reuse_port is
    // off and something listens there. Port 0: the first loop picks a free port.
    base::Result<void> listen();
    uint16_t port() const { return port_; }
    // The port speaking TLS: port() when the main listener is TLS, tls.port when a separate
    // TLS listener is configured, 0 without TLS.
    uint16_t tlsPort() const { return tls_port_; }
    // Any thread: loads options.tls's certificate and key again (SIGHUP). New connections use
    // them; open ones keep the certificate they were accepted with. On error (unreadable file,
    // key not matching) nothing changes and the error says why. No-op without TLS.
    base::Result<void> reloadTls(const TlsOptions& tls);
    // Any thread: handshake counters summed over the loops.
    TlsCounts tlsCounts() const;
    RefusedCounts refusedCounts() const;
    // Any thread: refused WebSocket upgrades by kHandshakeFailureReasons (admission and rate
    // refusals are in refusedCounts).
    HandshakeFailures handshakeFailures() const;
    // Any thread: per event loop, the longest delay of its 100 ms probe timer over the last
    // 10 to 20 s (how late the loop ran what was due: a busy or blocked loop).
    std::vector<uint32_t> loopLagMs() const;
    // The event loops (valid after listen()); loop i has id() == i. For layers that keep
    // per-loop state (the messaging hub) and post work to a loop.
    size_t loopCount() const;
    loop::EventLoop& loopAt(size_t i);
    // Runs the loops until stop() or a signal; returns the process exit code.
    int run();
    // Any thread: graceful shutdown (stop accepting, close WebSockets with 1001 and idle HTTP
    // connections at once, let requests in progress finish, drain, stop).
    void stop();
    // Any thread, after listen() (also after run() returned): the connections open now,
    // summed over the loops. Each loop's figures are exact for that loop; the sum is not one
    // instant across loops. A WebSocket is counted from its upgrade until the end of the loop
    // iteration in which it closed.
    ConnectionCounts connectionCounts() const;
    // Any thread: one more session may open now (server.admission_rate; true when unlimited).
    // For adapters that open sessions outside the App's upgrade and stream paths (/poll).
    bool admitSession();
    // Any thread: a reconnect delay for one client, uniform in [0, reconnect_spread_ms).
    uint32_t reconnectDelayMs() const;
    // The 503 of a refused admission, with its jittered Retry-After.
    HttpReply admissionRefusal() const;
    // Called on the signal-waiting thread when SIGHUP arrives (handle_signals only).
    void onReload(std::function<void()> fn) { on_reload_ = std::move(fn); }
    // Before listen(): called on each loop's thread (with its index) when the graceful
    // shutdown begins there, after its WebSockets and streams were told; for layers that hold
    // requests open (long-polling) and must answer them now.
    App& onShutdown(std::function<void(uint32_t loop)> fn);

    struct Impl;

private:
    ServerOptions options_;
    std::unique_ptr<Impl> impl_;
    uint16_t port_ = 0;
    uint16_t tls_port_ = 0;
    std::function<void()> on_reload_;
};

}  // namespace sb::server
