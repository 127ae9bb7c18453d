#include "net/stream_conn.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "socket_reads.h"

namespace sb::net {
namespace {

// Records what arrives; writes are driven by the test.
class Probe : public StreamConn {
public:
    using StreamConn::StreamConn;
    std::string received;
    bool eof = false;
    int drained = 0;

protected:
    void onData(uint8_t* data, size_t len) override {
        received.append(reinterpret_cast<char*>(data), len);
    }
    void onEof() override {
        eof = true;
        close();
    }
    void onDrained() override { ++drained; }
};

TEST(StreamConn, CorkedWritesLeaveInOrderAtUncork) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    loop::EventLoop loop;
    StreamConn::installLoopHooks(loop);
    auto* a = new Probe(&loop, sv[0]);
    ASSERT_TRUE(a->attach());
    a->write("one,", 4);
    a->write2("two,", 4, "three", 5);
    EXPECT_EQ(readAvailable(sv[1]), "");  // still corked: nothing sent yet
    a->uncork();
    EXPECT_EQ(readAvailable(sv[1]), "one,two,three");
    a->close();
    ::close(sv[1]);
    loop.post([&] { loop.stop(); });
    loop.run();
}

TEST(StreamConn, SecondWriterFlushesTheFirstCorkKeepingOrder) {
    int s1[2], s2[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2), 0);
    loop::EventLoop loop;
    auto* a = new Probe(&loop, s1[0]);
    auto* b = new Probe(&loop, s2[0]);
    a->write("A1", 2);
    b->write("B1", 2);  // takes the cork: A's bytes go out now
    EXPECT_EQ(readAvailable(s1[1]), "A1");
    a->write("A2", 2);
    b->uncork();  // not the owner anymore: no effect
    EXPECT_EQ(readAvailable(s2[1]), "B1");
    a->uncork();
    EXPECT_EQ(readAvailable(s1[1]), "A2");
    a->close();
    b->close();
    ::close(s1[1]);
    ::close(s2[1]);
    loop.post([&] { loop.stop(); });
    loop.run();
}

TEST(StreamConn, BacklogKeepsWhatTheKernelRefusedAndDrainsOnWritable) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    loop::EventLoop loop;
    StreamConn::installLoopHooks(loop);
    auto* a = new Probe(&loop, sv[0]);
    ASSERT_TRUE(a->attach());
    std::string big(8 << 20, 'x');
    for (size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>('a' + i % 23);
    }
    a->write(big.data(), big.size());
    a->uncork();
    EXPECT_GT(a->backlogBytes(), 0u);  // a socketpair holds far less than 8 MiB
    std::string got;
    // Read on the other side while the loop flushes the backlog on EPOLLOUT edges.
    while (got.size() < big.size()) {
        got += readAvailable(sv[1]);
        loop.post([] {});
        loop.post([&] { loop.stop(); });
        loop.run();
    }
    EXPECT_EQ(got.size(), big.size());
    EXPECT_TRUE(got == big);
    EXPECT_EQ(a->backlogBytes(), 0u);
    EXPECT_GE(a->drained, 1);
    a->close();
    ::close(sv[1]);
}

TEST(StreamConn, ReadsAndEof) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    loop::EventLoop loop;
    auto* a = new Probe(&loop, sv[0]);
    ASSERT_TRUE(a->attach());
    ASSERT_EQ(::write(sv[1], "hello", 5), 5);
    ::close(sv[1]);
    bool done = false;
    std::string seen;
    // The probe closes itself on EOF; observe before it is freed at the iteration's end.
    loop.addIterationHook([&] {
        if (a && a->eof && !done) {
            done = true;
            seen = a->received;
            a = nullptr;
            loop.stop();
        }
    });
    loop.run();
    EXPECT_TRUE(done);
    EXPECT_EQ(seen, "hello");
}

}  // namespace
}  // namespace sb::net
