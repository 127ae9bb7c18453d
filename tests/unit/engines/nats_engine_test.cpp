// The NATS engine against a real nats-server with JetStream (Debian's, started here on a free
// loopback port with its store in a temporary directory): the broker::Engine contract with two
// engines standing for two nodes — one order per channel on every node (also with publishers
// racing on several nodes and threads), recovery and history, idempotency, presence across nodes
// and the reaping of a dead node's entries, session records with their holder fence, control
// messages, and the outage paths (NATS frozen, restarted with its store, restarted empty, one
// node's link cut while the others go on publishing).
#include "engines/nats/nats_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sb::engines::nats {
namespace {

using broker::Event;
using broker::EventKind;
using broker::NamespaceOptions;
using broker::StreamPos;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string natsServerPath() {
    for (const char* p : {"/usr/bin/nats-server", "/usr/sbin/nats-server"}) {
        if (::access(p, X_OK) == 0) {
            return p;
        }
    }
    return {};
}

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

// A port nobody listens on, below the kernel's ephemeral range (32768+ on Debian): a port the OS
// picked for us is handed out again to outgoing connections (other tests, the server's own
// clients), and a nats-server restarted on it may find it taken.
uint16_t freePort() {
    static std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> pick(20000, 32000);
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto port = static_cast<uint16_t>(pick(rng));
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a = loopback(port);
        const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (free) {
            return port;
        }
    }
    return 0;
}

bool canConnect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    }
    return cond();
}

// A nats-server child with JetStream, its store in `store` (kept across restarts unless wiped).
class NatsServer {
public:
    NatsServer(uint16_t port, std::string store, std::string log)
        : port_(port), store_(std::move(store)), log_(std::move(log)) {
        start();
    }
    ~NatsServer() { stop(SIGKILL); }
    void start() {
        const std::string bin = natsServerPath();
        // The log is appended to across restarts: only what this start writes counts.
        std::error_code ec;
        const uintmax_t from = fs::exists(log_, ec) ? fs::file_size(log_, ec) : 0;
        pid_ = ::fork();
        if (pid_ == 0) {
            const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(out, 1);
            ::dup2(out, 2);
            const std::string p = std::to_string(port_);
            std::vector<std::string> args = {bin, "-a", "127.0.0.1", "-p", p, "-js", "-sd", store_};
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            ::execv(bin.c_str(), argv.data());
            ::_exit(127);
        }
        // Ours, listening, JetStream up: its log says so (a port that answers could be someone
        // else's).
        ASSERT_TRUE(eventually(
            [&] {
                std::ifstream in(log_);
                std::string text((std::istreambuf_iterator<char>(in)), {});
                return text.find("Server is ready", from) != std::string::npos &&
                       ::waitpid(pid_, nullptr, WNOHANG) == 0 && canConnect(port_);
            },
            10s))
            << "nats-server did not start on port " << port_ << " (see " << log_ << ")";
    }
    // SIGKILL: as a crash. SIGTERM: a clean shutdown (JetStream flushes its store).
    void stop(int sig = SIGKILL) {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, sig);
        ::kill(pid_, SIGCONT);  // a frozen server handles SIGTERM only once it runs
        int status = 0;
        const bool gone =
            eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 15s);
        if (!gone) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
        pid_ = -1;
    }
    void freeze() { ::kill(pid_, SIGSTOP); }
    void thaw() { ::kill(pid_, SIGCONT); }
    void wipe() { fs::remove_all(store_); }
    uint16_t port() const { return port_; }
    const std::string& store() const { return store_; }

private:
    uint16_t port_;
    std::string store_;
    std::string log_;
    pid_t pid_ = -1;
};

// A TCP proxy in front of NATS for one node: cut() drops that node's link (and refuses it until
// restore()) while the other nodes, connected directly, go on.
class Proxy {
public:
    explicit Proxy(uint16_t upstream) : upstream_(upstream) {
        lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a = loopback(0);
        ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(lfd_, 16);
        socklen_t len = sizeof a;
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { acceptLoop(); });
    }
    ~Proxy() {
        stop_ = true;
        cut();
        acceptor_.join();
        for (auto& t : pumps_) {
            t.join();
        }
        ::close(lfd_);
    }
    uint16_t port() const { return port_; }
    void cut() {
        std::lock_guard lock(mu_);
        down_ = true;
        for (const int fd : fds_) {
            ::shutdown(fd, SHUT_RDWR);
        }
    }
    void restore() {
        std::lock_guard lock(mu_);
        down_ = false;
    }

private:
    void acceptLoop() {
        while (!stop_) {
            pollfd p{lfd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) {
                continue;
            }
            const int c = ::accept(lfd_, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            std::lock_guard lock(mu_);
            if (down_ || stop_) {
                ::close(c);
                continue;
            }
            const int u = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a = loopback(upstream_);
            if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(u);
                ::close(c);
                continue;
            }
            fds_.insert(c);
            fds_.insert(u);
            pumps_.emplace_back([this, c, u] { pump(c, u); });
        }
    }
    static bool sendAll(int fd, const char* p, size_t n) {
        while (n > 0) {
            const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
            if (w <= 0) {
                return false;
            }
            p += w;
            n -= static_cast<size_t>(w);
        }
        return true;
    }
    void pump(int a, int b) {
        char buf[16384];
        pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        bool open = true;
        while (open && !stop_) {
            if (::poll(p, 2, 100) < 0) {
                break;
            }
            for (int i = 0; i < 2 && open; ++i) {
                if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                    const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
                    open = n > 0 && sendAll(p[1 - i].fd, buf, static_cast<size_t>(n));
                }
            }
        }
        std::lock_guard lock(mu_);
        fds_.erase(a);
        fds_.erase(b);
        ::shutdown(a, SHUT_RDWR);
        ::shutdown(b, SHUT_RDWR);
        ::close(a);
        ::close(b);
    }

    uint16_t upstream_;
    uint16_t port_ = 0;
    int lfd_ = -1;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    bool down_ = false;
    std::set<int> fds_;
    std::vector<std::thread> pumps_;
    std::thread acceptor_;
};

struct Seen {
    std::string epoch;
    uint64_t offset = 0;
    std::string data;
    bool operator==(const Seen&) const = default;
};

