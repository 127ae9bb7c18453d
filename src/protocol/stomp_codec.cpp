// The STOMP frame decoder is a byte-driven state machine that copies only what a frame keeps:
// header lines are gathered until their LF (so a header split across feeds costs one copy),
// bodies are appended as they come, and everything is bounded by Limits before it is stored.
#include "protocol/stomp_codec.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace sb::protocol::stomp {

namespace {

struct CommandEntry {
    Command command;
    std::string_view name;
};

constexpr std::array<CommandEntry, 15> kCommands{{
    {Command::kConnect, "CONNECT"},
    {Command::kStomp, "STOMP"},
    {Command::kSend, "SEND"},
    {Command::kSubscribe, "SUBSCRIBE"},
    {Command::kUnsubscribe, "UNSUBSCRIBE"},
    {Command::kAck, "ACK"},
    {Command::kNack, "NACK"},
    {Command::kBegin, "BEGIN"},
    {Command::kCommit, "COMMIT"},
    {Command::kAbort, "ABORT"},
    {Command::kDisconnect, "DISCONNECT"},
    {Command::kConnected, "CONNECTED"},
    {Command::kMessage, "MESSAGE"},
    {Command::kReceipt, "RECEIPT"},
    {Command::kError, "ERROR"},
}};

// The longest command ("UNSUBSCRIBE", 11) and its CR fit; a longer first line is no command,
// and stopping there keeps a stream of garbage from being buffered.
constexpr size_t kMaxCommandLine = 16;

// CONNECT, STOMP and CONNECTED are read and written before a version is agreed: never escaped.
bool neverEscaped(Command c) {
    return c == Command::kConnect || c == Command::kStomp || c == Command::kConnected;
}

// A byte a header cannot carry unescaped becomes a space, so the frame stays well formed.
void appendRaw(std::string* out, std::string_view s) {
    for (const char ch : s) {
        out->push_back(ch == '\r' || ch == '\n' || ch == '\0' ? ' ' : ch);
    }
}

}  // namespace

std::string_view versionName(Version v) {
    switch (v) {
        case Version::k10:
            return "1.0";
        case Version::k11:
            return "1.1";
        case Version::k12:
            break;
    }
    return "1.2";
}

std::string_view commandName(Command c) {
    return kCommands[static_cast<size_t>(c)].name;
}

std::optional<Command> commandFromName(std::string_view name) {
    for (const CommandEntry& e : kCommands) {
        if (e.name == name) {
            return e.command;
        }
    }
    return std::nullopt;
}

bool isClientCommand(Command c) {
    return static_cast<uint8_t>(c) <= static_cast<uint8_t>(Command::kDisconnect);
}

std::string_view describe(DecodeError e) {
    switch (e) {
        case DecodeError::kNone:
            return "no error";
        case DecodeError::kUnknownCommand:
            return "unknown command";
        case DecodeError::kHeaderWithoutColon:
            return "header line without ':'";
        case DecodeError::kEmptyHeaderName:
            return "header with an empty name";
        case DecodeError::kBadEscape:
            return "undefined escape sequence in a header";
        case DecodeError::kBareCr:
            return "CR not followed by LF";
        case DecodeError::kNulInHead:
            return "NUL in the command or a header";
        case DecodeError::kTooManyHeaders:
            return "too many headers";
        case DecodeError::kHeaderTooLong:
            return "header line too long";
        case DecodeError::kBadContentLength:
            return "content-length is not a decimal number";
        case DecodeError::kBodyTooLarge:
            return "body too large";
        case DecodeError::kMissingNul:
            return "the body is not followed by NUL where content-length says it ends";
    }
    return "unknown error";
}

std::optional<std::string_view> Frame::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (n == name) {
            return std::string_view(v);
        }
    }
    return std::nullopt;
}

Decoder::Decoder(Limits limits, Version version) : limits_(limits), version_(version) {}

DecodeResult Decoder::fail(DecodeError e, size_t consumed) {
    error_ = e;
    state_ = State::kError;
    line_.clear();
    line_.shrink_to_fit();
    return {DecodeStatus::kError, consumed};
}

