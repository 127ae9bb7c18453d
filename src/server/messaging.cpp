#include "server/messaging.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <mutex>

#include "base/log.h"
#include "broker/memory_engine.h"
#include "loop/event_loop.h"
#include "loop/timer_wheel.h"
#include "net/stream_conn.h"
#include "protocol/codec.h"
#include "server/options.h"
#include "ws/frame.h"

namespace sb::server {

using broker::NamespaceOptions;

namespace {

constexpr uint32_t kAbuseErrors = 20;  // rate_limited errors in a row → close 1008
constexpr uint16_t kCloseSlowConsumer = 4000;
constexpr uint16_t kCloseHeartbeat = 4001;
constexpr uint16_t kCloseApiDisconnect = 4003;

uint64_t nowMs() {
    return loop::EventLoop::monotonicMs();
}

uint64_t nowUs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

thread_local std::string t_json;

// A complete unmasked server text frame around `json` (fan-out: built once per loop).
void frameText(std::string* frame, std::string_view json) {
    uint8_t head[ws::kMaxFrameHeader];
    size_t hl = ws::writeFrameHeader(head, ws::Opcode::kText, true, false, json.size(), nullptr);
    frame->assign(reinterpret_cast<char*>(head), hl);
    frame->append(json);
}

std::span<const uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

base::Result<NamespaceMap> resolveNamespaces(
    const std::map<std::string, std::map<std::string, std::string>>& raw) {
    NamespaceMap out;
    out.emplace("default", NamespaceOptions{});
    for (const auto& entry : raw) {
        // Named references, not structured bindings: clang 14 cannot capture those.
        const std::string& name = entry.first;
        const auto& opts = entry.second;
        std::string_view ns_view;
        std::string probe = name + ":x";
        if (!protocol::splitChannel(probe, &ns_view, nullptr) || ns_view != name) {
            return base::fail("namespace '" + name + "': names are [a-z0-9_-]{1,64}");
        }
        NamespaceOptions o;
        for (const auto& kv : opts) {
            const std::string& key = kv.first;
            const std::string& value = kv.second;
            auto bad = [&](const std::string& why) {
                return base::fail("namespaces." + name + "." + key + ": " + why);
            };
            auto boolean = [&](bool* dst) -> bool {
                if (value != "true" && value != "false")
                    return false;
                *dst = value == "true";
                return true;
            };
            auto number = [&](size_t* dst) -> bool {
                auto r = parseSize(value);
                if (!r)
                    return false;
                *dst = *r;
                return true;
            };
            auto duration = [&](uint64_t* dst) -> bool {
                auto r = parseDurationMs(value);
                if (!r)
                    return false;
                *dst = *r;
                return true;
            };
            bool ok = true;
            if (key == "presence")
                ok = boolean(&o.presence);
            else if (key == "join_leave")
                ok = boolean(&o.join_leave);
            else if (key == "history_size")
                ok = number(&o.history_size);
            else if (key == "history_ttl")
                ok = duration(&o.history_ttl_ms);
            else if (key == "client_publish")
                ok = boolean(&o.client_publish);
            else if (key == "max_data_bytes")
                ok = number(&o.max_data_bytes);
            else if (key == "max_unacked")
                ok = number(&o.max_unacked);
            else if (key == "session_ttl")
                ok = duration(&o.session_ttl_ms);
            else if (key == "idempotency_window")
                ok = duration(&o.idempotency_window_ms);
            else if (key == "delivery") {
                if (value == "at_most_once")
                    o.delivery = NamespaceOptions::Delivery::kAtMostOnce;
                else if (value == "at_least_once")
                    o.delivery = NamespaceOptions::Delivery::kAtLeastOnce;
                else
                    return bad("'" + value + "' is not at_most_once or at_least_once");
            } else if (key == "slow_consumer") {
                if (value == "disconnect")
                    o.slow_consumer = NamespaceOptions::SlowConsumer::kDisconnect;
                else if (value == "drop")
                    o.slow_consumer = NamespaceOptions::SlowConsumer::kDrop;
                else
                    return bad("'" + value + "' is not disconnect or drop");
            } else {
                return bad("unknown option");
            }
            if (!ok)
                return bad("'" + value + "' is not a valid value");
        }
        if (o.delivery == NamespaceOptions::Delivery::kAtLeastOnce && o.history_size == 0) {
            // Resume replays what was published while the client was away from history.
            o.history_size = 1000;
        }
        out[name] = o;
    }
    return out;
}

// ---- Per-connection and per-loop state ------------------------------------------------------

struct Messaging::Conn {
    struct Sub {
        std::string channel;
        const NamespaceOptions* ns;
        std::string epoch;
        uint64_t last_offset = 0;  // highest offset written to this subscriber
        bool gap = false;          // drop policy skipped something: next message says gap:true
    };
    transport::WebSocket* ws = nullptr;
    LoopHub* hub = nullptr;
    std::string client_id;
    std::string session_id;
    std::shared_ptr<const broker::ClientInfo> info;
    std::vector<std::unique_ptr<Sub>> subs;
    double tokens = 0;
    uint64_t refill_ms = 0;
    uint32_t limited_in_row = 0;
    bool connected = false;
    bool closing = false;

