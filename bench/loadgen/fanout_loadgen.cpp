// fanout_loadgen: single-threaded epoll WebSocket client for bench/run_fanout_bench.sh. Measures
// fan-out (pub/sub) on loopback, against Switchboard's native protocol or a plain room
// broadcast server (bench/peers/ws_broadcast.mjs), and prints one JSON line of results.
//
//   broadcast  N subscribers in one room and one publisher that keeps at most W publications
//              ahead of the slowest subscriber (a publication is done when every subscriber
//              has it). Reports deliveries/s (messages received by all subscribers together).
//   latency    N subscribers, each in a room of its own, and P publisher connections that
//              publish to every room at R publications/s per room (N*R/s spread evenly).
//              Reports the delivery latency (send time in the payload -> receipt) p50..max.
//
// Protocols (--proto):
//   native  Switchboard (docs/protocol.md): ws://HOST:PORT/ws, subprotocol switchboard.v1.json;
//           every connection sends {"type":"connect"}, subscribers {"type":"subscribe",
//           "channel":"room:K"}; the publisher sends {"type":"publish","channel":"room:K",
//           "data":PAYLOAD} and receives "published"; subscribers receive {"type":"message",
//           ...,"offset":N,"data":PAYLOAD}.
//   plain   subscribers connect to ws://HOST:PORT/room/K and receive PAYLOAD as a text frame.
//           broadcast: the publisher connects to /room/1 and sends PAYLOAD (the server relays it
//           to everyone else in the room); latency: the publishers connect to /pub and send
//           "/room/K PAYLOAD" (one connection serves every room, like a native publish).
//
// PAYLOAD is a JSON object of --size bytes (default 64): {"seq":S,"t":T,"p":"xxx…"}, S the
// per-room sequence number from 1, T the generator's CLOCK_MONOTONIC in microseconds when the
// publication was written to the socket buffer. Every subscriber checks: no loss (no seq
// skipped, and at the end every publication arrived), no duplicate, in order; native also
// checks that the stream offset grows by exactly 1. Exit status 1 on any loss, duplicate,
// reordering, error reply, failed handshake or connection closed by the server.
//
// Not the bottleneck by construction (ideas from ws_loadgen.cpp): every readable socket is
// read into one shared 512 KiB buffer and parsed in place, each connection gets at most one
// send() per loop iteration, and the per-publication bookkeeping is O(1) per delivery.
//
// Build: g++ -O2 -std=c++23 fanout_loadgen.cpp -o fanout_loadgen -lcrypto

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sb::bench {
namespace {

constexpr size_t kReadBufferSize = 512 * 1024;
constexpr int kMaxEvents = 1024;
constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kSubprotocol = "switchboard.v1.json";

volatile sig_atomic_t g_stop = 0;
void onSignal(int) {
    g_stop = 1;
}

double nowSec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t nowUs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// ---- CPU accounting (which side was saturated; was anything else running) -----------------

double processCpuSec(int pid) {
    if (pid <= 0)
        return -1;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE* f = std::fopen(path, "r");
    if (f == nullptr)
        return -1;
    char line[1024];
    size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    line[n] = '\0';
    const char* p = std::strrchr(line, ')');  // fields after the command name
    if (p == nullptr)
        return -1;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                    &stime) != 2) {
        return -1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double machineBusySec() {
    FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr)
        return -1;
    unsigned long long v[8] = {};
    int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5], &v[6], &v[7]);
    std::fclose(f);
    if (n != 8)
        return -1;
    return static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Seconds the main thread of `pid` (0 = this process) was runnable but waiting for a CPU.
double runDelaySec(int pid) {
    char path[64];
    if (pid > 0) {
        std::snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    } else {
        std::snprintf(path, sizeof path, "/proc/self/schedstat");
    }
    FILE* f = std::fopen(path, "r");
    if (f == nullptr)
        return -1;
    unsigned long long run_ns = 0;
    unsigned long long wait_ns = 0;
    int n = std::fscanf(f, "%llu %llu", &run_ns, &wait_ns);
    std::fclose(f);
    return n == 2 ? static_cast<double>(wait_ns) * 1e-9 : -1;
}

double selfCpuSec() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

struct CpuWindow {
    double gen = -1;
    double server = -1;
    double machine = -1;
    double gen_wait = -1;
    double server_wait = -1;
};

class CpuMeter {
public:
    explicit CpuMeter(int server_pid) : pid_(server_pid) {}
    void start() {
        t0_ = nowSec();
        gen0_ = selfCpuSec();
        server0_ = processCpuSec(pid_);
        machine0_ = machineBusySec();
        gen_wait0_ = runDelaySec(0);
        server_wait0_ = pid_ > 0 ? runDelaySec(pid_) : -1;
    }
    CpuWindow stop() const {
        CpuWindow w;
        double secs = nowSec() - t0_;
        if (secs <= 0)
            return w;
        auto rate = [secs](double a, double b) { return a >= 0 && b >= 0 ? (b - a) / secs : -1; };
        w.gen = rate(gen0_, selfCpuSec());
        w.server = rate(server0_, processCpuSec(pid_));
        w.machine = rate(machine0_, machineBusySec());
        w.gen_wait = rate(gen_wait0_, runDelaySec(0));
        w.server_wait = rate(server_wait0_, pid_ > 0 ? runDelaySec(pid_) : -1);
        return w;
    }

private:
    int pid_;
    double t0_ = 0, gen0_ = 0, server0_ = -1, machine0_ = -1, gen_wait0_ = -1, server_wait0_ = -1;
};

// ---- Options ------------------------------------------------------------------------------

enum class Mode : uint8_t { kBroadcast, kLatency };
enum class Proto : uint8_t { kNative, kPlain };

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    Mode mode = Mode::kBroadcast;
    Proto proto = Proto::kNative;
    uint32_t subs = 1000;
    uint32_t window = 16;     // broadcast: publications ahead of the slowest subscriber
    uint32_t publishers = 1;  // latency: publisher connections
    double rate = 1.0;        // latency: publications per second per room
    uint32_t size = 64;       // payload bytes
    double duration = 5.0;    // measured seconds
    double warmup = 1.0;      // seconds of traffic before the measurement
    double drain = 30.0;      // longest wait for the last publications after sending stops
    double drain_idle = 2.0;  // ... and the longest wait with no delivery at all
    uint32_t connect_window = 256;
    uint32_t src_addrs = 0;  // 0 = one 127.0.0.x source address per 1,000 connections
    double handshake_timeout = 60.0;
    int server_pid = 0;
    std::string ws_path = "/ws";
    std::string channel_prefix = "room:";
    std::string room_prefix = "/room/";
    std::string slow_log;  // latency: file for samples over slow_us (diagnosis)
    double slow_us = 1000;
};

