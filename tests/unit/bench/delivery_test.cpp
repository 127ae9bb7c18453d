// Fanout bookkeeping without sockets: stamps, the per-publisher sequence tracker (loss,
// duplicates and late arrivals told apart) and the native-protocol field scans.
#include "bench/delivery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace sb::bench {
namespace {

TEST(Stamp, RoundTripsAndPadsToSize) {
    std::string s;
    writeStamp(&s, Stamp{7, 123456, 987654321012}, 64);
    EXPECT_EQ(s.size(), 64u);
    EXPECT_TRUE(s.starts_with("sb1:7:123456:987654321012:"));
    EXPECT_EQ(s.back(), 'x');
    Stamp got;
    ASSERT_TRUE(findStamp(s, &got));
    EXPECT_EQ(got.publisher, 7u);
    EXPECT_EQ(got.seq, 123456u);
    EXPECT_EQ(got.sent_ns, 987654321012u);

    std::string small;
    writeStamp(&small, Stamp{1, 2, 3}, 4);  // never truncated below the stamp itself
    EXPECT_EQ(small, "sb1:1:2:3:");
}

TEST(Stamp, FoundInsideANativeMessage) {
    std::string data;
    writeStamp(&data, Stamp{3, 9, 42}, 20);
    const std::string msg = R"({"type":"message","channel":"bench.0","epoch":"e_1","offset":5,)"
                            R"("data":")" +
                            data + "\"}";
    Stamp got;
    ASSERT_TRUE(findStamp(msg, &got));
    EXPECT_EQ(got.publisher, 3u);
    EXPECT_EQ(got.seq, 9u);
}

TEST(Stamp, MalformedIsRejected) {
    Stamp s;
    EXPECT_FALSE(findStamp("hello", &s));
    EXPECT_FALSE(findStamp("sb1:1:2", &s));
    EXPECT_FALSE(findStamp("sb1:a:2:3:", &s));
    EXPECT_FALSE(findStamp("sb1:99999999999:2:3:", &s));  // publisher over 32 bits
}

TEST(SequenceTracker, InOrder) {
    SequenceTracker t;
    for (uint64_t i = 0; i < 100; ++i) {
        EXPECT_EQ(t.onReceive(i), SequenceTracker::Verdict::kInOrder);
    }
    EXPECT_EQ(t.unique(), 100u);
    EXPECT_EQ(t.holes(), 0u);
}

TEST(SequenceTracker, LossLeavesHoles) {
    SequenceTracker t;
    for (uint64_t i = 0; i < 100; ++i) {
        if (i % 10 != 3) {
            EXPECT_EQ(t.onReceive(i), SequenceTracker::Verdict::kInOrder);
        }
    }
    EXPECT_EQ(t.unique(), 90u);
    EXPECT_EQ(t.holes(), 10u);
}

TEST(SequenceTracker, SwappedPairsAreLateNotLost) {
    SequenceTracker t;
    int late = 0;
    for (uint64_t i = 0; i < 100; i += 2) {
        EXPECT_EQ(t.onReceive(i + 1), SequenceTracker::Verdict::kInOrder);
        late += t.onReceive(i) == SequenceTracker::Verdict::kLate ? 1 : 0;
    }
    EXPECT_EQ(late, 50);
    EXPECT_EQ(t.unique(), 100u);
    EXPECT_EQ(t.holes(), 0u);
}

TEST(SequenceTracker, DuplicatesBeforeAndAfterHoles) {
    SequenceTracker t;
    EXPECT_EQ(t.onReceive(0), SequenceTracker::Verdict::kInOrder);
    EXPECT_EQ(t.onReceive(0), SequenceTracker::Verdict::kDuplicate);
    EXPECT_EQ(t.onReceive(5), SequenceTracker::Verdict::kInOrder);  // hole [1, 5)
    EXPECT_EQ(t.onReceive(5), SequenceTracker::Verdict::kDuplicate);
    EXPECT_EQ(t.onReceive(3), SequenceTracker::Verdict::kLate);  // splits the hole
    EXPECT_EQ(t.onReceive(3), SequenceTracker::Verdict::kDuplicate);
    EXPECT_EQ(t.onReceive(1), SequenceTracker::Verdict::kLate);
    EXPECT_EQ(t.onReceive(4), SequenceTracker::Verdict::kLate);
    EXPECT_EQ(t.holes(), 1u);  // only 2 is missing
    EXPECT_EQ(t.onReceive(2), SequenceTracker::Verdict::kLate);
    EXPECT_EQ(t.holes(), 0u);
    EXPECT_EQ(t.unique(), 6u);
}

