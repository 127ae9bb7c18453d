// ws_loadgen: single-threaded epoll WebSocket load generator for bench/run_echo_bench.sh.
// Opens N client connections to ws://HOST:PORT/PATH on loopback, measures handshakes/s, then
// either keeps K messages of S bytes in flight per connection for T seconds (echo mode) or
// holds the connections open with no traffic (--idle). Prints one JSON line of results.
//
// It is built to not be the bottleneck: all client frames are pre-masked once into a template
// (the server still has to unmask every byte), each connection gets at most one send() per
// loop iteration carrying every frame it owes, and every readable socket is read into one
// shared 512 KiB buffer and parsed in place.
//
// Build: g++ -O2 -std=c++23 ws_loadgen.cpp -o ws_loadgen -lcrypto

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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sb::bench {
namespace {

constexpr size_t kReadBufferSize = 512 * 1024;  // one per process, like uWS's per-loop buffer
constexpr int kMaxEvents = 1024;
constexpr uint32_t kConnsPerSourceAddr = 8000;  // well under the 28k ephemeral ports per address
constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

volatile sig_atomic_t g_stop = 0;
void onSignal(int) {
    g_stop = 1;
}

double nowSec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds (user + system, all threads) of another process, from /proc/PID/stat; -1 if
// unreadable. Lets the result show which side of the benchmark was saturated.
double processCpuSec(int pid) {
    if (pid <= 0) {
        return -1;
    }
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE* f = std::fopen(path, "r");
    if (f == nullptr) {
        return -1;
    }
    char line[1024];
    size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    line[n] = '\0';
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const char* p = std::strrchr(line, ')');
    if (p == nullptr) {
        return -1;
    }
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                    &stime) != 2) {
        return -1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Busy CPU seconds of the whole machine (all cores, everything but idle and iowait) from
// /proc/stat; -1 if unreadable. Shows whether anything else ran during the measurement.
double machineBusySec() {
    FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr) {
        return -1;
    }
    unsigned long long v[8] = {};
    int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5], &v[6], &v[7]);
    std::fclose(f);
    if (n != 8) {
        return -1;
    }
    // user nice system idle iowait irq softirq steal
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Seconds a process's main thread has spent runnable but waiting for a CPU, from
// /proc/PID/schedstat (0 = self); -1 if unreadable. Other work on the machine shows up here.
double runDelaySec(int pid) {
    char path[64];
    if (pid > 0) {
        std::snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    } else {
        std::snprintf(path, sizeof path, "/proc/self/schedstat");
    }
    FILE* f = std::fopen(path, "r");
    if (f == nullptr) {
        return -1;
    }
    unsigned long long run_ns = 0;
    unsigned long long wait_ns = 0;
    int n = std::fscanf(f, "%llu %llu", &run_ns, &wait_ns);
    std::fclose(f);
    return n == 2 ? static_cast<double>(wait_ns) * 1e-9 : -1;
}

double cpuSec() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// CPU use of one window: this process, the server, the machine, and run-queue waits.
struct CpuWindow {
    double gen = 0;
    double server = -1;
    double machine = -1;
    double gen_wait = -1;     // fraction of the window the generator waited for a CPU
    double server_wait = -1;  // likewise for the server's main thread
};

class CpuMeter {
public:
    explicit CpuMeter(int server_pid) : server_pid_(server_pid) {}
    void start() {
        t0_ = nowSec();
        gen0_ = cpuSec();
        server0_ = server_pid_ > 0 ? processCpuSec(server_pid_) : -1;
        machine0_ = machineBusySec();
        gen_wait0_ = runDelaySec(0);
        server_wait0_ = server_pid_ > 0 ? runDelaySec(server_pid_) : -1;
    }
    CpuWindow stop() const {
        CpuWindow w;
        double secs = nowSec() - t0_;
        if (secs <= 0) {
            return w;
        }
        auto rate = [secs](double a, double b) { return a >= 0 && b >= 0 ? (b - a) / secs : -1; };
        w.gen = rate(gen0_, cpuSec());
        w.server = rate(server0_, server_pid_ > 0 ? processCpuSec(server_pid_) : -1);
        w.machine = rate(machine0_, machineBusySec());
        w.gen_wait = rate(gen_wait0_, runDelaySec(0));
        w.server_wait = rate(server_wait0_, server_pid_ > 0 ? runDelaySec(server_pid_) : -1);
        return w;
    }

private:
    int server_pid_;
    double t0_ = 0;
    double gen0_ = 0;
    double server0_ = -1;
    double machine0_ = -1;
    double gen_wait0_ = -1;
    double server_wait0_ = -1;
};

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string path = "/echo";
    uint32_t conns = 100;
    uint32_t inflight = 1;
    uint32_t size = 64;
    bool binary = false;
    double duration = 5.0;  // measured seconds
    double warmup = 1.0;    // seconds of echo traffic before the measurement starts
    bool idle = false;
    double hold = 30.0;  // --idle: longest hold; SIGTERM/SIGINT end it sooner
    std::string ready_file;
    uint32_t connect_window = 256;  // handshakes in progress at once (stays under the backlog)
    uint32_t src_addrs = 0;         // 0 = one 127.0.0.x source address per 8,000 connections
    bool verify = false;            // compare every payload byte, not only length and opcode
    double handshake_timeout = 60.0;
    int server_pid = 0;  // when set, the server's CPU use over the window is reported too
};

