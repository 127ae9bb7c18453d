// The memory engine. Every operation finds its channel hand-over-hand: the shard lock is held
// only until the channel's own lock is taken, so publishes on different channels contend at
// most for a short lookup, and sweep (which erases under the shard lock, after taking and
// releasing the channel lock) can never free a channel someone is using. Fan-out happens under
// the channel lock: that is what makes delivery order equal offset order on every loop.
#include "broker/memory_engine.h"

#include <array>
#include <atomic>
#include <bit>
#include <cassert>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "broker/pub_ring.h"
#include "broker/random_id.h"

namespace sb::broker {
namespace {

constexpr size_t kShards = 64;  // ≫ cores: two publishers rarely meet on one shard lock
static_assert(kMaxLoops <= 64, "loop interest is one bit of a uint64_t per loop");
static_assert(2 + 2 * kEpochRandomBytes <= 15,
              "the epoch must fit std::string's inline buffer: a publish copies it");

struct ViewHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

// A channel's idempotency keys, oldest first. Allocated on the first key only: std::deque
// allocates even when empty, and most channels never see a key.
class IdempotencyIndex {
public:
    bool empty() const { return fifo_.empty(); }

    // Forgets keys whose window has passed. Keys are appended in (roughly) expiry order, so
    // this pops from the front; find() still checks each entry's own expiry.
    void expire(uint64_t now_ms) {
        while (!fifo_.empty() && fifo_.front().expires_ms <= now_ms) {
            popOldest();
        }
    }

    // The offset first published under `key`, if the key is still within its window.
    std::optional<uint64_t> find(std::string_view key, uint64_t now_ms) const {
        auto it = index_.find(key);
        if (it == index_.end() || it->second->expires_ms <= now_ms) {
            return std::nullopt;
        }
        return it->second->offset;
    }

    void insert(std::string_view key, uint64_t offset, uint64_t expires_ms) {
        if (fifo_.size() >= kMaxIdempotencyKeys) {
            popOldest();
        }
        index_.erase(key);  // an expired entry not yet popped: the new one replaces it
        // std::deque::push_back keeps references to existing elements valid, so the index may
        // point into the deque and key its entries by views of the stored strings.
        Entry& e = fifo_.emplace_back(Entry{std::string(key), offset, expires_ms});
        index_.emplace(std::string_view(e.key), &e);
    }

private:
    struct Entry {
        std::string key;
        uint64_t offset;
        uint64_t expires_ms;
    };

    void popOldest() {
        Entry& e = fifo_.front();
        auto it = index_.find(std::string_view(e.key));
        if (it != index_.end() && it->second == &e) {
            index_.erase(it);
        }
        fifo_.pop_front();
    }

    std::deque<Entry> fifo_;
    std::unordered_map<std::string_view, Entry*, ViewHash, std::equal_to<>> index_;
};

// One channel's stream. Every field except name and epoch is guarded by mu.
struct Channel {
    Channel(std::string_view n, std::string e) : name(n), epoch(std::move(e)) {}

