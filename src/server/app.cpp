#include "server/app.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "base/log.h"
#include "http/request.h"
#include "loop/event_loop.h"
#include "net/handover.h"
#include "net/socket.h"
#include "net/stream_conn.h"
#include "net/tls.h"
#include "ws/handshake.h"

namespace sb::server {

namespace {

std::string jsonEscape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

// A JSON error answer. `close` says "Connection: close"; `head_only` leaves the body out
// (answers to HEAD) while Content-Length still states its size.
std::string errorResponse(uint16_t status, std::string_view code, std::string_view message,
                          bool close = true, std::string_view extra_headers = {},
                          bool head_only = false) {
    std::string body =
        "{\"error\":\"" + jsonEscape(code) + "\",\"message\":\"" + jsonEscape(message) + "\"}\n";
    return head_only ? http::makeResponseHead(status, "application/json", body.size(),
                                              extra_headers, close)
                     : http::makeResponse(status, "application/json", body, extra_headers, close);
}

// Counters written by one thread (their loop's) and read by any: a plain load and store
// instead of a locked read-modify-write.
void bump(std::atomic<uint64_t>& counter, int64_t delta) {
    counter.store(counter.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
                  std::memory_order_relaxed);
}

static_assert(static_cast<size_t>(ws::UpgradeError::kRequestHasBody) == 9 &&
                  kHandshakeFailureReasons[8] == "request_has_body",
              "kHandshakeFailureReasons follows ws::UpgradeError");

constexpr uint32_t kLingerMs = 2'000;  // after an error response, wait this long for the FIN
// Shutdown: how long a connection accepted but silent may still send its first request.
constexpr uint32_t kFreshGraceMs = 1'000;

// An address without its v4-mapped prefix ("::ffff:10.0.0.1" is "10.0.0.1").
std::string_view plainIp(std::string_view ip) {
    if (ip.starts_with("::ffff:") && ip.find('.') != std::string_view::npos) {
        ip.remove_prefix(7);
    }
    return ip;
}

bool isTrustedProxy(const std::vector<std::string>& proxies, std::string_view ip) {
    ip = plainIp(ip);
    return std::any_of(proxies.begin(), proxies.end(),
                       [&](const std::string& p) { return plainIp(p) == ip; });
}

// The client address a trusted proxy reports: X-Forwarded-For's rightmost entry that is not a
// trusted proxy itself (the ones to its left were written by the client and prove nothing).
// Empty when the header is absent or holds only proxies.
std::string forwardedFor(const http::Request& req, const std::vector<std::string>& proxies) {
    std::string_view xff = req.header("X-Forwarded-For");
    while (!xff.empty()) {
        const size_t comma = xff.rfind(',');
        std::string_view entry = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
        xff = comma == std::string_view::npos ? std::string_view() : xff.substr(0, comma);
        while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) {
            entry.remove_prefix(1);
        }
        while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) {
            entry.remove_suffix(1);
        }
        if (entry.empty() || entry.size() > 45) {  // 45: the longest textual IPv6 address
            return {};
        }
        if (!isTrustedProxy(proxies, entry)) {
            return std::string(entry);
        }
    }
    return {};
}

// 127.0.0.0/8 and ::1, also in their v4-mapped form.
bool isLoopback(std::string_view ip) {
    if (ip.starts_with("::ffff:")) {
        ip.remove_prefix(7);
    }
    return ip.starts_with("127.") || ip == "::1";
}

}  // namespace

struct LoopCtx;
class HttpConnection;

struct HttpResponder::State {
    HttpConnection* conn = nullptr;  // loop thread only; null once the connection is gone
    loop::EventLoop* loop = nullptr;
    bool last = false;
    bool head_only = false;
    std::atomic<bool> replied{false};
    std::function<void(HttpReply)> sink;  // HttpResponder::to: no connection
};

struct App::Impl {
    ServerOptions options;
    std::unordered_map<std::string, WsRoute> ws_routes;
    struct HttpRoute {
        HttpHandler get;
        HttpHandler post;
        AsyncHttpHandler get_async;
        AsyncHttpHandler post_async;
        uint32_t get_timeout_ms = 0;
        uint32_t post_timeout_ms = 0;
        std::string allow;  // the "Allow: ...\r\n" line of its 405s (RFC 9110 §15.5.6)
    };
    std::unordered_map<std::string, HttpRoute> http_routes;
    std::unordered_map<std::string, StreamRoute> stream_routes;
    std::vector<std::function<void(uint32_t)>> on_shutdown;
    std::atomic<size_t> connections{0};
    std::atomic<bool> stopping{false};
    // The current server TLS context (null without TLS). Loops keep their own reference for
    // new connections and are sent a new one on reload; sessions hold theirs for their life.
    std::mutex tls_mu;
    std::shared_ptr<net::TlsContext> tls_ctx;
    std::mutex ip_mu;
    // Open connections per client IP (only with max_connections_per_ip). Node-based map:
    // a connection keeps a pointer to its entry.
    std::unordered_map<std::string, size_t> per_ip;
    using IpEntry = std::unordered_map<std::string, size_t>::value_type;
    // New-connection token buckets per client IP (connection_rate_per_ip), guarded by ip_mu.
    struct Bucket {
        double tokens;
        uint64_t ms;
        uint64_t logged_s = 0;  // the second of the last refusal logged (one line a second)
    };
    std::unordered_map<std::string, Bucket> conn_rate;
    uint64_t rate_swept_ms = 0;
    std::atomic<uint64_t> refused_max{0};
    std::atomic<uint64_t> refused_ip{0};
    std::atomic<uint64_t> refused_rate{0};
    // The node's session admission bucket (server.admission_rate), guarded by admission_mu.
    std::mutex admission_mu;
    double admission_tokens = -1;  // -1: not started (full on first use)
    uint64_t admission_ms = 0;
    uint64_t admission_logged_s = 0;
    std::atomic<uint64_t> refused_admission{0};
    std::array<std::atomic<uint64_t>, kHandshakeFailureReasons.size()> handshake_failures{};
    void handshakeFailed(size_t reason) {
        handshake_failures[reason].fetch_add(1, std::memory_order_relaxed);
    }
    // server.handover_socket: where a successor asks for our listening sockets (-1: off), and
    // the inode of the socket file we created (so we remove only our own at exit).
    int handover_fd = -1;
    ino_t handover_ino = 0;
    // Last member: destroyed first, while the counters above its connections touch are alive.
    std::vector<std::unique_ptr<LoopCtx>> loops;

    // False when the IP is at its limit. *entry is the slot to release later (null if unlimited).
    bool admitIp(const std::string& ip, IpEntry** entry);
    // False when the IP opens connections faster than connection_rate_per_ip.
    bool admitRate(const std::string& ip);
    // The main thread, when a successor connected to the handover socket: hands it every
    // loop's listening sockets; once it confirms, the graceful shutdown begins.
    void serveHandover(App& app);
    // Closes the handover socket and removes its file unless a successor replaced it.
    void closeHandover();
    // False when the node admits sessions faster than admission_rate (counted and logged).
    bool admitSession();
    // The 503 of a refused admission: Retry-After jittered over the reconnect spread.
    std::string admissionRefusal(bool head_only = false) const;
    void releaseIp(IpEntry* entry);
};

