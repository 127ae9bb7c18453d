// Tests for RFC 7692 permessage-deflate: the negotiation table, the RFC §7.2.3 wire examples,
// round trips with and without context takeover, window-bits 8, the zip-bomb cap and corrupt
// input.
#include "ws/deflate.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace sb::ws {
namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> list) {
    std::vector<uint8_t> v;
    for (int b : list) {
        v.push_back(static_cast<uint8_t>(b));
    }
    return v;
}

std::span<const uint8_t> span(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (!out.empty()) {
            out.push_back(' ');
        }
        out.push_back(d[c >> 4]);
        out.push_back(d[c & 15]);
    }
    return out;
}

// Text that compresses like real messages: words from a small vocabulary, with numbers.
std::string sampleText(size_t n, uint32_t seed) {
    static const char* words[] = {"channel", "publish", "subscribe",  "presence",
                                  "offset",  "epoch",   "{\"type\":", "\"message\"",
                                  "data",    "lobby",   ",",          ":"};
    std::mt19937 rng(seed);
    std::string s;
    while (s.size() < n) {
        s += words[rng() % std::size(words)];
        s += std::to_string(rng() % 1000);
        s += ' ';
    }
    s.resize(n);
    return s;
}

std::string randomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) {
        c = static_cast<char>(rng());
    }
    return s;
}

// --- negotiation ---

struct Negotiated {
    bool accepted = false;
    DeflateParams p;
    std::string response;
};

// The table below checks how offers are honoured, so it runs with the server keeping its
// context (what the client asked for shows through); ServerPolicy covers the default.
DeflateServerPolicy takeover() {
    DeflateServerPolicy p;
    p.context_takeover = true;
    return p;
}

Negotiated negotiate(std::string_view offers, DeflateServerPolicy policy = takeover()) {
    Negotiated n;
    auto p = negotiateDeflate(offers, policy, &n.response);
    n.accepted = p.has_value();
    if (p) {
        n.p = *p;
    }
    return n;
}