    std::mutex mu;
    const std::string name;
    const std::string epoch;      // fixed for the life of this object: a new life is a new Channel
    uint64_t top = 0;             // last offset assigned
    uint64_t loops = 0;           // bit i set: loop i has at least one local subscriber
    uint64_t history_ttl_ms = 0;  // the namespace's TTL as last seen, for sweep()
    // Invariant: empty, or exactly the offsets [history.front()->offset, top], contiguous —
    // every publish appends while history is on, and trimming only pops the front.
    PubRing history;
    // Keyed by a view of the stored ClientInfo's client_id (the info is immutable and kept
    // alive by the value), so an entry costs no key copy.
    std::unordered_map<std::string_view, std::shared_ptr<const ClientInfo>, ViewHash,
                       std::equal_to<>>
        presence;
    std::unique_ptr<IdempotencyIndex> idempotency;
};

// History trimming, under the channel lock. Also records the TTL for sweep().
void trimHistory(Channel& ch, size_t size, uint64_t ttl_ms, uint64_t now_ms) {
    ch.history_ttl_ms = ttl_ms;
    if (size == 0) {
        if (!ch.history.empty()) {
            ch.history.clear();
        }
        return;
    }
    while (ch.history.size() > size) {
        ch.history.popFront();
    }
    if (ttl_ms > 0) {
        while (!ch.history.empty() && ch.history.front()->time_ms + ttl_ms <= now_ms) {
            ch.history.popFront();
        }
    }
}

// Fills r.recovered and r.pubs for a `since` position, under the channel lock. `limit` 0 = all.
void collectSince(const Channel& ch, const StreamPos& since, size_t limit, RecoverResult& r) {
    if (since.epoch != ch.epoch || since.offset > ch.top) {
        r.recovered = false;  // another life of the channel, or a position it never had
        return;
    }
    if (since.offset == ch.top) {
        r.recovered = true;  // nothing missed
        return;
    }
    size_t n = ch.history.size();
    if (n == 0) {
        r.recovered = false;
        return;
    }
    assert(ch.history.back()->offset == ch.top);
    uint64_t first = ch.history.front()->offset;
    uint64_t want = since.offset + 1;
    r.recovered = first <= want;
    size_t start = r.recovered ? static_cast<size_t>(want - first) : 0;
    size_t count = n - start;
    if (limit > 0 && count > limit) {
        count = limit;
    }
    r.pubs.reserve(count);
    for (size_t i = start; i < start + count; ++i) {
        r.pubs.push_back(ch.history[i]);
    }
}

class MemoryEngine final : public Engine {
public:
    void setSink(LoopSink* sink) override { sink_.store(sink, std::memory_order_release); }

    void loopSubscribed(std::string_view channel, uint32_t loop_id) override {
        assert(loop_id < kMaxLoops);
        if (loop_id >= kMaxLoops) {
            return;
        }
        Locked c = lockChannel(channel, true);
        c.ch->loops |= uint64_t{1} << loop_id;
    }

    void loopUnsubscribed(std::string_view channel, uint32_t loop_id) override {
        assert(loop_id < kMaxLoops);
        if (loop_id >= kMaxLoops) {
            return;
        }
        // Removal of an emptied channel is left to sweep(): a client that unsubscribes and
        // subscribes again right away keeps its epoch, and flapping costs no re-creation.
        Locked c = lockChannel(channel, false);
        if (c.ch != nullptr) {
            c.ch->loops &= ~(uint64_t{1} << loop_id);
        }
    }

    RecoverResult subscribe(std::string_view channel, const NamespaceOptions& ns, uint32_t loop_id,
                            const std::optional<StreamPos>& since, uint64_t now_ms) override {
        assert(loop_id < kMaxLoops);
        Locked c = lockChannel(channel, true);
        trimHistory(*c.ch, ns.history_size, ns.history_ttl_ms, now_ms);
        if (loop_id < kMaxLoops) {
            c.ch->loops |= uint64_t{1} << loop_id;
        }
        RecoverResult r;
        r.top = StreamPos{c.ch->epoch, c.ch->top};
        if (since) {
            collectSince(*c.ch, *since, 0, r);
        }
        return r;
    }

    PublishResult publish(std::string_view channel, const NamespaceOptions& ns, std::string data,
                          std::string_view idempotency_key, uint64_t now_ms) override {
        // Built before any lock is taken: the one allocation of a publish and the copies stay
        // out of the critical section. Epoch and offset are filled in under the lock.
        auto pub = std::make_shared<Publication>();
        pub->channel.assign(channel);
        pub->time_ms = now_ms;
        pub->data = std::move(data);

        Locked c = lockChannel(channel, true);
        Channel& ch = *c.ch;
        trimHistory(ch, ns.history_size, ns.history_ttl_ms, now_ms);
        bool keyed = !idempotency_key.empty() && ns.idempotency_window_ms > 0;
        if (keyed) {
            if (!ch.idempotency) {
                ch.idempotency = std::make_unique<IdempotencyIndex>();
            }
            ch.idempotency->expire(now_ms);
            if (auto first = ch.idempotency->find(idempotency_key, now_ms)) {
                return PublishResult{StreamPos{ch.epoch, *first}, true};
            }
        }
        pub->epoch = ch.epoch;  // inline buffer: no allocation (static_assert above)
        uint64_t offset = ++ch.top;
        pub->offset = offset;
        PubPtr shared = std::move(pub);
        if (ns.history_size > 0) {
            if (ch.history.size() == ns.history_size) {
                ch.history.popFront();  // before the push: the ring never outgrows the size
            }
            ch.history.pushBack(shared);
        }
        if (keyed) {
            ch.idempotency->insert(idempotency_key, offset, now_ms + ns.idempotency_window_ms);
        }
        deliverPublication(ch, std::move(shared));
        return PublishResult{StreamPos{ch.epoch, offset}, false};
    }

