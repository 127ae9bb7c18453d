// Tests for ws/message_reader.h. Every input is fed whole, byte by byte and in seeded random
// splits (with empty reads mixed in), and all ways must produce the same events.
#include "ws/message_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ws/frame.h"
#include "ws/mask.h"

namespace sb::ws {
namespace {

constexpr uint8_t kKey[4] = {0x37, 0xFA, 0x21, 0x3D};

// ---- Building frames ----------------------------------------------------------------------

struct FrameOpts {
    bool fin = true;
    bool masked = true;
    bool rsv1 = false;
    uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
};

// A frame as the writer produces it (masked with a client key unless opts.masked is false).
std::string frame(Opcode op, std::string_view payload, FrameOpts opts = {}) {
    uint8_t h[kMaxFrameHeader];
    const size_t hn = writeFrameHeader(h, op, opts.fin, opts.rsv1, payload.size(),
                                       opts.masked ? opts.key : nullptr);
    std::string out(reinterpret_cast<char*>(h), hn);
    out.resize(hn + payload.size());
    auto* dst = reinterpret_cast<uint8_t*>(out.data()) + hn;
    const auto* src = reinterpret_cast<const uint8_t*>(payload.data());
    if (opts.masked) {
        copyMasked(dst, src, payload.size(), opts.key);
    } else if (!payload.empty()) {
        std::memcpy(dst, src, payload.size());
    }
    return out;
}

std::string unmasked(Opcode op, std::string_view payload, bool fin = true) {
    FrameOpts o;
    o.masked = false;
    o.fin = fin;
    return frame(op, payload, o);
}

std::string fragment(Opcode op, std::string_view payload, bool fin) {
    FrameOpts o;
    o.fin = fin;
    return frame(op, payload, o);
}

std::string closePayload(uint16_t code, std::string_view reason = {}) {
    uint8_t buf[kMaxControlPayload];
    return std::string(reinterpret_cast<char*>(buf), writeClosePayload(buf, code, reason));
}

// Raw bytes: a hand-made header (any bits, any length form) + masked payload.
std::string raw(std::initializer_list<uint8_t> header, std::string_view payload = {}) {
    std::string out(header.begin(), header.end());
    std::string p(payload);
    applyMask(reinterpret_cast<uint8_t*>(p.data()), p.size(), kKey, 0);
    return out + std::string(reinterpret_cast<const char*>(kKey), 4) + p;
}

// ---- Recording what the reader reports ----------------------------------------------------

std::string show(std::span<const uint8_t> p) {
    if (p.size() <= 200) {
        return std::string(reinterpret_cast<const char*>(p.data()), p.size());
    }
    uint64_t h = 1469598103934665603ull;  // FNV-1a, to keep big payloads printable
    for (uint8_t b : p) {
        h = (h ^ b) * 1099511628211ull;
    }
    return "<" + std::to_string(p.size()) + " bytes #" + std::to_string(h) + ">";
}
std::string show(std::string_view s) {
    return show(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}
std::string textEv(std::string_view s) {
    return "text:" + show(s);
}
std::string binaryEv(std::string_view s) {
    return "binary:" + show(s);
}
std::string errorEv(WsError e) {
    return "error:" + std::string(describe(e)) + ":" + std::to_string(closeCodeFor(e));
}
std::string closeEv(uint16_t code, std::string_view reason = {}) {
    return "close:" + std::to_string(code) + ":" + std::string(reason);
}

struct Recorder {
    std::vector<std::string> events;
    size_t stop_after = SIZE_MAX;  // return false once this many events were recorded
    const uint8_t* buf_begin = nullptr;
    const uint8_t* buf_end = nullptr;
    int zero_copy = 0;  // messages delivered as a span into the caller's buffer

    bool more() const { return events.size() < stop_after; }
    bool onMessage(Opcode op, std::span<uint8_t> p) {
        if (p.data() >= buf_begin && p.data() < buf_end) {
            ++zero_copy;
        }
        events.push_back((op == Opcode::kText ? "text:" : "binary:") + show(p));
        return more();
    }
    bool onPing(std::span<uint8_t> p) {
        events.push_back("ping:" + show(p));
        return more();
    }
    bool onPong(std::span<uint8_t> p) {
        events.push_back("pong:" + show(p));
        return more();
    }
    void onClose(uint16_t code, std::string_view reason) {
        events.push_back(closeEv(code, reason));
    }
    void onError(WsError e) { events.push_back(errorEv(e)); }
};
static_assert(MessageHandler<Recorder>);

struct Outcome {
    std::vector<std::string> events;
    bool stopped = false;
    size_t buffered = 0;
    int zero_copy = 0;
};

using InflaterFactory = std::function<std::unique_ptr<Inflater>()>;

struct FeedSetup {
    ReaderConfig cfg;
    InflaterFactory inflater;  // a fresh one per run (context takeover keeps state)
    size_t stop_after = SIZE_MAX;
};

// Feeds `input` in reads of the given sizes, each in its own exactly-sized heap buffer (so
// ASan sees any access outside the read).
Outcome feed(const std::string& input, const std::vector<size_t>& sizes, const FeedSetup& s) {
    MessageReader reader;
    Recorder rec;
    rec.stop_after = s.stop_after;
    std::unique_ptr<Inflater> inf = s.inflater ? s.inflater() : nullptr;
    Outcome out;
    size_t pos = 0;
    for (size_t n : sizes) {
        std::vector<uint8_t> chunk(input.begin() + static_cast<ptrdiff_t>(pos),
                                   input.begin() + static_cast<ptrdiff_t>(pos + n));
        pos += n;
        rec.buf_begin = chunk.data();
        rec.buf_end = chunk.data() + chunk.size();
        const size_t before = rec.events.size();
        const ReadResult r = reader.consume(chunk.data(), chunk.size(), s.cfg, inf.get(), rec);
        if (out.stopped) {
            EXPECT_EQ(r, ReadResult::kStopped) << "stopped is final";
            EXPECT_EQ(rec.events.size(), before) << "no events after stopping";
        }
        out.stopped = r == ReadResult::kStopped;
        EXPECT_EQ(reader.stopped(), out.stopped);
        if (out.stopped) {
            EXPECT_EQ(reader.bufferedBytes(), 0u) << "a stopped reader frees its buffers";
        }
    }
    EXPECT_EQ(pos, input.size());
    out.events = rec.events;
    out.buffered = reader.bufferedBytes();
    out.zero_copy = rec.zero_copy;
    return out;
}

// Whole, byte by byte, and 12 seeded random patterns (small, medium and mixed reads, some
// empty).
std::vector<std::vector<size_t>> splitPatterns(size_t n) {
    std::vector<std::vector<size_t>> patterns;
    patterns.push_back({n});
    patterns.emplace_back(n, 1);
    for (unsigned seed = 0; seed < 12; ++seed) {
        std::mt19937 rng(seed);
        const size_t max_read = seed % 3 == 0 ? 7 : seed % 3 == 1 ? 64 : 3000;
        std::vector<size_t> sizes;
        size_t left = n;
        while (left > 0) {
            size_t k = rng() % (max_read + 1);
            if (k == 0 && rng() % 4 != 0) {
                k = 1;  // some empty reads, not too many
            }
            k = std::min(k, left);
            sizes.push_back(k);
            left -= k;
        }
        if (seed % 2 == 0) {
            sizes.push_back(0);
        }
        patterns.push_back(std::move(sizes));
    }
    return patterns;
}

// Runs every split pattern; all must agree with the whole-buffer run, which is returned.
Outcome run(const std::string& input, const FeedSetup& s = {}) {
    const auto patterns = splitPatterns(input.size());
    const Outcome whole = feed(input, patterns[0], s);
    for (size_t i = 1; i < patterns.size(); ++i) {
        const Outcome o = feed(input, patterns[i], s);
        EXPECT_EQ(o.events, whole.events) << "split pattern " << i;
        EXPECT_EQ(o.stopped, whole.stopped) << "split pattern " << i;
    }
    return whole;
}

FeedSetup clientRole() {
    FeedSetup s;
    s.cfg.role = Role::kClient;
    return s;
}

using Events = std::vector<std::string>;

// ---- Basics -------------------------------------------------------------------------------

TEST(MessageReaderTest, SizeIsPinned) {
    static_assert(sizeof(MessageReader) <= 48);
    MessageReader r;
    EXPECT_EQ(r.bufferedBytes(), 0u);
}

TEST(MessageReaderTest, SingleTextAndBinaryFrames) {
    const Outcome o =
        run(frame(Opcode::kText, "hello") + frame(Opcode::kBinary, std::string("\0\x01\xff", 3)));
    EXPECT_EQ(o.events, (Events{textEv("hello"), binaryEv(std::string("\0\x01\xff", 3))}));
    EXPECT_FALSE(o.stopped);
    EXPECT_EQ(o.buffered, 0u);
    EXPECT_EQ(o.zero_copy, 2) << "complete frames are delivered in place";
}

TEST(MessageReaderTest, EmptyFramesAndMessages) {
    const Outcome o =
        run(frame(Opcode::kText, "") + frame(Opcode::kBinary, "") + frame(Opcode::kPing, "") +
            frame(Opcode::kPong, "") + fragment(Opcode::kText, "", false) +
            fragment(Opcode::kContinuation, "", false) + fragment(Opcode::kContinuation, "", true));
    EXPECT_EQ(o.events, (Events{textEv(""), binaryEv(""), "ping:", "pong:", textEv("")}));
    EXPECT_EQ(o.buffered, 0u);
}

// Every length form (§5.2) at its boundaries, text and binary.
TEST(MessageReaderTest, LengthEncodings) {
    for (size_t len : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{127}, size_t{65535},
                       size_t{65536}, size_t{70000}}) {
        std::string payload(len, 'a');
        for (size_t i = 0; i < len; ++i) {
            payload[i] = static_cast<char>('a' + i % 26);
        }
        const Outcome o = run(frame(Opcode::kText, payload) + frame(Opcode::kBinary, payload));
        EXPECT_EQ(o.events, (Events{textEv(payload), binaryEv(payload)})) << len;
        EXPECT_EQ(o.buffered, 0u);
    }
}

TEST(MessageReaderTest, ClientRoleReadsUnmaskedFrames) {
    const Outcome o = run(unmasked(Opcode::kText, "from server") + unmasked(Opcode::kPing, "p") +
                              unmasked(Opcode::kText, "frag ", false) +
                              unmasked(Opcode::kContinuation, "ment", true),
                          clientRole());
    EXPECT_EQ(o.events, (Events{textEv("from server"), "ping:p", textEv("frag ment")}));
}

TEST(MessageReaderTest, ServerRejectsUnmaskedFrame) {
    const Outcome o = run(frame(Opcode::kText, "ok") + unmasked(Opcode::kText, "bad"));
    EXPECT_EQ(o.events, (Events{textEv("ok"), errorEv(WsError::kUnmaskedClientFrame)}));
    EXPECT_TRUE(o.stopped);
    EXPECT_EQ(closeCodeFor(WsError::kUnmaskedClientFrame), 1002);
}

TEST(MessageReaderTest, ClientRejectsMaskedFrame) {
    const Outcome o =
        run(unmasked(Opcode::kText, "ok") + frame(Opcode::kText, "bad"), clientRole());
    EXPECT_EQ(o.events, (Events{textEv("ok"), errorEv(WsError::kMaskedServerFrame)}));
    EXPECT_TRUE(o.stopped);
}

// ---- Fragmentation ------------------------------------------------------------------------

TEST(MessageReaderTest, FragmentedMessageWithInterleavedControlFrames) {
    const Outcome o =
        run(fragment(Opcode::kText, "Hel", false) + frame(Opcode::kPing, "p1") +
            fragment(Opcode::kContinuation, "lo, ", false) + frame(Opcode::kPong, "p2") +
            frame(Opcode::kPing, "") + fragment(Opcode::kContinuation, "world", true) +
            frame(Opcode::kBinary, "after"));
    EXPECT_EQ(o.events,
              (Events{"ping:p1", "pong:p2", "ping:", textEv("Hello, world"), binaryEv("after")}));
    EXPECT_EQ(o.buffered, 0u) << "the spill buffer is freed when the message completes";
}

// A large control frame split across reads in the middle of a large fragmented message.
TEST(MessageReaderTest, PartialControlFrameInsideFragmentedMessage) {
    const std::string a(3000, 'a');
    const std::string b(5000, 'b');
    const std::string ping(125, 'p');
    const Outcome o = run(fragment(Opcode::kBinary, a, false) + frame(Opcode::kPing, ping) +
                          fragment(Opcode::kContinuation, b, true));
    EXPECT_EQ(o.events, (Events{"ping:" + ping, binaryEv(a + b)}));
}

TEST(MessageReaderTest, BufferedBytesWhileFragmented) {
    MessageReader r;
    Recorder rec;
    ReaderConfig cfg;
    std::string in = fragment(Opcode::kBinary, std::string(1000, 'x'), false);
    EXPECT_EQ(r.consume(reinterpret_cast<uint8_t*>(in.data()), in.size(), cfg, nullptr, rec),
              ReadResult::kContinue);
    EXPECT_GE(r.bufferedBytes(), 1000u);
    // Only a header, split: still nothing more allocated than the message.
    std::string tail = fragment(Opcode::kContinuation, "yz", true);
    EXPECT_EQ(r.consume(reinterpret_cast<uint8_t*>(tail.data()), 3, cfg, nullptr, rec),
              ReadResult::kContinue);
    EXPECT_EQ(
        r.consume(reinterpret_cast<uint8_t*>(tail.data()) + 3, tail.size() - 3, cfg, nullptr, rec),
        ReadResult::kContinue);
    EXPECT_EQ(rec.events, (Events{binaryEv(std::string(1000, 'x') + "yz")}));
    EXPECT_EQ(r.bufferedBytes(), 0u);
}

TEST(MessageReaderTest, PartialHeaderOwnsNoHeapMemory) {
    MessageReader r;
    Recorder rec;
    ReaderConfig cfg;
    std::string in = frame(Opcode::kBinary, std::string(70000, 'x'));
    EXPECT_EQ(r.consume(reinterpret_cast<uint8_t*>(in.data()), 9, cfg, nullptr, rec),
              ReadResult::kContinue);
    EXPECT_EQ(r.bufferedBytes(), 0u);
    EXPECT_EQ(
        r.consume(reinterpret_cast<uint8_t*>(in.data()) + 9, in.size() - 9, cfg, nullptr, rec),
        ReadResult::kContinue);
    EXPECT_EQ(rec.events, (Events{binaryEv(std::string(70000, 'x'))}));
    EXPECT_EQ(rec.zero_copy, 0);  // buf_begin unset: just make sure it was delivered
}

// A frame split only in its header still arrives zero-copy once its payload is in one read.
TEST(MessageReaderTest, SplitHeaderThenWholePayloadIsZeroCopy) {
    MessageReader r;
    Recorder rec;
    ReaderConfig cfg;
    std::string in = frame(Opcode::kText, "payload here");
    std::vector<uint8_t> first(in.begin(), in.begin() + 3);
    std::vector<uint8_t> second(in.begin() + 3, in.end());
    r.consume(first.data(), first.size(), cfg, nullptr, rec);
    rec.buf_begin = second.data();
    rec.buf_end = second.data() + second.size();
    r.consume(second.data(), second.size(), cfg, nullptr, rec);
    EXPECT_EQ(rec.events, (Events{textEv("payload here")}));
    EXPECT_EQ(rec.zero_copy, 1);
    EXPECT_EQ(r.bufferedBytes(), 0u);
}

// ---- Protocol violations, each with its error and close code -----------------------------

struct ViolationCase {
    const char* name;
    std::string input;
    WsError error;
    uint16_t close_code;
    bool compression = false;
    Events before_error = {};  // events the input itself produces before the violation
};

TEST(MessageReaderTest, Violations) {
    const std::string big16(200, 'x');
    const std::vector<ViolationCase> cases = {
        {"rsv1 not negotiated", raw({0xC1, 0x82}, "hi"), WsError::kReservedBits, 1002},
        {"rsv2", raw({0xA1, 0x82}, "hi"), WsError::kReservedBits, 1002},
        {"rsv3", raw({0x91, 0x82}, "hi"), WsError::kReservedBits, 1002},
        {"rsv2 with compression", raw({0xA1, 0x82}, "hi"), WsError::kReservedBits, 1002, true},
        {"rsv1 on ping", raw({0xC9, 0x80}), WsError::kCompressedControl, 1002, true},
        {"rsv1 on continuation", fragment(Opcode::kBinary, "a", false) + raw({0xC0, 0x81}, "b"),
         WsError::kCompressedControl, 1002, true},
        {"opcode 3", raw({0x83, 0x80}), WsError::kReservedOpcode, 1002},
        {"opcode 7", raw({0x87, 0x80}), WsError::kReservedOpcode, 1002},
        {"opcode B", raw({0x8B, 0x80}), WsError::kReservedOpcode, 1002},
        {"opcode F", raw({0x8F, 0x80}), WsError::kReservedOpcode, 1002},
        {"ping of 126", raw({0x89, 0xFE, 0x00, 0x7E}, std::string(126, 'p')),
         WsError::kControlFrameTooLong, 1002},
        {"close of 126", raw({0x88, 0xFE, 0x00, 0x7E}, std::string(126, 'p')),
         WsError::kControlFrameTooLong, 1002},
        {"ping fin=0", raw({0x09, 0x80}), WsError::kFragmentedControl, 1002},
        {"close fin=0", raw({0x08, 0x82}, "\x03\xe8"), WsError::kFragmentedControl, 1002},
        {"continuation first", fragment(Opcode::kContinuation, "x", true),
         WsError::kUnexpectedContinuation, 1002},
        {"continuation after complete message",
         frame(Opcode::kText, "x") + fragment(Opcode::kContinuation, "y", true),
         WsError::kUnexpectedContinuation,
         1002,
         false,
         {textEv("x")}},
        {"text while fragmented", fragment(Opcode::kText, "a", false) + frame(Opcode::kText, "b"),
         WsError::kExpectedContinuation, 1002},
        {"binary while fragmented",
         fragment(Opcode::kBinary, "a", false) + fragment(Opcode::kBinary, "b", false),
         WsError::kExpectedContinuation, 1002},
        {"16-bit length for 125", raw({0x82, 0xFE, 0x00, 0x7D}, std::string(125, 'x')),
         WsError::kNonMinimalLength, 1002},
        {"16-bit length for 0", raw({0x82, 0xFE, 0x00, 0x00}), WsError::kNonMinimalLength, 1002},
        {"64-bit length for 200", raw({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 200}, big16),
         WsError::kNonMinimalLength, 1002},
        {"64-bit length for 65535", raw({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}),
         WsError::kNonMinimalLength, 1002},
        {"64-bit length MSB", raw({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1}), WsError::kLengthHighBit,
         1002},
        {"close payload of 1", frame(Opcode::kClose, "\x03"), WsError::kBadClosePayload, 1002},
        {"close code 999", frame(Opcode::kClose, "\x03\xe7"), WsError::kBadCloseCode, 1002},
        {"close code 1004", frame(Opcode::kClose, "\x03\xec"), WsError::kBadCloseCode, 1002},
        {"close code 1005", frame(Opcode::kClose, "\x03\xed"), WsError::kBadCloseCode, 1002},
        {"close code 1006", frame(Opcode::kClose, "\x03\xee"), WsError::kBadCloseCode, 1002},
        {"close code 1015", frame(Opcode::kClose, "\x03\xf7"), WsError::kBadCloseCode, 1002},
        {"close code 2999", frame(Opcode::kClose, "\x0b\xb7"), WsError::kBadCloseCode, 1002},
        {"close code 5000", frame(Opcode::kClose, "\x13\x88"), WsError::kBadCloseCode, 1002},
        {"close code 0", frame(Opcode::kClose, std::string("\0\0", 2)), WsError::kBadCloseCode,
         1002},
        {"close reason not UTF-8",
         frame(Opcode::kClose,
               "\x03\xe8"
               "ok\xc3\x28"),
         WsError::kInvalidCloseReason, 1007},
        {"text not UTF-8", frame(Opcode::kText, "abc\xff"), WsError::kInvalidUtf8, 1007},
        {"text surrogate", frame(Opcode::kText, "\xed\xa0\x80"), WsError::kInvalidUtf8, 1007},
        {"text overlong", frame(Opcode::kText, "\xc0\xaf"), WsError::kInvalidUtf8, 1007},
        {"text truncated at FIN", frame(Opcode::kText, "a\xe2\x82"), WsError::kInvalidUtf8, 1007},
        {"fragmented text truncated at FIN",
         fragment(Opcode::kText, "\xe2\x82", false) + fragment(Opcode::kContinuation, "", true),
         WsError::kInvalidUtf8, 1007},
    };
    for (const ViolationCase& c : cases) {
        SCOPED_TRACE(c.name);
        FeedSetup s;
        s.cfg.compression = c.compression;
        // A valid message first: the events before the violation are kept.
        const Outcome o =
            run(frame(Opcode::kText, "before") + c.input + frame(Opcode::kText, "x"), s);
        Events expected = {textEv("before")};
        expected.insert(expected.end(), c.before_error.begin(), c.before_error.end());
        expected.push_back(errorEv(c.error));
        EXPECT_EQ(o.events, expected);
        EXPECT_TRUE(o.stopped);
        EXPECT_EQ(closeCodeFor(c.error), c.close_code);
    }
}

TEST(MessageReaderTest, ValidCloseCodes) {
    for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                          3000, 3999, 4000, 4999}) {
        const Outcome o =
            run(frame(Opcode::kClose, closePayload(code, "bye")) + frame(Opcode::kText, "ignored"));
        EXPECT_EQ(o.events, (Events{closeEv(code, "bye")})) << code;
        EXPECT_TRUE(o.stopped);
    }
}

