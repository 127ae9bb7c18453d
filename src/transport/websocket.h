// A WebSocket connection on an event loop, server or client role: the RFC 6455 engine of
// src/ws (pure) driven by socket I/O. Owns the connection's lifetime (close handshake, RFC 6455
// §7; ends reported once, outside any caller), server pings and the idle timeout,
// permessage-deflate state, and the outbound limit: the one place a slow consumer is cut off.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
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
    // Connections of this list closed 1008 for a ping flood (written by the list's loop, read
    // by any thread for metrics).
    std::atomic<uint64_t> ping_floods{0};
    void add(WebSocket* ws);
    void remove(WebSocket* ws);
};

// What a send did with the message.
enum class SendStatus : uint8_t {
    kWritten,    // in the cork or the kernel: nothing of it waits in this connection's backlog
    kQueued,     // accepted; some of it waits in the backlog (the peer reads slower than we send)
    kDropped,    // not queued: it would have passed the outbound limit and was sent droppable
    kOverLimit,  // not queued: the outbound limit is passed, the connection is being closed
    kClosed,     // not queued: the connection is closing or closed
};

// Accepted for delivery (written or queued).
inline bool sent(SendStatus s) {
    return s == SendStatus::kWritten || s == SendStatus::kQueued;
}

// Per-connection application state, owned by the socket and destroyed with it: after on_close
// has run, at the end of the loop iteration in which the connection ended — never inside a
// callback, so a handler that still holds a reference to it is always safe.
class SocketData {
public:
    virtual ~SocketData() = default;
};

// Settings and callbacks of one route (or one client), shared by all its connections; it must
// outlive them. Callbacks run on the connection's loop thread. on_message may call send()/end()/
// terminate() on the socket it is given; none of those runs a callback before returning.
struct WebSocketBehavior {
    // Largest message accepted after reassembly and inflation; bigger → close 1009. 16 MiB
    // covers Autobahn 9.x; routes carrying small app messages should lower it.
    size_t max_message_size = 16u << 20;
    // The outbound limit: bytes the kernel has not taken yet (this connection's backlog). Every
    // byte queued for the peer counts — messages, pongs, close frames. A send that would pass
    // it while bytes are already waiting is refused: dropped if the caller said it may be
    // dropped, else the peer is a slow consumer and the connection is closed with
    // over_limit_close_code (after over_limit_farewell). One message may pass it when nothing
    // waits (a large message to a reader that keeps up), so a connection holds at most this
    // plus one message. 64 MiB leaves room for Autobahn's 16 MiB messages on /echo; routes
    // whose messages are small should lower it.
    size_t max_backlog = 64u << 20;
    // Close code and reason for a slow consumer: 1008 (policy) unless the route's protocol has
    // its own. The close frame may never be read (the peer is not reading): the connection is
    // dropped close_timeout_ms later.
    uint16_t over_limit_close_code = ws::close_code::kPolicyViolation;
    // A text message queued right before that close frame (e.g. a protocol's own "disconnect"
    // event), allowed past the limit like the close frame. Empty: none.
    std::string over_limit_farewell;
    // Server pings every interval; a peer silent for idle_timeout is dropped.
    uint32_t ping_interval_ms = 25'000;
    uint32_t idle_timeout_ms = 35'000;
    // After our close frame, how long we wait for the peer's close / TCP FIN.
    uint32_t close_timeout_ms = 5'000;
    // Close code sent when the idle timeout drops a connection.
    uint16_t idle_close_code = ws::close_code::kGoingAway;
    // Pings a peer may send per second before it is closed with 1008 ("too many pings"): each
    // costs a pong, so a flood is work and outbound bytes for nothing. Keep-alive clients send
    // one every few seconds, and a test suite's back-to-back round trips stay within a few
    // hundred a second; 1,000/s is far above all of them (and 127 KB of pongs at most).
    uint16_t max_pings_per_s = 1000;
    // With permessage-deflate, messages smaller than this go uncompressed (they rarely shrink).
    size_t compress_min_size = 64;

    std::function<void(WebSocket&)> on_open;
    // The payload is writable and valid only during the call (it may be the receive buffer).
    std::function<void(WebSocket&, ws::Opcode, std::span<uint8_t>)> on_message;
    // Once per connection, whatever ended it: the peer's close code, ours, or 1006. Always
    // called at the end of the loop iteration in which the connection ended, outside any other
    // callback or call on this socket; the socket (and its SocketData) is destroyed right after.
    std::function<void(WebSocket&, uint16_t, std::string_view)> on_close;
    // The outbound backlog has drained (resume producing).
    std::function<void(WebSocket&)> on_drain;
    // The server's graceful shutdown, just before its 1001 close: the adapter may tell the
    // client more in its own protocol (the native one: when to reconnect). Loop thread.
    std::function<void(WebSocket&)> on_shutdown;
};

// How a message is sent.
struct SendOptions {
    bool compress = true;      // compress if permessage-deflate was negotiated
    size_t fragment_size = 0;  // > 0: split the (compressed) payload into frames of this size
    bool droppable = false;    // past the outbound limit: drop it (kDropped), keep the peer
};

