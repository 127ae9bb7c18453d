// The WebSocket client role on our event loop: connect, TLS for wss:// (net/tls.h), the
// RFC 6455 §4.1 handshake (key,
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
    bool tls = false;  // wss://
    std::string host;
    uint16_t port = 80;      // default 80, 443 for wss://
    std::string path = "/";  // path and query
};
// Parses ws://host[:port][/path] and wss://host[:port][/path].
base::Result<WsUrl> parseWsUrl(std::string_view url);

struct ClientOptions {
    std::vector<std::string> subprotocols;
    bool deflate = false;  // offer permessage-deflate
    std::string origin;    // empty = no Origin header
    uint32_t handshake_timeout_ms = 10'000;
    // Local address to connect from (len 0 = any). The load tester spreads connections over
    // 127.0.0.0/8 this way: each source address has its own ~28k ephemeral ports.
    net::Endpoint source;

    // wss:// only. The server's certificate is verified against the system CA store and its
    // name against the URL's host by default: a client that accepts any certificate measures
    // (or talks to) whoever answers.
    std::string ca_file;      // PEM file of CAs to trust instead of the system store
    bool insecure = false;    // no verification at all (self-signed test servers)
    std::string server_name;  // SNI and the name checked in the certificate; empty = URL host
    // Resume TLS sessions: reconnects to a server offer the newest ticket it gave this process.
    bool tls_resume = false;
};

// Called once on the loop thread: the open socket (already started, owned by the loop), or
// null and a message saying what failed and at which stage: TCP ("connection refused ...",
// "cannot register the socket with the event loop: ..."), TLS ("TLS handshake failed:
// certificate verify failed: self-signed certificate", "TLS handshake timed out", "TLS setup
// failed: ..."), WebSocket ("server answered 503 ...", "handshake timed out", ...). It may be
// called before connect() returns (errors found before any I/O).
using ConnectCallback = std::function<void(transport::WebSocket*, const std::string& error)>;

// Loop thread. `behavior` must outlive the socket. The loop needs
// net::StreamConn::installLoopHooks() once. TCP connect, then (wss://) the TLS handshake, then
// the WebSocket handshake; options.handshake_timeout_ms bounds all three together. The TLS
// context for (ca_file, insecure) is built on first use and shared by all later connections
// of the process (any loop thread).
void connect(loop::EventLoop& loop, const WsUrl& url, const ClientOptions& options,
             const transport::WebSocketBehavior* behavior, ConnectCallback done);

}  // namespace sb::client
