#include "server/settings.h"

#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/toml.h"
#include "server/options.h"

namespace sb::server {

namespace {

// Namespace options accepted under [namespaces.NAME] (resolved by the messaging layer).
const char* const kNamespaceOptions[] = {"presence",      "join_leave",        "history_size",
                                         "history_ttl",   "client_publish",    "delivery",
                                         "slow_consumer", "max_data_bytes",    "max_unacked",
                                         "session_ttl",   "idempotency_window"};

size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        }
        prev.swap(cur);
    }
    return prev[b.size()];
}

std::string suggestion(std::string_view key) {
    std::string best;
    size_t best_d = 4;
    for (const auto& d : settingDefs()) {
        size_t dist = editDistance(key, d.key);
        if (dist < best_d) {
            best_d = dist;
            best = d.key;
        }
    }
    return best.empty() ? "" : " (did you mean " + best + "?)";
}

const SettingDef* findKey(std::string_view key) {
    for (const auto& d : settingDefs()) {
        if (d.key == key)
            return &d;
    }
    return nullptr;
}

bool isNamespaceKey(std::string_view key, std::string* ns, std::string* opt) {
    if (!key.starts_with("namespaces."))
        return false;
    std::string_view rest = key.substr(11);
    size_t dot = rest.rfind('.');
    if (dot == std::string_view::npos || dot == 0)
        return false;
    std::string_view o = rest.substr(dot + 1);
    for (const char* known : kNamespaceOptions) {
        if (o == known) {
            *ns = std::string(rest.substr(0, dot));
            *opt = std::string(o);
            return true;
        }
    }
    return false;
}

std::string tomlToString(const config::TomlValue& v) {
    if (v.isString())
        return std::get<std::string>(v.v);
    if (v.isInt())
        return std::to_string(std::get<int64_t>(v.v));
    if (v.isBool())
        return std::get<bool>(v.v) ? "true" : "false";
    if (v.isArray()) {
        std::string out;
        for (const auto& item : std::get<config::TomlArray>(v.v)) {
            if (!out.empty())
                out += ",";
            out += tomlToString(item);
        }
        return out;
    }
    std::ostringstream os;
    os << std::get<double>(v.v);
    return os.str();
}

std::vector<std::string> splitList(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        size_t c = s.find(',');
        std::string_view item = s.substr(0, c);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ')
            item.remove_suffix(1);
        if (!item.empty())
            out.emplace_back(item);
        if (c == std::string_view::npos)
            break;
        s.remove_prefix(c + 1);
    }
    return out;
}

}  // namespace

const std::vector<SettingDef>& settingDefs() {
    using K = SettingKind;
    static const std::vector<SettingDef> kDefs = {
        {"server.host", "--host", K::kString, "0.0.0.0", "listen address"},
        {"server.port", "--port", K::kUint, "8080", "listen port; 0 = any free port (printed)"},
        {"server.threads", "--threads", K::kUint, "0",
         "event loops; 0 = one per core (shared-nothing, SO_REUSEPORT)"},
        {"server.reuse_port", "--reuse-port", K::kBool, "false",
         "share the port with other processes listening on it; off = a busy port is an error"},
        {"server.log_level", "--log-level", K::kLogLevel, "info",
         "trace|debug|info|warn|error|off"},
        {"server.log_json", "--log-json", K::kBool, "false", "structured JSON log lines"},
        {"server.max_header_bytes", "--max-header-bytes", K::kSize, "8KiB",
         "largest HTTP request head (431 above): real browsers send < 2 KiB"},
        {"server.handshake_timeout", "--handshake-timeout", K::kDuration, "10s",
         "time to complete the HTTP request/upgrade (slowloris guard)"},
        {"server.shutdown_timeout", "--shutdown-timeout", K::kDuration, "10s",
         "SIGTERM: time allowed for close handshakes and draining"},
        {"server.max_connections", "--max-connections", K::kUint, "1000000",
         "global connection limit (503 above); the OS file limit usually bites first"},
        {"server.max_connections_per_ip", "--max-connections-per-ip", K::kUint, "0",
         "open connections per client IP; 0 = unlimited (proxies share one IP)"},
        {"server.allowed_origins", "--allowed-origins", K::kList, "",
         "Origin allowlist for WebSocket upgrades; empty = any (set it for browsers)"},
        {"websocket.max_message_size", "--max-message-size", K::kSize, "16MiB",
         "largest message after reassembly/inflation (close 1009 above); 16 MiB covers "
         "Autobahn 9.x"},
        {"websocket.max_backlog", "--max-backlog", K::kSize, "64MiB",
         "unsent bytes per connection before it is cut off as a slow consumer"},
        {"websocket.ping_interval", "--ping-interval", K::kDuration, "25s",
         "server ping interval (0 = off); below common 30-60 s proxy idle timeouts"},
        {"websocket.idle_timeout", "--idle-timeout", K::kDuration, "",
         "close a connection silent this long; default ping_interval + 10s"},
        {"websocket.compression", "--compression", K::kBool, "true",
         "negotiate permessage-deflate when the client offers it"},
        {"messaging.outbound_limit", "--outbound-limit", K::kSize, "1MiB",
         "bytes queued per /ws client before its namespace's slow_consumer policy acts"},
        {"messaging.rate_limit", "--rate-limit", K::kUint, "200",
         "requests/s per /ws connection (burst 2x); rate_limited errors, then close 1008"},
        {"messaging.max_subscriptions", "--max-subscriptions", K::kUint, "256",
         "channels one connection may subscribe to"},
        {"api.key", "--api-key", K::kString, "",
         "key for /api/* (Authorization: apikey KEY); empty = HTTP API off"},
        {"echo.enabled", "--echo", K::kBool, "true", "serve the /echo WebSocket route"},
        {"echo.subprotocols", "--subprotocols", K::kList, "echo",
         "subprotocols of /echo in preference order"},
    };
    return kDefs;
}

