// Every setting of `switchboard serve` in one table: its TOML key, flag, environment variable,
// default and the reason for that default. Values are layered: defaults < config file
// (--config) < SWITCHBOARD_* environment < flags; each keeps its source so errors and
// `switchboard check-config` can say where a value came from.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "server/app.h"

namespace sb::server {

enum class SettingKind { kString, kUint, kSize, kDuration, kBool, kList, kLogLevel };

struct SettingDef {
    std::string_view key;   // TOML path, e.g. "server.port"
    std::string_view flag;  // "--port" ("" = file/env only)
    SettingKind kind;
    std::string_view default_value;  // as a user would write it
    std::string_view help;           // what it does and why the default
};

// The table (defined in settings.cpp) and the env name of a key: SWITCHBOARD_ + the key
// upper-cased with '.' → '_', where the "server." prefix is dropped (SWITCHBOARD_PORT).
const std::vector<SettingDef>& settingDefs();
std::string envName(std::string_view key);

// Typed, validated result.
struct ServeConfig {
    ServerOptions server;
    transport::WebSocketBehavior websocket;  // callbacks unset: the routes add them
    bool compression = true;
    size_t outbound_limit = 1 << 20;
    uint64_t rate_limit = 200;
    size_t max_subscriptions = 256;
    std::string api_key;
    bool echo_enabled = true;
    std::vector<std::string> echo_subprotocols;
    base::LogLevel log_level = base::LogLevel::kInfo;
    bool log_json = false;
    // namespaces.NAME.OPTION raw values, resolved by the messaging layer.
    std::map<std::string, std::map<std::string, std::string>> namespaces;
};

class Settings {
public:
    Settings();
    // Reads a TOML file. Unknown keys, wrong types and bad values are errors naming the file
    // and line ("switchboard.toml:12: unknown key 'server.prot' (did you mean server.port?)").
    base::Result<void> loadFile(const std::string& path);
    base::Result<void> loadText(std::string_view text, const std::string& origin);
    // Applies SWITCHBOARD_* variables (unknown SWITCHBOARD_* names are errors too).
    base::Result<void> loadEnv(char** envp);
    // Applies one flag; `value` is ignored for boolean flags given without one.
    base::Result<void> setFlag(std::string_view flag, std::string_view value);
    bool isBoolFlag(std::string_view flag) const;
    bool isFlag(std::string_view flag) const;

    base::Result<ServeConfig> resolve() const;
    // "key = value   # source" for every setting, for check-config.
    std::string describe() const;

private:
    struct Raw {
        std::string value;
        std::string source;
    };
    base::Result<void> set(std::string_view key, std::string value, std::string source);
    std::map<std::string, Raw> values_;
};

// Reads a human value of a kind; the error says what was expected.
base::Result<void> validateValue(SettingKind kind, std::string_view value);

}  // namespace sb::server