    RecoverResult history(std::string_view channel, const NamespaceOptions& ns,
                          const std::optional<StreamPos>& since, size_t limit,
                          uint64_t now_ms) override {
        RecoverResult r;
        Locked c = lockChannel(channel, false);
        if (c.ch == nullptr) {
            return r;
        }
        Channel& ch = *c.ch;
        trimHistory(ch, ns.history_size, ns.history_ttl_ms, now_ms);
        r.top = StreamPos{ch.epoch, ch.top};
        if (since) {
            collectSince(ch, *since, limit, r);
            return r;
        }
        size_t n = ch.history.size();
        size_t start = (limit > 0 && n > limit) ? n - limit : 0;
        r.pubs.reserve(n - start);
        for (size_t i = start; i < n; ++i) {
            r.pubs.push_back(ch.history[i]);
        }
        return r;
    }

    void presenceAdd(std::string_view channel, const NamespaceOptions& ns,
                     std::shared_ptr<const ClientInfo> who) override {
        if (!who || !(ns.presence || ns.join_leave)) {
            return;
        }
        Locked c = lockChannel(channel, true);
        Channel& ch = *c.ch;
        auto it = ch.presence.find(std::string_view(who->client_id));
        if (it != ch.presence.end()) {
            // Replace: the key views the old info's client_id, so re-key it.
            ch.presence.erase(it);
            ch.presence.emplace(std::string_view(who->client_id), std::move(who));
            return;
        }
        auto [added, ok] = ch.presence.emplace(std::string_view(who->client_id), std::move(who));
        if (ns.join_leave) {
            deliverPresence(ch, EventKind::kJoin, added->second);
        }
    }

    void presenceRemove(std::string_view channel, const NamespaceOptions& ns,
                        std::string_view client_id) override {
        Locked c = lockChannel(channel, false);
        if (c.ch == nullptr) {
            return;
        }
        Channel& ch = *c.ch;
        auto it = ch.presence.find(client_id);
        if (it == ch.presence.end()) {
            return;
        }
        std::shared_ptr<const ClientInfo> who = std::move(it->second);
        ch.presence.erase(it);
        if (ns.join_leave) {
            deliverPresence(ch, EventKind::kLeave, who);
        }
    }

    std::vector<std::shared_ptr<const ClientInfo>> presence(std::string_view channel) override {
        std::vector<std::shared_ptr<const ClientInfo>> out;
        Locked c = lockChannel(channel, false);
        if (c.ch == nullptr) {
            return out;
        }
        out.reserve(c.ch->presence.size());
        for (const auto& [id, who] : c.ch->presence) {
            out.push_back(who);
        }
        return out;
    }

    std::vector<ChannelSummary> channels() override {
        std::vector<ChannelSummary> out;
        for (Shard& sh : shards_) {
            std::lock_guard sl(sh.mu);
            for (const auto& [name, owned] : sh.channels) {
                Channel& ch = *owned;
                std::lock_guard cl(ch.mu);
                out.push_back(ChannelSummary{
                    ch.name, StreamPos{ch.epoch, ch.top}, ch.presence.size(),
                    static_cast<size_t>(std::popcount(ch.loops)), ch.history.size()});
            }
        }
        return out;
    }

