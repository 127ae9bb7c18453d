#include "net/tls.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "net/stream_conn.h"
#include "socket_reads.h"
#include "tls_test_peer.h"

namespace sb::net {
namespace {

using testing::BlockingPeer;
using testing::LoopDriver;
using testing::MemPeer;
using testing::TempFile;
using testing::TestCert;

const TestCert& localhostCert() {
    static const TestCert c = testing::makeSelfSigned("DNS:localhost,IP:127.0.0.1");
    return c;
}

// What a probe saw; outlives the probe (the loop frees a closed connection).
struct Seen {
    std::string received;
    bool eof = false;
    bool handshake_reported = false;
    bool handshake_ok = false;
    std::string handshake_error;
    int drained = 0;
    bool closed = false;
};

class TlsProbe : public StreamConn {
public:
    TlsProbe(loop::EventLoop* loop, int fd, Seen* seen) : StreamConn(loop, fd), seen_(seen) {}
    std::function<void(TlsProbe&)> on_data;

protected:
    void onData(uint8_t* data, size_t len) override {
        seen_->received.append(reinterpret_cast<char*>(data), len);
        if (on_data) {
            on_data(*this);
        }
    }
    void onEof() override {
        seen_->eof = true;
        close();
    }
    void onClosed() override { seen_->closed = true; }
    void onDrained() override { ++seen_->drained; }
    void onTlsHandshake(std::string_view error) override {
        seen_->handshake_reported = true;
        seen_->handshake_ok = error.empty();
        seen_->handshake_error = std::string(error);
        if (!error.empty()) {
            close();
        }
    }

private:
    Seen* seen_;
};

std::shared_ptr<TlsContext> clientCtx(bool verify, const std::string& ca_file = {}) {
    TlsConfig cfg;
    cfg.verify_peer = verify;
    cfg.ca_file = ca_file;
    auto ctx = TlsContext::create(cfg);
    EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
    return *ctx;
}

std::unique_ptr<TlsSession> session(std::shared_ptr<TlsContext> ctx, const std::string& name) {
    auto s = TlsSession::create(std::move(ctx), name);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return std::move(*s);
}

std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& c : s) {
        c = static_cast<char>(rng());
    }
    return s;
}

// Echoes every byte until the client ends the stream; records how it ended.
struct EchoOutcome {
    std::atomic<bool> close_notify{false};
    std::string accept_error;
};
BlockingPeer::Handler echoHandler(EchoOutcome* out) {
    return [out](BlockingPeer::Conn& c) {
        if (c.ssl == nullptr) {
            out->accept_error = c.accept_error;
            return;
        }
        char buf[65536];
        for (;;) {
            size_t n = 0;
            int r = SSL_read_ex(c.ssl, buf, sizeof buf, &n);
            if (r != 1) {
                out->close_notify = SSL_get_error(c.ssl, r) == SSL_ERROR_ZERO_RETURN;
                return;
            }
            if (!testing::sslWriteAll(c.ssl, buf, n)) {
                return;
            }
        }
    };
}

TlsProbe* connectProbe(LoopDriver& d, uint16_t port, std::unique_ptr<TlsSession> s, Seen* seen) {
    auto* p = new TlsProbe(&d.loop, testing::connectLoopback(port), seen);
    EXPECT_TRUE(p->attach());
    p->startTls(std::move(s));
    return p;
}

TEST(TlsContext, ReportsAnUnreadableCaFile) {
    TlsConfig cfg;
    cfg.ca_file = "/nonexistent/ca.pem";
    auto ctx = TlsContext::create(cfg);
    ASSERT_FALSE(ctx.has_value());
    EXPECT_NE(ctx.error().message.find("cannot load CA file /nonexistent/ca.pem"),
              std::string::npos);
    EXPECT_NE(ctx.error().message.find("No such file"), std::string::npos) << ctx.error().message;
}

