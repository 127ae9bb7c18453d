// `switchboard bench` flag parsing: defaults per scenario, units, and usage errors.
#include "bench/cli.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::bench {
namespace {

base::Result<BenchOptions> parse(std::vector<std::string> args, bool* help = nullptr) {
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    bool h = false;
    auto r = parseBenchArgs(static_cast<int>(argv.size()), argv.data(), &h);
    if (help != nullptr) {
        *help = h;
    }
    return r;
}

TEST(BenchCli, EchoDefaultsAndUnits) {
    auto o = parse({"echo", "--url", "ws://127.0.0.1:9/echo", "-c", "10k", "-i", "10ms", "-d",
                    "2.5s", "--size=128", "--binary", "--json", "out.json"});
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->scenario, Scenario::kEcho);
    EXPECT_EQ(o->mode, Mode::kPlain);
    EXPECT_EQ(o->conns, 10'000u);
    EXPECT_DOUBLE_EQ(o->interval_ms, 10.0);
    EXPECT_DOUBLE_EQ(o->duration_s, 2.5);
    EXPECT_EQ(o->messages, 0u);  // bounded by -d
    EXPECT_EQ(o->size, 128u);
    EXPECT_TRUE(o->binary);
    EXPECT_EQ(o->json_path, "out.json");
}

TEST(BenchCli, MessagesDefaultWhenUnbounded) {
    auto o = parse({"echo"});
    ASSERT_TRUE(o);
    EXPECT_EQ(o->messages, 100u);
    EXPECT_EQ(o->url, "ws://127.0.0.1:8080/echo");
}

TEST(BenchCli, FanoutIsNativeByDefault) {
    auto o = parse({"fanout", "--publishers", "4", "--rooms", "2"});
    ASSERT_TRUE(o);
    EXPECT_EQ(o->mode, Mode::kNative);
    EXPECT_EQ(o->url, "ws://127.0.0.1:8080/ws");
    EXPECT_EQ(o->publishers, 4u);
    EXPECT_EQ(o->rooms, 2u);
}

TEST(BenchCli, UsageErrors) {
    EXPECT_FALSE(parse({"bogus"}));
    EXPECT_FALSE(parse({"echo", "--nope"}));
    EXPECT_FALSE(parse({"echo", "-c"}));
    EXPECT_FALSE(parse({"echo", "-c", "-5"}));
    EXPECT_FALSE(parse({"echo", "-d", "soon"}));
    EXPECT_FALSE(parse({"echo", "--mode", "weird"}));
    EXPECT_FALSE(parse({"fanout", "--mode", "plain"}));  // plain fanout needs --interval
    EXPECT_TRUE(parse({"fanout", "--mode", "plain", "-i", "5"}));
    EXPECT_FALSE(parse({"ramp", "--step", "0"}));
}

TEST(BenchCli, Help) {
    bool help = false;
    ASSERT_TRUE(parse({"echo", "--help"}, &help));
    EXPECT_TRUE(help);
    EXPECT_NE(benchHelp().find("--procs"), std::string::npos);
}

TEST(BenchCli, RampDefaultsToAPacedInterval) {
    auto o = parse({"ramp", "--step", "20", "--max-p95", "5", "--max-error-rate", "2"});
    ASSERT_TRUE(o);
    EXPECT_DOUBLE_EQ(o->interval_ms, 100.0);
    EXPECT_DOUBLE_EQ(o->ramp_max_p95_ms, 5.0);
    EXPECT_DOUBLE_EQ(o->ramp_max_error_rate, 0.02);
}

}  // namespace
}  // namespace sb::bench
