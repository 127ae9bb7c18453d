// The Redis engine (see redis_engine.h). Two halves: the Engine methods, called from any thread,
// which keep the loop-interest table and post work to the engine's own loop (waiting for the
// answer where they need one); and the engine loop, which owns every Redis connection, the
// reconnect/backoff state, the node heartbeat and the pub/sub dispatch to the server's loops.
#include "engines/redis/redis_engine.h"

#include <netdb.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "base/log.h"
#include "broker/random_id.h"
#include "engines/redis/redis_conn.h"
#include "engines/redis/scripts.h"
#include "engines/redis/wire.h"
#include "engines/shared.h"
#include "loop/event_loop.h"
#include "net/tls.h"

namespace sb::engines::redis {

namespace {

using broker::ClientInfo;
using broker::Event;
using broker::EventKind;
using broker::NamespaceOptions;
using broker::Publication;
using broker::PubPtr;
using broker::RecoverResult;
using broker::StreamPos;

// A stream without history keeps its position this long after its last publication: long enough
// that a quiet channel's subscribers keep their epoch, short enough that dead channels go.
constexpr uint64_t kIdleStreamTtlMs = 24ULL * 3600 * 1000;
constexpr uint64_t kTickMs = 1000;        // heartbeat, reaping and the reply watchdog
constexpr uint64_t kMinBackoffMs = 100;   // first retry after a loss
constexpr uint64_t kMaxBackoffMs = 5000;  // and the ceiling: a restarted Redis is found fast
constexpr size_t kShards = 16;

uint64_t replyNumber(const Reply& r) {
    if (r.type == Reply::Type::kInteger) {
        return static_cast<uint64_t>(r.integer);
    }
    uint64_t v = 0;
    parseNumber(std::string_view(r.str), &v);
    return v;
}

enum Script : uint8_t {
    kPublishScript,
    kSnapshotScript,
    kPresenceAddScript,
    kPresenceRemoveScript,
    kHeartbeatScript,
    kReapScript,
    kSaveSessionScript,
    kScriptCount
};
constexpr std::array<std::string_view, kScriptCount> kScriptBodies = {
    scripts::kPublish,   scripts::kSnapshot, scripts::kPresenceAdd, scripts::kPresenceRemove,
    scripts::kHeartbeat, scripts::kReap,     scripts::kSaveSession,
};

}  // namespace

base::Result<std::vector<std::pair<std::string, uint16_t>>> parseAddresses(std::string_view list) {
    std::vector<std::pair<std::string, uint16_t>> out;
    while (!list.empty()) {
        const size_t comma = list.find(',');
        std::string_view one = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        while (!one.empty() && one.front() == ' ') {
            one.remove_prefix(1);
        }
        while (!one.empty() && one.back() == ' ') {
            one.remove_suffix(1);
        }
        const size_t colon = one.rfind(':');
        uint16_t port = 0;
        if (colon == std::string_view::npos || colon == 0 ||
            !parseNumber(one.substr(colon + 1), &port) || port == 0) {
            return base::fail("redis address '" + std::string(one) +
                              "' is not host:port (e.g. 127.0.0.1:6379)");
        }
        std::string host(one.substr(0, colon));
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        out.emplace_back(std::move(host), port);
    }
    if (out.empty()) {
        return base::fail("broker.redis_address is empty (e.g. 127.0.0.1:6379)");
    }
    return out;
}

namespace {

class RedisEngine final : public broker::Engine {
public:
    RedisEngine(RedisOptions o, std::vector<std::pair<std::string, uint16_t>> addrs,
                std::shared_ptr<net::TlsContext> tls)
        : opts_(std::move(o)), addrs_(std::move(addrs)), tls_(std::move(tls)) {
        tag_ = broker::randomHex(4);
        if (opts_.node_name.empty()) {
            char host[256] = {};
            gethostname(host, sizeof(host) - 1);
            opts_.node_name = std::string(host) + ":" + std::to_string(getpid());
        }
        for (auto& sh : shards_) {
            sh = std::make_unique<Shard>();
        }
        subs_.assign(std::max<uint32_t>(1, opts_.subscribers), nullptr);
        status_.engine = "redis";
        status_.available = false;
        status_.error = "connecting to " + describeAddress();
        status_.node_id = tag_;
        net::StreamConn::installLoopHooks(loop_);
        retry_.self = this;
        retry_.fire = [](loop::TimerNode* n) { static_cast<Timer*>(n)->self->connectNow(); };
        tick_.self = this;
        tick_.fire = [](loop::TimerNode* n) { static_cast<Timer*>(n)->self->onTick(); };
        thread_ = std::thread([this] {
            loop_.post([this] {
                connectNow();
                loop_.timers().schedule(&tick_, kTickMs);
            });
            loop_.run();
        });
    }

    ~RedisEngine() override {
        loop_.post([this] {
            stopping_ = true;
            loop_.timers().cancel(&retry_);
            loop_.timers().cancel(&tick_);
            teardown("the engine is stopping");
            loop_.stop();
        });
        thread_.join();
    }

    // ---- broker::Engine ----

    void setSink(broker::LoopSink* sink) override { sink_.store(sink, std::memory_order_release); }

    void loopSubscribed(std::string_view channel, uint32_t loop_id) override {
        {
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            sh.chans[std::string(channel)].loops |= uint64_t{1} << loop_id;
        }
        postReconcile(channel);
    }

    void loopUnsubscribed(std::string_view channel, uint32_t loop_id) override {
        {
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            auto it = sh.chans.find(channel);
            if (it == sh.chans.end()) {
                return;
            }
            it->second.loops &= ~(uint64_t{1} << loop_id);
        }
        postReconcile(channel);
    }

