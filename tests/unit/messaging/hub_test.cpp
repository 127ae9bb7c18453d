// The Hub over an in-memory transport: a TestPeer records what the core hands a connection
// (publications with offset and gap, join/leave, disconnects) and enforces a byte budget like a
// transport's outbound limit, so fan-out, replay, sessions, takeover, slow consumers, rate limits
// and stats are tested without sockets. The Hub runs on real EventLoops on their own threads;
// every Client call runs on the client's loop thread, and asynchronous deliveries are awaited
// by polling a condition on the loop until it holds or a deadline passes (no sleeps).
#include "messaging/hub.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "auth/jwt.h"
#include "broker/engine.h"
#include "loop/event_loop.h"
#include "messaging/errors.h"
#include "messaging/options.h"
#include "messaging/peer.h"

namespace sb::messaging {
namespace {

using broker::EventKind;
using broker::StreamPos;
using namespace std::chrono_literals;

// How long an asynchronous outcome may take before the test fails (a loaded 2-core machine
// under ASan delivers in milliseconds; this only bounds a failure).
constexpr auto kDeadline = 5s;
// A loop that does not run a posted task within this is hung: the test binary aborts rather
// than hang ctest.
constexpr auto kHungLoop = 30s;
constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();

// ---- The in-memory transport ------------------------------------------------------------------

struct Received {
    EventKind kind = EventKind::kPublication;
    std::string channel;
    std::string epoch;
    uint64_t offset = 0;
    bool gap = false;
    std::string data;
    std::string who;  // join/leave: the client id
};

struct Closed {
    uint16_t code = 0;
    bool reconnect = false;
    loop::EventLoop* on = nullptr;  // the loop whose thread closed it
};

// A Peer with an outbound budget in bytes (each publication costs its data size): past it, a
// droppable delivery is skipped (kDropped) and any other closes the connection as a slow
// consumer (kGone, recorded as a 4000 close), as a transport does. Loop thread only; the test
// reads it through LoopThread::call or after the loops stopped.
class TestPeer final : public Peer {
public:
    explicit TestPeer(size_t budget) : budget_(budget) {}

    PeerStatus deliver(const Delivery& d, bool droppable) override {
        ++calls_;
        checkThread();
        if (closed_) {
            ++calls_after_close_;
            return PeerStatus::kGone;
        }
        const broker::Event& ev = d.event;
        const size_t cost = ev.kind == EventKind::kPublication ? ev.pub->data.size() : 0;
        if (budget_ < cost || used_ > budget_ - cost) {
            if (droppable) {
                ++drops_;
                return PeerStatus::kDropped;
            }
            closed_ = true;
            ++gone_;
            closes_.push_back(
                {kSlowConsumer.code, kSlowConsumer.reconnect, loop::EventLoop::current()});
            return PeerStatus::kGone;
        }
        used_ += cost;
        Received r;
        r.kind = ev.kind;
        r.gap = d.gap;
        if (ev.kind == EventKind::kPublication) {
            r.channel = ev.pub->channel;
            r.epoch = ev.pub->epoch;
            r.offset = ev.pub->offset;
            r.data = ev.pub->data;
        } else {
            r.channel = ev.channel;
            r.who = ev.who ? ev.who->client_id : std::string();
        }
        received_.push_back(std::move(r));
        return PeerStatus::kSent;
    }

    void disconnect(const Disconnect& d) override {
        ++disconnect_calls_;
        checkThread();
        if (closed_) {
            return;  // idempotent
        }
        closed_ = true;
        closes_.push_back({d.code, d.reconnect, loop::EventLoop::current()});
    }

    // The transport flushed its backlog: the whole budget is free again.
    void setBudget(size_t budget) {
        budget_ = budget;
        used_ = 0;
    }
    void expectLoop(loop::EventLoop* l) { expected_loop_ = l; }

    const std::vector<Received>& received() const { return received_; }
    const std::vector<Closed>& closes() const { return closes_; }
    size_t calls() const { return calls_; }
    size_t callsAfterClose() const { return calls_after_close_; }
    size_t drops() const { return drops_; }
    size_t goneReports() const { return gone_; }
    size_t disconnectCalls() const { return disconnect_calls_; }
    size_t wrongThreadCalls() const { return wrong_thread_; }

private:
    void checkThread() {
        if (expected_loop_ != nullptr && loop::EventLoop::current() != expected_loop_) {
            ++wrong_thread_;
        }
    }

    size_t budget_;
    size_t used_ = 0;
    bool closed_ = false;
    loop::EventLoop* expected_loop_ = nullptr;
    std::vector<Received> received_;
    std::vector<Closed> closes_;
    size_t calls_ = 0, calls_after_close_ = 0, drops_ = 0, gone_ = 0, disconnect_calls_ = 0,
           wrong_thread_ = 0;
};

// An EventLoop running on its own thread.
class LoopThread {
public:
    explicit LoopThread(uint32_t id) { loop_.setId(id); }
    ~LoopThread() { stopAndJoin(); }

    void start() {
        thread_ = std::thread([this] { loop_.run(); });
    }
    void stopAndJoin() {
        if (thread_.joinable()) {
            loop_.stop();
            thread_.join();
        }
    }
    loop::EventLoop& loop() { return loop_; }

    // Runs fn on the loop thread and returns its result.
    template <class F>
    auto call(F&& fn) -> decltype(fn()) {
        using R = decltype(fn());
        auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
        std::future<R> result = task->get_future();
        loop_.post([task] { (*task)(); });
        if (result.wait_for(kHungLoop) != std::future_status::ready) {
            std::fprintf(stderr, "loop %u ran no task for 30 s: hung\n", loop_.id());
            std::abort();
        }
        return result.get();
    }

