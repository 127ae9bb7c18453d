// PubRing: FIFO order across wrap-around and growth, eraseIf, and the buffer policy.
#include "broker/pub_ring.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace sb::broker {
namespace {

PubPtr pub(uint64_t offset) {
    auto p = std::make_shared<Publication>();
    p->offset = offset;
    return p;
}

std::vector<uint64_t> offsets(const PubRing& r) {
    std::vector<uint64_t> out;
    for (size_t i = 0; i < r.size(); ++i) {
        out.push_back(r[i]->offset);
    }
    return out;
}

TEST(PubRing, EmptyRingOwnsNoBuffer) {
    PubRing r;
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.capacity(), 0u);
}

TEST(PubRing, FifoAcrossWrapAroundAndGrowth) {
    PubRing r;
    uint64_t next = 1;
    uint64_t oldest = 1;
    // Keep 5 in a ring of 8 and cycle through many times: head wraps repeatedly.
    for (int i = 0; i < 100; ++i) {
        r.pushBack(pub(next++));
        if (r.size() > 5) {
            EXPECT_EQ(r.front()->offset, oldest++);
            r.popFront();
        }
        EXPECT_EQ(r.back()->offset, next - 1);
    }
    EXPECT_EQ(r.capacity(), 8u);
    // Grow while wrapped: order survives.
    for (int i = 0; i < 20; ++i) {
        r.pushBack(pub(next++));
    }
    std::vector<uint64_t> want;
    for (uint64_t o = oldest; o < next; ++o) {
        want.push_back(o);
    }
    EXPECT_EQ(offsets(r), want);
    EXPECT_EQ(r.capacity(), 32u);
}

TEST(PubRing, ReleasesReferencesOnPop) {
    PubRing r;
    PubPtr p = pub(1);
    r.pushBack(p);
    EXPECT_EQ(p.use_count(), 2);
    r.popFront();
    EXPECT_EQ(p.use_count(), 1);
}

TEST(PubRing, EraseIfKeepsOrder) {
    PubRing r;
    for (uint64_t o = 1; o <= 6; ++o) {
        r.pushBack(pub(o));
    }
    r.popFront();
    r.popFront();
    for (uint64_t o = 7; o <= 9; ++o) {
        r.pushBack(pub(o));  // wraps in the 8-slot buffer
    }
    EXPECT_EQ(r.eraseIf([](const PubPtr& p) { return p->offset % 2 == 0; }), 3u);
    EXPECT_EQ(offsets(r), (std::vector<uint64_t>{3, 5, 7, 9}));
    r.pushBack(pub(10));
    EXPECT_EQ(offsets(r), (std::vector<uint64_t>{3, 5, 7, 9, 10}));
    EXPECT_EQ(r.eraseIf([](const PubPtr&) { return true; }), 5u);
    EXPECT_TRUE(r.empty());
}

TEST(PubRing, LargeDrainedRingFreesItsBuffer) {
    PubRing r;
    for (uint64_t o = 1; o <= 100; ++o) {
        r.pushBack(pub(o));
    }
    EXPECT_EQ(r.capacity(), 128u);
    while (!r.empty()) {
        r.popFront();
    }
    EXPECT_EQ(r.capacity(), 0u);
    r.pushBack(pub(1));
    EXPECT_EQ(r.front()->offset, 1u);
}

}  // namespace
}  // namespace sb::broker