TEST(MessageReaderTest, CloseWithoutPayloadIs1005) {
    const Outcome o = run(frame(Opcode::kClose, "") + frame(Opcode::kText, "ignored"));
    EXPECT_EQ(o.events, (Events{closeEv(close_code::kNoStatus)}));
    EXPECT_TRUE(o.stopped);
}

TEST(MessageReaderTest, CloseWithLongUtf8Reason) {
    const std::string reason = std::string(100, 'r') + "\xce\xba\xe1\xbd\xb9\xcf\x83";
    const Outcome o = run(frame(Opcode::kClose, closePayload(1000, reason)));
    EXPECT_EQ(o.events, (Events{closeEv(1000, reason)}));
}

TEST(MessageReaderTest, CloseInsideFragmentedMessage) {
    const Outcome o =
        run(fragment(Opcode::kText, "part", false) + frame(Opcode::kClose, closePayload(1001)));
    EXPECT_EQ(o.events, (Events{closeEv(1001)}));
    EXPECT_TRUE(o.stopped);
}

// ---- Fail-fast UTF-8 (Autobahn 6.4.x) -----------------------------------------------------

// Feeds `first` and expects the error already, before `rest` exists.
void expectErrorBefore(const std::string& first, WsError e) {
    for (const auto& sizes : splitPatterns(first.size())) {
        const Outcome o = feed(first, sizes, FeedSetup{});
        EXPECT_EQ(o.events, (Events{errorEv(e)}));
        EXPECT_TRUE(o.stopped);
    }
}

