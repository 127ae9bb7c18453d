// Internal to the config layer: turning what a user wrote (environment or flag text, or a
// number from TOML) into a setting's Value, with the error messages every layer shares. Messages
// lack the "WHERE: KEY: " prefix, which the layer adds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "config/schema.h"

namespace sb::config::detail {

// Text from the environment or a flag → Value of `s` (range checked).
base::Result<Value> valueFromText(const Setting& s, std::string_view text);

// A number of `s`'s unit (bytes, ms, or plain) against its range; `as_written` is the user's
// spelling, quoted in the message.
base::Result<Value> checkRange(const Setting& s, uint64_t v, const std::string& as_written);

// "a, b , ,c" → {"a", "b", "c"}.
std::vector<std::string> splitList(std::string_view s);

// " (did you mean X?)" for the closest candidate (edit distance ≤ 3, or the same last dotted
// component), or "".
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates);

// A TOML basic string: "a\"b".
std::string quote(std::string_view s);

}  // namespace sb::config::detail
