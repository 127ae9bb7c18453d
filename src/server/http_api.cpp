#include "server/http_api.h"

#include <simdjson.h>
#include <time.h>

#include <vector>

#include "base/log.h"
#include "protocol/codec.h"

namespace sb::server {

using messaging::Error;

namespace {

uint64_t nowMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

HttpReply apiError(Error e, std::string_view message) {
    const messaging::ErrorInfo& info = messaging::errorInfo(e);
    std::string body = "{\"error\":";
    protocol::appendJsonString(&body, info.code);
    body += ",\"message\":";
    protocol::appendJsonString(&body, message);
    body += "}\n";
    return HttpReply{.status = info.http_status, .content_type = "application/json", .body = body};
}

HttpReply apiFailure(const messaging::Failure& f) {
    return apiError(f.error, f.message);
}

HttpReply apiOk(std::string body) {
    body += "\n";
    return HttpReply{.content_type = "application/json", .body = std::move(body)};
}

// Compares without an early exit, so response timing does not leak how much of a key matched.
bool constantTimeEqual(std::string_view a, std::string_view b) {
    if (a.size() != b.size() || a.empty()) {
        return false;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    }
    return diff == 0;
}

void appendPublished(std::string* out, const messaging::Published& p) {
    *out += "{\"channel\":";
    protocol::appendJsonString(out, p.channel);
    *out += ",\"epoch\":";
    protocol::appendJsonString(out, p.pos.epoch);
    *out += ",\"offset\":" + std::to_string(p.pos.offset);
    if (p.duplicate) {
        *out += ",\"duplicate\":true";
    }
    *out += "}";
}

// /api/info's "engine": which engine, whether it serves requests, and the cluster's nodes.
void appendEngine(std::string* out, const broker::EngineStatus& e) {
    *out += "{\"name\":";
    protocol::appendJsonString(out, e.engine);
    *out += e.available ? ",\"available\":true" : ",\"available\":false";
    if (!e.error.empty()) {
        *out += ",\"error\":";
        protocol::appendJsonString(out, e.error);
    }
    if (!e.node_id.empty()) {
        *out += ",\"node\":";
        protocol::appendJsonString(out, e.node_id);
        *out += ",\"reconnects\":" + std::to_string(e.reconnects) + ",\"nodes\":[";
        for (size_t i = 0; i < e.nodes.size(); ++i) {
            const broker::NodeStatus& n = e.nodes[i];
            *out += i == 0 ? "{\"id\":" : ",{\"id\":";
            protocol::appendJsonString(out, n.id);
            *out += ",\"name\":";
            protocol::appendJsonString(out, n.name);
            *out += ",\"connections\":" + std::to_string(n.connections) +
                    ",\"age_ms\":" + std::to_string(n.age_ms) + "}";
        }
        *out += "]";
    }
    *out += "}";
}

}  // namespace

HttpApi::HttpApi(std::string api_key, uint32_t rate_limit, std::function<uint64_t()> connections)
    : connections_(std::move(connections)),
      boot_ms_(nowMs()),
      key_(std::move(api_key)),
      rate_limit_(rate_limit),
      tokens_(2.0 * rate_limit),
      refill_ms_(boot_ms_) {}

void HttpApi::setKey(std::string key, uint32_t rate_limit) {
    std::lock_guard lock(key_mu_);
    if (key != key_) {
        SB_INFO("api.key reloaded: the HTTP API is %s", key.empty() ? "off" : "on");
    }
    key_ = std::move(key);
    rate_limit_ = rate_limit;
}

void HttpApi::registerRoutes(App& app) {
    for (const char* name :
         {"publish", "broadcast", "presence", "history", "channels", "disconnect", "info"}) {
        std::string n = name;
        app.post("/api/" + n, [this, n](const http::Request& req, std::string_view body) {
            return call(n, req, body);
        });
    }
}

HttpReply HttpApi::call(std::string_view name, const http::Request& req, std::string_view body) {
    {
        std::lock_guard lock(key_mu_);
        if (key_.empty()) {
            return apiError(Error::kApiDisabled,
                            "the HTTP API is off: set api.key in the config (or "
                            "SWITCHBOARD_API_KEY) and reload");
        }
        std::string_view auth = req.header("authorization");
        std::string_view key = req.header("x-api-key");
        if (auth.size() > 7 && (auth.substr(0, 7) == "apikey " || auth.substr(0, 7) == "Apikey ")) {
            key = auth.substr(7);
        }
        if (!constantTimeEqual(key, key_)) {
            return apiError(Error::kUnauthorized,
                            "send the API key as 'Authorization: apikey KEY' or 'X-API-Key: KEY'");
        }
        // Only calls with the right key spend tokens: strangers cannot starve the backend.
        if (rate_limit_ != 0) {
            const uint64_t now = nowMs();
            const double rate = rate_limit_;
            tokens_ = std::min(2.0 * rate,
                               tokens_ + static_cast<double>(now - refill_ms_) * rate / 1000.0);
            refill_ms_ = now;
            if (tokens_ < 1.0) {
                rate_limited_.fetch_add(1, std::memory_order_relaxed);
                if (now / 1000 != limit_logged_s_) {  // one line a second, not one a call
                    limit_logged_s_ = now / 1000;
                    SB_WARN(
                        "api: more than %u calls/s with the API key (api.rate_limit): "
                        "answering 429",
                        rate_limit_);
                }
                HttpReply r = apiError(Error::kRateLimited,
                                       "more than " + std::to_string(rate_limit_) +
                                           " API calls per second (api.rate_limit); retry shortly");
                r.extra_headers = "Retry-After: 1\r\n";
                return r;
            }
            tokens_ -= 1.0;
        }
    }
    messaging::Hub& hub = *hub_;
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string padded(body.empty() ? std::string_view("{}") : body);
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
        return apiError(Error::kBadJson, "the body must be a JSON object");
    }
    auto str = [&](const char* field, std::string_view* out) {
        return doc[field].get_string().get(*out) == simdjson::SUCCESS;
    };
    std::string out;
    if (name == "publish" || name == "broadcast") {
        simdjson::dom::element data;
        if (doc["data"].get(data) != simdjson::SUCCESS) {
            return apiError(Error::kBadRequest, "missing field 'data'");
        }
        std::string data_json = simdjson::minify(data);
        std::string_view key;
        str("idempotency_key", &key);
        if (name == "publish") {
            std::string_view ch;
            if (!str("channel", &ch)) {
                return apiError(Error::kBadRequest, "missing 'channel' (a string)");
            }
            auto r = hub.publish(nullptr, ch, std::move(data_json), key);
            if (!r) {
                return apiFailure(r.error());
            }
            appendPublished(&out, *r);
            return apiOk(std::move(out));
        }
        simdjson::dom::array arr;
        if (doc["channels"].get_array().get(arr) != simdjson::SUCCESS) {
            return apiError(Error::kBadRequest, "missing 'channels' (an array of names)");
        }
        std::vector<std::string_view> targets;
        for (auto v : arr) {
            std::string_view ch;
            if (v.get_string().get(ch) != simdjson::SUCCESS) {
                return apiError(Error::kBadRequest, "'channels' must hold strings");
            }
            targets.push_back(ch);
        }
        auto r = hub.broadcast(targets, std::move(data_json), key);
        if (!r) {
            return apiFailure(r.error());
        }
        out = "{\"results\":[";
        for (size_t i = 0; i < r->size(); ++i) {
            if (i > 0) {
                out += ",";
            }
            appendPublished(&out, (*r)[i]);
        }
        out += "]}";
        return apiOk(std::move(out));
    }
    if (name == "presence") {
        std::string_view ch;
        if (!str("channel", &ch)) {
            return apiError(Error::kBadRequest, "missing 'channel' (a string)");
        }
        auto r = hub.presence(ch);
        if (!r) {
            return apiFailure(r.error());
        }
        std::vector<protocol::PresenceEntry> entries;
        entries.reserve(r->clients.size());
        for (const auto& w : r->clients) {
            entries.push_back({w->client_id, w->user, w->info_json});
        }
        protocol::encodePresence(&out, {}, r->channel, entries);
        return apiOk(std::move(out));
    }
    if (name == "history") {
        std::string_view ch;
        if (!str("channel", &ch)) {
            return apiError(Error::kBadRequest, "missing 'channel' (a string)");
        }
        std::optional<broker::StreamPos> since;
        simdjson::dom::object s;
        if (doc["since"].get_object().get(s) == simdjson::SUCCESS) {
            std::string_view epoch;
            uint64_t off = 0;
            if (s["epoch"].get_string().get(epoch) != simdjson::SUCCESS ||
                s["offset"].get_uint64().get(off) != simdjson::SUCCESS) {
                return apiError(Error::kBadRequest,
                                "'since' is {\"epoch\": string, \"offset\": n}");
            }
            since = broker::StreamPos{std::string(epoch), off};
        }
        uint64_t limit = 0;
        if (doc["limit"].get_uint64().get(limit) != simdjson::SUCCESS) {
            limit = 0;
        }
        auto r = hub.history(ch, since, limit);
        if (!r) {
            return apiFailure(r.error());
        }
        std::vector<protocol::HistoryItem> items;
        items.reserve(r->result.pubs.size());
        for (const auto& p : r->result.pubs) {
            items.push_back({p->offset, p->data});
        }
        std::optional<bool> recovered;
        if (since) {
            recovered = r->result.recovered;
        }
        protocol::encodeHistory(&out, {}, r->channel, r->result.top.epoch, r->result.top.offset,
                                recovered, items);
        return apiOk(std::move(out));
    }
    if (name == "channels") {
        out = "{\"channels\":[";
        bool first = true;
        for (const auto& ch : hub.channels()) {
            if (!first) {
                out += ",";
            }
            first = false;
            out += "{\"channel\":";
            protocol::appendJsonString(&out, ch.channel);
            out += ",\"epoch\":";
            protocol::appendJsonString(&out, ch.top.epoch);
            out += ",\"offset\":" + std::to_string(ch.top.offset) +
                   ",\"presence\":" + std::to_string(ch.presence) +
                   ",\"subscribers\":" + std::to_string(ch.subscribers) +
                   ",\"history\":" + std::to_string(ch.history) + "}";
        }
        out += "]}";
        return apiOk(std::move(out));
    }
    if (name == "disconnect") {
        std::string_view client;
        std::string_view user;
        const bool by_client = str("client", &client);
        const bool by_user = str("user", &user);
        if (by_client == by_user) {
            return apiError(Error::kBadRequest,
                            "give either 'client' (a client id) or 'user' (a token's subject)");
        }
        bool reconnect = true;
        if (doc["reconnect"].get_bool().get(reconnect) != simdjson::SUCCESS) {
            reconnect = true;
        }
        if (by_user) {
            auto r = hub.disconnectUser(user, reconnect);
            if (!r) {
                return apiFailure(r.error());
            }
            return apiOk("{\"result\":\"requested\",\"clients\":" + std::to_string(*r) + "}");
        }
        auto r = hub.disconnect(client, reconnect);
        if (!r) {
            return apiFailure(r.error());
        }
        return apiOk("{\"result\":\"requested\"}");
    }
    if (name == "info") {
        out = "{\"version\":\"" SB_VERSION_STRING "\",\"uptime_ms\":" +
              std::to_string(nowMs() - boot_ms_) + ",\"loops\":" + std::to_string(hub.loopCount()) +
              ",\"connections\":" + std::to_string(connections_()) +
              ",\"channels\":" + std::to_string(hub.channels().size()) +
              ",\"sessions\":" + std::to_string(hub.sessions()) + ",\"engine\":";
        appendEngine(&out, hub.engineStatus());
        out += "}";
        return apiOk(std::move(out));
    }
    return apiError(Error::kNotFound, "unknown API call");
}

}  // namespace sb::server
