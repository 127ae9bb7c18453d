// Relaying session requests between nodes (see session_relay.h): the wire codec, the requests
// a loop relayed and awaits (each with a timer, all on that loop's thread), and the requests
// relayed here, run on a loop and answered through a responder that relays the reply back.
#include "server/session_relay.h"

#include <algorithm>
#include <charconv>

#include "base/log.h"
#include "server/session_open.h"

namespace sb::server {

using messaging::Error;

namespace {

constexpr int kLoopShift = 56;  // a request id's top byte is the loop that relayed it

void putField(std::string* out, std::string_view v) {
    out->append(std::to_string(v.size()));
    out->push_back(':');
    out->append(v);
}

void putNumber(std::string* out, uint64_t n) {
    putField(out, std::to_string(n));
}

// Reads fields in order from a message; any malformed field fails the rest.
class FieldReader {
public:
    explicit FieldReader(std::string_view in) : in_(in) {}

    bool field(std::string_view* v) {
        const size_t colon = in_.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon > 10) {
            return false;
        }
        uint64_t n = 0;
        const auto r = std::from_chars(in_.data(), in_.data() + colon, n);
        if (r.ec != std::errc() || r.ptr != in_.data() + colon || n > in_.size() - colon - 1) {
            return false;
        }
        *v = in_.substr(colon + 1, n);
        in_.remove_prefix(colon + 1 + n);
        return true;
    }

    bool number(uint64_t* n) {
        std::string_view v;
        if (!field(&v) || v.empty() || v.size() > 20) {
            return false;
        }
        const auto r = std::from_chars(v.data(), v.data() + v.size(), *n);
        return r.ec == std::errc() && r.ptr == v.data() + v.size();
    }

    bool done() const { return in_.empty(); }

private:
    std::string_view in_;
};

}  // namespace

std::string encodeRelayRequest(std::string_view origin, uint64_t id, const RelayRequest& r) {
    std::string out = "q";
    putField(&out, origin);
    putNumber(&out, id);
    putField(&out, std::string_view(reinterpret_cast<const char*>(&r.kind), 1));
    putField(&out, r.session);
    // The user, with a marker byte: no token ("-") is not a token for the empty user ("u").
    putField(&out, r.user ? "u" + *r.user : std::string("-"));
    if (r.kind == RelayRequest::Kind::kPost) {
        putField(&out, r.body);
    } else {
        putNumber(&out, r.ack);
        putNumber(&out, r.wait_ms);
    }
    return out;
}

std::string encodeRelayReply(uint64_t id, const HttpReply& r) {
    std::string out = "a";
    putNumber(&out, id);
    putNumber(&out, r.status);
    putField(&out, r.content_type);
    putField(&out, r.extra_headers);
    putField(&out, r.body);
    return out;
}

std::vector<std::string> splitRelayReply(uint64_t id, std::string_view reply, size_t max_piece) {
    std::vector<std::string> pieces;
    max_piece = std::max<size_t>(max_piece, 1);
    do {
        const std::string_view piece = reply.substr(0, max_piece);
        reply.remove_prefix(piece.size());
        std::string m = "c";
        putNumber(&m, id);
        putField(&m, reply.empty() ? "1" : "0");
        putField(&m, piece);
        pieces.push_back(std::move(m));
    } while (!reply.empty());
    return pieces;
}