    RecoverResult subscribe(std::string_view channel, const NamespaceOptions& ns, uint32_t loop_id,
                            const std::optional<StreamPos>& since, uint64_t /*now_ms*/) override {
        {
            Shard& sh = shardFor(channel);
            std::lock_guard lock(sh.mu);
            sh.chans[std::string(channel)].loops |= uint64_t{1} << loop_id;
        }
        std::string name(channel);
        auto reply = await([this, name, since](Done done) {
            if (!up_) {
                Reply r = unavailableReply();
                done(r);
                return;
            }
            reconcileNow(name);
            Shard& sh = shardFor(name);
            std::unique_lock lock(sh.mu);
            auto it = sh.chans.find(name);
            // Confirmed by Redis: every publication from now on reaches this node, so the
            // snapshot taken next has nothing fall between it and the pub/sub stream.
            auto snap = [this, name, since, done](bool ok) {
                if (!ok) {
                    Reply r = unavailableReply();
                    done(r);
                    return;
                }
                snapshot(name, since, 0, true, false, done);
            };
            if (it == sh.chans.end() || it->second.confirmed) {
                lock.unlock();
                snap(true);
                return;
            }
            it->second.waiters.push_back(std::move(snap));
        });
        return toRecover(name, ns, since, reply, false);
    }

    broker::PublishResult publish(std::string_view channel, const NamespaceOptions& ns,
                                  std::string data, std::string_view idempotency_key,
                                  uint64_t /*now_ms*/) override {
        broker::PublishResult out;
        // Everything the script needs is copied now: after a timeout the caller is gone.
        const bool has_idem = !idempotency_key.empty();
        std::vector<std::string> keys = {
            key(channel, ".m"), key(channel, ".h"),
            has_idem ? key(channel, ".i." + std::string(idempotency_key)) : key(channel, ".i"),
            opts_.prefix + "gen"};
        std::vector<std::string> args = {
            std::move(data),
            std::to_string(ns.history_size),
            std::to_string(ns.history_ttl_ms),
            std::to_string(std::max<uint64_t>(ns.idempotency_window_ms, 1)),
            newEpoch(),
            pubsubChannel(channel),
            std::to_string(kIdleStreamTtlMs),
            has_idem ? "1" : "0"};
        auto reply =
            await([this, keys = std::move(keys), args = std::move(args)](Done done) mutable {
                runScript(kPublishScript, std::move(keys), std::move(args), std::move(done));
            });
        if (!reply || reply->isError() || reply->elements.size() != 4) {
            noteFailure(reply, "publish");
            out.unavailable = true;
            return out;
        }
        out.duplicate = replyNumber(reply->elements[0]) == 0;
        out.pos.epoch = reply->elements[1].str;
        out.pos.offset = replyNumber(reply->elements[2]);
        return out;
    }

    RecoverResult history(std::string_view channel, const NamespaceOptions& ns,
                          const std::optional<StreamPos>& since, size_t limit,
                          uint64_t /*now_ms*/) override {
        std::string name(channel);
        auto reply = await([this, name, since, limit](Done done) {
            if (!up_) {
                Reply r = unavailableReply();
                done(r);
                return;
            }
            snapshot(name, since, limit, false, !since.has_value(), std::move(done));
        });
        return toRecover(name, ns, since, reply, true);
    }

    void presenceAdd(std::string_view channel, const NamespaceOptions& ns,
                     std::shared_ptr<const ClientInfo> who) override {
        if (!ns.presence && !ns.join_leave) {
            return;
        }
        std::string member = std::string(channel) + "\n" + who->client_id;
        std::string value = encodePresence(ns.join_leave, tag_, *who);
        {
            std::lock_guard lock(owned_mu_);
            owned_[member] = Owned{std::string(channel), who->client_id, value};
        }
        loop_.post([this, name = std::string(channel), cid = who->client_id,
                    value = std::move(value),
                    member = std::move(member)] { sendPresenceAdd(name, cid, value, member); });
    }

    void presenceRemove(std::string_view channel, const NamespaceOptions& /*ns*/,
                        std::string_view client_id) override {
        std::string member = std::string(channel) + "\n" + std::string(client_id);
        {
            std::lock_guard lock(owned_mu_);
            if (owned_.erase(member) == 0) {
                return;  // never added (a namespace without presence)
            }
        }
        loop_.post([this, name = std::string(channel), cid = std::string(client_id),
                    member = std::move(member)] {
            if (!up_) {
                return;  // the entry is re-added only from owned_, which no longer has it
            }
            runScript(kPresenceRemoveScript, {key(name, ".p"), nodePresenceKey(tag_)},
                      {cid, pubsubChannel(name), member}, [](Reply&) {});
        });
    }

    std::vector<std::shared_ptr<const ClientInfo>> presence(std::string_view channel) override {
        std::string k = key(channel, ".p");
        auto reply = await([this, k](Done done) { command({"HGETALL", k}, std::move(done)); });
        std::vector<std::shared_ptr<const ClientInfo>> out;
        if (!reply || reply->type != Reply::Type::kArray) {
            noteFailure(reply, "presence");
            return out;
        }
        for (size_t i = 1; i < reply->elements.size(); i += 2) {
            if (auto who = decodePresence(reply->elements[i].str)) {
                out.push_back(std::move(who));
            }
        }
        return out;
    }

