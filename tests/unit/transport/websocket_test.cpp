// Both roles of transport::WebSocket talking over a socketpair on one loop: echo, ping/pong,
// the close handshake in both directions, protocol errors, idle timeout and slow consumers.
#include "transport/websocket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace sb::transport {
namespace {

struct Pair {
    loop::EventLoop loop;
    WebSocketBehavior server_b, client_b;
    WebSocket* server = nullptr;
    WebSocket* client = nullptr;
    std::vector<std::string> client_got;
    std::vector<uint16_t> server_closes, client_closes;

    Pair() {
        net::StreamConn::installLoopHooks(loop);
        for (auto* b : {&server_b, &client_b}) {
            b->ping_interval_ms = 0;
            b->idle_timeout_ms = 0;
        }
        server_b.on_message = [](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
            ws.send(op, d);
        };
        server_b.on_close = [this](WebSocket&, uint16_t code, std::string_view) {
            server_closes.push_back(code);
            server = nullptr;
        };
        client_b.on_message = [this](WebSocket&, ws::Opcode, std::span<uint8_t> d) {
            client_got.emplace_back(reinterpret_cast<char*>(d.data()), d.size());
        };
        client_b.on_close = [this](WebSocket&, uint16_t code, std::string_view) {
            client_closes.push_back(code);
            client = nullptr;
        };
    }

    void open(bool deflate = false) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        std::optional<ws::DeflateParams> p;
        if (deflate) {
            p = ws::DeflateParams{};
        }
        server = new WebSocket(&loop, sv[0], &server_b, ws::Role::kServer, p);
        client = new WebSocket(&loop, sv[1], &client_b, ws::Role::kClient, p);
        ASSERT_TRUE(server->attach());
        ASSERT_TRUE(client->attach());
        server->start();
        client->start();
    }

    // Runs the loop until `done` holds or the deadline passes.
    template <class F>
    bool runUntil(F done, uint64_t ms = 5000) {
        const uint64_t deadline = loop::EventLoop::monotonicMs() + ms;
        bool ok = false;
        loop.addIterationHook([&] {
            if (!ok && (done() || loop::EventLoop::monotonicMs() > deadline)) {
                ok = done();
                loop.stop();
            }
        });
        loop.run();
        return ok;
    }
};

TEST(WebSocket, EchoTextAndBinaryBothRoles) {
    Pair p;
    p.open();
    p.client->sendText("hello");
    std::string big(300'000, 'z');
    p.client->send(ws::Opcode::kBinary, {reinterpret_cast<const uint8_t*>(big.data()), big.size()},
                   {.fragment_size = 4096});
    ASSERT_TRUE(p.runUntil([&] { return p.client_got.size() == 2; }));
    EXPECT_EQ(p.client_got[0], "hello");
    EXPECT_EQ(p.client_got[1], big);
}

TEST(WebSocket, EchoWithPermessageDeflate) {
    Pair p;
    p.open(true);
    std::string text;
    for (int i = 0; i < 2000; ++i) {
        text += "compress me " + std::to_string(i % 10) + " ";
    }
    for (int i = 0; i < 3; ++i) {  // context takeover across messages
        p.client->sendText(text);
    }
    ASSERT_TRUE(p.runUntil([&] { return p.client_got.size() == 3; }));
    for (auto& m : p.client_got) {
        EXPECT_EQ(m, text);
    }
}

TEST(WebSocket, ClientInitiatedCloseHandshake) {
    Pair p;
    p.open();
    p.client->end(4001, "bye");
    ASSERT_TRUE(p.runUntil([&] { return !p.client_closes.empty() && !p.server_closes.empty(); }));
    EXPECT_EQ(p.server_closes[0], 4001);
    EXPECT_EQ(p.client_closes[0], 4001);  // the server echoes the code
}

TEST(WebSocket, ServerInitiatedGoingAway) {
    Pair p;
    p.open();
    p.server->end(ws::close_code::kGoingAway, "server shutting down; reconnect");
    ASSERT_TRUE(p.runUntil([&] { return !p.client_closes.empty() && !p.server_closes.empty(); }));
    EXPECT_EQ(p.client_closes[0], ws::close_code::kGoingAway);
}

TEST(WebSocket, IdlePeerIsDroppedAfterIdleTimeout) {
    Pair p;
    p.server_b.ping_interval_ms = 1000;
    p.server_b.idle_timeout_ms = 1000;
    // The client never answers pings: its behavior has no automatic reply to suppress, so
    // model a dead peer by opening only the server side on a socketpair we never read.
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.server = new WebSocket(&p.loop, sv[0], &p.server_b, ws::Role::kServer, std::nullopt);
    ASSERT_TRUE(p.server->attach());
    p.server->start();
    const uint64_t start = loop::EventLoop::monotonicMs();
    ASSERT_TRUE(p.runUntil([&] { return !p.server_closes.empty(); }, 5000));
    EXPECT_EQ(p.server_closes[0], ws::close_code::kGoingAway);
    EXPECT_GE(loop::EventLoop::monotonicMs() - start, 1000u);
    ::close(sv[1]);
}

TEST(WebSocket, ProtocolErrorClosesWith1002) {
    Pair p;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.server = new WebSocket(&p.loop, sv[0], &p.server_b, ws::Role::kServer, std::nullopt);
    ASSERT_TRUE(p.server->attach());
    p.server->start();
    const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};  // client frames must be masked
    ASSERT_EQ(::write(sv[1], unmasked, sizeof unmasked), 4);
    ASSERT_TRUE(p.runUntil([&] { return !p.server_closes.empty(); }));
    EXPECT_EQ(p.server_closes[0], ws::close_code::kProtocolError);
    uint8_t buf[256];
    ssize_t n = ::read(sv[1], buf, sizeof buf);
    ASSERT_GE(n, 4);
    EXPECT_EQ(buf[0], 0x88);                  // a close frame
    EXPECT_EQ((buf[2] << 8) | buf[3], 1002);  // with code 1002
    ::close(sv[1]);
}

