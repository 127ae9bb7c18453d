#include "messaging/channel.h"

#include <array>

#include "messaging/options.h"

namespace sb::messaging {

namespace {

constexpr auto kNsChar = [] {
    std::array<bool, 256> t{};
    for (int c = 'a'; c <= 'z'; ++c) {
        t[c] = true;
    }
    for (int c = '0'; c <= '9'; ++c) {
        t[c] = true;
    }
    t['_'] = t['-'] = true;
    return t;
}();

constexpr auto kNameChar = [] {
    std::array<bool, 256> t = kNsChar;
    for (int c = 'A'; c <= 'Z'; ++c) {
        t[c] = true;
    }
    for (const char c : std::string_view(".:@=,")) {
        t[static_cast<unsigned char>(c)] = true;
    }
    return t;
}();

bool allOf(std::string_view s, const std::array<bool, 256>& table) {
    for (const char c : s) {
        if (!table[static_cast<unsigned char>(c)]) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<ChannelRef> parseChannel(std::string_view channel) {
    const size_t colon = channel.find(':');
    ChannelRef r;
    r.ns = colon == std::string_view::npos ? kDefaultNamespace : channel.substr(0, colon);
    r.name = colon == std::string_view::npos ? channel : channel.substr(colon + 1);
    if (r.ns.empty() || r.ns.size() > kMaxNamespaceBytes || r.name.empty() ||
        r.name.size() > kMaxChannelNameBytes || !allOf(r.ns, kNsChar) ||
        !allOf(r.name, kNameChar)) {
        return std::nullopt;
    }
    const bool alias = colon != std::string_view::npos && r.ns == kDefaultNamespace &&
                       r.name.find(':') == std::string_view::npos;
    r.canonical = alias ? r.name : channel;
    return r;
}

}  // namespace sb::messaging