class Sink : public broker::LoopSink {
public:
    void deliver(uint32_t loop_id, Event ev) override {
        std::lock_guard lock(mu_);
        events_.emplace_back(loop_id, std::move(ev));
    }
    void control(std::string_view message) override {
        std::lock_guard lock(mu_);
        controls_.emplace_back(message);
    }
    std::vector<std::string> controls() {
        std::lock_guard lock(mu_);
        return controls_;
    }
    std::vector<Event> events(EventKind kind, std::string_view channel = {}) {
        std::lock_guard lock(mu_);
        std::vector<Event> out;
        for (const auto& [loop, ev] : events_) {
            const std::string_view ch = ev.pub ? std::string_view(ev.pub->channel) : ev.channel;
            if (ev.kind == kind && (channel.empty() || ch == channel)) {
                out.push_back(ev);
            }
        }
        return out;
    }
    std::vector<uint64_t> offsets(std::string_view channel = {}) {
        std::vector<uint64_t> out;
        for (const Event& ev : events(EventKind::kPublication, channel)) {
            out.push_back(ev.pub->offset);
        }
        return out;
    }
    std::vector<Seen> pubs(std::string_view channel = {}) {
        std::vector<Seen> out;
        for (const Event& ev : events(EventKind::kPublication, channel)) {
            out.push_back(Seen{ev.pub->epoch, ev.pub->offset, ev.pub->data});
        }
        return out;
    }

private:
    std::mutex mu_;
    std::vector<std::pair<uint32_t, Event>> events_;
    std::vector<std::string> controls_;
};

std::vector<uint64_t> range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> out;
    for (uint64_t i = from; i <= to; ++i) {
        out.push_back(i);
    }
    return out;
}

class NatsEngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(natsServerPath().empty())
            << "nats-server is missing: apt-get install nats-server (scripts/deps.sh test)";
        char dir[] = "/tmp/sb-nats-test-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        dir_ = dir;
        nats_ = std::make_unique<NatsServer>(freePort(), dir_ + "/js", dir_ + "/nats.log");
        static std::atomic<int> counter{0};
        prefix_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    }
    void TearDown() override {
        nats_.reset();
        if (!dir_.empty() && !HasFailure()) {
            fs::remove_all(dir_);
        } else if (!dir_.empty()) {
            std::printf("nats-server log and store kept in %s\n", dir_.c_str());
        }
    }

    std::unique_ptr<broker::Engine> engine(uint16_t port = 0, std::string name = "n") {
        NatsOptions o;
        o.url = "nats://127.0.0.1:" + std::to_string(port != 0 ? port : nats_->port());
        o.prefix = prefix_;
        o.node_ttl_ms = 2000;
        o.timeout_ms = 2000;
        o.node_name = std::move(name);
        auto e = makeNatsEngine(o);
        EXPECT_TRUE(e.has_value()) << (e.has_value() ? "" : e.error().message);
        return std::move(*e);
    }

    // An engine standing for one node, with its sink, connected. The sink is declared first so
    // that it outlives the engine's threads.
    struct Node {
        std::unique_ptr<Sink> sink = std::make_unique<Sink>();
        std::unique_ptr<broker::Engine> engine;
        broker::Engine* operator->() const { return engine.get(); }
    };
    Node node(uint16_t port = 0, std::string name = "n") {
        Node n;
        n.engine = engine(port, std::move(name));
        n.engine->setSink(n.sink.get());
        waitUp(*n.engine);
        return n;
    }

    static void waitUp(broker::Engine& e) {
        ASSERT_TRUE(eventually([&] { return e.available(); }, 20s)) << e.status().error;
    }

    NamespaceOptions ns_{.presence = true, .join_leave = true, .history_size = 1000};
    std::string dir_;
    std::unique_ptr<NatsServer> nats_;
    std::string prefix_;
};

TEST_F(NatsEngineTest, EveryNodeSeesOneOrderPerChannel) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    Sink& sa = *a.sink;
    Sink& sb = *b.sink;
    auto ra = a->subscribe("chat:x", ns_, 0, std::nullopt, 0);
    auto rb = b->subscribe("chat:x", ns_, 3, std::nullopt, 0);
    ASSERT_FALSE(ra.unavailable);
    ASSERT_FALSE(rb.unavailable);
    EXPECT_EQ(ra.top, rb.top);
    // Two publishers on two nodes at once.
    std::mutex mu;
    std::map<uint64_t, std::string> published;  // offset → data, from the publish results
    auto spray = [&](broker::Engine* e, const std::string& who, int n) {
        for (int i = 0; i < n; ++i) {
            std::string data = "{\"" + who + "\":" + std::to_string(i) + "}";
            auto r = e->publish("chat:x", ns_, data, {}, 0);
            EXPECT_FALSE(r.unavailable);
            std::lock_guard lock(mu);
            EXPECT_TRUE(published.emplace(r.pos.offset, data).second)
                << "offset " << r.pos.offset << " handed out twice";
        }
    };
    std::thread t1(spray, a.engine.get(), "a", 150);
    std::thread t2(spray, b.engine.get(), "b", 150);
    t1.join();
    t2.join();
    ASSERT_TRUE(eventually([&] {
        return sa.offsets().size() >= 300 && sb.offsets().size() >= 300;
    })) << sa.offsets().size()
        << " / " << sb.offsets().size();
    const auto pa = sa.pubs();
    const auto pb = sb.pubs();
    EXPECT_EQ(sa.offsets(), range(1, 300)) << "contiguous, each once, in order";
    EXPECT_EQ(pa, pb) << "the same (epoch, offset, data) sequence on both nodes";
    ASSERT_EQ(published.size(), 300u);
    for (const Seen& s : pa) {
        EXPECT_EQ(s.epoch, pa.front().epoch);
        EXPECT_EQ(s.data, published[s.offset]) << "offset " << s.offset;
    }
    // The node lists the channel it subscribes to.
    auto chans = a->channels();
    ASSERT_EQ(chans.size(), 1u);
    EXPECT_EQ(chans[0].channel, "chat:x");
    EXPECT_EQ(chans[0].top, (StreamPos{pa.front().epoch, 300}));
    EXPECT_EQ(chans[0].loops, 1u);
    EXPECT_EQ(chans[0].history, 300u);
    EXPECT_EQ(a->channelCount(), 1u);
    // A third look, from history: the same sequence.
    auto h = a->history("chat:x", ns_, std::nullopt, 0, 0);
    ASSERT_EQ(h.pubs.size(), 300u);
    EXPECT_EQ(h.top, (StreamPos{pa.front().epoch, 300}));
    for (size_t i = 0; i < h.pubs.size(); ++i) {
        EXPECT_EQ((Seen{h.pubs[i]->epoch, h.pubs[i]->offset, h.pubs[i]->data}), pa[i]);
    }
}

