// Channel names (docs/protocol.md §Names): "ns:name" with ns [a-z0-9_-]{1,64} and name
// [A-Za-z0-9_.:@=,-]{1,192}; a name without ':' is in the namespace "default". Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace sb::messaging {

inline constexpr size_t kMaxNamespaceBytes = 64;
inline constexpr size_t kMaxChannelNameBytes = 192;

// A parsed channel; views into the string given to parseChannel.
struct ChannelRef {
    std::string_view ns;    // "default" for a name without ':'
    std::string_view name;  // after the first ':' (may itself hold ':')
    // The one name of the channel everywhere (engine, sessions, events, replies):
    // "default:room" is "room"; every other name is itself. A name whose part after
    // "default:" holds ':' keeps its prefix ("default:a:b"), as "a:b" is namespace "a".
    std::string_view canonical;
};

// nullopt if `channel` is not a valid name.
std::optional<ChannelRef> parseChannel(std::string_view channel);

}  // namespace sb::messaging
