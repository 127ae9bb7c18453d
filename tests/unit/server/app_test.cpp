// The App over real loopback sockets with our client: upgrade, echo on several loops, HTTP
// routes, and graceful shutdown (every WebSocket sees 1001 with the reconnect hint).
#include "server/app.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "client/ws_client.h"

namespace sb::server {
namespace {

struct Running {
    App app;
    std::thread thread;
    std::atomic<int> exit_code{-1};

    explicit Running(ServerOptions o) : app(withTestDefaults(std::move(o))) {}
    static ServerOptions withTestDefaults(ServerOptions o) {
        o.host = "127.0.0.1";
        o.port = 0;
        o.handle_signals = false;
        o.print_listening = false;
        return o;
    }
    void start() {
        ASSERT_TRUE(app.listen().has_value());
        thread = std::thread([this] { exit_code = app.run(); });
    }
    ~Running() {
        app.stop();
        if (thread.joinable()) {
            thread.join();
        }
    }
};

WsRoute echoRoute() {
    WsRoute r;
    r.behavior.on_message = [](transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
        ws.send(op, d);
    };
    return r;
}

// A client on its own loop thread: connects, sends `messages`, collects echoes and the close.
struct TestClient {
    loop::EventLoop loop;
    transport::WebSocketBehavior b;
    std::vector<std::string> got;
    std::vector<std::string> to_send;
    std::string error;
    uint16_t close_code = 0;
    std::string close_reason;
    std::atomic<bool> opened{false}, closed{false};
    std::atomic<size_t> received{0};
    transport::WebSocket* socket = nullptr;  // loop thread only
    std::thread thread;

