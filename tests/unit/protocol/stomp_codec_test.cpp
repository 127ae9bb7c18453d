// Tests for protocol/stomp_codec.h: every command, content-length and NUL-terminated bodies,
// EOL forms and heart-beats, escaping per version, each limit and each error, and the same
// streams fed whole, byte by byte and in random splits (which must all decode alike).
#include "protocol/stomp_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace sb::protocol::stomp {
namespace {

using namespace std::literals;

struct Decoded {
    std::vector<Frame> frames;
    DecodeError error = DecodeError::kNone;
    uint64_t heartbeats = 0;
};

// Feeds `chunks` in turn (each from an exactly sized heap copy, so ASan sees any overread),
// collecting frames until an error.
Decoded decodeChunks(const std::vector<std::string>& chunks, Limits limits = {},
                     Version v = Version::k12) {
    Decoder d(limits, v);
    Decoded out;
    for (const std::string& c : chunks) {
        auto buf = std::make_unique<char[]>(c.size() + 1);
        std::memcpy(buf.get(), c.data(), c.size());
        std::string_view in(buf.get(), c.size());
        while (true) {
            const DecodeResult r = d.feed(in);
            EXPECT_LE(r.consumed, in.size());
            in.remove_prefix(r.consumed);
            if (r.status == DecodeStatus::kFrame) {
                out.frames.push_back(d.frame());
                continue;
            }
            if (r.status == DecodeStatus::kError) {
                out.error = d.error();
                out.heartbeats = d.heartbeats();
                return out;
            }
            EXPECT_TRUE(in.empty());
            break;
        }
    }
    out.heartbeats = d.heartbeats();
    return out;
}

Decoded decode(const std::string& s, Limits limits = {}, Version v = Version::k12) {
    return decodeChunks({s}, limits, v);
}

std::vector<std::string> byteByByte(const std::string& s) {
    std::vector<std::string> out;
    for (const char ch : s) {
        out.emplace_back(1, ch);
    }
    return out;
}

std::vector<std::string> randomSplits(const std::string& s, std::mt19937& rng) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = std::uniform_int_distribution<size_t>(0, 9)(rng);
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

void expectSame(const Decoded& a, const Decoded& b) {
    ASSERT_EQ(a.frames.size(), b.frames.size());
    EXPECT_EQ(a.error, b.error);
    EXPECT_EQ(a.heartbeats, b.heartbeats);
    for (size_t i = 0; i < a.frames.size(); ++i) {
        EXPECT_EQ(a.frames[i].command, b.frames[i].command);
        EXPECT_EQ(a.frames[i].headers, b.frames[i].headers);
        EXPECT_EQ(a.frames[i].body, b.frames[i].body);
    }
}

// Whole, byte by byte, and 50 random splits decode the same.
void expectSplitInvariant(const std::string& s, Limits limits = {}, Version v = Version::k12) {
    const Decoded whole = decode(s, limits, v);
    expectSame(whole, decodeChunks(byteByByte(s), limits, v));
    std::mt19937 rng(12345);
    for (int i = 0; i < 50; ++i) {
        expectSame(whole, decodeChunks(randomSplits(s, rng), limits, v));
    }
}

// ---- Frames ---------------------------------------------------------------------------------

TEST(StompDecodeTest, ConnectFrame) {
    const auto d =
        decode("CONNECT\naccept-version:1.2,1.1\nhost:example\nheart-beat:1000,2000\n\n\0"s);
    ASSERT_EQ(d.error, DecodeError::kNone);
    ASSERT_EQ(d.frames.size(), 1u);
    const Frame& f = d.frames[0];
    EXPECT_EQ(f.command, Command::kConnect);
    EXPECT_EQ(f.header("accept-version"), "1.2,1.1");
    EXPECT_EQ(f.header("host"), "example");
    EXPECT_EQ(f.header("heart-beat"), "1000,2000");
    EXPECT_FALSE(f.header("login").has_value());
    EXPECT_TRUE(f.body.empty());
}

TEST(StompDecodeTest, EveryCommandRoundTrips) {
    for (uint8_t i = 0; i <= static_cast<uint8_t>(Command::kError); ++i) {
        const auto c = static_cast<Command>(i);
        EXPECT_EQ(commandFromName(commandName(c)), c);
        std::string wire;
        const HeaderView h[] = {{"receipt", "r-1"}};
        encodeFrame(&wire, c, h, "body", Version::k12);
        const auto d = decode(wire);
        ASSERT_EQ(d.frames.size(), 1u) << commandName(c);
        EXPECT_EQ(d.frames[0].command, c);
        EXPECT_EQ(d.frames[0].header("receipt"), "r-1");
        EXPECT_EQ(d.frames[0].header("content-length"), "4");
        EXPECT_EQ(d.frames[0].body, "body");
    }
    EXPECT_TRUE(isClientCommand(Command::kSend));
    EXPECT_TRUE(isClientCommand(Command::kDisconnect));
    EXPECT_FALSE(isClientCommand(Command::kMessage));
    EXPECT_FALSE(commandFromName("send").has_value());  // case-sensitive
}

TEST(StompDecodeTest, NulTerminatedBody) {
    const auto d = decode("SEND\ndestination:/topic/a.b\n\nhello world\0"s);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].body, "hello world");
}

