// The /ws adapter: one Connection per WebSocket (its SocketData), holding the core's Client
// and implementing messaging::Peer over the socket. Replies are written before the Hub replays
// what a subscribe or resume owes, so the client always sees the reply first.
#include "server/native_ws.h"

#include <cstring>

#include "base/log.h"
#include "loop/event_loop.h"
#include "protocol/codec.h"
#include "server/native_requests.h"
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

// The verified claims of the token the upgrade request carried, until on_open takes them.
struct Pending final : transport::SocketData {
    auth::Claims claims;
};

}  // namespace

struct NativeWs::Connection final : public transport::SocketData,
                                    public messaging::Peer,
                                    public RequestSink,
                                    private loop::TimerNode {
    Connection(transport::WebSocket& socket, messaging::Stats& loop_stats, messaging::Hub* h)
        : Peer(socket.sharesFrames() ? kDeflatedWebSocketSlot : kWebSocketSlot),
          client_(*this),
          ws(&socket),
          stats_(&loop_stats),
          hub(h) {
        TimerNode::fire = &Connection::onExpiry;
    }
    ~Connection() override { ws->loop()->timers().cancel(this); }

    messaging::Client client_;
    transport::WebSocket* ws;
    messaging::Stats* stats_;  // this loop's
    messaging::Hub* hub;
    // The upgrade request's verified token, until connect uses it (null: none came).
    std::unique_ptr<auth::Claims> handshake_claims;
    bool ended = false;

    messaging::Client& client() override { return client_; }
    messaging::Stats& stats() override { return *stats_; }
    auth::Claims* handshakeClaims() override { return handshake_claims.get(); }
    void clearHandshakeClaims() override { handshake_claims.reset(); }

    // Arms the token expiry check (after connect and after each refresh).
    void watchExpiry() override {
        if (auto ms = hub->msUntilExpiry(client_)) {
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
        if (self->hub->tokenExpired(self->client_)) {
            SB_INFO("client %s: token expired and was not refreshed: closing %u",
                    self->client_.id().c_str(), messaging::kTokenExpired.code);
            self->disconnect(messaging::kTokenExpired);
            return;
        }
        self->watchExpiry();  // refreshed meanwhile, or the wheel fired early
    }

    // A status of the transport as the core sees it; counts what was sent.
    PeerStatus account(transport::SendStatus st, size_t payload) {
        const PeerStatus ps =
            peerStatusOf(st, payload, *stats_, client_, ws->behavior().max_backlog);
        ended = ended || ps == PeerStatus::kGone;
        return ps;
    }

    // A reply to a request; false once the connection is gone.
    bool reply(const std::string& json) override {
        stats_->messages_out.add();
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
        // subscriber (compressed per connection when it negotiated permessage-deflate with
        // context takeover; compressed once, in its own slot, when it did not).
        std::string& frame = *d.shared;
        if (scratchSlot() == kDeflatedWebSocketSlot) {
            // Slot layout: the JSON's length (8 bytes, for the byte counters), then the frame.
            size_t json_size = 0;
            if (frame.empty()) {
                std::string& json = t_json;
                json.clear();
                encodeEvent(&json, d.event, false);
                json_size = json.size();
                frame.assign(reinterpret_cast<const char*>(&json_size), sizeof json_size);
                transport::WebSocket::buildSharedFrame(ws->behavior(), ws::Opcode::kText,
                                                       bytes(json), &frame);
            } else {
                std::memcpy(&json_size, frame.data(), sizeof json_size);
            }
            const std::string_view wire = std::string_view(frame).substr(sizeof json_size);
            return account(ws->sendFrameBytes(bytes(wire), droppable), json_size);
        }
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
                   const ws::DeflateServerPolicy& deflate)
    : behavior_(base), deflate_(deflate), ping_interval_s_(base.ping_interval_ms / 1000) {
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
    behavior_.on_close = [this](transport::WebSocket& ws, uint16_t code, std::string_view) {
        onClose(ws, code);
    };
    behavior_.on_shutdown = [this](transport::WebSocket& ws) {
        // Before the 1001 close: when to come back. Not counted against the outbound limit's
        // policy: the connection is ending either way.
        (void)ws.sendText(shutdownNotice(reconnect_delay_ ? reconnect_delay_() : 0),
                          {.droppable = true});
    };
}

WsRoute NativeWs::route() {
    WsRoute r;
    r.subprotocols = {std::string(protocol::kSubprotocol)};
    r.deflate = deflate_;
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
                "this server needs a connection token on the upgrade: an Authorization: Bearer "
                "header or a token query parameter (\"token\" in connect works only where some "
                "namespace takes anonymous clients)";
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
    hub_->open(conn->client_, loop);
    ws.setData(std::move(conn));
}

void NativeWs::onClose(transport::WebSocket& ws, uint16_t code) {
    if (auto* conn = ws.data<Connection>()) {
        conn->ended = true;
        hub_->close(conn->client_, code);
    }
}

void NativeWs::onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data) {
    auto* conn = ws.data<Connection>();
    if (conn == nullptr || conn->ended) {
        return;
    }
    conn->stats_->messages_in.add();
    conn->stats_->bytes_in.add(data.size());
    switch (hub_->admit(conn->client_)) {
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
    handleRequest(*hub_, *conn, {reinterpret_cast<const char*>(data.data()), data.size()},
                  ping_interval_s_);
}

}  // namespace sb::server