std::optional<RelayMessage> parseRelayMessage(std::string_view m) {
    if (m.empty()) {
        return std::nullopt;
    }
    RelayMessage out;
    const char kind = m[0];
    FieldReader in(m.substr(1));
    if (kind == 'c') {
        out.type = RelayMessage::Type::kPiece;
        std::string_view last, piece;
        if (!in.number(&out.id) || !in.field(&last) || (last != "0" && last != "1") ||
            !in.field(&piece) || !in.done()) {
            return std::nullopt;
        }
        out.last = last == "1";
        out.piece = std::string(piece);
        return out;
    }
    if (kind == 'a') {
        out.type = RelayMessage::Type::kReply;
        uint64_t status = 0;
        std::string_view type, headers, body;
        if (!in.number(&out.id) || !in.number(&status) || status < 100 || status > 599 ||
            !in.field(&type) || !in.field(&headers) || !in.field(&body) || !in.done()) {
            return std::nullopt;
        }
        out.reply = HttpReply{.status = static_cast<uint16_t>(status),
                              .content_type = std::string(type),
                              .body = std::string(body),
                              .extra_headers = std::string(headers)};
        return out;
    }
    if (kind != 'q') {
        return std::nullopt;
    }
    std::string_view origin, kind_byte, session, user;
    if (!in.field(&origin) || origin.empty() || !in.number(&out.id) || !in.field(&kind_byte) ||
        kind_byte.size() != 1 || !in.field(&session) || session.empty() || !in.field(&user) ||
        user.empty() || (user[0] != '-' && user[0] != 'u') ||
        (user[0] == '-' && user.size() != 1)) {
        return std::nullopt;
    }
    out.origin = std::string(origin);
    RelayRequest& r = out.request;
    r.session = std::string(session);
    if (user[0] == 'u') {
        r.user = std::string(user.substr(1));
    }
    if (kind_byte[0] == static_cast<char>(RelayRequest::Kind::kPost)) {
        r.kind = RelayRequest::Kind::kPost;
        std::string_view body;
        if (!in.field(&body)) {
            return std::nullopt;
        }
        r.body = std::string(body);
    } else if (kind_byte[0] == static_cast<char>(RelayRequest::Kind::kPoll)) {
        r.kind = RelayRequest::Kind::kPoll;
        uint64_t wait = 0;
        if (!in.number(&r.ack) || !in.number(&wait) || wait > UINT32_MAX) {
            return std::nullopt;
        }
        r.wait_ms = static_cast<uint32_t>(wait);
    } else {
        return std::nullopt;
    }
    if (!in.done()) {
        return std::nullopt;
    }
    return out;
}

// ---- the relay ----

struct SessionRelay::Pending final : loop::TimerNode {
    SessionRelay* relay = nullptr;
    uint32_t loop = 0;
    uint64_t id = 0;
    std::string session;
    HttpResponder responder;
    std::string pieces;  // a reply coming in pieces, so far
};

SessionRelay::SessionRelay(messaging::Hub& hub, std::vector<loop::EventLoop*> loops)
    : hub_(hub), loops_(std::move(loops)), per_loop_(loops_.size()) {
    hub_.setRelaySink(this);
}

SessionRelay::~SessionRelay() {
    // The hub went first (it stops the engine's calls), and the loops have stopped: no timer fires
    // any more, so cancelling here races with nothing.
    for (size_t i = 0; i < per_loop_.size(); ++i) {
        for (auto& [id, p] : per_loop_[i].pending) {
            loops_[i]->timers().cancel(p.get());
        }
    }
}

void SessionRelay::setHandler(RelayRequest::Kind kind, Handler handler) {
    (kind == RelayRequest::Kind::kPost ? post_ : poll_) = std::move(handler);
}

bool SessionRelay::forward(const RelayRequest& r, HttpResponder responder, uint32_t timeout_ms) {
    loop::EventLoop* here = loop::EventLoop::current();
    if (here == nullptr || here->id() >= loops_.size()) {
        return false;
    }
    bool unavailable = false;
    const std::string node = hub_.sessionNode(r.session, &unavailable);
    if (unavailable) {
        responder.reply(jsonError(503, Error::kUnavailable,
                                  "the shared engine cannot be reached to find the node that "
                                  "holds session " +
                                      r.session + ": retry later"));
        return true;
    }
    if (node.empty()) {
        return false;
    }
    const uint32_t loop = here->id();
    LoopState& st = per_loop_[loop];
    const uint64_t id =
        (uint64_t{loop} << kLoopShift) | (++st.next_id & ((uint64_t{1} << kLoopShift) - 1));
    auto p = std::make_unique<Pending>();
    p->fire = &SessionRelay::onTimeout;
    p->relay = this;
    p->loop = loop;
    p->id = id;
    p->session = r.session;
    p->responder = std::move(responder);
    here->timers().schedule(p.get(), timeout_ms);
    st.pending.emplace(id, std::move(p));
    hub_.sendRelay(node, encodeRelayRequest(hub_.nodeTag(), id, r));
    return true;
}

