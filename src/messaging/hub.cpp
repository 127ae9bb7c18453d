// The Hub and its per-loop Fanout. A publication becomes subscriber bytes here: the engine
// hands each interested loop the event (deliver → mailbox), the loop drains its mailbox at the
// end of the iteration, lists the local subscribers of each event and calls Peer::deliver on
// each, grouped by subscriber so one connection gets its messages in one write.
#include "messaging/hub.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "auth/permissions.h"
#include "base/log.h"
#include "broker/memory_engine.h"
#include "loop/event_loop.h"
#include "messaging/channel.h"

namespace sb::messaging {

using broker::EventKind;

namespace {

constexpr uint32_t kAbuseErrors = 20;  // rate_limited refusals in a row → kRateLimitAbuse
constexpr uint64_t kLoopBits = 6;      // serial low bits: the loop index (kMaxLoops = 64)
static_assert((uint64_t{1} << kLoopBits) == broker::kMaxLoops);

uint64_t nowMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// Token dates are Unix seconds: the wall clock, not the monotonic one.
int64_t wallSeconds() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec);
}

uint64_t nowUs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

base::Unexpected<Failure> fail(Error e, std::string message) {
    return base::Unexpected<Failure>(Failure{e, std::move(message)});
}

base::Unexpected<Failure> unavailable() {
    return fail(Error::kUnavailable,
                "the broker is unreachable (see /readyz); nothing was done: retry shortly");
}

// Epochs are short (the memory engine's are 14 bytes): compared inline, as two 8-byte words
// when they fit, instead of a libc memcmp call for every delivery.
bool sameEpoch(const std::string& a, const std::string& b) {
    const size_t n = a.size();
    if (n != b.size()) {
        return false;
    }
    if (n < 8 || n > 16) {
        return std::memcmp(a.data(), b.data(), n) == 0;
    }
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.data(), 8);
    std::memcpy(&b0, b.data(), 8);
    std::memcpy(&a1, a.data() + n - 8, 8);
    std::memcpy(&b1, b.data() + n - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

bool atLeastOnce(const NamespaceOptions& ns) {
    return ns.delivery == NamespaceOptions::Delivery::kAtLeastOnce;
}

}  // namespace

Client::Sub* Client::find(std::string_view channel) {
    return const_cast<Sub*>(std::as_const(*this).find(channel));
}

const Client::Sub* Client::find(std::string_view channel) const {
    for (const auto& s : subs_) {
        if (s->channel == channel) {
            return s.get();
        }
    }
    return nullptr;
}

// ---- Fanout: one per loop --------------------------------------------------------------------

// Lookups by string_view in maps keyed by std::string, without a temporary string.
struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

static_assert(std::tuple_size_v<decltype(NamespaceStats::loops)> == broker::kMaxLoops + 1,
              "a slot per loop and one for other threads");

struct Fanout {
    // What crosses loops: an event for local subscribers, or an order for one local client.
    struct Mail {
        enum class Kind : uint8_t { kEvent, kTakeover, kDisconnect, kRun } kind = Kind::kEvent;
        broker::Event event;
        uint64_t serial = 0;  // kTakeover / kDisconnect / kRun: the client
        bool reconnect = true;
        // kRun: called with the client (null if it is gone). A pointer: rare, and it keeps
        // the mail of every delivery small.
        std::shared_ptr<std::function<void(Client*)>> run;
    };
    struct Local {
        Client* client;
        Client::Sub* sub;
    };

    Hub* hub = nullptr;
    loop::EventLoop* loop = nullptr;
    uint32_t index = 0;
    Stats stats;  // written by this loop's thread only

    std::mutex mu;
    std::vector<Mail> mailbox;   // guarded by mu
    bool scheduled = false;      // guarded by mu: a drain is posted or pending
    bool local_pending = false;  // loop thread: drain at the end of this iteration

    // Loop thread only.
    std::unordered_map<std::string, std::vector<Local>> channels;
    std::unordered_map<uint64_t, Client*> clients;  // by serial

    // Drain scratch, reused (no allocation per delivery in steady state).
    std::vector<Mail> batch;
    // Per event of a run and scratch slot (Peer::kScratchSlots each): the adapter's bytes.
    std::vector<std::string> shared;
    // Per event of the run: its channel's local subscribers (null: none on this loop).
    std::vector<const std::vector<Local>*> targets;
    std::vector<uint32_t> order;      // the run's events with subscribers, grouped by channel
    std::vector<uint32_t> delivered;  // per event of the run: subscribers it was handed to
    // Namespace name -> its counters (Hub::namespaceStats), so a publish looks them up without
    // the Hub's lock. Loop thread only.
    std::unordered_map<std::string, NamespaceStats*, NameHash, std::equal_to<>> ns_cache;
    size_t run_begin = 0;  // the run's first mail in batch

    void post(Mail m) {
        bool wake;
        {
            std::lock_guard lock(mu);
            mailbox.push_back(std::move(m));
            wake = !scheduled;
            scheduled = true;
        }
        if (!wake) {
            return;
        }
        if (loop->inLoopThread()) {
            local_pending = true;  // the iteration hook drains it: no wakeup round trip
        } else {
            loop->post([this] { drain(); });
        }
    }

    void addLocal(Client* c, Client::Sub* s) { channels[s->channel].push_back({c, s}); }

    // True if this loop has no local subscriber of the channel left.
    bool removeLocal(Client* c, const std::string& channel) {
        auto it = channels.find(channel);
        if (it == channels.end()) {
            return true;
        }
        std::erase_if(it->second, [c](const Local& l) { return l.client == c; });
        if (it->second.empty()) {
            channels.erase(it);
            return true;
        }
        return false;
    }

    // How many subscribers ahead deliverRun prefetches (see there).
    static constexpr size_t kPrefetchAhead = 6;
    // Where Client::Sub's last field a delivery touches (`gap`) sits: its fields from `epoch`
    // to `gap` may straddle two cache lines, so both ends are fetched.
    static constexpr size_t kSubHotEnd = sizeof(std::string) + 2 * sizeof(uint64_t) + sizeof(void*);

    void drain();
    void deliverRun(size_t begin, size_t end);
    // `rel`: the event's index within the current run.
    void deliverTo(Client* c, Client::Sub* sub, uint32_t rel);
    void command(const Mail& m);
};

void Fanout::drain() {
    {
        std::lock_guard lock(mu);
        batch.swap(mailbox);
        scheduled = false;
    }
    // Events between two commands form a run, fanned out together; a command (rare) applies
    // after the events queued before it, so a takeover never overtakes a delivery.
    size_t begin = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].kind != Mail::Kind::kEvent) {
            deliverRun(begin, i);
            command(batch[i]);
            begin = i + 1;
        }
    }
    deliverRun(begin, batch.size());
    batch.clear();
}

