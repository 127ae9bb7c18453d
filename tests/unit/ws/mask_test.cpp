// Tests for ws/mask.h: the word-wide masking against a byte-by-byte reference at every key
// phase, length 0..100 and buffer alignment, plus payloads unmasked piece by piece.
#include "ws/mask.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace sb::ws {
namespace {

using Bytes = std::vector<uint8_t>;

// RFC 6455 §5.3: transformed-octet-i = original-octet-i XOR masking-key-octet-(i MOD 4).
void referenceMask(uint8_t* data, size_t len, const uint8_t key[4], size_t offset) {
    for (size_t i = 0; i < len; ++i) {
        data[i] ^= key[(offset + i) % 4];
    }
}

Bytes randomBytes(std::mt19937& rng, size_t n) {
    Bytes b(n);
    for (auto& x : b) {
        x = static_cast<uint8_t>(rng());
    }
    return b;
}

TEST(MaskTest, ApplyMaskMatchesReferenceAtAllOffsetsLengthsAlignments) {
    std::mt19937 rng(42);
    const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    for (size_t offset = 0; offset < 4; ++offset) {
        for (size_t len = 0; len <= 100; ++len) {
            for (size_t align = 0; align < 8; ++align) {
                // Guard bytes around the payload catch writes outside it.
                Bytes buf = randomBytes(rng, align + len + 8);
                Bytes expected = buf;
                referenceMask(expected.data() + align, len, key, offset);
                const size_t phase = applyMask(buf.data() + align, len, key, offset);
                ASSERT_EQ(buf, expected) << "offset " << offset << " len " << len;
                ASSERT_EQ(phase, (offset + len) & 3);
            }
        }
    }
}

TEST(MaskTest, CopyMaskedMatchesReference) {
    std::mt19937 rng(7);
    const uint8_t key[4] = {0x01, 0x80, 0xFF, 0x5A};
    for (size_t len = 0; len <= 100; ++len) {
        for (size_t align = 0; align < 8; ++align) {
            const Bytes src = randomBytes(rng, align + len);
            Bytes dst(align + len + 8, 0xEE);
            Bytes expected = dst;
            for (size_t i = 0; i < len; ++i) {
                expected[align + i] = src[align + i] ^ key[i % 4];
            }
            copyMasked(dst.data() + align, src.data() + align, len, key);
            ASSERT_EQ(dst, expected) << "len " << len << " align " << align;
        }
    }
}

TEST(MaskTest, MaskingTwiceRestores) {
    std::mt19937 rng(1);
    const uint8_t key[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    const Bytes original = randomBytes(rng, 4099);
    Bytes b = original;
    applyMask(b.data(), b.size(), key, 0);
    EXPECT_NE(b, original);
    applyMask(b.data(), b.size(), key, 0);
    EXPECT_EQ(b, original);
}

// A payload split across reads is unmasked piece by piece, chaining the returned phase.
TEST(MaskTest, PiecewiseEqualsWhole) {
    std::mt19937 rng(99);
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    for (int iter = 0; iter < 200; ++iter) {
        const Bytes original = randomBytes(rng, rng() % 300);
        Bytes whole = original;
        applyMask(whole.data(), whole.size(), key, 0);
        Bytes pieces = original;
        size_t pos = 0;
        size_t phase = 0;
        while (pos < pieces.size()) {
            const size_t n = std::min<size_t>(pieces.size() - pos, rng() % 40);
            phase = applyMask(pieces.data() + pos, n, key, phase);
            pos += n;
        }
        ASSERT_EQ(pieces, whole);
        ASSERT_EQ(phase, original.size() & 3);
    }
}

TEST(MaskTest, LargeBuffer) {
    std::mt19937 rng(5);
    const uint8_t key[4] = {0xA5, 0x5A, 0x0F, 0xF0};
    Bytes buf = randomBytes(rng, 70000);
    Bytes expected = buf;
    referenceMask(expected.data() + 3, buf.size() - 3, key, 2);
    applyMask(buf.data() + 3, buf.size() - 3, key, 2);
    EXPECT_EQ(buf, expected);
}

}  // namespace
}  // namespace sb::ws
