// Forwards to the config layer's units (one parser, one set of messages).
#include "server/options.h"

#include "config/units.h"

namespace sb::server {

base::Result<uint64_t> parseDurationMs(std::string_view s) {
    return config::parseDurationMs(s);
}

base::Result<uint64_t> parseSize(std::string_view s) {
    return config::parseSize(s);
}

}  // namespace sb::server
