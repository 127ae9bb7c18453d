#include "server/serve.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "server/app.h"
#include "server/demo_page.h"
#include "server/options.h"

namespace sb::server {

namespace {

std::vector<std::string> splitList(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        size_t c = s.find(',');
        std::string_view item = s.substr(0, c);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (c == std::string_view::npos) break;
        s.remove_prefix(c + 1);
    }
    return out;
}

[[noreturn]] void usageError(const std::string& msg) {
    std::fprintf(stderr, "switchboard serve: %s\n(see switchboard serve --help)\n", msg.c_str());
    std::exit(2);
}

}  // namespace

void printServeHelp() {
    std::puts(
        "usage: switchboard serve [flags]\n"
        "\n"
        "Runs the server on embedded defaults: port 8080, one event loop per core,\n"
        "the WebSocket echo route /echo, /healthz, /readyz and the demo page at /.\n"
        "\n"
        "  --host ADDR                 listen address (default 0.0.0.0)\n"
        "  --port N                    listen port, 0 = any free port (default 8080)\n"
        "  --threads N                 event loops, 0 = one per core (default 0)\n"
        "  --log-level LEVEL           trace|debug|info|warn|error|off (default info)\n"
        "  --log-json                  structured JSON log lines\n"
        "  --max-message-size SIZE     largest WebSocket message, close 1009 above (16MiB)\n"
        "  --max-backlog SIZE          unsent bytes per connection before disconnect (64MiB)\n"
        "  --max-header-bytes SIZE     largest HTTP request head, 431 above (8KiB)\n"
        "  --handshake-timeout DUR     time to complete the HTTP upgrade (10s)\n"
        "  --ping-interval DUR         server ping interval, 0 = off (25s)\n"
        "  --idle-timeout DUR          close a silent connection after (ping interval + 10s)\n"
        "  --shutdown-timeout DUR      SIGTERM drain limit (10s)\n"
        "  --max-connections N         global connection limit (1000000)\n"
        "  --max-connections-per-ip N  open connections per client IP, 0 = off (0)\n"
        "  --allowed-origins LIST      comma-separated Origin allowlist (default: any)\n"
        "  --subprotocols LIST         subprotocols of /echo, preference order (echo)\n"
        "  --no-compression            do not negotiate permessage-deflate\n"
        "  --no-echo                   do not serve the /echo route\n"
        "  --help                      this text");
}

int runServe(int argc, char** argv) {
    ServerOptions opts;
    WsRoute echo;
    echo.subprotocols = {"echo"};
    bool echo_enabled = true;
    bool idle_set = false;
    base::LogLevel level = base::LogLevel::kInfo;

    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usageError(std::string(a) + " needs a value");
            return argv[++i];
        };
        auto size = [&]() -> uint64_t {
            std::string_view v = value();
            auto r = parseSize(v);
            if (!r) usageError(std::string(a) + ": " + r.error().message);
            return *r;
        };
        auto duration = [&]() -> uint64_t {
            std::string_view v = value();
            auto r = parseDurationMs(v);
            if (!r) usageError(std::string(a) + ": " + r.error().message);
            return *r;
        };
        auto number = [&]() -> uint64_t {
            std::string_view v = value();
            char* end = nullptr;
            std::string s(v);
            unsigned long long n = std::strtoull(s.c_str(), &end, 10);
            if (s.empty() || *end != '\0') usageError(std::string(a) + ": '" + s + "' is not a number");
            return n;
        };
        if (a == "--help" || a == "-h") {
            printServeHelp();
            return 0;
        } else if (a == "--host") {
            opts.host = value();
        } else if (a == "--port") {
            uint64_t p = number();
            if (p > 65535) usageError("--port must be 0..65535");
            opts.port = static_cast<uint16_t>(p);
        } else if (a == "--threads") {
            opts.threads = static_cast<unsigned>(number());
        } else if (a == "--log-level") {
            if (!base::parseLogLevel(value(), level)) {
                usageError("--log-level must be one of trace, debug, info, warn, error, off");
            }
        } else if (a == "--log-json") {
            base::setLogJson(true);
        } else if (a == "--max-message-size") {
            echo.behavior.max_message_size = size();
        } else if (a == "--max-backlog") {
            echo.behavior.max_backlog = size();
        } else if (a == "--max-header-bytes") {
            opts.max_head_bytes = size();
        } else if (a == "--handshake-timeout") {
            opts.handshake_timeout_ms = static_cast<uint32_t>(duration());
        } else if (a == "--ping-interval") {
            echo.behavior.ping_interval_ms = static_cast<uint32_t>(duration());
        } else if (a == "--idle-timeout") {
            echo.behavior.idle_timeout_ms = static_cast<uint32_t>(duration());
            idle_set = true;
        } else if (a == "--shutdown-timeout") {
            opts.shutdown_timeout_ms = static_cast<uint32_t>(duration());
        } else if (a == "--max-connections") {
            opts.max_connections = number();
        } else if (a == "--max-connections-per-ip") {
            opts.max_connections_per_ip = number();
        } else if (a == "--allowed-origins") {
            opts.allowed_origins = splitList(value());
        } else if (a == "--subprotocols") {
            echo.subprotocols = splitList(value());
        } else if (a == "--no-compression") {
            echo.deflate.enabled = false;
        } else if (a == "--no-echo") {
            echo_enabled = false;
        } else {
            usageError("unknown flag '" + std::string(a) + "'");
        }
    }
    base::setLogLevel(level);
    if (!idle_set) {
        // SPEC §3: a connection silent for ping interval + 10 s is closed.
        echo.behavior.idle_timeout_ms =
            echo.behavior.ping_interval_ms == 0 ? 0 : echo.behavior.ping_interval_ms + 10'000;
    }
    echo.behavior.on_message = [](transport::WebSocket& ws, ws::Opcode op,
                                  std::span<uint8_t> data) { ws.send(op, data); };

    App app(opts);
    if (echo_enabled) {
        app.ws("/echo", std::move(echo));
    }
    app.get("/healthz", [](const http::Request&) { return HttpReply{.body = "ok\n"}; });
    app.get("/readyz", [](const http::Request&) { return HttpReply{.body = "ready\n"}; });
    app.get("/", [](const http::Request&) {
        return HttpReply{.content_type = "text/html; charset=utf-8",
                         .body = std::string(kDemoPage)};
    });
    if (auto r = app.listen(); !r) {
        std::fprintf(stderr, "switchboard serve: %s\n", r.error().message.c_str());
        return 1;
    }
    return app.run();
}

}  // namespace sb::server
