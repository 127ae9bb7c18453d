// Merging and the wire form of bench results (worker process -> parent over a pipe).
#include "bench/result.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace sb::bench {

namespace {

constexpr uint8_t kResultWireVersion = 5;  // 5: the measured window, offset_errors

void putDouble(std::string* out, double d) {
    putVarint(out, std::bit_cast<uint64_t>(d));
}

bool getDouble(std::string_view* in, double* d) {
    uint64_t v = 0;
    if (!getVarint(in, &v)) {
        return false;
    }
    *d = std::bit_cast<double>(v);
    return true;
}

void putString(std::string* out, std::string_view s) {
    putVarint(out, s.size());
    out->append(s);
}

bool getString(std::string_view* in, std::string* s) {
    uint64_t n = 0;
    if (!getVarint(in, &n) || n > in->size()) {
        return false;
    }
    s->assign(in->substr(0, n));
    in->remove_prefix(n);
    return true;
}

}  // namespace

void Counters::add(const Counters& o) {
#define SB_BENCH_ADD(name) name += o.name;
    SB_BENCH_COUNTERS(SB_BENCH_ADD)
#undef SB_BENCH_ADD
}

void TimelineSample::add(const TimelineSample& o) {
    connects += o.connects;
    sent += o.sent;
    received += o.received;
    errors += o.errors;
    open += o.open;
    latency.merge(o.latency);
}

TimelineSample& Timeline::at(uint64_t t_ms) {
    uint64_t i = t_ms / interval_ms_;
    while (i >= kMaxSamples) {
        coarsen();
        i = t_ms / interval_ms_;
    }
    if (i >= samples_.size()) {
        samples_.resize(i + 1);
    }
    return samples_[i];
}

void Timeline::coarsen() {
    std::vector<TimelineSample> merged((samples_.size() + 1) / 2);
    for (size_t i = 0; i < samples_.size(); ++i) {
        TimelineSample& dst = merged[i / 2];
        dst.add(samples_[i]);
        dst.open = samples_[i].open;  // a gauge: the later interval's value stands for the pair
    }
    samples_ = std::move(merged);
    interval_ms_ *= 2;
}

void Timeline::merge(const Timeline& o) {
    Timeline other = o;
    while (other.interval_ms_ < interval_ms_) {
        other.coarsen();
    }
    while (interval_ms_ < other.interval_ms_) {
        coarsen();
    }
    if (other.samples_.size() > samples_.size()) {
        samples_.resize(other.samples_.size());
    }
    for (size_t i = 0; i < other.samples_.size(); ++i) {
        samples_[i].add(other.samples_[i]);
    }
}

void Timeline::serialize(std::string* out) const {
    putVarint(out, interval_ms_);
    putVarint(out, samples_.size());
    for (const TimelineSample& s : samples_) {
        putVarint(out, s.connects);
        putVarint(out, s.sent);
        putVarint(out, s.received);
        putVarint(out, s.errors);
        putVarint(out, s.open);
        s.latency.serialize(out);
    }
}

bool Timeline::deserialize(std::string_view* in) {
    uint64_t interval = 0;
    uint64_t n = 0;
    if (!getVarint(in, &interval) || !getVarint(in, &n) || interval == 0 || interval > UINT32_MAX ||
        n > kMaxSamples) {
        return false;
    }
    interval_ms_ = static_cast<uint32_t>(interval);
    samples_.assign(n, TimelineSample{});
    for (TimelineSample& s : samples_) {
        if (!getVarint(in, &s.connects) || !getVarint(in, &s.sent) || !getVarint(in, &s.received) ||
            !getVarint(in, &s.errors) || !getVarint(in, &s.open)) {
            return false;
        }
        auto h = Histogram::deserialize(in);
        if (!h) {
            return false;
        }
        s.latency = std::move(*h);
    }
    return true;
}

uint64_t BenchResult::errorTotal() const {
    uint64_t n = 0;
    for (const auto& [kind, count] : errors) {
        n += count;
    }
    return n;
}