// An accepted connection until it upgrades: reads one or more (pipelined) HTTP requests,
// answers plain routes, and hands the socket to a WebSocket on upgrade.
class HttpConnection final : public net::StreamConn, private loop::TimerNode {
public:
    HttpConnection(LoopCtx* ctx, int fd, std::string ip, App::Impl::IpEntry* ip_entry);
    ~HttpConnection() override;
    void start();
    // Server shutdown (loop thread): closes the connection now if it is between requests;
    // else process() closes it after the response to the request in progress.
    void endForShutdown();

    // Links of the loop's list of live HTTP connections (LoopCtx::http_head).
    HttpConnection* http_prev = nullptr;
    HttpConnection* http_next = nullptr;

protected:
    void onData(uint8_t* data, size_t len) override;
    void onEof() override { close(); }
    void onTlsHandshake(std::string_view error) override;

private:
    static void onTimer(loop::TimerNode* node);
    // Answers the complete requests in `data`, keeps a partial one. `resuming`: data starts
    // with the request that was buffered before (the one in progress, during a shutdown).
    void process(uint8_t* data, size_t len, bool resuming);
    void reject(const std::string& response);
    // After a response with "Connection: close": half-close, wait (bounded) for the FIN.
    void linger();
    bool upgrade(const http::Request& req, WsRoute& route, uint8_t* rest, size_t rest_len);
    // A long-lived connection (WebSocket, stream) from a client behind a trusted proxy, over
    // server.connection_rate_per_ip: answered 429. True if refused.
    bool refusedForwardedRate();
    void startStream(const http::Request& req, StreamRoute& route);

public:
    // An async handler's reply, on this loop (HttpResponder::reply).
    void finishAsync(HttpReply r);

private:
    LoopCtx* ctx_;
    // An async handler has the request and has not replied: input waits in buf_.
    std::shared_ptr<HttpResponder::State> awaiting_;
    std::string buf_;  // partial request head (only while incomplete)
    http::RequestParser parser_;
    std::string ip_;  // the TCP peer, or the client a trusted proxy forwards for
    App::Impl::IpEntry* ip_entry_;
    bool via_proxy_ = false;  // the TCP peer is a trusted proxy
    uint64_t skip_body_ = 0;
    bool lingering_ = false;
    bool upgraded_ = false;
    bool tls_counted_ = false;  // the TLS handshake's outcome went into the loop's counters
    // No request parsed yet. Accepted just before a shutdown (or a hand-over), such a
    // connection still gets an answer to its first request (an upgrade: 503 shutting_down),
    // so its client is told to reconnect instead of finding the connection reset.
    bool fresh_ = true;
};

// One listening socket of a loop: the main port, and the TLS port when it is separate. A loop
// has one of each, or several after a hand-over from a server that ran more loops.
struct Listener final : loop::Pollable {
    LoopCtx* ctx = nullptr;
    int fd = -1;
    bool tls = false;       // speaks TLS
    bool tls_port = false;  // the separate TLS port (tls.port), not the main one
    void onEvents(uint32_t) override;
};

// How long a loop's iterations take (from epoll_wait's return to the end of the iteration's
// work): an event that becomes ready meanwhile waits that long. The longest over a sliding
// window of 10 to 20 s, written by the loop and read by any thread (/metrics).
struct LoopLag {
    static constexpr uint64_t kWindowMs = 10'000;
    std::atomic<uint32_t> current{0};
    std::atomic<uint32_t> previous{0};
    uint64_t window_start_ms = 0;  // loop thread only

    void note(uint64_t started_ms, uint64_t now_ms) {
        if (now_ms - window_start_ms >= kWindowMs) {
            previous.store(now_ms - window_start_ms >= 2 * kWindowMs ? 0 : current.load(),
                           std::memory_order_relaxed);
            current.store(0, std::memory_order_relaxed);
            window_start_ms = now_ms;
        }
        const auto busy = static_cast<uint32_t>(now_ms - std::min(now_ms, started_ms));
        if (busy > current.load(std::memory_order_relaxed)) {
            current.store(busy, std::memory_order_relaxed);
        }
    }
    uint32_t maxMs() const {
        return std::max(current.load(std::memory_order_relaxed),
                        previous.load(std::memory_order_relaxed));
    }
};

struct LoopCtx final {
    App::Impl* app;
    // Before `loop`: these outlive the connections the loop frees in its destructor.
    transport::SocketList sockets;
    transport::StreamList streams;
    std::atomic<uint64_t> stream_open{0};
    HttpConnection* http_head = nullptr;  // live HTTP connections (not yet upgraded or freed)
    // Open plain-HTTP connections and WebSockets of this loop, for connectionCounts().
    std::atomic<uint64_t> http_open{0};
    std::atomic<uint64_t> ws_open{0};
    // beginShutdown ran: a request completing now gets the last response of its connection.
    bool shutting_down = false;
    // This loop's reference to the TLS context new connections use (loop thread only).
    std::shared_ptr<net::TlsContext> tls_ctx;
    // Handshake counters (written by this loop, read by any thread).
    std::atomic<uint64_t> tls_full{0};
    std::atomic<uint64_t> tls_resumed{0};
    std::atomic<uint64_t> tls_failed{0};
    loop::EventLoop loop;
    std::vector<std::unique_ptr<Listener>> listeners;  // stable addresses: registered with epoll
    LoopLag lag;
    std::thread thread;

    explicit LoopCtx(App::Impl* a) : app(a) {
        sockets.global_count = &a->connections;
        sockets.owner = this;
        sockets.on_remove = [](transport::SocketList* list, transport::WebSocket* ws) {
            auto* ctx = static_cast<LoopCtx*>(list->owner);
            bump(ctx->ws_open, -1);
            ctx->app->releaseIp(static_cast<App::Impl::IpEntry*>(ws->owner_tag));
        };
        streams.global_count = &a->connections;
        streams.owner = this;
        streams.on_remove = [](transport::StreamList* list, transport::EventStream* es) {
            auto* ctx = static_cast<LoopCtx*>(list->owner);
            bump(ctx->stream_open, -1);
            ctx->app->releaseIp(static_cast<App::Impl::IpEntry*>(es->owner_tag));
        };
    }
    ~LoopCtx() {
        for (auto& l : listeners) {
            if (l->fd >= 0) {
                ::close(l->fd);
            }
        }
    }

    void addListener(int fd, bool tls, bool tls_port) {
        auto l = std::make_unique<Listener>();
        l->ctx = this;
        l->fd = fd;
        l->tls = tls;
        l->tls_port = tls_port;
        listeners.push_back(std::move(l));
    }

