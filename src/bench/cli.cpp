// `switchboard bench` flags, signal handling, the ramp loop and report output.
#include "bench/cli.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "bench/report.h"
#include "bench/storm.h"
#include "bench/workers.h"
#include "loop/event_loop.h"
#include "net/tls.h"

namespace sb::bench {

namespace {

std::atomic<bool> g_interrupt{false};

extern "C" void onInterrupt(int) {
    g_interrupt.store(true, std::memory_order_relaxed);
}

// SIGINT/SIGTERM stop the run and still print the report; SA_RESETHAND makes a second
// Ctrl-C kill at once. SIGPIPE: a peer or a worker pipe gone is an error, not a death.
void installSignals() {
    struct sigaction sa {};
    sa.sa_handler = onInterrupt;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

// Seconds: "5", "2.5s", "500ms", "2m".
bool parseSeconds(std::string_view v, double* out) {
    double scale = 1;
    if (v.ends_with("ms")) {
        scale = 1e-3;
        v.remove_suffix(2);
    } else if (v.ends_with("s")) {
        v.remove_suffix(1);
    } else if (v.ends_with("m")) {
        scale = 60;
        v.remove_suffix(1);
    }
    std::string s(v);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(d) || d < 0) {
        return false;
    }
    *out = d * scale;
    return true;
}

// Milliseconds: "10", "10ms", "1s".
bool parseMillis(std::string_view v, double* out) {
    if (v.ends_with("ms") || v.ends_with("s") || v.ends_with("m")) {
        double s = 0;
        if (!parseSeconds(v, &s)) {
            return false;
        }
        *out = s * 1e3;
        return true;
    }
    return parseSeconds(v, out);
}

bool parseCount(std::string_view v, uint64_t max, uint64_t* out) {
    std::string s(v);
    // Accept 10k / 2M for large connection counts.
    uint64_t scale = 1;
    if (!s.empty() && (s.back() == 'k' || s.back() == 'K')) {
        scale = 1000;
        s.pop_back();
    } else if (!s.empty() && s.back() == 'M') {
        scale = 1'000'000;
        s.pop_back();
    }
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || end != s.c_str() + s.size() || errno != 0 || n > max / scale) {
        return false;
    }
    *out = n * scale;
    return true;
}

std::string defaultUrl(const BenchOptions& o) {
    return o.mode == Mode::kNative ? "ws://127.0.0.1:8080/ws" : "ws://127.0.0.1:8080/echo";
}

bool writeFile(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        std::fprintf(stderr, "switchboard bench: cannot write %s: %s\n", path.c_str(),
                     std::strerror(errno));
        return false;
    }
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    return std::fclose(f) == 0 && ok;
}

bool clean(const BenchResult& r) {
    const Counters& k = r.counters;
    return !r.interrupted && r.errorTotal() == 0 && k.lost == 0 && k.duplicates == 0 &&
           k.offset_errors == 0 && k.out_of_order == 0 && k.bad_replies == 0 && k.foreign == 0;
}

// One ramp step is healthy when its p95 and error rate stay under the thresholds.
void judgeStep(const BenchOptions& o, RampStep* s) {
    const BenchResult& r = s->result;
    const double p95_ms = static_cast<double>(r.latency_ns.percentile(95)) / 1e6;
    const double attempts =
        static_cast<double>(r.counters.msgs_sent + r.counters.connects_attempted);
    const double error_rate = attempts > 0 ? static_cast<double>(r.errorTotal()) / attempts : 1.0;
    char why[160] = {0};
    if (r.interrupted) {
        std::snprintf(why, sizeof why, "interrupted");
    } else if (r.counters.msgs_received == 0) {
        std::snprintf(why, sizeof why, "no replies");
    } else if (p95_ms > o.ramp_max_p95_ms) {
        std::snprintf(why, sizeof why, "p95 %.3f ms > %.3g ms", p95_ms, o.ramp_max_p95_ms);
    } else if (error_rate > o.ramp_max_error_rate) {
        std::snprintf(why, sizeof why, "error rate %.2f%% > %.3g%%", error_rate * 100,
                      o.ramp_max_error_rate * 100);
    }
    s->healthy = why[0] == '\0';
    s->reason = why;
}

