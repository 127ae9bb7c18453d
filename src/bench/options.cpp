// Scenario names and how a run is split among worker processes.
#include "bench/options.h"

#include <algorithm>

namespace sb::bench {

const char* scenarioName(Scenario s) {
    switch (s) {
        case Scenario::kConnect:
            return "connect";
        case Scenario::kEcho:
            return "echo";
        case Scenario::kFanout:
            return "fanout";
        case Scenario::kRamp:
            return "ramp";
    }
    return "?";
}

const char* transportName(Transport t) {
    switch (t) {
        case Transport::kWs:
            return "ws";
        case Transport::kSse:
            return "sse";
        case Transport::kPoll:
            return "poll";
        case Transport::kStomp:
            return "stomp";
    }
    return "?";
}

uint32_t targetCount(const BenchOptions& o) {
    return o.urls.empty() ? 1 : static_cast<uint32_t>(o.urls.size());
}

uint32_t targetFor(const BenchOptions& o, uint32_t conn) {
    const uint32_t n = targetCount(o);
    // Rooms matter only where connections are grouped into them (fanout).
    const uint32_t rooms = o.scenario == Scenario::kFanout ? std::max<uint32_t>(1, o.rooms) : 1;
    return static_cast<uint32_t>((uint64_t{conn % rooms} + conn / rooms) % n);
}

Slice sliceFor(const BenchOptions& o, uint32_t index, uint32_t count) {
    Slice s;
    s.index = index;
    s.count = count == 0 ? 1 : count;
    auto part = [&](uint32_t total, uint32_t i) {
        return static_cast<uint32_t>(uint64_t{total} * i / s.count);
    };
    s.conn_lo = part(o.conns, index);
    s.conn_hi = part(o.conns, index + 1);
    const uint32_t pubs = o.scenario == Scenario::kFanout ? o.publishers : 0;
    s.pub_lo = part(pubs, index);
    s.pub_hi = part(pubs, index + 1);
    return s;
}

}  // namespace sb::bench
