// The scenario engine of one bench process. Everything runs on one event loop: connections
// are client::connect sockets, a 1 ms timerfd drives pacing (connect rate, message interval,
// reconnect backoff) and the phase deadlines, and per-connection state lives in one array.
//
// Phases: kConnecting -> (onReady) kWaitGo -> (go) kTraffic -> kDraining -> kClosing -> kDone.
// fanout inserts kPublishDrain (waiting for `published` acks) and kWaitExpected (the totals
// of every process's publishers) between kTraffic and kDraining.
#include "bench/runner.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>
#include <random>
#include <string>
#include <string_view>

#include "bench/delivery.h"
#include "bench/flow.h"
#include "bench/http_sub.h"
#include "client/ws_client.h"
#include "net/socket.h"
#include "net/stream_conn.h"
#include "transport/websocket.h"

namespace sb::bench {

namespace {

constexpr std::string_view kNativeSubprotocol = "switchboard.v1.json";
constexpr uint64_t kMsNs = 1'000'000;
constexpr uint64_t kProgressNs = 1'000'000'000;
// Our close handshake: wait this long for the peer's close frame, then drop TCP.
constexpr uint32_t kCloseTimeoutMs = 2'000;
// Reconnect backoff: 100 ms doubling to 3.2 s plus up to 100 ms of jitter; a connection gives
// up after this many failed attempts in a row (so a dead server cannot stall a bounded run).
constexpr uint32_t kMaxReconnectAttempts = 6;
// Ephemeral ports per (source, destination) pair are ~28k; stay well under.
constexpr uint32_t kConnsPerSourceAddr = 20'000;
// A paced connection whose schedule is further behind than this skips the missed sends
// (counted) instead of bursting them: catching up on a longer stall would flood the server
// with a backlog no real client would send.
constexpr uint64_t kMaxCatchUpNs = 1'000'000'000;

uint64_t monotonicNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// CPU seconds of the calling thread: the runner is one thread, and in the unit tests the
// server under test shares the process.
double threadCpuS() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// Seconds the calling thread was runnable but waiting for a CPU (/proc/thread-self/schedstat:
// other work on its core), or -1.
double threadWaitS() {
    FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
    if (f == nullptr) {
        return -1;
    }
    unsigned long long run_ns = 0;
    unsigned long long wait_ns = 0;
    const int n = std::fscanf(f, "%llu %llu", &run_ns, &wait_ns);
    std::fclose(f);
    return n == 2 ? static_cast<double>(wait_ns) * 1e-9 : -1;
}

// CPU seconds (user + system, every thread) of process `pid`, or -1.
double processCpuS(int pid) {
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
    const size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    line[n] = '\0';
    const char* p = std::strrchr(line, ')');  // the fields after the command name
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    if (p == nullptr || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                    &utime, &stime) != 2) {
        return -1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds the whole machine spent busy (all but idle and iowait, /proc/stat), or -1.
double machineBusyS() {
    FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr) {
        return -1;
    }
    unsigned long long v[8] = {};
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                              &v[3], &v[4], &v[5], &v[6], &v[7]);
    std::fclose(f);
    if (n != 8) {
        return -1;
    }
    return static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           static_cast<double>(sysconf(_SC_CLK_TCK));
}

double delta(double a, double b) {
    return a >= 0 && b >= 0 ? b - a : -1;
}

// The unsigned decimal at msg[*pos] (advances past it); false when there is none.
bool digitsAt(std::string_view msg, size_t* pos, uint64_t* out) {
    size_t i = *pos;
    const size_t end = std::min(msg.size(), i + 19);
    uint64_t v = 0;
    for (; i < end && msg[i] >= '0' && msg[i] <= '9'; ++i) {
        v = v * 10 + static_cast<uint64_t>(msg[i] - '0');
    }
    if (i == *pos) {
        return false;
    }
    *pos = i;
    *out = v;
    return true;
}

// Maps a client::connect error message to an error kind of the report.
std::string classifyConnectError(const std::string& e) {
    if (e.find("refused") != std::string::npos && e.find("closed during") == std::string::npos) {
        return "refused";
    }
    if (e.find("timed out") != std::string::npos) {
        return "handshake_timeout";
    }
    if (e.starts_with("TLS ")) {
        return "tls";  // wss:// handshake or setup (certificate, alert, peer closed)
    }
    if (e.starts_with("server answered ")) {
        std::string code = e.substr(16, 3);
        return "handshake_status_" + code;
    }
    if (e.find("Too many open files") != std::string::npos) {
        return "fd_limit";
    }
    if (e.find("Cannot assign requested address") != std::string::npos) {
        return "no_source_port";
    }
    if (e.find("closed during the handshake") != std::string::npos) {
        return "closed_in_handshake";
    }
    if (e.starts_with("bad HTTP response")) {
        return "bad_http_response";
    }
    return "handshake_invalid";
}

enum class Phase : uint8_t {
    kConnecting,
    kWaitGo,
    kTraffic,
    kPublishDrain,
    kWaitExpected,
    kDraining,
    kClosing,
    kDone
};

const char* phaseName(Phase p) {
    switch (p) {
        case Phase::kConnecting:
            return "connecting";
        case Phase::kWaitGo:
            return "ready";
        case Phase::kTraffic:
            return "running";
        case Phase::kPublishDrain:
        case Phase::kWaitExpected:
        case Phase::kDraining:
            return "draining";
        case Phase::kClosing:
            return "closing";
        case Phase::kDone:
            return "done";
    }
    return "";
}

enum class Role : uint8_t { kIdle, kEcho, kSubscriber, kPublisher };
enum class State : uint8_t { kIdle, kConnecting, kOpening, kReady, kClosed, kFailed };

// Send times of the messages in flight on one connection, oldest first (an echo server
// answers in order). Allocates on first use, grows when the server falls behind.
class TimeRing {
public:
    void push(uint64_t t) {
        if (size_ == buf_.size()) {
            std::vector<uint64_t> bigger(std::max<size_t>(4, buf_.size() * 2));
            for (size_t i = 0; i < size_; ++i) {
                bigger[i] = buf_[(head_ + i) % buf_.size()];
            }
            buf_ = std::move(bigger);
            head_ = 0;
        }
        buf_[(head_ + size_) % buf_.size()] = t;
        ++size_;
    }
    uint64_t pop() {
        const uint64_t t = buf_[head_];
        head_ = (head_ + 1) % buf_.size();
        --size_;
        return t;
    }
    size_t size() const { return size_; }
    void clear() {
        head_ = 0;
        size_ = 0;
    }

private:
    std::vector<uint64_t> buf_;
    size_t head_ = 0;
    size_t size_ = 0;
};

struct Conn;

// The socket's link back to its slot (cleared when the socket closes).
struct ConnRef final : transport::SocketData {
    explicit ConnRef(Conn* c) : conn(c) {}
    Conn* conn;
    static Conn* of(const transport::WebSocket& ws) {
        auto* r = ws.data<ConnRef>();
        return r == nullptr ? nullptr : r->conn;
    }
};

struct Conn {
    uint32_t slot = 0;
    uint32_t id = 0;         // echo/subscriber: connection number; publisher: publisher number
    uint32_t src_index = 0;  // global connection number (source address choice)
    uint32_t room = 0;
    uint32_t target = 0;  // index into Impl::urls_
    Role role = Role::kIdle;
    State state = State::kIdle;
    transport::WebSocket* ws = nullptr;
    HttpSub* http = nullptr;  // --transport sse|poll: the subscriber's stream or poll loop
    uint64_t connect_start_ns = 0;
    uint32_t gen = 0;           // bumped per (re)connect and close: stale timer entries skip
    uint32_t attempts = 0;      // failed reconnects in a row
    bool initial_done = false;  // counted in the connect phase (ready or failed)
    bool participant = false;   // fanout subscriber that was ready at go (expects deliveries)
    bool closing_by_us = false;
    bool connected_ok = false;  // this attempt's handshake (and native `connect`) succeeded
    bool traffic_done = false;
    bool complete = false;  // subscriber: got all it expects
    uint64_t sent = 0;
    uint64_t unacked = 0;                 // native publisher: publishes without a reply
    TimeRing in_flight;                   // echo
    std::vector<SequenceTracker> tracks;  // subscriber: one per publisher of its room
    // Native subscriber: the stream position of its last delivery, the `since` of a
    // resubscribe after a reconnect (the channel's epoch rarely changes: one copy per change).
    std::string epoch;
    uint64_t offset = 0;
    bool resubscribing = false;  // the pending `subscribe` carries `since`
    // Native subscriber: the bytes its channel's `message` events share up to the offset
    // value ({"type":"message","channel":…,"epoch":…,"offset":), learned from the first one:
    // a delivery that starts with them is read by a scan of the rest, not a JSON search.
    std::string msg_prefix;
    bool in_flow = false;  // --flow delivery: a subscriber its room's publishers wait for
    // --multi-room publisher: its rooms (p, p + P, ...), the next one, each one's sequence,
    // and (native) the room of each publish not yet acknowledged, oldest first.
    std::vector<uint32_t> pub_rooms;
    std::vector<uint64_t> room_seq;
    uint32_t next_room = 0;
    TimeRing ack_rooms;
    uint64_t hint_ms = 0;     // the server's reconnect_after_ms (its last `disconnect`)
    uint64_t dropped_ns = 0;  // when the server dropped it (0: not since it was last ready)
    uint64_t unique = 0;
    uint64_t expected = 0;
};

enum class DueKind : uint8_t { kSend, kReconnect };

struct Due {
    uint64_t at_ns;
    uint32_t slot;
    uint32_t gen;
    DueKind kind;
    bool operator>(const Due& o) const { return at_ns > o.at_ns; }
};

}  // namespace

