// The /poll adapter (see poll.h). A Session is a messaging::Peer without a socket: deliveries
// go into its queue (bounded by messaging.outbound_limit, the same policy as a socket's
// backlog), and a GET takes them as one batch. The last batch is kept until the next GET
// acknowledges it, so a response lost on the way is sent again. Polls and requests for a
// session run on the loop it lives on (this adapter's index; POSTs through
// Hub::withSessionHolder); nothing but the index is touched by another thread.
#include "server/poll.h"

#include "base/log.h"
#include "protocol/codec.h"
#include "server/native_requests.h"
#include "server/session_open.h"

namespace sb::server {

using messaging::Delivery;
using messaging::Error;
using messaging::PeerStatus;

namespace {

constexpr uint32_t kDefaultWaitMs = 25'000;  // under the 30-60 s idle cut of most proxies
constexpr uint32_t kMaxWaitMs = 30'000;
// A session nobody polls for this long after its last poll ended is closed (its session TTL
// then runs, and a later poll reopens it with lastEventId).
constexpr uint32_t kExpiryGraceMs = 15'000;

HttpReply notPolledHere(const std::string& session) {
    return jsonError(410, Error::kNotFound,
                     "session " + session +
                         " is not polled on this server (it expired, or its poller went away): "
                         "reopen with GET /poll?session=…&lastEventId=…");
}

uint64_t parseNumber(const std::string& s, uint64_t fallback) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
        return fallback;
    }
    return std::stoull(s);
}

void appendJsonString(std::string* out, std::string_view s) {
    out->push_back('"');
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out->push_back('\\');
        }
        out->push_back(c);  // ids hold [A-Za-z0-9_.:@=,!|-] only (session and channel names)
    }
    out->push_back('"');
}

}  // namespace

struct Poll::Session final : public messaging::Peer, private loop::TimerNode {
    Session(Poll* p, uint32_t loop, loop::EventLoop* l, messaging::Stats& s)
        : owner(p), loop_index(loop), ev_loop(l), client(*this), stats(&s) {
        TimerNode::fire = &Session::onTimer;
        last_poll_ms = ev_loop->nowMs();
    }
    ~Session() override {
        setParked(false);
        ev_loop->timers().cancel(this);
    }

    // Every change of has_parked goes through here, so Poll::waiting() stays exact.
    void setParked(bool on) {
        if (on != has_parked) {
            has_parked = on;
            owner->waiting_.fetch_add(on ? 1 : -1, std::memory_order_relaxed);
        }
    }

    Poll* owner;
    uint32_t loop_index;
    loop::EventLoop* ev_loop;
    messaging::Client client;
    messaging::Stats* stats;
    SessionPosition pos;  // after the events queued so far
    std::vector<std::string> queue;
    size_t queued_bytes = 0;
    uint64_t next_seq = 0;
    uint64_t inflight_seq = 0;  // the last batch sent, kept until acknowledged
    std::string inflight;
    HttpResponder parked;     // a GET waiting for events
    bool has_parked = false;  // changed only by setParked
    uint64_t last_poll_ms = 0;
    bool ended = false;  // disconnected or slow: the next batch is the last
    bool flush_posted = false;
    bool closing = false;

    std::string emptyBatch() const {
        std::string b = R"({"seq":0,"id":)";
        appendJsonString(&b, encodeEventId(pos));
        b += R"(,"events":[]})";
        return b;
    }

    static HttpReply json(std::string body) {
        body.push_back('\n');
        return HttpReply{.status = 200,
                         .content_type = "application/json",
                         .body = std::move(body),
                         .extra_headers = "Cache-Control: no-store\r\n"};
    }

    // Every queued event as the next batch.
    void sendBatch(const HttpResponder& r) {
        inflight_seq = ++next_seq;
        inflight = R"({"seq":)" + std::to_string(inflight_seq) + R"(,"id":)";
        appendJsonString(&inflight, encodeEventId(pos));
        inflight += R"(,"events":[)";
        for (size_t i = 0; i < queue.size(); ++i) {
            if (i != 0) {
                inflight.push_back(',');
            }
            inflight += queue[i];
        }
        inflight += "]}";
        queue.clear();
        queued_bytes = 0;
        stats->messages_out.add();
        r.reply(json(inflight));
        if (ended) {
            owner->close(this);  // the disconnect went out with it
        }
    }

