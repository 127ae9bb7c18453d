// bench::Histogram against a sorted reference: bucket geometry, percentiles within 1 % on
// several distributions, exact merge (as `--procs` does it) and the serialized form.
#include "bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace sb::bench {
namespace {

// Nearest-rank percentile of a sorted vector: the definition Histogram::percentile follows.
uint64_t referencePercentile(const std::vector<uint64_t>& sorted, double p) {
    if (p >= 100.0) {
        return sorted.back();
    }
    auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    rank = std::clamp<uint64_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

void expectWithinOnePercent(const Histogram& h, std::vector<uint64_t> values) {
    std::sort(values.begin(), values.end());
    ASSERT_EQ(h.count(), values.size());
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0}) {
        const auto want = static_cast<double>(referencePercentile(values, p));
        const auto got = static_cast<double>(h.percentile(p));
        EXPECT_LE(std::abs(got - want), want * 0.01) << "p" << p << " want " << want;
    }
    long double sum = 0;
    for (uint64_t v : values) {
        sum += static_cast<long double>(v);
    }
    const double mean = static_cast<double>(sum / static_cast<long double>(values.size()));
    EXPECT_NEAR(h.mean(), mean, mean * 1e-9 + 1e-9);
}

TEST(Histogram, BucketsTileTheRangeWithWidthUnderOnePercent) {
    uint64_t expected_low = 0;
    for (size_t b = 0; b < Histogram::kBucketCount; ++b) {
        ASSERT_EQ(Histogram::bucketLow(b), expected_low) << b;
        const uint64_t high = Histogram::bucketHigh(b);
        ASSERT_GE(high, expected_low);
        // Width relative to the smallest value in the bucket: at most 1/128.
        ASSERT_LE(static_cast<double>(high - expected_low + 1),
                  std::max(1.0, static_cast<double>(expected_low) / 128.0))
            << b;
        ASSERT_EQ(Histogram::bucketOf(expected_low), b);
        ASSERT_EQ(Histogram::bucketOf(high), b);
        expected_low = high + 1;
    }
    EXPECT_EQ(expected_low - 1, Histogram::kMaxValue);
    EXPECT_EQ(Histogram::bucketOf(UINT64_MAX), Histogram::kBucketCount - 1);
}

TEST(Histogram, SmallValuesAreExact) {
    Histogram h;
    std::vector<uint64_t> values;
    for (uint64_t v = 0; v < 256; ++v) {
        h.record(v);
        values.push_back(v);
    }
    for (double p : {1.0, 50.0, 99.0}) {
        std::sort(values.begin(), values.end());
        EXPECT_EQ(h.percentile(p), referencePercentile(values, p));
    }
}

TEST(Histogram, EmptyAndSingle) {
    Histogram h;
    EXPECT_EQ(h.percentile(50), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.mean(), 0.0);
    h.record(123'456'789);
    for (double p : {0.0, 50.0, 99.9, 100.0}) {
        EXPECT_EQ(h.percentile(p), 123'456'789u);  // clamped to [min, max]
    }
}

TEST(Histogram, UniformLogNormalAndBimodalMatchSortedReference) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<uint64_t> uniform(1, 50'000'000);
    std::lognormal_distribution<double> lognormal(11.0, 1.2);  // ~60 µs median, long tail
    std::normal_distribution<double> fast(40'000, 3'000);
    std::normal_distribution<double> slow(9'000'000, 500'000);
    for (int dist = 0; dist < 3; ++dist) {
        Histogram h;
        std::vector<uint64_t> values;
        for (int i = 0; i < 200'000; ++i) {
            double v = 0;
            if (dist == 0) {
                v = static_cast<double>(uniform(rng));
            } else if (dist == 1) {
                v = lognormal(rng);
            } else {
                v = (i % 100 == 0) ? slow(rng) : fast(rng);
            }
            const auto u = static_cast<uint64_t>(std::max(0.0, v));
            h.record(u);
            values.push_back(u);
        }
        SCOPED_TRACE(dist);
        expectWithinOnePercent(h, values);
    }
}

TEST(Histogram, RecordWithCountEqualsRepeatedRecord) {
    Histogram a;
    Histogram b;
    a.record(777'777, 5);
    for (int i = 0; i < 5; ++i) {
        b.record(777'777);
    }
    EXPECT_TRUE(a == b);
    Histogram big;
    big.record(Histogram::kMaxValue, uint64_t{1} << 40);  // sum needs more than 64 bits
    EXPECT_NEAR(big.mean(), static_cast<double>(Histogram::kMaxValue), 1.0);
}

TEST(Histogram, ValuesAboveTheRangeAreClamped) {
    Histogram h;
    h.record(UINT64_MAX);
    EXPECT_EQ(h.max(), Histogram::kMaxValue);
    EXPECT_EQ(h.percentile(50), Histogram::kMaxValue);
}

TEST(Histogram, MergeOfPartsEqualsTheWhole) {
    // What --procs does: each worker records its share, the parent merges them.
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> d(12.0, 1.5);
    Histogram whole;
    std::vector<Histogram> parts(4);
    std::vector<uint64_t> values;
    for (int i = 0; i < 100'000; ++i) {
        const auto v = static_cast<uint64_t>(d(rng));
        whole.record(v);
        parts[static_cast<size_t>(i) % parts.size()].record(v);
        values.push_back(v);
    }
    Histogram merged;
    for (const Histogram& p : parts) {
        merged.merge(p);
    }
    EXPECT_TRUE(merged == whole);
    expectWithinOnePercent(merged, values);
    for (double p : {50.0, 90.0, 99.0, 99.9}) {
        EXPECT_EQ(merged.percentile(p), whole.percentile(p));
    }
}

TEST(Histogram, SerializeRoundTripsAndMergesAfterTheWire) {
    std::mt19937_64 rng(9);
    std::uniform_int_distribution<uint64_t> d(0, 1'000'000'000);
    Histogram a;
    Histogram b;
    for (int i = 0; i < 10'000; ++i) {
        a.record(d(rng));
        b.record(d(rng) / 1000);
    }
    std::string wire;
    a.serialize(&wire);
    b.serialize(&wire);
    Histogram().serialize(&wire);
    std::string_view in = wire;
    auto a2 = Histogram::deserialize(&in);
    auto b2 = Histogram::deserialize(&in);
    auto e2 = Histogram::deserialize(&in);
    ASSERT_TRUE(a2 && b2 && e2);
    EXPECT_TRUE(in.empty());
    EXPECT_TRUE(*a2 == a);
    EXPECT_TRUE(*b2 == b);
    EXPECT_TRUE(e2->empty());
    Histogram m1 = a;
    m1.merge(b);
    Histogram m2 = *a2;
    m2.merge(*b2);
    m2.merge(*e2);
    EXPECT_TRUE(m1 == m2);
}

TEST(Histogram, CorruptWireIsRefused) {
    Histogram h;
    for (uint64_t v = 1; v < 100'000; v *= 3) {
        h.record(v);
    }
    std::string wire;
    h.serialize(&wire);
    for (size_t cut = 0; cut < wire.size(); ++cut) {
        std::string_view in(wire.data(), cut);
        EXPECT_FALSE(Histogram::deserialize(&in)) << cut;
    }
    std::string bad = wire;
    bad[1] = static_cast<char>(bad[1] + 1);  // count no longer matches the buckets
    std::string_view in = bad;
    EXPECT_FALSE(Histogram::deserialize(&in));
}

}  // namespace
}  // namespace sb::bench