struct Runner::Impl final : HttpSubSink {
    // The 1 ms pacing tick (timerfd on the loop).
    struct Ticker final : loop::Pollable {
        Impl* impl = nullptr;
        int fd = -1;
        void onEvents(uint32_t) override {
            uint64_t n = 0;
            while (::read(fd, &n, sizeof n) > 0) {
            }
            impl->tick();
            impl->armTicker();
        }
        ~Ticker() override {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    };

    // --flow delivery, --procs: this process's eventfd on the board (another process freed a
    // slot for one of our publishers).
    struct FlowWake final : loop::Pollable {
        Impl* impl = nullptr;
        int fd = -1;
        void onEvents(uint32_t) override {
            uint64_t n = 0;
            while (::read(fd, &n, sizeof n) > 0) {
            }
            impl->pump_pending_ = true;
        }
    };
    // --flow delivery: this process's view of one publisher. ring[s & mask] counts the local
    // subscribers holding sequence number s (received or skipped) for s in [done, done +
    // window); `done` is the first one some local subscriber still lacks.
    struct FlowLocal {
        std::vector<uint32_t> ring;
        uint64_t done = 0;
        uint32_t alive = 0;  // local subscribers in the room that take part
    };

    Impl(Runner* self, const BenchOptions& o, Slice s, Coordinator* c,
         const std::atomic<bool>* interrupt)
        : self_(self), opts_(o), slice_(s), coord_(c), interrupt_(interrupt) {
        loop_.setBusyPoll(o.busy_poll);
    }

    base::Result<void> prepare();
    BenchResult run();
    void go();
    void setExpected(const std::vector<uint64_t>& per_room);
    void requestStop();

    // Connections.
    void fillConnectWindow();
    void startConnect(Conn& c);
    void onConnected(uint32_t slot, transport::WebSocket* ws, const std::string& err);
    void connectFailed(Conn& c);
    void handshakeDone(Conn& c);
    void openingFailed(Conn& c, std::string_view code);
    void markReady(Conn& c);
    void scheduleReconnect(Conn& c);
    void onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data);
    // --transport stomp: one server frame (the server sends one per WebSocket message).
    void onStompFrame(Conn& c, std::string_view frame);
    void onText(Conn& c, ws::Opcode op, std::string_view text);
    void onClose(transport::WebSocket& ws, uint16_t code);
    // A connection ended: by us (`clean`: as agreed) or by the server or the network; `kind`
    // names it in the error counts.
    void connClosed(Conn& c, bool clean, const std::string& kind);
    // --transport sse|poll.
    bool overHttp(const Conn& c) const {
        return (opts_.transport == Transport::kSse || opts_.transport == Transport::kPoll) &&
               c.role != Role::kPublisher;
    }
    // --transport stomp: subscribers (connect: the connections) speak STOMP on the WebSocket.
    bool overStomp(const Conn& c) const {
        return opts_.transport == Transport::kStomp && c.role != Role::kPublisher;
    }
    void startHttp(Conn& c, const client::ClientOptions& opts);
    void closeHttp(Conn& c);
    void onHttpOpen(uint32_t slot, HttpSub* sub, const std::string& err) override;
    void onHttpEvent(uint32_t slot, std::string_view json) override;
    void onHttpClosed(uint32_t slot, std::string_view why) override;
    void sendText(Conn& c, std::string_view text);

    // Traffic.
    void startTraffic(Conn& c);
    bool canSend(const Conn& c) const;
    // `intended_ns`: the scheduled send time of a paced run (latency is measured from it);
    // 0 = now.
    bool sendEcho(Conn& c, uint64_t intended_ns = 0);
    void onEchoReply(Conn& c, ws::Opcode op, size_t size);
    bool publish(Conn& c, uint64_t intended_ns = 0);
    void onSubscribed(Conn& c, std::string_view json);
    void onPublisherMessage(Conn& c, std::string_view type, std::string_view json);
    void onDelivery(Conn& c, std::string_view payload, bool native, bool gap);
    // Native subscriber: a `message` that starts with c.msg_prefix, read without a JSON
    // search. False when it does not have the expected shape (the general path reads it).
    bool fastDelivery(Conn& c, std::string_view msg);
    // A native message's stream position: counts an offset that is not the last + 1.
    void checkOffset(Conn& c, uint64_t offset, bool gap);
    // A delivery's stamp, found: counts, order, flow and latency.
    void deliver(Conn& c, const Stamp& s, bool gap);
    // The publisher behind a subscriber's tracks[i].
    uint32_t trackPublisher(const Conn& c, size_t i) const {
        return multi_room_ ? c.room % opts_.publishers
                           : c.room + static_cast<uint32_t>(i) * std::max<uint32_t>(1, opts_.rooms);
    }

    // --flow delivery.
    void flowStart();
    void flowResolve(uint32_t pub, uint64_t from, uint64_t to);
    void flowAdvance(uint32_t pub);
    void flowLeave(Conn& c);
    // Sends what the window allows on every local publisher (at the end of the iteration).
    void pumpPublishers();
    void pump(Conn& c);

    // The measured window (--warmup).
    void openWindow();
    void closeWindow();
    void checkConnDone(Conn& c);
    void markTrafficDone(Conn& c);

    // Phases.
    void checkConnectPhaseDone();
    void endTraffic();
    void checkDrain();
    void startClosing();
    void finish();
    void tick();
    // The next tick: in 1 ms, or when the earliest paced send or reconnect is due if sooner.
    void armTicker();
    void emitProgress();

    // The timeline sample of now_ns_. The one in use is cached with its time range: a
    // delivery touches it several times, and the timeline is only reached through here, so
    // no other call can move or coarsen it in between.
    TimelineSample& sample() {
        if (cur_sample_ != nullptr && now_ns_ >= cur_lo_ns_ && now_ns_ < cur_hi_ns_) {
            return *cur_sample_;
        }
        const uint64_t t_ms = (now_ns_ - std::min(now_ns_, t0_ns_)) / kMsNs;
        TimelineSample& s = result_.timeline.at(t_ms);
        const uint64_t iv = result_.timeline.intervalMs();
        cur_lo_ns_ = t0_ns_ + t_ms / iv * iv * kMsNs;
        cur_hi_ns_ = cur_lo_ns_ + iv * kMsNs;
        cur_sample_ = &s;
        return s;
    }
    // One record per message: the run's histogram is the exact merge of the timeline's at the
    // end; the progress line's (recent_) only when there is a progress line.
    void recordLatency(TimelineSample& now, uint64_t lat) {
        now.latency.record(lat);
        if (opts_.progress != 0) {
            recent_.record(lat);
        }
    }
    void error(std::string_view kind) {
        result_.addError(kind);
        ++sample().errors;
    }

    Runner* self_;
    BenchOptions opts_;
    Slice slice_;
    Coordinator* coord_;
    const std::atomic<bool>* interrupt_;

    // Per target (the connection URLs, then the publishers' one): one URL, or one per room
    // ("{room}" in a plain URL).
    std::vector<std::vector<client::WsUrl>> urls_;
    uint32_t conn_targets_ = 1;  // urls_[0, conn_targets_): connections; the rest: publishers
    client::ClientOptions client_opts_;
    uint32_t src_addrs_ = 0;  // 0: let the kernel pick the source address
    std::string payload_;     // plain echo payload
    std::string scratch_;     // message being built
    ws::Opcode op_ = ws::Opcode::kText;
    bool native_ = false;
    bool multi_room_ = false;              // --multi-room with publishers < rooms
    std::vector<std::string> room_paths_;  // plain --multi-room: each room's URL path

    // --flow delivery.
    bool flow_delivery_ = false;
    std::unique_ptr<FlowBoard> own_board_;  // one process: the board is ours
    FlowBoard* board_ = nullptr;
    std::vector<FlowLocal> flow_;      // per publisher (global numbering)
    std::vector<uint32_t> pub_owner_;  // the process of each publisher
    uint64_t flow_mask_ = 0;           // ring size - 1 (a power of two >= window)
    bool pump_pending_ = false;
    FlowWake flow_wake_;

    // Receive timestamps: one clock read per socket per loop iteration (the messages of one
    // read arrived together), reset at the end of every iteration.
    const transport::WebSocket* clock_ws_ = nullptr;
    TimelineSample* cur_sample_ = nullptr;
    uint64_t cur_lo_ns_ = 0;
    uint64_t cur_hi_ns_ = 0;

    // The measured window: latency counts messages sent from measure_from_ns_ on (with a
    // warm-up, the window's start, unknown until it opens; without, everything: a delivery
    // may reach a process before its own go()).
    uint64_t measure_from_ns_ = 0;
    uint64_t window_start_ns_ = 0;  // when the window opens (go + warmup)
    bool window_open_ = false;
    bool window_closed_ = false;
    uint64_t win_sent0_ = 0;
    uint64_t win_received0_ = 0;
    double win_cpu0_ = 0;
    double win_wait0_ = -1;
    double win_server0_ = -1;
    double win_machine0_ = -1;
    double connect_wait0_ = -1;
    double connect_server0_ = -1;

    std::vector<Conn> conns_;
    uint32_t participants_ = 0;  // connections whose traffic ends the traffic phase
    Phase phase_ = Phase::kConnecting;
    BenchResult result_;
    Histogram recent_;
    bool expected_known_ = false;