    // At the end of the iteration: a waiting GET gets what this iteration queued, in one batch.
    void scheduleFlush() {
        if (!has_parked || flush_posted) {
            return;
        }
        flush_posted = true;
        Poll* p = owner;
        const uint32_t loop = loop_index;
        const std::string id = pos.session;
        ev_loop->defer([p, loop, id] {
            auto it = p->sessions_[loop].find(id);
            if (it == p->sessions_[loop].end()) {
                return;
            }
            Session& s = *it->second;
            s.flush_posted = false;
            if (s.has_parked && !s.queue.empty() && s.inflight_seq == 0) {
                s.setParked(false);
                s.sendBatch(s.parked);
                s.armExpiry();
            }
        });
    }

    bool enqueue(std::string json, bool droppable) {
        if (queued_bytes + inflight.size() + json.size() > owner->max_queue_ &&
            queued_bytes + inflight.size() > 0) {
            if (droppable) {
                return false;
            }
            stats->slow_consumer_disconnects.add();
            SB_INFO("client %s: slow poller (outbound limit %zu bytes passed): closing",
                    client.id().c_str(), owner->max_queue_);
            std::string bye;
            protocol::encodeDisconnect(&bye, messaging::kSlowConsumer.code,
                                       messaging::kSlowConsumer.reason,
                                       messaging::kSlowConsumer.reconnect);
            queue.push_back(std::move(bye));
            ended = true;
            scheduleFlush();
            return false;
        }
        queued_bytes += json.size();
        queue.push_back(std::move(json));
        scheduleFlush();
        return true;
    }

    PeerStatus deliver(const Delivery& d, bool droppable) override {
        if (ended) {
            return PeerStatus::kGone;
        }
        std::string json;
        encodeEvent(&json, d.event, d.gap);
        const bool pub = d.event.kind == broker::EventKind::kPublication;
        broker::StreamPos before;
        if (pub) {
            broker::StreamPos& slot = pos.channels[d.event.pub->channel];
            before = slot;
            slot = broker::StreamPos{d.event.pub->epoch, d.event.pub->offset};
        }
        const size_t n = json.size();
        if (enqueue(std::move(json), droppable)) {
            stats->bytes_out.add(n);
            return PeerStatus::kSent;
        }
        if (pub) {
            pos.channels[d.event.pub->channel] = before;
        }
        return ended ? PeerStatus::kGone : PeerStatus::kDropped;
    }

    void disconnect(const messaging::Disconnect& d) override {
        std::string json;
        protocol::encodeDisconnect(&json, d.code, d.reason, d.reconnect);
        endWith(std::move(json));
    }

    // The last event (a `disconnect`): the session ends once a poll has taken it.
    void endWith(std::string json) {
        if (ended) {
            return;
        }
        queue.push_back(std::move(json));
        ended = true;
        scheduleFlush();
        if (!has_parked) {
            armExpiry();  // closed at the next poll, or when none comes
        }
    }

    void poll(uint64_t ack, uint32_t wait_ms, const HttpResponder& r) {
        last_poll_ms = ev_loop->nowMs();
        if (inflight_seq != 0) {
            if (ack < inflight_seq) {
                r.reply(json(inflight));  // the last one did not arrive: again
                return;
            }
            inflight_seq = 0;
            inflight.clear();
        }
        if (has_parked) {
            // A newer poll replaces a waiting one (the client gave up on it).
            setParked(false);
            parked.reply(json(emptyBatch()));
        }
        if (!queue.empty()) {
            sendBatch(r);
            armExpiry();
            return;
        }
        if (ended) {
            owner->close(this);
            r.reply(jsonError(410, Error::kNotFound, "the session ended: open it again"));
            return;
        }
        parked = r;
        setParked(true);
        ev_loop->timers().cancel(this);
        ev_loop->timers().schedule(this, wait_ms);
    }

    void armExpiry() {
        ev_loop->timers().cancel(this);
        ev_loop->timers().schedule(this, kMaxWaitMs + kExpiryGraceMs);
    }

