// The native protocol's requests, whatever carries them: a /ws text frame, or the body of a
// POST tied to an SSE or long-polling session. Decodes one request (protocol::parseRequest),
// calls the messaging Hub, and answers through a RequestSink; what a subscribe or resume owes
// is replayed to the client's Peer after the reply. Also the small pieces every native adapter
// shares: event encoding, query parameters, request credentials.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "messaging/hub.h"
#include "protocol/codec.h"
#include "transport/websocket.h"

namespace sb::server {

// Where a request's answer goes. Loop thread of the client's connection.
class RequestSink {
public:
    virtual ~RequestSink() = default;
    virtual messaging::Client& client() = 0;
    virtual messaging::Stats& stats() = 0;
    // A reply (or error) to the request; false once the connection is gone.
    virtual bool reply(const std::string& json) = 0;
    // `connect` may be sent this way (a /ws frame; not a POST: the stream connects).
    virtual bool acceptsConnect() const { return true; }
    // The verified claims of the token that opened the connection, until connect uses them.
    virtual auth::Claims* handshakeClaims() { return nullptr; }
    virtual void clearHandshakeClaims() {}
    // After connect and refresh: the token's expiry changed.
    virtual void watchExpiry() {}
};

// Handles one request. `ping_interval_s` goes into `connected`.
void handleRequest(messaging::Hub& hub, RequestSink& sink, std::string_view frame,
                   uint32_t ping_interval_s);

// What a transport's send status is to the core (messaging::Peer::deliver): counts the bytes
// sent and, when the outbound limit (`limit`) was passed, the slow consumer (logged).
messaging::PeerStatus peerStatusOf(transport::SendStatus st, size_t payload,
                                   messaging::Stats& stats, const messaging::Client& c,
                                   size_t limit);

// Native JSON of an event.
void encodeEvent(std::string* out, const broker::Event& ev, bool gap);
// The `disconnect` of a graceful shutdown (1001, reconnect) with `reconnect_after_ms`: when
// this client should come back (server.reconnect_spread), so a node's clients do not all
// reconnect in the same instant.
std::string shutdownNotice(uint32_t reconnect_after_ms);

messaging::Error errorOf(protocol::ParseErrorKind k);

// The value of `name` in a query string (percent-decoded, '+' as space); empty if absent.
std::string queryParam(std::string_view query, std::string_view name);
// Every value of `name`, in order.
std::vector<std::string> queryParams(std::string_view query, std::string_view name);

// The credentials of a request: "Authorization: Bearer T" (RFC 6750 §2.1), else the "token"
// query parameter (browsers cannot set headers on a WebSocket or an EventSource).
std::string requestToken(const http::Request& req);

std::optional<broker::StreamPos> position(const std::optional<protocol::Since>& since);

}  // namespace sb::server
