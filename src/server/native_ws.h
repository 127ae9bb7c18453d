// The native protocol adapter: /ws, subprotocol switchboard.v1.json. Decodes requests
// (protocol::parseRequest), calls the messaging Hub, encodes replies and events as native JSON
// frames. Its connections are messaging::Peers; the transport underneath enforces the outbound
// limit (messaging.outbound_limit) and closes a slow consumer with 4000.
#pragma once

#include <cstdint>
#include <functional>

#include "messaging/hub.h"
#include "server/app.h"

namespace sb::server {

class NativeWs {
public:
    // `base`: the [websocket] timers (pings, idle, close); the message size and outbound limit
    // come from `options` (messaging.max_message_size, messaging.outbound_limit). `hub` is
    // set by attach() before the loops run.
    NativeWs(const messaging::Options& options, const transport::WebSocketBehavior& base,
             const ws::DeflateServerPolicy& deflate);

    // The route to register at /ws (before App::listen).
    WsRoute route();
    // After App::listen: the hub every connection talks to.
    void attach(messaging::Hub* hub) { hub_ = hub; }
    // Before the loops run: each client's reconnect delay at a graceful shutdown
    // (App::reconnectDelayMs).
    void setReconnectDelay(std::function<uint32_t()> fn) { reconnect_delay_ = std::move(fn); }

    struct Connection;

private:
    // The upgrade's credentials: a bad token is refused 401 before any WebSocket exists.
    UpgradeCheck checkUpgrade(const http::Request& req);
    void onOpen(transport::WebSocket& ws);
    void onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data);
    void onClose(transport::WebSocket& ws, uint16_t code);

    transport::WebSocketBehavior behavior_;
    ws::DeflateServerPolicy deflate_;
    uint32_t ping_interval_s_;
    messaging::Hub* hub_ = nullptr;
    std::function<uint32_t()> reconnect_delay_;
};

}  // namespace sb::server