    uint64_t t0_ns_ = 0;
    std::minstd_rand rng_{std::random_device{}()};  // full-jitter reconnects
    uint64_t now_ns_ = 0;
    uint64_t start_ns_ = 0;
    uint64_t go_ns_ = 0;
    uint64_t traffic_end_ns_ = 0;
    uint64_t last_rx_ns_ = 0;
    uint64_t deadline_ns_ = 0;  // end of the traffic phase (0 = none)
    uint64_t drain_deadline_ns_ = 0;
    uint64_t close_deadline_ns_ = 0;
    uint64_t next_progress_ns_ = 0;
    double cpu_start_ = 0;
    double cpu_go_ = 0;
    double cpu_traffic_end_ = 0;

    uint32_t next_to_start_ = 0;
    uint32_t pending_connects_ = 0;
    uint32_t resolved_initial_ = 0;
    uint64_t open_ = 0;
    uint64_t http_open_ = 0;      // HttpSub connections open (they are not in sockets_)
    uint64_t outstanding_ = 0;    // echo requests in flight, all connections
    uint64_t unacked_total_ = 0;  // native publishes in flight
    uint32_t traffic_done_count_ = 0;
    uint32_t subs_incomplete_ = 0;
    std::vector<uint64_t> room_published_;
    std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;

    // Destruction order matters: the loop goes first (it frees sockets still open, which
    // unlink from sockets_ and must find behavior_ alive), then everything above.
    transport::WebSocketBehavior behavior_;
    transport::SocketList sockets_;
    Ticker ticker_;
    loop::EventLoop loop_;
};

base::Result<void> Runner::Impl::prepare() {
    native_ = opts_.mode == Mode::kNative;
    op_ = opts_.binary ? ws::Opcode::kBinary : ws::Opcode::kText;
    const bool fanout = opts_.scenario == Scenario::kFanout;
    multi_room_ = fanout && opts_.multi_room && opts_.publishers < opts_.rooms;
    flow_delivery_ = fanout && opts_.flow == Flow::kDelivery && opts_.interval_ms <= 0;
    if (flow_delivery_ && multi_room_) {
        return base::fail("--flow delivery needs a publisher per room (drop --multi-room)");
    }
    // Targets: the connection URLs (one per node), then the publishers' URLs. Each expands
    // to one URL per room when it holds "{room}" (plain mode).
    std::vector<std::string> targets = opts_.urls;
    if (targets.empty()) {
        targets.push_back(opts_.url);
    }
    conn_targets_ = static_cast<uint32_t>(targets.size());
    if (opts_.publish_urls.empty()) {
        targets.push_back(targets.front());
    } else {
        targets.insert(targets.end(), opts_.publish_urls.begin(), opts_.publish_urls.end());
    }
    for (size_t ti = 0; ti < targets.size(); ++ti) {
        const std::string& target = targets[ti];
        const bool per_room = !native_ && target.find("{room}") != std::string::npos;
        // A --multi-room publisher names the room in each message: one URL serves them all.
        const bool room_in_message = multi_room_ && ti >= conn_targets_;
        if (opts_.scenario == Scenario::kFanout && !native_ && opts_.rooms > 1 && !per_room &&
            !room_in_message) {
            return base::fail("plain fanout with --rooms > 1 needs \"{room}\" in the URL");
        }
        const uint32_t n_rooms = per_room ? std::max<uint32_t>(1, opts_.rooms) : 1;
        std::vector<client::WsUrl> expanded;
        for (uint32_t r = 0; r < n_rooms; ++r) {
            std::string u = target;
            if (per_room) {
                u.replace(u.find("{room}"), 6, std::to_string(r));
            }
            auto parsed = client::parseWsUrl(u);
            if (!parsed) {
                return base::fail(parsed.error().message);
            }
            expanded.push_back(std::move(*parsed));
        }
        urls_.push_back(std::move(expanded));
    }
    if (multi_room_ && !native_) {
        // The publishers name each message's room by the path subscribers of it connect to.
        if (urls_[0].size() != std::max<uint32_t>(1, opts_.rooms)) {
            return base::fail("plain --multi-room needs \"{room}\" in the URL");
        }
        for (const client::WsUrl& u : urls_[0]) {
            room_paths_.push_back(u.path);
        }
    }
    client_opts_.subprotocols = opts_.subprotocols;
    if (native_) {
        client_opts_.subprotocols = {std::string(kNativeSubprotocol)};
    }
    client_opts_.deflate = opts_.deflate;
    client_opts_.handshake_timeout_ms = opts_.connect_timeout_ms;
    client_opts_.ca_file = opts_.ca_file;  // wss:// (bench --ca / --insecure)
    client_opts_.insecure = opts_.insecure;
    client_opts_.tls_resume = opts_.tls_resume;

    // Source addresses: only when every target is IPv4 loopback (127.0.0.0/8 is all ours
    // there). The ephemeral ports are per (source, destination) pair, so several targets do
    // not add up against one source address's budget.
    bool loopback = true;
    for (const auto& target : urls_) {
        auto ep = net::resolve(target[0].host, target[0].port);
        loopback =
            loopback && ep && ep->addr.ss_family == AF_INET &&
            (ntohl(reinterpret_cast<const sockaddr_in*>(&ep->addr)->sin_addr.s_addr) >> 24) == 127;
    }
    const uint64_t total_conns =
        uint64_t{opts_.conns} + (opts_.scenario == Scenario::kFanout ? opts_.publishers : 0);
    if (opts_.src_addrs > 0) {
        if (!loopback) {
            return base::fail("--src-addrs needs a 127.x.x.x target");
        }
        src_addrs_ = std::min<uint32_t>(opts_.src_addrs, 250);
    } else if (loopback && total_conns > kConnsPerSourceAddr) {
        src_addrs_ = static_cast<uint32_t>(
            std::min<uint64_t>(250, (total_conns + kConnsPerSourceAddr - 1) / kConnsPerSourceAddr));
    }

    // Plain echo payload: printable ASCII keeps text frames valid UTF-8.
    payload_.resize(opts_.size);
    for (size_t i = 0; i < payload_.size(); ++i) {
        payload_[i] =
            opts_.binary ? static_cast<char>(i * 31 + 7) : static_cast<char>('a' + i % 26);
    }

    // Slots: connections of this slice, then (fanout) its publishers.
    const uint32_t rooms = std::max<uint32_t>(1, opts_.rooms);
    for (uint32_t i = slice_.conn_lo; i < slice_.conn_hi; ++i) {
        Conn c;
        c.id = i;
        c.src_index = i;
        c.room = i % rooms;
        c.target = targetFor(opts_, i);
        if (opts_.scenario == Scenario::kFanout) {
            c.role = Role::kSubscriber;
            const uint32_t pubs_in_room = multi_room_ ? 1
                                          : opts_.publishers > c.room
                                              ? (opts_.publishers - c.room + rooms - 1) / rooms
                                              : 0;
            c.tracks.resize(pubs_in_room);
        } else {
            c.role = opts_.scenario == Scenario::kEcho ? Role::kEcho : Role::kIdle;
        }
        conns_.push_back(std::move(c));
    }
    if (opts_.scenario == Scenario::kFanout) {
        for (uint32_t p = slice_.pub_lo; p < slice_.pub_hi; ++p) {
            Conn c;
            c.id = p;
            c.src_index = opts_.conns + p;
            c.room = p % rooms;
            // The publishers' URLs, round-robin.
            c.target = conn_targets_ + p % static_cast<uint32_t>(urls_.size() - conn_targets_);
            c.role = Role::kPublisher;
            if (multi_room_) {
                for (uint32_t r = p; r < rooms; r += opts_.publishers) {
                    c.pub_rooms.push_back(r);
                }
                c.room_seq.assign(c.pub_rooms.size(), 0);
            }
            conns_.push_back(std::move(c));
        }
        room_published_.assign(rooms, 0);
    }
    if (flow_delivery_) {
        if (coord_ != nullptr) {
            board_ = coord_->flowBoard();
        }
        if (board_ == nullptr) {
            if (slice_.count > 1) {
                return base::fail("--flow delivery over several processes needs a shared board");
            }
            auto b = FlowBoard::create(1, opts_.publishers, false);
            if (!b) {
                return base::fail(b.error().message);
            }
            own_board_ = std::move(*b);
            board_ = own_board_.get();
        }
        uint64_t ring = 1;
        while (ring < std::max<uint32_t>(1, opts_.window)) {
            ring <<= 1;
        }
        flow_mask_ = ring - 1;
        flow_.resize(opts_.publishers);
        for (FlowLocal& f : flow_) {
            f.ring.assign(ring, 0);
        }
        pub_owner_.assign(opts_.publishers, 0);
        for (uint32_t i = 0; i < slice_.count; ++i) {
            const Slice other = sliceFor(opts_, i, slice_.count);
            for (uint32_t p = other.pub_lo; p < other.pub_hi; ++p) {
                pub_owner_[p] = i;
            }
        }
    }
    for (uint32_t i = 0; i < conns_.size(); ++i) {
        conns_[i].slot = i;
        if (conns_[i].role == Role::kEcho || conns_[i].role == Role::kPublisher) {
            ++participants_;
        }
    }

    behavior_.max_message_size = 64u << 20;
    behavior_.ping_interval_ms = 0;  // the bench measures; it does not keep idle links alive
    behavior_.idle_timeout_ms = 0;
    behavior_.close_timeout_ms = kCloseTimeoutMs;
    behavior_.on_message = [this](transport::WebSocket& ws, ws::Opcode op,
                                  std::span<uint8_t> data) { onMessage(ws, op, data); };
    behavior_.on_close = [this](transport::WebSocket& ws, uint16_t code, std::string_view) {
        onClose(ws, code);
    };
    result_.scenario = scenarioName(opts_.scenario);
    return {};
}

