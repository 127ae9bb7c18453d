// SessionStore: ids, track/ack/resume, TTL expiry, the max_unacked gap flag, epoch changes and
// concurrent use.
#include "broker/session_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sb::broker {
namespace {

NamespaceOptions atLeastOnce(size_t max_unacked = 1000, uint64_t ttl_ms = 300'000) {
    NamespaceOptions ns;
    ns.delivery = NamespaceOptions::Delivery::kAtLeastOnce;
    ns.max_unacked = max_unacked;
    ns.session_ttl_ms = ttl_ms;
    return ns;
}

PubPtr pub(std::string channel, uint64_t offset, std::string epoch = "e_1") {
    return std::make_shared<const Publication>(
        Publication{std::move(channel), std::move(epoch), offset, 0, "{}"});
}

std::vector<uint64_t> offsetsOf(const SessionChannel& c) {
    std::vector<uint64_t> out;
    for (const auto& p : c.unacked) {
        out.push_back(p->offset);
    }
    return out;
}

TEST(SessionStore, IdsAre128BitHexWithPrefix) {
    SessionStore store;
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        std::string id = store.create();
        ASSERT_EQ(id.size(), 34u);
        EXPECT_TRUE(id.starts_with("s_"));
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 2), std::string::npos) << id;
        EXPECT_TRUE(seen.insert(id).second);
    }
    EXPECT_EQ(store.size(), 100u);
}

TEST(SessionStore, TrackAckResume) {
    SessionStore store;
    std::string id = store.create();
    ASSERT_TRUE(store.subscribe(id, "jobs:eu", atLeastOnce()));
    for (uint64_t o = 1; o <= 5; ++o) {
        EXPECT_TRUE(store.track(id, pub("jobs:eu", o)));
    }
    EXPECT_TRUE(store.ack(id, "jobs:eu", 3));
    EXPECT_TRUE(store.detach(id, 1000));

    auto s = store.resume(id, 2000);
    ASSERT_TRUE(s.has_value());
    EXPECT_FALSE(s->was_attached);
    ASSERT_EQ(s->channels.size(), 1u);
    EXPECT_EQ(s->channels[0].channel, "jobs:eu");
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{4, 5}));
    EXPECT_FALSE(s->channels[0].gap);

    // Resuming again while attached: a takeover, reported as such; the queue is unchanged.
    s = store.resume(id, 2000);
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(s->was_attached);
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{4, 5}));

    EXPECT_TRUE(store.ack(id, "jobs:eu", 5));
    s = store.resume(id, 2000);
    EXPECT_TRUE(s->channels[0].unacked.empty());
}

TEST(SessionStore, ResumeRestoresEverySubscriptionSorted) {
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce());
    store.subscribe(id, "chat:lobby", NamespaceOptions{});  // at-most-once: restored, no queue
    store.subscribe(id, "alerts:x", atLeastOnce());
    EXPECT_FALSE(store.track(id, pub("chat:lobby", 1)));  // not at-least-once: ignored
    EXPECT_FALSE(store.track(id, pub("news:none", 1)));   // not subscribed: ignored
    EXPECT_TRUE(store.track(id, pub("alerts:x", 9)));
    auto s = store.resume(id, 0);
    ASSERT_TRUE(s.has_value());
    ASSERT_EQ(s->channels.size(), 3u);
    EXPECT_EQ(s->channels[0].channel, "alerts:x");
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{9}));
    EXPECT_EQ(s->channels[1].channel, "chat:lobby");
    EXPECT_TRUE(s->channels[1].unacked.empty());
    EXPECT_EQ(s->channels[2].channel, "jobs:eu");

    EXPECT_TRUE(store.unsubscribe(id, "alerts:x"));
    EXPECT_FALSE(store.unsubscribe(id, "alerts:x"));
    EXPECT_FALSE(store.track(id, pub("alerts:x", 10)));
    EXPECT_EQ(store.resume(id, 0)->channels.size(), 2u);
}

TEST(SessionStore, UnknownSessionsAndChannels) {
    SessionStore store;
    EXPECT_FALSE(store.resume("s_nope", 0).has_value());
    EXPECT_FALSE(store.subscribe("s_nope", "a:b", atLeastOnce()));
    EXPECT_FALSE(store.track("s_nope", pub("a:b", 1)));
    EXPECT_FALSE(store.ack("s_nope", "a:b", 1));
    EXPECT_FALSE(store.detach("s_nope", 0));
    EXPECT_FALSE(store.remove("s_nope"));
    std::string id = store.create();
    EXPECT_FALSE(store.ack(id, "a:b", 1));
    EXPECT_FALSE(store.track(id, nullptr));
    EXPECT_TRUE(store.remove(id));
    EXPECT_FALSE(store.resume(id, 0).has_value());
}