bool Decoder::escaped() const {
    return version_ != Version::k10 && !neverEscaped(frame_.command);
}

bool Decoder::unescape(std::string_view in, std::string* out) {
    out->clear();
    out->reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '\\') {
            out->push_back(in[i]);
            continue;
        }
        if (++i == in.size()) {
            return false;
        }
        switch (in[i]) {
            case 'n':
                out->push_back('\n');
                break;
            case 'c':
                out->push_back(':');
                break;
            case '\\':
                out->push_back('\\');
                break;
            case 'r':
                if (version_ != Version::k12) {
                    return false;  // 1.1 defines no \r
                }
                out->push_back('\r');
                break;
            default:
                return false;
        }
    }
    return true;
}

bool Decoder::headLine(std::string_view line) {
    if (frame_.headers.size() >= limits_.max_headers) {
        error_ = DecodeError::kTooManyHeaders;
        return false;
    }
    // The first ':' separates: a value may hold more (1.0 values are raw, and clients commonly
    // send them unescaped in later versions too).
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        error_ = DecodeError::kHeaderWithoutColon;
        return false;
    }
    if (colon == 0) {
        error_ = DecodeError::kEmptyHeaderName;
        return false;
    }
    auto& h = frame_.headers.emplace_back();
    if (!escaped()) {
        h.first.assign(line.substr(0, colon));
        h.second.assign(line.substr(colon + 1));
        return true;
    }
    if (!unescape(line.substr(0, colon), &h.first) ||
        !unescape(line.substr(colon + 1), &h.second)) {
        error_ = DecodeError::kBadEscape;
        return false;
    }
    return true;
}

