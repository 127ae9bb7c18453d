// The Redis engine against a real redis-server (Debian's, started here on a free loopback port):
// the broker::Engine contract with two engines standing for two nodes — one order per channel on
// every node, recovery, idempotency, presence across nodes and the reaping of a dead node's
// entries, session records with their holder fence, and the outage path (unavailable, then
// reconnect, and a new epoch when Redis comes back empty).
#include "engines/redis/redis_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sb::engines::redis {
namespace {

using broker::Event;
using broker::EventKind;
using broker::NamespaceOptions;
using broker::StreamPos;
using namespace std::chrono_literals;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

uint16_t freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool canConnect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
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

// A redis-server child without persistence: a restart comes back empty.
class RedisServer {
public:
    // `extra`: more redis-server arguments (TLS, a password).
    explicit RedisServer(uint16_t port, std::vector<std::string> extra = {})
        : port_(port), extra_(std::move(extra)) {
        start();
    }
    ~RedisServer() { stop(); }
    void start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            ::dup2(null, 2);
            const std::string p = std::to_string(port_);
            std::vector<std::string> args = {kRedisServer,   "--bind", "127.0.0.1",  "--save", "",
                                             "--appendonly", "no",     "--loglevel", "warning"};
            if (extra_.empty()) {
                args.insert(args.end(), {"--port", p});
            }
            args.insert(args.end(), extra_.begin(), extra_.end());
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            ::execv(kRedisServer, argv.data());
            ::_exit(127);
        }
        ASSERT_TRUE(eventually([&] { return canConnect(port_); }, 10s))
            << "redis-server did not start";
    }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    uint16_t port() const { return port_; }

private:
    uint16_t port_;
    std::vector<std::string> extra_;
    pid_t pid_ = -1;
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
    std::vector<Event> events(EventKind kind) {
        std::lock_guard lock(mu_);
        std::vector<Event> out;
        for (const auto& [loop, ev] : events_) {
            if (ev.kind == kind) {
                out.push_back(ev);
            }
        }
        return out;
    }
    std::vector<uint64_t> offsets() {
        std::vector<uint64_t> out;
        for (const Event& ev : events(EventKind::kPublication)) {
            out.push_back(ev.pub->offset);
        }
        return out;
    }

private:
    std::mutex mu_;
    std::vector<std::pair<uint32_t, Event>> events_;
    std::vector<std::string> controls_;
};

class RedisEngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(::access(kRedisServer, X_OK), 0)
            << kRedisServer << " is missing: apt-get install redis-server (scripts/deps.sh test)";
        redis_ = std::make_unique<RedisServer>(freePort());
        prefix_ = "t" + std::to_string(::getpid()) + ":";
    }

    std::unique_ptr<broker::Engine> engine(uint16_t port = 0, uint64_t node_ttl_ms = 2000) {
        RedisOptions o;
        o.address = "127.0.0.1:" + std::to_string(port != 0 ? port : redis_->port());
        o.prefix = prefix_;
        o.node_ttl_ms = node_ttl_ms;
        o.timeout_ms = 1000;
        o.subscribers = 2;
        auto e = makeRedisEngine(o);
        EXPECT_TRUE(e.has_value());
        return std::move(*e);
    }

    // An engine standing for one node, with its sink, connected. The sink is declared first so
    // that it outlives the engine's thread.
    struct Node {
        std::unique_ptr<Sink> sink = std::make_unique<Sink>();
        std::unique_ptr<broker::Engine> engine;
        broker::Engine* operator->() const { return engine.get(); }
    };
    Node node() {
        Node n;
        n.engine = engine();
        n.engine->setSink(n.sink.get());
        waitUp(*n.engine);
        return n;
    }

    static void waitUp(broker::Engine& e) {
        ASSERT_TRUE(eventually([&] { return e.available(); })) << e.status().error;
    }

    NamespaceOptions ns_{.presence = true, .join_leave = true, .history_size = 100};
    std::unique_ptr<RedisServer> redis_;
    std::string prefix_;
};