    static void onTimer(loop::TimerNode* node) {
        auto* self = static_cast<Session*>(node);
        if (self->has_parked) {
            self->setParked(false);
            self->parked.reply(json(self->emptyBatch()));
            self->last_poll_ms = self->ev_loop->nowMs();
            self->armExpiry();
            return;
        }
        const uint64_t idle = self->ev_loop->nowMs() - self->last_poll_ms;
        if (idle + 50 >= kMaxWaitMs + kExpiryGraceMs) {
            self->owner->close(self);
            return;
        }
        self->ev_loop->timers().schedule(self, kMaxWaitMs + kExpiryGraceMs - idle);
    }
};

Poll::Poll(const messaging::Options& options, uint32_t ping_interval_ms)
    : max_queue_(options.outbound_limit), ping_interval_ms_(ping_interval_ms) {}

Poll::~Poll() = default;

void Poll::registerRoutes(App& app) {
    app.onShutdown([this](uint32_t loop) { shutdown(loop); });
    // A poll waits at most kMaxWaitMs; the route's timeout is only a stuck loop's safety net.
    app.getAsync(
        "/poll",
        [this](const http::Request& req, std::string_view, HttpResponder r) {
            onGet(req, std::move(r));
        },
        kMaxWaitMs + 30'000);
    app.postAsync(
        "/poll",
        [this](const http::Request& req, std::string_view body, HttpResponder r) {
            onPost(req, body, std::move(r));
        },
        30'000);
}

void Poll::attach(messaging::Hub* hub, App& app, SessionRelay* relay) {
    hub_ = hub;
    app_ = &app;
    relay_ = relay;
    loops_.clear();
    for (size_t i = 0; i < app.loopCount(); ++i) {
        loops_.push_back(&app.loopAt(i));
    }
    sessions_.resize(loops_.size());
}

void Poll::onGet(const http::Request& req, HttpResponder responder) {
    const std::string ack_param = queryParam(req.query, "ack");
    const std::string session = queryParam(req.query, "session");
    if (ack_param.empty() || session.empty()) {
        open(loop::EventLoop::current()->id(), req, std::move(responder));
        return;
    }
    // A poll: on the loop its session lives on.
    const uint64_t ack = parseNumber(ack_param, 0);
    const uint32_t wait_ms = static_cast<uint32_t>(std::min<uint64_t>(
        parseNumber(queryParam(req.query, "wait"), kDefaultWaitMs / 1000) * 1000, kMaxWaitMs));
    if (pollHere(session, ack, wait_ms, responder)) {
        return;
    }
    // Polled on another node (behind a load balancer): relayed there.
    if (relay_ != nullptr && relay_->forward(RelayRequest{.kind = RelayRequest::Kind::kPoll,
                                                          .session = session,
                                                          .ack = ack,
                                                          .wait_ms = wait_ms},
                                             responder, wait_ms + kRelayPostTimeoutMs)) {
        return;
    }
    responder.reply(notPolledHere(session));
}

void Poll::pollRelayed(const RelayRequest& r, HttpResponder responder) {
    if (!pollHere(r.session, r.ack, std::min(r.wait_ms, kMaxWaitMs), responder)) {
        responder.reply(notPolledHere(r.session));
    }
}

bool Poll::pollHere(const std::string& session, uint64_t ack, uint32_t wait_ms,
                    const HttpResponder& responder) {
    // Found through this adapter's own index, not the session's holder: a session that was
    // disconnected (takeover, /api/disconnect) is no longer held, but its last batch, with the
    // disconnect event, is still to be fetched.
    std::optional<uint32_t> loop;
    {
        std::lock_guard lock(index_mu_);
        if (auto it = index_.find(session); it != index_.end()) {
            loop = it->second;
        }
    }
    if (!loop) {
        return false;
    }
    loops_[*loop]->post([this, l = *loop, session, ack, wait_ms, responder] {
        auto it = sessions_[l].find(session);
        if (it == sessions_[l].end() || it->second->closing) {
            responder.reply(jsonError(410, Error::kNotFound,
                                      "session " + session +
                                          " ended: reopen with GET "
                                          "/poll?session=…&lastEventId=…"));
            return;
        }
        it->second->poll(ack, wait_ms, responder);
    });
    return true;
}

void Poll::open(uint32_t loop, const http::Request& req, HttpResponder responder) {
    // A new session, like a WebSocket upgrade: under the node's admission rate.
    if (!app_->admitSession()) {
        responder.reply(app_->admissionRefusal());
        return;
    }
    SessionRequest open;
    SessionRefusal no = parseSessionRequest(*hub_, req, false, &open);
    if (no.status != 0) {
        HttpReply r = jsonError(no.status, Error::kBadRequest, no.message);
        std::string body;
        protocol::encodeError(&body, {}, no.code, no.message);
        r.body = body + "\n";
        r.extra_headers = no.extra_headers;
        responder.reply(std::move(r));
        return;
    }
    auto s = std::make_unique<Session>(this, loop, loops_[loop], hub_->stats(loop));
    Session& session = *s;
    session.client.setRemoteRequests(true);  // its requests are POSTs
    hub_->open(session.client, loop);
    // Registered before connecting: deliveries during the connect find it.
    std::string pending_id = "pending:" + std::to_string(reinterpret_cast<uintptr_t>(&session));
    sessions_[loop][pending_id] = std::move(s);
    const bool ok = openSession(
        *hub_, session.client, open, ping_interval_ms_ / 1000,
        [&session](const std::string& json) {
            session.queue.push_back(json);
            session.queued_bytes += json.size();
            return true;
        },
        &session.pos);
    auto node = sessions_[loop].extract(pending_id);
    if (!ok) {
        session.ended = true;
        HttpReply r = Session::json("");
        r.status = 403;
        std::string body = session.queue.empty() ? std::string() : session.queue.front();
        r.body = body + "\n";
        hub_->close(session.client);
        responder.reply(std::move(r));
        return;  // `node` destroys the session
    }
    // A session another poller of this loop held (a reopen) is replaced.
    if (auto old = sessions_[loop].find(session.pos.session); old != sessions_[loop].end()) {
        Session* prev = old->second.get();
        if (prev->has_parked) {
            // Its waiting poll gets what the session still had (the takeover's 4004 among it).
            prev->setParked(false);
            if (prev->queue.empty()) {
                prev->parked.reply(Session::json(prev->emptyBatch()));
            } else {
                prev->sendBatch(prev->parked);
            }
        }
        prev->closing = true;
        hub_->close(prev->client);  // idempotent; its deferred close finds another session
        sessions_[loop].erase(old);
        open_.fetch_sub(1, std::memory_order_relaxed);  // the index entry is rewritten below
    }
    node.key() = session.pos.session;
    sessions_[loop].insert(std::move(node));
    open_.fetch_add(1, std::memory_order_relaxed);
    {
        std::lock_guard lock(index_mu_);
        index_[session.pos.session] = loop;
    }
    session.sendBatch(responder);
    session.armExpiry();
}

void Poll::close(Session* s) {
    if (s->closing) {
        return;
    }
    s->closing = true;
    const uint32_t loop = s->loop_index;
    const std::string id = s->pos.session;
    // Not inside the call that decided it (a delivery, a timer): at the end of the iteration.
    s->ev_loop->defer([this, loop, id, s] {
        auto it = sessions_[loop].find(id);
        if (it == sessions_[loop].end() || it->second.get() != s) {
            return;
        }
        if (s->has_parked) {
            s->setParked(false);
            s->parked.reply(Session::json(s->emptyBatch()));
        }
        hub_->close(s->client);
        sessions_[loop].erase(it);
        open_.fetch_sub(1, std::memory_order_relaxed);
        std::lock_guard lock(index_mu_);
        if (auto ix = index_.find(id); ix != index_.end() && ix->second == loop) {
            index_.erase(ix);
        }
    });
}

void Poll::shutdown(uint32_t loop) {
    if (loop >= sessions_.size()) {
        return;
    }
    for (auto& [id, s] : sessions_[loop]) {
        s->endWith(shutdownNotice(reconnect_delay_ ? reconnect_delay_() : 0));
    }
}

void Poll::onPost(const http::Request& req, std::string_view body, HttpResponder responder) {
    postToSession(*hub_, req, body, std::move(responder), ping_interval_ms_ / 1000, relay_);
}

}  // namespace sb::server
