// Parsing of the human units used by flags and config: durations ("25s", "500ms", "2m") and
// sizes ("64KiB", "16MiB", "1000"). Errors say what was expected.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace sb::server {

base::Result<uint64_t> parseDurationMs(std::string_view s);
base::Result<uint64_t> parseSize(std::string_view s);

}  // namespace sb::server