void SessionRelay::relay(std::string_view message) {
    std::optional<RelayMessage> m = parseRelayMessage(message);
    if (!m) {
        SB_WARN("relay: a malformed message from another node (%zu bytes) ignored", message.size());
        return;
    }
    if (m->type != RelayMessage::Type::kRequest) {
        const uint64_t loop = m->id >> kLoopShift;
        if (loop < loops_.size()) {
            loops_[loop]->post([this, loop, m = std::move(*m)]() mutable {
                onReply(static_cast<uint32_t>(loop), std::move(m));
            });
        }
        return;
    }
    // Run on a loop, never on the engine's thread: the reply goes back through the engine.
    const size_t loop = std::hash<std::string>{}(m->request.session) % loops_.size();
    loops_[loop]->post([this, m = std::move(*m)] {
        messaging::Hub* hub = &hub_;
        HttpResponder back = HttpResponder::to([hub, origin = m.origin, id = m.id](HttpReply r) {
            std::string reply = encodeRelayReply(id, r);
            if (reply.size() <= kMaxPieceBytes) {
                hub->sendRelay(origin, std::move(reply));
                return;
            }
            // Pieces from one node reach the other in order (one engine connection each way).
            for (std::string& piece : splitRelayReply(id, reply, kMaxPieceBytes)) {
                hub->sendRelay(origin, std::move(piece));
            }
        });
        const Handler& h = m.request.kind == RelayRequest::Kind::kPost ? post_ : poll_;
        if (!h) {
            back.reply(jsonError(404, Error::kNotFound, "this node serves no such session"));
            return;
        }
        h(m.request, std::move(back));
    });
}

void SessionRelay::onReply(uint32_t loop, RelayMessage m) {
    LoopState& st = per_loop_[loop];
    auto it = st.pending.find(m.id);
    if (it == st.pending.end()) {
        return;  // timed out already
    }
    Pending& p = *it->second;
    HttpReply reply = std::move(m.reply);
    if (m.type == RelayMessage::Type::kPiece) {
        if (p.pieces.size() + m.piece.size() > kMaxReplyBytes) {
            reply = jsonError(502, Error::kInternal,
                              "the reply of the node that holds the "
                              "session is too large to relay");
        } else {
            p.pieces += m.piece;
            if (!m.last) {
                return;
            }
            std::optional<RelayMessage> whole = parseRelayMessage(p.pieces);
            if (!whole || whole->type != RelayMessage::Type::kReply || whole->id != m.id) {
                reply = jsonError(502, Error::kInternal,
                                  "the reply of the node that holds the session came damaged");
            } else {
                reply = std::move(whole->reply);
            }
        }
    }
    loops_[loop]->timers().cancel(&p);
    p.responder.reply(std::move(reply));
    st.pending.erase(it);
}

void SessionRelay::onTimeout(loop::TimerNode* node) {
    auto* p = static_cast<Pending*>(node);
    SessionRelay* self = p->relay;
    LoopState& st = self->per_loop_[p->loop];
    p->responder.reply(jsonError(504, Error::kUnavailable,
                                 "the node that holds session " + p->session +
                                     " did not answer (it may have gone): reopen the session"));
    st.pending.erase(p->id);  // destroys p
}

}  // namespace sb::server
