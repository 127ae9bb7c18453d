// Listening-socket hand-over (see handover.h). Descriptors travel as SCM_RIGHTS ancillary
// data with a text header "SBHANDOVER1 <main count> <tls count>\n"; the peer's credentials
// (SO_PEERCRED) must match our user, on top of the socket file's 0600 mode.
#include "net/handover.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sb::net {

namespace {

constexpr size_t kMaxFds = 256;  // 64 loops x main + TLS, with room

bool sockaddrFor(const std::string& path, sockaddr_un* sa) {
    if (path.empty() || path.size() >= sizeof sa->sun_path) {
        return false;
    }
    std::memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    std::memcpy(sa->sun_path, path.data(), path.size());
    return true;
}

bool waitReadable(int fd, uint32_t timeout_ms) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    int r;
    do {
        r = ::poll(&p, 1, static_cast<int>(timeout_ms));
    } while (r < 0 && errno == EINTR);
    return r > 0;
}

void closeAll(const std::vector<int>& fds) {
    for (int fd : fds) {
        ::close(fd);
    }
}

}  // namespace

base::Result<std::optional<HandedSockets>> requestHandover(const std::string& path,
                                                           uint32_t timeout_ms) {
    sockaddr_un sa{};
    if (!sockaddrFor(path, &sa)) {
        return base::fail("handover socket path '" + path + "' is empty or longer than " +
                          std::to_string(sizeof sa.sun_path - 1) + " bytes");
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return base::fail(std::string("socket(AF_UNIX): ") + std::strerror(errno));
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        const int e = errno;
        ::close(fd);
        if (e == ENOENT || e == ECONNREFUSED) {
            return std::optional<HandedSockets>();  // nobody there: bind as usual
        }
        return base::fail("cannot reach the running server at " + path + ": " + std::strerror(e));
    }
    if (!waitReadable(fd, timeout_ms)) {
        ::close(fd);
        return base::fail("the server at " + path + " did not hand over its sockets within " +
                          std::to_string(timeout_ms) + " ms");
    }
    char buf[256];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{.iov_base = buf, .iov_len = sizeof buf - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
            fds.insert(fds.end(), p, p + count);
        }
    }
    unsigned main_n = 0, tls_n = 0;
    if (n <= 0) {
        closeAll(fds);
        ::close(fd);
        return base::fail("the server at " + path + " closed without handing over");
    }
    buf[n] = '\0';
    if ((msg.msg_flags & MSG_CTRUNC) != 0 ||
        std::sscanf(buf, "SBHANDOVER1 %u %u\n", &main_n, &tls_n) != 2 || main_n == 0 ||
        main_n + tls_n != fds.size()) {
        closeAll(fds);
        ::close(fd);
        return base::fail("the server at " + path + " sent a hand-over this version cannot read");
    }
    HandedSockets h;
    h.main.assign(fds.begin(), fds.begin() + main_n);
    h.tls.assign(fds.begin() + main_n, fds.end());
    h.peer = fd;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        h.old_pid = cred.pid;
    }
    return std::optional<HandedSockets>(std::move(h));
}

void acceptHandover(HandedSockets* h) {
    if (h->peer >= 0) {
        ssize_t w = ::send(h->peer, "OK\n", 3, MSG_NOSIGNAL);
        (void)w;
        ::close(h->peer);
        h->peer = -1;
    }
}

base::Result<int> listenForSuccessor(const std::string& path) {
    sockaddr_un sa{};
    if (!sockaddrFor(path, &sa)) {
        return base::fail("handover socket path '" + path + "' is empty or longer than " +
                          std::to_string(sizeof sa.sun_path - 1) + " bytes");
    }
    // A socket file left by a server that exited, or by the one we just took over from
    // (it has handed over and no longer needs its path).
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return base::fail("handover socket path " + path +
                              " exists and is not a socket: remove it or pick another path");
        }
        ::unlink(path.c_str());
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return base::fail(std::string("socket(AF_UNIX): ") + std::strerror(errno));
    }
    // Owner only from the start: the umask applies to bind's file, then chmod narrows it.
    const mode_t old_mask = ::umask(0077);
    const int b = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    const int e = errno;
    ::umask(old_mask);
    if (b != 0 || ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 4) != 0) {
        ::close(fd);
        return base::fail("cannot listen for a successor at " + path + ": " + std::strerror(e) +
                          " (does its directory exist and is it writable?)");
    }
    return fd;
}

bool serveHandover(int listen_fd, const std::vector<int>& main, const std::vector<int>& tls,
                   uint32_t timeout_ms, std::string* who) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
        *who = std::string("accept: ") + std::strerror(errno);
        return false;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid()) {
        *who = "a process of another user (uid " + std::to_string(cred.uid) + "): refused";
        ::close(fd);
        return false;
    }
    *who = "pid " + std::to_string(cred.pid);
    std::vector<int> fds = main;
    fds.insert(fds.end(), tls.begin(), tls.end());
    if (main.empty() || fds.size() > kMaxFds) {
        *who += ": nothing to hand over";
        ::close(fd);
        return false;
    }
    const std::string header =
        "SBHANDOVER1 " + std::to_string(main.size()) + " " + std::to_string(tls.size()) + "\n";
    iovec iov{.iov_base = const_cast<char*>(header.data()), .iov_len = header.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    if (::sendmsg(fd, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(header.size())) {
        *who += std::string(": sending the sockets failed: ") + std::strerror(errno);
        ::close(fd);
        return false;
    }
    char ok[4] = {};
    const bool answered = waitReadable(fd, timeout_ms) && ::recv(fd, ok, 3, 0) == 3;
    ::close(fd);
    if (!answered || std::memcmp(ok, "OK\n", 3) != 0) {
        *who += ": it did not confirm within " + std::to_string(timeout_ms) + " ms (kept serving)";
        return false;
    }
    return true;
}

}  // namespace sb::net
