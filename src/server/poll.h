// The long-polling adapter, for networks that let neither WebSockets nor streamed responses
// through: a session is a virtual connection kept on one event loop (the core's Client with a
// bounded queue of events), and the client fetches its events with plain GETs, each answered
// as soon as there is something or after a bounded wait.
//
//   GET /poll?channel=chat:a[&session=S][&token=JWT][&lastEventId=ID]   opens (or resumes) a
//       session: answers at once with the first batch (connected, subscribed, replays)
//   GET /poll?session=S&ack=N[&wait=25]   the next batch after batch N (N acknowledges it);
//       asking again with the same N gets the same batch again (a response lost on the way
//       costs nothing)
//   POST /poll?session=S   a native request (subscribe, publish, ack, ...), answered in the body
//
// A batch: {"seq":N,"id":"<event id>","events":[…native events…]}; an empty one has seq 0
// (nothing to acknowledge). `id` is the position to reopen from (lastEventId) if the session
// has expired. A session no GET has asked for in wait + 15 s is closed (its session TTL runs).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "messaging/hub.h"
#include "server/app.h"
#include "server/session_relay.h"

namespace sb::server {

class Poll {
public:
    // `ping_interval_ms`: sent in `connected`. A poll waits at most 30 s.
    Poll(const messaging::Options& options, uint32_t ping_interval_ms);
    ~Poll();

    // GET and POST /poll (before App::listen); attach() after it, before the loops run.
    // `relay` (null: a single node) takes polls and POSTs for sessions other nodes hold.
    void registerRoutes(App& app);
    void attach(messaging::Hub* hub, App& app, SessionRelay* relay);
    // Before the loops run: each client's reconnect delay at a graceful shutdown.
    void setReconnectDelay(std::function<uint32_t()> fn) { reconnect_delay_ = std::move(fn); }
    // A poll another node relayed here (any loop thread): answered as a direct one would be.
    void pollRelayed(const RelayRequest& r, HttpResponder responder);
    // Open sessions, every loop (any thread).
    uint64_t sessions() const { return open_.load(std::memory_order_relaxed); }
    // GETs parked waiting for events, every loop (any thread).
    uint64_t waiting() const {
        const int64_t n = waiting_.load(std::memory_order_relaxed);
        return n < 0 ? 0 : static_cast<uint64_t>(n);
    }

    struct Session;

private:
    void onGet(const http::Request& req, HttpResponder responder);
    void onPost(const http::Request& req, std::string_view body, HttpResponder responder);
    // A poll for `session` if a poller of this node has it (any loop thread); false, having
    // answered nothing, if not.
    bool pollHere(const std::string& session, uint64_t ack, uint32_t wait_ms,
                  const HttpResponder& responder);
    // On `loop`: a new session there, answered with its first batch.
    void open(uint32_t loop, const http::Request& req, HttpResponder responder);
    void close(Session* s);
    // Loop `loop`, graceful shutdown: every session there is told (1001, reconnect) and its
    // waiting poll answered.
    void shutdown(uint32_t loop);

    size_t max_queue_;
    uint32_t ping_interval_ms_;
    messaging::Hub* hub_ = nullptr;
    SessionRelay* relay_ = nullptr;
    App* app_ = nullptr;
    std::function<uint32_t()> reconnect_delay_;
    std::vector<loop::EventLoop*> loops_;
    // Per loop (its thread only): the sessions living there, by session id.
    std::vector<std::unordered_map<std::string, std::unique_ptr<Session>>> sessions_;
    std::atomic<uint64_t> open_{0};
    std::atomic<int64_t> waiting_{0};
    // Session id → the loop it lives on (any thread, under index_mu_).
    std::mutex index_mu_;
    std::unordered_map<std::string, uint32_t> index_;
};

}  // namespace sb::server
