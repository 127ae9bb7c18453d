// The human units of configuration values: sizes ("4096", "64KiB", "16MiB", "1GiB") and
// durations ("500ms", "25s", "2m", "1h"), read and written back. Pure functions; every error
// says what was expected, and a value that does not fit 64 bits is an error that says the
// maximum, never a wrapped number.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb::config {

// Bytes. A number, optionally followed by a unit: B, KiB/K/KB, MiB/M/MB, GiB/G/GB (all powers
// of 1024), with optional spaces between them.
base::Result<uint64_t> parseSize(std::string_view s);

// Milliseconds. A number followed by ms, s, m or h; a bare number is seconds.
base::Result<uint64_t> parseDurationMs(std::string_view s);

// The shortest exact spelling in the largest unit: 16777216 → "16MiB", 4100 → "4100".
std::string formatSize(uint64_t bytes);
// 25000 → "25s", 120000 → "2m", 1500 → "1500ms", 0 → "0s".
std::string formatDuration(uint64_t ms);

// a * b, or false when the product does not fit 64 bits.
bool multiplyFits(uint64_t a, uint64_t b, uint64_t* out);

}  // namespace sb::config
