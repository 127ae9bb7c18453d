// Log-linear bucket arithmetic, percentiles and the wire form of bench::Histogram.
#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sb::bench {

namespace {

constexpr uint64_t kSubBuckets = uint64_t{1} << Histogram::kSubBucketBits;
constexpr uint8_t kWireVersion = 1;

// 64 x 64 -> 128-bit product in 32-bit halves (portable; no __int128 under -Wpedantic).
void mul128(uint64_t a, uint64_t b, uint64_t* lo, uint64_t* hi) {
    const uint64_t a0 = a & 0xFFFFFFFFu;
    const uint64_t a1 = a >> 32;
    const uint64_t b0 = b & 0xFFFFFFFFu;
    const uint64_t b1 = b >> 32;
    const uint64_t p00 = a0 * b0;
    const uint64_t p01 = a0 * b1;
    const uint64_t p10 = a1 * b0;
    const uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    *lo = (p00 & 0xFFFFFFFFu) | (mid << 32);
    *hi = a1 * b1 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

}  // namespace

size_t Histogram::bucketOf(uint64_t value) {
    value = std::min(value, kMaxValue);
    if (value < kSubBuckets) {
        return static_cast<size_t>(value);
    }
    // Group g >= 1 holds [2^(g+6), 2^(g+7)) in 128 buckets of width 2^(g-1).
    const int e = std::bit_width(value) - 1;  // >= kSubBucketBits
    const int shift = e - kSubBucketBits;
    const uint64_t group = static_cast<uint64_t>(shift + 1);
    return static_cast<size_t>((group << kSubBucketBits) + (value >> shift) - kSubBuckets);
}

uint64_t Histogram::bucketLow(size_t bucket) {
    const uint64_t group = bucket >> kSubBucketBits;
    const uint64_t sub = bucket & (kSubBuckets - 1);
    if (group == 0) {
        return sub;
    }
    return (kSubBuckets + sub) << (group - 1);
}

uint64_t Histogram::bucketHigh(size_t bucket) {
    const uint64_t group = bucket >> kSubBucketBits;
    if (group == 0) {
        return bucketLow(bucket);
    }
    return bucketLow(bucket) + (uint64_t{1} << (group - 1)) - 1;
}

void Histogram::record(uint64_t value, uint64_t count) {
    if (count == 0) {
        return;
    }
    value = std::min(value, kMaxValue);
    const size_t b = bucketOf(value);
    if (b >= counts_.size()) {
        // Grow in steps of a whole group so a slowly rising latency does not realloc each time.
        counts_.resize(std::min(kBucketCount, (b | (kSubBuckets - 1)) + 1), 0);
    }
    counts_[b] += count;
    count_ += count;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    uint64_t lo = value;
    uint64_t hi = 0;
    if (count != 1) {
        mul128(value, count, &lo, &hi);
    }
    const uint64_t before = sum_lo_;
    sum_lo_ += lo;
    sum_hi_ += hi + (sum_lo_ < before ? 1 : 0);
}

void Histogram::merge(const Histogram& other) {
    if (other.count_ == 0) {
        return;
    }
    if (other.counts_.size() > counts_.size()) {
        counts_.resize(other.counts_.size(), 0);
    }
    for (size_t i = 0; i < other.counts_.size(); ++i) {
        counts_[i] += other.counts_[i];
    }
    count_ += other.count_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    const uint64_t before = sum_lo_;
    sum_lo_ += other.sum_lo_;
    sum_hi_ += other.sum_hi_ + (sum_lo_ < before ? 1 : 0);
}

void Histogram::reset() {
    counts_.clear();
    count_ = 0;
    min_ = UINT64_MAX;
    max_ = 0;
    sum_lo_ = 0;
    sum_hi_ = 0;
}

double Histogram::mean() const {
    if (count_ == 0) {
        return 0;
    }
    const double sum = std::ldexp(static_cast<double>(sum_hi_), 64) + static_cast<double>(sum_lo_);
    return sum / static_cast<double>(count_);
}

uint64_t Histogram::percentile(double p) const {
    if (count_ == 0) {
        return 0;
    }
    if (p >= 100.0) {
        return max_;
    }
    p = std::max(p, 0.0);
    // Nearest rank: the smallest value with at least ceil(p% of count) values at or below it.
    auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
        seen += counts_[b];
        if (seen >= rank) {
            const uint64_t lo = bucketLow(b);
            const uint64_t mid = lo + (bucketHigh(b) - lo) / 2;
            return std::clamp(mid, min_, max_);
        }
    }
    return max_;  // unreachable while counts_ sums to count_
}

