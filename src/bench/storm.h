// `switchboard bench storm`: a reconnect storm, measured. The bench starts the server itself
// (--server-cmd), connects -c native subscribers (with publishers keeping traffic going), and
// once all are connected stops the server (SIGTERM: a graceful shutdown that tells clients when
// to come back; or SIGKILL: a crash) and starts it again at once. Clients reconnect as
// production clients do (full-jitter backoff, the server's reconnect hint, no attempt limit),
// resume and recover; the report says how long until every one was back, how long each was
// away, how many recovered, what the server refused, and the restarted server's peak CPU and
// RSS.
#pragma once

#include <atomic>

#include "bench/options.h"

namespace sb::bench {

// Runs the storm and prints its report (and --json). Exit status as runBench's: 0 clean, 1 the
// run saw errors or clients that never came back, 2/3 usage or setup errors.
int runStorm(BenchOptions o, bool progress, const std::atomic<bool>* interrupt);

}  // namespace sb::bench
