// Handing listening sockets from a running server to its successor over a Unix socket
// (SCM_RIGHTS), for restarts that refuse no connection: the sockets, and the connections
// waiting in their accept queues, pass to the new process before the old one closes its
// copies, so the kernel never sees the port without a listener. The wire is one message each
// way: the old server sends a header line and the descriptors, the new one answers "OK\n"
// once its loops are set up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb::net {

// What the old server hands over: its listening sockets, main port and TLS port apart.
struct HandedSockets {
    std::vector<int> main;  // the main port's sockets (one per event loop of the old server)
    std::vector<int> tls;   // a separate TLS port's sockets (empty when there is none)
    int peer = -1;          // the connection to the old server (answer with acceptHandover)
    int old_pid = 0;
};

// A new server, before binding: asks whoever listens at `path` for its sockets. Nullopt when
// nobody does (no file, or a stale one: connection refused) — bind as usual. An error when a
// server answered but the exchange failed (then do not bind: it still holds the port).
base::Result<std::optional<HandedSockets>> requestHandover(const std::string& path,
                                                           uint32_t timeout_ms);
// The new server, ready to accept on the sockets: tells the old one to stop accepting and
// drain, and closes the connection.
void acceptHandover(HandedSockets* h);

// The running server: listens at `path` for a successor (replacing a stale socket file),
// owner-only permissions. The descriptor is non-blocking.
base::Result<int> listenForSuccessor(const std::string& path);
// The running server, when `listen_fd` is readable: hands `main` and `tls` to the process
// that connected and waits (up to timeout_ms) for its "OK". True: the successor took them
// (stop accepting now and drain); `*who` names it for the log. False: keep serving (`*who`
// says why). Refuses a peer of another user.
bool serveHandover(int listen_fd, const std::vector<int>& main, const std::vector<int>& tls,
                   uint32_t timeout_ms, std::string* who);

}  // namespace sb::net
