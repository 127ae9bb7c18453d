// The messaging core: namespaces, channels, subscriptions, presence, history, sessions (one
// holder each, resume, acks), rate limits and the fan-out of publications to subscribers on
// every event loop. Transport-neutral: an adapter (server/native_ws for /ws, server/http_api for
// /api) turns its protocol into calls on the Hub and implements Peer for the events that flow back.
// No I/O of its own; the broker::Engine owns offsets, history and presence.
//
// Threads: each Client lives on one event loop, and every call that takes a Client runs on
// that loop's thread. Calls without a Client (publish from the API, presence, history,
// disconnect, broadcast) may run on any thread. Events cross loops through one mailbox per
// loop (Fanout), drained at the end of the loop's iteration.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/jwt.h"
#include "base/result.h"
#include "broker/engine.h"
#include "broker/session_store.h"
#include "messaging/errors.h"
#include "messaging/options.h"
#include "messaging/peer.h"
#include "messaging/stats.h"

namespace sb::loop {
class EventLoop;
}

namespace sb::messaging {

class Hub;
struct Fanout;

// Who a connection is, from its verified connection token. Anonymous when no token was given.
struct Identity {
    bool authenticated = false;
    std::string user;                   // the token's "sub"
    std::vector<std::string> channels;  // the "channels" claim: patterns (auth/permissions.h)
    int64_t expires_s = 0;              // the token's "exp" (Unix seconds); 0 = never
};

// How tokens are verified. Keys empty: auth is off, every client is anonymous and may do what
// the namespaces allow (the embedded default; the server warns at startup).
struct AuthConfig {
    std::shared_ptr<const auth::KeySet> keys;
    auth::VerifyPolicy policy;
    bool enabled() const { return keys != nullptr && !keys->empty(); }
};

// The core's state of one connection. The adapter owns it (inside its per-connection data,
// which the transport destroys only after the close was reported), calls Hub::open once the
// connection is up and Hub::close when it ends. Fields are the Hub's.
class Client {
public:
    explicit Client(Peer& peer) : peer_(&peer) {}
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    const std::string& id() const { return id_; }            // empty until connect
    const std::string& session() const { return session_; }  // empty until connect
    const Identity& identity() const { return identity_; }
    bool connected() const { return connected_; }
    // The peer is closing (slow consumer, takeover, disconnect): nothing more reaches it.
    bool closing() const { return gone_; }
    // Requests may also come from other connections than its own (the POSTs of an SSE or
    // long-polling session, Hub::withSessionHolder). Set by those adapters; off for /ws.
    void setRemoteRequests(bool on) { remote_requests_ = on; }
    bool remoteRequests() const { return remote_requests_; }

private:
    friend class Hub;
    friend struct Fanout;
    // The fields a delivery reads and writes come first, in one cache line (Fanout reads
    // them for every subscriber of every publication).
    struct Sub {
        std::string epoch;
        uint64_t last_offset = 0;  // highest offset handed to this subscriber (or skipped)
        // At-most-once: the offset up to which the peer was sent (a dropped publication does
        // not count until a later one carries its gap:true). Trails
        // last_offset while a replay is under way; close() saves it as the session position,
        // so a replay cut short is resumed where it stopped, not at the top.
        uint64_t received = 0;
        const NamespaceOptions* ns = nullptr;
        bool gap = false;     // something was skipped: the next publication says gap:true
        std::string channel;  // canonical name
        NamespaceStats* ns_stats = nullptr;  // its namespace's counters (Hub::namespaceStats)
    };
    Sub* find(std::string_view channel);
    const Sub* find(std::string_view channel) const;

