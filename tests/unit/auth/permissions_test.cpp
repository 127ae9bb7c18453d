// Tests of channel pattern matching (auth/permissions.h).
#include "auth/permissions.h"

#include <gtest/gtest.h>

namespace sb::auth {
namespace {

TEST(ChannelMatches, ExactName) {
    EXPECT_TRUE(channelMatches("news", "news"));
    EXPECT_FALSE(channelMatches("news", "news2"));
    EXPECT_FALSE(channelMatches("news", "new"));
    EXPECT_FALSE(channelMatches("news", "NEWS"));
}

TEST(ChannelMatches, TrailingStarIsAPrefix) {
    EXPECT_TRUE(channelMatches("chat:*", "chat:lobby"));
    EXPECT_TRUE(channelMatches("chat:*", "chat:"));
    EXPECT_FALSE(channelMatches("chat:*", "chat"));
    EXPECT_FALSE(channelMatches("chat:*", "chatter:x"));
    EXPECT_TRUE(channelMatches("chat:room-*", "chat:room-42"));
    EXPECT_FALSE(channelMatches("chat:room-*", "chat:lobby"));
}

TEST(ChannelMatches, LoneStarMatchesEveryChannel) {
    EXPECT_TRUE(channelMatches("*", "a"));
    EXPECT_TRUE(channelMatches("*", "private:x"));
    EXPECT_FALSE(channelMatches("*", ""));
}

TEST(ChannelMatches, EmptyPatternOrChannelMatchesNothing) {
    EXPECT_FALSE(channelMatches("", ""));
    EXPECT_FALSE(channelMatches("", "news"));
    EXPECT_FALSE(channelMatches("news", ""));
}

TEST(ChannelMatches, StarElsewhereIsLiteral) {
    EXPECT_FALSE(channelMatches("chat:*:x", "chat:a:x"));
    EXPECT_TRUE(channelMatches("chat:*:x", "chat:*:x"));
    EXPECT_FALSE(channelMatches("*chat", "mychat"));
    EXPECT_TRUE(channelMatches("a*b*", "a*b-c"));
    EXPECT_FALSE(channelMatches("a*b*", "axb-c"));
    EXPECT_TRUE(channelMatches("**", "*x"));
    EXPECT_FALSE(channelMatches("**", "x"));
}

TEST(AnyChannelMatches, AnyPatternOfTheList) {
    const std::vector<std::string> patterns = {"news", "chat:*"};
    EXPECT_TRUE(anyChannelMatches(patterns, "news"));
    EXPECT_TRUE(anyChannelMatches(patterns, "chat:x"));
    EXPECT_FALSE(anyChannelMatches(patterns, "private:x"));
    EXPECT_FALSE(anyChannelMatches({}, "news"));
    EXPECT_FALSE(anyChannelMatches({""}, "news"));
}

}  // namespace
}  // namespace sb::auth