TEST(TlsContext, ServerRoleLoadsItsCertificateAndRefusesAForeignKey) {
    TempFile cert(localhostCert().cert_pem);
    TempFile key(localhostCert().key_pem);
    TlsConfig cfg;
    cfg.role = TlsRole::kServer;
    cfg.cert_file = cert.path();
    cfg.key_file = key.path();
    auto ok = TlsContext::create(cfg);
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
    EXPECT_EQ((*ok)->role(), TlsRole::kServer);
    TempFile other(testing::makeSelfSigned("DNS:x").key_pem);
    cfg.key_file = other.path();
    EXPECT_FALSE(TlsContext::create(cfg).has_value());
}

TEST(Tls, HandshakeThenEchoFromEmptyTo1MiBAcrossRecordBoundaries) {
    EchoOutcome outcome;
    BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
    LoopDriver d;
    Seen seen;
    TlsProbe* p = connectProbe(d, peer.port(), session(clientCtx(false), "127.0.0.1"), &seen);
    ASSERT_TRUE(d.runUntil([&] { return seen.handshake_reported || seen.eof; }));
    ASSERT_TRUE(seen.handshake_ok) << seen.handshake_error;
    EXPECT_TRUE(p->tlsHandshakeDone());
    // 16384 is one full record; the neighbours straddle it; 64 KiB + 3 passes the cork.
    std::string expected;
    for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{16383}, size_t{16384}, size_t{16385},
                     size_t{65539}, size_t{1} << 20}) {
        std::string msg = pattern(n, static_cast<uint32_t>(n));
        p->write(msg.data(), msg.size());
        p->uncork();
        expected += msg;
        ASSERT_TRUE(d.runUntil([&] { return seen.received.size() >= expected.size(); }))
            << "size " << n << ": got " << seen.received.size() << " of " << expected.size();
        ASSERT_TRUE(seen.received == expected) << "echo of " << n << " B differs";
    }
    // Our clean close: close_notify before the FIN; the peer then closes and we see EOF.
    p->shutdownWrite();
    ASSERT_TRUE(d.runUntil([&] { return seen.eof; }));
    EXPECT_TRUE(outcome.close_notify.load());
}

TEST(Tls, WritesBeforeTheHandshakeCompletesAreSentAfterIt) {
    EchoOutcome outcome;
    BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
    LoopDriver d;
    Seen seen;
    TlsProbe* p = connectProbe(d, peer.port(), session(clientCtx(false), ""), &seen);
    p->write("early bytes", 11);
    p->uncork();
    ASSERT_TRUE(d.runUntil([&] { return seen.received.size() >= 11 || seen.eof; }));
    EXPECT_EQ(seen.received, "early bytes");
    p->close();
}

TEST(Tls, SelfSignedCertificateFailsVerificationWithoutItsCa) {
    EchoOutcome outcome;
    BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
    LoopDriver d;
    Seen seen;
    // The system store (verify on, no ca_file) does not know our test certificate.
    connectProbe(d, peer.port(), session(clientCtx(true), "localhost"), &seen);
    ASSERT_TRUE(d.runUntil([&] { return seen.handshake_reported || seen.eof; }));
    EXPECT_FALSE(seen.handshake_ok);
    EXPECT_EQ(seen.handshake_error, "certificate verify failed: self-signed certificate");
    ASSERT_TRUE(d.runUntil([&] { return peer.done(); }));
    // We sent an alert: the server's handshake failed too, with a reason.
    EXPECT_NE(outcome.accept_error.find("alert"), std::string::npos) << outcome.accept_error;
}

TEST(Tls, CaFileMakesTheCertificateTrustedByNameAndByIp) {
    TempFile ca(localhostCert().cert_pem);
    auto ctx = clientCtx(true, ca.path());
    for (const char* name : {"localhost", "127.0.0.1"}) {
        EchoOutcome outcome;
        BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
        LoopDriver d;
        Seen seen;
        TlsProbe* p = connectProbe(d, peer.port(), session(ctx, name), &seen);
        ASSERT_TRUE(d.runUntil([&] { return seen.handshake_reported || seen.eof; })) << name;
        ASSERT_TRUE(seen.handshake_ok) << name << ": " << seen.handshake_error;
        p->write("x", 1);
        p->uncork();
        ASSERT_TRUE(d.runUntil([&] { return !seen.received.empty(); }));
        p->shutdownWrite();
        ASSERT_TRUE(d.runUntil([&] { return seen.eof; }));
    }
}