[[noreturn]] void usage(const char* msg) {
    if (msg != nullptr) {
        std::fprintf(stderr, "ws_loadgen: %s\n", msg);
    }
    std::fprintf(
        stderr,
        "usage: ws_loadgen --port P [--host 127.0.0.1] [--path /echo] [--conns N]\n"
        "         [--inflight K] [--size S] [--binary] [--duration T] [--warmup W]\n"
        "         [--idle [--hold H] [--ready-file F]] [--connect-window C]\n"
        "         [--src-addrs M] [--verify] [--handshake-timeout T] [--server-pid PID]\n");
    std::exit(2);
}

Options parseOptions(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                usage("missing value");
            }
            return argv[++i];
        };
        auto number = [&]() -> double {
            const char* v = value();
            char* end = nullptr;
            double d = std::strtod(v, &end);
            if (end == v || *end != '\0' || d < 0) {
                usage("bad number");
            }
            return d;
        };
        if (a == "--host") {
            o.host = value();
        } else if (a == "--port") {
            o.port = static_cast<int>(number());
        } else if (a == "--path") {
            o.path = value();
        } else if (a == "--conns") {
            o.conns = static_cast<uint32_t>(number());
        } else if (a == "--inflight") {
            o.inflight = static_cast<uint32_t>(number());
        } else if (a == "--size") {
            o.size = static_cast<uint32_t>(number());
        } else if (a == "--binary") {
            o.binary = true;
        } else if (a == "--text") {
            o.binary = false;
        } else if (a == "--duration") {
            o.duration = number();
        } else if (a == "--warmup") {
            o.warmup = number();
        } else if (a == "--idle") {
            o.idle = true;
        } else if (a == "--hold") {
            o.hold = number();
        } else if (a == "--ready-file") {
            o.ready_file = value();
        } else if (a == "--connect-window") {
            o.connect_window = static_cast<uint32_t>(number());
        } else if (a == "--src-addrs") {
            o.src_addrs = static_cast<uint32_t>(number());
        } else if (a == "--verify") {
            o.verify = true;
        } else if (a == "--server-pid") {
            o.server_pid = static_cast<int>(number());
        } else if (a == "--handshake-timeout") {
            o.handshake_timeout = number();
        } else if (a == "-h" || a == "--help") {
            usage(nullptr);
        } else {
            usage("unknown option");
        }
    }
    if (o.port <= 0 || o.port > 65535) {
        usage("--port is required");
    }
    if (o.conns == 0 || o.conns > 60000 || o.inflight == 0 || o.inflight > 4096 ||
        o.connect_window == 0) {
        usage("--conns must be 1..60000, --inflight 1..4096, --connect-window > 0");
    }
    if (o.size > 64 * 1024 * 1024 || o.duration > 3600 || o.hold > 3600 || o.warmup > 600) {
        usage("--size, --duration, --warmup or --hold out of range");
    }
    if (o.path.empty() || o.path[0] != '/') {
        usage("--path must start with /");
    }
    if (o.src_addrs == 0) {
        o.src_addrs = (o.conns + kConnsPerSourceAddr - 1) / kConnsPerSourceAddr;
    }
    o.src_addrs = std::min<uint32_t>(o.src_addrs, 250);
    return o;
}

// The client frames: `inflight` frames of one message each, pre-masked with distinct keys,
// stored twice so that any run of up to `inflight` frames starting anywhere in the first copy
// is one contiguous slice.
struct FrameTemplate {
    std::vector<uint8_t> bytes;    // 2 * inflight * frame_len
    std::vector<uint8_t> payload;  // the unmasked payload every echo must match
    size_t frame_len = 0;
    size_t cycle = 0;  // inflight * frame_len
};

