#include "client/ws_client.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "../net/tls_test_peer.h"
#include "ws/handshake.h"

namespace sb::client {
namespace {

using testing::BlockingPeer;
using testing::LoopDriver;
using testing::TempFile;
using testing::TestCert;

const TestCert& localhostCert() {
    static const TestCert c = testing::makeSelfSigned("DNS:localhost,IP:127.0.0.1");
    return c;
}

TEST(ParseWsUrl, AcceptsWssWithPort443ByDefault) {
    auto u = parseWsUrl("wss://example.com/chat?room=1");
    ASSERT_TRUE(u.has_value()) << u.error().message;
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "example.com");
    EXPECT_EQ(u->port, 443);
    EXPECT_EQ(u->path, "/chat?room=1");
    u = parseWsUrl("wss://127.0.0.1:8443");
    ASSERT_TRUE(u.has_value());
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->port, 8443);
    EXPECT_EQ(u->path, "/");
    u = parseWsUrl("ws://h");
    ASSERT_TRUE(u.has_value());
    EXPECT_FALSE(u->tls);
    EXPECT_EQ(u->port, 80);
    EXPECT_FALSE(parseWsUrl("https://h/").has_value());
    EXPECT_FALSE(parseWsUrl("wss://h:0/").has_value());
    EXPECT_FALSE(parseWsUrl("wss:///x").has_value());
}

// --- a minimal WebSocket echo server over blocking OpenSSL (test side only) --------------

std::string serverFrame(uint8_t opcode, const std::string& payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    if (payload.size() < 126) {
        f += static_cast<char>(payload.size());
    } else if (payload.size() < 65536) {
        f += static_cast<char>(126);
        f += static_cast<char>(payload.size() >> 8);
        f += static_cast<char>(payload.size() & 0xff);
    } else {
        f += static_cast<char>(127);
        for (int i = 7; i >= 0; --i) {
            f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff);
        }
    }
    return f + payload;
}

// Answers the upgrade with a 101 and, in the same record, a "hello" frame (bytes behind the
// 101 must survive the handover from the handshake object to the WebSocket), then echoes
// frames until a close frame, which it answers before close_notify.
void serveWebSocketEcho(BlockingPeer::Conn& c) {
    if (c.ssl == nullptr) {
        return;
    }
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos) {
        char buf[2048];
        size_t n = 0;
        if (SSL_read_ex(c.ssl, buf, sizeof buf, &n) != 1) {
            return;
        }
        req.append(buf, n);
    }
    const std::string field = "Sec-WebSocket-Key: ";
    size_t k = req.find(field);
    ASSERT_NE(k, std::string::npos) << req;
    std::string key = req.substr(k + field.size(), 24);
    char accept[28];
    ws::computeAcceptKey(key, accept);
    std::string resp =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        std::string(accept, 28) + "\r\n\r\n" + serverFrame(0x1, "hello");
    ASSERT_TRUE(testing::sslWriteAll(c.ssl, resp.data(), resp.size()));
    for (;;) {
        uint8_t h[2];
        if (!testing::sslReadFull(c.ssl, h, 2)) {
            return;
        }
        uint64_t len = h[1] & 0x7f;
        if (len >= 126) {
            uint8_t ext[8];
            const size_t n = len == 126 ? 2 : 8;
            ASSERT_TRUE(testing::sslReadFull(c.ssl, ext, n));
            len = 0;
            for (size_t i = 0; i < n; ++i) {
                len = (len << 8) | ext[i];
            }
        }
        ASSERT_TRUE(h[1] & 0x80) << "client frames are masked";
        uint8_t mask[4];
        ASSERT_TRUE(testing::sslReadFull(c.ssl, mask, 4));
        std::string payload(len, '\0');
        ASSERT_TRUE(testing::sslReadFull(c.ssl, payload.data(), len));
        for (size_t i = 0; i < len; ++i) {
            payload[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
        }
        const uint8_t opcode = h[0] & 0x0f;
        std::string out = serverFrame(opcode, payload);
        ASSERT_TRUE(testing::sslWriteAll(c.ssl, out.data(), out.size()));
        if (opcode == 0x8) {
            SSL_shutdown(c.ssl);
            char b;
            size_t n;
            SSL_read_ex(c.ssl, &b, 1, &n);  // until the client closes
            return;
        }
    }
}

// Drives one client connection: after the server's hello, sends each size in turn and checks
// the echo, then closes with 1000.
struct EchoRun {
    std::vector<size_t> sizes;
    size_t next = 0;
    std::string expected;
    std::string connect_error;
    bool connected = false;
    bool got_hello = false;
    bool mismatch = false;
    int close_code = -1;
    transport::WebSocketBehavior behavior;

