// SessionStore: the state of client sessions that outlives a connection — the channels a session
// subscribed to and, on at-least-once namespaces, the publications delivered but not yet acked —
// so a client that reconnects and resumes gets its subscriptions back and everything after its
// last ack. In-process, like the memory engine: a restart loses it (clients see resumed:false).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/engine.h"

namespace sb::broker {

// One channel of a resumed session.
struct SessionChannel {
    std::string channel;
    std::vector<PubPtr> unacked;  // delivery (offset) order; empty on at-most-once channels
    bool gap = false;  // max_unacked dropped publications before unacked.front(): send gap:true
    // The last position delivered to the session (or where it subscribed): everything after
    // it was never sent, so a resume recovers it from history.
    StreamPos delivered;
};

struct ResumedSession {
    std::vector<SessionChannel> channels;  // sorted by channel name
    bool was_attached = false;     // still attached to another connection: the caller takes over
    uint64_t previous_holder = 0;  // that connection's holder token (0 if none was attached)
};

// A session has at most one holder: the connection attached to it, named by a non-zero token
// the caller chooses (create and resume set it). Methods that change a session take the
// caller's token and do nothing (return false) if another connection holds it now, so a
// connection whose session was taken over cannot start its TTL or move its queues; a token of
// 0 skips the check (tests, tools).
//
// Thread-safe: every method may be called from any thread. Sessions are spread over 16 shards
// by id, each with its own lock; a call locks one shard (sweep and size() each in turn).
// Bounds: per session and channel, ns.max_unacked publications (oldest dropped, gap flagged);
// a detached session lives for the largest ns.session_ttl_ms of its channels (default_ttl_ms
// with none). Publications are shared (PubPtr), so a queue costs a pointer per entry.
class SessionStore {
public:
    // `default_ttl_ms`: TTL of a session with no subscribed channel (5 min, as the protocol's
    // default session TTL).
    explicit SessionStore(uint64_t default_ttl_ms = 300'000);
    ~SessionStore();
    SessionStore(const SessionStore&) = delete;
    SessionStore& operator=(const SessionStore&) = delete;

    // Creates an attached session with no channels and returns its id: "s_" + 32 lowercase hex
    // digits (128 bits from the kernel CSPRNG: unguessable, so an id is the session's secret).
    // `owner`: the authenticated user it belongs to ("" = anonymous); only that user resumes it.
    std::string create(uint64_t holder = 0, std::string_view owner = {});

    // Re-attaches a session that exists and has not expired (detached and now_ms past its TTL).
    // Returns its channels with their un-acked publications, or nullopt (unknown or expired:
    // the caller replies resumed:false and starts a new session). The gap flags stay set until an
    // ack passes the first un-acked publication, so a resume that fails before redelivery loses
    // nothing. The caller re-subscribes the channels and redelivers `unacked` in order.
    // `holder` becomes the session's holder; the previous one is in previous_holder. A session
    // whose owner is not `owner` answers nullopt, exactly as an unknown one (a leaked or guessed
    // id tells another user nothing) and is left untouched.
    std::optional<ResumedSession> resume(std::string_view id, uint64_t now_ms, uint64_t holder = 0,
                                         std::string_view owner = {});

    // Records that the session subscribed to `channel`, with that namespace's delivery mode,
    // max_unacked and session_ttl_ms. Subscribing again updates the options and keeps the
    // queue. False if the session is unknown.
    bool subscribe(std::string_view id, std::string_view channel, const NamespaceOptions& ns,
                   uint64_t holder = 0);
    // Forgets the channel and its un-acked publications. False if either is unknown.
    bool unsubscribe(std::string_view id, std::string_view channel, uint64_t holder = 0);

    // Records where the session's view of `channel` stands (the subscribe position). track()
    // advances it. False if the session or channel is unknown.
    bool setPosition(std::string_view id, std::string_view channel, StreamPos pos,
                     uint64_t holder = 0);
    // The server delivered `pub` to this session: keep it until acked. Ignored (false) if the
    // session is unknown or did not subscribe pub->channel on an at-least-once namespace. Past
    // max_unacked the oldest is dropped and the channel's gap flag set. A publication already
    // kept (same epoch, offset not above the newest kept) is not kept twice (a resume
    // redelivers the queue and then history after it).
    bool track(std::string_view id, PubPtr pub, uint64_t holder = 0);

    // Drops the channel's un-acked publications with offset <= `offset`. False if the session
    // or channel is unknown.
    bool ack(std::string_view id, std::string_view channel, uint64_t offset, uint64_t holder = 0);

    // The session's connection went away: start its TTL at now_ms. False if unknown or held
    // by another connection.
    bool detach(std::string_view id, uint64_t now_ms, uint64_t holder = 0);
    // Ends a session now (e.g. /api/disconnect without reconnect). False if unknown.
    bool remove(std::string_view id);

    // ---- Sessions kept in a shared engine too (see broker::SessionRecord) ----
    // What another node needs to resume session `id`: owner, TTL and per channel the position
    // to resume from (before the first un-acked publication, else the last delivered). The
    // caller fills in `holder`. Nullopt if unknown.
    std::optional<SessionRecord> record(std::string_view id) const;
    // Replaces any local copy of `id` with the state `rec` describes, attached to `holder`, and
    // returns it as resume() would (no un-acked publications: a resume replays them from
    // history after each channel's position).
    ResumedSession adopt(std::string_view id, const SessionRecord& rec, uint64_t holder);
    // The token of the connection attached to `id`; 0 when it is detached or unknown.
    uint64_t holder(std::string_view id) const;
    // The ids and holders of the attached sessions (a snapshot, shard by shard).
    std::vector<std::pair<std::string, uint64_t>> attached() const;

    // Removes detached sessions whose TTL has passed; returns how many. Call ~1/s.
    size_t sweep(uint64_t now_ms);
    // Live sessions (attached or within TTL), for metrics.
    size_t size() const;

private:
    static constexpr size_t kShards = 16;
    struct Shard;
    Shard& shardFor(std::string_view id);
    template <class F>
    bool withChannel(std::string_view id, std::string_view channel, uint64_t holder, F&& f);

    uint64_t default_ttl_ms_;
    std::array<std::unique_ptr<Shard>, kShards> shards_;
};

}  // namespace sb::broker
