// HTTP/1.1 head parser: a cheap resumable line scan until CRLFCRLF, then one validating pass
// over the complete head. Character classes are 256-entry tables (one load per byte).
#include "http/request.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "base/ascii.h"

namespace sb::http {

namespace {

// Bit flags per byte value.
enum : uint8_t {
    kTchar = 1 << 0,   // RFC 9110 §5.6.2 token character
    kTarget = 1 << 1,  // allowed in an origin-form target (printable ASCII but '#')
    kValue = 1 << 2,   // allowed in a field value: HTAB, SP, VCHAR, obs-text
    kHost = 1 << 3,    // allowed in Host: unreserved, pct, sub-delims, ':', '[', ']'
};

constexpr std::array<uint8_t, 256> makeClasses() {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const bool alnum =
            (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        uint8_t f = 0;
        if (alnum || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                         std::string_view::npos) {
            f |= kTchar;
        }
        if (c > 0x20 && c < 0x7F && c != '#') {
            f |= kTarget;
        }
        if (c == '\t' || (c >= 0x20 && c != 0x7F)) {
            f |= kValue;
        }
        if (alnum || std::string_view("-._~%!$&'()*+,;=:[]").find(static_cast<char>(c)) !=
                         std::string_view::npos) {
            f |= kHost;
        }
        t[static_cast<size_t>(c)] = f;
    }
    return t;
}

constexpr std::array<uint8_t, 256> kClasses = makeClasses();

inline bool is(char c, uint8_t cls) {
    return (kClasses[static_cast<unsigned char>(c)] & cls) != 0;
}

using base::iequals;

inline bool isOws(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && isOws(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && isOws(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

std::string_view findHeader(const Header* headers, size_t count, std::string_view name) {
    for (size_t i = 0; i < count; ++i) {
        if (iequals(headers[i].name, name)) {
            return headers[i].value;
        }
    }
    return {};
}

bool findToken(const Header* headers, size_t count, std::string_view name, std::string_view token) {
    for (size_t i = 0; i < count; ++i) {
        if (!iequals(headers[i].name, name)) {
            continue;
        }
        std::string_view rest = headers[i].value;
        while (!rest.empty()) {
            const size_t comma = rest.find(',');
            const std::string_view element = trimOws(rest.substr(0, comma));
            if (!element.empty() && iequals(element, token)) {
                return true;
            }
            if (comma == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(comma + 1);
        }
    }
    return false;
}

// State of the line scan that finds the end of a head. Shared by requests (kept across calls)
// and responses (rebuilt per call).
struct Scan {
    size_t scanned = 0;
    size_t line_start = 0;
    size_t lines = 0;
    size_t head_end = 0;
};

// Advances the scan over data[scan->scanned, min(size, max_head_bytes)). Every LF must follow
// a CR. Returns kDone with scan->head_end set, kNeedMore, or kError with *err.
ParseStatus scanHead(std::string_view data, const ParserLimits& limits, Scan* scan,
                     HttpError* err) {
    const size_t max_lines = std::min(limits.max_headers, kMaxHeaders) + 1;
    const size_t limit = std::min(data.size(), limits.max_head_bytes);
    const char* p = data.data();
    size_t i = scan->scanned;
    while (i < limit) {
        if (scan->lines == 0 && i == scan->line_start) {
            // Fail fast on what cannot start a request line (e.g. a TLS ClientHello sent to
            // the plain-text port): the method must begin with a tchar. CR/LF are handled below.
            const char c = p[i];
            if (!is(c, kTchar) && c != '\r' && c != '\n') {
                *err = HttpError::kBadRequestLine;
                return ParseStatus::kError;
            }
        }
        const void* nl = std::memchr(p + i, '\n', limit - i);
        if (nl == nullptr) {
            i = limit;
            break;
        }
        const size_t lf = static_cast<size_t>(static_cast<const char*>(nl) - p);
        if (lf == 0 || p[lf - 1] != '\r') {
            *err = HttpError::kBadLineEnding;
            return ParseStatus::kError;
        }
        i = lf + 1;
        if (lf - 1 == scan->line_start) {  // an empty line
            if (scan->lines == 0) {
                scan->line_start = i;  // RFC 9112 §2.2: ignore CRLF before the request line
                continue;
            }
            scan->scanned = i;
            scan->head_end = i;
            return ParseStatus::kDone;
        }
        if (++scan->lines > max_lines) {
            *err = HttpError::kTooManyHeaders;
            return ParseStatus::kError;
        }
        scan->line_start = i;
    }
    scan->scanned = i;
    if (data.size() >= limits.max_head_bytes) {
        *err = scan->lines == 0 ? HttpError::kUriTooLong : HttpError::kHeadersTooLarge;
        return ParseStatus::kError;
    }
    return ParseStatus::kNeedMore;
}

// Offset of the first byte after the empty lines that may precede the start line.
size_t skipLeadingCrlf(std::string_view head) {
    size_t pos = 0;
    while (pos + 1 < head.size() && head[pos] == '\r' && head[pos + 1] == '\n') {
        pos += 2;
    }
    return pos;
}

// Parses "HTTP/<d>.<d>": kNone with *minor set, kBadVersion or kVersionNotSupported.
HttpError parseVersion(std::string_view v, uint8_t* minor) {
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9') {
        return HttpError::kBadVersion;
    }
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
        return HttpError::kVersionNotSupported;
    }
    *minor = static_cast<uint8_t>(v[7] - '0');
    return HttpError::kNone;
}

// Parses the field lines of a complete head from `pos` (the start of the first field line)
// to the final empty line, in one pass per line. No bounds checks inside a line: the head ends
// with CRLFCRLF and CR belongs to neither kTchar nor kValue, so every loop stops at a CR.
HttpError parseFields(std::string_view head, size_t pos, size_t max_headers, Header* headers,
                      size_t* count) {
    const size_t max = std::min(max_headers, kMaxHeaders);
    const char* p = head.data();
    size_t n = 0;
    for (;;) {
        if (p[pos] == '\r') {
            if (p[pos + 1] != '\n') {
                return HttpError::kBadLineEnding;
            }
            break;  // the empty line that ends the head
        }
        if (isOws(p[pos])) {
            return HttpError::kObsoleteFold;  // RFC 9112 §5.2 (also SP before the first field)
        }
        size_t i = pos;
        while (is(p[i], kTchar)) {
            ++i;
        }
        if (i == pos || p[i] != ':') {
            return HttpError::kBadHeader;  // empty name, no ':', or SP/CTL before ':'
        }
        size_t v = i + 1;
        while (isOws(p[v])) {
            ++v;
        }
        size_t j = v;
        while (is(p[j], kValue)) {
            ++j;
        }
        if (p[j] != '\r') {
            return HttpError::kBadHeader;  // a CTL in the value
        }
        if (p[j + 1] != '\n') {
            return HttpError::kBadLineEnding;  // a CR inside the line (the scan saw only LFs)
        }
        size_t end = j;
        while (end > v && isOws(p[end - 1])) {
            --end;
        }
        if (n == max) {
            return HttpError::kTooManyHeaders;
        }
        headers[n].name = std::string_view(p + pos, i - pos);
        headers[n].value = std::string_view(p + v, end - v);
        ++n;
        pos = j + 2;
    }
    *count = n;
    return HttpError::kNone;
}

// Content-Length = 1*DIGIT without overflow.
bool parseContentLength(std::string_view v, uint64_t* out) {
    if (v.empty()) {
        return false;
    }
    uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') {
            return false;
        }
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return false;
        }
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

// The semantics of the fields the parser itself acts on: framing (Content-Length,
// Transfer-Encoding), Host and Connection.
HttpError checkFields(Request* r) {
    bool have_length = false;
    bool have_te = false;
    size_t hosts = 0;
    for (size_t i = 0; i < r->header_count; ++i) {
        const Header& h = r->headers[i];
        switch (h.name.size()) {
            case 4:
                if (iequals(h.name, "host")) {
                    ++hosts;
                    for (char c : h.value) {
                        if (!is(c, kHost)) {
                            return HttpError::kBadHost;
                        }
                    }
                }
                break;
            case 14:
                if (iequals(h.name, "content-length")) {
                    uint64_t n = 0;
                    if (!parseContentLength(h.value, &n) ||
                        (have_length && n != r->content_length)) {
                        return HttpError::kBadContentLength;
                    }
                    have_length = true;
                    r->content_length = n;
                }
                break;
            case 17:
                if (iequals(h.name, "transfer-encoding")) {
                    have_te = true;
                }
                break;
            default:
                break;
        }
    }
    if (have_te) {
        // RFC 9112 §6.1: both is a smuggling vector; refuse outright. TE alone: no chunked yet.
        return have_length ? HttpError::kConflictingLength
                           : HttpError::kUnsupportedTransferEncoding;
    }
    if (hosts > 1) {
        return HttpError::kBadHost;
    }
    if (hosts == 0 && r->version_minor == 1) {
        return HttpError::kMissingHost;
    }
    r->has_body = r->content_length > 0;
    if (r->version_minor == 1) {
        r->keep_alive = !r->hasToken("connection", "close");
    } else {
        r->keep_alive =
            r->hasToken("connection", "keep-alive") && !r->hasToken("connection", "close");
    }
    return HttpError::kNone;
}

// Validates the complete head and fills *r.
HttpError parseRequestHead(std::string_view head, const ParserLimits& limits, Request* r) {
    r->header_count = 0;
    r->content_length = 0;
    r->has_body = false;
    r->keep_alive = true;
    r->head_size = head.size();

    // As in parseFields, the loops need no bounds checks: each stops at a CR at the latest.
    const char* p = head.data();
    const size_t start = skipLeadingCrlf(head);
    size_t m = start;
    while (is(p[m], kTchar)) {
        ++m;
    }
    if (m == start || p[m] == '\r') {
        return HttpError::kBadRequestLine;
    }
    if (p[m] != ' ') {
        return HttpError::kBadMethod;
    }
    r->method = std::string_view(p + start, m - start);

    const size_t t0 = m + 1;
    size_t t1 = t0;
    while (is(p[t1], kTarget)) {
        ++t1;
    }
    if (p[t1] == '\r') {
        return p[t1 + 1] == '\n' ? HttpError::kBadRequestLine : HttpError::kBadLineEnding;
    }
    if (p[t1] != ' ' || t1 == t0 || p[t0] != '/') {
        return HttpError::kBadTarget;  // forbidden byte, empty, absolute- or asterisk-form
    }
    const std::string_view target(p + t0, t1 - t0);
    r->target = target;
    const size_t q = target.find('?');
    if (q == std::string_view::npos) {
        r->path = target;
        r->query = {};
    } else {
        r->path = target.substr(0, q);
        r->query = target.substr(q + 1);
    }

    const size_t v0 = t1 + 1;
    const auto* cr = static_cast<const char*>(std::memchr(p + v0, '\r', head.size() - v0));
    const size_t eol = static_cast<size_t>(cr - p);  // found: the head ends with CRLFCRLF
    if (p[eol + 1] != '\n') {
        return HttpError::kBadLineEnding;
    }
    if (const HttpError e = parseVersion(std::string_view(p + v0, eol - v0), &r->version_minor);
        e != HttpError::kNone) {
        return e;
    }
    if (const HttpError e =
            parseFields(head, eol + 2, limits.max_headers, r->headers, &r->header_count);
        e != HttpError::kNone) {
        return e;
    }
    return checkFields(r);
}

}  // namespace

uint16_t statusFor(HttpError e) {
    switch (e) {
        case HttpError::kNone:
            return 200;
        case HttpError::kUriTooLong:
            return 414;
        case HttpError::kHeadersTooLarge:
        case HttpError::kTooManyHeaders:
            return 431;
        case HttpError::kUnsupportedTransferEncoding:
            return 501;
        case HttpError::kVersionNotSupported:
            return 505;
        case HttpError::kBadRequestLine:
        case HttpError::kBadMethod:
        case HttpError::kBadTarget:
        case HttpError::kBadVersion:
        case HttpError::kBadHeader:
        case HttpError::kBadContentLength:
        case HttpError::kBadLineEnding:
        case HttpError::kObsoleteFold:
        case HttpError::kMissingHost:
        case HttpError::kBadHost:
        case HttpError::kConflictingLength:
        case HttpError::kBadStatusLine:
            return 400;
    }
    return 400;
}

std::string_view describe(HttpError e) {
    switch (e) {
        case HttpError::kNone:
            return "ok";
        case HttpError::kBadRequestLine:
            return "malformed request line (expected \"METHOD /path HTTP/1.1\")";
        case HttpError::kBadMethod:
            return "request method is not a valid token";
        case HttpError::kBadTarget:
            return "request target must be an absolute path (\"/...\") without spaces, control "
                   "characters, '#' or raw non-ASCII bytes";
        case HttpError::kUriTooLong:
            return "request line too long";
        case HttpError::kBadVersion:
            return "malformed HTTP version";
        case HttpError::kVersionNotSupported:
            return "only HTTP/1.1 and HTTP/1.0 are supported";
        case HttpError::kBadHeader:
            return "malformed header field (name must be a token directly followed by ':', "
                   "value without control characters)";
        case HttpError::kHeadersTooLarge:
            return "request header section too large";
        case HttpError::kTooManyHeaders:
            return "too many header fields";
        case HttpError::kBadContentLength:
            return "invalid or conflicting Content-Length";
        case HttpError::kUnsupportedTransferEncoding:
            return "Transfer-Encoding is not supported (chunked request bodies are not "
                   "implemented yet; send Content-Length)";
        case HttpError::kBadLineEnding:
            return "lines must end with CRLF (bare LF or CR)";
        case HttpError::kObsoleteFold:
            return "obsolete header line folding is not allowed";
        case HttpError::kMissingHost:
            return "HTTP/1.1 request without Host header";
        case HttpError::kBadHost:
            return "repeated or malformed Host header";
        case HttpError::kConflictingLength:
            return "both Transfer-Encoding and Content-Length present";
        case HttpError::kBadStatusLine:
            return "malformed response status line";
    }
    return "bad request";
}

std::string_view Request::header(std::string_view name) const {
    return findHeader(headers, header_count, name);
}

bool Request::hasToken(std::string_view header_name, std::string_view token) const {
    return findToken(headers, header_count, header_name, token);
}

std::string_view Response::header(std::string_view name) const {
    return findHeader(headers, header_count, name);
}

bool Response::hasToken(std::string_view header_name, std::string_view token) const {
    return findToken(headers, header_count, header_name, token);
}

RequestParser::RequestParser(ParserLimits limits) : limits_(limits) {}

void RequestParser::reset() {
    scanned_ = 0;
    line_start_ = 0;
    lines_ = 0;
    head_end_ = 0;
    error_ = HttpError::kNone;
}

ParseStatus RequestParser::fail(HttpError e) {
    error_ = e;
    return ParseStatus::kError;
}

ParseStatus RequestParser::parse(std::string_view data, Request* out) {
    if (error_ != HttpError::kNone) {
        return ParseStatus::kError;
    }
    if (data.size() < scanned_) {
        reset();  // contract broken (buffer shrank): start over rather than read stale offsets
    }
    if (head_end_ == 0) {
        Scan scan{scanned_, line_start_, lines_, 0};
        HttpError err = HttpError::kNone;
        const ParseStatus st = scanHead(data, limits_, &scan, &err);
        scanned_ = scan.scanned;
        line_start_ = scan.line_start;
        lines_ = scan.lines;
        if (st == ParseStatus::kError) {
            return fail(err);
        }
        if (st == ParseStatus::kNeedMore) {
            return st;
        }
        head_end_ = scan.head_end;
    }
    if (const HttpError e = parseRequestHead(data.substr(0, head_end_), limits_, out);
        e != HttpError::kNone) {
        return fail(e);
    }
    return ParseStatus::kDone;
}

ParseStatus parseResponse(std::string_view data, const ParserLimits& limits, Response* out,
                          HttpError* err) {
    Scan scan;
    HttpError e = HttpError::kNone;
    const ParseStatus st = scanHead(data, limits, &scan, &e);
    if (st != ParseStatus::kDone) {
        *err = e;
        return st;
    }
    const std::string_view head = data.substr(0, scan.head_end);
    out->header_count = 0;
    out->head_size = head.size();
    const size_t start = skipLeadingCrlf(head);
    const size_t eol = head.find('\r', start);
    if (eol == std::string_view::npos || eol + 1 >= head.size() || head[eol + 1] != '\n') {
        *err = HttpError::kBadLineEnding;
        return ParseStatus::kError;
    }
    const std::string_view line = head.substr(start, eol - start);
    // status-line = HTTP-version SP 3DIGIT SP [reason]; the SP before an empty reason is often
    // omitted by servers, accept both.
    uint8_t minor = 0;
    if (line.size() < 12 || line[8] != ' ') {
        *err = HttpError::kBadStatusLine;
        return ParseStatus::kError;
    }
    if (const HttpError ve = parseVersion(line.substr(0, 8), &minor); ve != HttpError::kNone) {
        *err = ve == HttpError::kBadVersion ? HttpError::kBadStatusLine : ve;
        return ParseStatus::kError;
    }
    uint16_t status = 0;
    for (size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') {
            *err = HttpError::kBadStatusLine;
            return ParseStatus::kError;
        }
        status = static_cast<uint16_t>(status * 10 + (line[i] - '0'));
    }
    if (status < 100 || (line.size() > 12 && line[12] != ' ')) {
        *err = HttpError::kBadStatusLine;
        return ParseStatus::kError;
    }
    const std::string_view reason = line.size() > 12 ? line.substr(13) : std::string_view();
    for (char c : reason) {
        if (!is(c, kValue)) {
            *err = HttpError::kBadStatusLine;
            return ParseStatus::kError;
        }
    }
    out->status = status;
    out->reason = reason;
    if (const HttpError fe =
            parseFields(head, eol + 2, limits.max_headers, out->headers, &out->header_count);
        fe != HttpError::kNone) {
        *err = fe;
        return ParseStatus::kError;
    }
    *err = HttpError::kNone;
    return ParseStatus::kDone;
}

std::string_view reasonPhrase(uint16_t status) {
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 406:
            return "Not Acceptable";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 410:
            return "Gone";
        case 411:
            return "Length Required";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 416:
            return "Range Not Satisfiable";
        case 422:
            return "Unprocessable Content";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            break;
    }
    switch (status / 100) {
        case 1:
            return "Informational";
        case 2:
            return "Success";
        case 3:
            return "Redirection";
        case 4:
            return "Client Error";
        default:
            return "Server Error";
    }
}

