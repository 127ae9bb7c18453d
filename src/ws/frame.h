// RFC 6455 §5.2 frame headers: the writer both roles use, the close-frame payload codec
// (§5.5.1) and the stateless header decoder the MessageReader is built on. Pure: no I/O,
// no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "ws/types.h"

namespace sb::ws {

inline constexpr size_t kMaxFrameHeader = 14;
inline constexpr size_t kMaxControlPayload = 125;  // RFC 6455 §5.5

constexpr bool isControl(Opcode op) {
    return (static_cast<uint8_t>(op) & 0x8) != 0;
}

// Header bytes for a frame carrying payload_len bytes (2..14).
constexpr size_t frameHeaderSize(uint64_t payload_len, bool masked) {
    return 2 + (payload_len < 126 ? 0 : payload_len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

// Writes a frame header into out (>= kMaxFrameHeader bytes); returns bytes written (2..14),
// always with the shortest length encoding. mask_key == nullptr → unmasked (server role);
// otherwise the key is written and the caller masks the payload (copyMasked).
size_t writeFrameHeader(uint8_t* out, Opcode op, bool fin, bool rsv1, uint64_t payload_len,
                        const uint8_t* mask_key);

// Close payload: big-endian code + reason truncated to fit 125 bytes total at a UTF-8
// boundary. code == close_code::kNoStatus → empty payload (returns 0). Returns the length.
size_t writeClosePayload(uint8_t* out /*>=125 bytes*/, uint16_t code, std::string_view reason);

// Validates a received close payload (§5.5.1, §7.4): empty → code 1005 and no reason; one byte
// → kBadClosePayload; a code not allowed on the wire → kBadCloseCode; reason not UTF-8 →
// kInvalidCloseReason. On success *reason points into payload.
WsError parseClosePayload(const uint8_t* payload, size_t len, uint16_t* code,
                          std::string_view* reason);

// ---- Reader side -------------------------------------------------------------------------

struct FrameHeader {
    uint64_t payload_len = 0;
    uint8_t mask_key[4] = {};
    Opcode opcode = Opcode::kContinuation;
    bool fin = false;
    bool rsv1 = false;
    bool masked = false;
    uint8_t size = 0;  // header bytes (2..14)
};

// The size of a header is known from its second byte alone (length form + mask bit).
constexpr size_t frameHeaderSizeFromByte1(uint8_t b1) {
    const uint8_t len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

// Decodes the complete header at p (frameHeaderSizeFromByte1(p[1]) readable bytes) and checks
// every rule that needs no connection state: reserved opcodes and bits, masking per role,
// control frame limits, minimal length encoding. Message sequencing and size limits are the
// reader's. On error *out is partially filled and must not be used.
inline WsError decodeFrameHeader(const uint8_t* p, Role role, bool compression, FrameHeader* out) {
    const uint8_t b0 = p[0];
    const uint8_t b1 = p[1];
    const uint8_t op = b0 & 0x0F;
    // §5.2: 0x3-0x7 and 0xB-0xF are reserved for further (non-)control frames.
    if ((op >= 0x3 && op <= 0x7) || op >= 0xB) {
        return WsError::kReservedOpcode;
    }
    if ((b0 & 0x30) != 0) {  // RSV2/RSV3: no extension we negotiate defines them
        return WsError::kReservedBits;
    }
    const bool control = (op & 0x8) != 0;
    const bool rsv1 = (b0 & 0x40) != 0;
    if (rsv1) {
        if (!compression) {
            return WsError::kReservedBits;
        }
        // RFC 7692 §6: the "Per-Message Compressed" bit is only valid on the first frame of
        // a data message; control frames are never compressed (§6.1).
        if (control || op == 0) {
            return WsError::kCompressedControl;
        }
    }
    const bool masked = (b1 & 0x80) != 0;
    // §5.1: a server closes on an unmasked frame; a client on a masked one.
    if (role == Role::kServer && !masked) {
        return WsError::kUnmaskedClientFrame;
    }
    if (role == Role::kClient && masked) {
        return WsError::kMaskedServerFrame;
    }
    const bool fin = (b0 & 0x80) != 0;
    uint64_t len = b1 & 0x7F;
    if (control) {
        // §5.5: control frames carry <= 125 bytes and must not be fragmented.
        if (!fin) {
            return WsError::kFragmentedControl;
        }
        if (len > kMaxControlPayload) {
            return WsError::kControlFrameTooLong;
        }
    }
    size_t pos = 2;
    if (len == 126) {
        len = (uint64_t{p[2]} << 8) | p[3];
        pos = 4;
        // §5.2: "the minimal number of bytes MUST be used to encode the length"
        if (len < 126) {
            return WsError::kNonMinimalLength;
        }
    } else if (len == 127) {
        len = 0;
        for (size_t i = 0; i < 8; ++i) {
            len = (len << 8) | p[2 + i];
        }
        pos = 10;
        if ((len >> 63) != 0) {  // §5.2: the most significant bit MUST be 0
            return WsError::kLengthHighBit;
        }
        if (len <= 0xFFFF) {
            return WsError::kNonMinimalLength;
        }
    }
    if (masked) {
        std::memcpy(out->mask_key, p + pos, 4);
        pos += 4;
    }
    out->payload_len = len;
    out->opcode = static_cast<Opcode>(op);
    out->fin = fin;
    out->rsv1 = rsv1;
    out->masked = masked;
    out->size = static_cast<uint8_t>(pos);
    return WsError::kNone;
}

}  // namespace sb::ws