BenchResult Runner::Impl::run() {
    now_ns_ = start_ns_ = monotonicNs();
    t0_ns_ = opts_.t0_ns != 0 ? opts_.t0_ns : start_ns_;
    cpu_start_ = threadCpuS();
    net::StreamConn::installLoopHooks(loop_);
    ticker_.impl = this;
    // Paced sends leave when due, not on the next millisecond: no timer slack on this thread.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    ticker_.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    itimerspec spec{};
    spec.it_value.tv_nsec = static_cast<long>(kMsNs);
    if (ticker_.fd < 0 || timerfd_settime(ticker_.fd, 0, &spec, nullptr) != 0 ||
        !loop_.add(ticker_.fd, &ticker_, EPOLLIN)) {
        result_.addError("timerfd");
        return std::move(result_);
    }
    next_progress_ns_ = start_ns_ + kProgressNs;
    if (opts_.warmup_s > 0) {
        measure_from_ns_ = UINT64_MAX;  // until the window opens
    }
    connect_wait0_ = threadWaitS();
    if (slice_.index == 0) {
        connect_server0_ = processCpuS(opts_.server_pid);
    }
    if (board_ != nullptr && board_->eventFd(slice_.index) >= 0) {
        flow_wake_.impl = this;
        flow_wake_.fd = board_->eventFd(slice_.index);
        if (!loop_.add(flow_wake_.fd, &flow_wake_, EPOLLIN)) {
            result_.addError("eventfd");
            return std::move(result_);
        }
    }
    // Before the transport's cork flush: publications the window freed during this iteration
    // go out in the same send.
    loop_.prependIterationHook([this] {
        clock_ws_ = nullptr;
        if (pump_pending_) {
            pump_pending_ = false;
            pumpPublishers();
        }
    });
    if (coord_ != nullptr) {
        coord_->onStart(*self_);
    }
    loop_.post([this] {
        now_ns_ = monotonicNs();
        fillConnectWindow();
        checkConnectPhaseDone();
    });
    loop_.run();
    loop_.remove(ticker_.fd);
    if (flow_wake_.fd >= 0) {
        loop_.remove(flow_wake_.fd);
    }
    if (window_open_ && !window_closed_) {
        closeWindow();
    }

    now_ns_ = monotonicNs();
    sample().open = open_;
    for (const TimelineSample& ts : result_.timeline.samples()) {
        result_.latency_ns.merge(ts.latency);
    }
    Counters& k = result_.counters;
    k.unanswered += outstanding_;
    if (k.unanswered > 0) {
        result_.addError("unanswered", k.unanswered);
    }
    for (const Conn& c : conns_) {
        if (c.role == Role::kSubscriber && c.participant) {
            k.deliveries += c.unique;
            if (expected_known_) {
                k.expected += c.expected;
                k.lost += c.expected > c.unique ? c.expected - c.unique : 0;
            }
        }
    }
    const double cpu_end = threadCpuS();
    if (cpu_traffic_end_ == 0 && go_ns_ != 0) {
        cpu_traffic_end_ = cpu_end;
    }
    result_.elapsed_s = static_cast<double>(now_ns_ - start_ns_) * 1e-9;
    if (go_ns_ != 0) {
        const uint64_t end =
            std::max(traffic_end_ns_ != 0 ? traffic_end_ns_ : now_ns_, last_rx_ns_);
        result_.traffic_s = static_cast<double>(end - go_ns_) * 1e-9;
        result_.traffic_cpu_s = cpu_traffic_end_ - cpu_go_;
        if (result_.traffic_s > 0) {
            result_.busiest_cpu = result_.traffic_cpu_s / result_.traffic_s;
        }
    }
    result_.cpu_s = cpu_end - cpu_start_;
    result_.connect_cpu_s = (go_ns_ != 0 ? cpu_go_ : cpu_end) - cpu_start_;
    if (result_.connect_s > 0) {
        result_.busiest_connect_cpu = result_.connect_cpu_s / result_.connect_s;
    }
    return std::move(result_);
}

// ---- connections ----------------------------------------------------------------------------

void Runner::Impl::fillConnectWindow() {
    if (phase_ != Phase::kConnecting) {
        return;
    }
    auto allowed = static_cast<uint64_t>(conns_.size());
    if (opts_.connect_rate > 0) {
        const double rate = opts_.connect_rate / slice_.count;
        const double secs = static_cast<double>(now_ns_ - start_ns_) * 1e-9;
        allowed = std::min<uint64_t>(allowed, static_cast<uint64_t>(rate * secs) + 1);
    }
    while (next_to_start_ < allowed && pending_connects_ < opts_.connect_window &&
           phase_ == Phase::kConnecting) {
        startConnect(conns_[next_to_start_++]);
    }
}

void Runner::Impl::startConnect(Conn& c) {
    c.state = State::kConnecting;
    c.connected_ok = false;
    c.connect_start_ns = monotonicNs();
    ++c.gen;
    ++pending_connects_;
    ++result_.counters.connects_attempted;
    client::ClientOptions opts = client_opts_;
    if (src_addrs_ > 0) {
        auto* sa = reinterpret_cast<sockaddr_in*>(&opts.source.addr);
        sa->sin_family = AF_INET;
        sa->sin_port = 0;
        sa->sin_addr.s_addr = htonl(0x7F000001u + c.src_index % src_addrs_);
        opts.source.len = sizeof(sockaddr_in);
    }
    if (overHttp(c)) {
        startHttp(c, opts);
        return;
    }
    if (overStomp(c)) {
        opts.subprotocols = {"v12.stomp"};
    }
    const std::vector<client::WsUrl>& per_room = urls_[c.target];
    const client::WsUrl& url = per_room[per_room.size() == 1 ? 0 : c.room % per_room.size()];
    const uint32_t slot = c.slot;
    client::connect(loop_, url, opts, &behavior_,
                    [this, slot](transport::WebSocket* ws, const std::string& err) {
                        onConnected(slot, ws, err);
                    });
}

void Runner::Impl::onConnected(uint32_t slot, transport::WebSocket* ws, const std::string& err) {
    now_ns_ = monotonicNs();
    --pending_connects_;
    Conn& c = conns_[slot];
    if (ws == nullptr) {
        ++result_.counters.connects_failed;
        const std::string kind = classifyConnectError(err);
        error(kind);
        result_.addErrorSample(kind, err);
        connectFailed(c);
        fillConnectWindow();
        return;
    }
    c.ws = ws;
    ws->setData(std::make_unique<ConnRef>(&c));
    if (ws->compressionEnabled()) {
        ++result_.counters.compressed;
    }
    sockets_.add(ws);
    ++open_;
    result_.counters.open_peak = std::max(result_.counters.open_peak, open_);
    c.closing_by_us = false;
    if (phase_ >= Phase::kClosing) {
        c.closing_by_us = true;
        ws->end(ws::close_code::kNormal, "bench done");
        return;
    }
    if (overStomp(c)) {
        c.state = State::kOpening;
        using namespace std::string_view_literals;
        sendText(c, "CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\0"sv);
    } else if (native_) {
        c.state = State::kOpening;
        sendText(c, R"({"type":"connect","id":"c","name":"switchboard-bench"})");
    } else {
        handshakeDone(c);
    }
    fillConnectWindow();
}

void Runner::Impl::connectFailed(Conn& c) {
    c.state = State::kFailed;
    if (!c.initial_done) {
        // Failures of the first attempt are reported, not retried.
        c.initial_done = true;
        ++resolved_initial_;
        markTrafficDone(c);
        checkConnectPhaseDone();
        return;
    }
    if (opts_.reconnect && phase_ < Phase::kClosing &&
        (opts_.full_jitter || c.attempts < kMaxReconnectAttempts)) {
        scheduleReconnect(c);
    } else {
        markTrafficDone(c);
    }
}

void Runner::Impl::handshakeDone(Conn& c) {
    const uint64_t t = now_ns_ - std::min(now_ns_, c.connect_start_ns);
    result_.connect_ns.record(t);
    ++result_.counters.connects_ok;
    c.connected_ok = true;
    ++sample().connects;
    if (c.role == Role::kSubscriber && c.http != nullptr) {
        // The opening GET subscribed (with `since` on a reconnect): ready at `subscribed`.
        c.resubscribing = opts_.recover && !c.epoch.empty();
        return;
    }
    if (c.role == Role::kSubscriber && overStomp(c)) {
        // No recovery over STOMP (it has no `since`): a reconnect subscribes from now.
        scratch_ = "SUBSCRIBE\nid:0\nreceipt:s\ndestination:/topic/";
        // The same channel as the native publishers': a name without ':' is in the default
        // namespace, which a STOMP destination must spell out if the name holds a '.'.
        if (opts_.channel_prefix.find(':') == std::string::npos) {
            scratch_ += "default:";
        }
        scratch_ += opts_.channel_prefix;
        scratch_ += std::to_string(c.room);
        scratch_ += "\n\n";
        scratch_ += '\0';
        sendText(c, scratch_);
        return;  // ready at the RECEIPT
    }
    if (c.role == Role::kSubscriber && native_) {
        scratch_ = R"({"type":"subscribe","id":"s","channel":")";
        scratch_ += opts_.channel_prefix;
        scratch_ += std::to_string(c.room);
        scratch_ += '"';
        // A reconnect resumes from the last delivery, as a real client would: the server
        // replays what was missed, so only what history no longer holds is lost.
        c.resubscribing = opts_.recover && !c.epoch.empty();
        if (c.resubscribing) {
            scratch_ += R"(,"since":{"epoch":")";
            scratch_ += c.epoch;
            scratch_ += R"(","offset":)";
            scratch_ += std::to_string(c.offset);
            scratch_ += '}';
        }
        scratch_ += '}';
        sendText(c, scratch_);
        return;  // ready at `subscribed`
    }
    markReady(c);
}

