// The NATS engine's own formats (pure; fuzzed by fuzz/nats_codec_fuzz.cpp): how channel names,
// client and session ids become subject tokens and KV keys, and how session records and node
// registrations are stored as KV values. Client-supplied bytes travel in all of them, so every
// decoder takes any input and answers nullopt for what it does not understand.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "broker/engine.h"

namespace sb::engines::nats {

// A subject token and KV key part for any bytes: [A-Za-z0-9_-] stay, every other byte becomes
// "=XX" (upper-case hex), and "" becomes "=". The result never holds '.', '*', '>' or spaces
// (which NATS reads as subject structure) and is a valid KV key; decoding is exact.
std::string encodeToken(std::string_view raw);
std::optional<std::string> decodeToken(std::string_view token);

// Lower-case hex: for JetStream stream names, which allow fewer characters than subjects.
std::string hexName(std::string_view raw);

// A session record as stored in the sessions bucket, with the wall-clock time it expires
// (KV buckets have one TTL for all keys; each record carries its own).
struct StoredSession {
    broker::SessionRecord rec;
    uint64_t expires_ms = 0;  // wall clock
};
std::string encodeSession(const broker::SessionRecord& rec, uint64_t expires_ms);
std::optional<StoredSession> decodeSession(std::string_view value);

// A node's registration in the nodes bucket, rewritten every second.
struct NodeEntry {
    std::string name;
    uint64_t connections = 0;
    uint64_t seen_ms = 0;  // wall clock of the last heartbeat
};
std::string encodeNode(const NodeEntry& n);
std::optional<NodeEntry> decodeNode(std::string_view value);

}  // namespace sb::engines::nats