TEST(WebSocket, SlowConsumerIsDisconnectedAtBacklogLimit) {
    Pair p;
    p.server_b.max_backlog = 1 << 20;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.server = new WebSocket(&p.loop, sv[0], &p.server_b, ws::Role::kServer, std::nullopt);
    ASSERT_TRUE(p.server->attach());
    p.server->start();
    std::string chunk(64 * 1024, 'x');
    int sent = 0;
    SendStatus st = SendStatus::kWritten;
    while (sent < 1000) {  // the peer never reads
        st = p.server->sendText(chunk);
        if (!transport::sent(st)) {
            break;
        }
        p.server->uncork();
        ++sent;
    }
    EXPECT_EQ(st, SendStatus::kOverLimit);
    EXPECT_LT(sent, 100);  // cut off near 1 MiB of backlog, not after 64 MiB
    // The end is reported later, never inside the send that decided it.
    EXPECT_TRUE(p.server_closes.empty());
    EXPECT_EQ(p.server->sendText("more"), SendStatus::kClosed);
    ASSERT_TRUE(p.runUntil([&] { return !p.server_closes.empty(); }));
    EXPECT_EQ(p.server_closes[0], ws::close_code::kPolicyViolation);
    ::close(sv[1]);
}

TEST(WebSocket, DroppableSendPastTheLimitKeepsTheConnection) {
    Pair p;
    p.server_b.max_backlog = 256 * 1024;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.server = new WebSocket(&p.loop, sv[0], &p.server_b, ws::Role::kServer, std::nullopt);
    ASSERT_TRUE(p.server->attach());
    p.server->start();
    std::string chunk(64 * 1024, 'x');
    int accepted = 0;
    int dropped = 0;
    for (int i = 0; i < 200; ++i) {  // the peer never reads
        SendStatus st = p.server->sendText(chunk, {.droppable = true});
        ASSERT_NE(st, SendStatus::kOverLimit);
        ASSERT_NE(st, SendStatus::kClosed);
        (st == SendStatus::kDropped ? dropped : accepted) += 1;
        p.server->uncork();
    }
    EXPECT_GT(dropped, 0);
    EXPECT_LT(accepted, 200);
    EXPECT_TRUE(p.server->isOpen());
    // A send that may not be dropped is the slow-consumer case.
    EXPECT_EQ(p.server->sendText(chunk), SendStatus::kOverLimit);
    ASSERT_TRUE(p.runUntil([&] { return !p.server_closes.empty(); }));
    EXPECT_EQ(p.server_closes[0], ws::close_code::kPolicyViolation);
    ::close(sv[1]);
}

}  // namespace
}  // namespace sb::transport
