// The /admin dashboard: login and sessions, the embedded pages, the JSON calls and the
// once-a-second snapshot pushed over /admin/ws (see admin.h and docs/admin.md).
#include "server/admin.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "base/log.h"
#include "loop/event_loop.h"
#include "protocol/codec.h"
#include "server/native_requests.h"
#include "ws/utf8.h"

namespace sb::server {

namespace admin {

namespace {

constexpr std::string_view kHex = "0123456789abcdef";

std::string hex(const unsigned char* p, size_t n) {
    std::string out;
    out.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        out.push_back(kHex[p[i] >> 4]);
        out.push_back(kHex[p[i] & 15]);
    }
    return out;
}

}  // namespace

bool constantTimeEquals(std::string_view a, std::string_view b) {
    if (a.empty() || b.empty()) {
        return false;
    }
    // Digests of equal size: the comparison's time says nothing about either length.
    unsigned char da[SHA256_DIGEST_LENGTH];
    unsigned char db[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
    SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

std::string_view cookieValue(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        const size_t semi = header.find(';');
        std::string_view pair = header.substr(0, semi);
        header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
        while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) {
            pair.remove_prefix(1);
        }
        const size_t eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
            std::string_view v = pair.substr(eq + 1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
                v.remove_suffix(1);
            }
            return v;
        }
    }
    return {};
}

std::string redactUrlCredentials(std::string text) {
    size_t pos = 0;
    while ((pos = text.find("://", pos)) != std::string::npos) {
        const size_t start = pos + 3;
        // The authority ends at the first '/', quote, comma, space or line end.
        size_t end = start;
        while (end < text.size() &&
               std::string_view("/\"', \n\t").find(text[end]) == std::string_view::npos) {
            ++end;
        }
        const size_t at = text.rfind('@', end == start ? start : end - 1);
        if (at != std::string::npos && at >= start && at < end) {
            text.replace(start, at - start, "<redacted>");
            end = start + std::string_view("<redacted>").size() + (end - at);
        }
        pos = end;
    }
    return text;
}

double quantileMs(const base::LatencyHistogram::Snapshot& h, double q) {
    uint64_t total = 0;
    for (uint64_t b : h.buckets) {
        total += b;
    }
    if (total == 0) {
        return -1;
    }
    const auto& bounds = base::LatencyHistogram::kBoundsMs;
    const double rank = q * static_cast<double>(total);
    uint64_t below = 0;
    for (size_t i = 0; i < h.buckets.size(); ++i) {
        const uint64_t n = h.buckets[i];
        if (n > 0 && static_cast<double>(below + n) >= rank) {
            if (i == bounds.size()) {
                return bounds.back();  // above the largest bound: that bound is all we know
            }
            const double lower = i == 0 ? 0.0 : bounds[i - 1];
            const double frac = (rank - static_cast<double>(below)) / static_cast<double>(n);
            return lower + (bounds[i] - lower) * std::clamp(frac, 0.0, 1.0);
        }
        below += n;
    }
    return bounds.back();
}

std::string Sessions::keyOf(std::string_view token) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d);
    return hex(d, sizeof d);
}

std::string Sessions::create(uint64_t now_ms, uint64_t ttl_ms) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        return {};
    }
    std::string token = hex(raw, sizeof raw);
    std::lock_guard lock(mu_);
    std::erase_if(expiry_, [now_ms](const auto& e) { return e.second <= now_ms; });
    while (expiry_.size() >= kMax) {
        auto oldest =
            std::min_element(expiry_.begin(), expiry_.end(),
                             [](const auto& a, const auto& b) { return a.second < b.second; });
        expiry_.erase(oldest);
    }
    expiry_[keyOf(token)] = now_ms + ttl_ms;
    return token;
}

bool Sessions::valid(std::string_view token, uint64_t now_ms) const {
    if (token.size() != 64) {
        return false;
    }
    const std::string key = keyOf(token);
    std::lock_guard lock(mu_);
    auto it = expiry_.find(key);
    return it != expiry_.end() && it->second > now_ms;
}

void Sessions::remove(std::string_view token) {
    const std::string key = keyOf(token);
    std::lock_guard lock(mu_);
    expiry_.erase(key);
}

void Sessions::clear() {
    std::lock_guard lock(mu_);
    expiry_.clear();
}

size_t Sessions::size() const {
    std::lock_guard lock(mu_);
    return expiry_.size();
}

void LoginBrake::refill(uint64_t now_ms) {
    if (refill_ms_ == 0) {
        refill_ms_ = now_ms;
    }
    if (now_ms > refill_ms_) {
        tokens_ = std::min(kBurst, tokens_ + static_cast<double>(now_ms - refill_ms_) /
                                                 static_cast<double>(kRefillMs));
        refill_ms_ = now_ms;
    }
}