TEST(NegotiateDeflate, Table) {
    struct Row {
        const char* offers;
        const char* response;  // nullptr = declined
        bool snct, cnct;
        int smwb, cmwb;
    };
    const Row rows[] = {
        // RFC 7692 §7.1 basics.
        {"permessage-deflate", "permessage-deflate", false, false, 15, 15},
        {"permessage-deflate; client_max_window_bits", "permessage-deflate", false, false, 15, 15},
        {"permessage-deflate; client_max_window_bits=10",
         "permessage-deflate; client_max_window_bits=10", false, false, 15, 10},
        {"permessage-deflate; server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10", false, false, 10, 15},
        {"permessage-deflate; server_max_window_bits=8",
         "permessage-deflate; server_max_window_bits=8", false, false, 8, 15},
        {"permessage-deflate; client_max_window_bits=8",
         "permessage-deflate; client_max_window_bits=8", false, false, 15, 8},
        {"permessage-deflate; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover", true, false, 15, 15},
        {"permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover", false, true, 15, 15},
        {"permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
         "server_max_window_bits=9; client_max_window_bits=12",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=9; client_max_window_bits=12",
         true, true, 9, 12},
        // RFC 7692 §5.2 example: several offers, the first acceptable one wins.
        {"permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
         "permessage-deflate; client_max_window_bits",
         "permessage-deflate; server_max_window_bits=10", false, false, 10, 15},
        // What Chrome and Firefox send.
        {"permessage-deflate; client_max_window_bits", "permessage-deflate", false, false, 15, 15},
        // Invalid offers are declined and the next one is tried.
        {"permessage-deflate; foo, permessage-deflate", "permessage-deflate", false, false, 15, 15},
        {"permessage-deflate; server_max_window_bits, permessage-deflate; "
         "server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover", true, false, 15, 15},
        {"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=9",
         "permessage-deflate; client_max_window_bits=9", false, false, 15, 9},
        // Quoted values (RFC 7692 §7.1: the value after unquoting must match).
        {"permessage-deflate; client_max_window_bits=\"10\"",
         "permessage-deflate; client_max_window_bits=10", false, false, 15, 10},
        {"permessage-deflate; server_max_window_bits=\"1\\2\"",
         "permessage-deflate; server_max_window_bits=12", false, false, 12, 15},
        // Whitespace and case of the extension name.
        {"  PerMessage-Deflate ;\tserver_max_window_bits = 11 ",
         "permessage-deflate; server_max_window_bits=11", false, false, 11, 15},
        {",permessage-deflate,", "permessage-deflate", false, false, 15, 15},
        // Declined outright.
        {"permessage-deflate; server_max_window_bits", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=7", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=16", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=08", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=1a", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=\"\"", nullptr, false, false, 0, 0},
        {"permessage-deflate; client_max_window_bits=100", nullptr, false, false, 0, 0},
        {"permessage-deflate; server_no_context_takeover=1", nullptr, false, false, 0, 0},
        {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", nullptr,
         false, false, 0, 0},
        {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", nullptr, false,
         false, 0, 0},
        {"permessage-deflate; Server_No_Context_Takeover", nullptr, false, false, 0, 0},
        {"permessage-deflate; unknown_param", nullptr, false, false, 0, 0},
        {"deflate-frame", nullptr, false, false, 0, 0},
        {"", nullptr, false, false, 0, 0},
        {"permessage-deflate;", nullptr, false, false, 0, 0},
        {"permessage-deflate; a=\"unterminated", nullptr, false, false, 0, 0},
        {"foo;;, permessage-deflate", nullptr, false, false, 0, 0},
    };
    for (const Row& row : rows) {
        const Negotiated n = negotiate(row.offers);
        if (row.response == nullptr) {
            EXPECT_FALSE(n.accepted) << row.offers;
            continue;
        }
        ASSERT_TRUE(n.accepted) << row.offers;
        EXPECT_EQ(n.response, row.response) << row.offers;
        EXPECT_EQ(n.p.server_no_context_takeover, row.snct) << row.offers;
        EXPECT_EQ(n.p.client_no_context_takeover, row.cnct) << row.offers;
        EXPECT_EQ(n.p.server_max_window_bits, row.smwb) << row.offers;
        EXPECT_EQ(n.p.client_max_window_bits, row.cmwb) << row.offers;
        // What we answer must be acceptable to a client that made this offer.
        EXPECT_TRUE(parseDeflateResponse(n.response).has_value()) << n.response;
    }
}

TEST(NegotiateDeflate, ServerPolicy) {
    DeflateServerPolicy off;
    off.enabled = false;
    EXPECT_FALSE(negotiate("permessage-deflate", off).accepted);

    // The default: no context takeover in either direction, announced even when the client
    // did not ask (RFC 7692 §7.1.1.1, §7.1.1.2 allow it), every other parameter as offered.
    const DeflateServerPolicy defaults;
    EXPECT_FALSE(defaults.context_takeover);
    const std::string none =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    Negotiated n = negotiate("permessage-deflate", defaults);
    ASSERT_TRUE(n.accepted);
    EXPECT_TRUE(n.p.server_no_context_takeover);
    EXPECT_TRUE(n.p.client_no_context_takeover);
    EXPECT_EQ(n.response, none);
    n = negotiate("permessage-deflate; client_max_window_bits", defaults);  // browsers
    EXPECT_EQ(n.response, none);
    n = negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                  defaults);
    EXPECT_EQ(n.response, none);  // each said once
    n = negotiate("permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
                  defaults);
    EXPECT_TRUE(n.p.server_no_context_takeover);
    EXPECT_TRUE(n.p.client_no_context_takeover);
    EXPECT_EQ(n.p.server_max_window_bits, 12);
    EXPECT_EQ(n.p.client_max_window_bits, 10);
    EXPECT_TRUE(parseDeflateResponse(n.response).has_value()) << n.response;

    DeflateServerPolicy small = takeover();
    small.max_server_window_bits = 12;
    n = negotiate("permessage-deflate", small);  // we announce our smaller window
    EXPECT_EQ(n.p.server_max_window_bits, 12);
    EXPECT_EQ(n.response, "permessage-deflate; server_max_window_bits=12");
    n = negotiate("permessage-deflate; server_max_window_bits=14", small);
    EXPECT_EQ(n.p.server_max_window_bits, 12);
    EXPECT_EQ(n.response, "permessage-deflate; server_max_window_bits=12");
    n = negotiate("permessage-deflate; server_max_window_bits=10", small);
    EXPECT_EQ(n.p.server_max_window_bits, 10);  // never above what the client asked
    EXPECT_EQ(n.response, "permessage-deflate; server_max_window_bits=10");
}