void fillRandom(void* p, size_t n) {
    auto* b = static_cast<uint8_t*>(p);
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            std::perror("getrandom");
            std::exit(1);
        }
        b += r;
        n -= static_cast<size_t>(r);
    }
}

// Appends a masked client frame (RFC 6455 §5.2; clients must mask, §5.3).
void appendClientFrame(std::vector<uint8_t>& out, uint8_t opcode, const uint8_t* payload,
                       size_t len) {
    out.push_back(static_cast<uint8_t>(0x80 | opcode));
    if (len < 126) {
        out.push_back(static_cast<uint8_t>(0x80 | len));
    } else if (len <= 0xFFFF) {
        out.push_back(0x80 | 126);
        out.push_back(static_cast<uint8_t>(len >> 8));
        out.push_back(static_cast<uint8_t>(len));
    } else {
        out.push_back(0x80 | 127);
        for (int s = 56; s >= 0; s -= 8) {
            out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(len) >> s));
        }
    }
    uint8_t mask[4];
    fillRandom(mask, sizeof mask);
    out.insert(out.end(), mask, mask + 4);
    for (size_t i = 0; i < len; ++i) {
        out.push_back(static_cast<uint8_t>(payload[i] ^ mask[i & 3]));
    }
}

FrameTemplate makeTemplate(const Options& o) {
    FrameTemplate t;
    t.payload.resize(o.size);
    for (size_t i = 0; i < o.size; ++i) {
        // Text payloads stay printable ASCII so they are valid UTF-8.
        t.payload[i] =
            o.binary ? static_cast<uint8_t>(i * 31 + 7) : static_cast<uint8_t>('a' + i % 26);
    }
    std::vector<uint8_t> one;
    for (uint32_t k = 0; k < o.inflight; ++k) {
        appendClientFrame(one, o.binary ? 2 : 1, t.payload.data(), t.payload.size());
    }
    t.cycle = one.size();
    t.frame_len = t.cycle / o.inflight;
    t.bytes = one;
    t.bytes.insert(t.bytes.end(), one.begin(), one.end());
    return t;
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
        std::fprintf(stderr, "ws_loadgen: SHA-1 failed\n");
        std::exit(1);
    }
    return base64(md, md_len);
}

enum class ConnState : uint8_t { kIdle, kConnecting, kHandshake, kOpen, kClosed };

struct Conn {
    int fd = -1;
    ConnState state = ConnState::kIdle;
    bool want_out = false;      // EPOLLOUT registered
    bool ctrl_started = false;  // part of `ctrl_out` already sent; finish it before data
    // Frame parser (server frames are unmasked, RFC 6455 §5.1).
    bool in_payload = false;
    bool frame_fin = false;
    bool msg_active = false;
    uint8_t frame_opcode = 0;
    uint8_t msg_opcode = 0;
    uint8_t hdr_len = 0;
    uint8_t hdr[14] = {};
    uint64_t remaining = 0;
    uint64_t msg_len = 0;
    // Output: `pending` bytes of the frame template starting at `pos`, plus control frames.
    uint64_t pending = 0;
    uint64_t pos = 0;
    uint64_t window_msgs = 0;
    std::string ctrl_out;
    std::string ctrl_in;
    std::string hs;  // handshake request (until sent), then response (until complete)
    std::string accept;
};

struct Stats {
    uint64_t hs_ok = 0;
    uint64_t hs_failed = 0;
    uint64_t msgs_window = 0;
    uint64_t msgs_total = 0;
    uint64_t bad_messages = 0;
    uint64_t protocol_errors = 0;
    uint64_t closed_by_server = 0;
    uint64_t socket_errors = 0;
    uint64_t pings = 0;
    uint64_t recv_calls = 0;
    uint64_t send_calls = 0;
    int first_errno = 0;
    std::string first_error;
};

class LoadGen {
public:
    explicit LoadGen(Options o) : o_(std::move(o)), tpl_(makeTemplate(o_)) {
        buf_.resize(kReadBufferSize);
        conns_.resize(o_.conns);
    }

