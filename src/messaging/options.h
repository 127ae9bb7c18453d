// Settings of the messaging core: the [messaging] table and the [namespaces.NAME] tables of the
// config. The defaults written here are the only copy of them: the config schema, --help and
// check-config read them from a default-constructed Options / NamespaceOptions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/engine.h"

namespace sb::messaging {

using NamespaceOptions = broker::NamespaceOptions;
using NamespaceMap = std::unordered_map<std::string, NamespaceOptions>;

// The namespace of channels written without "ns:" ("room" is "default:room").
inline constexpr std::string_view kDefaultNamespace = "default";

// What the native protocol's envelope may add around a publication's data: type, id (≤ 64 B),
// channel (≤ 257 B), idempotency key and JSON punctuation, with room to spare.
inline constexpr size_t kEnvelopeAllowance = 4 * 1024;

// Namespace names: [a-z0-9_-]{1,64} (docs/protocol.md §Names).
inline bool isValidNamespaceName(std::string_view s) {
    if (s.empty() || s.size() > 64) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

// [auth]: how connection and subscribe tokens (JWT) are verified. No key at all = auth off.
struct AuthOptions {
    // HS256 shared secrets (at least 32 bytes each). Several: rotation (a token with a "kid"
    // header is checked against the key with that id; RS/ES keys from a JWKS carry theirs).
    std::vector<std::string> hmac_secrets;
    // PEM files of RS256 (RSA >= 2048 bits) / ES256 (P-256) public keys or certificates.
    std::vector<std::string> public_key_files;
    // A JWKS file (RFC 7517) of RSA, EC and oct keys, re-read on SIGHUP.
    std::string jwks_file;
    // Required "aud" / "iss" when set: a token minted for another service is refused.
    std::string audience;
    std::string issuer;
    // Clock skew allowed on exp, nbf and iat: servers and token issuers drift by seconds, and
    // 30 s keeps a token valid a little past "exp" rather than refusing an honest client.
    uint64_t leeway_ms = 30'000;
    // Tokens must expire: a leaked token without "exp" would be valid forever.
    bool require_exp = true;
    bool enabled() const {
        return !hmac_secrets.empty() || !public_key_files.empty() || !jwks_file.empty();
    }
};

struct Options {
    // [namespaces.NAME]; normalize() adds "default" when it is not configured.
    NamespaceMap namespaces;
    // Channels one connection may subscribe to (limit_exceeded above): bounds what one client
    // can pin in subscriber lists and presence sets.
    size_t max_subscriptions = 256;
    // Bytes queued for one messaging connection (replies, pongs, history replay and fan-out
    // alike) before its slow-consumer policy acts. 1 MiB is a few thousand typical (~150 B)
    // messages of slack; 10,000 stalled readers then hold at most ~10 GiB, the worst case an
    // operator sizes for.
    size_t outbound_limit = 1 << 20;
    // Largest WebSocket message accepted on /ws (close 1009 above). 0 = derived: the largest
    // namespace max_data_bytes plus kEnvelopeAllowance, so a publish that max_data_bytes allows
    // always fits, and nothing larger is ever parsed (the JSON parser needs ~15 bytes of
    // memory per input byte).
    size_t max_message_size = 0;
    // Requests per second per connection (token bucket, burst twice this): rate_limited
    // errors above it, close 1008 when a client keeps going. 200/s is far above any
    // interactive client and stops a runaway loop within a second.
    uint32_t rate_limit = 200;
    // Key for /api/* ("Authorization: apikey KEY" or "X-API-Key: KEY"). Empty: the HTTP API is
    // off (a safe default: nothing can publish server-side until a key is chosen).
    std::string api_key;
    // HTTP API calls per second with the key (burst twice this; 429 above). 0 = unlimited. A
    // backend publishing thousands per second should batch with /api/broadcast; this stops a
    // runaway script from monopolizing the loops.
    uint32_t api_rate_limit = 1000;
    AuthOptions auth;

    // Fills in what the config may leave out: the "default" namespace, and a history of 1,000
    // for at-least-once namespaces without one (a resume replays from history).
    void normalize() {
        namespaces.try_emplace(std::string(kDefaultNamespace));
        for (auto& entry : namespaces) {
            NamespaceOptions& ns = entry.second;
            if (ns.delivery == NamespaceOptions::Delivery::kAtLeastOnce && ns.history_size == 0) {
                ns.history_size = 1000;
            }
        }
    }

    // max_message_size, or the derived value when it is 0.
    size_t effectiveMaxMessageSize() const {
        if (max_message_size != 0) {
            return max_message_size;
        }
        size_t largest = NamespaceOptions{}.max_data_bytes;
        for (const auto& entry : namespaces) {
            largest = std::max(largest, entry.second.max_data_bytes);
        }
        // Saturates: max_data_bytes may be configured as large as size_t holds.
        constexpr size_t kMax = std::numeric_limits<size_t>::max();
        return largest > kMax - kEnvelopeAllowance ? kMax : largest + kEnvelopeAllowance;
    }
};

}  // namespace sb::messaging