TEST(ParseDeflateResponse, ClientSide) {
    auto p = parseDeflateResponse("permessage-deflate");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->server_max_window_bits, 15);
    EXPECT_EQ(p->client_max_window_bits, 15);
    p = parseDeflateResponse(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=12");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->server_no_context_takeover);
    EXPECT_TRUE(p->client_no_context_takeover);
    EXPECT_EQ(p->server_max_window_bits, 10);
    EXPECT_EQ(p->client_max_window_bits, 12);
    for (const char* bad :
         {"", "permessage-deflate; client_max_window_bits",  // the response needs a value
          "permessage-deflate, permessage-deflate", "permessage-deflate, x-other", "x-other",
          "permessage-deflate; server_max_window_bits=7", "permessage-deflate; bogus",
          "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
          "permessage-deflate;;"}) {
        EXPECT_FALSE(parseDeflateResponse(bad)) << bad;
    }
}

TEST(ClientDeflateOffer, IsAcceptedByOurServer) {
    const Negotiated n = negotiate(clientDeflateOffer());
    ASSERT_TRUE(n.accepted);
    EXPECT_TRUE(parseDeflateResponse(n.response));
}

// --- RFC 7692 §7.2.3 examples ---

std::string inflateOk(Inflater& inf, const std::vector<uint8_t>& in, size_t cap = 1 << 20) {
    std::string out;
    EXPECT_EQ(inf.inflateMessage(in, cap, &out), InflateStatus::kOk)
        << hex(std::string(reinterpret_cast<const char*>(in.data()), in.size()));
    return out;
}

TEST(Inflater, Rfc7692Hello) {
    Inflater inf(15, true);
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
}

TEST(Inflater, Rfc7692SharedSlidingWindow) {
    // §7.2.3.2: the second "Hello" is a back-reference into the first message.
    Inflater inf(15, true);
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})), "Hello");
}

TEST(Inflater, Rfc7692NoCompressionBlock) {
    Inflater inf(15, true);  // §7.2.3.3
    EXPECT_EQ(
        inflateOk(inf, bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})),
        "Hello");
}

TEST(Inflater, Rfc7692BfinalBlock) {
    // §7.2.3.4: flushed with a BFINAL=1 block; the context must survive it.
    Inflater inf(15, true);
    EXPECT_EQ(inflateOk(inf, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})), "Hello");
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})), "Hello");
    // Without the trailing empty block too (lenient), and again afterwards.
    EXPECT_EQ(inflateOk(inf, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
}

TEST(Inflater, Rfc7692TwoBlocks) {
    Inflater inf(15, true);  // §7.2.3.5
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                                    0xc9, 0x07, 0x00})),
              "Hello");
}

TEST(Inflater, BlockAfterFinalBlockInOneMessage) {
    Inflater inf(15, true);
    // "Hello" with BFINAL, then "Hello" again as a back-reference across the stream end.
    EXPECT_EQ(inflateOk(inf, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x00, 0x11,
                                    0x00, 0x00})),
              "HelloHello");
}

