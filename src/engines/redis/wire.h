// The engine's own formats inside Redis values and pub/sub messages (pure; fuzzed by
// fuzz/redis_wire_fuzz.cpp). Client-supplied bytes (data, user, info) travel in them, so every
// decoder takes any input and answers nullopt/null for what it does not understand.
#pragma once

#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "broker/engine.h"

namespace sb::engines::redis {

// Decimal text, all of it (no sign, no spaces): Redis's integers as strings, our lengths.
template <class T>
bool parseNumber(std::string_view s, T* out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// A presence value: '1' if the namespace announces join/leave (else '0'), the owning node's id,
// '\n', then client id, user and info as netstrings ("<len>:<bytes>"), so any byte may occur.
std::string encodePresence(bool join_leave, std::string_view node, const broker::ClientInfo& who);
// Null if malformed.
std::shared_ptr<const broker::ClientInfo> decodePresence(std::string_view value);

// A publication message after its 'm': "<epoch>\n<offset>\n<redis ms>\n<data>".
struct PublicationFields {
    std::string_view epoch;
    uint64_t offset = 0;
    uint64_t time_ms = 0;  // Redis's clock (wall time)
    std::string_view data;
};
std::optional<PublicationFields> parsePublication(std::string_view payload);

}  // namespace sb::engines::redis
