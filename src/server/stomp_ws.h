// The STOMP adapter: /ws when the handshake negotiates v12.stomp, v11.stomp or v10.stomp.
// Decodes STOMP frames (protocol/stomp_codec.h), calls the messaging Hub, and writes server
// frames; its connections are messaging::Peers under the same outbound limit as /ws. The
// mapping of STOMP onto channels, acks and transactions is docs/stomp.md.
#pragma once

#include <cstdint>

#include "messaging/hub.h"
#include "protocol/stomp_codec.h"
#include "server/app.h"

namespace sb::server {

class StompWs {
public:
    // Heart-beats: the server can send one every kHeartbeatFloorMs and wants one from the
    // client at most that often (CONNECTED "heart-beat:500,500"); the negotiated intervals
    // are the larger of the two sides' values, per the spec.
    static constexpr uint32_t kHeartbeatFloorMs = 500;
    // A client that promised heart-beats every N ms is closed (4001) after N + max(N, 1 s)
    // without a byte from it.
    static constexpr uint32_t kHeartbeatGraceMinMs = 1000;
    // MESSAGEs sent and not acknowledged, per subscription with ack client or
    // client-individual; past it the oldest is forgotten (its ACK or NACK does nothing).
    static constexpr size_t kMaxUnacked = 1000;
    // Open transactions per connection, and SEND/ACK/NACK frames buffered per transaction.
    static constexpr size_t kMaxTransactions = 16;
    static constexpr size_t kMaxTransactionFrames = 1000;
    // CONNECT must come this soon after the upgrade (which STOMP accepts without credentials,
    // since CONNECT carries them): an idle unauthenticated socket is not kept.
    static constexpr uint32_t kConnectTimeoutMs = 10'000;

    // `base`: the [websocket] timers (pings, idle, close); the message size and outbound
    // limit come from `options` as on /ws. `hub` is set by attach() before the loops run.
    StompWs(const messaging::Options& options, const transport::WebSocketBehavior& base);

    // Adds STOMP to a /ws route: its subprotocols after the route's own (so a client offering
    // both gets the route's), each served by a variant with STOMP's behavior.
    void addTo(WsRoute* route);
    // After App::listen: the hub every connection talks to.
    void attach(messaging::Hub* hub) { hub_ = hub; }

    struct Connection;

private:
    // A token on the upgrade request (Authorization: Bearer, ?token=) is verified here, as on
    // /ws; without one the upgrade is accepted, since STOMP clients send credentials in
    // CONNECT (browsers cannot set headers on a WebSocket).
    UpgradeCheck checkUpgrade(const http::Request& req);
    void onOpen(transport::WebSocket& ws, protocol::stomp::Version max);
    void onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data);
    void onClose(transport::WebSocket& ws, uint16_t code);

    transport::WebSocketBehavior behavior_;
    protocol::stomp::Limits limits_;
    size_t transaction_bytes_;  // buffered SEND bodies per transaction: the outbound limit
    messaging::Hub* hub_ = nullptr;
};

}  // namespace sb::server
