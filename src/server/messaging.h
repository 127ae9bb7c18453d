// The messaging service as the server runs it: the transport-neutral core (messaging::Hub)
// with its adapters — the native protocol at /ws (NativeWs), STOMP on /ws by subprotocol
// (StompWs), the HTTP API under /api/
// (HttpApi) — and /metrics. Construct before App::listen (it registers the routes), attach()
// after (the Hub needs the loops).
#pragma once

#include <functional>
#include <memory>

#include "messaging/hub.h"
#include "server/app.h"
#include "server/http_api.h"
#include "server/native_ws.h"
#include "server/poll.h"
#include "server/settings.h"
#include "server/sse.h"
#include "server/stomp_ws.h"

namespace sb::server {

class Messaging {
public:
    // `base`: the [websocket] timers for /ws.
    // `broker`: the engine attach() builds.
    Messaging(App& app, messaging::Options options, const transport::WebSocketBehavior& base,
              const ws::DeflateServerPolicy& deflate, BrokerConfig broker = {});
    ~Messaging();

    // After App::listen(): builds the engine and the Hub on the App's loops, loads the auth
    // keys and starts its housekeeping. Error: an auth key file is unreadable or invalid, or
    // the engine's settings are (says which). A Redis that does not answer yet is no error:
    // the node starts not ready and connects when it can.
    base::Result<void> attach();

    // Any thread (SIGHUP): auth keys, namespaces for new subscriptions and publishes, and the
    // API key. Bad key files keep the running keys (logged).
    void reload(const messaging::Options& fresh);

    messaging::Hub& hub() { return *hub_; }
    bool attached() const { return hub_ != nullptr; }
    // Open long-polling sessions (any thread), for the /admin dashboard.
    uint64_t pollSessions() const { return poll_.sessions(); }

private:
    App& app_;
    messaging::Options options_;
    BrokerConfig broker_;
    uint32_t ping_interval_s_;  // [websocket] ping_interval: in `connected` on every transport
    NativeWs native_;
    StompWs stomp_;  // STOMP on /ws, by subprotocol
    Sse sse_;
    Poll poll_;
    HttpApi api_;
    std::unique_ptr<SessionRelay> relay_;  // a shared engine: requests for other nodes' sessions
    std::unique_ptr<messaging::Hub> hub_;  // destroyed first
};

}  // namespace sb::server