void Fanout::command(const Mail& m) {
    auto it = clients.find(m.serial);
    if (m.kind == Mail::Kind::kRun) {
        const bool here = it != clients.end() && !it->second->gone_;
        (*m.run)(here ? it->second : nullptr);
        return;
    }
    if (it == clients.end() || it->second->gone_) {
        return;  // closed meanwhile
    }
    Client* c = it->second;
    c->gone_ = true;
    if (m.kind == Mail::Kind::kTakeover) {
        SB_INFO("client %s: session %s resumed by another connection: closing %u", c->id_.c_str(),
                c->session_.c_str(), kSessionTakenOver.code);
        c->peer_->disconnect(kSessionTakenOver);
    } else {
        Disconnect d = kApiDisconnect;
        d.reconnect = m.reconnect;
        if (!m.reconnect && !c->session_.empty()) {
            // "Do not come back": the session ends with the connection, so a resume gets
            // resumed:false (its un-acked publications are released).
            hub->sessions_.remove(c->session_);
        }
        c->peer_->disconnect(d);
    }
}

void Fanout::deliverRun(size_t begin, size_t end) {
    if (begin == end) {
        return;
    }
    const size_t n = end - begin;
    if (shared.size() < n * Peer::kScratchSlots) {
        shared.resize(n * Peer::kScratchSlots);
    }
    targets.assign(n, nullptr);
    order.clear();
    for (size_t i = 0; i < n * Peer::kScratchSlots; ++i) {
        shared[i].clear();
    }
    for (uint32_t i = 0; i < n; ++i) {
        const broker::Event& ev = batch[begin + i].event;
        const std::string& channel =
            ev.kind == EventKind::kPublication ? ev.pub->channel : ev.channel;
        auto it = channels.find(channel);
        if (it != channels.end()) {
            targets[i] = &it->second;
            order.push_back(i);
        }
    }
    // Subscriber-major within each channel, so each subscriber gets all its messages of the
    // run back to back (one corked write) without sorting (subscribers x events) pairs: only
    // the run's events are grouped by channel, stable to keep each channel's order. The
    // lists are not changed meanwhile: a peer that goes away is closed later, never inside
    // deliver.
    if (order.size() > 1) {
        std::stable_sort(order.begin(), order.end(),
                         [this](uint32_t a, uint32_t b) { return targets[a] < targets[b]; });
    }
    delivered.assign(n, 0);
    run_begin = begin;
    for (size_t g = 0; g < order.size();) {
        const std::vector<Local>* subs = targets[order[g]];
        size_t g_end = g + 1;
        while (g_end < order.size() && targets[order[g_end]] == subs) {
            ++g_end;
        }
        // The list is walked in order but each entry points elsewhere (its client, its
        // subscription): fetch those a few entries ahead, or every delivery waits on two
        // cache misses (without it, 40% of this loop's samples at 1,000 subscribers sat on
        // those two loads).
        const Local* locals = subs->data();
        const size_t count = subs->size();
        for (size_t j = 0; j < count; ++j) {
            if (j + kPrefetchAhead < count) {
                const Local& ahead = locals[j + kPrefetchAhead];
                __builtin_prefetch(ahead.client);
                __builtin_prefetch(ahead.sub);
                __builtin_prefetch(reinterpret_cast<const char*>(ahead.sub) + kSubHotEnd);
            }
            for (size_t k = g; k < g_end; ++k) {
                deliverTo(locals[j].client, locals[j].sub, order[k]);
            }
        }
        g = g_end;
    }
    // Stats once per run: one clock read per drain, none per subscriber.
    const uint64_t now_us = nowUs();
    uint64_t messages = 0;
    for (uint32_t i = 0; i < n; ++i) {
        if (delivered[i] == 0) {
            continue;
        }
        messages += delivered[i];
        const broker::Event& ev = batch[begin + i].event;
        if (ev.kind == EventKind::kPublication) {
            stats.deliveries.add(delivered[i]);
            // Per namespace: one add per event and loop, not per subscriber.
            if (const auto* subs = targets[i]; subs != nullptr && !subs->empty()) {
                if (NamespaceStats* ns = subs->front().sub->ns_stats) {
                    ns->loops[index].deliveries.add(delivered[i]);
                }
            }
            const uint64_t pub_us = ev.pub->time_ms * 1000;
            stats.delivery_latency.observeUs(now_us > pub_us ? now_us - pub_us : 0, delivered[i]);
        }
    }
    stats.messages_out.add(messages);
}

void Fanout::deliverTo(Client* c, Client::Sub* sub, uint32_t rel) {
    if (c->gone_) {
        return;
    }
    const broker::Event& ev = batch[run_begin + rel].event;
    std::string* scratch = &shared[rel * Peer::kScratchSlots + c->peer_->scratchSlot()];
    if (ev.kind != EventKind::kPublication) {
        // Join/leave: best effort, never a reason to cut a client off.
        PeerStatus st = c->peer_->deliver(Delivery{ev, false, scratch}, true);
        if (st == PeerStatus::kGone) {
            c->gone_ = true;
        } else if (st == PeerStatus::kSent) {
            ++delivered[rel];
        }
        return;
    }
    const broker::Publication& p = *ev.pub;
    const bool same_epoch = sameEpoch(p.epoch, sub->epoch);
    if (same_epoch && p.offset <= sub->last_offset) {
        return;  // sent already by a replay: each publication once, in order
    }
    // A channel's publications reach an interested loop with contiguous offsets. A hole means
    // some were lost on the way (a shared engine's link dropped) and a new epoch means the
    // stream itself was lost (Redis restarted empty): either way the client is told, by
    // gap:true, so it recovers instead of silently missing them.
    if (!same_epoch) {
        if (!sub->epoch.empty()) {
            sub->gap = true;
        }
        sub->epoch = p.epoch;
        sub->received = 0;
    } else if (p.offset > sub->last_offset + 1) {
        sub->gap = true;
    }
    const bool droppable = sub->ns->slow_consumer == NamespaceOptions::SlowConsumer::kDrop;
    PeerStatus st =
        c->peer_->deliver(Delivery{ev, sub->gap, sub->gap ? nullptr : scratch}, droppable);
    if (st == PeerStatus::kGone) {
        c->gone_ = true;  // not tracked: a resume recovers it from history
        return;
    }
    sub->last_offset = p.offset;
    if (st == PeerStatus::kDropped) {
        // Not `received`: a session saved before the client learns of the gap (its next
        // delivery says gap:true) must replay what was dropped on resume.
        sub->gap = true;
        stats.slow_consumer_drops.add();
        return;
    }
    sub->received = p.offset;
    sub->gap = false;
    if (atLeastOnce(*sub->ns) && !c->session_.empty()) {
        hub->sessions_.track(c->session_, ev.pub, c->serial_);
    }
    ++delivered[rel];
}

// ---- Hub ---------------------------------------------------------------------------------------

