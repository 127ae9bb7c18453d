// `switchboard bench`: flag parsing, Ctrl-C handling, the ramp loop and the reports. The
// switchboard binary only dispatches here.
#pragma once

#include <string>

#include "base/result.h"
#include "bench/options.h"

namespace sb::bench {

// Parses `bench` arguments (argv[0] is the scenario). Fills defaults that depend on the
// scenario (URL, mode, message count). `help` is set for --help / -h.
base::Result<BenchOptions> parseBenchArgs(int argc, char** argv, bool* help);

// The help text of `switchboard bench`.
std::string benchHelp();

// Entry point of `switchboard bench`. Exit codes: 0 the run completed without errors or
// losses; 1 it completed with errors, losses or was interrupted; 2 usage; 3 it could not run.
int runBench(int argc, char** argv);

}  // namespace sb::bench
