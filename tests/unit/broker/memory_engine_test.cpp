// Memory engine: offsets, history and its trimming, recovery, idempotency, presence, loop
// interest and fan-out, ordering under concurrent publishers, atomic subscribe+recover, sweep.
#include "broker/memory_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "test_sink.h"

namespace sb::broker {
namespace {

using testing::RecordingSink;

NamespaceOptions withHistory(size_t size, uint64_t ttl_ms = 0) {
    NamespaceOptions ns;
    ns.history_size = size;
    ns.history_ttl_ms = ttl_ms;
    return ns;
}

std::vector<uint64_t> offsetsOf(const std::vector<PubPtr>& pubs) {
    std::vector<uint64_t> out;
    for (const auto& p : pubs) {
        out.push_back(p->offset);
    }
    return out;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
    std::vector<uint64_t> out;
    for (uint64_t o = first; o <= last; ++o) {
        out.push_back(o);
    }
    return out;
}

bool isEpoch(const std::string& e) {
    return e.size() == 2 + 2 * kEpochRandomBytes && e.starts_with("e_") &&
           std::all_of(e.begin() + 2, e.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

TEST(MemoryEngine, OffsetsIncreaseByOnePerChannel) {
    auto eng = makeMemoryEngine();
    NamespaceOptions ns;
    std::string epoch_a;
    for (uint64_t i = 1; i <= 5; ++i) {
        PublishResult r = eng->publish("chat:a", ns, "{}", "", 100);
        EXPECT_EQ(r.pos.offset, i);
        EXPECT_FALSE(r.duplicate);
        if (i == 1) {
            epoch_a = r.pos.epoch;
        }
        EXPECT_EQ(r.pos.epoch, epoch_a);
    }
    EXPECT_TRUE(isEpoch(epoch_a)) << epoch_a;
    for (uint64_t i = 1; i <= 3; ++i) {
        PublishResult r = eng->publish("chat:b", ns, "{}", "", 100);
        EXPECT_EQ(r.pos.offset, i);
        EXPECT_NE(r.pos.epoch, epoch_a);
    }
    EXPECT_EQ(eng->publish("chat:a", ns, "{}", "", 100).pos.offset, 6u);
}

TEST(MemoryEngine, PublicationCarriesEverything) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(10);
    PublishResult r = eng->publish("chat:a", ns, R"({"text":"hi"})", "", 1234);
    RecoverResult h = eng->history("chat:a", ns, std::nullopt, 0, 1234);
    ASSERT_EQ(h.pubs.size(), 1u);
    const Publication& p = *h.pubs[0];
    EXPECT_EQ(p.channel, "chat:a");
    EXPECT_EQ(p.epoch, r.pos.epoch);
    EXPECT_EQ(p.offset, 1u);
    EXPECT_EQ(p.time_ms, 1234u);
    EXPECT_EQ(p.data, R"({"text":"hi"})");
    EXPECT_EQ(h.top, r.pos);
    EXPECT_FALSE(h.recovered);
}

TEST(MemoryEngine, HistoryTrimsBySize) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(3);
    for (int i = 0; i < 5; ++i) {
        eng->publish("chat:a", ns, "{}", "", 0);
    }
    RecoverResult h = eng->history("chat:a", ns, std::nullopt, 0, 0);
    EXPECT_EQ(offsetsOf(h.pubs), range(3, 5));
    EXPECT_EQ(h.top.offset, 5u);
    // Without since, `limit` takes the newest.
    EXPECT_EQ(offsetsOf(eng->history("chat:a", ns, std::nullopt, 2, 0).pubs), range(4, 5));
}

TEST(MemoryEngine, HistoryTrimsByTtl) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(100, 1000);
    eng->publish("chat:a", ns, "{}", "", 0);
    eng->publish("chat:a", ns, "{}", "", 500);
    eng->publish("chat:a", ns, "{}", "", 900);
    EXPECT_EQ(offsetsOf(eng->history("chat:a", ns, std::nullopt, 0, 999).pubs), range(1, 3));
    EXPECT_EQ(offsetsOf(eng->history("chat:a", ns, std::nullopt, 0, 1200).pubs), range(2, 3));
    // sweep() trims with the TTL it last saw, without being given the namespace.
    eng->sweep(1600);
    auto chans = eng->channels();
    ASSERT_EQ(chans.size(), 1u);
    EXPECT_EQ(chans[0].history, 1u);
    EXPECT_EQ(offsetsOf(eng->history("chat:a", ns, std::nullopt, 0, 1600).pubs), range(3, 3));
}

TEST(MemoryEngine, HistoryOffWhenSizeZero) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(5);
    for (int i = 0; i < 3; ++i) {
        eng->publish("chat:a", ns, "{}", "", 0);
    }
    NamespaceOptions off;  // history turned off by a config reload: nothing kept any more
    eng->publish("chat:a", off, "{}", "", 0);
    RecoverResult h = eng->history("chat:a", off, std::nullopt, 0, 0);
    EXPECT_TRUE(h.pubs.empty());
    EXPECT_EQ(h.top.offset, 4u);
}

