// The NATS engine (see nats_engine.h). Engine methods run on the caller's thread and make their
// JetStream requests there; libnats's delivery thread hands republished messages to the
// server's loops (catching up from the stream when it sees a hole); one worker thread of ours
// does the fire-and-forget writes (presence, sessions), the node heartbeat and reaping.
#include "engines/nats/nats_engine.h"

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/log.h"
#include "broker/random_id.h"
#include "engines/nats/codec.h"
#include "engines/redis/wire.h"
#include "engines/shared.h"

namespace sb::engines::nats {

namespace {

using broker::ClientInfo;
using broker::Event;
using broker::EventKind;
using broker::NamespaceOptions;
using broker::Publication;
using broker::PubPtr;
using broker::RecoverResult;
using broker::StreamPos;

constexpr size_t kShards = 16;
// A channel's last message stays at least this long after it was published: it holds the
// channel's position, so a quiet channel keeps its epoch for a day (as with Redis).
constexpr uint64_t kIdleStreamTtlMs = 24ULL * 3600 * 1000;
// Session records carry their own expiry; the bucket's TTL only collects what nobody removed.
// It bounds session_ttl on this engine (docs/cluster.md).
constexpr uint64_t kSessionBucketTtlMs = 24ULL * 3600 * 1000;
constexpr uint64_t kTickMs = 1000;  // heartbeat, node list and reaping
constexpr uint64_t kMinBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 5000;
// Publishers on several nodes racing on one channel: each refusal means another publication
// got in, so the loop ends, but not before the caller's deadline (see publish).
constexpr int kMaxPublishAttempts = 1000;
constexpr size_t kMaxJobs = 1'000'000;  // worker backlog bound (an outage skips writes anyway)
constexpr size_t kMaxSessionRevs = 1'000'000;  // bounds writeSession's cache

constexpr const char* kHdrEpoch = "Sb-Epoch";
constexpr const char* kHdrOffset = "Sb-Offset";
constexpr const char* kHdrTime = "Sb-Time";
constexpr const char* kHdrKind = "Sb-Kind";  // "j" / "l": a join / leave event, not stored

std::string_view header(natsMsg* m, const char* key) {
    const char* v = nullptr;
    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == nullptr) {
        return {};
    }
    return v;
}

std::string lastError(natsStatus s) {
    const char* text = nats_GetLastError(nullptr);
    std::string out = natsStatus_GetText(s);
    if (text != nullptr && *text != '\0') {
        out += " (";
        out += text;
        out += ")";
    }
    return out;
}

struct MsgDeleter {
    void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

// The last message of a channel, as the stream has it.
struct Top {
    bool exists = false;
    std::string epoch;
    uint64_t offset = 0;
    uint64_t seq = 0;  // its stream sequence: what the next publish expects
};

class NatsEngine;

// What libnats's callbacks point at. It outlives the engine (kept in a global list, a few bytes
// per engine), so a callback that fires after the engine is gone finds a null engine instead of
// freed memory; the engine's destructor clears it under `mu`, which waits for callbacks running.
struct Link {
    std::mutex mu;
    NatsEngine* engine = nullptr;
};

std::mutex g_links_mu;
std::vector<std::unique_ptr<Link>>& links() {
    static auto* v = new std::vector<std::unique_ptr<Link>>();  // reachable: not a leak
    return *v;
}

class NatsEngine final : public broker::Engine {
public:
    explicit NatsEngine(NatsOptions o) : opts_(std::move(o)) {
        tag_ = broker::randomHex(4);
        if (opts_.node_name.empty()) {
            char host[256] = {};
            gethostname(host, sizeof(host) - 1);
            opts_.node_name = std::string(host) + ":" + std::to_string(getpid());
        }
        for (auto& sh : shards_) {
            sh = std::make_unique<Shard>();
        }
        status_.engine = "nats";
        status_.available = false;
        status_.error = "connecting to " + opts_.url;
        status_.node_id = tag_;
        std::lock_guard lock(g_links_mu);
        links().push_back(std::make_unique<Link>());
        link_ = links().back().get();
        link_->engine = this;
    }

    // Builds the libnats options; fails on what the user can fix (a bad URL or CA file).
    base::Result<void> configure() {
        natsStatus s = natsOptions_Create(&nopts_);
        std::vector<std::string> urls;
        std::string_view rest = opts_.url;
        while (!rest.empty()) {
            const size_t comma = rest.find(',');
            std::string_view one = rest.substr(0, comma);
            while (!one.empty() && one.front() == ' ') {
                one.remove_prefix(1);
            }
            while (!one.empty() && one.back() == ' ') {
                one.remove_suffix(1);
            }
            if (!one.empty()) {
                urls.emplace_back(one);
            }
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        if (urls.empty()) {
            return base::fail("broker.nats_url is empty (e.g. \"nats://127.0.0.1:4222\")");
        }
        std::vector<const char*> ptrs;
        for (const auto& u : urls) {
            ptrs.push_back(u.c_str());
        }
        const std::string name = "switchboard " + opts_.node_name;
        auto step = [&](natsStatus st, const char* what) {
            if (s == NATS_OK && st != NATS_OK) {
                s = st;
                error_ = std::string(what) + ": " + lastError(st);
            }
        };
        if (s != NATS_OK) {
            return base::fail("nats: " + lastError(s));
        }
        step(natsOptions_SetServers(nopts_, ptrs.data(), static_cast<int>(ptrs.size())),
             "broker.nats_url");
        step(natsOptions_SetName(nopts_, name.c_str()), "name");
        step(natsOptions_SetMaxReconnect(nopts_, -1), "reconnect");
        step(natsOptions_SetCustomReconnectDelay(nopts_, &NatsEngine::reconnectDelay, link_),
             "reconnect delay");
        step(natsOptions_SetRetryOnFailedConnect(nopts_, true, &NatsEngine::onConnected, link_),
             "retry");
        step(natsOptions_SetDisconnectedCB(nopts_, &NatsEngine::onDisconnected, link_),
             "callbacks");
        step(natsOptions_SetReconnectedCB(nopts_, &NatsEngine::onConnected, link_), "callbacks");
        step(natsOptions_SetErrorHandler(nopts_, &NatsEngine::onAsyncError, link_), "callbacks");
        // A server that stops answering (frozen, partitioned) is dropped after two missed
        // pings, so /readyz turns 503 within about nats_timeout.
        step(natsOptions_SetPingInterval(
                 nopts_, static_cast<int64_t>(std::max<uint64_t>(500, opts_.timeout_ms / 2))),
             "ping");
        step(natsOptions_SetMaxPingsOut(nopts_, 2), "ping");
        step(natsOptions_SetTimeout(nopts_, static_cast<int64_t>(opts_.timeout_ms)), "timeout");
        // One delivery thread for every subscription instead of one thread per subscription.
        step(natsOptions_UseGlobalMessageDelivery(nopts_, true), "delivery");
        if (!opts_.user.empty()) {
            step(natsOptions_SetUserInfo(nopts_, opts_.user.c_str(), opts_.password.c_str()),
                 "broker.nats_user");
        }
        if (!opts_.token.empty()) {
            step(natsOptions_SetToken(nopts_, opts_.token.c_str()), "broker.nats_token");
        }
        if (opts_.tls) {
            step(natsOptions_SetSecure(nopts_, true), "broker.nats_tls");
            if (!opts_.tls_ca_file.empty()) {
                step(natsOptions_LoadCATrustedCertificates(nopts_, opts_.tls_ca_file.c_str()),
                     "broker.nats_tls_ca");
            }
        }
        if (s != NATS_OK) {
            return base::fail(error_);
        }
        return {};
    }

    // Connects (or keeps trying in the background), then starts the worker, which sets up the
    // buckets once connected (and retries every tick until it could).
    void start() {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        const natsStatus s = natsConnection_Connect(&nc_, nopts_);
        if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
            // Only resource errors get here (retry-on-failed-connect covers the rest).
            setError("cannot connect: " + lastError(s));
            SB_WARN("nats engine: %s", lastError(s).c_str());
        }
        if (nc_ != nullptr) {
            natsConnection_JetStream(&js_, nc_, &jo);
        }
        worker_ = std::thread([this] { workerLoop(); });
        post([this] { onUp(); });
    }

