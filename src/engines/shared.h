// What the shared engines (redis/, nats/) have in common beyond broker::Engine: the clocks
// (publications carry wall-clock time across nodes; the server measures on the monotonic
// clock), a transparent string hash for their channel tables, and handing an event to every
// interested loop.
#pragma once

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "broker/engine.h"

namespace sb::engines {

inline uint64_t clockMs(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

inline uint64_t wallMs() {
    return clockMs(CLOCK_REALTIME);
}

// A wall-clock stamp (another node's, or the broker's) on the monotonic clock: now minus its
// age. A stamp from a clock that runs ahead counts as now.
inline uint64_t toMonotonic(uint64_t wall_ms) {
    const uint64_t wall = clockMs(CLOCK_REALTIME);
    const uint64_t mono = clockMs(CLOCK_MONOTONIC);
    const uint64_t age = wall > wall_ms ? wall - wall_ms : 0;
    return mono > age ? mono - age : 0;
}

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

// One sink call per loop whose bit is set in `loops`, the last one taking `ev` by move.
inline void handToLoops(broker::LoopSink* sink, uint64_t loops, broker::Event ev) {
    if (sink == nullptr) {
        return;
    }
    while (loops != 0) {
        const auto loop_id = static_cast<uint32_t>(__builtin_ctzll(loops));
        loops &= loops - 1;
        sink->deliver(loop_id, loops == 0 ? std::move(ev) : ev);
    }
}

}  // namespace sb::engines
