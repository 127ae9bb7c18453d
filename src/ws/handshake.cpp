// RFC 6455 §4 opening handshake. On the server it runs once per connection on the accept path
// (tens of thousands per second), so the decision allocates only for negotiated extensions and
// the accept key is hashed in place (ws/sha1.h).
#include "ws/handshake.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <random>

#include "base/ascii.h"
#include "ws/sha1.h"

namespace sb::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 §1.3

using base::iequals;

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls f(element) for each non-empty comma-separated element (OWS trimmed) of every field
// named `name`; stops early when f returns true. Returns whether it stopped.
template <class Headers, class F>
bool forEachElement(const Headers& h, std::string_view name, F&& f) {
    for (size_t i = 0; i < h.header_count; ++i) {
        if (!iequals(h.headers[i].name, name)) {
            continue;
        }
        std::string_view rest = h.headers[i].value;
        for (;;) {
            const size_t comma = rest.find(',');
            const std::string_view element = trimOws(rest.substr(0, comma));
            if (!element.empty() && f(element)) {
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

template <class Headers>
size_t countFields(const Headers& h, std::string_view name) {
    size_t n = 0;
    for (size_t i = 0; i < h.header_count; ++i) {
        n += iequals(h.headers[i].name, name) ? 1 : 0;
    }
    return n;
}

// The values of every field named `name` joined with ", " (RFC 9110 §5.3); a view of the
// single value when there is one (no allocation), stored in *storage otherwise.
template <class Headers>
std::string_view joinFields(const Headers& h, std::string_view name, std::string* storage) {
    std::string_view first;
    size_t n = 0;
    for (size_t i = 0; i < h.header_count; ++i) {
        if (!iequals(h.headers[i].name, name)) {
            continue;
        }
        if (n++ == 0) {
            first = h.headers[i].value;
        } else {
            if (n == 2) {
                storage->assign(first);
            }
            storage->append(", ");
            storage->append(h.headers[i].value);
        }
    }
    return n > 1 ? std::string_view(*storage) : first;
}

// True if the comma-separated list `value` has `token` as an element (ASCII case-insensitive).
bool hasElement(std::string_view value, std::string_view token) {
    for (;;) {
        const size_t comma = value.find(',');
        if (iequals(trimOws(value.substr(0, comma)), token)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            return false;
        }
        value.remove_prefix(comma + 1);
    }
}

// The header fields the handshake looks at, found in one pass over the request (switching
// on the name's length first), instead of one linear search per field.
struct HandshakeFields {
    bool upgrade_websocket = false;
    bool connection_upgrade = false;
    size_t hosts = 0;
    size_t versions = 0;
    size_t keys = 0;
    size_t origins = 0;
    size_t protocols = 0;
    size_t extensions = 0;
    std::string_view host;
    std::string_view version;
    std::string_view key;
    std::string_view origin;

    explicit HandshakeFields(const http::Request& req) {
        for (size_t i = 0; i < req.header_count; ++i) {
            const http::Header& h = req.headers[i];
            switch (h.name.size()) {
                case 4:
                    if (iequals(h.name, "host")) {
                        host = hosts++ == 0 ? h.value : host;
                    }
                    break;
                case 6:
                    if (iequals(h.name, "origin")) {
                        origin = origins++ == 0 ? h.value : origin;
                    }
                    break;
                case 7:
                    if (iequals(h.name, "upgrade")) {
                        upgrade_websocket = upgrade_websocket || hasElement(h.value, "websocket");
                    }
                    break;
                case 10:
                    if (iequals(h.name, "connection")) {
                        connection_upgrade = connection_upgrade || hasElement(h.value, "upgrade");
                    }
                    break;
                case 17:
                    if (iequals(h.name, "sec-websocket-key")) {
                        key = keys++ == 0 ? h.value : key;
                    }
                    break;
                case 21:
                    if (iequals(h.name, "sec-websocket-version")) {
                        version = versions++ == 0 ? h.value : version;
                    }
                    break;
                case 22:
                    protocols += iequals(h.name, "sec-websocket-protocol") ? 1 : 0;
                    break;
                case 24:
                    extensions += iequals(h.name, "sec-websocket-extensions") ? 1 : 0;
                    break;
                default:
                    break;
            }
        }
    }
};

bool isBase64Char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// RFC 6455 §4.2.1 item 5: base64 of 16 bytes is 22 alphabet characters and "==". (The unused
// low bits of the last character are not checked, like common base64 decoders.)
bool isValidKey(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; ++i) {
        if (!isBase64Char(key[i])) {
            return false;
        }
    }
    return true;
}

struct ErrorInfo {
    uint16_t status;
    std::string_view code;     // snake_case, stable: clients and metrics key on it
    std::string_view reason;   // describe()
    std::string_view message;  // the JSON body: reason and how to fix
    std::string_view headers;  // extra response headers
};

const ErrorInfo& info(UpgradeError e) {
    static const ErrorInfo kTable[] = {
        {101, "none", "ok", "", ""},
        {405, "method_not_allowed", "upgrade request is not GET",
         "A WebSocket upgrade must be a GET request (RFC 6455 section 4.1).", "Allow: GET\r\n"},
        {400, "bad_http_version", "upgrade request is HTTP/1.0",
         "A WebSocket upgrade needs HTTP/1.1; this request used HTTP/1.0.", ""},
        {426, "upgrade_required", "not a WebSocket upgrade request",
         "This endpoint only speaks WebSocket: send 'Upgrade: websocket', 'Connection: "
         "Upgrade', 'Sec-WebSocket-Version: 13' and a Sec-WebSocket-Key.",
         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"},
        {400, "missing_connection_upgrade", "Connection header lacks the upgrade token",
         "The Connection header must contain the 'Upgrade' token for a WebSocket upgrade.", ""},
        {400, "missing_host", "no Host header",
         "The Host header is required on a WebSocket upgrade request.", ""},
        {400, "bad_websocket_key", "missing or malformed Sec-WebSocket-Key",
         "Send exactly one Sec-WebSocket-Key: 16 random bytes in base64 (24 characters).", ""},
        {426, "unsupported_websocket_version", "Sec-WebSocket-Version is not 13",
         "Only WebSocket protocol version 13 (RFC 6455) is supported: send "
         "'Sec-WebSocket-Version: 13'.",
         // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"},
        {403, "forbidden_origin", "Origin not allowed",
         "This Origin may not open WebSocket connections here; add it to the server's allowed "
         "origins.",
         ""},
        {400, "request_has_body", "upgrade request has a body",
         "A WebSocket upgrade request must not carry a body (Content-Length must be 0).", ""},
    };
    const auto i = static_cast<size_t>(e);
    return kTable[i < std::size(kTable) ? i : 0];
}

void put(char** p, std::string_view s) {
    std::memcpy(*p, s.data(), s.size());
    *p += s.size();
}

}  // namespace

void computeAcceptKey(std::string_view client_key, char out[28]) {
    // Our own SHA-1 (ws/sha1.h): libcrypto's digests would load OpenSSL's provider tables
    // on the first connection, 2.3 MB for the life of the process.
    Sha1 sha1;
    sha1.update(client_key.data(), client_key.size());
    sha1.update(kGuid.data(), kGuid.size());
    uint8_t digest[Sha1::kDigestSize];
    sha1.finish(digest);
    unsigned char b64[29];  // EVP_EncodeBlock writes 28 characters and a NUL (no provider)
    EVP_EncodeBlock(b64, digest, Sha1::kDigestSize);
    std::memcpy(out, b64, 28);
}

uint16_t statusFor(UpgradeError e) {
    return info(e).status;
}

std::string_view describe(UpgradeError e) {
    return info(e).reason;
}

UpgradeDecision evaluateUpgrade(const http::Request& req, const UpgradePolicy& policy) {
    UpgradeDecision d;
    auto refuse = [&d](UpgradeError e) {
        d.error = e;
        return d;
    };
    if (req.method != "GET") {
        return refuse(UpgradeError::kMethodNotAllowed);
    }
    if (req.version_minor == 0) {
        return refuse(UpgradeError::kBadHttpVersion);
    }
    const HandshakeFields f(req);
    if (!f.upgrade_websocket) {
        return refuse(UpgradeError::kNotUpgrade);
    }
    if (!f.connection_upgrade) {
        return refuse(UpgradeError::kMissingConnectionUpgrade);
    }
    if (f.host.empty()) {
        return refuse(UpgradeError::kMissingHost);
    }
    if (f.versions != 1 || f.version != "13") {
        return refuse(UpgradeError::kUnsupportedVersion);  // §4.2.2: 426 + the version we speak
    }
    if (f.keys != 1 || !isValidKey(f.key)) {
        return refuse(UpgradeError::kBadKey);
    }
    if (req.has_body) {
        return refuse(UpgradeError::kRequestHasBody);
    }
    if (!policy.allowed_origins.empty()) {
        bool allowed = false;
        if (f.origins == 1) {
            for (const std::string& o : policy.allowed_origins) {
                if (iequals(f.origin, o)) {
                    allowed = true;
                    break;
                }
            }
        }
        if (!allowed) {
            return refuse(UpgradeError::kForbiddenOrigin);
        }
    }
    // Subprotocol: the server's preference wins (see UpgradeDecision::subprotocol).
    if (f.protocols > 0) {
        for (const std::string& candidate : policy.subprotocols) {
            if (forEachElement(req, "sec-websocket-protocol",
                               [&](std::string_view offered) { return offered == candidate; })) {
                d.subprotocol = candidate;
                break;
            }
        }
    }
    if (policy.deflate.enabled && f.extensions > 0) {
        std::string joined;
        const std::string_view offers = joinFields(req, "sec-websocket-extensions", &joined);
        if (!offers.empty()) {
            d.deflate = negotiateDeflate(offers, policy.deflate, &d.extensions_header);
            if (!d.deflate) {
                d.extensions_header.clear();
            }
        }
    }
    computeAcceptKey(f.key, d.accept);
    return d;
}

size_t write101(const UpgradeDecision& d, char* out, size_t cap) {
    constexpr std::string_view kHead =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    constexpr std::string_view kProtocol = "Sec-WebSocket-Protocol: ";
    constexpr std::string_view kExtensions = "Sec-WebSocket-Extensions: ";
    constexpr std::string_view kCrlf = "\r\n";
    size_t size = kHead.size() + sizeof(d.accept) + kCrlf.size() + kCrlf.size();
    if (!d.subprotocol.empty()) {
        size += kProtocol.size() + d.subprotocol.size() + kCrlf.size();
    }
    if (!d.extensions_header.empty()) {
        size += kExtensions.size() + d.extensions_header.size() + kCrlf.size();
    }
    if (d.error != UpgradeError::kNone || size > cap) {
        return 0;
    }
    char* p = out;
    put(&p, kHead);
    put(&p, std::string_view(d.accept, sizeof(d.accept)));
    put(&p, kCrlf);
    if (!d.subprotocol.empty()) {
        put(&p, kProtocol);
        put(&p, d.subprotocol);
        put(&p, kCrlf);
    }
    if (!d.extensions_header.empty()) {
        put(&p, kExtensions);
        put(&p, d.extensions_header);
        put(&p, kCrlf);
    }
    put(&p, kCrlf);
    return size;
}

std::string buildRejection(UpgradeError e) {
    const ErrorInfo& i = info(e);
    std::string body;
    body.reserve(32 + i.code.size() + i.message.size());
    body.append("{\"error\":\"").append(i.code).append("\",\"message\":\"");
    body.append(i.message).append("\"}");
    return http::makeResponse(i.status, "application/json", body, i.headers, true);
}

std::string generateClientKey() {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        // The key only has to be unpredictable enough to defeat caches (RFC 6455 §10.3); if
        // the CSPRNG is unavailable, the OS entropy behind random_device will do.
        std::random_device rd;
        for (unsigned char& b : raw) {
            b = static_cast<unsigned char>(rd());
        }
    }
    unsigned char b64[25];  // 24 characters and the NUL EVP_EncodeBlock writes
    EVP_EncodeBlock(b64, raw, sizeof(raw));
    return std::string(reinterpret_cast<const char*>(b64), 24);
}

std::string buildClientRequest(std::string_view host_port, std::string_view path_and_query,
                               std::string_view key, std::span<const std::string> subprotocols,
                               bool offer_deflate, std::string_view origin) {
    std::string r;
    r.reserve(256 + host_port.size() + path_and_query.size() + origin.size());
    r.append("GET ").append(path_and_query.empty() ? "/" : path_and_query);
    r.append(" HTTP/1.1\r\nHost: ").append(host_port);
    r.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ").append(key);
    r.append("\r\nSec-WebSocket-Version: 13\r\n");
    if (!origin.empty()) {
        r.append("Origin: ").append(origin).append("\r\n");
    }
    if (!subprotocols.empty()) {
        r.append("Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < subprotocols.size(); ++i) {
            if (i > 0) {
                r.append(", ");
            }
            r.append(subprotocols[i]);
        }
        r.append("\r\n");
    }
    if (offer_deflate) {
        r.append("Sec-WebSocket-Extensions: ").append(clientDeflateOffer()).append("\r\n");
    }
    r.append("\r\n");
    return r;
}

ClientHandshakeResult validateServerResponse(const http::Response& resp, std::string_view key,
                                             std::span<const std::string> offered_subprotocols,
                                             bool offered_deflate) {
    ClientHandshakeResult r;
    r.status = resp.status;
    r.head_size = resp.head_size;
    auto fail = [&r](std::string why) {
        r.error = std::move(why);
        return r;
    };
    if (resp.status != 101) {
        return fail("server answered " + std::to_string(resp.status) + " " +
                    std::string(resp.reason) + " instead of 101 Switching Protocols");
    }
    if (countFields(resp, "upgrade") != 1 || !iequals(resp.header("upgrade"), "websocket")) {
        return fail("101 response without 'Upgrade: websocket'");
    }
    if (!resp.hasToken("connection", "upgrade")) {
        return fail("101 response without 'Connection: Upgrade'");
    }
    char expected[28];
    computeAcceptKey(key, expected);
    if (countFields(resp, "sec-websocket-accept") != 1 ||
        resp.header("sec-websocket-accept") != std::string_view(expected, sizeof(expected))) {
        return fail("Sec-WebSocket-Accept does not match our key");
    }
    const size_t protocols = countFields(resp, "sec-websocket-protocol");
    if (protocols > 1) {
        return fail("server sent several Sec-WebSocket-Protocol headers");
    }
    if (protocols == 1) {
        const std::string_view chosen = resp.header("sec-websocket-protocol");
        bool offered = false;
        for (const std::string& s : offered_subprotocols) {
            offered = offered || s == chosen;
        }
        if (!offered) {
            return fail("server chose subprotocol '" + std::string(chosen) +
                        "' which we did not offer");
        }
        r.subprotocol = std::string(chosen);
    }
    if (countFields(resp, "sec-websocket-extensions") > 0) {
        std::string joined;
        const std::string_view ext = joinFields(resp, "sec-websocket-extensions", &joined);
        if (!offered_deflate) {
            return fail("server enabled extensions we did not offer: " + std::string(ext));
        }
        r.deflate = parseDeflateResponse(ext);
        if (!r.deflate) {
            return fail("invalid permessage-deflate response: " + std::string(ext));
        }
    }
    r.ok = true;
    return r;
}

}  // namespace sb::ws
