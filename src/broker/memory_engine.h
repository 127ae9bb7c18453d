// The in-process `memory` engine (the default): offsets, history, presence and idempotency keys
// live in this process and die with it — a restart changes every epoch, so clients correctly get
// recovered:false. Channels sit in 64 shards of a hash map, each channel with its own lock.
#pragma once

#include <cstddef>
#include <memory>

#include "broker/engine.h"

namespace sb::broker {

// Idempotency keys kept per channel within the window; past it the oldest is forgotten first,
// so a publisher spraying unique keys costs a bounded amount of memory.
inline constexpr size_t kMaxIdempotencyKeys = 10'000;

// Epochs are "e_" + 12 hex digits (48 random bits): short enough for std::string's inline
// buffer, so copying the epoch into each publication does not allocate.
inline constexpr size_t kEpochRandomBytes = 6;

// Thread-safe (see Engine). Lock order inside: shard lock, then channel lock; never the reverse.
// Memory: per channel, history_size publications and kMaxIdempotencyKeys keys at most; a channel
// with no interested loop disappears at the first sweep after its history, presence and keys are
// gone. With history_ttl_ms = 0 its history never expires, so the channel (and its epoch) lives
// until the process ends: give namespaces with many short-lived channels a TTL.
std::unique_ptr<Engine> makeMemoryEngine();

}  // namespace sb::broker