int runRamp(const BenchOptions& base, bool progress) {
    std::vector<RampStep> steps;
    const uint32_t start = base.ramp_start > 0 ? base.ramp_start : base.ramp_step;
    for (uint32_t i = 0; i < base.ramp_max_steps && !g_interrupt.load(); ++i) {
        BenchOptions o = base;
        o.scenario = Scenario::kEcho;
        o.conns = start + i * base.ramp_step;
        o.messages = 0;
        o.duration_s = base.ramp_step_s;
        o.procs = base.procs > 0 ? base.procs : procsNeeded(o);
        o.t0_ns = loop::EventLoop::monotonicMs() * 1'000'000;
        ProgressLine line(stderr, progress, o.conns);
        if (progress) {
            std::fprintf(stderr, "\r\033[Kramp step %u: %u connections\n", i + 1, o.conns);
        }
        auto r = runScenario(o, &line, &g_interrupt);
        line.finish();
        if (!r) {
            std::fprintf(stderr, "switchboard bench: %s\n", r.error().message.c_str());
            return 3;
        }
        RampStep s;
        s.conns = o.conns;
        s.offered_per_s = 1000.0 / o.interval_ms * o.conns;
        s.result = std::move(*r);
        judgeStep(base, &s);
        const bool healthy = s.healthy;
        steps.push_back(std::move(s));
        if (!healthy) {
            break;
        }
    }
    std::fputs(formatRampTable(base, steps).c_str(), stdout);
    std::fflush(stdout);
    bool ok = true;
    if (!base.json_path.empty()) {
        ok = writeFile(base.json_path, rampToJson(base, steps)) && ok;
    }
    if (!base.html_path.empty() && !steps.empty()) {
        ok = writeFile(base.html_path, toHtml(base, steps.back().result, steps)) && ok;
    }
    if (!ok) {
        return 3;
    }
    const bool any_healthy = !steps.empty() && steps.front().healthy;
    return any_healthy && !g_interrupt.load() ? 0 : 1;
}

}  // namespace

