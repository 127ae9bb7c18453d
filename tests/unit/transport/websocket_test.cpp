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
        open(deflate ? std::optional<ws::DeflateParams>(ws::DeflateParams{}) : std::nullopt);
    }
    void open(std::optional<ws::DeflateParams> p) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
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

std::span<const uint8_t> bytesOf(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(WebSocket, EchoWithPermessageDeflateWithoutServerTakeover) {
    Pair p;
    p.open(ws::DeflateParams{.server_no_context_takeover = true});
    std::string text;
    for (int i = 0; i < 2000; ++i) {
        text += "compress me " + std::to_string(i % 7) + " ";
    }
    for (int i = 0; i < 3; ++i) {  // the server side resets; the client side keeps its context
        p.client->sendText(text);
    }
    p.client->sendText("short");
    ASSERT_TRUE(p.runUntil([&] { return p.client_got.size() == 4; }));
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(p.client_got[i], text);
    }
    EXPECT_EQ(p.client_got[3], "short");
}

TEST(WebSocket, ConnectionsWithoutTakeoverShareTheLoopsZlibStreams) {
    // Two connections on one thread, no context takeover either way: both servers inflate
    // with the thread's one shared inflater and compress with its one shared deflater, which
    // reset after every message; each must read exactly what its own client sent, whatever
    // the other connection ran through the same streams before.
    const ws::DeflateParams none{.server_no_context_takeover = true,
                                 .client_no_context_takeover = true};
    Pair a, b;
    a.open(none);
    b.open(none);
    std::string ta, tb;
    for (int i = 0; i < 1500; ++i) {
        ta += "alpha " + std::to_string(i % 11) + " ";
        tb += "beta " + std::to_string(i % 5) + " ";
    }
    for (int i = 0; i < 3; ++i) {
        a.client->sendText(ta + std::to_string(i));
        b.client->sendText(tb + std::to_string(i));
    }
    ASSERT_TRUE(a.runUntil([&] { return a.client_got.size() == 3; }));
    ASSERT_TRUE(b.runUntil([&] { return b.client_got.size() == 3; }));
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(a.client_got[i], ta + std::to_string(i));
        EXPECT_EQ(b.client_got[i], tb + std::to_string(i));
    }
}

TEST(WebSocket, SharedFramesOnlyWithoutServerTakeoverAtFullWindow) {
    Pair a;
    a.open(ws::DeflateParams{.server_no_context_takeover = true});
    EXPECT_TRUE(a.server->sharesFrames());
    EXPECT_FALSE(a.client->sharesFrames());  // client frames are masked, never shared
    Pair b;
    b.open(ws::DeflateParams{});  // context takeover: each connection compresses its own
    EXPECT_FALSE(b.server->sharesFrames());
    Pair c;
    c.open(ws::DeflateParams{.server_no_context_takeover = true, .server_max_window_bits = 10});
    EXPECT_FALSE(c.server->sharesFrames());  // a 15-bit frame may reach too far back for it
    Pair d;
    d.open(false);
    EXPECT_FALSE(d.server->sharesFrames());
}

TEST(WebSocket, SharedFrameIsBuiltOnceAndReadByEverySharingPeer) {
    std::string text;
    for (int i = 0; i < 3000; ++i) {
        text += "{\"channel\":\"chat:lobby\",\"n\":" + std::to_string(i % 13) + "}";
    }
    Pair p;
    p.open(ws::DeflateParams{.server_no_context_takeover = true});
    std::string big, big_again, small;
    WebSocket::buildSharedFrame(p.server_b, ws::Opcode::kText, bytesOf(text), &big);
    WebSocket::buildSharedFrame(p.server_b, ws::Opcode::kText, bytesOf(text), &big_again);
    WebSocket::buildSharedFrame(p.server_b, ws::Opcode::kText, bytesOf("tiny"), &small);
    // The shared compressor keeps no context: the same payload gives the same bytes.
    EXPECT_EQ(big, big_again);
    EXPECT_LT(big.size(), text.size() / 4);
    EXPECT_EQ(static_cast<uint8_t>(big[0]), 0xC1);    // FIN | RSV1 | text
    EXPECT_EQ(static_cast<uint8_t>(small[0]), 0x81);  // under compress_min_size: plain
    // One frame, written to the same peer several times (as to several subscribers), with
    // uncompressed messages between: each inflates on its own.
    for (int i = 0; i < 3; ++i) {
        EXPECT_NE(p.server->sendFrameBytes(bytesOf(big)), SendStatus::kClosed);
        EXPECT_NE(p.server->sendFrameBytes(bytesOf(small)), SendStatus::kClosed);
    }
    p.server->sendText(text);  // and a per-connection send through the shared compressor
    ASSERT_TRUE(p.runUntil([&] { return p.client_got.size() == 7; }));
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(p.client_got[2 * i], text);
        EXPECT_EQ(p.client_got[2 * i + 1], "tiny");
    }
    EXPECT_EQ(p.client_got[6], text);
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

TEST(WebSocket, SharedFramesToAPeerThatNeverReadsStopAtTheLimit) {
    Pair p;
    p.server_b.max_backlog = 1 << 20;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.server = new WebSocket(&p.loop, sv[0], &p.server_b, ws::Role::kServer,
                             ws::DeflateParams{.server_no_context_takeover = true});
    ASSERT_TRUE(p.server->attach());
    p.server->start();
    std::string payload;  // incompressible-ish, so each frame is ~64 KiB
    uint32_t x = 12345;
    for (int i = 0; i < 64 * 1024; ++i) {
        x = x * 1103515245 + 12345;
        payload.push_back(static_cast<char>('a' + (x >> 16) % 26));
    }
    std::string frame;
    WebSocket::buildSharedFrame(p.server_b, ws::Opcode::kText, bytesOf(payload), &frame);
    // Droppable deliveries past the limit are skipped and the connection stays...
    int sent = 0;
    SendStatus st = SendStatus::kWritten;
    while (sent < 1000) {
        st = p.server->sendFrameBytes(bytesOf(frame), true);
        if (!transport::sent(st)) {
            break;
        }
        p.server->uncork();
        ++sent;
    }
    EXPECT_EQ(st, SendStatus::kDropped);
    EXPECT_LT(sent, 100);
    // ...a non-droppable one past it closes the slow consumer, reported later.
    EXPECT_EQ(p.server->sendFrameBytes(bytesOf(frame), false), SendStatus::kOverLimit);
    EXPECT_TRUE(p.server_closes.empty());
    EXPECT_EQ(p.server->sendFrameBytes(bytesOf(frame)), SendStatus::kClosed);
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