DecodeResult Decoder::feed(std::string_view in) {
    size_t i = 0;
    while (i < in.size()) {
        switch (state_) {
            case State::kError:
                return {DecodeStatus::kError, i};
            case State::kIdle: {
                const char ch = in[i];
                if (ch == '\n') {
                    ++heartbeats_;
                    ++i;
                    continue;
                }
                if (ch == '\r') {
                    state_ = State::kIdleCr;
                    ++i;
                    continue;
                }
                frame_.headers.clear();
                frame_.body.clear();
                line_.clear();
                state_ = State::kCommand;
                continue;
            }
            case State::kIdleCr:
                if (in[i] != '\n') {
                    return fail(DecodeError::kBareCr, i);
                }
                ++heartbeats_;
                ++i;
                state_ = State::kIdle;
                continue;
            case State::kCommand:
            case State::kHeader: {
                const bool command = state_ == State::kCommand;
                const auto* nl =
                    static_cast<const char*>(std::memchr(in.data() + i, '\n', in.size() - i));
                const size_t end = nl != nullptr ? static_cast<size_t>(nl - in.data()) : in.size();
                const size_t cap = command ? kMaxCommandLine : limits_.max_header_bytes + 1;
                if (line_.size() + (end - i) > cap) {
                    return fail(
                        command ? DecodeError::kUnknownCommand : DecodeError::kHeaderTooLong, i);
                }
                line_.append(in.data() + i, end - i);
                i = end;
                if (nl == nullptr) {
                    return {DecodeStatus::kNeedMore, i};
                }
                ++i;  // the LF
                std::string_view line = line_;
                if (!line.empty() && line.back() == '\r') {
                    line.remove_suffix(1);
                }
                if (!command && line.size() > limits_.max_header_bytes) {
                    return fail(DecodeError::kHeaderTooLong, i);  // the cap allowed for a CR
                }
                if (line.find('\r') != std::string_view::npos) {
                    return fail(DecodeError::kBareCr, i);
                }
                if (line.find('\0') != std::string_view::npos) {
                    return fail(DecodeError::kNulInHead, i);
                }
                if (command) {
                    auto c = commandFromName(line);
                    if (!c) {
                        return fail(DecodeError::kUnknownCommand, i);
                    }
                    frame_.command = *c;
                    state_ = State::kHeader;
                    line_.clear();
                    continue;
                }
                if (!line.empty()) {
                    if (!headLine(line)) {
                        return fail(error_, i);
                    }
                    line_.clear();
                    continue;
                }
                // The blank line: the body follows, counted if content-length says so.
                line_.clear();
                body_counted_ = false;
                if (auto cl = frame_.header("content-length")) {
                    size_t n = 0;
                    const char* first = cl->data();
                    const char* last = first + cl->size();
                    auto [p, ec] = std::from_chars(first, last, n);
                    if (cl->empty() || p != last ||
                        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
                        return fail(DecodeError::kBadContentLength, i);
                    }
                    if (ec == std::errc::result_out_of_range || n > limits_.max_body_bytes) {
                        return fail(DecodeError::kBodyTooLarge, i);
                    }
                    body_counted_ = true;
                    body_left_ = n;
                    frame_.body.reserve(n);
                }
                state_ = body_counted_ && body_left_ == 0 ? State::kBodyNul : State::kBody;
                continue;
            }
            case State::kBody: {
                if (body_counted_) {
                    const size_t take = std::min(body_left_, in.size() - i);
                    frame_.body.append(in.data() + i, take);
                    i += take;
                    body_left_ -= take;
                    if (body_left_ == 0) {
                        state_ = State::kBodyNul;
                    }
                    continue;
                }
                const auto* nul =
                    static_cast<const char*>(std::memchr(in.data() + i, '\0', in.size() - i));
                const size_t end =
                    nul != nullptr ? static_cast<size_t>(nul - in.data()) : in.size();
                if (frame_.body.size() + (end - i) > limits_.max_body_bytes) {
                    return fail(DecodeError::kBodyTooLarge, i);
                }
                frame_.body.append(in.data() + i, end - i);
                i = end;
                if (nul == nullptr) {
                    return {DecodeStatus::kNeedMore, i};
                }
                state_ = State::kIdle;
                return {DecodeStatus::kFrame, i + 1};
            }
            case State::kBodyNul:
                if (in[i] != '\0') {
                    return fail(DecodeError::kMissingNul, i);
                }
                state_ = State::kIdle;
                return {DecodeStatus::kFrame, i + 1};
        }
    }
    return {state_ == State::kError ? DecodeStatus::kError : DecodeStatus::kNeedMore, i};
}

void appendEscaped(std::string* out, std::string_view s, Version version) {
    if (version == Version::k10) {
        appendRaw(out, s);
        return;
    }
    for (const char ch : s) {
        switch (ch) {
            case '\\':
                out->append("\\\\");
                break;
            case '\n':
                out->append("\\n");
                break;
            case ':':
                out->append("\\c");
                break;
            case '\r':
                out->append(version == Version::k12 ? "\\r" : " ");
                break;
            case '\0':
                out->push_back(' ');
                break;
            default:
                out->push_back(ch);
        }
    }
}

void appendHeader(std::string* out, std::string_view name, std::string_view value,
                  Version version) {
    appendEscaped(out, name, version);
    out->push_back(':');
    appendEscaped(out, value, version);
    out->push_back('\n');
}

void encodeFrame(std::string* out, Command command, std::span<const HeaderView> headers,
                 std::string_view body, Version version) {
    // CONNECT/CONNECTED headers are never escaped: written as 1.0's, which are raw.
    const Version escaping = neverEscaped(command) ? Version::k10 : version;
    out->append(commandName(command));
    out->push_back('\n');
    for (const auto& [name, value] : headers) {
        appendHeader(out, name, value, escaping);
    }
    if (!body.empty()) {
        char digits[24];
        auto [p, ec] = std::to_chars(digits, digits + sizeof digits, body.size());
        out->append("content-length:");
        out->append(digits, static_cast<size_t>(p - digits));
        out->push_back('\n');
    }
    out->push_back('\n');
    out->append(body);
    out->push_back('\0');
}

}  // namespace sb::protocol::stomp