TEST(Tls, NameMismatchFailsVerification) {
    TempFile ca(localhostCert().cert_pem);
    auto ctx = clientCtx(true, ca.path());
    for (auto [name, want] :
         {std::pair{"other.example", "certificate verify failed: hostname mismatch"},
          std::pair{"127.0.0.2", "certificate verify failed: IP address mismatch"}}) {
        EchoOutcome outcome;
        BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
        LoopDriver d;
        Seen seen;
        connectProbe(d, peer.port(), session(ctx, name), &seen);
        ASSERT_TRUE(d.runUntil([&] { return seen.handshake_reported || seen.eof; }));
        EXPECT_EQ(seen.handshake_error, want);
    }
}

TEST(Tls, InsecureAcceptsAnyCertificateAndName) {
    EchoOutcome outcome;
    BlockingPeer peer(localhostCert(), true, echoHandler(&outcome));
    LoopDriver d;
    Seen seen;
    TlsProbe* p = connectProbe(d, peer.port(), session(clientCtx(false), "other.example"), &seen);
    ASSERT_TRUE(d.runUntil([&] { return seen.handshake_reported || seen.eof; }));
    EXPECT_TRUE(seen.handshake_ok) << seen.handshake_error;
    p->close();
}

TEST(Tls, PeerClosingMidHandshakeIsEofNotAHandshakeVerdict) {
    BlockingPeer peer(localhostCert(), false,
                      [](BlockingPeer::Conn& c) { EXPECT_TRUE(testing::readClientHello(c.fd)); });
    LoopDriver d;
    Seen seen;
    TlsProbe* p = connectProbe(d, peer.port(), session(clientCtx(false), ""), &seen);
    (void)p;
    ASSERT_TRUE(d.runUntil([&] { return seen.eof || seen.handshake_reported; }));
    EXPECT_TRUE(seen.eof);
    EXPECT_FALSE(seen.handshake_reported);
}

TEST(Tls, PlainHttpPeerFailsTheHandshakeWithAReason) {
    BlockingPeer peer(localhostCert(), false, [](BlockingPeer::Conn& c) {
        char buf[5];
        EXPECT_TRUE(testing::readClientHello(c.fd));
        const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)::send(c.fd, resp, sizeof resp - 1, MSG_NOSIGNAL);
        (void)::recv(c.fd, buf, sizeof buf, 0);  // until the client gives up
    });
    LoopDriver d;
    Seen seen;
    connectProbe(d, peer.port(), session(clientCtx(false), ""), &seen);
    ASSERT_TRUE(d.runUntil([&] { return seen.eof || seen.handshake_reported; }));
    EXPECT_TRUE(seen.handshake_reported);
    EXPECT_FALSE(seen.handshake_error.empty());
}

TEST(Tls, PeerCloseNotifyIsEofAfterItsData) {
    BlockingPeer peer(localhostCert(), true, [](BlockingPeer::Conn& c) {
        if (c.ssl == nullptr) {
            return;
        }
        testing::sslWriteAll(c.ssl, "bye", 3);
        SSL_shutdown(c.ssl);
        char b;
        size_t n;
        SSL_read_ex(c.ssl, &b, 1, &n);  // until the client closes
    });
    LoopDriver d;
    Seen seen;
    connectProbe(d, peer.port(), session(clientCtx(false), ""), &seen);
    ASSERT_TRUE(d.runUntil([&] { return seen.eof; }));
    EXPECT_EQ(seen.received, "bye");
}

