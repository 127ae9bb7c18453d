// Sizes and durations for code that still parses them itself (server/messaging.cpp). They are
// config::parseSize / config::parseDurationMs (config/units.h): overflow is an error there.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace sb::server {

base::Result<uint64_t> parseDurationMs(std::string_view s);
base::Result<uint64_t> parseSize(std::string_view s);

}  // namespace sb::server