    // A listening socket is readable: accept everything pending (edge-triggered).
    void acceptAll(const Listener& listener) {
        for (;;) {
            sockaddr_storage ss{};
            socklen_t sl = sizeof ss;
            int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&ss), &sl,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) {
                    continue;
                }
                if (errno == EMFILE || errno == ENFILE) {
                    SB_ERROR(
                        "accept: out of file descriptors (raise ulimit -n or lower "
                        "max_connections)");
                }
                return;
            }
            net::setNoDelay(fd);
            if (app->options.send_buffer > 0) {
                net::setSendBuffer(fd, app->options.send_buffer);
            }
            std::string ip = net::peerIp(ss);
            const bool proxy = isTrustedProxy(app->options.trusted_proxies, ip);
            if (!proxy && (app->options.limit_loopback || !isLoopback(ip)) && !app->admitRate(ip)) {
                // Answered before anything is allocated for it: a flood costs an accept and a
                // send. Logged by admitRate once per IP and second, not per connection. On a
                // TLS port plaintext would only be a TLS error to the client: just close.
                static const std::string kResp = errorResponse(
                    429, "connection_rate_limited",
                    "this client address opens connections too fast; retry in a second", true,
                    "Retry-After: 1\r\n");
                if (!listener.tls) {
                    ssize_t w = ::send(fd, kResp.data(), kResp.size(), MSG_NOSIGNAL);
                    (void)w;
                }
                ::close(fd);
                app->refused_rate.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            size_t n = app->connections.fetch_add(1, std::memory_order_relaxed) + 1;
            App::Impl::IpEntry* ip_entry = nullptr;
            if (n > app->options.max_connections || (!proxy && !app->admitIp(ip, &ip_entry))) {
                const bool global = n > app->options.max_connections;
                std::string resp = errorResponse(
                    503, global ? "too_many_connections" : "too_many_connections_from_ip",
                    global ? "the server is at its connection limit; retry later"
                           : "this client address has too many open connections");
                ssize_t w = ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
                (void)w;
                ::close(fd);
                app->connections.fetch_sub(1, std::memory_order_relaxed);
                (global ? app->refused_max : app->refused_ip)
                    .fetch_add(1, std::memory_order_relaxed);
                SB_WARN("refused connection from %s: %s", ip.c_str(),
                        global ? "max_connections reached" : "max_connections_per_ip reached");
                continue;
            }
            auto* conn = new HttpConnection(this, fd, std::move(ip), ip_entry);
            if (!conn->attach()) {
                // ENOSPC: fs.epoll.max_user_watches reached; ENOMEM. Rare, but never silent.
                SB_ERROR("accept: cannot watch a new connection (epoll_ctl: %s): closed",
                         std::strerror(errno));
                delete conn;
                continue;
            }
            if (listener.tls) {
                auto session = net::TlsSession::create(tls_ctx, {});
                if (!session) {
                    SB_ERROR("tls: %s", session.error().message.c_str());
                    conn->close();
                    continue;
                }
                conn->startTls(std::move(*session));
            }
            conn->start();
        }
    }

    // Stops accepting, starts the close handshake of every WebSocket of this loop and ends
    // its HTTP connections (idle ones now, busy ones after their current request).
    void beginShutdown() {
        shutting_down = true;
        for (auto& l : listeners) {
            if (l->fd >= 0) {
                loop.remove(l->fd);
                ::close(l->fd);  // a successor that took them over keeps them open
                l->fd = -1;
            }
        }
        for (transport::WebSocket* ws = sockets.head; ws != nullptr; ws = ws->list_next) {
            if (ws->behavior().on_shutdown) {
                ws->behavior().on_shutdown(*ws);
            }
            ws->end(ws::close_code::kGoingAway, "server shutting down; reconnect");
        }
        for (transport::EventStream* es = streams.head; es != nullptr; es = es->list_next) {
            if (es->behavior().on_shutdown) {
                es->behavior().on_shutdown(*es);
            }
            es->end("server shutting down");
        }
        for (const auto& fn : app->on_shutdown) {
            fn(loop.id());
        }
        // Closing frees nothing before the end of the iteration: the links stay valid.
        for (HttpConnection* c = http_head; c != nullptr; c = c->http_next) {
            c->endForShutdown();
        }
    }
};

void Listener::onEvents(uint32_t) {
    ctx->acceptAll(*this);
}

bool App::Impl::admitIp(const std::string& ip, IpEntry** entry) {
    *entry = nullptr;
    if (options.max_connections_per_ip == 0) {
        return true;
    }
    std::lock_guard lock(ip_mu);
    auto [it, inserted] = per_ip.try_emplace(ip, 0);
    if (it->second >= options.max_connections_per_ip) {
        return false;
    }
    ++it->second;
    *entry = &*it;
    return true;
}

bool App::Impl::admitRate(const std::string& ip) {
    const double rate = options.connection_rate_per_ip;
    if (rate == 0) {
        return true;
    }
    const uint64_t now = loop::EventLoop::monotonicMs();
    std::lock_guard lock(ip_mu);
    // Buckets that refilled are the same as absent: drop them now and then, so the map holds
    // only addresses active in the last seconds (bounded by the accept rate).
    if (now - rate_swept_ms > 10'000) {
        rate_swept_ms = now;
        std::erase_if(conn_rate, [&](const auto& e) {
            return e.second.tokens + static_cast<double>(now - e.second.ms) * rate / 1000.0 >=
                   2 * rate;
        });
    }
    auto it = conn_rate.try_emplace(ip, Bucket{2 * rate, now}).first;
    Bucket& b = it->second;
    b.tokens = std::min(2 * rate, b.tokens + static_cast<double>(now - b.ms) * rate / 1000.0);
    b.ms = now;
    if (b.tokens < 1.0) {
        // One line per address and second however hard it floods (the counter has the rest).
        if (now / 1000 != b.logged_s) {
            b.logged_s = now / 1000;
            SB_WARN(
                "refused connections from %s: more than %u new connections/s "
                "(server.connection_rate_per_ip)",
                ip.c_str(), options.connection_rate_per_ip);
        }
        return false;
    }
    b.tokens -= 1.0;
    return true;
}

