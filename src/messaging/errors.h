// The messaging core's one error table: every refusal of a request has an Error, and each
// Error has its wire code (the "code" of an error reply), its HTTP status (the /api adapter)
// and what it means. Adapters look errors up here; none keeps a table of its own. Also the
// close codes the core asks a transport to close with.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sb::messaging {

enum class Error : uint8_t {
    kBadJson,           // not JSON, or not an object
    kBadRequest,        // a field is missing, has the wrong type or is out of range
    kUnknownType,       // "type" names no request
    kBadFrame,          // a binary frame where JSON text was expected
    kNotConnected,      // a request before connect
    kAlreadyConnected,  // a second connect on one connection
    kBadChannel,        // not a valid channel name
    kUnknownNamespace,  // the channel's namespace is not configured
    kAlreadySubscribed,
    kNotSubscribed,
    kLimitExceeded,     // messaging.max_subscriptions
    kPublishForbidden,  // client_publish = false in the namespace
    kDataTooLarge,      // the namespace's max_data_bytes
    kPresenceDisabled,
    kHistoryDisabled,
    kRateLimited,       // messaging.rate_limit
    kUnknownClient,     // /api/disconnect of a client that is not connected
    kUnauthorized,      // /api without the right key
    kApiDisabled,       // /api with no key configured
    kNotFound,          // an /api path that does not exist
    kTokenRequired,     // no connection token, and no namespace takes anonymous clients
    kInvalidToken,      // a token that does not verify (signature, exp, nbf, aud, iss, ...)
    kPermissionDenied,  // the namespace's access rules refuse this client the operation
    kUnavailable,       // the shared engine (Redis) cannot be reached: retry later
    kInternal,
};

struct ErrorInfo {
    std::string_view code;  // on the wire: the "code" of error replies, "error" of /api bodies
    uint16_t http_status;   // what the HTTP API answers with
    std::string_view meaning;
};

// The row of `e` (every Error has one).
const ErrorInfo& errorInfo(Error e);

// A refused request: what went wrong and a message that says how to fix it.
struct Failure {
    Error error = Error::kInternal;
    std::string message;
};

// Why the core ends a connection: the WebSocket close code and reason, and whether the client
// should reconnect (the native protocol sends them in a "disconnect" event first).
struct Disconnect {
    uint16_t code;
    std::string_view reason;
    bool reconnect;
};

// The outbound limit was passed (transport-enforced; the client recovers on reconnect).
inline constexpr Disconnect kSlowConsumer{4000, "slow consumer", true};
// Nothing heard from the client for websocket.idle_timeout.
inline constexpr Disconnect kHeartbeatTimeout{4001, "idle timeout", true};
// /api/disconnect (reconnect as the call says).
inline constexpr Disconnect kApiDisconnect{4003, "disconnected by the server", true};
// Another connection resumed this connection's session: the session moved there, so this one
// must not reconnect with it (two holders would take it from each other forever).
inline constexpr Disconnect kSessionTakenOver{4004, "session resumed by another connection", false};
// The connection token expired and no refresh came: reconnect with a new token.
inline constexpr Disconnect kTokenExpired{4005, "token expired", true};
// The client kept sending past the rate limit (RFC 6455 policy violation).
inline constexpr Disconnect kRateLimitAbuse{1008, "rate limit exceeded", false};

}  // namespace sb::messaging