TEST(SequenceTracker, RandomArrivalsMatchASetReference) {
    std::mt19937 rng(3);
    for (int round = 0; round < 20; ++round) {
        std::vector<uint64_t> arrivals;
        for (uint64_t i = 0; i < 500; ++i) {
            if (rng() % 10 != 0) {
                arrivals.push_back(i);  // 10 % lost
            }
            if (rng() % 20 == 0) {
                arrivals.push_back(i);  // 5 % duplicated
            }
        }
        // Local shuffles: reorder within small windows, like a misbehaving relay.
        for (size_t i = 0; i + 4 < arrivals.size(); i += 4) {
            std::shuffle(arrivals.begin() + static_cast<ptrdiff_t>(i),
                         arrivals.begin() + static_cast<ptrdiff_t>(i + 4), rng);
        }
        SequenceTracker t;
        std::set<uint64_t> seen;
        uint64_t dup = 0;
        uint64_t late = 0;
        uint64_t max_seen = 0;
        bool any = false;
        for (uint64_t s : arrivals) {
            auto v = t.onReceive(s);
            if (seen.count(s) != 0) {
                EXPECT_EQ(v, SequenceTracker::Verdict::kDuplicate);
                ++dup;
            } else {
                const bool is_late = any && s < max_seen;
                EXPECT_EQ(v, is_late ? SequenceTracker::Verdict::kLate
                                     : SequenceTracker::Verdict::kInOrder);
                late += is_late ? 1 : 0;
                seen.insert(s);
            }
            max_seen = any ? std::max(max_seen, s) : s;
            any = true;
        }
        EXPECT_EQ(t.unique(), seen.size());
        EXPECT_EQ(t.holes(), t.next() - seen.size());
        (void)dup;
        (void)late;
    }
}

TEST(JsonScan, StringAndTrueFields) {
    const std::string m =
        R"({"type":"error","id":3,"code":"rate_limited","message":"slow \"down\""})";
    EXPECT_EQ(jsonStringField(m, "type"), "error");
    EXPECT_EQ(jsonStringField(m, "code"), "rate_limited");
    EXPECT_EQ(jsonStringField(m, "message"), R"(slow \"down\")");
    EXPECT_EQ(jsonStringField(m, "id"), "");  // a number, not a string
    EXPECT_EQ(jsonStringField(m, "missing"), "");
    EXPECT_EQ(jsonStringField(R"({ "type" : "pong" })", "type"), "pong");
    EXPECT_TRUE(jsonTrueField(R"({"type":"message","gap":true})", "gap"));
    EXPECT_FALSE(jsonTrueField(R"({"type":"message","gap":false})", "gap"));
    // A key name inside a value is not the key.
    EXPECT_EQ(jsonStringField(R"({"data":"type","type":"message"})", "type"), "message");
}

TEST(JsonScan, UintField) {
    uint64_t v = 0;
    EXPECT_TRUE(
        jsonUintField(R"({"type":"message","epoch":"e_1","offset":41,"data":"x"})", "offset", &v));
    EXPECT_EQ(v, 41u);
    EXPECT_TRUE(jsonUintField(R"({"offset" : 18446744073709551615})", "offset", &v));
    EXPECT_EQ(v, UINT64_MAX);
    EXPECT_FALSE(jsonUintField(R"({"offset":-1})", "offset", &v));
    EXPECT_FALSE(jsonUintField(R"({"offset":"7"})", "offset", &v));
    EXPECT_FALSE(jsonUintField(R"({"offset":18446744073709551616})", "offset", &v));
    EXPECT_FALSE(jsonUintField(R"({"type":"message"})", "offset", &v));
}

}  // namespace
}  // namespace sb::bench