uint64_t LoginBrake::waitMs(uint64_t now_ms) {
    std::lock_guard lock(mu_);
    refill(now_ms);
    if (tokens_ >= 1.0) {
        return 0;
    }
    return static_cast<uint64_t>((1.0 - tokens_) * static_cast<double>(kRefillMs)) + 1;
}

void LoginBrake::failed(uint64_t now_ms) {
    std::lock_guard lock(mu_);
    refill(now_ms);
    tokens_ = std::max(0.0, tokens_ - 1.0);
}

}  // namespace admin

namespace {

constexpr std::string_view kCookie = "sb_admin";
// /admin/ws closes with this when the login behind it ended (logout, expiry, new password).
constexpr uint16_t kSessionEndedCode = 4401;
// A dashboard that cannot keep up loses snapshots (droppable sends) instead of its connection;
// this bounds what one stalled tab can hold (a snapshot is a few KiB).
constexpr size_t kWsBacklog = 256 * 1024;
constexpr size_t kChartPoints = 300;  // 5 minutes of one point a second
constexpr size_t kTopChannels = 10;
constexpr size_t kChannelResults = 50;
constexpr size_t kHistoryShown = 20;

uint64_t monoMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

uint64_t wallMs() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// Pages: never cached, never framed (the dashboard has buttons), scripts and connections only
// to this server.
constexpr std::string_view kPageHeaders =
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
    "Referrer-Policy: same-origin\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'\r\n";

const StaticFile* adminFile(std::string_view path) {
    for (const StaticFile& f : adminFiles()) {
        if (f.path == path) {
            return &f;
        }
    }
    return nullptr;
}

std::string htmlEscape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out.push_back(c);
        }
    }
    return out;
}

// Text of unknown origin (publication data, presence info) as a JSON string.
void appendText(std::string* out, std::string_view s) {
    if (ws::isValidUtf8(s)) {
        protocol::appendJsonString(out, s);
        return;
    }
    std::string ascii(s);
    for (char& c : ascii) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            c = '?';
        }
    }
    protocol::appendJsonString(out, ascii);
}

void appendNum(std::string* out, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    *out += buf;
}

