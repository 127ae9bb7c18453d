// The /sse adapter (see sse.h): one Connection per stream (its SocketData), holding the core's
// Client and implementing messaging::Peer over a transport::EventStream. A stream connects its
// session as it opens; requests come as POSTs, which run on the stream's loop (Hub::
// withSessionHolder) and answer in the POST's response, while what they make the core send
// (a subscribe's replay, fan-out) flows on the stream.
#include "server/sse.h"

#include <cstring>
#include <random>

#include "base/log.h"
#include "protocol/codec.h"
#include "server/native_requests.h"

namespace sb::server {

using messaging::Delivery;
using messaging::Error;
using messaging::PeerStatus;

namespace {

// One event as SSE frames it: every line of the JSON (JSON whitespace may hold CR or LF, which
// end an SSE line) on a "data:" line of its own; the client joins them with LF.
void appendData(std::string* out, std::string_view json) {
    out->append("data: ");
    if (json.find_first_of("\r\n") == std::string_view::npos) {
        out->append(json);
    } else {
        for (size_t i = 0; i < json.size(); ++i) {
            const char c = json[i];
            if (c == '\r' || c == '\n') {
                if (c == '\r' && i + 1 < json.size() && json[i + 1] == '\n') {
                    ++i;
                }
                out->append("\ndata: ");
            } else {
                out->push_back(c);
            }
        }
    }
    out->append("\n\n");
}

bool parseU64(std::string_view s, uint64_t* out) {
    if (s.empty() || s.size() > 20) {
        return false;
    }
    uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        const uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
        if (next < v) {
            return false;
        }
        v = next;
    }
    *out = v;
    return true;
}

// "<channel>!<epoch>!<offset>"
bool parseChannelPos(std::string_view item, std::string* channel, broker::StreamPos* pos) {
    const size_t a = item.find('!');
    const size_t b = a == std::string_view::npos ? a : item.find('!', a + 1);
    if (a == 0 || b == std::string_view::npos) {
        return false;
    }
    uint64_t offset = 0;
    if (!parseU64(item.substr(b + 1), &offset)) {
        return false;
    }
    *channel = std::string(item.substr(0, a));
    *pos = broker::StreamPos{std::string(item.substr(a + 1, b - a - 1)), offset};
    return true;
}

// What the GET asked for, checked before the stream exists.
struct Pending final : transport::SocketData {
    std::unique_ptr<auth::Claims> claims;  // the verified token, if one came
    std::vector<std::string> channels;
    std::string user;
    std::string info;
    SsePosition resume;  // from Last-Event-ID (or the session parameter, with no positions)
};

thread_local std::string t_event;  // one-off event scratch (the loop's thread)

}  // namespace

std::string encodeSseId(const SsePosition& pos) {
    std::string out = pos.session;
    for (const auto& [channel, p] : pos.channels) {
        out.push_back('|');
        out.append(channel);
        out.push_back('!');
        out.append(p.epoch);
        out.push_back('!');
        out.append(std::to_string(p.offset));
    }
    return out;
}

std::optional<SsePosition> parseSseId(std::string_view id) {
    SsePosition out;
    const size_t bar = id.find('|');
    out.session = std::string(id.substr(0, bar));
    if (out.session.find('!') != std::string::npos) {
        return std::nullopt;
    }
    std::string_view rest = bar == std::string_view::npos ? std::string_view() : id.substr(bar + 1);
    while (bar != std::string_view::npos) {
        const size_t next = rest.find('|');
        std::string channel;
        broker::StreamPos pos;
        if (!parseChannelPos(rest.substr(0, next), &channel, &pos)) {
            return std::nullopt;
        }
        out.channels[channel] = std::move(pos);
        if (next == std::string_view::npos) {
            break;
        }
        rest = rest.substr(next + 1);
    }
    return out;
}

struct Sse::Connection final : public transport::SocketData, public messaging::Peer {
    Connection(transport::EventStream& stream, messaging::Stats& loop_stats)
        : client(*this), es(&stream), stats(&loop_stats) {}

    messaging::Client client;
    transport::EventStream* es;
    messaging::Stats* stats;  // this loop's
    SsePosition pos;          // what the next id says
    bool ended = false;

    PeerStatus account(transport::SendStatus st, size_t payload) {
        switch (st) {
            case transport::SendStatus::kWritten:
            case transport::SendStatus::kQueued:
                stats->bytes_out.add(payload);
                return PeerStatus::kSent;
            case transport::SendStatus::kDropped:
                return PeerStatus::kDropped;
            case transport::SendStatus::kOverLimit:
                stats->slow_consumer_disconnects.add();
                SB_INFO("client %s: slow consumer (outbound limit %zu bytes passed): closing",
                        client.id().c_str(), es->behavior().max_backlog);
                ended = true;
                return PeerStatus::kGone;
            case transport::SendStatus::kClosed:
                break;
        }
        ended = true;
        return PeerStatus::kGone;
    }