TEST_F(NatsEngineTest, PublishersRacingOnOneChannelGetContiguousUniqueOffsets) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    ASSERT_FALSE(a->subscribe("race:x", ns_, 0, std::nullopt, 0).unavailable);
    ASSERT_FALSE(b->subscribe("race:x", ns_, 0, std::nullopt, 0).unavailable);
    constexpr int kThreads = 3;
    constexpr int kEach = 80;
    std::mutex mu;
    std::map<uint64_t, std::string> published;
    std::atomic<int> unavailable{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (broker::Engine* e : {a.engine.get(), b.engine.get()}) {
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, e, t] {
                while (!go.load()) {
                    std::this_thread::yield();
                }
                for (int i = 0; i < kEach; ++i) {
                    std::string data = std::to_string(reinterpret_cast<uintptr_t>(e) % 997) + "/" +
                                       std::to_string(t) + "/" + std::to_string(i);
                    auto r = e->publish("race:x", ns_, data, {}, 0);
                    if (r.unavailable) {
                        ++unavailable;
                        continue;
                    }
                    std::lock_guard lock(mu);
                    EXPECT_TRUE(published.emplace(r.pos.offset, data).second)
                        << "offset " << r.pos.offset << " handed out twice";
                }
            });
        }
    }
    go = true;
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(unavailable.load(), 0) << "publishes gave up racing";
    const uint64_t n = published.size();
    ASSERT_EQ(n, 2u * kThreads * kEach - static_cast<uint64_t>(unavailable.load()));
    std::vector<uint64_t> offs;
    for (const auto& [off, data] : published) {
        offs.push_back(off);
    }
    EXPECT_EQ(offs, range(1, n));
    for (Sink* s : {a.sink.get(), b.sink.get()}) {
        ASSERT_TRUE(eventually([&] { return s->offsets().size() >= n; }))
            << s->offsets().size() << " of " << n;
        EXPECT_EQ(s->offsets(), range(1, n));
        for (const Seen& seen : s->pubs()) {
            ASSERT_EQ(seen.data, published[seen.offset]) << "offset " << seen.offset;
        }
    }
    EXPECT_EQ(a.sink->pubs(), b.sink->pubs());
}

TEST_F(NatsEngineTest, SubscribeRecoversOnlyWithinHistory) {
    Node a = node(0, "a");
    NamespaceOptions small = ns_;
    small.history_size = 3;
    // Before the first publication: the empty position is "from the start" and recovers.
    auto none = a->subscribe("h3:r", small, 0, StreamPos{"", 0}, 0);
    ASSERT_FALSE(none.unavailable);
    EXPECT_TRUE(none.recovered);
    EXPECT_EQ(none.top, (StreamPos{"", 0}));
    StreamPos first;
    for (int i = 1; i <= 3; ++i) {
        auto r = a->publish("h3:r", small, "d" + std::to_string(i), {}, 0);
        ASSERT_FALSE(r.unavailable);
        EXPECT_EQ(r.pos.offset, static_cast<uint64_t>(i));
        if (i == 1) {
            first = r.pos;
        } else {
            EXPECT_EQ(r.pos.epoch, first.epoch);
        }
    }
    // Everything is still there: from the start recovers all three.
    auto start = a->subscribe("h3:r", small, 1, StreamPos{"", 0}, 0);
    ASSERT_FALSE(start.unavailable);
    EXPECT_TRUE(start.recovered);
    ASSERT_EQ(start.pubs.size(), 3u);
    EXPECT_EQ(start.pubs[0]->offset, 1u);
    EXPECT_EQ(start.pubs[0]->data, "d1");
    for (int i = 4; i <= 5; ++i) {
        ASSERT_FALSE(a->publish("h3:r", small, "d" + std::to_string(i), {}, 0).unavailable);
    }
    // Offsets 3..5 are kept: from 2 everything follows, from 1 offset 2 is gone.
    auto ok = a->subscribe("h3:r", small, 2, StreamPos{first.epoch, 2}, 0);
    ASSERT_FALSE(ok.unavailable);
    EXPECT_TRUE(ok.recovered);
    EXPECT_EQ(ok.top, (StreamPos{first.epoch, 5}));
    ASSERT_EQ(ok.pubs.size(), 3u);
    EXPECT_EQ(ok.pubs[0]->data, "d3");
    EXPECT_EQ(ok.pubs[2]->offset, 5u);
    auto gone = a->subscribe("h3:r", small, 2, StreamPos{first.epoch, 1}, 0);
    EXPECT_FALSE(gone.recovered);
    ASSERT_EQ(gone.pubs.size(), 3u) << "what is kept after `since` is still given";
    EXPECT_EQ(gone.pubs[0]->offset, 3u);
    auto from_start = a->subscribe("h3:r", small, 2, StreamPos{"", 0}, 0);
    EXPECT_FALSE(from_start.recovered) << "offsets 1 and 2 are gone";
    auto other = a->subscribe("h3:r", small, 2, StreamPos{"e_other", 4}, 0);
    EXPECT_FALSE(other.recovered);
    EXPECT_TRUE(other.pubs.empty());
    auto at_top = a->subscribe("h3:r", small, 2, StreamPos{first.epoch, 5}, 0);
    EXPECT_TRUE(at_top.recovered);
    EXPECT_TRUE(at_top.pubs.empty());
    auto no_since = a->subscribe("h3:r", small, 2, std::nullopt, 0);
    EXPECT_FALSE(no_since.unavailable);
    EXPECT_TRUE(no_since.pubs.empty());
    EXPECT_EQ(no_since.top.offset, 5u);
    // Another node sees the same.
    auto b = engine(0, "b");
    waitUp(*b);
    auto rb = b->subscribe("h3:r", small, 0, StreamPos{first.epoch, 2}, 0);
    EXPECT_TRUE(rb.recovered);
    EXPECT_EQ(rb.pubs.size(), 3u);
}

