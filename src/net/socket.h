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
// SO_REUSEPORT silently shares the connections (check addressInUse() first).
base::Result<int> listenOn(const Endpoint& ep, int backlog = 4096);

// True when a socket listens on `ep` — any process, any flags, SO_REUSEPORT included — or on
// an address whose traffic overlaps it: the wildcard of the same family for a specific address
// and the reverse, and a dual-stack IPv6 wildcard for IPv4 and the reverse. Other addresses on
// the same port (127.0.0.2 or ::1 for 127.0.0.1) do not count, nor do the TIME_WAIT and
// still-open accepted connections of a listener that had SO_REUSEADDR (a restarting server).
// A socket merely bound there counts only without SO_REUSEADDR (it would block the bind
// anyway). Port 0: false. Works by binding a probe without SO_REUSEPORT and closing it, so a
// listener that starts between this call and the caller's bind is missed. Errors other than
// "in use" (permission, address not local) answer false: the real bind reports them.
base::Result<bool> addressInUse(const Endpoint& ep);
base::Result<Endpoint> localEndpoint(int fd);

// Starts a non-blocking connect (EINPROGRESS is success). `source` may pick the local
// address (e.g. 127.0.0.x to spread ephemeral ports), null for any.
base::Result<int> connectNonBlocking(const Endpoint& to, const Endpoint* source = nullptr);

void setNoDelay(int fd);
// SO_SNDBUF (the kernel doubles it for bookkeeping); turns off send-buffer autotuning.
void setSendBuffer(int fd, size_t bytes);
// The peer's address key for per-IP limits (IPv4 as v4-mapped IPv6).
std::string peerIp(const sockaddr_storage& ss);

}  // namespace sb::net
