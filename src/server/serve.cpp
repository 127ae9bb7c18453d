#include "server/serve.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/log.h"
#include "server/admin.h"
#include "server/app.h"
#include "server/messaging.h"
#include "server/settings.h"
#include "server/static_files.h"

extern char** environ;

namespace sb::server {

int runCheckConfig(int argc, char** argv) {
    auto loaded = loadConfig(argc, argv, environ);
    if (!loaded) {
        std::fprintf(stderr, "switchboard check-config: %s\n", loaded.error().message.c_str());
        return 2;
    }
    if (loaded->help) {
        printHelp("check-config");
        return 0;
    }
    std::fputs(describe(*loaded).c_str(), stdout);
    std::puts("# configuration is valid");
    return 0;
}

int runServe(int argc, char** argv) {
    auto loaded = loadConfig(argc, argv, environ);
    if (!loaded) {
        std::fprintf(stderr, "switchboard serve: %s\n", loaded.error().message.c_str());
        return 2;
    }
    if (loaded->help) {
        printHelp("serve");
        return 0;
    }
    const ServeConfig* cfg = &loaded->config;
    base::setLogLevel(cfg->log_level);
    base::setLogJson(cfg->log_json);

    App app(cfg->server);
    if (cfg->echo_enabled) {
        WsRoute echo;
        echo.subprotocols = cfg->echo_subprotocols;
        echo.deflate = cfg->deflate;
        echo.behavior = cfg->websocket;
        echo.behavior.on_message = [](transport::WebSocket& ws, ws::Opcode op,
                                      std::span<uint8_t> data) { ws.send(op, data); };
        app.ws("/echo", std::move(echo));
    }
    app.get("/healthz",
            [](const http::Request&, std::string_view) { return HttpReply{.body = "ok\n"}; });
    // The chat demo at `/`, the echo console at /echo.html, /switchboard.min.js (embedded).
    serveStaticFiles(app);
    // The messaging service (/ws, /api/*, /metrics): its limits come from [messaging], its
    // timers from [websocket].
    Messaging messaging(app, cfg->messaging, cfg->websocket, cfg->deflate, cfg->broker);
    // The /admin dashboard (off until admin.password is set): its pages, calls and /admin/ws.
    Admin admin(app, cfg->admin, describe(*loaded), cfg->websocket, cfg->deflate);
    // Ready = able to serve: with a shared engine, only while it answers, so a load balancer
    // takes a node cut off from Redis out of rotation (its clients reconnect to the others).
    app.get("/readyz", [&messaging](const http::Request&, std::string_view) {
        if (!messaging.attached() || messaging.hub().engineAvailable()) {
            return HttpReply{.body = "ready\n"};
        }
        const broker::EngineStatus st = messaging.hub().engineStatus();
        return HttpReply{
            .status = 503,
            .body = "not ready: " + st.engine + " engine unavailable (" + st.error + ")\n"};
    });
    if (auto r = app.listen(); !r) {
        std::fprintf(stderr, "switchboard serve: %s\n", r.error().message.c_str());
        return 1;
    }
    if (auto r = messaging.attach(); !r) {
        std::fprintf(stderr, "switchboard serve: %s\n", r.error().message.c_str());
        return 2;
    }
    admin.attach(&messaging.hub(), [&messaging] { return messaging.pollSessions(); });
    if (app.tlsPort() != 0 && cfg->server.allowed_origins.empty()) {
        SB_WARN(
            "TLS is on and server.allowed_origins is empty: any web page may open WebSockets "
            "to this server with its visitors' cookies (cross-site WebSocket hijacking); list "
            "your sites' origins, e.g. allowed_origins = [\"https://app.example.com\"]");
    }
    // SIGHUP: read file + environment + flags again; namespaces apply to new subscriptions,
    // the API key and the log level at once. Restart-only settings that changed are named in
    // the log.
    app.onReload([argc, argv, &app, &messaging, &admin, running = *loaded] {
        auto fresh = loadConfig(argc, argv, environ);
        if (!fresh) {
            SB_ERROR("reload failed: %s; keeping the running configuration",
                     fresh.error().message.c_str());
            return;
        }
        messaging.reload(fresh->config.messaging);
        admin.reload(fresh->config.admin, describe(*fresh));
        if (auto r = app.reloadTls(fresh->config.server.tls); !r) {
            SB_ERROR("reload: %s; keeping the running certificate", r.error().message.c_str());
        } else if (app.tlsPort() != 0) {
            SB_INFO("reload: TLS certificate %s loaded for new connections",
                    fresh->config.server.tls.cert_file.c_str());
        }
        base::setLogLevel(fresh->config.log_level);
        for (const auto& key : restartOnlyChanges(running, *fresh)) {
            SB_WARN("reload: %s changed: takes effect on restart", key.c_str());
        }
        if (fresh->config.messaging.effectiveMaxMessageSize() !=
            running.config.messaging.effectiveMaxMessageSize()) {
            // Derived from max_data_bytes, which does apply: say that the frame limit does not.
            SB_WARN(
                "reload: the /ws max message size changed to %zu bytes: takes effect on "
                "restart",
                fresh->config.messaging.effectiveMaxMessageSize());
        }
        SB_INFO(
            "reload: namespaces, auth keys, api.key, [admin], TLS certificate and log level "
            "applied");
    });
    return app.run();
}

}  // namespace sb::server