// Moves the client's ciphertext to the in-memory server and the server's back, in pieces of
// `piece(i)` bytes with a loop iteration after each: every read sees a fragment.
class SplitWire {
public:
    SplitWire(LoopDriver& d, int fd, MemPeer& peer) : d_(d), fd_(fd), peer_(peer) {}
    void clientToServer(std::string* plain) {
        peer_.feed(readAvailable(fd_));
        ASSERT_TRUE(peer_.step(plain)) << testing::sslErrors();
    }
    template <class Piece>
    void serverToClient(Piece piece) {
        std::string out = peer_.takeOutput();
        size_t off = 0;
        for (size_t i = 0; off < out.size(); ++i) {
            size_t n = std::min(out.size() - off, piece(i));
            ASSERT_EQ(::send(fd_, out.data() + off, n, MSG_NOSIGNAL), static_cast<ssize_t>(n));
            off += n;
            d_.spin();
        }
    }

private:
    LoopDriver& d_;
    int fd_;
    MemPeer& peer_;
};

// A client TlsProbe on one end of a socketpair, the in-memory server on the other, and the
// wire between them; handshake() runs the rounds until the client reports.
struct SplitSetup {
    int sv[2] = {-1, -1};
    MemPeer peer{localhostCert()};
    LoopDriver d;
    std::unique_ptr<SplitWire> wire;
    std::string server_plain;  // what the server decrypted so far

    SplitSetup() {
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        wire = std::make_unique<SplitWire>(d, sv[1], peer);
    }
    ~SplitSetup() {
        if (sv[1] >= 0) {
            ::close(sv[1]);
        }
    }
    TlsProbe* client(Seen* seen) {
        auto* p = new TlsProbe(&d.loop, sv[0], seen);
        EXPECT_TRUE(p->attach());
        p->startTls(session(clientCtx(false), ""));
        return p;
    }
    // `piece`: bytes per server-to-client write, as in SplitWire::serverToClient.
    template <class Piece>
    void handshake(const Seen& seen, Piece piece) {
        for (int round = 0; round < 4 && !seen.handshake_reported; ++round) {
            wire->clientToServer(&server_plain);
            wire->serverToClient(piece);
        }
    }
};