    std::vector<broker::ChannelSummary> channels() override {
        // The channels this node has subscribers in; Redis is not scanned (a KEYS walk would
        // stall it for every node).
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
        if (out.empty()) {
            return out;
        }
        // One round trip for all of them: three commands per channel, pipelined.
        std::vector<std::string> keys;
        keys.reserve(out.size() * 3);
        for (const auto& s : out) {
            keys.push_back(key(s.channel, ".m"));
            keys.push_back(key(s.channel, ".h"));
            keys.push_back(key(s.channel, ".p"));
        }
        auto reply = await([this, keys = std::move(keys)](Done done) {
            auto acc = std::make_shared<Reply>();
            acc->type = Reply::Type::kArray;
            acc->elements.resize(keys.size());
            auto left = std::make_shared<size_t>(keys.size());
            for (size_t i = 0; i < keys.size(); ++i) {
                auto collect = [acc, left, done, i](Reply& r) {
                    acc->elements[i] = std::move(r);
                    if (--*left == 0) {
                        done(*acc);
                    }
                };
                switch (i % 3) {
                    case 0:
                        command({"HMGET", keys[i], "e", "o"}, collect);
                        break;
                    case 1:
                        command({"XLEN", keys[i]}, collect);
                        break;
                    default:
                        command({"HLEN", keys[i]}, collect);
                }
            }
        });
        if (!reply || reply->elements.size() != out.size() * 3) {
            noteFailure(reply, "channels");
            return out;
        }
        for (size_t i = 0; i < out.size(); ++i) {
            const Reply& meta = reply->elements[3 * i];
            if (meta.elements.size() == 2) {
                out[i].top.epoch = meta.elements[0].str;
                out[i].top.offset = replyNumber(meta.elements[1]);
            }
            out[i].history = replyNumber(reply->elements[3 * i + 1]);
            out[i].presence = replyNumber(reply->elements[3 * i + 2]);
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
        // Redis expires history, keys and sessions by itself; the node heartbeat runs on the
        // engine loop's own timer.
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
        std::vector<std::string> args;
        args.reserve(4 + rec.channels.size() * 2);
        args.push_back(rec.holder);
        args.push_back(take ? "1" : "0");
        args.push_back(std::to_string(std::max<uint64_t>(rec.ttl_ms, 1000)));
        args.push_back(rec.owner);
        for (const auto& [ch, pos] : rec.channels) {
            args.push_back("c:" + ch);
            args.push_back(pos.epoch + " " + std::to_string(pos.offset));
        }
        loop_.post([this, k = sessionKey(id), args = std::move(args)]() mutable {
            if (up_) {
                runScript(kSaveSessionScript, {std::move(k)}, std::move(args), [](Reply&) {});
            }
        });
    }

    std::optional<broker::SessionRecord> loadSession(std::string_view id,
                                                     bool* unavailable) override {
        std::string k = sessionKey(id);
        auto reply = await([this, k](Done done) { command({"HGETALL", k}, std::move(done)); });
        if (!reply || reply->isError()) {
            noteFailure(reply, "session lookup");
            *unavailable = true;
            return std::nullopt;
        }
        if (reply->type != Reply::Type::kArray || reply->elements.empty()) {
            return std::nullopt;
        }
        broker::SessionRecord rec;
        for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
            const std::string& f = reply->elements[i].str;
            const std::string& v = reply->elements[i + 1].str;
            if (f == "owner") {
                rec.owner = v;
            } else if (f == "holder") {
                rec.holder = v;
            } else if (f.starts_with("c:")) {
                const size_t sp = v.find(' ');
                StreamPos pos;
                if (sp != std::string::npos) {
                    pos.epoch = v.substr(0, sp);
                    parseNumber(std::string_view(v).substr(sp + 1), &pos.offset);
                }
                rec.channels.emplace_back(f.substr(2), std::move(pos));
            }
        }
        return rec;
    }

    void sendControl(std::string_view node, std::string message) override {
        std::string ch = controlChannel(node);
        loop_.post([this, ch = std::move(ch), message = std::move(message)] {
            if (up_) {
                command({"PUBLISH", ch, message}, [](Reply&) {});
            }
        });
    }

    void removeSession(std::string_view id) override {
        loop_.post([this, k = sessionKey(id)] {
            if (up_) {
                command({"DEL", k}, [](Reply&) {});
            }
        });
    }

private:
    using Done = std::function<void(Reply&)>;
    struct Timer : loop::TimerNode {
        RedisEngine* self = nullptr;
    };
    // One channel this node has interest in. `loops` is written by any thread under the shard
    // lock; the rest belongs to the engine loop (also under the lock, as others read it).
    struct Chan {
        uint64_t loops = 0;      // a bit per server loop with local subscribers
        bool sent = false;       // SUBSCRIBE sent on the current connection generation
        bool confirmed = false;  // ...and Redis confirmed it: publications reach us
        StreamPos last;          // the last publication dispatched (resync after a loss)
        bool resync = false;     // subscribed before a loss: read what was missed once back
        bool resyncing = false;  // that read is in flight: pub/sub messages wait in `held`
        std::vector<std::pair<std::string, std::string>> held;  // (redis channel, payload)
        std::vector<std::function<void(bool)>> waiters;  // subscribes waiting for `confirmed`
    };
    struct Shard {
        std::mutex mu;
        std::unordered_map<std::string, Chan, StringHash, std::equal_to<>> chans;
    };
    // A presence entry this node added: re-added after a reconnect (another node may have
    // reaped it while this one was cut off).
    struct Owned {
        std::string channel;
        std::string client_id;
        std::string value;
    };

    Shard& shardFor(std::string_view channel) { return *shards_[StringHash{}(channel) % kShards]; }

