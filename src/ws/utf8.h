// UTF-8 validation for text messages and close reasons (RFC 6455 §8.1, RFC 3629). Incremental
// so that a text message split over frames and reads is checked as its bytes arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb::ws {

// Incremental, fail-fast UTF-8 validator (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
// Fails on the first byte that makes the sequence invalid, even mid-message / mid-code point:
// a prefix is accepted only while some continuation could still make it valid.
// Not thread-safe; one per message being received. 4 bytes, no allocation.
class Utf8Validator {
public:
    // Feeds the next `len` bytes. Returns false as soon as the bytes seen so far cannot be the
    // start of valid UTF-8; the failure is sticky until reset().
    bool feed(const uint8_t* data, size_t len);
    // True if the bytes fed so far end on a code point boundary (and are valid).
    bool complete() const { return state_ == 0; }
    void reset() { state_ = 0; }

private:
    uint32_t state_ = 0;  // DFA state (a bit offset, see utf8.cpp); 0 = between code points
};
static_assert(sizeof(Utf8Validator) == 4, "per-connection memory: keep the validator 4 bytes");

// Whole-buffer check: valid UTF-8 that ends on a code point boundary.
bool isValidUtf8(const uint8_t* data, size_t len);
inline bool isValidUtf8(std::string_view s) {
    return isValidUtf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace sb::ws