Hub::Hub(Options options, std::vector<loop::EventLoop*> loops,
         std::unique_ptr<broker::Engine> engine)
    : options_(std::move(options)),
      engine_(engine ? std::move(engine) : broker::makeMemoryEngine()),
      outside_stats_(std::make_unique<Stats>()),
      auth_(std::make_shared<const AuthConfig>()) {
    options_.normalize();
    snapshots_.push_back(std::make_unique<NamespaceMap>(options_.namespaces));
    namespaces_.store(snapshots_.back().get(), std::memory_order_release);
    // Every configured namespace has its series from the start (zeros before any use).
    for (const auto& [name, ns] : *snapshots_.back()) {
        namespaceStats(name);
    }
    for (size_t i = 0; i < loops.size(); ++i) {
        auto f = std::make_unique<Fanout>();
        f->hub = this;
        f->loop = loops[i];
        f->index = static_cast<uint32_t>(i);
        Fanout* raw = f.get();
        // Events published on a loop for that same loop are drained at the end of the
        // iteration (no eventfd round trip), ahead of the hook that flushes the cork.
        loops[i]->prependIterationHook([raw] {
            if (raw->local_pending) {
                raw->local_pending = false;
                raw->drain();
            }
        });
        fanouts_.push_back(std::move(f));
    }
    engine_->setSink(this);
}

Hub::~Hub() {
    stop();
    engine_->setSink(nullptr);
}

void Hub::start() {
    if (housekeeper_.joinable()) {
        return;
    }
    // The thread must not take the process's signals (SIGHUP, SIGTERM are taken by the
    // main thread's sigtimedwait): start it with every signal blocked; it inherits the mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    housekeeper_ = std::thread([this] {
        std::unique_lock lock(hk_mu_);
        while (!hk_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return hk_stop_; })) {
            lock.unlock();
            housekeeping();
            lock.lock();
        }
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Hub::stop() {
    {
        std::lock_guard lock(hk_mu_);
        hk_stop_ = true;
    }
    hk_cv_.notify_all();
    if (housekeeper_.joinable()) {
        housekeeper_.join();
    }
}

void Hub::housekeeping() {
    // On its own thread: a sweep over many channels must not stall a loop's deliveries.
    const uint64_t now = nowMs();
    engine_->sweep(now);
    sessions_.sweep(now);
    const int64_t clients = totals().clients;
    engine_->heartbeat(clients > 0 ? static_cast<uint64_t>(clients) : 0);
    if (engine_->sharesSessions() && now >= next_session_refresh_ms_) {
        // A shared engine expires a session record session_ttl after its last write; a
        // connected client that neither acks nor subscribes writes nothing, so its record is
        // rewritten well within the shortest TTL: if its node dies, it can still resume.
        uint64_t ttl = 60'000 * 3;
        for (const auto& [name, ns] : *namespaces_.load(std::memory_order_acquire)) {
            ttl = std::min(ttl, std::max<uint64_t>(ns.session_ttl_ms, 3000));
        }
        next_session_refresh_ms_ = now + ttl / 3;
        for (const auto& [id, holder] : sessions_.attached()) {
            if (auto rec = sessions_.record(id)) {
                rec->holder = holderOf(holder);
                engine_->saveSession(id, *rec, false);
            }
        }
    }
}

void Hub::persistSession(const Client& c, bool take) {
    if (c.session_.empty() || !engine_->sharesSessions()) {
        return;
    }
    auto rec = sessions_.record(c.session_);
    if (!rec) {
        return;
    }
    rec->holder = holderOf(c.serial_);
    engine_->saveSession(c.session_, *rec, take);
}

std::optional<broker::ResumedSession> Hub::resumeShared(Client& c, std::string_view id,
                                                        std::string_view owner,
                                                        std::optional<broker::SessionRecord> rec) {
    if (!rec || rec->owner != owner) {
        // Unknown or expired in the shared store (or another user's): whatever this node still
        // has of it is stale.
        sessions_.remove(id);
        return std::nullopt;
    }
    // Last held on this node: the local copy is current and has the exact un-acked queue (and
    // the holder to take over). Held elsewhere: take the shared record.
    const std::string here = std::string(engine_->nodeTag()) + ":";  // holderOf's node part
    if (rec->holder.starts_with(here)) {
        if (auto local = sessions_.resume(id, nowMs(), c.serial_, owner)) {
            return local;
        }
    } else if (const size_t colon = rec->holder.find(':'); colon != std::string::npos) {
        // One holder per session, across nodes too: the node that held it closes its
        // connection (4004) and forgets its copy, so that connection's end writes nothing over
        // this one's record.
        engine_->sendControl(std::string_view(rec->holder).substr(0, colon), "t" + std::string(id));
    }
    return sessions_.adopt(id, *rec, c.serial_);
}

void Hub::postCommand(uint64_t serial, bool takeover, bool reconnect) {
    const size_t loop = serial & ((uint64_t{1} << kLoopBits) - 1);
    if (serial == 0 || loop >= fanouts_.size()) {
        return;
    }
    fanouts_[loop]->post(Fanout::Mail{
        .kind = takeover ? Fanout::Mail::Kind::kTakeover : Fanout::Mail::Kind::kDisconnect,
        .serial = serial,
        .reconnect = reconnect});
}

bool Hub::withSessionHolder(std::string_view session_id, std::function<void(Client*)> fn) {
    const uint64_t serial = sessions_.holder(session_id);
    const size_t loop = serial & ((uint64_t{1} << kLoopBits) - 1);
    if (serial == 0 || loop >= fanouts_.size()) {
        return false;
    }
    fanouts_[loop]->post(
        Fanout::Mail{.kind = Fanout::Mail::Kind::kRun,
                     .serial = serial,
                     .run = std::make_shared<std::function<void(Client*)>>(std::move(fn))});
    return true;
}

void Hub::control(std::string_view message) {
    if (message.size() < 2) {
        return;
    }
    const char kind = message[0];
    if (kind == 'r') {
        if (RelaySink* sink = relay_.load(std::memory_order_acquire)) {
            sink->relay(message.substr(1));
        }
        return;
    }
    if (kind == 't') {
        const std::string_view id = message.substr(1);
        const uint64_t holder = sessions_.holder(id);
        sessions_.remove(id);  // the session lives on the other node now
        if (holder != 0) {
            localStats().takeovers.add();
            postCommand(holder, true, false);
        }
        return;
    }
    const bool reconnect = message[1] == '1';
    const std::string name(message.substr(2));
    if (kind == 'd') {
        postCommand(serialOf(name), false, reconnect);
    } else if (kind == 'u') {
        for (uint64_t serial : serialsOf(name)) {
            postCommand(serial, false, reconnect);
        }
    }
}

uint64_t Hub::serialOf(std::string_view client_id) {
    std::lock_guard lock(directory_mu_);
    auto it = directory_.find(std::string(client_id));
    return it == directory_.end() ? 0 : it->second;
}

std::vector<uint64_t> Hub::serialsOf(std::string_view user) {
    std::vector<uint64_t> serials;
    std::lock_guard lock(directory_mu_);
    auto [b, e] = users_.equal_range(std::string(user));
    for (auto it = b; it != e; ++it) {
        serials.push_back(it->second);
    }
    return serials;
}

