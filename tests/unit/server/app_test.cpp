// The App over real loopback sockets with our client: upgrade, echo on several loops, HTTP
// routes (HEAD, 405 with Allow), port ownership (reuse_port), connection counts, and graceful
// shutdown (every WebSocket sees 1001 with the reconnect hint, idle HTTP connections close).
#include "server/app.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <string>
#include <thread>

#include "client/ws_client.h"
#include "http/request.h"

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

// --- Raw HTTP helpers ------------------------------------------------------------------------

void sendAll(int fd, std::string_view s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Everything the server sends until it closes (or the 5 s receive timeout of dialLoopback).
// `eof` says whether the stream really ended.
std::string readToEof(int fd, bool* eof) {
    std::string out;
    char buf[4096];
    *eof = false;
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) {
            *eof = true;
            break;
        }
        if (n < 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// One complete response from the front of `in` (head parsed, body by Content-Length), removed
// from `in`. False when `in` does not start with a complete response.
bool takeResponse(std::string* in, http::Response* r, std::string* head, std::string* body) {
    http::HttpError e = http::HttpError::kNone;
    if (http::parseResponse(*in, http::ParserLimits{}, r, &e) != http::ParseStatus::kDone) {
        return false;
    }
    size_t len = 0;
    std::string_view cl = r->header("content-length");
    for (char c : cl) {
        len = len * 10 + static_cast<size_t>(c - '0');
    }
    *head = in->substr(0, r->head_size);
    *body = in->substr(r->head_size, len);
    // The views of *r point into *in: re-parse from the copy kept in *head.
    EXPECT_EQ(http::parseResponse(*head, http::ParserLimits{}, r, &e), http::ParseStatus::kDone);
    in->erase(0, r->head_size + len);
    return true;
}

// Reads until `n` complete responses are buffered; the rest of the stream stays in *rest.
std::vector<std::string> readResponseHeads(int fd, size_t n, std::vector<std::string>* bodies,
                                           std::string* rest, bool head_only_first = false) {
    std::vector<std::string> heads;
    std::string in;
    char buf[4096];
    while (heads.size() < n) {
        http::Response r;
        std::string head, body;
        std::string probe = in;
        if (head_only_first && heads.empty()) {
            http::HttpError e = http::HttpError::kNone;
            if (http::parseResponse(in, http::ParserLimits{}, &r, &e) == http::ParseStatus::kDone) {
                heads.push_back(in.substr(0, r.head_size));
                bodies->push_back("");
                in.erase(0, r.head_size);
                continue;
            }
        } else if (takeResponse(&probe, &r, &head, &body)) {
            heads.push_back(head);
            bodies->push_back(body);
            in = probe;
            continue;
        }
        ssize_t got = ::recv(fd, buf, sizeof buf, 0);
        if (got <= 0) {
            break;
        }
        in.append(buf, static_cast<size_t>(got));
    }
    *rest = in;
    return heads;
}

std::string headerOf(const std::string& head, std::string_view name) {
    http::Response r;
    http::HttpError e = http::HttpError::kNone;
    if (http::parseResponse(head, http::ParserLimits{}, &r, &e) != http::ParseStatus::kDone) {
        return "<unparsable>";
    }
    for (size_t i = 0; i < r.header_count; ++i) {
        if (r.headers[i].name.size() == name.size() &&
            std::equal(name.begin(), name.end(), r.headers[i].name.begin(),
                       [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
            return std::string(r.headers[i].value);
        }
    }
    return "<none>";
}

uint16_t statusOf(const std::string& head) {
    http::Response r;
    http::HttpError e = http::HttpError::kNone;
    return http::parseResponse(head, http::ParserLimits{}, &r, &e) == http::ParseStatus::kDone
               ? r.status
               : 0;
}

HttpReply hello(const http::Request&, std::string_view) {
    return HttpReply{.content_type = "text/html; charset=utf-8", .body = "<p>hello</p>"};
}

// --- Port ownership (ServerOptions::reuse_port) -------------------------------------------

ServerOptions onPort(uint16_t port, bool reuse_port, std::string host = "127.0.0.1") {
    return ServerOptions{.host = std::move(host),
                         .port = port,
                         .threads = 2,
                         .handle_signals = false,
                         .print_listening = false,
                         .reuse_port = reuse_port};
}

std::string busyMessage(const std::string& host_port) {
    return host_port +
           " is already in use by another process (stop it, pick another --port, or pass "
           "--reuse-port to share the port on purpose)";
}

// A listener of some other program: SO_REUSEADDR and SO_REUSEPORT, the flags that let our
// sockets join it unnoticed.
int foreignListener(int family, const char* addr, uint16_t* port) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(*port);
        inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(*port);
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof *a;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
        ::close(fd);
        return -1;
    }
    len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                              : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return fd;
}

TEST(AppPort, SecondAppOnABusyPortFailsWithAClearMessage) {
    Running first(ServerOptions{.threads = 2});
    first.app.get("/", hello);
    first.start();
    const uint16_t port = first.app.port();
    App second(onPort(port, false));
    auto r = second.listen();
    ASSERT_FALSE(r.has_value()) << "a second server joined a port another one listens on";
    EXPECT_EQ(r.error().message, busyMessage("127.0.0.1:" + std::to_string(port)));
    // The first one still serves alone.
    int fd = dialLoopback(port);
    sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_NE(readResponses(fd, 1).find("<p>hello</p>"), std::string::npos);
    ::close(fd);
}

TEST(AppPort, ForeignReusePortListenerMakesListenFail) {
    uint16_t port = 0;
    int foreign = foreignListener(AF_INET, "127.0.0.1", &port);
    ASSERT_GE(foreign, 0);
    App app(onPort(port, false));
    auto r = app.listen();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, busyMessage("127.0.0.1:" + std::to_string(port)));
    ::close(foreign);
}

// The kernel sends a connection to the most specific listener, so a specific address on a
// port a wildcard listener holds (and the reverse) would take part of its traffic.
TEST(AppPort, WildcardAndSpecificAddressesConflict) {
    uint16_t port = 0;
    int foreign = foreignListener(AF_INET, "0.0.0.0", &port);
    ASSERT_GE(foreign, 0);
    {
        App app(onPort(port, false, "127.0.0.1"));
        auto r = app.listen();
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().message, busyMessage("127.0.0.1:" + std::to_string(port)));
    }
    ::close(foreign);
    port = 0;
    foreign = foreignListener(AF_INET, "127.0.0.1", &port);
    ASSERT_GE(foreign, 0);
    {
        App app(onPort(port, false, "0.0.0.0"));
        auto r = app.listen();
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().message, busyMessage("0.0.0.0:" + std::to_string(port)));
    }
    ::close(foreign);
}