TEST_F(RedisEngineTest, EveryNodeSeesOneOrderPerChannel) {
    Node a = node();
    Node b = node();
    Sink& sa = *a.sink;
    Sink& sb = *b.sink;
    auto ra = a->subscribe("chat:x", ns_, 0, std::nullopt, 0);
    auto rb = b->subscribe("chat:x", ns_, 3, std::nullopt, 0);
    ASSERT_FALSE(ra.unavailable);
    ASSERT_FALSE(rb.unavailable);
    EXPECT_EQ(ra.top, rb.top);
    // Two publishers on two nodes at once.
    auto spray = [&](broker::Engine* e, int n) {
        for (int i = 0; i < n; ++i) {
            auto r = e->publish("chat:x", ns_, "{\"i\":" + std::to_string(i) + "}", {}, 0);
            EXPECT_FALSE(r.unavailable);
        }
    };
    std::thread t1(spray, a.engine.get(), 150);
    std::thread t2(spray, b.engine.get(), 150);
    t1.join();
    t2.join();
    ASSERT_TRUE(eventually([&] {
        return sa.offsets().size() == 300 && sb.offsets().size() == 300;
    })) << sa.offsets().size()
        << " / " << sb.offsets().size();
    const auto oa = sa.offsets();
    for (size_t i = 0; i < oa.size(); ++i) {
        EXPECT_EQ(oa[i], ra.top.offset + i + 1);
    }
    EXPECT_EQ(oa, sb.offsets());
    const auto pa = sa.events(EventKind::kPublication);
    const auto pb = sb.events(EventKind::kPublication);
    for (size_t i = 0; i < pa.size(); ++i) {
        EXPECT_EQ(pa[i].pub->data, pb[i].pub->data);
        EXPECT_EQ(pa[i].pub->epoch, ra.top.epoch);
    }
}

TEST_F(RedisEngineTest, RecoversFromHistoryOnlyWhenEverythingIsThere) {
    auto a = engine();
    waitUp(*a);
    NamespaceOptions small = ns_;
    small.history_size = 3;
    StreamPos first;
    for (int i = 1; i <= 5; ++i) {
        auto r = a->publish("chat:h", small, "d" + std::to_string(i), {}, 0);
        ASSERT_FALSE(r.unavailable);
        if (i == 1) {
            first = r.pos;
        }
        EXPECT_EQ(r.pos.offset, static_cast<uint64_t>(i));
    }
    // Offsets 3..5 are kept: from 2 everything follows, from 1 offset 2 is gone.
    auto ok = a->subscribe("chat:h", small, 0, StreamPos{first.epoch, 2}, 0);
    EXPECT_TRUE(ok.recovered);
    ASSERT_EQ(ok.pubs.size(), 3u);
    EXPECT_EQ(ok.pubs.front()->data, "d3");
    auto gone = a->history("chat:h", small, StreamPos{first.epoch, 1}, 0, 0);
    EXPECT_FALSE(gone.recovered);
    auto other = a->history("chat:h", small, StreamPos{"e_other", 1}, 0, 0);
    EXPECT_FALSE(other.recovered);
    EXPECT_TRUE(other.pubs.empty());
    auto newest = a->history("chat:h", small, std::nullopt, 2, 0);
    ASSERT_EQ(newest.pubs.size(), 2u);
    EXPECT_EQ(newest.pubs[0]->offset, 4u);  // offset order, the newest two
    EXPECT_EQ(newest.pubs[1]->offset, 5u);
    auto paged = a->history("chat:h", small, StreamPos{first.epoch, 2}, 2, 0);
    EXPECT_TRUE(paged.recovered);
    ASSERT_EQ(paged.pubs.size(), 2u);
    EXPECT_EQ(paged.pubs[1]->offset, 4u);
    auto missing = a->history("chat:none", small, std::nullopt, 0, 0);
    EXPECT_EQ(missing.top.epoch, "");  // history does not create channels
}

TEST_F(RedisEngineTest, IdempotencyKeyPublishesOnce) {
    auto a = engine();
    auto b = engine();
    waitUp(*a);
    waitUp(*b);
    auto r1 = a->publish("chat:i", ns_, "x", "key-1", 0);
    auto r2 = b->publish("chat:i", ns_, "x", "key-1", 0);  // a retry landing on another node
    EXPECT_FALSE(r1.duplicate);
    EXPECT_TRUE(r2.duplicate);
    EXPECT_EQ(r1.pos, r2.pos);
    auto r3 = a->publish("chat:i", ns_, "y", "key-2", 0);
    EXPECT_EQ(r3.pos.offset, r1.pos.offset + 1);
}