    Sub* find(std::string_view channel) {
        for (auto& s : subs) {
            if (s->channel == channel)
                return s.get();
        }
        return nullptr;
    }
};

struct Messaging::LoopHub {
    struct Local {
        Conn* conn;
        Conn::Sub* sub;
    };
    Messaging* m = nullptr;
    loop::EventLoop* loop = nullptr;
    uint32_t id = 0;
    std::mutex mu;
    std::vector<broker::Event> queue;  // guarded by mu
    bool scheduled = false;            // guarded by mu: a drain task is posted
    bool local_pending = false;        // loop thread only: drain at the end of this iteration
    std::unordered_map<std::string, std::vector<Local>> channels;  // loop thread only
    std::unordered_map<std::string, Conn*> clients;                // loop thread only
    // Drain scratch, reused every iteration (no allocation per delivery in steady state).
    std::vector<broker::Event> batch;
    std::vector<std::string> frames;
    std::vector<std::string> jsons;
    struct Item {
        Conn* conn;
        Conn::Sub* sub;
        uint32_t event;
    };
    std::vector<Item> items;
    std::vector<uint32_t> delivered;  // per event of the batch: subscribers written to

    void addLocal(Conn* c, Conn::Sub* s) { channels[s->channel].push_back({c, s}); }

    // Returns true if this loop has no local subscriber of the channel left.
    bool removeLocal(Conn* c, std::string_view channel) {
        auto it = channels.find(std::string(channel));
        if (it == channels.end())
            return true;
        auto& v = it->second;
        std::erase_if(v, [c](const Local& l) { return l.conn == c; });
        if (v.empty()) {
            channels.erase(it);
            return true;
        }
        return false;
    }