[[noreturn]] void usage(const char* msg) {
    if (msg != nullptr)
        std::fprintf(stderr, "fanout_loadgen: %s\n", msg);
    std::fprintf(stderr,
                 "usage: fanout_loadgen --port P --mode broadcast|latency --proto native|plain\n"
                 "         [--host 127.0.0.1] [--subs N] [--window W] [--publishers P]\n"
                 "         [--rate R] [--size S] [--duration T] [--warmup W] [--drain D]\n"
                 "         [--drain-idle I]\n"
                 "         [--connect-window C] [--src-addrs M] [--handshake-timeout T]\n"
                 "         [--server-pid PID] [--slow-log FILE [--slow-us 1000]]\n");
    std::exit(2);
}

Options parseOptions(int argc, char** argv) {
    Options o;
    bool have_mode = false;
    bool have_proto = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc)
                usage("missing value");
            return argv[++i];
        };
        auto number = [&]() -> double {
            const char* v = value();
            char* end = nullptr;
            double d = std::strtod(v, &end);
            if (end == v || *end != '\0' || !(d >= 0))
                usage("bad number");
            return d;
        };
        if (a == "--host") {
            o.host = value();
        } else if (a == "--port") {
            o.port = static_cast<int>(number());
        } else if (a == "--mode") {
            std::string_view v = value();
            if (v == "broadcast")
                o.mode = Mode::kBroadcast;
            else if (v == "latency")
                o.mode = Mode::kLatency;
            else
                usage("--mode is broadcast or latency");
            have_mode = true;
        } else if (a == "--proto") {
            std::string_view v = value();
            if (v == "native")
                o.proto = Proto::kNative;
            else if (v == "plain")
                o.proto = Proto::kPlain;
            else
                usage("--proto is native or plain");
            have_proto = true;
        } else if (a == "--subs") {
            o.subs = static_cast<uint32_t>(number());
        } else if (a == "--window") {
            o.window = static_cast<uint32_t>(number());
        } else if (a == "--publishers") {
            o.publishers = static_cast<uint32_t>(number());
        } else if (a == "--rate") {
            o.rate = number();
        } else if (a == "--size") {
            o.size = static_cast<uint32_t>(number());
        } else if (a == "--duration") {
            o.duration = number();
        } else if (a == "--warmup") {
            o.warmup = number();
        } else if (a == "--drain") {
            o.drain = number();
        } else if (a == "--drain-idle") {
            o.drain_idle = number();
        } else if (a == "--connect-window") {
            o.connect_window = static_cast<uint32_t>(number());
        } else if (a == "--src-addrs") {
            o.src_addrs = static_cast<uint32_t>(number());
        } else if (a == "--handshake-timeout") {
            o.handshake_timeout = number();
        } else if (a == "--slow-log") {
            o.slow_log = value();
        } else if (a == "--slow-us") {
            o.slow_us = number();
        } else if (a == "--server-pid") {
            o.server_pid = static_cast<int>(number());
        } else if (a == "-h" || a == "--help") {
            usage(nullptr);
        } else {
            usage("unknown option");
        }
    }
    if (o.port <= 0 || o.port > 65535)
        usage("--port is required");
    if (!have_mode || !have_proto)
        usage("--mode and --proto are required");
    if (o.subs == 0 || o.subs > 60000)
        usage("--subs must be 1..60000");
    if (o.window == 0 || o.window > 65536)
        usage("--window must be 1..65536");
    if (o.publishers == 0 || o.publishers > 64)
        usage("--publishers must be 1..64");
    if (o.mode == Mode::kBroadcast)
        o.publishers = 1;
    if (o.size < 40 || o.size > 60000)
        usage("--size must be 40..60000 (the payload is JSON)");
    if (o.duration <= 0 || o.duration > 600 || o.warmup > 600 || o.drain > 600) {
        usage("--duration (0..600], --warmup and --drain <= 600");
    }
    if (o.rate <= 0 || o.rate * o.subs > 1e6)
        usage("--rate must be > 0 and rate*subs <= 1e6");
    if (o.connect_window == 0)
        usage("--connect-window must be > 0");
    uint32_t total = o.subs + o.publishers;
    if (o.src_addrs == 0)
        o.src_addrs = (total + 999) / 1000;
    o.src_addrs = std::clamp<uint32_t>(o.src_addrs, 1, 250);
    return o;
}

// ---- WebSocket helpers --------------------------------------------------------------------

void fillRandom(void* p, size_t n) {
    auto* b = static_cast<uint8_t*>(p);
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            std::perror("getrandom");
            std::exit(1);
        }
        b += r;
        n -= static_cast<size_t>(r);
    }
}

// Per-frame mask keys (RFC 6455 §5.3) from a xorshift seeded by getrandom: cheap and varying.
struct MaskSource {
    uint64_t s = 0;
    MaskSource() {
        fillRandom(&s, sizeof s);
        s |= 1;
    }
    uint32_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return static_cast<uint32_t>(s);
    }
};

// Appends a masked client text (or control) frame.
void appendClientFrame(std::string& out, uint8_t opcode, std::string_view payload, MaskSource& ms) {
    size_t len = payload.size();
    char head[14];
    size_t h = 0;
    head[h++] = static_cast<char>(0x80 | opcode);
    if (len < 126) {
        head[h++] = static_cast<char>(0x80 | len);
    } else if (len <= 0xFFFF) {
        head[h++] = static_cast<char>(0x80 | 126);
        head[h++] = static_cast<char>(len >> 8);
        head[h++] = static_cast<char>(len);
    } else {
        head[h++] = static_cast<char>(0x80 | 127);
        for (int s = 56; s >= 0; s -= 8)
            head[h++] = static_cast<char>(uint64_t{len} >> s);
    }
    uint32_t key = ms.next();
    uint8_t mask[4];
    std::memcpy(mask, &key, 4);
    std::memcpy(head + h, mask, 4);
    h += 4;
    size_t at = out.size();
    out.append(head, h);
    out.append(payload);
    auto* p = reinterpret_cast<uint8_t*>(out.data() + at + h);
    for (size_t i = 0; i < len; ++i)
        p[i] ^= mask[i & 3];
}

std::string base64(const uint8_t* p, size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
    out.resize(static_cast<size_t>(len));
    return out;
}

std::string acceptKey(std::string_view key) {
    std::string s(key);
    s += kWsGuid;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(s.data(), s.size(), md, &md_len, EVP_sha1(), nullptr) != 1) {
        std::fprintf(stderr, "fanout_loadgen: SHA-1 failed\n");
        std::exit(1);
    }
    return base64(md, md_len);
}

bool iequalsPrefix(std::string_view s, std::string_view lower_prefix) {
    if (s.size() < lower_prefix.size())
        return false;
    for (size_t i = 0; i < lower_prefix.size(); ++i) {
        char a = s[i];
        if (a >= 'A' && a <= 'Z')
            a = static_cast<char>(a - 'A' + 'a');
        if (a != lower_prefix[i])
            return false;
    }
    return true;
}

// The unsigned integer after `key` (e.g. "\"seq\":") in s, searching from `from`.
bool findUint(std::string_view s, std::string_view key, uint64_t* out, size_t from = 0) {
    size_t at = s.find(key, from);
    if (at == std::string_view::npos)
        return false;
    size_t i = at + key.size();
    if (i >= s.size() || s[i] < '0' || s[i] > '9')
        return false;
    uint64_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + static_cast<uint64_t>(s[i] - '0');
        ++i;
    }
    *out = v;
    return true;
}

