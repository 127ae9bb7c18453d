// STOMP 1.0/1.1/1.2 frames (https://stomp.github.io/stomp-specification-1.2.html): an
// incremental decoder that takes bytes in any split and an encoder for server frames. Pure: no
// I/O; the adapter (server/stomp_ws) decides what a frame means.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb::protocol::stomp {

// The WebSocket subprotocols of STOMP, newest first (the order the server prefers them in).
inline constexpr std::string_view kSubprotocol12 = "v12.stomp";
inline constexpr std::string_view kSubprotocol11 = "v11.stomp";
inline constexpr std::string_view kSubprotocol10 = "v10.stomp";

// Versions differ, for the codec, only in header escaping: 1.0 has none, 1.1 escapes LF, ':'
// and '\' (\n, \c, \\), 1.2 also CR (\r). CONNECT, STOMP and CONNECTED frames are never
// escaped, in any version (they are read before the version is known).
enum class Version : uint8_t { k10, k11, k12 };
std::string_view versionName(Version v);  // "1.0", "1.1", "1.2"

enum class Command : uint8_t {
    // client → server
    kConnect,
    kStomp,
    kSend,
    kSubscribe,
    kUnsubscribe,
    kAck,
    kNack,
    kBegin,
    kCommit,
    kAbort,
    kDisconnect,
    // server → client
    kConnected,
    kMessage,
    kReceipt,
    kError,
};
std::string_view commandName(Command c);
// Exact, case-sensitive (the spec's commands are upper case).
std::optional<Command> commandFromName(std::string_view name);
bool isClientCommand(Command c);

// What the decoder accepts. A frame past a limit is an error, not truncated: the connection
// cannot resynchronise on a stream whose frame boundaries it stopped reading.
struct Limits {
    size_t max_headers = 32;
    // One header line (name, ':', value, escapes as sent). A JWT in a header must fit: tokens
    // are at most 8 KiB (docs/protocol.md).
    size_t max_header_bytes = 10 * 1024;
    size_t max_body_bytes = 64 * 1024;
};

// Why the input is not a STOMP frame stream. Sticky: the decoder stays in error.
enum class DecodeError : uint8_t {
    kNone = 0,
    kUnknownCommand,      // the first line is no STOMP command (or longer than any)
    kHeaderWithoutColon,  // a header line with no ':'
    kEmptyHeaderName,     // a header line starting with ':'
    kBadEscape,           // '\' followed by anything but the version's escapes, or at the end
    kBareCr,              // CR not followed by LF (CR is only part of an EOL)
    kNulInHead,           // NUL in the command or a header
    kTooManyHeaders,      // more than Limits::max_headers
    kHeaderTooLong,       // a header line longer than Limits::max_header_bytes
    kBadContentLength,    // content-length not a decimal number
    kBodyTooLarge,        // body (content-length or read so far) past Limits::max_body_bytes
    kMissingNul,          // content-length bytes not followed by NUL
};
std::string_view describe(DecodeError e);

struct Frame {
    Command command = Command::kConnect;
    // In the order received, unescaped; repeated names kept (the first one counts, per spec).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // The first header with this name, if any.
    std::optional<std::string_view> header(std::string_view name) const;
};

enum class DecodeStatus : uint8_t {
    kFrame,     // a frame is complete: frame() holds it until the next feed()
    kNeedMore,  // all input consumed, no frame complete yet
    kError,     // error() says why; nothing more will decode
};

struct DecodeResult {
    DecodeStatus status;
    size_t consumed;  // bytes of the input used; feed the rest again after a kFrame
};

// Reads frames from a byte stream cut anywhere: a frame may span several feeds and a feed may
// hold several frames (feed the remainder again after each kFrame). End-of-lines between
// frames (heart-beats) are skipped. Memory is bounded by the limits: at most one header line
// and one body are buffered beyond the headers already read.
class Decoder {
public:
    explicit Decoder(Limits limits = {}, Version version = Version::k12);

    // The escaping of frames read from now on (after CONNECTED has agreed a version).
    void setVersion(Version v) { version_ = v; }
    Version version() const { return version_; }

    DecodeResult feed(std::string_view in);
    const Frame& frame() const { return frame_; }
    Frame& frame() { return frame_; }
    DecodeError error() const { return error_; }
    // End-of-lines skipped between frames since the decoder was made (heart-beats).
    uint64_t heartbeats() const { return heartbeats_; }

private:
    enum class State : uint8_t { kIdle, kIdleCr, kCommand, kHeader, kBody, kBodyNul, kError };
    DecodeResult fail(DecodeError e, size_t consumed);
    // A complete line (EOL removed) of the head; false on error.
    bool headLine(std::string_view line);
    bool unescape(std::string_view in, std::string* out);
    bool escaped() const;

    Limits limits_;
    Version version_;
    State state_ = State::kIdle;
    DecodeError error_ = DecodeError::kNone;
    std::string line_;  // the head line read so far
    bool body_counted_ = false;
    size_t body_left_ = 0;  // with content-length: body bytes still to read
    uint64_t heartbeats_ = 0;
    Frame frame_;
};

// Appends one frame: the command, the headers (escaped for `version`, except CONNECTED), a
// content-length header when the body is not empty, the blank line, the body, the NUL. A
// header value must not hold NUL; one that cannot be escaped (1.0 and CONNECTED: CR or LF) has
// those bytes replaced by spaces so the frame stays well formed.
using HeaderView = std::pair<std::string_view, std::string_view>;
void encodeFrame(std::string* out, Command command, std::span<const HeaderView> headers,
                 std::string_view body, Version version);
// Appends `s` escaped for a header of a frame of `version`.
void appendEscaped(std::string* out, std::string_view s, Version version);
// Appends one header line, "name:value\n", escaped for a frame of `version` (the frames the
// spec never escapes, CONNECT and CONNECTED, are written with Version::k10).
void appendHeader(std::string* out, std::string_view name, std::string_view value, Version version);

}  // namespace sb::protocol::stomp
