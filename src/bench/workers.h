// Runs a bench scenario in this process or, with `--procs K`, in K forked worker processes
// that meet at the phase barriers (all connected; all published) through pipes and send
// their results back for an exact merge. This is how a run passes the per-process open-file
// limit.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/result.h"
#include "bench/options.h"
#include "bench/result.h"
#include "bench/runner.h"

namespace sb::bench {

// Receives the progress of the whole run about once a second (summed over processes).
class ProgressSink {
public:
    virtual ~ProgressSink() = default;
    virtual void update(const Progress& p) = 0;
};

// Processes a run needs for `o` under this process's hard open-file limit (at least 1).
uint32_t procsNeeded(const BenchOptions& o);

// Raises the soft open-file limit to the hard one; returns the new soft limit.
uint64_t raiseFileLimit();

// Runs connect, echo or fanout as `o` says (o.procs processes; 1 = no fork). `interrupt`
// set (by a signal handler) stops the run early; the result then has `interrupted`. `sink`
// may be null. Errors: bad options/URL, fork or pipe failure, a worker that died.
base::Result<BenchResult> runScenario(const BenchOptions& o, ProgressSink* sink,
                                      const std::atomic<bool>* interrupt);

// Progress wire form (worker -> parent), public for tests.
void serializeProgress(const Progress& p, std::string* out);
bool deserializeProgress(std::string_view in, Progress* p);

}  // namespace sb::bench
