// The one table that maps each protocol error to the close code it earns (RFC 6455 §7.4.1)
// and to the short reason used in logs and in our close frame.
#include "ws/types.h"

namespace sb::ws {

uint16_t closeCodeFor(WsError e) {
    switch (e) {
        case WsError::kNone:
            return close_code::kNormal;
        // §7.4.1: 1007 = data inconsistent with the message type (e.g. non-UTF-8 in text).
        // A corrupt deflate stream is the same kind of failure one layer down.
        case WsError::kInvalidCloseReason:
        case WsError::kInvalidUtf8:
        case WsError::kInflateFailed:
            return close_code::kInvalidPayload;
        case WsError::kMessageTooBig:
            return close_code::kMessageTooBig;
        case WsError::kReservedBits:
        case WsError::kReservedOpcode:
        case WsError::kUnmaskedClientFrame:
        case WsError::kMaskedServerFrame:
        case WsError::kControlFrameTooLong:
        case WsError::kFragmentedControl:
        case WsError::kUnexpectedContinuation:
        case WsError::kExpectedContinuation:
        case WsError::kNonMinimalLength:
        case WsError::kLengthHighBit:
        case WsError::kBadClosePayload:
        case WsError::kBadCloseCode:
        case WsError::kCompressedControl:
            return close_code::kProtocolError;
    }
    return close_code::kProtocolError;  // an out-of-range value is still a protocol failure
}

std::string_view describe(WsError e) {
    switch (e) {
        case WsError::kNone:
            return "no error";
        case WsError::kReservedBits:
            return "reserved bits set";
        case WsError::kReservedOpcode:
            return "reserved opcode";
        case WsError::kUnmaskedClientFrame:
            return "client frame not masked";
        case WsError::kMaskedServerFrame:
            return "server frame masked";
        case WsError::kControlFrameTooLong:
            return "control frame too long";
        case WsError::kFragmentedControl:
            return "fragmented control frame";
        case WsError::kUnexpectedContinuation:
            return "continuation without message";
        case WsError::kExpectedContinuation:
            return "expected continuation";
        case WsError::kNonMinimalLength:
            return "non-minimal length";
        case WsError::kLengthHighBit:
            return "length high bit set";
        case WsError::kBadClosePayload:
            return "bad close payload";
        case WsError::kBadCloseCode:
            return "invalid close code";
        case WsError::kInvalidCloseReason:
            return "close reason not UTF-8";
        case WsError::kInvalidUtf8:
            return "invalid UTF-8";
        case WsError::kMessageTooBig:
            return "message too big";
        case WsError::kCompressedControl:
            return "RSV1 on control or continuation";
        case WsError::kInflateFailed:
            return "inflate failed";
    }
    return "unknown error";
}

}  // namespace sb::ws
