// The NATS engine's own formats (engines/nats/codec.h): subject tokens for any bytes, stream
// names, session records and node registrations. Client-supplied bytes travel in all of them:
// every byte value round-trips, one name has one spelling, and no input crashes a decoder.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engines/nats/codec.h"

namespace sb::engines::nats {
namespace {

using broker::SessionRecord;
using broker::StreamPos;

bool keptByte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

// What NATS reads as subject structure, or refuses in a subject or KV key.
void expectSafeToken(const std::string& t, const std::string& raw) {
    EXPECT_FALSE(t.empty()) << "raw: " << testing::PrintToString(raw);
    for (const char ch : t) {
        const auto c = static_cast<unsigned char>(ch);
        EXPECT_TRUE(keptByte(c) || c == '=') << "byte " << int(c) << " in token " << t;
        EXPECT_NE(ch, '.');
        EXPECT_NE(ch, '*');
        EXPECT_NE(ch, '>');
        EXPECT_FALSE(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v');
    }
}

TEST(NatsCodec, EveryByteValueRoundTrips) {
    for (int b = 0; b < 256; ++b) {
        const std::string raw(1, static_cast<char>(b));
        const std::string t = encodeToken(raw);
        expectSafeToken(t, raw);
        if (keptByte(static_cast<unsigned char>(b))) {
            EXPECT_EQ(t, raw);
        } else {
            ASSERT_EQ(t.size(), 3u) << b;
            EXPECT_EQ(t[0], '=');
        }
        auto back = decodeToken(t);
        ASSERT_TRUE(back.has_value()) << b;
        EXPECT_EQ(*back, raw) << b;
        // Inside a longer name too.
        const std::string longer = "a" + raw + "b" + raw;
        auto back2 = decodeToken(encodeToken(longer));
        ASSERT_TRUE(back2.has_value()) << b;
        EXPECT_EQ(*back2, longer);
    }
}

TEST(NatsCodec, KnownSpellings) {
    EXPECT_EQ(encodeToken(""), "=");
    EXPECT_EQ(decodeToken("="), std::string());
    EXPECT_EQ(encodeToken("chat:room.1"), "chat=3Aroom=2E1");
    EXPECT_EQ(encodeToken("a b*>"), "a=20b=2A=3E");
    EXPECT_EQ(encodeToken("="), "=3D");
    EXPECT_EQ(encodeToken(std::string("\0\xff", 2)), "=00=FF");
    EXPECT_EQ(decodeToken("Az09_-"), "Az09_-");
}

TEST(NatsCodec, RandomStringsRoundTrip) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> len(0, 64);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> small(0, 7);
    const std::string alphabet = "=.*> \t:/aZ09_-\x80\xff";
    for (int i = 0; i < 5000; ++i) {
        std::string raw;
        const int n = len(rng);
        for (int j = 0; j < n; ++j) {
            // Half the strings from an alphabet of troublemakers, half from all bytes.
            raw.push_back(i % 2 == 0 ? alphabet[static_cast<size_t>(small(rng)) % alphabet.size()]
                                     : static_cast<char>(byte(rng)));
        }
        const std::string t = encodeToken(raw);
        expectSafeToken(t, raw);
        auto back = decodeToken(t);
        ASSERT_TRUE(back.has_value()) << testing::PrintToString(raw);
        ASSERT_EQ(*back, raw);
        // One spelling per name: what decodes encodes back to the same token.
        ASSERT_EQ(encodeToken(*back), t);
    }
}

TEST(NatsCodec, MalformedTokensAreRefused) {
    for (std::string_view bad : {
             "",       // empty is spelled "="
             "a=",     // lone '=' at the end
             "=a",     // truncated escape
             "=2",     // truncated escape
             "ab=2",   // truncated escape at the end
             "==",     //
             "=3d",    // lower-case hex: not produced, not accepted
             "=2e",    //
             "=aB",    //
             "=G0",    // not hex
             "=0G",    //
             "=41",    // 'A' escaped: a kept byte has one spelling
             "=61",    // 'a'
             "=30",    // '0'
             "=5F",    // '_'
             "=2D",    // '-'
             "a.b",    // subject structure
             "a*",     //
             ">",      //
             "a b",    //
             "a\tb",   //
             "\xff",   // raw high byte
             "=3D=",   // valid escape, then a lone '='
             "x==3D",  //
         }) {
        EXPECT_FALSE(decodeToken(bad).has_value()) << testing::PrintToString(std::string(bad));
    }
    // The escapes of the bytes that are not kept are accepted, upper case only.
    EXPECT_EQ(decodeToken("=3D"), "=");
    EXPECT_EQ(decodeToken("=2E=2A=3E=20"), ".*> ");
}

TEST(NatsCodec, EveryTwoByteTokenDecodesConsistently) {
    // Exhaustive over short tokens: a success always re-encodes to the input.
    for (int a = 0; a < 256; ++a) {
        for (int b = 0; b < 256; ++b) {
            const std::string t{static_cast<char>(a), static_cast<char>(b)};
            if (auto d = decodeToken(t)) {
                ASSERT_EQ(encodeToken(*d), t) << a << "," << b;
            }
        }
    }
    const std::string hex = "0123456789ABCDEFabcdefG";
    for (const char h : hex) {
        for (const char l : hex) {
            const std::string t{'=', h, l};
            if (auto d = decodeToken(t)) {
                ASSERT_EQ(encodeToken(*d), t) << t;
            }
        }
    }
}

TEST(NatsCodec, HexNamesAreLowerCaseHex) {
    EXPECT_EQ(hexName(""), "");
    EXPECT_EQ(hexName("chat"), "63686174");
    EXPECT_EQ(hexName(std::string("\0\xff\x10", 3)), "00ff10");
    // Distinct names stay distinct, and only [0-9a-f] is produced.
    std::string all;
    for (int b = 0; b < 256; ++b) {
        all.push_back(static_cast<char>(b));
    }
    const std::string h = hexName(all);
    ASSERT_EQ(h.size(), 512u);
    EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(hexName("ab"), hexName("ba"));
}

SessionRecord sampleSession() {
    SessionRecord rec;
    rec.owner = std::string("al:ice\n\0", 8);
    rec.holder = "3fa2c1d0:17";
    rec.ttl_ms = 300'000;
    rec.channels = {{"chat:a", StreamPos{"e_0123456789ab", 7}},
                    {std::string("odd:1:2:\0", 9), StreamPos{"", 0}},
                    {"", StreamPos{"e_x", UINT64_MAX}}};
    return rec;
}

void expectSameSession(const SessionRecord& a, const SessionRecord& b) {
    EXPECT_EQ(a.owner, b.owner);
    EXPECT_EQ(a.holder, b.holder);
    EXPECT_EQ(a.ttl_ms, b.ttl_ms);
    ASSERT_EQ(a.channels.size(), b.channels.size());
    for (size_t i = 0; i < a.channels.size(); ++i) {
        EXPECT_EQ(a.channels[i].first, b.channels[i].first);
        EXPECT_EQ(a.channels[i].second, b.channels[i].second);
    }
}

TEST(NatsCodec, SessionRecordsRoundTrip) {
    const SessionRecord rec = sampleSession();
    const std::string v = encodeSession(rec, 1'700'000'000'123);
    auto back = decodeSession(v);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->expires_ms, 1'700'000'000'123u);
    expectSameSession(back->rec, rec);
    // Empty record: no channels, anonymous.
    auto empty = decodeSession(encodeSession(SessionRecord{}, 0));
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->rec.owner.empty());
    EXPECT_TRUE(empty->rec.channels.empty());
    EXPECT_EQ(empty->expires_ms, 0u);
}

