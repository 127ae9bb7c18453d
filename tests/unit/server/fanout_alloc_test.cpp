// The fan-out path allocates per publication, never per subscriber:
// count every operator new in the process while publications reach N subscribers, for two
// values of N, and compare. The subscribers are plain blocking sockets read into fixed buffers
// so the test side allocates nothing while counting.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "server/app.h"
#include "server/messaging.h"

namespace {
std::atomic<uint64_t> g_allocs{0};
}  // namespace

// With the replacement operator delete inlined, GCC 12 at -O2 reports free() of objects it
// cannot prove are heap-allocated (a false positive: every pointer here came from our new).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

void* operator new(size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n))
        return p;
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n))
        return p;
    throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
    std::free(p);
}

namespace sb::server {
namespace {

// A minimal blocking client: handshake, connect, subscribe; then counts "message" events.
struct RawSub {
    int fd = -1;
    size_t messages = 0;
    char buf[65536];
    size_t len = 0;

    void sendFrame(std::string_view text) {
        uint8_t frame[512];
        size_t n = 0;
        frame[n++] = 0x81;
        frame[n++] = static_cast<uint8_t>(0x80 | text.size());  // < 126 bytes here
        const uint8_t key[4] = {1, 2, 3, 4};
        std::memcpy(frame + n, key, 4);
        n += 4;
        for (size_t i = 0; i < text.size(); ++i)
            frame[n++] = text[i] ^ key[i % 4];
        ASSERT_EQ(::send(fd, frame, n, 0), static_cast<ssize_t>(n));
    }
    // Reads until `want` more server frames containing "type":"message" have arrived.
    void readMessages(size_t want) {
        size_t target = messages + want;
        while (messages < target) {
            ssize_t r = ::recv(fd, buf + len, sizeof buf - len, 0);
            ASSERT_GT(r, 0);
            len += static_cast<size_t>(r);
            size_t off = 0;
            while (len - off >= 2) {
                size_t plen = static_cast<uint8_t>(buf[off + 1]) & 0x7f;
                size_t hl = 2;
                if (plen == 126) {
                    if (len - off < 4)
                        break;
                    plen = (static_cast<uint8_t>(buf[off + 2]) << 8) |
                           static_cast<uint8_t>(buf[off + 3]);
                    hl = 4;
                }
                if (len - off < hl + plen)
                    break;
                std::string_view payload(buf + off + hl, plen);
                if (payload.find("\"type\":\"message\"") != std::string_view::npos)
                    ++messages;
                off += hl + plen;
            }
            std::memmove(buf, buf + off, len - off);
            len -= off;
        }
    }
    void open(uint16_t port) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string req =
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
        // Read the 101 head.
        std::string head;
        char c;
        while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1)
            head += c;
        ASSERT_NE(head.find(" 101 "), std::string::npos)
            << "head: '" << head << "', recv: " << std::strerror(errno);
        sendFrame(R"({"type":"connect"})");
        sendFrame(R"({"type":"subscribe","channel":"room:1"})");
    }
    // Waits for the connected + subscribed replies (two text frames).
    void waitReplies() {
        size_t frames = 0;
        while (frames < 2) {
            ssize_t r = ::recv(fd, buf + len, sizeof buf - len, 0);
            ASSERT_GT(r, 0);
            len += static_cast<size_t>(r);
            size_t off = 0;
            while (len - off >= 2) {
                size_t plen = static_cast<uint8_t>(buf[off + 1]) & 0x7f;
                if (len - off < 2 + plen)
                    break;
                off += 2 + plen;
                ++frames;
            }
            std::memmove(buf, buf + off, len - off);
            len -= off;
        }
    }
    ~RawSub() {
        if (fd >= 0)
            ::close(fd);
    }
};

uint64_t allocationsForFanout(size_t subscribers, size_t publications) {
    ServerOptions o{.host = "127.0.0.1",
                    .port = 0,
                    .threads = 1,
                    .handle_signals = false,
                    .print_listening = false};
    App app(o);
    messaging::Options mo;
    mo.namespaces["room"] = {};
    transport::WebSocketBehavior base;
    base.ping_interval_ms = 0;
    base.idle_timeout_ms = 0;
    Messaging m(app, std::move(mo), base, ws::DeflateServerPolicy{.enabled = false});
    EXPECT_TRUE(app.listen().has_value());
    m.attach();
    std::thread server([&] { app.run(); });
    std::vector<std::unique_ptr<RawSub>> subs(subscribers);
    for (auto& s : subs) {
        s = std::make_unique<RawSub>();
        s->open(app.port());
    }
    for (auto& s : subs)
        s->waitReplies();
    const std::string data = R"({"n":12345678})";
    // Warm-up: lets per-loop scratch buffers reach their steady size.
    for (int i = 0; i < 20; ++i)
        (void)m.hub().publish(nullptr, "room:1", data, {});
    for (auto& s : subs)
        s->readMessages(20);
    const uint64_t before = g_allocs.load();
    for (size_t i = 0; i < publications; ++i) {
        (void)m.hub().publish(nullptr, "room:1", data, {});
        for (auto& s : subs)
            s->readMessages(1);  // one at a time: no batching effects
    }
    const uint64_t used = g_allocs.load() - before;
    subs.clear();
    app.stop();
    server.join();
    return used;
}

TEST(FanoutAllocations, DoNotGrowWithSubscribers) {
    const size_t pubs = 50;
    const uint64_t few = allocationsForFanout(5, pubs);
    const uint64_t many = allocationsForFanout(100, pubs);
    std::printf("allocations for %zu publications: %llu with 5 subscribers, %llu with 100\n", pubs,
                static_cast<unsigned long long>(few), static_cast<unsigned long long>(many));
    // Per publication a handful of allocations (the publication, its event, the loop task),
    // independent of the subscriber count: 20x the subscribers may not add even one per pub.
    EXPECT_LT(many, few + pubs);
    EXPECT_LT(few / pubs, 20u);
}

}  // namespace
}  // namespace sb::server
