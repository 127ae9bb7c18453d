#include "server/session_open.h"

#include "protocol/codec.h"
#include "server/native_requests.h"

namespace sb::server {

using messaging::Error;

namespace {

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

SessionRefusal refuse(uint16_t status, Error e, std::string message,
                      std::string extra_headers = {}) {
    return SessionRefusal{status, std::string(messaging::errorInfo(e).code), std::move(message),
                          std::move(extra_headers)};
}

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

}  // namespace

HttpReply jsonError(uint16_t status, Error e, std::string_view message) {
    std::string body;
    protocol::encodeError(&body, {}, messaging::errorInfo(e).code, message);
    return HttpReply{.status = status, .content_type = "application/json", .body = body + "\n"};
}

std::string encodeEventId(const SessionPosition& pos) {
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

std::optional<SessionPosition> parseEventId(std::string_view id) {
    SessionPosition out;
    const size_t bar = id.find('|');
    out.session = std::string(id.substr(0, bar));
    if (out.session.find('!') != std::string::npos) {
        return std::nullopt;
    }
    if (bar == std::string_view::npos) {
        return out;
    }
    std::string_view rest = id.substr(bar + 1);
    for (;;) {
        const size_t next = rest.find('|');
        std::string channel;
        broker::StreamPos pos;
        if (!parseChannelPos(rest.substr(0, next), &channel, &pos)) {
            return std::nullopt;
        }
        out.channels[channel] = std::move(pos);
        if (next == std::string_view::npos) {
            return out;
        }
        rest = rest.substr(next + 1);
    }
}

SessionRefusal parseSessionRequest(const messaging::Hub& hub, const http::Request& req,
                                   bool require_target, SessionRequest* out) {
    const std::string token = requestToken(req);
    if (token.empty()) {
        if (!hub.anonymousAllowed()) {
            return refuse(401, Error::kTokenRequired,
                          "this server needs a connection token: an Authorization: Bearer "
                          "header or a token query parameter",
                          "WWW-Authenticate: Bearer\r\n");
        }
    } else {
        auto claims = hub.verify(token, "connection token");
        if (!claims) {
            return refuse(401, claims.error().error, std::move(claims.error().message),
                          "WWW-Authenticate: Bearer\r\n");
        }
        out->claims = std::make_unique<auth::Claims>(std::move(*claims));
    }
    out->channels = queryParams(req.query, "channel");
    out->user = queryParam(req.query, "user");
    auto info = protocol::parseInfo(queryParam(req.query, "info"));
    if (!info) {
        return refuse(400, Error::kBadRequest, info.error());
    }
    out->info = std::move(*info);
    // Last-Event-ID (an EventSource reconnecting) wins over the parameter (a first request that
    // starts from a stored position).
    std::string id(req.header("Last-Event-ID"));
    if (id.empty()) {
        id = queryParam(req.query, "lastEventId");
    }
    auto resume = parseEventId(id);
    if (!resume) {
        return refuse(400, Error::kBadRequest,
                      "Last-Event-ID / lastEventId is not an id this server sent "
                      "(<session>|<channel>!<epoch>!<offset>|…)");
    }
    out->resume = std::move(*resume);
    if (out->resume.session.empty()) {
        out->resume.session = queryParam(req.query, "session");
    }
    for (const std::string& s : queryParams(req.query, "since")) {
        std::string channel;
        broker::StreamPos pos;
        if (!parseChannelPos(s, &channel, &pos)) {
            return refuse(400, Error::kBadRequest,
                          "since=" + s + ": expected <channel>!<epoch>!<offset>");
        }
        out->resume.channels.try_emplace(channel, std::move(pos));
    }
    if (require_target && out->channels.empty() && out->resume.session.empty()) {
        return refuse(400, Error::kBadRequest,
                      "name at least one channel (?channel=ns:name) or a session to resume");
    }
    return {};
}

bool openSession(messaging::Hub& hub, messaging::Client& client, SessionRequest& req,
                 uint32_t ping_interval_s, const std::function<bool(const std::string&)>& send,
                 SessionPosition* pos) {
    auto r = hub.connect(client, req.user, std::move(req.info), req.resume.session, {},
                         req.claims.get());
    std::string json;
    if (!r) {
        protocol::encodeError(&json, {}, messaging::errorInfo(r.error().error).code,
                              r.error().message);
        send(json);
        return false;
    }
    pos->session = r->session_id;
    // Resumed channels: recover each from where the client says it stopped, which may be
    // behind what the session counted as sent (events lost with the connection).
    std::vector<protocol::RestoredChannel> restored;
    std::vector<std::string> names;  // keep the views of `restored` alive
    names.reserve(r->channels.size());
    for (messaging::ChannelPosition& ch : r->channels) {
        bool recovered = ch.recovered.value_or(false);
        auto known = req.resume.channels.find(ch.channel);
        if (known != req.resume.channels.end() && known->second.epoch == ch.top.epoch) {
            const broker::StreamPos& from = known->second;
            auto h = hub.history(ch.channel, from, 0, &client);
            for (messaging::Replay::Channel& rc : r->replay.channels) {
                if (rc.channel != ch.channel || !h) {
                    continue;
                }
                // Un-acked publications stay (at-least-once: sent again until acked, even
                // those the client says it had); after them, what history has past `from`.
                rc.pubs = std::move(h->result.pubs);
                rc.gap = false;
                recovered = h->result.recovered;
            }
            pos->channels[ch.channel] = from;
        }
        names.push_back(ch.channel);
        restored.push_back({names.back(), ch.top.epoch, ch.top.offset, recovered});
    }
    protocol::encodeConnected(&json, {}, r->client_id, r->session_id, r->resumed, ping_interval_s,
                              restored, r->user, r->expires_in);
    if (!send(json)) {
        return true;
    }
    hub.replay(client, std::move(r->replay));
    // The channels asked for that the session did not bring back.
    for (const std::string& channel : req.channels) {
        if (client.closing()) {
            return true;
        }
        bool have = false;
        for (const std::string& n : names) {
            have = have || n == channel;
        }
        if (have) {
            continue;
        }
        std::optional<broker::StreamPos> since;
        if (auto it = req.resume.channels.find(channel); it != req.resume.channels.end()) {
            since = it->second;
        }
        json.clear();
        auto s = hub.subscribe(client, channel, since);
        if (!s) {
            protocol::encodeError(&json, {}, messaging::errorInfo(s.error().error).code,
                                  s.error().message);
            if (!send(json)) {
                return true;
            }
            continue;
        }
        const messaging::ChannelPosition& p = s->position;
        if (since) {
            pos->channels[p.channel] = *since;
        }
        protocol::encodeSubscribed(&json, {}, p.channel, p.top.epoch, p.top.offset, p.recovered);
        if (send(json)) {
            hub.replay(client, std::move(s->replay));
        }
    }
    return true;
}

void postToSession(messaging::Hub& hub, const http::Request& req, std::string_view body,
                   HttpResponder responder, uint32_t ping_interval_s, SessionRelay* relay) {
    RelayRequest r{.kind = RelayRequest::Kind::kPost};
    r.session = std::string(req.header("X-Switchboard-Session"));
    if (r.session.empty()) {
        r.session = queryParam(req.query, "session");
    }
    if (r.session.empty()) {
        responder.reply(jsonError(400, Error::kBadRequest,
                                  "name the session: ?session=<id> or X-Switchboard-Session"));
        return;
    }
    // With auth on, a request for an authenticated session carries its user's token; an
    // anonymous session (an anonymous namespace) is reached by its id alone, as its stream was.
    if (hub.authEnabled()) {
        const std::string token = requestToken(req);
        if (!token.empty()) {
            auto claims = hub.verify(token, "connection token");
            if (!claims) {
                responder.reply(jsonError(401, Error::kInvalidToken, claims.error().message));
                return;
            }
            r.user = claims->sub;
        }
    }
    r.body = std::string(body);
    if (runSessionPost(hub, r, responder, ping_interval_s)) {
        return;
    }
    // Held by another node (behind a load balancer): relayed there.
    if (relay != nullptr && relay->forward(r, responder, kRelayPostTimeoutMs)) {
        return;
    }
    responder.reply(jsonError(404, Error::kNotFound,
                              "no stream of this server holds session " + r.session +
                                  ": open GET /sse?session=… first (requests go to the "
                                  "server that holds the stream)"));
}

bool runSessionPost(messaging::Hub& hub_ref, const RelayRequest& r, HttpResponder responder,
                    uint32_t ping_interval_s) {
    messaging::Hub* hub = &hub_ref;
    const uint32_t ping_s = ping_interval_s;
    return hub->withSessionHolder(r.session, [hub, ping_s, responder, user = r.user,
                                              frame = r.body](messaging::Client* c) {
        if (c != nullptr && !c->remoteRequests()) {
            // Held by a /ws connection: its requests come on its socket.
            responder.reply(jsonError(404, Error::kNotFound,
                                      "no stream or poller of this server holds the "
                                      "session (a WebSocket does: send requests there)"));
            return;
        }
        if (c == nullptr) {
            responder.reply(jsonError(410, Error::kNotFound,
                                      "the session's stream or poller has ended: open it again"));
            return;
        }
        if (!user && c->identity().authenticated) {
            responder.reply(jsonError(401, Error::kTokenRequired,
                                      "send the session's token (Authorization: Bearer)"));
            return;
        }
        if (user && (!c->identity().authenticated || c->identity().user != *user)) {
            responder.reply(
                jsonError(403, Error::kPermissionDenied, "the session belongs to another user"));
            return;
        }
        messaging::Stats& stats = hub->localStats();
        stats.messages_in.add();
        stats.bytes_in.add(frame.size());
        switch (hub->admit(*c)) {
            case messaging::Admission::kOk:
                break;
            case messaging::Admission::kAbuse:
                // As on /ws: a session that keeps going past the limit is ended (1008).
                hub->end(*c, messaging::kRateLimitAbuse);
                [[fallthrough]];
            case messaging::Admission::kLimited:
                responder.reply(jsonError(429, Error::kRateLimited,
                                          "too many requests: slow down (limit " +
                                              std::to_string(hub->options().rate_limit) + "/s)"));
                return;
        }
        PostSink sink(*c, stats);
        handleRequest(*hub, sink, frame, ping_s);
        responder.reply(HttpReply{.status = 200,
                                  .content_type = "application/json",
                                  .body = std::move(sink.body()) + "\n"});
    });
}

}  // namespace sb::server
