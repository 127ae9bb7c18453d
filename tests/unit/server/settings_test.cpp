#include "server/settings.h"

#include <gtest/gtest.h>

namespace sb::server {
namespace {

TEST(Settings, DefaultsResolveToSafeValues) {
    Settings s;
    auto c = s.resolve();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->server.port, 8080);
    EXPECT_EQ(c->websocket.ping_interval_ms, 25'000u);
    EXPECT_EQ(c->websocket.idle_timeout_ms, 35'000u);  // ping interval + 10 s
    EXPECT_EQ(c->websocket.max_message_size, 16u << 20);
    EXPECT_TRUE(c->compression);
    EXPECT_FALSE(c->server.reuse_port);  // a port another process listens on is an error
    EXPECT_EQ(c->echo_subprotocols, std::vector<std::string>{"echo"});
}

TEST(Settings, FileThenEnvThenFlagsWin) {
    Settings s;
    ASSERT_TRUE(
        s.loadText("[server]\nport = 9000\nthreads = 3\n[websocket]\nping_interval = \"5s\"\n"
                   "compression = false\n",
                   "test.toml")
            .has_value());
    char env1[] = "SWITCHBOARD_PORT=9100";
    char env2[] = "PATH=/bin";
    char* envp[] = {env1, env2, nullptr};
    ASSERT_TRUE(s.loadEnv(envp).has_value());
    ASSERT_TRUE(s.setFlag("--threads", "1").has_value());
    ASSERT_TRUE(s.setFlag("--reuse-port", "true").has_value());
    auto c = s.resolve();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->server.port, 9100);   // env over file
    EXPECT_EQ(c->server.threads, 1u);  // flag over file
    EXPECT_TRUE(c->server.reuse_port);
    EXPECT_EQ(c->websocket.ping_interval_ms, 5000u);
    EXPECT_EQ(c->websocket.idle_timeout_ms, 15'000u);
    EXPECT_FALSE(c->compression);
    EXPECT_NE(s.describe().find("server.port = \"9100\""), std::string::npos);
    EXPECT_NE(s.describe().find("env SWITCHBOARD_PORT"), std::string::npos);
}

TEST(Settings, ErrorsNameKeyFileAndLine) {
    Settings s;
    auto r = s.loadText("[server]\n\nprot = 1\n", "sb.toml");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message,
              "sb.toml:3: unknown key 'server.prot' (did you mean server.port?)");
    r = s.loadText("[websocket]\nmax_message_size = \"lots\"\n", "sb.toml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("sb.toml:2: websocket.max_message_size"), std::string::npos);
    r = s.loadText("[websocket]\ncompression = \"yes\"\n", "sb.toml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("must be true or false"), std::string::npos);
    char bad[] = "SWITCHBOARD_PROT=1";
    char* envp[] = {bad, nullptr};
    r = s.loadEnv(envp);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("SWITCHBOARD_PROT"), std::string::npos);
    EXPECT_FALSE(s.setFlag("--nope", "1").has_value());
}

TEST(Settings, NamespaceOptionsAreCollectedAndUnknownOnesRefused) {
    Settings s;
    ASSERT_TRUE(s.loadText("[namespaces.chat]\npresence = true\nhistory_size = 100\n", "a.toml")
                    .has_value());
    auto c = s.resolve();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->namespaces.at("chat").at("presence"), "true");
    EXPECT_EQ(c->namespaces.at("chat").at("history_size"), "100");
    auto r = s.loadText("[namespaces.chat]\npresense = true\n", "b.toml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("b.toml:2: unknown key 'namespaces.chat.presense'"),
              std::string::npos);
}

}  // namespace
}  // namespace sb::server