    // An event without an id (replies, join/leave, disconnect).
    bool send(std::string_view json) {
        std::string& ev = t_event;
        ev.clear();
        appendData(&ev, json);
        stats->messages_out.add();
        return account(es->send(ev), ev.size()) == PeerStatus::kSent;
    }

    PeerStatus deliver(const Delivery& d, bool droppable) override {
        if (ended) {
            return PeerStatus::kGone;
        }
        if (d.event.kind != broker::EventKind::kPublication) {
            std::string json;
            encodeEvent(&json, d.event, false);
            std::string& ev = t_event;
            ev.clear();
            appendData(&ev, json);
            return account(es->send(ev, droppable), ev.size());
        }
        // The data block is the same for every subscriber of the event on this loop: built
        // once (d.shared); the id before it is this stream's.
        std::string local;
        std::string* block = &local;
        if (d.shared != nullptr && !d.gap) {
            block = d.shared;
        }
        if (block->empty()) {
            std::string json;
            encodeEvent(&json, d.event, d.gap);
            appendData(block, json);
        }
        const broker::Publication& p = *d.event.pub;
        broker::StreamPos& slot = pos.channels[p.channel];
        const broker::StreamPos before = slot;
        slot = broker::StreamPos{p.epoch, p.offset};
        std::string& ev = t_event;
        ev.clear();
        ev.append("id: ");
        ev.append(encodeSseId(pos));
        ev.push_back('\n');
        ev.append(*block);
        const PeerStatus st = account(es->send(ev, droppable), ev.size());
        if (st != PeerStatus::kSent) {
            slot = before;  // not delivered: the position stays where the client is
        }
        return st;
    }

    void disconnect(const messaging::Disconnect& d) override {
        if (ended) {
            return;
        }
        std::string json;
        protocol::encodeDisconnect(&json, d.code, d.reason, d.reconnect);
        std::string& ev = t_event;
        ev.clear();
        appendData(&ev, json);
        (void)es->send(ev, true);
        ended = true;
        es->end(d.reason);
    }
};

namespace {

// A POST's answer: the reply the request makes, as the response body.
class PostSink final : public RequestSink {
public:
    PostSink(messaging::Client& c, messaging::Stats& s) : client_(c), stats_(s) {}
    messaging::Client& client() override { return client_; }
    messaging::Stats& stats() override { return stats_; }
    bool reply(const std::string& json) override {
        body_.append(json);
        return true;
    }
    bool acceptsConnect() const override { return false; }
    std::string& body() { return body_; }

private:
    messaging::Client& client_;
    messaging::Stats& stats_;
    std::string body_;
};

HttpReply jsonError(uint16_t status, Error e, std::string_view message) {
    std::string body;
    protocol::encodeError(&body, {}, messaging::errorInfo(e).code, message);
    return HttpReply{.status = status, .content_type = "application/json", .body = body + "\n"};
}

}  // namespace

Sse::Sse(const messaging::Options& options, uint32_t ping_interval_ms)
    : ping_interval_s_(ping_interval_ms / 1000) {
    behavior_.max_backlog = options.outbound_limit;
    std::string farewell;
    protocol::encodeDisconnect(&farewell, messaging::kSlowConsumer.code,
                               messaging::kSlowConsumer.reason, messaging::kSlowConsumer.reconnect);
    appendData(&behavior_.over_limit_farewell, farewell);
    behavior_.heartbeat_ms = ping_interval_ms;
    behavior_.heartbeat.clear();
    appendData(&behavior_.heartbeat, R"({"type":"ping"})");
    behavior_.on_open = [this](transport::EventStream& es) { onOpen(es); };
    behavior_.on_close = [this](transport::EventStream& es, std::string_view) { onClose(es); };
    behavior_.on_shutdown = [](transport::EventStream& es) {
        if (auto* conn = es.data<Connection>()) {
            std::string json;
            protocol::encodeDisconnect(&json, 1001, "server shutting down; reconnect", true);
            conn->send(json);
            conn->ended = true;
        }
    };
}

