// The /ws adapter: one Connection per WebSocket (its SocketData), holding the core's Client
// and implementing messaging::Peer over the socket. Replies are written before the Hub replays
// what a subscribe or resume owes, so the client always sees the reply first.
#include "server/native_ws.h"

#include "base/log.h"
#include "loop/event_loop.h"
#include "protocol/codec.h"
#include "ws/frame.h"

namespace sb::server {

using messaging::Delivery;
using messaging::Error;
using messaging::PeerStatus;

namespace {

thread_local std::string t_json;  // reply / one-off event scratch (the loop's thread)

std::span<const uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The header length of a server (unmasked) frame, from its second byte.
size_t frameHeaderLength(std::string_view frame) {
    const uint8_t len7 = static_cast<uint8_t>(frame[1]) & 0x7f;
    return len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
}

// Native JSON of an event.
void encodeEvent(std::string* out, const broker::Event& ev, bool gap) {
    if (ev.kind == broker::EventKind::kPublication) {
        const broker::Publication& p = *ev.pub;
        protocol::encodeMessage(out, p.channel, p.epoch, p.offset, p.data, gap);
    } else {
        protocol::encodeJoinLeave(out, ev.kind == broker::EventKind::kJoin, ev.channel,
                                  ev.who->client_id, ev.who->user, ev.who->info_json);
    }
}

Error errorOf(protocol::ParseErrorKind k) {
    switch (k) {
        case protocol::ParseErrorKind::kBadJson:
            return Error::kBadJson;
        case protocol::ParseErrorKind::kBadRequest:
            return Error::kBadRequest;
        case protocol::ParseErrorKind::kUnknownType:
            return Error::kUnknownType;
        case protocol::ParseErrorKind::kInternal:
            break;
    }
    return Error::kInternal;
}

// The verified claims of the token the upgrade request carried, until on_open takes them.
struct Pending final : transport::SocketData {
    auth::Claims claims;
};

int hexValue(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// The value of `name` in a query string (percent-decoded, '+' as space); empty if absent.
std::string queryParam(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = pair.find('=');
        if (pair.substr(0, eq) != name || eq == std::string_view::npos) {
            continue;
        }
        std::string out;
        const std::string_view v = pair.substr(eq + 1);
        for (size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '%' && i + 2 < v.size() && hexValue(v[i + 1]) >= 0 &&
                hexValue(v[i + 2]) >= 0) {
                out += static_cast<char>(hexValue(v[i + 1]) * 16 + hexValue(v[i + 2]));
                i += 2;
            } else {
                out += v[i] == '+' ? ' ' : v[i];
            }
        }
        return out;
    }
    return {};
}

// The credentials of an upgrade request: "Authorization: Bearer T" (RFC 6750 §2.1), else the
// "token" query parameter (browsers cannot set headers on a WebSocket).
std::string requestToken(const http::Request& req) {
    std::string_view h = req.header("Authorization");
    if (h.size() > 7 && (h.substr(0, 7) == "Bearer " || h.substr(0, 7) == "bearer ")) {
        h.remove_prefix(7);
        while (!h.empty() && h.front() == ' ') {
            h.remove_prefix(1);
        }
        return std::string(h);
    }
    return queryParam(req.query, "token");
}

std::optional<broker::StreamPos> position(const std::optional<protocol::Since>& since) {
    if (!since) {
        return std::nullopt;
    }
    return broker::StreamPos{since->epoch, since->offset};
}

}  // namespace

