// The final table, the JSON document and the progress line of `switchboard bench`.
#include "bench/report.h"

#include <cinttypes>
#include <cmath>
#include <cstdarg>

namespace sb::bench {

std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list again;
    va_copy(again, ap);
    const int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    if (n > 0) {
        vsnprintf(out.data(), out.size() + 1, fmt, again);
    }
    va_end(again);
    return out;
}

namespace {

constexpr double kPercentiles[] = {50, 90, 95, 99, 99.9};

double ms(uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

double perSecond(uint64_t n, double secs) {
    return secs > 0 ? static_cast<double>(n) / secs : 0.0;
}

// Handled messages for the CPU cost: everything sent and received.
uint64_t handledMessages(const BenchResult& r) {
    return r.counters.msgs_sent + r.counters.msgs_received;
}

std::string jsonString(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            out += format("\\u%04x", static_cast<unsigned>(ch));
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string jsonNumber(double v) {
    if (!std::isfinite(v)) {
        return "0";
    }
    return format("%.6g", v);
}

std::string histogramJson(const Histogram& h) {
    std::string j = format("{\"count\":%" PRIu64 ",\"min\":%s,\"mean\":%s", h.count(),
                           jsonNumber(ms(h.min())).c_str(), jsonNumber(h.mean() / 1e6).c_str());
    for (double p : kPercentiles) {
        std::string key = format("p%g", p);
        for (char& ch : key) {
            ch = ch == '.' ? '_' : ch;
        }
        j += ",\"" + key + "\":" + jsonNumber(ms(h.percentile(p)));
    }
    j += ",\"max\":" + jsonNumber(ms(h.max())) + "}";
    return j;
}

std::string histogramRow(const char* name, const Histogram& h) {
    if (h.empty()) {
        return format("  %-14s %10s\n", name, "-");
    }
    std::string row = format("  %-14s %10" PRIu64, name, h.count());
    for (double p : kPercentiles) {
        row += format(" %9.3f", ms(h.percentile(p)));
    }
    row += format(" %9.3f %9.3f\n", ms(h.max()), h.mean() / 1e6);
    return row;
}

std::string errorsLine(const BenchResult& r) {
    if (r.errors.empty()) {
        return "none";
    }
    std::string s;
    for (const auto& [kind, n] : r.errors) {
        s += (s.empty() ? "" : ", ") + kind + " " + std::to_string(n);
    }
    return s;
}

// ,"urls":[...] (every connection target) and, fanout, ,"publish_url" (the first) and
// ,"publish_urls":[...] after "url".
std::string targetsJson(const BenchOptions& o) {
    std::string j = ",\"urls\":[";
    if (o.urls.empty()) {
        j += jsonString(o.url);
    }
    for (size_t i = 0; i < o.urls.size(); ++i) {
        j += (i == 0 ? "" : ",") + jsonString(o.urls[i]);
    }
    j += "]";
    if (o.scenario == Scenario::kFanout) {
        const std::vector<std::string> pubs =
            o.publish_urls.empty() ? std::vector<std::string>{o.url} : o.publish_urls;
        j += ",\"publish_url\":" + jsonString(pubs.front()) + ",\"publish_urls\":[";
        for (size_t i = 0; i < pubs.size(); ++i) {
            j += (i == 0 ? "" : ",") + jsonString(pubs[i]);
        }
        j += "]";
    }
    return j;
}

// The table's name of the target: the URL, and how many more when there are several.
std::string targetLabel(const BenchOptions& o) {
    std::string t = o.url;
    if (o.urls.size() > 1) {
        t += format(" (+%zu more)", o.urls.size() - 1);
    }
    return t;
}

std::string optionsJson(const BenchOptions& o) {
    return format(
        "{\"conns\":%u,\"connect_rate\":%s,\"connect_window\":%u,\"hold_s\":%s,"
        "\"messages\":%" PRIu64
        ",\"duration_s\":%s,\"interval_ms\":%s,\"window\":%u,\"size\":%u,"
        "\"binary\":%s,\"publishers\":%u,\"rooms\":%u,\"drain_s\":%s,\"reconnect\":%s,"
        "\"recover\":%s,\"flow\":\"%s\",\"multi_room\":%s,\"warmup_s\":%s,\"deflate\":%s,"
        "\"server_pid\":%d}",
        o.conns, jsonNumber(o.connect_rate).c_str(), o.connect_window, jsonNumber(o.hold_s).c_str(),
        o.messages, jsonNumber(o.duration_s).c_str(), jsonNumber(o.interval_ms).c_str(), o.window,
        o.size, o.binary ? "true" : "false", o.publishers, o.rooms, jsonNumber(o.drain_s).c_str(),
        o.reconnect ? "true" : "false", o.recover ? "true" : "false",
        o.flow == Flow::kDelivery ? "delivery" : "ack", o.multi_room ? "true" : "false",
        jsonNumber(o.warmup_s).c_str(), o.deflate ? "true" : "false", o.server_pid);
}

std::string resultJsonBody(const BenchResult& r) {
    std::string j;
    j += format(
        "\"procs\":%u,\"interrupted\":%s,\"elapsed_s\":%s,\"connect_s\":%s,"
        "\"traffic_s\":%s",
        r.procs, r.interrupted ? "true" : "false", jsonNumber(r.elapsed_s).c_str(),
        jsonNumber(r.connect_s).c_str(), jsonNumber(r.traffic_s).c_str());
    j += ",\"counters\":{";
    bool first = true;
#define SB_BENCH_JSON(name)                                                     \
    j += format("%s\"%s\":%" PRIu64, first ? "" : ",", #name, r.counters.name); \
    first = false;
    SB_BENCH_COUNTERS(SB_BENCH_JSON)
#undef SB_BENCH_JSON
    j += "},\"connect_ms\":" + histogramJson(r.connect_ns);
    j += ",\"latency_ms\":" + histogramJson(r.latency_ns);
    j += ",\"send_lag_ms\":" + histogramJson(r.send_lag_ns);
    j += format(
        ",\"throughput\":{\"sent_per_s\":%s,\"received_per_s\":%s,"
        "\"deliveries_per_s\":%s,\"connects_per_s\":%s}",
        jsonNumber(perSecond(r.counters.msgs_sent, r.traffic_s)).c_str(),
        jsonNumber(perSecond(r.counters.msgs_received, r.traffic_s)).c_str(),
        jsonNumber(perSecond(r.counters.deliveries, r.traffic_s)).c_str(),
        jsonNumber(perSecond(r.counters.connects_ok, r.connect_s)).c_str());
    j += ",\"errors\":{";
    first = true;
    for (const auto& [kind, n] : r.errors) {
        j += format("%s%s:%" PRIu64, first ? "" : ",", jsonString(kind).c_str(), n);
        first = false;
    }
    j += "},\"error_samples\":{";
    first = true;
    for (const auto& [kind, message] : r.error_samples) {
        j += (first ? "" : ",") + jsonString(kind) + ":" + jsonString(message);
        first = false;
    }
    j += format("},\"error_total\":%" PRIu64, r.errorTotal());
    const uint64_t handled = handledMessages(r);
    j += format(
        ",\"cpu\":{\"total_s\":%s,\"traffic_s\":%s,\"busiest_process\":%s,"
        "\"us_per_message\":%s,",
        jsonNumber(r.cpu_s).c_str(), jsonNumber(r.traffic_cpu_s).c_str(),
        jsonNumber(r.busiest_cpu).c_str(),
        jsonNumber(handled > 0 ? r.traffic_cpu_s * 1e6 / static_cast<double>(handled) : 0).c_str());
    const uint64_t attempts = r.counters.connects_attempted;
    j += format("\"connect_s\":%s,\"busiest_process_connecting\":%s,\"us_per_connection\":%s}",
                jsonNumber(r.connect_cpu_s).c_str(), jsonNumber(r.busiest_connect_cpu).c_str(),
                jsonNumber(attempts > 0 ? r.connect_cpu_s * 1e6 / static_cast<double>(attempts) : 0)
                    .c_str());
    const Window& w = r.window;
    // The measured window: rates and CPU in cores (CPU seconds per second of the window);
    // -1 where not measured.
    auto cores = [&w](double cpu) { return cpu >= 0 && w.s > 0 ? cpu / w.s : -1.0; };
    j += format(
        ",\"window\":{\"s\":%s,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
        ",\"sent_per_s\":%s,\"received_per_s\":%s,\"gen_cpu_s\":%s,\"gen_cores\":%s,"
        "\"gen_us_per_message\":%s,\"gen_wait\":%s,\"server_cpu_s\":%s,\"server_cores\":%s,"
        "\"machine_cores\":%s,\"connect_gen_wait\":%s,\"connect_server_cpu_s\":%s,"
        "\"connect_server_cores\":%s}",
        jsonNumber(w.s).c_str(), w.sent, w.received, jsonNumber(perSecond(w.sent, w.s)).c_str(),
        jsonNumber(perSecond(w.received, w.s)).c_str(), jsonNumber(w.cpu_s).c_str(),
        jsonNumber(cores(w.cpu_s)).c_str(),
        jsonNumber(
            w.received + w.sent > 0 ? w.cpu_s * 1e6 / static_cast<double>(w.received + w.sent) : 0)
            .c_str(),
        jsonNumber(w.s > 0 && w.wait_s >= 0 ? w.wait_s / w.s / std::max<uint32_t>(1, r.procs) : -1)
            .c_str(),
        jsonNumber(w.server_cpu_s).c_str(), jsonNumber(cores(w.server_cpu_s)).c_str(),
        jsonNumber(cores(w.machine_busy_s)).c_str(),
        jsonNumber(r.connect_s > 0 && w.connect_wait_s >= 0
                       ? w.connect_wait_s / r.connect_s / std::max<uint32_t>(1, r.procs)
                       : -1)
            .c_str(),
        jsonNumber(w.server_connect_cpu_s).c_str(),
        jsonNumber(r.connect_s > 0 && w.server_connect_cpu_s >= 0
                       ? w.server_connect_cpu_s / r.connect_s
                       : -1)
            .c_str());
    j += format(",\"timeline\":{\"interval_ms\":%u,\"samples\":[", r.timeline.intervalMs());
    const auto& samples = r.timeline.samples();
    for (size_t i = 0; i < samples.size(); ++i) {
        const TimelineSample& s = samples[i];
        j += format("%s{\"t_s\":%s,\"connects\":%" PRIu64 ",\"sent\":%" PRIu64
                    ",\"received\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"open\":%" PRIu64
                    ",\"p50_ms\":%s,\"p95_ms\":%s,\"p99_ms\":%s,\"max_ms\":%s}",
                    i == 0 ? "" : ",",
                    jsonNumber(static_cast<double>(i * r.timeline.intervalMs()) / 1000.0).c_str(),
                    s.connects, s.sent, s.received, s.errors, s.open,
                    jsonNumber(ms(s.latency.percentile(50))).c_str(),
                    jsonNumber(ms(s.latency.percentile(95))).c_str(),
                    jsonNumber(ms(s.latency.percentile(99))).c_str(),
                    jsonNumber(ms(s.latency.max())).c_str());
    }
    j += "]}";
    return j;
}

}  // namespace

std::string formatTable(const BenchOptions& o, const BenchResult& r) {
    const Counters& k = r.counters;
    std::string t;
    t += format("switchboard bench %s  %s  (%s mode%s%s, %u process%s, %.2f s%s)\n",
                r.scenario.c_str(), targetLabel(o).c_str(),
                o.mode == Mode::kNative ? "native" : "plain",
                o.transport == Transport::kWs ? "" : ", over ",
                o.transport == Transport::kWs ? "" : transportName(o.transport), r.procs,
                r.procs == 1 ? "" : "es", r.elapsed_s, r.interrupted ? ", INTERRUPTED" : "");
    t += format("  connections    attempted %" PRIu64 "  ok %" PRIu64 "  failed %" PRIu64
                "  reconnects %" PRIu64 "  dropped %" PRIu64 "  closed cleanly %" PRIu64
                "  peak open %" PRIu64 "  (%.0f/s)\n",
                k.connects_attempted, k.connects_ok, k.connects_failed, k.reconnects, k.drops,
                k.closed_clean, k.open_peak, perSecond(k.connects_ok, r.connect_s));
    t += format("  %-14s %10s", "", "count");
    for (double p : kPercentiles) {
        t += format(" %9s", format("p%g", p).c_str());
    }
    t += format(" %9s %9s\n", "max", "mean");
    t += histogramRow("connect (ms)", r.connect_ns);
    if (r.scenario != "connect") {
        t += histogramRow(r.scenario == "fanout" ? "delivery (ms)" : "round trip (ms)",
                          r.latency_ns);
        if (r.send_lag_ns.count() > 0) {
            t += histogramRow("send lag (ms)", r.send_lag_ns);
        }
        t += format("  throughput     sent %" PRIu64 "  received %" PRIu64
                    " in %.2f s: %.0f msg/s out, %.0f msg/s in, %.2f MB/s in\n",
                    k.msgs_sent, k.msgs_received, r.traffic_s, perSecond(k.msgs_sent, r.traffic_s),
                    perSecond(k.msgs_received, r.traffic_s),
                    perSecond(k.bytes_received, r.traffic_s) / 1e6);
    }
    if (r.scenario == "echo") {
        t += format("  replies        unanswered %" PRIu64 "  bad %" PRIu64 "\n", k.unanswered,
                    k.bad_replies);
    }
    if (r.scenario == "fanout") {
        t += format("  deliveries     expected %" PRIu64 "  delivered %" PRIu64 "  lost %" PRIu64
                    "  duplicates %" PRIu64 "  out of order %" PRIu64 "  gaps %" PRIu64
                    "  foreign %" PRIu64 "  (%.0f deliveries/s)\n",
                    k.expected, k.deliveries, k.lost, k.duplicates, k.out_of_order, k.gaps,
                    k.foreign, perSecond(k.deliveries, r.traffic_s));
        if (k.offset_errors > 0) {
            t += format("  offsets        %" PRIu64 " not the last + 1\n", k.offset_errors);
        }
        if (o.mode == Mode::kNative) {
            t += format("  publishes      sent %" PRIu64 "  acknowledged %" PRIu64 "\n",
                        k.msgs_sent, k.publishes_acked);
            if (k.recoveries + k.recoveries_failed > 0) {
                t += format("  recovery       resubscribed with since %" PRIu64
                            ": recovered %" PRIu64 ", not recovered %" PRIu64 "\n",
                            k.recoveries + k.recoveries_failed, k.recoveries, k.recoveries_failed);
            }
        }
    }
    if (o.deflate) {
        t += format("  deflate        %" PRIu64 " of %" PRIu64
                    " handshakes negotiated permessage-deflate\n",
                    k.compressed, k.connects_ok);
    }
    t += "  errors         " + errorsLine(r) + "\n";
    for (const auto& [kind, message] : r.error_samples) {
        t += "    " + kind + ": " + message;
        if (kind == "tls") {
            t += " (a self-signed or private CA: --ca FILE, or --insecure to skip verification)";
        }
        t += "\n";
    }
    const uint64_t handled = handledMessages(r);
    t += format(
        "  generator      CPU %.2f s total, %.2f s in traffic (busiest process %.0f%% of "
        "a core)",
        r.cpu_s, r.traffic_cpu_s, r.busiest_cpu * 100);
    if (handled > 0) {
        t += format(", %.2f us per message", r.traffic_cpu_s * 1e6 / static_cast<double>(handled));
    }
    t += "\n";
    if (r.window.s > 0 && (o.warmup_s > 0 || o.server_pid > 0)) {
        const Window& w = r.window;
        t += format("  measured       %.2f s: %.0f msg/s out, %.0f msg/s in; generator %.2f cores",
                    w.s, perSecond(w.sent, w.s), perSecond(w.received, w.s), w.cpu_s / w.s);
        if (w.server_cpu_s >= 0) {
            t += format(", server %.2f cores", w.server_cpu_s / w.s);
        }
        if (w.machine_busy_s >= 0) {
            t += format(", machine %.2f cores", w.machine_busy_s / w.s);
        }
        t += "\n";
    }
    if (k.connects_attempted > 0) {
        // Handshakes cost the generator too (on loopback the kernel's TCP work for both ends
        // is largely charged to whichever process sends).
        t += format(
            "                 connecting: CPU %.2f s over %.2f s (busiest process %.0f%% "
            "of a core), %.1f us per connection\n",
            r.connect_cpu_s, r.connect_s, r.busiest_connect_cpu * 100,
            r.connect_cpu_s * 1e6 / static_cast<double>(k.connects_attempted));
    }
    // A paced run that could not keep its schedule measured the generator's lateness too.
    const double interval_ns = o.interval_ms * 1e6;
    if (k.sends_skipped > 0 ||
        (interval_ns > 0 && static_cast<double>(r.send_lag_ns.percentile(99)) > interval_ns)) {
        t += format(
            "  warning        sends fell behind the --interval schedule (p99 %.3f ms late, "
            "%" PRIu64
            " skipped): latency includes that lag; lower the rate or add "
            "--procs\n",
            ms(r.send_lag_ns.percentile(99)), k.sends_skipped);
    }
    if (r.busiest_connect_cpu > 0.9) {
        t += "  warning        a generator process was CPU-bound while connecting: connection "
             "rates may measure the generator; add --procs\n";
    }
    if (r.busiest_cpu > 0.9) {
        t += "  warning        a generator process was CPU-bound: the numbers may measure the "
             "generator; add --procs\n";
    }
    return t;
}

std::string toJson(const BenchOptions& o, const BenchResult& r) {
    std::string j = "{\"scenario\":" + jsonString(r.scenario) + ",\"url\":" + jsonString(o.url) +
                    targetsJson(o) +
                    ",\"mode\":" + jsonString(o.mode == Mode::kNative ? "native" : "plain") +
                    ",\"transport\":" + jsonString(transportName(o.transport)) +
                    ",\"options\":" + optionsJson(o) + ",";
    j += resultJsonBody(r);
    j += "}\n";
    return j;
}

std::string formatRampTable(const BenchOptions& o, const std::vector<RampStep>& steps) {
    std::string t = format(
        "switchboard bench ramp  %s  (step %.1f s, healthy while p95 <= %.3g ms "
        "and errors <= %.3g%%)\n",
        targetLabel(o).c_str(), o.ramp_step_s, o.ramp_max_p95_ms, o.ramp_max_error_rate * 100);
    t += format("  %5s %8s %10s %10s %9s %9s %9s %8s  %s\n", "step", "conns", "offered/s",
                "answered/s", "p50 ms", "p95 ms", "p99 ms", "errors", "verdict");
    const RampStep* last_ok = nullptr;
    for (size_t i = 0; i < steps.size(); ++i) {
        const RampStep& s = steps[i];
        const BenchResult& r = s.result;
        t += format("  %5zu %8u %10.0f %10.0f %9.3f %9.3f %9.3f %8" PRIu64 "  %s\n", i + 1, s.conns,
                    s.offered_per_s, perSecond(r.counters.msgs_received, r.traffic_s),
                    ms(r.latency_ns.percentile(50)), ms(r.latency_ns.percentile(95)),
                    ms(r.latency_ns.percentile(99)), r.errorTotal(),
                    s.healthy ? "ok" : s.reason.c_str());
        if (s.healthy) {
            last_ok = &s;
        }
    }
    if (last_ok != nullptr) {
        t += format("  last healthy step: %u connections, %.0f msg/s offered, p95 %.3f ms\n",
                    last_ok->conns, last_ok->offered_per_s,
                    ms(last_ok->result.latency_ns.percentile(95)));
    } else {
        t += "  no healthy step\n";
    }
    return t;
}

std::string rampToJson(const BenchOptions& o, const std::vector<RampStep>& steps) {
    std::string j = "{\"scenario\":\"ramp\",\"url\":" + jsonString(o.url) + targetsJson(o) +
                    ",\"options\":" + optionsJson(o) +
                    format(
                        ",\"ramp\":{\"start\":%u,\"step\":%u,\"step_s\":%s,\"max_p95_ms\":%s,"
                        "\"max_error_rate\":%s,\"max_steps\":%u}",
                        o.ramp_start, o.ramp_step, jsonNumber(o.ramp_step_s).c_str(),
                        jsonNumber(o.ramp_max_p95_ms).c_str(),
                        jsonNumber(o.ramp_max_error_rate).c_str(), o.ramp_max_steps) +
                    ",\"steps\":[";
    int last_ok = -1;
    for (size_t i = 0; i < steps.size(); ++i) {
        const RampStep& s = steps[i];
        j += format("%s{\"conns\":%u,\"offered_per_s\":%s,\"healthy\":%s,\"reason\":%s,",
                    i == 0 ? "" : ",", s.conns, jsonNumber(s.offered_per_s).c_str(),
                    s.healthy ? "true" : "false", jsonString(s.reason).c_str());
        j += resultJsonBody(s.result) + "}";
        if (s.healthy) {
            last_ok = static_cast<int>(i);
        }
    }
    j += format("],\"last_healthy_step\":%d}\n", last_ok < 0 ? -1 : last_ok + 1);
    return j;
}

void ProgressLine::update(const Progress& p) {
    if (!enabled_) {
        return;
    }
    const double dt = p.elapsed_s - last_elapsed_;
    const double rate = dt > 0 && p.received >= last_received_
                            ? static_cast<double>(p.received - last_received_) / dt
                            : 0.0;
    last_elapsed_ = p.elapsed_s;
    last_received_ = p.received;
    std::string line = format("[%6.1fs] %-10s open %" PRIu64 "/%" PRIu64 "  failed %" PRIu64
                              "  sent %" PRIu64 "  recv %" PRIu64 "  %.0f/s",
                              p.elapsed_s, p.phase.c_str(), p.open, total_conns_, p.connects_failed,
                              p.sent, p.received, rate);
    if (!p.recent.empty()) {
        line += format("  p95 %.3f ms", ms(p.recent.percentile(95)));
    }
    line += format("  errors %" PRIu64, p.errors);
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    std::fflush(out_);
    drawn_ = true;
}

void ProgressLine::finish() {
    if (drawn_) {
        std::fputs("\r\033[K", out_);
        std::fflush(out_);
        drawn_ = false;
    }
}

}  // namespace sb::bench