void App::Impl::serveHandover(App& app) {
    std::vector<int> main_fds, tls_fds;
    for (auto& ctx : loops) {
        // Read from the main thread: the fds change only in beginShutdown, which has not run
        // (stopping is false, and it is set only here and by stop() on this same thread).
        for (auto& l : ctx->listeners) {
            (l->tls_port ? tls_fds : main_fds).push_back(l->fd);
        }
    }
    std::string who;
    if (!net::serveHandover(handover_fd, main_fds, tls_fds, 10'000, &who)) {
        SB_WARN("handover: %s", who.c_str());
        return;
    }
    SB_INFO("handover: %s took over the listening sockets: draining (clients reconnect to it)",
            who.c_str());
    closeHandover();
    app.stop();
}

void App::Impl::closeHandover() {
    if (handover_fd < 0) {
        return;
    }
    ::close(handover_fd);
    handover_fd = -1;
    struct stat st {};
    if (::stat(options.handover_socket.c_str(), &st) == 0 && st.st_ino == handover_ino) {
        ::unlink(options.handover_socket.c_str());
    }
}

bool App::Impl::admitSession() {
    const double rate = options.admission_rate;
    if (rate == 0) {
        return true;
    }
    const uint64_t now = loop::EventLoop::monotonicMs();
    std::lock_guard lock(admission_mu);
    if (admission_tokens < 0) {
        admission_tokens = rate;
        admission_ms = now;
    }
    admission_tokens =
        std::min(rate, admission_tokens + static_cast<double>(now - admission_ms) * rate / 1000.0);
    admission_ms = now;
    if (admission_tokens < 1.0) {
        refused_admission.fetch_add(1, std::memory_order_relaxed);
        if (now / 1000 != admission_logged_s) {
            admission_logged_s = now / 1000;
            SB_WARN(
                "admission: refusing new sessions over %u/s (server.admission_rate): clients "
                "are told to retry later (503 with Retry-After)",
                options.admission_rate);
        }
        return false;
    }
    admission_tokens -= 1.0;
    return true;
}

namespace {

uint32_t jitteredDelayMs(uint32_t spread_ms) {
    if (spread_ms == 0) {
        return 0;
    }
    thread_local std::minstd_rand rng{std::random_device{}()};
    return static_cast<uint32_t>(rng() % spread_ms);
}

// Retry-After of a refused admission: whole seconds (RFC 9110 §10.2.3), at least 1, spread
// like the shutdown's delays so that the refused clients do not all come back in one second.
uint32_t retryAfterS(uint32_t spread_ms) {
    return 1 + jitteredDelayMs(spread_ms + 1000) / 1000;
}

std::string admissionMessage(uint32_t after_s) {
    return "the server is admitting new connections at its limit (server.admission_rate); "
           "retry in " +
           std::to_string(after_s) + " s";
}

}  // namespace

std::string App::Impl::admissionRefusal(bool head_only) const {
    const uint32_t after_s = retryAfterS(options.reconnect_spread_ms);
    return errorResponse(503, "overloaded", admissionMessage(after_s), true,
                         "Retry-After: " + std::to_string(after_s) + "\r\n", head_only);
}

void App::Impl::releaseIp(IpEntry* entry) {
    if (entry == nullptr) {
        return;
    }
    std::lock_guard lock(ip_mu);
    if (--entry->second == 0) {
        per_ip.erase(entry->first);
    }
}

HttpConnection::HttpConnection(LoopCtx* ctx, int fd, std::string ip, App::Impl::IpEntry* ip_entry)
    : net::StreamConn(&ctx->loop, fd),
      ctx_(ctx),
      parser_(http::ParserLimits{.max_head_bytes = ctx->app->options.max_head_bytes}),
      ip_(std::move(ip)),
      ip_entry_(ip_entry),
      via_proxy_(isTrustedProxy(ctx->app->options.trusted_proxies, ip_)) {
    TimerNode::fire = &HttpConnection::onTimer;
    http_next = ctx->http_head;
    if (http_next != nullptr) {
        http_next->http_prev = this;
    }
    ctx->http_head = this;
    bump(ctx->http_open, 1);
}

HttpConnection::~HttpConnection() {
    loop()->timers().cancel(this);
    if (awaiting_) {
        awaiting_->conn = nullptr;  // a late reply finds nobody
    }
    if (http_prev != nullptr) {
        http_prev->http_next = http_next;
    } else {
        ctx_->http_head = http_next;
    }
    if (http_next != nullptr) {
        http_next->http_prev = http_prev;
    }
    if (isTls() && !tls_counted_) {
        // Ended during the handshake without an error from OpenSSL: the peer closed (a client
        // that does not trust the certificate may just hang up) or the handshake timed out.
        bump(ctx_->tls_failed, 1);
    }
    if (!upgraded_) {  // else the WebSocket holds both slots (released by the SocketList)
        bump(ctx_->http_open, -1);
        ctx_->app->connections.fetch_sub(1, std::memory_order_relaxed);
        ctx_->app->releaseIp(ip_entry_);
    }
}

void HttpConnection::start() {
    loop()->timers().schedule(this, ctx_->app->options.handshake_timeout_ms);
}

void HttpConnection::onTimer(loop::TimerNode* node) {
    auto* self = static_cast<HttpConnection*>(node);
    if (self->isClosed()) {
        return;
    }
    if (self->awaiting_ && !self->lingering_) {
        // The route's handler did not reply in time.
        self->awaiting_->replied.store(true, std::memory_order_relaxed);
        self->finishAsync(HttpReply{.status = 504,
                                    .content_type = "application/json",
                                    .body = "{\"error\":\"timeout\",\"message\":\"no reply in "
                                            "time; retry\"}\n"});
        return;
    }
    if (!self->lingering_ && !self->buf_.empty()) {
        SB_INFO("http: %s did not complete its request within %u ms: closing", self->ip_.c_str(),
                self->ctx_->app->options.handshake_timeout_ms);
        std::string r =
            errorResponse(408, "request_timeout", "the request was not completed in time");
        self->write(r.data(), r.size());
        self->uncork();
    }
    self->close();
}

void HttpConnection::onTlsHandshake(std::string_view error) {
    tls_counted_ = true;
    if (error.empty()) {
        bump(tlsResumed() ? ctx_->tls_resumed : ctx_->tls_full, 1);
        return;
    }
    bump(ctx_->tls_failed, 1);
    // Debug level: scanners and plain-HTTP clients on a TLS port fail handshakes all day, and
    // a line each would let anyone fill the log. The counter (/metrics) shows the rate.
    SB_DEBUG("tls: handshake with %s failed: %.*s", ip_.c_str(), static_cast<int>(error.size()),
             error.data());
    close();
}

void HttpConnection::reject(const std::string& response) {
    write(response.data(), response.size());
    buf_.clear();
    buf_.shrink_to_fit();
    linger();
}

void HttpConnection::linger() {
    lingering_ = true;
    shutdownWrite();
    loop()->timers().schedule(this, kLingerMs);
}

void HttpConnection::endForShutdown() {
    if (isClosed() || upgraded_ || lingering_) {
        return;  // gone, a WebSocket now, or already on its way out
    }
    if (!buf_.empty() || skip_body_ > 0 || awaiting_) {
        return;  // mid-request: its response goes with "Connection: close", then it ends
    }
    if (fresh_) {
        // Its first request is still to come: answered, then it ends (see fresh_). A second at
        // most: a socket a browser opened speculatively must not hold the exit for long.
        loop()->timers().cancel(this);
        loop()->timers().schedule(
            this, std::min<uint32_t>(kFreshGraceMs, ctx_->app->options.handshake_timeout_ms));
        return;
    }
    // Between requests. The last response may still sit in the loop's cork (this runs as a
    // posted task, before the end-of-iteration flush) or in the backlog: send it first.
    uncork();
    if (backlogBytes() > 0) {
        linger();  // the FIN follows the last byte
        return;
    }
    // A request the peer sent just now and we have not read yet is lost (the kernel answers it
    // with a reset): the keep-alive race every server has at an idle close; clients retry.
    close();
}

void HttpConnection::onData(uint8_t* data, size_t len) {
    if (lingering_) {
        return;  // discard until the peer closes
    }
    if (awaiting_) {
        // A request pipelined behind one still being answered: kept for later, bounded.
        const auto& o = ctx_->app->options;
        if (buf_.size() + len > o.max_head_bytes + o.max_body_bytes) {
            close();
            return;
        }
        buf_.append(reinterpret_cast<const char*>(data), len);
        return;
    }
    if (buf_.empty()) {
        process(data, len, false);
    } else {
        buf_.append(reinterpret_cast<const char*>(data), len);
        std::string pending;
        pending.swap(buf_);
        process(reinterpret_cast<uint8_t*>(pending.data()), pending.size(), true);
    }
    if (ctx_->shutting_down) {
        // The request that was in progress at shutdown may have been one whose body we were
        // only discarding (its response already left): end once it is all read.
        endForShutdown();
    }
}

void HttpConnection::process(uint8_t* data, size_t len, bool resuming) {
    App::Impl* app = ctx_->app;
    while (len > 0 && !isClosed() && !lingering_) {
        if (skip_body_ > 0) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(skip_body_, len));
            skip_body_ -= n;
            data += n;
            len -= n;
            continue;
        }
        if (ctx_->shutting_down && !resuming && !fresh_) {
            return;  // a request begun after the shutdown: not served (onData ends us)
        }
        resuming = false;
        http::Request req;
        std::string_view view(reinterpret_cast<const char*>(data), len);
        http::ParseStatus st = parser_.parse(view, &req);
        if (st == http::ParseStatus::kNeedMore) {
            buf_.assign(view);  // keep the partial head (bounded by max_head_bytes)
            return;
        }
        if (st == http::ParseStatus::kError) {
            http::HttpError e = parser_.error();
            SB_INFO("http: bad request from %s: %.*s", ip_.c_str(),
                    static_cast<int>(http::describe(e).size()), http::describe(e).data());
            reject(errorResponse(http::statusFor(e), "bad_request", http::describe(e)));
            return;
        }
        parser_.reset();
        fresh_ = false;
        const size_t head = req.head_size;
        if (via_proxy_) {
            if (std::string client = forwardedFor(req, app->options.trusted_proxies);
                !client.empty()) {
                ip_ = std::move(client);
            }
        }
        if (auto it = app->ws_routes.find(std::string(req.path)); it != app->ws_routes.end()) {
            upgrade(req, it->second, data + head, len - head);
            return;
        }
        if (auto it = app->stream_routes.find(std::string(req.path));
            it != app->stream_routes.end() && req.method == "GET") {
            startStream(req, it->second);
            return;
        }
        std::string response;
        std::string_view body;
        auto it = app->http_routes.find(std::string(req.path));
        const HttpHandler* handler = nullptr;
        const AsyncHttpHandler* async = nullptr;
        if (it != app->http_routes.end()) {
            if (req.method == "GET" || req.method == "HEAD") {
                handler = it->second.get ? &it->second.get : nullptr;
                async = it->second.get_async ? &it->second.get_async : nullptr;
            } else if (req.method == "POST") {
                handler = it->second.post ? &it->second.post : nullptr;
                async = it->second.post_async ? &it->second.post_async : nullptr;
            }
        }
        if ((handler != nullptr || async != nullptr) && req.has_body && req.content_length > 0) {
            if (req.content_length > app->options.max_body_bytes) {
                reject(errorResponse(413, "body_too_large",
                                     "request bodies are limited to " +
                                         std::to_string(app->options.max_body_bytes) + " bytes"));
                return;
            }
            if (len - head < req.content_length) {
                // Body incomplete: keep the whole request and parse it again when more arrives
                // (bounded by max_head_bytes + max_body_bytes).
                buf_.assign(view);
                return;
            }
            body = view.substr(head, req.content_length);
        } else {
            skip_body_ = req.has_body ? req.content_length : 0;  // a body nobody reads
        }
        // During shutdown the request in progress is the connection's last.
        const bool last = !req.keep_alive || ctx_->shutting_down;
        const bool head_only = req.method == "HEAD";
        if (async != nullptr) {
            // Nothing more is read until the reply: what follows waits in buf_.
            const size_t consumed = head + body.size();
            auto state = std::make_shared<HttpResponder::State>();
            state->conn = this;
            state->loop = loop();
            state->last = last;
            state->head_only = head_only;
            awaiting_ = state;
            loop()->timers().schedule(this, async == &it->second.post_async
                                                ? it->second.post_timeout_ms
                                                : it->second.get_timeout_ms);
            std::string rest(view.substr(consumed));
            (*async)(req, body, HttpResponder(state));
            if (awaiting_ == state) {
                buf_ = std::move(rest);
            }
            return;
        }
        if (handler != nullptr) {
            HttpReply r = (*handler)(req, body);
            response = head_only ? http::makeResponseHead(r.status, r.content_type, r.body.size(),
                                                          r.extra_headers, last)
                                 : http::makeResponse(r.status, r.content_type, r.body,
                                                      r.extra_headers, last);
        } else if (it != app->http_routes.end()) {
            response = errorResponse(
                405, "method_not_allowed",
                std::string(req.method) + " is not supported on " + std::string(req.path), last,
                it->second.allow, head_only);
        } else {
            response = errorResponse(404, "not_found", "no route for " + std::string(req.path),
                                     last, {}, head_only);
        }
        const size_t consumed = head + body.size();
        write(response.data(), response.size());
        if (last) {
            linger();
            return;
        }
        loop()->timers().schedule(this, app->options.handshake_timeout_ms);
        data += consumed;
        len -= consumed;
    }
}

