// Test-only: what a non-blocking socket holds right now, read without waiting.
#pragma once

#include <sys/socket.h>

#include <string>

namespace sb::net {

inline std::string readAvailable(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

}  // namespace sb::net
