// Micro-benchmarks of the WebSocket receive hot path: unmasking, UTF-8 validation and the
// frame reader over a buffer of small masked frames (what an echo/chat load looks like).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/frame.h"
#include "ws/mask.h"
#include "ws/message_reader.h"
#include "ws/utf8.h"

namespace {

using sb::ws::Opcode;

void BM_ApplyMask(benchmark::State& state) {
    std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)), 0x5A);
    const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    for (auto _ : state) {
        sb::ws::applyMask(buf.data(), buf.size(), key, 1);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(buf.size()));
}
BENCHMARK(BM_ApplyMask)->Arg(64)->Arg(16 << 10);

std::string asciiText(size_t n) {
    std::string s;
    while (s.size() < n) {
        s += "The quick brown fox jumps over the lazy dog. ";
    }
    s.resize(n);
    return s;
}

// Chat-like text: mostly ASCII words with accented letters, Cyrillic, CJK and emoji mixed in.
std::string mixedText(size_t n) {
    const char* pieces[] = {"hello ", "café ", "naïve ",  "привет ", "мир ", "日本語 ",
                            "😀 ",     "ok ",   "größer ", "€5 ",     "data "};
    std::mt19937 rng(1);
    std::string s;
    for (;;) {
        const std::string_view p = pieces[rng() % std::size(pieces)];
        if (s.size() + p.size() > n) {
            break;
        }
        s += p;
    }
    s.resize(n, ' ');
    return s;
}

void utf8Bench(benchmark::State& state, const std::string& s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    for (auto _ : state) {
        benchmark::DoNotOptimize(sb::ws::isValidUtf8(p, s.size()));
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(s.size()));
}

void BM_Utf8Ascii(benchmark::State& state) {
    utf8Bench(state, asciiText(16 << 10));
}
BENCHMARK(BM_Utf8Ascii);

void BM_Utf8Mixed(benchmark::State& state) {
    const std::string s = mixedText(16 << 10);
    if (!sb::ws::isValidUtf8(s)) {
        state.SkipWithError("mixed text is not UTF-8");
        return;
    }
    utf8Bench(state, s);
}
BENCHMARK(BM_Utf8Mixed);

struct CountingHandler {
    size_t messages = 0;
    size_t bytes = 0;
    bool onMessage(Opcode, std::span<uint8_t> p) {
        ++messages;
        bytes += p.size();
        return true;
    }
    bool onPing(std::span<uint8_t>) { return true; }
    bool onPong(std::span<uint8_t>) { return true; }
    void onClose(uint16_t, std::string_view) {}
    void onError(sb::ws::WsError) {}
};

// 100 masked 64-byte frames as a client sends them. Every key byte is < 0x80, so the ASCII
// payload stays ASCII both masked and unmasked: consume() unmasks in place and the next
// iteration simply unmasks it back, with no copy in the timed loop.
std::vector<uint8_t> clientFrames(Opcode op, size_t count, size_t size) {
    const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    const std::string payload = asciiText(size);
    std::vector<uint8_t> wire;
    for (size_t i = 0; i < count; ++i) {
        uint8_t h[sb::ws::kMaxFrameHeader];
        const size_t hn = sb::ws::writeFrameHeader(h, op, true, false, size, key);
        wire.insert(wire.end(), h, h + hn);
        const size_t at = wire.size();
        wire.resize(at + size);
        sb::ws::copyMasked(wire.data() + at, reinterpret_cast<const uint8_t*>(payload.data()), size,
                           key);
    }
    return wire;
}

void consumeBench(benchmark::State& state, Opcode op, size_t read_size) {
    constexpr size_t kFrames = 100;
    std::vector<uint8_t> wire = clientFrames(op, kFrames, 64);
    const sb::ws::ReaderConfig cfg;  // server role, no compression
    sb::ws::MessageReader reader;
    CountingHandler h;
    for (auto _ : state) {
        for (size_t pos = 0; pos < wire.size(); pos += read_size) {
            const size_t n = std::min(read_size, wire.size() - pos);
            reader.consume(wire.data() + pos, n, cfg, nullptr, h);
        }
        benchmark::DoNotOptimize(h.messages);
    }
    if (h.messages != kFrames * state.iterations()) {
        state.SkipWithError("lost messages");
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kFrames));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}

// The whole buffer in one read: the zero-copy path.
void BM_ConsumeText64(benchmark::State& state) {
    consumeBench(state, Opcode::kText, SIZE_MAX);
}
BENCHMARK(BM_ConsumeText64);

void BM_ConsumeBinary64(benchmark::State& state) {
    consumeBench(state, Opcode::kBinary, SIZE_MAX);
}
BENCHMARK(BM_ConsumeBinary64);

// Reads of 1,000 bytes: some frames and headers straddle reads and go through the spill.
void BM_ConsumeText64SplitReads(benchmark::State& state) {
    consumeBench(state, Opcode::kText, 1000);
}
BENCHMARK(BM_ConsumeText64SplitReads);

}  // namespace

BENCHMARK_MAIN();
