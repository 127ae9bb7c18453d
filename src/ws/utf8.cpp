// UTF-8 validator: an ASCII fast path (16 bytes per step with SSE2, else 8) and, for everything
// else, a 9-state DFA whose transitions for one input byte are packed into a single uint64.
#include "ws/utf8.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sb::ws {
namespace {

// Byte classes: which set of next states a byte can lead to (RFC 3629 §4 syntax).
enum ByteClass : uint8_t {
    kAscii,   // 00..7F
    kCont8x,  // 80..8F   continuation
    kCont9x,  // 90..9F   continuation
    kContAB,  // A0..BF   continuation
    kNever,   // C0 C1 F5..FF: can start no valid sequence (C0/C1 are always overlong)
    kLead2,   // C2..DF
    kLeadE0,  // E0: second byte A0..BF, else overlong
    kLead3,   // E1..EC EE EF
    kLeadED,  // ED: second byte 80..9F, else a surrogate D800..DFFF
    kLeadF0,  // F0: second byte 90..BF, else overlong
    kLead4,   // F1..F3
    kLeadF4,  // F4: second byte 80..8F, else above U+10FFFF
};

// DFA states. Each is stored as a bit offset (state * 6) into a byte's packed transition row,
// so one step is `row[byte] >> state & 63`. Accept must be 0: the validator starts there.
enum State : uint8_t {
    kAccept,   // between code points
    kReject,   // sticky failure
    kNeed1,    // one continuation byte (80..BF) left
    kNeed2,    // two left
    kNeed3,    // three left
    kAfterE0,  // A0..BF then one more
    kAfterED,  // 80..9F then one more
    kAfterF0,  // 90..BF then two more
    kAfterF4,  // 80..8F then two more
    kStateCount
};
constexpr unsigned kBits = 6;
static_assert(kStateCount * kBits <= 64);

constexpr ByteClass classOf(unsigned b) {
    if (b < 0x80) {
        return kAscii;
    }
    if (b < 0x90) {
        return kCont8x;
    }
    if (b < 0xA0) {
        return kCont9x;
    }
    if (b < 0xC0) {
        return kContAB;
    }
    if (b < 0xC2) {
        return kNever;
    }
    if (b < 0xE0) {
        return kLead2;
    }
    if (b == 0xE0) {
        return kLeadE0;
    }
    if (b == 0xED) {
        return kLeadED;
    }
    if (b < 0xF0) {
        return kLead3;
    }
    if (b == 0xF0) {
        return kLeadF0;
    }
    if (b < 0xF4) {
        return kLead4;
    }
    if (b == 0xF4) {
        return kLeadF4;
    }
    return kNever;
}

constexpr State next(State s, ByteClass c) {
    const bool cont = c == kCont8x || c == kCont9x || c == kContAB;
    switch (s) {
        case kAccept:
            switch (c) {
                case kAscii:
                    return kAccept;
                case kLead2:
                    return kNeed1;
                case kLeadE0:
                    return kAfterE0;
                case kLead3:
                    return kNeed2;
                case kLeadED:
                    return kAfterED;
                case kLeadF0:
                    return kAfterF0;
                case kLead4:
                    return kNeed3;
                case kLeadF4:
                    return kAfterF4;
                default:
                    return kReject;
            }
        case kNeed1:
            return cont ? kAccept : kReject;
        case kNeed2:
            return cont ? kNeed1 : kReject;
        case kNeed3:
            return cont ? kNeed2 : kReject;
        case kAfterE0:
            return c == kContAB ? kNeed1 : kReject;
        case kAfterED:
            return (c == kCont8x || c == kCont9x) ? kNeed1 : kReject;
        case kAfterF0:
            return (c == kCont9x || c == kContAB) ? kNeed2 : kReject;
        case kAfterF4:
            return c == kCont8x ? kNeed2 : kReject;
        default:
            return kReject;
    }
}

// kRows[b] holds, at bit offset s*6, the offset of the state reached from s on byte b.
constexpr std::array<uint64_t, 256> kRows = [] {
    std::array<uint64_t, 256> rows{};
    for (unsigned b = 0; b < 256; ++b) {
        uint64_t row = 0;
        for (unsigned s = 0; s < kStateCount; ++s) {
            const uint64_t to = next(static_cast<State>(s), classOf(b)) * kBits;
            row |= to << (s * kBits);
        }
        rows[b] = row;
    }
    return rows;
}();
constexpr uint32_t kAcceptOffset = kAccept * kBits;
constexpr uint32_t kRejectOffset = kReject * kBits;
static_assert(kAcceptOffset == 0 && kRejectOffset < kNeed1 * kBits);

inline uint32_t step(uint32_t s, uint8_t b) {
    return static_cast<uint32_t>(kRows[b] >> s) & 63;
}

// Returns the first non-ASCII byte at or after p (or end).
inline const uint8_t* skipAscii(const uint8_t* p, const uint8_t* end) {
    // Text that is mostly multi-byte would pay for a vector load per code point: look first.
    if (p == end || *p >= 0x80) {
        return p;
    }
#if defined(__SSE2__)
    while (end - p >= 64) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
        const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0) {
            break;  // the 16-byte loop below finds the exact position
        }
        p += 64;
    }
    while (end - p >= 16) {
        const int m = _mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        if (m != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(m));
        }
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        w &= 0x8080808080808080ull;
        if (w != 0) {
            // Little-endian: the lowest set bit belongs to the first non-ASCII byte.
            if constexpr (std::endian::native == std::endian::little) {
                return p + (__builtin_ctzll(w) >> 3);
            } else {
                return p + (__builtin_clzll(w) >> 3);
            }
        }
        p += 8;
    }
    while (p != end && *p < 0x80) {
        ++p;
    }
    return p;
}

}  // namespace

bool Utf8Validator::feed(const uint8_t* data, size_t len) {
    uint32_t s = state_;
    if (s == kRejectOffset) {
        return false;
    }
    const uint8_t* p = data;
    const uint8_t* const end = data + len;
    while (p != end) {
        if (s == kAcceptOffset) {
            p = skipAscii(p, end);
            if (p == end) {
                break;
            }
        }
        // Walk one code point. Mid-sequence states are the offsets above kReject, so a single
        // compare leaves the loop both on a completed code point and on a failure.
        do {
            s = step(s, *p++);
        } while (p != end && s > kRejectOffset);
        if (s == kRejectOffset) {
            break;
        }
    }
    state_ = s;
    return s != kRejectOffset;
}

bool isValidUtf8(const uint8_t* data, size_t len) {
    Utf8Validator v;
    return v.feed(data, len) && v.complete();
}

}  // namespace sb::ws