std::string jsonEscape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch == '"' || ch == '\\')
            out += '\\';
        out += (static_cast<unsigned char>(ch) < 0x20) ? ' ' : ch;
    }
    return out;
}

// ---- The generator ------------------------------------------------------------------------

enum class ConnState : uint8_t { kIdle, kConnecting, kHandshake, kOpen, kClosed };
enum class Role : uint8_t { kSub, kPub };

struct Conn {
    int fd = -1;
    ConnState state = ConnState::kIdle;
    Role role = Role::kSub;
    bool want_out = false;
    bool ready = false;     // subscribed (native) / open (plain); publishers: connected
    bool counted = false;   // took part in the measured phase
    uint32_t room = 0;      // 0-based room index
    uint64_t last_seq = 0;  // highest seq received
    uint64_t last_offset = 0;
    uint64_t window_msgs = 0;
    std::string in;    // bytes of an incomplete frame carried over between reads
    std::string frag;  // a fragmented message being assembled
    uint8_t frag_opcode = 0;
    std::string out;  // bytes not yet accepted by the kernel
    size_t out_off = 0;
    std::string hs;      // handshake request (until sent), then the response (until complete)
    std::string prefix;  // native: a message's bytes up to its offset value (fast parse)
    std::string accept;
};

struct Stats {
    uint64_t hs_ok = 0;
    uint64_t hs_failed = 0;
    uint64_t deliveries_total = 0;
    uint64_t deliveries_window = 0;
    uint64_t published = 0;  // publications written (seq numbers issued)
    uint64_t published_window = 0;
    uint64_t published_replies = 0;  // native "published" replies
    uint64_t error_replies = 0;      // native "error" messages
    uint64_t unexpected = 0;         // messages that are neither of the above nor understood
    uint64_t lost_gaps = 0;          // seq numbers skipped while running
    uint64_t lost_tail = 0;          // publications never received by the end of the drain
    uint64_t duplicates = 0;
    uint64_t out_of_order = 0;
    uint64_t offset_errors = 0;  // native: offset did not grow by exactly 1
    uint64_t closed_by_server = 0;
    uint64_t socket_errors = 0;
    uint64_t protocol_errors = 0;
    uint64_t pings = 0;
    uint64_t recv_calls = 0;
    uint64_t send_calls = 0;
    std::map<int, uint64_t> close_codes;  // -1: TCP close without a close frame
    std::string first_error;
    std::string first_error_reply;
    std::string first_close_reason;
};

class FanoutGen {
public:
    explicit FanoutGen(Options o) : o_(std::move(o)) { buf_.resize(kReadBufferSize); }
    int run();

private:
    // connections
    uint32_t addConn(Role role, uint32_t room);
    void fail(Conn& c, const std::string& what, int err);
    void closeConn(Conn& c);
    void onDead(Conn& c);
    bool startConnect(uint32_t idx);
    bool sendHandshake(Conn& c);
    void onHandshakeEvent(uint32_t idx, uint32_t events);
    void readHandshake(uint32_t idx, Conn& c);
    void onOpen(uint32_t idx, Conn& c);
    void onReady(Conn& c);
    void onOpenEvent(uint32_t idx, uint32_t events);
    bool consume(Conn& c, const uint8_t* p, size_t n, uint64_t t_us);
    size_t parseFrames(Conn& c, const uint8_t* p, size_t n, uint64_t t_us, bool* alive);
    bool onMessage(Conn& c, std::string_view msg, uint64_t t_us);
    void onPublication(Conn& c, std::string_view msg, uint64_t t_us);
    bool flush(uint32_t idx, Conn& c);
    void setWantOut(uint32_t idx, Conn& c, bool want);
    void dispatch(int n, epoll_event* events);
    bool connectAll(const std::vector<uint32_t>& ids, double deadline, epoll_event* events);
    // publishing
    std::string payload(uint64_t seq, uint64_t t_us);
    void publishTo(Conn& pub, uint32_t room, uint64_t seq);
    void pumpBroadcast();
    void pumpLatency(double now);
    void resolve(uint64_t from, uint64_t to);  // broadcast flow control: seqs (from, to]
    void advanceCompleted();
    uint64_t expectedFor(uint32_t room) const;
    void printResult(double hs_secs, double window_secs, double drain_secs, const CpuWindow& cpu,
                     const CpuWindow& hs_cpu, bool ok);

    Options o_;
    std::vector<uint8_t> buf_;
    std::vector<Conn> conns_;
    std::vector<uint32_t> sub_ids_;
    std::vector<uint32_t> pub_ids_;
    int ep_ = -1;
    in_addr dst_{};
    Stats st_;
    MaskSource mask_;
    uint32_t next_pub_ = 0;
    // phases
    bool running_ = false;     // publishing phase started: deliveries are checked and counted
    bool publishing_ = false;  // new publications are still being sent
    bool measuring_ = false;
    uint64_t window_start_us_ = UINT64_MAX;  // latency samples: publications sent in the window
    uint64_t window_end_us_ = 0;
    // connect phase
    uint32_t ready_count_ = 0;
    uint32_t settled_count_ = 0;  // ready or failed
    // broadcast flow control: ring of receipt counts for seqs (completed_, published]
    std::vector<uint32_t> got_;
    uint64_t completed_ = 0;
    uint32_t alive_subs_ = 0;
    // latency
    double t0_ = 0;
    double total_rate_ = 0;
    double pace_lag_max_ = 0;  // how far behind its schedule the generator sent (seconds)
    std::vector<uint32_t> lat_us_;
    FILE* slow_ = nullptr;  // --slow-log
};

uint32_t FanoutGen::addConn(Role role, uint32_t room) {
    conns_.emplace_back();
    conns_.back().role = role;
    conns_.back().room = room;
    return static_cast<uint32_t>(conns_.size() - 1);
}

void FanoutGen::fail(Conn& c, const std::string& what, int err) {
    if (st_.first_error.empty()) {
        st_.first_error = what;
        if (err != 0)
            st_.first_error += std::string(": ") + std::strerror(err);
    }
    if (c.state == ConnState::kConnecting || c.state == ConnState::kHandshake ||
        c.state == ConnState::kIdle) {
        ++st_.hs_failed;
        ++settled_count_;
    } else {
        ++st_.socket_errors;
    }
    closeConn(c);
}

void FanoutGen::closeConn(Conn& c) {
    if (c.state == ConnState::kOpen && !c.ready) {
        ++settled_count_;  // opened but never subscribed: settled as failed
    }
    if (c.fd >= 0) {
        linger lg{1, 0};  // RST: no TIME_WAIT left behind between runs
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c.fd);
        c.fd = -1;
    }
    bool was_open = c.state == ConnState::kOpen;
    c.state = ConnState::kClosed;
    std::string().swap(c.in);
    std::string().swap(c.frag);
    std::string().swap(c.out);
    std::string().swap(c.hs);
    c.out_off = 0;
    if (was_open)
        onDead(c);
}