void Hub::sendRelay(std::string_view node, std::string message) {
    message.insert(message.begin(), 'r');
    engine_->sendControl(node, std::move(message));
}

std::string Hub::sessionNode(std::string_view id, bool* unavailable) {
    *unavailable = false;
    if (!engine_->sharesSessions()) {
        return {};
    }
    const std::optional<broker::SessionRecord> rec = engine_->loadSession(id, unavailable);
    if (!rec) {
        return {};
    }
    const size_t colon = rec->holder.find(':');  // holderOf: "<node tag>:<serial>"
    if (colon == std::string::npos || colon == 0) {
        return {};
    }
    std::string node = rec->holder.substr(0, colon);
    return node == engine_->nodeTag() ? std::string() : node;
}

std::string Hub::holderOf(uint64_t serial) const {
    return std::string(engine_->nodeTag()) + ":" + std::to_string(serial);
}

void Hub::reloadNamespaces(NamespaceMap namespaces) {
    std::lock_guard lock(reload_mu_);
    Options o;
    o.namespaces = std::move(namespaces);
    o.normalize();
    // Old snapshots stay alive: existing subscriptions point into them (reloads are rare).
    snapshots_.push_back(std::make_unique<NamespaceMap>(std::move(o.namespaces)));
    namespaces_.store(snapshots_.back().get(), std::memory_order_release);
    for (const auto& [name, ns] : *snapshots_.back()) {
        namespaceStats(name);
    }
    SB_INFO("namespaces reloaded: %zu configured; new subscriptions use the new options",
            snapshots_.back()->size());
}

void Hub::setAuth(AuthConfig config) {
    auto fresh = std::make_shared<const AuthConfig>(std::move(config));
    std::lock_guard lock(auth_mu_);
    auth_on_.store(fresh->enabled(), std::memory_order_relaxed);
    auth_ = std::move(fresh);
}

std::shared_ptr<const AuthConfig> Hub::authConfig() const {
    std::lock_guard lock(auth_mu_);
    return auth_;
}

Outcome<auth::Claims> Hub::verify(std::string_view token, std::string_view what) const {
    auto config = authConfig();
    if (!config->enabled()) {
        return fail(Error::kInvalidToken, std::string(what) +
                                              ": this server verifies no tokens (no auth keys "
                                              "are configured)");
    }
    auto claims = auth::verifyJwt(token, *config->keys, config->policy, wallSeconds());
    if (!claims) {
        return fail(Error::kInvalidToken,
                    std::string(what) + ": " + std::string(auth::describe(claims.error())));
    }
    return std::move(*claims);
}

namespace {

std::string_view accessName(NamespaceOptions::Access a) {
    switch (a) {
        case NamespaceOptions::Access::kAny:
            return "any";
        case NamespaceOptions::Access::kAuthenticated:
            return "authenticated";
        case NamespaceOptions::Access::kClaim:
            return "claim";
    }
    return "?";
}

}  // namespace

Outcome<void> Hub::permit(const Client& c, const Resolved& r, NamespaceOptions::Access access,
                          std::string_view what) const {
    if (!authEnabled()) {
        return {};
    }
    const Identity& id = c.identity_;
    const std::string_view ns = parseChannel(r.canonical)->ns;
    if (!id.authenticated) {
        if (!r.ns->anonymous) {
            return fail(Error::kPermissionDenied,
                        "namespace '" + std::string(ns) +
                            "' is not open to anonymous clients: connect with a token (or set "
                            "anonymous = true in [namespaces." +
                            std::string(ns) + "])");
        }
        if (access == NamespaceOptions::Access::kAny) {
            return {};
        }
        return fail(Error::kPermissionDenied,
                    std::string(what) + " on '" + std::string(r.canonical) + "' needs a token (" +
                        std::string(what) + " = " + std::string(accessName(access)) + ")");
    }
    if (access == NamespaceOptions::Access::kClaim &&
        !auth::anyChannelMatches(id.channels, r.canonical)) {
        return fail(Error::kPermissionDenied, "your token's \"channels\" claim does not allow " +
                                                  std::string(what) + " on '" +
                                                  std::string(r.canonical) + "'");
    }
    return {};
}

Outcome<void> Hub::privateReader(const Client& c, const Resolved& r, std::string_view what) const {
    // A private channel's presence and history are as private as its publications: only a
    // subscriber (who showed a subscribe token) reads them. Subscribers are found on c's own
    // loop, the calling thread.
    if (!r.ns->private_channels || c.find(r.canonical) != nullptr) {
        return {};
    }
    return fail(Error::kPermissionDenied, std::string(what) + " of private channel '" +
                                              std::string(r.canonical) +
                                              "' is for its subscribers: subscribe with its "
                                              "token first");
}

bool Hub::anonymousAllowed() const {
    if (!authEnabled()) {
        return true;
    }
    const NamespaceMap* map = namespaces_.load(std::memory_order_acquire);
    return std::any_of(map->begin(), map->end(), [](const auto& e) { return e.second.anonymous; });
}

bool Hub::tokenExpired(const Client& c) const {
    if (!c.identity_.authenticated || c.identity_.expires_s == 0) {
        return false;
    }
    const int64_t leeway = authConfig()->policy.leeway_s;
    return wallSeconds() > c.identity_.expires_s + leeway;
}

std::optional<uint64_t> Hub::msUntilExpiry(const Client& c) const {
    if (!c.identity_.authenticated || c.identity_.expires_s == 0) {
        return std::nullopt;
    }
    const int64_t leeway = authConfig()->policy.leeway_s;
    const int64_t left = c.identity_.expires_s + leeway - wallSeconds() + 1;
    return left <= 0 ? 0 : static_cast<uint64_t>(left) * 1000;
}

Outcome<std::optional<uint64_t>> Hub::refresh(Client& c, std::string_view token) {
    if (!c.connected_) {
        return fail(Error::kNotConnected, "send a connect message first");
    }
    if (!c.identity_.authenticated) {
        return fail(Error::kPermissionDenied,
                    "refresh: this connection is anonymous; connect with a token");
    }
    auto claims = verify(token, "refresh token");
    if (!claims) {
        return base::Unexpected<Failure>(std::move(claims.error()));
    }
    if (claims->sub != c.identity_.user) {
        return fail(Error::kPermissionDenied,
                    "refresh: the new token is for another user; reconnect to change users");
    }
    c.identity_.channels = std::move(claims->channels);
    c.identity_.expires_s = claims->exp;
    std::optional<uint64_t> expires_in;
    if (claims->exp != 0) {
        const int64_t left = claims->exp - wallSeconds();
        expires_in = left < 0 ? 0 : static_cast<uint64_t>(left);
    }
    return expires_in;
}

Stats& Hub::localStats() {
    loop::EventLoop* l = loop::EventLoop::current();
    if (l != nullptr && l->id() < fanouts_.size() && fanouts_[l->id()]->loop == l) {
        return fanouts_[l->id()]->stats;
    }
    return *outside_stats_;
}