    // peer_ and gone_ first: fan-out reads both for every delivery (one cache line).
    Peer* peer_;
    bool gone_ = false;  // the peer is closing: nothing more is delivered
    bool connected_ = false;
    bool remote_requests_ = false;
    Fanout* fanout_ = nullptr;  // set by open
    // Unique per process and never 0; also the session holder token. The low 6 bits are the
    // loop index (broker::kMaxLoops = 64), so a token says where its connection lives.
    uint64_t serial_ = 0;
    std::string id_;
    std::string session_;
    std::shared_ptr<const broker::ClientInfo> info_;
    Identity identity_;
    std::vector<std::unique_ptr<Sub>> subs_;
    double tokens_ = 0;
    uint64_t refill_ms_ = 0;
    uint32_t limited_in_row_ = 0;
};

// What a subscribe (or a resume) found: the channel's top position and, when a position was
// asked for, whether everything after it follows.
struct ChannelPosition {
    std::string channel;
    broker::StreamPos top;
    std::optional<bool> recovered;
};

// Publications owed to a client after a reply (missed ones on subscribe-with-since, un-acked
// ones and missed ones on resume). The adapter writes its reply first, then passes this to
// Hub::replay, so the client sees the reply before the messages.
struct Replay {
    struct Channel {
        std::string channel;
        std::vector<broker::PubPtr> unacked;  // resume: held by the session, in order
        bool gap = false;                     // the session dropped some before unacked[0]
        std::vector<broker::PubPtr> pubs;     // from history (those after unacked are sent)
    };
    std::vector<Channel> channels;
};

struct Connected {
    std::string client_id;
    std::string session_id;
    std::string user;  // the token's subject; empty for anonymous clients
    // Seconds until the connection token expires (the client refreshes before); none = never.
    std::optional<uint64_t> expires_in;
    bool resumed = false;
    std::vector<ChannelPosition> channels;  // resume: the restored subscriptions
    Replay replay;
};

struct Subscribed {
    ChannelPosition position;
    Replay replay;
};

struct Published {
    std::string channel;  // canonical
    broker::StreamPos pos;
    bool duplicate = false;
};

struct PresenceResult {
    std::string channel;
    std::vector<std::shared_ptr<const broker::ClientInfo>> clients;
};

struct HistoryResult {
    std::string channel;
    broker::RecoverResult result;  // recovered is meaningful only when `since` was given
};

template <class T>
using Outcome = base::Expected<T, Failure>;

enum class Admission : uint8_t {
    kOk,
    kLimited,  // refuse this request (rate_limited)
    kAbuse,    // the client keeps going past the limit: disconnect it (kRateLimitAbuse)
};

// The receiver of the server's own node-to-node messages (server/session_relay.h), which
// travel as engine control messages that start with 'r'.
class RelaySink {
public:
    virtual ~RelaySink() = default;
    // On the engine's thread: must be cheap and must not call the engine (post to a loop).
    virtual void relay(std::string_view message) = 0;
};

class Hub final : public broker::LoopSink {
public:
    // One Fanout per loop; `loops[i]->id()` must be i. `engine`: where offsets, history,
    // presence (and, for a shared engine, sessions) live; null = the in-process memory engine.
    Hub(Options options, std::vector<loop::EventLoop*> loops,
        std::unique_ptr<broker::Engine> engine = nullptr);
    ~Hub() override;
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    // Starts the housekeeping thread (TTL sweeps once a second). Idempotent.
    void start();
    // Stops it (also done by the destructor).
    void stop();

    // ---- A connection's life (its loop thread) ----
    // The connection is up on loop `loop_index`.
    void open(Client& c, uint32_t loop_index);
    // The connection ended: subscriptions, presence and its hold on its session are released
    // (the session's TTL starts, unless another connection took it over). Idempotent.
    // `close_code`: a WebSocket's close code, counted once in Stats::disconnects (the
    // reconnect rate by why); 0 for transports without one (SSE, long-polling).
    void close(Client& c, uint16_t close_code = 0);
    // Spends one request token (messaging.rate_limit per second, burst twice that).
    Admission admit(Client& c);

    // ---- Requests of a connection (its loop thread) ----
    // `session` non-empty: resume it if it lives. Its channels are subscribed again; what the
    // session holds un-acked and what was published since its last delivery is in `replay`.
    // A session another connection holds is taken over: that one is disconnected with
    // kSessionTakenOver. Unknown, expired or another user's: a new session (resumed=false).
    // `token`: the connection token (JWT). With auth on, its "sub" is the user (the `user`
    // argument is ignored, and is empty for anonymous clients); without a token the client is
    // anonymous, refused with kTokenRequired when no namespace takes anonymous clients.
    // `verified`: the claims of a token the adapter already verified with verify() (at the
    // upgrade), used when `token` is empty; only their expiry is checked again. Moved from.
    Outcome<Connected> connect(Client& c, std::string_view user, std::string info_json,
                               std::string_view session, std::string_view token = {},
                               auth::Claims* verified = nullptr);
    // A new connection token for the same user (before the current one expires). Returns the
    // seconds until the new one expires (none = never).
    Outcome<std::optional<uint64_t>> refresh(Client& c, std::string_view token);
    // The client's connection token expired more than the leeway ago (the adapter's timer asks;
    // a client that did not refresh is disconnected with kTokenExpired).
    bool tokenExpired(const Client& c) const;
    // Milliseconds from now until tokenExpired() turns true; none when the token never expires.
    std::optional<uint64_t> msUntilExpiry(const Client& c) const;
    // `token`: a subscribe token, needed in namespaces with private_channels.
    Outcome<Subscribed> subscribe(Client& c, std::string_view channel,
                                  const std::optional<broker::StreamPos>& since,
                                  std::string_view token = {});
    // Returns the canonical channel name.
    Outcome<std::string> unsubscribe(Client& c, std::string_view channel);
    Outcome<void> ack(Client& c, std::string_view channel, uint64_t offset);
    // Writes the publications of `r` to `c` after the adapter's reply. Stops at once if the
    // connection goes (a slow consumer during a long replay).
    void replay(Client& c, Replay r);
    // Ends the client's connection with `d` (its loop thread), as the adapter would: for
    // requests that reached it another way (Hub::withSessionHolder). Idempotent.
    void end(Client& c, const Disconnect& d);

