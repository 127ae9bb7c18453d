// RFC 6455 §4 opening handshake, both roles: the server's decision on an upgrade request and
// its 101 / rejection responses, and the client's request and validation of the server's
// answer. Pure (no I/O); OpenSSL provides SHA-1, base64 and the client key's randomness.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/request.h"
#include "ws/deflate.h"

namespace sb::ws {

// Writes base64(SHA-1(client_key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) — exactly 28
// characters, not NUL-terminated — into out (RFC 6455 §4.2.2 step 5.4).
void computeAcceptKey(std::string_view client_key, char out[28]);

// What the server accepts. The spans are borrowed: they must outlive every UpgradeDecision
// made with this policy (the chosen subprotocol points into them).
struct UpgradePolicy {
    // Subprotocols in the server's order of preference; empty = the server speaks none and
    // never sends Sec-WebSocket-Protocol.
    std::span<const std::string> subprotocols;
    // Origins allowed to connect ("https://app.example.com"), compared ASCII case-insensitively
    // with the whole Origin header. Empty = any origin, or none. When not empty, a request
    // without Origin is refused too (403): a non-browser client must send one of the listed
    // origins.
    std::span<const std::string> allowed_origins;
    DeflateServerPolicy deflate;
};

// Why an upgrade request is refused; statusFor() gives the HTTP status, buildRejection() the
// whole response.
enum class UpgradeError : uint8_t {
    kNone = 0,
    kMethodNotAllowed,          // not GET (405, Allow: GET)
    kBadHttpVersion,            // HTTP/1.0 (400)
    kNotUpgrade,                // no "Upgrade: websocket" (426, Upgrade + Sec-WebSocket-Version)
    kMissingConnectionUpgrade,  // no "upgrade" token in Connection (400)
    kMissingHost,               // no or empty Host (400)
    kBadKey,                    // Sec-WebSocket-Key missing, repeated, or not 16 bytes in base64
    kUnsupportedVersion,        // Sec-WebSocket-Version missing or not 13 (426, same headers)
    kForbiddenOrigin,           // Origin not in the allowlist (403)
    kRequestHasBody,            // Content-Length > 0 on the upgrade request (400)
};

uint16_t statusFor(UpgradeError e);         // 101 for kNone
std::string_view describe(UpgradeError e);  // short human reason for logs

struct UpgradeDecision {
    UpgradeError error = UpgradeError::kNone;
    // Chosen subprotocol (a view into policy.subprotocols); empty = none. The server picks the
    // FIRST entry of ITS OWN preference list that the client offered in any of its
    // Sec-WebSocket-Protocol headers (exact, case-sensitive match); the client's order is
    // ignored. No match is not an error: the header is omitted and the client decides.
    std::string_view subprotocol;
    std::optional<DeflateParams> deflate;  // negotiated permessage-deflate parameters
    std::string extensions_header;         // Sec-WebSocket-Extensions value; empty = omit
    char accept[28] = {};                  // Sec-WebSocket-Accept (only when error == kNone)
};

// Checks an upgrade request against RFC 6455 §4.2.1 and the policy, in this order: method,
// HTTP version, Upgrade, Connection, Host, Sec-WebSocket-Version, Sec-WebSocket-Key, body,
// Origin; then negotiates the subprotocol and permessage-deflate (several
// Sec-WebSocket-Extensions headers are read as one list). The route (path) is the caller's.
UpgradeDecision evaluateUpgrade(const http::Request& req, const UpgradePolicy& policy);

// Writes the 101 response for an accepted decision into out and returns its size, or 0 if it
// does not fit in cap (256 bytes plus the subprotocol and extension values always do).
// Byte-exact: "HTTP/1.1 101 Switching Protocols", Upgrade, Connection, Sec-WebSocket-Accept,
// then Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when set; CRLF line ends.
size_t write101(const UpgradeDecision& d, char* out, size_t cap);

// A complete rejection response for e != kNone: JSON body
// {"error":"<snake_case name>","message":"<reason and how to fix>"} with Connection: close,
// plus Upgrade: websocket and Sec-WebSocket-Version: 13 on every 426 (RFC 9110 §15.5.22, RFC
// 6455 §4.4), Allow: GET on 405.
std::string buildRejection(UpgradeError e);

// --- Client role ---

// A fresh Sec-WebSocket-Key: 16 bytes from RAND_bytes, base64 (24 characters).
std::string generateClientKey();

// The upgrade request: GET path_and_query (empty = "/") with Host, Upgrade, Connection,
// Sec-WebSocket-Key, Sec-WebSocket-Version: 13, then Origin (when not empty),
// Sec-WebSocket-Protocol (our preference order, when any) and Sec-WebSocket-Extensions
// (clientDeflateOffer(), when offer_deflate).
std::string buildClientRequest(std::string_view host_port, std::string_view path_and_query,
                               std::string_view key, std::span<const std::string> subprotocols,
                               bool offer_deflate, std::string_view origin);

struct ClientHandshakeResult {
    bool ok = false;
    std::string error;        // why the handshake failed (for the user), empty when ok
    std::string subprotocol;  // the one the server chose, empty = none
    std::optional<DeflateParams> deflate;
    size_t head_size = 0;  // frames start at this offset of the received bytes
    uint16_t status = 0;
};

// Validates a complete response head (RFC 6455 §4.1 steps 1-6): status 101, Upgrade:
// websocket, Connection: upgrade, Sec-WebSocket-Accept matching `key`, at most one
// subprotocol and only one we offered, and extensions only a valid permessage-deflate we
// offered. Any failure means the client must fail the connection.
ClientHandshakeResult validateServerResponse(const http::Response& resp, std::string_view key,
                                             std::span<const std::string> offered_subprotocols,
                                             bool offered_deflate);

}  // namespace sb::ws