std::string benchHelp() {
    return R"(usage: switchboard bench <connect|echo|fanout|ramp|storm> [flags]

Load tester for any WebSocket server (ws://, wss://), with a native mode for Switchboard rooms.
  connect   open -c connections (at --rate/s), hold them --hold, close them cleanly (1000)
  echo      -c connections each send -n messages (or for -d) and time every echo
  fanout    --publishers P publish -n messages each into --rooms K; -c subscribers receive
            them: delivery latency, deliveries/s, loss, duplicates and order per subscriber
  ramp      echo steps of --step more connections (one message per --interval each) until
            p95 passes --max-p95 or the error rate passes --max-error-rate
  storm     fanout under a server restart: starts --server-cmd, connects -c subscribers,
            stops the server (SIGTERM, or --kill9) --storm-at after all connected and starts
            it again; clients reconnect with full-jitter backoff and the server's hints:
            time until all are back, time away per client, recoveries, 503 refusals and the
            new server's peak CPU and RSS

target and protocol:
  --url URL              ws:// or wss://host:port/path (default ws://127.0.0.1:8080/echo,
                         native /ws); plain fanout: "{room}" in the URL is replaced by the
                         room number. Repeatable, or a comma list: the nodes of a cluster;
                         connection i goes to URL (i % rooms + i / rooms) % URLs (round-
                         robin; with several rooms shifted each lap, so every room spans
                         every node)
  --publish-url URL      fanout: where the publishers connect (default: the first --url);
                         repeatable or a comma list: publisher p goes to URL p % URLs
  --ca FILE              wss://: trust the CA certificates in this PEM file instead of the
                         system store (the certificate must still match the URL's host)
  --insecure             wss://: do not verify the server's certificate (self-signed servers)
  --tls-resume           wss://: resume TLS sessions (tickets) on new connections, as clients
                         reconnecting after a drop do; default: a full handshake each
  --mode plain|native    plain: raw messages to any echo/broadcast server (default for
                         connect, echo, ramp); native: switchboard.v1.json connect, ping/pong,
                         subscribe/publish (default for fanout)
  --transport ws|sse|poll|stomp  fanout subscribers (connect: the connections) over
                         WebSocket (default), Server-Sent Events (GET /sse?channel=...),
                         long-polling (GET /poll, then GET /poll?session=S&ack=N&wait=W on one
                         keep-alive connection) on the host and port of --url, or STOMP 1.2 on
                         the --url (subprotocol v12.stomp, SUBSCRIBE /topic/<channel>); native
                         mode, ws:// URLs. Publishers stay on the native protocol
  --poll-wait S          --transport poll: the wait of each poll in seconds (default 25)
  --subprotocol P        offer this subprotocol (plain mode; repeatable)
  --deflate              offer permessage-deflate
  --busy-poll            never sleep waiting for the server (poll with a zero timeout): on
                         loopback the server's send pays for waking a sleeping generator, so a
                         generator faster than the server slows it down; burns each process's
                         core (pin it apart from the server)
connections:
  -c, --conns N          connections; fanout: subscribers (default 50; accepts 10k)
  --rate R               new connections per second (default 0: as fast as the window allows)
  --connect-window N     handshakes in flight per process (default 256)
  --connect-timeout T    handshake timeout (default 10s)
  --hold T               connect: how long connections stay open (default 5s)
  --no-reconnect         do not reopen connections the server drops
  --no-recover           native fanout: resubscribe without `since` after a reconnect (what
                         was missed meanwhile then counts as lost)
traffic:
  -n, --messages M       per connection (echo) or publisher (fanout); default 100 unless -d
  -d, --duration T       traffic phase length (the first of -n and -d ends it)
  -i, --interval T       pause between messages of a connection, e.g. 10ms (default 0: as
                         fast as possible with --window in flight). Paced sends keep a fixed
                         schedule; latency counts from the intended send time, so stalls are
                         not hidden (no coordinated omission)
  -w, --window N         messages in flight per connection when --interval is 0 (default 1)
  --flow ack|delivery    fanout, --interval 0: what frees a publisher's window slot: the
                         server's `published` reply (ack: native default) or the publication
                         reaching every subscriber of its room, over all processes (delivery:
                         a closed loop on the slowest subscriber; plain mode's only choice)
  --warmup T             traffic before the measured window: rates, CPU and latency (of
                         messages sent from then on) cover the -d that follows (default 0)
  -s, --size B           payload bytes (default 32; fanout payloads carry a ~40-byte stamp)
  --binary               binary messages (default text)
  --publishers P         fanout publishers (default 1)
  --rooms K              fanout rooms (default 1); native channels are <prefix><room>
  --multi-room           fanout, publishers < rooms: publisher p publishes to its rooms p,
                         p+P, p+2P... in turn, each with a sequence of its own (one connection
                         serving many rooms); plain mode sends "<room URL path> <payload>" to
                         --publish-url (the /pub convention of bench/peers/ws_broadcast.mjs)
  --channel-prefix S     native channel prefix (default "bench.")
  --drain T              after the last message, wait this long for replies (default 2s)
storm:
  --server-cmd CMD       the server to run (sh -c), listening on the --url's port
  --kill9                stop it with SIGKILL (a crash; default SIGTERM, a graceful shutdown)
  --handover             start a second server instead (its command passes --handover-socket):
                         it takes the listening sockets over and the first one drains
  --storm-at T           how long after every client connected (default 3s)
ramp:
  --start N --step N     connections of the first step and added per step (default 100)
  --step-duration T      length of each step (default 5s); interval defaults to 100ms
  --max-p95 MS           healthy while p95 <= MS (default 50)
  --max-error-rate PCT   healthy while errors <= PCT % of messages (default 1)
  --max-steps N          (default 20)
scale and output:
  --procs K              worker processes (default: 1, or what the open-file limit needs);
                         histograms are merged exactly
  --src-addrs N          connect from 127.0.0.1..127.0.0.N (loopback targets; default one
                         per 20,000 connections)
  --server-pid PID       a server on this host: report its CPU over the measured window and
                         the connect phase next to the generator's
  --ready-file FILE      create FILE once every connection is open (a script can then measure
                         the server while connect --hold keeps them)
  --json FILE            write the result as JSON
  --html FILE            write a self-contained HTML report with latency/throughput plots
  -q, --quiet            no progress line (it is shown only on a terminal anyway)
  --progress             show the progress line even when stderr is not a terminal

Ctrl-C stops the run and still prints the report (a second Ctrl-C quits at once).
Exit status: 0 clean run, 1 errors/loss/interrupted, 2 usage, 3 could not run.
)";
}

base::Result<BenchOptions> parseBenchArgs(int argc, char** argv, bool* help) {
    BenchOptions o;
    *help = false;
    if (argc < 1) {
        return base::fail("missing scenario (connect, echo, fanout, ramp or storm)");
    }
    std::string_view scenario = argv[0];
    if (scenario == "--help" || scenario == "-h" || scenario == "help") {
        *help = true;
        return o;
    }
    if (scenario == "connect") {
        o.scenario = Scenario::kConnect;
    } else if (scenario == "echo") {
        o.scenario = Scenario::kEcho;
    } else if (scenario == "fanout") {
        o.scenario = Scenario::kFanout;
        o.mode = Mode::kNative;
        o.conns = 100;
    } else if (scenario == "ramp") {
        o.scenario = Scenario::kRamp;
    } else if (scenario == "storm") {
        o.scenario = Scenario::kFanout;
        o.mode = Mode::kNative;
        o.conns = 1000;
        o.full_jitter = true;
        o.storm.enabled = true;
        o.interval_ms = 100;  // each publisher 10/s: something to recover
        o.duration_s = 15;
    } else {
        return base::fail("unknown scenario '" + std::string(scenario) +
                          "' (connect, echo, fanout, ramp or storm)");
    }
    bool interval_set = false;
    bool mode_set = false;
    bool flow_set = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        std::string_view inline_value;
        bool has_inline = false;
        if (a.starts_with("--") && a.find('=') != std::string_view::npos) {
            inline_value = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
            has_inline = true;
        }
        std::string flag(a);
        auto value = [&]() -> base::Result<std::string_view> {
            if (has_inline) {
                return inline_value;
            }
            if (i + 1 >= argc) {
                return base::fail(flag + " needs a value");
            }
            return std::string_view(argv[++i]);
        };
        auto bad = [&](std::string_view v, const char* what) {
            return base::fail(flag + ": '" + std::string(v) + "' is not " + what);
        };
        auto count = [&](uint64_t max, auto* dst) -> base::Result<void> {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            uint64_t n = 0;
            if (!parseCount(*v, max, &n)) {
                return bad(*v, ("a whole number up to " + std::to_string(max)).c_str());
            }
            *dst = static_cast<std::remove_pointer_t<decltype(dst)>>(n);
            return {};
        };
        auto seconds = [&](double* dst) -> base::Result<void> {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            if (!parseSeconds(*v, dst)) {
                return bad(*v, "a duration (5, 2.5s, 500ms, 2m)");
            }
            return {};
        };
        auto number = [&](double* dst) -> base::Result<void> {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            std::string s(*v);
            char* end = nullptr;
            double d = std::strtod(s.c_str(), &end);
            if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(d) || d < 0) {
                return bad(*v, "a non-negative number");
            }
            *dst = d;
            return {};
        };
        base::Result<void> r;
        if (a == "--help" || a == "-h") {
            *help = true;
            return o;
        } else if (a == "--url" || a == "--publish-url") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            // Repeatable and comma-separated: the nodes of a cluster (ws:// URLs carry no
            // commas of their own in what a bench targets).
            std::vector<std::string>& list = a == "--url" ? o.urls : o.publish_urls;
            std::string_view rest = *v;
            while (true) {
                const size_t comma = rest.find(',');
                const std::string_view one = rest.substr(0, comma);
                if (one.empty()) {
                    return bad(*v, "a URL or a comma-separated list of URLs");
                }
                list.emplace_back(one);
                if (comma == std::string_view::npos) {
                    break;
                }
                rest.remove_prefix(comma + 1);
            }
        } else if (a == "--mode") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            mode_set = true;
            if (*v == "plain") {
                o.mode = Mode::kPlain;
            } else if (*v == "native") {
                o.mode = Mode::kNative;
            } else {
                return bad(*v, "plain or native");
            }
        } else if (a == "--transport") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            if (*v == "ws") {
                o.transport = Transport::kWs;
            } else if (*v == "sse") {
                o.transport = Transport::kSse;
            } else if (*v == "poll") {
                o.transport = Transport::kPoll;
            } else if (*v == "stomp") {
                o.transport = Transport::kStomp;
            } else {
                return bad(*v, "ws, sse, poll or stomp");
            }
        } else if (a == "--poll-wait") {
            r = count(30, &o.poll_wait_s);
        } else if (a == "--subprotocol") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.subprotocols.emplace_back(*v);
        } else if (a == "--deflate") {
            o.deflate = true;
        } else if (a == "--busy-poll") {
            o.busy_poll = true;
        } else if (a == "--ca") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.ca_file = std::string(*v);
        } else if (a == "--insecure") {
            o.insecure = true;
        } else if (a == "--tls-resume") {
            o.tls_resume = true;
        } else if (a == "-c" || a == "--conns" || a == "--subscribers") {
            r = count(10'000'000, &o.conns);
        } else if (a == "--rate") {
            r = number(&o.connect_rate);
        } else if (a == "--connect-window") {
            r = count(1'000'000, &o.connect_window);
        } else if (a == "--connect-timeout") {
            double s = 0;
            r = seconds(&s);
            o.connect_timeout_ms = static_cast<uint32_t>(std::min(s, 3600.0) * 1000);
        } else if (a == "--hold") {
            r = seconds(&o.hold_s);
        } else if (a == "--no-reconnect") {
            o.reconnect = false;
        } else if (a == "--no-recover") {
            o.recover = false;
        } else if (a == "--server-cmd") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.storm.server_cmd = std::string(*v);
        } else if (a == "--kill9") {
            o.storm.kill9 = true;
        } else if (a == "--handover") {
            o.storm.handover = true;
        } else if (a == "--storm-at") {
            r = seconds(&o.storm.at_s);
        } else if (a == "-n" || a == "--messages") {
            r = count(uint64_t{1} << 40, &o.messages);
        } else if (a == "-d" || a == "--duration") {
            r = seconds(&o.duration_s);
        } else if (a == "-i" || a == "--interval") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            if (!parseMillis(*v, &o.interval_ms)) {
                return bad(*v, "an interval (10, 10ms, 1s)");
            }
            interval_set = true;
        } else if (a == "-w" || a == "--window") {
            r = count(65'536, &o.window);
        } else if (a == "-s" || a == "--size") {
            r = count(64u << 20, &o.size);
        } else if (a == "--binary") {
            o.binary = true;
        } else if (a == "--text") {
            o.binary = false;
        } else if (a == "--publishers") {
            r = count(1'000'000, &o.publishers);
        } else if (a == "--rooms") {
            r = count(1'000'000, &o.rooms);
        } else if (a == "--multi-room") {
            o.multi_room = true;
        } else if (a == "--flow") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            if (*v == "ack") {
                o.flow = Flow::kAck;
            } else if (*v == "delivery") {
                o.flow = Flow::kDelivery;
            } else {
                return bad(*v, "ack or delivery");
            }
            flow_set = true;
        } else if (a == "--warmup") {
            r = seconds(&o.warmup_s);
        } else if (a == "--server-pid") {
            r = count(4'194'304, &o.server_pid);
        } else if (a == "--ready-file") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.ready_file = std::string(*v);
        } else if (a == "--channel-prefix") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.channel_prefix = std::string(*v);
        } else if (a == "--drain") {
            r = seconds(&o.drain_s);
        } else if (a == "--procs") {
            r = count(256, &o.procs);
        } else if (a == "--src-addrs") {
            r = count(250, &o.src_addrs);
        } else if (a == "--json") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.json_path = std::string(*v);
        } else if (a == "--html") {
            auto v = value();
            if (!v) {
                return base::fail(v.error().message);
            }
            o.html_path = std::string(*v);
        } else if (a == "-q" || a == "--quiet") {
            o.progress = 0;
        } else if (a == "--progress") {
            o.progress = 1;
        } else if (a == "--start") {
            r = count(10'000'000, &o.ramp_start);
        } else if (a == "--step") {
            r = count(10'000'000, &o.ramp_step);
        } else if (a == "--step-duration") {
            r = seconds(&o.ramp_step_s);
        } else if (a == "--max-p95") {
            r = number(&o.ramp_max_p95_ms);
        } else if (a == "--max-error-rate") {
            double pct = 0;
            r = number(&pct);
            o.ramp_max_error_rate = pct / 100;
        } else if (a == "--max-steps") {
            r = count(10'000, &o.ramp_max_steps);
        } else {
            return base::fail("unknown flag '" + std::string(argv[i]) +
                              "' (see switchboard bench --help)");
        }
        if (!r) {
            return base::fail(r.error().message);
        }
    }
    if (o.transport != Transport::kWs && !mode_set) {
        o.mode = Mode::kNative;  // the HTTP transports have no plain form
    }
    if (o.urls.empty()) {
        o.urls.push_back(defaultUrl(o));
    }
    o.url = o.urls.front();
    if (!o.publish_urls.empty() && o.scenario != Scenario::kFanout) {
        return base::fail("--publish-url is for fanout (the other scenarios have no publishers)");
    }
    if (o.conns == 0 && o.scenario != Scenario::kFanout) {
        return base::fail("-c must be at least 1");
    }
    if (o.scenario == Scenario::kFanout) {
        if (o.publishers == 0 || o.rooms == 0) {
            return base::fail("fanout needs --publishers >= 1 and --rooms >= 1");
        }
        if (o.mode == Mode::kPlain && o.interval_ms <= 0) {
            // A broadcast server acknowledges nothing: the window closes over deliveries.
            if (flow_set && o.flow == Flow::kAck) {
                return base::fail(
                    "plain fanout has no acknowledgements to pace on: --flow delivery or "
                    "--interval");
            }
            o.flow = Flow::kDelivery;
        }
        if (o.multi_room && o.flow == Flow::kDelivery && o.interval_ms <= 0) {
            return base::fail("--multi-room needs --interval (--flow delivery waits per room)");
        }
        if (o.multi_room && o.mode == Mode::kPlain && o.publish_urls.empty()) {
            return base::fail(
                "plain --multi-room publishers need --publish-url (a path like /pub that takes "
                "\"<room path> <payload>\")");
        }
    }
    if (o.warmup_s > 0 && o.duration_s <= 0 && o.scenario != Scenario::kConnect) {
        return base::fail("--warmup needs -d (the measured window's length)");
    }
    if (o.transport != Transport::kWs) {
        if (o.scenario != Scenario::kFanout && o.scenario != Scenario::kConnect) {
            return base::fail("--transport sse|poll|stomp is for fanout and connect");
        }
        if (o.mode != Mode::kNative) {
            return base::fail(
                "--transport sse|poll|stomp publishes with the native protocol: drop --mode plain");
        }
        for (const std::string& u : o.urls) {
            if (!u.starts_with("ws://")) {
                return base::fail("--transport sse|poll|stomp needs ws:// targets (no TLS): '" + u +
                                  "'");
            }
        }
    }
    if (o.storm.enabled && o.storm.server_cmd.empty()) {
        return base::fail(
            "storm starts the server itself: give --server-cmd \"switchboard serve --port P "
            "...\" with the --url's port");
    }
    if (o.scenario == Scenario::kRamp) {
        if (o.ramp_step == 0 || o.ramp_step_s <= 0 || o.ramp_max_steps == 0) {
            return base::fail("ramp needs --step >= 1, --step-duration > 0, --max-steps >= 1");
        }
        if (!interval_set) {
            o.interval_ms = 100;
        }
        if (o.interval_ms <= 0) {
            return base::fail("ramp offers a fixed rate: --interval must be > 0");
        }
    }
    if (o.messages == 0 && o.duration_s <= 0 && o.scenario != Scenario::kConnect &&
        o.scenario != Scenario::kRamp) {
        o.messages = 100;
    }
    if (o.connect_window == 0) {
        return base::fail("--connect-window must be at least 1");
    }
    if (!o.ca_file.empty()) {
        if (o.insecure) {
            return base::fail("--ca and --insecure exclude each other");
        }
        // An unreadable or empty CA file is a usage error now, not one TLS error per connect.
        net::TlsConfig tls;
        tls.ca_file = o.ca_file;
        auto ctx = net::TlsContext::create(tls);
        if (!ctx) {
            return base::fail("--ca: " + ctx.error().message);
        }
    }
    return o;
}