    std::string key(std::string_view channel, std::string_view suffix) const {
        std::string k = opts_.prefix;
        k.push_back('{');
        k.append(channel);
        k.push_back('}');
        k.append(suffix);
        return k;
    }
    std::string pubsubChannel(std::string_view channel) const { return key(channel, ""); }
    std::string nodePresenceKey(std::string_view node) const {
        return opts_.prefix + "node:" + std::string(node) + ":presence";
    }
    // "<prefix>ctl" reaches every node, "<prefix>ctl:<tag>" one node. Outside the "{channel}"
    // key space: no channel name can collide with them.
    std::string controlChannel(std::string_view node) const {
        return node.empty() ? opts_.prefix + "ctl" : opts_.prefix + "ctl:" + std::string(node);
    }
    std::string sessionKey(std::string_view id) const {
        return opts_.prefix + "session:" + std::string(id);
    }
    static std::string newEpoch() { return "e_" + broker::randomHex(6); }

    std::string describeAddress() const {
        std::string s;
        for (const auto& [h, p] : addrs_) {
            if (!s.empty()) {
                s += ",";
            }
            s += h + ":" + std::to_string(p);
        }
        return s;
    }

    Reply unavailableReply() const {
        std::lock_guard lock(status_mu_);
        return Reply::error("unavailable: " + status_.error);
    }

    // Logs a failed call once per second at most (a Redis outage fails every request).
    void noteFailure(const std::optional<Reply>& reply, const char* what) {
        const uint64_t now = clockMs(CLOCK_MONOTONIC);
        uint64_t last = last_failure_log_.load(std::memory_order_relaxed);
        if (now - last < 1000 ||
            !last_failure_log_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
            return;
        }
        SB_WARN("redis engine: %s failed: %s", what,
                reply ? reply->str.c_str() : "no answer within broker.redis_timeout");
    }

    // Runs `op` on the engine loop and waits for the Reply it hands to `done` (at most
    // opts_.timeout_ms; nullopt then). Never call from the engine loop itself.
    template <class Op>
    std::optional<Reply> await(Op op) {
        struct Slot {
            std::mutex mu;
            std::condition_variable cv;
            bool done = false;
            Reply value;
        };
        auto slot = std::make_shared<Slot>();
        loop_.post([op = std::move(op), slot]() mutable {
            op([slot](Reply& r) {
                std::lock_guard lock(slot->mu);
                if (slot->done) {
                    return;
                }
                slot->value = std::move(r);
                slot->done = true;
                slot->cv.notify_all();
            });
        });
        std::unique_lock lock(slot->mu);
        if (!slot->cv.wait_for(lock, std::chrono::milliseconds(opts_.timeout_ms),
                               [&] { return slot->done; })) {
            slot->done = true;  // a late answer is dropped
            return std::nullopt;
        }
        return std::move(slot->value);
    }

    // ---- engine loop ----

    void command(std::initializer_list<std::string_view> args, Done done) {
        if (!up_ || cmd_ == nullptr) {
            Reply r = unavailableReply();
            done(r);
            return;
        }
        scratch_.clear();
        encodeCommand(&scratch_, args);
        cmd_->send(scratch_, std::move(done));
    }

    void runScript(Script s, std::vector<std::string> keys, std::vector<std::string> args,
                   Done done) {
        if (!up_ || cmd_ == nullptr) {
            Reply r = unavailableReply();
            done(r);
            return;
        }
        auto encode = [&](bool by_sha) {
            std::vector<std::string_view> argv;
            argv.reserve(3 + keys.size() + args.size());
            std::string nkeys = std::to_string(keys.size());
            argv.push_back(by_sha ? "EVALSHA" : "EVAL");
            argv.push_back(by_sha ? std::string_view(shas_[s]) : kScriptBodies[s]);
            argv.push_back(nkeys);
            for (const auto& k : keys) {
                argv.push_back(k);
            }
            for (const auto& a : args) {
                argv.push_back(a);
            }
            std::string out;
            encodeCommand(&out, argv);
            return out;
        };
        std::string by_sha = encode(true);
        // NOSCRIPT (someone ran SCRIPT FLUSH): send the body once; Redis caches it again.
        auto retry = std::make_shared<std::string>(encode(false));
        RedisConn* conn = cmd_;
        const uint64_t gen = generation_;
        conn->send(by_sha, [this, retry, gen, done = std::move(done)](Reply& r) mutable {
            if (r.isError() && r.str.starts_with("NOSCRIPT") && gen == generation_ && cmd_) {
                cmd_->send(*retry, std::move(done));
                return;
            }
            done(r);
        });
    }