bool HttpConnection::refusedForwardedRate() {
    App::Impl* app = ctx_->app;
    // Behind a trusted proxy the per-IP rate applies here, to the forwarded client address
    // (at accept every connection came from the proxy).
    if (via_proxy_ && !isTrustedProxy(app->options.trusted_proxies, ip_) &&
        (app->options.limit_loopback || !isLoopback(ip_)) && !app->admitRate(ip_)) {
        app->refused_rate.fetch_add(1, std::memory_order_relaxed);
        reject(errorResponse(429, "connection_rate_limited",
                             "this client address opens connections too fast; retry in a second",
                             true, "Retry-After: 1\r\n"));
        return true;
    }
    return false;
}

bool HttpConnection::upgrade(const http::Request& req, WsRoute& route, uint8_t* rest,
                             size_t rest_len) {
    App::Impl* app = ctx_->app;
    if (refusedForwardedRate()) {
        return false;
    }
    if (!app->stopping.load(std::memory_order_relaxed) && !app->admitSession()) {
        reject(app->admissionRefusal());
        return false;
    }
    ws::UpgradePolicy policy{.subprotocols = route.subprotocols,
                             .allowed_origins = app->options.allowed_origins,
                             .deflate = route.deflate};
    ws::UpgradeDecision d = ws::evaluateUpgrade(req, policy);
    if (d.error != ws::UpgradeError::kNone || app->stopping.load(std::memory_order_relaxed)) {
        if (d.error == ws::UpgradeError::kNone) {
            app->handshakeFailed(kHandshakeFailureReasons.size() - 1);
            reject(errorResponse(503, "shutting_down", "the server is shutting down; reconnect"));
            return false;
        }
        // kHandshakeFailureReasons lists the UpgradeError values in order, from index 0.
        app->handshakeFailed(static_cast<size_t>(d.error) - 1);
        SB_INFO("websocket: handshake from %s refused (%u): %.*s", ip_.c_str(),
                ws::statusFor(d.error), static_cast<int>(ws::describe(d.error).size()),
                ws::describe(d.error).data());
        reject(ws::buildRejection(d.error));
        return false;
    }
    // The negotiated subprotocol may pick another protocol's adapter on this path.
    const auto variant = route.variants.find(d.subprotocol);
    const bool own = variant == route.variants.end();
    const auto& on_upgrade = own ? route.on_upgrade : variant->second.on_upgrade;
    const transport::WebSocketBehavior* behavior =
        own ? &route.behavior : &variant->second.behavior;
    UpgradeCheck check;
    if (on_upgrade) {
        check = on_upgrade(req);
        if (check.status != 0) {
            app->handshakeFailed(check.status == 403 ? 10 : 9);  // forbidden, unauthorized
            SB_INFO("websocket: handshake from %s refused (%u): %s", ip_.c_str(), check.status,
                    check.message.c_str());
            reject(errorResponse(check.status, check.code, check.message, true,
                                 check.status == 401 ? "WWW-Authenticate: Bearer\r\n" : ""));
            return false;
        }
    }
    char resp[1024];
    size_t n = ws::write101(d, resp, sizeof resp);
    if (n == 0) {  // cannot happen with our bounded header values; never send a partial 101
        reject(errorResponse(500, "internal", "handshake response too large"));
        return false;
    }
    write(resp, n);
    auto* sock = new transport::WebSocket(loop(), -1, behavior, ws::Role::kServer, d.deflate);
    upgraded_ = true;  // the connection slot moves to the WebSocket
    bump(ctx_->http_open, -1);
    bump(ctx_->ws_open, 1);
    sock->adoptFrom(this);
    sock->owner_tag = ip_entry_;
    if (check.data) {
        sock->setData(std::move(check.data));
    }
    ctx_->sockets.add(sock);
    sock->start();
    if (rest_len > 0 && !sock->isClosed()) {
        sock->receive(rest, rest_len);
    }
    return true;
}