    EchoRun() {
        behavior.ping_interval_ms = 0;
        behavior.idle_timeout_ms = 0;
        behavior.max_message_size = 4u << 20;
        behavior.on_message = [this](transport::WebSocket& ws, ws::Opcode,
                                     std::span<uint8_t> data) {
            std::string got(reinterpret_cast<char*>(data.data()), data.size());
            if (!got_hello) {
                got_hello = got == "hello";
            } else if (got != expected) {
                mismatch = true;
            } else {
                ++next;
            }
            sendNext(ws);
        };
        behavior.on_close = [this](transport::WebSocket&, uint16_t code, std::string_view) {
            close_code = code;
        };
    }
    void sendNext(transport::WebSocket& ws) {
        if (mismatch || next == sizes.size()) {
            ws.end(1000, "done");
            return;
        }
        expected.assign(sizes[next], '\0');
        for (size_t i = 0; i < expected.size(); ++i) {
            expected[i] = static_cast<char>('a' + (i * 7 + next) % 26);
        }
        ws.sendText(expected);
    }
    ConnectCallback callback() {
        return [this](transport::WebSocket* ws, const std::string& err) {
            connected = ws != nullptr;
            connect_error = err;
        };
    }
};

WsUrl wssUrl(const std::string& host, uint16_t port) {
    auto u = parseWsUrl("wss://" + host + ":" + std::to_string(port) + "/echo");
    EXPECT_TRUE(u.has_value());
    return *u;
}

void runEcho(const std::string& host, const ClientOptions& opts) {
    BlockingPeer peer(localhostCert(), true, serveWebSocketEcho);
    LoopDriver d;
    EchoRun run;
    run.sizes = {0, 1, 125, 126, 65535, 65536, size_t{1} << 20};
    connect(d.loop, wssUrl(host, peer.port()), opts, &run.behavior, run.callback());
    ASSERT_TRUE(d.runUntil([&] { return run.close_code >= 0 || !run.connect_error.empty(); }));
    EXPECT_TRUE(run.connected) << run.connect_error;
    EXPECT_TRUE(run.got_hello) << "the frame behind the 101 was lost";
    EXPECT_FALSE(run.mismatch) << "echo of message " << run.next << " differs";
    EXPECT_EQ(run.next, run.sizes.size());
    EXPECT_EQ(run.close_code, 1000);
}

TEST(ClientConnectWss, EchoesFromEmptyTo1MiBWithTheCaFile) {
    TempFile ca(localhostCert().cert_pem);
    ClientOptions opts;
    opts.ca_file = ca.path();
    runEcho("localhost", opts);  // the name is checked against DNS:localhost
}

TEST(ClientConnectWss, EchoesWithInsecure) {
    ClientOptions opts;
    opts.insecure = true;
    runEcho("127.0.0.1", opts);
}

// Connects to a peer and returns the error the callback got ("" = connected).
std::string connectError(const ClientOptions& opts, BlockingPeer::Handler handler,
                         const std::string& host = "localhost") {
    BlockingPeer peer(localhostCert(), true, std::move(handler));
    LoopDriver d;
    EchoRun run;
    int calls = 0;
    connect(d.loop, wssUrl(host, peer.port()), opts, &run.behavior,
            [&](transport::WebSocket* ws, const std::string& err) {
                ++calls;
                run.connect_error = err;
                if (ws != nullptr) {
                    ws->terminate();
                }
            });
    EXPECT_TRUE(d.runUntil([&] { return calls > 0; }));
    EXPECT_EQ(calls, 1);
    return run.connect_error;
}

TEST(ClientConnectWss, VerificationFailureSaysTlsAndWhy) {
    ClientOptions opts;  // system CA store: our certificate is unknown there
    EXPECT_EQ(connectError(opts, serveWebSocketEcho),
              "TLS handshake failed: certificate verify failed: self-signed certificate");
}

TEST(ClientConnectWss, ServerNameOverrideIsWhatGetsChecked) {
    TempFile ca(localhostCert().cert_pem);
    ClientOptions opts;
    opts.ca_file = ca.path();
    opts.server_name = "other.example";
    EXPECT_EQ(connectError(opts, serveWebSocketEcho),
              "TLS handshake failed: certificate verify failed: hostname mismatch");
}

TEST(ClientConnectWss, ServerClosingMidHandshakeIsATlsFailure) {
    ClientOptions opts;
    opts.insecure = true;
    BlockingPeer peer(localhostCert(), false,
                      [](BlockingPeer::Conn& c) { EXPECT_TRUE(testing::readClientHello(c.fd)); });
    LoopDriver d;
    EchoRun run;
    connect(d.loop, wssUrl("127.0.0.1", peer.port()), opts, &run.behavior, run.callback());
    ASSERT_TRUE(d.runUntil([&] { return !run.connect_error.empty(); }));
    EXPECT_EQ(run.connect_error, "TLS handshake failed: connection closed by the server");
}