TEST(AppPort, DualStackIpv6WildcardConflictsWithIpv4) {
    uint16_t port = 0;
    int foreign = foreignListener(AF_INET6, "::", &port);
    if (foreign < 0) {
        GTEST_SKIP() << "no IPv6 on this host";
    }
    App v4(onPort(port, false, "0.0.0.0"));
    auto r = v4.listen();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, busyMessage("0.0.0.0:" + std::to_string(port)));
    App v6(onPort(port, false, "::1"));
    r = v6.listen();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, busyMessage("[::1]:" + std::to_string(port)));
    ::close(foreign);
}

TEST(AppPort, ReusePortOnBothSharesThePort) {
    App first(onPort(0, true));
    ASSERT_TRUE(first.listen().has_value());
    App second(onPort(first.port(), true));
    auto r = second.listen();
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(second.port(), first.port());
}

// A restart right after the previous process closed connections itself (server-side
// TIME_WAIT on the port) must not be taken for a busy port.
TEST(AppPort, RestartOverTimeWaitConnectionsSucceeds) {
    uint16_t port = 0;
    {
        Running s(ServerOptions{.threads = 1});
        s.app.get("/", hello);
        s.start();
        port = s.app.port();
        for (int i = 0; i < 3; ++i) {
            int fd = dialLoopback(port);
            sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            bool eof = false;
            readToEof(fd, &eof);  // the server half-closed first: its side ends in TIME_WAIT
            EXPECT_TRUE(eof);
            ::close(fd);
        }
    }
    App again(onPort(port, false));
    auto r = again.listen();
    EXPECT_TRUE(r.has_value()) << r.error().message;
}

// --- Shutdown of plain HTTP connections ---------------------------------------------------

bool refused(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool r = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0;
    ::close(fd);
    return r;
}

ServerOptions slowTimeouts() {
    // Long enough that only the shutdown of idle connections can explain a quick return.
    return ServerOptions{
        .threads = 1, .handshake_timeout_ms = 30'000, .shutdown_timeout_ms = 30'000};
}

TEST(AppShutdown, IdleKeepAliveConnectionIsClosedAtOnce) {
    Running s(slowTimeouts());
    s.app.get("/", hello);
    s.start();
    int fd = dialLoopback(s.app.port());
    sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_NE(readResponses(fd, 1).find("<p>hello</p>"), std::string::npos);
    const auto t0 = std::chrono::steady_clock::now();
    s.app.stop();
    bool eof = false;
    std::string after = readToEof(fd, &eof);
    EXPECT_TRUE(eof) << "the idle keep-alive connection was not closed";
    EXPECT_EQ(after, "");
    const bool returned = waitFor([&] { return s.exit_code.load() != -1; }, 5000);
    EXPECT_TRUE(returned) << "run() still waiting for an idle HTTP connection";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    ::close(fd);  // lets a failing run end now rather than at the 30 s timeout
}

