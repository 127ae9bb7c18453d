// The error table: one row per Error with a distinct wire code, an HTTP error status and a
// meaning; the codes are the ones the protocol documents. And the close codes of Disconnect.
#include "messaging/errors.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb::messaging {
namespace {

constexpr size_t kErrorCount = static_cast<size_t>(Error::kInternal) + 1;

TEST(ErrorTable, EveryErrorHasADistinctCodeAnErrorStatusAndAMeaning) {
    std::set<std::string_view> codes;
    for (size_t i = 0; i < kErrorCount; ++i) {
        const ErrorInfo& info = errorInfo(static_cast<Error>(i));
        SCOPED_TRACE("error #" + std::to_string(i) + " '" + std::string(info.code) + "'");
        EXPECT_FALSE(info.code.empty());
        EXPECT_FALSE(info.meaning.empty());
        EXPECT_GE(info.http_status, 400);
        EXPECT_LE(info.http_status, 599);
        EXPECT_TRUE(codes.insert(info.code).second) << "code used twice";
        // Wire codes are snake_case ASCII.
        for (char c : info.code) {
            EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << "byte '" << c << "'";
        }
    }
    EXPECT_EQ(codes.size(), kErrorCount);
}

TEST(ErrorTable, CodesAreTheWireNames) {
    const std::vector<std::pair<Error, std::string_view>> expected = {
        {Error::kBadJson, "bad_json"},
        {Error::kBadRequest, "bad_request"},
        {Error::kUnknownType, "unknown_type"},
        {Error::kBadFrame, "bad_frame"},
        {Error::kNotConnected, "not_connected"},
        {Error::kAlreadyConnected, "already_connected"},
        {Error::kBadChannel, "bad_channel"},
        {Error::kUnknownNamespace, "unknown_namespace"},
        {Error::kAlreadySubscribed, "already_subscribed"},
        {Error::kNotSubscribed, "not_subscribed"},
        {Error::kLimitExceeded, "limit_exceeded"},
        {Error::kPublishForbidden, "publish_forbidden"},
        {Error::kDataTooLarge, "data_too_large"},
        {Error::kPresenceDisabled, "presence_disabled"},
        {Error::kHistoryDisabled, "history_disabled"},
        {Error::kRateLimited, "rate_limited"},
        {Error::kUnknownClient, "unknown_client"},
        {Error::kUnauthorized, "unauthorized"},
        {Error::kApiDisabled, "api_disabled"},
        {Error::kNotFound, "not_found"},
        {Error::kTokenRequired, "token_required"},
        {Error::kInvalidToken, "invalid_token"},
        {Error::kPermissionDenied, "permission_denied"},
        {Error::kUnavailable, "unavailable"},
        {Error::kInternal, "internal"},
    };
    ASSERT_EQ(expected.size(), kErrorCount) << "a new Error needs its wire name here";
    for (const auto& [error, code] : expected) {
        EXPECT_EQ(errorInfo(error).code, code);
    }
}

TEST(ErrorTable, StatusesThatClientsDependOn) {
    EXPECT_EQ(errorInfo(Error::kUnauthorized).http_status, 401);
    EXPECT_EQ(errorInfo(Error::kNotFound).http_status, 404);
    EXPECT_EQ(errorInfo(Error::kRateLimited).http_status, 429);
    EXPECT_EQ(errorInfo(Error::kDataTooLarge).http_status, 413);
    EXPECT_EQ(errorInfo(Error::kInternal).http_status, 500);
    // A broker outage is temporary: 503, which clients and load balancers retry.
    EXPECT_EQ(errorInfo(Error::kUnavailable).http_status, 503);
    // Only kInternal and kUnavailable are the server's side: every other refusal is a 4xx.
    for (size_t i = 0; i + 1 < kErrorCount; ++i) {
        if (static_cast<Error>(i) != Error::kUnavailable) {
            EXPECT_LT(errorInfo(static_cast<Error>(i)).http_status, 500) << "error #" << i;
        }
    }
}

TEST(CloseCodes, AreTheDocumentedOnes) {
    EXPECT_EQ(kSlowConsumer.code, 4000);
    EXPECT_TRUE(kSlowConsumer.reconnect);
    EXPECT_EQ(kHeartbeatTimeout.code, 4001);
    EXPECT_TRUE(kHeartbeatTimeout.reconnect);
    EXPECT_EQ(kApiDisconnect.code, 4003);
    EXPECT_EQ(kSessionTakenOver.code, 4004);
    EXPECT_FALSE(kSessionTakenOver.reconnect);  // two holders would take it from each other
    EXPECT_EQ(kRateLimitAbuse.code, 1008);      // RFC 6455 §7.4.1: policy violation
    EXPECT_FALSE(kRateLimitAbuse.reconnect);
    for (const Disconnect& d :
         {kSlowConsumer, kHeartbeatTimeout, kApiDisconnect, kSessionTakenOver, kRateLimitAbuse}) {
        EXPECT_FALSE(d.reason.empty()) << d.code;
        // RFC 6455 §5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
        EXPECT_LE(d.reason.size(), 123u) << d.code;
    }
}

}  // namespace
}  // namespace sb::messaging