    // Polls pred on the loop thread until it is true or kDeadline passes.
    template <class Pred>
    bool eventually(Pred pred) {
        const auto deadline = std::chrono::steady_clock::now() + kDeadline;
        while (!call(pred)) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::yield();
        }
        return true;
    }

private:
    loop::EventLoop loop_;
    std::thread thread_;
};

// One connection: the adapter's per-connection data (its peer and the core's Client).
struct Conn {
    Conn(uint32_t l, size_t budget) : loop(l), peer(budget), client(peer) {}
    uint32_t loop;
    TestPeer peer;
    Client client;
};

template <class T>
std::string codeOf(const Outcome<T>& o) {
    return o ? std::string("ok") : std::string(errorInfo(o.error().error).code);
}

template <class T>
std::string describe(const Outcome<T>& o) {
    return o ? std::string("ok") : codeOf(o) + ": " + o.error().message;
}

std::vector<uint64_t> offsetsIn(const std::vector<Received>& rs, std::string_view channel) {
    std::vector<uint64_t> out;
    for (const Received& r : rs) {
        if (r.kind == EventKind::kPublication && r.channel == channel) {
            out.push_back(r.offset);
        }
    }
    return out;
}

std::vector<uint64_t> offsetsOf(const std::vector<broker::PubPtr>& pubs) {
    std::vector<uint64_t> out;
    for (const auto& p : pubs) {
        out.push_back(p->offset);
    }
    return out;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
    std::vector<uint64_t> out;
    for (uint64_t i = first; i <= last; ++i) {
        out.push_back(i);
    }
    return out;
}

NamespaceOptions withHistory(size_t n) {
    NamespaceOptions ns;
    ns.history_size = n;
    return ns;
}

// Namespaces of the tests:
//   default  history 100 (broadcast, canonical names)
//   hist     at-most-once, history 1000 (subscribe with since, at-most-once resume)
//   alo      at-least-once, history 100
//   ro       client_publish = false, no history
//   small    max_data_bytes 10
//   slow     slow_consumer = disconnect, history 1000
//   drop     slow_consumer = drop, history 1000
//   pres     presence and join/leave
Options testOptions() {
    Options o;
    o.namespaces["default"] = withHistory(100);
    o.namespaces["hist"] = withHistory(1000);
    NamespaceOptions alo = withHistory(100);
    alo.delivery = NamespaceOptions::Delivery::kAtLeastOnce;
    o.namespaces["alo"] = alo;
    NamespaceOptions ro;
    ro.client_publish = false;
    o.namespaces["ro"] = ro;
    NamespaceOptions small;
    small.max_data_bytes = 10;
    o.namespaces["small"] = small;
    NamespaceOptions slow = withHistory(1000);
    slow.slow_consumer = NamespaceOptions::SlowConsumer::kDisconnect;
    o.namespaces["slow"] = slow;
    NamespaceOptions drop = withHistory(1000);
    drop.slow_consumer = NamespaceOptions::SlowConsumer::kDrop;
    o.namespaces["drop"] = drop;
    NamespaceOptions pres;
    pres.presence = true;
    pres.join_leave = true;
    o.namespaces["pres"] = pres;
    return o;
}

class HubTest : public ::testing::Test {
protected:
    void start(Options options = testOptions(), uint32_t loops = 2) {
        std::vector<loop::EventLoop*> raw;
        for (uint32_t i = 0; i < loops; ++i) {
            loops_.push_back(std::make_unique<LoopThread>(i));
            raw.push_back(&loops_.back()->loop());
        }
        hub_ = std::make_unique<Hub>(std::move(options), raw);  // hooks added before run()
        for (auto& l : loops_) {
            l->start();
        }
    }

    LoopThread& loopOf(const Conn& c) { return *loops_.at(c.loop); }

    template <class F>
    auto on(Conn& c, F&& fn) {
        return loopOf(c).call(std::forward<F>(fn));
    }

    void TearDown() override {
        if (hub_) {
            for (auto& c : conns_) {
                on(*c, [&] { hub_->close(c->client); });  // idempotent
            }
        }
        for (auto& l : loops_) {
            l->stopAndJoin();
        }
        for (auto& c : conns_) {
            EXPECT_EQ(c->peer.wrongThreadCalls(), 0u) << "peer called off its loop thread";
            EXPECT_EQ(c->peer.callsAfterClose(), 0u) << "delivery after kGone / disconnect";
        }
        hub_.reset();
    }

    // A connection opened on `loop` (not connected).
    Conn& open(uint32_t loop, size_t budget = kUnlimited) {
        conns_.push_back(std::make_unique<Conn>(loop, budget));
        Conn& c = *conns_.back();
        c.peer.expectLoop(&loopOf(c).loop());
        on(c, [&] { hub_->open(c.client, loop); });
        return c;
    }

    Outcome<Connected> connect(Conn& c, std::string_view session = {}) {
        return on(c, [&] { return hub_->connect(c.client, "user", "", session); });
    }

    // Opened and connected with a new session.
    Conn& connected(uint32_t loop, size_t budget = kUnlimited) {
        Conn& c = open(loop, budget);
        auto r = connect(c);
        EXPECT_TRUE(r) << describe(r);
        return c;
    }

    // As an adapter does: subscribe, (reply), then replay what is owed.
    Outcome<Subscribed> subscribe(Conn& c, std::string_view channel,
                                  const std::optional<StreamPos>& since = std::nullopt) {
        return on(c, [&] {
            auto r = hub_->subscribe(c.client, channel, since);
            if (r) {
                hub_->replay(c.client, r->replay);
            }
            return r;
        });
    }

    // As an adapter does on connect: reply, then replay.
    Outcome<Connected> resume(Conn& c, std::string_view session) {
        return on(c, [&] {
            auto r = hub_->connect(c.client, "user", "", session);
            if (r) {
                hub_->replay(c.client, r->replay);
            }
            return r;
        });
    }

    void close(Conn& c) {
        on(c, [&] { hub_->close(c.client); });
    }

    // The server publishes (any thread).
    StreamPos publish(std::string_view channel, std::string data = "0123456789") {
        auto r = hub_->publish(nullptr, channel, std::move(data), "");
        EXPECT_TRUE(r) << describe(r);
        return r ? r->pos : StreamPos{};
    }

    std::vector<Received> received(Conn& c) {
        return on(c, [&] { return c.peer.received(); });
    }
    std::vector<uint64_t> offsets(Conn& c, std::string_view channel) {
        return offsetsIn(received(c), channel);
    }
    std::vector<Closed> closes(Conn& c) {
        return on(c, [&] { return c.peer.closes(); });
    }
    bool closing(Conn& c) {
        return on(c, [&] { return c.client.closing(); });
    }

    // Waits until `c` has at least n publications of `channel`.
    bool waitFor(Conn& c, std::string_view channel, size_t n) {
        return loopOf(c).eventually(
            [&] { return offsetsIn(c.peer.received(), channel).size() >= n; });
    }