    // Connects every connection; the engine is up once each has answered.
    void connectNow() {
        if (stopping_ || cmd_ != nullptr) {
            return;
        }
        ++generation_;
        const uint64_t gen = generation_;
        // Copies, not a structured binding: lambdas below capture the host (clang 14).
        const std::string host = addrs_[addr_index_ % addrs_.size()].first;
        const uint16_t port = addrs_[addr_index_ % addrs_.size()].second;
        auto ep = resolveHost(host, port);
        if (!ep) {
            lost(gen, ep.error().message);
            return;
        }
        ready_needed_ = 1 + subs_.size();
        ready_count_ = 0;
        auto open = [&](bool subscriber) -> RedisConn* {
            auto c = RedisConn::connect(&loop_, *ep, tls_, host);
            if (!c) {
                return nullptr;
            }
            (*c)->setLostHandler([this, gen](std::string_view why) { lost(gen, why); });
            if (!opts_.password.empty()) {
                std::string auth;
                if (opts_.username.empty()) {
                    encodeCommand(&auth, {"AUTH", opts_.password});
                } else {
                    encodeCommand(&auth, {"AUTH", opts_.username, opts_.password});
                }
                (*c)->send(auth, [this, gen](Reply& r) { check(gen, r, "AUTH"); });
            }
            if (!subscriber && opts_.db != 0) {
                std::string sel;
                encodeCommand(&sel, {"SELECT", std::to_string(opts_.db)});
                (*c)->send(sel, [this, gen](Reply& r) { check(gen, r, "SELECT"); });
            }
            return *c;
        };
        cmd_ = open(false);
        if (cmd_ == nullptr) {
            lost(gen, "cannot open a socket");
            return;
        }
        shas_.assign(kScriptCount, {});
        for (size_t i = 0; i < kScriptCount; ++i) {
            std::string load;
            encodeCommand(&load, {"SCRIPT", "LOAD", kScriptBodies[i]});
            cmd_->send(load, [this, gen, i](Reply& r) {
                if (check(gen, r, "SCRIPT LOAD")) {
                    shas_[i] = r.str;
                }
            });
        }
        // Which Redis answers: a new run_id (a restart) moves the boot generation on, which
        // re-epochs every stream (see scripts::kBoot). Then the command connection is ready.
        std::string info;
        encodeCommand(&info, {"INFO", "server"});
        cmd_->send(info, [this, gen](Reply& r) {
            if (!check(gen, r, "INFO")) {
                return;
            }
            const size_t at = r.str.find("run_id:");
            std::string run_id = "unknown";
            if (at != std::string::npos) {
                const size_t end = r.str.find_first_of("\r\n", at);
                run_id = r.str.substr(at + 7, end == std::string::npos ? end : end - at - 7);
            }
            // Not runScript: the engine is not up yet (and this runs once per connection).
            std::string boot;
            encodeCommand(&boot, {"EVAL", scripts::kBoot, "2", opts_.prefix + "boot",
                                  opts_.prefix + "gen", run_id});
            cmd_->send(boot, [this, gen](Reply& b) {
                if (check(gen, b, "boot")) {
                    oneReady(gen);
                }
            });
        });
        std::string ping;
        encodeCommand(&ping, {"PING"});
        for (size_t i = 0; i < subs_.size(); ++i) {
            subs_[i] = open(true);
            if (subs_[i] == nullptr) {
                lost(gen, "cannot open a socket");
                return;
            }
            subs_[i]->setPushHandler(
                [this](std::string_view ch, std::string_view payload) { dispatch(ch, payload); });
            if (i == 0) {
                // Control messages for this node and for all (session takeovers, disconnects).
                for (const std::string& ctl : {controlChannel(tag_), controlChannel({})}) {
                    std::string sub;
                    encodeCommand(&sub, {"SUBSCRIBE", ctl});
                    subs_[i]->send(sub, [this, gen](Reply& r) { check(gen, r, "SUBSCRIBE"); });
                }
            }
            subs_[i]->send(ping, [this, gen](Reply& r) {
                if (check(gen, r, "PING")) {
                    oneReady(gen);
                }
            });
        }
    }

    static base::Result<net::Endpoint> resolveHost(const std::string& host, uint16_t port) {
        if (auto ep = net::resolve(host, port)) {
            return ep;
        }
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
        if (rc != 0 || res == nullptr) {
            return base::fail("cannot resolve redis host '" + host + "': " + gai_strerror(rc));
        }
        net::Endpoint ep;
        std::memcpy(&ep.addr, res->ai_addr, res->ai_addrlen);
        ep.len = static_cast<socklen_t>(res->ai_addrlen);
        freeaddrinfo(res);
        return ep;
    }

    // A setup reply: an error ends this attempt with a message that says which step failed.
    bool check(uint64_t gen, const Reply& r, const char* step) {
        if (gen != generation_) {
            return false;
        }
        if (r.isError()) {
            lost(gen, std::string(step) + ": " + r.str);
            return false;
        }
        return true;
    }

    void oneReady(uint64_t gen) {
        if (gen != generation_ || ++ready_count_ < ready_needed_) {
            return;
        }
        up_ = true;
        backoff_ms_ = 0;
        const bool was_up_before = ever_up_;
        ever_up_ = true;
        if (was_up_before) {
            ++reconnects_;
        }
        {
            std::lock_guard lock(status_mu_);
            status_.error.clear();
            status_.reconnects = reconnects_;
        }
        SB_INFO("redis engine: connected to %s as node %s (%s)%s", describeAddress().c_str(),
                tag_.c_str(), opts_.node_name.c_str(), was_up_before ? ": resubscribing" : "");
        // Everything a node had in Redis comes back: its subscriptions, its presence entries
        // (another node may have reaped them meanwhile) and its heartbeat.
        std::vector<std::string> names;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (auto& [name, c] : sh->chans) {
                names.push_back(name);
            }
        }
        for (const auto& n : names) {
            reconcileNow(n);
        }
        // Available once every SUBSCRIBE is confirmed: a PING behind them on each pub/sub
        // connection answers after they do. Until then a publish would not reach this node's
        // own subscribers.
        auto pending = std::make_shared<size_t>(subs_.size());
        std::string ping;
        encodeCommand(&ping, {"PING"});
        for (RedisConn* sub : subs_) {
            sub->send(ping, [this, gen, pending](Reply& r) {
                if (check(gen, r, "PING") && --*pending == 0) {
                    available_.store(true, std::memory_order_release);
                }
            });
        }
        readdPresence();
        onTick();
    }