TEST_F(NatsEngineTest, HistoryWithAndWithoutSinceAndLimit) {
    auto a = engine(0, "a");
    waitUp(*a);
    NamespaceOptions small = ns_;
    small.history_size = 4;
    StreamPos first;
    for (int i = 1; i <= 6; ++i) {
        auto r = a->publish("h4:h", small, "d" + std::to_string(i), {}, 0);
        ASSERT_FALSE(r.unavailable);
        if (i == 1) {
            first = r.pos;
        }
    }
    // Kept: 3..6.
    auto all = a->history("h4:h", small, std::nullopt, 0, 0);
    ASSERT_FALSE(all.unavailable);
    EXPECT_FALSE(all.recovered);
    EXPECT_EQ(all.top, (StreamPos{first.epoch, 6}));
    ASSERT_EQ(all.pubs.size(), 4u);
    EXPECT_EQ(all.pubs[0]->offset, 3u);
    EXPECT_EQ(all.pubs[3]->data, "d6");
    auto newest = a->history("h4:h", small, std::nullopt, 2, 0);
    ASSERT_EQ(newest.pubs.size(), 2u);
    EXPECT_EQ(newest.pubs[0]->offset, 5u);  // offset order, the newest two
    EXPECT_EQ(newest.pubs[1]->offset, 6u);
    auto more = a->history("h4:h", small, std::nullopt, 50, 0);
    EXPECT_EQ(more.pubs.size(), 4u);
    // Paging from a position.
    auto paged = a->history("h4:h", small, StreamPos{first.epoch, 2}, 2, 0);
    EXPECT_TRUE(paged.recovered);
    ASSERT_EQ(paged.pubs.size(), 2u);
    EXPECT_EQ(paged.pubs[0]->offset, 3u);
    EXPECT_EQ(paged.pubs[1]->offset, 4u);
    auto page2 = a->history("h4:h", small, StreamPos{first.epoch, 4}, 2, 0);
    EXPECT_TRUE(page2.recovered);
    ASSERT_EQ(page2.pubs.size(), 2u);
    EXPECT_EQ(page2.pubs[1]->offset, 6u);
    auto rest = a->history("h4:h", small, StreamPos{first.epoch, 3}, 0, 0);
    EXPECT_TRUE(rest.recovered);
    EXPECT_EQ(rest.pubs.size(), 3u);
    auto at_top = a->history("h4:h", small, StreamPos{first.epoch, 6}, 0, 0);
    EXPECT_TRUE(at_top.recovered);
    EXPECT_TRUE(at_top.pubs.empty());
    auto gone = a->history("h4:h", small, StreamPos{first.epoch, 1}, 0, 0);
    EXPECT_FALSE(gone.recovered);
    auto other = a->history("h4:h", small, StreamPos{"e_other", 1}, 0, 0);
    EXPECT_FALSE(other.recovered);
    EXPECT_TRUE(other.pubs.empty());
    // A channel that does not exist is not created.
    auto missing = a->history("h4:none", small, std::nullopt, 0, 0);
    EXPECT_FALSE(missing.unavailable);
    EXPECT_EQ(missing.top, (StreamPos{"", 0}));
    EXPECT_FALSE(missing.recovered);
    EXPECT_TRUE(missing.pubs.empty());
    auto again = a->history("h4:none", small, std::nullopt, 0, 0);
    EXPECT_EQ(again.top, (StreamPos{"", 0}));
    // No history kept: only the position.
    NamespaceOptions none = ns_;
    none.history_size = 0;
    for (int i = 0; i < 3; ++i) {
        ASSERT_FALSE(a->publish("h0:h", none, "x", {}, 0).unavailable);
    }
    auto h0 = a->history("h0:h", none, std::nullopt, 0, 0);
    EXPECT_EQ(h0.top.offset, 3u);
    EXPECT_TRUE(h0.pubs.empty());
    EXPECT_FALSE(a->history("h0:h", none, StreamPos{h0.top.epoch, 1}, 0, 0).recovered);
    EXPECT_TRUE(a->history("h0:h", none, h0.top, 0, 0).recovered);
}

TEST_F(NatsEngineTest, HistoryTtlHidesOldPublications) {
    auto a = engine(0, "a");
    waitUp(*a);
    NamespaceOptions keep = ns_;
    keep.history_ttl_ms = 3'600'000;
    NamespaceOptions brief = ns_;
    brief.history_ttl_ms = 200;
    StreamPos first;
    for (int i = 1; i <= 3; ++i) {
        auto r = a->publish("ttl:h", keep, "d" + std::to_string(i), {}, 0);
        ASSERT_FALSE(r.unavailable);
        if (i == 1) {
            first = r.pos;
        }
    }
    // An hour-long TTL keeps them.
    auto kept = a->history("ttl:h", keep, std::nullopt, 0, 0);
    EXPECT_EQ(kept.pubs.size(), 3u);
    EXPECT_TRUE(a->history("ttl:h", keep, StreamPos{first.epoch, 1}, 0, 0).recovered);
    // Past a short TTL they are as good as gone, and the position stays.
    ASSERT_TRUE(
        eventually([&] { return a->history("ttl:h", brief, std::nullopt, 0, 0).pubs.empty(); }));
    auto expired = a->history("ttl:h", brief, StreamPos{first.epoch, 1}, 0, 0);
    EXPECT_FALSE(expired.recovered);
    EXPECT_TRUE(expired.pubs.empty());
    EXPECT_EQ(expired.top, (StreamPos{first.epoch, 3}));
    auto sub = a->subscribe("ttl:h", brief, 0, StreamPos{first.epoch, 1}, 0);
    EXPECT_FALSE(sub.recovered);
    EXPECT_TRUE(a->history("ttl:h", brief, StreamPos{first.epoch, 3}, 0, 0).recovered);
    // The next publication is new enough.
    auto r4 = a->publish("ttl:h", keep, "d4", {}, 0);
    ASSERT_EQ(r4.pos.offset, 4u);
    auto fresh = a->history("ttl:h", keep, StreamPos{first.epoch, 3}, 0, 0);
    EXPECT_TRUE(fresh.recovered);
    ASSERT_EQ(fresh.pubs.size(), 1u);
    EXPECT_EQ(fresh.pubs[0]->data, "d4");
}

TEST_F(NatsEngineTest, IdempotencyKeyPublishesOnceAcrossNodes) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    ASSERT_FALSE(b->subscribe("chat:i", ns_, 0, std::nullopt, 0).unavailable);
    auto r1 = a->publish("chat:i", ns_, "x", "key-1", 0);
    ASSERT_FALSE(r1.unavailable);
    auto r2 = b->publish("chat:i", ns_, "x", "key-1", 0);  // a retry landing on another node
    EXPECT_FALSE(r1.duplicate);
    EXPECT_TRUE(r2.duplicate);
    EXPECT_EQ(r1.pos, r2.pos);
    auto r3 = a->publish("chat:i", ns_, "y", "key-2", 0);
    EXPECT_FALSE(r3.duplicate);
    EXPECT_EQ(r3.pos.offset, r1.pos.offset + 1);
    // b knew the channel at r1: its cached position is stale when the retry of key-2 lands.
    auto r4 = b->publish("chat:i", ns_, "y", "key-2", 0);
    EXPECT_TRUE(r4.duplicate);
    EXPECT_EQ(r4.pos, r3.pos);
    auto r5 = a->publish("chat:i", ns_, "y", "key-1", 0);
    EXPECT_TRUE(r5.duplicate);
    EXPECT_EQ(r5.pos, r1.pos);
    // The same key on another channel is another publication.
    auto other = b->publish("chat:j", ns_, "x", "key-1", 0);
    EXPECT_FALSE(other.duplicate);
    EXPECT_EQ(other.pos.offset, 1u);
    // Subscribers saw each publication once.
    auto r6 = b->publish("chat:i", ns_, "z", {}, 0);
    ASSERT_TRUE(eventually([&] { return b.sink->offsets("chat:i").size() >= 3; }));
    EXPECT_EQ(b.sink->offsets("chat:i"), range(1, 3));
    EXPECT_EQ(r6.pos.offset, 3u);
}