bool Histogram::operator==(const Histogram& o) const {
    if (count_ != o.count_ || min() != o.min() || max_ != o.max_ || sum_lo_ != o.sum_lo_ ||
        sum_hi_ != o.sum_hi_) {
        return false;
    }
    const size_t n = std::max(counts_.size(), o.counts_.size());
    for (size_t i = 0; i < n; ++i) {
        const uint64_t a = i < counts_.size() ? counts_[i] : 0;
        const uint64_t b = i < o.counts_.size() ? o.counts_[i] : 0;
        if (a != b) {
            return false;
        }
    }
    return true;
}

void putVarint(std::string* out, uint64_t v) {
    while (v >= 0x80) {
        out->push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out->push_back(static_cast<char>(v));
}

bool getVarint(std::string_view* in, uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (in->empty()) {
            return false;
        }
        const auto byte = static_cast<uint8_t>(in->front());
        in->remove_prefix(1);
        r |= static_cast<uint64_t>(byte & 0x7F) << shift;
        if ((byte & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;  // more than 10 groups: corrupt
}

// Wire form: version, count, min, max, sum_lo, sum_hi, number of non-empty buckets, then
// (bucket index delta from the previous one, count) pairs in increasing bucket order.
void Histogram::serialize(std::string* out) const {
    out->push_back(static_cast<char>(kWireVersion));
    putVarint(out, count_);
    putVarint(out, min());
    putVarint(out, max_);
    putVarint(out, sum_lo_);
    putVarint(out, sum_hi_);
    uint64_t used = 0;
    for (uint64_t c : counts_) {
        used += c != 0 ? 1 : 0;
    }
    putVarint(out, used);
    size_t prev = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
        if (counts_[i] != 0) {
            putVarint(out, i - prev);
            putVarint(out, counts_[i]);
            prev = i;
        }
    }
}

base::Result<Histogram> Histogram::deserialize(std::string_view* in) {
    if (in->empty() || static_cast<uint8_t>(in->front()) != kWireVersion) {
        return base::fail("histogram: unknown wire version");
    }
    in->remove_prefix(1);
    Histogram h;
    uint64_t count = 0;
    uint64_t mn = 0;
    uint64_t used = 0;
    if (!getVarint(in, &count) || !getVarint(in, &mn) || !getVarint(in, &h.max_) ||
        !getVarint(in, &h.sum_lo_) || !getVarint(in, &h.sum_hi_) || !getVarint(in, &used)) {
        return base::fail("histogram: truncated header");
    }
    if (used > kBucketCount || h.max_ > kMaxValue) {
        return base::fail("histogram: corrupt header");
    }
    uint64_t total = 0;
    size_t index = 0;
    for (uint64_t k = 0; k < used; ++k) {
        uint64_t delta = 0;
        uint64_t c = 0;
        if (!getVarint(in, &delta) || !getVarint(in, &c)) {
            return base::fail("histogram: truncated buckets");
        }
        if (delta >= kBucketCount || index + delta >= kBucketCount || c == 0 ||
            (k > 0 && delta == 0)) {
            return base::fail("histogram: corrupt bucket list");
        }
        index += static_cast<size_t>(delta);
        if (index >= h.counts_.size()) {
            h.counts_.resize((index | (kSubBuckets - 1)) + 1, 0);
        }
        h.counts_[index] = c;
        total += c;
    }
    if (total != count) {
        return base::fail("histogram: bucket counts do not add up");
    }
    h.count_ = count;
    h.min_ = count == 0 ? UINT64_MAX : mn;
    return h;
}

}  // namespace sb::bench