    std::vector<std::unique_ptr<Conn>> conns_;        // outlive the loops and the Hub
    std::vector<std::unique_ptr<LoopThread>> loops_;  // outlive the Hub
    std::unique_ptr<Hub> hub_;
};

// ---- Fan-out ------------------------------------------------------------------------------------

TEST_F(HubTest, HundredPublicationsArriveInOffsetOrderOnceOnEachLoop) {
    start();
    Conn& a = connected(0);
    Conn& b = connected(1);
    Conn& publisher = connected(1);  // publishes from a loop with a local subscriber
    ASSERT_TRUE(subscribe(a, "room"));
    ASSERT_TRUE(subscribe(b, "room"));
    // Half from the test thread (the API), half from a client on loop 1, interleaved: the
    // engine orders them, and each loop must deliver in that order.
    for (int i = 1; i <= 100; ++i) {
        std::string data = "m" + std::to_string(i);
        if (i % 2 == 0) {
            loopOf(publisher).loop().post([this, &publisher, data] {
                auto r = hub_->publish(&publisher.client, "room", data, "");
                EXPECT_TRUE(r) << describe(r);
            });
        } else {
            publish("room", data);
        }
    }
    ASSERT_TRUE(waitFor(a, "room", 100));
    ASSERT_TRUE(waitFor(b, "room", 100));
    for (Conn* c : {&a, &b}) {
        const std::vector<Received> got = received(*c);
        EXPECT_EQ(offsetsIn(got, "room"), range(1, 100));
        std::set<std::string> data;
        for (const Received& r : got) {
            EXPECT_EQ(r.epoch, got.front().epoch);
            EXPECT_FALSE(r.gap);
            data.insert(r.data);
        }
        EXPECT_EQ(data.size(), 100u);  // every publication, none twice
    }
    EXPECT_TRUE(received(publisher).empty());  // not subscribed
}

TEST_F(HubTest, UnsubscribedClientReceivesNothingMore) {
    start();
    Conn& a = connected(0);
    Conn& witness = connected(0);
    ASSERT_TRUE(subscribe(a, "room"));
    ASSERT_TRUE(subscribe(witness, "room"));
    publish("room");
    ASSERT_TRUE(waitFor(a, "room", 1));
    auto u = on(a, [&] { return hub_->unsubscribe(a.client, "default:room"); });
    ASSERT_TRUE(u) << describe(u);
    EXPECT_EQ(*u, "room");
    publish("room");
    ASSERT_TRUE(waitFor(witness, "room", 2));  // same loop, same drain: a would have it now
    EXPECT_EQ(offsets(a, "room"), std::vector<uint64_t>{1});
    auto again = on(a, [&] { return hub_->unsubscribe(a.client, "room"); });
    EXPECT_EQ(codeOf(again), "not_subscribed");
}

// ---- Subscribe with since ----------------------------------------------------------------------

TEST_F(HubTest, SubscribeWithSinceReplaysExactlyTheMissedThenLive) {
    start();
    StreamPos top;
    for (int i = 1; i <= 5; ++i) {
        top = publish("hist:r");
    }
    ASSERT_EQ(top.offset, 5u);
    Conn& b = connected(1);
    auto s = subscribe(b, "hist:r", StreamPos{top.epoch, 2});
    ASSERT_TRUE(s) << describe(s);
    EXPECT_EQ(s->position.channel, "hist:r");
    EXPECT_EQ(s->position.top, top);
    ASSERT_TRUE(s->position.recovered.has_value());
    EXPECT_TRUE(*s->position.recovered);
    ASSERT_EQ(s->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(s->replay.channels[0].pubs), (std::vector<uint64_t>{3, 4, 5}));
    ASSERT_TRUE(waitFor(b, "hist:r", 3));
    publish("hist:r");
    publish("hist:r");
    ASSERT_TRUE(waitFor(b, "hist:r", 5));
    EXPECT_EQ(offsets(b, "hist:r"), range(3, 7));  // missed, then live, none twice
}

TEST_F(HubTest, SubscribeWithSinceAtTheTopReplaysNothing) {
    start();
    const StreamPos top = publish("hist:t");
    Conn& b = connected(0);
    auto s = subscribe(b, "hist:t", top);
    ASSERT_TRUE(s) << describe(s);
    ASSERT_TRUE(s->position.recovered.has_value());
    EXPECT_TRUE(*s->position.recovered);
    EXPECT_TRUE(s->replay.channels.empty());
    publish("hist:t");
    ASSERT_TRUE(waitFor(b, "hist:t", 1));
    EXPECT_EQ(offsets(b, "hist:t"), std::vector<uint64_t>{2});
}

TEST_F(HubTest, SubscribeWithSinceOfAnotherEpochIsNotRecovered) {
    start();
    const StreamPos top = publish("hist:e");
    publish("hist:e");
    Conn& c = connected(0);
    auto s = subscribe(c, "hist:e", StreamPos{top.epoch + "x", 1});
    ASSERT_TRUE(s) << describe(s);
    ASSERT_TRUE(s->position.recovered.has_value());
    EXPECT_FALSE(*s->position.recovered);
    EXPECT_EQ(s->position.top.offset, 2u);
    EXPECT_TRUE(s->replay.channels.empty());
    publish("hist:e");
    ASSERT_TRUE(waitFor(c, "hist:e", 1));
    EXPECT_EQ(offsets(c, "hist:e"), std::vector<uint64_t>{3});  // only what came after
}

TEST_F(HubTest, SubscribeWithoutSinceHasNoRecoveredFlag) {
    start();
    publish("hist:n");
    Conn& c = connected(0);
    auto s = subscribe(c, "hist:n");
    ASSERT_TRUE(s) << describe(s);
    EXPECT_FALSE(s->position.recovered.has_value());
    EXPECT_EQ(s->position.top.offset, 1u);
    EXPECT_TRUE(s->replay.channels.empty());
}

// ---- Canonical names ---------------------------------------------------------------------------

TEST_F(HubTest, DefaultPrefixIsTheSameChannel) {
    start();
    Conn& a = connected(0);
    auto s = subscribe(a, "default:room");
    ASSERT_TRUE(s) << describe(s);
    EXPECT_EQ(s->position.channel, "room");
    auto p = hub_->publish(nullptr, "room", "x", "");
    ASSERT_TRUE(p) << describe(p);
    EXPECT_EQ(p->channel, "room");
    auto q = hub_->publish(nullptr, "default:room", "y", "");
    ASSERT_TRUE(q) << describe(q);
    EXPECT_EQ(q->channel, "room");
    EXPECT_EQ(q->pos.offset, 2u);  // one stream
    ASSERT_TRUE(waitFor(a, "room", 2));
    EXPECT_EQ(offsets(a, "room"), (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(codeOf(subscribe(a, "room")), "already_subscribed");
    EXPECT_EQ(codeOf(subscribe(a, "default:room")), "already_subscribed");
    // "default:a:b" is not "a:b" (namespace "a", not configured).
    EXPECT_TRUE(subscribe(a, "default:a:b"));
    EXPECT_EQ(codeOf(subscribe(a, "a:b")), "unknown_namespace");
}

// ---- Refusals ----------------------------------------------------------------------------------

TEST_F(HubTest, RequestsBeforeConnectAreRefused) {
    start();
    Conn& c = open(0);
    EXPECT_FALSE(c.client.connected());
    EXPECT_EQ(codeOf(subscribe(c, "room")), "not_connected");
    EXPECT_EQ(codeOf(on(c, [&] { return hub_->unsubscribe(c.client, "room"); })), "not_connected");
    EXPECT_EQ(codeOf(on(c, [&] { return hub_->ack(c.client, "alo:x", 1); })), "not_connected");
    EXPECT_EQ(codeOf(on(c, [&] { return hub_->publish(&c.client, "room", "x", ""); })),
              "not_connected");
    auto r = connect(c);
    ASSERT_TRUE(r) << describe(r);
    EXPECT_TRUE(c.client.connected());
    EXPECT_EQ(r->client_id, c.client.id());
    EXPECT_FALSE(r->resumed);
    EXPECT_EQ(r->session_id.rfind("s_", 0), 0u);
    EXPECT_EQ(codeOf(connect(c)), "already_connected");
}

TEST_F(HubTest, ChannelNamespaceAndDataRefusals) {
    start();
    Conn& c = connected(0);
    EXPECT_EQ(codeOf(subscribe(c, "no such")), "bad_channel");
    EXPECT_EQ(codeOf(subscribe(c, "Chat:x")), "bad_channel");
    EXPECT_EQ(codeOf(subscribe(c, "nope:x")), "unknown_namespace");
    EXPECT_EQ(codeOf(hub_->publish(nullptr, "nope:x", "x", "")), "unknown_namespace");
    EXPECT_EQ(codeOf(hub_->publish(nullptr, ":x", "x", "")), "bad_channel");

    // client_publish = false: clients are refused, the server is not.
    EXPECT_EQ(codeOf(on(c, [&] { return hub_->publish(&c.client, "ro:x", "x", ""); })),
              "publish_forbidden");
    EXPECT_TRUE(hub_->publish(nullptr, "ro:x", "x", ""));

    // max_data_bytes = 10: 10 bytes pass, 11 do not, for clients and the server alike.
    EXPECT_TRUE(on(c, [&] { return hub_->publish(&c.client, "small:x", "0123456789", ""); }));
    EXPECT_EQ(codeOf(on(c, [&] { return hub_->publish(&c.client, "small:x", "0123456789a", ""); })),
              "data_too_large");
    EXPECT_EQ(codeOf(hub_->publish(nullptr, "small:x", "0123456789a", "")), "data_too_large");

    EXPECT_EQ(codeOf(hub_->presence("room")), "presence_disabled");
    EXPECT_TRUE(hub_->presence("pres:x"));
    EXPECT_EQ(codeOf(hub_->history("ro:x", std::nullopt, 0)), "history_disabled");
    EXPECT_EQ(codeOf(hub_->history("nope:x", std::nullopt, 0)), "unknown_namespace");
    EXPECT_TRUE(hub_->history("room", std::nullopt, 0));

    EXPECT_EQ(codeOf(hub_->disconnect("c_no_such_client", true)), "unknown_client");
    EXPECT_EQ(codeOf(hub_->disconnect("", true)), "unknown_client");
}

TEST_F(HubTest, MaxSubscriptionsIsEnforced) {
    Options o = testOptions();
    o.max_subscriptions = 2;
    start(std::move(o));
    Conn& c = connected(0);
    ASSERT_TRUE(subscribe(c, "a1"));
    ASSERT_TRUE(subscribe(c, "a2"));
    EXPECT_EQ(codeOf(subscribe(c, "a3")), "limit_exceeded");
    EXPECT_EQ(codeOf(subscribe(c, "a1")), "already_subscribed");  // checked first
    ASSERT_TRUE(on(c, [&] { return hub_->unsubscribe(c.client, "a1"); }));
    EXPECT_TRUE(subscribe(c, "a3"));  // room again
}

TEST_F(HubTest, ApiDisconnectClosesTheClientOnItsLoop) {
    start();
    Conn& a = connected(1);
    auto d = hub_->disconnect(a.client.id(), false);
    ASSERT_TRUE(d) << describe(d);
    ASSERT_TRUE(loopOf(a).eventually([&] { return !a.peer.closes().empty(); }));
    const std::vector<Closed> c = closes(a);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].code, kApiDisconnect.code);
    EXPECT_FALSE(c[0].reconnect);
    EXPECT_EQ(c[0].on, &loopOf(a).loop());
    EXPECT_TRUE(closing(a));
    close(a);
    EXPECT_EQ(codeOf(hub_->disconnect(a.client.id(), true)), "unknown_client");
}

// reconnect:false ends the session with the connection: a resume starts afresh.
TEST_F(HubTest, ApiDisconnectWithoutReconnectEndsTheSession) {
    start();
    Conn& a = connected(1);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "alo:end"));
    ASSERT_TRUE(hub_->disconnect(a.client.id(), false));
    ASSERT_TRUE(loopOf(a).eventually([&] { return !a.peer.closes().empty(); }));
    close(a);
    Conn& b = open(0);
    auto r = resume(b, session);
    ASSERT_TRUE(r) << describe(r);
    EXPECT_FALSE(r->resumed);
    EXPECT_NE(r->session_id, session);
    EXPECT_TRUE(r->channels.empty());
}

