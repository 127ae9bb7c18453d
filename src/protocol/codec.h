// The native protocol `switchboard.v1.json` (docs/protocol.md, the contract): parsing of the
// client's requests and encoding of every server message. Pure: no I/O; the only state is one
// JSON parser per thread, reused from message to message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb::protocol {

inline constexpr std::string_view kSubprotocol = "switchboard.v1.json";

// Limits of docs/protocol.md, and the codec's own hard cap on a frame.
inline constexpr size_t kMaxDepth = 32;        // deeper nesting is bad_json
inline constexpr size_t kMaxIdBytes = 64;      // a string id's value, a number id's text
inline constexpr size_t kMaxInfoBytes = 1024;  // connect "info", minified
// Larger frames are bad_json without being parsed: the parser would need ~15 bytes of memory
// per input byte. Matches the WebSocket layer's own 16 MiB ceiling; the server's configured
// max_message_size (64 KiB by default for this protocol) is what normally applies first.
inline constexpr size_t kMaxFrameBytes = 16u << 20;

// Why a frame is not a valid request. The wire codes and their meaning are in the server's one
// error table (src/messaging/errors.h): bad_json, bad_request, unknown_type, internal.
enum class ParseErrorKind : uint8_t { kBadJson, kBadRequest, kUnknownType, kInternal };

// Client → server request types.
enum class MsgType : uint8_t {
    kConnect,
    kSubscribe,
    kUnsubscribe,
    kPublish,
    kPresence,
    kHistory,
    kAck,
    kPing,
    kRefresh,  // a new connection token before the current one expires
};

// The wire name of a request type ("connect", ...).
std::string_view msgTypeName(MsgType type);
// The request type with that wire name, if any.
std::optional<MsgType> msgTypeFromName(std::string_view name);

// A stream position: one life of a channel (`epoch`) and an offset in it.
struct Since {
    std::string epoch;
    uint64_t offset = 0;
};

// One parsed client request. Only the fields of its type are filled (fields that belong to
// other types are ignored, like unknown ones). An absent optional string is empty; an explicit
// JSON null counts as absent for every optional field.
//
// Lifetime: the string_views point into the caller's frame buffer, except for string values
// that were written with JSON escapes (e.g. "Jos\u00e9"): those are decoded into
// `unescaped_storage`, shared by the Request's copies. So a view is valid while the frame
// buffer lives and the Request (or a copy of it) lives. `data` and `info` are owned.
struct Request {
    MsgType type = MsgType::kPing;
    std::string_view id_json;          // raw JSON of "id" (number or string), empty if absent
    std::string_view channel;          // not validated here (the server checks the name)
    std::optional<Since> since;        // subscribe, history
    std::string data;                  // publish: "data" as minified JSON text (may be "null")
    std::string_view idempotency_key;  // publish
    std::string_view session;          // connect
    std::string_view user;             // connect
    std::string_view name;             // connect
    std::string_view token;            // connect, refresh: a JWT; subscribe: a channel token
    std::string info;                  // connect: "info" object as minified JSON, or empty
    uint64_t offset = 0;               // ack
    uint32_t limit = 0;                // history (0 = default); larger values clamp to 2^32-1
    // Backing for string fields that contained escapes; null when none did (the common case).
    std::shared_ptr<const char[]> unescaped_storage;
};

// Why a frame is not a valid request. `kind` picks the wire code; `message` names the
// field; `id_json` is the request's id (raw JSON, pointing into the frame) whenever the frame
// was a JSON object with a valid id, so the error reply can carry it. Empty otherwise.
struct ParseError {
    ParseErrorKind kind;
    std::string message;
    std::string_view id_json;
};

// Parses one text frame (UTF-8 is checked again here, so any bytes are safe to pass).
//   - not JSON, nesting deeper than kMaxDepth, not an object, or larger than kMaxFrameBytes
//     → bad_json;
//   - "id" neither a number nor a string of ≤ kMaxIdBytes → bad_request (id_json empty);
//   - "type" missing or not a string → bad_request; not a request type → unknown_type;
//   - a required field missing or any known field of the wrong type → bad_request.
// Required: channel (all but connect and ping), data (publish), offset (ack). Types: strings
// for channel/idempotency_key/session/user/name; since = {"epoch": string, "offset":
// unsigned}; offset and limit unsigned integers; info an object of ≤ kMaxInfoBytes; data any
// JSON value. Integers outside the 64-bit range are refused as bad_json (the parser's limit).
// Duplicate keys: the first one counts.
// base::Expected is std::expected except under clang 14 (see base/result.h).
// Never throws (other than std::bad_alloc). Any thread; each thread reuses its own parser,
// which keeps its capacity for frames up to 64 KiB so that steady traffic does not allocate.
base::Expected<Request, ParseError> parseRequest(std::string_view frame);