HttpReply json(uint16_t status, std::string body) {
    body += "\n";
    return HttpReply{
        .status = status,
        .content_type = "application/json",
        .body = std::move(body),
        .extra_headers = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"};
}

HttpReply jsonFail(uint16_t status, std::string_view code, std::string_view message) {
    std::string body = "{\"error\":";
    protocol::appendJsonString(&body, code);
    body += ",\"message\":";
    appendText(&body, message);
    body += "}";
    return json(status, std::move(body));
}

HttpReply notFound() {
    return HttpReply{.status = 404,
                     .body =
                         "the admin dashboard is off: set [admin] password in the config (or "
                         "SWITCHBOARD_ADMIN_PASSWORD) and restart or send SIGHUP; see "
                         "docs/admin.md\n",
                     .extra_headers = "Cache-Control: no-store\r\n"};
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

// A browser's request from another site carries its Origin: refuse it (on top of the cookie's
// SameSite=Strict). Requests without Origin (curl, same-origin GETs) pass. The page's host is
// Host or, behind a proxy that rewrites Host, the first X-Forwarded-Host: a page on another
// site cannot set either (a cross-site request with custom headers needs a CORS preflight,
// which this server never grants).
bool sameOrigin(const http::Request& req) {
    std::string_view origin = req.header("origin");
    if (origin.empty()) {
        return true;
    }
    if (origin.starts_with("http://")) {
        origin.remove_prefix(7);
    } else if (origin.starts_with("https://")) {
        origin.remove_prefix(8);
    } else {
        return false;  // "null" (sandboxed or privacy-stripped) and other schemes
    }
    if (equalsIgnoreCase(origin, req.header("host"))) {
        return true;
    }
    std::string_view forwarded = req.header("x-forwarded-host");
    forwarded = forwarded.substr(0, forwarded.find(','));
    while (!forwarded.empty() && forwarded.back() == ' ') {
        forwarded.remove_suffix(1);
    }
    return !forwarded.empty() && equalsIgnoreCase(origin, forwarded);
}

void appendEngine(std::string* out, const broker::EngineStatus& e) {
    *out += "{\"name\":";
    protocol::appendJsonString(out, e.engine);
    *out += e.available ? ",\"available\":true" : ",\"available\":false";
    *out += ",\"error\":";
    appendText(out, e.error);
    *out += ",\"node\":";
    protocol::appendJsonString(out, e.node_id);
    *out += ",\"reconnects\":" + std::to_string(e.reconnects) + ",\"nodes\":[";
    for (size_t i = 0; i < e.nodes.size(); ++i) {
        const broker::NodeStatus& n = e.nodes[i];
        *out += i == 0 ? "{\"id\":" : ",{\"id\":";
        protocol::appendJsonString(out, n.id);
        *out += ",\"name\":";
        appendText(out, n.name);
        *out += ",\"connections\":" + std::to_string(n.connections) +
                ",\"age_ms\":" + std::to_string(n.age_ms) + "}";
    }
    *out += "]}";
}

void appendChannel(std::string* out, const broker::ChannelSummary& c) {
    *out += "{\"channel\":";
    protocol::appendJsonString(out, c.channel);
    *out += ",\"subscribers\":" + std::to_string(c.subscribers) +
            ",\"presence\":" + std::to_string(c.presence) +
            ",\"loops\":" + std::to_string(c.loops) + ",\"history\":" + std::to_string(c.history) +
            ",\"offset\":" + std::to_string(c.top.offset) + "}";
}

// Busiest first: this node's subscribers, then presence entries (cluster-wide where the
// namespace keeps presence), then the loops holding subscribers, then history.
bool busier(const broker::ChannelSummary& a, const broker::ChannelSummary& b) {
    if (a.subscribers != b.subscribers) {
        return a.subscribers > b.subscribers;
    }
    if (a.presence != b.presence) {
        return a.presence > b.presence;
    }
    if (a.loops != b.loops) {
        return a.loops > b.loops;
    }
    if (a.history != b.history) {
        return a.history > b.history;
    }
    return a.channel < b.channel;
}

uint64_t minus(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

}  // namespace

struct Admin::Socket : transport::SocketData {
    explicit Socket(std::string t) : token(std::move(t)) {}
    std::string token;  // the session's cookie value
    uint32_t loop = 0;
};

Admin::Admin(App& app, AdminOptions options, std::string config_text,
             const transport::WebSocketBehavior& base, const ws::DeflateServerPolicy& deflate)
    : app_(app),
      ws_behavior_(base),
      options_(std::move(options)),
      config_text_(admin::redactUrlCredentials(std::move(config_text))),
      boot_ms_(monoMs()) {
    ws_behavior_.on_open = nullptr;
    ws_behavior_.on_message = nullptr;
    ws_behavior_.on_close = nullptr;
    ws_behavior_.on_drain = nullptr;
    ws_behavior_.max_message_size = 4096;  // the page sends nothing; a close reason fits
    ws_behavior_.max_backlog = kWsBacklog;
    registerRoutes();
    WsRoute route;
    route.deflate = deflate;
    route.behavior = ws_behavior_;
    route.on_upgrade = [this](const http::Request& req) {
        UpgradeCheck check;
        if (!enabled()) {
            check.status = 404;
            check.code = "not_found";
            check.message = "the admin dashboard is off";
        } else if (!sameOrigin(req)) {
            check.status = 403;
            check.code = "forbidden";
            check.message = "Origin is not this server";
        } else if (!authorized(req)) {
            check.status = 401;
            check.code = "unauthorized";
            check.message = "log in at /admin first";
        } else {
            check.data = std::make_unique<Socket>(
                std::string(admin::cookieValue(req.header("cookie"), kCookie)));
        }
        return check;
    };
    route.behavior.on_open = [this](transport::WebSocket& ws) {
        auto* s = ws.data<Socket>();
        s->loop = loop::EventLoop::current()->id();
        sockets_.at(s->loop).push_back(&ws);
        watchers_.fetch_add(1, std::memory_order_relaxed);
        // The charts' last minutes, then the latest figures, so the page is full at once.
        std::string history = "{\"type\":\"history\",\"points\":[";
        std::shared_ptr<const std::string> last;
        {
            std::lock_guard lock(mu_);
            bool first = true;
            for (const Point& p : points_) {
                history += first ? "[" : ",[";
                first = false;
                history += std::to_string(p.t_ms);
                for (double v : {p.connects, p.disconnects, p.messages_in, p.messages_out, p.p50,
                                 p.p95, p.p99}) {
                    history += ",";
                    appendNum(&history, v);
                }
                history += "]";
            }
            last = last_snapshot_;
        }
        history += "]}";
        ws.sendText(history, {.droppable = true});
        if (last) {
            ws.sendText(*last, {.droppable = true});
        }
    };
    route.behavior.on_message = [](transport::WebSocket&, ws::Opcode, std::span<uint8_t>) {};
    route.behavior.on_close = [this](transport::WebSocket& ws, uint16_t, std::string_view) {
        auto* s = ws.data<Socket>();
        if (s == nullptr || s->loop >= sockets_.size()) {
            return;
        }
        auto& v = sockets_[s->loop];
        if (auto it = std::find(v.begin(), v.end(), &ws); it != v.end()) {
            v.erase(it);
            watchers_.fetch_sub(1, std::memory_order_relaxed);
        }
    };
    app_.ws("/admin/ws", std::move(route));
}

Admin::~Admin() {
    {
        std::lock_guard lock(thread_mu_);
        stop_ = true;
    }
    thread_cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Admin::attach(messaging::Hub* hub, std::function<uint64_t()> poll_sessions) {
    hub_ = hub;
    poll_sessions_ = std::move(poll_sessions);
    sockets_.resize(app_.loopCount());
    {
        std::lock_guard lock(mu_);
        if (!options_.password.empty()) {
            SB_INFO("admin: the dashboard is on at /admin");
            if (options_.password.size() < 12) {
                SB_WARN("admin: admin.password is shorter than 12 characters: pick a longer one");
            }
        }
    }
    // Like the Hub's housekeeping: started with every signal blocked, so the main thread's
    // sigtimedwait takes them all.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Admin::reload(const AdminOptions& options, std::string config_text) {
    bool changed = false;
    {
        std::lock_guard lock(mu_);
        changed = options.password != options_.password;
        options_ = options;
        config_text_ = admin::redactUrlCredentials(std::move(config_text));
    }
    if (changed) {
        // A new password (say, the old one leaked) ends every login; open dashboards are
        // closed by the next snapshot.
        sessions_.clear();
        SB_INFO("admin: admin.password changed: every dashboard login ended; /admin is %s",
                options.password.empty() ? "off" : "on");
    }
}

bool Admin::enabled() const {
    std::lock_guard lock(mu_);
    return !options_.password.empty();
}

bool Admin::authorized(const http::Request& req) const {
    return sessions_.valid(admin::cookieValue(req.header("cookie"), kCookie), monoMs());
}

std::string Admin::cookie(std::string_view token, bool expire) const {
    uint64_t ttl_s = 0;
    {
        std::lock_guard lock(mu_);
        ttl_s = options_.session_ttl_ms / 1000;
    }
    std::string c =
        "Set-Cookie: " + std::string(kCookie) + "=" + std::string(token) +
        "; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(expire ? 0 : ttl_s);
    // Over TLS the cookie must never travel in clear (with a separate tls.port, use the
    // dashboard there: browsers do not store a Secure cookie from a plain http:// page).
    if (app_.tlsPort() != 0) {
        c += "; Secure";
    }
    return c + "\r\n";
}

HttpReply Admin::loginPage(uint16_t status, std::string_view error) const {
    const StaticFile* f = adminFile("/admin/login.html");
    std::string body = f != nullptr ? std::string(f->body) : std::string("<form method=post>");
    constexpr std::string_view kMarker = "<!--error-->";
    if (size_t at = body.find(kMarker); at != std::string::npos) {
        body.replace(at, kMarker.size(), htmlEscape(error));
    }
    return HttpReply{.status = status,
                     .content_type = "text/html; charset=utf-8",
                     .body = std::move(body),
                     .extra_headers = std::string(kPageHeaders)};
}

HttpReply Admin::login(const http::Request& req, std::string_view body) {
    if (!enabled()) {
        return notFound();
    }
    if (!sameOrigin(req)) {
        return loginPage(403, "This form must be sent from this server's own page.");
    }
    const uint64_t now = monoMs();
    if (const uint64_t wait = brake_.waitMs(now); wait > 0) {
        const uint64_t s = (wait + 999) / 1000;
        HttpReply r = loginPage(
            429, "Too many failed logins: wait " + std::to_string(s) + " s and try again.");
        r.extra_headers += "Retry-After: " + std::to_string(s) + "\r\n";
        return r;
    }
    const std::string given = queryParam(body, "password");
    std::string password;
    uint64_t ttl_ms = 0;
    {
        std::lock_guard lock(mu_);
        password = options_.password;
        ttl_ms = options_.session_ttl_ms;
    }
    if (!admin::constantTimeEquals(given, password)) {
        brake_.failed(now);
        SB_WARN("admin: failed login at /admin/login");
        return loginPage(401, "Wrong password.");
    }
    const std::string token = sessions_.create(now, ttl_ms);
    if (token.empty()) {
        return loginPage(500, "The server could not make a session (no randomness): try again.");
    }
    SB_INFO("admin: dashboard login");
    return HttpReply{
        .status = 303,
        .body = "logged in\n",
        .extra_headers = "Location: /admin\r\nCache-Control: no-store\r\n" + cookie(token, false)};
}

void Admin::registerRoutes() {
    app_.get("/admin", [this](const http::Request& req, std::string_view) {
        if (!enabled()) {
            return notFound();
        }
        if (!authorized(req)) {
            return loginPage(200, "");
        }
        const StaticFile* f = adminFile("/admin/index.html");
        return HttpReply{.content_type = "text/html; charset=utf-8",
                         .body = f != nullptr ? std::string(f->body) : std::string(),
                         .extra_headers = std::string(kPageHeaders)};
    });
    app_.post("/admin/login",
              [this](const http::Request& req, std::string_view body) { return login(req, body); });
    app_.post("/admin/logout", [this](const http::Request& req, std::string_view) {
        if (!enabled()) {
            return notFound();
        }
        if (!sameOrigin(req)) {
            return jsonFail(403, "forbidden", "Origin is not this server");
        }
        sessions_.remove(admin::cookieValue(req.header("cookie"), kCookie));
        return HttpReply{
            .status = 303,
            .body = "logged out\n",
            .extra_headers = "Location: /admin\r\nCache-Control: no-store\r\n" + cookie("", true)};
    });
    // Assets hold no data: served to anyone while the dashboard is on (the login page needs
    // its style sheet). The pages themselves are the /admin route's.
    for (const StaticFile& f : adminFiles()) {
        if (f.path.ends_with(".html")) {
            continue;
        }
        app_.get(std::string(f.path), [this, file = &f](const http::Request&, std::string_view) {
            if (!enabled()) {
                return notFound();
            }
            return HttpReply{.content_type = std::string(file->content_type),
                             .body = std::string(file->body),
                             .extra_headers =
                                 "Cache-Control: no-cache\r\nX-Content-Type-Options: "
                                 "nosniff\r\n"};
        });
    }
    for (const char* name : {"channels", "channel", "config"}) {
        app_.get(std::string("/admin/api/") + name,
                 [this, name](const http::Request& req, std::string_view body) {
                     return api(name, req, body);
                 });
    }
    app_.post("/admin/api/disconnect", [this](const http::Request& req, std::string_view body) {
        return api("disconnect", req, body);
    });
}

HttpReply Admin::api(std::string_view name, const http::Request& req, std::string_view body) {
    if (!enabled()) {
        return notFound();
    }
    if (!authorized(req)) {
        return jsonFail(401, "unauthorized", "log in at /admin first");
    }
    if (hub_ == nullptr) {
        return jsonFail(503, "unavailable", "the server is starting");
    }
    if (name == "config") {
        std::lock_guard lock(mu_);
        return HttpReply{.body = config_text_,
                         .extra_headers =
                             "Cache-Control: no-store\r\nX-Content-Type-Options: "
                             "nosniff\r\n"};
    }
    if (name == "channels") {
        const std::string q = queryParam(req.query, "q");
        std::vector<broker::ChannelSummary> all = hub_->channels();
        std::vector<broker::ChannelSummary> found;
        for (auto& c : all) {
            if (q.empty() || c.channel.find(q) != std::string::npos) {
                found.push_back(std::move(c));
            }
        }
        std::sort(found.begin(), found.end(), busier);
        std::string out = "{\"total\":" + std::to_string(found.size()) + ",\"channels\":[";
        for (size_t i = 0; i < found.size() && i < kChannelResults; ++i) {
            if (i > 0) {
                out += ",";
            }
            appendChannel(&out, found[i]);
        }
        return json(200, out + "]}");
    }
    if (name == "channel") {
        const std::string ch = queryParam(req.query, "name");
        if (ch.empty()) {
            return jsonFail(400, "bad_request", "missing ?name=CHANNEL");
        }
        std::string out = "{\"channel\":";
        appendText(&out, ch);
        // Null client: the server's privileges (every namespace, private channels too).
        auto presence = hub_->presence(ch);
        if (presence) {
            out += ",\"presence\":[";
            for (size_t i = 0; i < presence->clients.size(); ++i) {
                const auto& c = *presence->clients[i];
                out += i == 0 ? "{\"client\":" : ",{\"client\":";
                protocol::appendJsonString(&out, c.client_id);
                out += ",\"user\":";
                appendText(&out, c.user);
                out += ",\"info\":";
                appendText(&out, c.info_json);
                out += "}";
            }
            out += "]";
        } else {
            out += ",\"presence_error\":";
            appendText(&out, presence.error().message);
        }
        auto history = hub_->history(ch, std::nullopt, kHistoryShown);
        if (history) {
            // Publication times are the engine's monotonic milliseconds: the page shows ages.
            out += ",\"now_ms\":" + std::to_string(monoMs()) + ",\"epoch\":";
            appendText(&out, history->result.top.epoch);
            out += ",\"offset\":" + std::to_string(history->result.top.offset) + ",\"history\":[";
            const auto& pubs = history->result.pubs;
            for (size_t i = 0; i < pubs.size(); ++i) {
                out += i == 0 ? "{\"offset\":" : ",{\"offset\":";
                out += std::to_string(pubs[i]->offset) +
                       ",\"time_ms\":" + std::to_string(pubs[i]->time_ms) + ",\"data\":";
                appendText(&out, pubs[i]->data);
                out += "}";
            }
            out += "]";
        } else {
            out += ",\"history_error\":";
            appendText(&out, history.error().message);
        }
        return json(200, out + "}");
    }
    // disconnect: a JSON body from the page's script. Forms cannot send one across sites
    // without a CORS preflight, which this server never grants.
    if (!sameOrigin(req)) {
        return jsonFail(403, "forbidden", "Origin is not this server");
    }
    if (!req.header("content-type").starts_with("application/json")) {
        return jsonFail(415, "bad_request", "send application/json");
    }
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string padded(body.empty() ? std::string_view("{}") : body);
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
        return jsonFail(400, "bad_json", "the body must be a JSON object");
    }
    bool reconnect = true;
    if (bool b = false; doc["reconnect"].get_bool().get(b) == simdjson::SUCCESS) {
        reconnect = b;
    }
    std::string_view client, user;
    const bool has_client = doc["client"].get_string().get(client) == simdjson::SUCCESS;
    const bool has_user = doc["user"].get_string().get(user) == simdjson::SUCCESS;
    if (has_client && !client.empty()) {
        if (auto r = hub_->disconnect(client, reconnect); !r) {
            return jsonFail(404, "unknown_client", r.error().message);
        }
        SB_INFO("admin: client %.*s disconnected from the dashboard",
                static_cast<int>(std::min<size_t>(client.size(), 128)), client.data());
        return json(200, "{\"disconnected\":1}");
    }
    if (has_user && !user.empty()) {
        auto r = hub_->disconnectUser(user, reconnect);
        if (!r) {
            return jsonFail(404, "unknown_client", r.error().message);
        }
        SB_INFO("admin: user's connections disconnected from the dashboard (%zu here)", *r);
        return json(200, "{\"disconnected\":" + std::to_string(*r) + "}");
    }
    return jsonFail(400, "bad_request", "give \"client\" (a client id) or \"user\"");
}

void Admin::run() {
    uint64_t last = monoMs();
    std::unique_lock lock(thread_mu_);
    while (!thread_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
        lock.unlock();
        const uint64_t now = monoMs();
        tick(now, static_cast<double>(now - last) / 1000.0);
        last = now;
        lock.lock();
    }
}

void Admin::tick(uint64_t now_ms, double seconds) {
    const messaging::StatsTotals t = hub_->totals();
    const size_t loops = app_.loopCount();
    std::vector<std::pair<uint64_t, uint64_t>> per_loop(loops);
    for (size_t i = 0; i < loops; ++i) {
        const messaging::Stats& s = hub_->stats(static_cast<uint32_t>(i));
        per_loop[i] = {s.messages_in.value(), s.messages_out.value()};
    }
    if (!have_prev_ || seconds <= 0) {
        prev_ = t;
        prev_loops_ = std::move(per_loop);
        have_prev_ = true;
        return;
    }
    auto rate = [seconds](uint64_t now, uint64_t before) {
        return static_cast<double>(minus(now, before)) / seconds;
    };
    const uint64_t connects = minus(t.clients_total, prev_.clients_total);
    // Those that left = those that came - how much the open count grew.
    const int64_t grew = t.clients - prev_.clients;
    const uint64_t disconnects = grew >= 0 ? minus(connects, static_cast<uint64_t>(grew))
                                           : connects + static_cast<uint64_t>(-grew);
    base::LatencyHistogram::Snapshot window;
    for (size_t i = 0; i < window.buckets.size(); ++i) {
        window.buckets[i] = minus(t.delivery_latency.buckets[i], prev_.delivery_latency.buckets[i]);
    }
    window.count = minus(t.delivery_latency.count, prev_.delivery_latency.count);
    Point p{.t_ms = wallMs(),
            .connects = static_cast<double>(connects) / seconds,
            .disconnects = static_cast<double>(disconnects) / seconds,
            .messages_in = rate(t.messages_in, prev_.messages_in),
            .messages_out = rate(t.messages_out, prev_.messages_out),
            .p50 = admin::quantileMs(window, 0.50),
            .p95 = admin::quantileMs(window, 0.95),
            .p99 = admin::quantileMs(window, 0.99)};
    {
        std::lock_guard lock(mu_);
        points_.push_back(p);
        while (points_.size() > kChartPoints) {
            points_.pop_front();
        }
    }
    const bool watched = watchers_.load(std::memory_order_relaxed) > 0;
    if (watched) {
        // The full snapshot costs a walk over every channel: only while someone looks.
        const ConnectionCounts cc = app_.connectionCounts();
        const RefusedCounts refused = app_.refusedCounts();
        std::string out = "{\"type\":\"snapshot\",\"t\":" + std::to_string(p.t_ms) +
                          ",\"uptime_s\":" + std::to_string((now_ms - boot_ms_) / 1000) +
                          ",\"connections\":{\"websocket\":" + std::to_string(cc.websocket) +
                          ",\"sse\":" + std::to_string(cc.stream) +
                          ",\"poll\":" + std::to_string(poll_sessions_ ? poll_sessions_() : 0) +
                          ",\"http\":" + std::to_string(cc.http) +
                          "},\"clients\":" + std::to_string(t.clients < 0 ? 0 : t.clients) +
                          ",\"rates\":{";
        const std::pair<const char*, double> rates[] = {
            {"connects", p.connects},
            {"disconnects", p.disconnects},
            {"messages_in", p.messages_in},
            {"messages_out", p.messages_out},
            {"publications", rate(t.publications, prev_.publications)},
            {"deliveries", rate(t.deliveries, prev_.deliveries)},
            {"bytes_in", rate(t.bytes_in, prev_.bytes_in)},
            {"bytes_out", rate(t.bytes_out, prev_.bytes_out)}};
        bool first = true;
        for (const auto& [k, v] : rates) {
            out += first ? "\"" : ",\"";
            first = false;
            out += k;
            out += "\":";
            appendNum(&out, v);
        }
        out += "},\"latency_ms\":{\"count\":" + std::to_string(window.count) + ",\"p50\":";
        appendNum(&out, p.p50);
        out += ",\"p95\":";
        appendNum(&out, p.p95);
        out += ",\"p99\":";
        appendNum(&out, p.p99);
        // WebSocket disconnects by close code since the start: why clients leave.
        out += "},\"disconnects_by_code\":{";
        first = true;
        for (size_t i = 0; i < t.disconnects.size(); ++i) {
            if (t.disconnects[i] == 0) {
                continue;
            }
            out += first ? "\"" : ",\"";
            first = false;
            out += i < messaging::kCountedCloseCodes.size()
                       ? std::to_string(messaging::kCountedCloseCodes[i])
                       : std::string("other");
            out += "\":" + std::to_string(t.disconnects[i]);
        }
        uint64_t backlog = 0;
        const std::vector<uint32_t> lag = app_.loopLagMs();
        std::string loops_json = "[";
        for (size_t i = 0; i < loops; ++i) {
            const uint64_t b = app_.loopAt(i).backlog_bytes.load(std::memory_order_relaxed);
            backlog += b;
            const messaging::Stats& s = hub_->stats(static_cast<uint32_t>(i));
            loops_json += i == 0 ? "{\"loop\":" : ",{\"loop\":";
            loops_json +=
                std::to_string(i) +
                ",\"clients\":" + std::to_string(std::max<int64_t>(0, s.clients.value())) +
                ",\"backlog_bytes\":" + std::to_string(b) +
                ",\"lag_ms\":" + std::to_string(i < lag.size() ? lag[i] : 0) + ",\"messages_in\":";
            const auto& before = i < prev_loops_.size() ? prev_loops_[i] : per_loop[i];
            appendNum(&loops_json, rate(per_loop[i].first, before.first));
            loops_json += ",\"messages_out\":";
            appendNum(&loops_json, rate(per_loop[i].second, before.second));
            loops_json += "}";
        }
        out += "},\"backlog_bytes\":" + std::to_string(backlog) + ",\"totals\":{";
        const std::pair<const char*, uint64_t> totals[] = {
            {"clients_total", t.clients_total},
            {"messages_in", t.messages_in},
            {"messages_out", t.messages_out},
            {"publications", t.publications},
            {"deliveries", t.deliveries},
            {"slow_consumer_disconnects", t.slow_consumer_disconnects},
            {"slow_consumer_drops", t.slow_consumer_drops},
            {"takeovers", t.takeovers},
            {"rate_limited", t.rate_limited},
            {"protocol_errors", t.protocol_errors},
            {"refused_max_connections", refused.max_connections},
            {"refused_per_ip", refused.per_ip},
            {"refused_rate", refused.rate},
            {"refused_admission", refused.admission},
            {"session_resumes", t.resumes},
            {"session_resumes_not_found", t.resumes_failed},
            {"ping_floods", refused.ping_floods}};
        first = true;
        for (const auto& [k, v] : totals) {
            out += first ? "\"" : ",\"";
            first = false;
            out += k;
            out += "\":" + std::to_string(v);
        }
        std::vector<broker::ChannelSummary> channels = hub_->channels();
        // Publications per second of every channel: its offset's growth since the last tick
        // (same epoch). A map of every channel, rebuilt each second, only while someone looks.
        std::unordered_map<std::string, broker::StreamPos> offsets_now;
        offsets_now.reserve(channels.size());
        std::vector<std::pair<double, size_t>> by_rate;  // (rate, index in channels)
        for (size_t i = 0; i < channels.size(); ++i) {
            const broker::ChannelSummary& c = channels[i];
            if (auto it = prev_offsets_.find(c.channel); it != prev_offsets_.end() &&
                                                         it->second.epoch == c.top.epoch &&
                                                         c.top.offset > it->second.offset) {
                by_rate.emplace_back(
                    static_cast<double>(c.top.offset - it->second.offset) / seconds, i);
            }
            offsets_now.emplace(c.channel, c.top);
        }
        prev_offsets_ = std::move(offsets_now);
        const size_t fastest = std::min(kTopChannels, by_rate.size());
        std::partial_sort(by_rate.begin(), by_rate.begin() + static_cast<std::ptrdiff_t>(fastest),
                          by_rate.end(), [&](const auto& a, const auto& b) {
                              return a.first != b.first
                                         ? a.first > b.first
                                         : channels[a.second].channel < channels[b.second].channel;
                          });
        std::string fastest_json = "[";
        for (size_t i = 0; i < fastest; ++i) {
            const broker::ChannelSummary& c = channels[by_rate[i].second];
            fastest_json += i == 0 ? "{\"channel\":" : ",{\"channel\":";
            protocol::appendJsonString(&fastest_json, c.channel);
            fastest_json += ",\"publications\":";
            appendNum(&fastest_json, by_rate[i].first);
            fastest_json += ",\"subscribers\":" + std::to_string(c.subscribers) + "}";
        }
        fastest_json += "]";
        const size_t top = std::min(kTopChannels, channels.size());
        std::partial_sort(channels.begin(), channels.begin() + static_cast<std::ptrdiff_t>(top),
                          channels.end(), busier);
        out += "},\"sessions\":" + std::to_string(hub_->sessions()) +
               ",\"channels\":{\"count\":" + std::to_string(channels.size()) + ",\"top\":[";
        for (size_t i = 0; i < top; ++i) {
            if (i > 0) {
                out += ",";
            }
            appendChannel(&out, channels[i]);
        }
        out += "],\"fastest\":" + fastest_json;
        // Per namespace: subscriptions now, publications and deliveries per second.
        out += "},\"namespaces\":[";
        std::map<std::string, messaging::NamespaceTotals> ns_now;
        first = true;
        for (messaging::NamespaceTotals& n : hub_->namespaceTotals()) {
            const auto before = prev_ns_.find(n.name);
            const messaging::NamespaceTotals& b = before == prev_ns_.end() ? n : before->second;
            out += first ? "{\"name\":\"" : ",{\"name\":\"";
            first = false;
            out += n.name;  // a configured name: [a-z0-9_-]
            out += "\",\"subscriptions\":" + std::to_string(std::max<int64_t>(0, n.subscriptions)) +
                   ",\"publications\":";
            appendNum(&out, rate(n.publications, b.publications));
            out += ",\"deliveries\":";
            appendNum(&out, rate(n.deliveries, b.deliveries));
            out += "}";
            std::string name = n.name;
            ns_now.emplace(std::move(name), std::move(n));
        }
        prev_ns_ = std::move(ns_now);
        out += "],\"engine\":";
        appendEngine(&out, hub_->engineStatus());
        out += ",\"loops\":" + loops_json +
               "],\"admins\":" + std::to_string(watchers_.load(std::memory_order_relaxed)) + "}";
        auto message = std::make_shared<const std::string>(std::move(out));
        {
            std::lock_guard lock(mu_);
            last_snapshot_ = message;
        }
        push(std::move(message), true);
    }
    prev_ = t;
    prev_loops_ = std::move(per_loop);
}

void Admin::push(std::shared_ptr<const std::string> message, bool check_sessions) {
    for (size_t i = 0; i < app_.loopCount(); ++i) {
        app_.loopAt(i).post([this, i, message, check_sessions] {
            const uint64_t now = monoMs();
            // end() reports the close later (at the end of the iteration): the vector does not
            // change under this loop.
            for (transport::WebSocket* ws : sockets_[i]) {
                if (check_sessions && !sessions_.valid(ws->data<Socket>()->token, now)) {
                    ws->end(kSessionEndedCode, "admin session ended: log in again");
                    continue;
                }
                ws->sendText(*message, {.droppable = true});
            }
        });
    }
}

}  // namespace sb::server
