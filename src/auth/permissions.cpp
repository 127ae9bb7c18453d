// Channel pattern matching (permissions.h): exact names and trailing-'*' prefixes, no globbing,
// so a pattern's meaning is obvious from reading it and matching is one comparison.
#include "auth/permissions.h"

#include <algorithm>

namespace sb::auth {

bool channelMatches(std::string_view pattern, std::string_view channel) {
    if (pattern.empty() || channel.empty()) {
        return false;
    }
    if (pattern.back() == '*') {
        return channel.starts_with(pattern.substr(0, pattern.size() - 1));
    }
    return pattern == channel;
}

bool anyChannelMatches(const std::vector<std::string>& patterns, std::string_view channel) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [channel](const std::string& p) { return channelMatches(p, channel); });
}

}  // namespace sb::auth