struct NativeWs::Connection final : public transport::SocketData,
                                    public messaging::Peer,
                                    private loop::TimerNode {
    Connection(transport::WebSocket& socket, messaging::Stats& loop_stats, messaging::Hub* h)
        : client(*this), ws(&socket), stats(&loop_stats), hub(h) {
        TimerNode::fire = &Connection::onExpiry;
    }
    ~Connection() override { ws->loop()->timers().cancel(this); }

    messaging::Client client;
    transport::WebSocket* ws;
    messaging::Stats* stats;  // this loop's
    messaging::Hub* hub;
    // The upgrade request's verified token, until connect uses it (null: none came).
    std::unique_ptr<auth::Claims> handshake_claims;
    bool ended = false;

    // Arms the token expiry check (after connect and after each refresh).
    void watchExpiry() {
        if (auto ms = hub->msUntilExpiry(client)) {
            ws->loop()->timers().schedule(this, *ms);
        } else {
            ws->loop()->timers().cancel(this);
        }
    }

    static void onExpiry(loop::TimerNode* node) {
        auto* self = static_cast<Connection*>(node);
        if (self->ended) {
            return;
        }
        if (self->hub->tokenExpired(self->client)) {
            SB_INFO("client %s: token expired and was not refreshed: closing %u",
                    self->client.id().c_str(), messaging::kTokenExpired.code);
            self->disconnect(messaging::kTokenExpired);
            return;
        }
        self->watchExpiry();  // refreshed meanwhile, or the wheel fired early
    }

    // A status of the transport as the core sees it; counts what was sent.
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
                SB_INFO("client %s: slow consumer (outbound limit %zu bytes passed): closing %u",
                        client.id().c_str(), ws->behavior().max_backlog,
                        ws->behavior().over_limit_close_code);
                ended = true;
                return PeerStatus::kGone;
            case transport::SendStatus::kClosed:
                break;
        }
        ended = true;
        return PeerStatus::kGone;
    }

    // A reply to a request; false once the connection is gone.
    bool reply(const std::string& json) {
        stats->messages_out.add();
        return account(ws->sendText(json), json.size()) == PeerStatus::kSent;
    }

    void replyError(std::string_view id_json, Error e, std::string_view message) {
        std::string& json = t_json;
        json.clear();
        protocol::encodeError(&json, id_json, messaging::errorInfo(e).code, message);
        reply(json);
    }

    void replyFailure(std::string_view id_json, const messaging::Failure& f) {
        replyError(id_json, f.error, f.message);
    }

    PeerStatus deliver(const Delivery& d, bool droppable) override {
        if (ended) {
            return PeerStatus::kGone;
        }
        if (d.shared == nullptr || d.gap) {
            std::string& json = t_json;
            json.clear();
            encodeEvent(&json, d.event, d.gap);
            return account(ws->sendText(json, {.droppable = droppable}), json.size());
        }
        // Fan-out: the frame is built once per event and loop, then written to every
        // subscriber (compressed per connection when it negotiated permessage-deflate).
        std::string& frame = *d.shared;
        if (frame.empty()) {
            std::string& json = t_json;
            json.clear();
            encodeEvent(&json, d.event, false);
            uint8_t head[ws::kMaxFrameHeader];
            const size_t hl =
                ws::writeFrameHeader(head, ws::Opcode::kText, true, false, json.size(), nullptr);
            frame.assign(reinterpret_cast<const char*>(head), hl);
            frame.append(json);
        }
        const std::string_view payload = std::string_view(frame).substr(frameHeaderLength(frame));
        return account(ws->sendPrepared(bytes(frame), ws::Opcode::kText, bytes(payload), droppable),
                       payload.size());
    }

    void disconnect(const messaging::Disconnect& d) override {
        if (ended) {
            return;
        }
        std::string& json = t_json;
        json.clear();
        protocol::encodeDisconnect(&json, d.code, d.reason, d.reconnect);
        // Droppable: on a connection already at its outbound limit the event is skipped
        // rather than turning this close into a slow-consumer 4000; the close frame below
        // carries the code and reason either way.
        (void)ws->sendText(json, {.droppable = true});
        ended = true;
        ws->end(d.code, d.reason);
    }
};