TEST(ClientConnectWss, SilentServerIsATlsHandshakeTimeout) {
    ClientOptions opts;
    opts.insecure = true;
    opts.handshake_timeout_ms = 300;
    BlockingPeer peer(localhostCert(), false, [](BlockingPeer::Conn& c) {
        char b[4096];
        while (::recv(c.fd, b, sizeof b, 0) > 0) {  // never answers; ends when we close
        }
    });
    LoopDriver d;
    EchoRun run;
    connect(d.loop, wssUrl("127.0.0.1", peer.port()), opts, &run.behavior, run.callback());
    ASSERT_TRUE(d.runUntil([&] { return !run.connect_error.empty(); }));
    EXPECT_EQ(run.connect_error, "TLS handshake timed out");
}

TEST(ClientConnectWss, RefusedIsATcpFailure) {
    // A bound socket that does not listen: connecting to it is refused, and the port cannot
    // be taken by anyone else meanwhile.
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
    ClientOptions opts;
    opts.insecure = true;
    LoopDriver d;
    EchoRun run;
    connect(d.loop, wssUrl("127.0.0.1", ntohs(a.sin_port)), opts, &run.behavior, run.callback());
    ASSERT_TRUE(d.runUntil([&] { return !run.connect_error.empty(); }));
    EXPECT_TRUE(run.connect_error.starts_with("connection refused")) << run.connect_error;
    ::close(s);
}

TEST(ClientConnectWss, UnreadableCaFileFailsBeforeAnyIo) {
    ClientOptions opts;
    opts.ca_file = "/nonexistent/ca.pem";
    LoopDriver d;
    EchoRun run;
    connect(d.loop, wssUrl("127.0.0.1", 9), opts, &run.behavior, run.callback());
    EXPECT_EQ(run.connect_error,
              "TLS setup failed: cannot load CA file /nonexistent/ca.pem: No such file or "
              "directory");
}

// --- registration failure ---------------------------------------------------------------

std::set<int> epollFds() {
    std::set<int> out;
    DIR* dir = opendir("/proc/self/fd");
    while (dirent* e = readdir(dir)) {
        char target[64] = {0};
        std::string path = std::string("/proc/self/fd/") + e->d_name;
        if (readlink(path.c_str(), target, sizeof target - 1) > 0 &&
            std::string(target) == "anon_inode:[eventpoll]") {
            out.insert(std::atoi(e->d_name));
        }
    }
    closedir(dir);
    return out;
}

size_t openFdCount() {
    size_t n = 0;
    DIR* dir = opendir("/proc/self/fd");
    while (readdir(dir) != nullptr) {
        ++n;
    }
    closedir(dir);
    return n;
}

// A real epoll_ctl failure: the loop's epoll fd number is made to point at /dev/null while
// connect() runs (EINVAL), then restored. The callback must still be called, once.
TEST(ClientConnect, ReportsAFailureToRegisterWithTheLoop) {
    for (bool tls : {false, true}) {
        const std::set<int> before = epollFds();
        auto d = std::make_unique<LoopDriver>();
        std::vector<int> created;
        for (int fd : epollFds()) {
            if (!before.contains(fd)) {
                created.push_back(fd);
            }
        }
        ASSERT_EQ(created.size(), 1u);
        const int epfd = created[0];
        d->spin();  // the loop's first run sets up its io_uring (one more fd, for good)
        const size_t fds_before = openFdCount();
        const int saved = ::dup(epfd);
        const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ASSERT_EQ(::dup2(devnull, epfd), epfd);

        int calls = 0;
        std::string error;
        transport::WebSocketBehavior behavior;
        ClientOptions opts;
        opts.insecure = true;
        auto url = parseWsUrl(tls ? "wss://127.0.0.1:9/" : "ws://127.0.0.1:9/");
        connect(d->loop, *url, opts, &behavior,
                [&](transport::WebSocket* ws, const std::string& err) {
                    ++calls;
                    error = err;
                    EXPECT_EQ(ws, nullptr);
                });
        ASSERT_EQ(::dup2(saved, epfd), epfd);
        ::close(saved);
        ::close(devnull);
        EXPECT_EQ(calls, 1);
        EXPECT_EQ(error, "cannot register the socket with the event loop: Invalid argument");
        d->spin();  // the failed connection is freed at the end of the iteration
        EXPECT_EQ(calls, 1);
        EXPECT_EQ(openFdCount(), fds_before) << "the socket leaked";
    }
}

}  // namespace
}  // namespace sb::client
