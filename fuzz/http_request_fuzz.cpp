// Fuzz target for the HTTP head parsers (http/request.h) and, behind them, the WebSocket
// handshake (ws/handshake.h). Input: one control byte, then the bytes a client sends. The
// request parser runs on the whole input and again fed in growing chunks whose sizes come from
// the control byte; both runs must give the same result (differential oracle). A parsed request
// then goes through the pipelined remainder, evaluateUpgrade, write101/buildRejection and our
// own client-side validation, which must accept what our server side wrote.
//
// Control byte: bits 0-4 chunk pattern seed; bit 5 small limits (256-byte head, 4 headers) so
// the limit paths are reached; bit 6 an Origin allowlist; bit 7 permessage-deflate disabled.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "ws/handshake.h"

namespace {

using sb::http::HttpError;
using sb::http::ParseStatus;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "http_request_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

bool within(std::string_view v, std::string_view buf) {
    return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

// The request as text: equal across buffers holding the same bytes.
std::string dump(const sb::http::Request& r) {
    std::string s;
    s.append(r.method).append("|").append(r.target).append("|").append(r.path).append("|");
    s.append(r.query).append("|").append(std::to_string(r.version_minor)).append("|");
    for (size_t i = 0; i < r.header_count; ++i) {
        s.append(r.headers[i].name).append(":").append(r.headers[i].value).append("\n");
    }
    s.append(std::to_string(r.content_length)).append(r.has_body ? "b" : "-");
    s.append(r.keep_alive ? "k" : "-").append(std::to_string(r.head_size));
    return s;
}

void checkRequest(const sb::http::Request& r, std::string_view buf,
                  const sb::http::ParserLimits& limits) {
    check(r.head_size >= 4 && r.head_size <= buf.size(), "head_size in range");
    check(r.head_size <= limits.max_head_bytes, "head within limit");
    check(buf.substr(r.head_size - 4, 4) == "\r\n\r\n", "head ends with CRLFCRLF");
    check(r.header_count <= limits.max_headers, "header count within limit");
    check(!r.method.empty() && within(r.method, buf), "method view");
    check(!r.target.empty() && r.target[0] == '/' && within(r.target, buf), "target view");
    check(within(r.path, buf) && within(r.query, buf), "path/query views");
    check(r.version_minor <= 1, "version");
    check(r.has_body == (r.content_length > 0), "has_body");
    for (size_t i = 0; i < r.header_count; ++i) {
        check(!r.headers[i].name.empty() && within(r.headers[i].name, buf), "header name view");
        check(within(r.headers[i].value, buf), "header value view");
    }
}

// Feeds growing prefixes; chunk sizes from a small xorshift seeded by the control byte.
ParseStatus parseChunked(std::string_view in, uint8_t seed, const sb::http::ParserLimits& limits,
                         std::string* buf, sb::http::Request* r, HttpError* err) {
    sb::http::RequestParser p(limits);
    uint32_t x = 0x9E3779B9u ^ seed;
    size_t pos = 0;
    ParseStatus st = ParseStatus::kNeedMore;
    while (pos < in.size()) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const size_t n = 1 + x % (seed % 4 == 0 ? 2 : 37);
        const size_t take = std::min(n, in.size() - pos);
        buf->append(in.substr(pos, take));
        pos += take;
        st = p.parse(*buf, r);
        if (st != ParseStatus::kNeedMore) {
            break;
        }
    }
    *err = p.error();
    return st;
}

void exerciseHandshake(const sb::http::Request& req, uint8_t control) {
    static const std::vector<std::string> kProtocols = {"switchboard.v1.json", "v12.stomp"};
    static const std::vector<std::string> kOrigins = {"https://app.example.com"};
    sb::ws::UpgradePolicy policy;
    policy.subprotocols = kProtocols;
    if (control & 0x40) {
        policy.allowed_origins = kOrigins;
    }
    policy.deflate.enabled = (control & 0x80) == 0;
    const sb::ws::UpgradeDecision d = sb::ws::evaluateUpgrade(req, policy);
    if (d.error != sb::ws::UpgradeError::kNone) {
        const std::string rej = sb::ws::buildRejection(d.error);
        sb::http::Response resp;
        HttpError e = HttpError::kNone;
        check(sb::http::parseResponse(rej, {}, &resp, &e) == ParseStatus::kDone,
              "rejection parses");
        check(resp.status == sb::ws::statusFor(d.error), "rejection status");
        return;
    }
    char out[1024];
    const size_t n = sb::ws::write101(d, out, sizeof(out));
    check(n > 0, "101 fits");
    sb::http::Response resp;
    HttpError e = HttpError::kNone;
    check(sb::http::parseResponse(std::string_view(out, n), {}, &resp, &e) == ParseStatus::kDone,
          "101 parses");
    // Our client, had it sent exactly this request's offers, must accept our server's answer.
    std::vector<std::string> offered(kProtocols.begin(), kProtocols.end());
    const sb::ws::ClientHandshakeResult r =
        sb::ws::validateServerResponse(resp, req.header("sec-websocket-key"), offered, true);
    check(r.ok, "our client accepts our 101");
    check(r.subprotocol == d.subprotocol, "subprotocol agrees");
    check(r.deflate.has_value() == d.deflate.has_value(), "deflate agrees");
    if (r.deflate) {
        check(r.deflate->server_max_window_bits == d.deflate->server_max_window_bits &&
                  r.deflate->client_max_window_bits == d.deflate->client_max_window_bits &&
                  r.deflate->server_no_context_takeover == d.deflate->server_no_context_takeover &&
                  r.deflate->client_no_context_takeover == d.deflate->client_no_context_takeover,
              "deflate params agree");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const uint8_t control = data[0];
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    sb::http::ParserLimits limits;
    if (control & 0x20) {
        limits.max_head_bytes = 256;
        limits.max_headers = 4;
    }

    sb::http::RequestParser whole_parser(limits);
    sb::http::Request whole;
    const ParseStatus st = whole_parser.parse(in, &whole);
    const HttpError err = whole_parser.error();
    check((st == ParseStatus::kError) == (err != HttpError::kNone), "error() iff kError");
    check(!sb::http::describe(err).empty(), "describe");

    std::string buf;
    sb::http::Request chunked;
    HttpError chunked_err = HttpError::kNone;
    const ParseStatus st2 = parseChunked(in, control, limits, &buf, &chunked, &chunked_err);
    check(st == st2, "whole and chunked status agree");
    check(err == chunked_err, "whole and chunked error agree");

    if (st == ParseStatus::kDone) {
        checkRequest(whole, in, limits);
        checkRequest(chunked, buf, limits);
        check(dump(whole) == dump(chunked), "whole and chunked request agree");
        check(whole.head_size <= buf.size(), "chunked run saw the whole head");
        exerciseHandshake(whole, control);

        // Pipelined remainder: parse a few more requests without crashing.
        std::string_view rest = in;
        sb::http::Request next = whole;
        for (int i = 0; i < 4; ++i) {
            const uint64_t skip = next.head_size + next.content_length;
            if (skip >= rest.size()) {
                break;
            }
            rest.remove_prefix(static_cast<size_t>(skip));
            whole_parser.reset();
            if (whole_parser.parse(rest, &next) != ParseStatus::kDone) {
                break;
            }
            checkRequest(next, rest, limits);
        }
    }

    // The response parser over the same bytes: a complete head must parse the same from any
    // buffer that contains it.
    sb::http::Response resp;
    HttpError rerr = HttpError::kNone;
    if (sb::http::parseResponse(in, limits, &resp, &rerr) == ParseStatus::kDone) {
        check(resp.head_size <= in.size() && resp.status >= 100 && resp.status <= 999,
              "response fields");
        sb::http::Response again;
        check(sb::http::parseResponse(in.substr(0, resp.head_size), limits, &again, &rerr) ==
                      ParseStatus::kDone &&
                  again.head_size == resp.head_size && again.status == resp.status &&
                  again.header_count == resp.header_count,
              "response prefix agrees");
    }
    return 0;
}