void Runner::Impl::openingFailed(Conn& c, std::string_view code) {
    // The server refused `connect` or `subscribe`: this connection cannot take part.
    if (!c.initial_done && !c.connected_ok) {
        ++result_.counters.connects_failed;
    }
    c.closing_by_us = true;
    if (c.ws != nullptr) {
        c.ws->end(ws::close_code::kNormal, "bench: refused");
    }
    closeHttp(c);
    error("error_" + std::string(code));
    c.attempts = kMaxReconnectAttempts;  // no point retrying what the server refuses
    connectFailed(c);
}

void Runner::Impl::onSubscribed(Conn& c, std::string_view json) {
    if (c.resubscribing) {
        c.resubscribing = false;
        if (jsonTrueField(json, "recovered")) {
            ++result_.counters.recoveries;
        } else {
            // Gone from history (size, TTL or a new epoch): what it missed counts as lost.
            ++result_.counters.recoveries_failed;
            c.offset = 0;  // the stream position jumps: not an offset error
        }
    } else {
        c.offset = 0;  // a subscription without `since` starts at the channel's present
    }
    markReady(c);
}

void Runner::Impl::markReady(Conn& c) {
    c.state = State::kReady;
    c.attempts = 0;
    if (c.dropped_ns != 0) {
        result_.downtime_ns.record(now_ns_ - std::min(now_ns_, c.dropped_ns));
        result_.rejoin_ns.record(now_ns_ - std::min(now_ns_, t0_ns_));
        c.dropped_ns = 0;
    }
    if (!c.initial_done) {
        c.initial_done = true;
        c.participant = true;
        ++resolved_initial_;
        checkConnectPhaseDone();
    } else if (phase_ == Phase::kTraffic) {
        startTraffic(c);  // a reconnect: carry on where it stopped
    }
}

void Runner::Impl::scheduleReconnect(Conn& c) {
    ++c.attempts;
    c.state = State::kIdle;
    uint64_t backoff_ms = (uint64_t{100} << std::min<uint32_t>(c.attempts - 1, 5)) +
                          (c.slot * 7919u + c.attempts * 104729u) % 100;
    if (opts_.full_jitter) {
        // As clients/js reconnects: the server's hint first, then full jitter over an
        // exponential ceiling (100 ms doubling, capped at 5 s), however many attempts.
        const uint64_t ceiling =
            std::min<uint64_t>(5'000, uint64_t{100} << std::min<uint32_t>(c.attempts - 1, 6));
        backoff_ms = c.hint_ms > 0 ? c.hint_ms : rng_() % (ceiling + 1);
        c.hint_ms = 0;
    }
    due_.push(Due{now_ns_ + backoff_ms * kMsNs, c.slot, c.gen, DueKind::kReconnect});
}

void Runner::Impl::startHttp(Conn& c, const client::ClientOptions& opts) {
    const std::vector<client::WsUrl>& per_room = urls_[c.target];
    const client::WsUrl& url = per_room[per_room.size() == 1 ? 0 : c.room % per_room.size()];
    HttpSubOptions h;
    h.kind = opts_.transport == Transport::kSse ? HttpKind::kSse : HttpKind::kPoll;
    h.host = url.host;
    h.port = url.port;
    h.source = opts.source;
    h.open_timeout_ms = opts.handshake_timeout_ms;
    h.poll_wait_s = opts_.poll_wait_s;
    h.target = h.kind == HttpKind::kSse ? "/sse" : "/poll";
    if (c.role == Role::kSubscriber) {
        const std::string channel = opts_.channel_prefix + std::to_string(c.room);
        h.target += "?channel=";
        appendQueryValue(&h.target, channel);
        // A reopen resumes from the last delivery, as with `since` on /ws.
        if (opts_.recover && !c.epoch.empty()) {
            h.target += "&since=";
            appendQueryValue(&h.target, channel + "!" + c.epoch + "!" + std::to_string(c.offset));
        }
    }
    openHttpSub(loop_, std::move(h), this, c.slot);
}

void Runner::Impl::closeHttp(Conn& c) {
    if (c.http == nullptr) {
        return;
    }
    HttpSub* sub = c.http;
    c.http = nullptr;
    --http_open_;
    sub->closeByUs();
    connClosed(c, true, "close_http");
}

void Runner::Impl::onHttpOpen(uint32_t slot, HttpSub* sub, const std::string& err) {
    if (sub == nullptr) {
        onConnected(slot, nullptr, err);
        return;
    }
    now_ns_ = monotonicNs();
    --pending_connects_;
    Conn& c = conns_[slot];
    c.http = sub;
    ++http_open_;
    ++open_;
    result_.counters.open_peak = std::max(result_.counters.open_peak, open_);
    c.closing_by_us = false;
    if (phase_ >= Phase::kClosing) {
        c.closing_by_us = true;
        closeHttp(c);
        return;
    }
    c.state = State::kOpening;  // `connected` (and `subscribed`) come on the stream
    fillConnectWindow();
}

void Runner::Impl::onHttpEvent(uint32_t slot, std::string_view json) {
    Conn& c = conns_[slot];
    if (c.http == nullptr) {
        return;
    }
    now_ns_ = monotonicNs();
    result_.counters.bytes_received += json.size();
    onText(c, ws::Opcode::kText, json);
}

void Runner::Impl::onHttpClosed(uint32_t slot, std::string_view why) {
    Conn& c = conns_[slot];
    if (c.http == nullptr) {
        return;
    }
    now_ns_ = monotonicNs();
    c.http = nullptr;
    --http_open_;
    connClosed(c, false, "http_" + std::string(why));
}

void Runner::Impl::sendText(Conn& c, std::string_view text) {
    if (c.ws != nullptr) {
        c.ws->sendText(text);
    }
}

void Runner::Impl::onMessage(transport::WebSocket& ws, ws::Opcode op, std::span<uint8_t> data) {
    Conn* c = ConnRef::of(ws);
    if (c == nullptr) {
        return;
    }
    if (&ws != clock_ws_) {
        now_ns_ = monotonicNs();
        clock_ws_ = &ws;
    }
    result_.counters.bytes_received += data.size();
    const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
    if (c->role == Role::kSubscriber && c->state == State::kReady) {
        // The receive path of fanout: deliveries, read without a JSON search.
        if (native_) {
            if (!c->msg_prefix.empty() && fastDelivery(*c, text)) {
                return;
            }
        } else if (!overStomp(*c)) {
            Stamp st;
            if (stampAt(text, &st)) {
                deliver(*c, st, false);
                return;
            }
        }
    }
    onText(*c, op, text);
}

void Runner::Impl::onStompFrame(Conn& c, std::string_view frame) {
    const std::string_view command = frame.substr(0, frame.find('\n'));
    if (command == "ERROR") {
        if (c.state == State::kOpening) {
            openingFailed(c, "stomp");
        } else {
            error("error_stomp");
        }
        return;
    }
    if (c.state == State::kOpening) {
        if (command == "CONNECTED") {
            handshakeDone(c);
        } else if (command == "RECEIPT") {
            markReady(c);  // of the SUBSCRIBE
        }
        return;
    }
    if (command == "MESSAGE" && c.role == Role::kSubscriber) {
        const std::string_view head = frame.substr(0, frame.find("\n\n"));
        onDelivery(c, frame, false, head.find("\ngap:true") != std::string_view::npos);
    }
}

void Runner::Impl::onText(Conn& conn, ws::Opcode op, std::string_view text) {
    Conn* c = &conn;
    if (overStomp(*c)) {
        onStompFrame(*c, text);
        return;
    }
    std::string_view type;
    if (native_) {
        type = jsonStringField(text, "type");
        if (type == "disconnect") {
            // A graceful shutdown says when to come back (server.reconnect_spread).
            (void)jsonUintField(text, "reconnect_after_ms", &c->hint_ms);
            return;
        }
        if (c->state == State::kOpening) {
            if (type == "connected") {
                handshakeDone(*c);
            } else if (type == "subscribed") {
                onSubscribed(*c, text);
            } else if (type == "error") {
                openingFailed(*c, jsonStringField(text, "code"));
            }
            return;
        }
    }
    switch (c->role) {
        case Role::kEcho:
            if (native_ && type == "error") {
                error("error_" + std::string(jsonStringField(text, "code")));
                if (c->in_flight.size() > 0) {
                    c->in_flight.pop();
                    --outstanding_;
                    ++result_.counters.bad_replies;
                }
                checkConnDone(*c);
                return;
            }
            if (native_ && type != "pong") {
                return;  // events we did not ask for
            }
            onEchoReply(*c, op, text.size());
            return;
        case Role::kPublisher:
            if (native_) {
                onPublisherMessage(*c, type, text);
            }
            return;  // plain: a broadcast server may send publishers their own messages
        case Role::kSubscriber:
            if (native_) {
                if (type == "message") {
                    onDelivery(*c, text, true, jsonTrueField(text, "gap"));
                } else if (type == "error") {
                    error("error_" + std::string(jsonStringField(text, "code")));
                }
                return;
            }
            onDelivery(*c, text, false, false);
            return;
        case Role::kIdle:
            return;
    }
}

void Runner::Impl::onClose(transport::WebSocket& ws, uint16_t code) {
    Conn* c = ConnRef::of(ws);
    if (c == nullptr) {
        return;
    }
    now_ns_ = monotonicNs();
    ws.data<ConnRef>()->conn = nullptr;
    c->ws = nullptr;
    connClosed(*c, code == ws::close_code::kNormal, "close_" + std::to_string(code));
}

void Runner::Impl::connClosed(Conn& conn, bool clean, const std::string& kind) {
    Conn* c = &conn;
    ++c->gen;
    --open_;
    Counters& k = result_.counters;
    if (c->closing_by_us) {
        c->state = State::kClosed;
        if (clean) {
            ++k.closed_clean;
        } else {
            error(kind);
        }
        return;
    }
    // Dropped by the server or the network.
    ++k.drops;
    if (c->initial_done && c->dropped_ns == 0) {
        c->dropped_ns = now_ns_;
    }
    error(kind);
    if (c->in_flight.size() > 0) {
        k.unanswered += c->in_flight.size();
        outstanding_ -= c->in_flight.size();
        c->in_flight.clear();
    }
    unacked_total_ -= c->unacked;
    c->unacked = 0;
    c->ack_rooms.clear();
    if (c->in_flow) {
        flowLeave(*c);
    }
    if (!c->initial_done) {
        if (!c->connected_ok) {
            ++k.connects_failed;  // closed before the native `connected` reply
        }
        connectFailed(*c);
    } else if (opts_.reconnect && phase_ < Phase::kClosing && !c->traffic_done) {
        scheduleReconnect(*c);
    } else {
        c->state = State::kClosed;
        markTrafficDone(*c);
    }
    checkDrain();
}

// ---- traffic --------------------------------------------------------------------------------

bool Runner::Impl::canSend(const Conn& c) const {
    return phase_ == Phase::kTraffic && c.ws != nullptr && c.state == State::kReady &&
           (opts_.messages == 0 || c.sent < opts_.messages);
}

void Runner::Impl::startTraffic(Conn& c) {
    if (c.role != Role::kEcho && c.role != Role::kPublisher) {
        return;
    }
    if (opts_.interval_ms > 0) {
        // Spread the first sends over one interval so connections do not fire in lockstep.
        // Publishers sit after the subscribers in conns_: they are spread by their rank among
        // this process's publishers, or 1,000 of them behind 100,000 subscribers would all
        // fire within the last 1% of each interval.
        const auto interval_ns = static_cast<uint64_t>(opts_.interval_ms * 1e6);
        const bool pub = c.role == Role::kPublisher;
        const uint64_t rank = pub ? c.id - slice_.pub_lo : c.slot;
        const uint64_t senders = pub ? slice_.pub_hi - slice_.pub_lo : conns_.size();
        const uint64_t offset = participants_ > 0 ? interval_ns * rank / senders : 0;
        due_.push(Due{now_ns_ + offset, c.slot, c.gen, DueKind::kSend});
        return;
    }
    if (c.role == Role::kPublisher && flow_delivery_) {
        pump(c);
        return;
    }
    for (uint32_t k = 0; k < std::max<uint32_t>(1, opts_.window); ++k) {
        const bool sent = c.role == Role::kEcho ? sendEcho(c) : publish(c);
        if (!sent) {
            break;
        }
    }
    checkConnDone(c);
}

bool Runner::Impl::sendEcho(Conn& c, uint64_t intended_ns) {
    if (!canSend(c)) {
        return false;
    }
    c.in_flight.push(intended_ns != 0 ? intended_ns : monotonicNs());
    ++c.sent;
    ++outstanding_;
    ++result_.counters.msgs_sent;
    ++sample().sent;
    if (native_) {
        scratch_ = R"({"type":"ping","id":)";
        scratch_ += std::to_string(c.sent);
        scratch_ += '}';
        result_.counters.bytes_sent += scratch_.size();
        c.ws->sendText(scratch_);
    } else {
        result_.counters.bytes_sent += payload_.size();
        c.ws->send(op_, {reinterpret_cast<const uint8_t*>(payload_.data()), payload_.size()});
    }
    return true;
}

void Runner::Impl::onEchoReply(Conn& c, ws::Opcode op, size_t size) {
    Counters& k = result_.counters;
    if (c.in_flight.size() == 0) {
        ++k.bad_replies;
        error("unexpected_message");
        return;
    }
    const uint64_t sent_at = c.in_flight.pop();
    --outstanding_;
    ++k.msgs_received;
    ++sample().received;
    last_rx_ns_ = now_ns_;
    const bool ok = native_ || (op == op_ && size == payload_.size());
    if (!ok) {
        ++k.bad_replies;
        error("bad_reply");
    } else if (sent_at >= measure_from_ns_) {
        recordLatency(sample(), now_ns_ - std::min(now_ns_, sent_at));
    }
    if (opts_.interval_ms <= 0) {
        sendEcho(c);
    }
    checkConnDone(c);
}

bool Runner::Impl::publish(Conn& c, uint64_t intended_ns) {
    if (!canSend(c)) {
        return false;
    }
    // --multi-room: the next of its rooms, with that room's own sequence.
    uint32_t room = c.room;
    uint64_t seq = c.sent;
    if (multi_room_) {
        const uint32_t j = c.next_room;
        c.next_room = j + 1 == c.pub_rooms.size() ? 0 : j + 1;
        room = c.pub_rooms[j];
        seq = c.room_seq[j]++;
    }
    const Stamp stamp{c.id, seq, intended_ns != 0 ? intended_ns : monotonicNs()};
    ++c.sent;
    ++result_.counters.msgs_sent;
    ++sample().sent;
    scratch_.clear();
    if (native_) {
        scratch_ = R"({"type":"publish","id":)";
        scratch_ += std::to_string(c.sent);
        scratch_ += R"(,"channel":")";
        scratch_ += opts_.channel_prefix;
        scratch_ += std::to_string(room);
        scratch_ += R"(","data":")";
        writeStamp(&scratch_, stamp, opts_.size);
        scratch_ += "\"}";
        ++c.unacked;
        ++unacked_total_;
        if (multi_room_) {
            c.ack_rooms.push(room);  // the server answers in order
        }
        c.ws->sendText(scratch_);
    } else {
        if (multi_room_) {
            scratch_ = room_paths_[room];  // "/room/7 <payload>" (bench/peers' /pub)
            scratch_ += ' ';
        }
        writeStamp(&scratch_, stamp, opts_.size);
        ++room_published_[room];
        c.ws->send(op_, {reinterpret_cast<const uint8_t*>(scratch_.data()), scratch_.size()});
    }
    result_.counters.bytes_sent += scratch_.size();
    return true;
}