void BenchResult::addErrorSample(std::string_view kind, std::string_view message) {
    if (!message.empty() && error_samples.find(kind) == error_samples.end()) {
        error_samples.emplace(std::string(kind), std::string(message.substr(0, 300)));
    }
}

void BenchResult::addError(std::string_view kind, uint64_t n) {
    auto it = errors.find(kind);
    if (it == errors.end()) {
        errors.emplace(std::string(kind), n);
    } else {
        it->second += n;
    }
}

void Window::add(const Window& o) {
    s = std::max(s, o.s);
    sent += o.sent;
    received += o.received;
    cpu_s += o.cpu_s;
    wait_s += o.wait_s;
    server_cpu_s = std::max(server_cpu_s, o.server_cpu_s);
    machine_busy_s = std::max(machine_busy_s, o.machine_busy_s);
    connect_wait_s += o.connect_wait_s;
    server_connect_cpu_s = std::max(server_connect_cpu_s, o.server_connect_cpu_s);
}

void BenchResult::merge(const BenchResult& o) {
    if (scenario.empty()) {
        scenario = o.scenario;
    }
    counters.add(o.counters);
    for (const auto& [kind, n] : o.errors) {
        errors[kind] += n;
    }
    for (const auto& [kind, message] : o.error_samples) {
        addErrorSample(kind, message);
    }
    connect_ns.merge(o.connect_ns);
    latency_ns.merge(o.latency_ns);
    send_lag_ns.merge(o.send_lag_ns);
    downtime_ns.merge(o.downtime_ns);
    rejoin_ns.merge(o.rejoin_ns);
    timeline.merge(o.timeline);
    elapsed_s = std::max(elapsed_s, o.elapsed_s);
    connect_s = std::max(connect_s, o.connect_s);
    traffic_s = std::max(traffic_s, o.traffic_s);
    cpu_s += o.cpu_s;
    traffic_cpu_s += o.traffic_cpu_s;
    connect_cpu_s += o.connect_cpu_s;
    busiest_connect_cpu = std::max(busiest_connect_cpu, o.busiest_connect_cpu);
    busiest_cpu = std::max(busiest_cpu, o.busiest_cpu);
    window.add(o.window);
    interrupted = interrupted || o.interrupted;
}

// Wire form: version, scenario, counters in SB_BENCH_COUNTERS order (count first, so a
// reader could skip unknown ones), errors, histograms, timeline, doubles, flags.
void BenchResult::serialize(std::string* out) const {
    out->push_back(static_cast<char>(kResultWireVersion));
    putString(out, scenario);
    uint64_t n_counters = 0;
#define SB_BENCH_COUNT(name) ++n_counters;
    SB_BENCH_COUNTERS(SB_BENCH_COUNT)
#undef SB_BENCH_COUNT
    putVarint(out, n_counters);
#define SB_BENCH_PUT(name) putVarint(out, counters.name);
    SB_BENCH_COUNTERS(SB_BENCH_PUT)
#undef SB_BENCH_PUT
    putVarint(out, errors.size());
    for (const auto& [kind, n] : errors) {
        putString(out, kind);
        putVarint(out, n);
    }
    putVarint(out, error_samples.size());
    for (const auto& [kind, message] : error_samples) {
        putString(out, kind);
        putString(out, message);
    }
    connect_ns.serialize(out);
    latency_ns.serialize(out);
    send_lag_ns.serialize(out);
    downtime_ns.serialize(out);
    rejoin_ns.serialize(out);
    timeline.serialize(out);
    putDouble(out, elapsed_s);
    putDouble(out, connect_s);
    putDouble(out, traffic_s);
    putDouble(out, cpu_s);
    putDouble(out, traffic_cpu_s);
    putDouble(out, busiest_cpu);
    putDouble(out, connect_cpu_s);
    putDouble(out, busiest_connect_cpu);
    putDouble(out, window.s);
    putVarint(out, window.sent);
    putVarint(out, window.received);
    putDouble(out, window.cpu_s);
    putDouble(out, window.wait_s);
    putDouble(out, window.server_cpu_s);
    putDouble(out, window.machine_busy_s);
    putDouble(out, window.connect_wait_s);
    putDouble(out, window.server_connect_cpu_s);
    putVarint(out, procs);
    putVarint(out, interrupted ? 1 : 0);
}