Hub::SubscriberShard& Hub::shardOf(std::string_view channel) {
    return subscriber_shards_[std::hash<std::string_view>{}(channel) % subscriber_shards_.size()];
}

std::vector<broker::ChannelSummary> Hub::channels() {
    std::vector<broker::ChannelSummary> out = engine_->channels();
    for (broker::ChannelSummary& c : out) {
        SubscriberShard& shard = shardOf(c.channel);
        std::lock_guard lock(shard.mu);
        if (auto it = shard.counts.find(c.channel); it != shard.counts.end()) {
            c.subscribers = it->second;
        }
    }
    return out;
}

size_t Hub::statsSlot() const {
    loop::EventLoop* l = loop::EventLoop::current();
    if (l != nullptr && l->id() < fanouts_.size() && fanouts_[l->id()]->loop == l) {
        return l->id();
    }
    return broker::kMaxLoops;  // threads that are not loops share the last slot
}

NamespaceStats* Hub::namespaceStats(std::string_view name) {
    Fanout* f = nullptr;
    if (const size_t slot = statsSlot(); slot < fanouts_.size()) {
        f = fanouts_[slot].get();
        if (auto it = f->ns_cache.find(name); it != f->ns_cache.end()) {
            return it->second;
        }
    }
    NamespaceStats* out = nullptr;
    {
        std::lock_guard lock(ns_stats_mu_);
        auto it = ns_stats_.find(name);
        if (it == ns_stats_.end()) {
            auto fresh = std::make_unique<NamespaceStats>();
            fresh->name = std::string(name);
            it = ns_stats_.emplace(std::string(name), std::move(fresh)).first;
        }
        out = it->second.get();
    }
    if (f != nullptr) {
        f->ns_cache.emplace(std::string(name), out);
    }
    return out;
}

std::vector<NamespaceTotals> Hub::namespaceTotals() const {
    std::vector<NamespaceTotals> out;
    std::lock_guard lock(ns_stats_mu_);
    for (const auto& [name, ns] : ns_stats_) {
        NamespaceTotals t{.name = name};
        for (const auto& l : ns->loops) {
            t.publications += l.publications.value();
            t.deliveries += l.deliveries.value();
            t.subscriptions += l.subscriptions.value();
        }
        out.push_back(std::move(t));
    }
    return out;
}

Stats& Hub::stats(uint32_t loop_index) {
    return fanouts_.at(loop_index)->stats;
}

StatsTotals Hub::totals() const {
    StatsTotals t;
    for (const auto& f : fanouts_) {
        t.add(f->stats);
    }
    t.add(*outside_stats_);
    return t;
}

void Hub::deliver(uint32_t loop_id, broker::Event ev) {
    if (loop_id < fanouts_.size()) {
        fanouts_[loop_id]->post(Fanout::Mail{.event = std::move(ev)});
    }
}

Outcome<Hub::Resolved> Hub::resolve(std::string_view channel) const {
    auto ref = parseChannel(channel);
    if (!ref) {
        return fail(Error::kBadChannel,
                    "'" + std::string(channel.substr(0, 256)) +
                        "' is not a channel name: ns:name with ns [a-z0-9_-]{1,64} and name "
                        "[A-Za-z0-9_.:@=,-]{1,192}, or a name alone for the default namespace");
    }
    const NamespaceMap* map = namespaces_.load(std::memory_order_acquire);
    auto it = map->find(std::string(ref->ns));
    if (it == map->end()) {
        return fail(Error::kUnknownNamespace, "namespace '" + std::string(ref->ns) +
                                                  "' is not configured (add [namespaces." +
                                                  std::string(ref->ns) + "] to the config)");
    }
    return Resolved{ref->canonical, &it->second};
}

// ---- A connection's life ----

void Hub::open(Client& c, uint32_t loop_index) {
    Fanout* f = fanouts_.at(loop_index).get();
    c.fanout_ = f;
    c.serial_ = (next_serial_.fetch_add(1, std::memory_order_relaxed) << kLoopBits) | loop_index;
    c.tokens_ = 2.0 * options_.rate_limit;
    c.refill_ms_ = nowMs();
    f->clients.emplace(c.serial_, &c);
    f->stats.clients.add(1);
    f->stats.clients_total.add();
}

void Hub::close(Client& c, uint16_t close_code) {
    Fanout* f = c.fanout_;
    if (f == nullptr) {
        return;
    }
    if (close_code != 0) {
        f->stats.disconnects[closeCodeIndex(close_code)].add();
    }
    c.gone_ = true;
    for (auto& s : c.subs_) {
        // At-most-once: the session remembers what this connection received, so a resume
        // replays only what it missed. (At-least-once positions advance with each track.)
        if (!c.session_.empty() && !atLeastOnce(*s->ns) && !s->epoch.empty()) {
            sessions_.setPosition(c.session_, s->channel, {s->epoch, s->received}, c.serial_);
        }
        detachSub(c, *s);
    }
    c.subs_.clear();
    if (!c.session_.empty()) {
        // Ignored if another connection took the session over: its TTL must not start.
        if (sessions_.detach(c.session_, nowMs(), c.serial_)) {
            persistSession(c);
        }
    }
    if (!c.id_.empty()) {
        std::lock_guard lock(directory_mu_);
        directory_.erase(c.id_);
        if (c.identity_.authenticated) {
            auto [b, e] = users_.equal_range(c.identity_.user);
            for (auto it = b; it != e; ++it) {
                if (it->second == c.serial_) {
                    users_.erase(it);
                    break;
                }
            }
        }
    }
    f->clients.erase(c.serial_);
    f->stats.clients.add(-1);
    c.fanout_ = nullptr;
}

void Hub::detachSub(Client& c, Client::Sub& s) {
    if (s.ns_stats != nullptr) {
        s.ns_stats->loops[c.fanout_->index].subscriptions.add(-1);
    }
    {
        SubscriberShard& shard = shardOf(s.channel);
        std::lock_guard lock(shard.mu);
        if (auto it = shard.counts.find(s.channel); it != shard.counts.end() && --it->second == 0) {
            shard.counts.erase(it);
        }
    }
    if (c.fanout_->removeLocal(&c, s.channel)) {
        engine_->loopUnsubscribed(s.channel, c.fanout_->index);
    }
    if (c.info_ && (s.ns->presence || s.ns->join_leave)) {
        engine_->presenceRemove(s.channel, *s.ns, c.id_);
    }
}

Admission Hub::admit(Client& c) {
    const uint64_t now = nowMs();
    const double rate = options_.rate_limit;
    c.tokens_ =
        std::min(2.0 * rate, c.tokens_ + static_cast<double>(now - c.refill_ms_) * rate / 1000.0);
    c.refill_ms_ = now;
    if (c.tokens_ < 1.0) {
        c.fanout_->stats.rate_limited.add();
        if (++c.limited_in_row_ >= kAbuseErrors) {
            SB_WARN("client %s: kept sending past the rate limit (%u/s): closing %u", c.id_.c_str(),
                    options_.rate_limit, kRateLimitAbuse.code);
            return Admission::kAbuse;
        }
        return Admission::kLimited;
    }
    c.tokens_ -= 1.0;
    c.limited_in_row_ = 0;
    return Admission::kOk;
}