    // Ends the current connection generation: every connection closed, every waiter failed,
    // and (unless stopping) a reconnect after the backoff.
    void lost(uint64_t gen, std::string_view why) {
        if (gen != generation_ || (cmd_ == nullptr && !up_ && gen_lost_ == gen)) {
            return;
        }
        gen_lost_ = gen;
        const bool was_up = up_;
        teardown(why);
        if (stopping_) {
            return;
        }
        if (was_up) {
            SB_WARN(
                "redis engine: lost %s (%.*s): publishes fail with `unavailable` until it is "
                "back; reconnecting",
                describeAddress().c_str(), static_cast<int>(why.size()), why.data());
        } else if (backoff_ms_ >= kMaxBackoffMs / 2 || !logged_down_) {
            SB_WARN("redis engine: cannot reach %s: %.*s (retrying)", describeAddress().c_str(),
                    static_cast<int>(why.size()), why.data());
            logged_down_ = true;
        }
        ++addr_index_;
        backoff_ms_ = backoff_ms_ == 0 ? kMinBackoffMs : std::min(kMaxBackoffMs, backoff_ms_ * 2);
        // Full jitter: nodes that lost the same Redis do not come back in lockstep.
        std::uniform_int_distribution<uint64_t> jitter(backoff_ms_ / 2, backoff_ms_);
        loop_.timers().schedule(&retry_, jitter(rng_));
    }

    void teardown(std::string_view why) {
        ++generation_;  // late replies and lost handlers of the old connections are ignored
        gen_lost_ = generation_;
        up_ = false;
        available_.store(false, std::memory_order_release);
        {
            std::lock_guard lock(status_mu_);
            status_.error = std::string(why);
        }
        RedisConn* cmd = cmd_;
        cmd_ = nullptr;
        std::vector<RedisConn*> subs = subs_;
        std::fill(subs_.begin(), subs_.end(), nullptr);
        if (cmd != nullptr) {
            cmd->fail(why);
        }
        for (RedisConn* s : subs) {
            if (s != nullptr) {
                s->fail(why);
            }
        }
        // Subscriptions must be made again on the next connection; subscribes in flight fail.
        std::vector<std::function<void(bool)>> failed;
        for (auto& sh : shards_) {
            std::lock_guard lock(sh->mu);
            for (auto& [name, c] : sh->chans) {
                c.sent = false;
                c.confirmed = false;
                c.resync = c.resync || !c.last.epoch.empty();
                c.resyncing = false;
                c.held.clear();
                for (auto& w : c.waiters) {
                    failed.push_back(std::move(w));
                }
                c.waiters.clear();
            }
        }
        for (auto& w : failed) {
            w(false);
        }
    }

    void postReconcile(std::string_view channel) {
        loop_.post([this, name = std::string(channel)] { reconcileNow(name); });
    }

    // Makes Redis's subscription of `name` match the interest table.
    void reconcileNow(const std::string& name) {
        Shard& sh = shardFor(name);
        std::unique_lock lock(sh.mu);
        auto it = sh.chans.find(name);
        if (it == sh.chans.end()) {
            return;
        }
        Chan& c = it->second;
        if (c.loops == 0 && c.waiters.empty()) {
            if (c.sent && up_) {
                std::string cmd;
                encodeCommand(&cmd, {"UNSUBSCRIBE", pubsubChannel(name)});
                subFor(name)->send(cmd, [](Reply&) {});
            }
            sh.chans.erase(it);
            return;
        }
        if (c.loops == 0 || c.sent || !up_) {
            return;
        }
        c.sent = true;
        c.confirmed = false;
        std::string cmd;
        encodeCommand(&cmd, {"SUBSCRIBE", pubsubChannel(name)});
        const uint64_t gen = generation_;
        subFor(name)->send(cmd, [this, name, gen](Reply& r) {
            if (gen != generation_) {
                return;  // teardown failed the waiters already
            }
            if (r.isError()) {
                lost(gen, "SUBSCRIBE: " + r.str);
                return;
            }
            std::vector<std::function<void(bool)>> ready;
            std::optional<StreamPos> missed_since;
            {
                Shard& s = shardFor(name);
                std::lock_guard l(s.mu);
                auto i = s.chans.find(name);
                if (i == s.chans.end() || !i->second.sent) {
                    return;
                }
                i->second.confirmed = true;
                ready.swap(i->second.waiters);
                if (i->second.resync) {
                    i->second.resync = false;
                    i->second.resyncing = true;
                    missed_since = i->second.last;
                }
            }
            if (missed_since) {
                resync(name, *missed_since);
            }
            for (auto& w : ready) {
                w(true);
            }
            reconcileNow(name);  // interest may have gone while the SUBSCRIBE was in flight
        });
    }

    RedisConn* subFor(std::string_view name) { return subs_[StringHash{}(name) % subs_.size()]; }

    void snapshot(const std::string& name, const std::optional<StreamPos>& since, size_t limit,
                  bool create, bool newest, Done done) {
        runScript(kSnapshotScript, {key(name, ".m"), key(name, ".h"), opts_.prefix + "gen"},
                  {newEpoch(), since ? since->epoch : std::string(),
                   since ? std::to_string(since->offset) : "0", std::to_string(limit),
                   create ? "1" : "0", std::to_string(kIdleStreamTtlMs), newest ? "1" : "0"},
                  std::move(done));
    }