TEST(NatsCodec, MalformedSessionRecordsAreRefused) {
    for (std::string_view bad : {
             "",                             // nothing
             "5:alice",                      // no holder
             "5:alice1:h",                   // no ttl
             "5:alice1:h2:10",               // no expiry
             "5:alice1:h1:x1:0",             // ttl not a number
             "5:alice1:h2:-11:0",            // negative
             "5:alice1:h1:01:",              // expiry truncated
             "5:alice1:h0:1:0",              // empty number
             "5:alice1:h1:01:06:chat:a",     // a channel without epoch and offset
             "5:alice1:h1:01:06:chat:a1:e",  // without offset
             "5:alice1:h1:01:06:chat:a1:e1:x",
             "9:alice",                               // length past the end
             "x:alice",                               // not a length
             ":alice",                                //
             "5alice",                                // no colon
             "99999999999:alice",                     // length far past the end
             "5:alice1:h20:184467440737095516161:0",  // ttl overflows uint64
         }) {
        EXPECT_FALSE(decodeSession(bad).has_value()) << testing::PrintToString(std::string(bad));
    }
}

TEST(NatsCodec, NodeEntriesRoundTrip) {
    const NodeEntry n{"host-1:4242", 12345, 1'700'000'000'000};
    auto back = decodeNode(encodeNode(n));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->name, n.name);
    EXPECT_EQ(back->connections, n.connections);
    EXPECT_EQ(back->seen_ms, n.seen_ms);
    const NodeEntry odd{std::string("a:b\n\0:", 6), 0, UINT64_MAX};
    auto back2 = decodeNode(encodeNode(odd));
    ASSERT_TRUE(back2.has_value());
    EXPECT_EQ(back2->name, odd.name);
    EXPECT_EQ(back2->seen_ms, UINT64_MAX);
    for (std::string_view bad : {"", "reap:3fa2c1d0", "1:a1:0", "1:a1:01:0x", "1:a1:x1:0",
                                 "1:a1:01:01:0", "2:a1:01:0", "1:a0:1:0"}) {
        EXPECT_FALSE(decodeNode(bad).has_value()) << testing::PrintToString(std::string(bad));
    }
}

