// randomHex: length, alphabet, and that it does not repeat.
#include "broker/random_id.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sb::broker {
namespace {

TEST(RandomId, HexOfRequestedLength) {
    for (size_t n : {0u, 1u, 6u, 16u, 100u}) {
        std::string s = randomHex(n);
        EXPECT_EQ(s.size(), 2 * n);
        EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos) << s;
    }
}

TEST(RandomId, DoesNotRepeat) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(seen.insert(randomHex(8)).second);
    }
}

}  // namespace
}  // namespace sb::broker