    // A snapshot reply as the Engine contract wants it (see broker::Engine::subscribe/history).
    RecoverResult toRecover(const std::string& name, const NamespaceOptions& ns,
                            const std::optional<StreamPos>& since,
                            const std::optional<Reply>& reply, bool is_history) {
        RecoverResult out;
        if (!reply || reply->isError() || reply->elements.size() != 4) {
            noteFailure(reply, is_history ? "history" : "subscribe");
            out.unavailable = true;
            return out;
        }
        out.top.epoch = reply->elements[0].str;
        out.top.offset = replyNumber(reply->elements[1]);
        const uint64_t now = replyNumber(reply->elements[2]);
        for (const Reply& e : reply->elements[3].elements) {
            if (e.elements.size() != 2) {
                continue;
            }
            auto p = std::make_shared<Publication>();
            p->channel = name;
            p->epoch = out.top.epoch;
            const std::string& id = e.elements[0].str;
            parseNumber(std::string_view(id).substr(0, id.find('-')), &p->offset);
            uint64_t t = 0;
            const auto& f = e.elements[1].elements;
            for (size_t i = 0; i + 1 < f.size(); i += 2) {
                if (f[i].str == "t") {
                    t = replyNumber(f[i + 1]);
                } else if (f[i].str == "d") {
                    p->data = f[i + 1].str;
                }
            }
            if (ns.history_ttl_ms != 0 && t + ns.history_ttl_ms <= now) {
                continue;  // past the namespace's TTL: as good as gone
            }
            p->time_ms = toMonotonic(t);
            out.pubs.push_back(std::move(p));
        }
        if (!since) {
            std::reverse(out.pubs.begin(), out.pubs.end());  // newest first from XREVRANGE
            return out;
        }
        if (since->epoch == out.top.epoch) {
            out.recovered = since->offset >= out.top.offset ||
                            (!out.pubs.empty() && out.pubs.front()->offset == since->offset + 1 &&
                             (is_history || out.pubs.back()->offset == out.top.offset));
        } else {
            out.pubs.clear();
        }
        return out;
    }

    // A pub/sub message (engine loop): a publication or a join/leave, handed to every server
    // loop with interest in the channel, in the order Redis published them.
    void dispatch(std::string_view redis_channel, std::string_view payload) {
        if (payload.empty() || redis_channel.size() < opts_.prefix.size() + 2) {
            return;
        }
        if (redis_channel[opts_.prefix.size()] != '{') {
            if (broker::LoopSink* sink = sink_.load(std::memory_order_acquire)) {
                sink->control(payload);  // the only other channels subscribed: control
            }
            return;
        }
        std::string_view name = redis_channel.substr(opts_.prefix.size() + 1);
        name.remove_suffix(1);  // the closing brace
        Event ev;
        const char kind = payload.front();
        payload.remove_prefix(1);
        if (kind == 'm') {
            auto f = parsePublication(payload);
            if (!f) {
                return;
            }
            auto p = std::make_shared<Publication>();
            p->channel = std::string(name);
            p->epoch = std::string(f->epoch);
            p->offset = f->offset;
            p->time_ms = toMonotonic(f->time_ms);
            p->data = std::string(f->data);
            ev.kind = EventKind::kPublication;
            ev.pub = std::move(p);
        } else if (kind == 'j' || kind == 'l') {
            ev.kind = kind == 'j' ? EventKind::kJoin : EventKind::kLeave;
            ev.channel = std::string(name);
            ev.who = decodePresence(payload);
            if (!ev.who) {
                return;
            }
        } else {
            return;
        }
        Shard& sh = shardFor(name);
        std::lock_guard lock(sh.mu);
        auto it = sh.chans.find(name);
        if (it == sh.chans.end()) {
            return;
        }
        if (it->second.resyncing) {
            // After the missed ones, which the history read in flight will bring.
            it->second.held.emplace_back(redis_channel.substr(0), std::string(1, kind));
            it->second.held.back().second.append(payload);
            return;
        }
        deliverLocked(it->second, std::move(ev));
    }

    // Hands `ev` to every loop interested in `c` (engine loop, under the channel's shard lock).
    // A publication at or below the last one dispatched is dropped: each once, in order.
    void deliverLocked(Chan& c, Event ev) {
        if (ev.kind == EventKind::kPublication) {
            if (ev.pub->epoch == c.last.epoch && ev.pub->offset <= c.last.offset) {
                return;
            }
            c.last = StreamPos{ev.pub->epoch, ev.pub->offset};
        }
        handToLoops(sink_.load(std::memory_order_acquire), c.loops, std::move(ev));
    }

    // After a reconnect, channel `name` is subscribed again: what was published while this
    // node was cut off is read from its history and delivered first, then what pub/sub brought
    // meanwhile. What history no longer has (or a stream lost with Redis) stays a hole, which
    // the subscribers are told about (gap:true) on the next publication.
    void resync(const std::string& name, StreamPos since) {
        const uint64_t gen = generation_;
        snapshot(name, since, 0, false, false, [this, name, since, gen](Reply& r) {
            if (gen != generation_) {
                return;  // lost again: the next connection resyncs
            }
            std::optional<Reply> reply(std::move(r));
            RecoverResult missed = toRecover(name, NamespaceOptions{}, since, reply, true);
            Shard& sh = shardFor(name);
            std::vector<std::pair<std::string, std::string>> held;
            {
                std::lock_guard lock(sh.mu);
                auto it = sh.chans.find(name);
                if (it == sh.chans.end()) {
                    return;
                }
                for (PubPtr& p : missed.pubs) {
                    deliverLocked(it->second,
                                  Event{.kind = EventKind::kPublication, .pub = std::move(p)});
                }
                it->second.resyncing = false;
                held.swap(it->second.held);
            }
            for (const auto& [ch, payload] : held) {
                dispatch(ch, payload);
            }
        });
    }

    void sendPresenceAdd(const std::string& name, const std::string& cid, const std::string& value,
                         const std::string& member) {
        if (!up_) {
            return;  // re-added from owned_ on reconnect
        }
        runScript(kPresenceAddScript, {key(name, ".p"), nodePresenceKey(tag_)},
                  {cid, value, pubsubChannel(name), member, std::to_string(kIdleStreamTtlMs)},
                  [](Reply&) {});
    }

