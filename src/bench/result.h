// What one bench run measured: counters, errors by kind, connect-time and latency histograms
// and a per-interval timeline. Results of worker processes merge exactly (counters add,
// histograms merge bucket by bucket) and travel over a pipe in a compact binary form.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "bench/histogram.h"

namespace sb::bench {

// Every counter of a run, in wire order. Adding one here adds it to merge, the wire form and
// the JSON report.
#define SB_BENCH_COUNTERS(X)                                                              \
    X(connects_attempted) /* connection attempts, initial and reconnects */               \
    X(connects_ok)        /* handshakes (native: `connected` replies) that succeeded */   \
    X(connects_failed)    /* attempts that failed: see errors */                          \
    X(reconnects)         /* attempts that replaced a connection the server dropped */    \
    X(drops)              /* open connections closed by the server or the network */      \
    X(closed_clean)       /* our 1000 close answered by the peer */                       \
    X(open_peak)          /* most connections open at once (summed over processes) */     \
    X(msgs_sent)          /* echo requests or publications sent */                        \
    X(msgs_received)      /* echo replies or deliveries received */                       \
    X(bytes_sent)         /* payload bytes sent */                                        \
    X(bytes_received)     /* payload bytes received */                                    \
    X(unanswered)         /* echo requests without a reply by the end (timeouts) */       \
    X(bad_replies)        /* echo replies of the wrong size or type */                    \
    X(publishes_acked)    /* native fanout: `published` replies */                        \
    X(expected)           /* fanout: publications x subscribers of their room */          \
    X(deliveries)         /* fanout: distinct publications received per subscriber */     \
    X(lost)               /* fanout: expected - deliveries */                             \
    X(duplicates)         /* fanout: a publication received twice by one subscriber */    \
    X(out_of_order)       /* fanout: arrived after a later one of the same publisher */   \
    X(gaps)               /* native fanout: messages the server marked gap:true */        \
    X(foreign)            /* fanout: a publication that does not belong to the room */    \
    X(recoveries)         /* native fanout: resubscribed with `since`, recovered:true */  \
    X(recoveries_failed)  /* native fanout: resubscribed with `since`, recovered:false */ \
    X(sends_skipped)      /* paced runs: sends dropped from a schedule >1 s behind */     \
    X(offset_errors)      /* native fanout: a channel offset that is not the last + 1 */  \
    X(compressed)         /* handshakes that negotiated permessage-deflate (--deflate) */

struct Counters {
#define SB_BENCH_FIELD(name) uint64_t name = 0;
    SB_BENCH_COUNTERS(SB_BENCH_FIELD)
#undef SB_BENCH_FIELD
    void add(const Counters& o);
};

// One interval of the run: how much happened in it and its latency histogram.
struct TimelineSample {
    uint64_t connects = 0;
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t errors = 0;
    uint64_t open = 0;  // connections open at the end of the interval (gauge)
    Histogram latency;  // ns
    void add(const TimelineSample& o);
};

// Samples from the common time origin. Intervals start at 1 s and double whenever the run
// outgrows kMaxSamples, so a long run keeps bounded memory and a plottable number of points.
class Timeline {
public:
    static constexpr size_t kMaxSamples = 600;

    // The sample covering `t_ms` after the origin (coarsening first if needed).
    TimelineSample& at(uint64_t t_ms);
    // Adds `o` sample by sample (the coarser interval of the two wins).
    void merge(const Timeline& o);
    uint32_t intervalMs() const { return interval_ms_; }
    const std::vector<TimelineSample>& samples() const { return samples_; }
    void serialize(std::string* out) const;
    [[nodiscard]] bool deserialize(std::string_view* in);

private:
    void coarsen();  // doubles the interval, merging pairs of samples
    uint32_t interval_ms_ = 1000;
    std::vector<TimelineSample> samples_;
};

// The measured window (--warmup, then --duration; without a warm-up the traffic phase), and
// the CPU on both sides over it. Processes add up; the server's and the machine's figures come
// from the first process only (-1: not measured).
struct Window {
    double s = 0;                // length (longest process)
    uint64_t sent = 0;           // messages sent in it
    uint64_t received = 0;       // echo replies or deliveries received in it
    double cpu_s = 0;            // generator CPU (user + system), all processes
    double wait_s = 0;           // time the generator's threads were runnable but not running
    double server_cpu_s = -1;    // --server-pid: the server's CPU (all its threads)
    double machine_busy_s = -1;  // CPU time of the whole machine (all cores, /proc/stat)
    // The connect phase: the generator's scheduler wait and the server's CPU.
    double connect_wait_s = 0;
    double server_connect_cpu_s = -1;
    void add(const Window& o);
};

struct BenchResult {
    std::string scenario;
    Counters counters;
    // Errors by kind: "refused", "handshake_timeout", "handshake_status_503", "close_1006",
    // "error_rate_limited" (a native `error` reply), "unanswered", ...
    std::map<std::string, uint64_t, std::less<>> errors;
    // The first full message seen for a kind, where there is one ("TLS handshake failed:
    // certificate verify failed: self-signed certificate"): the count says how often, this
    // says what went wrong.
    std::map<std::string, std::string, std::less<>> error_samples;
    Histogram connect_ns;  // TCP connect + WebSocket handshake (+ native `connect` reply)
    // Echo round trip, or publish-to-delivery. Paced runs (--interval) measure from the
    // intended send time, so a stall (of the server or of the generator) counts against every
    // message it delayed instead of hiding them (no coordinated omission).
    Histogram latency_ns;
    Histogram send_lag_ns;  // paced runs: how late each send left against its schedule
    // Subscribers the server dropped that came back (reconnected, resubscribed): how long each
    // was away (drop → ready again), and when each was ready again (ns since the common time
    // origin; its max() is when the last one was back: `storm` measures from the kill).
    Histogram downtime_ns;
    Histogram rejoin_ns;
    Timeline timeline;
    double elapsed_s = 0;            // whole run (longest process)
    double connect_s = 0;            // start to the end of the connect phase (longest process)
    double traffic_s = 0;            // traffic phase: go to the last reply (longest process)
    double cpu_s = 0;                // generator CPU (user + system), all processes
    double traffic_cpu_s = 0;        // generator CPU during the traffic phase
    double connect_cpu_s = 0;        // generator CPU during the connect phase (handshakes)
    double busiest_connect_cpu = 0;  // highest per-process CPU use while connecting
    double busiest_cpu = 0;          // highest per-process CPU use during traffic (1.0 = a core)
    Window window;
    uint32_t procs = 1;        // processes merged into this result
    bool interrupted = false;  // stopped by Ctrl-C / SIGTERM

    uint64_t errorTotal() const;
    void addError(std::string_view kind, uint64_t n = 1);
    void addErrorSample(std::string_view kind, std::string_view message);
    // Exact union of two processes' results.
    void merge(const BenchResult& o);
    void serialize(std::string* out) const;
    static base::Result<BenchResult> deserialize(std::string_view in);
};

}  // namespace sb::bench
