// Fuzz target for permessage-deflate (ws/deflate.h). Input: one control byte, then messages
// framed as [2-byte little-endian length][bytes] (a short tail is the last message). Each
// message goes to an Inflater with a 1 MiB cap — the output never exceeds the cap and a
// failure leaves the output untouched — and, as a round trip, through a Deflater into a second
// Inflater, which must give the message back. The whole input is also read as a
// Sec-WebSocket-Extensions offer: what negotiateDeflate accepts, parseDeflateResponse must
// accept with the same parameters.
//
// Control byte: bits 0-2 window bits 8..15; bit 3 context takeover; bit 4 a 4 KiB cap instead
// of 1 MiB (reaches the kTooBig paths with small inputs).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "ws/deflate.h"

namespace {

using sb::ws::InflateStatus;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "inflate_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

void checkNegotiation(std::string_view offers) {
    sb::ws::DeflateServerPolicy policy;
    std::string response;
    const auto p = sb::ws::negotiateDeflate(offers, policy, &response);
    if (!p) {
        return;
    }
    const auto back = sb::ws::parseDeflateResponse(response);
    check(back.has_value(), "our response parses");
    check(back->server_no_context_takeover == p->server_no_context_takeover &&
              back->client_no_context_takeover == p->client_no_context_takeover &&
              back->server_max_window_bits == p->server_max_window_bits &&
              back->client_max_window_bits == p->client_max_window_bits,
          "response carries the agreed parameters");
    check(p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15 &&
              p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15,
          "window bits in range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const uint8_t control = data[0];
    const auto bits = static_cast<uint8_t>(8 + (control & 7));
    const bool takeover = (control & 8) != 0;
    const size_t cap = (control & 16) ? 4096 : (1u << 20);
    checkNegotiation(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));

    sb::ws::Inflater inflater(bits, takeover);
    sb::ws::Deflater deflater(bits, takeover);
    sb::ws::Inflater peer(bits, takeover);
    size_t pos = 1;
    for (int messages = 0; pos < size && messages < 64; ++messages) {
        size_t len = size - pos;
        if (len >= 2) {
            const size_t framed = data[pos] | (static_cast<size_t>(data[pos + 1]) << 8);
            pos += 2;
            len = std::min(framed, size - pos);
        }
        const std::span<const uint8_t> msg(data + pos, len);
        pos += len;

        std::string out = "x";  // output is appended; on failure it must stay as it was
        const InflateStatus st = inflater.inflateMessage(msg, cap, &out);
        check(out.size() <= cap, "output within the cap");
        if (st != InflateStatus::kOk) {
            check(out == "x", "failure leaves the output untouched");
        } else {
            check(out.size() >= 1 && out[0] == 'x', "output appended");
        }

        std::string compressed;
        deflater.deflateMessage(msg, &compressed);
        check(!compressed.empty(), "a compressed message is never empty");
        std::string back;
        const InflateStatus rt = peer.inflateMessage(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(compressed.data()),
                                     compressed.size()),
            msg.size(), &back);
        check(rt == InflateStatus::kOk, "round trip inflates");
        check(back.size() == msg.size() &&
                  std::equal(back.begin(), back.end(), reinterpret_cast<const char*>(msg.data())),
              "round trip is lossless");
    }
    return 0;
}