// A client's `info` given outside a request (the `info` query parameter of /sse and /poll):
// exactly one JSON object, minified, at most kMaxInfoBytes — the rules of connect's "info".
// Empty input: empty (no info). Error: a message naming the rule broken.
base::Expected<std::string, std::string> parseInfo(std::string_view json);

// A publication's `data` given outside a request (a STOMP body sent as JSON): exactly one JSON
// value of any type, nested at most kMaxDepth, minified. Error: a message saying why not.
base::Expected<std::string, std::string> parseData(std::string_view json);
// The decoded text of `json` when it is a single JSON string (a publication's data as
// parseRequest and parseData write it); nullopt for any other value or invalid JSON.
std::optional<std::string> jsonStringValue(std::string_view json);

// ---- Encoders ------------------------------------------------------------------------------
// Each appends one complete JSON object (no trailing newline) to *out. String arguments are
// quoted and escaped; `*_json` arguments are raw JSON text embedded as is and must be valid
// JSON (as parseRequest produces); an empty `id_json` omits "id", an empty `info_json` omits
// "info", an empty `data_json` is written as null. Strings must be valid UTF-8.

// A channel restored by a resume: its top position and whether every publication the session
// missed follows.
struct RestoredChannel {
    std::string_view channel;
    std::string_view epoch;
    uint64_t offset = 0;
    bool recovered = false;
};

// {"type":"connected","id":…,"client":…,"session":…,"resumed":…,"ping_interval":…
//  [,"channels":[{"channel":…,"epoch":…,"offset":…,"recovered":…},…]]}
// "channels" is written when `resumed` (possibly empty).
// [,"user":…] when authenticated, [,"expires_in":seconds] when the token expires.
void encodeConnected(std::string* out, std::string_view id_json, std::string_view client,
                     std::string_view session, bool resumed, uint32_t ping_interval_s,
                     std::span<const RestoredChannel> channels = {}, std::string_view user = {},
                     std::optional<uint64_t> expires_in = std::nullopt);
// {"type":"refreshed","id":…[,"expires_in":seconds]}
void encodeRefreshed(std::string* out, std::string_view id_json,
                     std::optional<uint64_t> expires_in);
// {"type":"subscribed","id":…,"channel":…,"epoch":…,"offset":…[,"recovered":…]}
void encodeSubscribed(std::string* out, std::string_view id_json, std::string_view channel,
                      std::string_view epoch, uint64_t offset, std::optional<bool> recovered);
// {"type":"unsubscribed","id":…,"channel":…}
void encodeUnsubscribed(std::string* out, std::string_view id_json, std::string_view channel);
// {"type":"published","id":…,"channel":…,"epoch":…,"offset":…[,"duplicate":true]}
void encodePublished(std::string* out, std::string_view id_json, std::string_view channel,
                     std::string_view epoch, uint64_t offset, bool duplicate);

struct PresenceEntry {
    std::string_view client, user, info_json;
};
// {"type":"presence","id":…,"channel":…,"count":N,
//  "clients":[{"client":…,"user":…[,"info":…]},…]}
void encodePresence(std::string* out, std::string_view id_json, std::string_view channel,
                    std::span<const PresenceEntry> clients);

struct HistoryItem {
    uint64_t offset;
    std::string_view data_json;
};
// {"type":"history","id":…,"channel":…,"epoch":…,"offset":top[,"recovered":…],
//  "publications":[{"offset":…,"data":…},…]}
void encodeHistory(std::string* out, std::string_view id_json, std::string_view channel,
                   std::string_view epoch, uint64_t top_offset, std::optional<bool> recovered,
                   std::span<const HistoryItem> pubs);
// {"type":"acked","id":…}
void encodeAcked(std::string* out, std::string_view id_json);
// {"type":"pong","id":…}
void encodePong(std::string* out, std::string_view id_json);
// {"type":"message","channel":…,"epoch":…,"offset":…,"data":…[,"gap":true]} — the fan-out
// event: encode it once per publication and share the bytes among subscribers.
void encodeMessage(std::string* out, std::string_view channel, std::string_view epoch,
                   uint64_t offset, std::string_view data_json, bool gap);
// {"type":"join"|"leave","channel":…,"client":…,"user":…[,"info":…]}
void encodeJoinLeave(std::string* out, bool join, std::string_view channel, std::string_view client,
                     std::string_view user, std::string_view info_json);
// {"type":"error","id":…,"code":…,"message":…}
void encodeError(std::string* out, std::string_view id_json, std::string_view code,
                 std::string_view message);
// {"type":"disconnect","code":…,"reason":…,"reconnect":…}
void encodeDisconnect(std::string* out, uint16_t code, std::string_view reason, bool reconnect);

// Appends `s` as a JSON string: quoted; '"' and '\' backslash-escaped, control characters
// (< 0x20) as \u00XX, every other byte as is. `s` must be valid UTF-8 (the output then is).
void appendJsonString(std::string* out, std::string_view s);

}  // namespace sb::protocol
