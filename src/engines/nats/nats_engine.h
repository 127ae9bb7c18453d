// The `nats` engine: many Switchboard nodes share channels through a NATS server with
// JetStream. Each namespace is a JetStream stream (subjects "<prefix>.m.<ns>.<channel>"): a
// channel's history is its messages there, trimmed per subject to the namespace's history_size.
// Offsets are our own header on each message, kept contiguous per channel by optimistic
// concurrency: a publish names the stream sequence of the channel's last message
// (Nats-Expected-Last-Subject-Sequence) and is refused if another node published first, so a
// channel has one order on every node. Idempotency keys are JetStream's Nats-Msg-Id
// deduplication. The stream republishes every stored message to "<prefix>.r.<ns>.<channel>", in
// stream order, which is what nodes subscribe to (only for channels with local subscribers).
// Presence, sessions and the node registry are JetStream key-value buckets.
//
// Threads: libnats runs its own (socket reader, flusher, one message-delivery thread for every
// subscription of the process), plus one worker of ours for fire-and-forget writes, heartbeats
// and reaping. Engine calls that need an answer make a JetStream request from the calling thread
// and wait up to `timeout_ms`. NATS down: the engine says unavailable (/readyz 503), local
// connections stay, libnats reconnects with backoff, and subscribed channels catch up from their
// streams once it is back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "broker/engine.h"

namespace sb::engines::nats {

struct NatsOptions {
    // NATS server URL(s): "nats://host:port", a comma-separated list for a cluster (libnats
    // tries them in turn and learns the others from the server).
    std::string url = "nats://127.0.0.1:4222";
    std::string user;         // user/password authentication; empty = none
    std::string password;     //
    std::string token;        // token authentication; empty = none
    bool tls = false;         // TLS to NATS (tls://)
    std::string tls_ca_file;  // PEM CAs trusted for the server's certificate (empty: system)
    // Every subject starts with "<prefix>." and every stream and bucket name with "<prefix>_":
    // several deployments share one NATS. Letters, digits, '_' and '-' only.
    std::string prefix = "sb";
    // JetStream storage for streams and buckets: file survives a NATS restart (history and
    // sessions too), memory is faster and loses everything on restart (channels get new epochs:
    // clients are told recovered:false).
    bool memory_storage = false;
    // How long a caller waits for NATS before `unavailable`: longer than any healthy round trip,
    // short enough that a client's request is not left hanging.
    uint64_t timeout_ms = 2000;
    // A node that has not refreshed its registration for this long is dead: its presence entries
    // are removed (leave events sent) by another node. Heartbeats go every second.
    uint64_t node_ttl_ms = 10'000;
    std::string node_name;  // shown in /api/info; empty = hostname:pid
};

// Starts connecting in the background (the engine is unavailable until NATS answers and its
// streams and buckets are ready). Fails only on invalid options.
base::Result<std::unique_ptr<broker::Engine>> makeNatsEngine(NatsOptions options);

}  // namespace sb::engines::nats
