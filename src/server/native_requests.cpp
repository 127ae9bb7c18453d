#include "server/native_requests.h"

#include "base/log.h"

namespace sb::server {

using messaging::Error;

namespace {

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
std::string decodeValue(std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() && hexValue(v[i + 1]) >= 0 && hexValue(v[i + 2]) >= 0) {
            out += static_cast<char>(hexValue(v[i + 1]) * 16 + hexValue(v[i + 2]));
            i += 2;
        } else {
            out += v[i] == '+' ? ' ' : v[i];
        }
    }
    return out;
}

void replyError(RequestSink& conn, std::string_view id_json, Error e, std::string_view message) {
    std::string json;
    protocol::encodeError(&json, id_json, messaging::errorInfo(e).code, message);
    conn.reply(json);
}

}  // namespace

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

// Native JSON of an event.
std::string shutdownNotice(uint32_t reconnect_after_ms) {
    std::string json;
    protocol::encodeDisconnect(&json, 1001, "server shutting down; reconnect", true);
    json.pop_back();  // the closing brace: one more field
    json += R"(,"reconnect_after_ms":)" + std::to_string(reconnect_after_ms) + "}";
    return json;
}

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

messaging::PeerStatus peerStatusOf(transport::SendStatus st, size_t payload,
                                   messaging::Stats& stats, const messaging::Client& c,
                                   size_t limit) {
    switch (st) {
        case transport::SendStatus::kWritten:
        case transport::SendStatus::kQueued:
            stats.bytes_out.add(payload);
            return messaging::PeerStatus::kSent;
        case transport::SendStatus::kDropped:
            return messaging::PeerStatus::kDropped;
        case transport::SendStatus::kOverLimit:
            stats.slow_consumer_disconnects.add();
            SB_INFO("client %s: slow consumer (outbound limit %zu bytes passed): closing",
                    c.id().c_str(), limit);
            return messaging::PeerStatus::kGone;
        case transport::SendStatus::kClosed:
            break;
    }
    return messaging::PeerStatus::kGone;
}

std::string queryParam(std::string_view query, std::string_view name) {
    auto all = queryParams(query, name);
    return all.empty() ? std::string() : std::move(all.front());
}

std::vector<std::string> queryParams(std::string_view query, std::string_view name) {
    std::vector<std::string> out;
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = pair.find('=');
        if (eq == std::string_view::npos || pair.substr(0, eq) != name) {
            continue;
        }
        out.push_back(decodeValue(pair.substr(eq + 1)));
    }
    return out;
}

void handleRequest(messaging::Hub& hub, RequestSink& conn, std::string_view frame,
                   uint32_t ping_interval_s) {
    auto parsed = protocol::parseRequest(frame);
    if (!parsed) {
        conn.stats().protocol_errors.add();
        replyError(conn, parsed.error().id_json, errorOf(parsed.error().kind),
                   parsed.error().message);
        return;
    }
    protocol::Request& req = *parsed;
    messaging::Client& client = conn.client();
    std::string json;
    if (req.type == protocol::MsgType::kPing) {
        protocol::encodePong(&json, req.id_json);
        conn.reply(json);
        return;
    }
    if (req.type == protocol::MsgType::kConnect && !conn.acceptsConnect()) {
        replyError(conn, req.id_json, Error::kBadRequest,
                   "this session is connected by its stream: send the other requests here");
        return;
    }
    if (req.type == protocol::MsgType::kConnect) {
        // A token in connect wins over the one the upgrade carried.
        auto r = hub.connect(client, req.user, std::move(req.info), req.session, req.token,
                             conn.handshakeClaims());
        conn.clearHandshakeClaims();  // used (or refused): not kept
        if (!r) {
            replyError(conn, req.id_json, r.error().error, r.error().message);
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
                                  ping_interval_s, restored, r->user, r->expires_in);
        if (conn.reply(json)) {
            hub.replay(client, std::move(r->replay));
        }
        return;
    }
    if (!client.connected()) {
        replyError(conn, req.id_json, Error::kNotConnected, "send a connect message first");
        return;
    }
    switch (req.type) {
        case protocol::MsgType::kSubscribe: {
            auto r = hub.subscribe(client, req.channel, position(req.since), req.token);
            if (!r) {
                replyError(conn, req.id_json, r.error().error, r.error().message);
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
                replyError(conn, req.id_json, r.error().error, r.error().message);
                return;
            }
            protocol::encodeUnsubscribed(&json, req.id_json, *r);
            conn.reply(json);
            return;
        }
        case protocol::MsgType::kPublish: {
            auto r = hub.publish(&client, req.channel, std::move(req.data), req.idempotency_key);
            if (!r) {
                replyError(conn, req.id_json, r.error().error, r.error().message);
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
                replyError(conn, req.id_json, r.error().error, r.error().message);
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
                replyError(conn, req.id_json, r.error().error, r.error().message);
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
                replyError(conn, req.id_json, r.error().error, r.error().message);
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
                replyError(conn, req.id_json, r.error().error, r.error().message);
                return;
            }
            conn.watchExpiry();
            protocol::encodeRefreshed(&json, req.id_json, *r);
            conn.reply(json);
            return;
        }
        default:
            replyError(conn, req.id_json, Error::kUnknownType, "unsupported request");
            return;
    }
}

}  // namespace sb::server
