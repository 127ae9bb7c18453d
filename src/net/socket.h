// Thin wrappers over the BSD socket calls the loops need: listening sockets shared between
// loops with SO_REUSEPORT, non-blocking connects, and address formatting.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb::net {

struct Endpoint {
    sockaddr_storage addr{};
    socklen_t len = 0;
    uint16_t port() const;
    std::string toString() const;  // "1.2.3.4:80" or "[::1]:80"
};

// Resolves a numeric host (IPv4/IPv6 literal or "localhost") and port.
base::Result<Endpoint> resolve(std::string_view host, uint16_t port);

// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT (each loop binds its
// own, the kernel spreads connections). Beware: another process on the same port with
// SO_REUSEPORT silently shares the connections.
base::Result<int> listenOn(const Endpoint& ep, int backlog = 4096);
base::Result<Endpoint> localEndpoint(int fd);

// Starts a non-blocking connect (EINPROGRESS is success). `source` may pick the local
// address (e.g. 127.0.0.x to spread ephemeral ports), null for any.
base::Result<int> connectNonBlocking(const Endpoint& to, const Endpoint* source = nullptr);

void setNoDelay(int fd);
// The peer's address key for per-IP limits (IPv4 as v4-mapped IPv6).
std::string peerIp(const sockaddr_storage& ss);

}  // namespace sb::net
