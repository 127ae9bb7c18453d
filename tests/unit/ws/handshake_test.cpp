// Tests for the RFC 6455 §4 opening handshake: accept key, every UpgradeError with its status
// and required headers, subprotocol and origin choices, permessage-deflate through the
// handshake, the exact 101 bytes, and the client role end to end against our own server side.
#include "ws/handshake.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sb::ws {
namespace {

// A parsed request that owns its bytes (the Request's views point into `bytes`).
struct Parsed {
    std::string bytes;
    http::Request req;
};

std::unique_ptr<Parsed> parseRequest(std::string bytes) {
    auto p = std::make_unique<Parsed>();
    p->bytes = std::move(bytes);
    http::RequestParser parser;
    EXPECT_EQ(parser.parse(p->bytes, &p->req), http::ParseStatus::kDone)
        << http::describe(parser.error()) << "\n"
        << p->bytes;
    return p;
}

struct Response {
    std::string bytes;
    http::Response resp;
};

std::unique_ptr<Response> parseResp(std::string bytes) {
    auto r = std::make_unique<Response>();
    r->bytes = std::move(bytes);
    http::HttpError e = http::HttpError::kNone;
    EXPECT_EQ(http::parseResponse(r->bytes, {}, &r->resp, &e), http::ParseStatus::kDone)
        << http::describe(e) << "\n"
        << r->bytes;
    return r;
}

const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";
const char* kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// The RFC 6455 §1.2 request, with header lines replaced or added: a line "Name:" alone
// removes that header, "Name: v" replaces it (or is appended when new), "+Name: v" appends.
std::string request(std::vector<std::string> changes = {},
                    std::string first_line = "GET /chat HTTP/1.1") {
    std::vector<std::pair<std::string, std::string>> h = {
        {"Host", "server.example.com"}, {"Upgrade", "websocket"},        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", kKey},    {"Sec-WebSocket-Version", "13"},
    };
    for (const std::string& c : changes) {
        const bool append = c[0] == '+';
        const std::string line = append ? c.substr(1) : c;
        const size_t colon = line.find(':');
        const std::string name = line.substr(0, colon);
        const std::string value = colon + 1 < line.size() ? line.substr(colon + 2) : "";
        bool found = false;
        if (!append) {
            for (auto it = h.begin(); it != h.end(); ++it) {
                if (it->first == name) {
                    found = true;
                    if (colon + 1 >= line.size()) {
                        h.erase(it);
                    } else {
                        it->second = value;
                    }
                    break;
                }
            }
        }
        if (!found && colon + 1 < line.size()) {
            h.emplace_back(name, value);
        }
    }
    std::string s = first_line + "\r\n";
    for (const auto& [n, v] : h) {
        s += n + ": " + v + "\r\n";
    }
    return s + "\r\n";
}

UpgradeDecision evaluate(const std::string& bytes, const UpgradePolicy& policy = {}) {
    auto p = parseRequest(bytes);
    return evaluateUpgrade(p->req, policy);
}

std::string write101String(const UpgradeDecision& d) {
    char buf[1024];
    const size_t n = write101(d, buf, sizeof(buf));
    return std::string(buf, n);
}

TEST(AcceptKey, Rfc6455Example) {
    char out[28];
    computeAcceptKey(kKey, out);
    EXPECT_EQ(std::string_view(out, 28), kAccept);
}

TEST(AcceptKey, ManyKeysAndThreads) {
    // Stable across calls (the per-thread digest context is reused) and threads.
    char a[28];
    char b[28];
    computeAcceptKey("x3JJHMbDL1EzLkh9GBhXDw==", a);
    for (int i = 0; i < 100; ++i) {
        computeAcceptKey("x3JJHMbDL1EzLkh9GBhXDw==", b);
        ASSERT_EQ(std::string_view(a, 28), std::string_view(b, 28));
    }
    EXPECT_EQ(std::string_view(a, 28), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    std::string from_thread;
    std::thread t([&] {
        char c[28];
        computeAcceptKey(kKey, c);
        from_thread.assign(c, 28);
    });
    t.join();
    EXPECT_EQ(from_thread, kAccept);
    computeAcceptKey(std::string(5000, 'k'), b);  // any length
}

TEST(EvaluateUpgrade, Rfc6455ExampleAccepted) {
    const UpgradeDecision d = evaluate(request());
    ASSERT_EQ(d.error, UpgradeError::kNone);
    EXPECT_EQ(std::string_view(d.accept, 28), kAccept);
    EXPECT_TRUE(d.subprotocol.empty());
    EXPECT_FALSE(d.deflate);
    EXPECT_TRUE(d.extensions_header.empty());
    EXPECT_EQ(write101String(d),
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "\r\n");
    EXPECT_EQ(statusFor(UpgradeError::kNone), 101);
}

TEST(EvaluateUpgrade, TolerantForms) {
    // Token lists and case in Connection/Upgrade, keep-alive alongside, Content-Length: 0,
    // a browser's usual extras.
    EXPECT_EQ(evaluate(request({"Connection: keep-alive, Upgrade", "Upgrade: WebSocket",
                                "Content-Length: 0", "User-Agent: x", "Origin: http://a"}))
                  .error,
              UpgradeError::kNone);
    EXPECT_EQ(evaluate(request({"Connection: upgrade"})).error, UpgradeError::kNone);
    EXPECT_EQ(evaluate(request({"Upgrade: foo/1, websocket"})).error, UpgradeError::kNone);
}

struct ErrorCase {
    const char* name;
    std::string request;
    UpgradeError error;
    uint16_t status;
    std::vector<std::string> must_have;  // header lines the rejection must carry
};

TEST(EvaluateUpgrade, EveryError) {
    const std::vector<ErrorCase> cases = {
        {"POST",
         request({}, "POST /chat HTTP/1.1"),
         UpgradeError::kMethodNotAllowed,
         405,
         {"Allow: GET"}},
        {"HEAD",
         request({}, "HEAD /chat HTTP/1.1"),
         UpgradeError::kMethodNotAllowed,
         405,
         {"Allow: GET"}},
        {"lowercase get",
         request({}, "get /chat HTTP/1.1"),
         UpgradeError::kMethodNotAllowed,
         405,
         {"Allow: GET"}},
        {"HTTP/1.0", request({}, "GET /chat HTTP/1.0"), UpgradeError::kBadHttpVersion, 400, {}},
        {"plain GET",
         request({"Upgrade:", "Connection:"}),
         UpgradeError::kNotUpgrade,
         426,
         {"Upgrade: websocket", "Sec-WebSocket-Version: 13"}},
        {"other upgrade",
         request({"Upgrade: h2c"}),
         UpgradeError::kNotUpgrade,
         426,
         {"Upgrade: websocket", "Sec-WebSocket-Version: 13"}},
        {"no Connection",
         request({"Connection:"}),
         UpgradeError::kMissingConnectionUpgrade,
         400,
         {}},
        {"Connection keep-alive",
         request({"Connection: keep-alive"}),
         UpgradeError::kMissingConnectionUpgrade,
         400,
         {}},
        {"empty Host", request({"Host: "}), UpgradeError::kMissingHost, 400, {}},
        {"no key", request({"Sec-WebSocket-Key:"}), UpgradeError::kBadKey, 400, {}},
        {"key not base64",
         request({"Sec-WebSocket-Key: not-base64-at-all-here!="}),
         UpgradeError::kBadKey,
         400,
         {}},
        {"key 15 bytes",
         request({"Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O"}),
         UpgradeError::kBadKey,
         400,
         {}},
        {"key 17 bytes",
         request({"Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODxA="}),
         UpgradeError::kBadKey,
         400,
         {}},
        {"key without padding",
         request({"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"}),
         UpgradeError::kBadKey,
         400,
         {}},
        {"two keys",
         request({"+Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}),
         UpgradeError::kBadKey,
         400,
         {}},
        {"version 8",
         request({"Sec-WebSocket-Version: 8"}),
         UpgradeError::kUnsupportedVersion,
         426,
         {"Sec-WebSocket-Version: 13"}},
        {"no version",
         request({"Sec-WebSocket-Version:"}),
         UpgradeError::kUnsupportedVersion,
         426,
         {"Sec-WebSocket-Version: 13"}},
        {"version list",
         request({"Sec-WebSocket-Version: 13, 8"}),
         UpgradeError::kUnsupportedVersion,
         426,
         {"Sec-WebSocket-Version: 13"}},
        {"two versions",
         request({"+Sec-WebSocket-Version: 13"}),
         UpgradeError::kUnsupportedVersion,
         426,
         {"Sec-WebSocket-Version: 13"}},
        {"body", request({"Content-Length: 5"}) + "hello", UpgradeError::kRequestHasBody, 400, {}},
    };
    for (const ErrorCase& c : cases) {
        const UpgradeDecision d = evaluate(c.request);
        EXPECT_EQ(d.error, c.error) << c.name;
        EXPECT_EQ(statusFor(c.error), c.status) << c.name;
        EXPECT_EQ(write101String(d), "") << c.name;  // nothing to write for a refusal

        const std::string rej = buildRejection(c.error);
        auto r = parseResp(rej);
        EXPECT_EQ(r->resp.status, c.status) << c.name;
        EXPECT_EQ(r->resp.header("content-type"), "application/json") << c.name;
        EXPECT_TRUE(r->resp.hasToken("connection", "close")) << c.name;
        for (const std::string& line : c.must_have) {
            EXPECT_NE(rej.find("\r\n" + line + "\r\n"), std::string::npos)
                << c.name << " lacks " << line << "\n"
                << rej;
        }
        if (c.status == 426) {
            // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
            EXPECT_EQ(r->resp.header("upgrade"), "websocket") << c.name;
            EXPECT_EQ(r->resp.header("sec-websocket-version"), "13") << c.name;
        } else {
            EXPECT_EQ(r->resp.header("sec-websocket-version"), "") << c.name;
            EXPECT_EQ(r->resp.header("upgrade"), "") << c.name;
        }
        const std::string body = rej.substr(r->resp.head_size);
        EXPECT_EQ(r->resp.header("content-length"), std::to_string(body.size()));
        EXPECT_EQ(body.rfind("{\"error\":\"", 0), 0u) << body;
        EXPECT_NE(body.find("\",\"message\":\""), std::string::npos) << body;
        EXPECT_EQ(body.back(), '}');
    }
}

TEST(EvaluateUpgrade, ForbiddenOrigin) {
    const std::vector<std::string> allowed = {"https://app.example.com", "http://localhost:8080"};
    UpgradePolicy policy;
    policy.allowed_origins = allowed;
    EXPECT_EQ(evaluate(request({"Origin: https://app.example.com"}), policy).error,
              UpgradeError::kNone);
    EXPECT_EQ(evaluate(request({"Origin: HTTPS://App.Example.COM"}), policy).error,
              UpgradeError::kNone);
    EXPECT_EQ(evaluate(request({"Origin: http://localhost:8080"}), policy).error,
              UpgradeError::kNone);
    EXPECT_EQ(evaluate(request({"Origin: https://evil.example.com"}), policy).error,
              UpgradeError::kForbiddenOrigin);
    EXPECT_EQ(evaluate(request({"Origin: https://app.example.com.evil.com"}), policy).error,
              UpgradeError::kForbiddenOrigin);
    EXPECT_EQ(evaluate(request({"Origin: null"}), policy).error, UpgradeError::kForbiddenOrigin);
    EXPECT_EQ(evaluate(request(), policy).error, UpgradeError::kForbiddenOrigin);  // no Origin
    EXPECT_EQ(
        evaluate(request({"Origin: https://app.example.com", "+Origin: https://evil.example.com"}),
                 policy)
            .error,
        UpgradeError::kForbiddenOrigin);
    EXPECT_EQ(statusFor(UpgradeError::kForbiddenOrigin), 403);
    // Empty allowlist: any origin, or none.
    EXPECT_EQ(evaluate(request({"Origin: https://evil.example.com"})).error, UpgradeError::kNone);
    EXPECT_EQ(evaluate(request()).error, UpgradeError::kNone);
}

TEST(EvaluateUpgrade, SubprotocolServerPreferenceWins) {
    const std::vector<std::string> prefs = {"switchboard.v1.json", "v12.stomp"};
    UpgradePolicy policy;
    policy.subprotocols = prefs;
    UpgradeDecision d =
        evaluate(request({"Sec-WebSocket-Protocol: v12.stomp, switchboard.v1.json"}), policy);
    ASSERT_EQ(d.error, UpgradeError::kNone);
    EXPECT_EQ(d.subprotocol, "switchboard.v1.json");
    EXPECT_EQ(d.subprotocol.data(), prefs[0].data());  // points into the policy
    EXPECT_NE(write101String(d).find("\r\nSec-WebSocket-Protocol: switchboard.v1.json\r\n"),
              std::string::npos);

    d = evaluate(request({"Sec-WebSocket-Protocol: mqtt", "+Sec-WebSocket-Protocol: v12.stomp"}),
                 policy);
    EXPECT_EQ(d.subprotocol, "v12.stomp");  // offers spread over several headers

    d = evaluate(request({"Sec-WebSocket-Protocol: mqtt, wamp"}), policy);
    EXPECT_EQ(d.error, UpgradeError::kNone);  // no match: no header, the client decides
    EXPECT_TRUE(d.subprotocol.empty());
    EXPECT_EQ(write101String(d).find("Sec-WebSocket-Protocol"), std::string::npos);

    d = evaluate(request({"Sec-WebSocket-Protocol: V12.STOMP"}), policy);
    EXPECT_TRUE(d.subprotocol.empty());  // case-sensitive

    d = evaluate(request({"Sec-WebSocket-Protocol: v12.stomp"}));  // server speaks none
    EXPECT_TRUE(d.subprotocol.empty());

    d = evaluate(request(), policy);  // client offers none
    EXPECT_TRUE(d.subprotocol.empty());
}

TEST(EvaluateUpgrade, PermessageDeflate) {
    UpgradeDecision d =
        evaluate(request({"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}));
    ASSERT_TRUE(d.deflate);
    // The default policy: shared zlib streams, so no context takeover either way (unasked).
    EXPECT_EQ(d.extensions_header,
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    EXPECT_NE(write101String(d).find("\r\nSec-WebSocket-Extensions: permessage-deflate; "
                                     "server_no_context_takeover; client_no_context_takeover\r\n"),
              std::string::npos);

    // Offers spread over two headers are one list.
    d = evaluate(request({"Sec-WebSocket-Extensions: x-webkit-deflate-frame",
                          "+Sec-WebSocket-Extensions: permessage-deflate; "
                          "server_no_context_takeover"}));
    ASSERT_TRUE(d.deflate);
    EXPECT_TRUE(d.deflate->server_no_context_takeover);
    EXPECT_EQ(d.extensions_header,
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover");

    // Invalid offer: declined, not an error.
    d = evaluate(request({"Sec-WebSocket-Extensions: permessage-deflate; bogus=1"}));
    EXPECT_EQ(d.error, UpgradeError::kNone);
    EXPECT_FALSE(d.deflate);
    EXPECT_EQ(write101String(d).find("Extensions"), std::string::npos);

    UpgradePolicy off;
    off.deflate.enabled = false;
    d = evaluate(request({"Sec-WebSocket-Extensions: permessage-deflate"}), off);
    EXPECT_FALSE(d.deflate);
    EXPECT_TRUE(d.extensions_header.empty());
}

TEST(Write101, ExactBytesWithEverything) {
    const std::vector<std::string> prefs = {"chat"};
    UpgradePolicy policy;
    policy.subprotocols = prefs;
    const UpgradeDecision d = evaluate(
        request({"Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Extensions: permessage-deflate"}),
        policy);
    const std::string expected =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover\r\n"
        "\r\n";
    EXPECT_EQ(write101String(d), expected);
    std::vector<char> exact(expected.size());
    EXPECT_EQ(write101(d, exact.data(), exact.size()), expected.size());
    EXPECT_EQ(write101(d, exact.data(), exact.size() - 1), 0u);  // does not fit
}

TEST(BuildRejection, CodesAreDistinctAndDescribed) {
    std::set<std::string> codes;
    for (int i = 1; i <= static_cast<int>(UpgradeError::kRequestHasBody); ++i) {
        const auto e = static_cast<UpgradeError>(i);
        EXPECT_FALSE(describe(e).empty());
        const std::string rej = buildRejection(e);
        const size_t at = rej.find("{\"error\":\"") + 10;
        codes.insert(rej.substr(at, rej.find('"', at) - at));
    }
    EXPECT_EQ(codes.size(), static_cast<size_t>(UpgradeError::kRequestHasBody));
    EXPECT_EQ(buildRejection(UpgradeError::kUnsupportedVersion),
              "HTTP/1.1 426 Upgrade Required\r\n"
              "Content-Type: application/json\r\n"
              "Upgrade: websocket\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "Content-Length: 147\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{\"error\":\"unsupported_websocket_version\",\"message\":\"Only WebSocket protocol "
              "version 13 (RFC 6455) is supported: send 'Sec-WebSocket-Version: 13'.\"}");
}

// --- client role ---

TEST(ClientKey, RandomAndValid) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const std::string k = generateClientKey();
        ASSERT_EQ(k.size(), 24u);
        EXPECT_EQ(k.substr(22), "==");
        seen.insert(k);
        EXPECT_EQ(evaluate(request({"Sec-WebSocket-Key: " + k})).error, UpgradeError::kNone);
    }
    EXPECT_EQ(seen.size(), 100u);
}

TEST(ClientRequest, ExactBytes) {
    const std::vector<std::string> protos = {"a", "b"};
    EXPECT_EQ(buildClientRequest("example.com:8080", "/ws?x=1", kKey, protos, true,
                                 "https://example.com"),
              "GET /ws?x=1 HTTP/1.1\r\n"
              "Host: example.com:8080\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "Origin: https://example.com\r\n"
              "Sec-WebSocket-Protocol: a, b\r\n"
              "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
              "\r\n");
    EXPECT_EQ(buildClientRequest("h", "", kKey, {}, false, ""),
              "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
}

TEST(ClientHandshake, EndToEndAgainstOurServerSide) {
    const std::vector<std::string> client_protos = {"v12.stomp", "switchboard.v1.json"};
    const std::vector<std::string> server_protos = {"switchboard.v1.json", "v12.stomp"};
    const std::string key = generateClientKey();
    auto req = parseRequest(
        buildClientRequest("localhost:9001", "/ws", key, client_protos, true, "http://x"));
    UpgradePolicy policy;
    policy.subprotocols = server_protos;
    policy.deflate.max_server_window_bits = 12;
    const UpgradeDecision d = evaluateUpgrade(req->req, policy);
    ASSERT_EQ(d.error, UpgradeError::kNone);
    ASSERT_TRUE(d.deflate);

    auto resp = parseResp(write101String(d) + std::string("\x81\x00", 2));
    const ClientHandshakeResult r = validateServerResponse(resp->resp, key, client_protos, true);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.error.empty());
    EXPECT_EQ(r.status, 101);
    EXPECT_EQ(r.subprotocol, "switchboard.v1.json");
    ASSERT_TRUE(r.deflate);
    EXPECT_EQ(r.deflate->server_max_window_bits, 12);
    EXPECT_EQ(r.deflate->server_max_window_bits, d.deflate->server_max_window_bits);
    EXPECT_EQ(r.deflate->client_max_window_bits, d.deflate->client_max_window_bits);
    EXPECT_EQ(r.head_size, resp->bytes.size() - 2);
}

std::string response101(std::vector<std::string> lines) {
    std::string s = "HTTP/1.1 101 Switching Protocols\r\n";
    for (const std::string& l : lines) {
        s += l + "\r\n";
    }
    return s + "\r\n";
}

TEST(ClientHandshake, FailsOnEveryViolation) {
    const std::vector<std::string> protos = {"chat"};
    const std::string up = "Upgrade: websocket";
    const std::string conn = "Connection: Upgrade";
    const std::string acc = std::string("Sec-WebSocket-Accept: ") + kAccept;
    struct Case {
        const char* name;
        std::string response;
        bool offered_deflate;
        bool ok;
    };
    const std::vector<Case> cases = {
        {"valid", response101({up, conn, acc}), false, true},
        {"valid, token case",
         response101({"upgrade: WebSocket", "connection: keep-alive, upgrade", acc}), false, true},
        {"valid with protocol and deflate",
         response101({up, conn, acc, "Sec-WebSocket-Protocol: chat",
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10"}),
         true, true},
        {"403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", false, false},
        {"200", "HTTP/1.1 200 OK\r\n" + up + "\r\n" + conn + "\r\n" + acc + "\r\n\r\n", false,
         false},
        {"no Upgrade", response101({conn, acc}), false, false},
        {"Upgrade h2c", response101({"Upgrade: h2c", conn, acc}), false, false},
        {"no Connection", response101({up, acc}), false, false},
        {"no accept", response101({up, conn}), false, false},
        {"wrong accept", response101({up, conn, "Sec-WebSocket-Accept: AAAA"}), false, false},
        {"two accepts", response101({up, conn, acc, acc}), false, false},
        {"protocol not offered", response101({up, conn, acc, "Sec-WebSocket-Protocol: mqtt"}),
         false, false},
        {"protocol list", response101({up, conn, acc, "Sec-WebSocket-Protocol: chat, mqtt"}), false,
         false},
        {"two protocols",
         response101(
             {up, conn, acc, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"}),
         false, false},
        {"deflate not offered",
         response101({up, conn, acc, "Sec-WebSocket-Extensions: permessage-deflate"}), false,
         false},
        {"bad deflate params",
         response101({up, conn, acc, "Sec-WebSocket-Extensions: permessage-deflate; bogus"}), true,
         false},
        {"deflate bits without value",
         response101({up, conn, acc,
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}),
         true, false},
        {"unknown extension", response101({up, conn, acc, "Sec-WebSocket-Extensions: x-foo"}), true,
         false},
        {"two extensions",
         response101({up, conn, acc, "Sec-WebSocket-Extensions: permessage-deflate",
                      "Sec-WebSocket-Extensions: permessage-deflate"}),
         true, false},
    };
    for (const Case& c : cases) {
        auto r = parseResp(c.response);
        const ClientHandshakeResult res =
            validateServerResponse(r->resp, kKey, protos, c.offered_deflate);
        EXPECT_EQ(res.ok, c.ok) << c.name << ": " << res.error;
        EXPECT_EQ(res.error.empty(), c.ok) << c.name;
        EXPECT_EQ(res.status, r->resp.status) << c.name;
    }
    // The status is reported for the user.
    auto r = parseResp("HTTP/1.1 403 Forbidden\r\n\r\n");
    const ClientHandshakeResult res = validateServerResponse(r->resp, kKey, protos, false);
    EXPECT_NE(res.error.find("403"), std::string::npos) << res.error;
}

}  // namespace
}  // namespace sb::ws
