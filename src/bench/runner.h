// One process's share of a bench scenario (connect, echo, fanout) on one event loop, driven
// through our own client engine (client::connect + transport::WebSocket), or for
// `--transport sse|poll` subscribers through bench/http_sub.h (SSE streams, poll loops).
// Phases: connect (paced), a barrier (every process ready), traffic, drain, clean close
// (1000). A Coordinator joins the barriers: directly in a single process, over pipes with
// `--procs K`.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "bench/histogram.h"
#include "bench/options.h"
#include "bench/result.h"
#include "loop/event_loop.h"

namespace sb::bench {

// What a process reports every second for the live progress line.
struct Progress {
    double elapsed_s = 0;
    std::string phase;
    uint64_t open = 0;
    uint64_t connects_ok = 0;
    uint64_t connects_failed = 0;
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t errors = 0;
    Histogram recent;  // latencies since the previous report
};

class Runner;
class FlowBoard;

// The runner's link to the other processes of the run. Every call is made on the runner's
// loop thread; the coordinator answers by calling the runner back (go(), setExpected(),
// requestStop()) on that thread, at once or later.
class Coordinator {
public:
    virtual ~Coordinator() = default;
    // The loop is about to run: register pollables (a control pipe) on runner.loop().
    virtual void onStart(Runner& runner) {}
    // This process opened (or failed) all its connections; call go() once every process has.
    virtual void onReady(Runner& runner) = 0;
    // fanout: this process's publishers are done; `per_room` counts what each room got.
    // Answer with setExpected(totals of all processes).
    virtual void onPublished(Runner& runner, const std::vector<uint64_t>& per_room) = 0;
    virtual void onProgress(Runner& runner, const Progress& progress) {}
    // fanout --flow delivery: the board this run's processes share (bench/flow.h), or null,
    // and the runner makes a board of its own (one process).
    virtual FlowBoard* flowBoard() { return nullptr; }
};

class Runner {
public:
    // `interrupt` (optional) is polled every tick: set → requestStop() (Ctrl-C).
    Runner(const BenchOptions& options, Slice slice, Coordinator* coordinator,
           const std::atomic<bool>* interrupt = nullptr);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // Checks the URL and options (call before run()).
    base::Result<void> prepare();
    // Runs the whole scenario on the calling thread; returns this process's result.
    BenchResult run();

    // Loop thread. Starts the traffic phase (after onReady).
    void go();
    // Loop thread. fanout: publications per room over all processes (after onPublished).
    void setExpected(const std::vector<uint64_t>& per_room);
    // Loop thread. Stops sending, closes every connection cleanly and ends the run.
    void requestStop();

    loop::EventLoop& loop();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sb::bench
