// The node-to-node relay's wire (server/session_relay.h): requests and replies survive a round
// trip field for field, big replies split into pieces that reassemble, and anything cut short
// or out of shape is refused rather than half-read.
#include "server/session_relay.h"

#include <gtest/gtest.h>

#include <string>

namespace sb::server {
namespace {

RelayRequest postRequest() {
    RelayRequest r{.kind = RelayRequest::Kind::kPost};
    r.session = "s_0123456789abcdef0123456789abcdef";
    r.user = "alice";
    r.body = R"({"type":"publish","id":1,"channel":"chat:a","data":"x:1\n2"})";
    return r;
}

TEST(RelayWire, PostRequestRoundTrip) {
    const RelayRequest r = postRequest();
    const std::string m = encodeRelayRequest("n1ab", 42, r);
    auto back = parseRelayMessage(m);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->type, RelayMessage::Type::kRequest);
    EXPECT_EQ(back->origin, "n1ab");
    EXPECT_EQ(back->id, 42u);
    EXPECT_EQ(back->request.kind, RelayRequest::Kind::kPost);
    EXPECT_EQ(back->request.session, r.session);
    EXPECT_EQ(back->request.user, r.user);
    EXPECT_EQ(back->request.body, r.body);
}

TEST(RelayWire, NoTokenIsNotTheEmptyUser) {
    RelayRequest r = postRequest();
    r.user.reset();
    auto none = parseRelayMessage(encodeRelayRequest("n", 1, r));
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->request.user.has_value());
    r.user = "";
    auto empty = parseRelayMessage(encodeRelayRequest("n", 1, r));
    ASSERT_TRUE(empty.has_value());
    ASSERT_TRUE(empty->request.user.has_value());
    EXPECT_EQ(*empty->request.user, "");
}

TEST(RelayWire, PollRequestRoundTrip) {
    RelayRequest r{.kind = RelayRequest::Kind::kPoll};
    r.session = "s_ffff";
    r.ack = 18446744073709551615ull;
    r.wait_ms = 30'000;
    auto back = parseRelayMessage(encodeRelayRequest("node-7", uint64_t{3} << 56 | 9, r));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->request.kind, RelayRequest::Kind::kPoll);
    EXPECT_EQ(back->request.ack, r.ack);
    EXPECT_EQ(back->request.wait_ms, 30'000u);
    EXPECT_EQ(back->id, uint64_t{3} << 56 | 9);
}

TEST(RelayWire, ReplyRoundTrip) {
    const HttpReply r{.status = 429,
                      .content_type = "application/json",
                      .body = std::string("{\"a\":\"\0b\"}\n", 11),
                      .extra_headers = "Retry-After: 1\r\n"};
    auto back = parseRelayMessage(encodeRelayReply(77, r));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->type, RelayMessage::Type::kReply);
    EXPECT_EQ(back->id, 77u);
    EXPECT_EQ(back->reply.status, 429);
    EXPECT_EQ(back->reply.content_type, r.content_type);
    EXPECT_EQ(back->reply.body, r.body);
    EXPECT_EQ(back->reply.extra_headers, r.extra_headers);
}

TEST(RelayWire, PiecesReassemble) {
    HttpReply r{.status = 200, .content_type = "application/json"};
    for (int i = 0; i < 5000; ++i) {
        r.body += std::to_string(i) + ",";
    }
    const std::string whole = encodeRelayReply(5, r);
    for (size_t piece : {size_t{1}, size_t{7}, size_t{1000}, whole.size() - 1, whole.size()}) {
        const auto pieces = splitRelayReply(5, whole, piece);
        EXPECT_EQ(pieces.size(), (whole.size() + piece - 1) / piece) << piece;
        std::string joined;
        for (size_t i = 0; i < pieces.size(); ++i) {
            auto m = parseRelayMessage(pieces[i]);
            ASSERT_TRUE(m.has_value()) << piece << " " << i;
            EXPECT_EQ(m->type, RelayMessage::Type::kPiece);
            EXPECT_EQ(m->id, 5u);
            EXPECT_EQ(m->last, i + 1 == pieces.size());
            joined += m->piece;
        }
        auto back = parseRelayMessage(joined);
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(back->reply.body, r.body);
    }
}

TEST(RelayWire, EveryTruncationIsRefused) {
    const std::string msgs[] = {encodeRelayRequest("n1", 1, postRequest()),
                                encodeRelayReply(1, HttpReply{.body = "hello"}),
                                splitRelayReply(1, "abcdef", 4)[0]};
    for (const std::string& m : msgs) {
        for (size_t n = 0; n < m.size(); ++n) {
            EXPECT_FALSE(parseRelayMessage(m.substr(0, n)).has_value()) << m.substr(0, n);
        }
        EXPECT_FALSE(parseRelayMessage(m + "x").has_value()) << "trailing byte after " << m;
    }
}

TEST(RelayWire, MalformedFieldsAreRefused) {
    // Each bad message differs from one of these in one thing.
    ASSERT_TRUE(parseRelayMessage("a1:13:20010:text/plain0:0:").has_value());
    ASSERT_TRUE(parseRelayMessage("q2:n11:11:p3:s_x1:-0:").has_value());
    ASSERT_TRUE(parseRelayMessage("c1:11:10:").has_value());
    for (const char* bad : {
             "x1:13:20010:text/plain0:0:",     // unknown type
             "a1:13:200",                      // fields missing
             "a1:13:99910:text/plain0:0:",     // status out of range
             "a1:13:20010:text/plain0:5:abc",  // body shorter than its length
             "a1:13:20010:text/plain0:-1:",    // negative length
             "a1:13:20x10:text/plain0:0:",     // status not a number
             "q2:n11:12:pp3:s_x1:-0:",         // request kind of two bytes
             "q2:n11:11:z3:s_x1:-0:",          // unknown request kind
             "q2:n11:11:p0:1:-0:",             // empty session
             "q2:n11:11:p3:s_x1:x0:",          // user marker neither '-' nor 'u'
             "q2:n11:11:p3:s_x2:-u0:",         // '-' with something after it
             "q0:1:11:p3:s_x1:-0:",            // empty origin
             "q2:n11:11:g3:s_x1:-0:",          // a poll without ack and wait
             "c1:11:20:",                      // piece flag neither 0 nor 1
         }) {
        EXPECT_FALSE(parseRelayMessage(bad).has_value()) << bad;
    }
}

}  // namespace
}  // namespace sb::server
