// Micro-benchmarks of the native protocol codec on the chat hot path: parsing a typical
// ~100-byte publish, and encoding the fan-out `message` event (done once per publication).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/codec.h"

namespace {

namespace protocol = sb::protocol;

// 95 bytes: what a browser client sends for a chat line.
constexpr std::string_view kPublish = R"({"type":"publish","id":17,"channel":"chat:lobby",)"
                                      R"("data":{"user":"alice","text":"hello there!"}})";

void BM_ParsePublish(benchmark::State& state) {
    for (auto _ : state) {
        auto r = protocol::parseRequest(kPublish);
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(kPublish.size()));
}
BENCHMARK(BM_ParsePublish);

// The same request as Python's json.dumps writes it (", " and ": "): data gets minified.
void BM_ParsePublishSpaced(benchmark::State& state) {
    const std::string frame = R"({"type": "publish", "id": 17, "channel": "chat:lobby", )"
                              R"("data": {"user": "alice", "text": "hello there!"}})";
    for (auto _ : state) {
        auto r = protocol::parseRequest(frame);
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_ParsePublishSpaced);

void BM_ParsePing(benchmark::State& state) {
    const std::string_view frame = R"({"type":"ping","id":7})";
    for (auto _ : state) {
        auto r = protocol::parseRequest(frame);
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_ParsePing);

// A publish whose data is a string of state.range(0) bytes.
void BM_ParsePublishLarge(benchmark::State& state) {
    std::string frame = R"({"type":"publish","id":1,"channel":"chat:lobby","data":")";
    frame.append(static_cast<size_t>(state.range(0)), 'x');
    frame += R"("})";
    for (auto _ : state) {
        auto r = protocol::parseRequest(frame);
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(frame.size()));
}
BENCHMARK(BM_ParsePublishLarge)->Arg(1 << 10)->Arg(16 << 10);

// encodeMessage of a 64-byte payload into a reused buffer (the fan-out event).
void BM_EncodeMessage64(benchmark::State& state) {
    const std::string data = R"({"user":"alice","text":"hello there, how is everyone today?!?!"})";
    std::string out;
    out.reserve(256);
    uint64_t offset = 1;
    for (auto _ : state) {
        out.clear();
        protocol::encodeMessage(&out, "chat:lobby", "e_5f2a91c3", offset++, data, false);
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["payload"] = static_cast<double>(data.size());
    state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_EncodeMessage64);

void BM_AppendJsonString(benchmark::State& state) {
    const std::string s = "hello there, how is everyone \"today\"?\n" + std::string(26, 'x');
    std::string out;
    out.reserve(256);
    for (auto _ : state) {
        out.clear();
        protocol::appendJsonString(&out, s);
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_AppendJsonString);

}  // namespace

BENCHMARK_MAIN();