    int run();

private:
    void fail(Conn& c, const char* what, int err);
    void closeConn(Conn& c);
    bool startConnect(uint32_t idx);
    void onHandshakeEvent(uint32_t idx, uint32_t events);
    bool sendHandshake(Conn& c);
    bool readHandshake(Conn& c);
    void onOpenEvent(uint32_t idx, uint32_t events);
    bool consume(Conn& c, const uint8_t* p, size_t n);
    bool onFrameComplete(Conn& c);
    bool flush(uint32_t idx, Conn& c);
    void setWantOut(uint32_t idx, Conn& c, bool want);
    void printResult(double hs_secs, double window_secs, const CpuWindow& cpu);
    std::string handshakeJson(double hs_secs) const;

    Options o_;
    FrameTemplate tpl_;
    std::vector<uint8_t> buf_;
    std::vector<Conn> conns_;
    int ep_ = -1;
    Stats st_;
    double now_ = 0;
    bool measuring_ = false;
    bool sending_ = false;  // echoes trigger new messages while true
    CpuWindow hs_cpu_;
    in_addr dst_{};
};

void LoadGen::fail(Conn& c, const char* what, int err) {
    if (st_.first_error.empty()) {
        st_.first_error = what;
        st_.first_errno = err;
    }
    if (c.state == ConnState::kConnecting || c.state == ConnState::kHandshake) {
        ++st_.hs_failed;
    } else {
        ++st_.socket_errors;
    }
    closeConn(c);
}

void LoadGen::closeConn(Conn& c) {
    if (c.fd >= 0) {
        // RST instead of FIN: leaves no TIME_WAIT behind to exhaust ports across runs.
        linger lg{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c.fd);
        c.fd = -1;
    }
    c.state = ConnState::kClosed;
    std::string().swap(c.hs);
    std::string().swap(c.ctrl_in);
    std::string().swap(c.ctrl_out);
}

bool LoadGen::startConnect(uint32_t idx) {
    Conn& c = conns_[idx];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
        c.state = ConnState::kConnecting;
        fail(c, "socket", errno);
        return false;
    }
    c.state = ConnState::kConnecting;
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o_.src_addrs > 1) {
        // Spread over 127.0.0.1..M so no single source address runs out of ephemeral ports;
        // IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), which can then reuse
        // ports that are only busy towards other destinations.
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
    uint8_t raw[16];
    fillRandom(raw, sizeof raw);
    std::string key = base64(raw, sizeof raw);
    c.accept = acceptKey(key);
    // No Sec-WebSocket-Extensions: permessage-deflate is never negotiated.
    c.hs = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
           "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    epoll_event ev{};
    ev.data.u32 = idx;
    // On loopback the TCP handshake usually completes inside connect(): try the request at
    // once and only wait for EPOLLOUT when the socket is not writable yet.
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

// Returns true once the whole request is sent (state becomes kHandshake).
bool LoadGen::sendHandshake(Conn& c) {
    while (!c.hs.empty()) {
        ssize_t w = send(c.fd, c.hs.data(), c.hs.size(), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == ENOTCONN || errno == EINTR) {
                return false;
            }
            fail(c, "send handshake", errno);
            return false;
        }
        c.hs.erase(0, static_cast<size_t>(w));
    }
    c.state = ConnState::kHandshake;
    return true;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) {
        return false;
    }
    for (size_t i = 0; i < prefix.size(); ++i) {
        char a = s[i];
        if (a >= 'A' && a <= 'Z') {
            a = static_cast<char>(a - 'A' + 'a');
        }
        if (a != prefix[i]) {
            return false;
        }
    }
    return true;
}

// Reads the 101 response; returns true when the connection is open.
bool LoadGen::readHandshake(Conn& c) {
    for (;;) {
        ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
        if (r == 0) {
            fail(c, "closed during handshake", 0);
            return false;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return false;
            }
            fail(c, "recv handshake", errno);
            return false;
        }
        c.hs.append(reinterpret_cast<const char*>(buf_.data()), static_cast<size_t>(r));
        size_t end = c.hs.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c.hs.size() > 16 * 1024) {
                fail(c, "handshake response too large", 0);
                return false;
            }
            continue;
        }
        std::string_view head(c.hs.data(), end + 2);
        if (!head.starts_with("HTTP/1.1 101")) {
            fail(c, "handshake status is not 101", 0);
            return false;
        }
        bool accepted = false;
        size_t line = head.find("\r\n") + 2;
        while (line < head.size()) {
            size_t eol = head.find("\r\n", line);
            std::string_view h = head.substr(line, eol - line);
            constexpr std::string_view kName = "sec-websocket-accept:";
            if (iequalsPrefix(h, kName)) {
                std::string_view v = h.substr(kName.size());
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
                    v.remove_prefix(1);
                }
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
                    v.remove_suffix(1);
                }
                accepted = v == c.accept;
            }
            line = eol + 2;
        }
        if (!accepted) {
            fail(c, "bad Sec-WebSocket-Accept", 0);
            return false;
        }
        std::string rest = c.hs.substr(end + 4);
        std::string().swap(c.hs);
        std::string().swap(c.accept);
        c.state = ConnState::kOpen;
        ++st_.hs_ok;
        if (!rest.empty() &&
            !consume(c, reinterpret_cast<const uint8_t*>(rest.data()), rest.size())) {
            return false;
        }
        return true;
    }
}

