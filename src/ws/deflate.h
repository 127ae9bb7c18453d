// RFC 7692 permessage-deflate: negotiation of the extension parameters and the per-connection
// compressor/decompressor. Pure (no I/O); zlib underneath.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sb::ws {

// Parameters agreed for one connection (RFC 7692 §7.1).
struct DeflateParams {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    uint8_t server_max_window_bits = 15;  // 8..15 (zlib cannot do raw 8, we use 9 then)
    uint8_t client_max_window_bits = 15;
};

// What the server is willing to do.
struct DeflateServerPolicy {
    bool enabled = true;
    // Keep each connection's compression contexts between messages, both directions: a better
    // ratio on streams of similar messages, for zlib state per connection (allocated: 256 KiB
    // to compress at 15 bits, ~40 KiB to inflate; measured: ~97 KB of RSS per subscribed
    // connection, and a 1.3 GB peak for 10,000 deflate subscribers of one fan-out). Off by default:
    // every response carries server_no_context_takeover and client_no_context_takeover (RFC 7692
    // §7.1.1.1 and §7.1.1.2 let a server add them unasked), so the loop's one shared compressor and
    // one shared decompressor do the work, an idle connection holds no zlib state, and a fan-out
    // message is compressed once per loop, not once per subscriber.
    bool context_takeover = false;
    uint8_t max_server_window_bits = 15;
};

// Server side: choose the first acceptable offer in a Sec-WebSocket-Extensions header value
// (possibly several comma-separated extensions and several offers of permessage-deflate).
// Returns nullopt if none is acceptable (then the extension is simply not used — an invalid
// offer is declined, not an error). On success *response is the header value to send back.
std::optional<DeflateParams> negotiateDeflate(std::string_view offers,
                                              const DeflateServerPolicy& policy,
                                              std::string* response);

// Client side: the offer we send, and validation of the server's response. A response that
// is malformed or asks for something we did not offer is a failure (the client must fail the
// connection, RFC 7692 §5.1).
std::string clientDeflateOffer();
std::optional<DeflateParams> parseDeflateResponse(std::string_view response);

enum class InflateStatus : uint8_t { kOk, kTooBig, kCorrupt };

// Per-connection decompressor for one direction. `takeover=false` resets the window after
// every message.
class Inflater {
public:
    Inflater(uint8_t window_bits, bool takeover);
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    // Inflate one whole message's compressed payload (the frames' payloads concatenated; the
    // 00 00 FF FF tail RFC 7692 §7.2.2 strips is appended internally). Appends the output to
    // *out; stops with kTooBig as soon as out would exceed max_size (zip-bomb cap, no OOM).
    InflateStatus inflateMessage(std::span<const uint8_t> in, size_t max_size, std::string* out);

private:
    struct State;
    std::unique_ptr<State> s_;
    bool takeover_;
};

// Compressor for one direction: a connection's own, or a loop's shared one without takeover.
class Deflater {
public:
    // mem_level: zlib's (1..9); the hash table is 2^(mem_level + 8) bytes, zeroed at every
    // reset (so after every message without takeover): 64 KiB at zlib's default 8, which
    // costs more than compressing a small message. Compression is the same format at any
    // level; a smaller level only finds fewer matches in long inputs.
    Deflater(uint8_t window_bits, bool takeover, uint8_t mem_level = 8);
    ~Deflater();
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;

    // Compress one whole message; appends the payload to send (tail stripped) to *out.
    void deflateMessage(std::span<const uint8_t> in, std::string* out);

private:
    struct State;
    std::unique_ptr<State> s_;
    bool takeover_;
    uint8_t mem_level_;
};

}  // namespace sb::ws