TEST(StompDecodeTest, ContentLengthBodyMayHoldNul) {
    const auto d = decode("SEND\ncontent-length:5\n\na\0b\0c\0"s);
    ASSERT_EQ(d.error, DecodeError::kNone);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].body, "a\0b\0c"s);
}

TEST(StompDecodeTest, ZeroContentLength) {
    const auto d = decode("SEND\ncontent-length:0\n\n\0"s);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_TRUE(d.frames[0].body.empty());
}

TEST(StompDecodeTest, CrLfEolsAndHeartbeats) {
    const std::string s =
        "\n\r\n\nSUBSCRIBE\r\nid:0\r\ndestination:/topic/x\r\nack:client\r\n\r\n\0\r\n\n"
        "\nUNSUBSCRIBE\nid:0\n\n\0\n"s;
    const auto d = decode(s);
    ASSERT_EQ(d.error, DecodeError::kNone);
    ASSERT_EQ(d.frames.size(), 2u);
    EXPECT_EQ(d.frames[0].command, Command::kSubscribe);
    EXPECT_EQ(d.frames[0].header("ack"), "client");
    EXPECT_EQ(d.frames[0].header("destination"), "/topic/x");
    EXPECT_EQ(d.frames[1].command, Command::kUnsubscribe);
    EXPECT_EQ(d.heartbeats, 7u);
    expectSplitInvariant(s);
}

TEST(StompDecodeTest, OnlyHeartbeatsIsNoFrame) {
    const auto d = decode("\n\n\r\n");
    EXPECT_TRUE(d.frames.empty());
    EXPECT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.heartbeats, 3u);
}

TEST(StompDecodeTest, RepeatedHeaderFirstWins) {
    const auto d = decode("SEND\ndestination:/topic/a\ndestination:/topic/b\n\n\0"s);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].header("destination"), "/topic/a");
    EXPECT_EQ(d.frames[0].headers.size(), 2u);
}

TEST(StompDecodeTest, ValueMayHoldColonsAndBeEmpty) {
    const auto d = decode("SEND\ndestination:/topic/chat:room:1\nempty:\n\n\0"s);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].header("destination"), "/topic/chat:room:1");
    EXPECT_EQ(d.frames[0].header("empty"), "");
}

TEST(StompDecodeTest, SeveralFramesInOneFeedAndSplits) {
    std::string s;
    for (int i = 0; i < 20; ++i) {
        const std::string body = std::string(static_cast<size_t>(i * 7), 'x') + "\0y"s;
        const std::string n = std::to_string(i);
        const HeaderView h[] = {{"destination", "/topic/a.b"}, {"n", n}};
        encodeFrame(&s, Command::kSend, h, body, Version::k12);
        s += i % 3 == 0 ? "\n" : i % 3 == 1 ? "\r\n" : "";
        // and one NUL-terminated frame without content-length
        s += "ACK\nid:" + std::to_string(i) + "\n\n" + '\0';
    }
    const auto d = decode(s);
    ASSERT_EQ(d.error, DecodeError::kNone);
    ASSERT_EQ(d.frames.size(), 40u);
    EXPECT_EQ(d.frames[2].body, std::string(7, 'x') + "\0y"s);
    EXPECT_EQ(d.frames[3].header("id"), "1");
    expectSplitInvariant(s);
}

// ---- Escaping -------------------------------------------------------------------------------

TEST(StompEscapeTest, Version12Unescapes) {
    const auto d = decode("SEND\nk\\cey:a\\nb\\cc\\\\d\\re\n\n\0"s);
    ASSERT_EQ(d.error, DecodeError::kNone);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].headers[0].first, "k:ey");
    EXPECT_EQ(d.frames[0].headers[0].second, "a\nb:c\\d\re");
}

