#include "loop/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace sb::loop {
namespace {

struct Fired : TimerNode {
    int id = 0;
    std::vector<int>* log = nullptr;
};

void record(TimerNode* n) {
    auto* f = static_cast<Fired*>(n);
    f->log->push_back(f->id);
}

TEST(TimerWheel, FiresInDueOrderAndNotEarly) {
    TimerWheel w(0);
    std::vector<int> log;
    Fired a, b, c;
    for (auto* f : {&a, &b, &c}) {
        f->fire = &record;
        f->log = &log;
    }
    a.id = 1;
    b.id = 2;
    c.id = 3;
    w.schedule(&a, 1000);
    w.schedule(&b, 250);
    w.schedule(&c, 5000);
    EXPECT_EQ(w.armedCount(), 3u);
    w.advance(249);
    EXPECT_TRUE(log.empty());
    w.advance(250);
    EXPECT_EQ(log, std::vector<int>({2}));
    w.advance(999);
    EXPECT_EQ(log, std::vector<int>({2}));
    w.advance(1000);
    EXPECT_EQ(log, std::vector<int>({2, 1}));
    w.advance(10'000);
    EXPECT_EQ(log, std::vector<int>({2, 1, 3}));
    EXPECT_EQ(w.armedCount(), 0u);
}

TEST(TimerWheel, LongerThanOneLapWraps) {
    TimerWheel w(0);
    std::vector<int> log;
    Fired a;
    a.fire = &record;
    a.log = &log;
    a.id = 7;
    const uint64_t span = TimerWheel::kTickMs * TimerWheel::kSlots;
    w.schedule(&a, span + 500);  // lands in an already-passed slot index: must wait a lap
    w.advance(span);
    EXPECT_TRUE(log.empty());
    w.advance(span + 500);
    EXPECT_EQ(log, std::vector<int>({7}));
}

TEST(TimerWheel, CancelAndReschedule) {
    TimerWheel w(0);
    std::vector<int> log;
    Fired a;
    a.fire = &record;
    a.log = &log;
    w.schedule(&a, 500);
    w.cancel(&a);
    EXPECT_FALSE(a.armed());
    w.advance(1000);
    EXPECT_TRUE(log.empty());
    w.schedule(&a, 500);
    w.schedule(&a, 2000);  // re-arming moves it: due 2000 ms after now (1000)
    w.advance(2500);
    EXPECT_TRUE(log.empty());
    w.advance(3000);
    EXPECT_EQ(log.size(), 1u);
}

struct Rearm : TimerNode {
    TimerWheel* w = nullptr;
    int count = 0;
};

TEST(TimerWheel, CallbackMayRescheduleItself) {
    TimerWheel w(0);
    Rearm r;
    r.w = &w;
    r.fire = [](TimerNode* n) {
        auto* self = static_cast<Rearm*>(n);
        if (++self->count < 5) {
            self->w->schedule(self, 250);
        }
    };
    w.schedule(&r, 250);
    w.advance(10'000);
    EXPECT_EQ(r.count, 5);
}

}  // namespace
}  // namespace sb::loop