    void readdPresence() {
        std::vector<std::pair<std::string, Owned>> all;
        {
            std::lock_guard lock(owned_mu_);
            all.assign(owned_.begin(), owned_.end());
        }
        for (const auto& [member, o] : all) {
            sendPresenceAdd(o.channel, o.client_id, o.value, member);
        }
    }

    // Every second: the reply watchdog, the heartbeat, and reaping dead nodes.
    void onTick() {
        if (!tick_.armed() && !stopping_) {
            loop_.timers().schedule(&tick_, kTickMs);
        }
        if (!up_) {
            return;
        }
        const uint64_t now = loop_.nowMs();
        auto stale = [&](RedisConn* c) {
            return c != nullptr && c->pending() > 0 &&
                   now - c->oldestPendingMs() > opts_.timeout_ms;
        };
        bool hung = stale(cmd_);
        for (RedisConn* s : subs_) {
            hung = hung || stale(s);
        }
        if (hung) {
            lost(generation_, "no answer from Redis within broker.redis_timeout");
            return;
        }
        if (heartbeat_in_flight_) {
            return;
        }
        heartbeat_in_flight_ = true;
        const uint64_t gen = generation_;
        runScript(
            kHeartbeatScript, {opts_.prefix + "nodes", opts_.prefix + "node:" + tag_},
            {tag_, opts_.node_name, std::to_string(connections_.load(std::memory_order_relaxed)),
             std::to_string(opts_.node_ttl_ms), opts_.prefix},
            [this, gen](Reply& r) {
                heartbeat_in_flight_ = false;
                if (gen == generation_) {
                    onHeartbeat(r);
                }
            });
    }

    void onHeartbeat(const Reply& r) {
        if (r.isError() || r.elements.size() != 4) {
            return;
        }
        const uint64_t now = replyNumber(r.elements[0]);
        if (replyNumber(r.elements[1]) == 0 && registered_) {
            // Cut off longer than node_ttl: the others reaped this node's presence entries.
            SB_WARN(
                "redis engine: this node was presumed dead by the others; re-adding its "
                "presence entries");
            readdPresence();
        }
        registered_ = true;
        for (const Reply& dead : r.elements[2].elements) {
            SB_INFO(
                "redis engine: node %s missed its heartbeats for %llu ms: removing its "
                "presence entries",
                dead.str.c_str(), static_cast<unsigned long long>(opts_.node_ttl_ms));
            runScript(kReapScript, {opts_.prefix + "nodes"},
                      {dead.str, opts_.prefix, std::to_string(opts_.node_ttl_ms)}, [](Reply&) {});
        }
        std::vector<broker::NodeStatus> nodes;
        for (const Reply& n : r.elements[3].elements) {
            if (n.elements.size() != 4) {
                continue;
            }
            broker::NodeStatus s;
            s.id = n.elements[0].str;
            const uint64_t seen = replyNumber(n.elements[1]);
            s.age_ms = now > seen ? now - seen : 0;
            s.name = n.elements[2].str;
            s.connections = replyNumber(n.elements[3]);
            nodes.push_back(std::move(s));
        }
        std::lock_guard lock(status_mu_);
        status_.nodes = std::move(nodes);
    }

    RedisOptions opts_;
    std::vector<std::pair<std::string, uint16_t>> addrs_;
    std::shared_ptr<net::TlsContext> tls_;
    std::string tag_;
    std::atomic<broker::LoopSink*> sink_{nullptr};
    std::array<std::unique_ptr<Shard>, kShards> shards_;
    std::atomic<bool> available_{false};
    std::atomic<uint64_t> connections_{0};
    std::atomic<uint64_t> last_failure_log_{0};

    mutable std::mutex status_mu_;
    broker::EngineStatus status_;  // guarded by status_mu_ (but `available`, read from the atomic)

    std::mutex owned_mu_;
    std::unordered_map<std::string, Owned> owned_;  // guarded by owned_mu_

    // Engine loop only.
    loop::EventLoop loop_;
    RedisConn* cmd_ = nullptr;
    std::vector<RedisConn*> subs_;
    std::vector<std::string> shas_;
    std::string scratch_;
    uint64_t generation_ = 0;
    uint64_t gen_lost_ = 0;
    size_t ready_needed_ = 0;
    size_t ready_count_ = 0;
    bool up_ = false;
    bool ever_up_ = false;
    bool logged_down_ = false;
    bool stopping_ = false;
    bool registered_ = false;
    bool heartbeat_in_flight_ = false;
    uint64_t reconnects_ = 0;
    uint64_t backoff_ms_ = 0;
    size_t addr_index_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
    Timer retry_;
    Timer tick_;
    std::thread thread_;  // last: started when everything above is built
};

}  // namespace

base::Result<std::unique_ptr<broker::Engine>> makeRedisEngine(RedisOptions options) {
    auto addrs = parseAddresses(options.address);
    if (!addrs) {
        return base::fail(addrs.error().message);
    }
    if (options.prefix.empty()) {
        return base::fail("broker.redis_prefix must not be empty (e.g. \"sb:\")");
    }
    if (options.node_ttl_ms < 2000) {
        return base::fail("broker.node_ttl must be at least 2s (heartbeats go every second)");
    }
    std::shared_ptr<net::TlsContext> tls;
    if (options.tls) {
        net::TlsConfig tc;
        tc.role = net::TlsRole::kClient;
        tc.ca_file = options.tls_ca_file;
        auto ctx = net::TlsContext::create(tc);
        if (!ctx) {
            return base::fail("broker.redis_tls: " + ctx.error().message);
        }
        tls = std::move(*ctx);
    }
    return std::unique_ptr<broker::Engine>(
        new RedisEngine(std::move(options), std::move(*addrs), std::move(tls)));
}

}  // namespace sb::engines::redis
