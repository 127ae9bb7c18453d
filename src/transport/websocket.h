// A WebSocket connection on an event loop, server or client role: the RFC 6455 engine of
// src/ws (pure) driven by socket I/O. Owns the close handshake (RFC 6455 §7), server pings
// and the idle timeout, permessage-deflate state, and the slow-consumer limit.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "loop/timer_wheel.h"
#include "net/stream_conn.h"
#include "ws/deflate.h"
#include "ws/message_reader.h"
#include "ws/types.h"

namespace sb::transport {

class WebSocket;

// An intrusive list of live sockets kept by their owner (one per loop): graceful shutdown walks
// it. A socket unlinks itself when destroyed.
struct SocketList {
    WebSocket* head = nullptr;
    size_t size = 0;
    // Optional cross-loop total, decremented when a socket leaves (connection limits).
    std::atomic<size_t>* global_count = nullptr;
    // Optional: called when a socket leaves (the owner releases what owner_tag refers to).
    void (*on_remove)(SocketList* list, WebSocket* ws) = nullptr;
    void* owner = nullptr;
    void add(WebSocket* ws);
    void remove(WebSocket* ws);
};

// Settings and callbacks of one route (or one client), shared by all its connections; it must
// outlive them. Callbacks run on the connection's loop thread; each may call send()/end()/
// terminate() on the socket it is given, and may close it (destruction is deferred).
struct WebSocketBehavior {
    // Largest message accepted after reassembly and inflation; bigger → close 1009. 16 MiB
    // covers Autobahn 9.x; routes carrying small app messages should lower it.
    size_t max_message_size = 16u << 20;
    // Outbound bytes the kernel has not taken yet; past this the peer is a slow consumer and
    // is disconnected (close 1008 is impossible to deliver through a full pipe: TCP is cut).
    size_t max_backlog = 64u << 20;
    // Server pings every interval; a peer silent for idle_timeout is dropped (SPEC §3).
    uint32_t ping_interval_ms = 25'000;
    uint32_t idle_timeout_ms = 35'000;
    // After our close frame, how long we wait for the peer's close / TCP FIN.
    uint32_t close_timeout_ms = 5'000;
    // Close code sent when the idle timeout drops a connection.
    uint16_t idle_close_code = ws::close_code::kGoingAway;
    // With permessage-deflate, messages smaller than this go uncompressed (they rarely shrink).
    size_t compress_min_size = 64;

    std::function<void(WebSocket&)> on_open;
    // The payload is writable and valid only during the call (it may be the receive buffer).
    std::function<void(WebSocket&, ws::Opcode, std::span<uint8_t>)> on_message;
    // Once per connection, whatever ended it: the peer's close code, ours, or 1006.
    std::function<void(WebSocket&, uint16_t, std::string_view)> on_close;
    // The outbound backlog has drained (resume producing).
    std::function<void(WebSocket&)> on_drain;
};

class WebSocket final : public net::StreamConn, private loop::TimerNode {
public:
    // `deflate` set = permessage-deflate was negotiated with these parameters.
    WebSocket(loop::EventLoop* loop, int fd, const WebSocketBehavior* behavior, ws::Role role,
              std::optional<ws::DeflateParams> deflate);
    ~WebSocket() override;

    // Call once the connection is registered (attach/adoptFrom): arms timers, calls on_open.
    void start();

    // Sends one message (kText/kBinary). Compressed when negotiated and `compress`. No-op
    // after the close handshake started. A backlog past max_backlog disconnects the peer.
    // `fragment_size` > 0 splits the (compressed) payload into frames of at most that size.
    void send(ws::Opcode op, std::span<const uint8_t> payload, bool compress = true,
              size_t fragment_size = 0);
    void sendText(std::string_view text) {
        send(ws::Opcode::kText, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    }
    // Sends a message framed once for many receivers (fan-out): `frame` is the complete
    // unmasked server frame of `payload`. Connections that negotiated compression get
    // `payload` compressed instead. Server role only. No backlog check: the caller applies
    // its slow-consumer policy first.
    void sendPrepared(std::span<const uint8_t> frame, ws::Opcode op,
                      std::span<const uint8_t> payload);
    void ping(std::span<const uint8_t> payload = {});
    // Starts the closing handshake with `code` (kNoStatus = empty close frame).
    void end(uint16_t code = ws::close_code::kNormal, std::string_view reason = {});
    // Drops the TCP connection without a handshake; on_close gets 1006.
    void terminate();

    // Feeds bytes that arrived before this object owned the socket (e.g. frames pipelined
    // behind the upgrade request). Same contract as a read.
    void receive(uint8_t* data, size_t len) { onData(data, len); }

    bool isOpen() const { return state_ == State::kOpen; }
    bool compressionEnabled() const { return deflate_ != nullptr; }
    ws::Role role() const { return role_; }

    void* user_data = nullptr;
    // Links of the owner's SocketList (set by SocketList::add).
    WebSocket* list_prev = nullptr;
    WebSocket* list_next = nullptr;
    SocketList* list = nullptr;
    void* owner_tag = nullptr;  // the list owner's per-socket bookkeeping (e.g. per-IP slot)

    struct ReaderSink;

protected:
    void onData(uint8_t* data, size_t len) override;
    void onEof() override;
    void onClosed() override;
    void onDrained() override;

private:
    enum class State : uint8_t { kOpen, kClosingSent, kDone };
    struct Deflate;

    void sendFrame(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload, bool fin = true);
    void sendFragmented(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload,
                        size_t fragment_size);
    void sendClose(uint16_t code, std::string_view reason);
    void finishClose(uint16_t code, std::string_view reason);  // notify app, half-close, wait
    void notifyClose(uint16_t code, std::string_view reason);
    void checkBacklog();
    void armTimer(uint64_t delay_ms);
    static void onTimer(loop::TimerNode* node);

    // ReaderSink callbacks.
    bool handleMessage(ws::Opcode op, std::span<uint8_t> payload);
    bool handlePing(std::span<uint8_t> payload);
    void handlePeerClose(uint16_t code, std::string_view reason);
    void handleError(ws::WsError e);

    const WebSocketBehavior* behavior_;
    std::unique_ptr<Deflate> deflate_;  // null unless negotiated
    ws::MessageReader reader_;
    uint64_t last_rx_ms_ = 0;
    uint64_t next_ping_ms_ = 0;
    ws::Role role_;
    State state_ = State::kOpen;
    bool notified_ = false;
};

}  // namespace sb::transport
