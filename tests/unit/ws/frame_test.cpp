// Tests for ws/frame.h: header writer (every length form, both roles), the stateless header
// decoder's rules, the close payload codec, and the error → close code table (types.cpp).
#include "ws/frame.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "ws/utf8.h"

namespace sb::ws {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes header(Opcode op, bool fin, bool rsv1, uint64_t len, const uint8_t* key) {
    uint8_t out[kMaxFrameHeader];
    const size_t n = writeFrameHeader(out, op, fin, rsv1, len, key);
    return Bytes(out, out + n);
}

TEST(FrameTest, HeaderSize) {
    EXPECT_EQ(frameHeaderSize(0, false), 2u);
    EXPECT_EQ(frameHeaderSize(125, false), 2u);
    EXPECT_EQ(frameHeaderSize(126, false), 4u);
    EXPECT_EQ(frameHeaderSize(65535, false), 4u);
    EXPECT_EQ(frameHeaderSize(65536, false), 10u);
    EXPECT_EQ(frameHeaderSize(0, true), 6u);
    EXPECT_EQ(frameHeaderSize(65536, true), 14u);
    static_assert(frameHeaderSize(UINT64_MAX >> 1, true) == kMaxFrameHeader);
}

TEST(FrameTest, WritesEveryLengthForm) {
    EXPECT_EQ(header(Opcode::kText, true, false, 0, nullptr), (Bytes{0x81, 0x00}));
    EXPECT_EQ(header(Opcode::kBinary, true, false, 125, nullptr), (Bytes{0x82, 0x7D}));
    EXPECT_EQ(header(Opcode::kBinary, true, false, 126, nullptr), (Bytes{0x82, 0x7E, 0x00, 0x7E}));
    EXPECT_EQ(header(Opcode::kBinary, true, false, 65535, nullptr),
              (Bytes{0x82, 0x7E, 0xFF, 0xFF}));
    EXPECT_EQ(header(Opcode::kBinary, true, false, 65536, nullptr),
              (Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
    EXPECT_EQ(header(Opcode::kBinary, true, false, 0x0102030405060708ull, nullptr),
              (Bytes{0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(FrameTest, WritesBitsAndMask) {
    const uint8_t key[4] = {1, 2, 3, 4};
    EXPECT_EQ(header(Opcode::kText, false, true, 5, key), (Bytes{0x41, 0x85, 1, 2, 3, 4}));
    EXPECT_EQ(header(Opcode::kContinuation, true, false, 300, key),
              (Bytes{0x80, 0xFE, 0x01, 0x2C, 1, 2, 3, 4}));
    EXPECT_EQ(header(Opcode::kClose, true, false, 2, nullptr), (Bytes{0x88, 0x02}));
    EXPECT_EQ(header(Opcode::kPing, true, false, 0, nullptr), (Bytes{0x89, 0x00}));
    EXPECT_EQ(header(Opcode::kPong, true, false, 0, nullptr), (Bytes{0x8A, 0x00}));
}

// Writer → decoder round trip over lengths at every boundary, both roles.
TEST(FrameTest, WriterRoundTripsThroughDecoder) {
    const uint8_t key[4] = {0xAA, 0xBB, 0xCC, 0xDD};
    const uint64_t lengths[] = {
        0, 1, 125, 126, 127, 65535, 65536, (1ull << 32) + 5, (1ull << 63) - 1};
    for (uint64_t len : lengths) {
        for (bool masked : {false, true}) {
            const Bytes h = header(Opcode::kBinary, false, true, len, masked ? key : nullptr);
            ASSERT_EQ(h.size(), frameHeaderSize(len, masked));
            ASSERT_EQ(frameHeaderSizeFromByte1(h[1]), h.size());
            FrameHeader fh;
            const Role role = masked ? Role::kServer : Role::kClient;
            ASSERT_EQ(decodeFrameHeader(h.data(), role, true, &fh), WsError::kNone);
            EXPECT_EQ(fh.payload_len, len);
            EXPECT_EQ(fh.opcode, Opcode::kBinary);
            EXPECT_FALSE(fh.fin);
            EXPECT_TRUE(fh.rsv1);
            EXPECT_EQ(fh.masked, masked);
            EXPECT_EQ(fh.size, h.size());
            if (masked) {
                EXPECT_EQ(Bytes(fh.mask_key, fh.mask_key + 4), Bytes(key, key + 4));
            }
        }
    }
}

WsError decode(Bytes b, Role role = Role::kClient, bool compression = false) {
    b.resize(kMaxFrameHeader);  // the decoder reads only what byte 1 announces
    FrameHeader fh;
    return decodeFrameHeader(b.data(), role, compression, &fh);
}

TEST(FrameTest, DecoderRules) {
    for (uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        EXPECT_EQ(decode({static_cast<uint8_t>(0x80 | op), 0}), WsError::kReservedOpcode);
    }
    EXPECT_EQ(decode({0xA1, 0}), WsError::kReservedBits);  // RSV2
    EXPECT_EQ(decode({0x91, 0}), WsError::kReservedBits);  // RSV3
    EXPECT_EQ(decode({0xC1, 0}), WsError::kReservedBits);  // RSV1, not negotiated
    EXPECT_EQ(decode({0xC1, 0}, Role::kClient, true), WsError::kNone);
    EXPECT_EQ(decode({0xA1, 0}, Role::kClient, true), WsError::kReservedBits);
    EXPECT_EQ(decode({0xC0, 0}, Role::kClient, true), WsError::kCompressedControl);
    EXPECT_EQ(decode({0xC9, 0}, Role::kClient, true), WsError::kCompressedControl);
    EXPECT_EQ(decode({0x81, 0x00}, Role::kServer), WsError::kUnmaskedClientFrame);
    EXPECT_EQ(decode({0x81, 0x80}, Role::kClient), WsError::kMaskedServerFrame);
    EXPECT_EQ(decode({0x09, 0x00}), WsError::kFragmentedControl);
    EXPECT_EQ(decode({0x88, 0x7E, 0x00, 0x7E}), WsError::kControlFrameTooLong);
    EXPECT_EQ(decode({0x8A, 0x7D}), WsError::kNone);  // 125 is allowed
    EXPECT_EQ(decode({0x82, 0x7E, 0x00, 0x7D}), WsError::kNonMinimalLength);
    EXPECT_EQ(decode({0x82, 0x7E, 0x00, 0x7E}), WsError::kNone);
    EXPECT_EQ(decode({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), WsError::kNonMinimalLength);
    EXPECT_EQ(decode({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}), WsError::kNone);
    EXPECT_EQ(decode({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}), WsError::kLengthHighBit);
}

TEST(FrameTest, ClosePayloadWriter) {
    uint8_t out[kMaxControlPayload];
    EXPECT_EQ(writeClosePayload(out, close_code::kNoStatus, "ignored"), 0u);
    ASSERT_EQ(writeClosePayload(out, 1000, ""), 2u);
    EXPECT_EQ(out[0], 0x03);
    EXPECT_EQ(out[1], 0xE8);
    ASSERT_EQ(writeClosePayload(out, 4000, "bye"), 5u);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 5), std::string("\x0f\xa0"
                                                                        "bye"));

    const std::string ascii(200, 'r');
    ASSERT_EQ(writeClosePayload(out, 1001, ascii), kMaxControlPayload);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out + 2), 123), ascii.substr(0, 123));
}

// A long reason is cut at a code point boundary wherever the 123-byte limit falls.
TEST(FrameTest, ClosePayloadTruncatesAtUtf8Boundary) {
    const std::string euro = "\xE2\x82\xAC";       // 3 bytes
    const std::string emoji = "\xF0\x9F\x98\x80";  // 4 bytes
    for (size_t prefix = 0; prefix < 8; ++prefix) {
        for (const std::string& unit : {euro, emoji}) {
            std::string reason(prefix, 'p');
            while (reason.size() < 200) {
                reason += unit;
            }
            uint8_t out[kMaxControlPayload];
            const size_t n = writeClosePayload(out, 1000, reason);
            ASSERT_LE(n, kMaxControlPayload);
            ASSERT_GT(n, kMaxControlPayload - unit.size());
            EXPECT_TRUE(isValidUtf8(out + 2, n - 2)) << "prefix " << prefix;
            EXPECT_EQ(std::string(reinterpret_cast<char*>(out + 2), n - 2),
                      reason.substr(0, n - 2));
        }
    }
}

TEST(FrameTest, ClosePayloadParser) {
    uint16_t code = 0;
    std::string_view reason;
    EXPECT_EQ(parseClosePayload(nullptr, 0, &code, &reason), WsError::kNone);
    EXPECT_EQ(code, close_code::kNoStatus);
    const uint8_t one[] = {0x03};
    EXPECT_EQ(parseClosePayload(one, 1, &code, &reason), WsError::kBadClosePayload);
    const uint8_t ok[] = {0x03, 0xE8, 'h', 'i'};
    EXPECT_EQ(parseClosePayload(ok, 4, &code, &reason), WsError::kNone);
    EXPECT_EQ(code, 1000);
    EXPECT_EQ(reason, "hi");
    const uint8_t bad_utf8[] = {0x03, 0xE8, 0xCE, 0xBA, 0xFF};
    EXPECT_EQ(parseClosePayload(bad_utf8, 5, &code, &reason), WsError::kInvalidCloseReason);
    for (uint32_t c = 0; c < 65536; ++c) {
        const uint8_t p[] = {static_cast<uint8_t>(c >> 8), static_cast<uint8_t>(c)};
        const WsError e = parseClosePayload(p, 2, &code, &reason);
        const bool allowed =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        ASSERT_EQ(e, allowed ? WsError::kNone : WsError::kBadCloseCode) << c;
    }
}

TEST(FrameTest, CloseCodeForEveryError) {
    struct Case {
        WsError e;
        uint16_t code;
    };
    const Case cases[] = {
        {WsError::kReservedBits, 1002},           {WsError::kReservedOpcode, 1002},
        {WsError::kUnmaskedClientFrame, 1002},    {WsError::kMaskedServerFrame, 1002},
        {WsError::kControlFrameTooLong, 1002},    {WsError::kFragmentedControl, 1002},
        {WsError::kUnexpectedContinuation, 1002}, {WsError::kExpectedContinuation, 1002},
        {WsError::kNonMinimalLength, 1002},       {WsError::kLengthHighBit, 1002},
        {WsError::kBadClosePayload, 1002},        {WsError::kBadCloseCode, 1002},
        {WsError::kInvalidCloseReason, 1007},     {WsError::kInvalidUtf8, 1007},
        {WsError::kMessageTooBig, 1009},          {WsError::kCompressedControl, 1002},
        {WsError::kInflateFailed, 1007},
    };
    std::set<std::string_view> reasons;
    for (const Case& c : cases) {
        EXPECT_EQ(closeCodeFor(c.e), c.code) << describe(c.e);
        EXPECT_TRUE(isValidWireCloseCode(closeCodeFor(c.e)));
        EXPECT_FALSE(describe(c.e).empty());
        EXPECT_LE(describe(c.e).size(), kMaxControlPayload - 2);
        reasons.insert(describe(c.e));
    }
    EXPECT_EQ(reasons.size(), std::size(cases)) << "each error has its own reason";
}

}  // namespace
}  // namespace sb::ws
