// The messaging layer of SPEC §3 on top of the App: the native protocol at /ws (subprotocol
// switchboard.v1.json), channels in configured namespaces, presence, history and recovery,
// sessions with acks, fan-out batched per loop, slow-consumer policy, rate limits, and the
// HTTP API under /api/. The broker engine (memory by default) owns offsets, history and
// presence; this layer owns connections and per-loop subscriber lists.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "broker/engine.h"
#include "broker/session_store.h"
#include "server/app.h"
#include "server/metrics.h"

namespace sb::server {

using NamespaceMap = std::unordered_map<std::string, broker::NamespaceOptions>;

// Turns [namespaces.NAME] raw options into typed ones; errors name namespace and option.
// The namespace "default" (channels without ':') exists unless configured otherwise.
base::Result<NamespaceMap> resolveNamespaces(
    const std::map<std::string, std::map<std::string, std::string>>& raw);

struct MessagingOptions {
    NamespaceMap namespaces;
    // Subscriptions per connection (limit_exceeded above): bounds what one client can pin.
    size_t max_subscriptions = 256;
    // Outbound bytes queued per connection before the namespace's slow-consumer policy acts.
    // 1 MiB: a few thousand typical (~150 B) messages of slack; 10k stalled readers then
    // hold at most ~10 GiB of user memory, the worst case an operator must size for.
    size_t outbound_limit = 1 << 20;
    // Token bucket per connection: sustained requests/s and burst. Past it: `rate_limited`
    // errors; after kAbuseErrors of those in a row the connection is closed with 1008.
    double rate_per_s = 200;
    double rate_burst = 400;
    // API key for /api/* (Authorization: apikey KEY, or X-API-Key). Empty = API disabled.
    std::string api_key;
};

class Messaging final : public broker::LoopSink {
public:
    // `base` carries the WebSocket limits and timers from the settings; callbacks are ours.
    Messaging(App& app, MessagingOptions options, transport::WebSocketBehavior base,
              bool compression, Metrics* metrics);
    ~Messaging() override;

    // After app.listen(): creates the per-loop hubs and registers /ws and /api/*.
    void attach();

    // broker::LoopSink (publishing thread): queue for the loop and wake it.
    void deliver(uint32_t loop_id, broker::Event ev) override;

    broker::Engine& engine() { return *engine_; }

    // Any thread (SIGHUP): namespaces for subscriptions and publishes from now on. Existing
    // subscriptions keep the options they were made with until they resubscribe.
    void reloadNamespaces(NamespaceMap namespaces);

    struct Conn;
    struct LoopHub;

private:
    friend struct LoopHub;
    void onOpen(transport::WebSocket& ws);
    void onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data);
    void onClose(transport::WebSocket& ws, uint16_t code, std::string_view reason);

    void handleRequest(Conn& c, std::string_view frame);
    void reply(Conn& c, const std::string& json);
    void replyError(Conn& c, std::string_view id_json, std::string_view code,
                    std::string_view message);
    void subscribeChannel(Conn& c, std::string_view id_json, std::string_view channel,
                          const broker::NamespaceOptions& ns,
                          const std::optional<broker::StreamPos>& since, bool from_resume,
                          std::vector<broker::PubPtr>* unacked, bool gap);
    void unsubscribeAll(Conn& c);
    const broker::NamespaceOptions* namespaceOf(std::string_view channel, std::string_view* ns);
    void housekeeping();

    HttpReply apiCall(std::string_view name, const http::Request& req, std::string_view body);

    App& app_;
    MessagingOptions options_;
    bool compression_;
    Metrics* metrics_;
    std::unique_ptr<broker::Engine> engine_;
    broker::SessionStore sessions_;
    std::vector<std::unique_ptr<LoopHub>> hubs_;
    std::atomic<uint64_t> next_client_{1};
    uint64_t boot_ms_;
    uint32_t ping_interval_ms_;
    std::mutex reload_mu_;
    std::vector<std::unique_ptr<NamespaceMap>> snapshots_;  // guarded by reload_mu_
    std::atomic<const NamespaceMap*> namespaces_{nullptr};
    std::thread housekeeper_;
    std::mutex hk_mu_;
    std::condition_variable hk_cv_;
    bool hk_stop_ = false;  // guarded by hk_mu_
};

}  // namespace sb::server
