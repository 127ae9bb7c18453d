// The core's view of a connection: a Peer receives events (publications, joins, leaves) and
// can be told to disconnect. Each transport adapter implements it (/ws writes native JSON
// frames; SSE, long-polling and STOMP will be others); the core never knows which one it is.
#pragma once

#include <cstdint>
#include <string>

#include "broker/engine.h"
#include "messaging/errors.h"

namespace sb::messaging {

enum class PeerStatus : uint8_t {
    kSent,     // queued for the client (written or waiting in the transport's backlog)
    kDropped,  // not queued: the outbound limit is passed and the delivery was droppable
    kGone,     // not queued: the connection is closing (slow consumer, or already ended)
};

// One event for one subscriber.
struct Delivery {
    const broker::Event& event;
    // Publication only: something was skipped before it on this channel (drop policy,
    // max_unacked): the client learns it may have missed messages.
    bool gap = false;
    // Fan-out: scratch shared by every subscriber of this event on this loop whose peer has the
    // same scratch slot (Peer::scratchSlot), empty at first. An adapter may encode the event
    // into it once and reuse the bytes for the next subscribers (an adapter whose bytes depend
    // on the subscriber must not use it). Null for one-off deliveries (replay, gap), which the
    // adapter encodes each time.
    std::string* shared = nullptr;
};

// Called on the connection's loop thread only. Neither method may run an adapter callback
// (on_close) before returning: the transport reports the end later, at the end of the
// iteration, so the core may keep using the Client after a kGone.
class Peer {
public:
    // Delivery::shared is one scratch per event, loop and slot: adapters that encode an event
    // into different bytes (a WebSocket frame, an event-stream block) take different slots, or
    // a subscriber of one would be sent the other's bytes.
    static constexpr size_t kScratchSlots = 4;
    static constexpr uint8_t kWebSocketSlot = 0;    // a native JSON text frame (/ws)
    static constexpr uint8_t kEventStreamSlot = 1;  // a "data:" block (/sse)
    static constexpr uint8_t kStompSlot = 2;        // a STOMP MESSAGE's shared tail (v12.stomp)
    // The same native frame compressed by the loop's shared permessage-deflate compressor
    // (/ws connections for which transport::WebSocket::sharesFrames()).
    static constexpr uint8_t kDeflatedWebSocketSlot = 3;

    explicit Peer(uint8_t scratch_slot = kWebSocketSlot) : scratch_slot_(scratch_slot) {}
    virtual ~Peer() = default;
    uint8_t scratchSlot() const { return scratch_slot_; }
    // Queues one event. droppable: if the outbound limit would be passed, skip it (kDropped)
    // and keep the connection; otherwise the connection is a slow consumer and is closed.
    virtual PeerStatus deliver(const Delivery& d, bool droppable) = 0;
    // Ends the connection: tells the client why (in its protocol, if it can) and closes with
    // d.code. Idempotent.
    virtual void disconnect(const Disconnect& d) = 0;

private:
    uint8_t scratch_slot_;
};

}  // namespace sb::messaging
