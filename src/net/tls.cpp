#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace sb::net {

namespace {

// Ciphertext leaving any session of this thread. One buffer per loop thread instead of a
// memory BIO per connection: a mem BIO keeps its peak capacity for the connection's life,
// this keeps it once per loop. The owner drains it after every call (see TlsSession).
thread_local std::vector<uint8_t> t_out;

std::string reasonOf(unsigned long code) {
    if (ERR_SYSTEM_ERROR(code)) {
        return std::strerror(ERR_GET_REASON(code));  // e.g. a CA file that does not exist
    }
    const char* r = ERR_reason_error_string(code);
    if (r != nullptr) {
        return r;
    }
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

// The first error on the thread's queue, then empties the queue (a stale entry would make the
// next SSL_get_error() report SSL_ERROR_SSL for a plain WANT_READ).
std::string takeErrorQueue(const char* fallback) {
    unsigned long code = ERR_get_error();
    std::string s = code != 0 ? reasonOf(code) : fallback;
    ERR_clear_error();
    return s;
}

// ALPN (RFC 7301), server side: pick "http/1.1" when offered. A client that offers only other
// protocols (h2) gets no ALPN answer rather than a fatal alert: it may still speak HTTP/1.1,
// and if not it fails on its own with a clearer error than "no application protocol".
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
    static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
    for (unsigned int i = 0; i < inlen;) {
        const unsigned int n = in[i];
        if (i + 1 + n > inlen) {
            break;
        }
        if (n == sizeof kHttp11 && std::memcmp(in + i + 1, kHttp11, n) == 0) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(n);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

// TLS 1.2 suites for the server: ECDHE key exchange (forward secrecy) with AEAD ciphers only,
// the "intermediate" profile browsers and current clients all support.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

bool isIpLiteral(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

// The BIO between OpenSSL and the connection: reads come from the borrowed input span (no
// copy into a BIO buffer: SSL copies ciphertext once, into its record buffer), writes append
// to t_out. It never reaches EOF: the socket's EOF is reported by StreamConn, not through TLS.
struct TlsBio {
    static int write(BIO* b, const char* data, int len) {
        BIO_clear_retry_flags(b);
        const auto* p = reinterpret_cast<const uint8_t*>(data);
        t_out.insert(t_out.end(), p, p + len);
        return len;
    }
    static int read(BIO* b, char* out, int len) {
        BIO_clear_retry_flags(b);
        auto* s = static_cast<TlsSession*>(BIO_get_data(b));
        if (s->in_len_ == 0 || len <= 0) {
            BIO_set_retry_read(b);
            return -1;
        }
        const size_t n = std::min(s->in_len_, static_cast<size_t>(len));
        std::memcpy(out, s->in_, n);
        s->in_ += n;
        s->in_len_ -= n;
        if (s->in_len_ == 0 && !s->stash_.empty()) {
            std::vector<uint8_t>().swap(s->stash_);  // give the copy back
        }
        return static_cast<int>(n);
    }
    static long ctrl(BIO*, int cmd, long, void*) {
        // SSL flushes after each handshake flight; everything else (pending, eof, ktls
        // queries) is "no" for a BIO without a buffer or a socket.
        return cmd == BIO_CTRL_FLUSH ? 1 : 0;
    }
    static int create(BIO* b) {
        BIO_set_init(b, 1);
        return 1;
    }
    static const BIO_METHOD* method() {
        // Built once per process; BIO_METHOD is immutable after that (thread-safe static init).
        static BIO_METHOD* m = [] {
            BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sb-stream");
            BIO_meth_set_write(bm, &TlsBio::write);
            BIO_meth_set_read(bm, &TlsBio::read);
            BIO_meth_set_ctrl(bm, &TlsBio::ctrl);
            BIO_meth_set_create(bm, &TlsBio::create);
            return bm;
        }();
        return m;
    }
};

// A client context's resumption cache: OpenSSL hands every new session (a TLS 1.2 session or
// a TLS 1.3 ticket, which arrives after the handshake) to onNew; the context keeps the newest
// one per server name and offers it to the next connection.
struct TlsSessionCache {
    static int onNew(SSL* ssl, SSL_SESSION* session) {
        auto* owner = static_cast<TlsSession*>(SSL_get_app_data(ssl));
        auto* ctx = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
        if (owner == nullptr || ctx == nullptr) {
            return 0;
        }
        // A copy: OpenSSL marks a connection's own session unresumable when the connection
        // ends without close_notify (SSL_free of an unfinished SSL), and a dropped connection
        // is exactly the one whose client must resume cheaply.
        SSL_SESSION* copy = SSL_SESSION_dup(session);
        if (copy == nullptr) {
            return 0;
        }
        std::lock_guard lock(ctx->sessions_mu_);
        auto [it, fresh] = ctx->sessions_.try_emplace(owner->resume_key_, copy);
        if (!fresh) {
            SSL_SESSION_free(it->second);
            it->second = copy;
        }
        return 0;  // OpenSSL keeps (and frees) the original
    }
};

base::Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsConfig& config) {
    ERR_clear_error();
    const bool client = config.role == TlsRole::kClient;
    SSL_CTX* ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
    if (ctx == nullptr) {
        return base::fail("SSL_CTX_new: " + takeErrorQueue("out of memory"));
    }
    auto failWith = [ctx](std::string what) -> base::Unexpected<base::Error> {
        SSL_CTX_free(ctx);
        return base::fail(std::move(what) + ": " + takeErrorQueue("unknown error"));
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    // Idle connections give their 16 KiB record buffers back (thousands of idle sockets are
    // the norm here); read-ahead lets one BIO read take several records at once.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    bool verify = false;
    if (client) {
        verify = config.verify_peer;
        if (verify) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
            if (!config.ca_file.empty()) {
                if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
                    return failWith("cannot load CA file " + config.ca_file);
                }
            } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
                return failWith("cannot load the system CA store");
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        }
        if (config.resume_sessions) {
            SSL_CTX_set_session_cache_mode(
                ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_sess_set_new_cb(ctx, &TlsSessionCache::onNew);
        }
    } else {
        // Never prompt: OpenSSL's default asks for a passphrase on the controlling terminal,
        // which would hang a SIGHUP reload of a server started from a shell. An encrypted key
        // fails to load instead, and the error says so.
        SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
        if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
            return failWith("cannot load certificate " + config.cert_file);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            return failWith("cannot load private key " + config.key_file +
                            " (an encrypted key needs decrypting first: openssl pkey -in KEY "
                            "-out PLAIN_KEY)");
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            return failWith("private key does not match " + config.cert_file);
        }
        if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
            return failWith("cannot set the TLS 1.2 cipher list");
        }
        SSL_CTX_set_alpn_select_cb(ctx, &selectAlpn, nullptr);
        // Resumption: the session cache (TLS 1.2 session ids) and tickets need a context id.
        // One TLS 1.3 ticket per handshake instead of OpenSSL's two: a client here holds one
        // connection and resumes it once, so a second ticket is only extra work and bytes.
        static constexpr unsigned char kSessionContext[] = "switchboard";
        SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
        if (config.session_tickets) {
            SSL_CTX_set_num_tickets(ctx, 1);
            if (!config.ticket_key_file.empty()) {
                // 16 bytes of key name, 32 of HMAC key, 32 of AES key (OpenSSL's layout).
                constexpr size_t kTicketKeyBytes = 80;
                std::ifstream in(config.ticket_key_file, std::ios::binary);
                if (!in) {
                    SSL_CTX_free(ctx);
                    return base::fail("cannot read ticket key file " + config.ticket_key_file +
                                      ": " + std::strerror(errno));
                }
                std::string key((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
                if (key.size() != kTicketKeyBytes) {
                    SSL_CTX_free(ctx);
                    return base::fail("ticket key file " + config.ticket_key_file + " holds " +
                                      std::to_string(key.size()) +
                                      " bytes; it must hold exactly 80 random bytes (openssl "
                                      "rand 80 > FILE)");
                }
                if (SSL_CTX_set_tlsext_ticket_keys(ctx, key.data(), key.size()) != 1) {
                    return failWith("cannot set the session ticket keys");
                }
                OPENSSL_cleanse(key.data(), key.size());
            }
        } else {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(ctx, 0);
        }
    }
    const bool resume = client && config.resume_sessions;
    auto out = std::shared_ptr<TlsContext>(new TlsContext(ctx, config.role, verify, resume));
    SSL_CTX_set_app_data(ctx, out.get());
    return out;
}

TlsContext::~TlsContext() {
    for (auto& [name, session] : sessions_) {
        SSL_SESSION_free(session);
    }
    SSL_CTX_free(ctx_);
}

base::Result<std::unique_ptr<TlsSession>> TlsSession::create(std::shared_ptr<TlsContext> ctx,
                                                             std::string_view server_name) {
    ERR_clear_error();
    SSL* ssl = SSL_new(ctx->native());
    if (ssl == nullptr) {
        return base::fail("SSL_new: " + takeErrorQueue("out of memory"));
    }
    std::unique_ptr<TlsSession> s(new TlsSession(std::move(ctx), ssl));
    BIO* bio = BIO_new(TlsBio::method());
    if (bio == nullptr) {
        return base::fail("BIO_new: " + takeErrorQueue("out of memory"));
    }
    BIO_set_data(bio, s.get());
    SSL_set_bio(ssl, bio, bio);  // one BIO both ways; SSL owns the one reference
    if (s->ctx_->role() == TlsRole::kServer) {
        SSL_set_accept_state(ssl);
        return s;
    }
    SSL_set_connect_state(ssl);
    if (s->ctx_->resumesSessions()) {
        s->resume_key_ = std::string(server_name);
        SSL_set_app_data(ssl, s.get());
        std::lock_guard lock(s->ctx_->sessions_mu_);
        if (auto it = s->ctx_->sessions_.find(server_name); it != s->ctx_->sessions_.end()) {
            SSL_set_session(ssl, it->second);  // takes its own reference
        }
    }
    std::string name(server_name);
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);  // URL form of an IPv6 literal
    }
    if (name.empty()) {
        return s;
    }
    const bool ip = isIpLiteral(name);
    // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
    if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
        return base::fail("bad TLS server name '" + name + "': " + takeErrorQueue("rejected"));
    }
    if (s->ctx_->verifiesPeer()) {
        // An IP literal must match an iPAddress SAN; a name a dNSName (RFC 6125), no partial
        // wildcards such as "f*.example.com".
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                          : SSL_set1_host(ssl, name.c_str());
        if (ok != 1) {
            return base::fail("bad TLS server name '" + name + "': " + takeErrorQueue("rejected"));
        }
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    return s;
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> ctx, ssl_st* ssl)
    : ctx_(std::move(ctx)), ssl_(ssl) {}

TlsSession::~TlsSession() {
    SSL_free(ssl_);
}

void TlsSession::setInput(const uint8_t* data, size_t len) {
    if (in_len_ == 0) {
        in_ = data;
        in_len_ = len;
        return;
    }
    // Unconsumed input is always stashed (the protocol consumes borrowed input fully); keep
    // order by appending behind it.
    stashInput();
    stash_.insert(stash_.end(), data, data + len);
    in_ = stash_.data();
    in_len_ = stash_.size();
}

void TlsSession::stashInput() {
    if (in_len_ == 0) {
        return;
    }
    if (!stash_.empty() && in_ >= stash_.data() && in_ < stash_.data() + stash_.size()) {
        stash_.erase(stash_.begin(), stash_.begin() + (in_ - stash_.data()));  // already ours
    } else {
        stash_.assign(in_, in_ + in_len_);
    }
    in_ = stash_.data();
    in_len_ = stash_.size();
}

bool TlsSession::resumed() const {
    return SSL_session_reused(ssl_) == 1;
}

bool TlsSession::hasBufferedInput() const {
    return in_len_ > 0 || SSL_has_pending(ssl_) == 1;
}

TlsSession::Status TlsSession::fail(int ret) {
    const int e = SSL_get_error(ssl_, ret);
    if (e == SSL_ERROR_SYSCALL) {
        error_ = takeErrorQueue("unexpected end of the TLS stream");
    } else {
        unsigned long code = ERR_peek_error();
        error_ = takeErrorQueue("TLS protocol error");
        // "certificate verify failed" alone does not say what is wrong with the certificate.
        const long v = SSL_get_verify_result(ssl_);
        if (ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
            error_ += ": ";
            error_ += X509_verify_cert_error_string(v);
        }
    }
    state_ = State::kFailed;
    in_len_ = 0;
    std::vector<uint8_t>().swap(stash_);
    return Status::kError;
}

TlsSession::Status TlsSession::handshake() {
    if (state_ == State::kFailed) {
        return Status::kError;
    }
    if (state_ == State::kOpen) {
        return Status::kOk;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
        if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ) {
            return Status::kWantInput;
        }
        return fail(r);
    }
    state_ = State::kOpen;
    if (!early_.empty()) {
        std::string early = std::move(early_);
        early_ = std::string();
        write(early.data(), early.size());
    }
    return state_ == State::kOpen ? Status::kOk : Status::kError;
}

