// The NATS engine's decoders (engines/nats/codec.h): subject tokens (channel names, client and
// session ids, which clients choose), session records and node registrations (values read back
// from key-value buckets any node may have written). None may crash on any input, and tokens
// have exactly one spelling per name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engines/nats/codec.h"

namespace nats = sb::engines::nats;

namespace {

bool safeToken(std::string_view t) {
    if (t.empty()) {
        return false;
    }
    for (const char ch : t) {
        const bool kept = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '=';
        if (!kept) {
            return false;  // '.', '*', '>', whitespace, anything NATS reads as structure
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    // Any bytes are a name: encoding is safe and exact.
    const std::string token = nats::encodeToken(in);
    if (!safeToken(token)) {
        __builtin_trap();
    }
    auto back = nats::decodeToken(token);
    if (!back || *back != in) {
        __builtin_trap();
    }
    // Any bytes as a token: what decodes is the one spelling of its name.
    if (auto name = nats::decodeToken(in)) {
        if (nats::encodeToken(*name) != in) {
            __builtin_trap();
        }
    }
    const std::string hex = nats::hexName(in);
    if (hex.size() != 2 * in.size() ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        __builtin_trap();
    }

    // Stored values: a success encodes to something that decodes to the same value.
    if (auto s = nats::decodeSession(in)) {
        const std::string again = nats::encodeSession(s->rec, s->expires_ms);
        auto s2 = nats::decodeSession(again);
        if (!s2 || s2->rec.owner != s->rec.owner || s2->rec.holder != s->rec.holder ||
            s2->rec.ttl_ms != s->rec.ttl_ms || s2->expires_ms != s->expires_ms ||
            s2->rec.channels != s->rec.channels ||
            nats::encodeSession(s2->rec, s2->expires_ms) != again) {
            __builtin_trap();
        }
        if (again.size() > in.size()) {
            __builtin_trap();  // every field came from the input: nothing invented
        }
    }
    if (auto n = nats::decodeNode(in)) {
        const std::string again = nats::encodeNode(*n);
        auto n2 = nats::decodeNode(again);
        if (!n2 || n2->name != n->name || n2->connections != n->connections ||
            n2->seen_ms != n->seen_ms || again.size() > in.size()) {
            __builtin_trap();
        }
    }
    return 0;
}
