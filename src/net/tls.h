// TLS for net::StreamConn (OpenSSL 3): a shared, immutable context per configuration and one
// session per connection. A session never touches the socket: ciphertext comes in through
// setInput() (bytes the connection recv'd into the loop's receive buffer) and goes out through
// a per-thread output buffer that the connection sends on its ordinary write path (cork, then
// backlog on EAGAIN), so TLS adds no second I/O path and an idle session owns no I/O buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

namespace sb::net {

enum class TlsRole : uint8_t { kClient, kServer };

struct TlsConfig {
    TlsRole role = TlsRole::kClient;
    // Client role: check the server's chain against the trusted CAs and its name against the
    // name given to TlsSession::create. On by default: a client that talks to whoever answers
    // would measure (or leak data to) the wrong server without noticing.
    bool verify_peer = true;
    // PEM file of CA certificates trusted instead of the system store (empty = the system store,
    // /etc/ssl/certs on Debian). Used only with verify_peer.
    std::string ca_file;
    // Server role: PEM certificate chain (leaf first) and private key.
    std::string cert_file;
    std::string key_file;
    // Server role: stateless session tickets (RFC 5077 / RFC 8446 §4.6.1), so a reconnecting
    // client resumes with one round trip and no certificate signature: what keeps a reconnect
    // storm after a restart or network blip cheap. The ticket key lives in the context; a
    // reloaded context starts a new one (old tickets then fall back to a full handshake).
    bool session_tickets = true;
    // Server role: a file of 80 random bytes (`openssl rand 80 > FILE`) that keys the session
    // tickets. Empty: a random key per context, so tickets die with a restart or a certificate
    // reload and each node of a cluster has its own. With one file shared by every node (and
    // kept across restarts) a client resumes wherever and whenever it reconnects.
    std::string ticket_key_file;
    // Client role: remember the newest session (ticket) per server name and offer it on the
    // next connection to that name, so reconnects resume instead of doing a full handshake
    // (what a real client does after a drop; the load tester measures reconnect storms so).
    bool resume_sessions = false;
};

// One SSL_CTX. Build it once per process (or per loop) and share it: loading the system CA
// store costs milliseconds, a session from an existing context microseconds. Immutable after
// create() (but for the client's resumption cache, which has its own lock), so sessions on
// different loop threads may use it at the same time. TLS 1.2 is the
// minimum version; renegotiation is refused. Server role: ALPN selects "http/1.1" (the only
// protocol we speak; a client offering only h2 proceeds without ALPN), TLS 1.2 suites are
// ECDHE with AEAD ciphers only (forward secrecy, no CBC), TLS 1.3 uses OpenSSL's defaults.
class TlsContext {
public:
    // Any thread. Errors carry OpenSSL's reason ("cannot load CA file x.pem: no such file").
    static base::Result<std::shared_ptr<TlsContext>> create(const TlsConfig& config);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    TlsRole role() const { return role_; }
    bool verifiesPeer() const { return verify_peer_; }
    bool resumesSessions() const { return resume_sessions_; }
    ssl_ctx_st* native() const { return ctx_; }

private:
    friend class TlsSession;
    friend struct TlsSessionCache;
    TlsContext(ssl_ctx_st* ctx, TlsRole role, bool verify_peer, bool resume)
        : ctx_(ctx), role_(role), verify_peer_(verify_peer), resume_sessions_(resume) {}
    ssl_ctx_st* ctx_;
    TlsRole role_;
    bool verify_peer_;
    bool resume_sessions_;
    // Client resumption: the newest session per server name (each holds one reference).
    std::mutex sessions_mu_;
    std::map<std::string, ssl_session_st*, std::less<>> sessions_;
};

// The TLS state of one connection. Used by exactly one loop thread (the connection's); it is
// owned by the connection (StreamConn) and moves with it on adoptFrom().
//
// Protocol: the owner feeds received ciphertext with setInput(), then calls handshake() until
// it returns kOk, then read() until it returns kWantInput. write() and shutdown() take
// plaintext / produce a close_notify. Every call may leave ciphertext in output(), which the
// owner must send (or copy) and clearOutput() before the next call on the same thread.
class TlsSession {
public:
    enum class Status : uint8_t {
        kOk,         // handshake: done; read: the output span is full, call again
        kWantInput,  // all input consumed; feed more ciphertext
        kClosed,     // the peer sent close_notify (read side at EOF)
        kError,      // fatal; error() says why. Later calls return kError again.
    };

    // `server_name` (client role): sent as SNI (unless it is an IP literal, RFC 6066 §3) and,
    // when the context verifies peers, matched against the certificate (DNS name or IP
    // address). Empty = no SNI and no name check.
    static base::Result<std::unique_ptr<TlsSession>> create(std::shared_ptr<TlsContext> ctx,
                                                            std::string_view server_name);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Ciphertext received. The span is borrowed: it must stay valid until the input is
    // consumed (a call returned kWantInput) or stashInput() copied what is left.
    void setInput(const uint8_t* data, size_t len);
    // Copies unconsumed input into the session (its owner changes, the span is about to be
    // reused). Rare: only a handover in the middle of a read does it.
    void stashInput();
    // True when input or decrypted records are waiting inside the session.
    bool hasBufferedInput() const;

    // Advances the handshake (the first call produces the ClientHello). On kOk, plaintext
    // written before completion has been encrypted into output().
    Status handshake();
    bool handshakeDone() const { return state_ != State::kHandshake && state_ != State::kFailed; }
    // After the handshake: the peer resumed an earlier session (ticket or session id).
    bool resumed() const;
    bool failed() const { return state_ == State::kFailed; }

    // Decrypts into out[0, cap) as much as the input allows; *got = bytes written (deliver
    // them even when the status is kClosed or kError).
    Status read(uint8_t* out, size_t cap, size_t* got);
    // Encrypts plaintext into output(). Before the handshake completes the bytes are held and
    // sent right after it. False after shutdown() or a fatal error (the bytes are dropped).
    bool write(const void* data, size_t len);
    // Queues close_notify (once, only after a completed handshake): our clean close.
    void shutdown();

    // OpenSSL's reason for the failure, e.g. "certificate verify failed: self-signed
    // certificate", "tlsv1 alert unknown ca", "wrong version number".
    const std::string& error() const { return error_; }

    // Ciphertext produced on this thread since the last clearOutput(). All sessions of a loop
    // share it (like the cork): valid until the next TlsSession call on this thread.
    static std::span<const uint8_t> output();
    static void clearOutput();

private:
    enum class State : uint8_t { kHandshake, kOpen, kFailed };
    friend struct TlsBio;
    friend struct TlsSessionCache;

    TlsSession(std::shared_ptr<TlsContext> ctx, ssl_st* ssl);
    Status fail(int ret);

    std::shared_ptr<TlsContext> ctx_;
    ssl_st* ssl_;
    const uint8_t* in_ = nullptr;  // borrowed ciphertext not yet consumed by OpenSSL
    size_t in_len_ = 0;
    std::vector<uint8_t> stash_;  // owned copy of unconsumed input after stashInput()
    std::string early_;           // plaintext written before the handshake completed
    std::string error_;
    std::string resume_key_;  // client with resumption: the server name its sessions are kept by
    State state_ = State::kHandshake;
    bool read_closed_ = false;  // close_notify received
    bool sent_shutdown_ = false;
};

}  // namespace sb::net