TEST(Inflater, ManyTinyFinalBlocksStayCheap) {
    // 03 00 is an empty fixed-Huffman block with BFINAL set: each one ends a DEFLATE stream.
    std::vector<uint8_t> in;
    for (int i = 0; i < 200000; ++i) {
        in.push_back(0x03);
        in.push_back(0x00);
    }
    Inflater inf(15, true);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(inflateOk(inf, in), "");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
}

TEST(Deflater, Rfc7692Hello) {
    Deflater def(15, true);
    std::string out;
    def.deflateMessage(span("Hello"), &out);
    EXPECT_EQ(hex(out), "f2 48 cd c9 c9 07 00");
    out.clear();
    def.deflateMessage(span("Hello"), &out);
    EXPECT_EQ(hex(out), "f2 00 11 00 00");  // §7.2.3.2: context takeover
    Deflater fresh(15, false);
    for (int i = 0; i < 3; ++i) {
        out.clear();
        fresh.deflateMessage(span("Hello"), &out);
        EXPECT_EQ(hex(out), "f2 48 cd c9 c9 07 00");  // no takeover: the same every time
    }
}

TEST(Deflater, EmptyMessageIsOneZeroByte) {
    Deflater def(15, true);
    std::string out;
    def.deflateMessage({}, &out);
    EXPECT_EQ(hex(out), "00");  // §7.2.3.6
    Inflater inf(15, true);
    std::string back = "keep";
    EXPECT_EQ(inf.inflateMessage(span(out), 100, &back), InflateStatus::kOk);
    EXPECT_EQ(back, "keep");
    EXPECT_EQ(inf.inflateMessage({}, 100, &back), InflateStatus::kOk);  // lenient: empty payload
    EXPECT_EQ(back, "keep");
    // The context keeps working afterwards in both directions.
    for (int i = 0; i < 3; ++i) {
        std::string hello, empty, a;
        def.deflateMessage(span("Hello"), &hello);
        def.deflateMessage({}, &empty);
        EXPECT_EQ(hex(empty), "00");
        ASSERT_EQ(inf.inflateMessage(span(hello), 100, &a), InflateStatus::kOk);
        EXPECT_EQ(a, "Hello");
        ASSERT_EQ(inf.inflateMessage(span(empty), 100, &a), InflateStatus::kOk);
        EXPECT_EQ(a, "Hello");
    }
}

TEST(Deflater, AppendsToOutput) {
    Deflater def(15, false);
    std::string out = "prefix";
    def.deflateMessage(span("Hello"), &out);
    EXPECT_EQ(hex(out.substr(6)), "f2 48 cd c9 c9 07 00");
    EXPECT_EQ(out.substr(0, 6), "prefix");
}

// --- round trips ---

void roundTrip(uint8_t server_bits, uint8_t client_bits, bool takeover, size_t size) {
    Deflater def(server_bits, takeover);
    Inflater inf(client_bits, takeover);
    size_t total_compressed = 0;
    for (uint32_t i = 0; i < 8; ++i) {
        const std::string msg = i % 4 == 3 ? randomBytes(size, i) : sampleText(size, i % 2);
        std::string z;
        def.deflateMessage(span(msg), &z);
        total_compressed += z.size();
        std::string back;
        ASSERT_EQ(inf.inflateMessage(span(z), msg.size(), &back), InflateStatus::kOk)
            << int(server_bits) << "/" << int(client_bits) << " takeover=" << takeover
            << " size=" << size << " msg " << i;
        ASSERT_EQ(back, msg);
    }
    (void)total_compressed;
}

TEST(DeflateRoundTrip, AllWindowsWithAndWithoutTakeover) {
    for (uint8_t bits = 8; bits <= 15; ++bits) {
        for (bool takeover : {true, false}) {
            for (size_t size : {1, 100, 5000, 70000}) {
                roundTrip(bits, bits, takeover, size);
            }
        }
    }
}

