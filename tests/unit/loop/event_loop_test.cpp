#include "loop/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace sb::loop {
namespace {

TEST(EventLoop, PostFromAnotherThreadRunsOnLoopThread) {
    EventLoop loop;
    std::thread::id loop_thread;
    std::atomic<int> ran{0};
    std::thread t([&] {
        loop_thread = std::this_thread::get_id();
        loop.run();
    });
    for (int i = 0; i < 100; ++i) {
        loop.post([&] {
            EXPECT_EQ(std::this_thread::get_id(), loop_thread);
            ran.fetch_add(1);
        });
    }
    loop.post([&] { loop.stop(); });
    t.join();
    EXPECT_EQ(ran.load(), 100);
}

struct Counted : Pollable {
    static inline int alive = 0;
    Counted() { ++alive; }
    ~Counted() override { --alive; }
    void onEvents(uint32_t) override {}
};

TEST(EventLoop, DestroyLaterFreesAtEndOfIteration) {
    EventLoop loop;
    auto* c = new Counted;
    EXPECT_EQ(Counted::alive, 1);
    loop.post([&] {
        loop.destroyLater(c);
        EXPECT_EQ(Counted::alive, 1);  // still alive inside the iteration
        loop.post([&] { loop.stop(); });
    });
    loop.run();
    EXPECT_EQ(Counted::alive, 0);
}

struct TimerProbe : TimerNode {
    EventLoop* loop = nullptr;
    uint64_t fired_at = 0;
};

TEST(EventLoop, TimersFireFromRun) {
    EventLoop loop;
    TimerProbe p;
    p.loop = &loop;
    p.fire = [](TimerNode* n) {
        auto* self = static_cast<TimerProbe*>(n);
        self->fired_at = EventLoop::monotonicMs();
        self->loop->stop();
    };
    const uint64_t start = EventLoop::monotonicMs();
    loop.timers().schedule(&p, 300);
    loop.run();
    EXPECT_GE(p.fired_at - start, 250u);  // never early (whole ticks)
}

}  // namespace
}  // namespace sb::loop