void LoadGen::setWantOut(uint32_t idx, Conn& c, bool want) {
    if (c.want_out == want || c.fd < 0) {
        return;
    }
    epoll_event ev{};
    ev.data.u32 = idx;
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) == 0) {
        c.want_out = want;
    }
}

void LoadGen::onHandshakeEvent(uint32_t idx, uint32_t events) {
    Conn& c = conns_[idx];
    if (c.state == ConnState::kConnecting) {
        if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            fail(c, "connect", err);
            return;
        }
        if (!sendHandshake(c)) {
            return;
        }
        setWantOut(idx, c, false);
    }
    if (c.state == ConnState::kHandshake && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        readHandshake(c);
    }
}

// Parses server frames in place. Returns false if the connection was closed.
bool LoadGen::consume(Conn& c, const uint8_t* p, size_t n) {
    while (n > 0) {
        if (!c.in_payload) {
            size_t want = 2;
            for (;;) {
                size_t take = std::min(want - c.hdr_len, n);
                std::memcpy(c.hdr + c.hdr_len, p, take);
                c.hdr_len = static_cast<uint8_t>(c.hdr_len + take);
                p += take;
                n -= take;
                if (c.hdr_len < want) {
                    return true;  // need more bytes for the header
                }
                uint8_t len7 = c.hdr[1] & 0x7F;
                size_t full = 2 +
                              (len7 == 126   ? 2
                               : len7 == 127 ? 8
                                             : 0) +
                              ((c.hdr[1] & 0x80) != 0 ? 4 : 0);
                if (full == want) {
                    break;
                }
                want = full;
            }
            if ((c.hdr[1] & 0x80) != 0 || (c.hdr[0] & 0x70) != 0) {
                ++st_.protocol_errors;  // RFC 6455 §5.1: servers never mask; no RSV bits
                fail(c, "masked or RSV frame from server", 0);
                return false;
            }
            uint64_t len = c.hdr[1] & 0x7F;
            if (len == 126) {
                len = (uint64_t{c.hdr[2]} << 8) | c.hdr[3];
            } else if (len == 127) {
                len = 0;
                for (int i = 2; i < 10; ++i) {
                    len = (len << 8) | c.hdr[i];
                }
            }
            c.hdr_len = 0;
            c.in_payload = true;
            c.remaining = len;
            c.frame_fin = (c.hdr[0] & 0x80) != 0;
            c.frame_opcode = c.hdr[0] & 0x0F;
            if ((c.frame_opcode & 0x08) != 0) {
                if (len > 125 || !c.frame_fin) {  // RFC 6455 §5.5
                    ++st_.protocol_errors;
                    fail(c, "bad control frame", 0);
                    return false;
                }
                c.ctrl_in.clear();
            } else if (c.frame_opcode != 0) {
                if (c.msg_active) {
                    ++st_.protocol_errors;
                    fail(c, "new message inside a fragmented one", 0);
                    return false;
                }
                c.msg_active = true;
                c.msg_opcode = c.frame_opcode;
                c.msg_len = 0;
            } else if (!c.msg_active) {
                ++st_.protocol_errors;
                fail(c, "continuation without a message", 0);
                return false;
            }
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(c.remaining, n));
        if ((c.frame_opcode & 0x08) != 0) {
            c.ctrl_in.append(reinterpret_cast<const char*>(p), take);
        } else {
            if (o_.verify && (c.msg_len + take > tpl_.payload.size() ||
                              std::memcmp(p, tpl_.payload.data() + c.msg_len, take) != 0)) {
                c.msg_len = UINT64_MAX / 2;  // poisoned: fails the length check below
            }
            c.msg_len += take;
        }
        c.remaining -= take;
        p += take;
        n -= take;
        if (c.remaining == 0) {
            c.in_payload = false;
            if (!onFrameComplete(c)) {
                return false;
            }
        }
    }
    return true;
}

