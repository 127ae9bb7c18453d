// Test-only TLS peers for the net and client unit tests, all real OpenSSL: certificates made
// at test time (never committed keys), a blocking one-connection TLS server on loopback in its
// own thread (SSL_accept on a blocking socket), an in-memory server whose ciphertext the test
// delivers in chosen pieces, and a loop driver that runs until a condition or a deadline.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "loop/event_loop.h"
#include "net/stream_conn.h"

namespace sb::testing {

struct TestCert {
    std::string cert_pem;
    std::string key_pem;
};

// A self-signed P-256 certificate (CA:TRUE, so it can be its own trust anchor in a CA file)
// for `san`, e.g. "DNS:localhost,IP:127.0.0.1". Valid from a minute ago for a day.
inline TestCert makeSelfSigned(const std::string& san, const std::string& cn = "sb-test") {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::rand() & 0x7fffffff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_key_usage, "digitalSignature,keyCertSign"},
                              std::pair{NID_subject_alt_name, san.c_str()}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
        if (ext == nullptr) {
            throw std::runtime_error("bad test certificate extension");
        }
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    TestCert out;
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    out.cert_pem.assign(p, static_cast<size_t>(n));
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
    n = BIO_get_mem_data(b, &p);
    out.key_pem.assign(p, static_cast<size_t>(n));
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
}

// A file in the temp dir holding `text`; removed when this object dies.
class TempFile {
public:
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/sb-tls-test-XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
            throw std::runtime_error("cannot write temp file");
        }
        ::close(fd);
        path_ = tmpl;
    }
    ~TempFile() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A server SSL_CTX built with OpenSSL directly (not net::TlsContext: the peer under test
// should not share code with the side under test).
inline SSL_CTX* serverCtx(const TestCert& c) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    BIO* b = BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size()));
    X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
        throw std::runtime_error("test server certificate rejected");
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return ctx;
}

inline std::string sslErrors() {
    std::string s;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        s += buf;
        s += "; ";
    }
    return s;
}

// Blocking full read/write helpers for the server threads.
inline bool sslReadFull(SSL* ssl, void* out, size_t len) {
    auto* p = static_cast<char*>(out);
    while (len > 0) {
        size_t n = 0;
        if (SSL_read_ex(ssl, p, len, &n) != 1) {
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}
inline bool sslWriteAll(SSL* ssl, const void* data, size_t len) {
    size_t n = 0;
    return len == 0 || (SSL_write_ex(ssl, data, len, &n) == 1 && n == len);
}

// One connection on 127.0.0.1:port, served in a thread. `tls` false: the handler gets the raw
// accepted fd (for peers that misbehave before TLS is up). Accepted sockets time out after
// 20 s so a broken test cannot hang the thread. The destructor joins.
class BlockingPeer {
public:
    struct Conn {
        int fd = -1;
        SSL* ssl = nullptr;        // null when tls is off or the handshake failed
        std::string accept_error;  // why SSL_accept failed
    };
    using Handler = std::function<void(Conn&)>;

    BlockingPeer(const TestCert& cert, bool tls, Handler handler) : tls_(tls) {
        // OpenSSL's socket BIO writes without MSG_NOSIGNAL: a client that hung up (which
        // several tests do on purpose) must not kill the test binary.
        signal(SIGPIPE, SIG_IGN);
        ctx_ = serverCtx(cert);
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listen_fd_, 16) != 0 ||
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("test peer cannot listen");
        }
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this, handler = std::move(handler)] {
            Conn c;
            c.fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c.fd < 0) {
                return;
            }
            timeval tv{20, 0};
            setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            if (tls_) {
                c.ssl = SSL_new(ctx_);
                SSL_set_fd(c.ssl, c.fd);
                if (SSL_accept(c.ssl) != 1) {
                    c.accept_error = sslErrors();
                    SSL_free(c.ssl);
                    c.ssl = nullptr;
                }
            }
            handler(c);
            if (c.ssl != nullptr) {
                SSL_free(c.ssl);
            }
            ::close(c.fd);
            done_ = true;
        });
    }
    ~BlockingPeer() {
        ::shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept() if nobody connected
        thread_.join();
        ::close(listen_fd_);
        SSL_CTX_free(ctx_);
    }
    uint16_t port() const { return port_; }
    bool done() const { return done_; }