TEST_F(RedisEngineTest, PresenceIsSharedAndADeadNodesEntriesLeaveWithinTheTtl) {
    Node b = node();
    Sink& sb = *b.sink;
    ASSERT_FALSE(b->subscribe("chat:p", ns_, 1, std::nullopt, 0).unavailable);
    {
        auto a = engine();
        waitUp(*a);
        auto who = std::make_shared<broker::ClientInfo>(
            broker::ClientInfo{"c_a_0_1", "alice", "{\"role\":\"x\"}"});
        a->presenceAdd("chat:p", ns_, who);
        ASSERT_TRUE(eventually([&] { return b->presence("chat:p").size() == 1; }));
        ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kJoin).size() == 1; }));
        EXPECT_EQ(sb.events(EventKind::kJoin)[0].who->user, "alice");
        EXPECT_EQ(b->presence("chat:p")[0]->info_json, "{\"role\":\"x\"}");
        // Both nodes are registered.
        ASSERT_TRUE(eventually([&] { return b->status().nodes.size() == 2; }));
    }  // node a stops heartbeating without removing its entries: as a kill -9 would
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return b->presence("chat:p").empty(); }, 8s));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 5s) << "node_ttl is 2 s, heartbeats every second";
    ASSERT_TRUE(eventually([&] { return sb.events(EventKind::kLeave).size() == 1; }));
    EXPECT_EQ(sb.events(EventKind::kLeave)[0].who->client_id, "c_a_0_1");
    EXPECT_TRUE(eventually([&] { return b->status().nodes.size() == 1; }));
}

std::optional<broker::SessionRecord> load(broker::Engine& e, std::string_view id) {
    bool down = false;
    auto r = e.loadSession(id, &down);
    EXPECT_FALSE(down);
    return r;
}

TEST_F(RedisEngineTest, SessionRecordsAreFencedByTheirHolder) {
    auto a = engine();
    waitUp(*a);
    broker::SessionRecord rec;
    rec.owner = "alice";
    rec.holder = "n1:5";
    rec.ttl_ms = 60'000;
    rec.channels = {{"chat:a", StreamPos{"e_1", 7}}, {"chat:b", StreamPos{"e_2", 0}}};
    a->saveSession("s_1", rec, true);
    ASSERT_TRUE(eventually([&] { return load(*a, "s_1").has_value(); }));
    // Another holder took it: the old one's later write must not land.
    broker::SessionRecord moved = rec;
    moved.holder = "n2:9";
    moved.channels = {{"chat:a", StreamPos{"e_1", 9}}};
    a->saveSession("s_1", moved, true);
    broker::SessionRecord stale = rec;
    stale.channels = {{"chat:a", StreamPos{"e_1", 8}}};
    a->saveSession("s_1", stale, false);
    ASSERT_TRUE(eventually([&] {
        auto r = load(*a, "s_1");
        return r && r->holder == "n2:9";
    }));
    std::this_thread::sleep_for(100ms);  // the stale write was posted after: let it run
    auto r = load(*a, "s_1");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->holder, "n2:9");
    EXPECT_EQ(r->owner, "alice");
    ASSERT_EQ(r->channels.size(), 1u);
    EXPECT_EQ(r->channels[0].second, (StreamPos{"e_1", 9}));
    a->removeSession("s_1");
    EXPECT_TRUE(eventually([&] { return !load(*a, "s_1").has_value(); }));
}

TEST_F(RedisEngineTest, UnreachableRedisIsUnavailableThenReconnects) {
    const uint16_t port = freePort();
    auto a = engine(port);
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(a->available());
    EXPECT_FALSE(a->status().error.empty());
    auto r = a->publish("chat:u", ns_, "x", {}, 0);
    EXPECT_TRUE(r.unavailable);
    bool down = false;
    EXPECT_FALSE(a->loadSession("s_x", &down).has_value());
    EXPECT_TRUE(down) << "a session Redis could not be asked about is not a missing session";
    EXPECT_TRUE(a->subscribe("chat:u", ns_, 0, std::nullopt, 0).unavailable);
    RedisServer late(port);
    waitUp(*a);
    EXPECT_FALSE(a->publish("chat:u", ns_, "x", {}, 0).unavailable);
}