    // ---- Requests of a connection or of the server (any thread) ----
    // `c` null: the server publishes (client_publish does not apply).
    Outcome<Published> publish(Client* c, std::string_view channel, std::string data,
                               std::string_view idempotency_key);
    // All channels are checked before any is published: a refusal publishes nothing.
    Outcome<std::vector<Published>> broadcast(std::span<const std::string_view> channels,
                                              std::string data, std::string_view idempotency_key);
    // `c`: the asking client (its loop thread), checked against the namespace's access rules;
    // null = the server (HTTP API), which may read everything.
    Outcome<PresenceResult> presence(std::string_view channel, const Client* c = nullptr);
    Outcome<HistoryResult> history(std::string_view channel,
                                   const std::optional<broker::StreamPos>& since, size_t limit,
                                   const Client* c = nullptr);
    // Asks the client's loop to disconnect it (kApiDisconnect with `reconnect`).
    // With a shared engine, a client of another node (its id carries that node's tag) is
    // asked there.
    Outcome<void> disconnect(std::string_view client_id, bool reconnect);
    // Any thread: runs `fn` on the loop of the local connection that holds session
    // `session_id`, after the events already queued for that loop, with its Client (null if it
    // went meanwhile). False, and `fn` is not called, when no local connection holds it. For
    // requests that arrive on another connection than the session's own (the POSTs of an SSE
    // or long-polling session).
    bool withSessionHolder(std::string_view session_id, std::function<void(Client*)> fn);
    // Every connection authenticated as `user` (a token's "sub"); returns how many were asked.
    // kUnknownClient when none is connected. With a shared engine every node is asked, and
    // the count is this node's (zero is no error: others may have some).
    Outcome<size_t> disconnectUser(std::string_view user, bool reconnect);

    // ---- Operations ----
    // Any thread (SIGHUP): namespaces for subscriptions and publishes from now on; existing
    // subscriptions keep the options they were made with.
    void reloadNamespaces(NamespaceMap namespaces);
    // Any thread (startup, SIGHUP): the keys and claims tokens are verified with from now on.
    // Connections already authenticated keep their identity until their token expires.
    void setAuth(AuthConfig config);
    bool authEnabled() const { return auth_on_.load(std::memory_order_relaxed); }
    // Any thread: verifies a token with the current keys; `what` names it in the error
    // ("connection token: token expired"). kInvalidToken when it does not verify.
    Outcome<auth::Claims> verify(std::string_view token, std::string_view what) const;
    // Some namespace takes clients without a token (auth off counts as yes).
    bool anonymousAllowed() const;
    // The engine's channels, with this node's subscriber counts filled in.
    std::vector<broker::ChannelSummary> channels();
    size_t channelCount() { return engine_->channelCount(); }
    // Any thread: the engine can serve requests (/readyz), and what it says about the cluster.
    bool engineAvailable() const { return engine_->available(); }
    broker::EngineStatus engineStatus() { return engine_->status(); }
    size_t sessions() const { return sessions_.size(); }
    size_t loopCount() const { return fanouts_.size(); }
    // The stats the calling thread writes: its loop's (any other thread shares one extra set,
    // meant for tests that call the Hub outside a loop).
    Stats& localStats();
    // Loop `loop_index`'s stats (written on that loop's thread only).
    Stats& stats(uint32_t loop_index);
    StatsTotals totals() const;
    // Any thread: per namespace that has had a subscriber or a publication, its figures summed
    // over the loops, by name.
    std::vector<NamespaceTotals> namespaceTotals() const;
    const Options& options() const { return options_; }

    // ---- Node to node (a shared engine) ----
    // This node's tag; empty without a shared engine (there is no other node).
    std::string_view nodeTag() const { return engine_->nodeTag(); }
    // Any thread: `message` to node `node`, where it reaches the RelaySink. Fire-and-forget.
    void sendRelay(std::string_view node, std::string message);
    // Any thread, once at startup (null: none). Relayed messages that come before are dropped.
    void setRelaySink(RelaySink* sink) { relay_.store(sink, std::memory_order_release); }
    // The node that holds session `id` according to the shared store: its tag, or empty when
    // the session is unknown, expired or held by this node — or when the engine could not be
    // asked, and then `*unavailable` is set. One engine round trip (a loop thread may call it,
    // as a resume does).
    std::string sessionNode(std::string_view id, bool* unavailable);

