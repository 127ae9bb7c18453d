#include "server/options.h"

#include <charconv>
#include <string>

namespace sb::server {

namespace {
base::Result<std::pair<uint64_t, std::string_view>> splitNumber(std::string_view s) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p == s.data()) {
        return base::fail("'" + std::string(s) + "' does not start with a number");
    }
    return std::pair{v, std::string_view(p, static_cast<size_t>(s.data() + s.size() - p))};
}
}  // namespace

base::Result<uint64_t> parseDurationMs(std::string_view s) {
    auto r = splitNumber(s);
    if (!r) {
        return base::unexpected(r.error());
    }
    auto [v, unit] = *r;
    if (unit == "ms")
        return v;
    if (unit == "s" || unit.empty())
        return v * 1000;
    if (unit == "m")
        return v * 60'000;
    if (unit == "h")
        return v * 3'600'000;
    return base::fail("'" + std::string(s) + "' is not a duration (use e.g. 500ms, 25s, 2m)");
}

base::Result<uint64_t> parseSize(std::string_view s) {
    auto r = splitNumber(s);
    if (!r) {
        return base::unexpected(r.error());
    }
    auto [v, unit] = *r;
    if (unit.empty() || unit == "B")
        return v;
    if (unit == "KiB" || unit == "K" || unit == "KB")
        return v << 10;
    if (unit == "MiB" || unit == "M" || unit == "MB")
        return v << 20;
    if (unit == "GiB" || unit == "G" || unit == "GB")
        return v << 30;
    return base::fail("'" + std::string(s) + "' is not a size (use e.g. 4096, 64KiB, 16MiB)");
}

}  // namespace sb::server
