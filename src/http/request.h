// Strict, incremental HTTP/1.1 head parsing (RFC 9112) for requests (server role) and responses
// (the WebSocket client role), plus the helpers that write small responses. Pure: no I/O, and
// no allocation while parsing — every string_view points into the caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sb::http {

// Header fields stored per request. A request with more is refused with 431.
inline constexpr size_t kMaxHeaders = 48;

struct Header {
    std::string_view name;   // as received (case preserved); a token
    std::string_view value;  // leading and trailing SP/HTAB trimmed; may be empty
};

struct ParserLimits {
    // Request line + header fields + the final CRLFCRLF. 8 KiB is what browsers and proxies
    // assume every server accepts (nginx and Node default to 8 KiB / 16 KiB); a head that has
    // not ended within it gets 431 (or 414 when even the request line does not fit).
    size_t max_head_bytes = 8192;
    // Header field lines. Clamped to kMaxHeaders (the storage in Request).
    size_t max_headers = kMaxHeaders;
};

enum class ParseStatus : uint8_t { kDone, kNeedMore, kError };

// Every way a head can be refused. statusFor() gives the HTTP status to answer with and
// describe() a short reason for logs and response bodies.
enum class HttpError : uint8_t {
    kNone = 0,
    kBadRequestLine,               // not "method SP target SP version" (400)
    kBadMethod,                    // method is not a token (400)
    kBadTarget,                    // not origin-form, or forbidden bytes in the target (400)
    kUriTooLong,                   // request line alone does not fit max_head_bytes (414)
    kBadVersion,                   // not "HTTP/<digit>.<digit>" (400)
    kVersionNotSupported,          // well-formed, but not HTTP/1.0 or HTTP/1.1 (505)
    kBadHeader,                    // field name not a token, space before ':', CTL in value (400)
    kHeadersTooLarge,              // head not complete within max_head_bytes (431)
    kTooManyHeaders,               // more than max_headers field lines (431)
    kBadContentLength,             // not 1*DIGIT, overflows, or repeated with another value (400)
    kUnsupportedTransferEncoding,  // any Transfer-Encoding: chunked bodies not supported (501)
    kBadLineEnding,                // bare LF (or CR not followed by LF) (400)
    kObsoleteFold,                 // a field line starting with SP/HTAB (RFC 9112 §5.2) (400)
    kMissingHost,                  // HTTP/1.1 request without Host (RFC 9112 §3.2) (400)
    kBadHost,                      // Host repeated or not a valid authority (400)
    kConflictingLength,            // both Transfer-Encoding and Content-Length (400)
    kBadStatusLine,                // response: not "HTTP/1.x SP 3DIGIT [SP reason]" (client role)
};

uint16_t statusFor(HttpError e);         // 400, 414, 431, 501, 505; 200 for kNone
std::string_view describe(HttpError e);  // short human reason, no trailing period

// A parsed request head. Every view points into the buffer given to RequestParser::parse()
// and is valid while that buffer is alive and unmoved.
struct Request {
    std::string_view method;    // a token, case-sensitive ("GET")
    std::string_view target;    // origin-form, starts with '/'
    std::string_view path;      // target before the first '?'
    std::string_view query;     // target after the first '?' (without it); empty if none
    uint8_t version_minor = 1;  // HTTP/1.0 or HTTP/1.1 only
    Header headers[kMaxHeaders];
    size_t header_count = 0;
    uint64_t content_length = 0;  // from Content-Length; the caller enforces its own body cap
    bool has_body = false;        // content_length > 0
    bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; 1.0 only if keep-alive
    size_t head_size = 0;         // bytes of the head including the final CRLFCRLF

    // Value of the first field named `name` (ASCII case-insensitive); empty if none.
    std::string_view header(std::string_view name) const;
    // True if any field named `header_name` holds `token` as one of its comma-separated elements
    // (both compared ASCII case-insensitively, OWS around elements ignored). For Connection,
    // Upgrade and the like: hasToken("Connection", "upgrade").
    bool hasToken(std::string_view header_name, std::string_view token) const;
};