TEST(StompEscapeTest, Version11HasNoCrEscape) {
    const auto ok = decode("SEND\nk:a\\nb\\c\\\\\n\n\0"s, {}, Version::k11);
    ASSERT_EQ(ok.frames.size(), 1u);
    EXPECT_EQ(ok.frames[0].header("k"), "a\nb:\\");
    EXPECT_EQ(decode("SEND\nk:a\\r\n\n\0"s, {}, Version::k11).error, DecodeError::kBadEscape);
}

TEST(StompEscapeTest, Version10IsRaw) {
    const auto d = decode("SEND\nk:a\\nb\\t\n\n\0"s, {}, Version::k10);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].header("k"), "a\\nb\\t");
}

TEST(StompEscapeTest, ConnectIsNeverUnescaped) {
    const auto d = decode("CONNECT\nlogin:a\\b\npasscode:x\\y\n\n\0"s, {}, Version::k12);
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.frames[0].header("login"), "a\\b");
    EXPECT_EQ(decode("STOMP\nlogin:a\\q\n\n\0"s).frames.size(), 1u);
}

TEST(StompEscapeTest, UndefinedEscapesAreErrors) {
    EXPECT_EQ(decode("SEND\nk:a\\t\n\n\0"s).error, DecodeError::kBadEscape);
    EXPECT_EQ(decode("SEND\nk:a\\\n\n\0"s).error, DecodeError::kBadEscape);
    EXPECT_EQ(decode("SEND\nk\\x:a\n\n\0"s).error, DecodeError::kBadEscape);
}

TEST(StompEscapeTest, EncoderEscapesPerVersion) {
    const HeaderView h[] = {{"message", "a:b\nc\\d\re"}};
    std::string v12, v11, v10, connected;
    encodeFrame(&v12, Command::kError, h, "", Version::k12);
    encodeFrame(&v11, Command::kError, h, "", Version::k11);
    encodeFrame(&v10, Command::kError, h, "", Version::k10);
    encodeFrame(&connected, Command::kConnected, h, "", Version::k12);
    EXPECT_EQ(v12, "ERROR\nmessage:a\\cb\\nc\\\\d\\re\n\n\0"s);
    EXPECT_EQ(v11, "ERROR\nmessage:a\\cb\\nc\\\\d e\n\n\0"s);
    EXPECT_EQ(v10, "ERROR\nmessage:a:b c\\d e\n\n\0"s);
    EXPECT_EQ(connected, "CONNECTED\nmessage:a:b c\\d e\n\n\0"s);
    // What the encoder escapes, the decoder reads back.
    const auto d = decode(v12);
    ASSERT_EQ(d.frames.size(), 1u);
    EXPECT_EQ(d.frames[0].header("message"), "a:b\nc\\d\re");
}

TEST(StompEscapeTest, NulInHeaderValueIsReplaced) {
    std::string s;
    const HeaderView h[] = {{"k", "a\0b"sv}};
    encodeFrame(&s, Command::kMessage, h, "", Version::k12);
    EXPECT_EQ(s, "MESSAGE\nk:a b\n\n\0"s);
}

// ---- Errors and limits ------------------------------------------------------------------------

TEST(StompErrorTest, UnknownCommand) {
    EXPECT_EQ(decode("HELLO\n\n\0"s).error, DecodeError::kUnknownCommand);
    EXPECT_EQ(decode("send\n\n\0"s).error, DecodeError::kUnknownCommand);
    // A long first line stops at the command cap, before its end arrives.
    const auto d = decodeChunks({std::string(100, 'A')});
    EXPECT_EQ(d.error, DecodeError::kUnknownCommand);
    EXPECT_EQ(decode("{\"type\":\"connect\"}").error, DecodeError::kUnknownCommand);
}

TEST(StompErrorTest, HeaderErrors) {
    EXPECT_EQ(decode("SEND\nnocolon\n\n\0"s).error, DecodeError::kHeaderWithoutColon);
    EXPECT_EQ(decode("SEND\n:value\n\n\0"s).error, DecodeError::kEmptyHeaderName);
    EXPECT_EQ(decode("SEND\nk:a\rb\n\n\0"s).error, DecodeError::kBareCr);
    EXPECT_EQ(decode("SEND\nk:a\0b\n\n\0"s).error, DecodeError::kNulInHead);
    EXPECT_EQ(decode("SE\0ND\n\n\0"s).error, DecodeError::kNulInHead);
    EXPECT_EQ(decode("\rSEND\n\n\0"s).error, DecodeError::kBareCr);
}

