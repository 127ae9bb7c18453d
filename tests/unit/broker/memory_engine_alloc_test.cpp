// Allocations on the publish path: replaces the global operator new/delete (for this whole test
// binary) with counting versions and shows that publish() costs the same number of allocations
// whether 0, 1, 3 or 8 loops are interested — fan-out allocates nothing per loop.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "broker/memory_engine.h"
#include "test_sink.h"

namespace {

std::atomic<bool> g_counting{false};
std::atomic<size_t> g_allocs{0};

void* countedAlloc(size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) {
        g_allocs.fetch_add(1, std::memory_order_relaxed);
    }
    return std::malloc(n == 0 ? 1 : n);
}

}  // namespace

// Every replaceable non-aligned form, so no pointer from malloc is ever freed by a sanitizer's
// own operator delete (that would be reported as an alloc/dealloc mismatch).
void* operator new(size_t n) {
    if (void* p = countedAlloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    if (void* p = countedAlloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    return countedAlloc(n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    return countedAlloc(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace sb::broker {
namespace {

struct PublishCost {
    size_t allocs_per_publish;
    uint64_t deliveries;
};

// Publishes kMeasured times to a warmed-up channel with history on and `loops` interested
// loops; data strings are built before counting starts (the caller owns them).
PublishCost measurePublish(std::string_view channel, uint32_t loops) {
    constexpr size_t kWarmup = 300;
    constexpr size_t kMeasured = 1000;
    auto eng = makeMemoryEngine();
    testing::CountingSink sink;
    eng->setSink(&sink);
    for (uint32_t l = 0; l < loops; ++l) {
        eng->loopSubscribed(channel, l);
    }
    NamespaceOptions ns;
    ns.history_size = 100;
    ns.history_ttl_ms = 60'000;
    std::vector<std::string> data(kWarmup + kMeasured,
                                  std::string(R"({"text":"a message longer than SSO"})"));
    for (size_t i = 0; i < kWarmup; ++i) {
        eng->publish(channel, ns, std::move(data[i]), "", 1000);
    }
    g_allocs = 0;
    g_counting = true;
    for (size_t i = kWarmup; i < kWarmup + kMeasured; ++i) {
        PublishResult r = eng->publish(channel, ns, std::move(data[i]), "", 1000);
        (void)r;
    }
    g_counting = false;
    uint64_t deliveries = 0;
    for (uint32_t l = 0; l < loops; ++l) {
        deliveries += sink.count(l);
    }
    return PublishCost{g_allocs.load() / kMeasured, deliveries};
}

TEST(MemoryEngineAlloc, PublishAllocationsDoNotGrowWithInterestedLoops) {
    PublishCost none = measurePublish("chat:lobby", 0);
    PublishCost one = measurePublish("chat:lobby", 1);
    PublishCost three = measurePublish("chat:lobby", 3);
    PublishCost eight = measurePublish("chat:lobby", 8);
    // The one allocation: the shared Publication (make_shared: object and count together).
    // The channel name and epoch fit std::string's inline buffer; data is moved in; the
    // history ring is at its working size; Events are passed by value to the sink.
    EXPECT_EQ(none.allocs_per_publish, 1u);
    EXPECT_EQ(one.allocs_per_publish, 1u);
    EXPECT_EQ(three.allocs_per_publish, 1u);
    EXPECT_EQ(eight.allocs_per_publish, 1u);
    EXPECT_EQ(three.deliveries, 3u * 1300u);
    EXPECT_EQ(eight.deliveries, 8u * 1300u);
}

TEST(MemoryEngineAlloc, LongChannelNameAddsOneCopyNotOnePerLoop) {
    const std::string name = "chat:a-channel-name-longer-than-fifteen-bytes";
    PublishCost one = measurePublish(name, 1);
    PublishCost three = measurePublish(name, 3);
    EXPECT_EQ(one.allocs_per_publish, 2u);  // + Publication::channel
    EXPECT_EQ(three.allocs_per_publish, 2u);
}

}  // namespace
}  // namespace sb::broker