// The contract: a duplicate answers the first publication's position. The first publication may
// have left history since (history_size 0 keeps only the last message of a channel).
TEST_F(NatsEngineTest, ADuplicateAnswersTheFirstPositionAfterItLeftHistory) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    NamespaceOptions none = ns_;
    none.history_size = 0;
    auto r1 = a->publish("h0:i", none, "x", "key-1", 0);
    ASSERT_FALSE(r1.unavailable);
    EXPECT_EQ(r1.pos.offset, 1u);
    auto r2 = a->publish("h0:i", none, "y", {}, 0);
    EXPECT_EQ(r2.pos.offset, 2u);
    auto dup = b->publish("h0:i", none, "x", "key-1", 0);
    EXPECT_TRUE(dup.duplicate);
    EXPECT_EQ(dup.pos, r1.pos) << "a retry is told the first publication's position, got offset "
                               << dup.pos.offset;
}

TEST_F(NatsEngineTest, PresenceIsSharedWithJoinAndLeaveEvents) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    Sink& sb = *b.sink;
    ASSERT_FALSE(b->subscribe("chat:p", ns_, 1, std::nullopt, 0).unavailable);
    auto alice = std::make_shared<broker::ClientInfo>(
        broker::ClientInfo{"c_a_0_1", "alice", "{\"role\":\"x\"}"});
    auto bob = std::make_shared<broker::ClientInfo>(broker::ClientInfo{"c_b_0_2", "bob", ""});
    a->presenceAdd("chat:p", ns_, alice);
    b->presenceAdd("chat:p", ns_, bob);
    ASSERT_TRUE(eventually([&] { return a->presence("chat:p").size() == 2; }));
    ASSERT_TRUE(eventually([&] { return b->presence("chat:p").size() == 2; }));
    ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kJoin).size() == 2; }));
    std::set<std::string> users;
    for (const auto& ev : sb.events(EventKind::kJoin)) {
        EXPECT_EQ(ev.channel, "chat:p");
        users.insert(ev.who->user);
    }
    EXPECT_EQ(users, (std::set<std::string>{"alice", "bob"}));
    for (const auto& who : b->presence("chat:p")) {
        if (who->client_id == "c_a_0_1") {
            EXPECT_EQ(who->info_json, "{\"role\":\"x\"}");
            EXPECT_EQ(who->user, "alice");
        }
    }
    // Adding again replaces the info without an event.
    auto alice2 = std::make_shared<broker::ClientInfo>(
        broker::ClientInfo{"c_a_0_1", "alice", "{\"role\":\"y\"}"});
    a->presenceAdd("chat:p", ns_, alice2);
    ASSERT_TRUE(eventually([&] {
        for (const auto& who : b->presence("chat:p")) {
            if (who->client_id == "c_a_0_1" && who->info_json == "{\"role\":\"y\"}") {
                return true;
            }
        }
        return false;
    }));
    // Leaving: b sees the event with the stored info, and the set shrinks on both nodes.
    a->presenceRemove("chat:p", ns_, "c_a_0_1");
    ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kLeave).size() == 1; }));
    EXPECT_EQ(sb.events(EventKind::kLeave)[0].who->client_id, "c_a_0_1");
    EXPECT_EQ(sb.events(EventKind::kLeave)[0].who->info_json, "{\"role\":\"y\"}");
    EXPECT_EQ(sb.events(EventKind::kJoin).size(), 2u) << "the replacement was not a join";
    ASSERT_TRUE(eventually([&] { return b->presence("chat:p").size() == 1; }));
    EXPECT_EQ(b->presence("chat:p")[0]->client_id, "c_b_0_2");
    EXPECT_EQ(a->presence("chat:p").size(), 1u);
    // Names with subject structure in them stay apart.
    a->presenceAdd("chat:p.q *>", ns_, alice);
    ASSERT_TRUE(eventually([&] { return b->presence("chat:p.q *>").size() == 1; }));
    EXPECT_EQ(b->presence("chat:p").size(), 1u);
    // Presence without join/leave: kept, no events. A namespace with neither keeps nothing.
    NamespaceOptions quiet = ns_;
    quiet.join_leave = false;
    NamespaceOptions nothing = ns_;
    nothing.presence = false;
    nothing.join_leave = false;
    ASSERT_FALSE(b->subscribe("q:p", quiet, 1, std::nullopt, 0).unavailable);
    ASSERT_FALSE(b->subscribe("z:p", nothing, 1, std::nullopt, 0).unavailable);
    a->presenceAdd("q:p", quiet, alice);
    a->presenceAdd("z:p", nothing, alice);
    ASSERT_TRUE(eventually([&] { return b->presence("q:p").size() == 1; }));
    a->presenceRemove("q:p", quiet, "c_a_0_1");
    a->presenceRemove("z:p", nothing, "c_a_0_1");
    // A join after those, on b's subscribed channel: once it arrives, the ones before would have.
    a->presenceAdd("chat:p", ns_, alice);
    ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kJoin).size() == 3; }));
    EXPECT_TRUE(sb.events(EventKind::kJoin, "q:p").empty());
    EXPECT_TRUE(sb.events(EventKind::kLeave, "q:p").empty());
    EXPECT_TRUE(sb.events(EventKind::kJoin, "z:p").empty());
    EXPECT_TRUE(b->presence("z:p").empty());
    EXPECT_TRUE(eventually([&] { return b->presence("q:p").empty(); }));
}

TEST_F(NatsEngineTest, ADeadNodesPresenceLeavesWithinTheTtl) {
    Node b = node(0, "b");
    Sink& sb = *b.sink;
    ASSERT_FALSE(b->subscribe("chat:p", ns_, 1, std::nullopt, 0).unavailable);
    ASSERT_FALSE(b->subscribe("quiet:p", ns_, 1, std::nullopt, 0).unavailable);
    NamespaceOptions quiet = ns_;
    quiet.join_leave = false;
    auto bob = std::make_shared<broker::ClientInfo>(broker::ClientInfo{"c_b_0_9", "bob", ""});
    b->presenceAdd("chat:p", ns_, bob);  // the survivor's own entry stays
    {
        auto a = engine(0, "a");
        waitUp(*a);
        auto who = std::make_shared<broker::ClientInfo>(
            broker::ClientInfo{"c_a_0_1", "alice", "{\"role\":\"x\"}"});
        auto who2 =
            std::make_shared<broker::ClientInfo>(broker::ClientInfo{"c_a_0_2", "carol", ""});
        a->presenceAdd("chat:p", ns_, who);
        a->presenceAdd("quiet:p", quiet, who2);
        ASSERT_TRUE(eventually([&] { return b->presence("chat:p").size() == 2; }));
        ASSERT_TRUE(eventually([&] { return b->presence("quiet:p").size() == 1; }));
        ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kJoin, "chat:p").size() == 2; }));
        // Both nodes are registered.
        ASSERT_TRUE(eventually([&] { return b->status().nodes.size() == 2; }));
    }  // node a stops heartbeating without removing its entries: as a kill -9 would
    const auto t0 = std::chrono::steady_clock::now();
    // node_ttl is 2 s and heartbeats go every second; the margin is for a loaded machine.
    ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kLeave, "chat:p").size() == 1; }, 8s))
        << "no leave event for the dead node's entry";
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    std::printf("[ info ] dead node's leave event after %lld ms (node_ttl 2000 ms)\n",
                static_cast<long long>(took.count()));
    EXPECT_EQ(sb.events(EventKind::kLeave, "chat:p")[0].who->client_id, "c_a_0_1");
    ASSERT_TRUE(eventually([&] { return b->presence("chat:p").size() == 1; }));
    EXPECT_EQ(b->presence("chat:p")[0]->client_id, "c_b_0_9");
    ASSERT_TRUE(eventually([&] { return b->presence("quiet:p").empty(); }));
    EXPECT_TRUE(sb.events(EventKind::kLeave, "quiet:p").empty()) << "no join_leave there";
    EXPECT_TRUE(eventually([&] { return b->status().nodes.size() == 1; }));
    EXPECT_EQ(b->status().nodes.at(0).id, std::string(b->nodeTag()));
    EXPECT_EQ(b->status().nodes.at(0).name, "b");
}