// ---- Requests of a connection ----

Outcome<Connected> Hub::connect(Client& c, std::string_view user, std::string info_json,
                                std::string_view session, std::string_view token,
                                auth::Claims* verified) {
    if (c.connected_) {
        return fail(Error::kAlreadyConnected, "this connection already sent connect");
    }
    std::optional<auth::Claims> fresh;
    if (!token.empty()) {
        auto claims = verify(token, "connection token");
        if (!claims) {
            return base::Unexpected<Failure>(std::move(claims.error()));
        }
        fresh = std::move(*claims);
        verified = &*fresh;
    } else if (verified != nullptr) {
        // Signature and claims were checked when the token came (the upgrade); only time has
        // passed since, so only the expiry is looked at again.
        const int64_t leeway = authConfig()->policy.leeway_s;
        if (verified->exp != 0 && wallSeconds() > verified->exp + leeway) {
            return fail(
                Error::kInvalidToken,
                "connection token: " + std::string(auth::describe(auth::JwtError::kExpired)));
        }
    }
    if (verified != nullptr) {
        c.identity_.authenticated = true;
        c.identity_.user = std::move(verified->sub);
        c.identity_.channels = std::move(verified->channels);
        c.identity_.expires_s = verified->exp;
        if (info_json.empty()) {
            info_json = std::move(verified->info_json);  // the backend's word over the client's
        }
    } else if (authEnabled()) {
        if (!anonymousAllowed()) {
            return fail(Error::kTokenRequired,
                        "this server needs a connection token: send \"token\" in connect, an "
                        "Authorization: Bearer header or a token query parameter");
        }
    }
    // A session kept by a shared engine is looked up before anything changes: if the engine
    // cannot answer, the connect fails whole (the client retries) rather than losing the
    // session to a resumed:false.
    std::optional<broker::SessionRecord> shared_record;
    if (!session.empty() && engine_->sharesSessions()) {
        bool down = false;
        shared_record = engine_->loadSession(session, &down);
        if (down) {
            return unavailable();
        }
    }
    // With auth on, nobody names themselves: the user is the token's subject or nobody.
    if (c.identity_.authenticated) {
        user = c.identity_.user;
    } else if (authEnabled()) {
        user = {};
    }
    Fanout* f = c.fanout_;
    c.connected_ = true;
    // Nodes sharing an engine each put their tag in: ids are unique across the cluster.
    const std::string_view tag = engine_->nodeTag();
    c.id_ = tag.empty() ? "c_" : "c_" + std::string(tag) + "_";
    c.id_ += std::to_string(f->index) + "_" + std::to_string(c.serial_ >> kLoopBits);
    auto info = std::make_shared<broker::ClientInfo>();
    info->client_id = c.id_;
    info->user = std::string(user);
    info->info_json = std::move(info_json);
    c.info_ = std::move(info);
    {
        std::lock_guard lock(directory_mu_);
        directory_.emplace(c.id_, c.serial_);
        if (c.identity_.authenticated) {
            users_.emplace(c.identity_.user, c.serial_);
        }
    }
    std::optional<broker::ResumedSession> resumed;
    // A session belongs to the user who created it (anonymous ones to anonymous clients).
    const std::string_view owner =
        c.identity_.authenticated ? std::string_view(c.identity_.user) : std::string_view();
    if (!session.empty()) {
        resumed = engine_->sharesSessions()
                      ? resumeShared(c, session, owner, std::move(shared_record))
                      : sessions_.resume(session, nowMs(), c.serial_, owner);
    }
    Connected out;
    out.client_id = c.id_;
    out.user = std::string(c.info_->user);
    if (c.identity_.authenticated && c.identity_.expires_s != 0) {
        const int64_t left = c.identity_.expires_s - wallSeconds();
        out.expires_in = left < 0 ? 0 : static_cast<uint64_t>(left);
    }
    out.resumed = resumed.has_value();
    if (!session.empty()) {
        (resumed ? localStats().resumes : localStats().resumes_failed).add();
    }
    if (!resumed) {
        c.session_ = sessions_.create(c.serial_, owner);
        out.session_id = c.session_;
        persistSession(c, true);
        return out;
    }
    c.session_ = std::string(session);
    out.session_id = c.session_;
    if (resumed->previous_holder != 0 && resumed->previous_holder != c.serial_) {
        // One holder per session: the previous connection is closed on its own loop. What it
        // was sent and did not ack is in `resumed` and is redelivered here.
        f->stats.takeovers.add();
        postCommand(resumed->previous_holder, true, false);
    }
    for (broker::SessionChannel& ch : resumed->channels) {
        auto r = resolve(ch.channel);
        if (!r) {
            continue;  // its namespace was removed by a config reload
        }
        // The rules may have changed since (a reload, a token with fewer channels). A private
        // channel's subscribe token was checked when this user subscribed: the session is the
        // same user's, so it stands.
        if (!permit(c, *r, r->ns->subscribe_access, "subscribe")) {
            sessions_.unsubscribe(c.session_, ch.channel, c.serial_);
            continue;
        }
        // Always a position, even an empty one: on an engine where a channel has no epoch
        // before its first publication (nats), {"", 0} means "nothing delivered yet" and
        // recovers from the start; the other engines answer recovered:false to it, as without.
        const std::optional<broker::StreamPos> since = ch.delivered;
        ChannelPosition pos;
        Replay::Channel rc;
        rc.unacked = std::move(ch.unacked);
        rc.gap = ch.gap;
        if (!attach(c, r->canonical, *r->ns, since, &pos, &rc)) {
            // The engine went away mid-resume: the channel stays in the session, so the next
            // resume brings it back; this connection is told it is not subscribed.
            pos.channel = r->canonical;
            pos.recovered = false;
            out.channels.push_back(std::move(pos));
            continue;
        }
        if (!pos.recovered) {
            pos.recovered = false;  // no position to recover from: nothing followed
        }
        out.channels.push_back(std::move(pos));
        out.replay.channels.push_back(std::move(rc));
    }
    persistSession(c, true);
    return out;
}

