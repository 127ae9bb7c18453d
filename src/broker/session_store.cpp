// SessionStore implementation: sessions in 16 locked hash maps by id; per session a small map
// of channels, each with a PubRing of un-acked publications (shared with history and every
// other session, so tracking costs one pointer and one reference count).
#include "broker/session_store.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "broker/pub_ring.h"
#include "broker/random_id.h"

namespace sb::broker {
namespace {

constexpr size_t kSessionIdRandomBytes = 16;  // 128 bits: guessing a live id is hopeless

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

struct ChannelQueue {
    bool at_least_once = false;
    bool gap = false;
    size_t max_unacked = 0;
    uint64_t ttl_ms = 0;
    PubRing unacked;      // delivery order; offsets increase except across an epoch change
    StreamPos delivered;  // last position delivered (or subscribed at): resume recovers after it
};

struct Session {
    bool attached = true;
    uint64_t holder = 0;      // the attached connection's token (0: none given)
    uint64_t expires_ms = 0;  // meaningful while detached
    std::string owner;        // the user it belongs to ("" = anonymous)
    std::unordered_map<std::string, ChannelQueue, StringHash, std::equal_to<>> channels;

    bool expired(uint64_t now_ms) const { return !attached && now_ms >= expires_ms; }
    // `token` may change this session (0 = unchecked).
    bool heldBy(uint64_t token) const { return token == 0 || holder == token; }
};

}  // namespace

struct SessionStore::Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Session, StringHash, std::equal_to<>> sessions;

    // Under mu: the session, or null if unknown.
    Session* find(std::string_view id) {
        auto it = sessions.find(id);
        return it == sessions.end() ? nullptr : &it->second;
    }
};

SessionStore::SessionStore(uint64_t default_ttl_ms) : default_ttl_ms_(default_ttl_ms) {
    for (auto& sh : shards_) {
        sh = std::make_unique<Shard>();
    }
}

SessionStore::~SessionStore() = default;

SessionStore::Shard& SessionStore::shardFor(std::string_view id) {
    return *shards_[StringHash{}(id) % kShards];
}

std::string SessionStore::create(uint64_t holder, std::string_view owner) {
    std::string id = "s_" + randomHex(kSessionIdRandomBytes);
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    // A collision of 128 random bits is not a case to handle.
    Session& s = sh.sessions.try_emplace(id).first->second;
    s.holder = holder;
    s.owner = std::string(owner);
    return id;
}

std::optional<ResumedSession> SessionStore::resume(std::string_view id, uint64_t now_ms,
                                                   uint64_t holder, std::string_view owner) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    auto it = sh.sessions.find(id);
    if (it == sh.sessions.end()) {
        return std::nullopt;
    }
    if (it->second.expired(now_ms)) {
        sh.sessions.erase(it);  // sweep would have; answer the same either way
        return std::nullopt;
    }
    if (it->second.owner != owner) {
        return std::nullopt;
    }
    Session& s = it->second;
    ResumedSession out;
    out.was_attached = s.attached;
    out.previous_holder = s.attached ? s.holder : 0;
    s.attached = true;
    s.holder = holder;
    out.channels.reserve(s.channels.size());
    for (const auto& [name, q] : s.channels) {
        SessionChannel sc;
        sc.channel = name;
        sc.gap = q.gap;
        sc.delivered = q.delivered;
        sc.unacked.reserve(q.unacked.size());
        for (size_t i = 0; i < q.unacked.size(); ++i) {
            sc.unacked.push_back(q.unacked[i]);
        }
        out.channels.push_back(std::move(sc));
    }
    std::sort(
        out.channels.begin(), out.channels.end(),
        [](const SessionChannel& a, const SessionChannel& b) { return a.channel < b.channel; });
    return out;
}

bool SessionStore::subscribe(std::string_view id, std::string_view channel,
                             const NamespaceOptions& ns, uint64_t holder) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    Session* s = sh.find(id);
    if (s == nullptr || !s->heldBy(holder)) {
        return false;
    }
    auto it = s->channels.find(channel);
    if (it == s->channels.end()) {
        it = s->channels.emplace(std::string(channel), ChannelQueue{}).first;
    }
    ChannelQueue& q = it->second;
    q.at_least_once = ns.delivery == NamespaceOptions::Delivery::kAtLeastOnce;
    q.max_unacked = ns.max_unacked;
    q.ttl_ms = ns.session_ttl_ms;
    if (!q.at_least_once) {
        q.unacked.clear();
        q.gap = false;
    }
    while (q.unacked.size() > q.max_unacked) {
        q.unacked.popFront();
        q.gap = true;
    }
    return true;
}

// Runs f(session, iterator) on the session's channel under the shard lock; false if the
// session or the channel is unknown.
template <class F>
bool SessionStore::withChannel(std::string_view id, std::string_view channel, uint64_t holder,
                               F&& f) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    Session* s = sh.find(id);
    if (s == nullptr || !s->heldBy(holder)) {
        return false;
    }
    auto it = s->channels.find(channel);
    if (it == s->channels.end()) {
        return false;
    }
    f(*s, it);
    return true;
}

bool SessionStore::unsubscribe(std::string_view id, std::string_view channel, uint64_t holder) {
    return withChannel(id, channel, holder, [](Session& s, auto it) { s.channels.erase(it); });
}

bool SessionStore::setPosition(std::string_view id, std::string_view channel, StreamPos pos,
                               uint64_t holder) {
    return withChannel(id, channel, holder,
                       [&](Session&, auto it) { it->second.delivered = std::move(pos); });
}