std::optional<broker::SessionRecord> load(broker::Engine& e, std::string_view id) {
    bool down = false;
    auto r = e.loadSession(id, &down);
    EXPECT_FALSE(down);
    return r;
}

TEST_F(NatsEngineTest, SessionRecordsAreFencedByTheirHolder) {
    auto a = engine(0, "a");
    auto b = engine(0, "b");
    waitUp(*a);
    waitUp(*b);
    EXPECT_TRUE(a->sharesSessions());
    broker::SessionRecord rec;
    rec.owner = "alice";
    rec.holder = "n1:5";
    rec.ttl_ms = 60'000;
    rec.channels = {{"chat:a", StreamPos{"e_1", 7}}, {"chat:b", StreamPos{"e_2", 0}}};
    a->saveSession("s_1.odd id*", rec, true);
    ASSERT_TRUE(eventually([&] { return load(*b, "s_1.odd id*").has_value(); }));
    auto first = load(*b, "s_1.odd id*");
    EXPECT_EQ(first->owner, "alice");
    EXPECT_EQ(first->holder, "n1:5");
    EXPECT_EQ(first->ttl_ms, 60'000u);
    EXPECT_EQ(first->channels, rec.channels);
    // Another holder took it (on another node): the old holder's later write must not land.
    broker::SessionRecord moved = rec;
    moved.holder = "n2:9";
    moved.channels = {{"chat:a", StreamPos{"e_1", 9}}};
    b->saveSession("s_1.odd id*", moved, true);
    ASSERT_TRUE(eventually([&] {
        auto r = load(*a, "s_1.odd id*");
        return r && r->holder == "n2:9";
    }));
    broker::SessionRecord stale = rec;
    stale.channels = {{"chat:a", StreamPos{"e_1", 8}}};
    a->saveSession("s_1.odd id*", stale, false);
    // Writes run in order: once a later one has landed, the stale one was decided.
    broker::SessionRecord marker = rec;
    marker.holder = "n1:6";
    a->saveSession("s_marker", marker, true);
    ASSERT_TRUE(eventually([&] { return load(*a, "s_marker").has_value(); }));
    auto r = load(*a, "s_1.odd id*");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->holder, "n2:9");
    EXPECT_EQ(r->owner, "alice");
    ASSERT_EQ(r->channels.size(), 1u);
    EXPECT_EQ(r->channels[0].second, (StreamPos{"e_1", 9}));
    // The holder itself may write without taking.
    moved.channels = {{"chat:a", StreamPos{"e_1", 10}}};
    b->saveSession("s_1.odd id*", moved, false);
    ASSERT_TRUE(eventually([&] {
        auto x = load(*a, "s_1.odd id*");
        return x && x->channels.size() == 1 && x->channels[0].second.offset == 10;
    }));
    // A record nobody holds yet is created by a write that does not take.
    b->saveSession("s_new", marker, false);
    ASSERT_TRUE(eventually([&] { return load(*a, "s_new").has_value(); }));
    // Unknown, removed, expired.
    EXPECT_FALSE(load(*a, "s_unknown").has_value());
    a->removeSession("s_1.odd id*");
    EXPECT_TRUE(eventually([&] { return !load(*b, "s_1.odd id*").has_value(); }));
    broker::SessionRecord brief = rec;
    brief.ttl_ms = 1;  // kept at least a second (the engine's floor), then gone
    a->saveSession("s_brief", brief, true);
    EXPECT_TRUE(eventually([&] { return !load(*a, "s_brief").has_value(); }));
    a->saveSession("s_brief", brief, true);
    a->saveSession("s_marker2", marker, true);
    ASSERT_TRUE(eventually([&] { return load(*a, "s_marker2").has_value(); }));
    EXPECT_TRUE(eventually([&] { return !load(*a, "s_brief").has_value(); }, 5s));
}

TEST_F(NatsEngineTest, ControlMessagesReachOneNodeOrAll) {
    Node a = node(0, "a");
    Node b = node(0, "b");
    Sink& sa = *a.sink;
    Sink& sb = *b.sink;
    ASSERT_FALSE(a->nodeTag().empty());
    ASSERT_NE(a->nodeTag(), b->nodeTag());
    b->sendControl(a->nodeTag(), "tsession-1");
    ASSERT_TRUE(eventually([&] { return sa.controls().size() == 1; }));
    EXPECT_EQ(sa.controls()[0], "tsession-1");
    a->sendControl({}, std::string("u1bob\0\xff", 7));
    ASSERT_TRUE(eventually([&] { return sb.controls().size() == 1 && sa.controls().size() == 2; }));
    EXPECT_EQ(sb.controls()[0], std::string("u1bob\0\xff", 7));
    EXPECT_EQ(sa.controls()[1], std::string("u1bob\0\xff", 7)) << "to all: this node included";
    // One to a only, then one to all: once b has the second, it would have had the first.
    b->sendControl(a->nodeTag(), "for-a");
    b->sendControl({}, "barrier");
    ASSERT_TRUE(eventually([&] { return sb.controls().size() == 2 && sa.controls().size() == 4; }));
    EXPECT_EQ(sb.controls()[1], "barrier");
    EXPECT_EQ(sa.controls()[2], "for-a");
    EXPECT_EQ(sa.controls()[3], "barrier");
    // A node that is gone does not get it, and nobody else does.
    b->sendControl("deadbeef", "lost");
    b->sendControl({}, "barrier2");
    ASSERT_TRUE(eventually([&] { return sb.controls().size() == 3; }));
    EXPECT_EQ(sb.controls()[2], "barrier2");
}

