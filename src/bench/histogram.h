// The load tester's latency histogram: HDR-style log-linear buckets (128 linear sub-buckets per
// power of two), so any recorded value is known to within 1/256 of itself (≤ 0.4 %), with O(1)
// record, exact merge (bucket counts add) and a compact serialized form for merging the
// results of worker processes over a pipe (`switchboard bench --procs K`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb::bench {

// Counts of unsigned values (the bench records nanoseconds) in log-linear buckets. Values below
// 256 are exact; above, bucket width is 2^(e-7) for a value in [2^e, 2^(e+1)). Values above
// kMaxValue (≈ 73 minutes in ns) are counted as kMaxValue. Not thread-safe: one per loop.
class Histogram {
public:
    static constexpr int kSubBucketBits = 7;  // 128 sub-buckets: worst bucket width 1/128
    static constexpr int kMaxBits = 42;       // 2^42 ns ≈ 73 min: longer than any bench run
    static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxBits) - 1;
    static constexpr size_t kBucketCount = size_t{kMaxBits - kSubBucketBits + 1} << kSubBucketBits;

    // Adds `count` occurrences of `value` (clamped to kMaxValue).
    void record(uint64_t value, uint64_t count = 1);
    // Adds every count of `other` (exact: the result equals recording both value sets).
    void merge(const Histogram& other);
    void reset();

    uint64_t count() const { return count_; }
    bool empty() const { return count_ == 0; }
    // Exact smallest / largest recorded value (0 when empty).
    uint64_t min() const { return count_ == 0 ? 0 : min_; }
    uint64_t max() const { return max_; }
    // Mean of the recorded values (exact: the sum is kept), 0 when empty.
    double mean() const;

    // The nearest-rank percentile (p in [0, 100]): the value v at rank ceil(p/100 * count)
    // (rank 1 for p = 0) of the sorted recorded values, reported as the middle of v's bucket
    // clamped to [min, max]: within 0.4 % of v. p = 100 is max() exactly. 0 when empty.
    uint64_t percentile(double p) const;

    // Appends a compact binary form (non-empty buckets only, varint encoded) to `out`.
    void serialize(std::string* out) const;
    // Reads one histogram written by serialize() from the front of `in` and advances `in`
    // past it. Errors (truncated or corrupt input) leave `in` unspecified.
    static base::Result<Histogram> deserialize(std::string_view* in);

    // Bucket geometry, public for tests: the bucket of a value and a bucket's value range.
    static size_t bucketOf(uint64_t value);
    static uint64_t bucketLow(size_t bucket);
    static uint64_t bucketHigh(size_t bucket);  // inclusive

    bool operator==(const Histogram& o) const;

private:
    // Grown on demand to the highest bucket used: a latency histogram of a loopback run
    // stays around 16 KiB instead of kBucketCount * 8 = 36 KiB.
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
    // Exact 128-bit sum for the mean (2^64 ns is only 584 years of summed latency).
    uint64_t sum_lo_ = 0;
    uint64_t sum_hi_ = 0;
};

// Varint helpers shared by the bench's serialized results (LEB128, little-endian groups).
void putVarint(std::string* out, uint64_t v);
bool getVarint(std::string_view* in, uint64_t* v);

}  // namespace sb::bench
