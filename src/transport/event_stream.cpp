#include "transport/event_stream.h"

#include "base/log.h"

namespace sb::transport {

void StreamList::add(EventStream* s) {
    s->list = this;
    s->list_prev = nullptr;
    s->list_next = head;
    if (head != nullptr) {
        head->list_prev = s;
    }
    head = s;
    ++size;
}

void StreamList::remove(EventStream* s) {
    if (s->list_prev != nullptr) {
        s->list_prev->list_next = s->list_next;
    } else {
        head = s->list_next;
    }
    if (s->list_next != nullptr) {
        s->list_next->list_prev = s->list_prev;
    }
    s->list = nullptr;
    --size;
    if (global_count != nullptr) {
        global_count->fetch_sub(1, std::memory_order_relaxed);
    }
    if (on_remove != nullptr) {
        on_remove(this, s);
    }
}

EventStream::EventStream(loop::EventLoop* loop, const EventStreamBehavior* behavior)
    : net::StreamConn(loop, -1), behavior_(behavior) {
    TimerNode::fire = &EventStream::onTimer;
}

EventStream::~EventStream() {
    loop()->timers().cancel(this);
    if (list != nullptr) {
        list->remove(this);
    }
}

void EventStream::start() {
    last_tx_ms_ = loop()->nowMs();
    if (behavior_->heartbeat_ms > 0) {
        loop()->timers().schedule(this, behavior_->heartbeat_ms);
    }
    if (behavior_->on_open) {
        behavior_->on_open(*this);
    }
}

SendStatus EventStream::send(std::string_view bytes, bool droppable) {
    if (!isOpen()) {
        return SendStatus::kClosed;
    }
    const size_t queued = backlogBytes();
    // Nothing waiting: the peer keeps up, let even a large event go. Something waiting: the
    // limit holds.
    if (queued != 0 && queued + bytes.size() > behavior_->max_backlog) {
        if (droppable) {
            return SendStatus::kDropped;
        }
        SB_INFO("event stream fd=%d slow consumer: %zu bytes unsent (limit %zu): closing", fd(),
                queued, behavior_->max_backlog);
        if (!behavior_->over_limit_farewell.empty()) {
            write(behavior_->over_limit_farewell.data(), behavior_->over_limit_farewell.size());
        }
        end("slow consumer");
        return SendStatus::kOverLimit;
    }
    write(bytes.data(), bytes.size());
    last_tx_ms_ = loop()->nowMs();
    return backlogBytes() > 0 ? SendStatus::kQueued : SendStatus::kWritten;
}

void EventStream::end(std::string_view why) {
    if (ending_ || isClosed()) {
        return;
    }
    ending_ = true;
    notifyClose(why);
    shutdownWrite();  // the FIN follows the last queued byte
    loop()->timers().cancel(this);
    loop()->timers().schedule(this, behavior_->close_timeout_ms);
}

void EventStream::terminate(std::string_view why) {
    notifyClose(why);
    close();
}

void EventStream::onData(uint8_t* /*data*/, size_t /*len*/) {
    // A stream's client only listens; anything it sends (a pipelined request) is ignored.
}

void EventStream::onEof() {
    notifyClose("connection dropped");
    close();
}

void EventStream::onClosed() {
    loop()->timers().cancel(this);
    notifyClose("connection dropped");
}

void EventStream::onTimer(loop::TimerNode* node) {
    auto* self = static_cast<EventStream*>(node);
    if (self->isClosed()) {
        return;
    }
    if (self->ending_) {
        self->close();  // the peer did not close within close_timeout_ms
        return;
    }
    const uint64_t now = self->loop()->nowMs();
    const uint64_t every = self->behavior_->heartbeat_ms;
    if (now - self->last_tx_ms_ >= every) {
        // Droppable: a backlog means the peer is not reading, and the limit decides that.
        (void)self->send(self->behavior_->heartbeat, true);
        self->last_tx_ms_ = now;
    }
    self->loop()->timers().schedule(self, every - std::min(every, now - self->last_tx_ms_) + 1);
}

void EventStream::notifyClose(std::string_view why) {
    if (notified_) {
        return;
    }
    notified_ = true;
    if (!behavior_->on_close) {
        return;
    }
    // Never inside the call that decided the end: at the end of the iteration, before the
    // loop destroys the stream.
    loop()->defer([this, w = std::string(why)] { behavior_->on_close(*this, w); });
}

}  // namespace sb::transport