    void drain();
    void deliverTo(Conn* c, Conn::Sub* sub, const broker::Event& ev, uint32_t index);
};

void Messaging::LoopHub::drain() {
    {
        std::lock_guard lock(mu);
        batch.swap(queue);
        scheduled = false;
    }
    if (batch.empty())
        return;
    frames.resize(std::max(frames.size(), batch.size()));
    jsons.resize(std::max(jsons.size(), batch.size()));
    items.clear();
    // Encode and frame each event once for this loop, and list who gets it.
    for (uint32_t i = 0; i < batch.size(); ++i) {
        const broker::Event& ev = batch[i];
        std::string& json = jsons[i];
        json.clear();
        const std::string* channel;
        if (ev.kind == broker::EventKind::kPublication) {
            const broker::Publication& p = *ev.pub;
            protocol::encodeMessage(&json, p.channel, p.epoch, p.offset, p.data, false);
            channel = &p.channel;
        } else {
            protocol::encodeJoinLeave(&json, ev.kind == broker::EventKind::kJoin, ev.channel,
                                      ev.who->client_id, ev.who->user, ev.who->info_json);
            channel = &ev.channel;
        }
        frameText(&frames[i], json);
        auto it = channels.find(*channel);
        if (it == channels.end())
            continue;
        for (const Local& l : it->second) {
            items.push_back({l.conn, l.sub, i});
        }
    }
    // Group by subscriber so each gets all its messages in one corked write (PERFORMANCE.md
    // point 4); stable keeps per-channel order.
    if (batch.size() > 1) {
        std::stable_sort(items.begin(), items.end(),
                         [](const Item& a, const Item& b) { return a.conn < b.conn; });
    }
    delivered.assign(batch.size(), 0);
    for (const Item& it : items) {
        deliverTo(it.conn, it.sub, batch[it.event], it.event);
    }
    // Metrics once per drain: one clock read and a few atomics per event, none per subscriber.
    Metrics* metrics = m->metrics_;
    const uint64_t now_us = nowUs();
    uint64_t messages = 0, payload = 0;
    for (uint32_t i = 0; i < batch.size(); ++i) {
        if (delivered[i] == 0)
            continue;
        messages += delivered[i];
        payload += static_cast<uint64_t>(delivered[i]) * jsons[i].size();
        if (batch[i].kind == broker::EventKind::kPublication) {
            metrics->deliveries.fetch_add(delivered[i], std::memory_order_relaxed);
            const uint64_t pub_us = batch[i].pub->time_ms * 1000;
            metrics->delivery_latency.observeUs(now_us > pub_us ? now_us - pub_us : 0,
                                                delivered[i]);
        }
    }
    metrics->messages_out.fetch_add(messages, std::memory_order_relaxed);
    metrics->bytes_out.fetch_add(payload, std::memory_order_relaxed);
    items.clear();
    batch.clear();
}

void Messaging::LoopHub::deliverTo(Conn* c, Conn::Sub* sub, const broker::Event& ev,
                                   uint32_t index) {
    if (c->closing || c->ws->isClosed())
        return;
    Metrics* metrics = m->metrics_;
    const std::string& frame = frames[index];
    if (ev.kind == broker::EventKind::kPublication) {
        const broker::Publication& p = *ev.pub;
        if (p.epoch == sub->epoch && p.offset <= sub->last_offset) {
            return;  // already sent through recovery: exactly once, in order
        }
        sub->epoch = p.epoch;
        if (c->ws->backlogBytes() + frame.size() > m->options_.outbound_limit) {
            if (sub->ns->slow_consumer == NamespaceOptions::SlowConsumer::kDrop) {
                sub->gap = true;
                sub->last_offset = p.offset;
                metrics->slow_consumer_drops.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            metrics->slow_consumer_disconnects.fetch_add(1, std::memory_order_relaxed);
            SB_INFO("client %s: slow consumer (%zu bytes queued): closing %u", c->client_id.c_str(),
                    c->ws->backlogBytes(), kCloseSlowConsumer);
            std::string& json = t_json;
            json.clear();
            protocol::encodeDisconnect(&json, kCloseSlowConsumer, "slow consumer", true);
            c->ws->sendText(json);
            c->closing = true;
            c->ws->end(kCloseSlowConsumer, "slow consumer");
            return;
        }
        if (sub->gap) {
            std::string& json = t_json;
            json.clear();
            protocol::encodeMessage(&json, p.channel, p.epoch, p.offset, p.data, true);
            c->ws->sendText(json);
            sub->gap = false;
        } else {
            c->ws->sendPrepared(bytes(frame), ws::Opcode::kText, bytes(jsons[index]));
        }
        sub->last_offset = p.offset;
        if (sub->ns->delivery == NamespaceOptions::Delivery::kAtLeastOnce &&
            !c->session_id.empty()) {
            m->sessions_.track(c->session_id, ev.pub);
        }
        ++delivered[index];  // metrics are added once per drain, not per subscriber
        return;
    }
    if (c->ws->backlogBytes() + frame.size() > m->options_.outbound_limit)
        return;  // best effort
    c->ws->sendPrepared(bytes(frame), ws::Opcode::kText, bytes(jsons[index]));
    ++delivered[index];
}

// ---- Messaging ------------------------------------------------------------------------------

Messaging::Messaging(App& app, MessagingOptions options, transport::WebSocketBehavior base,
                     bool compression, Metrics* metrics)
    : app_(app),
      options_(std::move(options)),
      compression_(compression),
      metrics_(metrics),
      engine_(broker::makeMemoryEngine()),
      boot_ms_(nowMs()),
      ping_interval_ms_(base.ping_interval_ms) {
    snapshots_.push_back(std::make_unique<NamespaceMap>(options_.namespaces));
    namespaces_.store(snapshots_.back().get(), std::memory_order_release);
    engine_->setSink(this);
    WsRoute route;
    route.subprotocols = {std::string(protocol::kSubprotocol)};
    route.deflate.enabled = compression_;
    route.behavior = base;
    // The engine's own backlog cap is the last guard; the namespace policy acts first.
    route.behavior.max_backlog = std::max(base.max_backlog, options_.outbound_limit * 2);
    route.behavior.idle_close_code = kCloseHeartbeat;
    route.behavior.on_open = [this](transport::WebSocket& ws) { onOpen(ws); };
    route.behavior.on_message = [this](transport::WebSocket& ws, ws::Opcode op,
                                       std::span<uint8_t> d) { onMessage(ws, op, d); };
    route.behavior.on_close = [this](transport::WebSocket& ws, uint16_t code,
                                     std::string_view reason) { onClose(ws, code, reason); };
    app_.ws("/ws", std::move(route));
}

Messaging::~Messaging() {
    {
        std::lock_guard lock(hk_mu_);
        hk_stop_ = true;
    }
    hk_cv_.notify_all();
    if (housekeeper_.joinable()) {
        housekeeper_.join();
    }
    engine_->setSink(nullptr);
}

void Messaging::attach() {
    for (size_t i = 0; i < app_.loopCount(); ++i) {
        auto hub = std::make_unique<LoopHub>();
        hub->m = this;
        hub->loop = &app_.loopAt(i);
        hub->id = static_cast<uint32_t>(i);
        hubs_.push_back(std::move(hub));
    }
    // Publications made on a loop for that same loop are drained at the end of the iteration
    // (no eventfd round trip); the cork is flushed right after so nothing waits for a tick.
    for (auto& hub : hubs_) {
        LoopHub* h = hub.get();
        h->loop->addIterationHook([h] {
            if (h->local_pending) {
                h->local_pending = false;
                h->drain();
                net::StreamConn::flushCork(*h->loop);
            }
        });
    }
    // Housekeeping once a second on its own thread (TTLs of history, idempotency keys and
    // sessions): a sweep over many channels must not stall a loop's deliveries.
    housekeeper_ = std::thread([this] {
        std::unique_lock lock(hk_mu_);
        while (!hk_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return hk_stop_; })) {
            lock.unlock();
            housekeeping();
            lock.lock();
        }
    });

