// The settings of one `switchboard bench` run (parsed by bench/cli.cpp) and the share of the
// work one worker process gets (`--procs K`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sb::bench {

enum class Scenario : uint8_t { kConnect, kEcho, kFanout, kRamp };
// kPlain: raw WebSocket messages, any server. kNative: switchboard.v1.json (docs/protocol.md):
// every connection sends `connect`; echo uses ping/pong, fanout subscribe/publish.
enum class Mode : uint8_t { kPlain, kNative };
// How fanout subscribers (and connect's connections) reach the server: WebSocket (the --url),
// or the HTTP transports of docs/protocol.md on the same host and port: a Server-Sent Events
// stream (GET /sse) or a long-polling loop (GET /poll), or STOMP on the --url (subprotocol
// v12.stomp, docs/stomp.md). Native only; publishers stay on /ws.
enum class Transport : uint8_t { kWs, kSse, kPoll, kStomp };
// fanout with --interval 0: what frees one of a publisher's --window slots. kAck: the server's
// `published` reply (native only). kDelivery: the publication reaching every subscriber of its
// room, in every worker process: a closed loop over the slowest subscriber, and the only
// choice in plain mode, where a broadcast server acknowledges nothing.
enum class Flow : uint8_t { kAck, kDelivery };

const char* scenarioName(Scenario s);

struct StormOptions {
    bool enabled = false;
    // Run with /bin/sh -c; it must serve the run's --url (a fixed port).
    std::string server_cmd;
    bool kill9 = false;  // SIGKILL (a crash) instead of SIGTERM (a graceful shutdown)
    // Start a second server instead of stopping the first: it takes the listening sockets over
    // (the command must pass --handover-socket) and the first drains (a zero-downtime restart).
    bool handover = false;
    double at_s = 3;  // seconds after every client connected
};
const char* transportName(Transport t);

struct BenchOptions {
    Scenario scenario = Scenario::kEcho;
    // The first target (what a one-server run and the reports name).
    std::string url;
    // Every target, url first: several nodes of one cluster. Connections (fanout:
    // subscribers) are spread over them by targetFor(); empty = just `url`.
    std::vector<std::string> urls;
    // fanout: where the publishers connect, publisher p to publish_urls[p % size]; empty =
    // `url`. One entry point for all publishers makes every delivery to the other nodes cross
    // the broker; one per node spreads the cost of publishing over the nodes.
    std::vector<std::string> publish_urls;
    Mode mode = Mode::kPlain;
    Transport transport = Transport::kWs;
    // --transport poll: the `wait` of every poll (seconds the server holds an empty one).
    uint32_t poll_wait_s = 25;
    // Offered in the handshake (native mode always offers switchboard.v1.json).
    std::vector<std::string> subprotocols;
    bool deflate = false;    // offer permessage-deflate
    bool busy_poll = false;  // the generator's loops never sleep (loop::EventLoop::setBusyPoll)
    // wss:// only: trust this PEM file instead of the system CA store, or verify nothing
    // (self-signed test servers). Verification is on by default (client::ClientOptions).
    std::string ca_file;
    bool insecure = false;
    bool tls_resume = false;  // wss://: offer the newest TLS session on new connections

    // Connections (fanout: subscribers). Every scenario opens them first, paced by
    // connect_rate with at most connect_window handshakes in flight.
    uint32_t conns = 50;
    // New connections per second over all workers; 0 = as fast as the window allows.
    double connect_rate = 0;
    // Handshakes in progress at once per worker: stays under a default listen backlog (4096)
    // and keeps connect time a measure of the server, not of our own queue.
    uint32_t connect_window = 256;
    uint32_t connect_timeout_ms = 10'000;

    // connect: how long the connections stay open before the clean 1000 close.
    double hold_s = 5;
    // Messages per connection (echo) or per publisher (fanout); 0 = bounded by duration_s.
    uint64_t messages = 0;
    // Length of the traffic phase; 0 = until `messages` are done. Both set: the first wins.
    double duration_s = 0;
    // Pause between messages of one connection; 0 = as fast as possible with `window`
    // messages in flight per connection.
    double interval_ms = 0;
    uint32_t window = 1;
    uint32_t size = 32;  // payload bytes (fanout: at least the ~40-byte stamp)
    bool binary = false;

