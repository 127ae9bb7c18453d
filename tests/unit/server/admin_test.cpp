// The /admin dashboard's pure pieces: the constant-time password compare, cookie and form
// parsing, URL credential redaction, histogram quantiles, sessions and the login brake.
#include "server/admin.h"

#include <gtest/gtest.h>

#include <set>

#include "server/native_requests.h"
#include "server/settings.h"

namespace sb::server::admin {
namespace {

TEST(AdminAuth, ConstantTimeEqualsMatchesOnlyEqualNonEmptyStrings) {
    EXPECT_TRUE(constantTimeEquals("secret password", "secret password"));
    EXPECT_FALSE(constantTimeEquals("secret password", "secret passwore"));
    EXPECT_FALSE(constantTimeEquals("secret password", "secret passwor"));
    EXPECT_FALSE(constantTimeEquals("secret password", "secret password "));
    EXPECT_FALSE(constantTimeEquals("a", "b"));
    EXPECT_FALSE(constantTimeEquals("", ""));  // an unset password admits nobody
    EXPECT_FALSE(constantTimeEquals("", "x"));
    EXPECT_FALSE(constantTimeEquals("x", ""));
    const std::string nul("a\0b", 3);
    EXPECT_TRUE(constantTimeEquals(nul, std::string("a\0b", 3)));
    EXPECT_FALSE(constantTimeEquals(nul, "a"));
}

TEST(AdminAuth, CookieValue) {
    EXPECT_EQ(cookieValue("sb_admin=abc", "sb_admin"), "abc");
    EXPECT_EQ(cookieValue("a=1; sb_admin=abc; b=2", "sb_admin"), "abc");
    EXPECT_EQ(cookieValue("a=1;sb_admin=abc", "sb_admin"), "abc");
    EXPECT_EQ(cookieValue("xsb_admin=abc; sb_admin_x=d", "sb_admin"), "");
    EXPECT_EQ(cookieValue("", "sb_admin"), "");
    EXPECT_EQ(cookieValue("sb_admin", "sb_admin"), "");
    EXPECT_EQ(cookieValue("sb_admin=", "sb_admin"), "");
}

TEST(AdminAuth, LoginFormFieldsDecodeAsQueryParameters) {
    // The login form and the inspector's queries go through the same decoder as /sse and /poll.
    EXPECT_EQ(queryParam("password=a+b%21%C3%A9", "password"), "a b!\xC3\xA9");
    EXPECT_EQ(queryParam("x=1&password=p%26q%3D&y=2", "password"), "p&q=");
    EXPECT_EQ(queryParam("passwordx=1", "password"), "");
    EXPECT_EQ(queryParam("password=%2", "password"), "%2");  // not an escape: kept as is
    EXPECT_EQ(queryParam("q=chat%3Alobby", "q"), "chat:lobby");
    EXPECT_EQ(queryParam("", "q"), "");
}

TEST(AdminConfig, RedactsUrlCredentials) {
    EXPECT_EQ(redactUrlCredentials("broker.nats_url = \"nats://u:p@h:4222\"  # flag\n"),
              "broker.nats_url = \"nats://<redacted>@h:4222\"  # flag\n");
    EXPECT_EQ(redactUrlCredentials("x = \"nats://tok@a:1,nats://b:2,nats://u:p@c:3/x\"\n"),
              "x = \"nats://<redacted>@a:1,nats://b:2,nats://<redacted>@c:3/x\"\n");
    EXPECT_EQ(redactUrlCredentials("x = \"https://example.com/a@b\"\n"),
              "x = \"https://example.com/a@b\"\n");  // '@' in the path is no credential
    EXPECT_EQ(redactUrlCredentials("no urls here"), "no urls here");
}

TEST(AdminConfig, DescribeRedactsEverySecret) {
    auto l = loadText(
        "[admin]\npassword = \"admin-pass-1\"\n[api]\nkey = \"api-key-1\"\n"
        "[auth]\nhmac_secrets = [\"hmac-secret-1-hmac-secret-1-hmac-secret-1\"]\n"
        "[broker]\nredis_password = \"redis-pass-1\"\nnats_password = \"nats-pass-1\"\n"
        "nats_token = \"nats-token-1\"\nnats_url = \"nats://user1:pw1@127.0.0.1:4222\"\n",
        "sb.toml");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    const std::string text = redactUrlCredentials(describe(*l));
    for (const char* secret : {"admin-pass-1", "api-key-1", "hmac-secret-1", "redis-pass-1",
                               "nats-pass-1", "nats-token-1", "user1", "pw1"}) {
        EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in:\n" << text;
    }
    EXPECT_NE(text.find("admin.password = \"<set>\""), std::string::npos) << text;
    EXPECT_NE(text.find("nats://<redacted>@127.0.0.1:4222"), std::string::npos) << text;
}

TEST(AdminConfig, EnvironmentAndDefaults) {
    std::string arg0 = "serve";
    char* argv[] = {arg0.data()};
    std::string env = "SWITCHBOARD_ADMIN_PASSWORD=from-env";
    char* envp[] = {env.data(), nullptr};
    auto l = loadConfig(0, argv, envp);
    ASSERT_TRUE(l.has_value()) << l.error().message;
    EXPECT_EQ(l->config.admin.password, "from-env");
    EXPECT_EQ(l->config.admin.session_ttl_ms, AdminOptions{}.session_ttl_ms);
    auto none = loadText("", "empty.toml");
    ASSERT_TRUE(none.has_value());
    EXPECT_TRUE(none->config.admin.password.empty()) << "the dashboard is off by default";
}

TEST(AdminStats, QuantilesInterpolateWithinBuckets) {
    base::LatencyHistogram::Snapshot h;
    EXPECT_EQ(quantileMs(h, 0.5), -1);
    // 100 observations in (0.5, 1] ms.
    h.buckets[3] = 100;
    EXPECT_NEAR(quantileMs(h, 0.5), 0.75, 1e-9);
    EXPECT_NEAR(quantileMs(h, 0.99), 0.995, 1e-9);
    // 900 more in [0, 0.1]: the median moves into the first bucket.
    h.buckets[0] = 900;
    EXPECT_LT(quantileMs(h, 0.5), 0.1);
    EXPECT_GT(quantileMs(h, 0.99), 0.5);
    base::LatencyHistogram::Snapshot slow;
    slow.buckets.back() = 5;  // above the largest bound: that bound
    EXPECT_EQ(quantileMs(slow, 0.5), base::LatencyHistogram::kBoundsMs.back());
}

TEST(AdminSessions, CreateValidExpireRemove) {
    Sessions s;
    const std::string a = s.create(1'000, 60'000);
    ASSERT_EQ(a.size(), 64u);
    EXPECT_TRUE(s.valid(a, 1'000));
    EXPECT_TRUE(s.valid(a, 60'999));
    EXPECT_FALSE(s.valid(a, 61'000)) << "expired";
    EXPECT_FALSE(s.valid(a.substr(0, 63) + (a.back() == '0' ? "1" : "0"), 1'000));
    EXPECT_FALSE(s.valid("", 1'000));
    const std::string b = s.create(1'000, 60'000);
    EXPECT_NE(a, b);
    s.remove(b);
    EXPECT_FALSE(s.valid(b, 2'000));
    const std::string c = s.create(1'000, 60'000);
    s.clear();
    EXPECT_FALSE(s.valid(c, 2'000));
}

TEST(AdminSessions, BoundedOldestGoesFirst) {
    Sessions s;
    std::vector<std::string> tokens;
    std::set<std::string> unique;
    for (size_t i = 0; i < Sessions::kMax + 3; ++i) {
        tokens.push_back(s.create(1'000 + i, 60'000));
        unique.insert(tokens.back());
    }
    EXPECT_EQ(unique.size(), tokens.size());
    EXPECT_EQ(s.size(), Sessions::kMax);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_FALSE(s.valid(tokens[i], 2'000)) << i;
    }
    EXPECT_TRUE(s.valid(tokens.back(), 2'000));
}

TEST(AdminBrake, BurstThenOneGuessPerRefill) {
    LoginBrake b;
    uint64_t now = 1'000'000;
    for (int i = 0; i < static_cast<int>(LoginBrake::kBurst); ++i) {
        ASSERT_EQ(b.waitMs(now), 0u) << i;
        b.failed(now);
    }
    const uint64_t wait = b.waitMs(now);
    EXPECT_GT(wait, 0u);
    EXPECT_LE(wait, LoginBrake::kRefillMs + 1);
    EXPECT_GT(b.waitMs(now + LoginBrake::kRefillMs / 2), 0u);
    EXPECT_EQ(b.waitMs(now + LoginBrake::kRefillMs), 0u);
    b.failed(now + LoginBrake::kRefillMs);
    EXPECT_GT(b.waitMs(now + LoginBrake::kRefillMs), 0u);
    EXPECT_EQ(b.waitMs(now + 100 * LoginBrake::kRefillMs), 0u);
}

}  // namespace
}  // namespace sb::server::admin