    ~NatsEngine() override {
        {
            std::lock_guard lock(wmu_);
            wstop_ = true;
        }
        wcv_.notify_all();
        if (worker_.joinable()) {
            worker_.join();
        }
        {
            std::lock_guard lock(link_->mu);  // waits for callbacks in flight
            link_->engine = nullptr;
        }
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (auto& [name, c] : sh->chans) {
                if (c.sub != nullptr) {
                    natsSubscription_Unsubscribe(c.sub);
                    natsSubscription_Destroy(c.sub);
                }
            }
            sh->chans.clear();
        }
        for (natsSubscription* s : {ctl_all_, ctl_node_}) {
            if (s != nullptr) {
                natsSubscription_Unsubscribe(s);
                natsSubscription_Destroy(s);
            }
        }
        for (kvStore* kv : {kv_presence_, kv_sessions_, kv_nodes_}) {
            if (kv != nullptr) {
                kvStore_Destroy(kv);
            }
        }
        if (js_ != nullptr) {
            jsCtx_Destroy(js_);
        }
        if (nc_ != nullptr) {
            natsConnection_Close(nc_);
            natsConnection_Destroy(nc_);
        }
        if (nopts_ != nullptr) {
            natsOptions_Destroy(nopts_);
        }
    }

    // ---- broker::Engine ----

    void setSink(broker::LoopSink* sink) override { sink_.store(sink, std::memory_order_release); }

    void loopSubscribed(std::string_view channel, uint32_t loop_id) override {
        Shard& sh = shardFor(channel);
        std::lock_guard lock(sh.mu);
        Chan& c = chanLocked(sh, channel);
        c.loops |= uint64_t{1} << loop_id;
    }

    void loopUnsubscribed(std::string_view channel, uint32_t loop_id) override {
        Shard& sh = shardFor(channel);
        std::lock_guard lock(sh.mu);
        auto it = sh.chans.find(channel);
        if (it == sh.chans.end()) {
            return;
        }
        it->second.loops &= ~(uint64_t{1} << loop_id);
        if (it->second.loops == 0) {
            if (it->second.sub != nullptr) {
                natsSubscription_Unsubscribe(it->second.sub);
                natsSubscription_Destroy(it->second.sub);
            }
            sh.chans.erase(it);
        }
    }

    RecoverResult subscribe(std::string_view channel, const NamespaceOptions& ns, uint32_t loop_id,
                            const std::optional<StreamPos>& since, uint64_t /*now_ms*/) override {
        RecoverResult out;
        natsSubscription* sub = nullptr;
        bool confirmed = false;
        {
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            Chan& c = chanLocked(sh, channel);
            c.loops |= uint64_t{1} << loop_id;
            sub = c.sub;
            confirmed = c.confirmed;
        }
        if (!available() || sub == nullptr) {
            out.unavailable = true;
            return out;
        }
        // Until the server is known to have our SUB (a PING answered behind it), every
        // subscribe waits for that, even when another caller sent the SUB: then every
        // publication after the snapshot below reaches this node, and none falls between.
        if (!confirmed) {
            const natsStatus fs =
                natsConnection_FlushTimeout(nc_, static_cast<int64_t>(opts_.timeout_ms));
            if (fs != NATS_OK) {
                noteFailure("subscribe", lastError(fs));
                out.unavailable = true;
                return out;
            }
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(channel);
            if (it != sh.chans.end() && it->second.sub == sub) {
                it->second.confirmed = true;
            }
        }
        const std::string name(channel);
        if (!ensureStream(name, ns)) {
            out.unavailable = true;
            return out;
        }
        auto top = lastOf(name);
        if (!top) {
            out.unavailable = true;
            return out;
        }
        {
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(channel);
            if (it != sh.chans.end() && it->second.last.epoch.empty() && !it->second.floor) {
                it->second.floor = StreamPos{top->epoch, top->offset};  // {"", 0}: no message yet
            }
        }
        return recover(name, ns, *top, since, 0, false);
    }

    broker::PublishResult publish(std::string_view channel, const NamespaceOptions& ns,
                                  std::string data, std::string_view idempotency_key,
                                  uint64_t /*now_ms*/) override {
        broker::PublishResult out;
        const std::string name(channel);
        if (!available() || !ensureStream(name, ns)) {
            out.unavailable = true;
            return out;
        }
        const std::string subject = subjectOf('m', name);
        const std::string msg_id = idempotency_key.empty()
                                       ? std::string()
                                       : encodeToken(name) + "." + encodeToken(idempotency_key);
        std::shared_ptr<PubSlot> slot = slotFor(name);
        // One publisher per channel per node at a time: they would only refuse each other.
        std::lock_guard lock(slot->mu);
        const uint64_t deadline = clockMs(CLOCK_MONOTONIC) + opts_.timeout_ms;
        for (int attempt = 0; attempt < kMaxPublishAttempts; ++attempt) {
            if (clockMs(CLOCK_MONOTONIC) > deadline) {
                break;
            }
            if (!slot->known) {
                auto top = lastOf(name);
                if (!top) {
                    out.unavailable = true;
                    return out;
                }
                if (slot->top.exists && top->exists && top->epoch == slot->top.epoch &&
                    top->offset < slot->top.offset) {
                    // The stream is behind what this node published: its next offsets were
                    // handed out already.
                    fence(name, *top, slot->top.offset);
                    slot->top = Top{};
                    continue;
                }
                slot->top = *top;
                slot->known = true;
            }
            const bool fresh = !slot->top.exists;
            const std::string epoch = fresh ? newEpoch() : slot->top.epoch;
            const uint64_t offset = fresh ? 1 : slot->top.offset + 1;
            natsMsg* raw = nullptr;
            natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, data.data(),
                                          static_cast<int>(data.size()));
            if (s != NATS_OK) {
                noteFailure("publish", lastError(s));
                out.unavailable = true;
                return out;
            }
            MsgPtr msg(raw);
            const std::string off_s = std::to_string(offset);
            const std::string time_s = std::to_string(wallMs());
            const std::string expect = std::to_string(fresh ? 0 : slot->top.seq);
            natsMsgHeader_Set(raw, kHdrEpoch, epoch.c_str());
            natsMsgHeader_Set(raw, kHdrOffset, off_s.c_str());
            natsMsgHeader_Set(raw, kHdrTime, time_s.c_str());
            // The optimistic lock: refused if the channel's last message is not the one we
            // numbered from (0: the channel has no message).
            natsMsgHeader_Set(raw, "Nats-Expected-Last-Subject-Sequence", expect.c_str());
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MaxWait = static_cast<int64_t>(opts_.timeout_ms);
            if (!msg_id.empty()) {
                po.MsgId = msg_id.c_str();
            }
            jsPubAck* ack = nullptr;
            jsErrCode ec = static_cast<jsErrCode>(0);
            s = js_PublishMsg(&ack, js_, raw, &po, &ec);
            if (s == NATS_OK && ack != nullptr) {
                const uint64_t seq = ack->Sequence;
                const bool dup = ack->Duplicate;
                jsPubAck_Destroy(ack);
                if (!dup) {
                    slot->top = Top{true, epoch, offset, seq};
                    out.pos = StreamPos{epoch, offset};
                    return out;
                }
                // Deduplicated: the first publication's position, from the stream.
                out.duplicate = true;
                MsgPtr first = getBySeq(streamOf(name), seq);
                if (first) {
                    out.pos = StreamPos{std::string(header(first.get(), kHdrEpoch)),
                                        numberHeader(first.get(), kHdrOffset)};
                } else if (MsgPtr next = nextOf(streamOf(name), subject, seq + 1)) {
                    // It left the history; offsets are contiguous, so it is the one before
                    // the channel's next message.
                    out.pos = StreamPos{std::string(header(next.get(), kHdrEpoch)),
                                        numberHeader(next.get(), kHdrOffset) - 1};
                } else {
                    out.pos = StreamPos{slot->top.epoch, slot->top.offset};
                }
                return out;
            }
            if (ack != nullptr) {
                jsPubAck_Destroy(ack);
            }
            if (ec == JSStreamWrongLastSequenceErr) {
                slot->known = false;  // another node published first: number from its message
                continue;
            }
            if (s == NATS_NO_RESPONDERS || ec == JSStreamNotFoundErr) {
                // The stream is gone (NATS restarted without its store): make it again. The
                // channel starts a new epoch, which subscribers are told about.
                forgetStreams();
                slot->known = false;
                if (!ensureStream(name, ns)) {
                    out.unavailable = true;
                    return out;
                }
                continue;
            }
            noteFailure("publish", lastError(s));
            out.unavailable = true;
            return out;
        }
        noteFailure("publish", "no attempt got in before broker.nats_timeout");
        out.unavailable = true;
        return out;
    }

