// The STOMP adapter: one Connection per WebSocket (its SocketData), holding the core's Client,
// the STOMP subscriptions (several may share one channel: the core holds one subscription per
// channel and the adapter copies each publication to every STOMP subscription of it), the
// MESSAGEs awaiting ACK, open transactions and the heart-beat timer.
#include "server/stomp_ws.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/ascii.h"
#include "base/log.h"
#include "loop/event_loop.h"
#include "messaging/channel.h"
#include "protocol/codec.h"
#include "server/native_requests.h"
#include "ws/utf8.h"

namespace sb::server {

namespace stomp = protocol::stomp;
using messaging::Error;
using messaging::PeerStatus;
using stomp::Command;
using stomp::HeaderView;
using stomp::Version;

namespace {

constexpr std::string_view kTopicPrefix = "/topic/";
constexpr std::string_view kServerName = "switchboard/" SB_VERSION_STRING;
// Close codes after an ERROR frame: the client broke a rule or was refused (fix it, do not
// loop reconnecting), or the server cannot serve now (retry later).
constexpr uint16_t kCloseRefused = 1008;
constexpr uint16_t kCloseTryLater = 1013;
// Auto-acknowledged subscriptions acknowledge the core in batches: the core's at-least-once
// bookkeeping needs no ack per message from a client that acknowledges nothing.
constexpr uint32_t kAutoAckBatch = 64;

thread_local std::string t_frame;  // one frame being built (the loop's thread)
thread_local std::string t_tail;   // a MESSAGE's tail when there is no shared scratch for it

enum class AckMode : uint8_t { kAuto, kClient, kClientIndividual };

// A Peer whose upgrade carried a verified token, until on_open takes it.
struct Pending final : transport::SocketData {
    auth::Claims claims;
};

std::optional<uint64_t> parseUint(std::string_view s) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

// "/topic/ns.name" or "/topic/ns:name" → "ns:name"; "/topic/name" → "name" (namespace
// default). Only the first '.' separates, and only when there is no ':' (docs/stomp.md).
std::optional<std::string> channelOf(std::string_view destination) {
    if (destination.substr(0, kTopicPrefix.size()) != kTopicPrefix) {
        return std::nullopt;
    }
    std::string channel(destination.substr(kTopicPrefix.size()));
    if (channel.find(':') == std::string::npos) {
        if (const size_t dot = channel.find('.'); dot != std::string::npos) {
            channel[dot] = ':';
        }
    }
    return channel;
}

// The highest version both sides speak: `accept-version` (absent: 1.0) capped by the
// subprotocol.
std::optional<Version> negotiate(const stomp::Frame& f, Version max) {
    const auto accept = f.header("accept-version");
    if (!accept) {
        return Version::k10;
    }
    std::optional<Version> best;
    std::string_view list = *accept;
    while (!list.empty()) {
        const size_t comma = list.find(',');
        std::string_view v = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        while (!v.empty() && v.front() == ' ') {
            v.remove_prefix(1);
        }
        while (!v.empty() && v.back() == ' ') {
            v.remove_suffix(1);
        }
        std::optional<Version> got;
        if (v == "1.0") {
            got = Version::k10;
        } else if (v == "1.1") {
            got = Version::k11;
        } else if (v == "1.2") {
            got = Version::k12;
        }
        if (got && *got <= max && (!best || *got > *best)) {
            best = got;
        }
    }
    return best;
}

// "cx,cy" → {cx, cy}; absent → {0, 0}.
std::optional<std::pair<uint64_t, uint64_t>> heartBeat(const stomp::Frame& f) {
    const auto h = f.header("heart-beat");
    if (!h) {
        return std::pair<uint64_t, uint64_t>{0, 0};
    }
    const size_t comma = h->find(',');
    if (comma == std::string_view::npos) {
        return std::nullopt;
    }
    auto trim = [](std::string_view s) {
        while (!s.empty() && s.front() == ' ') {
            s.remove_prefix(1);
        }
        while (!s.empty() && s.back() == ' ') {
            s.remove_suffix(1);
        }
        return s;
    };
    const auto cx = parseUint(trim(h->substr(0, comma)));
    const auto cy = parseUint(trim(h->substr(comma + 1)));
    if (!cx || !cy) {
        return std::nullopt;
    }
    return std::pair<uint64_t, uint64_t>{*cx, *cy};
}

// A SEND's body as a publication's data: JSON as given when content-type says JSON, else the
// text as a JSON string. Error: why not.
base::Expected<std::string, std::string> dataOf(const stomp::Frame& f) {
    const std::string_view type = f.header("content-type").value_or("");
    const std::string_view json_type = "application/json";
    if (type.size() >= json_type.size() &&
        base::iequals(type.substr(0, json_type.size()), json_type)) {
        auto data = protocol::parseData(f.body);
        if (!data) {
            return base::unexpected("the body (content-type " + std::string(type) + ") is " +
                                    data.error());
        }
        return data;
    }
    if (!ws::isValidUtf8(f.body)) {
        return base::unexpected(std::string(
            "the body is not UTF-8 text: binary bodies are not supported (docs/stomp.md)"));
    }
    std::string data;
    protocol::appendJsonString(&data, f.body);
    return data;
}

}  // namespace

struct StompWs::Connection final : public transport::SocketData,
                                   public messaging::Peer,
                                   private loop::TimerNode {
    struct Unacked {
        uint64_t token;  // the MESSAGE's ack / message-id
        broker::PubPtr pub;
    };
    struct Sub {
        std::string id;           // the client's
        std::string destination;  // as the client wrote it: MESSAGE frames carry it
        std::string channel;      // canonical
        AckMode ack = AckMode::kAuto;
        std::deque<Unacked> unacked;  // client modes: in token order
        uint64_t top = 0;             // the highest offset sent to this subscription
        uint32_t since_core_ack = 0;  // auto: sent since the core was last acknowledged
    };
    struct Transaction {
        std::vector<stomp::Frame> frames;
        size_t bytes = 0;
    };

    Connection(StompWs& o, transport::WebSocket& socket, messaging::Stats& loop_stats, Version max)
        : Peer(kStompSlot),
          owner(&o),
          client_(*this),
          ws(&socket),
          stats_(&loop_stats),
          hub(o.hub_),
          decoder(o.limits_, Version::k12),
          max_version(max) {
        TimerNode::fire = &Connection::onTimer;
        opened_ms = last_rx_ms = last_tx_ms = ws->loop()->nowMs();
    }
    ~Connection() override { ws->loop()->timers().cancel(this); }

    StompWs* owner;
    messaging::Client client_;
    transport::WebSocket* ws;
    messaging::Stats* stats_;
    messaging::Hub* hub;
    stomp::Decoder decoder;
    Version max_version;
    // Frames are written unescaped until CONNECTED says the version: the client reads an
    // ERROR answering its CONNECT before it knows which version the server picked.
    Version version = Version::k10;
    std::unique_ptr<auth::Claims> handshake_claims;
    bool ended = false;
    bool connected = false;
    std::vector<std::unique_ptr<Sub>> subs;
    std::map<std::string, Transaction, std::less<>> transactions;
    std::unordered_map<std::string, uint64_t> core_acked;  // channel → offset acked to the core
    uint64_t next_token = 1;
    uint64_t send_every_ms = 0;    // 0: the server sends no heart-beats
    uint64_t expect_every_ms = 0;  // 0: the client promised none
    uint64_t opened_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;

    // ---- Output ----

    PeerStatus account(transport::SendStatus st, size_t payload) {
        const PeerStatus ps =
            peerStatusOf(st, payload, *stats_, client_, ws->behavior().max_backlog);
        ended = ended || ps == PeerStatus::kGone;
        if (ps == PeerStatus::kSent) {
            last_tx_ms = ws->loop()->nowMs();
        }
        return ps;
    }

    PeerStatus sendFrame(const std::string& frame, bool droppable = false) {
        stats_->messages_out.add();
        return account(ws->sendText(frame, {.droppable = droppable}), frame.size());
    }

    bool sendReceipt(const stomp::Frame& f) {
        const auto receipt = f.header("receipt");
        if (!receipt) {
            return true;
        }
        std::string& out = t_frame;
        out.clear();
        const HeaderView h[] = {{"receipt-id", *receipt}};
        stomp::encodeFrame(&out, Command::kReceipt, h, {}, version);
        return sendFrame(out) == PeerStatus::kSent;
    }

    // ERROR, then the close the spec asks for. `f`: the frame at fault (its receipt is named).
    void fatal(std::string_view message, std::string_view detail, const stomp::Frame* f,
               uint16_t code = kCloseRefused) {
        if (ended) {
            return;
        }
        std::string& out = t_frame;
        out.clear();
        std::vector<HeaderView> h = {{"message", message}};
        std::optional<std::string_view> receipt;
        if (f != nullptr && (receipt = f->header("receipt"))) {
            h.emplace_back("receipt-id", *receipt);
        }
        if (!detail.empty()) {
            h.emplace_back("content-type", "text/plain");
        }
        stomp::encodeFrame(&out, Command::kError, h, detail, version);
        // Droppable: a connection at its outbound limit closes without it rather than as a
        // slow consumer; the close frame carries the message either way.
        (void)ws->sendText(out, {.droppable = true});
        ended = true;
        std::string reason(message.substr(0, 120));
        ws->end(code, reason);
    }

    void fatalFailure(const messaging::Failure& fail, const stomp::Frame* f) {
        const std::string message =
            std::string(messaging::errorInfo(fail.error).code) + ": " + fail.message;
        fatal(message, fail.message, f,
              fail.error == Error::kUnavailable ? kCloseTryLater : kCloseRefused);
    }

    // ---- messaging::Peer ----

    PeerStatus deliver(const messaging::Delivery& d, bool droppable) override {
        if (ended) {
            return PeerStatus::kGone;
        }
        if (d.event.kind != broker::EventKind::kPublication) {
            return PeerStatus::kDropped;  // STOMP has no presence events
        }
        // d.shared (this adapter's slot) holds the MESSAGE's tail, the same for every
        // subscriber of the event on this loop; only the head (subscription, message-id, ...)
        // is built per subscriber.
        PeerStatus result = PeerStatus::kSent;
        for (auto& s : subs) {
            if (s->channel != d.event.pub->channel) {
                continue;
            }
            const PeerStatus st = sendMessage(*s, d.event.pub, d.gap, false, droppable, d.shared);
            if (st == PeerStatus::kGone) {
                return st;
            }
            if (st == PeerStatus::kDropped) {
                result = st;
            }
        }
        return result;
    }

    void disconnect(const messaging::Disconnect& d) override {
        fatal(d.reason, {}, nullptr, d.code);
    }

    void appendHeader(std::string* out, std::string_view name, std::string_view value) const {
        stomp::appendHeader(out, name, value, version);
    }

    // The part of a MESSAGE after the per-subscription headers: the publication's headers,
    // the blank line, the body and the NUL. A JSON string travels as its text; any other JSON
    // value as JSON.
    void encodeMessageTail(std::string* out, const broker::Publication& pub) const {
        std::optional<std::string> text = protocol::jsonStringValue(pub.data);
        const std::string_view body = text ? std::string_view(*text) : std::string_view(pub.data);
        char digits[24];
        appendHeader(out, "content-type", text ? "text/plain;charset=utf-8" : "application/json");
        appendHeader(out, "channel", pub.channel);
        appendHeader(out, "epoch", pub.epoch);
        auto end = std::to_chars(digits, digits + sizeof digits, pub.offset).ptr;
        appendHeader(out, "offset", std::string_view(digits, static_cast<size_t>(end - digits)));
        if (!body.empty()) {
            end = std::to_chars(digits, digits + sizeof digits, body.size()).ptr;
            appendHeader(out, "content-length",
                         std::string_view(digits, static_cast<size_t>(end - digits)));
        }
        out->push_back('\n');
        out->append(body);
        out->push_back('\0');
    }

    // A MESSAGE is a head that depends on the subscription (subscription, message-id,
    // destination, ack, gap, redelivered) and a tail that depends only on the publication and
    // the STOMP version (content-type, channel, epoch, offset, content-length, the body). The
    // tail is encoded once per event and loop into `shared` (a version byte first; a
    // subscriber of another version encodes its own), so a fan-out to N subscribers unescapes
    // the JSON body and escapes the headers once, not N times.
    PeerStatus sendMessage(Sub& s, const broker::PubPtr& pub, bool gap, bool redelivered,
                           bool droppable, std::string* shared = nullptr) {
        const uint64_t token = next_token++;
        char token_text[24];
        const auto tn = std::to_chars(token_text, token_text + sizeof token_text, token).ptr;
        const std::string_view token_sv(token_text, static_cast<size_t>(tn - token_text));
        const char version_tag = static_cast<char>('0' + static_cast<int>(version));
        std::string_view tail;
        if (shared != nullptr && !shared->empty() && (*shared)[0] == version_tag) {
            tail = std::string_view(*shared).substr(1);
        } else {
            std::string* into = shared != nullptr && shared->empty() ? shared : &t_tail;
            into->clear();
            into->push_back(version_tag);
            encodeMessageTail(into, *pub);
            tail = std::string_view(*into).substr(1);
        }
        std::string& out = t_frame;
        out.clear();
        out.append("MESSAGE\n");
        appendHeader(&out, "subscription", s.id);
        appendHeader(&out, "message-id", token_sv);
        appendHeader(&out, "destination", s.destination);
        if (s.ack != AckMode::kAuto) {
            appendHeader(&out, "ack", token_sv);
        }
        if (gap) {
            out.append("gap:true\n");
        }
        if (redelivered) {
            out.append("redelivered:true\n");
        }
        out.append(tail);
        const PeerStatus st = sendFrame(out, droppable);
        if (st != PeerStatus::kSent) {
            return st;
        }
        s.top = std::max(s.top, pub->offset);
        if (s.ack == AckMode::kAuto) {
            if (++s.since_core_ack >= kAutoAckBatch) {
                coreAck(s.channel);
            }
        } else {
            s.unacked.push_back({token, pub});
            if (s.unacked.size() > kMaxUnacked) {
                s.unacked.pop_front();
            }
        }
        return st;
    }

    // Acknowledges to the core (at-least-once namespaces keep un-acked publications in the
    // session) everything up to the lowest offset some subscription of `channel` still waits
    // for. On at-most-once namespaces the core ignores it.
    void coreAck(const std::string& channel) {
        uint64_t floor = std::numeric_limits<uint64_t>::max();
        for (auto& s : subs) {
            if (s->channel != channel) {
                continue;
            }
            s->since_core_ack = 0;
            uint64_t sub_floor = s->top;
            for (const Unacked& u : s->unacked) {
                sub_floor = std::min(sub_floor, u.pub->offset - 1);
            }
            floor = std::min(floor, sub_floor);
        }
        if (floor == std::numeric_limits<uint64_t>::max() || floor == 0) {
            return;
        }
        uint64_t& acked = core_acked[channel];
        if (floor > acked) {
            acked = floor;
            (void)hub->ack(client_, channel, floor);
        }
    }

    // ---- Timer: heart-beats and the token's expiry ----

    static void onTimer(loop::TimerNode* node) {
        auto* self = static_cast<Connection*>(node);
        if (self->ended) {
            return;
        }
        if (self->hub->tokenExpired(self->client_)) {
            SB_INFO("client %s: token expired and was not refreshed: closing %u",
                    self->client_.id().c_str(), messaging::kTokenExpired.code);
            self->fatal(messaging::kTokenExpired.reason, "reconnect with a new token", nullptr,
                        messaging::kTokenExpired.code);
            return;
        }
        const uint64_t now = self->ws->loop()->nowMs();
        if (!self->connected) {
            if (now >= self->opened_ms + kConnectTimeoutMs) {
                self->fatal("no CONNECT",
                            "send CONNECT within " + std::to_string(kConnectTimeoutMs / 1000) +
                                " s of opening the connection",
                            nullptr);
                return;
            }
            self->arm();
            return;
        }
        if (self->expect_every_ms != 0 && now - self->last_rx_ms > self->silenceLimit()) {
            const std::string detail = "nothing received for " +
                                       std::to_string(now - self->last_rx_ms) +
                                       " ms; heart-beats were agreed every " +
                                       std::to_string(self->expect_every_ms) + " ms";
            self->fatal("heart-beat timeout", detail, nullptr, messaging::kHeartbeatTimeout.code);
            return;
        }
        // One tick early rather than late: the client allows for jitter, not for lateness.
        if (self->send_every_ms != 0 &&
            now + loop::TimerWheel::kTickMs >= self->last_tx_ms + self->send_every_ms) {
            static const std::string kEol = "\n";
            if (self->account(self->ws->sendText(kEol, {.droppable = true}), 1) ==
                PeerStatus::kGone) {
                return;
            }
            self->last_tx_ms = now;
        }
        self->arm();
    }

    uint64_t silenceLimit() const {
        return expect_every_ms + std::max<uint64_t>(expect_every_ms, kHeartbeatGraceMinMs);
    }

    // Schedules the timer for the earliest of: the next heart-beat to send, the client's
    // silence limit, the token's expiry.
    void arm() {
        const uint64_t now = ws->loop()->nowMs();
        uint64_t due = std::numeric_limits<uint64_t>::max();
        if (!connected) {
            const uint64_t at = opened_ms + kConnectTimeoutMs;
            due = at > now ? at - now : 0;
        }
        if (send_every_ms != 0) {
            const uint64_t at = last_tx_ms + send_every_ms;
            due = std::min(due, at > now + loop::TimerWheel::kTickMs
                                    ? at - now - loop::TimerWheel::kTickMs
                                    : 0);
        }
        if (expect_every_ms != 0) {
            const uint64_t at = last_rx_ms + silenceLimit();
            due = std::min(due, at > now ? at - now : 0);
        }
        if (auto ms = hub->msUntilExpiry(client_)) {
            due = std::min(due, *ms);
        }
        if (due == std::numeric_limits<uint64_t>::max()) {
            ws->loop()->timers().cancel(this);
        } else {
            ws->loop()->timers().schedule(this, due);
        }
    }

    // ---- Input ----

    void onBytes(std::string_view in) {
        last_rx_ms = ws->loop()->nowMs();
        while (!ended) {
            const stomp::DecodeResult r = decoder.feed(in);
            in.remove_prefix(r.consumed);
            if (r.status == stomp::DecodeStatus::kNeedMore) {
                return;
            }
            if (r.status == stomp::DecodeStatus::kError) {
                stats_->protocol_errors.add();
                fatal("malformed frame: " + std::string(stomp::describe(decoder.error())), {},
                      nullptr);
                return;
            }
            stats_->messages_in.add();
            switch (hub->admit(client_)) {
                case messaging::Admission::kOk:
                    break;
                case messaging::Admission::kLimited:
                case messaging::Admission::kAbuse:
                    // STOMP has no error that keeps the connection: past the rate limit it
                    // ends, as native clients that keep going do.
                    fatal("rate limit exceeded",
                          "too many frames: slow down (limit " +
                              std::to_string(hub->options().rate_limit) + "/s)",
                          &decoder.frame());
                    return;
            }
            handle(decoder.frame(), true);
        }
    }

    // One frame; `may_buffer`: a frame with a transaction header joins it (false when a COMMIT
    // replays the transaction's frames).
    void handle(const stomp::Frame& f, bool may_buffer) {
        if (!stomp::isClientCommand(f.command)) {
            stats_->protocol_errors.add();
            fatal("not a client frame",
                  std::string(stomp::commandName(f.command)) + " is sent by servers", &f);
            return;
        }
        if (f.command == Command::kConnect || f.command == Command::kStomp) {
            onConnect(f);
            return;
        }
        if (!connected) {
            stats_->protocol_errors.add();
            fatal("not connected", "send CONNECT first", &f);
            return;
        }
        if (may_buffer && (f.command == Command::kSend || f.command == Command::kAck ||
                           f.command == Command::kNack)) {
            if (const auto tx = f.header("transaction")) {
                buffer(*tx, f);
                return;
            }
        }
        switch (f.command) {
            case Command::kSend:
                onSend(f);
                return;
            case Command::kSubscribe:
                onSubscribe(f);
                return;
            case Command::kUnsubscribe:
                onUnsubscribe(f);
                return;
            case Command::kAck:
            case Command::kNack:
                onAck(f, f.command == Command::kNack);
                return;
            case Command::kBegin:
                onBegin(f);
                return;
            case Command::kCommit:
                onCommit(f);
                return;
            case Command::kAbort:
                onAbort(f);
                return;
            case Command::kDisconnect:
                onDisconnect(f);
                return;
            default:
                return;
        }
    }

    void onConnect(const stomp::Frame& f) {
        if (connected) {
            fatal("already connected", "CONNECT is the first frame, and only that", &f);
            return;
        }
        const auto v = negotiate(f, max_version);
        if (!v) {
            std::string& out = t_frame;
            out.clear();
            const std::string_view supported = max_version == Version::k12   ? "1.2,1.1,1.0"
                                               : max_version == Version::k11 ? "1.1,1.0"
                                                                             : "1.0";
            const HeaderView h[] = {{"version", supported},
                                    {"message", "unsupported protocol version"},
                                    {"content-type", "text/plain"}};
            const std::string body = "supported protocol versions are " + std::string(supported);
            stomp::encodeFrame(&out, Command::kError, h, body, Version::k10);
            (void)ws->sendText(out, {.droppable = true});
            ended = true;
            ws->end(kCloseRefused, "unsupported STOMP version");
            return;
        }
        const auto hb = heartBeat(f);
        if (!hb) {
            fatal("bad heart-beat header", "heart-beat is two numbers: \"cx,cy\"", &f);
            return;
        }
        // Credentials: `token` or `Authorization` (Bearer optional); with auth on, `passcode`
        // too (STOMP clients often have only login/passcode). Without auth, login/passcode
        // are a name, not a credential (many clients send guest/guest by default).
        std::string_view token = f.header("token").value_or("");
        if (token.empty()) {
            std::string_view a =
                f.header("Authorization").value_or(f.header("authorization").value_or(""));
            if (a.size() > 7 && base::iequals(a.substr(0, 7), "bearer ")) {
                a.remove_prefix(7);
            }
            token = a;
        }
        if (token.empty() && hub->authEnabled()) {
            token = f.header("passcode").value_or("");
        }
        const std::string_view login = f.header("login").value_or("");
        auto r = hub->connect(client_, login, {}, {}, token, handshake_claims.get());
        handshake_claims.reset();
        if (!r) {
            fatalFailure(r.error(), &f);
            return;
        }
        version = *v;
        decoder.setVersion(version);
        connected = true;
        const uint64_t cx = hb->first;
        const uint64_t cy = hb->second;
        send_every_ms = cy != 0 ? std::max<uint64_t>(cy, kHeartbeatFloorMs) : 0;
        expect_every_ms = cx != 0 ? std::max<uint64_t>(cx, kHeartbeatFloorMs) : 0;
        if (version == Version::k10) {
            send_every_ms = expect_every_ms = 0;  // heart-beats came with 1.1
        }
        const std::string beat =
            std::to_string(kHeartbeatFloorMs) + "," + std::to_string(kHeartbeatFloorMs);
        std::vector<HeaderView> h = {
            {"version", stomp::versionName(version)},
            {"heart-beat", beat},
            {"session", r->session_id},
            {"server", kServerName},
            {"client-id", r->client_id},
        };
        if (!r->user.empty()) {
            h.emplace_back("user-name", r->user);
        }
        std::string& out = t_frame;
        out.clear();
        stomp::encodeFrame(&out, Command::kConnected, h, {}, version);
        if (sendFrame(out) != PeerStatus::kSent) {
            return;
        }
        last_tx_ms = ws->loop()->nowMs();
        arm();
        // A new session: nothing to replay (STOMP connections do not resume sessions).
        hub->replay(client_, std::move(r->replay));
    }

    Sub* findSub(std::string_view id) {
        for (auto& s : subs) {
            if (s->id == id) {
                return s.get();
            }
        }
        return nullptr;
    }

    bool channelHeld(std::string_view channel) const {
        for (const auto& s : subs) {
            if (s->channel == channel) {
                return true;
            }
        }
        return false;
    }

    // The canonical channel of a destination; ERROR and false if it has none.
    bool resolve(const stomp::Frame& f, std::string* channel) {
        const auto dest = f.header("destination");
        if (!dest) {
            fatal("missing destination", "this frame needs a destination header", &f);
            return false;
        }
        auto ch = channelOf(*dest);
        const auto ref = ch ? messaging::parseChannel(*ch) : std::nullopt;
        if (!ref) {
            fatal("bad destination",
                  "destinations are /topic/<namespace>.<name> or /topic/<namespace>:<name> "
                  "naming a valid channel (docs/stomp.md); got " +
                      std::string(*dest),
                  &f);
            return false;
        }
        channel->assign(ref->canonical);
        return true;
    }

    void onSend(const stomp::Frame& f) {
        std::string channel;
        if (!resolve(f, &channel)) {
            return;
        }
        auto data = dataOf(f);
        if (!data) {
            fatal("bad body", data.error(), &f);
            return;
        }
        auto r = hub->publish(&client_, channel, std::move(*data),
                              f.header("idempotency-key").value_or(""));
        if (!r) {
            fatalFailure(r.error(), &f);
            return;
        }
        sendReceipt(f);
    }

    void onSubscribe(const stomp::Frame& f) {
        std::string channel;
        if (!resolve(f, &channel)) {
            return;
        }
        // 1.0 makes the id optional: the destination names the subscription then.
        std::string id(f.header("id").value_or(
            version == Version::k10 ? f.header("destination").value_or("") : ""));
        if (id.empty()) {
            fatal("missing id", "SUBSCRIBE needs an id header", &f);
            return;
        }
        if (findSub(id) != nullptr) {
            fatal("duplicate subscription id", "subscription " + id + " exists already", &f);
            return;
        }
        // The core bounds channels per connection; this bounds STOMP subscriptions too, since
        // each copies every publication of its channel.
        if (subs.size() >= hub->options().max_subscriptions) {
            fatal("limit_exceeded: too many subscriptions",
                  "at most " + std::to_string(hub->options().max_subscriptions) +
                      " subscriptions per connection (messaging.max_subscriptions)",
                  &f);
            return;
        }
        AckMode mode = AckMode::kAuto;
        const std::string_view ack = f.header("ack").value_or("auto");
        if (ack == "client") {
            mode = AckMode::kClient;
        } else if (ack == "client-individual") {
            mode = AckMode::kClientIndividual;
        } else if (ack != "auto") {
            fatal("bad ack mode", "ack is auto, client or client-individual", &f);
            return;
        }
        std::optional<messaging::Replay> replay;
        if (!channelHeld(channel)) {
            auto r = hub->subscribe(client_, channel, std::nullopt, f.header("token").value_or(""));
            if (!r) {
                fatalFailure(r.error(), &f);
                return;
            }
            channel = r->position.channel;
            replay = std::move(r->replay);
        }
        auto s = std::make_unique<Sub>();
        s->id = std::move(id);
        s->destination = std::string(*f.header("destination"));
        s->channel = std::move(channel);
        s->ack = mode;
        subs.push_back(std::move(s));
        if (sendReceipt(f) && replay) {
            hub->replay(client_, std::move(*replay));
        }
    }

    void onUnsubscribe(const stomp::Frame& f) {
        const std::string_view id = f.header("id").value_or(
            version == Version::k10 ? f.header("destination").value_or("") : "");
        auto it =
            std::find_if(subs.begin(), subs.end(), [&](const auto& s) { return s->id == id; });
        if (id.empty() || it == subs.end()) {
            fatal("unknown subscription", "no subscription with id " + std::string(id), &f);
            return;
        }
        const std::string channel = (*it)->channel;
        subs.erase(it);
        if (!channelHeld(channel)) {
            core_acked.erase(channel);
            auto r = hub->unsubscribe(client_, channel);
            if (!r) {
                fatalFailure(r.error(), &f);
                return;
            }
        } else {
            coreAck(channel);  // the removed subscription no longer holds the floor down
        }
        sendReceipt(f);
    }

    // ACK (or NACK) by the id of 1.2 or the message-id of 1.0/1.1. Client mode covers every
    // earlier MESSAGE of the subscription too, client-individual only that one. NACKed
    // MESSAGEs are sent again at once with new ids (redelivered:true). An unknown id (acked
    // already, forgotten past kMaxUnacked, or of an auto subscription) does nothing.
    void onAck(const stomp::Frame& f, bool nack) {
        const std::string_view id_text =
            f.header("id").value_or(f.header("message-id").value_or(""));
        const auto token = parseUint(id_text);
        if (!token) {
            if (id_text.empty()) {
                fatal("missing id", "ACK and NACK need the MESSAGE's ack header as id", &f);
                return;
            }
            sendReceipt(f);
            return;
        }
        for (auto& s : subs) {
            auto it = std::lower_bound(s->unacked.begin(), s->unacked.end(), *token,
                                       [](const Unacked& u, uint64_t t) { return u.token < t; });
            if (it == s->unacked.end() || it->token != *token) {
                continue;
            }
            std::vector<broker::PubPtr> again;
            if (s->ack == AckMode::kClient) {
                for (auto j = s->unacked.begin(); j != it + 1; ++j) {
                    again.push_back(j->pub);
                }
                s->unacked.erase(s->unacked.begin(), it + 1);
            } else {
                again.push_back(it->pub);
                s->unacked.erase(it);
            }
            if (nack) {
                for (const auto& pub : again) {
                    if (sendMessage(*s, pub, false, true, false) == PeerStatus::kGone) {
                        return;
                    }
                }
            }
            coreAck(s->channel);
            break;
        }
        sendReceipt(f);
    }

    void buffer(std::string_view tx, const stomp::Frame& f) {
        auto it = transactions.find(tx);
        if (it == transactions.end()) {
            fatal("unknown transaction", "no transaction " + std::string(tx) + " was begun", &f);
            return;
        }
        Transaction& t = it->second;
        if (t.frames.size() >= kMaxTransactionFrames ||
            t.bytes + f.body.size() > owner->transaction_bytes_) {
            fatal("transaction too large",
                  "at most " + std::to_string(kMaxTransactionFrames) + " frames and " +
                      std::to_string(owner->transaction_bytes_) + " bytes per transaction",
                  &f);
            return;
        }
        // Checked now, so that a COMMIT fails only on what the core refuses.
        if (f.command == Command::kSend) {
            std::string channel;
            if (!resolve(f, &channel)) {
                return;
            }
            if (auto data = dataOf(f); !data) {
                fatal("bad body", data.error(), &f);
                return;
            }
        }
        t.bytes += f.body.size();
        t.frames.push_back(f);
        sendReceipt(f);
    }

    void onBegin(const stomp::Frame& f) {
        const std::string_view tx = f.header("transaction").value_or("");
        if (tx.empty()) {
            fatal("missing transaction", "BEGIN needs a transaction header", &f);
            return;
        }
        if (transactions.contains(tx)) {
            fatal("duplicate transaction", "transaction " + std::string(tx) + " is open", &f);
            return;
        }
        if (transactions.size() >= kMaxTransactions) {
            fatal("too many transactions",
                  "at most " + std::to_string(kMaxTransactions) + " open per connection", &f);
            return;
        }
        transactions.emplace(std::string(tx), Transaction{});
        sendReceipt(f);
    }

    // The transaction's frames in order, each as if sent now (SENDs published one by one; see
    // docs/stomp.md for what that does and does not make atomic).
    void onCommit(const stomp::Frame& f) {
        const std::string_view tx = f.header("transaction").value_or("");
        auto it = transactions.find(tx);
        if (it == transactions.end()) {
            fatal("unknown transaction", "no transaction " + std::string(tx) + " is open", &f);
            return;
        }
        Transaction t = std::move(it->second);
        transactions.erase(it);
        for (stomp::Frame& g : t.frames) {
            // Their receipts went when they were buffered.
            std::erase_if(g.headers, [](const auto& h) { return h.first == "receipt"; });
            handle(g, false);
            if (ended) {
                return;
            }
        }
        sendReceipt(f);
    }

    void onAbort(const stomp::Frame& f) {
        const std::string_view tx = f.header("transaction").value_or("");
        auto it = transactions.find(tx);
        if (it == transactions.end()) {
            fatal("unknown transaction", "no transaction " + std::string(tx) + " is open", &f);
            return;
        }
        transactions.erase(it);
        sendReceipt(f);
    }

    void onDisconnect(const stomp::Frame& f) {
        transactions.clear();  // open transactions are aborted
        sendReceipt(f);
        ended = true;
        ws->end(1000, "");
    }
};

StompWs::StompWs(const messaging::Options& options, const transport::WebSocketBehavior& base)
    : behavior_(base), transaction_bytes_(options.outbound_limit) {
    // The same outbound limit as /ws: every frame counts, and a slow consumer is told why in
    // an ERROR frame before the close.
    behavior_.max_message_size = options.effectiveMaxMessageSize();
    behavior_.max_backlog = options.outbound_limit;
    behavior_.over_limit_close_code = messaging::kSlowConsumer.code;
    behavior_.over_limit_farewell.clear();
    const HeaderView h[] = {{"message", messaging::kSlowConsumer.reason}};
    stomp::encodeFrame(&behavior_.over_limit_farewell, Command::kError, h, {}, Version::k10);
    behavior_.idle_close_code = messaging::kHeartbeatTimeout.code;
    behavior_.on_message = [this](transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
        onMessage(ws, op, d);
    };
    behavior_.on_close = [this](transport::WebSocket& ws, uint16_t code, std::string_view) {
        onClose(ws, code);
    };
    // A body may be as large as a native message's data; the frame around it as a whole
    // WebSocket message is bounded by max_message_size.
    limits_.max_body_bytes = options.effectiveMaxMessageSize();
}

void StompWs::addTo(WsRoute* route) {
    const std::pair<std::string_view, Version> protocols[] = {
        {stomp::kSubprotocol12, Version::k12},
        {stomp::kSubprotocol11, Version::k11},
        {stomp::kSubprotocol10, Version::k10},
    };
    for (const auto& [name, max] : protocols) {
        route->subprotocols.emplace_back(name);
        WsRoute::Variant v;
        v.behavior = behavior_;
        v.behavior.on_open = [this, max = max](transport::WebSocket& ws) { onOpen(ws, max); };
        v.on_upgrade = [this](const http::Request& req) { return checkUpgrade(req); };
        route->variants.emplace(std::string(name), std::move(v));
    }
}

UpgradeCheck StompWs::checkUpgrade(const http::Request& req) {
    UpgradeCheck out;
    std::string token = requestToken(req);
    if (token.empty()) {
        return out;  // CONNECT brings the credentials (or none: the hub decides there)
    }
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

void StompWs::onOpen(transport::WebSocket& ws, Version max) {
    const uint32_t loop = ws.loop()->id();
    std::unique_ptr<auth::Claims> claims;
    if (auto* pending = ws.data<Pending>()) {  // only on_upgrade sets data before on_open
        claims = std::make_unique<auth::Claims>(std::move(pending->claims));
    }
    auto conn = std::make_unique<Connection>(*this, ws, hub_->stats(loop), max);
    conn->handshake_claims = std::move(claims);
    hub_->open(conn->client_, loop);
    conn->arm();  // the CONNECT deadline
    ws.setData(std::move(conn));
}

void StompWs::onClose(transport::WebSocket& ws, uint16_t code) {
    if (auto* conn = ws.data<Connection>()) {
        conn->ended = true;
        hub_->close(conn->client_, code);
    }
}

void StompWs::onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data) {
    auto* conn = ws.data<Connection>();
    if (conn == nullptr || conn->ended) {
        return;
    }
    conn->stats_->bytes_in.add(data.size());
    // Text or binary alike: STOMP frames are bytes, and a frame may span messages.
    (void)op;
    conn->onBytes({reinterpret_cast<const char*>(data.data()), data.size()});
}

}  // namespace sb::server