TEST(SessionStore, DetachedSessionExpiresAfterTtl) {
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce(1000, 5000));
    store.track(id, pub("jobs:eu", 1));
    store.detach(id, 10'000);
    EXPECT_EQ(store.sweep(14'999), 0u);
    // Resumed within the TTL, detached again: the TTL restarts.
    ASSERT_TRUE(store.resume(id, 14'999).has_value());
    store.detach(id, 20'000);
    EXPECT_EQ(store.sweep(24'999), 0u);
    EXPECT_EQ(store.size(), 1u);
    EXPECT_EQ(store.sweep(25'000), 1u);
    EXPECT_EQ(store.size(), 0u);
    EXPECT_FALSE(store.resume(id, 25'000).has_value());
}

TEST(SessionStore, ExpiredSessionCannotBeResumedBeforeSweep) {
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce(1000, 100));
    store.detach(id, 0);
    EXPECT_FALSE(store.resume(id, 100).has_value());
    EXPECT_EQ(store.size(), 0u);
}

TEST(SessionStore, AttachedSessionsNeverExpire) {
    SessionStore store;
    std::string id = store.create();
    EXPECT_EQ(store.sweep(~uint64_t{0} - 1), 0u);
    EXPECT_TRUE(store.resume(id, ~uint64_t{0} - 1).has_value());
}

TEST(SessionStore, TtlIsTheLargestOfItsChannelsOrTheDefault) {
    SessionStore store(1000);
    std::string bare = store.create();
    std::string two = store.create();
    store.subscribe(two, "a:x", atLeastOnce(10, 2000));
    store.subscribe(two, "b:x", atLeastOnce(10, 7000));
    store.detach(bare, 0);
    store.detach(two, 0);
    EXPECT_EQ(store.sweep(1000), 1u);  // bare: default TTL
    EXPECT_EQ(store.sweep(6999), 0u);
    EXPECT_EQ(store.sweep(7000), 1u);
}

TEST(SessionStore, MaxUnackedDropsOldestAndFlagsGap) {
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce(3));
    store.subscribe(id, "jobs:us", atLeastOnce(3));
    for (uint64_t o = 1; o <= 5; ++o) {
        store.track(id, pub("jobs:eu", o));
    }
    store.track(id, pub("jobs:us", 1));
    auto s = store.resume(id, 0);
    ASSERT_EQ(s->channels.size(), 2u);
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{3, 4, 5}));
    EXPECT_TRUE(s->channels[0].gap);
    EXPECT_FALSE(s->channels[1].gap);
    // The flag survives a resume (redelivery might not happen) ...
    EXPECT_TRUE(store.resume(id, 0)->channels[0].gap);
    // ... and an ack below the kept range ...
    store.ack(id, "jobs:eu", 2);
    EXPECT_TRUE(store.resume(id, 0)->channels[0].gap);
    // ... until the client acks past the gap.
    store.ack(id, "jobs:eu", 3);
    s = store.resume(id, 0);
    EXPECT_FALSE(s->channels[0].gap);
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{4, 5}));
}

TEST(SessionStore, LoweringMaxUnackedOnResubscribeTrims) {
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce(10));
    for (uint64_t o = 1; o <= 5; ++o) {
        store.track(id, pub("jobs:eu", o));
    }
    store.subscribe(id, "jobs:eu", atLeastOnce(2));
    auto s = store.resume(id, 0);
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{4, 5}));
    EXPECT_TRUE(s->channels[0].gap);
}

TEST(SessionStore, AckAcrossAnEpochChange) {
    // The channel was re-created while old publications were un-acked: offsets restarted.
    SessionStore store;
    std::string id = store.create();
    store.subscribe(id, "jobs:eu", atLeastOnce());
    store.track(id, pub("jobs:eu", 41, "e_old"));
    store.track(id, pub("jobs:eu", 42, "e_old"));
    store.track(id, pub("jobs:eu", 1, "e_new"));
    store.track(id, pub("jobs:eu", 2, "e_new"));
    store.ack(id, "jobs:eu", 1);
    auto s = store.resume(id, 0);
    EXPECT_EQ(offsetsOf(s->channels[0]), (std::vector<uint64_t>{41, 42, 2}));
    store.ack(id, "jobs:eu", 42);
    EXPECT_TRUE(store.resume(id, 0)->channels[0].unacked.empty());
}

TEST(SessionStore, ConcurrentSessions) {
    SessionStore store;
    constexpr int kThreads = 4;
    constexpr int kSessions = 50;
    constexpr uint64_t kPubs = 200;
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int s = 0; s < kSessions; ++s) {
                std::string id = store.create();
                store.subscribe(id, "jobs:eu", atLeastOnce(100));
                for (uint64_t o = 1; o <= kPubs; ++o) {
                    store.track(id, pub("jobs:eu", o));
                    if (o % 10 == 0) {
                        store.ack(id, "jobs:eu", o - 5);
                    }
                }
                store.detach(id, 0);
                auto r = store.resume(id, 1);
                if (r && r->channels.size() == 1 &&
                    offsetsOf(r->channels[0]).front() == kPubs - 4) {
                    ++ok;
                }
                store.detach(id, 1);
                store.sweep(1);
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(ok.load(), kThreads * kSessions);
    EXPECT_EQ(store.sweep(~uint64_t{0}), static_cast<size_t>(kThreads * kSessions));
}

}  // namespace
}  // namespace sb::broker