    RecoverResult history(std::string_view channel, const NamespaceOptions& ns,
                          const std::optional<StreamPos>& since, size_t limit,
                          uint64_t /*now_ms*/) override {
        RecoverResult out;
        const std::string name(channel);
        if (!available() || !ensureStream(name, ns)) {
            out.unavailable = true;
            return out;
        }
        auto top = lastOf(name);
        if (!top) {
            out.unavailable = true;
            return out;
        }
        return recover(name, ns, *top, since, limit, true);
    }

    void presenceAdd(std::string_view channel, const NamespaceOptions& ns,
                     std::shared_ptr<const ClientInfo> who) override {
        if (!ns.presence && !ns.join_leave) {
            return;
        }
        std::string key = presenceKey(channel, tag_, who->client_id);
        std::string value = redis::encodePresence(ns.join_leave, tag_, *who);
        bool fresh = false;
        {
            std::lock_guard lock(owned_mu_);
            auto [it, inserted] = owned_.try_emplace(key);
            fresh = inserted;
            it->second = Owned{std::string(channel), value, ns.join_leave};
        }
        post([this, key = std::move(key), value = std::move(value), name = std::string(channel),
              event = fresh && ns.join_leave] {
            if (!up_) {
                return;  // re-added from owned_ once NATS is back
            }
            if (putPresence(key, value) && event) {
                sendEvent(name, 'j', value);
            }
        });
    }

    void presenceRemove(std::string_view channel, const NamespaceOptions& /*ns*/,
                        std::string_view client_id) override {
        std::string key = presenceKey(channel, tag_, client_id);
        Owned o;
        {
            std::lock_guard lock(owned_mu_);
            auto it = owned_.find(key);
            if (it == owned_.end()) {
                return;  // never added (a namespace without presence)
            }
            o = std::move(it->second);
            owned_.erase(it);
        }
        post([this, key = std::move(key), o = std::move(o)] {
            if (!up_) {
                return;  // not re-added: owned_ no longer has it (reaped if this node is gone)
            }
            if (purgeKey(bucketStream("presence"), "$KV." + bucket("presence") + "." + key) &&
                o.join_leave) {
                sendEvent(o.channel, 'l', o.value);
            }
        });
    }

    std::vector<std::shared_ptr<const ClientInfo>> presence(std::string_view channel) override {
        std::vector<std::shared_ptr<const ClientInfo>> out;
        if (!available() || kv_presence_ == nullptr) {
            return out;
        }
        watchKeys(kv_presence_, encodeToken(channel) + ".*.*",
                  [&](std::string_view /*key*/, std::string_view value) {
                      if (auto who = redis::decodePresence(value)) {
                          out.push_back(std::move(who));
                      }
                  });
        return out;
    }

    std::vector<broker::ChannelSummary> channels() override {
        std::vector<broker::ChannelSummary> out;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (const auto& [name, c] : sh->chans) {
                if (c.loops != 0) {
                    broker::ChannelSummary s;
                    s.channel = name;
                    s.loops = static_cast<size_t>(__builtin_popcountll(c.loops));
                    out.push_back(std::move(s));
                }
            }
        }
        if (!available()) {
            return out;
        }
        std::unordered_map<std::string, bool> exists;  // by stream: see catchUpAll
        for (auto& s : out) {
            auto [it, fresh] = exists.try_emplace(streamOf(s.channel), false);
            if (fresh) {
                it->second = streamExists(it->first);
            }
            if (!it->second) {
                continue;
            }
            auto top = lastOf(s.channel);
            if (!top || !top->exists) {
                continue;
            }
            s.top = StreamPos{top->epoch, top->offset};
            // Kept publications: from the channel's first message of this epoch to the last.
            MsgPtr first = nextOf(streamOf(s.channel), subjectOf('m', s.channel), 1);
            if (first && header(first.get(), kHdrEpoch) == top->epoch) {
                s.history =
                    top->offset - std::max<uint64_t>(numberHeader(first.get(), kHdrOffset), 1) + 1;
            }
            s.presence = presence(s.channel).size();
        }
        return out;
    }

    size_t channelCount() override {
        size_t n = 0;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (const auto& [name, c] : sh->chans) {
                n += c.loops != 0 ? 1 : 0;
            }
        }
        return n;
    }

    void sweep(uint64_t /*now_ms*/) override {
        // JetStream trims history and expires session records; here only this node's cache
        // of channels it published to is cut back.
        const uint64_t now = clockMs(CLOCK_MONOTONIC);
        std::lock_guard lock(slots_mu_);
        for (auto it = slots_.begin(); it != slots_.end();) {
            if (now - it->second->used_ms > 60'000 && it->second.use_count() == 1) {
                it = slots_.erase(it);
            } else {
                ++it;
            }
        }
    }

    bool available() const override { return available_.load(std::memory_order_acquire); }

    broker::EngineStatus status() override {
        std::lock_guard lock(status_mu_);
        broker::EngineStatus s = status_;
        s.available = available();
        return s;
    }

    void heartbeat(uint64_t connections) override {
        connections_.store(connections, std::memory_order_relaxed);
    }

    std::string_view nodeTag() const override { return tag_; }
    bool sharesSessions() const override { return true; }

    void saveSession(std::string_view id, const broker::SessionRecord& rec, bool take) override {
        const uint64_t ttl =
            std::min<uint64_t>(std::max<uint64_t>(rec.ttl_ms, 1000), kSessionBucketTtlMs);
        post([this, key = encodeToken(id), value = encodeSession(rec, wallMs() + ttl),
              holder = rec.holder, take] { writeSession(key, value, holder, take); });
    }

    std::optional<broker::SessionRecord> loadSession(std::string_view id,
                                                     bool* unavailable) override {
        if (!available() || kv_sessions_ == nullptr) {
            *unavailable = true;
            return std::nullopt;
        }
        kvEntry* e = nullptr;
        const natsStatus s = kvStore_Get(&e, kv_sessions_, encodeToken(id).c_str());
        if (s == NATS_NOT_FOUND) {
            return std::nullopt;
        }
        if (s != NATS_OK) {
            noteFailure("session lookup", lastError(s));
            *unavailable = true;
            return std::nullopt;
        }
        auto stored = decodeSession(std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                                     static_cast<size_t>(kvEntry_ValueLen(e))));
        kvEntry_Destroy(e);
        if (!stored || stored->expires_ms <= wallMs()) {
            return std::nullopt;
        }
        return std::move(stored->rec);
    }

    void removeSession(std::string_view id) override {
        post([this, key = encodeToken(id)] {
            session_revs_.erase(key);
            if (up_) {
                purgeKey(bucketStream("sessions"), "$KV." + bucket("sessions") + "." + key);
            }
        });
    }

    void sendControl(std::string_view node, std::string message) override {
        if (nc_ == nullptr) {
            return;
        }
        const std::string subject =
            node.empty() ? opts_.prefix + ".ctl" : opts_.prefix + ".ctl." + std::string(node);
        natsConnection_Publish(nc_, subject.c_str(), message.data(),
                               static_cast<int>(message.size()));
    }