// Incremental request-head parser for one connection. Not thread-safe; one per connection,
// reused across keep-alive requests with reset().
//
// Strictness (RFC 9112): the method is a token; the target must be origin-form (absolute- and
// asterisk-form are refused: this server is not a proxy and serves no OPTIONS *) with no CTL,
// SP, DEL, '#' or non-ASCII byte; the version is exactly HTTP/1.1 or HTTP/1.0; field names are
// tokens directly followed by ':'; values carry no CTL but HTAB; obs-fold, bare LF, missing or
// repeated Host (1.1), bad or conflicting Content-Length and any Transfer-Encoding are refused.
// Empty lines before the request line are skipped (RFC 9112 §2.2) and count in head_size.
class RequestParser {
public:
    explicit RequestParser(ParserLimits limits = {});

    // `data` holds every byte received so far for this request, from its first byte (the
    // caller keeps them contiguous; it may move them between calls — only offsets are kept).
    // Returns kNeedMore until the head is complete; each call scans only the bytes that are new
    // since the previous call, so feeding a head byte by byte costs O(n) overall. On kDone *out
    // describes the head (views into `data`), the body's first byte is data[out->head_size],
    // and the next pipelined request starts at data.substr(head_size + content_length). On
    // kError error() says why; the parser then stays in error until reset(). Calling again
    // after kDone with the same bytes returns kDone again.
    ParseStatus parse(std::string_view data, Request* out);

    HttpError error() const { return error_; }

    // Ready for the next request (keep-alive); keeps the limits.
    void reset();

private:
    ParseStatus fail(HttpError e);

    ParserLimits limits_;
    size_t scanned_ = 0;     // bytes already searched for line ends
    size_t line_start_ = 0;  // offset of the line being scanned
    size_t lines_ = 0;       // complete non-empty lines so far (request line + field lines)
    size_t head_end_ = 0;    // offset just past CRLFCRLF, 0 until found
    HttpError error_ = HttpError::kNone;
};

// A parsed response head (WebSocket client role). Views point into the parsed buffer.
struct Response {
    uint16_t status = 0;
    std::string_view reason;
    Header headers[kMaxHeaders];
    size_t header_count = 0;
    size_t head_size = 0;  // bytes of the head including the final CRLFCRLF

    std::string_view header(std::string_view name) const;  // as Request::header
    bool hasToken(std::string_view header_name, std::string_view token) const;
};

// Parses a response head from the start of `data` (all bytes received so far). Stateless:
// rescans on every call, which is fine for the one response a client reads per connection.
// Same field rules and limits as requests; the status line must be
// "HTTP/1.1 SP 3DIGIT [SP reason]" (HTTP/1.0 is accepted too). On kError *err says why.
ParseStatus parseResponse(std::string_view data, const ParserLimits& limits, Response* out,
                          HttpError* err);

// Standard reason phrase for a status ("Switching Protocols"); a generic phrase for the
// status class when the code is not one we know.
std::string_view reasonPhrase(uint16_t status);

// A complete HTTP/1.1 response: status line, Content-Type (omitted when empty), the caller's
// `extra_headers` verbatim (each "Name: value\r\n"), Content-Length (not for 1xx and 204, RFC
// 9110 §8.6), "Connection: close" when `close`, the empty line and the body.
std::string makeResponse(uint16_t status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers, bool close);
// Exactly the head makeResponse() writes for a body of `body_size` bytes, without the body:
// the answer to HEAD, which carries the headers GET would (Content-Length included) and no
// content (RFC 9110 §9.3.2).
std::string makeResponseHead(uint16_t status, std::string_view content_type, size_t body_size,
                             std::string_view extra_headers, bool close);

}  // namespace sb::http