private:
    bool tls_;
    SSL_CTX* ctx_ = nullptr;
    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// A TLS server on memory BIOs: the test moves its ciphertext to and from a socket itself, in
// whatever pieces it wants (split reads, byte by byte).
class MemPeer {
public:
    explicit MemPeer(const TestCert& cert) {
        ctx_ = serverCtx(cert);
        ssl_ = SSL_new(ctx_);
        in_ = BIO_new(BIO_s_mem());
        out_ = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl_, in_, out_);
        SSL_set_accept_state(ssl_);
    }
    ~MemPeer() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
    }
    SSL* ssl() { return ssl_; }
    // Ciphertext from the client.
    void feed(const std::string& cipher) {
        BIO_write(in_, cipher.data(), static_cast<int>(cipher.size()));
    }
    // Advances the handshake; then decrypts what it can into `plain`. False on a fatal error.
    bool step(std::string* plain) {
        if (!SSL_is_init_finished(ssl_)) {
            int r = SSL_do_handshake(ssl_);
            if (r != 1 && SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
                return false;
            }
            if (r != 1) {
                return true;
            }
        }
        char buf[65536];
        for (;;) {
            size_t n = 0;
            int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
            if (r == 1) {
                plain->append(buf, n);
                continue;
            }
            int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_ZERO_RETURN) {
                closed_ = true;
                return true;
            }
            return e == SSL_ERROR_WANT_READ;
        }
    }
    bool write(const std::string& plain) {
        size_t n = 0;
        return SSL_write_ex(ssl_, plain.data(), plain.size(), &n) == 1;
    }
    // Ciphertext for the client.
    std::string takeOutput() {
        std::string s;
        char buf[65536];
        int n;
        while ((n = BIO_read(out_, buf, sizeof buf)) > 0) {
            s.append(buf, static_cast<size_t>(n));
        }
        return s;
    }
    bool gotCloseNotify() const { return closed_; }

private:
    SSL_CTX* ctx_;
    SSL* ssl_;
    BIO* in_;
    BIO* out_;
    bool closed_ = false;
};

// Runs a loop until a condition holds or a deadline passes (no sleeps: the loop wakes at
// least every timer tick).
class LoopDriver {
public:
    LoopDriver() {
        net::StreamConn::installLoopHooks(loop);
        loop.addIterationHook([this] {
            if (until_ && (until_() || std::chrono::steady_clock::now() > deadline_)) {
                loop.stop();
            }
        });
    }
    // True when `pred` held before the deadline.
    bool runUntil(std::function<bool()> pred, int timeout_ms = 20'000) {
        if (pred()) {
            return true;
        }
        until_ = pred;
        deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        loop.post([] {});  // at least one iteration
        loop.run();
        until_ = nullptr;
        return pred();
    }
    // One iteration (for tests that move bytes between iterations).
    void spin() {
        loop.post([this] { loop.stop(); });
        loop.run();
    }

    loop::EventLoop loop;

private:
    std::function<bool()> until_;
    std::chrono::steady_clock::time_point deadline_;
};

// Reads the client's first TLS record (the ClientHello) whole, so that closing afterwards
// sends a FIN, not a reset for unread data.
inline bool readClientHello(int fd) {
    unsigned char head[5];
    if (::recv(fd, head, sizeof head, MSG_WAITALL) != 5) {
        return false;
    }
    std::string body((size_t{head[3]} << 8) | head[4], '\0');
    return ::recv(fd, body.data(), body.size(), MSG_WAITALL) == static_cast<ssize_t>(body.size());
}

inline int connectLoopback(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

}  // namespace sb::testing
