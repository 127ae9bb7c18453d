#include "server/settings.h"

#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "config/units.h"

namespace sb::server {
namespace {

using NsOpts = messaging::NamespaceOptions;

// loadConfig over string arguments and environment entries.
base::Result<LoadedConfig> load(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    std::vector<char*> envp;
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    return loadConfig(static_cast<int>(argv.size()), argv.data(), envp.data());
}

// A config file in the test's temp directory; returns its path.
std::string writeFile(const std::string& name, const std::string& text) {
    std::string path = testing::TempDir() + "sb_settings_" + name;
    std::ofstream(path) << text;
    return path;
}

std::string loadError(const std::string& text) {
    auto r = loadText(text, "sb.toml");
    return r ? "(loaded)" : r.error().message;
}

TEST(Settings, DefaultsAreTheOptionStructs) {
    auto l = loadText("", "empty.toml");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    const ServeConfig& c = l->config;
    EXPECT_EQ(c.server.port, ServerOptions{}.port);
    EXPECT_EQ(c.server.port, 8080);
    EXPECT_FALSE(c.server.reuse_port);
    EXPECT_TRUE(c.server.io_uring);
    EXPECT_EQ(c.websocket.ping_interval_ms, 25'000u);
    EXPECT_EQ(c.websocket.idle_timeout_ms, 35'000u);  // ping interval + 10 s
    EXPECT_EQ(c.websocket.max_message_size, transport::WebSocketBehavior{}.max_message_size);
    EXPECT_TRUE(c.deflate.enabled);
    EXPECT_FALSE(c.deflate.context_takeover);  // bounded memory: shared zlib streams
    EXPECT_EQ(c.echo_subprotocols, std::vector<std::string>{"echo"});
    EXPECT_EQ(c.messaging.rate_limit, messaging::Options{}.rate_limit);
    EXPECT_EQ(c.messaging.outbound_limit, size_t{1} << 20);
    EXPECT_EQ(c.messaging.max_message_size, 0u);
    EXPECT_EQ(c.log_level, base::LogLevel::kInfo);
    // normalize() added "default"; no namespace configured: the built-in "chat" (demo page).
    ASSERT_EQ(c.messaging.namespaces.size(), 2u);
    EXPECT_TRUE(c.messaging.namespaces.contains("default"));
    const auto& chat = c.messaging.namespaces.at("chat");
    EXPECT_TRUE(chat.presence && chat.join_leave);
    EXPECT_EQ(chat.history_size, 100u);
    EXPECT_EQ(c.messaging.effectiveMaxMessageSize(), 64u * 1024 + 4 * 1024);
    for (const auto& [key, source] : l->sources) {
        EXPECT_TRUE(key.starts_with("namespaces.chat")) << key;
        EXPECT_EQ(source, "built-in: no namespace configured") << key;
    }
}

TEST(Settings, EveryDocumentedKeyKeepsItsFlagAndEnvironmentName) {
    struct Name {
        const char* key;
        const char* flag;
        const char* env;
    };
    const Name names[] = {
        {"server.host", "--host", "SWITCHBOARD_HOST"},
        {"server.port", "--port", "SWITCHBOARD_PORT"},
        {"server.threads", "--threads", "SWITCHBOARD_THREADS"},
        {"server.reuse_port", "--reuse-port", "SWITCHBOARD_REUSE_PORT"},
        {"server.handover_socket", "--handover-socket", "SWITCHBOARD_HANDOVER_SOCKET"},
        {"server.io_uring", "--io-uring", "SWITCHBOARD_IO_URING"},
        {"server.log_level", "--log-level", "SWITCHBOARD_LOG_LEVEL"},
        {"server.log_json", "--log-json", "SWITCHBOARD_LOG_JSON"},
        {"server.max_header_bytes", "--max-header-bytes", "SWITCHBOARD_MAX_HEADER_BYTES"},
        {"server.handshake_timeout", "--handshake-timeout", "SWITCHBOARD_HANDSHAKE_TIMEOUT"},
        {"server.shutdown_timeout", "--shutdown-timeout", "SWITCHBOARD_SHUTDOWN_TIMEOUT"},
        {"server.reconnect_spread", "--reconnect-spread", "SWITCHBOARD_RECONNECT_SPREAD"},
        {"server.admission_rate", "--admission-rate", "SWITCHBOARD_ADMISSION_RATE"},
        {"server.max_connections", "--max-connections", "SWITCHBOARD_MAX_CONNECTIONS"},
        {"server.max_connections_per_ip", "--max-connections-per-ip",
         "SWITCHBOARD_MAX_CONNECTIONS_PER_IP"},
        {"server.connection_rate_per_ip", "--connection-rate-per-ip",
         "SWITCHBOARD_CONNECTION_RATE_PER_IP"},
        {"server.limit_loopback", "--limit-loopback", "SWITCHBOARD_LIMIT_LOOPBACK"},
        {"server.trusted_proxies", "--trusted-proxies", "SWITCHBOARD_TRUSTED_PROXIES"},
        {"server.allowed_origins", "--allowed-origins", "SWITCHBOARD_ALLOWED_ORIGINS"},
        {"server.send_buffer", "--send-buffer", "SWITCHBOARD_SEND_BUFFER"},
        {"tls.cert_file", "--tls-cert", "SWITCHBOARD_TLS_CERT_FILE"},
        {"tls.key_file", "--tls-key", "SWITCHBOARD_TLS_KEY_FILE"},
        {"tls.port", "--tls-port", "SWITCHBOARD_TLS_PORT"},
        {"tls.session_tickets", "--tls-session-tickets", "SWITCHBOARD_TLS_SESSION_TICKETS"},
        {"tls.ticket_key_file", "--tls-ticket-key", "SWITCHBOARD_TLS_TICKET_KEY_FILE"},
        {"websocket.max_message_size", "--max-message-size",
         "SWITCHBOARD_WEBSOCKET_MAX_MESSAGE_SIZE"},
        {"websocket.max_backlog", "--max-backlog", "SWITCHBOARD_WEBSOCKET_MAX_BACKLOG"},
        {"websocket.ping_interval", "--ping-interval", "SWITCHBOARD_WEBSOCKET_PING_INTERVAL"},
        {"websocket.idle_timeout", "--idle-timeout", "SWITCHBOARD_WEBSOCKET_IDLE_TIMEOUT"},
        {"websocket.max_pings_per_s", "--max-pings-per-s", "SWITCHBOARD_WEBSOCKET_MAX_PINGS_PER_S"},
        {"websocket.compression", "--compression", "SWITCHBOARD_WEBSOCKET_COMPRESSION"},
        {"websocket.compression_takeover", "--compression-takeover",
         "SWITCHBOARD_WEBSOCKET_COMPRESSION_TAKEOVER"},
        {"messaging.outbound_limit", "--outbound-limit", "SWITCHBOARD_MESSAGING_OUTBOUND_LIMIT"},
        {"messaging.rate_limit", "--rate-limit", "SWITCHBOARD_MESSAGING_RATE_LIMIT"},
        {"messaging.max_subscriptions", "--max-subscriptions",
         "SWITCHBOARD_MESSAGING_MAX_SUBSCRIPTIONS"},
        {"messaging.max_message_size", "", "SWITCHBOARD_MESSAGING_MAX_MESSAGE_SIZE"},
        {"api.key", "--api-key", "SWITCHBOARD_API_KEY"},
        {"api.rate_limit", "--api-rate-limit", "SWITCHBOARD_API_RATE_LIMIT"},
        {"admin.password", "--admin-password", "SWITCHBOARD_ADMIN_PASSWORD"},
        {"admin.session_ttl", "--admin-session-ttl", "SWITCHBOARD_ADMIN_SESSION_TTL"},
        {"broker.engine", "--broker-engine", "SWITCHBOARD_BROKER_ENGINE"},
        {"broker.redis_address", "--redis-address", "SWITCHBOARD_BROKER_REDIS_ADDRESS"},
        {"broker.redis_username", "--redis-username", "SWITCHBOARD_BROKER_REDIS_USERNAME"},
        {"broker.redis_password", "--redis-password", "SWITCHBOARD_BROKER_REDIS_PASSWORD"},
        {"broker.redis_db", "--redis-db", "SWITCHBOARD_BROKER_REDIS_DB"},
        {"broker.redis_tls", "--redis-tls", "SWITCHBOARD_BROKER_REDIS_TLS"},
        {"broker.redis_tls_ca", "--redis-tls-ca", "SWITCHBOARD_BROKER_REDIS_TLS_CA"},
        {"broker.redis_prefix", "--redis-prefix", "SWITCHBOARD_BROKER_REDIS_PREFIX"},
        {"broker.redis_subscribers", "--redis-subscribers", "SWITCHBOARD_BROKER_REDIS_SUBSCRIBERS"},
        {"broker.redis_timeout", "--redis-timeout", "SWITCHBOARD_BROKER_REDIS_TIMEOUT"},
        {"broker.node_ttl", "--node-ttl", "SWITCHBOARD_BROKER_NODE_TTL"},
        {"broker.node_name", "--node-name", "SWITCHBOARD_BROKER_NODE_NAME"},
        {"broker.nats_url", "--nats-url", "SWITCHBOARD_BROKER_NATS_URL"},
        {"broker.nats_user", "--nats-user", "SWITCHBOARD_BROKER_NATS_USER"},
        {"broker.nats_password", "--nats-password", "SWITCHBOARD_BROKER_NATS_PASSWORD"},
        {"broker.nats_token", "--nats-token", "SWITCHBOARD_BROKER_NATS_TOKEN"},
        {"broker.nats_tls", "--nats-tls", "SWITCHBOARD_BROKER_NATS_TLS"},
        {"broker.nats_tls_ca", "--nats-tls-ca", "SWITCHBOARD_BROKER_NATS_TLS_CA"},
        {"broker.nats_prefix", "--nats-prefix", "SWITCHBOARD_BROKER_NATS_PREFIX"},
        {"broker.nats_storage", "--nats-storage", "SWITCHBOARD_BROKER_NATS_STORAGE"},
        {"broker.nats_timeout", "--nats-timeout", "SWITCHBOARD_BROKER_NATS_TIMEOUT"},
        {"auth.hmac_secrets", "--auth-hmac-secrets", "SWITCHBOARD_AUTH_HMAC_SECRETS"},
        {"auth.public_key_files", "--auth-public-keys", "SWITCHBOARD_AUTH_PUBLIC_KEY_FILES"},
        {"auth.jwks_file", "--auth-jwks", "SWITCHBOARD_AUTH_JWKS_FILE"},
        {"auth.audience", "--auth-audience", "SWITCHBOARD_AUTH_AUDIENCE"},
        {"auth.issuer", "--auth-issuer", "SWITCHBOARD_AUTH_ISSUER"},
        {"auth.leeway", "--auth-leeway", "SWITCHBOARD_AUTH_LEEWAY"},
        {"auth.require_exp", "--auth-require-exp", "SWITCHBOARD_AUTH_REQUIRE_EXP"},
        {"echo.enabled", "--echo", "SWITCHBOARD_ECHO_ENABLED"},
        {"echo.subprotocols", "--subprotocols", "SWITCHBOARD_ECHO_SUBPROTOCOLS"},
    };
    EXPECT_EQ(serveSchema().settings().size(), std::size(names));
    for (const auto& n : names) {
        const config::Setting* s = serveSchema().find(n.key);
        ASSERT_NE(s, nullptr) << n.key;
        EXPECT_EQ(s->spec.flag, n.flag) << n.key;
        EXPECT_EQ(s->env, n.env) << n.key;
        EXPECT_EQ(envName(n.key), n.env);
    }
}

TEST(Settings, OnlyLogLevelApiTlsAuthAndNamespacesApplyOnReload) {
    for (const auto& s : serveSchema().settings()) {
        bool reload = s.key == "server.log_level" || s.key.starts_with("api.") ||
                      s.key.starts_with("auth.") || s.key.starts_with("admin.") ||
                      (s.key.starts_with("tls.") && s.key != "tls.port");
        EXPECT_EQ(s.spec.apply == config::Apply::kReload, reload) << s.key;
    }
    const config::Section* ns = serveSchema().findSection("namespaces");
    ASSERT_NE(ns, nullptr);
    EXPECT_EQ(ns->spec.apply, config::Apply::kReload);
    EXPECT_EQ(ns->options.size(), 17u);
}

TEST(Settings, FileThenEnvThenFlagsWin) {
    std::string file = writeFile("layers.toml",
                                 "[server]\nport = 9000\nthreads = 3\nhost = \"127.0.0.1\"\n"
                                 "[websocket]\nping_interval = \"5s\"\ncompression = false\n"
                                 "[messaging]\nrate_limit = 50\n");
    auto l = load({"--config", file, "--threads", "1", "--reuse-port", "--rate-limit=70"},
                  {"SWITCHBOARD_PORT=9100", "PATH=/bin", "SWITCHBOARD_MESSAGING_RATE_LIMIT=60",
                   "SWITCHBOARD_MESSAGING_MAX_MESSAGE_SIZE=256KiB", "SWITCHBOARD_API_KEY=k"});
    ASSERT_TRUE(l.has_value()) << l.error().message;
    const ServeConfig& c = l->config;
    EXPECT_EQ(l->config_path, file);
    EXPECT_EQ(c.server.host, "127.0.0.1");  // file
    EXPECT_EQ(c.server.port, 9100);         // env over file
    EXPECT_EQ(c.server.threads, 1u);        // flag over file
    EXPECT_TRUE(c.server.reuse_port);
    EXPECT_EQ(c.messaging.rate_limit, 70u);  // flag over env over file
    EXPECT_EQ(c.messaging.max_message_size, 256u << 10);
    EXPECT_EQ(c.messaging.effectiveMaxMessageSize(), 256u << 10);
    EXPECT_EQ(c.messaging.api_key, "k");
    EXPECT_EQ(c.websocket.ping_interval_ms, 5000u);
    EXPECT_EQ(c.websocket.idle_timeout_ms, 15'000u);  // derived from the file's ping interval
    EXPECT_FALSE(c.deflate.enabled);
    EXPECT_EQ(l->sources.at("server.host"), file + ":4");
    EXPECT_EQ(l->sources.at("server.port"), "env SWITCHBOARD_PORT");
    EXPECT_EQ(l->sources.at("server.threads"), "flag --threads");
    EXPECT_EQ(l->sources.at("messaging.rate_limit"), "flag --rate-limit");
}

TEST(Settings, IdleTimeoutIsDerivedOnlyWhenUnset) {
    auto l = load({"--ping-interval", "0"});
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(l->config.websocket.idle_timeout_ms, 0u);  // pings off: no idle timeout
    l = load({"--ping-interval", "1s", "--idle-timeout", "3s"});
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(l->config.websocket.idle_timeout_ms, 3000u);
    l = load({"--ping-interval", "4294967295ms"});
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(l->config.websocket.idle_timeout_ms, UINT32_MAX);  // saturates
}

TEST(Settings, NamespacesAreTypedAndNormalized) {
    auto l = loadText(R"(
[namespaces.chat]
presence = true
join_leave = true
history_size = 100
history_ttl = "5m"
client_publish = false
slow_consumer = "drop"
max_data_bytes = "1MiB"
max_unacked = 10
session_ttl = 60
idempotency_window = "30s"

[namespaces.jobs]
delivery = "at_least_once"
)",
                      "ns.toml");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    const auto& nss = l->config.messaging.namespaces;
    ASSERT_EQ(nss.size(), 3u);
    const NsOpts& chat = nss.at("chat");
    EXPECT_TRUE(chat.presence);
    EXPECT_TRUE(chat.join_leave);
    EXPECT_EQ(chat.history_size, 100u);
    EXPECT_EQ(chat.history_ttl_ms, 300'000u);
    EXPECT_FALSE(chat.client_publish);
    EXPECT_EQ(chat.slow_consumer, NsOpts::SlowConsumer::kDrop);
    EXPECT_EQ(chat.max_data_bytes, 1u << 20);
    EXPECT_EQ(chat.max_unacked, 10u);
    EXPECT_EQ(chat.session_ttl_ms, 60'000u);
    EXPECT_EQ(chat.idempotency_window_ms, 30'000u);
    EXPECT_EQ(nss.at("jobs").delivery, NsOpts::Delivery::kAtLeastOnce);
    EXPECT_EQ(nss.at("jobs").history_size, 1000u);  // normalize(): resume needs history
    EXPECT_TRUE(nss.contains("default"));
    EXPECT_EQ(l->config.messaging.effectiveMaxMessageSize(), (1u << 20) + 4096);
    EXPECT_EQ(l->sources.at("namespaces.chat"), "ns.toml:2");
    EXPECT_EQ(l->sources.at("namespaces.chat.history_ttl"), "ns.toml:6");
}

TEST(Settings, BadNamespacesNameFileLineKeyAndExpectation) {
    EXPECT_EQ(loadError("[namespaces.chat]\npresence = \"yes\"\n"),
              "sb.toml:2: namespaces.chat.presence: \"yes\" is a string; expected true or false");
    EXPECT_EQ(loadError("[namespaces.chat]\nhistory_size = 10\ndelivery = \"exactly_once\"\n"),
              "sb.toml:3: namespaces.chat.delivery: \"exactly_once\" is not valid; expected one "
              "of at_most_once, at_least_once");
    EXPECT_EQ(loadError("[namespaces.chat]\n\n[namespaces.Chat]\n"),
              "sb.toml:3: namespaces.Chat: \"Chat\" is not a valid name; expected a name "
              "matching [a-z0-9_-]{1,64}");
    EXPECT_EQ(loadError("[namespaces.chat]\nhistory_size = -5\n"),
              "sb.toml:2: namespaces.chat.history_size: -5 is negative; expected a non-negative "
              "integer");
    EXPECT_EQ(loadError("[namespaces.chat]\nhistory_ttl = \"forever\"\n"),
              "sb.toml:2: namespaces.chat.history_ttl: \"forever\" is not a duration; expected "
              "e.g. \"500ms\", \"25s\", \"2m\" or \"1h\"");
    EXPECT_EQ(loadError("[namespaces.chat]\npresense = true\n"),
              "sb.toml:2: unknown key 'namespaces.chat.presense' (did you mean "
              "namespaces.chat.presence?)");
    EXPECT_EQ(loadError("[namespaces.chat]\nslow_consumer = \"block\"\n"),
              "sb.toml:2: namespaces.chat.slow_consumer: \"block\" is not valid; expected one of "
              "disconnect, drop");
    EXPECT_EQ(loadError("[namespaces.a-very-long-name-that-goes-on-and-on-past-the-limit-of-"
                        "sixty-four-chars]\n")
                  .find("sb.toml:1: namespaces.a-very-long"),
              0u);
    // Namespaces come only from the file.
    auto env = load({}, {"SWITCHBOARD_NAMESPACES_CHAT_PRESENCE=true"});
    ASSERT_FALSE(env.has_value());
    EXPECT_EQ(env.error().message,
              "env SWITCHBOARD_NAMESPACES_CHAT_PRESENCE: unknown variable ([namespaces.NAME] "
              "tables come only from the config file)");
}

TEST(Settings, ErrorsNameWhereKeyAndExpectation) {
    EXPECT_EQ(loadError("[server]\n\nprot = 1\n"),
              "sb.toml:3: unknown key 'server.prot' (did you mean server.port?)");
    EXPECT_EQ(loadError("[websocket]\ncompression = \"yes\"\n"),
              "sb.toml:2: websocket.compression: \"yes\" is a string; expected true or false");
    EXPECT_EQ(loadError("[server]\nport = 65536\n"),
              "sb.toml:2: server.port: 65536 is out of range; expected an integer from 0 to 65535");
    EXPECT_EQ(loadError("[server]\nthreads = 65\n"),
              "sb.toml:2: server.threads: 65 is out of range; expected an integer from 0 to 64");
    EXPECT_EQ(loadError("[messaging]\nrate_limit = 0\n"),
              "sb.toml:2: messaging.rate_limit: 0 is out of range; expected an integer from 1 to "
              "4294967295");
    EXPECT_EQ(loadError("[websocket]\nmax_backlog = \"99999999999999999999KiB\"\n"),
              "sb.toml:2: websocket.max_backlog: \"99999999999999999999KiB\" is too large: the "
              "largest size is 18446744073709551615 bytes");
    EXPECT_EQ(loadError("[websocket]\nmax_backlog = \"18446744073709551615GiB\"\n"),
              "sb.toml:2: websocket.max_backlog: \"18446744073709551615GiB\" is too large: the "
              "largest size is 18446744073709551615 bytes");
    EXPECT_EQ(loadError("[namespaces.chat]\nhistory_ttl = \"9999999999999999999h\"\n"),
              "sb.toml:2: namespaces.chat.history_ttl: \"9999999999999999999h\" is too large: the "
              "longest duration is 18446744073709551615ms");
    EXPECT_EQ(loadError("[websocket]\nping_interval = \"2000h\"\n"),
              "sb.toml:2: websocket.ping_interval: \"2000h\" is too large: the maximum is "
              "4294967295ms");
    EXPECT_EQ(loadError("[server]\nlog_level = \"verbose\"\n"),
              "sb.toml:2: server.log_level: \"verbose\" is not valid; expected one of trace, "
              "debug, info, warn, error, off");
    EXPECT_EQ(loadError("[server\n").find("sb.toml:1:"), 0u);

    auto r = load({}, {"SWITCHBOARD_PROT=1"});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message,
              "env SWITCHBOARD_PROT: unknown variable (did you mean "
              "SWITCHBOARD_PORT?)");
    r = load({"--nope", "1"});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message.find("unknown flag '--nope'"), 0u);
    r = load({"--max-message-size", "1TiB"});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message.find("flag --max-message-size: websocket.max_message_size: "), 0u);
    r = load({"--config", testing::TempDir() + "sb_settings_missing.toml"});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("cannot read config file"), std::string::npos);
}

TEST(Settings, HelpFlagSkipsLoading) {
    auto l = load({"--port", "bad", "--help"}, {"SWITCHBOARD_PROT=1"});
    ASSERT_TRUE(l.has_value());
    EXPECT_TRUE(l->help);
    l = load({"-h"});
    ASSERT_TRUE(l.has_value());
    EXPECT_TRUE(l->help);
}

TEST(Settings, DescribeListsSettingsNamespacesAndTheDerivedWsLimit) {
    std::string file = writeFile("describe.toml",
                                 "[api]\nkey = \"hunter2\"\n\n[namespaces.chat]\npresence = true\n"
                                 "max_data_bytes = \"128KiB\"\n");
    auto l = load({"--config", file}, {"SWITCHBOARD_PORT=9100"});
    ASSERT_TRUE(l.has_value()) << l.error().message;
    std::string d = describe(*l);
    EXPECT_NE(d.find("server.port = 9100"), std::string::npos) << d;
    EXPECT_NE(d.find("# env SWITCHBOARD_PORT\n"), std::string::npos) << d;
    EXPECT_NE(d.find("api.key = \"<set>\""), std::string::npos) << d;
    EXPECT_EQ(d.find("hunter2"), std::string::npos) << d;
    EXPECT_NE(d.find("websocket.idle_timeout = \"35s\""), std::string::npos) << d;
    EXPECT_NE(d.find("# [namespaces.chat] " + file + ":4\n"), std::string::npos) << d;
    size_t presence = d.find("namespaces.chat.presence = true");
    ASSERT_NE(presence, std::string::npos) << d;
    EXPECT_EQ(d.find("# " + file + ":5\n", presence), d.find('#', presence)) << d;
    size_t ttl = d.find("namespaces.chat.history_ttl = \"0s\"");
    ASSERT_NE(ttl, std::string::npos) << d;
    EXPECT_EQ(d.find("# default\n", ttl), d.find('#', ttl)) << d;
    EXPECT_NE(d.find("namespaces.default.presence = false"), std::string::npos) << d;
    EXPECT_NE(d.find("messaging.max_message_size = 0"), std::string::npos) << d;
    EXPECT_NE(d.find("# /ws max message size: 132KiB (derived: largest namespace max_data_bytes "
                     "128KiB + 4KiB)"),
              std::string::npos)
        << d;
}

TEST(Settings, TheDerivedWsLimitSaturates) {
    auto l = loadText("[namespaces.big]\nmax_data_bytes = \"18446744073709551615\"\n", "big.toml");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    EXPECT_EQ(l->config.messaging.effectiveMaxMessageSize(), std::numeric_limits<size_t>::max());
    auto set = loadText("[messaging]\nmax_message_size = \"1KiB\"\n", "set.toml");
    ASSERT_TRUE(set.has_value()) << set.error().message;
    EXPECT_EQ(set->config.messaging.effectiveMaxMessageSize(), 1024u);
    EXPECT_NE(describe(*set).find("# /ws max message size: 1KiB (messaging.max_message_size)"),
              std::string::npos)
        << describe(*set);
}

TEST(Settings, RestartOnlyChangesIgnoreReloadableOnes) {
    auto running = loadText("[server]\nport = 9000\n[namespaces.chat]\npresence = true\n", "a");
    auto fresh = loadText(
        "[server]\nport = 9001\nlog_level = \"debug\"\n[api]\nkey = \"k\"\n"
        "[websocket]\nping_interval = \"5s\"\n[namespaces.news]\nhistory_size = 10\n",
        "b");
    ASSERT_TRUE(running.has_value() && fresh.has_value());
    EXPECT_EQ(restartOnlyChanges(*running, *fresh),
              (std::vector<std::string>{"server.port", "websocket.ping_interval",
                                        "websocket.idle_timeout"}));
    EXPECT_TRUE(restartOnlyChanges(*running, *running).empty());
}

TEST(Settings, HelpShowsDefaultsReadFromTheStructs) {
    std::string h = helpText("serve");
    EXPECT_EQ(h.find("usage: switchboard serve [--config FILE] [flags]"), 0u);
    const ServeConfig defaults;
    for (const auto& s : serveSchema().settings()) {
        std::string line = "[" + s.key + "] ";
        size_t at = h.find(line);
        ASSERT_NE(at, std::string::npos) << s.key;
        std::string def = "default " + config::SchemaBase::formatPlain(s, s.get(&defaults));
        EXPECT_NE(h.find(def, at), std::string::npos) << s.key;
        EXPECT_LT(h.find(def, at), h.find('\n', at)) << s.key;
    }
    EXPECT_NE(h.find("--reuse-port "), std::string::npos);
    EXPECT_NE(h.find("[websocket.max_message_size] size, env SWITCHBOARD_WEBSOCKET_MAX_MESSAGE_"
                     "SIZE, default " +
                     config::formatSize(transport::WebSocketBehavior{}.max_message_size)),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("default 35s (derived: ping_interval + 10s"), std::string::npos) << h;
    EXPECT_NE(h.find("default 0 (derived: 0 = the largest namespace max_data_bytes + 4KiB)"),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("[namespaces.NAME] tables"), std::string::npos) << h;
    EXPECT_NE(h.find("size, default " + config::formatSize(NsOpts{}.max_data_bytes)),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("at_most_once|at_least_once, default at_most_once"), std::string::npos) << h;
}

}  // namespace
}  // namespace sb::server