TEST(MessageReaderTest, InvalidUtf8InFirstFragmentFailsAtOnce) {
    // 6.4.1: the first fragment holds U+110000 (F4 90 80 80); the next fragment never comes.
    expectErrorBefore(fragment(Opcode::kText,
                               "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                               "\xf4\x90\x80\x80",
                               false),
                      WsError::kInvalidUtf8);
}

TEST(MessageReaderTest, InvalidUtf8InSecondFragmentFailsBeforeTheThird) {
    // 6.4.2 shape: valid, then the fragment that makes it invalid, then (never sent) the rest.
    expectErrorBefore(fragment(Opcode::kText, "\xce\xba\xe1\xbd\xb9", false) +
                          fragment(Opcode::kContinuation, "\xf4\x90\x80\x80", false),
                      WsError::kInvalidUtf8);
    // The invalid code point split across the fragments: F4 | 90.
    expectErrorBefore(
        fragment(Opcode::kText, "ok\xf4", false) + fragment(Opcode::kContinuation, "\x90", false),
        WsError::kInvalidUtf8);
}

TEST(MessageReaderTest, InvalidUtf8InPartialFrameFailsBeforeTheFrameEnds) {
    // 6.4.3/6.4.4 shape: one frame announced whole, only its first chunk delivered.
    const std::string payload =
        std::string("\xce\xba\xe1\xbd\xb9\xf4\x90\x80\x80") + std::string(500, 'x');
    const std::string f = frame(Opcode::kText, payload);
    const size_t header = frameHeaderSize(payload.size(), true);
    expectErrorBefore(f.substr(0, header + 7), WsError::kInvalidUtf8);  // ...F4 90: already bad
    // ...F4 alone is still a valid prefix: no event yet.
    const Outcome o = feed(f.substr(0, header + 6), {header + 6}, FeedSetup{});
    EXPECT_TRUE(o.events.empty());
    EXPECT_FALSE(o.stopped);
}