// A subscriber that took part in the run is gone: it no longer holds back the publisher.
void FanoutGen::onDead(Conn& c) {
    if (!running_ || !c.counted || c.role != Role::kSub || o_.mode != Mode::kBroadcast)
        return;
    // Its receipts of seqs not yet complete no longer count towards completion.
    for (uint64_t s = completed_ + 1; s <= c.last_seq && s <= st_.published; ++s) {
        --got_[s % got_.size()];
    }
    --alive_subs_;
    advanceCompleted();
}

bool FanoutGen::startConnect(uint32_t idx) {
    Conn& c = conns_[idx];
    c.state = ConnState::kConnecting;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
        fail(c, "socket", errno);
        return false;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o_.src_addrs > 1) {
        // Spread over 127.0.0.1..M; the port is chosen at connect() (IP_BIND_ADDRESS_NO_PORT).
        setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7F000001u + idx % o_.src_addrs);
        if (bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
            fail(c, "bind", errno);
            return false;
        }
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(o_.port));
    dst.sin_addr = dst_;
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
        fail(c, "connect", errno);
        return false;
    }
    std::string path;
    if (o_.proto == Proto::kNative) {
        path = o_.ws_path;
    } else if (c.role == Role::kPub && o_.mode == Mode::kLatency) {
        path = "/pub";
    } else {
        path = o_.room_prefix + std::to_string(c.room + 1);
    }
    uint8_t raw[16];
    fillRandom(raw, sizeof raw);
    std::string key = base64(raw, sizeof raw);
    c.accept = acceptKey(key);
    c.hs = "GET " + path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
           "\r\nSec-WebSocket-Version: 13\r\n";
    if (o_.proto == Proto::kNative) {
        c.hs += "Sec-WebSocket-Protocol: " + std::string(kSubprotocol) + "\r\n";
    }
    c.hs += "\r\n";
    epoll_event ev{};
    ev.data.u32 = idx;
    if (sendHandshake(c)) {
        ev.events = EPOLLIN;
    } else if (c.state == ConnState::kClosed) {
        return false;
    } else {
        ev.events = EPOLLIN | EPOLLOUT;
        c.want_out = true;
    }
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        fail(c, "epoll_ctl", errno);
        return false;
    }
    return true;
}

bool FanoutGen::sendHandshake(Conn& c) {
    while (!c.hs.empty()) {
        ssize_t w = send(c.fd, c.hs.data(), c.hs.size(), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == ENOTCONN || errno == EINTR)
                return false;
            fail(c, "send handshake", errno);
            return false;
        }
        c.hs.erase(0, static_cast<size_t>(w));
    }
    c.state = ConnState::kHandshake;
    return true;
}

void FanoutGen::onHandshakeEvent(uint32_t idx, uint32_t events) {
    Conn& c = conns_[idx];
    if (c.state == ConnState::kConnecting) {
        if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            fail(c, "connect", err);
            return;
        }
        if (!sendHandshake(c))
            return;
        setWantOut(idx, c, false);
    }
    if (c.state == ConnState::kHandshake && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        readHandshake(idx, c);
    }
}

void FanoutGen::readHandshake(uint32_t idx, Conn& c) {
    for (;;) {
        ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
        if (r == 0) {
            fail(c, "closed during handshake", 0);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fail(c, "recv handshake", errno);
            return;
        }
        c.hs.append(reinterpret_cast<const char*>(buf_.data()), static_cast<size_t>(r));
        size_t end = c.hs.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c.hs.size() > 16 * 1024) {
                fail(c, "handshake response too large", 0);
                return;
            }
            continue;
        }
        std::string_view head(c.hs.data(), end + 2);
        if (!head.starts_with("HTTP/1.1 101")) {
            fail(c, "handshake status is not 101: " + std::string(head.substr(0, head.find('\r'))),
                 0);
            return;
        }
        bool accepted = false;
        size_t line = head.find("\r\n") + 2;
        while (line < head.size()) {
            size_t eol = head.find("\r\n", line);
            std::string_view h = head.substr(line, eol - line);
            constexpr std::string_view kName = "sec-websocket-accept:";
            if (iequalsPrefix(h, kName)) {
                std::string_view v = h.substr(kName.size());
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
                    v.remove_prefix(1);
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
                    v.remove_suffix(1);
                accepted = v == c.accept;
            }
            line = eol + 2;
        }
        if (!accepted) {
            fail(c, "bad Sec-WebSocket-Accept", 0);
            return;
        }
        std::string rest = c.hs.substr(end + 4);
        std::string().swap(c.hs);
        std::string().swap(c.accept);
        c.state = ConnState::kOpen;
        ++st_.hs_ok;
        onOpen(idx, c);
        if (c.state == ConnState::kOpen && !rest.empty()) {
            consume(c, reinterpret_cast<const uint8_t*>(rest.data()), rest.size(), nowUs());
        }
        if (c.state == ConnState::kOpen)
            flush(idx, c);
        return;
    }
}

void FanoutGen::onOpen(uint32_t, Conn& c) {
    if (o_.proto == Proto::kPlain) {
        onReady(c);  // the room is the URL path: a member from the 101 on
        return;
    }
    appendClientFrame(c.out, 0x1, R"({"type":"connect"})", mask_);
    if (c.role == Role::kSub) {
        std::string sub = R"({"type":"subscribe","channel":")" + o_.channel_prefix +
                          std::to_string(c.room + 1) + "\"}";
        appendClientFrame(c.out, 0x1, sub, mask_);
    }
}

void FanoutGen::onReady(Conn& c) {
    if (c.ready)
        return;
    c.ready = true;
    ++ready_count_;
    ++settled_count_;
}

void FanoutGen::setWantOut(uint32_t idx, Conn& c, bool want) {
    if (c.want_out == want || c.fd < 0)
        return;
    epoll_event ev{};
    ev.data.u32 = idx;
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) == 0)
        c.want_out = want;
}

// One send() with everything the connection owes; the rest waits for EPOLLOUT.
bool FanoutGen::flush(uint32_t idx, Conn& c) {
    while (c.out_off < c.out.size()) {
        ssize_t w = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        ++st_.send_calls;
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            fail(c, "send", errno);
            return false;
        }
        c.out_off += static_cast<size_t>(w);
    }
    if (c.out_off == c.out.size()) {
        c.out.clear();
        c.out_off = 0;
    } else if (c.out_off > 64 * 1024) {
        c.out.erase(0, c.out_off);
        c.out_off = 0;
    }
    setWantOut(idx, c, !c.out.empty());
    return true;
}

void FanoutGen::onOpenEvent(uint32_t idx, uint32_t events) {
    Conn& c = conns_[idx];
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        for (;;) {
            ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
            ++st_.recv_calls;
            if (r > 0) {
                if (!consume(c, buf_.data(), static_cast<size_t>(r), nowUs()))
                    return;
                if (static_cast<size_t>(r) < buf_.size())
                    break;
                continue;
            }
            if (r == 0) {
                ++st_.closed_by_server;
                ++st_.close_codes[-1];
                closeConn(c);
                return;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                fail(c, "recv", errno);
                return;
            }
            break;
        }
    }
    if (c.state == ConnState::kOpen)
        flush(idx, c);
}

