// RFC 6455 vocabulary shared by the frame parser, writer and the connection layer: opcodes,
// close codes and the protocol errors with the close code each one earns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb::ws {

enum class Role : uint8_t { kServer, kClient };

enum class Opcode : uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kUnsupportedData = 1003;
inline constexpr uint16_t kNoStatus = 1005;  // never on the wire: close frame had no payload
inline constexpr uint16_t kAbnormal = 1006;  // never on the wire: connection dropped
inline constexpr uint16_t kInvalidPayload = 1007;
inline constexpr uint16_t kPolicyViolation = 1008;
inline constexpr uint16_t kMessageTooBig = 1009;
inline constexpr uint16_t kMandatoryExtension = 1010;
inline constexpr uint16_t kInternalError = 1011;
}  // namespace close_code

// RFC 6455 §7.4: codes a peer may send in a close frame. 1000–1003, 1007–1011 (1012–1014 are
// IANA-registered later and accepted by browsers), 3000–4999 for libraries and apps.
constexpr bool isValidWireCloseCode(uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

// Every way a peer can break the protocol. Each maps to exactly one close code
// (closeCodeFor) and a short reason used in logs and in the close frame.
enum class WsError : uint8_t {
    kNone = 0,
    kReservedBits,            // RSV1-3 set without a negotiated extension (1002)
    kReservedOpcode,          // opcodes 3-7, B-F (1002)
    kUnmaskedClientFrame,     // server role: client frames must be masked (1002)
    kMaskedServerFrame,       // client role: server frames must not be masked (1002)
    kControlFrameTooLong,     // control payload > 125 (1002)
    kFragmentedControl,       // control frame with FIN=0 (1002)
    kUnexpectedContinuation,  // continuation with no message in progress (1002)
    kExpectedContinuation,    // new data frame while a fragmented message is open (1002)
    kNonMinimalLength,        // length not in its shortest form (1002)
    kLengthHighBit,           // 64-bit length with the top bit set (1002)
    kBadClosePayload,         // close payload of 1 byte (1002)
    kBadCloseCode,            // close code not allowed on the wire (1002)
    kInvalidCloseReason,      // close reason is not UTF-8 (1007)
    kInvalidUtf8,             // text message is not UTF-8 (1007)
    kMessageTooBig,           // message (or inflated message) over the limit (1009)
    kCompressedControl,       // RSV1 on a control frame or continuation (1002)
    kInflateFailed,           // corrupt deflate stream (1007)
};

uint16_t closeCodeFor(WsError e);
std::string_view describe(WsError e);

}  // namespace sb::ws