void HttpConnection::startStream(const http::Request& req, StreamRoute& route) {
    App::Impl* app = ctx_->app;
    if (refusedForwardedRate()) {
        return;
    }
    if (app->stopping.load(std::memory_order_relaxed)) {
        reject(errorResponse(503, "shutting_down", "the server is shutting down; reconnect"));
        return;
    }
    if (!app->admitSession()) {
        reject(app->admissionRefusal());
        return;
    }
    StreamAccept check;
    if (route.on_request) {
        check = route.on_request(req);
        if (check.status != 0) {
            SB_INFO("stream %.*s from %s refused (%u): %s", static_cast<int>(req.path.size()),
                    req.path.data(), ip_.c_str(), check.status, check.message.c_str());
            reject(
                errorResponse(check.status, check.code, check.message, true, check.extra_headers));
            return;
        }
    }
    // No length and "Connection: close": the body is the stream, ended by closing.
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: " + route.content_type +
                       "\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n" +
                       check.extra_headers + "Connection: close\r\n\r\n";
    write(head.data(), head.size());
    auto* es = new transport::EventStream(loop(), &route.behavior);
    upgraded_ = true;  // the connection slot moves to the stream
    bump(ctx_->http_open, -1);
    bump(ctx_->stream_open, 1);
    es->adoptFrom(this);
    es->owner_tag = ip_entry_;
    if (check.data) {
        es->setData(std::move(check.data));
    }
    ctx_->streams.add(es);
    es->start();
}

void HttpConnection::finishAsync(HttpReply r) {
    std::shared_ptr<HttpResponder::State> state = std::move(awaiting_);  // leaves it null
    if (isClosed() || lingering_ || !state) {
        return;
    }
    const bool last = state->last || ctx_->shutting_down;
    const std::string response =
        state->head_only
            ? http::makeResponseHead(r.status, r.content_type, r.body.size(), r.extra_headers, last)
            : http::makeResponse(r.status, r.content_type, r.body, r.extra_headers, last);
    write(response.data(), response.size());
    if (last) {
        linger();
        return;
    }
    loop()->timers().cancel(this);
    loop()->timers().schedule(this, ctx_->app->options.handshake_timeout_ms);
    if (!buf_.empty()) {
        std::string pending;
        pending.swap(buf_);
        process(reinterpret_cast<uint8_t*>(pending.data()), pending.size(), false);
    }
}

HttpResponder HttpResponder::to(std::function<void(HttpReply)> sink) {
    auto s = std::make_shared<State>();
    s->sink = std::move(sink);
    return HttpResponder(std::move(s));
}

void HttpResponder::reply(HttpReply r) const {
    if (!s_ || s_->replied.exchange(true)) {
        return;
    }
    if (s_->sink) {
        s_->sink(std::move(r));
        return;
    }
    auto s = s_;
    s->loop->post([s, r = std::move(r)]() mutable {
        if (s->conn != nullptr) {
            s->conn->finishAsync(std::move(r));
        }
    });
}

bool HttpResponder::clientPresent() const {
    return s_ && (s_->conn != nullptr || s_->sink);
}

App::App(ServerOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
    impl_->options = options_;
}

App::~App() = default;

App& App::ws(std::string path, WsRoute route) {
    impl_->ws_routes.emplace(std::move(path), std::move(route));
    return *this;
}

namespace {

// The "Allow" line of a route's 405s; a GET route answers HEAD too (RFC 9110 §9.3.2).
std::string allowHeader(const App::Impl::HttpRoute& r) {
    const bool get = r.get || r.get_async;
    const bool post = r.post || r.post_async;
    const char* methods = get && post ? "GET, HEAD, POST" : get ? "GET, HEAD" : "POST";
    return std::string("Allow: ") + methods + "\r\n";
}

}  // namespace

App& App::get(std::string path, HttpHandler handler) {
    Impl::HttpRoute& r = impl_->http_routes[std::move(path)];
    r.get = std::move(handler);
    r.allow = allowHeader(r);
    return *this;
}

App& App::post(std::string path, HttpHandler handler) {
    Impl::HttpRoute& r = impl_->http_routes[std::move(path)];
    r.post = std::move(handler);
    r.allow = allowHeader(r);
    return *this;
}

App& App::getAsync(std::string path, AsyncHttpHandler handler, uint32_t timeout_ms) {
    Impl::HttpRoute& r = impl_->http_routes[std::move(path)];
    r.get_async = std::move(handler);
    r.get_timeout_ms = timeout_ms;
    r.allow = allowHeader(r);
    return *this;
}

App& App::postAsync(std::string path, AsyncHttpHandler handler, uint32_t timeout_ms) {
    Impl::HttpRoute& r = impl_->http_routes[std::move(path)];
    r.post_async = std::move(handler);
    r.post_timeout_ms = timeout_ms;
    r.allow = allowHeader(r);
    return *this;
}

App& App::onShutdown(std::function<void(uint32_t)> fn) {
    impl_->on_shutdown.push_back(std::move(fn));
    return *this;
}