// ---- Broadcast ---------------------------------------------------------------------------------

TEST_F(HubTest, BroadcastThatFailsPublishesNothing) {
    start();
    const StreamPos before = publish("room");
    Conn& a = connected(0);
    ASSERT_TRUE(subscribe(a, "room"));

    const std::vector<std::vector<std::string_view>> refused = {
        {"a:x", "room"},  // unknown namespace first
        {"room", "a:x"},  // and last: still nothing
        {"room", "bad channel"},
        {"room", "small:x"},  // 11 bytes > max_data_bytes there
    };
    const std::vector<std::string> codes = {"unknown_namespace", "unknown_namespace", "bad_channel",
                                            "data_too_large"};
    for (size_t i = 0; i < refused.size(); ++i) {
        auto r = hub_->broadcast(refused[i], "0123456789a", "");
        EXPECT_EQ(codeOf(r), codes[i]) << "case " << i;
    }
    auto h = hub_->history("room", std::nullopt, 0);
    ASSERT_TRUE(h) << describe(h);
    EXPECT_EQ(h->result.top, before);
    EXPECT_EQ(offsetsOf(h->result.pubs), std::vector<uint64_t>{1});

    const std::vector<std::string_view> ok = {"room", "default:hist-b", "hist:b"};
    auto r = hub_->broadcast(ok, "z", "");
    ASSERT_TRUE(r) << describe(r);
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ((*r)[0].channel, "room");
    EXPECT_EQ((*r)[0].pos.offset, 2u);
    EXPECT_EQ((*r)[1].channel, "hist-b");
    EXPECT_EQ((*r)[2].channel, "hist:b");
    ASSERT_TRUE(waitFor(a, "room", 1));
    EXPECT_EQ(offsets(a, "room"), std::vector<uint64_t>{2});  // no refused broadcast leaked
}

// ---- Sessions ----------------------------------------------------------------------------------

TEST_F(HubTest, AtLeastOnceResumeRedeliversUnackedThenMissedInOrder) {
    start();
    Conn& a = connected(0);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "alo:q"));
    for (int i = 0; i < 5; ++i) {
        publish("alo:q");
    }
    ASSERT_TRUE(waitFor(a, "alo:q", 5));
    EXPECT_EQ(offsets(a, "alo:q"), range(1, 5));
    ASSERT_TRUE(on(a, [&] { return hub_->ack(a.client, "alo:q", 2); }));
    close(a);
    publish("alo:q");  // 6 and 7 while away
    const StreamPos top = publish("alo:q");

    Conn& b = open(1);
    auto r = resume(b, session);
    ASSERT_TRUE(r) << describe(r);
    EXPECT_TRUE(r->resumed);
    EXPECT_EQ(r->session_id, session);
    EXPECT_EQ(b.client.session(), session);
    ASSERT_EQ(r->channels.size(), 1u);
    EXPECT_EQ(r->channels[0].channel, "alo:q");
    EXPECT_EQ(r->channels[0].top, top);
    ASSERT_TRUE(r->channels[0].recovered.has_value());
    EXPECT_TRUE(*r->channels[0].recovered);
    ASSERT_EQ(r->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(r->replay.channels[0].unacked), (std::vector<uint64_t>{3, 4, 5}));
    EXPECT_FALSE(r->replay.channels[0].gap);

    ASSERT_TRUE(waitFor(b, "alo:q", 5));
    publish("alo:q");  // 8: live after the replay
    ASSERT_TRUE(waitFor(b, "alo:q", 6));
    EXPECT_EQ(offsets(b, "alo:q"), range(3, 8));  // un-acked, missed, live; none twice
}

