// The WebSocket client role on our event loop: connect, the RFC 6455 §4.1 handshake (key,
// Sec-WebSocket-Accept check, subprotocol and permessage-deflate validation), then the same
// transport::WebSocket engine as the server, masking every frame. Used by the tests, the
// interop tools and the load tester.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "loop/event_loop.h"
#include "net/socket.h"
#include "transport/websocket.h"

namespace sb::client {

struct WsUrl {
    bool tls = false;
    std::string host;
    uint16_t port = 80;
    std::string path = "/";  // path and query
};
// Parses ws://host[:port][/path]; wss:// is recognised and refused until TLS exists.
base::Result<WsUrl> parseWsUrl(std::string_view url);

struct ClientOptions {
    std::vector<std::string> subprotocols;
    bool deflate = false;  // offer permessage-deflate
    std::string origin;    // empty = no Origin header
    uint32_t handshake_timeout_ms = 10'000;
    // Local address to connect from (len 0 = any). The load tester spreads connections over
    // 127.0.0.0/8 this way: each source address has its own ~28k ephemeral ports.
    net::Endpoint source;
};

// Called once on the loop thread: the open socket (already started, owned by the loop), or
// null and a message saying what failed ("connection refused", "handshake timed out",
// "server answered 503 ...", ...).
using ConnectCallback = std::function<void(transport::WebSocket*, const std::string& error)>;

// Loop thread. `behavior` must outlive the socket. The loop needs
// net::StreamConn::installLoopHooks() once.
void connect(loop::EventLoop& loop, const WsUrl& url, const ClientOptions& options,
             const transport::WebSocketBehavior* behavior, ConnectCallback done);

}  // namespace sb::client