    for (const char* name :
         {"publish", "broadcast", "presence", "history", "channels", "disconnect", "info"}) {
        std::string n = name;
        app_.post("/api/" + n, [this, n](const http::Request& req, std::string_view body) {
            return apiCall(n, req, body);
        });
    }
    app_.get("/metrics", [this](const http::Request&, std::string_view) {
        uint64_t backlog = 0;
        for (size_t i = 0; i < app_.loopCount(); ++i) {
            backlog += app_.loopAt(i).backlog_bytes.load(std::memory_order_relaxed);
        }
        return HttpReply{
            .content_type = "text/plain; version=0.0.4",
            .body = metrics_->render(backlog, engine_->channels().size(), sessions_.size())};
    });
}

void Messaging::reloadNamespaces(NamespaceMap namespaces) {
    std::lock_guard lock(reload_mu_);
    // Old snapshots stay alive: existing subscriptions point into them (reloads are rare).
    snapshots_.push_back(std::make_unique<NamespaceMap>(std::move(namespaces)));
    namespaces_.store(snapshots_.back().get(), std::memory_order_release);
    SB_INFO("namespaces reloaded: %zu configured; new subscriptions use the new options",
            snapshots_.back()->size());
}

void Messaging::housekeeping() {
    const uint64_t now = nowMs();
    engine_->sweep(now);
    sessions_.sweep(now);
}

void Messaging::deliver(uint32_t loop_id, broker::Event ev) {
    if (loop_id >= hubs_.size())
        return;
    LoopHub* hub = hubs_[loop_id].get();
    bool wake;
    {
        std::lock_guard lock(hub->mu);
        hub->queue.push_back(std::move(ev));
        wake = !hub->scheduled;
        hub->scheduled = true;
    }
    if (wake) {
        if (hub->loop->inLoopThread()) {
            hub->local_pending = true;  // drained by the end-of-iteration hook
        } else {
            hub->loop->post([hub] { hub->drain(); });
        }
    }
}

const NamespaceOptions* Messaging::namespaceOf(std::string_view channel, std::string_view* ns) {
    std::string_view name;
    if (!protocol::splitChannel(channel, ns, &name))
        return nullptr;
    const NamespaceMap* map = namespaces_.load(std::memory_order_acquire);
    auto it = map->find(std::string(*ns));
    return it == map->end() ? nullptr : &it->second;
}

void Messaging::onOpen(transport::WebSocket& ws) {
    auto* c = new Conn;
    c->ws = &ws;
    c->hub = hubs_[ws.loop()->id()].get();
    c->tokens = options_.rate_burst;
    c->refill_ms = nowMs();
    ws.user_data = c;
    metrics_->ws_connections.fetch_add(1, std::memory_order_relaxed);
    metrics_->ws_connections_total.fetch_add(1, std::memory_order_relaxed);
}

void Messaging::onClose(transport::WebSocket& ws, uint16_t code, std::string_view reason) {
    auto* c = static_cast<Conn*>(ws.user_data);
    if (c == nullptr)
        return;
    ws.user_data = nullptr;
    c->closing = true;
    unsubscribeAll(*c);
    if (!c->session_id.empty()) {
        sessions_.detach(c->session_id, nowMs());
    }
    if (!c->client_id.empty()) {
        c->hub->clients.erase(c->client_id);
    }
    metrics_->ws_connections.fetch_sub(1, std::memory_order_relaxed);
    SB_DEBUG("client %s closed: %u %.*s", c->client_id.c_str(), code,
             static_cast<int>(reason.size()), reason.data());
    delete c;
}

void Messaging::unsubscribeAll(Conn& c) {
    for (auto& s : c.subs) {
        if (c.hub->removeLocal(&c, s->channel)) {
            engine_->loopUnsubscribed(s->channel, c.hub->id);
        }
        if (c.info && (s->ns->presence || s->ns->join_leave)) {
            engine_->presenceRemove(s->channel, *s->ns, c.client_id);
        }
    }
    c.subs.clear();
}

void Messaging::reply(Conn& c, const std::string& json) {
    c.ws->sendText(json);
    metrics_->messages_out.fetch_add(1, std::memory_order_relaxed);
    metrics_->bytes_out.fetch_add(json.size(), std::memory_order_relaxed);
}

void Messaging::replyError(Conn& c, std::string_view id_json, std::string_view code,
                           std::string_view message) {
    std::string json;
    protocol::encodeError(&json, id_json, code, message);
    reply(c, json);
}

void Messaging::onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data) {
    auto* c = static_cast<Conn*>(ws.user_data);
    if (c == nullptr || c->closing)
        return;
    metrics_->messages_in.fetch_add(1, std::memory_order_relaxed);
    metrics_->bytes_in.fetch_add(data.size(), std::memory_order_relaxed);
    // Token bucket: refill, then spend one token per request.
    const uint64_t now = nowMs();
    c->tokens = std::min(options_.rate_burst, c->tokens + static_cast<double>(now - c->refill_ms) *
                                                              options_.rate_per_s / 1000.0);
    c->refill_ms = now;
    if (c->tokens < 1.0) {
        metrics_->rate_limited.fetch_add(1, std::memory_order_relaxed);
        if (++c->limited_in_row >= kAbuseErrors) {
            SB_WARN("client %s: rate limit abuse: closing 1008", c->client_id.c_str());
            c->closing = true;
            ws.end(ws::close_code::kPolicyViolation, "rate limit exceeded");
            return;
        }
        replyError(*c, {}, "rate_limited",
                   "too many requests: slow down (limit " +
                       std::to_string(static_cast<int>(options_.rate_per_s)) + "/s)");
        return;
    }
    c->tokens -= 1.0;
    c->limited_in_row = 0;
    if (op != ws::Opcode::kText) {
        replyError(*c, {}, "bad_frame", "send JSON in text frames, not binary");
        return;
    }
    handleRequest(*c, {reinterpret_cast<const char*>(data.data()), data.size()});
}

