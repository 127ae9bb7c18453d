// net::addressInUse against real listeners on loopback: which listeners make a port busy for
// an address (same address, wildcard vs specific, IPv4 vs dual-stack IPv6) and which leftovers
// of a previous server do not (TIME_WAIT, accepted connections).
#include "net/socket.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace sb::net {
namespace {

Endpoint at(const char* host, uint16_t port) {
    auto ep = resolve(host, port);
    EXPECT_TRUE(ep.has_value()) << host;
    return *ep;
}

enum Flags { kNone = 0, kReuseAddr = 1, kReusePort = 2 };

// A socket of another program bound to host:*port (0 = pick one, written back); listening
// unless `listen` is false. -1 when the address is unavailable (no IPv6).
int bound(const char* host, uint16_t* port, int flags, bool listen = true) {
    Endpoint ep = at(host, *port);
    int fd = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (flags & kReuseAddr) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (flags & kReusePort) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0 ||
        (listen && ::listen(fd, 16) != 0)) {
        ::close(fd);
        return -1;
    }
    *port = localEndpoint(fd)->port();
    return fd;
}

bool inUse(const char* host, uint16_t port) {
    auto r = addressInUse(at(host, port));
    EXPECT_TRUE(r.has_value());
    return r.value_or(false);
}

bool haveIpv6() {
    uint16_t port = 0;
    int fd = bound("::1", &port, kNone);
    if (fd < 0) {
        return false;
    }
    ::close(fd);
    return true;
}

TEST(AddressInUse, SameAddressWhateverTheListenersFlags) {
    for (int flags : {int{kNone}, int{kReuseAddr}, int{kReusePort}, kReuseAddr | kReusePort}) {
        uint16_t port = 0;
        int fd = bound("127.0.0.1", &port, flags);
        ASSERT_GE(fd, 0);
        EXPECT_TRUE(inUse("127.0.0.1", port)) << "flags " << flags;
        ::close(fd);
        EXPECT_FALSE(inUse("127.0.0.1", port)) << "flags " << flags;
    }
}

TEST(AddressInUse, OurOwnListeningSockets) {
    auto fd = listenOn(at("127.0.0.1", 0));
    ASSERT_TRUE(fd.has_value());
    const uint16_t port = localEndpoint(*fd)->port();
    EXPECT_TRUE(inUse("127.0.0.1", port));
    ::close(*fd);
}

TEST(AddressInUse, WildcardAndSpecificOverlap) {
    uint16_t port = 0;
    int fd = bound("0.0.0.0", &port, kReuseAddr | kReusePort);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("127.0.0.1", port));
    EXPECT_TRUE(inUse("0.0.0.0", port));
    ::close(fd);

    port = 0;
    fd = bound("127.0.0.1", &port, kReuseAddr | kReusePort);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("0.0.0.0", port));
    EXPECT_FALSE(inUse("127.0.0.2", port));  // another address: no traffic in common
    ::close(fd);
}

TEST(AddressInUse, Ipv6) {
    if (!haveIpv6()) {
        GTEST_SKIP() << "no IPv6 on this host";
    }
    uint16_t port = 0;
    int fd = bound("::", &port, kReuseAddr | kReusePort);  // dual-stack (bindv6only=0)
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("::", port));
    EXPECT_TRUE(inUse("::1", port));
    EXPECT_TRUE(inUse("0.0.0.0", port));
    EXPECT_TRUE(inUse("127.0.0.1", port));
    ::close(fd);

    port = 0;
    fd = bound("0.0.0.0", &port, kReuseAddr | kReusePort);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("::", port));
    ::close(fd);

    port = 0;
    fd = bound("::1", &port, kReuseAddr | kReusePort);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("::1", port));
    EXPECT_TRUE(inUse("::", port));
    EXPECT_FALSE(inUse("127.0.0.1", port));
    ::close(fd);
}

// What a server that just exited leaves behind must not block its restart.
TEST(AddressInUse, LeftoversOfAPreviousServerDoNotCount) {
    uint16_t port = 0;
    int lfd = bound("127.0.0.1", &port, kReuseAddr | kReusePort);
    ASSERT_GE(lfd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int client = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    int accepted = ::accept(lfd, nullptr, nullptr);
    ASSERT_GE(accepted, 0);
    ::close(lfd);
    EXPECT_FALSE(inUse("127.0.0.1", port)) << "an accepted connection still open";
    // The server closes first: its side of the connection ends in TIME_WAIT.
    ::close(accepted);
    char c;
    EXPECT_EQ(::recv(client, &c, 1, 0), 0);
    ::close(client);
    EXPECT_FALSE(inUse("127.0.0.1", port)) << "TIME_WAIT";
}

TEST(AddressInUse, BoundButNotListening) {
    uint16_t port = 0;
    int fd = bound("127.0.0.1", &port, kReuseAddr, /*listen=*/false);
    ASSERT_GE(fd, 0);
    EXPECT_FALSE(inUse("127.0.0.1", port));
    ::close(fd);
    port = 0;
    fd = bound("127.0.0.1", &port, kNone, /*listen=*/false);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(inUse("127.0.0.1", port)) << "without SO_REUSEADDR it blocks any bind";
    ::close(fd);
}

TEST(AddressInUse, PortZeroIsNeverInUse) {
    EXPECT_FALSE(inUse("127.0.0.1", 0));
}

}  // namespace
}  // namespace sb::net