TEST_F(NatsEngineTest, UnreachableNatsIsUnavailableThenConnects) {
    const uint16_t port = freePort();
    Node a;
    a.engine = engine(port, "a");
    a.engine->setSink(a.sink.get());
    auto st = a->status();
    EXPECT_EQ(st.engine, "nats");
    EXPECT_FALSE(a->available());
    EXPECT_FALSE(st.error.empty());
    auto r = a->publish("chat:u", ns_, "x", {}, 0);
    EXPECT_TRUE(r.unavailable);
    bool down = false;
    EXPECT_FALSE(a->loadSession("s_x", &down).has_value());
    EXPECT_TRUE(down) << "a session NATS could not be asked about is not a missing session";
    EXPECT_TRUE(a->subscribe("chat:u", ns_, 0, std::nullopt, 0).unavailable);
    EXPECT_TRUE(a->history("chat:u", ns_, std::nullopt, 0, 0).unavailable);
    NatsServer late(port, dir_ + "/late", dir_ + "/late.log");
    waitUp(*a.engine);
    EXPECT_TRUE(a->status().error.empty()) << a->status().error;
    auto sub = a->subscribe("chat:u", ns_, 0, std::nullopt, 0);
    EXPECT_FALSE(sub.unavailable);
    auto ok = a->publish("chat:u", ns_, "x", {}, 0);
    EXPECT_FALSE(ok.unavailable);
    EXPECT_EQ(ok.pos.offset, 1u);
    ASSERT_TRUE(eventually([&] { return a.sink->offsets() == range(1, 1); }));
    late.stop();
}

TEST_F(NatsEngineTest, AFrozenNatsIsUnavailableThenComesBack) {
    Node a = node(0, "a");
    Sink& sa = *a.sink;
    ASSERT_FALSE(a->subscribe("chat:f", ns_, 0, std::nullopt, 0).unavailable);
    auto before = a->publish("chat:f", ns_, "1", {}, 0);
    ASSERT_FALSE(before.unavailable);
    nats_->freeze();
    ASSERT_TRUE(eventually([&] { return !a->available(); }, 20s))
        << "a server that stopped answering is noticed by the pings";
    EXPECT_FALSE(a->status().error.empty());
    EXPECT_TRUE(a->publish("chat:f", ns_, "x", {}, 0).unavailable);
    bool down = false;
    EXPECT_FALSE(a->loadSession("s_x", &down).has_value());
    EXPECT_TRUE(down);
    nats_->thaw();
    waitUp(*a.engine);
    auto after = a->publish("chat:f", ns_, "2", {}, 0);
    ASSERT_FALSE(after.unavailable);
    EXPECT_EQ(after.pos.epoch, before.pos.epoch);
    EXPECT_EQ(after.pos.offset, 2u);
    ASSERT_TRUE(eventually([&] { return sa.offsets().size() >= 2; }));
    EXPECT_EQ(sa.offsets(), range(1, 2));
    EXPECT_GE(a->status().reconnects, 1u);
}

TEST_F(NatsEngineTest, ANatsRestartKeepsHistoryInItsStore) {
    Node a = node(0, "a");
    Sink& sa = *a.sink;
    ASSERT_FALSE(a->subscribe("chat:k", ns_, 0, std::nullopt, 0).unavailable);
    StreamPos last;
    for (int i = 1; i <= 5; ++i) {
        last = a->publish("chat:k", ns_, "d" + std::to_string(i), {}, 0).pos;
    }
    ASSERT_EQ(last.offset, 5u);
    broker::SessionRecord rec{.owner = "alice", .holder = "n:1", .ttl_ms = 60'000, .channels = {}};
    a->saveSession("s_k", rec, true);
    ASSERT_TRUE(eventually([&] { return load(*a.engine, "s_k").has_value(); }));
    nats_->stop(SIGTERM);
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    EXPECT_TRUE(a->publish("chat:k", ns_, "x", {}, 0).unavailable);
    nats_->start();
    waitUp(*a.engine);
    auto h = a->history("chat:k", ns_, StreamPos{last.epoch, 0}, 0, 0);
    ASSERT_FALSE(h.unavailable);
    EXPECT_EQ(h.top, last);
    EXPECT_TRUE(h.recovered);
    ASSERT_EQ(h.pubs.size(), 5u);
    EXPECT_EQ(h.pubs[4]->data, "d5");
    EXPECT_TRUE(load(*a.engine, "s_k").has_value()) << "sessions are kept too";
    auto next = a->publish("chat:k", ns_, "d6", {}, 0);
    ASSERT_FALSE(next.unavailable);
    EXPECT_EQ(next.pos, (StreamPos{last.epoch, 6}));
    ASSERT_TRUE(eventually([&] { return sa.offsets().size() >= 6; }));
    EXPECT_EQ(sa.offsets(), range(1, 6));
    // A node starting now sees the same.
    auto b = engine(0, "b");
    waitUp(*b);
    EXPECT_EQ(b->history("chat:k", ns_, std::nullopt, 0, 0).top, (StreamPos{last.epoch, 6}));
}

TEST_F(NatsEngineTest, ANatsThatComesBackEmptyStartsANewEpoch) {
    Node a = node(0, "a");
    Sink& sa = *a.sink;
    ASSERT_FALSE(a->subscribe("chat:r", ns_, 0, std::nullopt, 0).unavailable);
    auto before = a->publish("chat:r", ns_, "1", {}, 0);
    ASSERT_FALSE(before.unavailable);
    ASSERT_TRUE(eventually([&] { return sa.events(EventKind::kPublication).size() == 1; }));
    nats_->stop(SIGKILL);
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    EXPECT_TRUE(a->publish("chat:r", ns_, "x", {}, 0).unavailable);
    nats_->wipe();
    nats_->start();
    waitUp(*a.engine);
    auto after = a->publish("chat:r", ns_, "2", {}, 0);
    ASSERT_FALSE(after.unavailable);
    EXPECT_NE(after.pos.epoch, before.pos.epoch);
    EXPECT_EQ(after.pos.offset, 1u);
    // The node subscribed again on its own: the new publication arrives, in the new epoch.
    ASSERT_TRUE(eventually([&] { return sa.events(EventKind::kPublication).size() == 2; }))
        << sa.events(EventKind::kPublication).size() << " publications arrived";
    EXPECT_EQ(sa.events(EventKind::kPublication)[1].pub->epoch, after.pos.epoch);
    // A position in the old epoch does not recover, on this node or another.
    EXPECT_FALSE(a->history("chat:r", ns_, before.pos, 0, 0).recovered);
    auto b = engine(0, "b");
    waitUp(*b);
    auto rb = b->subscribe("chat:r", ns_, 0, before.pos, 0);
    EXPECT_FALSE(rb.recovered);
    EXPECT_EQ(rb.top, after.pos);
}

TEST_F(NatsEngineTest, ANodeCutOffFromNatsCatchesUpWithoutAHole) {
    Proxy proxy(nats_->port());
    Node a = node(proxy.port(), "a");
    Node b = node(0, "b");
    Sink& sa = *a.sink;
    ASSERT_FALSE(a->subscribe("chat:c", ns_, 0, std::nullopt, 0).unavailable);
    std::mutex mu;
    std::vector<std::pair<uint64_t, std::string>> published;
    auto count = [&] {
        std::lock_guard lock(mu);
        return published.size();
    };
    std::atomic<bool> stop{false};
    std::atomic<int> failed{0};
    std::thread pub([&] {
        for (int i = 0; !stop; ++i) {
            auto r = b->publish("chat:c", ns_, std::to_string(i), {}, 0);
            if (r.unavailable) {
                ++failed;
            } else {
                std::lock_guard lock(mu);
                published.emplace_back(r.pos.offset, std::to_string(i));
            }
            std::this_thread::sleep_for(1ms);  // pacing, not synchronization
        }
    });
    ASSERT_TRUE(eventually([&] { return sa.offsets().size() >= 20; }));
    // a's link is cut; b goes on publishing meanwhile. What a missed must reach it, once and in
    // order, when it is back.
    proxy.cut();
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    const size_t at_cut = count();
    ASSERT_TRUE(eventually([&] { return count() >= at_cut + 100; }));
    proxy.restore();
    waitUp(*a.engine);
    const size_t at_back = count();
    ASSERT_TRUE(eventually([&] { return count() >= at_back + 50; }));
    stop = true;
    pub.join();
    EXPECT_EQ(failed.load(), 0);
    const uint64_t last = published.back().first;
    ASSERT_TRUE(eventually([&] {
        const auto o = sa.offsets();
        return !o.empty() && o.back() == last;
    })) << sa.offsets().size()
        << " of " << last;
    EXPECT_GE(a->status().reconnects, 1u);
    const auto got = sa.pubs();
    ASSERT_EQ(got.size(), last);
    for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].offset, i + 1) << "each offset once, in order";
        ASSERT_EQ(got[i].data, published[i].second);
    }
}

