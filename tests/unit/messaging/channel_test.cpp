// parseChannel: the namespace, name and canonical name of valid channels (table), the rejection
// of invalid ones, the length limits at their edges, and that a canonical name parses back to
// the same channel.
#include "messaging/channel.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace sb::messaging {
namespace {

using namespace std::string_literals;

struct ValidCase {
    std::string channel;
    std::string ns;
    std::string name;
    std::string canonical;
};

std::vector<ValidCase> validCases() {
    const std::string ns64(kMaxNamespaceBytes, 'n');
    const std::string name192(kMaxChannelNameBytes, 'x');
    return {
        {"chat:lobby", "chat", "lobby", "chat:lobby"},
        {"lobby", "default", "lobby", "lobby"},
        {"default:lobby", "default", "lobby", "lobby"},
        {"default:a:b", "default", "a:b", "default:a:b"},
        {"ns:a:b:c", "ns", "a:b:c", "ns:a:b:c"},
        {"ns::", "ns", ":", "ns::"},
        {"a_b-9:X.y@z=1,2-_", "a_b-9", "X.y@z=1,2-_", "a_b-9:X.y@z=1,2-_"},
        {"Lobby.1", "default", "Lobby.1", "Lobby.1"},
        {"0:0", "0", "0", "0:0"},
        {ns64 + ":room", ns64, "room", ns64 + ":room"},
        {"chat:" + name192, "chat", name192, "chat:" + name192},
        {name192, "default", name192, name192},
        {"default:" + name192, "default", name192, name192},
    };
}

TEST(ParseChannel, ValidNamesTable) {
    for (const ValidCase& c : validCases()) {
        SCOPED_TRACE("channel '" + c.channel + "'");
        auto r = parseChannel(c.channel);
        ASSERT_TRUE(r.has_value());
        EXPECT_EQ(r->ns, c.ns);
        EXPECT_EQ(r->name, c.name);
        EXPECT_EQ(r->canonical, c.canonical);
    }
}

TEST(ParseChannel, CanonicalNameParsesToTheSameChannel) {
    for (const ValidCase& c : validCases()) {
        SCOPED_TRACE("channel '" + c.channel + "'");
        auto r = parseChannel(c.channel);
        ASSERT_TRUE(r.has_value());
        const std::string canonical(r->canonical);
        auto again = parseChannel(canonical);
        ASSERT_TRUE(again.has_value());
        EXPECT_EQ(again->ns, r->ns);
        EXPECT_EQ(again->name, r->name);
        EXPECT_EQ(again->canonical, canonical);  // canonical is a fixed point
    }
}

TEST(ParseChannel, ViewsPointIntoTheInput) {
    const std::string channel = "chat:lobby";
    auto r = parseChannel(channel);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->ns.data(), channel.data());
    EXPECT_EQ(r->name.data(), channel.data() + 5);
    EXPECT_EQ(r->canonical.data(), channel.data());
    const std::string alias = "default:room";
    auto a = parseChannel(alias);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->canonical.data(), alias.data() + 8);
}

TEST(ParseChannel, InvalidNamesTable) {
    const std::vector<std::string> invalid = {
        "",
        ":",
        ":lobby",
        "chat:",
        "default:",
        "Chat:lobby",
        "chat.x:lobby",
        "chat:lob by",
        "chat:lobby/1",
        "chat:lobby#",
        "chat:\xc3\xa9",  // "chat:é" in UTF-8
        "\xc3\xa9",
        "chat:lob\0by"s,  // embedded NUL in the name
        "ch\0at:lobby"s,  // and in the namespace
        "lobby\0"s,
        "lob by",
        "lobby!",
        " lobby",
        "lobby\n",
        "chat :lobby",
        "ch*t:lobby",
    };
    for (const std::string& c : invalid) {
        SCOPED_TRACE("channel '" + c + "' (" + std::to_string(c.size()) + " bytes)");
        EXPECT_FALSE(parseChannel(c).has_value());
    }
}

TEST(ParseChannel, NamespaceLengthLimit) {
    const std::string ns64(kMaxNamespaceBytes, 'a');
    const std::string ns65(kMaxNamespaceBytes + 1, 'a');
    EXPECT_EQ(kMaxNamespaceBytes, 64u);
    EXPECT_TRUE(parseChannel(ns64 + ":x").has_value());
    EXPECT_FALSE(parseChannel(ns65 + ":x").has_value());
    // Without ':' the same 65 characters are a name in "default", which allows 192.
    EXPECT_TRUE(parseChannel(ns65).has_value());
}

TEST(ParseChannel, NameLengthLimit) {
    const std::string name192(kMaxChannelNameBytes, 'b');
    const std::string name193(kMaxChannelNameBytes + 1, 'b');
    EXPECT_EQ(kMaxChannelNameBytes, 192u);
    EXPECT_TRUE(parseChannel("chat:" + name192).has_value());
    EXPECT_FALSE(parseChannel("chat:" + name193).has_value());
    EXPECT_TRUE(parseChannel(name192).has_value());
    EXPECT_FALSE(parseChannel(name193).has_value());
    EXPECT_TRUE(parseChannel("default:" + name192).has_value());
    EXPECT_FALSE(parseChannel("default:" + name193).has_value());
    // ':' counts towards the name: 191 characters plus ':' is still 192.
    EXPECT_TRUE(parseChannel("chat:" + std::string(191, 'b') + ":").has_value());
    EXPECT_FALSE(parseChannel("chat:" + std::string(192, 'b') + ":").has_value());
}

TEST(ParseChannel, EveryByteOutsideTheAlphabetIsRejected) {
    const std::string_view ns_alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_-";
    const std::string_view name_extra = "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:@=,";
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        const bool in_ns = ns_alphabet.find(c) != std::string_view::npos;
        const bool in_name = in_ns || name_extra.find(c) != std::string_view::npos;
        SCOPED_TRACE("byte " + std::to_string(b));
        EXPECT_EQ(parseChannel("chat:a"s + c + "b").has_value(), in_name);
        if (c != ':') {
            EXPECT_EQ(parseChannel("c"s + c + "t:lobby").has_value(), in_ns);
        }
    }
}

}  // namespace
}  // namespace sb::messaging
