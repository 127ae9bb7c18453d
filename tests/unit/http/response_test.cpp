// Tests for the response side of http/request.h: parseResponse (WebSocket client role),
// reasonPhrase, makeResponse and makeResponseHead.
#include <gtest/gtest.h>

#include <string>

#include "http/request.h"

namespace sb::http {
namespace {

ParseStatus parse(std::string_view in, Response* r, HttpError* e, ParserLimits lim = {}) {
    return parseResponse(in, lim, r, e);
}

HttpError errorOf(std::string_view in, ParserLimits lim = {}) {
    Response r;
    HttpError e = HttpError::kNone;
    EXPECT_EQ(parse(in, &r, &e, lim), ParseStatus::kError) << in;
    return e;
}

const std::string k101 =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

TEST(ParseResponse, SwitchingProtocols) {
    const std::string in = k101 + "\x81\x05hello";  // a frame right behind the head
    Response r;
    HttpError e = HttpError::kBadHeader;
    ASSERT_EQ(parse(in, &r, &e), ParseStatus::kDone);
    EXPECT_EQ(e, HttpError::kNone);
    EXPECT_EQ(r.status, 101);
    EXPECT_EQ(r.reason, "Switching Protocols");
    EXPECT_EQ(r.head_size, k101.size());
    ASSERT_EQ(r.header_count, 3u);
    EXPECT_EQ(r.header("upgrade"), "websocket");
    EXPECT_EQ(r.header("SEC-WEBSOCKET-ACCEPT"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_TRUE(r.hasToken("connection", "upgrade"));
    EXPECT_FALSE(r.hasToken("connection", "close"));
}

TEST(ParseResponse, EveryPrefixNeedsMore) {
    for (size_t n = 0; n < k101.size(); ++n) {
        Response r;
        HttpError e = HttpError::kNone;
        EXPECT_EQ(parse(std::string_view(k101).substr(0, n), &r, &e), ParseStatus::kNeedMore) << n;
    }
}

TEST(ParseResponse, StatusLineForms) {
    Response r;
    HttpError e = HttpError::kNone;
    ASSERT_EQ(parse("HTTP/1.1 101\r\n\r\n", &r, &e), ParseStatus::kDone);  // no SP, no reason
    EXPECT_EQ(r.status, 101);
    EXPECT_EQ(r.reason, "");
    ASSERT_EQ(parse("HTTP/1.1 403 \r\n\r\n", &r, &e), ParseStatus::kDone);
    EXPECT_EQ(r.status, 403);
    ASSERT_EQ(parse("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", &r, &e),
              ParseStatus::kDone);
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.header("content-length"), "0");
}

TEST(ParseResponse, BadStatusLines) {
    for (const char* bad :
         {"HTTP/1.1 10\r\n\r\n", "HTTP/1.1 1011\r\n\r\n", "HTTP/1.1 abc\r\n\r\n",
          "HTTP/1.1 099 x\r\n\r\n", "HTTP/2 101\r\n\r\n", "http/1.1 101\r\n\r\n",
          "HTTP/1.1  101\r\n\r\n", "HTTP/1.1 101 a\x01\r\n\r\n", "ICY 200 OK\r\n\r\n"}) {
        EXPECT_EQ(errorOf(bad), HttpError::kBadStatusLine) << bad;
    }
    EXPECT_EQ(errorOf("HTTP/1.2 101 x\r\n\r\n"), HttpError::kVersionNotSupported);
    EXPECT_EQ(errorOf("HTTP/1.1 101 x\nUpgrade: websocket\r\n\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n"), HttpError::kBadHeader);
    EXPECT_EQ(errorOf("HTTP/1.1 101 x\r\nA: b\r\n c\r\n\r\n"), HttpError::kObsoleteFold);
}

TEST(ParseResponse, Limits) {
    ParserLimits lim;
    lim.max_head_bytes = 64;
    EXPECT_EQ(errorOf("HTTP/1.1 101 x\r\nX: " + std::string(100, 'a') + "\r\n\r\n", lim),
              HttpError::kHeadersTooLarge);
    lim = {};
    lim.max_headers = 1;
    EXPECT_EQ(errorOf("HTTP/1.1 101 x\r\nA: 1\r\nB: 2\r\n\r\n", lim), HttpError::kTooManyHeaders);
}

TEST(ReasonPhrase, KnownAndFallback) {
    EXPECT_EQ(reasonPhrase(101), "Switching Protocols");
    EXPECT_EQ(reasonPhrase(200), "OK");
    EXPECT_EQ(reasonPhrase(400), "Bad Request");
    EXPECT_EQ(reasonPhrase(403), "Forbidden");
    EXPECT_EQ(reasonPhrase(405), "Method Not Allowed");
    EXPECT_EQ(reasonPhrase(414), "URI Too Long");
    EXPECT_EQ(reasonPhrase(426), "Upgrade Required");
    EXPECT_EQ(reasonPhrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(reasonPhrase(501), "Not Implemented");
    EXPECT_EQ(reasonPhrase(505), "HTTP Version Not Supported");
    EXPECT_EQ(reasonPhrase(299), "Success");
    EXPECT_EQ(reasonPhrase(499), "Client Error");
    EXPECT_EQ(reasonPhrase(599), "Server Error");
}

TEST(MakeResponse, ExactBytes) {
    EXPECT_EQ(makeResponse(200, "text/plain", "hi", "X-A: 1\r\n", false),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"
              "Content-Length: 2\r\n\r\nhi");
    EXPECT_EQ(makeResponse(404, "", "", "", true),
              "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    // No Content-Length in 1xx and 204 (RFC 9110 §8.6).
    EXPECT_EQ(makeResponse(204, "", "", "", false), "HTTP/1.1 204 No Content\r\n\r\n");
    EXPECT_EQ(makeResponse(101, "", "", "Upgrade: websocket\r\n", false),
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
}

TEST(MakeResponse, ParsesBack) {
    const std::string body(1000, 'x');
    const std::string resp =
        makeResponse(431, "application/json", body, "Retry-After: 1\r\n", true);
    Response r;
    HttpError e = HttpError::kNone;
    ASSERT_EQ(parse(resp, &r, &e), ParseStatus::kDone);
    EXPECT_EQ(r.status, 431);
    EXPECT_EQ(r.reason, "Request Header Fields Too Large");
    EXPECT_EQ(r.header("content-type"), "application/json");
    EXPECT_EQ(r.header("content-length"), "1000");
    EXPECT_EQ(r.header("retry-after"), "1");
    EXPECT_TRUE(r.hasToken("connection", "close"));
    EXPECT_EQ(resp.substr(r.head_size), body);
}

// HEAD (RFC 9110 §9.3.2): the headers GET would send, Content-Length of GET's body included,
// and nothing after the empty line.
TEST(MakeResponseHead, IsTheResponseWithoutItsBody) {
    EXPECT_EQ(makeResponseHead(200, "text/plain", 5, "X-A: 1\r\n", false),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"
              "Content-Length: 5\r\n\r\n");
    for (bool close : {false, true}) {
        for (uint16_t status : {200, 204, 404, 405}) {
            const std::string body(status == 204 ? 0 : 37, 'b');
            const std::string full =
                makeResponse(status, "application/json", body, "Allow: GET\r\n", close);
            const std::string head =
                makeResponseHead(status, "application/json", body.size(), "Allow: GET\r\n", close);
            EXPECT_EQ(head + body, full) << status;
            Response r;
            HttpError e = HttpError::kNone;
            ASSERT_EQ(parse(head, &r, &e), ParseStatus::kDone);
            EXPECT_EQ(r.head_size, head.size());
            EXPECT_EQ(r.header("content-length"), status == 204 ? "" : "37");
        }
    }
}

}  // namespace
}  // namespace sb::http
