// The broker contract: publications, loop-level interest and fan-out through a LoopSink, and the
// Engine interface that owns offsets, history, presence and idempotency: the in-process memory
// engine (memory_engine.h) and the shared Redis engine (engines/redis/redis_engine.h) implement
// it, and the layers above do not change with the engine. The broker knows loops, never connections
// or transports; data is opaque bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::broker {

// At most this many event loops can register interest (loop ids 0..63: one bit each).
inline constexpr uint32_t kMaxLoops = 64;

// One publication. Immutable once published; the same object is shared by history, sessions
// and every loop it is delivered to, so a publish costs one allocation however many subscribe.
struct Publication {
    std::string channel;
    std::string epoch;
    uint64_t offset = 0;   // 1, 2, 3 … within one epoch of the channel
    uint64_t time_ms = 0;  // the publisher's `now_ms`; history TTL counts from it
    std::string data;      // opaque (JSON text); the broker never parses it
};
using PubPtr = std::shared_ptr<const Publication>;

// Presence entry: who is in a channel. Immutable, shared between the presence set and events.
struct ClientInfo {
    std::string client_id;
    std::string user;
    std::string info_json;  // a JSON object, or empty
};

enum class EventKind : uint8_t { kPublication, kJoin, kLeave };

// What a loop receives. kPublication: `pub` set. kJoin/kLeave: `channel` and `who` set.
struct Event {
    EventKind kind = EventKind::kPublication;
    PubPtr pub;
    std::string channel;
    std::shared_ptr<const ClientInfo> who;
};

// The server's side of fan-out: one call per interested loop per event.
class LoopSink {
public:
    virtual ~LoopSink() = default;
    // Called on the publishing thread, for each loop with interest in the event's channel, in
    // offset order per channel: the engine calls it while holding that channel's lock, so two
    // publishers racing on one channel cannot reorder, and a join/leave is ordered with the
    // publications around it. Must be cheap (append to the loop's queue, wake it) and must not
    // call back into the engine (it would deadlock).
    virtual void deliver(uint32_t loop_id, Event ev) = 0;
    // A shared engine: a control message another node sent to this one (Engine::sendControl),
    // on the engine's thread. Must be cheap and must not call back into the engine.
    virtual void control(std::string_view /*message*/) {}
};

// Per-namespace behaviour (config [namespaces.NAME]). Passed with every call rather than stored,
// so a config reload takes effect on the next call. Fields the engine does not use are enforced
// by the server (client_publish, delivery, slow_consumer, max_data_bytes) or SessionStore
// (max_unacked, session_ttl_ms).
struct NamespaceOptions {
    enum class Delivery : uint8_t { kAtMostOnce, kAtLeastOnce };
    enum class SlowConsumer : uint8_t { kDisconnect, kDrop };

    bool presence = false;        // keep who is in a channel (off: presence costs nothing)
    bool join_leave = false;      // push join/leave events to subscribers
    size_t history_size = 0;      // publications kept per channel; 0 = no history, no recovery
    uint64_t history_ttl_ms = 0;  // and for how long; 0 = until pushed out by history_size
    bool client_publish = true;   // clients may publish (false: only the HTTP API)
    // At-most-once is the cheap default; at-least-once keeps un-acked publications per session.
    Delivery delivery = Delivery::kAtMostOnce;
    // Outbound limit passed: close 4000 and let the client recover (safe default), or skip.
    SlowConsumer slow_consumer = SlowConsumer::kDisconnect;
    size_t max_data_bytes = 64 * 1024;  // 64 KiB: matches the default max message size
    size_t max_unacked = 1000;          // per session and channel: bounds a dead client's cost
    uint64_t session_ttl_ms = 300'000;  // 5 min: survives a phone switching networks
    uint64_t idempotency_window_ms = 120'000;  // 2 min: longer than any sane client retry

    // Access rules: the messaging core enforces them, engines ignore them. They apply only when
    // the server verifies tokens (auth keys configured); without keys every client may do what
    // the namespace allows.
    enum class Access : uint8_t {
        kAny,            // every client allowed in the namespace (see `anonymous`)
        kAuthenticated,  // clients with a verified token
        kClaim,          // clients whose token's "channels" claim has a pattern matching it
    };
    // Clients without a token may use the namespace. Off: a namespace is for authenticated
    // users unless it says otherwise (safe default once auth is on).
    bool anonymous = false;
    Access subscribe_access = Access::kAny;
    Access publish_access = Access::kAny;
    Access presence_access = Access::kAny;
    Access history_access = Access::kAny;
    // Private channels: subscribing needs a subscribe token (a JWT whose "channel" claim is the
    // channel, and whose "sub", if any, is the subscriber) issued by the application backend.
    bool private_channels = false;
};

