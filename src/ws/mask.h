// RFC 6455 §5.3 payload masking: XOR with a 4-byte key, a word (or 16 bytes with SSE2) at a
// time. Used in place by the reader (server role) and as copy+mask by the client writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sb::ws {
namespace detail {

// The key rotated to start at phase `offset`, repeated to 8 bytes in memory order, so that
// XOR-ing any 8-byte-aligned-to-the-payload word with it masks it whatever the endianness.
inline uint64_t rotatedKey(const uint8_t key[4], size_t offset) {
    uint8_t k[8];
    for (size_t i = 0; i < 8; ++i) {
        k[i] = key[(offset + i) & 3];
    }
    uint64_t w;
    std::memcpy(&w, k, 8);
    return w;
}

// dst[i] = src[i] ^ key8[i % 8] for i < len; dst may equal src. Returns nothing: callers derive
// the phase themselves. memcpy loads/stores compile to plain unaligned moves.
inline void xorKey(uint8_t* dst, const uint8_t* src, size_t len, uint64_t key8) {
    size_t i = 0;
#if defined(__SSE2__)
    if (len >= 16) {
        const __m128i k = _mm_set1_epi64x(static_cast<long long>(key8));
        for (; i + 64 <= len; i += 64) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
            const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
            const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_xor_si128(a, k));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm_xor_si128(b, k));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 32), _mm_xor_si128(c, k));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 48), _mm_xor_si128(d, k));
        }
        for (; i + 16 <= len; i += 16) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_xor_si128(a, k));
        }
    }
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        std::memcpy(&w, src + i, 8);
        w ^= key8;
        std::memcpy(dst + i, &w, 8);
    }
    if (i + 4 <= len) {
        uint32_t w;
        uint32_t k;
        std::memcpy(&w, src + i, 4);
        std::memcpy(&k, &key8, 4);
        w ^= k;
        std::memcpy(dst + i, &w, 4);
        i += 4;
    }
    // i is a multiple of 4 here, so the key phase of byte i is 0 again: at most 3 edge bytes.
    const auto* k = reinterpret_cast<const uint8_t*>(&key8);
    for (size_t j = 0; i < len; ++i, ++j) {
        dst[i] = static_cast<uint8_t>(src[i] ^ k[j]);
    }
}

}  // namespace detail

// XORs data with the 4-byte key starting at key phase `offset` (0..3), so a payload split
// across reads is unmasked piece by piece. Returns the phase for the next piece,
// (offset + len) & 3.
inline size_t applyMask(uint8_t* data, size_t len, const uint8_t key[4], size_t offset) {
    detail::xorKey(data, data, len, detail::rotatedKey(key, offset));
    return (offset + len) & 3;
}

// dst = src masked with key from phase 0 (client writer: payload copied straight into the
// output buffer). dst and src must not overlap unless equal.
inline void copyMasked(uint8_t* dst, const uint8_t* src, size_t len, const uint8_t key[4]) {
    detail::xorKey(dst, src, len, detail::rotatedKey(key, 0));
}

}  // namespace sb::ws
