// Tests for ws/utf8.h: the classic valid and invalid sequences, fail-fast on the first bad
// byte, incremental feeding, and comparison with a slow arithmetic reference decoder.
#include "ws/utf8.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sb::ws {
namespace {

using Bytes = std::vector<uint8_t>;

enum class Ref { kValid, kIncomplete, kInvalid };

// Reference: decodes code points arithmetically per RFC 3629 §3-4. kIncomplete means the input
// ends inside a code point that some continuation bytes could still complete validly.
Ref reference(const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t b = p[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return Ref::kInvalid;
        }
        const uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        size_t j = 1;
        for (; j < len && i + j < n; ++j) {
            if ((p[i + j] & 0xC0) != 0x80) {
                return Ref::kInvalid;
            }
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (j < len) {
            // Truncated at the end: does any completion give an allowed code point?
            const unsigned missing_bits = 6 * static_cast<unsigned>(len - j);
            const uint32_t lo = cp << missing_bits;
            const uint32_t hi = lo | ((1u << missing_bits) - 1);
            for (uint32_t c = std::max(lo, min_cp); c <= std::min(hi, 0x10FFFFu); ++c) {
                if (c < 0xD800 || c > 0xDFFF) {
                    return Ref::kIncomplete;
                }
                c = 0xDFFF;  // skip the surrogate block
            }
            return Ref::kInvalid;
        }
        if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return Ref::kInvalid;
        }
        i += len;
    }
    return Ref::kValid;
}

bool valid(const Bytes& b) {
    return isValidUtf8(b.data(), b.size());
}

// Feeds b one byte at a time and checks, after every byte, that the validator agrees with the
// reference on that prefix (fail-fast: false exactly when no completion can be valid).
void expectPrefixesMatchReference(const Bytes& b) {
    Utf8Validator v;
    bool failed = false;
    for (size_t k = 1; k <= b.size(); ++k) {
        const Ref r = reference(b.data(), k);
        const bool ok = v.feed(&b[k - 1], 1);
        if (failed) {
            ASSERT_FALSE(ok) << "failure must be sticky";
            continue;
        }
        ASSERT_EQ(ok, r != Ref::kInvalid) << "prefix length " << k;
        if (ok) {
            ASSERT_EQ(v.complete(), r == Ref::kValid) << "prefix length " << k;
        }
        failed = !ok;
    }
}

TEST(Utf8Test, ValidBoundaryCodePoints) {
    const std::vector<Bytes> cases = {
        {},
        {'a'},
        {0x00},
        {0x7F},
        {0xC2, 0x80},              // U+0080
        {0xDF, 0xBF},              // U+07FF
        {0xE0, 0xA0, 0x80},        // U+0800
        {0xED, 0x9F, 0xBF},        // U+D7FF, last before the surrogates
        {0xEE, 0x80, 0x80},        // U+E000, first after
        {0xEF, 0xBF, 0xBD},        // U+FFFD
        {0xEF, 0xBF, 0xBF},        // U+FFFF
        {0xF0, 0x90, 0x80, 0x80},  // U+10000
        {0xF4, 0x8F, 0xBF, 0xBF},  // U+10FFFF
        {0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5},  // "κόσμε"
    };
    for (const Bytes& b : cases) {
        EXPECT_TRUE(valid(b)) << ::testing::PrintToString(b);
        expectPrefixesMatchReference(b);
    }
}