bool LoadGen::onFrameComplete(Conn& c) {
    switch (c.frame_opcode) {
        case 0x8:  // close: we never start one, so the server is ending the connection
            ++st_.closed_by_server;
            closeConn(c);
            return false;
        case 0x9: {  // ping: answer with a masked pong carrying the same payload (§5.5.3)
            ++st_.pings;
            std::vector<uint8_t> f;
            appendClientFrame(f, 0xA, reinterpret_cast<const uint8_t*>(c.ctrl_in.data()),
                              c.ctrl_in.size());
            c.ctrl_out.append(reinterpret_cast<const char*>(f.data()), f.size());
            return true;
        }
        case 0xA:
            return true;
        default:
            break;
    }
    if (!c.frame_fin) {
        return true;
    }
    c.msg_active = false;
    uint8_t expected = o_.binary ? 2 : 1;
    if (c.msg_len != tpl_.payload.size() || c.msg_opcode != expected) {
        ++st_.bad_messages;
        return true;
    }
    ++st_.msgs_total;
    if (measuring_) {
        ++st_.msgs_window;
        ++c.window_msgs;
    }
    if (sending_) {
        c.pending += tpl_.frame_len;  // one slot freed: owe one more message
    }
    return true;
}

// One writev() with everything the connection owes. Returns false if the connection closed.
bool LoadGen::flush(uint32_t idx, Conn& c) {
    while (c.pending > 0 || !c.ctrl_out.empty()) {
        iovec iov[3];
        int n_iov = 0;
        size_t before = 0;  // template bytes placed before the control bytes
        const uint8_t* data = tpl_.bytes.data() + c.pos;
        if (c.ctrl_out.empty()) {
            iov[n_iov++] = {const_cast<uint8_t*>(data), c.pending};
        } else {
            // Control frames go only between data frames: finish the frame in progress first.
            before =
                c.ctrl_started ? 0 : (tpl_.frame_len - c.pos % tpl_.frame_len) % tpl_.frame_len;
            if (before > 0) {
                iov[n_iov++] = {const_cast<uint8_t*>(data), before};
            }
            iov[n_iov++] = {c.ctrl_out.data(), c.ctrl_out.size()};
            if (c.pending > before) {
                iov[n_iov++] = {const_cast<uint8_t*>(data + before), c.pending - before};
            }
        }
        size_t asked = 0;
        for (int i = 0; i < n_iov; ++i) {
            asked += iov[i].iov_len;
        }
        ssize_t w = writev(c.fd, iov, n_iov);
        ++st_.send_calls;
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            fail(c, "send", errno);
            return false;
        }
        auto written = static_cast<size_t>(w);
        bool short_write = written < asked;  // the socket buffer is full: wait for EPOLLOUT
        auto takeTemplate = [&](size_t k) {
            c.pending -= k;
            c.pos = (c.pos + k) % tpl_.cycle;
        };
        if (c.ctrl_out.empty()) {
            takeTemplate(written);
        } else {
            size_t t1 = std::min(written, before);
            takeTemplate(t1);
            written -= t1;
            size_t cw = std::min(written, c.ctrl_out.size());
            c.ctrl_out.erase(0, cw);
            c.ctrl_started = !c.ctrl_out.empty() && (cw > 0 || c.ctrl_started);
            written -= cw;
            takeTemplate(written);
        }
        if (short_write) {
            break;
        }
    }
    setWantOut(idx, c, c.pending > 0 || !c.ctrl_out.empty());
    return true;
}

void LoadGen::onOpenEvent(uint32_t idx, uint32_t events) {
    Conn& c = conns_[idx];
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        for (;;) {
            ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
            ++st_.recv_calls;
            if (r > 0) {
                if (!consume(c, buf_.data(), static_cast<size_t>(r))) {
                    return;
                }
                if (static_cast<size_t>(r) < buf_.size()) {
                    break;  // short read: drained
                }
                continue;
            }
            if (r == 0) {
                ++st_.closed_by_server;
                closeConn(c);
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                fail(c, "recv", errno);
                return;
            }
            break;
        }
    }
    flush(idx, c);
}

std::string jsonEscape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
        }
        out += (static_cast<unsigned char>(ch) < 0x20) ? ' ' : ch;
    }
    return out;
}

