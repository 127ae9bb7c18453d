// Tests for ws/sha1.h: the FIPS 180-4 / RFC 3174 test vectors, the RFC 6455 accept-key example,
// input fed byte by byte and in random splits, and agreement with libcrypto's SHA-1 on every
// length around the block and padding boundaries.
#include "ws/sha1.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <random>
#include <string>
#include <string_view>

namespace sb::ws {
namespace {

std::string hex(const uint8_t* d, size_t n) {
    static const char* kDigits = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        s += kDigits[d[i] >> 4];
        s += kDigits[d[i] & 15];
    }
    return s;
}

std::string sha1Hex(std::string_view in) {
    Sha1 h;
    h.update(in.data(), in.size());
    uint8_t out[Sha1::kDigestSize];
    h.finish(out);
    return hex(out, sizeof out);
}

TEST(Sha1, StandardVectors) {
    EXPECT_EQ(sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(sha1Hex(std::string(1'000'000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Sha1, WebSocketAcceptKeyExample) {
    // RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" hashes (with the GUID) to the digest whose
    // base64 is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    EXPECT_EQ(sha1Hex("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
              "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
}

TEST(Sha1, SplitsGiveTheSameDigest) {
    std::mt19937 rng(7);
    std::string input(1000, '\0');
    for (char& c : input) {
        c = static_cast<char>(rng());
    }
    const std::string whole = sha1Hex(input);
    {
        Sha1 h;
        for (char c : input) {
            h.update(&c, 1);
        }
        uint8_t out[Sha1::kDigestSize];
        h.finish(out);
        EXPECT_EQ(hex(out, sizeof out), whole);
    }
    for (int round = 0; round < 50; ++round) {
        Sha1 h;
        size_t pos = 0;
        while (pos < input.size()) {
            const size_t n = std::min<size_t>(rng() % 130, input.size() - pos);
            h.update(input.data() + pos, n);
            pos += n;
        }
        uint8_t out[Sha1::kDigestSize];
        h.finish(out);
        EXPECT_EQ(hex(out, sizeof out), whole) << "round " << round;
    }
}

TEST(Sha1, AgreesWithLibcryptoAtEveryLengthUpTo300) {
    std::mt19937 rng(11);
    Sha1 h;
    for (size_t len = 0; len <= 300; ++len) {
        std::string input(len, '\0');
        for (char& c : input) {
            c = static_cast<char>(rng());
        }
        uint8_t ref[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), ref);
        h.reset();  // one object reused, as a caller may
        h.update(input.data(), input.size());
        uint8_t out[Sha1::kDigestSize];
        h.finish(out);
        EXPECT_EQ(hex(out, sizeof out), hex(ref, sizeof ref)) << "length " << len;
    }
}

}  // namespace
}  // namespace sb::ws