TEST(MessageReaderTest, ValidCodePointsAcrossFragments) {
    const std::string s = "\xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9";  // 😀 € é
    for (size_t a = 0; a <= s.size(); ++a) {
        for (size_t b = a; b <= s.size(); ++b) {
            const Outcome o =
                run(fragment(Opcode::kText, s.substr(0, a), false) + frame(Opcode::kPing, "") +
                    fragment(Opcode::kContinuation, s.substr(a, b - a), false) +
                    fragment(Opcode::kContinuation, s.substr(b), true));
            ASSERT_EQ(o.events, (Events{"ping:", textEv(s)})) << a << " " << b;
        }
    }
}

// ---- Size limit ---------------------------------------------------------------------------

TEST(MessageReaderTest, MessageSizeLimit) {
    FeedSetup s;
    s.cfg.max_message_size = 100;
    EXPECT_EQ(run(frame(Opcode::kBinary, std::string(100, 'x')), s).events,
              (Events{binaryEv(std::string(100, 'x'))}));
    EXPECT_EQ(run(frame(Opcode::kBinary, std::string(101, 'x')), s).events,
              (Events{errorEv(WsError::kMessageTooBig)}));
    EXPECT_EQ(run(fragment(Opcode::kText, std::string(60, 'x'), false) +
                      fragment(Opcode::kContinuation, std::string(40, 'y'), true),
                  s)
                  .events,
              (Events{textEv(std::string(60, 'x') + std::string(40, 'y'))}));
    EXPECT_EQ(run(fragment(Opcode::kText, std::string(60, 'x'), false) +
                      fragment(Opcode::kContinuation, std::string(41, 'y'), true),
                  s)
                  .events,
              (Events{errorEv(WsError::kMessageTooBig)}));
    // Control frames do not count against the message.
    EXPECT_EQ(run(fragment(Opcode::kText, std::string(100, 'x'), false) +
                      frame(Opcode::kPing, std::string(125, 'p')) +
                      fragment(Opcode::kContinuation, "", true),
                  s)
                  .events,
              (Events{"ping:" + std::string(125, 'p'), textEv(std::string(100, 'x'))}));
    EXPECT_EQ(closeCodeFor(WsError::kMessageTooBig), 1009);
}

