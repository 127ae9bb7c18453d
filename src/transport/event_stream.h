// A long-lived HTTP response on an event loop, after its head was written: Server-Sent Events
// (text/event-stream) or any other stream of bytes the adapter encodes. Owns the connection's
// lifetime (ends reported once, at the end of the loop iteration, outside any caller), the
// heartbeat that keeps proxies from closing an idle stream, and the outbound limit: the one
// place a slow stream consumer is cut off. The peer sends nothing after its request; bytes it
// sends anyway are discarded.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "loop/timer_wheel.h"
#include "net/stream_conn.h"
#include "transport/websocket.h"

namespace sb::transport {

class EventStream;

// An intrusive list of live streams kept by their owner (one per loop), as SocketList is for
// WebSockets: graceful shutdown walks it; a stream unlinks itself when destroyed.
struct StreamList {
    EventStream* head = nullptr;
    size_t size = 0;
    std::atomic<size_t>* global_count = nullptr;
    void (*on_remove)(StreamList* list, EventStream* s) = nullptr;
    void* owner = nullptr;
    void add(EventStream* s);
    void remove(EventStream* s);
};

// Settings and callbacks of one route, shared by its streams; must outlive them. Callbacks run
// on the stream's loop thread; none runs inside a call on the stream (send/end/terminate).
struct EventStreamBehavior {
    // Bytes the kernel has not taken yet. A send that would pass it while bytes already wait is
    // refused: dropped if droppable, else the stream is a slow consumer and is closed (after
    // `over_limit_farewell`, which may pass the limit). 1 MiB: thousands of small events.
    size_t max_backlog = 1u << 20;
    std::string over_limit_farewell;
    // When nothing was sent for this long, `heartbeat` is sent: proxies and browsers drop a
    // silent stream after 30-120 s, and a write is how a dead peer is noticed. 0 = never.
    uint32_t heartbeat_ms = 15'000;
    std::string heartbeat = ":\n\n";  // an SSE comment: ignored by every EventSource
    // After end(): how long the peer gets to read what is left before the socket is dropped.
    uint32_t close_timeout_ms = 5'000;
    std::function<void(EventStream&)> on_open;
    // Once per stream, whatever ended it (`why`: "closed", "slow consumer", "connection
    // dropped", ...), at the end of the iteration; the stream and its data are destroyed after.
    std::function<void(EventStream&, std::string_view why)> on_close;
    // Server shutdown: say goodbye in the stream's protocol, then end(). Unset: end().
    std::function<void(EventStream&)> on_shutdown;
};

class EventStream final : public net::StreamConn, private loop::TimerNode {
public:
    EventStream(loop::EventLoop* loop, const EventStreamBehavior* behavior);
    ~EventStream() override;

    // Once registered (adoptFrom): arms the heartbeat, calls on_open.
    void start();
    // Queues bytes under the outbound limit (see EventStreamBehavior::max_backlog).
    SendStatus send(std::string_view bytes, bool droppable = false);
    // Flushes what is queued, half-closes, and drops the socket once the peer closed or after
    // close_timeout_ms. on_close follows at the end of the iteration.
    void end(std::string_view why = "closed");
    // Closes now (queued bytes are lost).
    void terminate(std::string_view why = "terminated");
    bool isOpen() const { return !ending_ && !isClosed(); }
    const EventStreamBehavior& behavior() const { return *behavior_; }

    void setData(std::unique_ptr<SocketData> data) { data_ = std::move(data); }
    template <class T>
    T* data() const {
        return static_cast<T*>(data_.get());
    }

    EventStream* list_prev = nullptr;
    EventStream* list_next = nullptr;
    StreamList* list = nullptr;
    void* owner_tag = nullptr;  // the list owner's per-stream bookkeeping (per-IP slot)

protected:
    void onData(uint8_t* data, size_t len) override;
    void onEof() override;
    void onClosed() override;

private:
    static void onTimer(loop::TimerNode* node);
    void notifyClose(std::string_view why);

    const EventStreamBehavior* behavior_;
    std::unique_ptr<SocketData> data_;
    uint64_t last_tx_ms_ = 0;
    bool ending_ = false;
    bool notified_ = false;
};

}  // namespace sb::transport
