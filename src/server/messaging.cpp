#include "server/messaging.h"

#include "base/log.h"
#include "server/auth_config.h"
#include "server/metrics.h"
#include "server/session_open.h"
#include "server/session_relay.h"

namespace sb::server {

static_assert(kMaxThreads <= broker::kMaxLoops, "every loop needs an index in the messaging core");

Messaging::Messaging(App& app, messaging::Options options, const transport::WebSocketBehavior& base,
                     const ws::DeflateServerPolicy& deflate, BrokerConfig broker)
    : app_(app),
      options_(std::move(options)),
      broker_(std::move(broker)),
      ping_interval_s_(base.ping_interval_ms / 1000),
      native_(options_, base, deflate),
      stomp_(options_, base),
      sse_(options_, base.ping_interval_ms),
      poll_(options_, base.ping_interval_ms),
      api_(options_.api_key, options_.api_rate_limit, [this] {
          const ConnectionCounts c = app_.connectionCounts();
          return c.websocket + c.stream + poll_.sessions();
      }) {
    options_.normalize();
    // Graceful shutdown: each client is told when to come back, spread over
    // server.reconnect_spread.
    auto delay = [this] { return app_.reconnectDelayMs(); };
    native_.setReconnectDelay(delay);
    sse_.setReconnectDelay(delay);
    poll_.setReconnectDelay(delay);
    // One /ws route: the native protocol, or STOMP when the client negotiates v1x.stomp.
    WsRoute ws_route = native_.route();
    stomp_.addTo(&ws_route);
    app_.ws("/ws", std::move(ws_route));
    sse_.registerRoutes(app_);
    poll_.registerRoutes(app_);
    api_.registerRoutes(app_);
    app_.get("/metrics", [this](const http::Request&, std::string_view) {
        MetricsSnapshot m;
        m.stats = hub_->totals();
        const ConnectionCounts counts = app_.connectionCounts();
        m.websocket_connections = counts.websocket;
        m.sse_connections = counts.stream;
        m.poll_sessions = poll_.sessions();
        m.poll_waiting = poll_.waiting();
        m.http_connections = counts.http;
        for (size_t i = 0; i < app_.loopCount(); ++i) {
            m.backlog_bytes += app_.loopAt(i).backlog_bytes.load(std::memory_order_relaxed);
        }
        m.channels = hub_->channelCount();
        m.engine = hub_->engineStatus();
        m.sessions = hub_->sessions();
        const RefusedCounts refused = app_.refusedCounts();
        m.refused_max = refused.max_connections;
        m.refused_ip = refused.per_ip;
        m.refused_rate = refused.rate;
        m.refused_admission = refused.admission;
        m.handshake_failures = app_.handshakeFailures();
        m.loop_lag_ms = app_.loopLagMs();
        m.namespaces = hub_->namespaceTotals();
        m.ping_floods = refused.ping_floods;
        m.api_rate_limited = api_.rateLimited();
        if (app_.tlsPort() != 0) {
            const TlsCounts t = app_.tlsCounts();
            m.tls = true;
            m.tls_full = t.full;
            m.tls_resumed = t.resumed;
            m.tls_failed = t.failed;
        }
        return HttpReply{.content_type = "text/plain; version=0.0.4", .body = renderMetrics(m)};
    });
}

Messaging::~Messaging() {
    if (hub_) {
        hub_->stop();
    }
}

base::Result<void> Messaging::attach() {
    auto auth = loadAuth(options_.auth);
    if (!auth) {
        return base::unexpected(auth.error());
    }
    std::vector<loop::EventLoop*> loops;
    for (size_t i = 0; i < app_.loopCount(); ++i) {
        loops.push_back(&app_.loopAt(i));
    }
    std::unique_ptr<broker::Engine> engine;
    if (broker_.engine == BrokerConfig::Engine::kRedis) {
        engines::redis::RedisOptions o = broker_.redis;
        o.node_ttl_ms = broker_.node_ttl_ms;
        o.node_name = broker_.node_name;
        auto e = engines::redis::makeRedisEngine(std::move(o));
        if (!e) {
            return base::unexpected(e.error());
        }
        engine = std::move(*e);
        SB_INFO("broker: redis at %s (prefix \"%s\"); /readyz reports ready once it answers",
                broker_.redis.address.c_str(), broker_.redis.prefix.c_str());
    } else if (broker_.engine == BrokerConfig::Engine::kNats) {
        engines::nats::NatsOptions o = broker_.nats;
        o.node_ttl_ms = broker_.node_ttl_ms;
        o.node_name = broker_.node_name;
        o.memory_storage = broker_.nats_storage == BrokerConfig::NatsStorage::kMemory;
        auto e = engines::nats::makeNatsEngine(std::move(o));
        if (!e) {
            return base::unexpected(e.error());
        }
        engine = std::move(*e);
        SB_INFO(
            "broker: nats at %s (prefix \"%s\", %s storage); /readyz reports ready once "
            "JetStream answers",
            broker_.nats.url.c_str(), broker_.nats.prefix.c_str(),
            broker_.nats_storage == BrokerConfig::NatsStorage::kMemory ? "memory" : "file");
    }
    hub_ = std::make_unique<messaging::Hub>(options_, loops, std::move(engine));
    if (!hub_->nodeTag().empty()) {
        // Other nodes: the POSTs and polls of SSE and long-polling sessions they hold are
        // relayed to them, and theirs for sessions held here are run here.
        relay_ = std::make_unique<SessionRelay>(*hub_, std::move(loops));
        const uint32_t ping_s = ping_interval_s_;
        relay_->setHandler(RelayRequest::Kind::kPost,
                           [hub = hub_.get(), ping_s](const RelayRequest& r, HttpResponder out) {
                               if (!runSessionPost(*hub, r, out, ping_s)) {
                                   out.reply(jsonError(404, messaging::Error::kNotFound,
                                                       "no stream or poller holds session " +
                                                           r.session + " any more: open it again"));
                               }
                           });
        relay_->setHandler(RelayRequest::Kind::kPoll,
                           [this](const RelayRequest& r, HttpResponder out) {
                               poll_.pollRelayed(r, std::move(out));
                           });
    }
    native_.attach(hub_.get());
    stomp_.attach(hub_.get());
    sse_.attach(hub_.get(), relay_.get());
    poll_.attach(hub_.get(), app_, relay_.get());
    api_.attach(hub_.get());
    hub_->setAuth(std::move(*auth));
    if (!hub_->authEnabled()) {
        SB_WARN(
            "auth: no keys in [auth]: every client is anonymous, may name itself any user and "
            "use every namespace; set auth.hmac_secrets, auth.public_key_files or "
            "auth.jwks_file to verify JWTs (docs/security.md)");
    }
    hub_->start();
    return {};
}

void Messaging::reload(const messaging::Options& fresh) {
    // The API key before the JWT keys: a caller that sees a token signed with the new secret
    // accepted must also find the new API key in force (the reload is not one atomic swap).
    api_.setKey(fresh.api_key, fresh.api_rate_limit);
    // JWT keys before namespaces: a namespace that turns private must not find the old (maybe
    // empty) keys.
    if (auto auth = loadAuth(fresh.auth); !auth) {
        SB_ERROR("reload: %s; keeping the running auth keys", auth.error().message.c_str());
    } else {
        hub_->setAuth(std::move(*auth));
    }
    hub_->reloadNamespaces(fresh.namespaces);
}

}  // namespace sb::server