// Parses what was read; frames split across reads are carried over in c.in. Returns false if
// the connection was closed.
bool FanoutGen::consume(Conn& c, const uint8_t* p, size_t n, uint64_t t_us) {
    bool alive = true;
    if (c.in.empty()) {
        size_t used = parseFrames(c, p, n, t_us, &alive);
        if (alive && used < n)
            c.in.assign(reinterpret_cast<const char*>(p + used), n - used);
        return alive;
    }
    std::string tmp;
    tmp.swap(c.in);
    tmp.append(reinterpret_cast<const char*>(p), n);
    size_t used =
        parseFrames(c, reinterpret_cast<const uint8_t*>(tmp.data()), tmp.size(), t_us, &alive);
    if (alive && used < tmp.size())
        c.in.assign(tmp, used);
    return alive;
}

size_t FanoutGen::parseFrames(Conn& c, const uint8_t* p, size_t n, uint64_t t_us, bool* alive) {
    size_t pos = 0;
    while (n - pos >= 2) {
        const uint8_t* f = p + pos;
        uint8_t b0 = f[0];
        uint8_t b1 = f[1];
        uint8_t len7 = b1 & 0x7F;
        size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        if ((b1 & 0x80) != 0 || (b0 & 0x70) != 0) {
            ++st_.protocol_errors;  // servers never mask (RFC 6455 §5.1); no extensions here
            fail(c, "masked or RSV frame from server", 0);
            *alive = false;
            return pos;
        }
        if (n - pos < hl)
            break;
        uint64_t len = len7;
        if (len7 == 126) {
            len = (uint64_t{f[2]} << 8) | f[3];
        } else if (len7 == 127) {
            len = 0;
            for (int i = 2; i < 10; ++i)
                len = (len << 8) | f[i];
        }
        if (len > 64 * 1024 * 1024) {
            ++st_.protocol_errors;
            fail(c, "frame too large", 0);
            *alive = false;
            return pos;
        }
        if (n - pos - hl < len)
            break;
        std::string_view payload(reinterpret_cast<const char*>(f + hl), len);
        pos += hl + len;
        bool fin = (b0 & 0x80) != 0;
        uint8_t op = b0 & 0x0F;
        if ((op & 0x08) != 0) {
            if (op == 0x8) {
                int code = payload.size() >= 2 ? (static_cast<uint8_t>(payload[0]) << 8) |
                                                     static_cast<uint8_t>(payload[1])
                                               : 1005;
                ++st_.closed_by_server;
                ++st_.close_codes[code];
                if (st_.first_close_reason.empty()) {
                    st_.first_close_reason =
                        std::to_string(code) + " " +
                        std::string(payload.size() > 2 ? payload.substr(2) : std::string_view{});
                }
                closeConn(c);
                *alive = false;
                return pos;
            }
            if (op == 0x9) {  // ping → pong with the same payload (§5.5.3)
                ++st_.pings;
                appendClientFrame(c.out, 0xA, payload, mask_);
            }
            continue;
        }
        if (op != 0 && !c.frag.empty()) {
            ++st_.protocol_errors;
            fail(c, "new message inside a fragmented one", 0);
            *alive = false;
            return pos;
        }
        if (fin && op != 0) {
            if (!onMessage(c, payload, t_us)) {
                *alive = false;
                return pos;
            }
            continue;
        }
        if (op != 0)
            c.frag_opcode = op;
        c.frag.append(payload);
        if (fin) {
            std::string msg;
            msg.swap(c.frag);
            if (!onMessage(c, msg, t_us)) {
                *alive = false;
                return pos;
            }
        }
    }
    return pos;
}

bool FanoutGen::onMessage(Conn& c, std::string_view msg, uint64_t t_us) {
    if (o_.proto == Proto::kPlain) {
        if (c.role == Role::kSub) {
            onPublication(c, msg, t_us);
        } else {
            ++st_.unexpected;  // the plain peer never sends to the publisher
        }
        return true;
    }
    // Native: {"type":"…",…} — the server writes "type" first.
    constexpr std::string_view kType = R"({"type":")";
    std::string_view type;
    if (msg.starts_with(kType)) {
        size_t end = msg.find('"', kType.size());
        if (end != std::string_view::npos)
            type = msg.substr(kType.size(), end - kType.size());
    }
    if (type == "message") {
        if (c.role == Role::kSub) {
            onPublication(c, msg, t_us);
        } else {
            ++st_.unexpected;
        }
    } else if (type == "published") {
        ++st_.published_replies;
    } else if (type == "subscribed") {
        if (c.role == Role::kSub)
            onReady(c);
    } else if (type == "connected") {
        if (c.role == Role::kPub)
            onReady(c);
    } else if (type == "error") {
        ++st_.error_replies;
        if (st_.first_error_reply.empty())
            st_.first_error_reply = std::string(msg.substr(0, 300));
    } else if (type == "disconnect") {
        if (st_.first_close_reason.empty()) {
            st_.first_close_reason = "disconnect event: " + std::string(msg.substr(0, 200));
        }
    } else if (type != "pong") {
        ++st_.unexpected;
        if (st_.first_error_reply.empty()) {
            st_.first_error_reply = "unexpected: " + std::string(msg.substr(0, 200));
        }
    }
    return true;
}

// Parses the digits at msg[*pos]; false if there are none.
bool digitsAt(std::string_view msg, size_t* pos, uint64_t* out) {
    size_t i = *pos;
    uint64_t v = 0;
    while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') {
        v = v * 10 + static_cast<uint64_t>(msg[i] - '0');
        ++i;
    }
    if (i == *pos)
        return false;
    *pos = i;
    *out = v;
    return true;
}

bool literalAt(std::string_view msg, size_t* pos, std::string_view lit) {
    if (msg.size() - *pos < lit.size() || msg.compare(*pos, lit.size(), lit) != 0)
        return false;
    *pos += lit.size();
    return true;
}

// seq and t of a payload starting at msg[pos] as this generator writes it: {"seq":S,"t":T,…
bool payloadAt(std::string_view msg, size_t pos, uint64_t* seq, uint64_t* t) {
    return literalAt(msg, &pos, R"({"seq":)") && digitsAt(msg, &pos, seq) &&
           literalAt(msg, &pos, R"(,"t":)") && digitsAt(msg, &pos, t);
}