TEST(StompErrorTest, ContentLengthErrors) {
    EXPECT_EQ(decode("SEND\ncontent-length:abc\n\n\0"s).error, DecodeError::kBadContentLength);
    EXPECT_EQ(decode("SEND\ncontent-length:\n\n\0"s).error, DecodeError::kBadContentLength);
    EXPECT_EQ(decode("SEND\ncontent-length:-1\n\n\0"s).error, DecodeError::kBadContentLength);
    EXPECT_EQ(decode("SEND\ncontent-length: 3\n\nabc\0"s).error, DecodeError::kBadContentLength);
    EXPECT_EQ(decode("SEND\ncontent-length:99999999999999999999999\n\n\0"s).error,
              DecodeError::kBodyTooLarge);
    EXPECT_EQ(decode("SEND\ncontent-length:2\n\nabc\0"s).error, DecodeError::kMissingNul);
}

TEST(StompErrorTest, LimitsAtTheirEdges) {
    Limits lim;
    lim.max_headers = 3;
    lim.max_header_bytes = 10;
    lim.max_body_bytes = 4;
    // Exactly at each limit: accepted.
    const auto at = decode("SEND\na:1\nb:2\nk:12345678\n\n1234\0"s, lim);
    ASSERT_EQ(at.error, DecodeError::kNone);
    ASSERT_EQ(at.frames.size(), 1u);
    EXPECT_EQ(decode("SEND\nk:12345678\r\n\n\0"s, lim).error, DecodeError::kNone);  // CR is EOL
    Limits long_lines = lim;
    long_lines.max_header_bytes = 100;
    EXPECT_EQ(decode("SEND\ncontent-length:4\n\n1234\0"s, long_lines).error, DecodeError::kNone);
    // One past: refused.
    EXPECT_EQ(decode("SEND\na:1\nb:2\nc:3\nd:4\n\n\0"s, lim).error, DecodeError::kTooManyHeaders);
    EXPECT_EQ(decode("SEND\nk:123456789\n\n\0"s, lim).error, DecodeError::kHeaderTooLong);
    EXPECT_EQ(decode("SEND\n\n12345\0"s, lim).error, DecodeError::kBodyTooLarge);
    EXPECT_EQ(decode("SEND\ncontent-length:5\n\n12345\0"s, long_lines).error,
              DecodeError::kBodyTooLarge);
    // A body past the limit is refused before it ends (nothing more is buffered).
    EXPECT_EQ(decodeChunks({"SEND\n\n", "123", "45"}, lim).error, DecodeError::kBodyTooLarge);
    // A header line past the limit is refused before its LF arrives.
    EXPECT_EQ(decodeChunks({"SEND\nk:1234", "56789012"}, lim).error, DecodeError::kHeaderTooLong);
}

TEST(StompErrorTest, ErrorIsSticky) {
    Decoder d;
    const DecodeResult r = d.feed("BOGUS\n\n"s + '\0');
    EXPECT_EQ(r.status, DecodeStatus::kError);
    EXPECT_EQ(d.error(), DecodeError::kUnknownCommand);
    EXPECT_EQ(d.feed("SEND\n\n"s + '\0').status, DecodeStatus::kError);
    EXPECT_FALSE(describe(d.error()).empty());
}

TEST(StompErrorTest, ErrorsAreSplitInvariant) {
    for (const std::string& s :
         {"SEND\nnocolon\n\n\0"s, "SEND\nk:a\\t\n\n\0"s, "SEND\ncontent-length:2\n\nabc\0"s,
          "\n\nSEND\n\nok\0\nBAD\n\n\0"s, "SEND\nk:a\rb\n\n\0"s}) {
        expectSplitInvariant(s);
    }
    Limits lim;
    lim.max_body_bytes = 3;
    expectSplitInvariant("SEND\n\nabc\0SEND\n\nabcd\0"s, lim);
}

TEST(StompDecodeTest, RandomStreamsAreSplitInvariant) {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {
        "SEND\ndestination:/topic/a.b\n\nhi\0"s,
        "SUBSCRIBE\r\nid:s1\r\ndestination:/topic/x:y\r\nack:client-individual\r\n\r\n\0"s,
        "ACK\nid:\\c\\n\\\\\n\n\0"s,
        "\n",
        "\r\n",
        "SEND\ncontent-length:3\n\n\0\0\0\0"s,
        "MESSAGE\nsubscription:0\nmessage-id:1\n\n{\"a\":1}\0"s,
    };
    for (int round = 0; round < 30; ++round) {
        std::string s;
        const size_t n = std::uniform_int_distribution<size_t>(1, 12)(rng);
        for (size_t i = 0; i < n; ++i) {
            s += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
        }
        expectSplitInvariant(s);
    }
}

}  // namespace
}  // namespace sb::protocol::stomp