base::Result<BenchResult> BenchResult::deserialize(std::string_view in) {
    auto bad = [](const char* what) { return base::fail(std::string("bench result: ") + what); };
    if (in.empty() || static_cast<uint8_t>(in.front()) != kResultWireVersion) {
        return bad("unknown wire version");
    }
    in.remove_prefix(1);
    BenchResult r;
    uint64_t n_counters = 0;
    uint64_t expected_counters = 0;
#define SB_BENCH_COUNT(name) ++expected_counters;
    SB_BENCH_COUNTERS(SB_BENCH_COUNT)
#undef SB_BENCH_COUNT
    if (!getString(&in, &r.scenario) || !getVarint(&in, &n_counters) ||
        n_counters != expected_counters) {
        return bad("counters do not match this build");
    }
    bool ok = true;
#define SB_BENCH_GET(name) ok = ok && getVarint(&in, &r.counters.name);
    SB_BENCH_COUNTERS(SB_BENCH_GET)
#undef SB_BENCH_GET
    uint64_t n_errors = 0;
    if (!ok || !getVarint(&in, &n_errors) || n_errors > in.size()) {
        return bad("truncated counters");
    }
    for (uint64_t i = 0; i < n_errors; ++i) {
        std::string kind;
        uint64_t n = 0;
        if (!getString(&in, &kind) || !getVarint(&in, &n)) {
            return bad("truncated errors");
        }
        r.errors[kind] += n;
    }
    uint64_t n_samples = 0;
    if (!getVarint(&in, &n_samples) || n_samples > in.size()) {
        return bad("truncated error samples");
    }
    for (uint64_t i = 0; i < n_samples; ++i) {
        std::string kind;
        std::string message;
        if (!getString(&in, &kind) || !getString(&in, &message)) {
            return bad("truncated error samples");
        }
        r.error_samples.emplace(std::move(kind), std::move(message));
    }
    auto c = Histogram::deserialize(&in);
    if (!c) {
        return base::fail(c.error().message);
    }
    r.connect_ns = std::move(*c);
    auto l = Histogram::deserialize(&in);
    if (!l) {
        return base::fail(l.error().message);
    }
    r.latency_ns = std::move(*l);
    auto lag = Histogram::deserialize(&in);
    if (!lag) {
        return base::fail(lag.error().message);
    }
    r.send_lag_ns = std::move(*lag);
    for (Histogram* h : {&r.downtime_ns, &r.rejoin_ns}) {
        auto d = Histogram::deserialize(&in);
        if (!d) {
            return base::fail(d.error().message);
        }
        *h = std::move(*d);
    }
    if (!r.timeline.deserialize(&in)) {
        return bad("corrupt timeline");
    }
    uint64_t procs = 0;
    uint64_t interrupted = 0;
    if (!getDouble(&in, &r.elapsed_s) || !getDouble(&in, &r.connect_s) ||
        !getDouble(&in, &r.traffic_s) || !getDouble(&in, &r.cpu_s) ||
        !getDouble(&in, &r.traffic_cpu_s) || !getDouble(&in, &r.busiest_cpu) ||
        !getDouble(&in, &r.connect_cpu_s) || !getDouble(&in, &r.busiest_connect_cpu) ||
        !getDouble(&in, &r.window.s) || !getVarint(&in, &r.window.sent) ||
        !getVarint(&in, &r.window.received) || !getDouble(&in, &r.window.cpu_s) ||
        !getDouble(&in, &r.window.wait_s) || !getDouble(&in, &r.window.server_cpu_s) ||
        !getDouble(&in, &r.window.machine_busy_s) || !getDouble(&in, &r.window.connect_wait_s) ||
        !getDouble(&in, &r.window.server_connect_cpu_s) || !getVarint(&in, &procs) ||
        !getVarint(&in, &interrupted) || !in.empty()) {
        return bad("truncated or trailing bytes");
    }
    r.procs = static_cast<uint32_t>(procs);
    r.interrupted = interrupted != 0;
    return r;
}

}  // namespace sb::bench
