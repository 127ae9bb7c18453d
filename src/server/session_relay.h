// Requests for a session that another node holds. Behind a load balancer, the POSTs of an SSE or
// long-polling session and the polls of a long-polling one reach any node, but the session
// lives on one connection of one node. The node a request reaches finds the holder's node in
// the shared store and relays the request there over the engine (Hub::sendRelay); that node
// runs it as if it had come to it and relays the HTTP reply back. So no sticky sessions are
// needed. Nodes trust each other's relayed requests (the first node verified the token), as
// they trust the engine's control messages.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "loop/event_loop.h"
#include "messaging/hub.h"
#include "server/app.h"

namespace sb::server {

// What a relayed request asks for.
struct RelayRequest {
    enum class Kind : char {
        kPost = 'p',  // POST /sse or /poll: one native request for the session
        kPoll = 'g',  // GET /poll: the session's next batch
    };
    Kind kind = Kind::kPost;
    std::string session;
    // The user of the request's verified token; nullopt: the request came without a token.
    std::optional<std::string> user;
    std::string body;      // kPost: the native request
    uint64_t ack = 0;      // kPoll: the batch it acknowledges
    uint32_t wait_ms = 0;  // kPoll: how long it may wait
};

// One relayed message: a request (from node `origin`, numbered `id` there), the reply to
// request `id`, or a piece of a reply too big for one engine message (`piece`, `last`).
struct RelayMessage {
    enum class Type : char { kRequest = 'q', kReply = 'a', kPiece = 'c' };
    Type type = Type::kRequest;
    std::string origin;
    uint64_t id = 0;
    RelayRequest request;
    HttpReply reply;
    std::string piece;  // kPiece: the next bytes of an encoded reply
    bool last = false;  // kPiece: the reply is whole with this one
};

// The wire (pure): the type byte, then fields as "<length>:<bytes>".
std::string encodeRelayRequest(std::string_view origin, uint64_t id, const RelayRequest& r);
std::string encodeRelayReply(uint64_t id, const HttpReply& r);
// A reply (as encodeRelayReply made it) in pieces of at most `max_piece` bytes each.
std::vector<std::string> splitRelayReply(uint64_t id, std::string_view reply, size_t max_piece);
// Nullopt if malformed.
std::optional<RelayMessage> parseRelayMessage(std::string_view m);

class SessionRelay final : public messaging::RelaySink {
public:
    // Replies are relayed in pieces of at most this many bytes: NATS refuses messages over
    // 1 MiB by default, and a poll's batch can hold messaging.outbound_limit bytes.
    static constexpr size_t kMaxPieceBytes = 256 * 1024;
    // A reply bigger than this (assembled from pieces) is refused with a 502.
    static constexpr size_t kMaxReplyBytes = 64 << 20;

    // Runs a relayed request on this node (a loop thread) and answers through the responder.
    // It must not relay the request again: if this node does not hold the session either, it
    // answers as it would a direct request for an unknown session.
    using Handler = std::function<void(const RelayRequest&, HttpResponder)>;

    // Registers with `hub` (Hub::setRelaySink). Destroy the hub first (that ends the engine's
    // calls), after the loops have stopped.
    SessionRelay(messaging::Hub& hub, std::vector<loop::EventLoop*> loops);
    ~SessionRelay() override;
    SessionRelay(const SessionRelay&) = delete;
    SessionRelay& operator=(const SessionRelay&) = delete;

    // Before any request is relayed here.
    void setHandler(RelayRequest::Kind kind, Handler handler);

    // On the loop thread of the HTTP request: when another node holds `r.session`, sends `r`
    // there and returns true; its reply — or a 504 after `timeout_ms` without one — goes to
    // `responder`. When the store cannot be asked, answers 503 and returns true. False, having
    // sent and answered nothing, when no other node holds the session (no shared engine, an
    // unknown or expired session, or one held here): the caller answers.
    bool forward(const RelayRequest& r, HttpResponder responder, uint32_t timeout_ms);

    // messaging::RelaySink (the engine's thread).
    void relay(std::string_view message) override;

    struct Pending;

private:
    // On the loop that relayed request m.id: its reply, or a piece of it.
    void onReply(uint32_t loop, RelayMessage m);
    static void onTimeout(loop::TimerNode* node);

    messaging::Hub& hub_;
    std::vector<loop::EventLoop*> loops_;
    Handler post_;
    Handler poll_;
    // Per loop (its thread only): the requests it relayed that await a reply, by id; ids carry
    // the loop in their top byte, so a reply finds its way back.
    struct LoopState {
        uint64_t next_id = 0;
        std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending;
    };
    std::vector<LoopState> per_loop_;
};

}  // namespace sb::server