TEST(MemoryEngine, RecoversExactlyTheMissedRange) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(100);
    StreamPos pos;
    for (int i = 0; i < 10; ++i) {
        pos = eng->publish("chat:a", ns, std::to_string(i), "", 0).pos;
    }
    StreamPos since{pos.epoch, 6};
    RecoverResult r = eng->history("chat:a", ns, since, 0, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(7, 10));
    EXPECT_EQ(r.pubs[0]->data, "6");
    EXPECT_EQ(r.top, pos);

    // Paging with a limit: oldest first, still recovered (no hole at the start).
    r = eng->history("chat:a", ns, StreamPos{pos.epoch, 2}, 3, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(3, 5));

    // At the top: nothing missed.
    r = eng->history("chat:a", ns, pos, 0, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_TRUE(r.pubs.empty());

    // From the very beginning of the epoch.
    r = eng->history("chat:a", ns, StreamPos{pos.epoch, 0}, 0, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(1, 10));

    // Subscribe recovers the same way.
    r = eng->subscribe("chat:a", ns, 0, since, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(7, 10));
}

TEST(MemoryEngine, NotRecoveredWhenTrimmedBySize) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(3);
    StreamPos pos;
    for (int i = 0; i < 10; ++i) {
        pos = eng->publish("chat:a", ns, "{}", "", 0).pos;
    }
    RecoverResult r = eng->subscribe("chat:a", ns, 0, StreamPos{pos.epoch, 5}, 0);
    EXPECT_FALSE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(8, 10));  // what is left, for history requests
    // Exactly at the edge: 7 is the last one gone, so after 7 is complete.
    r = eng->subscribe("chat:a", ns, 0, StreamPos{pos.epoch, 7}, 0);
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(8, 10));
}

TEST(MemoryEngine, NotRecoveredWhenTrimmedByTtl) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(100, 1000);
    StreamPos pos;
    for (uint64_t t = 0; t < 5; ++t) {
        pos = eng->publish("chat:a", ns, "{}", "", t * 400).pos;  // 0, 400, 800, 1200, 1600
    }
    RecoverResult r = eng->history("chat:a", ns, StreamPos{pos.epoch, 1}, 0, 1700);
    EXPECT_FALSE(r.recovered);  // offset 2 (t=400) is gone at 1700
    EXPECT_EQ(offsetsOf(r.pubs), range(3, 5));
    r = eng->history("chat:a", ns, StreamPos{pos.epoch, 2}, 0, 1700);
    EXPECT_TRUE(r.recovered);
}

