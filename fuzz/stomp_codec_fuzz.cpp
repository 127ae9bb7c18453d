// The STOMP frame decoder (protocol/stomp_codec.h) over any bytes: it never crashes or reads
// out of bounds, never consumes more than it was given, decodes the same frames and error
// whether the input comes whole or in pieces, and every frame it returns survives the encoder:
// encoded again and decoded, it is the same frame. The first byte picks the version, the
// limits and the split size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/stomp_codec.h"

namespace stomp = sb::protocol::stomp;

namespace {

struct Out {
    std::vector<stomp::Frame> frames;
    stomp::DecodeError error = stomp::DecodeError::kNone;
};

Out run(std::string_view in, size_t split, stomp::Limits limits, stomp::Version v) {
    stomp::Decoder d(limits, v);
    Out out;
    size_t pos = 0;
    while (pos < in.size()) {
        std::string_view chunk = in.substr(pos, split == 0 ? in.size() : split);
        pos += chunk.size();
        while (true) {
            const stomp::DecodeResult r = d.feed(chunk);
            if (r.consumed > chunk.size()) {
                __builtin_trap();
            }
            chunk.remove_prefix(r.consumed);
            if (r.status == stomp::DecodeStatus::kFrame) {
                out.frames.push_back(d.frame());
                continue;
            }
            if (r.status == stomp::DecodeStatus::kError) {
                out.error = d.error();
                return out;
            }
            if (!chunk.empty()) {
                __builtin_trap();  // need-more with input left
            }
            break;
        }
    }
    return out;
}

bool sameFrame(const stomp::Frame& a, const stomp::Frame& b) {
    return a.command == b.command && a.headers == b.headers && a.body == b.body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const uint8_t knob = data[0];
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto version = static_cast<stomp::Version>(knob % 3);
    stomp::Limits limits;
    if (knob & 0x04) {  // small limits, so the fuzzer reaches them
        limits.max_headers = 4;
        limits.max_header_bytes = 24;
        limits.max_body_bytes = 32;
    }
    const size_t split = (knob >> 3) % 8;  // 0: whole

    const Out whole = run(in, 0, limits, version);
    const Out pieces = run(in, split == 0 ? 1 : split, limits, version);
    if (whole.error != pieces.error || whole.frames.size() != pieces.frames.size()) {
        __builtin_trap();
    }
    for (size_t i = 0; i < whole.frames.size(); ++i) {
        if (!sameFrame(whole.frames[i], pieces.frames[i])) {
            __builtin_trap();
        }
    }

    // Round trip: encode each frame again (content-length is the encoder's), decode it.
    stomp::Limits roomy = limits;
    roomy.max_header_bytes = 2 * limits.max_header_bytes + 32;
    roomy.max_headers = limits.max_headers + 1;
    for (const stomp::Frame& f : whole.frames) {
        std::vector<stomp::HeaderView> hs;
        for (const auto& [n, v] : f.headers) {
            if (n != "content-length") {
                hs.emplace_back(n, v);
            }
        }
        std::string wire;
        stomp::encodeFrame(&wire, f.command, hs, f.body, version);
        const Out again = run(wire, 0, roomy, version);
        if (again.error != stomp::DecodeError::kNone || again.frames.size() != 1) {
            __builtin_trap();
        }
        const stomp::Frame& g = again.frames[0];
        if (g.command != f.command || g.body != f.body) {
            __builtin_trap();
        }
        size_t j = 0;
        for (const auto& [n, v] : g.headers) {
            if (n == "content-length") {
                continue;
            }
            if (j >= hs.size() || hs[j].first != n || hs[j].second != v) {
                __builtin_trap();
            }
            ++j;
        }
        if (j != hs.size()) {
            __builtin_trap();
        }
    }
    return 0;
}