bool SessionStore::track(std::string_view id, PubPtr pub, uint64_t holder) {
    if (!pub) {
        return false;
    }
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    Session* s = sh.find(id);
    if (s == nullptr || !s->heldBy(holder)) {
        return false;
    }
    auto it = s->channels.find(std::string_view(pub->channel));
    if (it == s->channels.end() || !it->second.at_least_once) {
        return false;
    }
    ChannelQueue& q = it->second;
    if (!q.unacked.empty() && q.unacked.back()->epoch == pub->epoch &&
        q.unacked.back()->offset >= pub->offset) {
        return true;  // kept already (a resume redelivering its queue)
    }
    q.delivered = StreamPos{pub->epoch, pub->offset};
    if (q.max_unacked == 0) {
        q.gap = true;  // nothing may be kept: every delivery is a potential loss
        return true;
    }
    if (q.unacked.size() >= q.max_unacked) {
        q.unacked.popFront();
        q.gap = true;
    }
    q.unacked.pushBack(std::move(pub));
    return true;
}

bool SessionStore::ack(std::string_view id, std::string_view channel, uint64_t offset,
                       uint64_t holder) {
    return withChannel(id, channel, holder, [offset](Session&, auto it) {
        ChannelQueue& q = it->second;
        size_t removed = 0;
        // Fast path: one epoch, offsets increasing, so the acked ones are a prefix.
        while (!q.unacked.empty() && q.unacked.front()->offset <= offset) {
            q.unacked.popFront();
            ++removed;
        }
        // The channel was re-created while publications of its previous life were un-acked (the
        // ack names no epoch): offsets restarted at 1, so the acked ones need not be a prefix.
        if (!q.unacked.empty() && q.unacked.front()->epoch != q.unacked.back()->epoch) {
            removed += q.unacked.eraseIf([offset](const PubPtr& p) { return p->offset <= offset; });
        }
        if (removed > 0) {
            q.gap = false;  // the client has passed the gap: what it lacks now is in the queue
        }
    });
}

bool SessionStore::detach(std::string_view id, uint64_t now_ms, uint64_t holder) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    Session* s = sh.find(id);
    if (s == nullptr || !s->heldBy(holder)) {
        return false;
    }
    uint64_t ttl = 0;
    for (const auto& [name, q] : s->channels) {
        ttl = std::max(ttl, q.ttl_ms);
    }
    if (s->channels.empty()) {
        ttl = default_ttl_ms_;
    }
    s->attached = false;
    s->expires_ms = now_ms + ttl;
    return true;
}

bool SessionStore::remove(std::string_view id) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    auto it = sh.sessions.find(id);
    if (it == sh.sessions.end()) {
        return false;
    }
    sh.sessions.erase(it);
    return true;
}

std::optional<SessionRecord> SessionStore::record(std::string_view id) const {
    const Shard& sh = *shards_[StringHash{}(id) % kShards];
    std::lock_guard lock(sh.mu);
    auto it = sh.sessions.find(id);
    if (it == sh.sessions.end()) {
        return std::nullopt;
    }
    const Session& s = it->second;
    SessionRecord rec;
    rec.owner = s.owner;
    rec.ttl_ms = s.channels.empty() ? default_ttl_ms_ : 0;
    rec.channels.reserve(s.channels.size());
    for (const auto& [name, q] : s.channels) {
        rec.ttl_ms = std::max(rec.ttl_ms, q.ttl_ms);
        StreamPos pos = q.delivered;
        if (q.at_least_once && !q.unacked.empty()) {
            // Everything after the last ack is owed: resume just before the first un-acked.
            pos = StreamPos{q.unacked[0]->epoch, q.unacked[0]->offset - 1};
        }
        rec.channels.emplace_back(name, std::move(pos));
    }
    return rec;
}

ResumedSession SessionStore::adopt(std::string_view id, const SessionRecord& rec, uint64_t holder) {
    Shard& sh = shardFor(id);
    std::lock_guard lock(sh.mu);
    Session& s = sh.sessions.insert_or_assign(std::string(id), Session{}).first->second;
    s.holder = holder;
    s.owner = rec.owner;
    ResumedSession out;
    for (const auto& [name, pos] : rec.channels) {
        ChannelQueue& q = s.channels[name];
        q.delivered = pos;
        q.ttl_ms = rec.ttl_ms;
        SessionChannel sc;
        sc.channel = name;
        sc.delivered = pos;
        out.channels.push_back(std::move(sc));
    }
    std::sort(
        out.channels.begin(), out.channels.end(),
        [](const SessionChannel& a, const SessionChannel& b) { return a.channel < b.channel; });
    return out;
}

uint64_t SessionStore::holder(std::string_view id) const {
    const Shard& sh = *shards_[StringHash{}(id) % kShards];
    std::lock_guard lock(sh.mu);
    auto it = sh.sessions.find(id);
    return it == sh.sessions.end() || !it->second.attached ? 0 : it->second.holder;
}

std::vector<std::pair<std::string, uint64_t>> SessionStore::attached() const {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& sh : shards_) {
        std::lock_guard lock(sh->mu);
        for (const auto& [id, s] : sh->sessions) {
            if (s.attached) {
                out.emplace_back(id, s.holder);
            }
        }
    }
    return out;
}

size_t SessionStore::sweep(uint64_t now_ms) {
    size_t removed = 0;
    for (auto& sh : shards_) {
        std::lock_guard lock(sh->mu);
        removed += std::erase_if(sh->sessions,
                                 [now_ms](const auto& kv) { return kv.second.expired(now_ms); });
    }
    return removed;
}

size_t SessionStore::size() const {
    size_t n = 0;
    for (const auto& sh : shards_) {
        std::lock_guard lock(sh->mu);
        n += sh->sessions.size();
    }
    return n;
}

}  // namespace sb::broker