TEST(DeflateRoundTrip, SmallHashTableWithoutTakeover) {
    // The loops' shared compressor for small messages runs at mem_level 4 (a 4 KiB hash table
    // to zero per reset): same format, every size and window still round-trips, and text
    // still shrinks.
    for (uint8_t bits : {9, 12, 15}) {
        Deflater def(bits, false, 4);
        Inflater inf(bits, false);
        for (size_t size : {1, 64, 100, 1000, 4096, 5000, 70000}) {
            for (uint32_t i = 0; i < 4; ++i) {
                const std::string msg = i == 3 ? randomBytes(size, i) : sampleText(size, i % 2);
                std::string z, back;
                def.deflateMessage(span(msg), &z);
                ASSERT_EQ(inf.inflateMessage(span(z), msg.size(), &back), InflateStatus::kOk)
                    << int(bits) << " size=" << size << " msg " << i;
                ASSERT_EQ(back, msg);
                if (i == 0 && size >= 1000) {
                    EXPECT_LT(z.size(), msg.size() / 2) << size;
                }
            }
        }
    }
}

TEST(DeflateRoundTrip, TakeoverShrinksRepeatedMessages) {
    const std::string msg = sampleText(2000, 7);
    Deflater with(15, true);
    Deflater without(15, false);
    std::string a1, a2, b1, b2;
    with.deflateMessage(span(msg), &a1);
    with.deflateMessage(span(msg), &a2);
    without.deflateMessage(span(msg), &b1);
    without.deflateMessage(span(msg), &b2);
    EXPECT_LT(a2.size(), a1.size() / 10);  // the second is back-references
    EXPECT_EQ(b1, b2);
    Inflater inf(15, true);
    std::string out;
    ASSERT_EQ(inf.inflateMessage(span(a1), 1 << 20, &out), InflateStatus::kOk);
    out.clear();
    ASSERT_EQ(inf.inflateMessage(span(a2), 1 << 20, &out), InflateStatus::kOk);
    EXPECT_EQ(out, msg);
}

TEST(DeflateRoundTrip, NoTakeoverInflaterCannotReadTakeoverStream) {
    // A peer that keeps its context while we reset ours: the second message refers to data we
    // dropped, which zlib reports — not silent garbage.
    const std::string msg = sampleText(2000, 3);
    Deflater def(15, true);
    Inflater inf(15, false);
    std::string z1, z2, out;
    def.deflateMessage(span(msg), &z1);
    def.deflateMessage(span(msg), &z2);
    ASSERT_EQ(inf.inflateMessage(span(z1), 1 << 20, &out), InflateStatus::kOk);
    out.clear();
    EXPECT_EQ(inf.inflateMessage(span(z2), 1 << 20, &out), InflateStatus::kCorrupt);
}

// Sends messages through `def` where each one repeats the previous message (300..450 bytes
// back, across the message boundary) and reads them with a raw zlib inflater that really
// keeps only 2^8 bytes of history. Returns false at the first message it cannot read.
bool readableWithA256ByteWindow(Deflater& def) {
    z_stream z{};
    if (inflateInit2(&z, -8) != Z_OK) {
        return false;
    }
    static const uint8_t kTailBytes[4] = {0, 0, 0xff, 0xff};
    bool ok = true;
    std::string prev = randomBytes(300, 99);
    for (uint32_t i = 0; i < 40 && ok; ++i) {
        const std::string msg = prev + randomBytes(150 * (i % 2), i);
        std::string c;
        def.deflateMessage(span(msg), &c);
        c.append(reinterpret_cast<const char*>(kTailBytes), 4);
        std::string out(msg.size() + 64, '\0');
        z.next_in = reinterpret_cast<Bytef*>(c.data());
        z.avail_in = static_cast<uInt>(c.size());
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        const int rc = inflate(&z, Z_SYNC_FLUSH);
        out.resize(out.size() - z.avail_out);
        ok = (rc == Z_OK || rc == Z_BUF_ERROR) && z.avail_in == 0 && out == msg;
        prev = msg;
    }
    inflateEnd(&z);
    return ok;
}