void Messaging::subscribeChannel(Conn& c, std::string_view id_json, std::string_view channel,
                                 const NamespaceOptions& ns,
                                 const std::optional<broker::StreamPos>& since, bool from_resume,
                                 std::vector<broker::PubPtr>* unacked, bool gap) {
    const uint64_t now = nowMs();
    broker::RecoverResult r = engine_->subscribe(channel, ns, c.hub->id, since, now);
    auto sub = std::make_unique<Conn::Sub>();
    sub->channel = std::string(channel);
    sub->ns = &ns;
    sub->epoch = r.top.epoch;
    sub->last_offset = r.top.offset;
    Conn::Sub* s = sub.get();
    c.subs.push_back(std::move(sub));
    c.hub->addLocal(&c, s);
    if (!c.session_id.empty()) {
        sessions_.subscribe(c.session_id, channel, ns);
        sessions_.setPosition(c.session_id, channel, r.top);
    }
    std::optional<bool> recovered;
    if (since) {
        recovered = r.recovered;
        (r.recovered ? metrics_->recoveries_recovered : metrics_->recoveries_failed)
            .fetch_add(1, std::memory_order_relaxed);
    }
    if (!from_resume) {
        std::string json;
        protocol::encodeSubscribed(&json, id_json, channel, r.top.epoch, r.top.offset, recovered);
        reply(c, json);
    }
    const bool alo = ns.delivery == NamespaceOptions::Delivery::kAtLeastOnce;
    // Resume: first what the session holds un-acked, then what history adds after it.
    uint64_t sent_up_to = 0;
    std::string json;
    if (unacked != nullptr) {
        for (size_t i = 0; i < unacked->size(); ++i) {
            const broker::Publication& p = *(*unacked)[i];
            json.clear();
            protocol::encodeMessage(&json, p.channel, p.epoch, p.offset, p.data, gap && i == 0);
            reply(c, json);
            sent_up_to = p.offset;
        }
    }
    for (const broker::PubPtr& p : r.pubs) {
        if (p->offset <= sent_up_to)
            continue;
        json.clear();
        protocol::encodeMessage(&json, p->channel, p->epoch, p->offset, p->data, false);
        reply(c, json);
        if (alo && !c.session_id.empty()) {
            sessions_.track(c.session_id, p);
        }
    }
    if (c.info && (ns.presence || ns.join_leave)) {
        engine_->presenceAdd(channel, ns, c.info);
    }
}