TEST(MemoryEngine, NotRecoveredOnAnotherEpochOrUnknownOffset) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(100);
    StreamPos pos;
    for (int i = 0; i < 4; ++i) {
        pos = eng->publish("chat:a", ns, "{}", "", 0).pos;
    }
    RecoverResult r = eng->history("chat:a", ns, StreamPos{"e_000000000000", 2}, 0, 0);
    EXPECT_FALSE(r.recovered);
    EXPECT_TRUE(r.pubs.empty());
    r = eng->history("chat:a", ns, StreamPos{pos.epoch, 99}, 0, 0);  // beyond the top
    EXPECT_FALSE(r.recovered);
    EXPECT_TRUE(r.pubs.empty());
}

TEST(MemoryEngine, WithoutHistoryOnlyTheTopRecovers) {
    auto eng = makeMemoryEngine();
    NamespaceOptions ns;
    eng->loopSubscribed("chat:a", 0);
    StreamPos pos;
    for (int i = 0; i < 3; ++i) {
        pos = eng->publish("chat:a", ns, "{}", "", 0).pos;
    }
    EXPECT_TRUE(eng->subscribe("chat:a", ns, 0, pos, 0).recovered);
    EXPECT_FALSE(eng->subscribe("chat:a", ns, 0, StreamPos{pos.epoch, 2}, 0).recovered);
}

TEST(MemoryEngine, RecreatedChannelGetsNewEpoch) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(10, 1000);
    eng->loopSubscribed("chat:a", 0);
    StreamPos old;
    for (int i = 0; i < 3; ++i) {
        old = eng->publish("chat:a", ns, "{}", "", 0).pos;
    }
    eng->sweep(5000);  // history expired, but a loop is still subscribed: kept
    EXPECT_EQ(eng->channels().size(), 1u);
    EXPECT_EQ(eng->publish("chat:a", ns, "{}", "", 5000).pos.epoch, old.epoch);
    old.offset = 4;

    eng->loopUnsubscribed("chat:a", 0);
    eng->sweep(5500);  // history still alive: kept
    EXPECT_EQ(eng->channels().size(), 1u);
    eng->sweep(6000);  // no interest, no history: gone
    EXPECT_TRUE(eng->channels().empty());

    RecoverResult r = eng->subscribe("chat:a", ns, 0, old, 6000);
    EXPECT_FALSE(r.recovered);
    EXPECT_TRUE(r.pubs.empty());
    EXPECT_NE(r.top.epoch, old.epoch);
    EXPECT_TRUE(isEpoch(r.top.epoch));
    EXPECT_EQ(r.top.offset, 0u);
    EXPECT_EQ(eng->publish("chat:a", ns, "{}", "", 6000).pos.offset, 1u);
}

TEST(MemoryEngine, HistoryDoesNotCreateChannels) {
    auto eng = makeMemoryEngine();
    auto ns = withHistory(10);
    RecoverResult r = eng->history("chat:nobody", ns, StreamPos{"e_1", 3}, 0, 0);
    EXPECT_EQ(r.top, StreamPos{});
    EXPECT_FALSE(r.recovered);
    EXPECT_TRUE(eng->presence("chat:nobody").empty());
    EXPECT_TRUE(eng->channels().empty());
}

