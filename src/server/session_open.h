// Opening a messaging session over an HTTP transport (SSE, long-polling): what the opening
// request asks for (channels, a session to resume, positions to recover from, credentials),
// and connecting the core's Client so that each channel continues exactly from the client's
// last position — which may be behind what the session counted as sent, since events in
// flight are lost with a connection.
//
// Positions travel as an event id, "<session>|<channel>!<epoch>!<offset>|…" (channel names
// never contain '|' or '!', see protocol.md), in SSE's Last-Event-ID or a `lastEventId`
// parameter.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "messaging/hub.h"
#include "server/app.h"
#include "server/session_relay.h"
#include "transport/websocket.h"

namespace sb::server {

// Where a client stands: its session and, per channel, the last publication it received.
struct SessionPosition {
    std::string session;
    std::map<std::string, broker::StreamPos, std::less<>> channels;
};
// "<session>|<channel>!<epoch>!<offset>|…" (channels sorted by name, so an id is stable).
std::string encodeEventId(const SessionPosition& pos);
// Nullopt if malformed. An empty id is a position with nothing in it.
std::optional<SessionPosition> parseEventId(std::string_view id);

// What an opening request asks for.
struct SessionRequest final : transport::SocketData {
    std::unique_ptr<auth::Claims> claims;  // the verified token, if one came
    std::vector<std::string> channels;     // ?channel=… (repeatable)
    std::string user;
    std::string info;
    SessionPosition resume;  // Last-Event-ID / lastEventId, ?session=, ?since=…
};

// A refusal of an opening request (status 0: none).
struct SessionRefusal {
    uint16_t status = 0;
    std::string code;
    std::string message;
    std::string extra_headers;
};

// Reads and checks an opening request: its token (verified), its parameters. `require_target`:
// a channel or a session must be named.
SessionRefusal parseSessionRequest(const messaging::Hub& hub, const http::Request& req,
                                   bool require_target, SessionRequest* out);

// Connects `client` (its loop thread; Hub::open done) as `req` asks and writes, through
// `send`, `connected` and a `subscribed` or `error` per requested channel, then what each
// channel owes (Hub::replay). `pos` receives the session id and the positions the client
// resumes from. False if connect was refused (an `error` was sent).
bool openSession(messaging::Hub& hub, messaging::Client& client, SessionRequest& req,
                 uint32_t ping_interval_s, const std::function<bool(const std::string&)>& send,
                 SessionPosition* pos);

// A JSON error body ({"type":"error","code":…,"message":…}) with its status.
HttpReply jsonError(uint16_t status, messaging::Error e, std::string_view message);

// POST /sse, POST /poll: one native request (`body`) for the session the request names
// (?session= or X-Switchboard-Session), run on the loop of the connection that holds it and
// answered in the response. With auth on, the request carries the session user's token. A
// session that another node holds: the request is relayed there through `relay` (if set).
void postToSession(messaging::Hub& hub, const http::Request& req, std::string_view body,
                   HttpResponder responder, uint32_t ping_interval_s, SessionRelay* relay);
// How long a node waits for the node it relayed a POST to.
inline constexpr uint32_t kRelayPostTimeoutMs = 10'000;

// The checked POST `r` (its user verified) run for a session held on this node: false, with
// nothing answered, when no connection here holds it.
bool runSessionPost(messaging::Hub& hub, const RelayRequest& r, HttpResponder responder,
                    uint32_t ping_interval_s);

}  // namespace sb::server