NativeWs::NativeWs(const messaging::Options& options, const transport::WebSocketBehavior& base,
                   bool compression)
    : behavior_(base), compression_(compression), ping_interval_s_(base.ping_interval_ms / 1000) {
    // The one outbound limit of a messaging connection: replies, pongs, replays and fan-out
    // alike are refused past it, and the client is told why before the close.
    behavior_.max_message_size = options.effectiveMaxMessageSize();
    behavior_.max_backlog = options.outbound_limit;
    behavior_.over_limit_close_code = messaging::kSlowConsumer.code;
    behavior_.over_limit_farewell.clear();
    protocol::encodeDisconnect(&behavior_.over_limit_farewell, messaging::kSlowConsumer.code,
                               messaging::kSlowConsumer.reason, messaging::kSlowConsumer.reconnect);
    behavior_.idle_close_code = messaging::kHeartbeatTimeout.code;
    behavior_.on_open = [this](transport::WebSocket& ws) { onOpen(ws); };
    behavior_.on_message = [this](transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
        onMessage(ws, op, d);
    };
    behavior_.on_close = [this](transport::WebSocket& ws, uint16_t, std::string_view) {
        onClose(ws);
    };
}

WsRoute NativeWs::route() {
    WsRoute r;
    r.subprotocols = {std::string(protocol::kSubprotocol)};
    r.deflate.enabled = compression_;
    r.behavior = behavior_;
    r.on_upgrade = [this](const http::Request& req) { return checkUpgrade(req); };
    return r;
}

UpgradeCheck NativeWs::checkUpgrade(const http::Request& req) {
    UpgradeCheck out;
    std::string token = requestToken(req);
    if (token.empty()) {
        if (!hub_->anonymousAllowed()) {
            out.status = 401;
            out.code = messaging::errorInfo(Error::kTokenRequired).code;
            out.message =
                "this server needs a connection token: an Authorization: Bearer header, a token "
                "query parameter, or \"token\" in the connect message";
        }
        return out;
    }
    // Verified here, once: a bad token costs no WebSocket, and connect takes the identity from
    // these claims (re-checking only their expiry).
    auto claims = hub_->verify(token, "connection token");
    if (!claims) {
        out.status = 401;
        out.code = messaging::errorInfo(claims.error().error).code;
        out.message = std::move(claims.error().message);
        return out;
    }
    auto pending = std::make_unique<Pending>();
    pending->claims = std::move(*claims);
    out.data = std::move(pending);
    return out;
}

void NativeWs::onOpen(transport::WebSocket& ws) {
    const uint32_t loop = ws.loop()->id();
    std::unique_ptr<auth::Claims> claims;
    if (auto* pending = ws.data<Pending>()) {  // only on_upgrade sets data before on_open
        claims = std::make_unique<auth::Claims>(std::move(pending->claims));
    }
    auto conn = std::make_unique<Connection>(ws, hub_->stats(loop), hub_);
    conn->handshake_claims = std::move(claims);
    hub_->open(conn->client, loop);
    ws.setData(std::move(conn));
}

void NativeWs::onClose(transport::WebSocket& ws) {
    if (auto* conn = ws.data<Connection>()) {
        conn->ended = true;
        hub_->close(conn->client);
    }
}

void NativeWs::onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data) {
    auto* conn = ws.data<Connection>();
    if (conn == nullptr || conn->ended) {
        return;
    }
    conn->stats->messages_in.add();
    conn->stats->bytes_in.add(data.size());
    switch (hub_->admit(conn->client)) {
        case messaging::Admission::kOk:
            break;
        case messaging::Admission::kLimited:
            conn->replyError({}, Error::kRateLimited,
                             "too many requests: slow down (limit " +
                                 std::to_string(hub_->options().rate_limit) + "/s)");
            return;
        case messaging::Admission::kAbuse:
            conn->disconnect(messaging::kRateLimitAbuse);
            return;
    }
    if (op != ws::Opcode::kText) {
        conn->replyError({}, Error::kBadFrame, "send JSON in text frames, not binary");
        return;
    }
    handle(*conn, {reinterpret_cast<const char*>(data.data()), data.size()});
}