int runBench(int argc, char** argv) {
    bool help = false;
    auto parsed = parseBenchArgs(argc, argv, &help);
    if (!parsed) {
        std::fprintf(stderr, "switchboard bench: %s\n", parsed.error().message.c_str());
        return 2;
    }
    if (help) {
        std::fputs(benchHelp().c_str(), stdout);
        return 0;
    }
    BenchOptions o = std::move(*parsed);
    installSignals();
    const bool progress = o.progress == 1 || (o.progress == -1 && isatty(STDERR_FILENO) == 1);
    o.progress = progress ? 1 : 0;  // the runners keep the progress line's numbers only then
    if (o.scenario == Scenario::kRamp) {
        return runRamp(o, progress);
    }
    if (o.storm.enabled) {
        return runStorm(std::move(o), progress, &g_interrupt);
    }
    if (o.procs == 0) {
        o.procs = procsNeeded(o);
        if (o.procs > 1) {
            std::fprintf(stderr,
                         "switchboard bench: %u connections pass the open-file limit: using "
                         "--procs %u\n",
                         o.conns, o.procs);
        }
    }
    o.t0_ns = loop::EventLoop::monotonicMs() * 1'000'000;
    const uint64_t total = uint64_t{o.conns} + (o.scenario == Scenario::kFanout ? o.publishers : 0);
    ProgressLine line(stderr, progress, total);
    auto result = runScenario(o, &line, &g_interrupt);
    line.finish();
    if (!result) {
        std::fprintf(stderr, "switchboard bench: %s\n", result.error().message.c_str());
        return 3;
    }
    std::fputs(formatTable(o, *result).c_str(), stdout);
    std::fflush(stdout);
    bool ok = true;
    if (!o.json_path.empty()) {
        ok = writeFile(o.json_path, toJson(o, *result)) && ok;
    }
    if (!o.html_path.empty()) {
        ok = writeFile(o.html_path, toHtml(o, *result)) && ok;
    }
    if (!ok) {
        return 3;
    }
    return clean(*result) ? 0 : 1;
}

}  // namespace sb::bench