void Sse::registerRoutes(App& app) {
    StreamRoute route;
    route.behavior = behavior_;
    route.on_request = [this](const http::Request& req) { return checkRequest(req); };
    app.stream("/sse", std::move(route));
    // A request runs on its stream's loop and answers within a round trip of the engine; the
    // timeout only covers a loop that is stuck.
    app.postAsync(
        "/sse",
        [this](const http::Request& req, std::string_view body, HttpResponder r) {
            onPost(req, body, std::move(r));
        },
        30'000);
}

StreamAccept Sse::checkRequest(const http::Request& req) {
    StreamAccept out;
    auto pending = std::make_unique<Pending>();
    const std::string token = requestToken(req);
    if (token.empty()) {
        if (!hub_->anonymousAllowed()) {
            out.status = 401;
            out.code = messaging::errorInfo(Error::kTokenRequired).code;
            out.message =
                "this server needs a connection token: an Authorization: Bearer header or a "
                "token query parameter";
            out.extra_headers = "WWW-Authenticate: Bearer\r\n";
            return out;
        }
    } else {
        auto claims = hub_->verify(token, "connection token");
        if (!claims) {
            out.status = 401;
            out.code = messaging::errorInfo(claims.error().error).code;
            out.message = std::move(claims.error().message);
            out.extra_headers = "WWW-Authenticate: Bearer\r\n";
            return out;
        }
        pending->claims = std::make_unique<auth::Claims>(std::move(*claims));
    }
    pending->channels = queryParams(req.query, "channel");
    pending->user = queryParam(req.query, "user");
    pending->info = queryParam(req.query, "info");
    // Last-Event-ID (an EventSource reconnecting) wins over the parameter (a first request that
    // starts from a stored position).
    std::string id(req.header("Last-Event-ID"));
    if (id.empty()) {
        id = queryParam(req.query, "lastEventId");
    }
    auto resume = parseSseId(id);
    if (!resume) {
        out.status = 400;
        out.code = messaging::errorInfo(Error::kBadRequest).code;
        out.message =
            "Last-Event-ID is not an id this server sent (<session>|<channel>!<epoch>!"
            "<offset>|…)";
        return out;
    }
    pending->resume = std::move(*resume);
    if (pending->resume.session.empty()) {
        pending->resume.session = queryParam(req.query, "session");
    }
    for (const std::string& s : queryParams(req.query, "since")) {
        std::string channel;
        broker::StreamPos pos;
        if (!parseChannelPos(s, &channel, &pos)) {
            out.status = 400;
            out.code = messaging::errorInfo(Error::kBadRequest).code;
            out.message = "since=" + s + ": expected <channel>!<epoch>!<offset>";
            return out;
        }
        pending->resume.channels.try_emplace(channel, std::move(pos));
    }
    if (pending->channels.empty() && pending->resume.session.empty()) {
        out.status = 400;
        out.code = messaging::errorInfo(Error::kBadRequest).code;
        out.message = "name at least one channel (?channel=ns:name) or a session to resume";
        return out;
    }
    out.data = std::move(pending);
    return out;
}

void Sse::onOpen(transport::EventStream& es) {
    const uint32_t loop = es.loop()->id();
    std::unique_ptr<Pending> p;
    if (auto* pending = es.data<Pending>()) {
        p = std::make_unique<Pending>(std::move(*pending));
    }
    auto owned = std::make_unique<Connection>(es, hub_->stats(loop));
    Connection& conn = *owned;
    hub_->open(conn.client, loop);
    es.setData(std::move(owned));  // destroys the Pending (moved from)
    if (!p) {
        return;
    }
    messaging::Hub& hub = *hub_;
    // A reconnect comes back in about a second, spread so a restart's clients do not return at
    // once (the `retry:` field; EventSource waits that long before reconnecting).
    thread_local std::mt19937 rng{std::random_device{}()};
    std::string head =
        "retry: " + std::to_string(std::uniform_int_distribution<int>(500, 2500)(rng)) + "\n\n";
    (void)es.send(head);

    auto r = hub.connect(conn.client, p->user, std::move(p->info), p->resume.session, {},
                         p->claims.get());
    std::string json;
    if (!r) {
        protocol::encodeError(&json, {}, messaging::errorInfo(r.error().error).code,
                              r.error().message);
        conn.send(json);
        conn.ended = true;
        es.end("connect refused");
        return;
    }
    conn.pos.session = r->session_id;
    // Resumed channels: recover each from where this client's last event id says it stopped,
    // which may be behind what the session counted as sent (events lost with the connection).
    std::vector<protocol::RestoredChannel> restored;
    std::vector<std::string> names;  // keep the views alive
    names.reserve(r->channels.size());
    for (messaging::ChannelPosition& ch : r->channels) {
        bool recovered = ch.recovered.value_or(false);
        auto known = p->resume.channels.find(ch.channel);
        if (known != p->resume.channels.end() && known->second.epoch == ch.top.epoch) {
            const broker::StreamPos& from = known->second;
            auto h = hub.history(ch.channel, from, 0, &conn.client);
            for (messaging::Replay::Channel& rc : r->replay.channels) {
                if (rc.channel != ch.channel || !h) {
                    continue;
                }
                std::erase_if(rc.unacked, [&](const broker::PubPtr& q) {
                    return q->epoch == from.epoch && q->offset <= from.offset;
                });
                rc.pubs = std::move(h->result.pubs);
                rc.gap = false;
                recovered = h->result.recovered;
            }
            conn.pos.channels[ch.channel] = from;
        }
        names.push_back(ch.channel);
        restored.push_back({names.back(), ch.top.epoch, ch.top.offset, recovered});
    }
    protocol::encodeConnected(&json, {}, r->client_id, r->session_id, r->resumed, ping_interval_s_,
                              restored, r->user, r->expires_in);
    if (!conn.send(json)) {
        return;
    }
    hub.replay(conn.client, std::move(r->replay));
    // The channels asked for that the session did not bring back.
    for (const std::string& channel : p->channels) {
        if (conn.ended || conn.client.closing()) {
            return;
        }
        bool have = false;
        for (const std::string& n : names) {
            have = have || n == channel;
        }
        if (have) {
            continue;
        }
        std::optional<broker::StreamPos> since;
        if (auto it = p->resume.channels.find(channel); it != p->resume.channels.end()) {
            since = it->second;
        }
        json.clear();
        auto s = hub.subscribe(conn.client, channel, since);
        if (!s) {
            protocol::encodeError(&json, {}, messaging::errorInfo(s.error().error).code,
                                  s.error().message);
            conn.send(json);
            continue;
        }
        const messaging::ChannelPosition& pos = s->position;
        if (since) {
            conn.pos.channels[pos.channel] = *since;
        }
        protocol::encodeSubscribed(&json, {}, pos.channel, pos.top.epoch, pos.top.offset,
                                   pos.recovered);
        if (conn.send(json)) {
            hub.replay(conn.client, std::move(s->replay));
        }
    }
}

void Sse::onClose(transport::EventStream& es) {
    if (auto* conn = es.data<Connection>()) {
        conn->ended = true;
        hub_->close(conn->client);
    }
}

void Sse::onPost(const http::Request& req, std::string_view body, HttpResponder responder) {
    std::string session(req.header("X-Switchboard-Session"));
    if (session.empty()) {
        session = queryParam(req.query, "session");
    }
    if (session.empty()) {
        responder.reply(jsonError(400, Error::kBadRequest,
                                  "name the session: ?session=<id> or X-Switchboard-Session"));
        return;
    }
    // With auth on, the request carries the token of the session's user.
    std::optional<std::string> user;
    if (hub_->authEnabled()) {
        const std::string token = requestToken(req);
        auto claims = hub_->verify(token, "connection token");
        if (token.empty() || !claims) {
            responder.reply(jsonError(401,
                                      token.empty() ? Error::kTokenRequired : Error::kInvalidToken,
                                      token.empty() ? std::string("send the session's token "
                                                                  "(Authorization: Bearer)")
                                                    : claims.error().message));
            return;
        }
        user = claims->sub;
    }
    messaging::Hub* hub = hub_;
    const uint32_t ping_s = ping_interval_s_;
    const bool found = hub->withSessionHolder(
        session, [hub, ping_s, responder, user, frame = std::string(body)](messaging::Client* c) {
            if (c == nullptr) {
                responder.reply(jsonError(410, Error::kNotFound,
                                          "the session's stream has ended: open GET /sse again"));
                return;
            }
            if (user && c->identity().user != *user) {
                responder.reply(jsonError(403, Error::kPermissionDenied,
                                          "the session belongs to another user"));
                return;
            }
            messaging::Stats& stats = hub->localStats();
            stats.messages_in.add();
            stats.bytes_in.add(frame.size());
            switch (hub->admit(*c)) {
                case messaging::Admission::kOk:
                    break;
                case messaging::Admission::kLimited:
                case messaging::Admission::kAbuse:
                    responder.reply(jsonError(429, Error::kRateLimited,
                                              "too many requests: slow down (limit " +
                                                  std::to_string(hub->options().rate_limit) +
                                                  "/s)"));
                    return;
            }
            PostSink sink(*c, stats);
            handleRequest(*hub, sink, frame, ping_s);
            responder.reply(HttpReply{.status = 200,
                                      .content_type = "application/json",
                                      .body = std::move(sink.body()) + "\n"});
        });
    if (!found) {
        responder.reply(jsonError(404, Error::kNotFound,
                                  "no stream of this server holds session " + session +
                                      ": open GET /sse?session=… first (requests go to the "
                                      "server that holds the stream)"));
    }
}

}  // namespace sb::server