namespace {

// The head, then `body` when given; Content-Length states `body_size` either way.
std::string writeResponse(uint16_t status, std::string_view content_type, size_t body_size,
                          const std::string_view* body, std::string_view extra_headers,
                          bool close) {
    const std::string_view reason = reasonPhrase(status);
    char num[24];
    std::string out;
    out.reserve(64 + reason.size() + content_type.size() + extra_headers.size() +
                (body != nullptr ? body->size() : 0));
    out.append("HTTP/1.1 ");
    out.append(num, static_cast<size_t>(std::to_chars(num, num + sizeof(num), status).ptr - num));
    out.push_back(' ');
    out.append(reason);
    out.append("\r\n");
    if (!content_type.empty()) {
        out.append("Content-Type: ");
        out.append(content_type);
        out.append("\r\n");
    }
    out.append(extra_headers);
    if (status >= 200 && status != 204) {
        out.append("Content-Length: ");
        out.append(num,
                   static_cast<size_t>(std::to_chars(num, num + sizeof(num), body_size).ptr - num));
        out.append("\r\n");
    }
    if (close) {
        out.append("Connection: close\r\n");
    }
    out.append("\r\n");
    if (body != nullptr) {
        out.append(*body);
    }
    return out;
}

}  // namespace

std::string makeResponse(uint16_t status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers, bool close) {
    return writeResponse(status, content_type, body.size(), &body, extra_headers, close);
}

std::string makeResponseHead(uint16_t status, std::string_view content_type, size_t body_size,
                             std::string_view extra_headers, bool close) {
    return writeResponse(status, content_type, body_size, nullptr, extra_headers, close);
}

}  // namespace sb::http