TEST(DeflateRoundTrip, Window8OutputFitsA256ByteWindow) {
    // zlib runs 8 as 9, but its matches never reach farther than 512 - 262 = 250 bytes, so a
    // peer that keeps only 256 bytes (server_max_window_bits=8) can read what we send.
    Deflater eight(8, true);
    EXPECT_TRUE(readableWithA256ByteWindow(eight));
    Deflater nine(9, true);
    EXPECT_TRUE(readableWithA256ByteWindow(nine));
    // The check has teeth: a 32 KiB window does reach back 300+ bytes and breaks that peer.
    Deflater fifteen(15, true);
    EXPECT_FALSE(readableWithA256ByteWindow(fifteen));
}

TEST(DeflateRoundTrip, Window8InflaterReadsA256ByteWindowStream) {
    // A peer compressing with a true 256-byte window (zlib with the wrapper supports 8).
    // We strip the 2-byte zlib header and inflate the raw part with client_max_window_bits=8.
    Inflater inf(8, true);
    for (uint32_t i = 0; i < 5; ++i) {
        const std::string msg = sampleText(4000, i);
        z_stream d{};
        ASSERT_EQ(deflateInit2(&d, 6, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
        std::string c(compressBound(static_cast<uLong>(msg.size())) + 64, '\0');
        d.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(msg.data()));
        d.avail_in = static_cast<uInt>(msg.size());
        d.next_out = reinterpret_cast<Bytef*>(c.data());
        d.avail_out = static_cast<uInt>(c.size());
        ASSERT_EQ(deflate(&d, Z_SYNC_FLUSH), Z_OK);
        c.resize(c.size() - d.avail_out - 4);
        deflateEnd(&d);
        Inflater fresh(8, false);
        std::string out;
        ASSERT_EQ(fresh.inflateMessage(span(c), 1 << 20, &out), InflateStatus::kOk);
        EXPECT_EQ(out, msg);
    }
}

// --- limits and corruption ---

TEST(Inflater, CapIsExact) {
    const std::string msg = sampleText(10000, 1);
    Deflater def(15, false);
    std::string z;
    def.deflateMessage(span(msg), &z);
    Inflater inf(15, false);
    std::string out;
    EXPECT_EQ(inf.inflateMessage(span(z), msg.size(), &out), InflateStatus::kOk);
    EXPECT_EQ(out, msg);
    out = "abc";
    EXPECT_EQ(inf.inflateMessage(span(z), msg.size() + 2, &out), InflateStatus::kTooBig);
    EXPECT_EQ(out, "abc");  // left as it was
    out.clear();
    EXPECT_EQ(inf.inflateMessage(span(z), msg.size() - 1, &out), InflateStatus::kTooBig);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(inf.inflateMessage(span(z), 0, &out), InflateStatus::kTooBig);
    // Still usable for the next message (no takeover).
    EXPECT_EQ(inf.inflateMessage(span(z), msg.size(), &out), InflateStatus::kOk);
    EXPECT_EQ(out, msg);
}

TEST(Inflater, ZipBombStopsAtTheCap) {
    // 1 GiB of zeros in about 1 MiB: 1024 copies of one sync-flushed 1 MiB block sequence.
    const std::string zeros(1 << 20, '\0');
    Deflater def(15, false);
    std::string one;
    def.deflateMessage(span(zeros), &one);
    std::string bomb;
    for (int i = 0; i < 1024; ++i) {
        bomb += one;
        if (i != 1023) {
            bomb.append("\x00\x00\xff\xff", 4);
        }
    }
    EXPECT_LT(bomb.size(), 2u << 20);
    Inflater inf(15, true);
    std::string out;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(inf.inflateMessage(span(bomb), 1 << 20, &out), InflateStatus::kTooBig);
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_TRUE(out.empty());
    EXPECT_LT(elapsed, std::chrono::milliseconds(500));
    EXPECT_LE(out.capacity(), (2u << 20));  // never grew far past the cap

    // With a cap above the bomb's first megabytes it still stops at the cap.
    out.clear();
    EXPECT_EQ(inf.inflateMessage(span(bomb), 16 << 20, &out), InflateStatus::kTooBig);
}

TEST(Inflater, CorruptInput) {
    Inflater inf(15, true);
    std::string out;
    // BTYPE=11 is reserved.
    EXPECT_EQ(inf.inflateMessage(bytes({0xff, 0xff, 0xff}), 1 << 20, &out),
              InflateStatus::kCorrupt);
    // Stored block whose NLEN does not complement LEN.
    EXPECT_EQ(inf.inflateMessage(bytes({0x00, 0x05, 0x00, 0x00, 0x00, 'a'}), 1 << 20, &out),
              InflateStatus::kCorrupt);
    EXPECT_TRUE(out.empty());
    // After a failure the inflater is reset and reads a fresh message.
    EXPECT_EQ(inflateOk(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
}

TEST(Inflater, TruncatedMessageIsCorrupt) {
    const std::string msg = sampleText(5000, 9);
    Deflater def(15, false);
    std::string z;
    def.deflateMessage(span(msg), &z);
    Inflater inf(15, true);
    std::string out;
    EXPECT_EQ(inf.inflateMessage(span(std::string_view(z).substr(0, z.size() / 2)), 1 << 20, &out),
              InflateStatus::kCorrupt);
}

TEST(Inflater, DistanceBeyondTheWindowIsCorrupt) {
    // The second message refers 4 KiB back into the first; a peer that promised a 512-byte
    // window (client_max_window_bits=9) broke its word, and our 512-byte window cannot serve
    // it. (Within one message zlib tolerates longer distances into output it still holds.)
    const std::string block = randomBytes(4096, 5);
    Deflater def(15, true);
    std::string z1, z2;
    def.deflateMessage(span(block), &z1);
    def.deflateMessage(span(block), &z2);
    Inflater small(9, true);
    std::string out;
    EXPECT_EQ(small.inflateMessage(span(z1), 1 << 20, &out), InflateStatus::kOk);
    out.clear();
    EXPECT_EQ(small.inflateMessage(span(z2), 1 << 20, &out), InflateStatus::kCorrupt);
    Inflater big(15, true);
    EXPECT_EQ(big.inflateMessage(span(z1), 1 << 20, &out), InflateStatus::kOk);
    out.clear();
    EXPECT_EQ(big.inflateMessage(span(z2), 1 << 20, &out), InflateStatus::kOk);
    EXPECT_TRUE(out == block);
}

TEST(Inflater, RandomGarbageNeverCrashes) {
    Inflater inf(15, true);
    for (uint32_t i = 0; i < 2000; ++i) {
        const std::string junk = randomBytes(1 + i % 200, i);
        std::string out;
        const InflateStatus st = inf.inflateMessage(span(junk), 4096, &out);
        EXPECT_TRUE(st == InflateStatus::kOk || st == InflateStatus::kCorrupt ||
                    st == InflateStatus::kTooBig);
        EXPECT_LE(out.size(), 4096u);
    }
}

TEST(Codecs, ManyIdleCodecsAreCheap) {
    // Lazy zlib state: constructing codecs for 10k idle connections must not allocate ~3 GB.
    std::vector<std::unique_ptr<Inflater>> inf;
    std::vector<std::unique_ptr<Deflater>> def;
    for (int i = 0; i < 10000; ++i) {
        inf.push_back(std::make_unique<Inflater>(15, true));
        def.push_back(std::make_unique<Deflater>(15, true));
    }
    SUCCEED();
}

}  // namespace
}  // namespace sb::ws
