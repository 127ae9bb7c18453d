#include "messaging/errors.h"

#include <array>

namespace sb::messaging {

namespace {

// In the order of enum Error (checked below).
constexpr std::array<ErrorInfo, static_cast<size_t>(Error::kInternal) + 1> kTable = {{
    {"bad_json", 400, "the message is not a JSON object"},
    {"bad_request", 400, "a field is missing, of the wrong type or out of range"},
    {"unknown_type", 400, "the type names no request"},
    {"bad_frame", 400, "binary frame: send JSON in text frames"},
    {"not_connected", 400, "send connect first"},
    {"already_connected", 400, "this connection already sent connect"},
    {"bad_channel", 400, "not a valid channel name"},
    {"unknown_namespace", 404, "the channel's namespace is not configured"},
    {"already_subscribed", 409, "already subscribed to the channel"},
    {"not_subscribed", 409, "not subscribed to the channel"},
    {"limit_exceeded", 429, "too many subscriptions on one connection"},
    {"publish_forbidden", 403, "clients may not publish in this namespace"},
    {"data_too_large", 413, "data is larger than the namespace's max_data_bytes"},
    {"presence_disabled", 400, "presence is off in this namespace"},
    {"history_disabled", 400, "history is off in this namespace"},
    {"rate_limited", 429, "too many requests"},
    {"unknown_client", 404, "no connected client has this id"},
    {"unauthorized", 401, "missing or wrong API key"},
    {"api_disabled", 403, "no API key is configured"},
    {"not_found", 404, "no such API call"},
    {"token_required", 401, "this server needs a connection token (JWT)"},
    {"invalid_token", 401, "the token is malformed, forged, expired or for another audience"},
    {"permission_denied", 403, "the token does not allow this on this channel"},
    {"unavailable", 503, "the broker (Redis) is unreachable: retry shortly"},
    {"internal", 500, "internal error"},
}};

static_assert(kTable.back().code == "internal", "kTable follows enum Error");

}  // namespace

const ErrorInfo& errorInfo(Error e) {
    return kTable[static_cast<size_t>(e)];
}

}  // namespace sb::messaging
