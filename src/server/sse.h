// The Server-Sent Events adapter: GET /sse streams a session's events as text/event-stream (the
// same native JSON as /ws, one `data:` line per event), and POST /sse takes the session's
// requests (subscribe, publish, ack, ...) as native JSON bodies. Each publication's `id:` holds
// the session and the position of every channel delivered so far, so an EventSource that
// reconnects with Last-Event-ID resumes its session and recovers each channel from exactly
// where it stopped, as a /ws client recovers with `since`.
//
//   GET /sse?channel=chat:a&channel=chat:b[&session=S][&token=JWT][&user=U]
//           [&since=chat:a!EPOCH!OFFSET][&lastEventId=ID]      (or the Last-Event-ID header)
//   POST /sse?session=S   {"type":"publish","id":1,"channel":"chat:a","data":…}
//
// Event ids and the opening parameters: server/session_open.h.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "messaging/hub.h"
#include "server/app.h"
#include "server/session_open.h"

namespace sb::server {

class Sse {
public:
    // `ping_interval_ms`: a {"type":"ping"} event when the stream was quiet that long (keeps
    // proxies from closing it and lets clients see the link is alive). The outbound limit is
    // messaging.outbound_limit, as for /ws.
    Sse(const messaging::Options& options, uint32_t ping_interval_ms);

    // GET and POST /sse (before App::listen); attach() gives the hub before the loops run.
    void registerRoutes(App& app);
    // `relay` (null: a single node) takes POSTs for sessions other nodes hold.
    // Before the loops run: each client's reconnect delay at a graceful shutdown.
    void setReconnectDelay(std::function<uint32_t()> fn) { reconnect_delay_ = std::move(fn); }
    void attach(messaging::Hub* hub, SessionRelay* relay) {
        hub_ = hub;
        relay_ = relay;
    }

    struct Connection;

private:
    StreamAccept checkRequest(const http::Request& req);
    void onOpen(transport::EventStream& es);
    void onClose(transport::EventStream& es);
    void onPost(const http::Request& req, std::string_view body, HttpResponder responder);

    transport::EventStreamBehavior behavior_;
    uint32_t ping_interval_s_;
    messaging::Hub* hub_ = nullptr;
    SessionRelay* relay_ = nullptr;
    std::function<uint32_t()> reconnect_delay_;
};

}  // namespace sb::server