void Messaging::handleRequest(Conn& c, std::string_view frame) {
    auto parsed = protocol::parseRequest(frame);
    if (!parsed) {
        metrics_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
        replyError(c, parsed.error().id_json, parsed.error().code, parsed.error().message);
        return;
    }
    protocol::Request& req = *parsed;
    std::string json;
    if (req.type == protocol::MsgType::kPing) {
        protocol::encodePong(&json, req.id_json);
        reply(c, json);
        return;
    }
    if (req.type == protocol::MsgType::kConnect) {
        if (c.connected) {
            replyError(c, req.id_json, "already_connected", "this connection already connected");
            return;
        }
        c.connected = true;
        c.client_id = "c_" + std::to_string(c.hub->id) + "_" +
                      std::to_string(next_client_.fetch_add(1, std::memory_order_relaxed));
        auto info = std::make_shared<broker::ClientInfo>();
        info->client_id = c.client_id;
        info->user = std::string(req.user);
        info->info_json = req.info;
        c.info = std::move(info);
        c.hub->clients[c.client_id] = &c;
        std::optional<broker::ResumedSession> resumed;
        if (!req.session.empty()) {
            resumed = sessions_.resume(req.session, nowMs());
        }
        c.session_id = resumed ? std::string(req.session) : sessions_.create();
        const uint32_t ping_s = ping_interval_ms_ / 1000;
        protocol::encodeConnected(&json, req.id_json, c.client_id, c.session_id,
                                  resumed.has_value(), ping_s);
        reply(c, json);
        if (resumed) {
            for (auto& ch : resumed->channels) {
                std::string_view ns_name;
                const NamespaceOptions* ns = namespaceOf(ch.channel, &ns_name);
                if (ns == nullptr)
                    continue;  // namespace removed by a config reload
                // Recover what was published after the last delivery while the client was away.
                std::optional<broker::StreamPos> since;
                if (!ch.delivered.epoch.empty())
                    since = ch.delivered;
                subscribeChannel(c, {}, ch.channel, *ns, since, true, &ch.unacked, ch.gap);
            }
        }
        return;
    }
    if (!c.connected) {
        replyError(c, req.id_json, "not_connected", "send a connect message first");
        return;
    }
    std::string_view ns_name;
    const NamespaceOptions* ns = namespaceOf(req.channel, &ns_name);
    if (ns == nullptr) {
        if (!protocol::splitChannel(req.channel, nullptr, nullptr)) {
            replyError(c, req.id_json, "bad_channel",
                       "channel names are ns:name with ns [a-z0-9_-]{1,64} and name "
                       "[A-Za-z0-9_.:@=,-]{1,192}");
        } else {
            replyError(c, req.id_json, "unknown_namespace",
                       "namespace '" + std::string(ns_name) +
                           "' is not configured (add [namespaces." + std::string(ns_name) +
                           "] to the config)");
        }
        return;
    }
    switch (req.type) {
        case protocol::MsgType::kSubscribe: {
            if (c.find(req.channel) != nullptr) {
                replyError(c, req.id_json, "already_subscribed", "already subscribed");
                return;
            }
            if (c.subs.size() >= options_.max_subscriptions) {
                replyError(c, req.id_json, "limit_exceeded",
                           "at most " + std::to_string(options_.max_subscriptions) +
                               " subscriptions per connection");
                return;
            }
            std::optional<broker::StreamPos> since;
            if (req.since)
                since = broker::StreamPos{req.since->epoch, req.since->offset};
            subscribeChannel(c, req.id_json, req.channel, *ns, since, false, nullptr, false);
            return;
        }
        case protocol::MsgType::kUnsubscribe: {
            if (c.find(req.channel) == nullptr) {
                replyError(c, req.id_json, "not_subscribed", "not subscribed to this channel");
                return;
            }
            if (c.hub->removeLocal(&c, req.channel)) {
                engine_->loopUnsubscribed(req.channel, c.hub->id);
            }
            if (ns->presence || ns->join_leave) {
                engine_->presenceRemove(req.channel, *ns, c.client_id);
            }
            std::erase_if(c.subs, [&](const auto& s) { return s->channel == req.channel; });
            if (!c.session_id.empty())
                sessions_.unsubscribe(c.session_id, req.channel);
            protocol::encodeUnsubscribed(&json, req.id_json, req.channel);
            reply(c, json);
            return;
        }
        case protocol::MsgType::kPublish: {
            if (!ns->client_publish) {
                replyError(c, req.id_json, "publish_forbidden",
                           "clients may not publish in namespace '" + std::string(ns_name) +
                               "' (publish through the HTTP API)");
                return;
            }
            if (req.data.size() > ns->max_data_bytes) {
                replyError(c, req.id_json, "data_too_large",
                           "data is " + std::to_string(req.data.size()) + " bytes; the limit is " +
                               std::to_string(ns->max_data_bytes));
                return;
            }
            broker::PublishResult r = engine_->publish(req.channel, *ns, std::move(req.data),
                                                       req.idempotency_key, nowMs());
            if (!r.duplicate)
                metrics_->publications.fetch_add(1, std::memory_order_relaxed);
            protocol::encodePublished(&json, req.id_json, req.channel, r.pos.epoch, r.pos.offset,
                                      r.duplicate);
            reply(c, json);
            return;
        }
        case protocol::MsgType::kPresence: {
            if (!ns->presence) {
                replyError(c, req.id_json, "presence_disabled",
                           "presence is off in namespace '" + std::string(ns_name) + "'");
                return;
            }
            auto who = engine_->presence(req.channel);
            std::vector<protocol::PresenceEntry> entries;
            entries.reserve(who.size());
            for (const auto& w : who)
                entries.push_back({w->client_id, w->user, w->info_json});
            protocol::encodePresence(&json, req.id_json, req.channel, entries);
            reply(c, json);
            return;
        }
        case protocol::MsgType::kHistory: {
            if (ns->history_size == 0) {
                replyError(c, req.id_json, "history_disabled",
                           "history is off in namespace '" + std::string(ns_name) + "'");
                return;
            }
            std::optional<broker::StreamPos> since;
            if (req.since)
                since = broker::StreamPos{req.since->epoch, req.since->offset};
            auto r = engine_->history(req.channel, *ns, since, req.limit, nowMs());
            std::vector<protocol::HistoryItem> items;
            items.reserve(r.pubs.size());
            for (const auto& p : r.pubs)
                items.push_back({p->offset, p->data});
            std::optional<bool> recovered;
            if (since)
                recovered = r.recovered;
            protocol::encodeHistory(&json, req.id_json, req.channel, r.top.epoch, r.top.offset,
                                    recovered, items);
            reply(c, json);
            return;
        }
        case protocol::MsgType::kAck: {
            sessions_.ack(c.session_id, req.channel, req.offset);
            if (!req.id_json.empty()) {
                protocol::encodeAcked(&json, req.id_json);
                reply(c, json);
            }
            return;
        }
        default:
            replyError(c, req.id_json, "unknown_type", "unsupported request");
            return;
    }
}