TEST_F(HubTest, TakeoverClosesTheOldHolderAndKeepsTheSessionWithTheNewOne) {
    start();
    Conn& a = connected(0);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "alo:t"));
    for (int i = 0; i < 3; ++i) {
        publish("alo:t");
    }
    ASSERT_TRUE(waitFor(a, "alo:t", 3));

    Conn& b = open(1);
    auto rb = resume(b, session);  // while a is open
    ASSERT_TRUE(rb) << describe(rb);
    EXPECT_TRUE(rb->resumed);
    ASSERT_EQ(rb->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(rb->replay.channels[0].unacked), range(1, 3));
    ASSERT_TRUE(loopOf(a).eventually([&] { return !a.peer.closes().empty(); }));
    const std::vector<Closed> ca = closes(a);
    ASSERT_EQ(ca.size(), 1u);
    EXPECT_EQ(ca[0].code, kSessionTakenOver.code);
    EXPECT_FALSE(ca[0].reconnect);
    EXPECT_EQ(ca[0].on, &loopOf(a).loop());  // on a's loop
    EXPECT_TRUE(closing(a));
    EXPECT_EQ(hub_->stats(1).takeovers.value(), 1u);
    ASSERT_TRUE(waitFor(b, "alo:t", 3));

    // a's transport reports the end: the session must stay with b (no TTL, no position moved).
    close(a);
    EXPECT_EQ(hub_->sessions(), 1u);
    publish("alo:t");  // 4: b receives it and keeps it un-acked in the session
    ASSERT_TRUE(waitFor(b, "alo:t", 4));
    EXPECT_EQ(offsets(b, "alo:t"), range(1, 4));
    EXPECT_EQ(offsets(a, "alo:t"), range(1, 3));

    close(b);
    Conn& c = open(0);
    auto rc = resume(c, session);
    ASSERT_TRUE(rc) << describe(rc);
    EXPECT_TRUE(rc->resumed);
    ASSERT_EQ(rc->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(rc->replay.channels[0].unacked), range(1, 4));  // nothing acked
    ASSERT_TRUE(waitFor(c, "alo:t", 4));
    EXPECT_EQ(offsets(c, "alo:t"), range(1, 4));
    EXPECT_TRUE(closes(b).empty());  // b closed on its own: no takeover (it was detached)
}

// The taken-over connection's close must not detach the session from its new holder: a third
// connection resuming it while the second is open takes it over from the second (4004 there),
// which only happens if the session is still attached to it.
TEST_F(HubTest, OldHoldersCloseLeavesTheSessionAttachedToTheNewHolder) {
    start();
    Conn& a = connected(0);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "alo:h"));
    Conn& b = open(1);
    ASSERT_TRUE(resume(b, session));
    ASSERT_TRUE(loopOf(a).eventually([&] { return !a.peer.closes().empty(); }));
    close(a);
    Conn& c = open(0);
    auto rc = resume(c, session);
    ASSERT_TRUE(rc) << describe(rc);
    EXPECT_TRUE(rc->resumed);
    ASSERT_TRUE(loopOf(b).eventually([&] { return !b.peer.closes().empty(); }));
    const std::vector<Closed> cb = closes(b);
    ASSERT_EQ(cb.size(), 1u);
    EXPECT_EQ(cb[0].code, kSessionTakenOver.code);
    EXPECT_EQ(cb[0].on, &loopOf(b).loop());
    EXPECT_TRUE(closes(c).empty());
    EXPECT_EQ(hub_->totals().takeovers, 2u);
}

TEST_F(HubTest, AtMostOnceResumeReplaysOnlyWhatWasMissed) {
    start();
    Conn& a = connected(0);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "hist:m"));
    for (int i = 0; i < 3; ++i) {
        publish("hist:m");
    }
    ASSERT_TRUE(waitFor(a, "hist:m", 3));
    close(a);
    publish("hist:m");
    const StreamPos top = publish("hist:m");

    Conn& b = open(1);
    auto r = resume(b, session);
    ASSERT_TRUE(r) << describe(r);
    EXPECT_TRUE(r->resumed);
    ASSERT_EQ(r->channels.size(), 1u);
    EXPECT_EQ(r->channels[0].channel, "hist:m");
    EXPECT_EQ(r->channels[0].top, top);
    EXPECT_EQ(r->channels[0].top.offset, 5u);
    ASSERT_TRUE(r->channels[0].recovered.has_value());
    EXPECT_TRUE(*r->channels[0].recovered);
    ASSERT_EQ(r->replay.channels.size(), 1u);
    EXPECT_TRUE(r->replay.channels[0].unacked.empty());
    EXPECT_EQ(offsetsOf(r->replay.channels[0].pubs), (std::vector<uint64_t>{4, 5}));
    ASSERT_TRUE(waitFor(b, "hist:m", 2));
    publish("hist:m");
    ASSERT_TRUE(waitFor(b, "hist:m", 3));
    EXPECT_EQ(offsets(b, "hist:m"), range(4, 6));
}

TEST_F(HubTest, ResumeOfAnUnknownSessionStartsANewOne) {
    start();
    Conn& c = open(0);
    auto r = connect(c, "s_00000000000000000000000000000000");
    ASSERT_TRUE(r) << describe(r);
    EXPECT_FALSE(r->resumed);
    EXPECT_NE(r->session_id, "s_00000000000000000000000000000000");
    EXPECT_TRUE(r->channels.empty());
}

// At-least-once: a resume whose redelivery is cut short (the new connection is a slow consumer
// and closes during the replay) must lose nothing: the next resume still owes every
// publication that was never handed to a transport.
TEST_F(HubTest, AtLeastOnceResumeCutShortDuringReplayLosesNothing) {
    start();
    Conn& a = connected(0);
    const std::string session = a.client.session();
    ASSERT_TRUE(subscribe(a, "alo:cut"));
    publish("alo:cut");
    publish("alo:cut");
    ASSERT_TRUE(waitFor(a, "alo:cut", 2));
    ASSERT_TRUE(on(a, [&] { return hub_->ack(a.client, "alo:cut", 2); }));
    close(a);
    publish("alo:cut");  // 3 and 4 while away
    publish("alo:cut");

    Conn& b = open(1, /*budget=*/0);  // cannot take a single byte: gone at the first replay
    auto rb = resume(b, session);
    ASSERT_TRUE(rb) << describe(rb);
    ASSERT_TRUE(rb->resumed);
    ASSERT_EQ(rb->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(rb->replay.channels[0].pubs), (std::vector<uint64_t>{3, 4}));
    EXPECT_TRUE(received(b).empty());
    EXPECT_TRUE(closing(b));
    close(b);

    Conn& c = open(0);
    auto rc = resume(c, session);
    ASSERT_TRUE(rc) << describe(rc);
    ASSERT_TRUE(rc->resumed);
    ASSERT_EQ(rc->replay.channels.size(), 1u);
    std::vector<uint64_t> owed = offsetsOf(rc->replay.channels[0].unacked);
    for (uint64_t o : offsetsOf(rc->replay.channels[0].pubs)) {
        owed.push_back(o);
    }
    EXPECT_EQ(owed, (std::vector<uint64_t>{3, 4}))
        << "3 and 4 never reached a transport and were never acked";
    EXPECT_EQ(offsets(c, "alo:cut"), owed);
}

// ---- Slow consumers ----------------------------------------------------------------------------

TEST_F(HubTest, SlowConsumerDisconnectPolicyClosesOnceAndDeliversNothingMore) {
    start();
    Conn& slow = connected(0, /*budget=*/30);  // three 10-byte publications
    Conn& witness = connected(0);
    ASSERT_TRUE(subscribe(slow, "slow:c"));
    ASSERT_TRUE(subscribe(witness, "slow:c"));
    for (int i = 0; i < 5; ++i) {
        publish("slow:c");
    }
    ASSERT_TRUE(waitFor(witness, "slow:c", 5));
    EXPECT_EQ(offsets(slow, "slow:c"), range(1, 3));
    EXPECT_EQ(on(slow, [&] { return slow.peer.goneReports(); }), 1u);
    EXPECT_EQ(on(slow, [&] { return slow.peer.calls(); }), 4u);  // 3 sent + the one refused
    const std::vector<Closed> c = closes(slow);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].code, kSlowConsumer.code);
    EXPECT_TRUE(closing(slow));

    for (int i = 0; i < 5; ++i) {
        publish("slow:c");
    }
    ASSERT_TRUE(waitFor(witness, "slow:c", 10));  // same loop: the drain passed slow too
    EXPECT_EQ(on(slow, [&] { return slow.peer.calls(); }), 4u);
    EXPECT_EQ(offsets(slow, "slow:c"), range(1, 3));
    EXPECT_EQ(offsets(witness, "slow:c"), range(1, 10));
}

