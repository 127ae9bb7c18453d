#include "config/units.h"

#include <gtest/gtest.h>

namespace sb::config {
namespace {

TEST(Units, SizesInEveryUnit) {
    EXPECT_EQ(*parseSize("4096"), 4096u);
    EXPECT_EQ(*parseSize("0"), 0u);
    EXPECT_EQ(*parseSize("12B"), 12u);
    EXPECT_EQ(*parseSize("64KiB"), 64u << 10);
    EXPECT_EQ(*parseSize("64K"), 64u << 10);
    EXPECT_EQ(*parseSize("64KB"), 64u << 10);  // binary, as before
    EXPECT_EQ(*parseSize("16MiB"), 16u << 20);
    EXPECT_EQ(*parseSize("1GiB"), uint64_t{1} << 30);
    EXPECT_EQ(*parseSize(" 2 MiB "), 2u << 20);
    EXPECT_EQ(*parseSize("17179869183GiB"), uint64_t{17179869183} << 30);  // the largest GiB count
}

TEST(Units, SizeErrorsSayWhatIsExpected) {
    EXPECT_EQ(parseSize("lots").error().message,
              "\"lots\" is not a size; expected e.g. 4096, \"64KiB\", \"16MiB\" or \"1GiB\"");
    EXPECT_EQ(parseSize("5TB").error().message,
              "\"5TB\" is not a size; expected e.g. 4096, \"64KiB\", \"16MiB\" or \"1GiB\"");
    EXPECT_NE(parseSize("-5KiB").error().message.find("is negative"), std::string::npos);
    EXPECT_FALSE(parseSize("").has_value());
    EXPECT_FALSE(parseSize("1.5MiB").has_value());
}

TEST(Units, SizeOverflowIsAnErrorWithTheMaximum) {
    for (const char* s : {"99999999999999999999KiB", "18446744073709551615GiB", "17179869184GiB",
                          "99999999999999999999"}) {
        auto r = parseSize(s);
        ASSERT_FALSE(r.has_value()) << s;
        EXPECT_NE(r.error().message.find("is too large: the largest size is 18446744073709551615 "
                                         "bytes"),
                  std::string::npos)
            << r.error().message;
    }
    EXPECT_EQ(*parseSize("18446744073709551615"), UINT64_MAX);
}

TEST(Units, DurationsInEveryUnit) {
    EXPECT_EQ(*parseDurationMs("500ms"), 500u);
    EXPECT_EQ(*parseDurationMs("25s"), 25'000u);
    EXPECT_EQ(*parseDurationMs("2m"), 120'000u);
    EXPECT_EQ(*parseDurationMs("1h"), 3'600'000u);
    EXPECT_EQ(*parseDurationMs("30"), 30'000u);  // a bare number is seconds, as before
    EXPECT_EQ(*parseDurationMs("0"), 0u);
}

TEST(Units, DurationErrorsAndOverflow) {
    EXPECT_EQ(parseDurationMs("forever").error().message,
              "\"forever\" is not a duration; expected e.g. \"500ms\", \"25s\", \"2m\" or \"1h\"");
    EXPECT_NE(parseDurationMs("5d").error().message.find("is not a duration"), std::string::npos);
    EXPECT_NE(parseDurationMs("-1s").error().message.find("is negative"), std::string::npos);
    for (const char* s : {"9999999999999999999h", "99999999999999999999ms", "18446744073709552s"}) {
        auto r = parseDurationMs(s);
        ASSERT_FALSE(r.has_value()) << s;
        EXPECT_NE(r.error().message.find("the longest duration is 18446744073709551615ms"),
                  std::string::npos)
            << r.error().message;
    }
}

TEST(Units, FormattingUsesTheLargestExactUnitAndRoundTrips) {
    EXPECT_EQ(formatSize(16u << 20), "16MiB");
    EXPECT_EQ(formatSize(8192), "8KiB");
    EXPECT_EQ(formatSize(uint64_t{1} << 30), "1GiB");
    EXPECT_EQ(formatSize(4100), "4100");
    EXPECT_EQ(formatSize(0), "0");
    EXPECT_EQ(formatDuration(25'000), "25s");
    EXPECT_EQ(formatDuration(120'000), "2m");
    EXPECT_EQ(formatDuration(3'600'000), "1h");
    EXPECT_EQ(formatDuration(1500), "1500ms");
    EXPECT_EQ(formatDuration(0), "0s");
    for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{1023}, uint64_t{1} << 40, UINT64_MAX}) {
        EXPECT_EQ(*parseSize(formatSize(v)), v);
        EXPECT_EQ(*parseDurationMs(formatDuration(v)), v);
    }
}

TEST(Units, MultiplyFits) {
    uint64_t out = 0;
    EXPECT_TRUE(multiplyFits(UINT64_MAX, 1, &out));
    EXPECT_EQ(out, UINT64_MAX);
    EXPECT_FALSE(multiplyFits(UINT64_MAX / 2 + 1, 2, &out));
    EXPECT_TRUE(multiplyFits(0, UINT64_MAX, &out));
    EXPECT_EQ(out, 0u);
}

}  // namespace
}  // namespace sb::config