bool Hub::attach(Client& c, std::string_view channel, const NamespaceOptions& ns,
                 const std::optional<broker::StreamPos>& since, ChannelPosition* pos,
                 Replay::Channel* replay) {
    Fanout* f = c.fanout_;
    broker::RecoverResult r = engine_->subscribe(channel, ns, f->index, since, nowMs());
    if (r.unavailable) {
        // The engine registered this loop's interest before failing: drop it unless another
        // local subscriber needs it.
        if (f->channels.find(std::string(channel)) == f->channels.end()) {
            engine_->loopUnsubscribed(channel, f->index);
        }
        return false;
    }
    auto sub = std::make_unique<Client::Sub>();
    sub->channel = std::string(channel);
    sub->ns = &ns;
    if (auto ref = parseChannel(channel)) {
        sub->ns_stats = namespaceStats(ref->ns);
        sub->ns_stats->loops[f->index].subscriptions.add(1);
    }
    {
        SubscriberShard& shard = shardOf(channel);
        std::lock_guard lock(shard.mu);
        ++shard.counts[std::string(channel)];
    }
    sub->epoch = r.top.epoch;
    sub->last_offset = r.top.offset;  // fan-out skips what the replay will send
    // What the client has until the replay runs: everything before the first publication owed
    // (or the top when none is). The session starts there, not at the top, so a replay cut
    // short by a slow or vanished peer is owed again on the next resume.
    broker::StreamPos start = r.top;
    if (!r.pubs.empty()) {
        start = broker::StreamPos{r.pubs.front()->epoch, r.pubs.front()->offset - 1};
    }
    sub->received = start.epoch == sub->epoch ? start.offset : r.top.offset;
    f->addLocal(&c, sub.get());
    c.subs_.push_back(std::move(sub));
    if (!c.session_.empty()) {
        sessions_.subscribe(c.session_, channel, ns, c.serial_);
        sessions_.setPosition(c.session_, channel, std::move(start), c.serial_);
    }
    pos->channel = std::string(channel);
    pos->top = r.top;
    if (since) {
        pos->recovered = r.recovered;
        (r.recovered ? f->stats.recoveries_recovered : f->stats.recoveries_failed).add();
    }
    replay->channel = std::string(channel);
    replay->pubs = std::move(r.pubs);
    if (c.info_ && (ns.presence || ns.join_leave)) {
        engine_->presenceAdd(channel, ns, c.info_);
    }
    return true;
}

Outcome<Subscribed> Hub::subscribe(Client& c, std::string_view channel,
                                   const std::optional<broker::StreamPos>& since,
                                   std::string_view token) {
    if (!c.connected_) {
        return fail(Error::kNotConnected, "send a connect message first");
    }
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    if (auto ok = permit(c, *r, r->ns->subscribe_access, "subscribe"); !ok) {
        return base::Unexpected<Failure>(std::move(ok.error()));
    }
    if (r->ns->private_channels) {
        if (token.empty()) {
            return fail(Error::kPermissionDenied,
                        "'" + std::string(r->canonical) +
                            "' is a private channel: subscribe with the \"token\" your "
                            "application issues for it");
        }
        auto claims = verify(token, "subscribe token");
        if (!claims) {
            return base::Unexpected<Failure>(std::move(claims.error()));
        }
        if (claims->channel != r->canonical) {
            return fail(Error::kPermissionDenied, "the subscribe token is for channel '" +
                                                      claims->channel.substr(0, 256) + "', not '" +
                                                      std::string(r->canonical) + "'");
        }
        if (!claims->sub.empty() && claims->sub != c.info_->user) {
            return fail(Error::kPermissionDenied, "the subscribe token is for another user");
        }
    }
    if (c.find(r->canonical) != nullptr) {
        return fail(Error::kAlreadySubscribed,
                    "already subscribed to '" + std::string(r->canonical) + "'");
    }
    if (c.subs_.size() >= options_.max_subscriptions) {
        return fail(Error::kLimitExceeded,
                    "at most " + std::to_string(options_.max_subscriptions) +
                        " subscriptions per connection (messaging.max_subscriptions)");
    }
    Subscribed out;
    Replay::Channel rc;
    if (!attach(c, r->canonical, *r->ns, since, &out.position, &rc)) {
        return unavailable();
    }
    if (!rc.pubs.empty()) {
        out.replay.channels.push_back(std::move(rc));
    }
    persistSession(c);
    return out;
}

Outcome<std::string> Hub::unsubscribe(Client& c, std::string_view channel) {
    if (!c.connected_) {
        return fail(Error::kNotConnected, "send a connect message first");
    }
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    Client::Sub* s = c.find(r->canonical);
    if (s == nullptr) {
        return fail(Error::kNotSubscribed, "not subscribed to '" + std::string(r->canonical) + "'");
    }
    detachSub(c, *s);
    std::string name = s->channel;
    std::erase_if(c.subs_, [s](const auto& p) { return p.get() == s; });
    if (!c.session_.empty()) {
        sessions_.unsubscribe(c.session_, name, c.serial_);
        persistSession(c);
    }
    return name;
}

Outcome<void> Hub::ack(Client& c, std::string_view channel, uint64_t offset) {
    if (!c.connected_) {
        return fail(Error::kNotConnected, "send a connect message first");
    }
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    if (sessions_.ack(c.session_, r->canonical, offset, c.serial_)) {
        persistSession(c);
    }
    return {};
}

void Hub::end(Client& c, const Disconnect& d) {
    if (c.gone_) {
        return;
    }
    c.gone_ = true;
    c.peer_->disconnect(d);
}

void Hub::replay(Client& c, Replay r) {
    for (Replay::Channel& rc : r.channels) {
        Client::Sub* sub = c.find(rc.channel);
        if (sub == nullptr) {
            continue;
        }
        const bool alo = atLeastOnce(*sub->ns);
        const bool droppable = sub->ns->slow_consumer == NamespaceOptions::SlowConsumer::kDrop;
        uint64_t sent_up_to = 0;
        std::string epoch;
        // One publication: false once the connection is gone (stop touching it).
        auto send = [&](const broker::PubPtr& p, bool gap) {
            if (c.gone_) {
                return false;
            }
            broker::Event ev{.kind = EventKind::kPublication, .pub = p};
            // A drop earlier in this replay (or fan-out) is reported on the next one sent.
            PeerStatus st = c.peer_->deliver(Delivery{ev, gap || sub->gap, nullptr}, droppable);
            if (st == PeerStatus::kGone) {
                c.gone_ = true;
                return false;
            }
            if (st == PeerStatus::kDropped) {
                sub->gap = true;  // `received` stays: see Fanout::deliverTo
                c.fanout_->stats.slow_consumer_drops.add();
                return true;
            }
            if (p->epoch == sub->epoch) {
                sub->received = std::max(sub->received, p->offset);
            }
            sub->gap = false;
            c.fanout_->stats.messages_out.add();
            if (alo && !c.session_.empty()) {
                sessions_.track(c.session_, p, c.serial_);  // no-op for the session's own queue
            }
            return true;
        };
        for (size_t i = 0; i < rc.unacked.size(); ++i) {
            if (!send(rc.unacked[i], rc.gap && i == 0)) {
                return;
            }
            sent_up_to = rc.unacked[i]->offset;
            epoch = rc.unacked[i]->epoch;
        }
        for (const broker::PubPtr& p : rc.pubs) {
            if (p->epoch == epoch && p->offset <= sent_up_to) {
                continue;
            }
            if (!send(p, false)) {
                return;
            }
        }
    }
}