TEST_F(HubTest, SlowConsumerDropPolicySkipsAndFlagsTheGap) {
    start();
    Conn& slow = connected(1, /*budget=*/30);
    Conn& witness = connected(1);
    ASSERT_TRUE(subscribe(slow, "drop:c"));
    ASSERT_TRUE(subscribe(witness, "drop:c"));
    for (int i = 0; i < 5; ++i) {
        publish("drop:c");
    }
    ASSERT_TRUE(waitFor(witness, "drop:c", 5));
    EXPECT_EQ(offsets(slow, "drop:c"), range(1, 3));
    EXPECT_EQ(on(slow, [&] { return slow.peer.drops(); }), 2u);
    EXPECT_FALSE(closing(slow));
    EXPECT_TRUE(closes(slow).empty());
    EXPECT_EQ(hub_->stats(1).slow_consumer_drops.value(), 2u);

    on(slow, [&] { slow.peer.setBudget(30); });  // the transport caught up
    publish("drop:c");
    publish("drop:c");
    ASSERT_TRUE(waitFor(slow, "drop:c", 5));
    const std::vector<Received> got = received(slow);
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(offsetsIn(got, "drop:c"), (std::vector<uint64_t>{1, 2, 3, 6, 7}));
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_FALSE(got[i].gap) << "offset " << got[i].offset;
    }
    EXPECT_TRUE(got[3].gap) << "6 follows the dropped 4 and 5";
    EXPECT_FALSE(got[4].gap);
}

// Publications dropped for a slow consumer that closes before any later delivery told it of
// the gap are not "received": its session replays them on resume.
TEST_F(HubTest, DroppedPublicationsAreReplayedOnResumeWhenTheGapWasNeverReported) {
    start();
    Conn& slow = connected(1, /*budget=*/30);  // three 10-byte publications
    const std::string session = slow.client.session();
    ASSERT_TRUE(subscribe(slow, "drop:z"));
    StreamPos top;
    for (int i = 0; i < 5; ++i) {
        top = publish("drop:z");
    }
    ASSERT_TRUE(loopOf(slow).eventually([&] { return slow.peer.drops() == 2u; }));
    EXPECT_EQ(offsets(slow, "drop:z"), range(1, 3));
    close(slow);

    Conn& b = open(0);
    auto r = resume(b, session);
    ASSERT_TRUE(r) << describe(r);
    ASSERT_TRUE(r->resumed);
    ASSERT_EQ(r->channels.size(), 1u);
    EXPECT_EQ(r->channels[0].top, top);
    ASSERT_TRUE(r->channels[0].recovered.has_value());
    EXPECT_TRUE(*r->channels[0].recovered);
    ASSERT_EQ(r->replay.channels.size(), 1u);
    EXPECT_EQ(offsetsOf(r->replay.channels[0].pubs), (std::vector<uint64_t>{4, 5}));
}

// A replay on a drop namespace that skips one publication (too big for what is left of the
// budget) must flag the gap on the next one it hands over, as live fan-out does.
TEST_F(HubTest, ReplayOnDropNamespaceFlagsTheGapAfterADrop) {
    start();
    publish("drop:r");                         // 1: 10 bytes
    publish("drop:r");                         // 2
    publish("drop:r", std::string(100, 'x'));  // 3: does not fit
    publish("drop:r");                         // 4
    const StreamPos top = publish("drop:r");   // 5
    Conn& c = connected(0, /*budget=*/50);
    auto s = subscribe(c, "drop:r", StreamPos{top.epoch, 0});
    ASSERT_TRUE(s) << describe(s);
    ASSERT_TRUE(s->position.recovered.value_or(false));
    std::vector<Received> got = received(c);
    ASSERT_EQ(offsetsIn(got, "drop:r"), (std::vector<uint64_t>{1, 2, 4, 5}));
    EXPECT_FALSE(got[0].gap);
    EXPECT_FALSE(got[1].gap);
    EXPECT_TRUE(got[2].gap) << "4 follows the dropped 3";
    EXPECT_FALSE(got[3].gap);

    on(c, [&] { c.peer.setBudget(kUnlimited); });
    publish("drop:r");
    ASSERT_TRUE(waitFor(c, "drop:r", 5));
    got = received(c);
    EXPECT_FALSE(got[4].gap) << "6 follows 5 directly: the gap was already reported";
}

TEST_F(HubTest, ReplayStopsWhenThePeerGoes) {
    start();
    StreamPos top;
    for (int i = 0; i < 300; ++i) {
        top = publish("slow:h");  // 10 bytes each
    }
    Conn& c = connected(0, /*budget=*/100);  // ten deliveries
    auto s = subscribe(c, "slow:h", StreamPos{top.epoch, 0});
    ASSERT_TRUE(s) << describe(s);
    ASSERT_TRUE(s->position.recovered.value_or(false));
    ASSERT_EQ(s->replay.channels.size(), 1u);
    EXPECT_EQ(s->replay.channels[0].pubs.size(), 300u);
    EXPECT_LE(on(c, [&] { return c.peer.calls(); }), 11u);
    EXPECT_EQ(offsets(c, "slow:h"), range(1, 10));
    EXPECT_TRUE(closing(c));
    publish("slow:h");
    close(c);  // the transport reports the end
    EXPECT_EQ(on(c, [&] { return c.peer.goneReports(); }), 1u);
}

// ---- Presence ----------------------------------------------------------------------------------

TEST_F(HubTest, JoinAndLeaveReachOtherSubscribersAndPresenceListsClients) {
    start();
    Conn& a = connected(0);
    Conn& b = connected(1);
    ASSERT_TRUE(subscribe(a, "pres:p"));
    ASSERT_TRUE(subscribe(b, "pres:p"));
    auto p = hub_->presence("pres:p");
    ASSERT_TRUE(p) << describe(p);
    std::set<std::string> ids;
    for (const auto& who : p->clients) {
        ids.insert(who->client_id);
    }
    EXPECT_EQ(ids, (std::set<std::string>{a.client.id(), b.client.id()}));

    auto kinds = [&](EventKind k) {
        return loopOf(a).eventually([&] {
            for (const Received& r : a.peer.received()) {
                if (r.kind == k && r.who == b.client.id()) {
                    return true;
                }
            }
            return false;
        });
    };
    EXPECT_TRUE(kinds(EventKind::kJoin));
    close(b);
    EXPECT_TRUE(kinds(EventKind::kLeave));
    p = hub_->presence("pres:p");
    ASSERT_TRUE(p) << describe(p);
    ASSERT_EQ(p->clients.size(), 1u);
    EXPECT_EQ(p->clients[0]->client_id, a.client.id());
}

// ---- Rate limit --------------------------------------------------------------------------------