App& App::stream(std::string path, StreamRoute route) {
    impl_->stream_routes.emplace(std::move(path), std::move(route));
    return *this;
}

namespace {

// Fixes the port of `ep` (port 0 resolved by the first bind).
void setPort(net::Endpoint* ep, uint16_t port) {
    if (ep->addr.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&ep->addr)->sin_port = htons(port);
    } else {
        reinterpret_cast<sockaddr_in6*>(&ep->addr)->sin6_port = htons(port);
    }
}

// Our sockets carry SO_REUSEPORT so that our own loops share the port; the same flag would let
// them join another process's listeners, the kernel splitting the traffic without a word.
// Unless that is asked for, make sure nobody listens there first. (A listener that starts
// between this check and our binds still slips through.)
base::Result<void> checkFree(const net::Endpoint& ep, bool reuse_port, const char* flag) {
    if (reuse_port) {
        return {};
    }
    auto busy = net::addressInUse(ep);
    if (!busy) {
        return base::unexpected(busy.error());
    }
    if (*busy) {
        return base::fail(ep.toString() + " is already in use by another process (stop it, pick " +
                          "another " + flag +
                          ", or pass --reuse-port to share the port on purpose)");
    }
    return {};
}

base::Result<std::shared_ptr<net::TlsContext>> loadTls(const TlsOptions& tls) {
    if (tls.cert_file.empty() || tls.key_file.empty()) {
        return base::fail(
            "TLS needs both tls.cert_file and tls.key_file (a PEM certificate chain and its "
            "private key)");
    }
    net::TlsConfig config{.role = net::TlsRole::kServer,
                          .cert_file = tls.cert_file,
                          .key_file = tls.key_file,
                          .session_tickets = tls.session_tickets,
                          .ticket_key_file = tls.ticket_key_file};
    auto ctx = net::TlsContext::create(config);
    if (!ctx) {
        return base::fail("TLS: " + ctx.error().message);
    }
    return *ctx;
}

}  // namespace

base::Result<void> App::listen() {
    unsigned n = options_.threads;
    if (n == 0) {
        n = std::max(1u, std::thread::hardware_concurrency());
    }
    n = std::min(n, kMaxThreads);  // the config schema refuses more; one per core stops here
    const TlsOptions& tls = options_.tls;
    if (tls.enabled()) {
        auto ctx = loadTls(tls);
        if (!ctx) {
            return base::unexpected(ctx.error());
        }
        impl_->tls_ctx = *ctx;
    }
    // A separate TLS listener: tls.port set and not the main port.
    const bool split = tls.enabled() && tls.port != 0 && tls.port != options_.port;
    auto ep = net::resolve(options_.host, options_.port);
    if (!ep) {
        return base::unexpected(ep.error());
    }
    // A server running with the same handover socket gives us its listening sockets (and the
    // connections queued on them) instead of us binding: see net/handover.h.
    std::optional<net::HandedSockets> handed;
    if (!options_.handover_socket.empty()) {
        auto h = net::requestHandover(options_.handover_socket, 10'000);
        if (!h) {
            return base::fail(h.error().message + " (server.handover_socket)");
        }
        handed = std::move(*h);
        if (handed && split == handed->tls.empty()) {
            net::acceptHandover(&*handed);  // never sent: close it (the old one keeps serving)
            return base::fail("the running server at " + options_.handover_socket +
                              (split ? " has no separate TLS port and this one has tls.port set"
                                     : " has a separate TLS port and this one has none") +
                              ": give both the same [tls] port settings");
        }
    }
    if (!handed) {
        if (auto r = checkFree(*ep, options_.reuse_port, "--port"); !r) {
            return r;
        }
    }
    net::Endpoint tls_ep;
    if (split) {
        auto e = net::resolve(options_.host, tls.port);
        if (!e) {
            return base::unexpected(e.error());
        }
        tls_ep = *e;
        if (!handed) {
            if (auto r = checkFree(tls_ep, options_.reuse_port, "tls.port"); !r) {
                return r;
            }
        }
    }
    if (handed) {
        // The port is the one the sockets listen on (the configured one may be 0).
        auto local = net::localEndpoint(handed->main.front());
        if (!local) {
            return base::unexpected(local.error());
        }
        setPort(&*ep, local->port());
        if (split) {
            auto tlocal = net::localEndpoint(handed->tls.front());
            if (tlocal) {
                setPort(&tls_ep, tlocal->port());
            }
        }
    }
    // Loop i takes the handed sockets i, i+n, …; a loop left without one binds its own into
    // the same SO_REUSEPORT group, so every loop accepts and no handed socket is orphaned.
    auto sockets_for = [&](unsigned i, const std::vector<int>* handed_fds, const net::Endpoint& e,
                           std::vector<int>* out) -> base::Result<void> {
        if (handed_fds != nullptr) {
            for (size_t k = i; k < handed_fds->size(); k += n) {
                out->push_back((*handed_fds)[k]);
            }
        }
        if (out->empty()) {
            auto fd = net::listenOn(e);
            if (!fd) {
                return base::unexpected(fd.error());
            }
            out->push_back(*fd);
        }
        return {};
    };
    for (unsigned i = 0; i < n; ++i) {
        auto ctx = std::make_unique<LoopCtx>(impl_.get());
        ctx->loop.setId(i);
        ctx->tls_ctx = impl_->tls_ctx;
        // Port 0: the first loop picks a free port, the others join it.
        std::vector<int> main_fds;
        if (auto r = sockets_for(i, handed ? &handed->main : nullptr, *ep, &main_fds); !r) {
            return r;
        }
        for (int fd : main_fds) {
            ctx->addListener(fd, tls.enabled() && !split, false);
        }
        if (i == 0) {
            auto local = net::localEndpoint(main_fds.front());
            if (!local) {
                return base::unexpected(local.error());
            }
            port_ = local->port();
            setPort(&*ep, port_);
        }
        if (split) {
            std::vector<int> tls_fds;
            if (auto r = sockets_for(i, handed ? &handed->tls : nullptr, tls_ep, &tls_fds); !r) {
                return r;
            }
            for (int fd : tls_fds) {
                ctx->addListener(fd, true, true);
            }
        }
        for (auto& l : ctx->listeners) {
            ctx->loop.add(l->fd, l.get(), EPOLLIN | EPOLLET);
        }
        net::StreamConn::installLoopHooks(ctx->loop, options_.io_uring);
        LoopCtx* c = ctx.get();
        // Last hook: the iteration's work is done (nowMs() is when epoll_wait returned).
        ctx->loop.addIterationHook(
            [c] { c->lag.note(c->loop.nowMs(), loop::EventLoop::monotonicMs()); });
        impl_->loops.push_back(std::move(ctx));
    }
    tls_port_ = !tls.enabled() ? 0 : split ? (handed ? tls_ep.port() : tls.port) : port_;
    if (handed) {
        SB_INFO(
            "took over %zu listening socket(s) on port %u from pid %d (handover): it stops "
            "accepting and drains",
            handed->main.size() + handed->tls.size(), port_, handed->old_pid);
        net::acceptHandover(&*handed);
    }
    if (!options_.handover_socket.empty()) {
        auto fd = net::listenForSuccessor(options_.handover_socket);
        if (!fd) {
            return base::fail(fd.error().message + " (server.handover_socket)");
        }
        impl_->handover_fd = *fd;
        struct stat st {};
        if (::stat(options_.handover_socket.c_str(), &st) == 0) {
            impl_->handover_ino = st.st_ino;
        }
    }
    return {};
}

base::Result<void> App::reloadTls(const TlsOptions& tls) {
    if (!options_.tls.enabled()) {
        return {};  // a listener cannot start speaking TLS without a restart
    }
    auto ctx = loadTls(tls);
    if (!ctx) {
        return base::unexpected(ctx.error());
    }
    {
        std::lock_guard lock(impl_->tls_mu);
        impl_->tls_ctx = *ctx;
    }
    for (auto& loop_ctx : impl_->loops) {
        LoopCtx* c = loop_ctx.get();
        c->loop.post([c, fresh = *ctx] { c->tls_ctx = fresh; });
    }
    return {};
}

HandshakeFailures App::handshakeFailures() const {
    HandshakeFailures out{};
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = impl_->handshake_failures[i].load(std::memory_order_relaxed);
    }
    return out;
}