std::string LoadGen::handshakeJson(double hs_secs) const {
    char b[512];
    std::snprintf(b, sizeof b,
                  "\"conns\":%u,\"src_addrs\":%u,\"connect_window\":%u,\"handshakes\":%" PRIu64
                  ",\"handshake_failures\":%" PRIu64
                  ",\"handshake_secs\":%.6f,\"handshakes_per_sec\":%.1f"
                  ",\"handshake_gen_cpu\":%.3f,\"handshake_server_cpu\":%.3f"
                  ",\"handshake_machine_cpu\":%.3f,\"handshake_gen_wait\":%.3f"
                  ",\"handshake_server_wait\":%.3f",
                  o_.conns, o_.src_addrs, o_.connect_window, st_.hs_ok, st_.hs_failed, hs_secs,
                  hs_secs > 0 ? static_cast<double>(st_.hs_ok) / hs_secs : 0.0, hs_cpu_.gen,
                  hs_cpu_.server, hs_cpu_.machine, hs_cpu_.gen_wait, hs_cpu_.server_wait);
    return b;
}

void LoadGen::printResult(double hs_secs, double window_secs, const CpuWindow& cpu) {
    uint64_t open = 0;
    uint64_t min_msgs = UINT64_MAX;
    uint64_t max_msgs = 0;
    for (const Conn& c : conns_) {
        if (c.state == ConnState::kOpen) {
            ++open;
            min_msgs = std::min(min_msgs, c.window_msgs);
            max_msgs = std::max(max_msgs, c.window_msgs);
        }
    }
    if (open == 0) {
        min_msgs = 0;
    }
    std::string j = "{\"mode\":\"";
    j += o_.idle ? "idle" : "echo";
    j += "\",";
    j += handshakeJson(hs_secs);
    char b[1024];
    std::snprintf(b, sizeof b, ",\"open\":%" PRIu64, open);
    j += b;
    if (!o_.idle) {
        double mps = window_secs > 0 ? static_cast<double>(st_.msgs_window) / window_secs : 0.0;
        std::snprintf(b, sizeof b,
                      ",\"inflight\":%u,\"size\":%u,\"opcode\":\"%s\",\"verify\":%s,\"secs\":%.6f,"
                      "\"msgs\":%" PRIu64
                      ",\"msgs_per_sec\":%.1f,\"payload_bytes_per_sec\":%.1f,"
                      "\"min_conn_msgs\":%" PRIu64 ",\"max_conn_msgs\":%" PRIu64
                      ",\"gen_cpu\":%.3f,\"server_cpu\":%.3f,\"machine_cpu\":%.3f,\"gen_wait\":%.3f"
                      ",\"server_wait\":%.3f,\"recv_calls\":%" PRIu64 ",\"send_calls\":%" PRIu64,
                      o_.inflight, o_.size, o_.binary ? "binary" : "text",
                      o_.verify ? "true" : "false", window_secs, st_.msgs_window, mps,
                      mps * o_.size, min_msgs, max_msgs, cpu.gen, cpu.server, cpu.machine,
                      cpu.gen_wait, cpu.server_wait, st_.recv_calls, st_.send_calls);
        j += b;
    }
    std::snprintf(
        b, sizeof b,
        ",\"bad_messages\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
        ",\"closed_by_server\":%" PRIu64 ",\"socket_errors\":%" PRIu64 ",\"pings\":%" PRIu64,
        st_.bad_messages, st_.protocol_errors, st_.closed_by_server, st_.socket_errors, st_.pings);
    j += b;
    if (!st_.first_error.empty()) {
        j += ",\"first_error\":\"" + jsonEscape(st_.first_error);
        if (st_.first_errno != 0) {
            j += std::string(": ") + jsonEscape(std::strerror(st_.first_errno));
        }
        j += "\"";
    }
    j += "}\n";
    std::fputs(j.c_str(), stdout);
    std::fflush(stdout);
}