TEST_F(RedisEngineTest, ARedisThatComesBackEmptyStartsANewEpoch) {
    Node a = node();
    Sink& sa = *a.sink;
    ASSERT_FALSE(a->subscribe("chat:r", ns_, 0, std::nullopt, 0).unavailable);
    auto before = a->publish("chat:r", ns_, "1", {}, 0);
    ASSERT_FALSE(before.unavailable);
    // (Killed before its PUBLISH reached the node, it would simply never arrive.)
    ASSERT_TRUE(eventually([&] { return sa.events(EventKind::kPublication).size() == 1; }));
    redis_->stop();
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    redis_->start();
    waitUp(*a.engine);
    auto after = a->publish("chat:r", ns_, "2", {}, 0);
    ASSERT_FALSE(after.unavailable);
    EXPECT_NE(after.pos.epoch, before.pos.epoch);
    EXPECT_EQ(after.pos.offset, 1u);
    // The node subscribed again on its own: the new publication arrives, in the new epoch.
    ASSERT_TRUE(eventually([&] { return sa.events(EventKind::kPublication).size() == 2; }))
        << sa.events(EventKind::kPublication).size() << " publications arrived";
    EXPECT_EQ(sa.events(EventKind::kPublication)[1].pub->epoch, after.pos.epoch);
    // A position in the old epoch does not recover.
    auto rec = a->history("chat:r", ns_, before.pos, 0, 0);
    EXPECT_FALSE(rec.recovered);
}

// Sends one command to Redis on a fresh connection and returns the raw reply.
std::string redisCommand(uint16_t port, const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size())) {
        char buf[512];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            reply.assign(buf, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    return reply;
}

TEST_F(RedisEngineTest, ANodeCutOffFromRedisCatchesUpFromHistory) {
    Node a = node();
    auto b = engine();
    Sink& sa = *a.sink;
    waitUp(*b);
    ASSERT_FALSE(a->subscribe("chat:c", ns_, 0, std::nullopt, 0).unavailable);
    std::vector<uint64_t> published;
    std::thread pub([&] {
        for (int i = 0; i < 400; ++i) {
            auto r = b->publish("chat:c", ns_, std::to_string(i), {}, 0);
            if (!r.unavailable) {
                published.push_back(r.pos.offset);
            }
            std::this_thread::sleep_for(1ms);
        }
    });
    std::this_thread::sleep_for(100ms);
    // Every pub/sub connection is cut (a's and b's): both reconnect; what b publishes while a is
    // away must still reach a, once and in order.
    EXPECT_NE(redisCommand(redis_->port(), {"CLIENT", "KILL", "TYPE", "pubsub"}).find(':'),
              std::string::npos);
    pub.join();
    ASSERT_GT(published.size(), 100u);
    ASSERT_TRUE(eventually([&] {
        const auto o = sa.offsets();
        return !o.empty() && o.back() == published.back();
    })) << sa.offsets().size()
        << " of " << published.size();
    EXPECT_GE(a->status().reconnects, 1u);
    const auto got = sa.offsets();
    ASSERT_EQ(got.size(), published.back());
    for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], i + 1) << "each offset once, in order";
    }
}

TEST_F(RedisEngineTest, ARedisRestoredFromAnOlderSnapshotDoesNotReuseOffsets) {
    char dir[] = "/tmp/sb-redis-rdb-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const uint16_t port = freePort();
    RedisServer persisted(port, {"--port", std::to_string(port), "--dir", dir});
    auto a = engine(port);
    waitUp(*a);
    StreamPos third;
    for (int i = 1; i <= 3; ++i) {
        third = a->publish("chat:s", ns_, std::to_string(i), {}, 0).pos;
    }
    EXPECT_NE(redisCommand(port, {"SAVE"}).find("OK"), std::string::npos);
    auto fifth = a->publish("chat:s", ns_, "4", {}, 0);
    fifth = a->publish("chat:s", ns_, "5", {}, 0);
    ASSERT_EQ(fifth.pos.offset, 5u);
    // Redis dies and comes back from the snapshot: the stream says offset 3 again. Offsets 4
    // and 5 were handed out already, so the stream must not go on in the same epoch.
    persisted.stop();
    ASSERT_TRUE(eventually([&] { return !a->available(); }));
    persisted.start();
    waitUp(*a);
    auto after = a->publish("chat:s", ns_, "6", {}, 0);
    ASSERT_FALSE(after.unavailable);
    EXPECT_NE(after.pos.epoch, third.epoch) << "offset " << after.pos.offset << " reused";
    EXPECT_FALSE(a->history("chat:s", ns_, fifth.pos, 0, 0).recovered);
    // A second node connecting later does not move the generation again.
    auto b = engine(port);
    waitUp(*b);
    auto next = b->publish("chat:s", ns_, "7", {}, 0);
    EXPECT_EQ(next.pos.epoch, after.pos.epoch);
    EXPECT_EQ(next.pos.offset, after.pos.offset + 1);
    std::system(("rm -rf " + std::string(dir)).c_str());
}

