// BenchResult as `--procs` uses it: serialized by each worker, read back and merged exactly
// (counters add, errors add by kind, histograms and timelines merge); and the timeline's
// interval doubling.
#include "bench/result.h"

#include <gtest/gtest.h>

#include <random>

namespace sb::bench {
namespace {

BenchResult sampleResult(uint64_t seed) {
    std::mt19937_64 rng(seed);
    BenchResult r;
    r.scenario = "echo";
    r.counters.connects_attempted = 10 + seed;
    r.counters.connects_ok = 9 + seed;
    r.counters.msgs_sent = 1000 * seed;
    r.counters.msgs_received = 999 * seed;
    r.counters.lost = seed;
    r.addError("refused", 1);
    r.addErrorSample("refused", "connection refused by 127.0.0.1:1");
    r.addError("close_" + std::to_string(1000 + seed), 2);
    for (int i = 0; i < 5000; ++i) {
        const uint64_t v = rng() % 10'000'000;
        r.latency_ns.record(v);
        r.timeline.at(static_cast<uint64_t>(i)).latency.record(v);
        ++r.timeline.at(static_cast<uint64_t>(i)).received;
    }
    r.connect_ns.record(123'456 * seed);
    r.send_lag_ns.record(777 * seed);
    r.counters.sends_skipped = 5 * seed;
    r.elapsed_s = 1.5 * static_cast<double>(seed);
    r.traffic_s = 1.0 * static_cast<double>(seed);
    r.cpu_s = 0.25;
    r.busiest_cpu = 0.1 * static_cast<double>(seed);
    return r;
}

TEST(BenchResult, SerializeRoundTrip) {
    BenchResult r = sampleResult(3);
    r.interrupted = true;
    std::string wire;
    r.serialize(&wire);
    auto back = BenchResult::deserialize(wire);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->scenario, "echo");
    EXPECT_EQ(back->counters.msgs_sent, r.counters.msgs_sent);
    EXPECT_EQ(back->counters.lost, 3u);
    EXPECT_EQ(back->errors, r.errors);
    EXPECT_EQ(back->error_samples, r.error_samples);
    EXPECT_TRUE(back->latency_ns == r.latency_ns);
    EXPECT_TRUE(back->connect_ns == r.connect_ns);
    EXPECT_TRUE(back->send_lag_ns == r.send_lag_ns);
    EXPECT_EQ(back->counters.sends_skipped, 15u);
    EXPECT_EQ(back->timeline.samples().size(), r.timeline.samples().size());
    EXPECT_DOUBLE_EQ(back->elapsed_s, r.elapsed_s);
    EXPECT_TRUE(back->interrupted);
    for (size_t cut = 0; cut + 1 < wire.size(); cut += 97) {
        EXPECT_FALSE(BenchResult::deserialize(std::string_view(wire.data(), cut))) << cut;
    }
}

TEST(BenchResult, MergeIsExact) {
    BenchResult a = sampleResult(1);
    BenchResult b = sampleResult(2);
    std::string wa;
    std::string wb;
    a.serialize(&wa);
    b.serialize(&wb);
    BenchResult merged;
    merged.merge(*BenchResult::deserialize(wa));
    merged.merge(*BenchResult::deserialize(wb));
    EXPECT_EQ(merged.counters.msgs_sent, 3000u);
    EXPECT_EQ(merged.counters.connects_ok, 10u + 11u);
    EXPECT_EQ(merged.errors.at("refused"), 2u);
    EXPECT_EQ(merged.errors.at("close_1001"), 2u);
    EXPECT_EQ(merged.errors.at("close_1002"), 2u);
    EXPECT_EQ(merged.errorTotal(), 6u);
    Histogram whole = a.latency_ns;
    whole.merge(b.latency_ns);
    EXPECT_TRUE(merged.latency_ns == whole);
    EXPECT_EQ(merged.send_lag_ns.count(), 2u);
    EXPECT_EQ(merged.counters.sends_skipped, 15u);
    EXPECT_DOUBLE_EQ(merged.elapsed_s, 3.0);  // the longest process
    EXPECT_DOUBLE_EQ(merged.cpu_s, 0.5);      // CPU adds
    EXPECT_DOUBLE_EQ(merged.busiest_cpu, 0.2);
    ASSERT_EQ(merged.timeline.samples().size(), a.timeline.samples().size());
    EXPECT_EQ(merged.timeline.samples()[0].received,
              a.timeline.samples()[0].received + b.timeline.samples()[0].received);
}

TEST(Timeline, CoarsensPastTheSampleCapAndMergesAcrossIntervals) {
    Timeline fine;
    Timeline coarse;
    for (uint64_t s = 0; s < 700; ++s) {  // 700 s at 1 s: must double to 2 s
        ++coarse.at(s * 1000).sent;
    }
    EXPECT_EQ(coarse.intervalMs(), 2000u);
    EXPECT_LE(coarse.samples().size(), Timeline::kMaxSamples);
    uint64_t total = 0;
    for (const TimelineSample& x : coarse.samples()) {
        total += x.sent;
    }
    EXPECT_EQ(total, 700u);
    for (uint64_t s = 0; s < 10; ++s) {
        fine.at(s * 1000).sent += 5;
        fine.at(s * 1000).open = s;
    }
    coarse.merge(fine);
    EXPECT_EQ(coarse.intervalMs(), 2000u);
    EXPECT_EQ(coarse.samples()[0].sent, 2u + 10u);
    EXPECT_EQ(coarse.samples()[4].open, 9u);  // the later interval's gauge
}

}  // namespace
}  // namespace sb::bench