// A position in a channel's stream. An empty epoch means "the channel has no stream yet".
struct StreamPos {
    std::string epoch;
    uint64_t offset = 0;

    bool operator==(const StreamPos&) const = default;
};

struct PublishResult {
    StreamPos pos;           // the publication's position (the first one's, if duplicate)
    bool duplicate = false;  // idempotency key seen within the window: nothing was published
    // A shared engine could not be reached (or did not answer in time): nothing is known to
    // be published. The server answers `unavailable`; the client retries (idempotency key).
    bool unavailable = false;
};

struct RecoverResult {
    StreamPos top;             // the channel's current position (last offset assigned)
    bool recovered = false;    // every publication after `since` is in `pubs` (see each method)
    std::vector<PubPtr> pubs;  // offset order
    bool unavailable = false;  // a shared engine could not answer: nothing else is meaningful
};

// One channel as the engine sees it (for /api/channels).
struct ChannelSummary {
    std::string channel;
    StreamPos top;
    size_t presence = 0;     // entries in the presence set
    size_t loops = 0;        // loops with at least one local subscriber
    size_t history = 0;      // publications kept
    size_t subscribers = 0;  // this node's subscribed clients (filled by the messaging Hub)
};

// One node of a cluster sharing an engine (for /api/info and /metrics).
struct NodeStatus {
    std::string id;    // unique per process run
    std::string name;  // broker.node_name, or host:pid
    uint64_t connections = 0;
    uint64_t age_ms = 0;  // since its last heartbeat
};

// What an engine says about itself: /readyz, /api/info and /metrics show it.
struct EngineStatus {
    std::string engine = "memory";
    bool available = true;          // false: publishes fail with `unavailable`, /readyz answers 503
    std::string error;              // why it is not available ("connection refused", ...)
    std::string node_id;            // this node (empty for a single-process engine)
    std::vector<NodeStatus> nodes;  // every live node sharing the engine, this one included
    uint64_t reconnects = 0;        // connections to the shared engine re-established
};

// A session as a shared engine keeps it, so that any node can resume it: its owner, its TTL
// and, per channel, the position to resume from (the last ack on at-least-once channels, the
// last delivery on the others). Un-acked publications are not copied: they are the channel's
// history after that position, and a resume elsewhere replays them from there.
struct SessionRecord {
    std::string owner;   // the user it belongs to ("" = anonymous)
    std::string holder;  // who holds it: "<node tag>:<connection serial>"
    uint64_t ttl_ms = 0;
    std::vector<std::pair<std::string, StreamPos>> channels;
};

// Thread safety: every method may be called from any thread concurrently, except setSink (see
// there). Calls on one channel are serialized by that channel's lock; calls on different
// channels do not contend on a common lock beyond a short sharded lookup.
class Engine {
public:
    virtual ~Engine() = default;

    // Where events go. Call once at startup, before any other method; `sink` must outlive the
    // engine. Null (the default) drops events.
    virtual void setSink(LoopSink* sink) = 0;

    // Loop `loop_id` (< kMaxLoops) gained its first / lost its last local subscriber of
    // `channel`. Interest is one bit per loop, not a count: the server calls these on the
    // transitions of its local subscriber list. Idempotent.
    virtual void loopSubscribed(std::string_view channel, uint32_t loop_id) = 0;
    virtual void loopUnsubscribed(std::string_view channel, uint32_t loop_id) = 0;

    // Atomic subscribe-and-recover: under the channel's lock, registers `loop_id`'s interest
    // (as loopSubscribed; idempotent, so call it for every client subscribe, whether or not the
    // loop already had subscribers), snapshots the top position and, if `since` is given,
    // collects every kept publication after it (no limit: history_size bounds it).
    // Guarantee: every publication with offset > result.top.offset is delivered to `loop_id`
    // through the sink after this snapshot; none falls between. Publications with offset <=
    // top may also still be in the loop's queue (delivered before the call because another
    // local subscriber had the loop registered): the server skips those for the new
    // subscriber by comparing with top.offset. recovered (only meaningful with `since`): true
    // iff since.epoch is the current epoch and every offset in (since.offset, top] is in
    // `pubs`; if false with the current epoch, `pubs` still holds what is kept after `since`
    // (the server may drop it). Without `since`, `pubs` is empty. Creates the channel if
    // needed.
    virtual RecoverResult subscribe(std::string_view channel, const NamespaceOptions& ns,
                                    uint32_t loop_id, const std::optional<StreamPos>& since,
                                    uint64_t now_ms) = 0;

