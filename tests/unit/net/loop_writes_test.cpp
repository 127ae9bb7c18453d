#include "net/loop_writes.h"

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/stream_conn.h"
#include "socket_reads.h"

namespace sb::net {
namespace {

class Probe : public StreamConn {
public:
    using StreamConn::StreamConn;

protected:
    void onData(uint8_t*, size_t) override {}
    void onEof() override { close(); }
};

// Connections over socketpairs on one loop; `peer[i]` is the far end of conn[i].
struct Rig {
    loop::EventLoop loop;
    std::vector<Probe*> conn;  // owned by the loop
    std::vector<int> peer;

    Rig(size_t n, bool batch) {
        StreamConn::installLoopHooks(loop, batch);
        for (size_t i = 0; i < n; ++i) {
            int sv[2];
            EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
            auto* c = new Probe(&loop, sv[0]);
            EXPECT_TRUE(c->attach());
            conn.push_back(c);
            peer.push_back(sv[1]);
        }
    }
    ~Rig() {
        for (int fd : peer) {
            ::close(fd);
        }
    }
    // Runs `fn` as one loop iteration's work, then that iteration's end (hooks, batch flush).
    void iteration(const std::function<void()>& fn) {
        loop.post(fn);
        loop.post([this] { loop.stop(); });
        loop.run();
    }
    // The ring is set up when the loop first runs (see SKIP_WITHOUT_IO_URING).
    bool batching() { return LoopWrites::of(loop).hasRing(); }
};

// Runs an empty iteration first: the ring is set up when the loop runs.
#define SKIP_WITHOUT_IO_URING(rig)                                                            \
    (rig).iteration([] {});                                                                   \
    if (!(rig).batching()) {                                                                  \
        GTEST_SKIP() << "io_uring is not available here (kernel.io_uring_disabled, seccomp)"; \
    }

TEST(LoopWrites, CorksOfOneIterationGoOutTogetherAtItsEnd) {
    Rig rig(50, true);
    SKIP_WITHOUT_IO_URING(rig);
    size_t queued_mid = 0;
    std::string seen_mid;
    rig.iteration([&] {
        for (size_t i = 0; i < rig.conn.size(); ++i) {
            const std::string m = "message " + std::to_string(i) + ";";
            rig.conn[i]->write(m.data(), m.size());
        }
        // Every cork but the last one's owner is queued, none sent yet.
        queued_mid = LoopWrites::of(rig.loop).queued();
        seen_mid = readAvailable(rig.peer[0]);
    });
    EXPECT_EQ(queued_mid, rig.conn.size() - 1);
    EXPECT_EQ(seen_mid, "");
    EXPECT_EQ(LoopWrites::of(rig.loop).queued(), 0u);
    for (size_t i = 0; i < rig.conn.size(); ++i) {
        EXPECT_EQ(readAvailable(rig.peer[i]), "message " + std::to_string(i) + ";");
    }
}

TEST(LoopWrites, WritingAgainAfterTheCorkWasQueuedKeepsOrder) {
    Rig rig(2, true);
    SKIP_WITHOUT_IO_URING(rig);
    rig.iteration([&] {
        rig.conn[0]->write("A1,", 3);
        rig.conn[1]->write("B1,", 3);  // A's cork joins the batch
        rig.conn[0]->write("A2,", 3);  // makes the batch first, then corks again
        rig.conn[1]->write("B2,", 3);
        rig.conn[0]->write2("A3,", 3, "A4", 2);
    });
    EXPECT_EQ(readAvailable(rig.peer[0]), "A1,A2,A3,A4");
    EXPECT_EQ(readAvailable(rig.peer[1]), "B1,B2,");
}

TEST(LoopWrites, PeerThatNeverReadsKeepsEveryByteInOrderInTheBacklog) {
    Rig rig(2, true);
    SKIP_WITHOUT_IO_URING(rig);
    // 8 MiB to a reader that never reads, in cork-sized writes that alternate with another
    // connection's, so each goes through the batch: the kernel soon refuses (EAGAIN, short
    // sends) and the rest must wait in the backlog, in order.
    std::string expected;
    const std::string chunk_b(100, 'b');
    for (int round = 0; round < 8; ++round) {
        rig.iteration([&] {
            for (int k = 0; k < 16; ++k) {
                std::string chunk(60 * 1024, '\0');
                for (size_t i = 0; i < chunk.size(); ++i) {
                    chunk[i] = static_cast<char>('a' + (expected.size() + i) % 23);
                }
                rig.conn[0]->write(chunk.data(), chunk.size());
                expected += chunk;
                rig.conn[1]->write(chunk_b.data(), chunk_b.size());
            }
        });
        EXPECT_EQ(readAvailable(rig.peer[1]).size(), 16 * chunk_b.size());
    }
    const size_t backlog = rig.conn[0]->backlogBytes();
    EXPECT_GT(backlog, 4u << 20);  // a socketpair holds far less than 8 MiB
    EXPECT_EQ(rig.loop.backlog_bytes.load(), backlog);
    // The reader starts reading: the backlog drains on EPOLLOUT edges, bytes in order.
    std::string got;
    for (int i = 0; i < 100000 && got.size() < expected.size(); ++i) {
        got += readAvailable(rig.peer[0]);
        rig.iteration([] {});
    }
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected);
    EXPECT_EQ(rig.conn[0]->backlogBytes(), 0u);
}

TEST(LoopWrites, FloodOfSmallWritesFromManyConnectionsArrivesWhole) {
    // More queued sends than the submission queue holds, and more bytes than the arena: the
    // batch is made early, as often as needed, and nothing is lost or reordered.
    Rig rig(300, true);
    SKIP_WITHOUT_IO_URING(rig);
    std::vector<std::string> expected(rig.conn.size());
    rig.iteration([&] {
        for (int round = 0; round < 8; ++round) {
            for (size_t i = 0; i < rig.conn.size(); ++i) {
                std::string m(1000 + i, static_cast<char>('A' + (round + i) % 26));
                rig.conn[i]->write(m.data(), m.size());
                expected[i] += m;
            }
        }
    });
    for (size_t i = 0; i < rig.conn.size(); ++i) {
        EXPECT_TRUE(readAvailable(rig.peer[i]) == expected[i]) << "connection " << i;
    }
}

TEST(LoopWrites, CloseSendsWhatWasQueuedBeforeTheSocketCloses) {
    Rig rig(2, true);
    SKIP_WITHOUT_IO_URING(rig);
    rig.iteration([&] {
        rig.conn[0]->write("bye", 3);
        rig.conn[1]->write("x", 1);  // conn 0's cork is queued
        rig.conn[0]->close();
    });
    EXPECT_EQ(readAvailable(rig.peer[0]), "bye");
    char c;
    EXPECT_EQ(::recv(rig.peer[0], &c, 1, MSG_DONTWAIT), 0);  // then EOF
    EXPECT_EQ(readAvailable(rig.peer[1]), "x");
}

TEST(LoopWrites, ShutdownWriteSendsQueuedBytesBeforeTheFin) {
    Rig rig(2, true);
    SKIP_WITHOUT_IO_URING(rig);
    rig.iteration([&] {
        rig.conn[0]->write("last words", 10);
        rig.conn[1]->write("x", 1);
        rig.conn[0]->shutdownWrite();
    });
    EXPECT_EQ(readAvailable(rig.peer[0]), "last words");
    char c;
    EXPECT_EQ(::recv(rig.peer[0], &c, 1, MSG_DONTWAIT), 0);
}

// What Docker's default seccomp profile does: io_uring_setup fails with EPERM. For good (a
// filter cannot be removed), so only in a child process.
bool denyIoUring() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

TEST(LoopWrites, WhereTheKernelRefusesIoUringEachCorkIsSentAtOnce) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (!denyIoUring()) {
            _exit(2);
        }
        int code = 0;
        {
            Rig rig(2, true);  // asks for batching; the kernel says no
            std::string seen_mid;
            rig.iteration([&] {
                rig.conn[0]->write("A", 1);
                rig.conn[1]->write("B", 1);
                seen_mid = readAvailable(rig.peer[0]);
            });
            code = rig.batching()                      ? 3
                   : seen_mid != "A"                   ? 4
                   : readAvailable(rig.peer[1]) != "B" ? 5
                                                       : 0;
        }
        _exit(code);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    // 2: no seccomp here; 3: batching on anyway; 4, 5: bytes missing.
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LoopWrites, WithoutBatchingAChangeOfCorkSendsAtOnce) {
    Rig rig(2, false);
    std::string seen_mid;
    rig.iteration([&] {
        rig.conn[0]->write("A", 1);
        rig.conn[1]->write("B", 1);
        seen_mid = readAvailable(rig.peer[0]);
    });
    EXPECT_FALSE(rig.batching());
    EXPECT_EQ(seen_mid, "A");
    EXPECT_EQ(readAvailable(rig.peer[1]), "B");
}