// ---- Requests of a connection or the server ----

Outcome<Published> Hub::publish(Client* c, std::string_view channel, std::string data,
                                std::string_view idempotency_key) {
    if (c != nullptr && !c->connected_) {
        return fail(Error::kNotConnected, "send a connect message first");
    }
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    const NamespaceOptions& ns = *r->ns;
    const std::string_view ns_name = parseChannel(r->canonical)->ns;
    if (c != nullptr && !ns.client_publish) {
        return fail(Error::kPublishForbidden, "clients may not publish in namespace '" +
                                                  std::string(ns_name) +
                                                  "' (publish through the HTTP API)");
    }
    if (c != nullptr) {
        if (auto ok = permit(*c, *r, ns.publish_access, "publish"); !ok) {
            return base::Unexpected<Failure>(std::move(ok.error()));
        }
    }
    if (data.size() > ns.max_data_bytes) {
        return fail(Error::kDataTooLarge, "data is " + std::to_string(data.size()) +
                                              " bytes; namespace '" + std::string(ns_name) +
                                              "' allows " + std::to_string(ns.max_data_bytes) +
                                              " (max_data_bytes)");
    }
    broker::PublishResult p =
        engine_->publish(r->canonical, ns, std::move(data), idempotency_key, nowMs());
    if (p.unavailable) {
        return unavailable();
    }
    if (!p.duplicate) {
        localStats().publications.add();
        namespaceStats(ns_name)->loops[statsSlot()].publications.add();
    }
    return Published{std::string(r->canonical), std::move(p.pos), p.duplicate};
}

Outcome<std::vector<Published>> Hub::broadcast(std::span<const std::string_view> channels,
                                               std::string data, std::string_view idempotency_key) {
    // Validate every channel first: a refusal must publish nothing, or a retry duplicates.
    std::vector<Resolved> targets;
    targets.reserve(channels.size());
    for (std::string_view ch : channels) {
        auto r = resolve(ch);
        if (!r) {
            return base::Unexpected<Failure>(std::move(r.error()));
        }
        if (data.size() > r->ns->max_data_bytes) {
            return fail(Error::kDataTooLarge,
                        "data is " + std::to_string(data.size()) + " bytes; channel '" +
                            std::string(r->canonical) + "' allows " +
                            std::to_string(r->ns->max_data_bytes) + " (max_data_bytes)");
        }
        targets.push_back(*r);
    }
    std::vector<Published> out;
    out.reserve(targets.size());
    const uint64_t now = nowMs();
    Stats& stats = localStats();
    if (!engine_->available()) {
        return unavailable();  // before any is published: a retry then duplicates nothing
    }
    for (const Resolved& t : targets) {
        broker::PublishResult p = engine_->publish(t.canonical, *t.ns, data, idempotency_key, now);
        if (p.unavailable) {
            // Those before it are published: with an idempotency key a retry skips them.
            return unavailable();
        }
        if (!p.duplicate) {
            stats.publications.add();
            if (auto ref = parseChannel(t.canonical)) {
                namespaceStats(ref->ns)->loops[statsSlot()].publications.add();
            }
        }
        out.push_back(Published{std::string(t.canonical), std::move(p.pos), p.duplicate});
    }
    return out;
}

Outcome<PresenceResult> Hub::presence(std::string_view channel, const Client* c) {
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    if (c != nullptr) {
        if (auto ok = permit(*c, *r, r->ns->presence_access, "presence"); !ok) {
            return base::Unexpected<Failure>(std::move(ok.error()));
        }
        if (auto ok = privateReader(*c, *r, "presence"); !ok) {
            return base::Unexpected<Failure>(std::move(ok.error()));
        }
    }
    if (!r->ns->presence) {
        return fail(Error::kPresenceDisabled, "presence is off in namespace '" +
                                                  std::string(parseChannel(r->canonical)->ns) +
                                                  "' (presence = true)");
    }
    if (!engine_->available()) {
        return unavailable();
    }
    return PresenceResult{std::string(r->canonical), engine_->presence(r->canonical)};
}

Outcome<HistoryResult> Hub::history(std::string_view channel,
                                    const std::optional<broker::StreamPos>& since, size_t limit,
                                    const Client* c) {
    auto r = resolve(channel);
    if (!r) {
        return base::Unexpected<Failure>(std::move(r.error()));
    }
    if (c != nullptr) {
        if (auto ok = permit(*c, *r, r->ns->history_access, "history"); !ok) {
            return base::Unexpected<Failure>(std::move(ok.error()));
        }
        if (auto ok = privateReader(*c, *r, "history"); !ok) {
            return base::Unexpected<Failure>(std::move(ok.error()));
        }
    }
    if (r->ns->history_size == 0) {
        return fail(Error::kHistoryDisabled, "history is off in namespace '" +
                                                 std::string(parseChannel(r->canonical)->ns) +
                                                 "' (history_size = 0)");
    }
    broker::RecoverResult h = engine_->history(r->canonical, *r->ns, since, limit, nowMs());
    if (h.unavailable) {
        return unavailable();
    }
    return HistoryResult{std::string(r->canonical), std::move(h)};
}

Outcome<void> Hub::disconnect(std::string_view client_id, bool reconnect) {
    const uint64_t serial = serialOf(client_id);
    const size_t loop = serial & ((uint64_t{1} << kLoopBits) - 1);
    if (serial == 0 || loop >= fanouts_.size()) {
        // "c_<node tag>_<loop>_<n>": a client of another node sharing the engine is asked
        // there (fire-and-forget: whether it is still connected is that node's to know).
        const std::string_view tag = engine_->nodeTag();
        if (!tag.empty() && client_id.starts_with("c_")) {
            const std::string_view rest = client_id.substr(2);
            const std::string_view node = rest.substr(0, rest.find('_'));
            if (node != tag && node.size() == tag.size()) {
                engine_->sendControl(
                    node, std::string("d") + (reconnect ? "1" : "0") + std::string(client_id));
                return {};
            }
        }
        return fail(Error::kUnknownClient, "no connected client has the id '" +
                                               std::string(client_id.substr(0, 128)) + "'");
    }
    postCommand(serial, false, reconnect);
    return {};
}

Outcome<size_t> Hub::disconnectUser(std::string_view user, bool reconnect) {
    const std::vector<uint64_t> serials = serialsOf(user);
    if (!engine_->nodeTag().empty()) {
        // Every node (this one included) disconnects its own connections of the user.
        engine_->sendControl({}, std::string("u") + (reconnect ? "1" : "0") + std::string(user));
        return serials.size();
    }
    if (serials.empty()) {
        return fail(Error::kUnknownClient, "no authenticated client of user '" +
                                               std::string(user.substr(0, 128)) + "' is connected");
    }
    for (uint64_t serial : serials) {
        postCommand(serial, false, reconnect);
    }
    return serials.size();
}

}  // namespace sb::messaging