TEST(Tls, HandshakeAndRecordsArriveByteByByteAndInRandomSplits) {
    SplitSetup t;
    Seen seen;
    TlsProbe* p = t.client(&seen);
    t.handshake(seen, [](size_t) { return size_t{1}; });
    ASSERT_TRUE(seen.handshake_ok) << seen.handshake_error;
    p->write("ping", 4);
    p->uncork();
    t.wire->clientToServer(&t.server_plain);
    EXPECT_EQ(t.server_plain, "ping");
    std::string big = pattern(100'000, 7);  // 7 records
    ASSERT_TRUE(t.peer.write(big));
    std::mt19937 rng(42);
    t.wire->serverToClient([&](size_t) { return size_t{1} + rng() % 3000; });
    EXPECT_EQ(seen.received.size(), big.size());
    EXPECT_TRUE(seen.received == big);
    p->close();
}

TEST(Tls, BacklogHoldsCiphertextUntilThePeerReads) {
    SplitSetup t;
    Seen seen;
    TlsProbe* p = t.client(&seen);
    t.handshake(seen, [](size_t) { return size_t{65536}; });
    ASSERT_TRUE(seen.handshake_ok);
    std::string big = pattern(4 << 20, 9);
    p->write(big.data(), big.size());
    p->uncork();
    EXPECT_GT(p->backlogBytes(), 0u);  // a socketpair holds far less than 4 MiB
    for (int i = 0; i < 10'000 && t.server_plain.size() < big.size(); ++i) {
        t.wire->clientToServer(&t.server_plain);
        t.d.spin();  // EPOLLOUT edge: the backlog flushes
    }
    ASSERT_EQ(t.server_plain.size(), big.size());
    EXPECT_TRUE(t.server_plain == big);
    EXPECT_EQ(p->backlogBytes(), 0u);
    EXPECT_GE(seen.drained, 1);
    p->close();
}

TEST(Tls, AdoptionMovesTheSessionMidRead) {
    SplitSetup t;
    Seen first, second;
    TlsProbe* a = t.client(&first);
    // On its first bytes, `a` hands the socket (and the TLS session) to `b`, as the client's
    // handshake object does when the 101 arrives.
    TlsProbe* b = nullptr;
    a->on_data = [&](TlsProbe& self) {
        b = new TlsProbe(&t.d.loop, -1, &second);
        b->adoptFrom(&self);
    };
    const auto whole = [](size_t) { return size_t{65536}; };
    t.handshake(first, whole);
    ASSERT_TRUE(first.handshake_ok);
    t.wire->clientToServer(&t.server_plain);  // our Finished
    ASSERT_TRUE(t.peer.write("101"));
    t.wire->serverToClient(whole);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(first.received, "101");
    ASSERT_TRUE(t.peer.write("frames"));
    t.wire->serverToClient(whole);
    EXPECT_EQ(second.received, "frames");
    b->write("reply", 5);  // encrypted by the adopted session
    b->uncork();
    t.wire->clientToServer(&t.server_plain);
    EXPECT_EQ(t.server_plain, "reply");
    b->close();
}

// The session alone, no sockets: unconsumed input survives its span being reused.
TEST(TlsSession, StashKeepsUnconsumedInputWhenTheSpanIsReused) {
    MemPeer peer(localhostCert());
    auto s = session(clientCtx(false), "");
    std::string server_plain;
    std::string wire;
    for (int i = 0; i < 4 && !s->handshakeDone(); ++i) {
        if (!wire.empty()) {
            s->setInput(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
        }
        ASSERT_NE(s->handshake(), TlsSession::Status::kError) << s->error();
        auto out = TlsSession::output();
        peer.feed(std::string(reinterpret_cast<const char*>(out.data()), out.size()));
        TlsSession::clearOutput();
        ASSERT_TRUE(peer.step(&server_plain));
        wire = peer.takeOutput();
    }
    ASSERT_TRUE(s->handshakeDone());
    if (!wire.empty()) {  // TLS 1.3 session tickets
        s->setInput(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
        uint8_t sink[64];
        size_t got = 0;
        EXPECT_EQ(s->read(sink, sizeof sink, &got), TlsSession::Status::kWantInput);
    }
    const std::string a(1000, 'a'), b(1000, 'b'), c(1000, 'c');
    ASSERT_TRUE(peer.write(a) && peer.write(b) && peer.write(c));
    wire = peer.takeOutput();
    s->setInput(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
    uint8_t out[3000];
    size_t got = 0;
    ASSERT_EQ(s->read(out, 1500, &got), TlsSession::Status::kOk);  // full: more is waiting
    ASSERT_EQ(got, 1500u);
    EXPECT_TRUE(s->hasBufferedInput());
    s->stashInput();
    wire.assign(wire.size(), '\0');  // the receive buffer is reused for another socket
    size_t more = 0;
    EXPECT_EQ(s->read(out + 1500, 1500, &more), TlsSession::Status::kOk);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 3000), a + b + c);
    EXPECT_EQ(s->read(out, sizeof out, &more), TlsSession::Status::kWantInput);
    EXPECT_EQ(more, 0u);
    EXPECT_FALSE(s->hasBufferedInput());
}

// Two of our own sessions, client and server, talking through memory: each call's output is
// taken from the thread's buffer and fed to the other side.
std::string takeTlsOutput() {
    auto out = TlsSession::output();
    std::string s(reinterpret_cast<const char*>(out.data()), out.size());
    TlsSession::clearOutput();
    return s;
}

void feed(TlsSession& s, const std::string& bytes) {
    if (!bytes.empty()) {
        s.setInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
}

// Runs the handshake to its end, then lets the client read what follows it (TLS 1.3 tickets).
// A session borrows its input until it is consumed: every span fed stays alive in `wire`.
void handshakeInMemory(TlsSession& client, TlsSession& server) {
    std::vector<std::string> wire;
    auto pass = [&wire](TlsSession& to) {
        wire.push_back(takeTlsOutput());
        feed(to, wire.back());
    };
    client.handshake();
    for (int i = 0; i < 6 && !(client.handshakeDone() && server.handshakeDone()); ++i) {
        pass(server);
        server.handshake();
        pass(client);
        client.handshake();
    }
    pass(server);
    server.handshake();
    uint8_t sink[64];
    size_t got = 0;
    server.read(sink, sizeof sink, &got);
    pass(client);
    client.read(sink, sizeof sink, &got);
    TlsSession::clearOutput();
}

TEST(TlsResumption, AClientThatKeepsSessionsResumesAndOneThatDoesNotDoesNot) {
    TempFile cert(localhostCert().cert_pem);
    TempFile key(localhostCert().key_pem);
    TlsConfig scfg{.role = TlsRole::kServer, .cert_file = cert.path(), .key_file = key.path()};
    auto server_ctx = TlsContext::create(scfg);
    ASSERT_TRUE(server_ctx.has_value()) << server_ctx.error().message;
    for (bool keep : {true, false}) {
        SCOPED_TRACE(keep ? "resume_sessions" : "no resumption");
        TlsConfig ccfg;
        ccfg.verify_peer = false;
        ccfg.resume_sessions = keep;
        auto client_ctx = TlsContext::create(ccfg);
        ASSERT_TRUE(client_ctx.has_value());
        for (int round = 0; round < 3; ++round) {
            auto c = session(*client_ctx, "localhost");
            auto sv = session(*server_ctx, {});
            handshakeInMemory(*c, *sv);
            ASSERT_TRUE(c->handshakeDone() && sv->handshakeDone()) << "round " << round;
            // The first connection has no session to offer; later ones resume the newest.
            EXPECT_EQ(sv->resumed(), keep && round > 0) << "round " << round;
            EXPECT_EQ(c->resumed(), keep && round > 0) << "round " << round;
        }
        // Another server name has its own (empty) slot.
        auto c = session(*client_ctx, "other.invalid");
        auto sv = session(*server_ctx, {});
        handshakeInMemory(*c, *sv);
        EXPECT_FALSE(sv->resumed());
    }
}

TEST(TlsResumption, ASharedTicketKeyLetsAnotherServerContextResume) {
    TempFile cert(localhostCert().cert_pem);
    TempFile key(localhostCert().key_pem);
    TempFile ticket_key(pattern(80, 7));
    auto server = [&](const std::string& ticket_file) {
        TlsConfig cfg{.role = TlsRole::kServer,
                      .cert_file = cert.path(),
                      .key_file = key.path(),
                      .ticket_key_file = ticket_file};
        auto ctx = TlsContext::create(cfg);
        EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
        return *ctx;
    };
    // Two "nodes" (or one before and after a reload) with the same key file, one without.
    auto a = server(ticket_key.path());
    auto b = server(ticket_key.path());
    auto c = server({});
    TlsConfig ccfg;
    ccfg.verify_peer = false;
    ccfg.resume_sessions = true;
    auto client = TlsContext::create(ccfg);
    ASSERT_TRUE(client.has_value());
    auto connect = [&](const std::shared_ptr<TlsContext>& srv) {
        auto cs = session(*client, "localhost");
        auto ss = session(srv, {});
        handshakeInMemory(*cs, *ss);
        EXPECT_TRUE(cs->handshakeDone() && ss->handshakeDone());
        return ss->resumed();
    };
    EXPECT_FALSE(connect(a));  // first contact: a ticket from a
    EXPECT_TRUE(connect(b));   // b decrypts a's ticket
    EXPECT_FALSE(connect(c));  // c has its own random key: a full handshake
    EXPECT_FALSE(connect(a));  // ...and its ticket means nothing to a
}

TEST(TlsContext, TicketKeyFileMustHoldEightyBytes) {
    TempFile cert(localhostCert().cert_pem);
    TempFile key(localhostCert().key_pem);
    TempFile short_key(pattern(48, 1));
    TlsConfig cfg{.role = TlsRole::kServer,
                  .cert_file = cert.path(),
                  .key_file = key.path(),
                  .ticket_key_file = short_key.path()};
    auto r = TlsContext::create(cfg);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("exactly 80 random bytes"), std::string::npos)
        << r.error().message;
    cfg.ticket_key_file = "/nonexistent/ticket.key";
    r = TlsContext::create(cfg);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("cannot read ticket key file"), std::string::npos)
        << r.error().message;
}

}  // namespace
}  // namespace sb::net
