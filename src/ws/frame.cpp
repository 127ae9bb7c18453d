// Frame header writer and close payload codec (RFC 6455 §5.2, §5.5.1).
#include "ws/frame.h"

#include "ws/utf8.h"

namespace sb::ws {

size_t writeFrameHeader(uint8_t* out, Opcode op, bool fin, bool rsv1, uint64_t payload_len,
                        const uint8_t* mask_key) {
    out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                  (static_cast<uint8_t>(op) & 0x0F));
    const uint8_t mask_bit = mask_key != nullptr ? 0x80 : 0;
    size_t n;
    if (payload_len < 126) {
        out[1] = static_cast<uint8_t>(mask_bit | payload_len);
        n = 2;
    } else if (payload_len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = static_cast<uint8_t>(payload_len >> 8);
        out[3] = static_cast<uint8_t>(payload_len);
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (size_t i = 0; i < 8; ++i) {
            out[2 + i] = static_cast<uint8_t>(payload_len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask_key != nullptr) {
        std::memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

size_t writeClosePayload(uint8_t* out, uint16_t code, std::string_view reason) {
    if (code == close_code::kNoStatus) {
        return 0;  // §7.1.5: 1005 means "no code present"; it is never sent
    }
    out[0] = static_cast<uint8_t>(code >> 8);
    out[1] = static_cast<uint8_t>(code);
    size_t n = reason.size();
    if (n > kMaxControlPayload - 2) {
        n = kMaxControlPayload - 2;
        // Back up to the start of a code point so the truncated reason stays UTF-8 (the peer
        // fails the connection with 1007 otherwise). Continuation bytes are 10xxxxxx.
        while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) {
            --n;
        }
    }
    if (n != 0) {
        std::memcpy(out + 2, reason.data(), n);
    }
    return 2 + n;
}

WsError parseClosePayload(const uint8_t* payload, size_t len, uint16_t* code,
                          std::string_view* reason) {
    if (len == 0) {
        *code = close_code::kNoStatus;
        *reason = {};
        return WsError::kNone;
    }
    if (len == 1) {  // §5.5.1: a body must start with a 2-byte code
        return WsError::kBadClosePayload;
    }
    const auto c = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
    if (!isValidWireCloseCode(c)) {
        return WsError::kBadCloseCode;
    }
    if (!isValidUtf8(payload + 2, len - 2)) {
        return WsError::kInvalidCloseReason;
    }
    *code = c;
    *reason = std::string_view(reinterpret_cast<const char*>(payload + 2), len - 2);
    return WsError::kNone;
}

}  // namespace sb::ws