void Runner::Impl::onPublisherMessage(Conn& c, std::string_view type, std::string_view json) {
    if (type != "published" && type != "error") {
        return;
    }
    uint32_t room = c.room;
    if (c.unacked > 0) {
        --c.unacked;
        --unacked_total_;
        if (multi_room_ && c.ack_rooms.size() > 0) {
            room = static_cast<uint32_t>(c.ack_rooms.pop());
        }
    }
    if (type == "published") {
        ++result_.counters.publishes_acked;
        ++room_published_[room];
    } else {
        error("error_" + std::string(jsonStringField(json, "code")));
    }
    if (opts_.interval_ms <= 0 && !flow_delivery_) {
        publish(c);  // --flow ack: the reply frees the slot
    }
    checkConnDone(c);
    checkDrain();
}

void Runner::Impl::onDelivery(Conn& c, std::string_view payload, bool native, bool gap) {
    if (native) {
        const size_t at = payload.find("\"data\"");
        if (at == std::string_view::npos) {
            payload = {};
        } else {
            // The stream position precedes "data" in the server's encoding; scanning only
            // the head keeps a payload that mentions "offset" from being read as one.
            const std::string_view head = payload.substr(0, at);
            uint64_t offset = 0;
            if (jsonUintField(head, "offset", &offset)) {
                const std::string_view epoch = jsonStringField(head, "epoch");
                if (epoch != c.epoch) {
                    c.epoch = epoch;  // a new life of the channel: offsets start again
                    c.offset = 0;
                }
                checkOffset(c, offset, gap);
                // Learn the prefix of the fast path: everything up to the offset value.
                constexpr std::string_view kType = R"({"type":"message",)";
                constexpr std::string_view kOffset = R"(,"offset":)";
                const size_t off_at = head.rfind(kOffset);
                if (payload.starts_with(kType) && off_at != std::string_view::npos &&
                    head.substr(0, off_at).find(kOffset) == std::string_view::npos) {
                    c.msg_prefix.assign(head.substr(0, off_at + kOffset.size()));
                }
            }
            payload = payload.substr(at);
        }
    }
    Stamp s;
    if (!findStamp(payload, &s)) {
        error("bad_payload");
        return;
    }
    deliver(c, s, gap);
}

bool Runner::Impl::fastDelivery(Conn& c, std::string_view msg) {
    const std::string& pre = c.msg_prefix;
    if (msg.size() <= pre.size() || std::memcmp(msg.data(), pre.data(), pre.size()) != 0) {
        return false;  // another channel, another epoch, or not a `message`
    }
    size_t pos = pre.size();
    uint64_t offset = 0;
    constexpr std::string_view kData = R"(,"data":")";
    if (!digitsAt(msg, &pos, &offset) || msg.size() - pos < kData.size() ||
        std::memcmp(msg.data() + pos, kData.data(), kData.size()) != 0) {
        return false;
    }
    pos += kData.size();
    Stamp s;
    if (!stampAt({msg.data() + pos, msg.size() - pos}, &s)) {
        return false;
    }
    // gap:true is the encoder's last field (protocol::encodeMessage).
    const bool gap = msg.ends_with(R"(,"gap":true})");
    checkOffset(c, offset, gap);
    deliver(c, s, gap);
    return true;
}

