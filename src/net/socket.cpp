#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sb::net {

uint16_t Endpoint::port() const {
    if (addr.ss_family == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
}

std::string Endpoint::toString() const {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(port());
    }
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
}

base::Result<Endpoint> resolve(std::string_view host, uint16_t port) {
    Endpoint ep;
    std::string h(host);
    if (h == "localhost") {
        h = "127.0.0.1";
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
    if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        ep.len = sizeof(sockaddr_in);
        return ep;
    }
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
        h = h.substr(1, h.size() - 2);
    }
    if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        ep.len = sizeof(sockaddr_in6);
        return ep;
    }
    return base::fail("'" + std::string(host) +
                      "' is not a numeric IPv4/IPv6 address (use e.g. 0.0.0.0, 127.0.0.1 or ::)");
}

base::Result<int> listenOn(const Endpoint& ep, int backlog) {
    int fd = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return base::fail(std::string("socket(): ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0) {
        int e = errno;
        ::close(fd);
        return base::fail("cannot listen on " + ep.toString() + ": " + std::strerror(e) +
                          (e == EADDRINUSE ? " (pick another --port)" : ""));
    }
    if (::listen(fd, backlog) != 0) {
        int e = errno;
        ::close(fd);
        return base::fail(std::string("listen(): ") + std::strerror(e));
    }
    return fd;
}

base::Result<bool> addressInUse(const Endpoint& ep) {
    if (ep.port() == 0) {
        return false;
    }
    int fd = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return base::fail(std::string("socket(): ") + std::strerror(errno));
    }
    // SO_REUSEADDR lets the probe past TIME_WAIT and the accepted connections of a previous
    // listener (Linux refuses a SO_REUSEADDR bind only next to a listening socket); without
    // SO_REUSEPORT the kernel cannot let it join a listening group, so EADDRINUSE here means
    // a listener.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool in_use =
        ::bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0 && errno == EADDRINUSE;
    ::close(fd);
    return in_use;
}

base::Result<Endpoint> localEndpoint(int fd) {
    Endpoint ep;
    ep.len = sizeof ep.addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ep.addr), &ep.len) != 0) {
        return base::fail(std::string("getsockname(): ") + std::strerror(errno));
    }
    return ep;
}

base::Result<int> connectNonBlocking(const Endpoint& to, const Endpoint* source) {
    int fd = ::socket(to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return base::fail(std::string("socket(): ") + std::strerror(errno));
    }
    if (source != nullptr) {
        int one = 1;
        // Let the kernel pick the port at connect() time, so (src ip, port) pairs reuse well.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&source->addr), source->len) != 0) {
            int e = errno;
            ::close(fd);
            return base::fail(std::string("bind(source): ") + std::strerror(e));
        }
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), to.len) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        ::close(fd);
        return base::fail("connect to " + to.toString() + ": " + std::strerror(e));
    }
    setNoDelay(fd);
    return fd;
}

void setNoDelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void setSendBuffer(int fd, size_t bytes) {
    int v = bytes > static_cast<size_t>(INT32_MAX / 2) ? INT32_MAX / 2 : static_cast<int>(bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}

std::string peerIp(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf,
                  sizeof buf);
    }
    return buf;
}

}  // namespace sb::net