// The limit is enforced from the header alone: nothing of the payload is buffered.
TEST(MessageReaderTest, OversizedFrameFailsOnItsHeader) {
    FeedSetup s;
    s.cfg.max_message_size = 1000;
    const std::string f = raw({0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0});  // 1 MiB announced
    const Outcome o = run(f, s);
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kMessageTooBig)}));
    EXPECT_EQ(o.buffered, 0u);
    // Largest legal 64-bit length: still just an error, no allocation attempt.
    const std::string huge = raw({0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
    EXPECT_EQ(run(huge).events, (Events{errorEv(WsError::kMessageTooBig)}));
}

// ---- Handler asks to stop -----------------------------------------------------------------

TEST(MessageReaderTest, HandlerReturningFalseStops) {
    const std::string in = frame(Opcode::kText, "one") + frame(Opcode::kPing, "p") +
                           fragment(Opcode::kText, "thr", false) +
                           fragment(Opcode::kContinuation, "ee", true) + frame(Opcode::kText, "4");
    for (size_t stop_after = 1; stop_after <= 3; ++stop_after) {
        FeedSetup s;
        s.stop_after = stop_after;
        const Outcome o = run(in, s);
        const Events all = {textEv("one"), "ping:p", textEv("three")};
        EXPECT_EQ(o.events, Events(all.begin(), all.begin() + static_cast<ptrdiff_t>(stop_after)));
        EXPECT_TRUE(o.stopped);
    }
}

TEST(MessageReaderTest, MoveKeepsPartialState) {
    ReaderConfig cfg;
    Recorder rec;
    MessageReader a;
    std::string in =
        fragment(Opcode::kText, "abc", false) + fragment(Opcode::kContinuation, "def", true);
    const size_t cut = in.size() - 2;
    a.consume(reinterpret_cast<uint8_t*>(in.data()), cut, cfg, nullptr, rec);
    MessageReader b(std::move(a));
    EXPECT_EQ(a.bufferedBytes(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is idle
    MessageReader c;
    c = std::move(b);
    c.consume(reinterpret_cast<uint8_t*>(in.data()) + cut, 2, cfg, nullptr, rec);
    EXPECT_EQ(rec.events, (Events{textEv("abcdef")}));
}

// ---- Writer ↔ reader round trips ----------------------------------------------------------

// Random messages, randomly fragmented, with control frames between fragments, written by the
// writer in one role and read back in the other.
void roundTrip(Role writer_role, unsigned seed) {
    std::mt19937 rng(seed);
    std::string wire;
    Events expected;
    for (int m = 0; m < 30; ++m) {
        const bool text = rng() % 2 == 0;
        // Mostly small; a few cross the 16- and 64-bit length forms.
        std::string payload(rng() % 10 == 0 ? 65000 + rng() % 2000 : rng() % 300, '\0');
        for (char& ch : payload) {
            ch = text ? static_cast<char>('a' + rng() % 26) : static_cast<char>(rng());
        }
        const size_t fragments = 1 + rng() % 4;
        size_t pos = 0;
        for (size_t f = 0; f < fragments; ++f) {
            const bool last = f + 1 == fragments;
            const size_t n = last ? payload.size() - pos : rng() % (payload.size() - pos + 1);
            const Opcode op =
                f == 0 ? (text ? Opcode::kText : Opcode::kBinary) : Opcode::kContinuation;
            FrameOpts o;
            o.fin = last;
            o.masked = writer_role == Role::kClient;
            for (uint8_t& k : o.key) {
                k = static_cast<uint8_t>(rng());
            }
            wire += frame(op, std::string_view(payload).substr(pos, n), o);
            pos += n;
            if (!last && rng() % 3 == 0) {
                const std::string ping(rng() % 126, 'q');
                o.fin = true;
                wire += frame(Opcode::kPing, ping, o);
                expected.push_back("ping:" + ping);
            }
        }
        expected.push_back(text ? textEv(payload) : binaryEv(payload));
    }
    FeedSetup s;
    s.cfg.role = writer_role == Role::kClient ? Role::kServer : Role::kClient;
    const Outcome o = run(wire, s);
    EXPECT_EQ(o.events, expected);
    EXPECT_FALSE(o.stopped);
    EXPECT_EQ(o.buffered, 0u);
}

TEST(MessageReaderTest, ClientWriterToServerReader) {
    for (unsigned seed = 0; seed < 4; ++seed) {
        roundTrip(Role::kClient, seed);
    }
}

TEST(MessageReaderTest, ServerWriterToClientReader) {
    for (unsigned seed = 10; seed < 14; ++seed) {
        roundTrip(Role::kServer, seed);
    }
}

// ---- permessage-deflate (RFC 7692) --------------------------------------------------------

// Raw deflate with a sync flush and the 00 00 FF FF tail removed (§7.2.1), via zlib directly so
// the reader's tests do not depend on our Deflater.
std::string compress(std::string_view in) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY),
              Z_OK);
    std::string out(in.size() + in.size() / 100 + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    EXPECT_GE(out.size(), 4u);
    EXPECT_EQ(out.substr(out.size() - 4), std::string("\0\0\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
}

std::string compressedFrame(Opcode op, std::string_view payload) {
    FrameOpts o;
    o.rsv1 = true;
    return frame(op, payload, o);
}

FeedSetup compressed(size_t max = 16u << 20) {
    FeedSetup s;
    s.cfg.compression = true;
    s.cfg.max_message_size = max;
    s.inflater = [] { return std::make_unique<Inflater>(15, false); };
    return s;
}

TEST(MessageReaderDeflateTest, SingleFrameMessages) {
    const std::string text = "hello hello hello hello, compressed world";
    const Outcome o =
        run(compressedFrame(Opcode::kText, compress(text)) + frame(Opcode::kText, "plain") +
                compressedFrame(Opcode::kBinary, compress(std::string(5000, 'z'))),
            compressed());
    EXPECT_EQ(o.events, (Events{textEv(text), textEv("plain"), binaryEv(std::string(5000, 'z'))}));
    EXPECT_EQ(o.buffered, 0u);
}

TEST(MessageReaderDeflateTest, FragmentedWithInterleavedPing) {
    const std::string text(3000, 'k');
    const std::string z = compress(text);
    FrameOpts first;
    first.rsv1 = true;
    first.fin = false;
    const size_t cut = z.size() / 2;
    const Outcome o =
        run(frame(Opcode::kText, z.substr(0, cut), first) + frame(Opcode::kPing, "mid") +
                fragment(Opcode::kContinuation, z.substr(cut), true),
            compressed());
    EXPECT_EQ(o.events, (Events{"ping:mid", textEv(text)}));
}

TEST(MessageReaderDeflateTest, CorruptStream) {
    const Outcome o =
        run(compressedFrame(Opcode::kBinary, "\xff\xff\xff\xff garbage"), compressed());
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kInflateFailed)}));
    EXPECT_EQ(closeCodeFor(WsError::kInflateFailed), 1007);
}

TEST(MessageReaderDeflateTest, InflatedTextMustBeUtf8) {
    const Outcome o = run(compressedFrame(Opcode::kText, compress("ok\xed\xa0\x80")), compressed());
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kInvalidUtf8)}));
}

TEST(MessageReaderDeflateTest, ZipBombHitsTheLimit) {
    const std::string z = compress(std::string(1 << 20, 'a'));  // ~1 KiB on the wire
    const Outcome o = run(compressedFrame(Opcode::kBinary, z), compressed(64 * 1024));
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kMessageTooBig)}));
}

TEST(MessageReaderDeflateTest, NoInflaterFailsSafely) {
    FeedSetup s = compressed();
    s.inflater = nullptr;
    const Outcome o = run(compressedFrame(Opcode::kText, compress("x")), s);
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kInflateFailed)}));
}

TEST(MessageReaderDeflateTest, CompressedFrameOverLimitFailsOnHeader) {
    const Outcome o =
        run(raw({0xC2, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0}), compressed(1000));  // 1 MiB announced
    EXPECT_EQ(o.events, (Events{errorEv(WsError::kMessageTooBig)}));
}

}  // namespace
}  // namespace sb::ws