int LoadGen::run() {
    if (inet_pton(AF_INET, o_.host.c_str(), &dst_) != 1 || (ntohl(dst_.s_addr) >> 24) != 127) {
        std::fprintf(stderr, "ws_loadgen: --host must be an IPv4 loopback address (127.x.x.x)\n");
        return 2;
    }
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < o_.conns + 16) {
        std::fprintf(stderr, "ws_loadgen: open-file limit %lu is below --conns + 16\n",
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
    epoll_event events[kMaxEvents];

    // Phase 1: handshakes, at most connect_window in progress at once.
    double hs_start = nowSec();
    CpuMeter hs_meter(o_.server_pid);
    hs_meter.start();
    double hs_deadline = hs_start + o_.handshake_timeout;
    uint32_t next = 0;
    now_ = hs_start;
    while (st_.hs_ok + st_.hs_failed < o_.conns && !g_stop) {
        while (next < o_.conns && next - (st_.hs_ok + st_.hs_failed) < o_.connect_window) {
            startConnect(next++);
        }
        if (st_.hs_ok + st_.hs_failed >= o_.conns) {
            break;
        }
        int n = epoll_wait(ep_, events, kMaxEvents, 100);
        now_ = nowSec();
        for (int i = 0; i < n; ++i) {
            uint32_t idx = events[i].data.u32;
            Conn& c = conns_[idx];
            if (c.state == ConnState::kConnecting || c.state == ConnState::kHandshake) {
                onHandshakeEvent(idx, events[i].events);
            } else if (c.state == ConnState::kOpen) {
                onOpenEvent(idx, events[i].events);
            }
        }
        if (now_ > hs_deadline) {
            for (Conn& c : conns_) {
                if (c.state == ConnState::kConnecting || c.state == ConnState::kHandshake ||
                    c.state == ConnState::kIdle) {
                    if (c.state == ConnState::kIdle) {
                        c.state = ConnState::kConnecting;  // counted as failed, never started
                    }
                    fail(c, "handshake timeout", 0);
                }
            }
            break;
        }
    }
    double hs_secs = nowSec() - hs_start;
    hs_cpu_ = hs_meter.stop();
    if (st_.hs_ok == 0) {
        printResult(hs_secs, 0, CpuWindow{});
        return 1;
    }

    double window_secs = 0;
    CpuWindow cpu;
    if (o_.idle) {
        if (!o_.ready_file.empty()) {
            std::string tmp = o_.ready_file + ".tmp";
            FILE* f = std::fopen(tmp.c_str(), "w");
            if (f != nullptr) {
                std::fprintf(f, "{%s}\n", handshakeJson(hs_secs).c_str());
                std::fclose(f);
                std::rename(tmp.c_str(), o_.ready_file.c_str());
            }
        }
        double end = nowSec() + o_.hold;
        while (!g_stop && now_ < end) {
            int n = epoll_wait(ep_, events, kMaxEvents, 100);
            now_ = nowSec();
            for (int i = 0; i < n; ++i) {
                uint32_t idx = events[i].data.u32;
                if (conns_[idx].state == ConnState::kOpen) {
                    onOpenEvent(idx, events[i].events);  // pings, closes
                }
            }
        }
    } else {
        // Phase 2: echo. Every open connection starts with `inflight` messages owed.
        sending_ = true;
        for (uint32_t i = 0; i < o_.conns; ++i) {
            Conn& c = conns_[i];
            if (c.state == ConnState::kOpen) {
                c.pending = tpl_.cycle;
                flush(i, c);
            }
        }
        double t0 = nowSec();
        double window_start = t0 + o_.warmup;
        double window_end = window_start + o_.duration;
        CpuMeter meter(o_.server_pid);
        now_ = t0;
        while (!g_stop) {
            if (!measuring_ && now_ >= window_start) {
                measuring_ = true;
                window_start = now_;
                window_end = now_ + o_.duration;
                meter.start();
                st_.recv_calls = 0;
                st_.send_calls = 0;
            }
            if (measuring_ && now_ >= window_end) {
                break;
            }
            double until = measuring_ ? window_end : window_start;
            int timeout_ms = static_cast<int>(std::clamp((until - now_) * 1000.0, 0.0, 100.0)) + 1;
            int n = epoll_wait(ep_, events, kMaxEvents, timeout_ms);
            now_ = nowSec();
            for (int i = 0; i < n; ++i) {
                uint32_t idx = events[i].data.u32;
                if (conns_[idx].state == ConnState::kOpen) {
                    onOpenEvent(idx, events[i].events);
                }
            }
        }
        if (measuring_) {
            window_secs = now_ - window_start;
            cpu = meter.stop();
        }
        measuring_ = false;
        sending_ = false;
    }
    printResult(hs_secs, window_secs, cpu);
    for (Conn& c : conns_) {
        if (c.fd >= 0) {
            closeConn(c);
        }
    }
    close(ep_);
    bool ok = st_.hs_failed == 0 && st_.bad_messages == 0 && st_.protocol_errors == 0 &&
              st_.socket_errors == 0 && st_.closed_by_server == 0;
    return ok ? 0 : 1;
}

}  // namespace
}  // namespace sb::bench

int main(int argc, char** argv) {
    sb::bench::LoadGen gen(sb::bench::parseOptions(argc, argv));
    return gen.run();
}