    // Assigns the next offset, stores the publication in history (trimmed by ns.history_size
    // and ns.history_ttl_ms), and delivers it to every interested loop. A non-empty
    // `idempotency_key` seen on this channel within ns.idempotency_window_ms returns the first
    // publication's position with duplicate=true and publishes nothing (engines may also cap
    // the keys kept per channel, forgetting the oldest first). Does not validate
    // data size or permissions: the server does. Creates the channel if needed.
    virtual PublishResult publish(std::string_view channel, const NamespaceOptions& ns,
                                  std::string data, std::string_view idempotency_key,
                                  uint64_t now_ms) = 0;

    // The current top position and publications, without touching interest.
    // With `since`: the kept publications after since.offset in offset order, at most `limit`
    // (0 = all) starting from the oldest; recovered=true iff since.epoch is current and the
    // first of them is since.offset + 1 (or since is the top) — with a limit, the caller pages
    // on from the last offset returned. If the epoch differs, `pubs` is empty.
    // Without `since`: the newest `limit` (0 = all) kept publications; recovered=false.
    // A channel that does not exist is not created: top = {"", 0}, recovered=false.
    virtual RecoverResult history(std::string_view channel, const NamespaceOptions& ns,
                                  const std::optional<StreamPos>& since, size_t limit,
                                  uint64_t now_ms) = 0;

    // Adds `who` to the presence set (if ns.presence or ns.join_leave; else nothing) and, if
    // ns.join_leave and the client id was not there yet, emits kJoin to interested loops.
    // Adding an existing client id replaces its info without an event.
    virtual void presenceAdd(std::string_view channel, const NamespaceOptions& ns,
                             std::shared_ptr<const ClientInfo> who) = 0;
    // Removes the client id; emits kLeave (with the stored info) if it was there and
    // ns.join_leave.
    virtual void presenceRemove(std::string_view channel, const NamespaceOptions& ns,
                                std::string_view client_id) = 0;
    // The presence set, unordered.
    virtual std::vector<std::shared_ptr<const ClientInfo>> presence(std::string_view channel) = 0;

    // Every live channel, unordered (a snapshot; channels are locked one at a time). A shared
    // engine lists the channels this node has subscribers in.
    virtual std::vector<ChannelSummary> channels() = 0;
    // How many channels() would list, without their details (for /metrics).
    virtual size_t channelCount() { return channels().size(); }

    // Housekeeping, ~1/s from any one thread: trims history by TTL, forgets expired idempotency
    // keys, and removes channels with no interested loop, no history, no presence and no live
    // idempotency key. A channel created again later gets a new epoch.
    virtual void sweep(uint64_t now_ms) = 0;

    // ---- Shared engines (Redis): the defaults describe a single process ----
    // Cheap (an atomic): a shared engine is reachable. Subscribes, publishes, history and
    // presence fail with `unavailable` (and /readyz says not ready) while it is not.
    virtual bool available() const { return true; }
    virtual EngineStatus status() { return {}; }
    // ~1/s from the housekeeping thread: this node is alive and holds `connections`; a node
    // that stops calling it is dead after broker.node_ttl and its presence entries are removed.
    virtual void heartbeat(uint64_t /*connections*/) {}
    // Non-empty: this node's short unique tag. Client ids embed it so they are unique across
    // the nodes that share the engine.
    virtual std::string_view nodeTag() const { return {}; }
    // Sessions are kept in the engine too, so another node can resume them (see SessionRecord).
    virtual bool sharesSessions() const { return false; }
    // Stores the record (TTL: rec.ttl_ms from now). `take`: the caller becomes the holder
    // whoever held it; otherwise the write is skipped when another holder took it meanwhile
    // (a node must not overwrite the state of a session that moved away). Fire-and-forget.
    virtual void saveSession(std::string_view /*id*/, const SessionRecord& /*rec*/, bool /*take*/) {
    }
    // The stored record, or nullopt: unknown or expired — or the engine could not be asked,
    // and then `*unavailable` is set (the caller must not treat the session as gone).
    virtual std::optional<SessionRecord> loadSession(std::string_view /*id*/,
                                                     bool* /*unavailable*/) {
        return std::nullopt;
    }
    virtual void removeSession(std::string_view /*id*/) {}
    // Sends `message` to the node whose nodeTag() is `node` (empty: to every node, this one
    // included); it arrives there through LoopSink::control. Fire-and-forget: a node that is
    // gone does not get it.
    virtual void sendControl(std::string_view /*node*/, std::string /*message*/) {}
};

}  // namespace sb::broker