// When a ring closes, the kernel interrupts every thread that set it up or submitted to it and
// is still alive (task work with TWA_SIGNAL): a blocking call there can fail with EINTR, and a
// socket read with SO_RCVTIMEO does. So only the loop's thread, while it runs the loop, may
// touch the ring: here the thread that builds the loop and destroys it afterwards (an app's
// main thread, say) must not feel the ring at all.
TEST(LoopWrites, OnlyTheLoopThreadTouchesTheRing) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    timeval tv{2, 0};  // covers the kernel's deferred teardown of the ring
    ASSERT_EQ(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    bool batched = false;
    {
        Rig rig(2, true);
        std::thread runner([&] {
            rig.iteration([&] {
                rig.conn[0]->write("A", 1);
                rig.conn[1]->write("B", 1);  // A's cork is queued on the ring
                batched = LoopWrites::of(rig.loop).queued() == 1;
            });
        });
        runner.join();
        EXPECT_EQ(readAvailable(rig.peer[0]), "A");
        EXPECT_EQ(readAvailable(rig.peer[1]), "B");
        // After the loop stopped, a deferred send from another thread is made at once: it
        // does not wait on the ring.
        rig.conn[0]->write("C", 1);
        rig.conn[0]->uncork(true);
        EXPECT_EQ(readAvailable(rig.peer[0]), "C");
    }  // the ring closes here, on this thread
    if (!batched) {
        GTEST_SKIP() << "io_uring is not available here (kernel.io_uring_disabled, seccomp)";
    }
    char c;
    errno = 0;
    EXPECT_EQ(::recv(sv[0], &c, 1, 0), -1);
    EXPECT_EQ(errno, EAGAIN) << std::strerror(errno) << ": this thread was interrupted";
    ::close(sv[0]);
    ::close(sv[1]);
}

}  // namespace
}  // namespace sb::net
