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
    EXPECT_TRUE(parse({"fanout", "--mode", "plain", "-i", "5"}));
    // No acknowledgements in plain mode: the window closes over deliveries, never over acks.
    EXPECT_FALSE(parse({"fanout", "--mode", "plain", "--flow", "ack"}));
    EXPECT_FALSE(parse({"fanout", "--flow", "sometimes"}));
    EXPECT_FALSE(parse({"fanout", "--multi-room", "--rooms", "4", "--flow", "delivery"}));
    EXPECT_FALSE(parse({"fanout", "--mode", "plain", "--multi-room", "--rooms", "4", "-i", "1"}));
    EXPECT_FALSE(parse({"echo", "--warmup", "1s"}));  // a warm-up before what? needs -d
    EXPECT_FALSE(parse({"ramp", "--step", "0"}));
}

TEST(BenchCli, FlowDefaults) {
    auto plain = parse({"fanout", "--mode", "plain"});
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(plain->flow, Flow::kDelivery);
    auto native = parse({"fanout"});
    ASSERT_TRUE(native);
    EXPECT_EQ(native->flow, Flow::kAck);
    auto delivery = parse({"fanout", "--flow", "delivery", "-w", "32", "-d", "4s", "--warmup", "1s",
                           "--server-pid", "1234"});
    ASSERT_TRUE(delivery) << delivery.error().message;
    EXPECT_EQ(delivery->flow, Flow::kDelivery);
    EXPECT_DOUBLE_EQ(delivery->warmup_s, 1.0);
    EXPECT_EQ(delivery->server_pid, 1234);
    auto multi = parse({"fanout", "--multi-room", "--rooms", "100", "-i", "0.1ms"});
    ASSERT_TRUE(multi) << multi.error().message;
    EXPECT_TRUE(multi->multi_room);
    EXPECT_DOUBLE_EQ(multi->interval_ms, 0.1);
    auto ready = parse({"connect", "--ready-file", "/tmp/x"});
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->ready_file, "/tmp/x");
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

TEST(BenchCli, SeveralUrlsRepeatedOrCommaSeparated) {
    auto o = parse({"fanout", "--url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws", "--url",
                    "ws://127.0.0.1:3/ws"});
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->urls, (std::vector<std::string>{"ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws",
                                                 "ws://127.0.0.1:3/ws"}));
    EXPECT_EQ(o->url, "ws://127.0.0.1:1/ws");  // the first one names the run
    EXPECT_TRUE(o->publish_urls.empty());      // = the first URL
    EXPECT_EQ(targetCount(*o), 3u);

    auto one = parse({"echo", "--url=ws://127.0.0.1:9/echo"});
    ASSERT_TRUE(one);
    EXPECT_EQ(one->urls, std::vector<std::string>{"ws://127.0.0.1:9/echo"});

    auto dflt = parse({"fanout"});
    ASSERT_TRUE(dflt);
    EXPECT_EQ(dflt->urls, std::vector<std::string>{"ws://127.0.0.1:8080/ws"});
}

TEST(BenchCli, PublishUrl) {
    auto o = parse({"fanout", "--url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws", "--publish-url",
                    "ws://127.0.0.1:2/ws"});
    ASSERT_TRUE(o);
    EXPECT_EQ(o->publish_urls, std::vector<std::string>{"ws://127.0.0.1:2/ws"});
    auto spread = parse({"fanout", "--publish-url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws",
                         "--publish-url", "ws://127.0.0.1:3/ws"});
    ASSERT_TRUE(spread);
    EXPECT_EQ(spread->publish_urls.size(), 3u);
    EXPECT_FALSE(parse({"echo", "--publish-url", "ws://127.0.0.1:2/echo"}));  // no publishers
    EXPECT_FALSE(parse({"fanout", "--publish-url", ""}));
    EXPECT_FALSE(parse({"fanout", "--url", "ws://127.0.0.1:1/ws,,ws://127.0.0.1:2/ws"}));
    EXPECT_FALSE(parse({"fanout", "--url", ""}));
    EXPECT_FALSE(parse({"fanout", "--url", "ws://127.0.0.1:1/ws,"}));
    EXPECT_NE(benchHelp().find("--publish-url"), std::string::npos);
}

TEST(BenchOptions, OneUrlOrOneRoomIsPlainRoundRobin) {
    BenchOptions o;
    o.scenario = Scenario::kEcho;
    EXPECT_EQ(targetCount(o), 1u);
    EXPECT_EQ(targetFor(o, 12345), 0u);
    o.urls = {"a", "b", "c"};
    o.rooms = 7;  // not fanout: rooms play no part
    for (uint32_t i = 0; i < 9; ++i) {
        EXPECT_EQ(targetFor(o, i), i % 3) << i;
    }
    o.scenario = Scenario::kFanout;
    o.rooms = 1;
    for (uint32_t i = 0; i < 9; ++i) {
        EXPECT_EQ(targetFor(o, i), i % 3) << i;
    }
}

// Every room reaches every target even when the number of targets divides the number of
// rooms (plain round-robin would put each room on one node), and the totals stay even.
TEST(BenchOptions, EveryRoomSpansEveryTarget) {
    for (uint32_t targets : {2u, 3u, 6u}) {
        for (uint32_t rooms : {1u, 4u, 6u, 12u, 1000u}) {
            BenchOptions o;
            o.scenario = Scenario::kFanout;
            o.rooms = rooms;
            o.urls.assign(targets, "ws://x/ws");
            o.conns = rooms * targets * 5;
            std::vector<std::vector<uint32_t>> per_room(rooms, std::vector<uint32_t>(targets));
            std::vector<uint32_t> per_target(targets);
            for (uint32_t c = 0; c < o.conns; ++c) {
                const uint32_t t = targetFor(o, c);
                ASSERT_LT(t, targets);
                ++per_room[c % rooms][t];
                ++per_target[t];
            }
            for (uint32_t r = 0; r < rooms; ++r) {
                for (uint32_t t = 0; t < targets; ++t) {
                    EXPECT_EQ(per_room[r][t], 5u) << rooms << " rooms, " << targets
                                                  << " targets: room " << r << " target " << t;
                }
            }
            for (uint32_t t = 0; t < targets; ++t) {
                EXPECT_EQ(per_target[t], o.conns / targets);
            }
        }
    }
}

// A worker's slice is a contiguous block of connection numbers; with the spread above each
// worker still talks to every target.
TEST(BenchOptions, EachWorkerSliceReachesEveryTarget) {
    BenchOptions o;
    o.scenario = Scenario::kFanout;
    o.conns = 100'000;
    o.rooms = 1000;
    o.publishers = 1000;
    o.urls.assign(6, "ws://x/ws");
    uint32_t covered_conns = 0;
    uint32_t covered_pubs = 0;
    for (uint32_t w = 0; w < 6; ++w) {
        const Slice s = sliceFor(o, w, 6);
        std::vector<uint32_t> per_target(6);
        for (uint32_t c = s.conn_lo; c < s.conn_hi; ++c) {
            ++per_target[targetFor(o, c)];
        }
        for (uint32_t n : per_target) {
            EXPECT_GT(n, (s.conn_hi - s.conn_lo) / 6 - 1000) << "worker " << w;
        }
        covered_conns += s.conn_hi - s.conn_lo;
        covered_pubs += s.pub_hi - s.pub_lo;
    }
    EXPECT_EQ(covered_conns, 100'000u);
    EXPECT_EQ(covered_pubs, 1000u);
}

}  // namespace
}  // namespace sb::bench