TEST(Utf8Test, InvalidClassicCases) {
    const std::vector<Bytes> cases = {
        {0x80},  // lone continuation
        {0xBF},
        {0xC0, 0xAF},  // overlong '/'
        {0xE0, 0x80, 0xAF},
        {0xF0, 0x80, 0x80, 0xAF},
        {0xC1, 0xBF},  // largest overlongs
        {0xE0, 0x9F, 0xBF},
        {0xF0, 0x8F, 0xBF, 0xBF},
        {0xED, 0xA0, 0x80},                    // U+D800
        {0xED, 0xAD, 0xBF},                    // U+DB7F
        {0xED, 0xBF, 0xBF},                    // U+DFFF
        {0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80},  // surrogate pair encoded as CESU-8
        {0xF4, 0x90, 0x80, 0x80},              // U+110000
        {0xF5, 0x80, 0x80, 0x80},
        {0xF7, 0xBF, 0xBF, 0xBF},              // U+1FFFFF
        {0xF8, 0x88, 0x80, 0x80, 0x80},        // 5-byte form
        {0xFC, 0x84, 0x80, 0x80, 0x80, 0x80},  // 6-byte form
        {0xFE},
        {0xFF},
        {0xC2, 0x41},  // lead followed by ASCII
        {0xE1, 0x80, 0x41},
        {0xC2},  // truncated at the end
        {0xE0, 0xA0},
        {0xF0, 0x90, 0x80},
        {'a', 0xCE, 0xBA, 0x80, 'b'},  // one continuation too many
    };
    for (const Bytes& b : cases) {
        EXPECT_FALSE(valid(b)) << ::testing::PrintToString(b);
        expectPrefixesMatchReference(b);
    }
}

TEST(Utf8Test, FailsOnTheFirstImpossibleByte) {
    struct Case {
        Bytes bytes;
        size_t fail_at;  // index of the byte whose feed returns false
    };
    const std::vector<Case> cases = {
        {{0xC0}, 0},
        {{0xF5}, 0},
        {{0xF4, 0x90}, 1},  // U+110000 known after 2 bytes
        {{0xE0, 0x80}, 1},  // overlong known after 2 bytes
        {{0xED, 0xA0}, 1},  // surrogate known after 2 bytes
        {{0xF0, 0x8F}, 1},
        {{'a', 'b', 0xC2, 'c'}, 3},
        {{0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xF4, 0x90, 0x80, 0x80}, 6},  // Autobahn 6.4.x style
    };
    for (const Case& c : cases) {
        Utf8Validator v;
        for (size_t i = 0; i < c.bytes.size(); ++i) {
            const bool ok = v.feed(&c.bytes[i], 1);
            EXPECT_EQ(ok, i < c.fail_at) << ::testing::PrintToString(c.bytes) << " byte " << i;
        }
    }
}

TEST(Utf8Test, StickyFailureAndReset) {
    Utf8Validator v;
    const uint8_t bad[] = {0xFF};
    const uint8_t ascii[] = {'o', 'k'};
    EXPECT_FALSE(v.feed(bad, 1));
    EXPECT_FALSE(v.feed(ascii, 2));
    EXPECT_FALSE(v.complete());
    v.reset();
    EXPECT_TRUE(v.feed(ascii, 2));
    EXPECT_TRUE(v.complete());
}

TEST(Utf8Test, CodePointSplitAcrossFeeds) {
    const uint8_t cp[] = {0xF0, 0x9F, 0x98, 0x80};  // U+1F600
    for (size_t cut = 0; cut <= 4; ++cut) {
        Utf8Validator v;
        EXPECT_TRUE(v.feed(cp, cut));
        EXPECT_EQ(v.complete(), cut == 0 || cut == 4);
        EXPECT_TRUE(v.feed(cp + cut, 4 - cut));
        EXPECT_TRUE(v.complete());
    }
}

TEST(Utf8Test, EmptyFeedIsNeutral) {
    Utf8Validator v;
    EXPECT_TRUE(v.feed(nullptr, 0));
    EXPECT_TRUE(v.complete());
    EXPECT_TRUE(isValidUtf8(nullptr, 0));
}

// The ASCII fast path works in 64/16/8-byte blocks: put one bad byte (or one multi-byte code
// point) at every position of a long ASCII run, at every buffer alignment.
TEST(Utf8Test, AsciiFastPathFindsEveryPosition) {
    for (size_t align = 0; align < 16; ++align) {
        for (size_t pos = 0; pos < 200; ++pos) {
            Bytes storage(align + 200, 'x');
            uint8_t* b = storage.data() + align;
            b[pos] = 0x80;
            EXPECT_FALSE(isValidUtf8(b, 200)) << "pos " << pos << " align " << align;
            b[pos] = 'x';
            if (pos + 2 <= 200) {
                b[pos] = 0xC3;
                b[pos + 1] = 0xA9;  // é
                EXPECT_TRUE(isValidUtf8(b, 200)) << "pos " << pos << " align " << align;
                EXPECT_FALSE(isValidUtf8(b, pos + 1)) << "cut inside the code point";
            }
        }
    }
}