TlsSession::Status TlsSession::read(uint8_t* out, size_t cap, size_t* got) {
    *got = 0;
    if (state_ == State::kFailed) {
        return Status::kError;
    }
    if (read_closed_) {
        in_len_ = 0;  // after close_notify nothing more is plaintext
        return Status::kClosed;
    }
    ERR_clear_error();
    while (*got < cap) {
        size_t n = 0;
        const int r = SSL_read_ex(ssl_, out + *got, cap - *got, &n);
        if (r == 1) {
            *got += n;
            continue;
        }
        switch (SSL_get_error(ssl_, r)) {
            case SSL_ERROR_WANT_READ:
                return Status::kWantInput;
            case SSL_ERROR_ZERO_RETURN:
                read_closed_ = true;
                in_len_ = 0;
                return Status::kClosed;
            default:
                return fail(r);
        }
    }
    return Status::kOk;
}

bool TlsSession::write(const void* data, size_t len) {
    if (len == 0) {
        return state_ != State::kFailed && !sent_shutdown_;
    }
    if (state_ == State::kHandshake) {
        early_.append(static_cast<const char*>(data), len);
        return true;
    }
    if (state_ != State::kOpen || sent_shutdown_) {
        return false;
    }
    // Our BIO accepts every byte and renegotiation is off, so SSL_write completes in full.
    size_t n = 0;
    ERR_clear_error();
    const int r = SSL_write_ex(ssl_, data, len, &n);
    if (r != 1) {
        fail(r);
        return false;
    }
    return true;
}

void TlsSession::shutdown() {
    if (state_ != State::kOpen || sent_shutdown_) {
        return;
    }
    sent_shutdown_ = true;
    ERR_clear_error();
    // Returns 0 ("sent, the peer's not received yet"): we do not wait for the peer's, the
    // TCP FIN that follows ends the connection (RFC 8446 §6.1 allows the half-close).
    SSL_shutdown(ssl_);
    ERR_clear_error();
}

std::span<const uint8_t> TlsSession::output() {
    return {t_out.data(), t_out.size()};
}

void TlsSession::clearOutput() {
    t_out.clear();
}

}  // namespace sb::net
