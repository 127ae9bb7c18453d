// sb_ws_echo_check: our client role against any WebSocket echo server. Sends one message per
// size (in order), checks each echo byte for byte, closes with 1000. Exit 0 = every echo
// matched; the failure is printed otherwise. Used by the interop suite against node `ws`.
//
//   sb_ws_echo_check --url ws://127.0.0.1:PORT/ [--deflate] [--binary] [--fragment N]
//                    --sizes 0,1,125,126,65535,65536,1048576
//   wss:// URLs: [--ca FILE] (trust this PEM instead of the system store) or [--insecure]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/ws_client.h"
#include "net/stream_conn.h"

namespace {

struct Check {
    std::vector<size_t> sizes;
    size_t next = 0;
    std::vector<uint8_t> expected;
    bool binary = false;
    size_t fragment = 0;
    std::mt19937 rng{12345};
    int exit_code = 1;
    std::string error;
    sb::loop::EventLoop* loop = nullptr;

    void sendNext(sb::transport::WebSocket& ws) {
        if (next == sizes.size()) {
            exit_code = 0;
            ws.end(1000, "done");
            return;
        }
        size_t n = sizes[next];
        expected.resize(n);
        for (auto& b : expected) {
            // Text must be UTF-8: use printable ASCII; binary: any byte.
            b = binary ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>('a' + rng() % 26);
        }
        ws.send(binary ? sb::ws::Opcode::kBinary : sb::ws::Opcode::kText, expected,
                {.fragment_size = fragment});
    }
};

std::vector<size_t> parseSizes(const char* s) {
    std::vector<size_t> out;
    while (*s) {
        char* end = nullptr;
        out.push_back(std::strtoull(s, &end, 10));
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s)
            break;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::string url;
    sb::client::ClientOptions opts;
    Check check;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--url" && i + 1 < argc) {
            url = argv[++i];
        } else if (a == "--deflate") {
            opts.deflate = true;
        } else if (a == "--binary") {
            check.binary = true;
        } else if (a == "--fragment" && i + 1 < argc) {
            check.fragment = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--sizes" && i + 1 < argc) {
            check.sizes = parseSizes(argv[++i]);
        } else if (a == "--ca" && i + 1 < argc) {
            opts.ca_file = argv[++i];
        } else if (a == "--insecure") {
            opts.insecure = true;
        } else {
            std::fprintf(stderr,
                         "usage: sb_ws_echo_check --url URL [--deflate] [--binary] "
                         "[--fragment N] [--ca FILE | --insecure] --sizes A,B,C\n");
            return 2;
        }
    }
    auto u = sb::client::parseWsUrl(url);
    if (!u) {
        std::fprintf(stderr, "%s\n", u.error().message.c_str());
        return 2;
    }
    sb::loop::EventLoop loop;
    sb::net::StreamConn::installLoopHooks(loop);
    check.loop = &loop;
    sb::transport::WebSocketBehavior behavior;
    behavior.ping_interval_ms = 0;
    behavior.idle_timeout_ms = 0;
    behavior.max_message_size = 64u << 20;
    behavior.on_open = [&](sb::transport::WebSocket& ws) { check.sendNext(ws); };
    behavior.on_message = [&](sb::transport::WebSocket& ws, sb::ws::Opcode op,
                              std::span<uint8_t> data) {
        const auto want = check.binary ? sb::ws::Opcode::kBinary : sb::ws::Opcode::kText;
        if (op != want || data.size() != check.expected.size() ||
            (!data.empty() && std::memcmp(data.data(), check.expected.data(), data.size()) != 0)) {
            check.error = "echo of message " + std::to_string(check.next) + " (" +
                          std::to_string(check.expected.size()) + " B) differs: got " +
                          std::to_string(data.size()) + " B";
            check.exit_code = 1;
            ws.end(1000, "mismatch");
            check.next = check.sizes.size() + 1;
            return;
        }
        std::printf("ok %zu B%s\n", data.size(), ws.compressionEnabled() ? " (deflate)" : "");
        ++check.next;
        check.sendNext(ws);
    };
    behavior.on_close = [&](sb::transport::WebSocket&, uint16_t code, std::string_view reason) {
        if (check.exit_code == 0 && code != 1000) {
            check.exit_code = 1;
            check.error = "closed with " + std::to_string(code) + " " + std::string(reason);
        } else if (check.next < check.sizes.size() && check.error.empty()) {
            check.error = "closed early with " + std::to_string(code) + " " + std::string(reason);
        }
        loop.stop();
    };
    sb::client::connect(loop, *u, opts, &behavior,
                        [&](sb::transport::WebSocket* ws, const std::string& err) {
                            if (ws == nullptr) {
                                check.error = "connect failed: " + err;
                                loop.stop();
                            }
                        });
    loop.run();
    if (check.exit_code != 0) {
        std::fprintf(stderr, "FAIL: %s\n", check.error.c_str());
    } else {
        std::printf("all %zu echoes matched\n", check.sizes.size());
    }
    return check.exit_code;
}