TEST_F(HubTest, RateLimitAllowsTheBurstThenLimitsThenReportsAbuse) {
    Options o = testOptions();
    o.rate_limit = 5;  // burst 10; a token every 200 ms, far slower than this test's 30 calls
    start(std::move(o));
    Conn& c = connected(0);
    const std::vector<Admission> got = on(c, [&] {
        std::vector<Admission> out;
        for (int i = 0; i < 30; ++i) {
            out.push_back(hub_->admit(c.client));
        }
        return out;
    });
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(got[i], Admission::kOk) << "request " << i;
    }
    // The 20th refusal in a row is abuse (19 rate_limited replies, then close 1008).
    for (int i = 10; i < 29; ++i) {
        EXPECT_EQ(got[i], Admission::kLimited) << "request " << i;
    }
    EXPECT_EQ(got[29], Admission::kAbuse);
    EXPECT_EQ(hub_->stats(0).rate_limited.value(), 20u);
}

// ---- Stats -------------------------------------------------------------------------------------

TEST_F(HubTest, TotalsSumDeliveriesAcrossLoops) {
    start();
    Conn& a = connected(0);
    Conn& b = connected(1);
    Conn& b2 = connected(1);
    ASSERT_TRUE(subscribe(a, "room"));
    ASSERT_TRUE(subscribe(b, "room"));
    ASSERT_TRUE(subscribe(b2, "room"));
    for (int i = 0; i < 10; ++i) {
        publish("room");
    }
    // A condition seen true on a loop means that loop's drain has finished (tasks run whole).
    ASSERT_TRUE(waitFor(a, "room", 10));
    ASSERT_TRUE(waitFor(b, "room", 10));
    ASSERT_TRUE(waitFor(b2, "room", 10));
    EXPECT_EQ(hub_->stats(0).deliveries.value(), 10u);
    EXPECT_EQ(hub_->stats(1).deliveries.value(), 20u);
    const StatsTotals t = hub_->totals();
    EXPECT_EQ(t.deliveries, 30u);
    EXPECT_EQ(t.publications, 10u);  // published from the test thread: the outside set
    EXPECT_EQ(t.clients, 3);
    EXPECT_EQ(t.clients_total, 3u);
    EXPECT_GE(t.messages_out, 30u);
    EXPECT_EQ(t.delivery_latency.count, 30u);
    close(b2);
    EXPECT_EQ(hub_->totals().clients, 2);
}

// ---- Identities and access (auth on) -----------------------------------------------------------
// Tokens are minted here with OpenSSL's HMAC: these tests are about what the Hub does with a
// verified identity. Verification against an independent JWT implementation is in
// tests/unit/auth (python3-jwt vectors) and tests/integration/test_auth.py.

constexpr std::string_view kSecret = "hub-test-secret-0123456789abcdef-0123456789";

std::string base64url(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kAlphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0) {
        out += kAlphabet[(acc << (6 - bits)) & 0x3f];
    }
    return out;
}

// An HS256 token with the JSON claims `payload`.
std::string mint(const std::string& payload) {
    const std::string input =
        base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return input + "." + base64url({reinterpret_cast<const char*>(mac), len});
}

// A token of `sub` valid for an hour, with optional extra claims (",\"k\":v" text).
std::string tokenFor(const std::string& sub, const std::string& extra = {}) {
    const long exp = static_cast<long>(std::time(nullptr)) + 3600;
    return mint(R"({"sub":")" + sub + R"(","exp":)" + std::to_string(exp) + extra + "}");
}

// Namespaces: open (anonymous = true), members (authenticated only), claims (publish by the
// "channels" claim), vip (private channels).
Options authOptions() {
    Options o;
    NamespaceOptions open = withHistory(10);
    open.anonymous = true;
    o.namespaces["open"] = open;
    o.namespaces["members"] = withHistory(10);
    NamespaceOptions claims;
    claims.publish_access = NamespaceOptions::Access::kClaim;
    claims.presence = true;
    claims.presence_access = NamespaceOptions::Access::kAuthenticated;
    o.namespaces["claims"] = claims;
    NamespaceOptions vip;
    vip.private_channels = true;
    o.namespaces["vip"] = vip;
    return o;
}

class HubAuthTest : public HubTest {
protected:
    void startWithAuth(Options options = authOptions()) {
        start(std::move(options));
        auto keys = std::make_shared<auth::KeySet>();
        ASSERT_TRUE(keys->addHmacSecret(std::string(kSecret)));
        AuthConfig config;
        config.keys = std::move(keys);
        config.policy.require_exp = true;
        hub_->setAuth(std::move(config));
    }

    Outcome<Connected> connectWith(Conn& c, std::string_view user, std::string_view token,
                                   std::string_view session = {}) {
        return on(c, [&] { return hub_->connect(c.client, user, "", session, token); });
    }
};

TEST_F(HubAuthTest, WithoutKeysTheClientNamesItsUser) {
    start(authOptions());
    Conn& c = open(0);
    auto r = connectWith(c, "alice", "");
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(r->user, "alice");
    EXPECT_FALSE(r->expires_in);
    // Every namespace is open without auth.
    EXPECT_TRUE(subscribe(c, "members:x"));
}

TEST_F(HubAuthTest, TheTokenSubjectIsTheUserAndTheClaimedOneIsIgnored) {
    startWithAuth();
    Conn& c = open(0);
    auto r = connectWith(c, "mallory", tokenFor("alice"));
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(r->user, "alice");
    ASSERT_TRUE(r->expires_in);
    EXPECT_GT(*r->expires_in, 3500u);
    EXPECT_LE(*r->expires_in, 3600u);
}

TEST_F(HubAuthTest, AnonymousClientsHaveNoUserAndOnlyOpenNamespaces) {
    startWithAuth();
    Conn& c = open(0);
    auto r = connectWith(c, "mallory", "");
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(r->user, "");
    EXPECT_TRUE(subscribe(c, "open:x"));
    EXPECT_EQ(codeOf(subscribe(c, "members:x")), "permission_denied");
}

TEST_F(HubAuthTest, NoAnonymousNamespaceMeansATokenIsRequired) {
    Options o;
    o.namespaces["members"] = NamespaceOptions{};
    startWithAuth(o);
    EXPECT_FALSE(hub_->anonymousAllowed());
    Conn& c = open(0);
    EXPECT_EQ(codeOf(connectWith(c, "", "")), "token_required");
}

TEST_F(HubAuthTest, ForgedOrExpiredTokensAreRefusedWithTheReason) {
    startWithAuth();
    Conn& a = open(0);
    std::string forged = tokenFor("alice");
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    auto r = connectWith(a, "", forged);
    ASSERT_EQ(codeOf(r), "invalid_token");
    Conn& b = open(0);
    r = connectWith(b, "", mint(R"({"sub":"alice","exp":1000})"));
    ASSERT_EQ(codeOf(r), "invalid_token");
    EXPECT_NE(r.error().message.find("expired"), std::string::npos) << r.error().message;
}

TEST_F(HubAuthTest, ClaimRulesFollowTheChannelsClaim) {
    startWithAuth();
    Conn& c = open(0);
    ASSERT_TRUE(connectWith(c, "", tokenFor("alice", R"(,"channels":["claims:room-*"])")));
    auto pub = [&](std::string_view ch) {
        return on(c, [&] { return hub_->publish(&c.client, ch, "1", ""); });
    };
    EXPECT_TRUE(pub("claims:room-1"));
    EXPECT_EQ(codeOf(pub("claims:lobby")), "permission_denied");
    // Presence needs only a token; the server itself (null client) reads everything.
    EXPECT_TRUE(on(c, [&] { return hub_->presence("claims:lobby", &c.client); }));
    Conn& anon = open(1);
    ASSERT_TRUE(connectWith(anon, "", ""));
    EXPECT_EQ(codeOf(on(anon, [&] { return hub_->presence("claims:lobby", &anon.client); })),
              "permission_denied");
    EXPECT_TRUE(hub_->presence("claims:lobby"));
}

