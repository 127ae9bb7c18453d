// Stamps, sequence tracking and the native-protocol scans of the fanout scenario.
#include "bench/delivery.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sb::bench {

namespace {

constexpr std::string_view kStampTag = "sb1:";

size_t skipSpace(std::string_view s, size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
        ++i;
    }
    return i;
}

// Index just past `"key"` and the ':' after it, or npos.
size_t findValue(std::string_view json, std::string_view key) {
    size_t from = 0;
    while (true) {
        size_t k = json.find(key, from);
        if (k == std::string_view::npos) {
            return k;
        }
        from = k + 1;
        if (k == 0 || json[k - 1] != '"' || k + key.size() >= json.size() ||
            json[k + key.size()] != '"') {
            continue;
        }
        size_t i = skipSpace(json, k + key.size() + 1);
        if (i < json.size() && json[i] == ':') {
            return skipSpace(json, i + 1);
        }
    }
}

}  // namespace

void writeStamp(std::string* out, const Stamp& s, size_t size) {
    const size_t start = out->size();
    auto append = [out](uint64_t v) {
        char digits[24];  // 20 digits hold any uint64_t
        const auto r = std::to_chars(digits, digits + sizeof digits, v);
        out->append(digits, r.ptr);
        out->push_back(':');
    };
    out->append(kStampTag);
    append(s.publisher);
    append(s.seq);
    append(s.sent_ns);
    if (out->size() - start < size) {
        out->append(size - (out->size() - start), 'x');
    }
}

namespace {

// Eight ASCII digits at p as a number (one multiply-shift pass per halving: SWAR), or false
// when they are not all digits. The stamp's send time has 13-14 digits: one pass and a few
// single steps instead of a loop over each.
bool eightDigits(const char* p, uint64_t* out) {
    uint64_t v = 0;
    std::memcpy(&v, p, 8);  // little-endian: the first digit in the low byte
    if ((((v & 0xF0F0F0F0F0F0F0F0u) | (((v + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) >> 4)) !=
         0x3333333333333333u)) {
        return false;
    }
    v -= 0x3030303030303030u;
    v = (v * 10) + (v >> 8);  // pairs of digits
    v = (((v & 0x000000FF000000FFu) * (100 + (1000000ull << 32))) +
         (((v >> 16) & 0x000000FF000000FFu) * (1 + (10000ull << 32)))) >>
        32;
    *out = v;
    return true;
}

// Digits at *p up to ':' (advances past the ':'); at most 19 digits, so no overflow.
// `wide`: expect many digits (the send time) and take them eight at a time.
bool stampNumber(const char** pp, const char* end, uint64_t* out, bool wide) {
    const char* p = *pp;
    const char* const start = p;
    const char* const lim = std::min(end, p + 19);
    uint64_t x = 0;
    uint64_t eight = 0;
    while (wide && lim - p >= 8 && eightDigits(p, &eight)) {
        x = x * 100'000'000u + eight;
        p += 8;
    }
    while (p < lim && static_cast<unsigned char>(*p - '0') < 10) {
        x = x * 10 + static_cast<uint64_t>(*p - '0');
        ++p;
    }
    if (p == start || p == end || *p != ':') {
        return false;
    }
    *pp = p + 1;
    *out = x;
    return true;
}

}  // namespace

// On every delivery: a pointer scan, no string_view calls in the loop.
bool stampAt(std::string_view payload, Stamp* out) {
    const char* p = payload.data();
    const char* const end = p + payload.size();
    if (payload.size() < kStampTag.size() + 6 ||
        std::memcmp(p, kStampTag.data(), kStampTag.size()) != 0) {
        return false;
    }
    p += kStampTag.size();
    uint64_t publisher = 0;
    if (!stampNumber(&p, end, &publisher, false) || publisher > UINT32_MAX ||
        !stampNumber(&p, end, &out->seq, false) || !stampNumber(&p, end, &out->sent_ns, true)) {
        return false;
    }
    out->publisher = static_cast<uint32_t>(publisher);
    return true;
}

bool findStamp(std::string_view payload, Stamp* out) {
    const size_t at = payload.find(kStampTag);
    return at != std::string_view::npos && stampAt(payload.substr(at), out);
}

SequenceTracker::Verdict SequenceTracker::onReceive(uint64_t seq) {
    if (seq == next_) {
        ++next_;
        ++unique_;
        return Verdict::kInOrder;
    }
    if (seq > next_) {
        // Skipped [next_, seq): lost unless they turn up later (then they are late).
        holes_.emplace_back(next_, seq);
        next_ = seq + 1;
        ++unique_;
        return Verdict::kInOrder;
    }
    // seq < next_: either fills a hole or was seen before.
    auto it = std::upper_bound(holes_.begin(), holes_.end(), seq,
                               [](uint64_t v, const auto& h) { return v < h.first; });
    if (it == holes_.begin()) {
        return Verdict::kDuplicate;
    }
    --it;
    if (seq >= it->second) {
        return Verdict::kDuplicate;
    }
    ++unique_;
    const auto [lo, hi] = *it;
    if (lo == seq && hi == seq + 1) {
        holes_.erase(it);
    } else if (lo == seq) {
        it->first = seq + 1;
    } else if (hi == seq + 1) {
        it->second = seq;
    } else {
        it->second = seq;
        holes_.insert(it + 1, {seq + 1, hi});
    }
    return Verdict::kLate;
}

uint64_t SequenceTracker::holes() const {
    uint64_t n = 0;
    for (const auto& [lo, hi] : holes_) {
        n += hi - lo;
    }
    return n;
}

std::string_view jsonStringField(std::string_view json, std::string_view key) {
    size_t i = findValue(json, key);
    if (i == std::string_view::npos || i >= json.size() || json[i] != '"') {
        return {};
    }
    ++i;
    size_t j = i;
    while (j < json.size() && json[j] != '"') {
        j += json[j] == '\\' ? 2 : 1;
    }
    if (j >= json.size()) {
        return {};
    }
    return json.substr(i, j - i);
}

bool jsonTrueField(std::string_view json, std::string_view key) {
    size_t i = findValue(json, key);
    return i != std::string_view::npos && json.substr(i).starts_with("true");
}

bool jsonUintField(std::string_view json, std::string_view key, uint64_t* out) {
    const size_t i = findValue(json, key);
    if (i == std::string_view::npos || i >= json.size()) {
        return false;
    }
    const auto r = std::from_chars(json.data() + i, json.data() + json.size(), *out);
    return r.ec == std::errc{};
}

}  // namespace sb::bench
