// Sizes and durations. The number is read with from_chars (no locale, no sign, no silent
// wrap) and scaled with an overflow check, so "99999999999999999999KiB" is refused.
#include "config/units.h"

#include <charconv>
#include <limits>

namespace sb::config {

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string quoted(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

struct Number {
    uint64_t value = 0;
    std::string_view unit;
};

constexpr const char* kSizeExamples = "4096, \"64KiB\", \"16MiB\" or \"1GiB\"";
constexpr const char* kDurationExamples = "\"500ms\", \"25s\", \"2m\" or \"1h\"";

// `what` names the kind in messages ("size", "duration"), `examples` spells a few, and
// `limit` says the maximum ("the largest size is …"), for the overflow message.
base::Result<Number> splitNumber(std::string_view s, const char* what, const char* examples,
                                 const std::string& limit) {
    std::string_view t = trim(s);
    if (!t.empty() && t.front() == '-') {
        return base::fail(quoted(s) + " is negative; expected a " + what + " of 0 or more, e.g. " +
                          examples);
    }
    Number n;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n.value);
    if (ec == std::errc::result_out_of_range) {
        return base::fail(quoted(s) + " is too large: " + limit);
    }
    if (ec != std::errc() || p == t.data()) {
        return base::fail(quoted(s) + " is not a " + what + "; expected e.g. " + examples);
    }
    n.unit = trim(std::string_view(p, static_cast<size_t>(t.data() + t.size() - p)));
    return n;
}

}  // namespace

bool multiplyFits(uint64_t a, uint64_t b, uint64_t* out) {
    if (b != 0 && a > kMax / b) {
        return false;
    }
    *out = a * b;
    return true;
}

base::Result<uint64_t> parseSize(std::string_view s) {
    const std::string limit = "the largest size is " + std::to_string(kMax) + " bytes";
    auto n = splitNumber(s, "size", kSizeExamples, limit);
    if (!n) {
        return base::unexpected(n.error());
    }
    uint64_t scale = 0;
    std::string_view u = n->unit;
    if (u.empty() || u == "B") {
        scale = 1;
    } else if (u == "KiB" || u == "K" || u == "KB") {
        scale = uint64_t{1} << 10;
    } else if (u == "MiB" || u == "M" || u == "MB") {
        scale = uint64_t{1} << 20;
    } else if (u == "GiB" || u == "G" || u == "GB") {
        scale = uint64_t{1} << 30;
    } else {
        return base::fail(quoted(s) + " is not a size; expected e.g. " + kSizeExamples);
    }
    uint64_t bytes = 0;
    if (!multiplyFits(n->value, scale, &bytes)) {
        return base::fail(quoted(s) + " is too large: " + limit);
    }
    return bytes;
}

base::Result<uint64_t> parseDurationMs(std::string_view s) {
    const std::string limit = "the longest duration is " + std::to_string(kMax) + "ms";
    auto n = splitNumber(s, "duration", kDurationExamples, limit);
    if (!n) {
        return base::unexpected(n.error());
    }
    uint64_t scale = 0;
    std::string_view u = n->unit;
    if (u == "ms") {
        scale = 1;
    } else if (u == "s" || u.empty()) {
        scale = 1000;
    } else if (u == "m") {
        scale = 60'000;
    } else if (u == "h") {
        scale = 3'600'000;
    } else {
        return base::fail(quoted(s) + " is not a duration; expected e.g. " + kDurationExamples +
                          " (a bare number is seconds)");
    }
    uint64_t ms = 0;
    if (!multiplyFits(n->value, scale, &ms)) {
        return base::fail(quoted(s) + " is too large: " + limit);
    }
    return ms;
}

std::string formatSize(uint64_t bytes) {
    if (bytes != 0) {
        if (bytes % (uint64_t{1} << 30) == 0) {
            return std::to_string(bytes >> 30) + "GiB";
        }
        if (bytes % (uint64_t{1} << 20) == 0) {
            return std::to_string(bytes >> 20) + "MiB";
        }
        if (bytes % (uint64_t{1} << 10) == 0) {
            return std::to_string(bytes >> 10) + "KiB";
        }
    }
    return std::to_string(bytes);
}

std::string formatDuration(uint64_t ms) {
    if (ms == 0) {
        return "0s";
    }
    if (ms % 3'600'000 == 0) {
        return std::to_string(ms / 3'600'000) + "h";
    }
    if (ms % 60'000 == 0) {
        return std::to_string(ms / 60'000) + "m";
    }
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

}  // namespace sb::config
