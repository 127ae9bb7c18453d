// The HTTP API adapter: POST /api/{publish,broadcast,presence,history,channels,disconnect,info}
// with a JSON body, authorized by the API key. Decodes the body, calls the messaging Hub and
// answers JSON; errors come from the core's error table (code and HTTP status).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "messaging/hub.h"
#include "server/app.h"

namespace sb::server {

class HttpApi {
public:
    // `connections`: open connections for /api/info (any thread).
    // `rate_limit`: calls per second with the key (burst twice that); 0 = unlimited.
    HttpApi(std::string api_key, uint32_t rate_limit, std::function<uint64_t()> connections);

    // Registers the routes (before App::listen). `hub` is set by attach() before the loops run.
    void registerRoutes(App& app);
    void attach(messaging::Hub* hub) { hub_ = hub; }

    // Any thread (SIGHUP): the key and rate limit from now on; an empty key turns the API off.
    void setKey(std::string key, uint32_t rate_limit);
    // Calls refused by the rate limit (any thread).
    uint64_t rateLimited() const { return rate_limited_.load(std::memory_order_relaxed); }

private:
    HttpReply call(std::string_view name, const http::Request& req, std::string_view body);

    messaging::Hub* hub_ = nullptr;
    std::function<uint64_t()> connections_;
    uint64_t boot_ms_;
    std::mutex key_mu_;
    std::string key_;  // guarded by key_mu_
    // The key's token bucket, guarded by key_mu_.
    uint32_t rate_limit_;
    double tokens_;
    uint64_t refill_ms_;
    uint64_t limit_logged_s_ = 0;  // the second of the last refusal logged (one line a second)
    std::atomic<uint64_t> rate_limited_{0};
};

}  // namespace sb::server
