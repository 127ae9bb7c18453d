// Channel patterns of a token's "channels" claim: which channels a user may use. A pattern is an
// exact channel name, or a prefix ending in '*' ("chat:*", "chat:room-*", "*").
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sb::auth {

// True if `channel` matches `pattern`. Only a trailing '*' is special: it matches any rest,
// including none ("chat:*" matches "chat:"); a '*' anywhere else is a literal character. An
// empty pattern or an empty channel matches nothing. Pure; any thread.
bool channelMatches(std::string_view pattern, std::string_view channel);

// True if any of `patterns` matches `channel` (false for none).
bool anyChannelMatches(const std::vector<std::string>& patterns, std::string_view channel);

}  // namespace sb::auth