    void sweep(uint64_t now_ms) override {
        for (Shard& sh : shards_) {
            std::lock_guard sl(sh.mu);
            for (auto it = sh.channels.begin(); it != sh.channels.end();) {
                Channel& ch = *it->second;
                bool idle;
                {
                    std::lock_guard cl(ch.mu);
                    if (ch.history_ttl_ms > 0) {
                        while (!ch.history.empty() &&
                               ch.history.front()->time_ms + ch.history_ttl_ms <= now_ms) {
                            ch.history.popFront();
                        }
                    }
                    if (ch.idempotency) {
                        ch.idempotency->expire(now_ms);
                        if (ch.idempotency->empty()) {
                            ch.idempotency.reset();
                        }
                    }
                    idle = ch.loops == 0 && ch.history.empty() && ch.presence.empty() &&
                           !ch.idempotency;
                }
                // Unreachable once erased: every user finds channels under the shard lock we
                // hold, and whoever held the channel lock before us has finished with it.
                it = idle ? sh.channels.erase(it) : std::next(it);
            }
        }
    }

private:
    struct alignas(64) Shard {  // one cache line per shard lock: no false sharing
        std::mutex mu;
        // Keyed by a view of the owned Channel's name: no second copy of the name.
        std::unordered_map<std::string_view, std::unique_ptr<Channel>, ViewHash, std::equal_to<>>
            channels;
    };

    // A channel with its lock held; ch is null if it did not exist and was not created.
    struct Locked {
        Channel* ch = nullptr;
        std::unique_lock<std::mutex> lock;
    };

    Shard& shardFor(std::string_view name) {
        size_t h = ViewHash{}(name);
        return shards_[(h ^ (h >> 29)) % kShards];
    }

    // Hand-over-hand: the channel lock is taken before the shard lock is released (the local
    // `sl` is destroyed after the return value is built), so sweep() cannot erase the channel
    // between lookup and lock.
    Locked lockChannel(std::string_view name, bool create) {
        Shard& sh = shardFor(name);
        std::unique_lock sl(sh.mu);
        auto it = sh.channels.find(name);
        Channel* ch = nullptr;
        if (it != sh.channels.end()) {
            ch = it->second.get();
        } else if (create) {
            // A new life of the channel: a fresh epoch, so positions from an earlier life
            // (or an earlier process) can never be mistaken for this one's.
            auto owned = std::make_unique<Channel>(name, "e_" + randomHex(kEpochRandomBytes));
            ch = owned.get();
            sh.channels.emplace(std::string_view(ch->name), std::move(owned));
        } else {
            return Locked{};
        }
        return Locked{ch, std::unique_lock(ch->mu)};
    }

    // Under the channel lock. `pub` is moved into the last loop's event: one reference count
    // increment fewer per publish.
    void deliverPublication(const Channel& ch, PubPtr pub) {
        LoopSink* sink = sink_.load(std::memory_order_acquire);
        if (sink == nullptr) {
            return;
        }
        for (uint64_t m = ch.loops; m != 0; m &= m - 1) {
            auto loop_id = static_cast<uint32_t>(std::countr_zero(m));
            bool last = (m & (m - 1)) == 0;
            sink->deliver(loop_id, Event{EventKind::kPublication, last ? std::move(pub) : pub,
                                         std::string(), nullptr});
        }
    }

    // Under the channel lock.
    void deliverPresence(const Channel& ch, EventKind kind,
                         const std::shared_ptr<const ClientInfo>& who) {
        LoopSink* sink = sink_.load(std::memory_order_acquire);
        if (sink == nullptr) {
            return;
        }
        for (uint64_t m = ch.loops; m != 0; m &= m - 1) {
            auto loop_id = static_cast<uint32_t>(std::countr_zero(m));
            sink->deliver(loop_id, Event{kind, nullptr, ch.name, who});
        }
    }

    std::atomic<LoopSink*> sink_{nullptr};
    std::array<Shard, kShards> shards_;
};

}  // namespace

std::unique_ptr<Engine> makeMemoryEngine() {
    return std::make_unique<MemoryEngine>();
}

}  // namespace sb::broker
