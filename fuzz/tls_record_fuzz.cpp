// Fuzz target for the TLS record path of a server connection (net/tls.h): what the loop feeds
// a TlsSession from the socket. The first input byte picks the phase the bytes arrive in:
//   even: before the handshake — the input is the client's first flight (ClientHello, or
//         garbage, plain HTTP, SSLv2, ...), delivered in chunks whose sizes come from the input;
//   odd:  after a handshake completed in memory with a real client session — the input is
//         raw records, corrupted ones included, fed to read().
// Invariants: no crash, no leak, a session that failed stays failed, output is bounded.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "net/tls.h"

namespace {

using sb::net::TlsConfig;
using sb::net::TlsContext;
using sb::net::TlsRole;
using sb::net::TlsSession;

// A throwaway self-signed certificate and key for fuzzing only (CN fuzz.invalid); it protects
// nothing and is trusted by nothing.
constexpr const char* kCert = R"(-----BEGIN CERTIFICATE-----
MIIBhDCCASugAwIBAgIUd0wr+4aRNhHMUt63OB4cl1BNDXgwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6ei5pbnZhbGlkMCAXDTI2MTIwNjIwMDcwNVoYDzIxMjYx
MTEyMjAwNzA1WjAXMRUwEwYDVQQDDAxmdXp6LmludmFsaWQwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATooUPwT0x0XId6dvPnCZHkw4iRlyS+JRDkd5t4fa/+Kp10
IrUmzxvt8sOI4FYB/sA0SghXJ4o++U+D47UnUBc8o1MwUTAdBgNVHQ4EFgQUajY7
w5szBbGc9Ng2aG4+jkU+Ln8wHwYDVR0jBBgwFoAUajY7w5szBbGc9Ng2aG4+jkU+
Ln8wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAQWJOhLRQz97ap
9PgewQqkLMO/aL7r/yExsxZr6TDbbQIgNCgCg/phc+rHpo+HwZ1y+0JiHSOxitcN
aIiRrvPeP/M=
-----END CERTIFICATE-----
)";
constexpr const char* kKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKrB+Yp9fvvcehoLi
H+i5MGsE35V2idsE6Iu7U07fUkahRANCAATooUPwT0x0XId6dvPnCZHkw4iRlyS+
JRDkd5t4fa/+Kp10IrUmzxvt8sOI4FYB/sA0SghXJ4o++U+D47UnUBc8
-----END PRIVATE KEY-----
)";

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "tls_record_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

std::string writeTemp(const char* text) {
    char path[] = "/tmp/sb-tls-fuzz-XXXXXX";
    const int fd = mkstemp(path);
    check(fd >= 0, "mkstemp");
    const std::string s(text);
    check(write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()), "write");
    close(fd);
    return path;
}

struct Contexts {
    std::shared_ptr<TlsContext> server;
    std::shared_ptr<TlsContext> client;
};

const Contexts& contexts() {
    static const Contexts c = [] {
        const std::string cert = writeTemp(kCert);
        const std::string key = writeTemp(kKey);
        TlsConfig sc{.role = TlsRole::kServer, .cert_file = cert, .key_file = key};
        auto server = TlsContext::create(sc);
        check(server.has_value(), "server context");
        unlink(cert.c_str());
        unlink(key.c_str());
        TlsConfig cc{.role = TlsRole::kClient, .verify_peer = false};
        auto client = TlsContext::create(cc);
        check(client.has_value(), "client context");
        return Contexts{*server, *client};
    }();
    return c;
}

// Takes what the last call produced (the thread's shared output buffer).
std::vector<uint8_t> takeOutput() {
    auto out = TlsSession::output();
    std::vector<uint8_t> v(out.begin(), out.end());
    TlsSession::clearOutput();
    return v;
}

// Feeds `data` to the server session and drives it as StreamConn does; returns the status.
TlsSession::Status feed(TlsSession& s, const uint8_t* data, size_t len) {
    s.setInput(data, len);
    TlsSession::Status st = TlsSession::Status::kOk;
    if (!s.handshakeDone()) {
        st = s.handshake();
        TlsSession::clearOutput();
        if (st != TlsSession::Status::kOk) {
            return st;
        }
    }
    uint8_t plain[4096];
    for (int rounds = 0; rounds < 64; ++rounds) {
        size_t got = 0;
        st = s.read(plain, sizeof plain, &got);
        check(got <= sizeof plain, "read past its buffer");
        TlsSession::clearOutput();
        if (st != TlsSession::Status::kOk) {
            break;
        }
    }
    check(TlsSession::output().size() < (64u << 20), "unbounded output");
    return st;
}

// A client and a server session with a completed handshake, in memory.
bool handshakeInMemory(TlsSession& client, TlsSession& server) {
    client.handshake();  // ClientHello
    std::vector<uint8_t> to_server = takeOutput();
    for (int i = 0; i < 8 && !(client.handshakeDone() && server.handshakeDone()); ++i) {
        server.setInput(to_server.data(), to_server.size());
        server.handshake();
        std::vector<uint8_t> to_client = takeOutput();
        client.setInput(to_client.data(), to_client.size());
        client.handshake();
        to_server = takeOutput();
        // TLS 1.3: the client's Finished reaches the server here.
        if (!to_server.empty()) {
            server.setInput(to_server.data(), to_server.size());
            server.handshake();
            TlsSession::clearOutput();
            to_server.clear();
        }
    }
    return client.handshakeDone() && server.handshakeDone();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    const Contexts& ctx = contexts();
    const bool after_handshake = (data[0] & 1) != 0;
    // Chunk size for partial delivery: 1..256 bytes (as a slow or fragmenting peer sends).
    const size_t chunk = static_cast<size_t>(data[1]) + 1;
    data += 2;
    size -= 2;
    auto server = TlsSession::create(ctx.server, {});
    check(server.has_value(), "server session");
    if (after_handshake) {
        auto client = TlsSession::create(ctx.client, {});
        check(client.has_value(), "client session");
        check(handshakeInMemory(**client, **server), "in-memory handshake");
        // A real record first, so the fuzz bytes follow a stream in a valid state.
        const char hello[] = "GET / HTTP/1.1\r\n";
        check((*client)->write(hello, sizeof hello - 1), "client write");
        std::vector<uint8_t> rec = takeOutput();
        check(feed(**server, rec.data(), rec.size()) == TlsSession::Status::kWantInput,
              "a valid record is read");
    }
    bool failed = false;
    for (size_t off = 0; off < size; off += chunk) {
        const size_t n = std::min(chunk, size - off);
        // The session borrows the span: copy it, as the loop's receive buffer is reused.
        std::vector<uint8_t> piece(data + off, data + off + n);
        const TlsSession::Status st = feed(**server, piece.data(), piece.size());
        (*server)->stashInput();  // the buffer goes away now, as at the end of a read
        if (failed) {
            check(st == TlsSession::Status::kError, "a failed session stays failed");
        }
        failed = failed || st == TlsSession::Status::kError;
    }
    TlsSession::clearOutput();
    return 0;
}