class WebSocket final : public net::StreamConn, private loop::TimerNode {
public:
    // `deflate` set = permessage-deflate was negotiated with these parameters.
    WebSocket(loop::EventLoop* loop, int fd, const WebSocketBehavior* behavior, ws::Role role,
              std::optional<ws::DeflateParams> deflate);
    ~WebSocket() override;

    // Call once the connection is registered (attach/adoptFrom): arms timers, calls on_open.
    void start();

    // Sends one message (kText/kBinary) under the outbound limit (see
    // WebSocketBehavior::max_backlog). Never runs a callback: a slow consumer is closed with
    // its on_close at the end of the iteration.
    SendStatus send(ws::Opcode op, std::span<const uint8_t> payload, SendOptions options = {});
    SendStatus sendText(std::string_view text, SendOptions options = {}) {
        return send(ws::Opcode::kText, {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                    options);
    }
    // Sends a message framed once for many receivers (fan-out): `frame` is the complete
    // unmasked server frame of `payload`. Connections that negotiated compression get
    // `payload` compressed instead. Server role only. Same limit and statuses as send().
    SendStatus sendPrepared(std::span<const uint8_t> frame, ws::Opcode op,
                            std::span<const uint8_t> payload, bool droppable = false);
    // True for a server connection whose permessage-deflate runs without server context
    // takeover at the full 15-bit window: what it sends for a message does not depend on the
    // connection, so fan-out builds the frame once per loop (buildSharedFrame) and writes the
    // same bytes to every such connection (sendFrameBytes) instead of compressing per
    // subscriber.
    bool sharesFrames() const;
    // Appends to *frame the frame a sharesFrames() connection of `behavior` sends for
    // `payload`: compressed by the loop's shared compressor, or plain below
    // behavior.compress_min_size. Loop thread only.
    static void buildSharedFrame(const WebSocketBehavior& behavior, ws::Opcode op,
                                 std::span<const uint8_t> payload, std::string* frame);
    // Queues complete server frame bytes as they are. Same limit and statuses as send().
    SendStatus sendFrameBytes(std::span<const uint8_t> frame, bool droppable = false);
    SendStatus ping(std::span<const uint8_t> payload = {});
    // Starts the closing handshake with `code` (kNoStatus = empty close frame).
    void end(uint16_t code = ws::close_code::kNormal, std::string_view reason = {});
    // Drops the TCP connection without a handshake; on_close gets 1006 (at the end of the
    // iteration).
    void terminate();

    // Feeds bytes that arrived before this object owned the socket (e.g. frames pipelined
    // behind the upgrade request). Same contract as a read.
    void receive(uint8_t* data, size_t len) { onData(data, len); }

    bool isOpen() const { return state_ == State::kOpen && !isClosed(); }
    bool compressionEnabled() const { return deflate_ != nullptr; }
    ws::Role role() const { return role_; }
    const WebSocketBehavior& behavior() const { return *behavior_; }

    // The application's per-connection state (owned; see SocketData).
    void setData(std::unique_ptr<SocketData> data) { data_ = std::move(data); }
    template <class T>
    T* data() const {
        return static_cast<T*>(data_.get());
    }

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

    // The outbound limit for `bytes` more: kWritten if they may go, else what to return (after
    // starting the slow-consumer close for a non-droppable send).
    SendStatus admit(size_t bytes, bool droppable);
    // The zlib streams for this connection's messages (deflate_ set): its own, or the loop's
    // shared one for a direction without context takeover (for deflater, the one for
    // messages of input_size bytes). inflater() is null without compression.
    ws::Inflater* inflater() const;
    ws::Deflater& deflater(size_t input_size) const;
    SendStatus sendFrame(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload,
                         bool fin = true);
    void sendFragmented(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload,
                        size_t fragment_size);
    void sendClose(uint16_t code, std::string_view reason);
    void closeSlowConsumer();
    void finishClose(uint16_t code, std::string_view reason);  // notify app, half-close, wait
    // Reports the end to the app (on_close) at the end of this iteration; once.
    void notifyClose(uint16_t code, std::string_view reason);
    void armTimer(uint64_t delay_ms);
    static void onTimer(loop::TimerNode* node);
    SendStatus status() const {
        return backlogBytes() > 0 ? SendStatus::kQueued : SendStatus::kWritten;
    }

    // ReaderSink callbacks.
    bool handleMessage(ws::Opcode op, std::span<uint8_t> payload);
    bool handlePing(std::span<uint8_t> payload);
    void handlePeerClose(uint16_t code, std::string_view reason);
    void handleError(ws::WsError e);

    const WebSocketBehavior* behavior_;
    std::unique_ptr<Deflate> deflate_;  // null unless negotiated
    std::unique_ptr<SocketData> data_;
    ws::MessageReader reader_;
    // The low 32 bits of the loop's millisecond clock, compared only by differences (wrap-
    // safe for intervals under 24 days; ping and idle intervals are seconds): 8 bytes less per
    // connection than two 64-bit times.
    uint32_t last_rx_ms_ = 0;
    uint32_t next_ping_ms_ = 0;
    ws::Role role_;
    State state_ = State::kOpen;
    bool notified_ = false;
    uint8_t ping_window_ = 0;  // low bits of the second the ping count is for
    uint16_t pings_ = 0;       // pings received in that second
};

}  // namespace sb::transport