    // fanout: publishers (extra connections) and rooms; publisher p and subscriber s use
    // room p % rooms and s % rooms. Native mode: channel `channel_prefix` + room number.
    // Plain mode: "{room}" in the URL is replaced by the room number.
    uint32_t publishers = 1;
    uint32_t rooms = 1;
    std::string channel_prefix = "bench.";
    // fanout with publishers < rooms: publisher p publishes to its rooms p, p + P, p + 2P, ...
    // in turn (one connection serving many channels, as an application backend does), each
    // room with a sequence of its own; --interval is the pause between any two of its
    // publications. Native: the channel is named in each publish. Plain: each message is
    // "<room URL path> <payload>", sent to --publish-url (the /pub convention of
    // bench/peers/ws_broadcast.mjs). Off: rooms >= publishers have no publisher.
    bool multi_room = false;
    Flow flow = Flow::kAck;  // set to kDelivery for plain fanout unless given
    // After the last message: how long to wait for replies/deliveries still on the way.
    double drain_s = 2;
    // Traffic before the measured window opens: rates, CPU and latency (of messages sent from
    // then on) cover only the --duration that follows. 0: the window is the traffic phase.
    double warmup_s = 0;
    // The server's PID (a server on this host): its CPU over the measured window and the
    // connect phase is reported next to the generator's.
    int server_pid = 0;
    // connect: created (empty) once every connection is open, for a script that measures the
    // server while they are held.
    std::string ready_file;
    // Reopen connections the server dropped during the run (counted as reconnects).
    bool reconnect = true;
    // Reconnect like a production client (clients/js): the server's reconnect_after_ms first,
    // then full jitter over 100 ms doubling to 5 s, with no limit on attempts (storm); off:
    // 100 ms doubling to 3.2 s with little jitter, giving up after 6 failures.
    bool full_jitter = false;
    // Native fanout: a reconnected subscriber resubscribes with `since` (its last delivery's
    // epoch and offset), so the server replays what it missed.
    bool recover = true;

    // Worker processes; 0 = 1, or as many as the per-process open-file limit needs.
    uint32_t procs = 0;
    // Source addresses 127.0.0.1..N for loopback targets; 0 = one per 20,000 connections.
    uint32_t src_addrs = 0;

    std::string json_path;
    std::string html_path;
    int progress = -1;  // -1: when stderr is a TTY; 0 never; 1 always

    // ramp: echo steps of `ramp_step` more connections, each sending one message per
    // interval_ms for ramp_step_s, until p95 passes ramp_max_p95_ms or the error rate passes
    // ramp_max_error_rate (a fraction), or after ramp_max_steps.
    uint32_t ramp_start = 0;  // 0 = ramp_step
    uint32_t ramp_step = 100;
    double ramp_step_s = 5;
    double ramp_max_p95_ms = 50;
    double ramp_max_error_rate = 0.01;
    uint32_t ramp_max_steps = 20;

    // storm (bench/storm.h): the scenario is fanout with full_jitter; this is the rest.
    StormOptions storm;

    // Set by the top level, inherited by workers: the common time origin (CLOCK_MONOTONIC ns)
    // of the timeline, so samples of different processes line up.
    uint64_t t0_ns = 0;
};

// The part of a run one process performs: connections [conn_lo, conn_hi) and publishers
// [pub_lo, pub_hi) of the global numbering (rooms and source addresses follow from it).
struct Slice {
    uint32_t index = 0;
    uint32_t count = 1;
    uint32_t conn_lo = 0;
    uint32_t conn_hi = 0;
    uint32_t pub_lo = 0;
    uint32_t pub_hi = 0;
};

// Number of connection targets (urls, at least 1).
uint32_t targetCount(const BenchOptions& o);

// Index into o.urls of connection `conn` (global numbering): round-robin, shifted by one
// each time the room numbers wrap (conn / rooms), so that every room's subscribers land on
// every target whatever rooms and targets have in common. Plain round-robin would put all
// of room r on the targets r, r+K, r+2K ... mod N, one node when N divides K, and the broker
// would then carry no cross-node delivery at all. With one room (and in echo/connect) it is
// plain round-robin. Totals per target differ by at most ~rooms % targets per lap.
uint32_t targetFor(const BenchOptions& o, uint32_t conn);

// Worker `index` of `count`: contiguous, near-equal blocks of connections and publishers.
Slice sliceFor(const BenchOptions& o, uint32_t index, uint32_t count);

}  // namespace sb::bench