// Every prefix of a valid value, and every one-byte corruption of it: no crash, and a success is
// a value that encodes to what was decoded (nothing read past the input, nothing invented).
TEST(NatsCodec, TruncatedAndCorruptedValuesNeverCrash) {
    const std::string session = encodeSession(sampleSession(), 42);
    const std::string node = encodeNode(NodeEntry{"n:1", 3, 99});
    for (size_t i = 0; i <= session.size(); ++i) {
        const std::string_view cut(session.data(), i);
        if (auto s = decodeSession(cut)) {
            EXPECT_EQ(encodeSession(s->rec, s->expires_ms), cut) << i;
        }
    }
    for (size_t i = 0; i <= node.size(); ++i) {
        const std::string_view cut(node.data(), i);
        auto n = decodeNode(cut);
        if (i < node.size()) {
            EXPECT_FALSE(n.has_value()) << i;  // every field is required
        } else {
            EXPECT_TRUE(n.has_value());
        }
    }
    for (const std::string* v : {&session, &node}) {
        for (size_t i = 0; i < v->size(); ++i) {
            for (const char c : {'\0', ':', '0', '9', 'x', '\xff'}) {
                std::string bad = *v;
                bad[i] = c;
                if (auto s = decodeSession(bad)) {
                    (void)encodeSession(s->rec, s->expires_ms);
                }
                if (auto n = decodeNode(bad)) {
                    (void)encodeNode(*n);
                }
            }
        }
    }
    const std::string token = encodeToken("chat:\xff.room");
    for (size_t i = 0; i <= token.size(); ++i) {
        if (auto d = decodeToken(std::string_view(token.data(), i))) {
            EXPECT_EQ(encodeToken(*d), token.substr(0, i));
        }
    }
}

}  // namespace
}  // namespace sb::engines::nats
