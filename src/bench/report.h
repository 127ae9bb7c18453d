// How a bench result is shown: the final table (stdout), the JSON document (--json), the
// self-contained HTML report with inline SVG plots (--html), and the live progress line.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/options.h"
#include "bench/result.h"
#include "bench/workers.h"

namespace sb::bench {

// One step of a `ramp` run and its verdict.
struct RampStep {
    uint32_t conns = 0;
    double offered_per_s = 0;  // messages per second the step asked for
    BenchResult result;
    bool healthy = false;
    std::string reason;  // why it was not healthy
};

// printf into a std::string of the right length (the report and the HTML page share it).
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

std::string formatTable(const BenchOptions& o, const BenchResult& r);
std::string toJson(const BenchOptions& o, const BenchResult& r);
std::string formatRampTable(const BenchOptions& o, const std::vector<RampStep>& steps);
std::string rampToJson(const BenchOptions& o, const std::vector<RampStep>& steps);
// A complete HTML page; `steps` may be empty (not a ramp).
std::string toHtml(const BenchOptions& o, const BenchResult& r,
                   const std::vector<RampStep>& steps = {});

// The live progress line: one line rewritten in place on a terminal (stderr), nothing when
// `enabled` is false (not a TTY, or --quiet).
class ProgressLine final : public ProgressSink {
public:
    ProgressLine(FILE* out, bool enabled, uint64_t total_conns)
        : out_(out), enabled_(enabled), total_conns_(total_conns) {}
    void update(const Progress& p) override;
    // Clears the line (before the final table).
    void finish();

private:
    FILE* out_;
    bool enabled_;
    uint64_t total_conns_;
    bool drawn_ = false;
    double last_elapsed_ = 0;
    uint64_t last_received_ = 0;
};

}  // namespace sb::bench
