// Every setting of `switchboard serve`, bound to the typed ServeConfig by the config schema
// (config/schema.h): TOML key, flag, environment variable, kind, help, and whether SIGHUP
// applies it. Defaults are the member initializers of the option structs, never written here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "config/schema.h"
#include "engines/nats/nats_engine.h"
#include "engines/redis/redis_engine.h"
#include "messaging/options.h"
#include "server/admin.h"
#include "server/app.h"
#include "transport/websocket.h"
#include "ws/deflate.h"

namespace sb::server {

// [broker]: where channels' offsets, history, presence and sessions live.
struct BrokerConfig {
    enum class Engine : uint8_t { kMemory, kRedis, kNats };
    // In-process: one node, nothing else to run (the embedded default). Redis or NATS: many
    // nodes share channels and sessions (docs/cluster.md).
    Engine engine = Engine::kMemory;
    engines::redis::RedisOptions redis;  // defaults and their reasons: redis_engine.h
    engines::nats::NatsOptions nats;     // defaults and their reasons: nats_engine.h
    // Shared by both engines (the settings bind here; attach() copies them into the engine's
    // options).
    uint64_t node_ttl_ms = engines::redis::RedisOptions{}.node_ttl_ms;
    std::string node_name;
    // JetStream storage (nats.memory_storage): file, so history and sessions survive a NATS
    // restart.
    enum class NatsStorage : uint8_t { kFile, kMemory };
    NatsStorage nats_storage = NatsStorage::kFile;
};

struct ServeConfig {
    ServerOptions server;                    // includes reuse_port
    transport::WebSocketBehavior websocket;  // /echo and raw WebSocket routes; callbacks unset
    // permessage-deflate. enabled: negotiate it when a client offers it (text shrinks
    // several-fold, and a client that does not want it does not offer it).
    // context_takeover: off, see ws::DeflateServerPolicy (no zlib state per connection,
    // fan-out compressed once per loop).
    ws::DeflateServerPolicy deflate;
    // /echo is what conformance tools (Autobahn) and the demo page talk to; it costs nothing
    // until used.
    bool echo_enabled = true;
    std::vector<std::string> echo_subprotocols = {"echo"};  // what the demo page asks for
    messaging::Options messaging;                           // normalize()d by the loader
    BrokerConfig broker;
    AdminOptions admin;  // the /admin dashboard; defaults and their reasons: admin.h
    // Startup, reloads and refusals, without a line per connection.
    base::LogLevel log_level = base::LogLevel::kInfo;
    bool log_json = false;  // plain lines read best on a terminal; JSON for log pipelines
};

// A loaded configuration and where each value came from.
struct LoadedConfig {
    ServeConfig config;
    config::Sources sources;  // "server.port" → "sb.toml:3" / "env SWITCHBOARD_PORT" / …
    std::string config_path;  // --config FILE; empty = none
    // --help (or -h) was given: nothing was loaded; the caller prints helpText() and exits 0.
    bool help = false;
};

// The schema of ServeConfig (built once, immutable; safe from any thread).
const config::Schema<ServeConfig>& serveSchema();

// SWITCHBOARD_ + the key upper-cased with '.' → '_', where the "server." prefix is dropped
// (server.port → SWITCHBOARD_PORT, api.key → SWITCHBOARD_API_KEY).
std::string envName(std::string_view key);

// The one entry point of serve, check-config and SIGHUP: the file named by --config, then the
// SWITCHBOARD_* variables of `envp` (may be null), then the flags of argv (the arguments after
// the command). Unknown keys, variables and flags, wrong types, out-of-range values and invalid
// [namespaces.NAME] tables are errors saying where (FILE:LINE, env NAME, flag --x), which key,
// what was wrong and what is expected; callers exit 2 on them. The result is finished: a
// derived idle timeout filled in and messaging.normalize() applied.
base::Result<LoadedConfig> loadConfig(int argc, char** argv, char** envp);

// The file layer alone, from text (`origin` names it in messages), finished as above. For
// tests and the fuzz target.
base::Result<LoadedConfig> loadText(std::string_view text, const std::string& origin);

// For check-config: "key = value  # source" for every setting and every namespace option,
// then the derived /ws max message size. Secrets print as "<set>".
std::string describe(const LoadedConfig& loaded);

// Usage of `switchboard CMD`: every flag with its key, environment name, kind, default (read
// from the default-constructed structs) and whether SIGHUP applies it; then namespace options.
std::string helpText(std::string_view cmd);
void printHelp(std::string_view cmd);

// SIGHUP: the restart-only keys whose value differs between the running and the freshly
// loaded configuration (e.g. "server.port"), in schema order.
std::vector<std::string> restartOnlyChanges(const LoadedConfig& running, const LoadedConfig& fresh);

}  // namespace sb::server
