// ASCII case helpers for protocol tokens (HTTP header names, extension names, tokens), which
// are ASCII by definition: no locale, no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace sb::base {

constexpr char asciiLower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (asciiLower(a[i]) != asciiLower(b[i])) {
            return false;
        }
    }
    return true;
}

}  // namespace sb::base