// One publication arrived at subscriber c: check order, count it, take its latency.
void FanoutGen::onPublication(Conn& c, std::string_view msg, uint64_t t_us) {
    uint64_t seq = 0;
    uint64_t sent_us = 0;
    bool parsed = false;
    if (o_.proto == Proto::kPlain) {
        parsed = payloadAt(msg, 0, &seq, &sent_us);
    } else if (!c.prefix.empty() && msg.size() > c.prefix.size() &&
               std::memcmp(msg.data(), c.prefix.data(), c.prefix.size()) == 0) {
        // Fast path: a channel's messages are identical up to the offset value (same channel,
        // same epoch), then ,"data":PAYLOAD as the publisher wrote it (minified JSON).
        size_t pos = c.prefix.size();
        uint64_t off = 0;
        if (digitsAt(msg, &pos, &off) && literalAt(msg, &pos, R"(,"data":)") &&
            payloadAt(msg, pos, &seq, &sent_us)) {
            if (c.last_offset != 0 && off != c.last_offset + 1)
                ++st_.offset_errors;
            c.last_offset = off;
            parsed = true;
        }
    }
    if (!parsed && o_.proto == Proto::kNative) {
        // General path: fields found wherever they are; remembers the prefix for the fast path.
        constexpr std::string_view kOffset = R"("offset":)";
        size_t at = msg.find(kOffset);
        size_t from = msg.find(R"("data":)");
        uint64_t off = 0;
        if (at != std::string_view::npos && from != std::string_view::npos &&
            findUint(msg, kOffset, &off, at) && findUint(msg, R"("seq":)", &seq, from) &&
            findUint(msg, R"("t":)", &sent_us, from)) {
            if (c.last_offset != 0 && off != c.last_offset + 1)
                ++st_.offset_errors;
            c.last_offset = off;
            c.prefix.assign(msg.substr(0, at + kOffset.size()));
            parsed = true;
        }
    } else if (!parsed) {
        parsed = findUint(msg, R"("seq":)", &seq) && findUint(msg, R"("t":)", &sent_us);
    }
    if (!parsed) {
        ++st_.unexpected;
        if (st_.first_error_reply.empty()) {
            st_.first_error_reply = "unparsable publication: " + std::string(msg.substr(0, 200));
        }
        return;
    }
    if (!running_ || !c.counted) {
        ++st_.unexpected;
        return;
    }
    if (seq <= c.last_seq) {
        ++(seq == c.last_seq ? st_.duplicates : st_.out_of_order);
        return;
    }
    if (seq > c.last_seq + 1)
        st_.lost_gaps += seq - c.last_seq - 1;
    uint64_t prev = c.last_seq;
    c.last_seq = seq;
    ++st_.deliveries_total;
    if (measuring_) {
        ++st_.deliveries_window;
        ++c.window_msgs;
    }
    if (o_.mode == Mode::kBroadcast) {
        resolve(prev, seq);
        return;
    }
    if (sent_us >= window_start_us_ && sent_us < window_end_us_) {
        uint64_t lat = t_us > sent_us ? t_us - sent_us : 0;
        lat_us_.push_back(static_cast<uint32_t>(std::min<uint64_t>(lat, UINT32_MAX)));
        if (slow_ != nullptr && static_cast<double>(lat) >= o_.slow_us) {
            std::fprintf(slow_, "lat %.6f %" PRIu64 " %u\n",
                         static_cast<double>(sent_us - window_start_us_) * 1e-6, lat, c.room);
        }
    }
}

// Broadcast flow control: one subscriber has now seen (or skipped) seqs (from, to].
void FanoutGen::resolve(uint64_t from, uint64_t to) {
    uint64_t lo = std::max(from, completed_);
    for (uint64_t s = lo + 1; s <= to && s <= st_.published; ++s) {
        ++got_[s % got_.size()];
    }
    if (to > completed_ && from <= completed_)
        advanceCompleted();
}

void FanoutGen::advanceCompleted() {
    while (completed_ < st_.published) {
        uint32_t& g = got_[(completed_ + 1) % got_.size()];
        if (g < alive_subs_)
            break;
        g = 0;
        ++completed_;
    }
}

std::string FanoutGen::payload(uint64_t seq, uint64_t t_us) {
    char head[64];
    int n = std::snprintf(head, sizeof head, R"({"seq":%)" PRIu64 R"(,"t":%)" PRIu64 R"(,"p":")",
                          seq, t_us);
    std::string s(head, static_cast<size_t>(n));
    size_t pad = o_.size > s.size() + 2 ? o_.size - s.size() - 2 : 0;
    s.append(pad, 'x');
    s += "\"}";
    return s;
}

void FanoutGen::publishTo(Conn& pub, uint32_t room, uint64_t seq) {
    std::string body = payload(seq, nowUs());
    std::string frame;
    if (o_.proto == Proto::kNative) {
        frame = R"({"type":"publish","channel":")" + o_.channel_prefix + std::to_string(room + 1) +
                R"(","data":)" + body + "}";
    } else if (o_.mode == Mode::kLatency) {
        frame = o_.room_prefix + std::to_string(room + 1) + " " + body;
    } else {
        frame = std::move(body);
    }
    appendClientFrame(pub.out, 0x1, frame, mask_);
}

void FanoutGen::pumpBroadcast() {
    if (!publishing_ || alive_subs_ == 0)
        return;
    Conn& pub = conns_[pub_ids_[0]];
    if (pub.state != ConnState::kOpen)
        return;
    bool any = false;
    while (st_.published - completed_ < o_.window) {
        uint64_t seq = ++st_.published;
        got_[seq % got_.size()] = 0;
        if (measuring_)
            ++st_.published_window;
        publishTo(pub, 0, seq);
        any = true;
    }
    if (any)
        flush(pub_ids_[0], pub);
}

uint64_t FanoutGen::expectedFor(uint32_t room) const {
    uint64_t n = st_.published;
    return n / o_.subs + (room < n % o_.subs ? 1 : 0);
}

// Latency: publication k goes to room k % subs at t0 + k / total_rate.
void FanoutGen::pumpLatency(double now) {
    if (!publishing_)
        return;
    auto due = static_cast<uint64_t>((now - t0_) * total_rate_);
    if (due <= st_.published)
        return;
    if (measuring_) {
        double lag = now - (t0_ + static_cast<double>(st_.published) / total_rate_);
        pace_lag_max_ = std::max(pace_lag_max_, lag);
        if (slow_ != nullptr && lag * 1e6 >= o_.slow_us) {
            std::fprintf(slow_, "lag %.6f %.0f\n",
                         static_cast<double>(nowUs() - window_start_us_) * 1e-6, lag * 1e6);
        }
    }
    std::vector<bool> touched(pub_ids_.size(), false);
    while (st_.published < due) {
        uint64_t k = st_.published++;
        auto room = static_cast<uint32_t>(k % o_.subs);
        uint64_t seq = k / o_.subs + 1;
        size_t pi = k % pub_ids_.size();
        Conn& pub = conns_[pub_ids_[pi]];
        if (pub.state != ConnState::kOpen)
            continue;  // its publications will show as lost
        publishTo(pub, room, seq);
        touched[pi] = true;
        if (measuring_)
            ++st_.published_window;
    }
    for (size_t i = 0; i < pub_ids_.size(); ++i) {
        if (touched[i] && conns_[pub_ids_[i]].state == ConnState::kOpen) {
            flush(pub_ids_[i], conns_[pub_ids_[i]]);
        }
    }
}

