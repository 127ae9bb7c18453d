#include "client/ws_client.h"

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "http/request.h"
#include "net/socket.h"
#include "net/stream_conn.h"
#include "net/tls.h"
#include "ws/handshake.h"

namespace sb::client {

base::Result<WsUrl> parseWsUrl(std::string_view url) {
    WsUrl u;
    if (url.starts_with("ws://")) {
        url.remove_prefix(5);
    } else if (url.starts_with("wss://")) {
        url.remove_prefix(6);
        u.tls = true;
        u.port = 443;
    } else {
        return base::fail("'" + std::string(url) + "' is not a ws:// or wss:// URL");
    }
    size_t slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    u.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
        std::string_view p = authority.substr(colon + 1);
        unsigned v = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
        if (ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535) {
            return base::fail("bad port in '" + std::string(authority) + "'");
        }
        u.port = static_cast<uint16_t>(v);
        authority = authority.substr(0, colon);
    }
    if (authority.empty()) {
        return base::fail("no host in the URL");
    }
    u.host = std::string(authority);
    return u;
}

namespace {

// One context per (ca_file, insecure, resume) for the whole process: building one loads the CA
// store (milliseconds), and the load tester connects thousands of times from several loops.
base::Result<std::shared_ptr<net::TlsContext>> clientContext(const ClientOptions& o) {
    static std::mutex mu;
    static std::map<std::tuple<std::string, bool, bool>, std::shared_ptr<net::TlsContext>> cache;
    std::lock_guard lock(mu);
    auto key = std::make_tuple(o.insecure ? std::string() : o.ca_file, o.insecure, o.tls_resume);
    auto it = cache.find(key);
    if (it != cache.end()) {
        return it->second;
    }
    net::TlsConfig cfg;
    cfg.role = net::TlsRole::kClient;
    cfg.verify_peer = !o.insecure;
    cfg.ca_file = std::get<0>(key);
    cfg.resume_sessions = o.tls_resume;
    auto ctx = net::TlsContext::create(cfg);
    if (!ctx) {
        return base::fail(ctx.error().message);  // not cached: a fixed file is picked up
    }
    cache.emplace(std::move(key), *ctx);
    return *ctx;
}

// The socket until the 101 arrives; then it hands the fd (and the TLS session) to a
// transport::WebSocket.
class ClientHandshake final : public net::StreamConn, private loop::TimerNode {
public:
    ClientHandshake(loop::EventLoop* loop, int fd, const WsUrl& url, const ClientOptions& opts,
                    const transport::WebSocketBehavior* behavior, ConnectCallback done)
        : net::StreamConn(loop, fd),
          opts_(opts),
          behavior_(behavior),
          done_(std::move(done)),
          key_(ws::generateClientKey()) {
        TimerNode::fire = [](loop::TimerNode* n) {
            auto* self = static_cast<ClientHandshake*>(n);
            self->fail(self->isTls() && !self->tlsHandshakeDone() ? "TLS handshake timed out"
                                                                  : "handshake timed out");
        };
        std::string host = url.host;
        if (url.port != (url.tls ? 443 : 80)) {
            host += ":" + std::to_string(url.port);
        }
        request_ = ws::buildClientRequest(host, url.path, key_, opts_.subprotocols, opts_.deflate,
                                          opts_.origin);
    }
    ~ClientHandshake() override { loop()->timers().cancel(this); }

    // `tls` set: wss://, the request waits for the TLS handshake.
    void start(std::unique_ptr<net::TlsSession> tls) {
        loop()->timers().schedule(this, opts_.handshake_timeout_ms);
        if (tls) {
            startTls(std::move(tls));
            return;
        }
        write(request_.data(), request_.size());
        uncork();
    }

    // Calls back once with `why`, then closes (freed at the end of the iteration). connect()
    // uses it too when attach() fails: the callback is owed whatever went wrong.
    void fail(const std::string& why) {
        if (done_) {
            ConnectCallback done = std::move(done_);
            done_ = nullptr;
            done(nullptr, why);
        }
        close();
    }

protected:
    void onTlsHandshake(std::string_view error) override {
        if (!error.empty()) {
            fail("TLS handshake failed: " + std::string(error));
            return;
        }
        write(request_.data(), request_.size());
        uncork();
    }
    void onData(uint8_t* data, size_t len) override {
        buf_.append(reinterpret_cast<const char*>(data), len);
        http::Response resp;
        http::HttpError err = http::HttpError::kNone;
        http::ParseStatus st = http::parseResponse(buf_, http::ParserLimits{}, &resp, &err);
        if (st == http::ParseStatus::kNeedMore) {
            return;
        }
        if (st == http::ParseStatus::kError) {
            fail("bad HTTP response: " + std::string(http::describe(err)));
            return;
        }
        auto r = ws::validateServerResponse(resp, key_, opts_.subprotocols, opts_.deflate);
        if (!r.ok) {
            fail(r.error);
            return;
        }
        auto* sock = new transport::WebSocket(loop(), -1, behavior_, ws::Role::kClient, r.deflate);
        std::string rest = buf_.substr(resp.head_size);
        ConnectCallback done = std::move(done_);
        done_ = nullptr;
        sock->adoptFrom(this);
        sock->start();
        done(sock, {});
        if (!rest.empty() && !sock->isClosed()) {
            sock->receive(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
        }
    }
    void onEof() override {
        // A refused connect leaves a socket that is not connected (getpeername fails; the
        // error itself may already have been consumed by the send of the request). Say so, so
        // callers can tell it from a server that accepted and closed mid-handshake.
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const bool refused =
            buf_.empty() && getpeername(fd(), reinterpret_cast<sockaddr*>(&peer), &len) != 0;
        if (refused) {
            fail("connection refused (or reset before any response)");
        } else if (isTls() && !tlsHandshakeDone()) {
            fail("TLS handshake failed: connection closed by the server");
        } else {
            fail("connection closed during the handshake");
        }
    }

private:
    ClientOptions opts_;
    const transport::WebSocketBehavior* behavior_;
    ConnectCallback done_;
    std::string key_;
    std::string request_;
    std::string buf_;
};

}  // namespace

void connect(loop::EventLoop& loop, const WsUrl& url, const ClientOptions& options,
             const transport::WebSocketBehavior* behavior, ConnectCallback done) {
    auto ep = net::resolve(url.host, url.port);
    if (!ep) {
        done(nullptr, ep.error().message);
        return;
    }
    std::unique_ptr<net::TlsSession> tls;
    if (url.tls) {
        auto ctx = clientContext(options);
        if (!ctx) {
            done(nullptr, "TLS setup failed: " + ctx.error().message);
            return;
        }
        auto session = net::TlsSession::create(
            *ctx, options.server_name.empty() ? url.host : options.server_name);
        if (!session) {
            done(nullptr, "TLS setup failed: " + session.error().message);
            return;
        }
        tls = std::move(*session);
    }
    auto fd = net::connectNonBlocking(*ep, options.source.len != 0 ? &options.source : nullptr);
    if (!fd) {
        done(nullptr, fd.error().message);
        return;
    }
    auto* hs = new ClientHandshake(&loop, *fd, url, options, behavior, std::move(done));
    if (!hs->attach()) {
        // Reported like any other failure (the callback is owed exactly once); close() frees
        // the fd and the object at the end of the iteration.
        const int err = errno;
        hs->fail(std::string("cannot register the socket with the event loop: ") +
                 std::strerror(err));
        return;
    }
    hs->start(std::move(tls));
}

}  // namespace sb::client
