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

thread_local std::string t_event;  // one-off event scratch (the loop's thread)

}  // namespace

struct Sse::Connection final : public transport::SocketData, public messaging::Peer {
    // Its own scratch slot: a "data:" block is not the WebSocket frame /ws keeps for the same
    // event (messaging::Peer::kScratchSlots).
    Connection(transport::EventStream& stream, messaging::Stats& loop_stats)
        : Peer(kEventStreamSlot), client(*this), es(&stream), stats(&loop_stats) {}

    messaging::Client client;
    transport::EventStream* es;
    messaging::Stats* stats;  // this loop's
    SessionPosition pos;      // what the next id says
    bool ended = false;

    PeerStatus account(transport::SendStatus st, size_t payload) {
        const PeerStatus ps = peerStatusOf(st, payload, *stats, client, es->behavior().max_backlog);
        ended = ended || ps == PeerStatus::kGone;
        return ps;
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
        // The data block is the same for every stream the event goes to on this loop: built
        // once (d.shared, this adapter's scratch slot); the id before it is this stream's.
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
        ev.append(encodeEventId(pos));
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

namespace {}  // namespace

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
    behavior_.on_shutdown = [this](transport::EventStream& es) {
        if (auto* conn = es.data<Connection>()) {
            conn->send(shutdownNotice(reconnect_delay_ ? reconnect_delay_() : 0));
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
    auto open = std::make_unique<SessionRequest>();
    SessionRefusal no = parseSessionRequest(*hub_, req, false, open.get());
    if (no.status != 0) {
        out.status = no.status;
        out.code = std::move(no.code);
        out.message = std::move(no.message);
        out.extra_headers = std::move(no.extra_headers);
        return out;
    }
    out.data = std::move(open);
    return out;
}

void Sse::onOpen(transport::EventStream& es) {
    const uint32_t loop = es.loop()->id();
    std::unique_ptr<SessionRequest> req;
    if (auto* pending = es.data<SessionRequest>()) {  // only on_request sets data before on_open
        req = std::make_unique<SessionRequest>(std::move(*pending));
    }
    auto owned = std::make_unique<Connection>(es, hub_->stats(loop));
    Connection& conn = *owned;
    conn.client.setRemoteRequests(true);  // its requests are POSTs
    hub_->open(conn.client, loop);
    es.setData(std::move(owned));  // destroys the request (moved from)
    if (!req) {
        return;
    }
    // A reconnect comes back in about a second, spread so a restart's clients do not all
    // return at once (EventSource waits `retry` before reconnecting).
    thread_local std::mt19937 rng{std::random_device{}()};
    const std::string retry =
        "retry: " + std::to_string(std::uniform_int_distribution<int>(500, 2500)(rng)) + "\n\n";
    (void)es.send(retry);
    const bool ok = openSession(
        *hub_, conn.client, *req, ping_interval_s_,
        [&conn](const std::string& json) { return conn.send(json); }, &conn.pos);
    if (!ok) {
        conn.ended = true;
        es.end("connect refused");
    }
}

void Sse::onClose(transport::EventStream& es) {
    if (auto* conn = es.data<Connection>()) {
        conn->ended = true;
        hub_->close(conn->client);
    }
}

void Sse::onPost(const http::Request& req, std::string_view body, HttpResponder responder) {
    postToSession(*hub_, req, body, std::move(responder), ping_interval_s_, relay_);
}

}  // namespace sb::server