std::string envName(std::string_view key) {
    if (key.starts_with("server."))
        key.remove_prefix(7);
    std::string out = "SWITCHBOARD_";
    for (char c : key) {
        out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

base::Result<void> validateValue(SettingKind kind, std::string_view value) {
    switch (kind) {
        case SettingKind::kString:
        case SettingKind::kList:
            return {};
        case SettingKind::kUint: {
            if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos)
                return base::fail("'" + std::string(value) + "' is not a non-negative integer");
            return {};
        }
        case SettingKind::kSize: {
            auto r = parseSize(value);
            if (!r)
                return base::unexpected(r.error());
            return {};
        }
        case SettingKind::kDuration: {
            if (value.empty())
                return {};
            auto r = parseDurationMs(value);
            if (!r)
                return base::unexpected(r.error());
            return {};
        }
        case SettingKind::kBool:
            if (value != "true" && value != "false")
                return base::fail("'" + std::string(value) + "' is not true or false");
            return {};
        case SettingKind::kLogLevel: {
            base::LogLevel l;
            if (!base::parseLogLevel(value, l))
                return base::fail("'" + std::string(value) +
                                  "' is not one of trace, debug, info, warn, error, off");
            return {};
        }
    }
    return {};
}

Settings::Settings() {
    for (const auto& d : settingDefs()) {
        values_[std::string(d.key)] = Raw{std::string(d.default_value), "default"};
    }
}

base::Result<void> Settings::set(std::string_view key, std::string value, std::string source) {
    std::string ns, opt;
    if (const SettingDef* d = findKey(key)) {
        if (auto r = validateValue(d->kind, value); !r) {
            return base::fail(source + ": " + std::string(key) + ": " + r.error().message);
        }
    } else if (!isNamespaceKey(key, &ns, &opt)) {
        std::string hint = key.starts_with("namespaces.")
                               ? " (namespace options: presence, join_leave, history_size, "
                                 "history_ttl, client_publish, delivery, slow_consumer, "
                                 "max_data_bytes, max_unacked, session_ttl, idempotency_window)"
                               : suggestion(key);
        return base::fail(source + ": unknown key '" + std::string(key) + "'" + hint);
    }
    values_[std::string(key)] = Raw{std::move(value), std::move(source)};
    return {};
}

base::Result<void> Settings::loadFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return base::fail("cannot read config file '" + path + "': " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return loadText(ss.str(), path);
}

base::Result<void> Settings::loadText(std::string_view text, const std::string& origin) {
    auto doc = config::parseToml(text);
    if (!doc) {
        return base::fail(origin + ": " + doc.error().message);
    }
    for (const auto& [key, value] : *doc) {
        const SettingDef* d = findKey(key);
        if (d != nullptr && value.isArray() != (d->kind == SettingKind::kList) &&
            !(d->kind == SettingKind::kList && value.isString())) {
            return base::fail(origin + ":" + std::to_string(value.line) + ": " + key + " must be " +
                              (d->kind == SettingKind::kList ? "an array" : "a scalar") + ", not " +
                              value.typeName());
        }
        if (d != nullptr && d->kind == SettingKind::kBool && !value.isBool()) {
            return base::fail(origin + ":" + std::to_string(value.line) + ": " + key +
                              " must be true or false, not " + value.typeName());
        }
        if (auto r = set(key, tomlToString(value), origin + ":" + std::to_string(value.line)); !r) {
            return r;
        }
    }
    return {};
}

base::Result<void> Settings::loadEnv(char** envp) {
    for (char** e = envp; e != nullptr && *e != nullptr; ++e) {
        std::string_view kv = *e;
        if (!kv.starts_with("SWITCHBOARD_"))
            continue;
        size_t eq = kv.find('=');
        if (eq == std::string_view::npos)
            continue;
        std::string_view name = kv.substr(0, eq);
        const SettingDef* match = nullptr;
        for (const auto& d : settingDefs()) {
            if (envName(d.key) == name)
                match = &d;
        }
        if (match == nullptr) {
            return base::fail("environment: unknown variable " + std::string(name) +
                              " (SWITCHBOARD_* names a setting, e.g. SWITCHBOARD_PORT)");
        }
        if (auto r = set(match->key, std::string(kv.substr(eq + 1)), "env " + std::string(name));
            !r) {
            return r;
        }
    }
    return {};
}

bool Settings::isFlag(std::string_view flag) const {
    if (flag.starts_with("--no-")) {
        std::string pos = "--" + std::string(flag.substr(5));
        for (const auto& d : settingDefs()) {
            if (d.flag == pos && d.kind == SettingKind::kBool)
                return true;
        }
        return false;
    }
    for (const auto& d : settingDefs()) {
        if (d.flag == flag)
            return true;
    }
    return false;
}

bool Settings::isBoolFlag(std::string_view flag) const {
    if (flag.starts_with("--no-"))
        return isFlag(flag);
    for (const auto& d : settingDefs()) {
        if (d.flag == flag)
            return d.kind == SettingKind::kBool;
    }
    return false;
}

base::Result<void> Settings::setFlag(std::string_view flag, std::string_view value) {
    bool negate = flag.starts_with("--no-");
    std::string name = negate ? "--" + std::string(flag.substr(5)) : std::string(flag);
    for (const auto& d : settingDefs()) {
        if (d.flag != name)
            continue;
        if (d.kind == SettingKind::kBool) {
            return set(d.key, negate ? "false" : "true", "flag " + std::string(flag));
        }
        return set(d.key, std::string(value), "flag " + std::string(flag));
    }
    return base::fail("unknown flag '" + std::string(flag) + "'");
}

base::Result<ServeConfig> Settings::resolve() const {
    ServeConfig c;
    auto str = [&](const char* k) -> const std::string& { return values_.at(k).value; };
    auto uint = [&](const char* k) { return std::stoull(str(k)); };
    auto size = [&](const char* k) { return *parseSize(str(k)); };
    auto dur = [&](const char* k) { return *parseDurationMs(str(k)); };
    auto boolean = [&](const char* k) { return str(k) == "true"; };

    c.server.host = str("server.host");
    if (uint("server.port") > 65535) {
        return base::fail(values_.at("server.port").source + ": server.port must be 0..65535");
    }
    c.server.port = static_cast<uint16_t>(uint("server.port"));
    c.server.threads = static_cast<unsigned>(uint("server.threads"));
    c.server.reuse_port = boolean("server.reuse_port");
    base::parseLogLevel(str("server.log_level"), c.log_level);
    c.log_json = boolean("server.log_json");
    c.server.max_head_bytes = size("server.max_header_bytes");
    c.server.handshake_timeout_ms = static_cast<uint32_t>(dur("server.handshake_timeout"));
    c.server.shutdown_timeout_ms = static_cast<uint32_t>(dur("server.shutdown_timeout"));
    c.server.max_connections = uint("server.max_connections");
    c.server.max_connections_per_ip = uint("server.max_connections_per_ip");
    c.server.allowed_origins = splitList(str("server.allowed_origins"));
    c.websocket.max_message_size = size("websocket.max_message_size");
    c.websocket.max_backlog = size("websocket.max_backlog");
    c.websocket.ping_interval_ms = static_cast<uint32_t>(dur("websocket.ping_interval"));
    if (str("websocket.idle_timeout").empty()) {
        // SPEC §3: a connection silent for ping interval + 10 s is closed.
        c.websocket.idle_timeout_ms =
            c.websocket.ping_interval_ms == 0 ? 0 : c.websocket.ping_interval_ms + 10'000;
    } else {
        c.websocket.idle_timeout_ms = static_cast<uint32_t>(dur("websocket.idle_timeout"));
    }
    c.compression = boolean("websocket.compression");
    c.outbound_limit = size("messaging.outbound_limit");
    c.rate_limit = uint("messaging.rate_limit");
    c.max_subscriptions = uint("messaging.max_subscriptions");
    c.api_key = str("api.key");
    c.echo_enabled = boolean("echo.enabled");
    c.echo_subprotocols = splitList(str("echo.subprotocols"));
    for (const auto& [key, raw] : values_) {
        std::string ns, opt;
        if (isNamespaceKey(key, &ns, &opt)) {
            c.namespaces[ns][opt] = raw.value;
        }
    }
    return c;
}

std::string Settings::describe() const {
    std::string out;
    for (const auto& [key, raw] : values_) {
        // Secrets are never printed (SPEC §5: nothing sensitive is logged).
        std::string shown = key == "api.key" && !raw.value.empty() ? "<set>" : raw.value;
        std::string line = key + " = \"" + shown + "\"";
        if (line.size() < 48)
            line.resize(48, ' ');
        out += line + "  # " + raw.source + "\n";
    }
    return out;
}

}  // namespace sb::server