void Runner::Impl::checkOffset(Conn& c, uint64_t offset, bool gap) {
    // Every publication of a channel gets the next offset, and a subscriber gets them all:
    // anything but last + 1 is a skipped, repeated or reordered position. A gap:true message
    // says the server skipped some on purpose; a fresh subscription or a failed recovery
    // starts from wherever the channel is (c.offset = 0).
    if (c.offset != 0 && offset != c.offset + 1 && !gap) {
        ++result_.counters.offset_errors;
        error("offset_error");
    }
    if (offset > c.offset || gap) {
        c.offset = offset;
    }
}

void Runner::Impl::deliver(Conn& c, const Stamp& s, bool gap) {
    Counters& k = result_.counters;
    ++k.msgs_received;
    TimelineSample& now = sample();
    ++now.received;
    last_rx_ns_ = now_ns_;
    if (gap) {
        ++k.gaps;
    }
    size_t track = 0;
    if (multi_room_) {
        if (s.publisher != c.room % opts_.publishers) {
            ++k.foreign;
            error("foreign_message");
            return;
        }
    } else {
        const uint32_t rooms = std::max<uint32_t>(1, opts_.rooms);
        track = rooms == 1 ? s.publisher : s.publisher / rooms;
        if (s.publisher >= opts_.publishers || (rooms > 1 && s.publisher % rooms != c.room) ||
            track >= c.tracks.size()) {
            ++k.foreign;
            error("foreign_message");
            return;
        }
    }
    SequenceTracker& t = c.tracks[track];
    const uint64_t before = t.next();
    switch (t.onReceive(s.seq)) {
        case SequenceTracker::Verdict::kDuplicate:
            ++k.duplicates;
            return;
        case SequenceTracker::Verdict::kLate:
            ++k.out_of_order;
            break;
        case SequenceTracker::Verdict::kInOrder:
            break;
    }
    if (c.in_flow && t.next() > before) {
        flowResolve(s.publisher, before, t.next());
    }
    ++c.unique;
    if (s.sent_ns >= measure_from_ns_) {
        recordLatency(now, now_ns_ - std::min(now_ns_, s.sent_ns));
    }
    if (expected_known_ && c.participant && !c.complete && c.unique >= c.expected) {
        c.complete = true;
        --subs_incomplete_;
        checkDrain();
    }
}

// ---- delivery flow (--flow delivery) --------------------------------------------------------

void Runner::Impl::flowStart() {
    for (Conn& c : conns_) {
        if (c.role != Role::kSubscriber || !c.participant || c.state != State::kReady) {
            continue;
        }
        c.in_flow = true;
        for (size_t i = 0; i < c.tracks.size(); ++i) {
            ++flow_[trackPublisher(c, i)].alive;
        }
    }
    // A publisher in another process may have started first: what our subscribers already
    // received counts (uncounted, it would hold that publisher back for good).
    for (Conn& c : conns_) {
        if (!c.in_flow) {
            continue;
        }
        for (size_t i = 0; i < c.tracks.size(); ++i) {
            if (c.tracks[i].next() > 0) {
                flowResolve(trackPublisher(c, i), 0, c.tracks[i].next());
            }
        }
    }
    for (uint32_t p = 0; p < flow_.size(); ++p) {
        board_->post(slice_.index, p, flow_[p].alive > 0 ? flow_[p].done : FlowBoard::kNone);
        if (pub_owner_[p] != slice_.index && board_->takeWaiting(p)) {
            board_->wake(pub_owner_[p]);
        }
    }
}

void Runner::Impl::flowResolve(uint32_t pub, uint64_t from, uint64_t to) {
    FlowLocal& f = flow_[pub];
    const uint64_t lo = std::max(from, f.done);
    // Never past the window: a stray sequence number beyond it must not wrap the ring.
    const uint64_t hi = std::min(to, f.done + flow_mask_ + 1);
    for (uint64_t q = lo; q < hi; ++q) {
        ++f.ring[q & flow_mask_];
    }
    if (from <= f.done && f.done < to) {
        flowAdvance(pub);
    }
}

void Runner::Impl::flowAdvance(uint32_t pub) {
    FlowLocal& f = flow_[pub];
    const uint64_t before = f.done;
    if (f.alive == 0) {
        f.done = FlowBoard::kNone;
    } else {
        while (f.ring[f.done & flow_mask_] >= f.alive) {
            f.ring[f.done & flow_mask_] = 0;
            ++f.done;
        }
    }
    if (f.done == before) {
        return;
    }
    board_->post(slice_.index, pub, f.done);
    if (pub_owner_[pub] == slice_.index) {
        pump_pending_ = true;  // sent at the end of this iteration
    } else if (board_->takeWaiting(pub)) {
        board_->wake(pub_owner_[pub]);
    }
}

void Runner::Impl::flowLeave(Conn& c) {
    // A subscriber the server dropped no longer holds its publishers back (what it lacks
    // still counts as lost if it never comes).
    c.in_flow = false;
    for (size_t i = 0; i < c.tracks.size(); ++i) {
        const uint32_t p = trackPublisher(c, i);
        FlowLocal& f = flow_[p];
        if (f.done == FlowBoard::kNone) {
            continue;
        }
        const uint64_t hi = std::min(c.tracks[i].next(), f.done + flow_mask_ + 1);
        for (uint64_t q = f.done; q < hi; ++q) {
            --f.ring[q & flow_mask_];
        }
        --f.alive;
        flowAdvance(p);
    }
}

void Runner::Impl::pumpPublishers() {
    for (Conn& c : conns_) {
        if (c.role == Role::kPublisher) {
            pump(c);
        }
    }
}

void Runner::Impl::pump(Conn& c) {
    if (!flow_delivery_) {
        return;
    }
    const uint64_t window = std::max<uint32_t>(1, opts_.window);
    for (int round = 0; round < 2; ++round) {
        uint64_t done = board_->completed(c.id);
        if (done == FlowBoard::kNone) {
            done = 0;  // nobody listens: the first window, then nothing
        }
        while (canSend(c) && c.sent < done + window) {
            publish(c);
        }
        if (!canSend(c) || round == 1) {
            break;
        }
        // Held back: ask to be woken, then look once more (a slot may have been freed
        // between the look and the ask).
        board_->setWaiting(c.id);
    }
    checkConnDone(c);
}

void Runner::Impl::checkConnDone(Conn& c) {
    if (c.traffic_done || opts_.messages == 0 || c.sent < opts_.messages) {
        return;
    }
    if (c.role == Role::kEcho && c.in_flight.size() == 0) {
        markTrafficDone(c);
    } else if (c.role == Role::kPublisher && c.unacked == 0) {
        markTrafficDone(c);
    }
}

void Runner::Impl::markTrafficDone(Conn& c) {
    if (c.traffic_done || (c.role != Role::kEcho && c.role != Role::kPublisher)) {
        return;
    }
    c.traffic_done = true;
    ++traffic_done_count_;
    if (phase_ == Phase::kTraffic && traffic_done_count_ >= participants_) {
        endTraffic();
    }
}

// ---- phases ---------------------------------------------------------------------------------

void Runner::Impl::checkConnectPhaseDone() {
    if (phase_ != Phase::kConnecting || resolved_initial_ < conns_.size()) {
        return;
    }
    phase_ = Phase::kWaitGo;
    result_.connect_s = static_cast<double>(now_ns_ - start_ns_) * 1e-9;
    if (coord_ != nullptr) {
        coord_->onReady(*self_);
    } else {
        go();
    }
}

void Runner::Impl::go() {
    if (phase_ != Phase::kWaitGo) {
        return;
    }
    now_ns_ = monotonicNs();
    phase_ = Phase::kTraffic;
    go_ns_ = now_ns_;
    cpu_go_ = threadCpuS();
    result_.window.connect_wait_s = delta(connect_wait0_, threadWaitS());
    if (slice_.index == 0) {
        result_.window.server_connect_cpu_s =
            delta(connect_server0_, processCpuS(opts_.server_pid));
    }
    if (opts_.scenario == Scenario::kConnect) {
        deadline_ns_ = go_ns_ + static_cast<uint64_t>(opts_.hold_s * 1e9);
        return;
    }
    const auto warmup_ns = static_cast<uint64_t>(std::max(0.0, opts_.warmup_s) * 1e9);
    if (opts_.duration_s > 0) {
        deadline_ns_ = go_ns_ + warmup_ns + static_cast<uint64_t>(opts_.duration_s * 1e9);
    }
    window_start_ns_ = go_ns_ + warmup_ns;
    if (warmup_ns == 0) {
        openWindow();
    }
    if (flow_delivery_) {
        flowStart();
    }
    for (Conn& c : conns_) {
        if (c.state == State::kReady) {
            startTraffic(c);
        }
    }
    if (phase_ == Phase::kTraffic && traffic_done_count_ >= participants_) {
        endTraffic();  // nobody to send (no participants here, or all failed to connect)
    }
    armTicker();  // the first paced sends may be due before the next millisecond
}

void Runner::Impl::openWindow() {
    window_open_ = true;
    if (opts_.warmup_s > 0) {
        measure_from_ns_ = now_ns_;
    }
    win_sent0_ = result_.counters.msgs_sent;
    win_received0_ = result_.counters.msgs_received;
    win_cpu0_ = threadCpuS();
    win_wait0_ = threadWaitS();
    if (slice_.index == 0) {
        win_server0_ = processCpuS(opts_.server_pid);
        win_machine0_ = machineBusyS();
    }
    window_start_ns_ = now_ns_;
}