void FanoutGen::dispatch(int n, epoll_event* events) {
    for (int i = 0; i < n; ++i) {
        uint32_t idx = events[i].data.u32;
        Conn& c = conns_[idx];
        if (c.state == ConnState::kConnecting || c.state == ConnState::kHandshake) {
            onHandshakeEvent(idx, events[i].events);
        } else if (c.state == ConnState::kOpen) {
            onOpenEvent(idx, events[i].events);
        }
    }
}

// Opens the given connections (at most connect_window not yet ready at once) and waits until
// each is ready or failed. Returns false on timeout or signal.
bool FanoutGen::connectAll(const std::vector<uint32_t>& ids, double deadline, epoll_event* events) {
    uint32_t base_settled = settled_count_;
    size_t next = 0;
    while (!g_stop) {
        uint32_t settled = settled_count_ - base_settled;
        while (next < ids.size() && next - settled < o_.connect_window) {
            startConnect(ids[next++]);
            settled = settled_count_ - base_settled;
        }
        if (settled >= ids.size())
            return true;
        int n = epoll_wait(ep_, events, kMaxEvents, 50);
        dispatch(n, events);
        if (nowSec() > deadline) {
            for (uint32_t id : ids) {
                Conn& c = conns_[id];
                if (c.state == ConnState::kIdle || c.state == ConnState::kConnecting ||
                    c.state == ConnState::kHandshake) {
                    fail(c, "handshake timeout", 0);
                } else if (c.state == ConnState::kOpen && !c.ready) {
                    fail(c, "no subscribed/connected reply in time", 0);
                }
            }
            return false;
        }
    }
    return false;
}

void FanoutGen::printResult(double hs_secs, double window_secs, double drain_secs,
                            const CpuWindow& cpu, const CpuWindow& hs_cpu, bool ok) {
    uint64_t open = 0;
    uint64_t min_msgs = UINT64_MAX;
    uint64_t max_msgs = 0;
    for (uint32_t id : sub_ids_) {
        const Conn& c = conns_[id];
        if (c.state == ConnState::kOpen) {
            ++open;
            min_msgs = std::min(min_msgs, c.window_msgs);
            max_msgs = std::max(max_msgs, c.window_msgs);
        }
    }
    if (open == 0)
        min_msgs = 0;
    std::string j = "{";
    char b[2048];
    std::snprintf(b, sizeof b,
                  "\"mode\":\"%s\",\"proto\":\"%s\",\"subs\":%u,\"publishers\":%zu,\"size\":%u,"
                  "\"src_addrs\":%u,\"handshakes\":%" PRIu64 ",\"handshake_failures\":%" PRIu64
                  ",\"setup_secs\":%.3f,\"setup_gen_cpu\":%.3f,\"setup_server_cpu\":%.3f,"
                  "\"subs_open_at_end\":%" PRIu64,
                  o_.mode == Mode::kBroadcast ? "broadcast" : "latency",
                  o_.proto == Proto::kNative ? "native" : "plain", o_.subs, pub_ids_.size(),
                  o_.size, o_.src_addrs, st_.hs_ok, st_.hs_failed, hs_secs, hs_cpu.gen,
                  hs_cpu.server, open);
    j += b;
    double dps = window_secs > 0 ? static_cast<double>(st_.deliveries_window) / window_secs : 0;
    double pps = window_secs > 0 ? static_cast<double>(st_.published_window) / window_secs : 0;
    std::snprintf(b, sizeof b,
                  ",\"secs\":%.6f,\"deliveries\":%" PRIu64
                  ",\"deliveries_per_sec\":%.1f"
                  ",\"publications\":%" PRIu64
                  ",\"publications_per_sec\":%.1f"
                  ",\"publications_total\":%" PRIu64 ",\"deliveries_total\":%" PRIu64
                  ",\"min_sub_msgs\":%" PRIu64 ",\"max_sub_msgs\":%" PRIu64,
                  window_secs, st_.deliveries_window, dps, st_.published_window, pps, st_.published,
                  st_.deliveries_total, min_msgs, max_msgs);
    j += b;
    if (o_.mode == Mode::kBroadcast) {
        std::snprintf(b, sizeof b, ",\"window\":%u,\"completed\":%" PRIu64, o_.window, completed_);
        j += b;
    } else {
        std::vector<uint32_t>& v = lat_us_;
        std::sort(v.begin(), v.end());
        auto pct = [&](double q) -> double {
            if (v.empty())
                return -1;
            size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
            return v[std::min(i, v.size() - 1)];
        };
        double sum = 0;
        for (uint32_t x : v)
            sum += x;
        std::snprintf(b, sizeof b,
                      ",\"rate_per_room\":%.3f,\"target_pubs_per_sec\":%.1f,\"lat_samples\":%zu"
                      ",\"lat_us\":{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f"
                      ",\"max\":%.0f,\"mean\":%.1f},\"pace_lag_max_ms\":%.3f",
                      o_.rate, total_rate_, v.size(), pct(0.5), pct(0.9), pct(0.99), pct(0.999),
                      v.empty() ? -1.0 : static_cast<double>(v.back()),
                      v.empty() ? -1.0 : sum / static_cast<double>(v.size()), pace_lag_max_ * 1000);
        j += b;
    }
    uint64_t lost = st_.lost_gaps + st_.lost_tail;
    std::snprintf(
        b, sizeof b,
        ",\"drain_secs\":%.3f,\"lost\":%" PRIu64 ",\"lost_gaps\":%" PRIu64 ",\"lost_tail\":%" PRIu64
        ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ",\"offset_errors\":%" PRIu64
        ",\"published_replies\":%" PRIu64 ",\"error_replies\":%" PRIu64 ",\"unexpected\":%" PRIu64
        ",\"closed_by_server\":%" PRIu64 ",\"socket_errors\":%" PRIu64
        ",\"protocol_errors\":%" PRIu64 ",\"pings\":%" PRIu64
        ",\"gen_cpu\":%.3f,\"server_cpu\":%.3f,\"machine_cpu\":%.3f,\"gen_wait\":%.3f"
        ",\"server_wait\":%.3f,\"recv_calls\":%" PRIu64 ",\"send_calls\":%" PRIu64,
        drain_secs, lost, st_.lost_gaps, st_.lost_tail, st_.duplicates, st_.out_of_order,
        st_.offset_errors, st_.published_replies, st_.error_replies, st_.unexpected,
        st_.closed_by_server, st_.socket_errors, st_.protocol_errors, st_.pings, cpu.gen,
        cpu.server, cpu.machine, cpu.gen_wait, cpu.server_wait, st_.recv_calls, st_.send_calls);
    j += b;
    if (!st_.close_codes.empty()) {
        j += ",\"close_codes\":{";
        bool first = true;
        for (auto [code, n] : st_.close_codes) {
            if (!first)
                j += ",";
            first = false;
            j += "\"" + (code < 0 ? std::string("tcp") : std::to_string(code)) +
                 "\":" + std::to_string(n);
        }
        j += "}";
    }
    if (!st_.first_error.empty())
        j += ",\"first_error\":\"" + jsonEscape(st_.first_error) + "\"";
    if (!st_.first_error_reply.empty()) {
        j += ",\"first_error_reply\":\"" + jsonEscape(st_.first_error_reply) + "\"";
    }
    if (!st_.first_close_reason.empty()) {
        j += ",\"first_close\":\"" + jsonEscape(st_.first_close_reason) + "\"";
    }
    j += std::string(",\"ok\":") + (ok ? "true" : "false") + "}\n";
    std::fputs(j.c_str(), stdout);
    std::fflush(stdout);
}