TEST(AppShutdown, RequestInProgressFinishesWithConnectionClose) {
    Running s(slowTimeouts());
    s.app.get("/", hello);
    s.app.post("/echo", [](const http::Request&, std::string_view body) {
        return HttpReply{.body = std::string(body)};
    });
    s.start();
    const uint16_t port = s.app.port();
    int get_fd = dialLoopback(port);
    int post_fd = dialLoopback(port);
    // A head without its final CRLF, and a head with half of its body.
    sendAll(get_fd, "GET / HTTP/1.1\r\nHost: x\r\n");
    sendAll(post_fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc");
    ASSERT_TRUE(waitFor([&] { return s.app.connectionCounts().http == 2; }));
    s.app.stop();
    ASSERT_TRUE(waitFor([&] { return refused(port); }));       // the loop began its shutdown
    sendAll(get_fd, "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");  // a pipelined one is not served
    sendAll(post_fd, "def");
    for (int fd : {get_fd, post_fd}) {
        bool eof = false;
        std::string in = readToEof(fd, &eof);
        EXPECT_TRUE(eof);
        http::Response r;
        std::string head, body;
        ASSERT_TRUE(takeResponse(&in, &r, &head, &body)) << in;
        EXPECT_EQ(r.status, 200);
        EXPECT_TRUE(r.hasToken("connection", "close")) << head;
        EXPECT_EQ(body, fd == get_fd ? "<p>hello</p>" : "abcdef");
        EXPECT_EQ(in, "") << "served a request that started after the shutdown";
    }
    ::close(get_fd);  // the server waits (bounded) for our FIN after its last response
    ::close(post_fd);
    EXPECT_TRUE(waitFor([&] { return s.exit_code.load() != -1; }, 5000));
}

TEST(AppShutdown, UnfinishedRequestEndsAtTheHandshakeTimeout) {
    Running s(
        ServerOptions{.threads = 1, .handshake_timeout_ms = 500, .shutdown_timeout_ms = 30'000});
    s.app.get("/", hello);
    s.start();
    int fd = dialLoopback(s.app.port());
    sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n");
    ASSERT_TRUE(waitFor([&] { return s.app.connectionCounts().http == 1; }));
    s.app.stop();
    bool eof = false;
    std::string in = readToEof(fd, &eof);
    EXPECT_TRUE(eof);
    EXPECT_EQ(statusOf(in), 408) << in;
    EXPECT_TRUE(waitFor([&] { return s.exit_code.load() != -1; }, 5000));
    ::close(fd);
}

// --- HEAD and 405 ----------------------------------------------------------------------------

TEST(AppHttp, HeadAnswersTheHeadersOfGetWithoutTheBody) {
    Running s(ServerOptions{.threads = 1});
    s.app.get("/page", hello);
    s.start();
    int fd = dialLoopback(s.app.port());
    sendAll(fd, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    std::vector<std::string> bodies;
    std::string rest;
    auto get = readResponseHeads(fd, 1, &bodies, &rest);
    ASSERT_EQ(get.size(), 1u);
    // HEAD, then a GET pipelined behind it: a body after the HEAD response would be read as
    // the start of the next response.
    sendAll(fd, "HEAD /page HTTP/1.1\r\nHost: x\r\n\r\nGET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    bodies.clear();
    auto heads = readResponseHeads(fd, 2, &bodies, &rest, /*head_only_first=*/true);
    ASSERT_EQ(heads.size(), 2u) << rest;
    EXPECT_EQ(statusOf(heads[0]), 200);
    EXPECT_EQ(headerOf(heads[0], "content-length"), "12");
    EXPECT_EQ(headerOf(heads[0], "content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(heads[0], get[0]);  // exactly the headers GET answers
    EXPECT_EQ(statusOf(heads[1]), 200) << heads[1];
    EXPECT_EQ(bodies[1], "<p>hello</p>");
    EXPECT_EQ(rest, "");

    // Error answers to HEAD carry no body either.
    sendAll(fd, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    bodies.clear();
    heads = readResponseHeads(fd, 2, &bodies, &rest, /*head_only_first=*/true);
    ASSERT_EQ(heads.size(), 2u) << rest;
    EXPECT_EQ(statusOf(heads[0]), 404);
    EXPECT_NE(headerOf(heads[0], "content-length"), "0");
    EXPECT_EQ(statusOf(heads[1]), 200) << heads[1];
    ::close(fd);
}

struct MethodCase {
    const char* path;
    const char* method;
    const char* allow;
};

TEST(AppHttp, MethodNotAllowedListsTheAllowedMethods) {
    Running s(ServerOptions{.threads = 1});
    s.app.get("/get", hello);
    s.app.post("/post", hello);
    s.app.get("/both", hello);
    s.app.post("/both", hello);
    s.app.ws("/ws", echoRoute());
    s.start();
    for (MethodCase c :
         {MethodCase{"/get", "POST", "GET, HEAD"}, MethodCase{"/get", "DELETE", "GET, HEAD"},
          MethodCase{"/post", "GET", "POST"}, MethodCase{"/post", "PUT", "POST"},
          MethodCase{"/both", "PUT", "GET, HEAD, POST"}, MethodCase{"/ws", "POST", "GET"}}) {
        int fd = dialLoopback(s.app.port());
        sendAll(fd, std::string(c.method) + " " + c.path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        std::vector<std::string> bodies;
        std::string rest;
        auto heads = readResponseHeads(fd, 1, &bodies, &rest);
        ASSERT_EQ(heads.size(), 1u) << c.method << " " << c.path;
        EXPECT_EQ(statusOf(heads[0]), 405) << c.method << " " << c.path;
        EXPECT_EQ(headerOf(heads[0], "allow"), c.allow) << c.method << " " << c.path;
        EXPECT_EQ(headerOf(heads[0], "content-type"), "application/json");
        EXPECT_NE(bodies[0].find("\"error\":\"method_not_allowed\""), std::string::npos)
            << bodies[0];
        ::close(fd);
    }
    // HEAD on a POST-only route: 405 too, without a body.
    int fd = dialLoopback(s.app.port());
    sendAll(fd, "HEAD /post HTTP/1.1\r\nHost: x\r\n\r\nGET /get HTTP/1.1\r\nHost: x\r\n\r\n");
    std::vector<std::string> bodies;
    std::string rest;
    auto heads = readResponseHeads(fd, 2, &bodies, &rest, /*head_only_first=*/true);
    ASSERT_EQ(heads.size(), 2u);
    EXPECT_EQ(statusOf(heads[0]), 405);
    EXPECT_EQ(headerOf(heads[0], "allow"), "POST");
    EXPECT_EQ(statusOf(heads[1]), 200) << heads[1];
    ::close(fd);
}

// --- Connection counts ---------------------------------------------------------------------

TEST(AppCounts, OpenHttpConnectionsAndWebSocketsOfEveryRoute) {
    Running s(ServerOptions{.threads = 2, .shutdown_timeout_ms = 5000});
    s.app.ws("/echo", echoRoute());
    s.app.ws("/ws", echoRoute());
    s.app.get("/", hello);
    EXPECT_EQ(s.app.connectionCounts().http, 0u);  // before listen(): no loops yet
    s.start();
    std::vector<std::unique_ptr<TestClient>> clients;
    for (const char* path : {"/echo", "/echo", "/echo", "/ws", "/ws"}) {
        auto c = std::make_unique<TestClient>();
        c->run(s.app.port(), path);
        clients.push_back(std::move(c));
    }
    for (auto& c : clients) {
        ASSERT_TRUE(waitFor([&] { return c->opened.load() || c->closed.load(); }));
        ASSERT_TRUE(c->opened.load()) << c->error;
    }
    std::vector<int> http;
    for (int i = 0; i < 2; ++i) {
        http.push_back(dialLoopback(s.app.port()));
        sendAll(http.back(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        ASSERT_NE(readResponses(http.back(), 1).find("<p>hello</p>"), std::string::npos);
    }
    auto is = [&](uint64_t ws, uint64_t h) {
        return waitFor([&] {
            ConnectionCounts c = s.app.connectionCounts();
            return c.websocket == ws && c.http == h;
        });
    };
    EXPECT_TRUE(is(5, 2)) << s.app.connectionCounts().websocket << " "
                          << s.app.connectionCounts().http;
    ::close(http[0]);
    TestClient* gone = clients[3].get();
    gone->loop.post([gone] { gone->socket->terminate(); });
    gone->join();
    EXPECT_TRUE(is(4, 1)) << s.app.connectionCounts().websocket << " "
                          << s.app.connectionCounts().http;
    s.app.stop();
    for (auto& c : clients) {
        c->join();
    }
    EXPECT_TRUE(waitFor([&] { return s.exit_code.load() != -1; }));
    EXPECT_TRUE(is(0, 0)) << s.app.connectionCounts().websocket << " "
                          << s.app.connectionCounts().http;
    ::close(http[1]);
}

}  // namespace
}  // namespace sb::server