std::vector<uint32_t> App::loopLagMs() const {
    std::vector<uint32_t> out;
    for (const auto& ctx : impl_->loops) {
        out.push_back(ctx->lag.maxMs());
    }
    return out;
}

bool App::admitSession() {
    return impl_->admitSession();
}

uint32_t App::reconnectDelayMs() const {
    return jitteredDelayMs(options_.reconnect_spread_ms);
}

HttpReply App::admissionRefusal() const {
    const uint32_t after_s = retryAfterS(options_.reconnect_spread_ms);
    return HttpReply{.status = 503,
                     .content_type = "application/json",
                     .body = "{\"error\":\"overloaded\",\"message\":\"" +
                             jsonEscape(admissionMessage(after_s)) + "\"}\n",
                     .extra_headers = "Retry-After: " + std::to_string(after_s) + "\r\n"};
}

RefusedCounts App::refusedCounts() const {
    RefusedCounts r{.max_connections = impl_->refused_max.load(std::memory_order_relaxed),
                    .per_ip = impl_->refused_ip.load(std::memory_order_relaxed),
                    .rate = impl_->refused_rate.load(std::memory_order_relaxed),
                    .admission = impl_->refused_admission.load(std::memory_order_relaxed)};
    for (const auto& ctx : impl_->loops) {
        r.ping_floods += ctx->sockets.ping_floods.load(std::memory_order_relaxed);
    }
    return r;
}

TlsCounts App::tlsCounts() const {
    TlsCounts t;
    for (const auto& ctx : impl_->loops) {
        t.full += ctx->tls_full.load(std::memory_order_relaxed);
        t.resumed += ctx->tls_resumed.load(std::memory_order_relaxed);
        t.failed += ctx->tls_failed.load(std::memory_order_relaxed);
    }
    return t;
}

ConnectionCounts App::connectionCounts() const {
    ConnectionCounts c;
    for (const auto& ctx : impl_->loops) {
        c.http += ctx->http_open.load(std::memory_order_relaxed);
        c.websocket += ctx->ws_open.load(std::memory_order_relaxed);
        c.stream += ctx->stream_open.load(std::memory_order_relaxed);
    }
    return c;
}

size_t App::loopCount() const {
    return impl_->loops.size();
}

loop::EventLoop& App::loopAt(size_t i) {
    return impl_->loops.at(i)->loop;
}

void App::stop() {
    if (impl_->stopping.exchange(true)) {
        return;
    }
    for (auto& ctx : impl_->loops) {
        LoopCtx* c = ctx.get();
        c->loop.post([c] { c->beginShutdown(); });
    }
}

int App::run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (options_.handle_signals) {
        // A parent may have left these ignored (SIG_IGN survives exec), and an ignored signal
        // is discarded even while blocked: restore the defaults so sigtimedwait sees them.
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        // Loop threads inherit the mask: signals are taken synchronously here only.
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
    }
    signal(SIGPIPE, SIG_IGN);
    for (auto& ctx : impl_->loops) {
        LoopCtx* c = ctx.get();
        c->thread = std::thread([c] { c->loop.run(); });
    }
    const bool main_tls = tls_port_ != 0 && tls_port_ == port_;
    if (options_.print_listening) {
        // The first line names the main port (scripts read it); " (tls)" when it speaks TLS.
        std::printf("switchboard listening on %s:%u%s\n", options_.host.c_str(), port_,
                    main_tls ? " (tls)" : "");
        if (tls_port_ != 0 && !main_tls) {
            std::printf("switchboard listening on %s:%u (tls)\n", options_.host.c_str(), tls_port_);
        }
        std::fflush(stdout);
    }
    SB_INFO("listening on %s:%u%s with %zu event loop(s)", options_.host.c_str(), port_,
            main_tls ? " (tls)" : "", impl_->loops.size());
    if (tls_port_ != 0 && !main_tls) {
        SB_INFO("listening on %s:%u (tls)", options_.host.c_str(), tls_port_);
    }
    // Wait for a stop request: a signal, stop() from another thread, or a successor that took
    // the listening sockets over (server.handover_socket).
    while (!impl_->stopping.load()) {
        if (impl_->handover_fd >= 0) {
            pollfd p{.fd = impl_->handover_fd, .events = POLLIN, .revents = 0};
            if (::poll(&p, 1, 0) > 0) {
                impl_->serveHandover(*this);
                continue;
            }
        }
        if (options_.handle_signals) {
            timespec ts{0, 100'000'000};
            int sig = sigtimedwait(&set, nullptr, &ts);
            if (sig == SIGTERM || sig == SIGINT) {
                SB_INFO("received %s: shutting down (timeout %u ms)",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT", options_.shutdown_timeout_ms);
                stop();
            } else if (sig == SIGHUP) {
                SB_INFO("received SIGHUP: reloading configuration");
                if (on_reload_) {
                    on_reload_();
                }
            }
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    impl_->closeHandover();  // a successor now would find nobody to take over from
    // Drain: wait until every connection is gone or the timeout passes.
    const uint64_t deadline = loop::EventLoop::monotonicMs() + options_.shutdown_timeout_ms;
    while (impl_->connections.load() > 0 && loop::EventLoop::monotonicMs() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (size_t left = impl_->connections.load(); left > 0) {
        SB_WARN("shutdown timeout: %zu connection(s) still open are dropped", left);
    }
    for (auto& ctx : impl_->loops) {
        // Drop what is left on its own loop thread, so every socket still gets its on_close
        // (presence, sessions and app state are released), then stop the loop.
        LoopCtx* c = ctx.get();
        c->loop.post([c] {
            for (transport::WebSocket* ws = c->sockets.head; ws != nullptr; ws = ws->list_next) {
                ws->terminate();
            }
            c->loop.stop();
        });
    }
    for (auto& ctx : impl_->loops) {
        if (ctx->thread.joinable()) {
            ctx->thread.join();
        }
    }
    SB_INFO("stopped");
    return 0;
}

}  // namespace sb::server