int FanoutGen::run() {
    if (inet_pton(AF_INET, o_.host.c_str(), &dst_) != 1 || (ntohl(dst_.s_addr) >> 24) != 127) {
        std::fprintf(stderr, "fanout_loadgen: --host must be an IPv4 loopback address\n");
        return 2;
    }
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < o_.subs + o_.publishers + 16) {
        std::fprintf(stderr, "fanout_loadgen: open-file limit %lu is below the connections + 16\n",
                     static_cast<unsigned long>(rl.rlim_cur));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, onSignal);
    signal(SIGINT, onSignal);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
        std::perror("epoll_create1");
        return 1;
    }
    static epoll_event events[kMaxEvents];
    if (!o_.slow_log.empty()) {
        slow_ = std::fopen(o_.slow_log.c_str(), "w");
        if (slow_ == nullptr) {
            std::perror("--slow-log");
            return 2;
        }
    }
    conns_.reserve(o_.subs + o_.publishers);
    for (uint32_t i = 0; i < o_.subs; ++i) {
        sub_ids_.push_back(addConn(Role::kSub, o_.mode == Mode::kBroadcast ? 0 : i));
    }
    for (uint32_t i = 0; i < o_.publishers; ++i)
        pub_ids_.push_back(addConn(Role::kPub, 0));

    // Phase 1: subscribers, then publishers (each ready when subscribed / connected).
    double hs_start = nowSec();
    CpuMeter hs_meter(o_.server_pid);
    hs_meter.start();
    double deadline = hs_start + o_.handshake_timeout;
    bool setup_ok =
        connectAll(sub_ids_, deadline, events) && connectAll(pub_ids_, deadline, events);
    double hs_secs = nowSec() - hs_start;
    CpuWindow hs_cpu = hs_meter.stop();
    for (uint32_t id : sub_ids_) {
        if (conns_[id].ready && conns_[id].state == ConnState::kOpen) {
            conns_[id].counted = true;
            ++alive_subs_;
        }
    }
    bool pubs_ok = true;
    for (uint32_t id : pub_ids_)
        pubs_ok = pubs_ok && conns_[id].ready;
    if (!setup_ok || !pubs_ok || alive_subs_ == 0 || g_stop) {
        printResult(hs_secs, 0, 0, CpuWindow{}, hs_cpu, false);
        return 1;
    }

    // Phase 2: publish; measure after the warm-up.
    got_.assign(o_.window, 0);
    total_rate_ = o_.rate * o_.subs;
    running_ = true;
    publishing_ = true;
    double t0 = nowSec();
    t0_ = t0;
    double window_start = t0 + o_.warmup;
    double window_end = window_start + o_.duration;
    CpuMeter meter(o_.server_pid);
    CpuWindow cpu;
    double window_secs = 0;
    double now = t0;
    if (o_.mode == Mode::kBroadcast) {
        pumpBroadcast();
    } else {
        lat_us_.reserve(static_cast<size_t>(total_rate_ * (o_.duration + 1)));
        pumpLatency(now);
    }
    while (!g_stop) {
        if (!measuring_ && now >= window_start) {
            measuring_ = true;
            window_start = now;
            window_end = now + o_.duration;
            window_start_us_ = nowUs();
            window_end_us_ = window_start_us_ + static_cast<uint64_t>(o_.duration * 1e6);
            meter.start();
            st_.recv_calls = 0;
            st_.send_calls = 0;
        }
        if (measuring_ && now >= window_end)
            break;
        int timeout_ms = o_.mode == Mode::kLatency ? 1 : 10;
        int n = epoll_wait(ep_, events, kMaxEvents, timeout_ms);
        dispatch(n, events);
        now = nowSec();
        if (o_.mode == Mode::kBroadcast) {
            pumpBroadcast();
        } else {
            pumpLatency(now);
        }
        if (alive_subs_ == 0)
            break;
    }
    if (measuring_) {
        window_secs = now - window_start;
        cpu = meter.stop();
    }
    measuring_ = false;
    publishing_ = false;

    // Phase 3: drain — wait for the publications already sent.
    double drain_start = nowSec();
    auto allIn = [&]() {
        if (o_.mode == Mode::kBroadcast)
            return completed_ >= st_.published;
        for (uint32_t id : sub_ids_) {
            const Conn& c = conns_[id];
            if (c.counted && c.state == ConnState::kOpen && c.last_seq < expectedFor(c.room)) {
                return false;
            }
        }
        return true;
    };
    // Publications still on their way are not lost: wait while deliveries keep arriving (up
    // to --drain s); what has not arrived after --drain-idle s without any delivery is lost.
    uint64_t seen = st_.deliveries_total;
    double last_progress = drain_start;
    while (!g_stop && !allIn()) {
        double t = nowSec();
        if (st_.deliveries_total != seen) {
            seen = st_.deliveries_total;
            last_progress = t;
        }
        if (t - drain_start >= o_.drain || t - last_progress >= o_.drain_idle)
            break;
        int n = epoll_wait(ep_, events, kMaxEvents, 10);
        dispatch(n, events);
    }
    double drain_secs = nowSec() - drain_start;
    // Native publishers: let the last "published" replies arrive (they are counted).
    for (uint32_t id : sub_ids_) {
        const Conn& c = conns_[id];
        if (!c.counted)
            continue;
        uint64_t expected = o_.mode == Mode::kBroadcast ? st_.published : expectedFor(c.room);
        if (c.last_seq < expected)
            st_.lost_tail += expected - c.last_seq;
    }
    bool ok = st_.hs_failed == 0 && st_.lost_gaps + st_.lost_tail == 0 && st_.duplicates == 0 &&
              st_.out_of_order == 0 && st_.offset_errors == 0 && st_.error_replies == 0 &&
              st_.unexpected == 0 && st_.closed_by_server == 0 && st_.socket_errors == 0 &&
              st_.protocol_errors == 0 && !g_stop;
    printResult(hs_secs, window_secs, drain_secs, cpu, hs_cpu, ok);
    if (slow_ != nullptr)
        std::fclose(slow_);
    running_ = false;
    for (Conn& c : conns_) {
        if (c.fd >= 0)
            closeConn(c);
    }
    close(ep_);
    return ok ? 0 : 1;
}

}  // namespace
}  // namespace sb::bench

int main(int argc, char** argv) {
    sb::bench::FanoutGen gen(sb::bench::parseOptions(argc, argv));
    return gen.run();
}