TEST_F(RedisEngineTest, ControlMessagesReachOneNodeOrAll) {
    Node a = node();
    Node b = node();
    Sink& sa = *a.sink;
    Sink& sb = *b.sink;
    ASSERT_NE(a->nodeTag(), b->nodeTag());
    b->sendControl(a->nodeTag(), "tsession-1");
    ASSERT_TRUE(eventually([&] { return sa.controls().size() == 1; }));
    EXPECT_EQ(sa.controls()[0], "tsession-1");
    a->sendControl({}, "u1bob");
    ASSERT_TRUE(eventually([&] { return sb.controls().size() == 1 && sa.controls().size() == 2; }));
    EXPECT_EQ(sb.controls()[0], "u1bob");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(sb.controls().size(), 1u);  // "tsession-1" was for a only
}

TEST_F(RedisEngineTest, SpeaksTlsAndAuthenticates) {
    char dir[] = "/tmp/sb-redis-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string d = dir;
    // A throwaway self-signed certificate for 127.0.0.1 (the openssl tool is a test dependency).
    const std::string gen =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d +
        "/key.pem -out " + d +
        "/cert.pem -days 2 -subj /CN=redis -addext "
        "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1";
    ASSERT_EQ(std::system(gen.c_str()), 0);
    const uint16_t port = freePort();
    RedisServer tls_redis(
        port,
        {"--port", "0", "--tls-port", std::to_string(port), "--tls-cert-file", d + "/cert.pem",
         "--tls-key-file", d + "/key.pem", "--tls-auth-clients", "no", "--requirepass", "s3cret"});
    RedisOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    o.prefix = prefix_;
    o.tls = true;
    o.tls_ca_file = d + "/cert.pem";
    o.password = "s3cret";
    auto good = makeRedisEngine(o);
    ASSERT_TRUE(good.has_value());
    waitUp(**good);
    auto r = (*good)->publish("chat:t", ns_, "x", {}, 0);
    EXPECT_FALSE(r.unavailable);
    EXPECT_EQ(r.pos.offset, 1u);
    // A wrong password: never available, and the status says why.
    o.password = "wrong";
    auto bad = makeRedisEngine(o);
    ASSERT_TRUE(bad.has_value());
    ASSERT_TRUE(eventually([&] {
        return (*bad)->status().error.find("AUTH") != std::string::npos;
    })) << (*bad)->status().error;
    EXPECT_FALSE((*bad)->available());
    // An untrusted certificate (no CA given: the system store does not know it): refused.
    o.password = "s3cret";
    o.tls_ca_file.clear();
    auto untrusted = makeRedisEngine(o);
    ASSERT_TRUE(untrusted.has_value());
    ASSERT_TRUE(eventually([&] {
        return (*untrusted)->status().error.find("TLS") != std::string::npos;
    })) << (*untrusted)->status().error;
    EXPECT_FALSE((*untrusted)->available());
    std::system(("rm -rf " + d).c_str());
}

TEST(RedisOptionsTest, AddressesAreParsedWithClearErrors) {
    auto one = parseAddresses("127.0.0.1:6379");
    ASSERT_TRUE(one.has_value());
    EXPECT_EQ((*one)[0].first, "127.0.0.1");
    EXPECT_EQ((*one)[0].second, 6379);
    auto two = parseAddresses("a:1, [::1]:2");
    ASSERT_TRUE(two.has_value());
    ASSERT_EQ(two->size(), 2u);
    EXPECT_EQ((*two)[1].first, "::1");
    EXPECT_FALSE(parseAddresses("localhost").has_value());
    EXPECT_FALSE(parseAddresses("h:0").has_value());
    EXPECT_FALSE(parseAddresses("").has_value());
    RedisOptions bad;
    bad.prefix = "";
    EXPECT_FALSE(makeRedisEngine(bad).has_value());
}

}  // namespace
}  // namespace sb::engines::redis