// ---- HTTP API ---------------------------------------------------------------------------

namespace {

HttpReply apiError(uint16_t status, std::string_view code, std::string_view message) {
    std::string body = "{\"error\":";
    protocol::appendJsonString(&body, code);
    body += ",\"message\":";
    protocol::appendJsonString(&body, message);
    body += "}\n";
    return HttpReply{.status = status, .content_type = "application/json", .body = body};
}

// Compares without an early exit, so response timing does not leak how much of a key matched.
bool constantTimeEqual(std::string_view a, std::string_view b) {
    if (a.size() != b.size() || a.empty())
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    }
    return diff == 0;
}

HttpReply apiOk(std::string body) {
    body += "\n";
    return HttpReply{.content_type = "application/json", .body = std::move(body)};
}

}  // namespace

HttpReply Messaging::apiCall(std::string_view name, const http::Request& req,
                             std::string_view body) {
    if (options_.api_key.empty()) {
        return apiError(403, "api_disabled",
                        "the HTTP API is off: set api.key in the config (or SWITCHBOARD_API_KEY)");
    }
    std::string_view auth = req.header("authorization");
    std::string_view key = req.header("x-api-key");
    if (auth.size() > 7 && (auth.substr(0, 7) == "apikey " || auth.substr(0, 7) == "Apikey ")) {
        key = auth.substr(7);
    }
    if (!constantTimeEqual(key, options_.api_key)) {
        return apiError(401, "unauthorized",
                        "send the API key as 'Authorization: apikey KEY' or 'X-API-Key: KEY'");
    }
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string padded(body.empty() ? std::string_view("{}") : body);
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
        return apiError(400, "bad_json", "the body must be a JSON object");
    }
    auto str = [&](const char* field, std::string_view* out) {
        return doc[field].get_string().get(*out) == simdjson::SUCCESS;
    };
    const uint64_t now = nowMs();
    std::string out;
    auto channelOf = [&](std::string_view ch, std::string_view* ns_name,
                         const NamespaceOptions** ns) -> std::optional<HttpReply> {
        *ns = namespaceOf(ch, ns_name);
        if (*ns == nullptr) {
            if (!protocol::splitChannel(ch, nullptr, nullptr)) {
                return apiError(400, "bad_channel", "invalid channel name");
            }
            return apiError(404, "unknown_namespace",
                            "namespace '" + std::string(*ns_name) + "' is not configured");
        }
        return std::nullopt;
    };
    if (name == "publish" || name == "broadcast") {
        simdjson::dom::element data;
        if (doc["data"].get(data) != simdjson::SUCCESS) {
            return apiError(400, "bad_request", "missing field 'data'");
        }
        std::string data_json = simdjson::minify(data);
        std::vector<std::string_view> targets;
        if (name == "publish") {
            std::string_view ch;
            if (!str("channel", &ch))
                return apiError(400, "bad_request", "missing 'channel'");
            targets.push_back(ch);
        } else {
            simdjson::dom::array arr;
            if (doc["channels"].get_array().get(arr) != simdjson::SUCCESS) {
                return apiError(400, "bad_request", "missing 'channels' (an array of names)");
            }
            for (auto v : arr) {
                std::string_view ch;
                if (v.get_string().get(ch) != simdjson::SUCCESS) {
                    return apiError(400, "bad_request", "'channels' must hold strings");
                }
                targets.push_back(ch);
            }
        }
        std::string_view key_str;
        str("idempotency_key", &key_str);
        out = name == "publish" ? "" : "{\"results\":[";
        bool first = true;
        for (std::string_view ch : targets) {
            std::string_view ns_name;
            const NamespaceOptions* ns = nullptr;
            if (auto e = channelOf(ch, &ns_name, &ns))
                return *e;
            if (data_json.size() > ns->max_data_bytes) {
                return apiError(413, "data_too_large", "data exceeds max_data_bytes");
            }
            auto r = engine_->publish(ch, *ns, data_json, key_str, now);
            if (!r.duplicate)
                metrics_->publications.fetch_add(1, std::memory_order_relaxed);
            if (!first)
                out += ",";
            first = false;
            out += "{\"channel\":";
            protocol::appendJsonString(&out, ch);
            out += ",\"epoch\":";
            protocol::appendJsonString(&out, r.pos.epoch);
            out += ",\"offset\":" + std::to_string(r.pos.offset);
            if (r.duplicate)
                out += ",\"duplicate\":true";
            out += "}";
        }
        if (name == "broadcast")
            out += "]}";
        return apiOk(out);
    }
    if (name == "presence" || name == "history") {
        std::string_view ch;
        if (!str("channel", &ch))
            return apiError(400, "bad_request", "missing 'channel'");
        std::string_view ns_name;
        const NamespaceOptions* ns = nullptr;
        if (auto e = channelOf(ch, &ns_name, &ns))
            return *e;
        if (name == "presence") {
            if (!ns->presence)
                return apiError(400, "presence_disabled", "presence is off");
            auto who = engine_->presence(ch);
            std::vector<protocol::PresenceEntry> entries;
            for (const auto& w : who)
                entries.push_back({w->client_id, w->user, w->info_json});
            protocol::encodePresence(&out, {}, ch, entries);
            return apiOk(out);
        }
        if (ns->history_size == 0)
            return apiError(400, "history_disabled", "history is off");
        std::optional<broker::StreamPos> since;
        simdjson::dom::object s;
        if (doc["since"].get_object().get(s) == simdjson::SUCCESS) {
            std::string_view epoch;
            uint64_t off = 0;
            if (s["epoch"].get_string().get(epoch) != simdjson::SUCCESS ||
                s["offset"].get_uint64().get(off) != simdjson::SUCCESS) {
                return apiError(400, "bad_request",
                                "'since' is {\"epoch\": string, \"offset\": n}");
            }
            since = broker::StreamPos{std::string(epoch), off};
        }
        uint64_t limit = 0;
        if (doc["limit"].get_uint64().get(limit) != simdjson::SUCCESS)
            limit = 0;
        auto r = engine_->history(ch, *ns, since, limit, now);
        std::vector<protocol::HistoryItem> items;
        for (const auto& p : r.pubs)
            items.push_back({p->offset, p->data});
        std::optional<bool> recovered;
        if (since)
            recovered = r.recovered;
        protocol::encodeHistory(&out, {}, ch, r.top.epoch, r.top.offset, recovered, items);
        return apiOk(out);
    }
    if (name == "channels") {
        out = "{\"channels\":[";
        bool first = true;
        for (const auto& ch : engine_->channels()) {
            if (!first)
                out += ",";
            first = false;
            out += "{\"channel\":";
            protocol::appendJsonString(&out, ch.channel);
            out += ",\"epoch\":";
            protocol::appendJsonString(&out, ch.top.epoch);
            out += ",\"offset\":" + std::to_string(ch.top.offset) +
                   ",\"presence\":" + std::to_string(ch.presence) +
                   ",\"history\":" + std::to_string(ch.history) + "}";
        }
        out += "]}";
        return apiOk(out);
    }
    if (name == "disconnect") {
        std::string_view client;
        if (!str("client", &client))
            return apiError(400, "bad_request", "missing 'client'");
        bool reconnect = true;
        if (doc["reconnect"].get_bool().get(reconnect) != simdjson::SUCCESS)
            reconnect = true;
        std::string id(client);
        for (auto& hub : hubs_) {
            LoopHub* h = hub.get();
            h->loop->post([h, id, reconnect] {
                auto it = h->clients.find(id);
                if (it == h->clients.end())
                    return;
                Conn* c = it->second;
                std::string json;
                protocol::encodeDisconnect(&json, kCloseApiDisconnect, "disconnected by the server",
                                           reconnect);
                c->ws->sendText(json);
                c->closing = true;
                c->ws->end(kCloseApiDisconnect, "disconnected by the server");
            });
        }
        return apiOk("{\"result\":\"requested\"}");
    }
    if (name == "info") {
        out = "{\"version\":\"" SB_VERSION_STRING "\",\"uptime_ms\":" +
              std::to_string(nowMs() - boot_ms_) + ",\"loops\":" + std::to_string(hubs_.size()) +
              ",\"connections\":" + std::to_string(metrics_->ws_connections.load()) +
              ",\"channels\":" + std::to_string(engine_->channels().size()) +
              ",\"sessions\":" + std::to_string(sessions_.size()) + "}";
        return apiOk(out);
    }
    return apiError(404, "not_found", "unknown API call");
}

}  // namespace sb::server
