// Tests for the HTTP/1.1 request-head parser: every strictness rule, each input fed whole,
// byte by byte and in seeded random splits with identical results, limits and pipelining.
#include "http/request.h"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace sb::http {
namespace {

// Everything a parse produced, as text, so results from different buffers compare equal.
struct Outcome {
    ParseStatus status = ParseStatus::kNeedMore;
    HttpError error = HttpError::kNone;
    std::string dump;
    size_t done_at = 0;  // bytes available when the parser first said kDone / kError

    bool operator==(const Outcome&) const = default;
};

std::string dumpRequest(const Request& r) {
    std::string s;
    s += std::string(r.method) + "|" + std::string(r.target) + "|" + std::string(r.path) + "|" +
         std::string(r.query) + "|1." + std::to_string(r.version_minor) + "|";
    for (size_t i = 0; i < r.header_count; ++i) {
        s += std::string(r.headers[i].name) + "=" + std::string(r.headers[i].value) + ";";
    }
    s += "|cl=" + std::to_string(r.content_length) + "|body=" + std::to_string(r.has_body) +
         "|ka=" + std::to_string(r.keep_alive) + "|head=" + std::to_string(r.head_size);
    return s;
}

Outcome finish(ParseStatus st, const RequestParser& p, const Request& r, size_t at) {
    Outcome o;
    o.status = st;
    o.error = st == ParseStatus::kError ? p.error() : HttpError::kNone;
    o.dump = st == ParseStatus::kDone ? dumpRequest(r) : "";
    o.done_at = st == ParseStatus::kNeedMore ? 0 : at;
    return o;
}

Outcome parseWhole(std::string_view in, ParserLimits limits = {}) {
    RequestParser p(limits);
    Request r;
    const ParseStatus st = p.parse(in, &r);
    // Whole input: "done at" is where the head ended, which the incremental runs must match.
    Outcome o = finish(st, p, r, in.size());
    if (st == ParseStatus::kDone) {
        o.done_at = r.head_size;
    }
    return o;
}

// Feeds growing prefixes ending at each cut; the buffer is a fresh std::string that grows
// (and moves) between calls, as a connection's buffer would.
Outcome parseCuts(std::string_view in, const std::vector<size_t>& cuts, ParserLimits limits) {
    RequestParser p(limits);
    Request r;
    std::string buf;
    for (size_t cut : cuts) {
        const size_t before = buf.size();
        buf.append(in.substr(before, cut - before));
        const ParseStatus st = p.parse(buf, &r);
        if (st != ParseStatus::kNeedMore) {
            Outcome o = finish(st, p, r, buf.size());
            if (st == ParseStatus::kDone) {
                // The head ended in the bytes just added, or an earlier call had said kDone.
                EXPECT_GT(r.head_size, before) << "kDone reported late";
                EXPECT_LE(r.head_size, buf.size());
                o.done_at = r.head_size;
            }
            return o;
        }
    }
    return finish(ParseStatus::kNeedMore, p, r, 0);
}

Outcome parseBytewise(std::string_view in, ParserLimits limits) {
    RequestParser p(limits);
    Request r;
    std::string buf;
    for (size_t i = 0; i < in.size(); ++i) {
        buf.push_back(in[i]);
        const ParseStatus st = p.parse(buf, &r);
        if (st == ParseStatus::kDone) {
            // kNeedMore until the very byte that completes the head.
            EXPECT_EQ(r.head_size, buf.size()) << "byte-by-byte: kDone before the head ended";
            Outcome o = finish(st, p, r, buf.size());
            o.done_at = r.head_size;
            return o;
        }
        if (st == ParseStatus::kError) {
            return finish(st, p, r, buf.size());
        }
    }
    return finish(ParseStatus::kNeedMore, p, r, 0);
}

// Parses `in` whole, byte by byte and in 20 seeded random splits; all must agree. Returns the
// whole-input outcome. (Errors may be found before the whole input arrived, so done_at is
// only compared for kDone.)
Outcome parseAllWays(std::string_view in, ParserLimits limits = {}) {
    Outcome whole = parseWhole(in, limits);
    auto same = [&](Outcome o, const char* how) {
        if (whole.status != ParseStatus::kDone) {
            o.done_at = whole.done_at;
        }
        EXPECT_EQ(o.status, whole.status) << how;
        EXPECT_EQ(o.error, whole.error)
            << how << ": " << describe(o.error) << " vs " << describe(whole.error);
        EXPECT_EQ(o.dump, whole.dump) << how;
        EXPECT_EQ(o.done_at, whole.done_at) << how;
    };
    same(parseBytewise(in, limits), "byte-by-byte");
    std::mt19937 rng(12345);
    for (int round = 0; round < 20; ++round) {
        std::vector<size_t> cuts;
        size_t pos = 0;
        while (pos < in.size()) {
            pos = std::min(in.size(), pos + 1 + rng() % 16);
            cuts.push_back(pos);
        }
        same(parseCuts(in, cuts, limits), "random split");
    }
    return whole;
}

// Parses a complete request that must succeed, checking all feeding modes. The input is kept
// alive for the whole test run so the returned views stay valid.
Request mustParse(const std::string& input, ParserLimits limits = {}) {
    static std::deque<std::string> arena;
    const std::string& in = arena.emplace_back(input);
    parseAllWays(in, limits);
    RequestParser p(limits);
    Request r;
    EXPECT_EQ(p.parse(in, &r), ParseStatus::kDone) << describe(p.error()) << "\n" << in;
    return r;
}

HttpError errorOf(const std::string& in, ParserLimits limits = {}) {
    const Outcome o = parseAllWays(in, limits);
    EXPECT_EQ(o.status, ParseStatus::kError) << in;
    return o.error;
}

const std::string kHost = "Host: example.com\r\n";

TEST(RequestParser, SimpleGet) {
    const std::string in =
        "GET /chat?room=1&x=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    const Request r = mustParse(in);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.target, "/chat?room=1&x=2");
    EXPECT_EQ(r.path, "/chat");
    EXPECT_EQ(r.query, "room=1&x=2");
    EXPECT_EQ(r.version_minor, 1);
    ASSERT_EQ(r.header_count, 2u);
    EXPECT_EQ(r.headers[0].name, "Host");
    EXPECT_EQ(r.headers[0].value, "example.com");
    EXPECT_EQ(r.headers[1].name, "User-Agent");
    EXPECT_TRUE(r.keep_alive);
    EXPECT_FALSE(r.has_body);
    EXPECT_EQ(r.content_length, 0u);
    EXPECT_EQ(r.head_size, in.size());
}

TEST(RequestParser, ViewsPointIntoTheCallersBuffer) {
    const std::string in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestParser p;
    Request r;
    ASSERT_EQ(p.parse(in, &r), ParseStatus::kDone);
    EXPECT_GE(r.path.data(), in.data());
    EXPECT_LT(r.path.data(), in.data() + in.size());
    EXPECT_GE(r.headers[0].value.data(), in.data());
    EXPECT_LT(r.headers[0].value.data(), in.data() + in.size());
}

TEST(RequestParser, PathAndQuery) {
    EXPECT_EQ(mustParse("GET / HTTP/1.1\r\n" + kHost + "\r\n").query, "");
    const Request a = mustParse("GET /a? HTTP/1.1\r\n" + kHost + "\r\n");
    EXPECT_EQ(a.path, "/a");
    EXPECT_EQ(a.query, "");
    const Request b = mustParse("GET /?a?b=%20 HTTP/1.1\r\n" + kHost + "\r\n");
    EXPECT_EQ(b.path, "/");
    EXPECT_EQ(b.query, "a?b=%20");
}

TEST(RequestParser, OtherMethodsAreTokens) {
    EXPECT_EQ(mustParse("POST /x HTTP/1.1\r\n" + kHost + "\r\n").method, "POST");
    EXPECT_EQ(mustParse("M-SEARCH /x HTTP/1.1\r\n" + kHost + "\r\n").method, "M-SEARCH");
}

TEST(RequestParser, Http10) {
    const Request r = mustParse("GET / HTTP/1.0\r\n\r\n");  // Host optional in 1.0
    EXPECT_EQ(r.version_minor, 0);
    EXPECT_FALSE(r.keep_alive);
    EXPECT_TRUE(mustParse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    EXPECT_FALSE(mustParse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
                     .keep_alive);
}

TEST(RequestParser, KeepAlive) {
    EXPECT_TRUE(mustParse("GET / HTTP/1.1\r\n" + kHost + "\r\n").keep_alive);
    EXPECT_FALSE(mustParse("GET / HTTP/1.1\r\n" + kHost + "Connection: close\r\n\r\n").keep_alive);
    EXPECT_FALSE(
        mustParse("GET / HTTP/1.1\r\n" + kHost + "Connection: Upgrade, CLOSE\r\n\r\n").keep_alive);
}

TEST(RequestParser, HeaderValuesTrimmedAndLookedUp) {
    const Request r = mustParse(
        "GET / HTTP/1.1\r\nHost:example.com\r\nX-A: \t  spaced  value \t\r\nX-Empty:\r\n"
        "X-Ws:   \r\nx-a: second\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: a\tb\r\n\r\n");
    EXPECT_EQ(r.header("host"), "example.com");
    EXPECT_EQ(r.header("X-A"), "spaced  value");
    EXPECT_EQ(r.header("X-EMPTY"), "");
    EXPECT_EQ(r.header("x-ws"), "");
    EXPECT_EQ(r.header("x-a"), "spaced  value");  // first match
    EXPECT_EQ(r.header("X-Obs"), "caf\xc3\xa9");  // obs-text is allowed in values
    EXPECT_EQ(r.header("X-Tab"), "a\tb");
    EXPECT_EQ(r.header("missing"), "");
}

TEST(RequestParser, HasTokenAcrossHeaders) {
    const Request r = mustParse("GET / HTTP/1.1\r\n" + kHost +
                                "Connection: keep-alive , Upgrade\r\nUpgrade: h2c\r\n"
                                "upgrade: WebSocket\r\nX-List: ,, a ,\r\n\r\n");
    EXPECT_TRUE(r.hasToken("connection", "upgrade"));
    EXPECT_TRUE(r.hasToken("Connection", "KEEP-ALIVE"));
    EXPECT_FALSE(r.hasToken("connection", "close"));
    EXPECT_TRUE(r.hasToken("Upgrade", "websocket"));
    EXPECT_TRUE(r.hasToken("upgrade", "h2c"));
    EXPECT_FALSE(r.hasToken("upgrade", "web"));
    EXPECT_TRUE(r.hasToken("x-list", "a"));
    EXPECT_FALSE(r.hasToken("x-list", ""));
    EXPECT_FALSE(r.hasToken("missing", "a"));
}

TEST(RequestParser, ContentLength) {
    Request r = mustParse("POST / HTTP/1.1\r\n" + kHost + "Content-Length: 5\r\n\r\nhello");
    EXPECT_EQ(r.content_length, 5u);
    EXPECT_TRUE(r.has_body);
    r = mustParse("POST / HTTP/1.1\r\n" + kHost + "Content-Length: 0\r\n\r\n");
    EXPECT_FALSE(r.has_body);
    r = mustParse("POST / HTTP/1.1\r\n" + kHost +
                  "Content-Length: 7\r\ncontent-length: 7\r\n\r\n");  // same value repeated
    EXPECT_EQ(r.content_length, 7u);
    r = mustParse("POST / HTTP/1.1\r\n" + kHost + "Content-Length: 18446744073709551615\r\n\r\n");
    EXPECT_EQ(r.content_length, UINT64_MAX);
    for (const char* bad : {"abc", "-1", "+5", "5 5", "5,5", "0x10", "", "1.0",
                            "18446744073709551616", "99999999999999999999999"}) {
        EXPECT_EQ(errorOf("POST / HTTP/1.1\r\n" + kHost + "Content-Length: " + bad + "\r\n\r\n"),
                  HttpError::kBadContentLength)
            << bad;
    }
    EXPECT_EQ(
        errorOf("POST / HTTP/1.1\r\n" + kHost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        HttpError::kBadContentLength);
    EXPECT_EQ(statusFor(HttpError::kBadContentLength), 400);
}

TEST(RequestParser, TransferEncodingRefused) {
    EXPECT_EQ(errorOf("POST / HTTP/1.1\r\n" + kHost + "Transfer-Encoding: chunked\r\n\r\n"),
              HttpError::kUnsupportedTransferEncoding);
    EXPECT_EQ(statusFor(HttpError::kUnsupportedTransferEncoding), 501);
    EXPECT_NE(describe(HttpError::kUnsupportedTransferEncoding).find("chunked"),
              std::string_view::npos);
    EXPECT_EQ(errorOf("POST / HTTP/1.1\r\n" + kHost +
                      "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
              HttpError::kConflictingLength);
    EXPECT_EQ(errorOf("POST / HTTP/1.1\r\n" + kHost +
                      "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
              HttpError::kConflictingLength);
    EXPECT_EQ(statusFor(HttpError::kConflictingLength), 400);
}

TEST(RequestParser, Host) {
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\nX: y\r\n\r\n"), HttpError::kMissingHost);
    EXPECT_EQ(statusFor(HttpError::kMissingHost), 400);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HttpError::kBadHost);
    EXPECT_EQ(errorOf("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), HttpError::kBadHost);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HttpError::kBadHost);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HttpError::kBadHost);
    EXPECT_EQ(mustParse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").header("host"), "[::1]:8080");
    EXPECT_EQ(mustParse("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n\r\n").header_count,
              1u);
    EXPECT_EQ(mustParse("GET / HTTP/1.1\r\nHost:\r\n\r\n").header("host"), "");  // RFC 9112 §3.2
}

TEST(RequestParser, RequestLineErrors) {
    EXPECT_EQ(errorOf(" GET / HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadRequestLine);
    EXPECT_EQ(errorOf("GET\r\n" + kHost + "\r\n"), HttpError::kBadRequestLine);
    EXPECT_EQ(errorOf("GET /\r\n" + kHost + "\r\n"), HttpError::kBadRequestLine);
    EXPECT_EQ(errorOf("G@T / HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadMethod);
    EXPECT_EQ(errorOf("GET\t/ HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadMethod);
    EXPECT_EQ(errorOf("GET  / HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadTarget);
    EXPECT_EQ(statusFor(HttpError::kBadRequestLine), 400);
    EXPECT_EQ(statusFor(HttpError::kBadMethod), 400);
}

TEST(RequestParser, TargetMustBeOriginForm) {
    for (const char* bad : {"http://example.com/", "*", "example.com:443", "a/b", "/a\x01",
                            "/a\x7f", "/a#frag", "/caf\xc3\xa9", "/a\x1b"}) {
        EXPECT_EQ(errorOf(std::string("GET ") + bad + " HTTP/1.1\r\n" + kHost + "\r\n"),
                  HttpError::kBadTarget)
            << bad;
    }
    std::string nul = std::string("GET /a") + '\0' + "b HTTP/1.1\r\n" + kHost + "\r\n";
    EXPECT_EQ(errorOf(nul), HttpError::kBadTarget);
    EXPECT_EQ(errorOf("OPTIONS * HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadTarget);
    EXPECT_EQ(statusFor(HttpError::kBadTarget), 400);
    // Printable ASCII (sub-delims, percent escapes, braces) stays allowed.
    EXPECT_EQ(mustParse("GET /a/b;c=d/%7E?q={x}|y HTTP/1.1\r\n" + kHost + "\r\n").query, "q={x}|y");
}

TEST(RequestParser, TargetWithSpaceIsRefused) {
    EXPECT_EQ(statusFor(errorOf("GET /a b HTTP/1.1\r\n" + kHost + "\r\n")), 400);
}

TEST(RequestParser, Version) {
    EXPECT_EQ(errorOf("GET / HTTP/1.2\r\n" + kHost + "\r\n"), HttpError::kVersionNotSupported);
    EXPECT_EQ(errorOf("GET / HTTP/2.0\r\n" + kHost + "\r\n"), HttpError::kVersionNotSupported);
    EXPECT_EQ(errorOf("GET / HTTP/0.9\r\n\r\n"), HttpError::kVersionNotSupported);
    EXPECT_EQ(statusFor(HttpError::kVersionNotSupported), 505);
    for (const char* bad : {"http/1.1", "HTTP/1", "HTTP/1.10", "HTTP/11", "HTTP/1.1 ", "HTTP/a.b",
                            "HTTP/2", "HTTPS/1.1", "HTTP/1,1"}) {
        EXPECT_EQ(errorOf(std::string("GET / ") + bad + "\r\n" + kHost + "\r\n"),
                  HttpError::kBadVersion)
            << bad;
    }
    EXPECT_EQ(statusFor(HttpError::kBadVersion), 400);
}

TEST(RequestParser, HeaderSyntax) {
    for (const char* bad : {"Host : x", "Bad Name: x", "NoColon", ": x", "X\x01: y",
                            "X: a\x01"
                            "b",
                            "X: a\x7f", "X(y): z", "X: \x1b[31m"}) {
        EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n" + kHost + bad + "\r\n\r\n"), HttpError::kBadHeader)
            << bad;
    }
    std::string nul = "GET / HTTP/1.1\r\n" + kHost + "X: a" + '\0' + "b\r\n\r\n";
    EXPECT_EQ(errorOf(nul), HttpError::kBadHeader);
    EXPECT_EQ(statusFor(HttpError::kBadHeader), 400);
}

TEST(RequestParser, ObsoleteFoldRefused) {
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n" + kHost + "X: a\r\n b\r\n\r\n"),
              HttpError::kObsoleteFold);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n" + kHost + "X: a\r\n\tb\r\n\r\n"),
              HttpError::kObsoleteFold);
    // Whitespace between the request line and the first field (RFC 9112 §2.2).
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), HttpError::kObsoleteFold);
    EXPECT_EQ(statusFor(HttpError::kObsoleteFold), 400);
}

TEST(RequestParser, BareLfAndStrayCrRefused) {
    EXPECT_EQ(errorOf("GET / HTTP/1.1\n" + kHost + "\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\nHost: x\n\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n" + kHost + "\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("\nGET / HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("GET / HTTP/1.1\r\n" + kHost + "X: a\rb\r\n\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(errorOf("GET /\r HTTP/1.1\r\n" + kHost + "\r\n"), HttpError::kBadLineEnding);
    EXPECT_EQ(statusFor(HttpError::kBadLineEnding), 400);
}

TEST(RequestParser, BareLfFoundBeforeTheHeadEnds) {
    RequestParser p;
    Request r;
    EXPECT_EQ(p.parse("GET / HTTP/1.1\n", &r), ParseStatus::kError);
    EXPECT_EQ(p.error(), HttpError::kBadLineEnding);
}

TEST(RequestParser, LeadingEmptyLinesSkipped) {
    const std::string in = "\r\n\r\nGET / HTTP/1.1\r\n" + kHost + "\r\n";
    const Request r = mustParse(in);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.head_size, in.size());
}

TEST(RequestParser, NotHttpFailsOnTheFirstByte) {
    // A TLS ClientHello on the plain-text port.
    RequestParser p;
    Request r;
    EXPECT_EQ(p.parse(std::string_view("\x16\x03\x01\x02\x00", 5), &r), ParseStatus::kError);
    EXPECT_EQ(p.error(), HttpError::kBadRequestLine);
    RequestParser q;
    EXPECT_EQ(q.parse("\x16", &r), ParseStatus::kError);
}

TEST(RequestParser, IncompleteNeedsMore) {
    const std::string in = "GET / HTTP/1.1\r\n" + kHost + "\r\n";
    for (size_t n = 0; n < in.size(); ++n) {
        RequestParser p;
        Request r;
        EXPECT_EQ(p.parse(std::string_view(in).substr(0, n), &r), ParseStatus::kNeedMore) << n;
    }
}

TEST(RequestParser, HeadSizeLimit) {
    ParserLimits lim;
    lim.max_head_bytes = 128;
    const std::string start = "GET / HTTP/1.1\r\n" + kHost + "X: ";
    const std::string end = "\r\n\r\n";
    // Exactly at the limit: fine.
    const std::string exact = start + std::string(128 - start.size() - end.size(), 'a') + end;
    ASSERT_EQ(exact.size(), 128u);
    EXPECT_EQ(mustParse(exact, lim).head_size, 128u);
    // One byte more: 431, as soon as max_head_bytes arrived without the end of the head.
    const std::string over = start + std::string(129 - start.size() - end.size(), 'a') + end;
    EXPECT_EQ(errorOf(over, lim), HttpError::kHeadersTooLarge);
    EXPECT_EQ(parseWhole(over, lim).done_at, over.size());
    EXPECT_EQ(parseBytewise(over, lim).done_at, 128u);
    EXPECT_EQ(statusFor(HttpError::kHeadersTooLarge), 431);
    // The head completes within the limit, the body makes the buffer larger: fine.
    const std::string with_body =
        "POST / HTTP/1.1\r\n" + kHost + "Content-Length: 200\r\n\r\n" + std::string(200, 'b');
    EXPECT_EQ(mustParse(with_body, lim).content_length, 200u);
}

TEST(RequestParser, DefaultHeadLimitIs8KiB) {
    const std::string start = "GET / HTTP/1.1\r\n" + kHost + "Cookie: ";
    EXPECT_EQ(errorOf(start + std::string(8200, 'c') + "\r\n\r\n"), HttpError::kHeadersTooLarge);
    EXPECT_EQ(mustParse(start + std::string(8000, 'c') + "\r\n\r\n").header_count, 2u);
}

TEST(RequestParser, RequestLineTooLong) {
    ParserLimits lim;
    lim.max_head_bytes = 64;
    EXPECT_EQ(errorOf("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n" + kHost + "\r\n", lim),
              HttpError::kUriTooLong);
    EXPECT_EQ(statusFor(HttpError::kUriTooLong), 414);
}

TEST(RequestParser, HeaderCountLimit) {
    std::string in = "GET / HTTP/1.1\r\n" + kHost;
    for (size_t i = 1; i < kMaxHeaders; ++i) {
        in += "X-" + std::to_string(i) + ": v\r\n";
    }
    EXPECT_EQ(mustParse(in + "\r\n").header_count, kMaxHeaders);
    EXPECT_EQ(errorOf(in + "X-Last: v\r\n\r\n"), HttpError::kTooManyHeaders);
    EXPECT_EQ(statusFor(HttpError::kTooManyHeaders), 431);

    ParserLimits lim;
    lim.max_headers = 3;
    const std::string three = "GET / HTTP/1.1\r\n" + kHost + "A: 1\r\nB: 2\r\n";
    EXPECT_EQ(mustParse(three + "\r\n", lim).header_count, 3u);
    EXPECT_EQ(errorOf(three + "C: 3\r\n\r\n", lim), HttpError::kTooManyHeaders);
    lim.max_headers = 1000;  // clamped to the storage
    EXPECT_EQ(errorOf(in + "X-Last: v\r\n\r\n", lim), HttpError::kTooManyHeaders);
}

TEST(RequestParser, TooManyHeadersFoundBeforeTheHeadEnds) {
    ParserLimits lim;
    lim.max_headers = 2;
    RequestParser p(lim);
    Request r;
    EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n", &r), ParseStatus::kError);
    EXPECT_EQ(p.error(), HttpError::kTooManyHeaders);
}

TEST(RequestParser, PipelinedRequests) {
    const std::string first = "POST /a HTTP/1.1\r\n" + kHost + "Content-Length: 4\r\n\r\nbody";
    const std::string second = "GET /b?x HTTP/1.1\r\n" + kHost + "\r\n";
    const std::string third = "\r\nGET /c HTTP/1.1\r\n" + kHost + "Connection: close\r\n\r\n";
    const std::string all = first + second + third;
    parseAllWays(all);

    RequestParser p;
    Request r;
    std::string_view rest = all;
    ASSERT_EQ(p.parse(rest, &r), ParseStatus::kDone);
    EXPECT_EQ(r.path, "/a");
    EXPECT_EQ(rest.substr(r.head_size, r.content_length), "body");
    rest.remove_prefix(r.head_size + r.content_length);
    p.reset();
    ASSERT_EQ(p.parse(rest, &r), ParseStatus::kDone);
    EXPECT_EQ(r.path, "/b");
    EXPECT_EQ(r.query, "x");
    rest.remove_prefix(r.head_size + r.content_length);
    p.reset();
    ASSERT_EQ(p.parse(rest, &r), ParseStatus::kDone);
    EXPECT_EQ(r.path, "/c");
    EXPECT_FALSE(r.keep_alive);
    EXPECT_EQ(r.head_size, rest.size());
}

TEST(RequestParser, ErrorIsStickyUntilReset) {
    RequestParser p;
    Request r;
    EXPECT_EQ(p.parse("G@T / HTTP/1.1\r\n\r\n", &r), ParseStatus::kError);
    const std::string good = "GET / HTTP/1.1\r\n" + kHost + "\r\n";
    EXPECT_EQ(p.parse(good, &r), ParseStatus::kError);
    EXPECT_EQ(p.error(), HttpError::kBadMethod);
    p.reset();
    EXPECT_EQ(p.error(), HttpError::kNone);
    EXPECT_EQ(p.parse(good, &r), ParseStatus::kDone);
}

TEST(RequestParser, DoneIsRepeatable) {
    const std::string good = "GET /x HTTP/1.1\r\n" + kHost + "\r\n";
    RequestParser p;
    Request r;
    ASSERT_EQ(p.parse(good, &r), ParseStatus::kDone);
    Request again;
    ASSERT_EQ(p.parse(good, &again), ParseStatus::kDone);
    EXPECT_EQ(dumpRequest(r), dumpRequest(again));
}

TEST(RequestParser, ShrunkBufferRestarts) {
    RequestParser p;
    Request r;
    EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: abcdef", &r), ParseStatus::kNeedMore);
    // Caller broke the contract and handed a shorter buffer: the parser starts over.
    EXPECT_EQ(p.parse("GET / HTTP/1.1\r\n" + kHost + "\r\n", &r), ParseStatus::kDone);
}

TEST(RequestParser, ByteByByteCostIsLinear) {
    // 8 KiB head fed one byte at a time: with rescanning this would be ~32M byte visits.
    const std::string in =
        "GET / HTTP/1.1\r\n" + kHost + "Cookie: " + std::string(8000, 'c') + "\r\n\r\n";
    RequestParser p;
    Request r;
    std::string_view v(in);
    const auto t0 = std::chrono::steady_clock::now();
    for (int rep = 0; rep < 20; ++rep) {
        p.reset();
        for (size_t n = 1; n < in.size(); ++n) {
            ASSERT_EQ(p.parse(v.substr(0, n), &r), ParseStatus::kNeedMore);
        }
        ASSERT_EQ(p.parse(v, &r), ParseStatus::kDone);
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_LT(ms, 2000) << "incremental parse looks quadratic";
}

TEST(HttpError, EveryErrorHasStatusAndDescription) {
    for (int i = 0; i <= static_cast<int>(HttpError::kBadStatusLine); ++i) {
        const auto e = static_cast<HttpError>(i);
        EXPECT_FALSE(describe(e).empty()) << i;
        const uint16_t s = statusFor(e);
        if (e == HttpError::kNone) {
            EXPECT_EQ(s, 200);
        } else {
            EXPECT_TRUE(s == 400 || s == 414 || s == 431 || s == 501 || s == 505) << i;
        }
    }
}

}  // namespace
}  // namespace sb::http
