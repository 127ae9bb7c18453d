#include "client/ws_client.h"

#include <sys/socket.h>

#include <charconv>

#include "http/request.h"
#include "net/socket.h"
#include "net/stream_conn.h"
#include "ws/handshake.h"

namespace sb::client {

base::Result<WsUrl> parseWsUrl(std::string_view url) {
    WsUrl u;
    if (url.starts_with("ws://")) {
        url.remove_prefix(5);
    } else if (url.starts_with("wss://")) {
        return base::fail("wss:// needs TLS, which this build does not have yet");
    } else {
        return base::fail("'" + std::string(url) + "' is not a ws:// URL");
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

// The socket until the 101 arrives; then it hands the fd to a transport::WebSocket.
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
            static_cast<ClientHandshake*>(n)->fail("handshake timed out");
        };
        std::string host = url.host;
        if (url.port != 80) {
            host += ":" + std::to_string(url.port);
        }
        request_ = ws::buildClientRequest(host, url.path, key_, opts_.subprotocols, opts_.deflate,
                                          opts_.origin);
    }
    ~ClientHandshake() override { loop()->timers().cancel(this); }

    void start() {
        loop()->timers().schedule(this, opts_.handshake_timeout_ms);
        write(request_.data(), request_.size());
        uncork();
    }

protected:
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
        fail(refused ? "connection refused (or reset before any response)"
                     : "connection closed during the handshake");
    }

private:
    void fail(const std::string& why) {
        if (done_) {
            ConnectCallback done = std::move(done_);
            done_ = nullptr;
            done(nullptr, why);
        }
        close();
    }

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
    auto fd = net::connectNonBlocking(*ep, options.source.len != 0 ? &options.source : nullptr);
    if (!fd) {
        done(nullptr, fd.error().message);
        return;
    }
    auto* hs = new ClientHandshake(&loop, *fd, url, options, behavior, std::move(done));
    if (!hs->attach()) {
        delete hs;
        return;
    }
    hs->start();
}

}  // namespace sb::client