    // broker::LoopSink (publishing thread): queue for the loop and wake it.
    void deliver(uint32_t loop_id, broker::Event ev) override;
    // broker::LoopSink (engine thread): another node resumed a session held here ("t" + id), or
    // asks to disconnect a client ("d" + "0"/"1" reconnect + client id) or a user's
    // connections ("u" + "0"/"1" + user) held here; "r" + message: for the RelaySink.
    void control(std::string_view message) override;

private:
    friend struct Fanout;
    struct Resolved {
        std::string_view canonical;
        const NamespaceOptions* ns;
    };
    Outcome<Resolved> resolve(std::string_view channel) const;
    // The namespace's access rule `access` for `what` ("subscribe", ...) allows `c`.
    Outcome<void> permit(const Client& c, const Resolved& r,
                         broker::NamespaceOptions::Access access, std::string_view what) const;
    std::shared_ptr<const AuthConfig> authConfig() const;
    // In a private-channel namespace, only subscribers of the channel may read `what`.
    Outcome<void> privateReader(const Client& c, const Resolved& r, std::string_view what) const;
    // Subscribes `c` (no checks); fills `pos` and the replay entry. False: the engine is
    // unavailable and nothing changed.
    bool attach(Client& c, std::string_view channel, const NamespaceOptions& ns,
                const std::optional<broker::StreamPos>& since, ChannelPosition* pos,
                Replay::Channel* replay);
    void detachSub(Client& c, Client::Sub& s);
    // Asks the loop of connection `serial` to close it (takeover or disconnect); 0 or a serial
    // of no loop: nothing.
    void postCommand(uint64_t serial, bool takeover, bool reconnect);
    // The serial of the local connection with this client id (0: none), and those of a user.
    uint64_t serialOf(std::string_view client_id);
    std::vector<uint64_t> serialsOf(std::string_view user);
    // A session holder as a shared engine records it: "<node tag>:<serial>".
    std::string holderOf(uint64_t serial) const;
    // A shared engine keeps sessions too: writes the client's session record there (`take`:
    // the client becomes its holder whoever held it).
    void persistSession(const Client& c, bool take = false);
    // The session `id`, as the shared engine has it, made local and attached to `c`; nullopt
    // when it is unknown, expired or another user's.
    std::optional<broker::ResumedSession> resumeShared(Client& c, std::string_view id,
                                                       std::string_view owner,
                                                       std::optional<broker::SessionRecord> rec);
    void housekeeping();
    // The counters of namespace `name` (created on first use, kept for the Hub's life), and the
    // calling thread's slot in them.
    NamespaceStats* namespaceStats(std::string_view name);
    size_t statsSlot() const;

    Options options_;
    std::unique_ptr<broker::Engine> engine_;
    broker::SessionStore sessions_;
    std::vector<std::unique_ptr<Fanout>> fanouts_;
    std::unique_ptr<Stats> outside_stats_;  // calls from threads that are not loops
    std::atomic<uint64_t> next_serial_{1};

    std::mutex reload_mu_;
    std::vector<std::unique_ptr<NamespaceMap>> snapshots_;  // guarded by reload_mu_
    std::atomic<const NamespaceMap*> namespaces_{nullptr};

    mutable std::mutex auth_mu_;
    std::shared_ptr<const AuthConfig> auth_;  // guarded by auth_mu_; never null
    std::atomic<bool> auth_on_{false};        // auth_->enabled(), read without the lock

    // Connected client ids → serial, for /api/disconnect from any thread.
    std::mutex directory_mu_;
    std::unordered_map<std::string, uint64_t> directory_;  // guarded by directory_mu_
    // Authenticated users → their connections' serials (guarded by directory_mu_).
    std::unordered_multimap<std::string, uint64_t> users_;

    std::atomic<RelaySink*> relay_{nullptr};

    // Per-namespace counters by name; entries are never removed (a namespace dropped by a
    // reload keeps its figures). A loop finds them through its Fanout's cache first.
    // This node's subscribers per channel (for channels()), sharded by channel hash: updated
    // on subscribe and unsubscribe, never on the fan-out path.
    struct SubscriberShard {
        std::mutex mu;
        std::unordered_map<std::string, size_t> counts;
    };
    std::array<SubscriberShard, 16> subscriber_shards_;
    SubscriberShard& shardOf(std::string_view channel);
    mutable std::mutex ns_stats_mu_;
    std::map<std::string, std::unique_ptr<NamespaceStats>, std::less<>> ns_stats_;

    std::thread housekeeper_;
    uint64_t next_session_refresh_ms_ = 0;  // housekeeping thread only
    std::mutex hk_mu_;
    std::condition_variable hk_cv_;
    bool hk_stop_ = false;  // guarded by hk_mu_
};

}  // namespace sb::messaging