void Runner::Impl::closeWindow() {
    window_closed_ = true;
    Window& w = result_.window;
    w.s = static_cast<double>(now_ns_ - std::min(now_ns_, window_start_ns_)) * 1e-9;
    w.sent = result_.counters.msgs_sent - win_sent0_;
    w.received = result_.counters.msgs_received - win_received0_;
    w.cpu_s = threadCpuS() - win_cpu0_;
    w.wait_s = delta(win_wait0_, threadWaitS());
    if (slice_.index == 0) {
        w.server_cpu_s = delta(win_server0_, processCpuS(opts_.server_pid));
        w.machine_busy_s = delta(win_machine0_, machineBusyS());
    }
}

void Runner::Impl::endTraffic() {
    if (phase_ != Phase::kTraffic) {
        return;
    }
    traffic_end_ns_ = now_ns_;
    // Its own sends are done; a process with nobody sending (subscribers only) keeps the
    // window open until the deadline, or without one until the publishers are done.
    if (window_open_ && !window_closed_ && participants_ > 0) {
        closeWindow();
    }
    if (opts_.scenario == Scenario::kConnect) {
        startClosing();
        return;
    }
    drain_deadline_ns_ = now_ns_ + static_cast<uint64_t>(opts_.drain_s * 1e9);
    phase_ = opts_.scenario == Scenario::kFanout ? Phase::kPublishDrain : Phase::kDraining;
    checkDrain();
}

void Runner::Impl::checkDrain() {
    const bool timed_out = now_ns_ >= drain_deadline_ns_;
    if (phase_ == Phase::kPublishDrain && (unacked_total_ == 0 || timed_out)) {
        phase_ = Phase::kWaitExpected;
        if (coord_ != nullptr) {
            coord_->onPublished(*self_, room_published_);
        } else {
            setExpected(room_published_);
        }
        return;
    }
    if (phase_ != Phase::kDraining) {
        return;
    }
    const bool done =
        opts_.scenario == Scenario::kFanout ? subs_incomplete_ == 0 : outstanding_ == 0;
    if (done || timed_out) {
        startClosing();
    }
}

void Runner::Impl::setExpected(const std::vector<uint64_t>& per_room) {
    if (phase_ != Phase::kWaitExpected) {
        return;
    }
    now_ns_ = monotonicNs();
    expected_known_ = true;
    if (window_open_ && !window_closed_ && deadline_ns_ == 0) {
        closeWindow();  // -n without -d: every publisher is done
    }
    for (Conn& c : conns_) {
        if (c.role != Role::kSubscriber || !c.participant) {
            continue;
        }
        c.expected = c.room < per_room.size() ? per_room[c.room] : 0;
        c.complete = c.unique >= c.expected;
        subs_incomplete_ += c.complete ? 0 : 1;
    }
    // The drain clock restarts: other processes may have finished publishing later.
    drain_deadline_ns_ = now_ns_ + static_cast<uint64_t>(opts_.drain_s * 1e9);
    phase_ = Phase::kDraining;
    checkDrain();
}

void Runner::Impl::requestStop() {
    if (phase_ >= Phase::kClosing) {
        return;
    }
    now_ns_ = monotonicNs();
    result_.interrupted = true;
    if (phase_ == Phase::kTraffic) {
        traffic_end_ns_ = now_ns_;
    }
    startClosing();
}

void Runner::Impl::startClosing() {
    if (phase_ >= Phase::kClosing) {
        return;
    }
    if (go_ns_ != 0) {
        cpu_traffic_end_ = threadCpuS();
        if (traffic_end_ns_ == 0) {
            traffic_end_ns_ = now_ns_;
        }
    }
    if (window_open_ && !window_closed_) {
        closeWindow();
    }
    phase_ = Phase::kClosing;
    close_deadline_ns_ = now_ns_ + (kCloseTimeoutMs + 500) * kMsNs;
    for (Conn& c : conns_) {
        if (c.ws != nullptr) {
            c.closing_by_us = true;
            c.ws->end(ws::close_code::kNormal, "bench done");
        } else if (c.http != nullptr) {
            c.closing_by_us = true;
            closeHttp(c);
        }
    }
}

void Runner::Impl::finish() {
    phase_ = Phase::kDone;
    loop_.stop();
}

void Runner::Impl::tick() {
    now_ns_ = monotonicNs();
    if (interrupt_ != nullptr && interrupt_->load(std::memory_order_relaxed)) {
        requestStop();
    }
    if (phase_ == Phase::kConnecting) {
        fillConnectWindow();
    }
    const auto interval_ns = static_cast<uint64_t>(std::max(0.0, opts_.interval_ms) * 1e6);
    while (!due_.empty() && due_.top().at_ns <= now_ns_) {
        const Due d = due_.top();
        due_.pop();
        Conn& c = conns_[d.slot];
        if (d.gen != c.gen) {
            continue;  // the connection closed or reconnected since
        }
        if (d.kind == DueKind::kReconnect) {
            if (phase_ < Phase::kClosing && c.state == State::kIdle) {
                ++result_.counters.reconnects;
                startConnect(c);
            }
            continue;
        }
        // Open loop on a fixed schedule: a late send keeps its intended time, both as the
        // origin of its latency and as the base of the next slot, so the sends a stall
        // delayed go out right after it and are measured from when they were due.
        uint64_t at = d.at_ns;
        if (interval_ns > 0 && now_ns_ - at > kMaxCatchUpNs) {
            // Keep the last second of the backlog (sent now, each timed from its slot).
            const uint64_t skip = (now_ns_ - at - kMaxCatchUpNs + interval_ns - 1) / interval_ns;
            result_.counters.sends_skipped += skip;
            at += skip * interval_ns;
        }
        if (!canSend(c)) {
            checkConnDone(c);
            continue;
        }
        result_.send_lag_ns.record(now_ns_ - at);
        const bool sent = c.role == Role::kEcho ? sendEcho(c, at) : publish(c, at);
        if (sent && canSend(c)) {
            due_.push(Due{at + interval_ns, c.slot, c.gen, DueKind::kSend});
        }
        checkConnDone(c);
    }
    // The window is the same span of time in every process, also in one that only
    // subscribes (whose own traffic phase ends at once).
    if (!window_open_ && go_ns_ != 0 && phase_ < Phase::kClosing && now_ns_ >= window_start_ns_ &&
        opts_.scenario != Scenario::kConnect) {
        openWindow();
    }
    if (window_open_ && !window_closed_ && deadline_ns_ != 0 && now_ns_ >= deadline_ns_) {
        closeWindow();
    }
    if (phase_ == Phase::kTraffic && deadline_ns_ != 0 && now_ns_ >= deadline_ns_) {
        endTraffic();
    }
    if (phase_ == Phase::kPublishDrain || phase_ == Phase::kDraining) {
        checkDrain();
    }
    if (phase_ == Phase::kClosing) {
        if (sockets_.size == 0 && http_open_ == 0 && pending_connects_ == 0) {
            finish();
        } else if (now_ns_ >= close_deadline_ns_) {
            // Peers that never answered our close: drop them (freed at the end of this
            // iteration); handshakes still pending are freed with the loop.
            for (transport::WebSocket* ws = sockets_.head; ws != nullptr;) {
                transport::WebSocket* next = ws->list_next;
                ws->terminate();
                ws = next;
            }
            finish();
        }
    }
    sample().open = open_;  // the gauge: each interval keeps the value of its last tick
    if (now_ns_ >= next_progress_ns_) {
        next_progress_ns_ += kProgressNs;
        emitProgress();
    }
}

void Runner::Impl::armTicker() {
    uint64_t next = monotonicNs() + kMsNs;
    if (!due_.empty()) {
        next = std::min(next, std::max<uint64_t>(due_.top().at_ns, 1));
    }
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(next / 1'000'000'000u);
    spec.it_value.tv_nsec = static_cast<long>(next % 1'000'000'000u);
    timerfd_settime(ticker_.fd, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void Runner::Impl::emitProgress() {
    if (coord_ == nullptr) {
        recent_.reset();
        return;
    }
    Progress p;
    p.elapsed_s = static_cast<double>(now_ns_ - t0_ns_) * 1e-9;
    p.phase = phaseName(phase_);
    p.open = open_;
    p.connects_ok = result_.counters.connects_ok;
    p.connects_failed = result_.counters.connects_failed;
    p.sent = result_.counters.msgs_sent;
    p.received = result_.counters.msgs_received;
    p.errors = result_.errorTotal();
    p.recent = std::move(recent_);
    recent_.reset();
    coord_->onProgress(*self_, p);
}

// ---- Runner ---------------------------------------------------------------------------------

Runner::Runner(const BenchOptions& options, Slice slice, Coordinator* coordinator,
               const std::atomic<bool>* interrupt)
    : impl_(std::make_unique<Impl>(this, options, slice, coordinator, interrupt)) {}

Runner::~Runner() = default;

base::Result<void> Runner::prepare() {
    return impl_->prepare();
}
BenchResult Runner::run() {
    return impl_->run();
}
void Runner::go() {
    impl_->go();
}
void Runner::setExpected(const std::vector<uint64_t>& per_room) {
    impl_->setExpected(per_room);
}
void Runner::requestStop() {
    impl_->requestStop();
}
loop::EventLoop& Runner::loop() {
    return impl_->loop_;
}

}  // namespace sb::bench
