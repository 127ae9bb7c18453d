#include "server/serve.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/log.h"
#include "server/app.h"
#include "server/demo_page.h"
#include "server/messaging.h"
#include "server/metrics.h"
#include "server/settings.h"

extern char** environ;

namespace sb::server {

namespace {

void printHelp(const char* cmd) {
    std::printf(
        "usage: switchboard %s [--config FILE] [flags]\n\n"
        "Settings come from (later wins): defaults < --config FILE (TOML) < SWITCHBOARD_*\n"
        "environment variables < flags. Boolean flags take no value; --no-X turns X off.\n\n",
        cmd);
    for (const auto& d : settingDefs()) {
        std::string flag(d.flag);
        if (d.kind != SettingKind::kBool)
            flag += " V";
        std::printf("  %-28s %s\n", flag.c_str(), std::string(d.help).c_str());
        std::printf("  %-28s   [%s] env %s, default %s\n", "", std::string(d.key).c_str(),
                    envName(d.key).c_str(),
                    d.default_value.empty() ? "(derived)" : std::string(d.default_value).c_str());
    }
    std::puts("  --config FILE                a TOML config file (see docs/configuration.md)");
}

// Layers file, environment and flags. Returns false (after printing why) on a usage error.
bool loadSettings(const char* cmd, int argc, char** argv, Settings* s, bool* help) {
    std::string config_path;
    for (int i = 0; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--config" && i + 1 < argc)
            config_path = argv[i + 1];
    }
    if (!config_path.empty()) {
        if (auto r = s->loadFile(config_path); !r) {
            std::fprintf(stderr, "switchboard %s: %s\n", cmd, r.error().message.c_str());
            return false;
        }
    }
    if (auto r = s->loadEnv(environ); !r) {
        std::fprintf(stderr, "switchboard %s: %s\n", cmd, r.error().message.c_str());
        return false;
    }
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            *help = true;
            return true;
        }
        if (a == "--config") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "switchboard %s: --config needs a file\n", cmd);
                return false;
            }
            ++i;
            continue;
        }
        if (!s->isFlag(a)) {
            std::fprintf(stderr, "switchboard %s: unknown flag '%s' (see switchboard %s --help)\n",
                         cmd, argv[i], cmd);
            return false;
        }
        std::string_view value;
        if (!s->isBoolFlag(a)) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "switchboard %s: %s needs a value\n", cmd, argv[i]);
                return false;
            }
            value = argv[++i];
        }
        if (auto r = s->setFlag(a, value); !r) {
            std::fprintf(stderr, "switchboard %s: %s\n", cmd, r.error().message.c_str());
            return false;
        }
    }
    return true;
}

}  // namespace

int runCheckConfig(int argc, char** argv) {
    Settings s;
    bool help = false;
    if (!loadSettings("check-config", argc, argv, &s, &help))
        return 2;
    if (help) {
        printHelp("check-config");
        return 0;
    }
    auto cfg = s.resolve();
    if (!cfg) {
        std::fprintf(stderr, "switchboard check-config: %s\n", cfg.error().message.c_str());
        return 2;
    }
    std::fputs(s.describe().c_str(), stdout);
    std::puts("# configuration is valid");
    return 0;
}

int runServe(int argc, char** argv) {
    Settings s;
    bool help = false;
    if (!loadSettings("serve", argc, argv, &s, &help))
        return 2;
    if (help) {
        printHelp("serve");
        return 0;
    }
    auto cfg = s.resolve();
    if (!cfg) {
        std::fprintf(stderr, "switchboard serve: %s\n", cfg.error().message.c_str());
        return 2;
    }
    base::setLogLevel(cfg->log_level);
    base::setLogJson(cfg->log_json);

    App app(cfg->server);
    if (cfg->echo_enabled) {
        WsRoute echo;
        echo.subprotocols = cfg->echo_subprotocols;
        echo.deflate.enabled = cfg->compression;
        echo.behavior = cfg->websocket;
        echo.behavior.on_message = [](transport::WebSocket& ws, ws::Opcode op,
                                      std::span<uint8_t> data) { ws.send(op, data); };
        app.ws("/echo", std::move(echo));
    }
    app.get("/healthz",
            [](const http::Request&, std::string_view) { return HttpReply{.body = "ok\n"}; });
    app.get("/readyz",
            [](const http::Request&, std::string_view) { return HttpReply{.body = "ready\n"}; });
    app.get("/", [](const http::Request&, std::string_view) {
        return HttpReply{.content_type = "text/html; charset=utf-8",
                         .body = std::string(kDemoPage)};
    });
    auto namespaces = resolveNamespaces(cfg->namespaces);
    if (!namespaces) {
        std::fprintf(stderr, "switchboard serve: %s\n", namespaces.error().message.c_str());
        return 2;
    }
    Metrics metrics;
    MessagingOptions mopts;
    mopts.namespaces = std::move(*namespaces);
    mopts.outbound_limit = cfg->outbound_limit;
    mopts.rate_per_s = static_cast<double>(cfg->rate_limit);
    mopts.rate_burst = 2.0 * static_cast<double>(cfg->rate_limit);
    mopts.max_subscriptions = cfg->max_subscriptions;
    mopts.api_key = cfg->api_key;
    transport::WebSocketBehavior ws_base = cfg->websocket;
    // Native-protocol messages are small JSON; a 16 MiB default would let one client pin a lot.
    ws_base.max_message_size = std::min<size_t>(ws_base.max_message_size, 64 * 1024);
    Messaging messaging(app, std::move(mopts), ws_base, cfg->compression, &metrics);
    if (auto r = app.listen(); !r) {
        std::fprintf(stderr, "switchboard serve: %s\n", r.error().message.c_str());
        return 1;
    }
    messaging.attach();
    // SIGHUP: read file + environment + flags again; namespaces apply to new subscriptions.
    // Listener, threads and limits need a restart (said in the log when they changed).
    app.onReload([argc, argv, &messaging] {
        Settings fresh;
        bool ignored = false;
        if (!loadSettings("serve", argc, argv, &fresh, &ignored)) {
            SB_ERROR("reload failed: the configuration is invalid; keeping the running one");
            return;
        }
        auto c = fresh.resolve();
        auto ns = c ? resolveNamespaces(c->namespaces) : base::Result<NamespaceMap>(base::fail(""));
        if (!c || !ns) {
            SB_ERROR("reload failed: %s; keeping the running configuration",
                     !c ? c.error().message.c_str() : ns.error().message.c_str());
            return;
        }
        messaging.reloadNamespaces(std::move(*ns));
        SB_INFO("reload: other settings (listener, threads, limits) take effect on restart");
    });
    return app.run();
}

}  // namespace sb::server
