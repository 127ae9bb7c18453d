// Micro-benchmarks of the broker core (memory engine): publish() with history on, fanned out
// to 1 and 8 interested loops through a no-op sink; the same from 2 threads on one channel
// and on separate channels; subscribe with recovery; session track+ack.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "broker/memory_engine.h"
#include "broker/session_store.h"

namespace {

using sb::broker::Event;
using sb::broker::LoopSink;
using sb::broker::NamespaceOptions;

class NoopSink : public LoopSink {
public:
    void deliver(uint32_t, Event ev) override { benchmark::DoNotOptimize(ev.pub.get()); }
};

// A chat message as it comes off the wire (64 bytes of JSON).
const std::string kData = R"({"text":"hello from the benchmark, sixty-four bytes of it!!!!!"})";

NamespaceOptions chatNamespace() {
    NamespaceOptions ns;
    ns.history_size = 100;
    ns.history_ttl_ms = 300'000;
    return ns;
}

// Includes copying the payload into a std::string per publish, as the server does.
void BM_Publish(benchmark::State& state) {
    auto eng = sb::broker::makeMemoryEngine();
    NoopSink sink;
    eng->setSink(&sink);
    auto loops = static_cast<uint32_t>(state.range(0));
    for (uint32_t l = 0; l < loops; ++l) {
        eng->loopSubscribed("chat:lobby", l);
    }
    NamespaceOptions ns = chatNamespace();
    uint64_t now = 1;
    for (auto _ : state) {
        auto r = eng->publish("chat:lobby", ns, kData, "", now);
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.counters["deliveries/s"] = benchmark::Counter(
        static_cast<double>(state.iterations()) * loops, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Publish)->ArgName("loops")->Arg(1)->Arg(8);

void BM_PublishWithIdempotencyKey(benchmark::State& state) {
    auto eng = sb::broker::makeMemoryEngine();
    NoopSink sink;
    eng->setSink(&sink);
    eng->loopSubscribed("chat:lobby", 0);
    NamespaceOptions ns = chatNamespace();
    uint64_t i = 0;
    for (auto _ : state) {
        std::string key = "k-" + std::to_string(i++);
        auto r = eng->publish("chat:lobby", ns, kData, key, 1);
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PublishWithIdempotencyKey);

// Shared by the threads of one run: built once, before any thread starts its loop.
sb::broker::Engine& sharedEngine(uint32_t loops) {
    static NoopSink sink;
    static std::unique_ptr<sb::broker::Engine> eng = [&] {
        auto e = sb::broker::makeMemoryEngine();
        e->setSink(&sink);
        for (const char* ch : {"chat:hot", "chat:t0", "chat:t1", "chat:t2", "chat:t3"}) {
            for (uint32_t l = 0; l < loops; ++l) {
                e->loopSubscribed(ch, l);
            }
        }
        return e;
    }();
    return *eng;
}

// arg 0: all threads on one channel (contend on its lock); 1: one channel per thread.
void BM_PublishThreads(benchmark::State& state) {
    sb::broker::Engine& eng = sharedEngine(2);
    NamespaceOptions ns = chatNamespace();
    std::string channel =
        state.range(0) == 0 ? "chat:hot" : "chat:t" + std::to_string(state.thread_index() % 4);
    for (auto _ : state) {
        auto r = eng.publish(channel, ns, kData, "", 1);
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PublishThreads)->ArgName("separate")->Arg(0)->Arg(1)->Threads(2)->UseRealTime();

// A reconnecting client recovering the last 50 publications of a 100-deep history.
void BM_SubscribeRecover50(benchmark::State& state) {
    auto eng = sb::broker::makeMemoryEngine();
    NamespaceOptions ns = chatNamespace();
    sb::broker::StreamPos top;
    for (int i = 0; i < 100; ++i) {
        top = eng->publish("chat:lobby", ns, kData, "", 1).pos;
    }
    std::optional<sb::broker::StreamPos> since = sb::broker::StreamPos{top.epoch, top.offset - 50};
    for (auto _ : state) {
        auto r = eng->subscribe("chat:lobby", ns, 0, since, 1);
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SubscribeRecover50);

void BM_SessionTrackAck(benchmark::State& state) {
    sb::broker::SessionStore store;
    std::string id = store.create();
    NamespaceOptions ns;
    ns.delivery = NamespaceOptions::Delivery::kAtLeastOnce;
    store.subscribe(id, "jobs:eu", ns);
    auto pub = std::make_shared<sb::broker::Publication>(
        sb::broker::Publication{"jobs:eu", "e_000000000000", 0, 1, kData});
    uint64_t offset = 0;
    for (auto _ : state) {
        pub->offset = ++offset;  // benchmark only: reuse one object, acked right away
        store.track(id, pub);
        store.ack(id, "jobs:eu", offset);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SessionTrackAck);

}  // namespace

BENCHMARK_MAIN();