private:
    // One channel this node has local subscribers in.
    struct Chan {
        uint64_t loops = 0;               // a bit per server loop with local subscribers
        natsSubscription* sub = nullptr;  // on the channel's republish subject
        bool confirmed = false;           // a flush after the SUB came back (reset on a loss)
        StreamPos last;                   // the last publication handed to the loops
        // Before the first one: the first subscribe's snapshot, where catching up starts from
        // if the link drops before anything was handed over.
        // {"", 0}: the channel had no message then, so every one of its first epoch is owed.
        std::optional<StreamPos> floor;
        // Where a hole is measured from: the last handed over, else the first snapshot.
        std::optional<StreamPos> from() const {
            return last.epoch.empty() ? floor : std::optional<StreamPos>(last);
        }
    };
    struct Shard {
        std::mutex mu;
        std::unordered_map<std::string, Chan, StringHash, std::equal_to<>> chans;
    };
    // What this node knows of a channel it publishes to: numbering from it saves a read per
    // publish; a refusal (another node published) makes it read again.
    struct PubSlot {
        std::mutex mu;
        bool known = false;
        Top top;
        uint64_t used_ms = 0;
    };
    // A presence entry this node added: re-added after a reconnect (another node may have
    // reaped it while this one was cut off).
    struct Owned {
        std::string channel;
        std::string value;
        bool join_leave = false;
    };

    // ---- names ----

    static std::string_view namespaceOf(std::string_view channel) {
        const size_t colon = channel.find(':');
        return colon == std::string_view::npos ? std::string_view() : channel.substr(0, colon);
    }
    // "<prefix>.<kind>.n<hex ns>.<channel token>": 'm' is stored, 'r' is republished.
    std::string subjectOf(char kind, std::string_view channel) const {
        std::string s = opts_.prefix;
        s.push_back('.');
        s.push_back(kind);
        s.append(".n");
        s.append(hexName(namespaceOf(channel)));
        s.push_back('.');
        s.append(encodeToken(channel));
        return s;
    }
    std::string streamOf(std::string_view channel) const {
        return opts_.prefix + "_n" + hexName(namespaceOf(channel));
    }
    std::string bucket(std::string_view what) const {
        return opts_.prefix + "_" + std::string(what);
    }
    std::string bucketStream(std::string_view what) const { return "KV_" + bucket(what); }
    static std::string presenceKey(std::string_view channel, std::string_view node,
                                   std::string_view client_id) {
        return encodeToken(channel) + "." + std::string(node) + "." + encodeToken(client_id);
    }
    static std::string newEpoch() { return "e_" + broker::randomHex(6); }

    Shard& shardFor(std::string_view channel) { return *shards_[StringHash{}(channel) % kShards]; }

    // The channel's entry, created with its republish subscription (under the shard lock).
    Chan& chanLocked(Shard& sh, std::string_view channel) {
        auto it = sh.chans.find(channel);
        if (it == sh.chans.end()) {
            it = sh.chans.emplace(std::string(channel), Chan{}).first;
        }
        Chan& c = it->second;
        if (c.sub == nullptr && nc_ != nullptr) {
            const std::string subject = subjectOf('r', channel);
            const natsStatus s = natsConnection_Subscribe(&c.sub, nc_, subject.c_str(),
                                                          &NatsEngine::onMessage, link_);
            if (s != NATS_OK) {
                c.sub = nullptr;  // subscribe() answers unavailable (its flush fails too)
                noteFailure("subscribe", lastError(s));
            }
        }
        return c;
    }

    std::shared_ptr<PubSlot> slotFor(const std::string& name) {
        std::lock_guard lock(slots_mu_);
        auto& s = slots_[name];
        if (!s) {
            s = std::make_shared<PubSlot>();
        }
        s->used_ms = clockMs(CLOCK_MONOTONIC);
        return s;
    }

    // ---- JetStream calls ----

    // The namespace's stream exists with these options (cached per namespace). The stream
    // keeps history_size messages per channel (at least 1: the last holds the position) for
    // at least a day, deduplicates within the idempotency window and republishes what it
    // stores, in order, to the 'r' subjects.
    bool ensureStream(const std::string& channel, const NamespaceOptions& ns) {
        const std::string stream = streamOf(channel);
        const int64_t per_subject = static_cast<int64_t>(std::max<size_t>(1, ns.history_size));
        const uint64_t max_age_ms = std::max(ns.history_ttl_ms, kIdleStreamTtlMs);
        const uint64_t dup_ms =
            std::min<uint64_t>(std::max<uint64_t>(ns.idempotency_window_ms, 1000), max_age_ms);
        const std::string sig = std::to_string(per_subject) + "/" + std::to_string(max_age_ms) +
                                "/" + std::to_string(dup_ms);
        {
            std::lock_guard lock(streams_mu_);
            auto it = streams_.find(stream);
            if (it != streams_.end() && it->second == sig) {
                return true;
            }
        }
        const std::string ns_token = "n" + hexName(namespaceOf(channel));
        const std::string subjects = opts_.prefix + ".m." + ns_token + ".*";
        const std::string dest = opts_.prefix + ".r." + ns_token + ".{{wildcard(1)}}";
        const char* subject_list[] = {subjects.c_str()};
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = stream.c_str();
        cfg.Subjects = subject_list;
        cfg.SubjectsLen = 1;
        cfg.MaxMsgsPerSubject = per_subject;
        cfg.MaxAge = static_cast<int64_t>(max_age_ms) * 1'000'000;  // nanoseconds
        cfg.Duplicates = static_cast<int64_t>(dup_ms) * 1'000'000;
        cfg.Storage = opts_.memory_storage ? js_MemoryStorage : js_FileStorage;
        cfg.AllowDirect = true;
        jsRePublish rp;
        jsRePublish_Init(&rp);
        rp.Source = subjects.c_str();
        rp.Destination = dest.c_str();
        cfg.RePublish = &rp;
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        jsErrCode ec = static_cast<jsErrCode>(0);
        jsStreamInfo* si = nullptr;
        natsStatus s = js_AddStream(&si, js_, &cfg, &jo, &ec);
        if (s != NATS_OK && ec == JSStreamNameExistErr) {
            // Made earlier with other options (a config change): take the new ones.
            ec = static_cast<jsErrCode>(0);
            s = js_UpdateStream(&si, js_, &cfg, &jo, &ec);
        }
        if (si != nullptr) {
            jsStreamInfo_Destroy(si);
        }
        if (s != NATS_OK) {
            noteFailure("stream setup", "stream " + stream + ": " + lastError(s));
            return false;
        }
        std::lock_guard lock(streams_mu_);
        streams_[stream] = sig;
        return true;
    }

    // Asked of the JetStream API, which answers "not found" at once (a direct get on a missing
    // stream only times out).
    bool streamExists(const std::string& stream) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        jsStreamInfo* si = nullptr;
        jsErrCode ec = static_cast<jsErrCode>(0);
        const natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), &jo, &ec);
        if (si != nullptr) {
            jsStreamInfo_Destroy(si);
        }
        return s == NATS_OK;
    }

    // The channel's stream is behind a position that was handed out (`seen` > top.offset in
    // top's epoch): NATS lost its tail or was restored from an older store, so numbering on
    // from its last message would give offsets twice. A marker message with a new epoch and
    // offset 0 (no data; readers skip it) becomes the channel's last message instead: the next
    // publication starts that epoch, live subscribers see the change (gap:true) and old
    // positions answer recovered:false. Refused if the channel moved meanwhile (another node
    // fenced it first).
    void fence(const std::string& name, const Top& top, uint64_t seen) {
        natsMsg* raw = nullptr;
        const std::string subject = subjectOf('m', name);
        if (natsMsg_Create(&raw, subject.c_str(), nullptr, nullptr, 0) != NATS_OK) {
            return;
        }
        MsgPtr msg(raw);
        const std::string epoch = newEpoch();
        const std::string expect = std::to_string(top.seq);
        natsMsgHeader_Set(raw, kHdrEpoch, epoch.c_str());
        natsMsgHeader_Set(raw, kHdrOffset, "0");
        natsMsgHeader_Set(raw, "Nats-Expected-Last-Subject-Sequence", expect.c_str());
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = static_cast<int64_t>(opts_.timeout_ms);
        jsPubAck* ack = nullptr;
        jsErrCode ec = static_cast<jsErrCode>(0);
        const natsStatus s = js_PublishMsg(&ack, js_, raw, &po, &ec);
        if (ack != nullptr) {
            jsPubAck_Destroy(ack);
        }
        if (s == NATS_OK) {
            SB_WARN(
                "nats engine: channel %s: its stream ends at offset %llu of epoch %s but offset "
                "%llu was handed out (NATS lost messages or was restored from an older store): "
                "starting epoch %s",
                name.c_str(), static_cast<unsigned long long>(top.offset), top.epoch.c_str(),
                static_cast<unsigned long long>(seen), epoch.c_str());
        }
    }

    void forgetStreams() {
        std::lock_guard lock(streams_mu_);
        streams_.clear();
    }

    uint64_t numberHeader(natsMsg* m, const char* key) {
        uint64_t v = 0;
        redis::parseNumber(header(m, key), &v);
        return v;
    }

    // Direct gets (the stream allows them): a message by sequence, the first of a subject at or
    // after a sequence, the last of a subject. Null if there is none or NATS failed (`*failed`).
    MsgPtr directGet(const std::string& stream, const jsDirectGetMsgOptions& o, bool* failed) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        natsMsg* m = nullptr;
        auto dg = o;
        const natsStatus s = js_DirectGetMsg(&m, js_, stream.c_str(), &jo, &dg);
        if (s == NATS_OK) {
            return MsgPtr(m);
        }
        if (s != NATS_NOT_FOUND && failed != nullptr) {
            *failed = true;
            noteFailure("read", lastError(s));
        }
        return nullptr;
    }
    MsgPtr getBySeq(const std::string& stream, uint64_t seq) {
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.Sequence = seq;
        return directGet(stream, o, nullptr);
    }
    MsgPtr nextOf(const std::string& stream, const std::string& subject, uint64_t seq,
                  bool* failed = nullptr) {
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.Sequence = seq;
        o.NextBySubject = subject.c_str();
        return directGet(stream, o, failed);
    }

    // The channel's last message, or nullopt if NATS could not answer.
    std::optional<Top> lastOf(const std::string& channel) {
        const std::string subject = subjectOf('m', channel);
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.LastBySubject = subject.c_str();
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        natsMsg* m = nullptr;
        const natsStatus s = js_DirectGetMsg(&m, js_, streamOf(channel).c_str(), &jo, &o);
        if (s == NATS_NOT_FOUND || s == NATS_NO_RESPONDERS) {
            return Top{};  // no message (or no stream yet): the channel has no position
        }
        if (s != NATS_OK) {
            noteFailure("read", lastError(s));
            return std::nullopt;
        }
        MsgPtr msg(m);
        return Top{true, std::string(header(m, kHdrEpoch)), numberHeader(m, kHdrOffset),
                   natsMsg_GetSequence(m)};
    }

    PubPtr toPublication(const std::string& channel, natsMsg* m) {
        auto p = std::make_shared<Publication>();
        p->channel = channel;
        p->epoch = std::string(header(m, kHdrEpoch));
        p->offset = numberHeader(m, kHdrOffset);
        p->time_ms = toMonotonic(numberHeader(m, kHdrTime));
        p->data.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
        if (p->epoch.empty() || p->offset == 0) {
            return nullptr;  // not one of ours
        }
        return p;
    }

    // Appends the publications of `channel` with offsets from..to (to <= anchor's), in order,
    // at most `limit` (0 = all). The channel's messages of one epoch have contiguous offsets in
    // increasing stream sequence, so the first one is found by a binary search on sequence
    // (messages of an older epoch sort first) and the rest by walking forward. False if NATS
    // failed.
    bool readRange(const std::string& channel, const Top& anchor, uint64_t from, uint64_t to,
                   size_t limit, std::vector<PubPtr>* out) {
        if (from > to || !anchor.exists) {
            return true;
        }
        const std::string stream = streamOf(channel);
        const std::string subject = subjectOf('m', channel);
        auto key = [&](natsMsg* m) {
            return header(m, kHdrEpoch) == anchor.epoch ? numberHeader(m, kHdrOffset) : 0;
        };
        bool failed = false;
        // Offset `from` is at sequence anchor.seq - (anchor.offset - from) at the latest; with
        // one busy channel in the stream, exactly there.
        const uint64_t behind = anchor.offset - from;
        uint64_t hi = anchor.seq > behind ? anchor.seq - behind : 1;
        MsgPtr first = nextOf(stream, subject, hi, &failed);
        if (failed) {
            return false;
        }
        if (!first || key(first.get()) != from) {
            // Binary search: the first message with key >= from.
            uint64_t lo = 1;
            first.reset();
            while (lo <= hi) {
                const uint64_t mid = lo + (hi - lo) / 2;
                MsgPtr m = nextOf(stream, subject, mid, &failed);
                if (failed) {
                    return false;
                }
                if (!m) {
                    break;  // trimmed under us: nothing at or after mid
                }
                if (key(m.get()) >= from) {
                    hi = mid - 1;
                    first = std::move(m);
                } else {
                    lo = natsMsg_GetSequence(m.get()) + 1;
                }
                if (mid == 0) {
                    break;
                }
            }
            if (!first) {
                return true;  // nothing kept from there on
            }
        }
        uint64_t prev = 0;
        MsgPtr cur = std::move(first);
        while (cur) {
            const uint64_t k = key(cur.get());
            if (k == 0 || k <= prev || k > to) {
                break;
            }
            if (auto p = toPublication(channel, cur.get())) {
                out->push_back(std::move(p));
            }
            prev = k;
            if (k == to || (limit != 0 && out->size() >= limit)) {
                break;
            }
            cur = nextOf(stream, subject, natsMsg_GetSequence(cur.get()) + 1, &failed);
            if (failed) {
                return false;
            }
        }
        return true;
    }

    // A snapshot as the Engine contract wants it (see broker::Engine::subscribe/history).
    RecoverResult recover(const std::string& name, const NamespaceOptions& ns, const Top& top,
                          const std::optional<StreamPos>& since, size_t limit, bool is_history) {
        RecoverResult out;
        out.top = StreamPos{top.epoch, top.offset};
        const uint64_t keep = ns.history_size;
        const uint64_t oldest_kept = top.offset >= keep ? top.offset - keep + 1 : 1;
        auto read = [&](uint64_t from) {
            if (keep == 0) {
                return true;
            }
            std::vector<PubPtr> pubs;
            if (!readRange(name, top, std::max(from, oldest_kept), top.offset, limit, &pubs)) {
                return false;
            }
            const uint64_t now = toMonotonic(wallMs());
            for (auto& p : pubs) {
                if (ns.history_ttl_ms != 0 && p->time_ms + ns.history_ttl_ms <= now) {
                    continue;  // past the namespace's TTL: as good as gone
                }
                out.pubs.push_back(std::move(p));
            }
            return true;
        };
        if (!since) {
            if (is_history && top.exists) {
                const uint64_t from = limit != 0 && top.offset > limit ? top.offset - limit + 1 : 1;
                // Newest `limit`: read from there without a count limit.
                const size_t saved = limit;
                limit = 0;
                if (!read(from)) {
                    return RecoverResult{.unavailable = true};
                }
                limit = saved;
            }
            return out;
        }
        // An empty position ("nothing seen yet") matches the current epoch from its start: a
        // channel has no epoch before its first publication on this engine.
        const bool from_start = since->epoch.empty() && since->offset == 0;
        if (!top.exists) {
            out.recovered = from_start;
            return out;
        }
        if (!from_start && since->epoch != top.epoch) {
            return out;
        }
        if (!from_start && since->offset > top.offset) {
            // The client saw more than the stream has: it went back (see fence).
            fence(name, top, since->offset);
            if (auto fenced = lastOf(name)) {
                out.top = StreamPos{fenced->epoch, fenced->offset};
            }
            return out;
        }
        if (since->offset >= top.offset) {
            out.recovered = true;
            return out;
        }
        if (!read(since->offset + 1)) {
            return RecoverResult{.unavailable = true};
        }
        out.recovered = !out.pubs.empty() && out.pubs.front()->offset == since->offset + 1 &&
                        (is_history || out.pubs.back()->offset == top.offset);
        return out;
    }

    // ---- key-value buckets ----

    bool putPresence(const std::string& key, const std::string& value) {
        uint64_t rev = 0;
        const natsStatus s = kvStore_Put(&rev, kv_presence_, key.c_str(), value.data(),
                                         static_cast<int>(value.size()));
        if (s != NATS_OK) {
            noteFailure("presence", lastError(s));
            return false;
        }
        return true;
    }

    // Removes a key's messages outright (a KV delete would leave a marker per key forever).
    bool purgeKey(const std::string& stream, const std::string& subject) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = static_cast<int64_t>(opts_.timeout_ms);
        jo.Stream.Purge.Subject = subject.c_str();
        jsErrCode ec = static_cast<jsErrCode>(0);
        const natsStatus s = js_PurgeStream(js_, stream.c_str(), &jo, &ec);
        if (s != NATS_OK) {
            noteFailure("purge", lastError(s));
            return false;
        }
        return true;
    }

    // Calls `fn(key, value)` for every live key of `kv` matching `filter` (a watcher that stops
    // after the initial values). False if NATS failed.
    template <class Fn>
    bool watchKeys(kvStore* kv, const std::string& filter, Fn&& fn) {
        kvWatchOptions wo;
        kvWatchOptions_Init(&wo);
        wo.IgnoreDeletes = true;
        wo.Timeout = static_cast<int64_t>(opts_.timeout_ms);
        kvWatcher* w = nullptr;
        natsStatus s = kvStore_Watch(&w, kv, filter.c_str(), &wo);
        if (s != NATS_OK) {
            noteFailure("key listing", lastError(s));
            return false;
        }
        bool ok = true;
        for (;;) {
            kvEntry* e = nullptr;
            s = kvWatcher_Next(&e, w, static_cast<int64_t>(opts_.timeout_ms));
            if (s != NATS_OK) {
                noteFailure("key listing", lastError(s));
                ok = false;
                break;
            }
            if (e == nullptr) {
                break;  // the initial values are done
            }
            if (kvEntry_Operation(e) == kvOp_Put) {
                fn(std::string_view(kvEntry_Key(e)),
                   std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                    static_cast<size_t>(kvEntry_ValueLen(e))));
            }
            kvEntry_Destroy(e);
        }
        kvWatcher_Destroy(w);
        return ok;
    }

    // Worker: stores a session record. `take`: whoever held it; otherwise only if the stored
    // holder is still `holder` (a node must not overwrite a session that moved away), by
    // compare-and-set on the key's revision.
    void writeSession(const std::string& key, const std::string& value, const std::string& holder,
                      bool take) {
        if (!up_ || kv_sessions_ == nullptr) {
            return;  // the holder rewrites it periodically; a write lost to an outage recurs
        }
        const int len = static_cast<int>(value.size());
        if (session_revs_.size() > kMaxSessionRevs) {
            session_revs_.clear();  // a cache: the slow path below is always right
        }
        uint64_t rev = 0;
        if (take) {
            if (kvStore_Put(&rev, kv_sessions_, key.c_str(), value.data(), len) == NATS_OK) {
                session_revs_[key] = {rev, holder};
            }
            return;
        }
        // Fast path: this node wrote the record last, for the same holder, at `rev`; if nobody
        // wrote since, an update at that revision keeps the fence in one round trip.
        if (auto it = session_revs_.find(key);
            it != session_revs_.end() && it->second.second == holder) {
            if (kvStore_Update(&rev, kv_sessions_, key.c_str(), value.data(), len,
                               it->second.first) == NATS_OK) {
                it->second.first = rev;
                return;
            }
            session_revs_.erase(it);
        }
        for (int attempt = 0; attempt < 3; ++attempt) {
            kvEntry* e = nullptr;
            natsStatus s = kvStore_Get(&e, kv_sessions_, key.c_str());
            if (s == NATS_NOT_FOUND) {
                s = kvStore_Create(&rev, kv_sessions_, key.c_str(), value.data(), len);
            } else if (s == NATS_OK) {
                auto stored =
                    decodeSession(std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                                   static_cast<size_t>(kvEntry_ValueLen(e))));
                const uint64_t last = kvEntry_Revision(e);
                kvEntry_Destroy(e);
                if (stored && stored->rec.holder != holder) {
                    return;  // taken over meanwhile
                }
                s = kvStore_Update(&rev, kv_sessions_, key.c_str(), value.data(), len, last);
            } else {
                return;
            }
            if (s == NATS_OK) {
                session_revs_[key] = {rev, holder};
                return;
            }
            // Someone wrote in between: read again and decide again.
        }
    }

    void sendEvent(const std::string& channel, char kind, const std::string& value) {
        natsMsg* raw = nullptr;
        const std::string subject = subjectOf('r', channel);
        if (natsMsg_Create(&raw, subject.c_str(), nullptr, value.data(),
                           static_cast<int>(value.size())) != NATS_OK) {
            return;
        }
        MsgPtr msg(raw);
        const char k[2] = {kind, '\0'};
        natsMsgHeader_Set(raw, kHdrKind, k);
        natsConnection_PublishMsg(nc_, raw);
    }

    // ---- callbacks (libnats threads) ----

    static int64_t reconnectDelay(natsConnection* /*nc*/, int attempts, void* closure) {
        auto* link = static_cast<Link*>(closure);
        (void)link;
        // Exponential from 100 ms to 5 s with full jitter: nodes that lost the same server do
        // not come back in lockstep.
        uint64_t cap = kMinBackoffMs << std::min(attempts, 6);
        cap = std::min(cap, kMaxBackoffMs);
        thread_local std::mt19937_64 rng{std::random_device{}()};
        std::uniform_int_distribution<uint64_t> jitter(cap / 2, cap);
        return static_cast<int64_t>(jitter(rng));
    }

    static void onConnected(natsConnection* /*nc*/, void* closure) {
        auto* link = static_cast<Link*>(closure);
        std::lock_guard lock(link->mu);
        if (link->engine != nullptr) {
            link->engine->post([e = link->engine] { e->onUp(); });
        }
    }

    static void onDisconnected(natsConnection* /*nc*/, void* closure) {
        auto* link = static_cast<Link*>(closure);
        std::lock_guard lock(link->mu);
        if (link->engine != nullptr) {
            link->engine->onDown("disconnected from NATS");
        }
    }

    static void onAsyncError(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsStatus err,
                             void* closure) {
        auto* link = static_cast<Link*>(closure);
        std::lock_guard lock(link->mu);
        if (link->engine != nullptr) {
            // A slow consumer (this node's delivery thread fell behind) drops messages; the
            // next one of the channel shows the hole and it is read from the stream.
            link->engine->noteFailure("nats", natsStatus_GetText(err));
        }
    }

    static void onMessage(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* m,
                          void* closure) {
        MsgPtr msg(m);
        auto* link = static_cast<Link*>(closure);
        std::lock_guard lock(link->mu);
        if (link->engine != nullptr) {
            link->engine->dispatch(m);
        }
    }

    void onDown(std::string_view why) {
        available_.store(false, std::memory_order_release);
        up_ = false;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (auto& [name, c] : sh->chans) {
                c.confirmed = false;  // libnats sends the SUBs again on reconnect
            }
        }
        setError(std::string(why));
        SB_WARN(
            "nats engine: %.*s (%s): publishes fail with `unavailable` until it is back; "
            "reconnecting",
            static_cast<int>(why.size()), why.data(), opts_.url.c_str());
    }

    // Delivery thread: a republished publication, a join/leave event, or a control message.
    void dispatch(natsMsg* m) {
        std::string_view subject = natsMsg_GetSubject(m);
        broker::LoopSink* sink = sink_.load(std::memory_order_acquire);
        if (sink == nullptr) {
            return;
        }
        const std::string r_prefix = opts_.prefix + ".r.";
        if (!subject.starts_with(r_prefix)) {
            sink->control(std::string_view(natsMsg_GetData(m),
                                           static_cast<size_t>(natsMsg_GetDataLength(m))));
            return;
        }
        const size_t dot = subject.rfind('.');
        auto name = decodeToken(subject.substr(dot + 1));
        if (!name) {
            return;
        }
        const std::string_view kind = header(m, kHdrKind);
        if (!kind.empty()) {
            Event ev;
            ev.kind = kind == "j" ? EventKind::kJoin : EventKind::kLeave;
            ev.channel = *name;
            ev.who = redis::decodePresence(std::string_view(
                natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))));
            if (!ev.who) {
                return;
            }
            Shard& sh = shardFor(*name);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(*name);
            if (it != sh.chans.end()) {
                deliverLocked(it->second, std::move(ev));
            }
            return;
        }
        PubPtr p = toPublication(*name, m);
        if (!p) {
            return;
        }
        const uint64_t seq = numberHeader(m, "Nats-Sequence");
        noteTop(*name, Top{true, p->epoch, p->offset, seq});
        std::optional<StreamPos> last;
        {
            Shard& sh = shardFor(*name);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(*name);
            if (it == sh.chans.end()) {
                return;
            }
            last = it->second.from();
        }
        // A hole (this node's link dropped messages, or was down): read what is missing from
        // the stream first. Only this thread delivers, so nothing overtakes meanwhile.
        const bool from_start = last && last->epoch.empty();
        if (last && (from_start || last->epoch == p->epoch) && p->offset > last->offset + 1) {
            std::vector<PubPtr> missed;
            readRange(*name, Top{true, p->epoch, p->offset, seq}, last->offset + 1, p->offset - 1,
                      0, &missed);
            Shard& sh = shardFor(*name);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(*name);
            if (it == sh.chans.end()) {
                return;
            }
            for (PubPtr& q : missed) {
                deliverLocked(it->second,
                              Event{.kind = EventKind::kPublication, .pub = std::move(q)});
            }
        }
        Shard& sh = shardFor(*name);
        std::lock_guard lock(sh.mu);
        auto it = sh.chans.find(*name);
        if (it != sh.chans.end()) {
            deliverLocked(it->second, Event{.kind = EventKind::kPublication, .pub = std::move(p)});
        }
    }

    // Keeps the publish cache warm with what other nodes published.
    void noteTop(const std::string& name, const Top& top) {
        std::shared_ptr<PubSlot> slot;
        {
            std::lock_guard lock(slots_mu_);
            auto it = slots_.find(name);
            if (it == slots_.end()) {
                return;
            }
            slot = it->second;
        }
        std::unique_lock lock(slot->mu, std::try_to_lock);
        if (lock.owns_lock() && slot->known && top.seq > slot->top.seq) {
            slot->top = top;
        }
    }

    // Hands `ev` to every loop interested in `c` (under the channel's shard lock). A
    // publication at or below the last one handed over is dropped: each once, in order.
    void deliverLocked(Chan& c, Event ev) {
        if (ev.kind == EventKind::kPublication) {
            if (ev.pub->epoch == c.last.epoch && ev.pub->offset <= c.last.offset) {
                return;
            }
            c.last = StreamPos{ev.pub->epoch, ev.pub->offset};
        }
        handToLoops(sink_.load(std::memory_order_acquire), c.loops, std::move(ev));
    }

    // ---- worker ----

    void post(std::function<void()> job) {
        {
            std::lock_guard lock(wmu_);
            if (jobs_.size() >= kMaxJobs) {
                return;
            }
            jobs_.push_back(std::move(job));
        }
        wcv_.notify_one();
    }

    void workerLoop() {
        auto next_tick = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTickMs);
        std::unique_lock lock(wmu_);
        while (!wstop_) {
            if (jobs_.empty()) {
                wcv_.wait_until(lock, next_tick, [&] { return wstop_ || !jobs_.empty(); });
            }
            if (wstop_) {
                break;
            }
            if (!jobs_.empty()) {
                auto job = std::move(jobs_.front());
                jobs_.pop_front();
                lock.unlock();
                job();
                lock.lock();
            }
            if (std::chrono::steady_clock::now() >= next_tick) {
                next_tick = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTickMs);
                lock.unlock();
                onTick();
                lock.lock();
            }
        }
    }

    // Worker: (re)connected. Buckets, control subscriptions, catching up on the channels this
    // node subscribes, its presence entries and registration; then available.
    void onUp() {
        if (up_ || nc_ == nullptr || js_ == nullptr ||
            natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) {
            return;  // the reconnect callback or the next tick comes back here
        }
        forgetStreams();
        kvStore** slots[] = {&kv_presence_, &kv_sessions_, &kv_nodes_};
        const char* names[] = {"presence", "sessions", "nodes"};
        for (size_t i = 0; i < 3; ++i) {
            const std::string b = bucket(names[i]);
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = b.c_str();
            kc.History = 1;
            kc.StorageType = opts_.memory_storage ? js_MemoryStorage : js_FileStorage;
            if (i == 1) {
                kc.TTL = static_cast<int64_t>(kSessionBucketTtlMs) * 1'000'000;  // nanoseconds
            }
            // Made again after each reconnect (a NATS that restarted empty lost it). The first
            // handle is kept: other threads use it, and it names the bucket, not a connection.
            kvStore* kv = nullptr;
            natsStatus s = js_CreateKeyValue(&kv, js_, &kc);
            const std::string why = s != NATS_OK ? lastError(s) : std::string();
            if (s != NATS_OK) {
                // Exists with other settings (made by an older version): use it as it is.
                s = js_KeyValue(&kv, js_, b.c_str());
            }
            if (s != NATS_OK) {
                setError("JetStream is not ready (bucket " + b + "): " + why);
                return;  // the next tick tries again
            }
            if (*slots[i] == nullptr) {
                *slots[i] = kv;
            } else {
                kvStore_Destroy(kv);
            }
        }
        if (ctl_all_ == nullptr) {
            const std::string all = opts_.prefix + ".ctl";
            const std::string mine = all + "." + tag_;
            natsConnection_Subscribe(&ctl_all_, nc_, all.c_str(), &NatsEngine::onMessage, link_);
            natsConnection_Subscribe(&ctl_node_, nc_, mine.c_str(), &NatsEngine::onMessage, link_);
        }
        if (natsConnection_FlushTimeout(nc_, static_cast<int64_t>(opts_.timeout_ms)) != NATS_OK) {
            return;
        }
        up_ = true;
        const bool again = ever_up_;
        ever_up_ = true;
        if (again) {
            ++reconnects_;
        }
        {
            std::lock_guard lock(status_mu_);
            status_.error.clear();
            status_.reconnects = reconnects_;
        }
        readdPresence();
        node_rev_ = 0;
        onTick();
        available_.store(true, std::memory_order_release);
        SB_INFO("nats engine: connected to %s as node %s (%s)%s", opts_.url.c_str(), tag_.c_str(),
                opts_.node_name.c_str(), again ? ": catching up" : "");
        if (again) {
            catchUpAll();
        }
    }

    // After a reconnect: what each subscribed channel missed is read from its stream and handed
    // over (the delivery thread does the same on the next message; the channel's `last` keeps
    // them from being handed over twice).
    void catchUpAll() {
        std::vector<std::pair<std::string, StreamPos>> chans;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (auto& [name, c] : sh->chans) {
                if (auto from = c.from()) {
                    chans.emplace_back(name, *from);
                }
            }
        }
        std::unordered_map<std::string, bool> exists;  // by stream
        auto beat = std::chrono::steady_clock::now();
        for (const auto& [name, last] : chans) {
            // A long catch-up must not stop this node's heartbeat (the others would reap it).
            if (std::chrono::steady_clock::now() - beat >= std::chrono::milliseconds(kTickMs)) {
                onTick();
                beat = std::chrono::steady_clock::now();
            }
            // A stream that is gone (NATS came back empty) would only time out a direct get.
            auto [known, fresh] = exists.try_emplace(streamOf(name), false);
            if (fresh) {
                known->second = streamExists(known->first);
            }
            if (!known->second) {
                continue;  // its next publication shows the new epoch (gap:true)
            }
            auto top = lastOf(name);
            if (top && top->exists && top->epoch == last.epoch && top->offset < last.offset) {
                fence(name, *top, last.offset);  // the stream went back: see fence
                continue;
            }
            // {"", 0}: nothing was there at the subscribe, so all of the current epoch is owed.
            const bool from_start = last.epoch.empty();
            if (!top || !top->exists || (!from_start && top->epoch != last.epoch) ||
                top->offset <= last.offset) {
                continue;  // a new epoch shows itself with the next publication (gap:true)
            }
            std::vector<PubPtr> missed;
            if (!readRange(name, *top, last.offset + 1, top->offset, 0, &missed)) {
                continue;
            }
            Shard& sh = shardFor(name);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(name);
            if (it == sh.chans.end()) {
                continue;
            }
            for (PubPtr& p : missed) {
                deliverLocked(it->second,
                              Event{.kind = EventKind::kPublication, .pub = std::move(p)});
            }
        }
    }

    void readdPresence() {
        std::vector<std::pair<std::string, std::string>> all;
        {
            std::lock_guard lock(owned_mu_);
            for (const auto& [key, o] : owned_) {
                all.emplace_back(key, o.value);
            }
        }
        for (const auto& [key, value] : all) {
            putPresence(key, value);
        }
    }

    // Worker, every second: this node's registration, the node list, reaping the dead.
    void onTick() {
        if (!up_) {
            onUp();
            return;
        }
        if (kv_nodes_ == nullptr) {
            return;
        }
        const uint64_t now = wallMs();
        const std::string mine = encodeNode(
            NodeEntry{opts_.node_name, connections_.load(std::memory_order_relaxed), now});
        uint64_t rev = 0;
        natsStatus s = NATS_OK;
        if (node_rev_ == 0) {
            s = kvStore_Put(&rev, kv_nodes_, tag_.c_str(), mine.data(),
                            static_cast<int>(mine.size()));
        } else {
            s = kvStore_Update(&rev, kv_nodes_, tag_.c_str(), mine.data(),
                               static_cast<int>(mine.size()), node_rev_);
            if (s != NATS_OK && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED) {
                // Our key changed under us: another node presumed this one dead and reaped it.
                SB_WARN(
                    "nats engine: this node was presumed dead by the others; re-adding its "
                    "presence entries");
                readdPresence();
                s = kvStore_Put(&rev, kv_nodes_, tag_.c_str(), mine.data(),
                                static_cast<int>(mine.size()));
            }
        }
        if (s == NATS_OK) {
            node_rev_ = rev;
        }
        std::vector<broker::NodeStatus> nodes;
        std::vector<std::pair<std::string, uint64_t>> dead;
        kvWatchOptions wo;
        kvWatchOptions_Init(&wo);
        wo.IgnoreDeletes = true;
        kvWatcher* w = nullptr;
        if (kvStore_WatchAll(&w, kv_nodes_, &wo) != NATS_OK) {
            return;
        }
        for (;;) {
            kvEntry* e = nullptr;
            if (kvWatcher_Next(&e, w, static_cast<int64_t>(opts_.timeout_ms)) != NATS_OK ||
                e == nullptr) {
                break;
            }
            const std::string id = kvEntry_Key(e);
            auto n = decodeNode(std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                                 static_cast<size_t>(kvEntry_ValueLen(e))));
            const uint64_t entry_rev = kvEntry_Revision(e);
            const int64_t created_ns = kvEntry_Created(e);
            kvEntry_Destroy(e);
            if (!n) {
                // Being reaped ("reap:<node>"): retried if the reaper died at it.
                const uint64_t created_ms = static_cast<uint64_t>(created_ns / 1'000'000);
                if (now > created_ms + opts_.node_ttl_ms) {
                    dead.emplace_back(id, entry_rev);
                }
                continue;
            }
            const uint64_t age = now > n->seen_ms ? now - n->seen_ms : 0;
            if (age > opts_.node_ttl_ms && id != tag_) {
                dead.emplace_back(id, entry_rev);
                continue;
            }
            nodes.push_back(broker::NodeStatus{id, n->name, n->connections, age});
        }
        kvWatcher_Destroy(w);
        {
            std::lock_guard lock(status_mu_);
            status_.nodes = std::move(nodes);
        }
        for (const auto& [id, entry_rev] : dead) {
            reap(id, entry_rev);
        }
    }

    // Removes a dead node's presence entries (with leave events) and its registration. The
    // claim is a compare-and-set on its key, so one node does it.
    void reap(const std::string& node, uint64_t rev) {
        const std::string claim = "reap:" + tag_;
        uint64_t new_rev = 0;
        if (kvStore_Update(&new_rev, kv_nodes_, node.c_str(), claim.data(),
                           static_cast<int>(claim.size()), rev) != NATS_OK) {
            return;  // another node is at it
        }
        SB_INFO(
            "nats engine: node %s missed its heartbeats for %llu ms: removing its presence "
            "entries",
            node.c_str(), static_cast<unsigned long long>(opts_.node_ttl_ms));
        std::vector<std::pair<std::string, std::string>> entries;
        const bool listed = watchKeys(kv_presence_, "*." + node + ".*",
                                      [&](std::string_view key, std::string_view value) {
                                          entries.emplace_back(key, value);
                                      });
        for (const auto& [key, value] : entries) {
            const size_t dot = key.find('.');
            auto channel = decodeToken(std::string_view(key).substr(0, dot));
            if (!purgeKey(bucketStream("presence"), "$KV." + bucket("presence") + "." + key)) {
                continue;
            }
            if (channel && !value.empty() && value.front() == '1') {
                sendEvent(*channel, 'l', value);  // its namespace announces join/leave
            }
        }
        if (listed) {
            purgeKey(bucketStream("nodes"), "$KV." + bucket("nodes") + "." + node);
        }
    }

    void setError(std::string why) {
        std::lock_guard lock(status_mu_);
        status_.error = std::move(why);
    }

    // Logs a failed call once per second at most (an outage fails every request).
    void noteFailure(const char* what, const std::string& why) {
        const uint64_t now = clockMs(CLOCK_MONOTONIC);
        uint64_t last = last_failure_log_.load(std::memory_order_relaxed);
        if (now - last < 1000 ||
            !last_failure_log_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
            return;
        }
        SB_WARN("nats engine: %s failed: %s", what, why.c_str());
    }

    NatsOptions opts_;
    std::string tag_;
    std::string error_;
    Link* link_ = nullptr;
    natsOptions* nopts_ = nullptr;
    natsConnection* nc_ = nullptr;
    jsCtx* js_ = nullptr;
    natsSubscription* ctl_all_ = nullptr;   // worker only
    natsSubscription* ctl_node_ = nullptr;  // worker only
    kvStore* kv_presence_ = nullptr;        // written by the worker before `available`
    kvStore* kv_sessions_ = nullptr;
    kvStore* kv_nodes_ = nullptr;
    std::atomic<broker::LoopSink*> sink_{nullptr};
    std::array<std::unique_ptr<Shard>, kShards> shards_;
    std::atomic<bool> available_{false};
    std::atomic<bool> up_{false};
    std::atomic<uint64_t> connections_{0};
    std::atomic<uint64_t> last_failure_log_{0};

    mutable std::mutex status_mu_;
    broker::EngineStatus status_;  // guarded by status_mu_ (but `available`, from the atomic)

    std::mutex streams_mu_;
    std::unordered_map<std::string, std::string> streams_;  // stream → options signature

    std::mutex slots_mu_;
    std::unordered_map<std::string, std::shared_ptr<PubSlot>> slots_;

    std::mutex owned_mu_;
    std::unordered_map<std::string, Owned> owned_;  // by presence key; guarded by owned_mu_

    // Worker only.
    // Session key → (revision, holder) of this node's last write of it: see writeSession.
    std::unordered_map<std::string, std::pair<uint64_t, std::string>> session_revs_;
    bool ever_up_ = false;
    uint64_t reconnects_ = 0;
    uint64_t node_rev_ = 0;

    std::mutex wmu_;
    std::condition_variable wcv_;
    std::deque<std::function<void()>> jobs_;
    bool wstop_ = false;
    std::thread worker_;
};

}  // namespace

base::Result<std::unique_ptr<broker::Engine>> makeNatsEngine(NatsOptions options) {
    if (options.prefix.empty() ||
        options.prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-") != std::string::npos) {
        return base::fail("broker.nats_prefix must be letters, digits, '_' or '-' (e.g. \"sb\")");
    }
    if (options.node_ttl_ms < 2000) {
        return base::fail("broker.node_ttl must be at least 2s (heartbeats go every second)");
    }
    static std::once_flag once;
    std::call_once(once, [] { nats_Open(-1); });
    auto engine = std::make_unique<NatsEngine>(std::move(options));
    if (auto ok = engine->configure(); !ok) {
        return base::fail(ok.error().message);
    }
    engine->start();
    return std::unique_ptr<broker::Engine>(std::move(engine));
}

}  // namespace sb::engines::nats