TEST_F(HubAuthTest, PrivateChannelsNeedASubscribeTokenForThatChannelAndUser) {
    startWithAuth();
    Conn& c = open(0);
    ASSERT_TRUE(connectWith(c, "", tokenFor("alice")));
    auto sub = [&](std::string_view ch, const std::string& token) {
        return on(c, [&] { return hub_->subscribe(c.client, ch, std::nullopt, token); });
    };
    EXPECT_EQ(codeOf(sub("vip:a", "")), "permission_denied");
    EXPECT_EQ(codeOf(sub("vip:a", tokenFor("alice", R"(,"channel":"vip:b")"))),
              "permission_denied");
    EXPECT_EQ(codeOf(sub("vip:a", tokenFor("bob", R"(,"channel":"vip:a")"))), "permission_denied");
    EXPECT_EQ(codeOf(sub("vip:a", "garbage")), "invalid_token");
    auto ok = sub("vip:a", tokenFor("alice", R"(,"channel":"vip:a")"));
    EXPECT_TRUE(ok) << describe(ok);
}

TEST_F(HubAuthTest, OnlyTheOwnerResumesASession) {
    startWithAuth();
    Conn& a = open(0);
    auto first = connectWith(a, "", tokenFor("alice"));
    ASSERT_TRUE(first);
    ASSERT_TRUE(subscribe(a, "members:x"));
    close(a);
    Conn& mallory = open(1);
    auto stolen = connectWith(mallory, "", tokenFor("mallory"), first->session_id);
    ASSERT_TRUE(stolen);
    EXPECT_FALSE(stolen->resumed);
    EXPECT_NE(stolen->session_id, first->session_id);
    Conn& anon = open(1);
    auto anon_try = connectWith(anon, "", "", first->session_id);
    ASSERT_TRUE(anon_try);
    EXPECT_FALSE(anon_try->resumed);
    Conn& again = open(0);
    auto back = connectWith(again, "", tokenFor("alice"), first->session_id);
    ASSERT_TRUE(back) << describe(back);
    EXPECT_TRUE(back->resumed);
    ASSERT_EQ(back->channels.size(), 1u);
    EXPECT_EQ(back->channels[0].channel, "members:x");
}

TEST_F(HubAuthTest, RefreshKeepsTheUserAndMovesTheExpiry) {
    startWithAuth();
    Conn& c = open(0);
    const long soon = static_cast<long>(std::time(nullptr)) + 5;
    ASSERT_TRUE(connectWith(c, "", mint(R"({"sub":"alice","exp":)" + std::to_string(soon) + "}")));
    auto left = on(c, [&] { return hub_->msUntilExpiry(c.client); });
    ASSERT_TRUE(left);
    EXPECT_LE(*left, (5u + 30u + 1u) * 1000u);  // exp + leeway (30 s default) + rounding
    EXPECT_FALSE(on(c, [&] { return hub_->tokenExpired(c.client); }));
    auto other = on(c, [&] { return hub_->refresh(c.client, tokenFor("bob")); });
    EXPECT_EQ(codeOf(other), "permission_denied");
    auto same = on(c, [&] { return hub_->refresh(c.client, tokenFor("alice")); });
    ASSERT_TRUE(same) << describe(same);
    ASSERT_TRUE(*same);
    EXPECT_GT(**same, 3500u);
    left = on(c, [&] { return hub_->msUntilExpiry(c.client); });
    ASSERT_TRUE(left);
    EXPECT_GT(*left, 3500u * 1000u);
}

TEST_F(HubAuthTest, AnExpiredTokenIsReportedAfterTheLeeway) {
    startWithAuth();
    auto keys = std::make_shared<auth::KeySet>();
    ASSERT_TRUE(keys->addHmacSecret(std::string(kSecret)));
    AuthConfig config;
    config.keys = keys;
    config.policy.leeway_s = 0;
    config.policy.require_exp = true;
    hub_->setAuth(config);
    Conn& c = open(0);
    const long soon = static_cast<long>(std::time(nullptr)) + 1;
    ASSERT_TRUE(connectWith(c, "", mint(R"({"sub":"alice","exp":)" + std::to_string(soon) + "}")));
    EXPECT_FALSE(on(c, [&] { return hub_->tokenExpired(c.client); }));
    // Polled until the wall clock passes exp (within 2 s; the deadline is 5 s).
    EXPECT_TRUE(loopOf(c).eventually([&] { return hub_->tokenExpired(c.client); }));
}

TEST_F(HubAuthTest, DisconnectByUserReachesEveryConnectionOfThatUser) {
    startWithAuth();
    Conn& a1 = open(0);
    Conn& a2 = open(1);
    Conn& b = open(0);
    ASSERT_TRUE(connectWith(a1, "", tokenFor("alice")));
    ASSERT_TRUE(connectWith(a2, "", tokenFor("alice")));
    ASSERT_TRUE(connectWith(b, "", tokenFor("bob")));
    auto r = hub_->disconnectUser("alice", false);
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(*r, 2u);
    EXPECT_TRUE(loopOf(a1).eventually([&] { return !a1.peer.closes().empty(); }));
    EXPECT_TRUE(loopOf(a2).eventually([&] { return !a2.peer.closes().empty(); }));
    EXPECT_TRUE(on(b, [&] { return b.peer.closes().empty(); }));
    EXPECT_EQ(codeOf(hub_->disconnectUser("carol", true)), "unknown_client");
}

TEST_F(HubAuthTest, ClaimsVerifiedAtTheUpgradeAreUsedOnlyIfStillUnexpired) {
    startWithAuth();
    // What the adapter got from verify() at the upgrade.
    auto claims = hub_->verify(tokenFor("alice", R"(,"channels":["claims:*"])"), "test");
    ASSERT_TRUE(claims) << claims.error().message;
    Conn& c = open(0);
    auto r = on(c, [&] { return hub_->connect(c.client, "mallory", "", "", "", &*claims); });
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(r->user, "alice");
    EXPECT_TRUE(on(c, [&] { return hub_->publish(&c.client, "claims:x", "1", ""); }));
    // Claims that expired since (beyond the 30 s leeway) are refused, with the reason.
    auth::Claims old = *hub_->verify(tokenFor("bob"), "test");
    old.exp = static_cast<int64_t>(std::time(nullptr)) - 60;
    Conn& late = open(1);
    auto refused = on(late, [&] { return hub_->connect(late.client, "", "", "", "", &old); });
    ASSERT_EQ(codeOf(refused), "invalid_token");
    EXPECT_NE(refused.error().message.find("expired"), std::string::npos);
    // A token in connect wins over claims from the upgrade.
    Conn& both = open(0);
    auth::Claims carol = *hub_->verify(tokenFor("carol"), "test");
    auto r2 =
        on(both, [&] { return hub_->connect(both.client, "", "", "", tokenFor("dave"), &carol); });
    ASSERT_TRUE(r2) << describe(r2);
    EXPECT_EQ(r2->user, "dave");
}

}  // namespace
}  // namespace sb::messaging
