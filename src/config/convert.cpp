// Value conversion and the shared messages: what was wrong and what the setting expects.
#include "config/convert.h"

#include <charconv>
#include <limits>

#include "config/units.h"

namespace sb::config::detail {

namespace {

size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        }
        prev.swap(cur);
    }
    return prev[b.size()];
}

std::string_view lastComponent(std::string_view key) {
    size_t dot = key.rfind('.');
    return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

// The limit of a number of `s`'s kind, in its unit.
std::string spell(const Setting& s, uint64_t v) {
    switch (s.spec.kind) {
        case Kind::kSize: {
            std::string f = formatSize(v);
            return f == std::to_string(v) ? f + " bytes" : f;
        }
        case Kind::kDuration:
            return formatDuration(v);
        default:
            return std::to_string(v);
    }
}

}  // namespace

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::vector<std::string> splitList(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        size_t c = s.find(',');
        std::string_view item = s.substr(0, c);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
            item.remove_prefix(1);
        }
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
            item.remove_suffix(1);
        }
        if (!item.empty()) {
            out.emplace_back(item);
        }
        if (c == std::string_view::npos) {
            break;
        }
        s.remove_prefix(c + 1);
    }
    return out;
}

std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_d = 4;  // more than 3 edits away is not a typo
    for (const auto& c : candidates) {
        size_t d = editDistance(wrong, c);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    if (best.empty()) {
        // "port" at the top level, meant as server.port.
        for (const auto& c : candidates) {
            if (lastComponent(c) == lastComponent(wrong)) {
                best = c;
                break;
            }
        }
    }
    return best.empty() ? "" : " (did you mean " + best + "?)";
}

base::Result<Value> checkRange(const Setting& s, uint64_t v, const std::string& as_written) {
    if (v >= s.spec.min && v <= s.spec.max) {
        return Value{v};
    }
    if (s.spec.kind == Kind::kUint && s.spec.max != std::numeric_limits<uint64_t>::max()) {
        return base::fail(as_written + " is out of range; expected " + SchemaBase::expected(s));
    }
    if (v > s.spec.max) {
        return base::fail(as_written + " is too large: the maximum is " + spell(s, s.spec.max));
    }
    return base::fail(as_written + " is too small: the minimum is " + spell(s, s.spec.min));
}

base::Result<Value> valueFromText(const Setting& s, std::string_view text) {
    const std::string shown = quote(text);
    switch (s.spec.kind) {
        case Kind::kString:
            return Value{std::string(text)};
        case Kind::kList:
            return Value{splitList(text)};
        case Kind::kBool:
            if (text == "true") {
                return Value{true};
            }
            if (text == "false") {
                return Value{false};
            }
            return base::fail(shown + " is not a boolean; expected " + SchemaBase::expected(s));
        case Kind::kUint: {
            if (!text.empty() && text.front() == '-') {
                return base::fail(shown + " is negative; expected " + SchemaBase::expected(s));
            }
            uint64_t v = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec == std::errc::result_out_of_range) {
                // Beyond 64 bits: beyond every field's maximum.
                if (s.spec.max == std::numeric_limits<uint64_t>::max()) {
                    return base::fail(shown + " is too large: the maximum is " +
                                      std::to_string(s.spec.max));
                }
                return checkRange(s, std::numeric_limits<uint64_t>::max(), shown);
            }
            if (ec != std::errc() || p != text.data() + text.size()) {
                return base::fail(shown + " is not an integer; expected " +
                                  SchemaBase::expected(s));
            }
            return checkRange(s, v, shown);
        }
        case Kind::kSize:
        case Kind::kDuration: {
            auto r = s.spec.kind == Kind::kSize ? parseSize(text) : parseDurationMs(text);
            if (!r) {
                return base::unexpected(r.error());
            }
            return checkRange(s, *r, shown);
        }
        case Kind::kEnum:
        case Kind::kLogLevel:
            for (auto c : s.spec.choices) {
                if (c == text) {
                    return Value{std::string(text)};
                }
            }
            return base::fail(shown + " is not valid; expected " + SchemaBase::expected(s));
    }
    return base::fail("unsupported kind");
}

}  // namespace sb::config::detail