    void run(uint16_t port, std::string path = "/echo") {
        net::StreamConn::installLoopHooks(loop);
        b.ping_interval_ms = 0;
        b.idle_timeout_ms = 0;
        b.on_open = [this](transport::WebSocket& ws) {
            socket = &ws;
            opened = true;
            for (auto& m : to_send) {
                ws.sendText(m);
            }
        };
        b.on_message = [this](transport::WebSocket&, ws::Opcode, std::span<uint8_t> d) {
            got.emplace_back(reinterpret_cast<char*>(d.data()), d.size());
            received.fetch_add(1);
        };
        b.on_close = [this](transport::WebSocket&, uint16_t code, std::string_view reason) {
            close_code = code;
            close_reason = reason;
            closed = true;
            loop.stop();
        };
        client::WsUrl url{.host = "127.0.0.1", .port = port, .path = std::move(path)};
        thread = std::thread([this, url] {
            client::connect(loop, url, {}, &b,
                            [this](transport::WebSocket* ws, const std::string& e) {
                                if (ws == nullptr) {
                                    error = e;
                                    closed = true;
                                    loop.stop();
                                }
                            });
            loop.run();
        });
    }
    void join() {
        if (thread.joinable()) {
            thread.join();
        }
    }
};

bool waitFor(const std::function<bool()>& f, int ms = 5000) {
    for (int i = 0; i < ms / 5; ++i) {
        if (f()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return f();
}

TEST(App, EchoOverLoopbackThenGracefulShutdownSends1001) {
    Running s(ServerOptions{.threads = 2, .shutdown_timeout_ms = 5000});
    s.app.ws("/echo", echoRoute());
    s.start();
    std::vector<std::unique_ptr<TestClient>> clients;
    for (int i = 0; i < 8; ++i) {
        auto c = std::make_unique<TestClient>();
        c->to_send = {"a" + std::to_string(i), "b" + std::to_string(i)};
        c->run(s.app.port());
        clients.push_back(std::move(c));
    }
    for (auto& c : clients) {
        ASSERT_TRUE(waitFor([&] { return c->opened.load() || c->closed.load(); }));
    }
    // Echoes arrive on the client loop threads; wait for all of them, then stop the server.
    for (auto& c : clients) {
        ASSERT_TRUE(waitFor([&] { return c->received.load() == 2 || c->closed.load(); }));
    }
    s.app.stop();
    for (auto& c : clients) {
        c->join();
        EXPECT_TRUE(c->error.empty()) << c->error;
        EXPECT_EQ(c->close_code, ws::close_code::kGoingAway);
        EXPECT_NE(c->close_reason.find("reconnect"), std::string::npos);
        ASSERT_EQ(c->got.size(), 2u);
    }
    s.thread.join();
    EXPECT_EQ(s.exit_code.load(), 0);
}

TEST(App, UnknownWebSocketPathIsRefused) {
    Running s(ServerOptions{.threads = 1});
    s.app.ws("/echo", echoRoute());
    s.start();
    TestClient c;
    c.run(s.app.port(), "/nope");
    c.join();
    EXPECT_NE(c.error.find("404"), std::string::npos) << c.error;
}

TEST(App, ConnectionLimitAnswers503) {
    Running s(ServerOptions{.threads = 1, .max_connections = 1});
    s.app.ws("/echo", echoRoute());
    s.start();
    TestClient first;
    first.run(s.app.port());
    ASSERT_TRUE(waitFor([&] { return first.opened.load(); }));
    TestClient second;
    second.run(s.app.port());
    second.join();
    EXPECT_NE(second.error.find("503"), std::string::npos) << second.error;
    s.app.stop();
    first.join();
}

}  // namespace
}  // namespace sb::server

namespace sb::server {
namespace {

TEST(App, PerIpLimitCountsOpenWebSocketsAndFreesOnClose) {
    Running s(ServerOptions{.threads = 1, .max_connections_per_ip = 1});
    s.app.ws("/echo", echoRoute());
    s.start();
    auto first = std::make_unique<TestClient>();
    first->run(s.app.port());
    ASSERT_TRUE(waitFor([&] { return first->opened.load(); }));
    TestClient second;
    second.run(s.app.port());
    second.join();
    EXPECT_NE(second.error.find("503"), std::string::npos) << second.error;
    first->loop.post([&] { first->socket->terminate(); });  // drop TCP: server sees EOF
    first->join();
    bool admitted = false;
    for (int i = 0; i < 100 && !admitted; ++i) {
        TestClient again;
        again.run(s.app.port());
        if (waitFor([&] { return again.opened.load() || again.closed.load(); }) &&
            again.opened.load()) {
            admitted = true;
        }
        again.loop.post([&] {
            if (again.socket != nullptr && !again.closed) {
                again.socket->terminate();
            }
            again.loop.stop();
        });
        again.join();
    }
    EXPECT_TRUE(admitted);
}

}  // namespace
}  // namespace sb::server

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sb::server {
namespace {

int dialLoopback(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Reads until `count` responses have been seen (by counting status lines) or EOF/timeout.
std::string readResponses(int fd, size_t count) {
    std::string out;
    char buf[4096];
    while (true) {
        size_t seen = 0;
        for (size_t p = out.find("HTTP/1.1 "); p != std::string::npos;
             p = out.find("HTTP/1.1 ", p + 1)) {
            ++seen;
        }
        if (seen >= count && out.size() > 4 && out.rfind("\r\n\r\n") != std::string::npos) {
            // Complete enough: bodies here are short and arrive with their heads.
            break;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

TEST(App, PostBodiesSplitAcrossReadsAndPipelined) {
    Running s(ServerOptions{.threads = 1, .max_body_bytes = 64});
    s.app.post("/api/echo", [](const http::Request&, std::string_view body) {
        return HttpReply{.body = "got:" + std::string(body)};
    });
    s.start();
    int fd = dialLoopback(s.app.port());
    const std::string req1 =
        "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
    const std::string req2 = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    // First request split inside its body; the second pipelined right behind it.
    ASSERT_EQ(::send(fd, req1.data(), req1.size() - 5, 0), static_cast<ssize_t>(req1.size() - 5));
    std::string rest = req1.substr(req1.size() - 5) + req2;
    ASSERT_EQ(::send(fd, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
    std::string out = readResponses(fd, 2);
    EXPECT_NE(out.find("got:hello world"), std::string::npos) << out;
    EXPECT_NE(out.find("got:abc"), std::string::npos) << out;
    ::close(fd);

    fd = dialLoopback(s.app.port());
    const std::string big = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n";
    ASSERT_EQ(::send(fd, big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
    out = readResponses(fd, 1);
    EXPECT_NE(out.find("413"), std::string::npos) << out;
    ::close(fd);

    fd = dialLoopback(s.app.port());
    const std::string get = "GET /api/echo HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::send(fd, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
    out = readResponses(fd, 1);
    EXPECT_NE(out.find("405"), std::string::npos) << out;
    ::close(fd);
}

}  // namespace
}  // namespace sb::server