TEST(MemoryEngine, IdempotencyKeyDedupsWithinWindowOnly) {
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    eng->loopSubscribed("chat:a", 0);
    NamespaceOptions ns;
    ns.idempotency_window_ms = 120'000;
    PublishResult first = eng->publish("chat:a", ns, "1", "k-77", 1000);
    EXPECT_FALSE(first.duplicate);
    eng->publish("chat:a", ns, "2", "", 1000);
    PublishResult again = eng->publish("chat:a", ns, "1", "k-77", 60'000);
    EXPECT_TRUE(again.duplicate);
    EXPECT_EQ(again.pos, first.pos);
    EXPECT_EQ(sink.offsets(0), range(1, 2));  // the retry was not delivered

    // Other channels have their own keys.
    EXPECT_FALSE(eng->publish("chat:b", ns, "1", "k-77", 60'000).duplicate);

    // sweep() keeps keys inside the window, even with no interest and no history.
    eng->loopUnsubscribed("chat:a", 0);
    eng->sweep(100'000);
    EXPECT_TRUE(eng->publish("chat:a", ns, "1", "k-77", 120'999).duplicate);

    // Window passed (1000 + 120'000): published again.
    PublishResult later = eng->publish("chat:a", ns, "1", "k-77", 121'000);
    EXPECT_FALSE(later.duplicate);
    EXPECT_EQ(later.pos.offset, 3u);
    EXPECT_TRUE(eng->publish("chat:a", ns, "1", "k-77", 121'001).duplicate);
}

TEST(MemoryEngine, IdempotencyKeysAreCappedPerChannel) {
    auto eng = makeMemoryEngine();
    NamespaceOptions ns;
    for (size_t i = 0; i <= kMaxIdempotencyKeys; ++i) {
        eng->publish("chat:a", ns, "{}", "key-" + std::to_string(i), 0);
    }
    // key-0 was the oldest when the cap was passed: forgotten. key-1 still known.
    EXPECT_FALSE(eng->publish("chat:a", ns, "{}", "key-0", 1).duplicate);
    EXPECT_TRUE(eng->publish("chat:a", ns, "{}", "key-" + std::to_string(kMaxIdempotencyKeys), 1)
                    .duplicate);
}

TEST(MemoryEngine, IdempotencyKeysExpireInSweep) {
    auto eng = makeMemoryEngine();
    NamespaceOptions ns;
    ns.idempotency_window_ms = 1000;
    eng->publish("chat:a", ns, "{}", "k", 0);
    eng->sweep(999);
    EXPECT_EQ(eng->channels().size(), 1u);
    eng->sweep(1000);
    EXPECT_TRUE(eng->channels().empty());
}

std::shared_ptr<const ClientInfo> client(std::string id, std::string user) {
    return std::make_shared<const ClientInfo>(ClientInfo{std::move(id), std::move(user), "{}"});
}

std::vector<std::string> presenceIds(Engine& eng, std::string_view channel) {
    std::vector<std::string> ids;
    for (const auto& who : eng.presence(channel)) {
        ids.push_back(who->client_id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

TEST(MemoryEngine, PresenceAddRemoveList) {
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    eng->loopSubscribed("chat:a", 1);
    NamespaceOptions ns;
    ns.presence = true;
    eng->presenceAdd("chat:a", ns, client("c_1", "alice"));
    eng->presenceAdd("chat:a", ns, client("c_2", "bob"));
    EXPECT_EQ(presenceIds(*eng, "chat:a"), (std::vector<std::string>{"c_1", "c_2"}));
    // Re-adding replaces the info.
    eng->presenceAdd("chat:a", ns, client("c_1", "alice2"));
    auto list = eng->presence("chat:a");
    ASSERT_EQ(list.size(), 2u);
    for (const auto& who : list) {
        if (who->client_id == "c_1") {
            EXPECT_EQ(who->user, "alice2");
        }
    }
    eng->presenceRemove("chat:a", ns, "c_1");
    eng->presenceRemove("chat:a", ns, "c_unknown");
    EXPECT_EQ(presenceIds(*eng, "chat:a"), (std::vector<std::string>{"c_2"}));
    EXPECT_EQ(sink.total(), 0u);  // join_leave off: no events

    // Presence keeps the channel alive in sweep, even without interest.
    eng->loopUnsubscribed("chat:a", 1);
    eng->sweep(0);
    EXPECT_EQ(presenceIds(*eng, "chat:a"), (std::vector<std::string>{"c_2"}));
    eng->presenceRemove("chat:a", ns, "c_2");
    eng->sweep(0);
    EXPECT_TRUE(eng->channels().empty());
}

TEST(MemoryEngine, PresenceOffKeepsNothing) {
    auto eng = makeMemoryEngine();
    NamespaceOptions ns;
    eng->presenceAdd("chat:a", ns, client("c_1", "alice"));
    EXPECT_TRUE(eng->presence("chat:a").empty());
}

TEST(MemoryEngine, JoinLeaveEventsReachInterestedLoopsWhenEnabled) {
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    eng->loopSubscribed("chat:a", 0);
    eng->loopSubscribed("chat:a", 3);
    NamespaceOptions ns;
    ns.presence = true;
    ns.join_leave = true;
    auto alice = client("c_1", "alice");
    eng->presenceAdd("chat:a", ns, alice);
    eng->presenceAdd("chat:a", ns, client("c_1", "alice"));  // already there: no second join
    eng->publish("chat:a", ns, "{}", "", 0);
    eng->presenceRemove("chat:a", ns, "c_1");
    eng->presenceRemove("chat:a", ns, "c_1");  // gone already: no second leave
    for (uint32_t loop : {0u, 3u}) {
        auto evs = sink.events(loop);
        ASSERT_EQ(evs.size(), 3u) << loop;
        EXPECT_EQ(evs[0].kind, EventKind::kJoin);
        EXPECT_EQ(evs[0].channel, "chat:a");
        EXPECT_EQ(evs[0].who, alice);
        EXPECT_EQ(evs[1].kind, EventKind::kPublication);
        EXPECT_EQ(evs[2].kind, EventKind::kLeave);
        EXPECT_EQ(evs[2].who->client_id, "c_1");
    }
    EXPECT_TRUE(sink.events(1).empty());
}

TEST(MemoryEngine, PublicationReachesExactlyTheInterestedLoopsOnce) {
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    NamespaceOptions ns;
    eng->loopSubscribed("chat:a", 0);
    eng->loopSubscribed("chat:a", 2);
    eng->loopSubscribed("chat:a", 2);  // a bit, not a count
    eng->loopSubscribed("chat:a", 63);
    eng->loopSubscribed("chat:b", 1);
    eng->publish("chat:a", ns, "x", "", 0);
    EXPECT_EQ(sink.offsets(0), range(1, 1));
    EXPECT_EQ(sink.offsets(2), range(1, 1));
    EXPECT_EQ(sink.offsets(63), range(1, 1));
    EXPECT_TRUE(sink.events(1).empty());
    auto ev = sink.events(2)[0];
    EXPECT_EQ(ev.pub->data, "x");
    EXPECT_EQ(ev.pub, sink.events(0)[0].pub);  // one shared publication for all loops

    eng->loopUnsubscribed("chat:a", 2);
    eng->publish("chat:a", ns, "y", "", 0);
    EXPECT_EQ(sink.offsets(0), range(1, 2));
    EXPECT_EQ(sink.offsets(2), range(1, 1));
    EXPECT_EQ(sink.offsets(63), range(1, 2));
    EXPECT_EQ(sink.total(), 5u);

    auto chans = eng->channels();
    auto a = std::find_if(chans.begin(), chans.end(),
                          [](const ChannelSummary& c) { return c.channel == "chat:a"; });
    ASSERT_NE(a, chans.end());
    EXPECT_EQ(a->loops, 2u);
    EXPECT_EQ(a->top.offset, 2u);
}

TEST(MemoryEngine, ConcurrentPublishersKeepOffsetOrderOnEveryLoop) {
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    auto ns = withHistory(16);
    for (uint32_t loop : {0u, 1u, 5u}) {
        eng->loopSubscribed("chat:hot", loop);
    }
    constexpr int kThreads = 4;
    constexpr int kPerThread = 2000;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            while (!go.load()) {
                std::this_thread::yield();
            }
            for (int i = 0; i < kPerThread; ++i) {
                eng->publish("chat:hot", ns, "{}", "", 0);
            }
        });
    }
    go = true;
    for (auto& th : threads) {
        th.join();
    }
    for (uint32_t loop : {0u, 1u, 5u}) {
        EXPECT_EQ(sink.offsets(loop), range(1, kThreads * kPerThread)) << loop;
    }
}

TEST(MemoryEngine, SubscribeIsAtomicWithRecovery) {
    // A publisher runs while loop 7 subscribes with `since` = the start of the stream: the
    // recovered range and the live deliveries must meet exactly — no gap, no overlap.
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    auto ns = withHistory(100'000);
    constexpr uint64_t kTotal = 20'000;
    std::string epoch = eng->publish("chat:a", ns, "{}", "", 0).pos.epoch;
    std::thread publisher([&] {
        for (uint64_t i = 1; i < kTotal; ++i) {
            eng->publish("chat:a", ns, "{}", "", 0);
        }
    });
    while (eng->history("chat:a", ns, std::nullopt, 1, 0).top.offset < 1000) {
        std::this_thread::yield();
    }
    RecoverResult r = eng->subscribe("chat:a", ns, 7, StreamPos{epoch, 0}, 0);
    publisher.join();
    EXPECT_TRUE(r.recovered);
    EXPECT_EQ(offsetsOf(r.pubs), range(1, r.top.offset));
    EXPECT_EQ(sink.offsets(7), range(r.top.offset + 1, kTotal));
}

TEST(MemoryEngine, ConcurrentMixedOperationsStayConsistent) {
    // Publishers on many channels, a loop subscribing and unsubscribing, presence churn and a
    // sweeper, all at once: for the sanitizers, and per-channel order must still hold.
    auto eng = makeMemoryEngine();
    RecordingSink sink;
    eng->setSink(&sink);
    NamespaceOptions ns;
    ns.history_size = 8;
    ns.history_ttl_ms = 5;
    ns.presence = true;
    ns.join_leave = true;
    constexpr int kChannels = 16;
    constexpr int kRounds = 1500;
    auto name = [](int i) { return "chat:" + std::to_string(i); };
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kRounds; ++i) {
                eng->publish(name((i + t) % kChannels), ns, "{}",
                             i % 7 == 0 ? "k" + std::to_string(i) : "", i);
            }
        });
    }
    threads.emplace_back([&] {
        for (int i = 0; i < kRounds; ++i) {
            eng->subscribe(name(i % kChannels), ns, 1, StreamPos{"e_x", 1}, i);
            eng->presenceAdd(name(i % kChannels), ns, client("c_" + std::to_string(i), "u"));
            eng->history(name((i + 3) % kChannels), ns, std::nullopt, 0, i);
            eng->presenceRemove(name(i % kChannels), ns, "c_" + std::to_string(i));
            eng->loopUnsubscribed(name(i % kChannels), 1);
        }
    });
    std::thread sweeper([&] {
        uint64_t now = 0;
        while (!stop.load()) {
            eng->sweep(now++);
            eng->channels();
        }
    });
    for (auto& th : threads) {
        th.join();
    }
    stop = true;
    sweeper.join();
    // Within one epoch a channel's publications reach loop 1 in increasing offset order.
    std::map<std::string, std::pair<std::string, uint64_t>> last;
    for (const Event& ev : sink.events(1)) {
        if (ev.kind != EventKind::kPublication) {
            continue;
        }
        auto& [epoch, offset] = last[ev.pub->channel];
        if (epoch == ev.pub->epoch) {
            EXPECT_GT(ev.pub->offset, offset);
        }
        epoch = ev.pub->epoch;
        offset = ev.pub->offset;
    }
}

TEST(MemoryEngine, NoSinkDropsEvents) {
    auto eng = makeMemoryEngine();
    eng->loopSubscribed("chat:a", 0);
    EXPECT_EQ(eng->publish("chat:a", NamespaceOptions{}, "{}", "", 0).pos.offset, 1u);
}

}  // namespace
}  // namespace sb::broker
