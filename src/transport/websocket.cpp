#include "transport/websocket.h"

#include <sys/random.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/log.h"
#include "ws/frame.h"
#include "ws/mask.h"

namespace sb::transport {

// Compression state exists only for connections that negotiated it, and holds zlib streams
// only for directions with context takeover: without it, the loop's shared stream for the
// window size does the work (sharedInflater / sharedDeflater, reset after every message), so a
// connection keeps no zlib state between messages (a context is 256 KiB to compress at 15
// bits and ~40 KiB to inflate).
struct WebSocket::Deflate {
    // Window sizes of what this side inflates (the peer's direction) and compresses.
    uint8_t in_bits;
    uint8_t out_bits;
    std::unique_ptr<ws::Inflater> own_inflater;
    std::unique_ptr<ws::Deflater> own_deflater;
    Deflate(const ws::DeflateParams& p, ws::Role role) {
        const bool server = role == ws::Role::kServer;
        in_bits = server ? p.client_max_window_bits : p.server_max_window_bits;
        out_bits = server ? p.server_max_window_bits : p.client_max_window_bits;
        if (!(server ? p.client_no_context_takeover : p.server_no_context_takeover)) {
            own_inflater = std::make_unique<ws::Inflater>(in_bits, true);
        }
        if (!(server ? p.server_no_context_takeover : p.client_no_context_takeover)) {
            own_deflater = std::make_unique<ws::Deflater>(out_bits, true);
        }
    }
};

struct WebSocket::ReaderSink {
    WebSocket* ws;
    bool onMessage(ws::Opcode op, std::span<uint8_t> payload) {
        return ws->handleMessage(op, payload);
    }
    bool onPing(std::span<uint8_t> payload) { return ws->handlePing(payload); }
    bool onPong(std::span<uint8_t>) { return true; }
    void onClose(uint16_t code, std::string_view reason) { ws->handlePeerClose(code, reason); }
    void onError(ws::WsError e) { ws->handleError(e); }
};

// An idle plain WebSocket is this object and nothing else (its reader, deflate state and
// backlog stay empty until used): 200 bytes, a 208-byte malloc chunk. docs/benchmarks.md has
// the measured breakdown; keep new per-connection state behind a pointer that is null by
// default.
static_assert(sizeof(void*) != 8 || sizeof(WebSocket) <= 200,
              "idle WebSocket grew: keep rare state behind a pointer, allocated on first use");

namespace {

// Per-thread scratch for compressed or masked output; reused, so no allocation per message.
thread_local std::string t_scratch;

// Mask keys (client role): RFC 6455 §5.3 wants them unpredictable; refilled from the kernel
// CSPRNG in blocks so a frame costs no syscall.
void nextMaskKey(uint8_t key[4]) {
    thread_local uint8_t pool[4096];
    thread_local size_t pos = sizeof pool;
    if (pos == sizeof pool) {
        ssize_t n = getrandom(pool, sizeof pool, 0);
        (void)n;
        pos = 0;
    }
    std::memcpy(key, pool + pos, 4);
    pos += 4;
}

// The loop's zlib streams for directions without context takeover, one per window size in
// use, reset after every message (so no message depends on another connection's). A message
// is compressed or inflated whole, within one call, so sharing cannot interleave two.
ws::Inflater& sharedInflater(uint8_t window_bits) {
    thread_local std::unique_ptr<ws::Inflater> shared[8];  // window bits 8..15
    std::unique_ptr<ws::Inflater>& s = shared[(window_bits - 8) & 7];
    if (!s) {
        s = std::make_unique<ws::Inflater>(window_bits, false);
    }
    return *s;
}

// Messages up to this size are compressed by a stream with a 4 KiB hash table (mem_level 4)
// instead of zlib's default 64 KiB: the reset after each message zeroes the table, and for
// a small message zeroing 64 KiB costs more than the compression (measured: memset was 13% of
// the server's CPU in echo of 64-byte messages); a small input gains nothing from more hash.
constexpr size_t kSmallMessage = 4096;

ws::Deflater& sharedDeflater(uint8_t window_bits, size_t input_size) {
    thread_local std::unique_ptr<ws::Deflater> shared[2][8];  // [small][window bits 8..15]
    const bool small = input_size <= kSmallMessage;
    std::unique_ptr<ws::Deflater>& s = shared[small ? 1 : 0][(window_bits - 8) & 7];
    if (!s) {
        s = std::make_unique<ws::Deflater>(window_bits, false, small ? 4 : 8);
    }
    return *s;
}

const ws::ReaderConfig& readerConfig(const WebSocketBehavior* b, ws::Role role, bool deflate) {
    // ReaderConfig is a few bytes; one per (role, deflate) per thread avoids storing it in
    // every connection. max_message_size comes from the behavior each call.
    thread_local ws::ReaderConfig cfgs[4];
    ws::ReaderConfig& c = cfgs[(role == ws::Role::kClient ? 2 : 0) + (deflate ? 1 : 0)];
    c.role = role;
    c.compression = deflate;
    c.max_message_size = b->max_message_size;
    return c;
}

}  // namespace

WebSocket::WebSocket(loop::EventLoop* loop, int fd, const WebSocketBehavior* behavior,
                     ws::Role role, std::optional<ws::DeflateParams> deflate)
    : net::StreamConn(loop, fd), behavior_(behavior), role_(role) {
    if (deflate) {
        deflate_ = std::make_unique<Deflate>(*deflate, role);
    }
    TimerNode::fire = &WebSocket::onTimer;
}

WebSocket::~WebSocket() {
    loop()->timers().cancel(this);
    if (list != nullptr) {
        list->remove(this);
    }
}

void SocketList::add(WebSocket* ws) {
    ws->list = this;
    ws->list_prev = nullptr;
    ws->list_next = head;
    if (head != nullptr) {
        head->list_prev = ws;
    }
    head = ws;
    ++size;
}

void SocketList::remove(WebSocket* ws) {
    if (ws->list_prev != nullptr) {
        ws->list_prev->list_next = ws->list_next;
    } else {
        head = ws->list_next;
    }
    if (ws->list_next != nullptr) {
        ws->list_next->list_prev = ws->list_prev;
    }
    ws->list = nullptr;
    --size;
    if (global_count != nullptr) {
        global_count->fetch_sub(1, std::memory_order_relaxed);
    }
    if (on_remove != nullptr) {
        on_remove(this, ws);
    }
}

void WebSocket::start() {
    const uint32_t now = static_cast<uint32_t>(loop()->nowMs());
    last_rx_ms_ = now;
    next_ping_ms_ = now + behavior_->ping_interval_ms;
    if (behavior_->ping_interval_ms > 0) {
        armTimer(behavior_->ping_interval_ms);
    }
    if (behavior_->on_open) {
        behavior_->on_open(*this);
    }
}

void WebSocket::armTimer(uint64_t delay_ms) {
    loop()->timers().schedule(this, delay_ms);
}

void WebSocket::onTimer(loop::TimerNode* node) {
    auto* self = static_cast<WebSocket*>(node);
    if (self->isClosed()) {
        return;
    }
    // Low 32 bits of the loop clock, compared by wrap-safe differences (see last_rx_ms_).
    const uint32_t now = static_cast<uint32_t>(self->loop()->nowMs());
    if (self->state_ != State::kOpen) {
        // Close handshake timed out: the peer never answered or never closed TCP.
        self->notifyClose(ws::close_code::kAbnormal, "close handshake timed out");
        self->close();
        return;
    }
    const WebSocketBehavior* b = self->behavior_;
    const uint32_t silent_ms = now - self->last_rx_ms_;
    if (b->idle_timeout_ms > 0 && silent_ms >= b->idle_timeout_ms) {
        SB_DEBUG("websocket fd=%d silent for %u ms: closing", self->fd(), silent_ms);
        self->sendClose(b->idle_close_code, "idle timeout");
        self->notifyClose(b->idle_close_code, "idle timeout");
        self->uncork();  // the close frame goes out before the socket is closed
        self->close();
        return;
    }
    if (static_cast<int32_t>(now - self->next_ping_ms_) >= 0) {
        (void)self->ping();  // over the limit: the slow-consumer close is under way
        self->next_ping_ms_ = now + b->ping_interval_ms;
    }
    int64_t next_in = static_cast<int32_t>(self->next_ping_ms_ - now);
    if (b->idle_timeout_ms > 0) {
        next_in = std::min<int64_t>(next_in, int64_t{b->idle_timeout_ms} - silent_ms);
    }
    self->armTimer(next_in > 0 ? static_cast<uint64_t>(next_in) : 1);
}

void WebSocket::onData(uint8_t* data, size_t len) {
    last_rx_ms_ = static_cast<uint32_t>(loop()->nowMs());
    if (state_ == State::kDone) {
        return;  // after the close handshake: discard until the peer closes TCP
    }
    ReaderSink sink{this};
    reader_.consume(data, len, readerConfig(behavior_, role_, deflate_ != nullptr), inflater(),
                    sink);
}

bool WebSocket::handleMessage(ws::Opcode op, std::span<uint8_t> payload) {
    if (state_ != State::kOpen) {
        return state_ != State::kDone;  // RFC 6455 §7.1.2: data after our close is discarded
    }
    if (behavior_->on_message) {
        behavior_->on_message(*this, op, payload);
    }
    return !isClosed() && state_ != State::kDone;
}

bool WebSocket::handlePing(std::span<uint8_t> payload) {
    if (state_ != State::kOpen) {
        return !isClosed();
    }
    // A ping flood costs a pong each: count them per second of loop time (one byte of state,
    // no timer) and close a peer past the limit.
    const auto window = static_cast<uint8_t>(loop()->nowMs() / 1000);
    if (window != ping_window_) {
        ping_window_ = window;
        pings_ = 0;
    }
    if (++pings_ > behavior_->max_pings_per_s && behavior_->max_pings_per_s > 0) {
        SB_WARN("websocket fd=%d: too many pings (more than %u/s): closing %u", fd(),
                behavior_->max_pings_per_s, ws::close_code::kPolicyViolation);
        if (list != nullptr) {
            list->ping_floods.store(list->ping_floods.load(std::memory_order_relaxed) + 1,
                                    std::memory_order_relaxed);
        }
        sendClose(ws::close_code::kPolicyViolation, "too many pings");
        finishClose(ws::close_code::kPolicyViolation, "too many pings");
        return false;
    }
    // RFC 6455 §5.5.3; the pong counts against the outbound limit like any other byte.
    (void)sendFrame(ws::Opcode::kPong, false, payload);
    return isOpen();
}

void WebSocket::handlePeerClose(uint16_t code, std::string_view reason) {
    if (state_ == State::kOpen) {
        // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty close.
        sendClose(code, {});
    }
    finishClose(code, reason);
}

void WebSocket::handleError(ws::WsError e) {
    const uint16_t code = ws::closeCodeFor(e);
    SB_INFO("websocket fd=%d protocol error: %.*s (close %u)", fd(),
            static_cast<int>(ws::describe(e).size()), ws::describe(e).data(), code);
    if (state_ == State::kOpen) {
        sendClose(code, ws::describe(e));
    }
    finishClose(code, ws::describe(e));
}

void WebSocket::finishClose(uint16_t code, std::string_view reason) {
    state_ = State::kDone;
    notifyClose(code, reason);
    if (isClosed()) {
        return;
    }
    // RFC 6455 §7.1.1: the server closes TCP first. Half-close after our last byte, then wait
    // for the peer's FIN (bounded) so our close frame is not lost to a reset.
    shutdownWrite();
    armTimer(behavior_->close_timeout_ms);
}

void WebSocket::notifyClose(uint16_t code, std::string_view reason) {
    if (notified_) {
        return;
    }
    notified_ = true;
    if (!behavior_->on_close) {
        return;
    }
    // Never from inside the call that decided the end (a send that found a slow consumer, a
    // handler that called terminate()): the loop runs it once this iteration's work is done,
    // before it destroys the socket. The reason is copied: it may point into a frame.
    loop()->defer(
        [this, code, why = std::string(reason)] { behavior_->on_close(*this, code, why); });
}

void WebSocket::onEof() {
    notifyClose(ws::close_code::kAbnormal, "connection dropped");
    close();
}

void WebSocket::onClosed() {
    loop()->timers().cancel(this);
    notifyClose(ws::close_code::kAbnormal, "connection dropped");
}

void WebSocket::onDrained() {
    if (behavior_->on_drain && state_ == State::kOpen) {
        behavior_->on_drain(*this);
    }
}

SendStatus WebSocket::admit(size_t bytes, bool droppable) {
    if (state_ != State::kOpen || isClosed()) {
        return SendStatus::kClosed;
    }
    const size_t queued = backlogBytes();
    // Nothing waiting: the peer keeps up, let even a large message go (the kernel takes what it
    // can). Something waiting: the limit holds.
    if (queued == 0 || queued + bytes <= behavior_->max_backlog) {
        return SendStatus::kWritten;
    }
    if (droppable) {
        return SendStatus::kDropped;
    }
    closeSlowConsumer();
    return SendStatus::kOverLimit;
}

void WebSocket::closeSlowConsumer() {
    const uint16_t code = behavior_->over_limit_close_code;
    SB_INFO("websocket fd=%d slow consumer: %zu bytes unsent (limit %zu): closing %u", fd(),
            backlogBytes(), behavior_->max_backlog, code);
    // The farewell and the close frame go past the limit (a few hundred bytes at most); the
    // peer gets close_timeout_ms to read them before the TCP connection is dropped.
    if (!behavior_->over_limit_farewell.empty()) {
        const std::string& f = behavior_->over_limit_farewell;
        (void)sendFrame(ws::Opcode::kText, false,
                        {reinterpret_cast<const uint8_t*>(f.data()), f.size()});
    }
    sendClose(code, "slow consumer");
    state_ = State::kClosingSent;
    notifyClose(code, "slow consumer");
    armTimer(behavior_->close_timeout_ms);
}

SendStatus WebSocket::send(ws::Opcode op, std::span<const uint8_t> payload, SendOptions options) {
    if (state_ != State::kOpen || isClosed()) {
        return SendStatus::kClosed;
    }
    if (deflate_ && options.compress && payload.size() >= behavior_->compress_min_size) {
        if (options.droppable) {
            // Decided before compressing, on the largest size deflate can produce: with context
            // takeover, a message the peer never receives must not enter our sliding window.
            const size_t bound = payload.size() + (payload.size() >> 10) + 64;
            const SendStatus st = admit(bound + ws::kMaxFrameHeader, true);
            if (st != SendStatus::kWritten) {
                return st;
            }
        }
        std::string& out = t_scratch;
        out.clear();
        deflater(payload.size()).deflateMessage(payload, &out);
        // The compressed size is what is queued. Refused here means the connection closes,
        // so the deflater's advanced window no longer matters.
        const SendStatus st = admit(out.size() + ws::kMaxFrameHeader, false);
        if (st != SendStatus::kWritten) {
            return st;
        }
        sendFragmented(op, true, {reinterpret_cast<const uint8_t*>(out.data()), out.size()},
                       options.fragment_size);
        return status();
    }
    const SendStatus st = admit(payload.size() + ws::kMaxFrameHeader, options.droppable);
    if (st != SendStatus::kWritten) {
        return st;
    }
    sendFragmented(op, false, payload, options.fragment_size);
    return status();
}

void WebSocket::sendFragmented(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload,
                               size_t fragment_size) {
    if (fragment_size == 0 || payload.size() <= fragment_size) {
        (void)sendFrame(op, rsv1, payload);
        return;
    }
    // RFC 7692 §6.1: RSV1 marks only the first frame of a compressed message.
    size_t off = 0;
    while (off < payload.size()) {
        size_t n = std::min(fragment_size, payload.size() - off);
        const bool first = off == 0;
        (void)sendFrame(first ? op : ws::Opcode::kContinuation, first && rsv1,
                        payload.subspan(off, n), off + n == payload.size());
        off += n;
    }
}

SendStatus WebSocket::sendPrepared(std::span<const uint8_t> frame, ws::Opcode op,
                                   std::span<const uint8_t> payload, bool droppable) {
    if (deflate_ && payload.size() >= behavior_->compress_min_size) {
        return send(op, payload, SendOptions{.droppable = droppable});
    }
    return sendFrameBytes(frame, droppable);
}

ws::Inflater* WebSocket::inflater() const {
    if (!deflate_) {
        return nullptr;
    }
    return deflate_->own_inflater ? deflate_->own_inflater.get()
                                  : &sharedInflater(deflate_->in_bits);
}

ws::Deflater& WebSocket::deflater(size_t input_size) const {
    return deflate_->own_deflater ? *deflate_->own_deflater
                                  : sharedDeflater(deflate_->out_bits, input_size);
}

bool WebSocket::sharesFrames() const {
    return role_ == ws::Role::kServer && deflate_ && !deflate_->own_deflater &&
           deflate_->out_bits == 15;
}

void WebSocket::buildSharedFrame(const WebSocketBehavior& behavior, ws::Opcode op,
                                 std::span<const uint8_t> payload, std::string* frame) {
    uint8_t head[ws::kMaxFrameHeader];
    if (payload.size() < behavior.compress_min_size) {
        const size_t hl = ws::writeFrameHeader(head, op, true, false, payload.size(), nullptr);
        frame->append(reinterpret_cast<const char*>(head), hl);
        frame->append(reinterpret_cast<const char*>(payload.data()), payload.size());
        return;
    }
    std::string& out = t_scratch;
    out.clear();
    sharedDeflater(15, payload.size()).deflateMessage(payload, &out);
    // RFC 7692 §6.1: RSV1 on the (only) frame marks the message compressed.
    const size_t hl = ws::writeFrameHeader(head, op, true, true, out.size(), nullptr);
    frame->append(reinterpret_cast<const char*>(head), hl);
    frame->append(out);
}

SendStatus WebSocket::sendFrameBytes(std::span<const uint8_t> frame, bool droppable) {
    if (state_ != State::kOpen || isClosed()) {
        return SendStatus::kClosed;
    }
    const SendStatus st = admit(frame.size(), droppable);
    if (st != SendStatus::kWritten) {
        return st;
    }
    write(frame.data(), frame.size());
    return status();
}

SendStatus WebSocket::ping(std::span<const uint8_t> payload) {
    const SendStatus st = admit(payload.size() + ws::kMaxFrameHeader, false);
    if (st != SendStatus::kWritten) {
        return st;
    }
    (void)sendFrame(ws::Opcode::kPing, false, payload);
    return status();
}

void WebSocket::end(uint16_t code, std::string_view reason) {
    if (state_ != State::kOpen || isClosed()) {
        return;
    }
    sendClose(code, reason);
    state_ = State::kClosingSent;
    uncork();
    armTimer(behavior_->close_timeout_ms);
}

void WebSocket::terminate() {
    notifyClose(ws::close_code::kAbnormal, "terminated");
    close();
}

void WebSocket::sendClose(uint16_t code, std::string_view reason) {
    uint8_t payload[125];
    size_t n = ws::writeClosePayload(payload, code, reason);
    (void)sendFrame(ws::Opcode::kClose, false, {payload, n});  // past the limit: the last bytes
}

// Writes one frame; the caller has applied the outbound limit, except for pongs, which are
// checked here (they are the one frame the peer makes us send).
SendStatus WebSocket::sendFrame(ws::Opcode op, bool rsv1, std::span<const uint8_t> payload,
                                bool fin) {
    if (op == ws::Opcode::kPong) {
        const SendStatus st = admit(payload.size() + ws::kMaxFrameHeader, false);
        if (st != SendStatus::kWritten) {
            return st;
        }
    }
    uint8_t head[ws::kMaxFrameHeader];
    if (role_ == ws::Role::kServer) {
        size_t hl = ws::writeFrameHeader(head, op, fin, rsv1, payload.size(), nullptr);
        write2(head, hl, payload.data(), payload.size());
        return status();
    }
    // Client role: every frame is masked with a fresh key (RFC 6455 §5.3).
    uint8_t key[4];
    nextMaskKey(key);
    size_t hl = ws::writeFrameHeader(head, op, fin, rsv1, payload.size(), key);
    thread_local std::vector<uint8_t> masked;
    masked.resize(payload.size());
    ws::copyMasked(masked.data(), payload.data(), payload.size(), key);
    write2(head, hl, masked.data(), masked.size());
    return status();
}

}  // namespace sb::transport