// Subscribed, but nothing delivered yet when the link drops: what was published meanwhile (after
// the subscribe's snapshot) must still arrive. Once on a channel with history, once on a channel
// that had no publication at all when subscribed.
TEST_F(NatsEngineTest, ANodeCutOffBeforeItsFirstDeliveryCatchesUp) {
    Proxy proxy(nats_->port());
    Node a = node(proxy.port(), "a");
    Node b = node(0, "b");
    Sink& sa = *a.sink;
    for (int i = 1; i <= 3; ++i) {
        ASSERT_FALSE(b->publish("chat:q", ns_, "old" + std::to_string(i), {}, 0).unavailable);
    }
    auto sq = a->subscribe("chat:q", ns_, 0, std::nullopt, 0);
    auto s0 = a->subscribe("chat:q0", ns_, 0, std::nullopt, 0);
    ASSERT_FALSE(sq.unavailable);
    ASSERT_FALSE(s0.unavailable);
    EXPECT_EQ(sq.top.offset, 3u);
    EXPECT_EQ(s0.top, (StreamPos{"", 0}));
    proxy.cut();
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    for (int i = 4; i <= 10; ++i) {
        ASSERT_FALSE(b->publish("chat:q", ns_, std::to_string(i), {}, 0).unavailable);
    }
    for (int i = 1; i <= 7; ++i) {
        ASSERT_FALSE(b->publish("chat:q0", ns_, std::to_string(i), {}, 0).unavailable);
    }
    proxy.restore();
    waitUp(*a.engine);
    ASSERT_EQ(b->publish("chat:q", ns_, "11", {}, 0).pos.offset, 11u);
    ASSERT_EQ(b->publish("chat:q0", ns_, "8", {}, 0).pos.offset, 8u);
    ASSERT_TRUE(eventually([&] {
        const auto q = sa.offsets("chat:q");
        const auto q0 = sa.offsets("chat:q0");
        return !q.empty() && q.back() == 11 && !q0.empty() && q0.back() == 8;
    })) << sa.offsets("chat:q").size()
        << " / " << sa.offsets("chat:q0").size();
    EXPECT_EQ(sa.offsets("chat:q"), range(4, 11)) << "offsets 4..10 were published after the "
                                                     "subscribe's snapshot (top 3)";
    EXPECT_EQ(sa.offsets("chat:q0"), range(1, 8));
}

// NATS comes back from an older copy of its store (a restored backup, or a crash that lost the
// writes since the last sync): offsets handed out after that copy must not be handed out again in
// the same epoch, or a client holding one would "recover" from another publication's position.
TEST_F(NatsEngineTest, ANatsRestoredFromAnOlderStoreDoesNotReuseOffsets) {
    auto a = engine(0, "a");
    waitUp(*a);
    StreamPos third;
    for (int i = 1; i <= 3; ++i) {
        third = a->publish("chat:s", ns_, std::to_string(i), {}, 0).pos;
    }
    ASSERT_EQ(third.offset, 3u);
    nats_->stop(SIGTERM);
    const std::string copy = dir_ + "/js-copy";
    fs::copy(nats_->store(), copy, fs::copy_options::recursive);
    nats_->start();
    waitUp(*a);
    a->publish("chat:s", ns_, "4", {}, 0);
    auto fifth = a->publish("chat:s", ns_, "5", {}, 0);
    ASSERT_EQ(fifth.pos, (StreamPos{third.epoch, 5}));
    nats_->stop(SIGTERM);
    nats_->wipe();
    fs::copy(copy, nats_->store(), fs::copy_options::recursive);
    nats_->start();
    waitUp(*a);
    auto after = a->publish("chat:s", ns_, "6", {}, 0);
    ASSERT_FALSE(after.unavailable);
    EXPECT_FALSE(after.pos.epoch == third.epoch && after.pos.offset <= 5)
        << "offset " << after.pos.offset << " handed out again in epoch " << after.pos.epoch;
    // A client that saw offset 5 is not told it is up to date.
    EXPECT_FALSE(a->history("chat:s", ns_, fifth.pos, 0, 0).recovered);
}

TEST(NatsOptionsTest, InvalidOptionsAreRefusedWithClearErrors) {
    NatsOptions o;
    o.prefix = "";
    EXPECT_FALSE(makeNatsEngine(o).has_value());
    o.prefix = "a.b";
    EXPECT_FALSE(makeNatsEngine(o).has_value());
    o.prefix = "a*";
    EXPECT_FALSE(makeNatsEngine(o).has_value());
    o.prefix = "sb";
    o.node_ttl_ms = 1000;
    EXPECT_FALSE(makeNatsEngine(o).has_value());
    o.node_ttl_ms = 2000;
    o.url = " , ";
    auto bad = makeNatsEngine(o);
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("nats_url"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace sb::engines::nats