// Every 1- and 2-byte string, then 3- and 4-byte strings over all lead bytes and the bytes at
// the class boundaries, prefix by prefix, against the reference.
TEST(Utf8Test, MatchesReferenceExhaustively) {
    for (unsigned a = 0; a < 256; ++a) {
        for (unsigned b = 0; b < 256; ++b) {
            const Bytes s = {static_cast<uint8_t>(a), static_cast<uint8_t>(b)};
            ASSERT_EQ(valid(s), reference(s.data(), 2) == Ref::kValid) << a << " " << b;
            Utf8Validator v;
            ASSERT_EQ(v.feed(s.data(), 1), reference(s.data(), 1) != Ref::kInvalid) << a;
        }
    }
    const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                             0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    for (unsigned a = 0; a < 256; ++a) {
        for (uint8_t b : edges) {
            for (uint8_t c : edges) {
                for (uint8_t d : edges) {
                    const Bytes s = {static_cast<uint8_t>(a), b, c, d};
                    Utf8Validator v;
                    bool ok = true;
                    for (size_t k = 0; k < 4; ++k) {
                        ok = v.feed(&s[k], 1);
                        const Ref r = reference(s.data(), k + 1);
                        ASSERT_EQ(ok, r != Ref::kInvalid) << ::testing::PrintToString(s) << k;
                        ASSERT_EQ(ok && v.complete(), r == Ref::kValid)
                            << ::testing::PrintToString(s) << k;
                    }
                }
            }
        }
    }
}

// Random text (ASCII runs and code points of every length), sometimes corrupted, fed whole and
// in random pieces: every way gives the reference's answer.
TEST(Utf8Test, RandomTextAndSplitsMatchReference) {
    std::mt19937 rng(6455);
    auto encode = [](uint32_t cp, Bytes* out) {
        if (cp < 0x80) {
            out->push_back(static_cast<uint8_t>(cp));
        } else if (cp < 0x800) {
            out->push_back(static_cast<uint8_t>(0xC0 | (cp >> 6)));
            out->push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out->push_back(static_cast<uint8_t>(0xE0 | (cp >> 12)));
            out->push_back(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
        } else {
            out->push_back(static_cast<uint8_t>(0xF0 | (cp >> 18)));
            out->push_back(static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F)));
            out->push_back(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
        }
    };
    for (int iter = 0; iter < 3000; ++iter) {
        Bytes s;
        const int parts = static_cast<int>(rng() % 40);
        for (int i = 0; i < parts; ++i) {
            switch (rng() % 4) {
                case 0:
                    s.insert(s.end(), rng() % 70, 'a');
                    break;
                case 1:
                    encode(0x80 + rng() % (0x800 - 0x80), &s);
                    break;
                case 2: {
                    uint32_t cp = 0x800 + rng() % (0x10000 - 0x800);
                    encode(cp >= 0xD800 && cp <= 0xDFFF ? cp + 0x800 : cp, &s);
                    break;
                }
                default:
                    encode(0x10000 + rng() % (0x110000 - 0x10000), &s);
                    break;
            }
        }
        if (!s.empty() && rng() % 2 == 0) {
            s[rng() % s.size()] = static_cast<uint8_t>(rng());
        }
        const bool expected = reference(s.data(), s.size()) == Ref::kValid;
        ASSERT_EQ(valid(s), expected) << ::testing::PrintToString(s);
        Utf8Validator v;
        size_t pos = 0;
        bool ok = true;
        while (pos < s.size()) {
            const size_t n = std::min<size_t>(s.size() - pos, rng() % 20);
            ok = v.feed(s.data() + pos, n) && ok;
            pos += n;
        }
        ASSERT_EQ(ok && v.complete(), expected) << ::testing::PrintToString(s);
    }
}

}  // namespace
}  // namespace sb::ws