void NativeWs::handle(Connection& conn, std::string_view frame) {
    auto parsed = protocol::parseRequest(frame);
    if (!parsed) {
        conn.stats->protocol_errors.add();
        conn.replyError(parsed.error().id_json, errorOf(parsed.error().kind),
                        parsed.error().message);
        return;
    }
    protocol::Request& req = *parsed;
    messaging::Hub& hub = *hub_;
    messaging::Client& client = conn.client;
    std::string json;
    if (req.type == protocol::MsgType::kPing) {
        protocol::encodePong(&json, req.id_json);
        conn.reply(json);
        return;
    }
    if (req.type == protocol::MsgType::kConnect) {
        // A token in connect wins over the one the upgrade carried.
        auto r = hub.connect(client, req.user, std::move(req.info), req.session, req.token,
                             conn.handshake_claims.get());
        conn.handshake_claims.reset();  // used (or refused): not kept
        if (!r) {
            conn.replyFailure(req.id_json, r.error());
            return;
        }
        conn.watchExpiry();
        std::vector<protocol::RestoredChannel> restored;
        restored.reserve(r->channels.size());
        for (const auto& ch : r->channels) {
            restored.push_back(
                {ch.channel, ch.top.epoch, ch.top.offset, ch.recovered.value_or(false)});
        }
        protocol::encodeConnected(&json, req.id_json, r->client_id, r->session_id, r->resumed,
                                  ping_interval_s_, restored, r->user, r->expires_in);
        if (conn.reply(json)) {
            hub.replay(client, std::move(r->replay));
        }
        return;
    }
    if (!client.connected()) {
        conn.replyError(req.id_json, Error::kNotConnected, "send a connect message first");
        return;
    }
    switch (req.type) {
        case protocol::MsgType::kSubscribe: {
            auto r = hub.subscribe(client, req.channel, position(req.since), req.token);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            const messaging::ChannelPosition& p = r->position;
            protocol::encodeSubscribed(&json, req.id_json, p.channel, p.top.epoch, p.top.offset,
                                       p.recovered);
            if (conn.reply(json)) {
                hub.replay(client, std::move(r->replay));
            }
            return;
        }
        case protocol::MsgType::kUnsubscribe: {
            auto r = hub.unsubscribe(client, req.channel);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            protocol::encodeUnsubscribed(&json, req.id_json, *r);
            conn.reply(json);
            return;
        }
        case protocol::MsgType::kPublish: {
            auto r = hub.publish(&client, req.channel, std::move(req.data), req.idempotency_key);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            protocol::encodePublished(&json, req.id_json, r->channel, r->pos.epoch, r->pos.offset,
                                      r->duplicate);
            conn.reply(json);
            return;
        }
        case protocol::MsgType::kPresence: {
            auto r = hub.presence(req.channel, &client);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            std::vector<protocol::PresenceEntry> entries;
            entries.reserve(r->clients.size());
            for (const auto& w : r->clients) {
                entries.push_back({w->client_id, w->user, w->info_json});
            }
            protocol::encodePresence(&json, req.id_json, r->channel, entries);
            conn.reply(json);
            return;
        }
        case protocol::MsgType::kHistory: {
            auto r = hub.history(req.channel, position(req.since), req.limit, &client);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            std::vector<protocol::HistoryItem> items;
            items.reserve(r->result.pubs.size());
            for (const auto& p : r->result.pubs) {
                items.push_back({p->offset, p->data});
            }
            std::optional<bool> recovered;
            if (req.since) {
                recovered = r->result.recovered;
            }
            protocol::encodeHistory(&json, req.id_json, r->channel, r->result.top.epoch,
                                    r->result.top.offset, recovered, items);
            conn.reply(json);
            return;
        }
        case protocol::MsgType::kAck: {
            auto r = hub.ack(client, req.channel, req.offset);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            if (!req.id_json.empty()) {
                protocol::encodeAcked(&json, req.id_json);
                conn.reply(json);
            }
            return;
        }
        case protocol::MsgType::kRefresh: {
            auto r = hub.refresh(client, req.token);
            if (!r) {
                conn.replyFailure(req.id_json, r.error());
                return;
            }
            conn.watchExpiry();
            protocol::encodeRefreshed(&json, req.id_json, *r);
            conn.reply(json);
            return;
        }
        default:
            conn.replyError(req.id_json, Error::kUnknownType, "unsupported request");
            return;
    }
}

}  // namespace sb::server
