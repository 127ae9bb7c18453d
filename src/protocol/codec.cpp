// Native protocol codec. Parsing validates the whole frame with the simdjson DOM parser (UTF-8,
// grammar, numbers, depth), then takes the raw text of the values it hands out (id, data,
// info, and strings without escapes) from the frame itself with a small scanner that only
// ever runs over text simdjson has accepted. Encoders append with no intermediate objects.
#include "protocol/codec.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

namespace sb::protocol {
namespace {

namespace dom = simdjson::dom;

// ---- Per-thread parser ----------------------------------------------------------------------

// Capacity a thread's parser keeps between frames: the protocol's default max_message_size.
// Above it the parser is released after the frame (~15 bytes of parser memory per input byte,
// so a 64 KiB frame retains ~1 MiB per thread, a 16 MiB one would retain ~240 MiB).
constexpr size_t kRetainedCapacity = 64u << 10;
constexpr size_t kInitialCapacity = 4u << 10;

// simdjson's max_depth D accepts non-empty containers at nesting levels < D and empty ones at
// level D. Fast path: D = kMaxDepth accepts only documents within our limit but also refuses a
// non-empty container at exactly kMaxDepth (legal for us). On that refusal the frame is parsed
// again with D = kMaxDepth + 1 and the tree is measured: rare, and exact at both edges.
bool depthWithin(dom::element e, size_t level) {
    if (e.type() == dom::element_type::ARRAY) {
        if (level > kMaxDepth) {
            return false;
        }
        dom::array arr;
        if (e.get_array().get(arr) != simdjson::SUCCESS) {
            return false;
        }
        for (dom::element child : arr) {
            if (!depthWithin(child, level + 1)) {
                return false;
            }
        }
    } else if (e.type() == dom::element_type::OBJECT) {
        if (level > kMaxDepth) {
            return false;
        }
        dom::object obj;
        if (e.get_object().get(obj) != simdjson::SUCCESS) {
            return false;
        }
        for (dom::key_value_pair field : obj) {
            if (!depthWithin(field.value, level + 1)) {
                return false;
            }
        }
    }
    return true;
}

class ThreadParser {
public:
    // Parses `frame` into the parser's document; *root stays valid until the next call.
    simdjson::error_code parse(std::string_view frame, dom::element* root) {
        if (depth_ != kMaxDepth) {
            if (const auto err = setDepth(kMaxDepth)) {
                return err;
            }
        }
        auto err = parser_.parse(frame.data(), frame.size(), true).get(*root);
        if (err != simdjson::DEPTH_ERROR) {
            return err;
        }
        if (const auto derr = setDepth(kMaxDepth + 1)) {
            return derr;
        }
        err = parser_.parse(frame.data(), frame.size(), true).get(*root);
        if (err != simdjson::SUCCESS) {
            return err;
        }
        return depthWithin(*root, 1) ? simdjson::SUCCESS : simdjson::DEPTH_ERROR;
    }

    // Called once the last frame's tree is no longer used.
    void trim() {
        if (parser_.capacity() > kRetainedCapacity) {
            parser_ = dom::parser(kMaxFrameBytes);
            depth_ = 0;
        }
    }

private:
    simdjson::error_code setDepth(size_t depth) {
        const auto err = parser_.allocate(std::max(parser_.capacity(), kInitialCapacity), depth);
        depth_ = err == simdjson::SUCCESS ? depth : 0;
        return err;
    }

    dom::parser parser_{kMaxFrameBytes};
    size_t depth_ = 0;  // the parser's max_depth; 0 = not allocated yet
};

ThreadParser& threadParser() {
    thread_local ThreadParser parser;
    return parser;
}

// ---- Raw text scanner -----------------------------------------------------------------------
// Only runs over frames simdjson accepted, so the grammar is known good; the scanner still
// never reads outside [p, end) and reports a mismatch instead of trusting that blindly.

constexpr bool isJsonSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char* skipSpace(const char* p, const char* end) {
    while (p < end && isJsonSpace(*p)) {
        ++p;
    }
    return p;
}

// p at an opening quote; returns one past the closing quote (end if there is none). A quote
// closes the string when the run of backslashes right before it has even length; each run is
// looked at once, so this is linear.
const char* skipString(const char* p, const char* end) {
    const char* s = p + 1;
    while (s < end) {
        const auto* q = static_cast<const char*>(std::memchr(s, '"', static_cast<size_t>(end - s)));
        if (q == nullptr) {
            return end;
        }
        const char* b = q;
        while (b > p + 1 && b[-1] == '\\') {
            --b;
        }
        if (((q - b) & 1) == 0) {
            return q + 1;
        }
        s = q + 1;
    }
    return end;
}

// p at the first byte of a value; returns one past its last byte. *spaced becomes true if the
// value has whitespace outside its strings (so it needs minifying before being embedded).
const char* skipValue(const char* p, const char* end, bool* spaced) {
    if (p >= end) {
        return end;
    }
    if (*p == '"') {
        return skipString(p, end);
    }
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            const char c = *p;
            if (c == '"') {
                p = skipString(p, end);
                continue;
            }
            if (c == '{' || c == '[') {
                ++depth;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            } else if (isJsonSpace(c)) {
                *spaced = true;
            }
            ++p;
        }
        return end;
    }
    // Number or literal: ends at the next delimiter.
    while (p < end && *p != ',' && *p != '}' && *p != ']' && !isJsonSpace(*p)) {
        ++p;
    }
    return p;
}

// Appends valid JSON text without the whitespace outside its strings.
void appendMinified(std::string* out, std::string_view raw) {
    out->reserve(out->size() + raw.size());
    const char* p = raw.data();
    const char* const end = p + raw.size();
    while (p < end) {
        if (*p == '"') {
            const char* q = skipString(p, end);
            out->append(p, static_cast<size_t>(q - p));
            p = q;
            continue;
        }
        if (!isJsonSpace(*p)) {
            out->push_back(*p);
        }
        ++p;
    }
}

// ---- Fields ---------------------------------------------------------------------------------

// The top-level keys the protocol defines; anything else is ignored.
enum Slot : uint8_t {
    kSlotType,
    kSlotId,
    kSlotChannel,
    kSlotSince,
    kSlotData,
    kSlotIdempotencyKey,
    kSlotSession,
    kSlotUser,
    kSlotName,
    kSlotInfo,
    kSlotOffset,
    kSlotLimit,
    kSlotToken,
    kSlotCount
};

constexpr std::array<std::string_view, kSlotCount> kSlotKeys = {
    "type", "id",   "channel", "since", "data", "idempotency_key", "session", "user",
    "name", "info", "offset",  "limit", "token"};

constexpr uint16_t bit(Slot s) {
    return static_cast<uint16_t>(1u << s);
}

// Slots whose raw text is taken from the frame (strings and embedded JSON).
constexpr uint16_t kRawSlots = bit(kSlotId) | bit(kSlotChannel) | bit(kSlotData) |
                               bit(kSlotIdempotencyKey) | bit(kSlotSession) | bit(kSlotUser) |
                               bit(kSlotName) | bit(kSlotInfo) | bit(kSlotToken);

// Fields each request type reads (beyond type and id).
constexpr uint16_t slotsOf(MsgType t) {
    switch (t) {
        case MsgType::kConnect:
            return bit(kSlotSession) | bit(kSlotUser) | bit(kSlotName) | bit(kSlotInfo) |
                   bit(kSlotToken);
        case MsgType::kSubscribe:
            return bit(kSlotChannel) | bit(kSlotSince) | bit(kSlotToken);
        case MsgType::kRefresh:
            return bit(kSlotToken);
        case MsgType::kUnsubscribe:
        case MsgType::kPresence:
            return bit(kSlotChannel);
        case MsgType::kPublish:
            return bit(kSlotChannel) | bit(kSlotData) | bit(kSlotIdempotencyKey);
        case MsgType::kHistory:
            return bit(kSlotChannel) | bit(kSlotSince) | bit(kSlotLimit);
        case MsgType::kAck:
            return bit(kSlotChannel) | bit(kSlotOffset);
        case MsgType::kPing:
            return 0;
    }
    return 0;
}

int slotOf(std::string_view key) {
    for (size_t i = 0; i < kSlotKeys.size(); ++i) {
        if (kSlotKeys[i] == key) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

constexpr uint32_t kAbsent = std::numeric_limits<uint32_t>::max();

struct Fields {
    std::array<dom::element, kSlotCount> value;
    std::array<uint32_t, kSlotCount> index;  // position among the object's fields, or kAbsent
    std::array<std::string_view, kSlotCount> raw;
    std::array<bool, kSlotCount> spaced{};

    Fields() { index.fill(kAbsent); }
    bool has(Slot s) const { return index[s] != kAbsent; }
    // Present and not null: optional fields treat an explicit null as absent.
    bool given(Slot s) const { return has(s) && !value[s].is_null(); }
};

// Records the raw text of the wanted slots' values, walking the object's fields in order (the
// DOM keeps that order, so field i here is field i there). Stops after the last wanted one.
bool scanRaw(std::string_view frame, uint16_t wanted, Fields* f) {
    std::array<std::pair<uint32_t, Slot>, kSlotCount> order;
    size_t n = 0;
    for (uint8_t s = 0; s < kSlotCount; ++s) {
        if ((wanted & bit(static_cast<Slot>(s))) != 0 && f->has(static_cast<Slot>(s))) {
            order[n++] = {f->index[s], static_cast<Slot>(s)};
        }
    }
    if (n == 0) {
        return true;
    }
    std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
    const char* p = frame.data();
    const char* const end = p + frame.size();
    p = skipSpace(p, end);
    if (p == end || *p != '{') {
        return false;
    }
    size_t next = 0;
    for (uint32_t i = 0; next < n; ++i) {
        p = skipSpace(p + 1, end);  // past '{' or ','
        if (p == end || *p != '"') {
            return false;
        }
        p = skipSpace(skipString(p, end), end);
        if (p == end || *p != ':') {
            return false;
        }
        const char* vb = skipSpace(p + 1, end);
        bool spaced = false;
        const char* ve = skipValue(vb, end, &spaced);
        if (ve == vb) {
            return false;
        }
        if (order[next].first == i) {
            const Slot s = order[next].second;
            f->raw[s] = std::string_view(vb, static_cast<size_t>(ve - vb));
            f->spaced[s] = spaced;
            ++next;
        }
        p = skipSpace(ve, end);
        if (p == end || (*p != ',' && *p != '}')) {
            return false;
        }
        if (*p == '}' && next < n) {
            return false;
        }
    }
    return true;
}

// ---- Errors ---------------------------------------------------------------------------------

base::Unexpected<ParseError> fail(ParseErrorKind kind, std::string message,
                                  std::string_view id_json = {}) {
    return base::unexpected(ParseError{kind, std::move(message), id_json});
}

base::Unexpected<ParseError> badJson(simdjson::error_code err) {
    switch (err) {
        case simdjson::DEPTH_ERROR:
            return fail(ParseErrorKind::kBadJson, "nesting deeper than 32 levels");
        case simdjson::UTF8_ERROR:
            return fail(ParseErrorKind::kBadJson, "invalid UTF-8");
        case simdjson::EMPTY:
            return fail(ParseErrorKind::kBadJson, "empty frame");
        case simdjson::NUMBER_ERROR:
        case simdjson::NUMBER_OUT_OF_RANGE:
            return fail(ParseErrorKind::kBadJson, "invalid number, or one outside 64-bit range");
        case simdjson::STRING_ERROR:
        case simdjson::UNESCAPED_CHARS:
        case simdjson::UNCLOSED_STRING:
            return fail(ParseErrorKind::kBadJson, "invalid string");
        case simdjson::CAPACITY:
            return fail(ParseErrorKind::kBadJson, "frame too large");
        case simdjson::MEMALLOC:
            return fail(ParseErrorKind::kInternal, "out of memory");
        default:
            return fail(ParseErrorKind::kBadJson, "invalid JSON");
    }
}

// Up to 32 bytes of s, cut at a UTF-8 code point boundary (for quoting it in a message).
std::string_view excerpt(std::string_view s) {
    constexpr size_t kMax = 32;
    if (s.size() <= kMax) {
        return s;
    }
    size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
        --n;
    }
    return s.substr(0, n);
}

std::string fieldMessage(std::string_view field, std::string_view what) {
    std::string m = "field \"";
    m += field;
    m += "\" ";
    m += what;
    return m;
}

// Builds a Request from a parsed object. String values are views into the frame when they were
// written without escapes (decoded length == raw length - 2); the others are decoded strings
// from the parser, copied into shared storage at the end.
class RequestBuilder {
public:
    RequestBuilder(const Fields& f, Request* req) : f_(f), req_(req) {}

    // A string field; false if present but neither a string nor (when `nullable`) null.
    bool string(Slot s, bool nullable, std::string_view* out) {
        if (!f_.has(s)) {
            return true;
        }
        std::string_view decoded;
        if (f_.value[s].get_string().get(decoded) != simdjson::SUCCESS) {
            return nullable && f_.value[s].is_null();
        }
        const std::string_view raw = f_.raw[s];
        if (raw.size() == decoded.size() + 2) {
            *out = raw.substr(1, decoded.size());
        } else {
            pending_[n_pending_++] = {out, decoded};
        }
        return true;
    }

    // Moves the decoded strings into one shared block and points their fields at it.
    void finish() {
        if (n_pending_ == 0) {
            return;
        }
        size_t total = 0;
        for (size_t i = 0; i < n_pending_; ++i) {
            total += pending_[i].second.size();
        }
        auto storage = std::make_shared<char[]>(total);
        char* w = storage.get();
        for (size_t i = 0; i < n_pending_; ++i) {
            const std::string_view d = pending_[i].second;
            std::memcpy(w, d.data(), d.size());
            *pending_[i].first = std::string_view(w, d.size());
            w += d.size();
        }
        req_->unescaped_storage = std::move(storage);
    }

private:
    const Fields& f_;
    Request* req_;
    std::array<std::pair<std::string_view*, std::string_view>, kSlotCount> pending_;
    size_t n_pending_ = 0;
};

base::Expected<Request, ParseError> parseObject(std::string_view frame, dom::object obj) {
    Fields f;
    uint32_t i = 0;
    for (dom::key_value_pair field : obj) {
        const int s = slotOf(field.key);
        if (s >= 0 && !f.has(static_cast<Slot>(s))) {
            f.value[s] = field.value;
            f.index[s] = i;
        }
        ++i;
    }

    // The type decides which fields are read; the id is read whatever the type says.
    std::optional<MsgType> type;
    std::string_view type_name;
    if (f.has(kSlotType) && f.value[kSlotType].get_string().get(type_name) == simdjson::SUCCESS) {
        type = msgTypeFromName(type_name);
    }
    const uint16_t wanted = kRawSlots & (bit(kSlotId) | (type ? slotsOf(*type) : 0));
    if (!scanRaw(frame, wanted, &f)) {
        return fail(ParseErrorKind::kInternal, "request scanner out of step with the parser");
    }

    Request req;
    if (f.given(kSlotId)) {
        const dom::element id = f.value[kSlotId];
        std::string_view s;
        const bool ok =
            id.is_number() ? f.raw[kSlotId].size() <= kMaxIdBytes
                           : id.get_string().get(s) == simdjson::SUCCESS && s.size() <= kMaxIdBytes;
        if (!ok) {
            return fail(ParseErrorKind::kBadRequest,
                        fieldMessage("id", "must be a number or a string of at most 64 bytes"));
        }
        req.id_json = f.raw[kSlotId];
    }
    if (!f.has(kSlotType)) {
        return fail(ParseErrorKind::kBadRequest, fieldMessage("type", "is required"), req.id_json);
    }
    if (!f.value[kSlotType].is_string()) {
        return fail(ParseErrorKind::kBadRequest, fieldMessage("type", "must be a string"),
                    req.id_json);
    }
    if (!type) {
        std::string m = "unknown type \"";
        m += excerpt(type_name);
        m += '"';
        return fail(ParseErrorKind::kUnknownType, std::move(m), req.id_json);
    }
    req.type = *type;
    const uint16_t slots = slotsOf(*type);
    const auto bad = [&](std::string_view field, std::string_view what) {
        return fail(ParseErrorKind::kBadRequest, fieldMessage(field, what), req.id_json);
    };

    RequestBuilder b(f, &req);
    if ((slots & bit(kSlotChannel)) != 0) {
        if (!f.has(kSlotChannel)) {
            return bad("channel", "is required");
        }
        if (!b.string(kSlotChannel, false, &req.channel)) {
            return bad("channel", "must be a string");
        }
    }
    if ((slots & bit(kSlotIdempotencyKey)) != 0 &&
        !b.string(kSlotIdempotencyKey, true, &req.idempotency_key)) {
        return bad("idempotency_key", "must be a string");
    }
    if ((slots & bit(kSlotSession)) != 0) {
        if (!b.string(kSlotSession, true, &req.session)) {
            return bad("session", "must be a string");
        }
        if (!b.string(kSlotUser, true, &req.user)) {
            return bad("user", "must be a string");
        }
        if (!b.string(kSlotName, true, &req.name)) {
            return bad("name", "must be a string");
        }
    }
    if ((slots & bit(kSlotToken)) != 0) {
        if (req.type == MsgType::kRefresh && !f.given(kSlotToken)) {
            return bad("token", "is required");
        }
        if (!b.string(kSlotToken, true, &req.token)) {
            return bad("token", "must be a string");
        }
    }
    if ((slots & bit(kSlotInfo)) != 0 && f.given(kSlotInfo)) {
        if (!f.value[kSlotInfo].is_object()) {
            return bad("info", "must be an object");
        }
        if (f.spaced[kSlotInfo]) {
            appendMinified(&req.info, f.raw[kSlotInfo]);
        } else {
            req.info.assign(f.raw[kSlotInfo]);
        }
        if (req.info.size() > kMaxInfoBytes) {
            return bad("info", "must be at most 1024 bytes of JSON");
        }
    }
    if ((slots & bit(kSlotData)) != 0) {
        if (!f.has(kSlotData)) {
            return bad("data", "is required");
        }
        if (f.spaced[kSlotData]) {
            appendMinified(&req.data, f.raw[kSlotData]);
        } else {
            req.data.assign(f.raw[kSlotData]);
        }
    }
    if ((slots & bit(kSlotSince)) != 0 && f.given(kSlotSince)) {
        dom::object since;
        if (f.value[kSlotSince].get_object().get(since) != simdjson::SUCCESS) {
            return bad("since", "must be an object with \"epoch\" and \"offset\"");
        }
        std::string_view epoch;
        if (since["epoch"].get_string().get(epoch) != simdjson::SUCCESS) {
            return bad("since.epoch", "must be a string");
        }
        uint64_t offset = 0;
        if (since["offset"].get_uint64().get(offset) != simdjson::SUCCESS) {
            return bad("since.offset", "must be an unsigned integer");
        }
        req.since = Since{std::string(epoch), offset};
    }
    if ((slots & bit(kSlotOffset)) != 0) {
        if (!f.has(kSlotOffset)) {
            return bad("offset", "is required");
        }
        if (f.value[kSlotOffset].get_uint64().get(req.offset) != simdjson::SUCCESS) {
            return bad("offset", "must be an unsigned integer");
        }
    }
    if ((slots & bit(kSlotLimit)) != 0 && f.given(kSlotLimit)) {
        uint64_t limit = 0;
        if (f.value[kSlotLimit].get_uint64().get(limit) != simdjson::SUCCESS) {
            return bad("limit", "must be an unsigned integer");
        }
        // The server caps it at the history size anyway.
        req.limit = static_cast<uint32_t>(std::min<uint64_t>(limit, UINT32_MAX));
    }
    b.finish();
    return req;
}

// ---- Encoding helpers -----------------------------------------------------------------------

// Which bytes appendJsonString must escape.
constexpr std::array<bool, 256> kEscape = [] {
    std::array<bool, 256> t{};
    for (size_t c = 0; c < 0x20; ++c) {
        t[c] = true;
    }
    t['"'] = true;
    t['\\'] = true;
    return t;
}();

void appendUint(std::string* out, uint64_t v) {
    char buf[20];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, static_cast<size_t>(r.ptr - buf));
}

void appendBool(std::string* out, bool v) {
    out->append(v ? "true" : "false");
}

// `{"type":"<type>"` and `,"id":<id>` when there is one. Types are constant identifiers.
void openObject(std::string* out, std::string_view type, std::string_view id_json) {
    out->append(R"({"type":")");
    out->append(type);
    out->push_back('"');
    if (!id_json.empty()) {
        out->append(R"(,"id":)");
        out->append(id_json);
    }
}

// `,"<key>":` then the escaped string.
void appendStringField(std::string* out, std::string_view key_prefix, std::string_view value) {
    out->append(key_prefix);
    appendJsonString(out, value);
}

void appendRawOrNull(std::string* out, std::string_view json) {
    out->append(json.empty() ? std::string_view("null") : json);
}

}  // namespace

// ---- Public ---------------------------------------------------------------------------------

std::string_view msgTypeName(MsgType type) {
    switch (type) {
        case MsgType::kConnect:
            return "connect";
        case MsgType::kSubscribe:
            return "subscribe";
        case MsgType::kUnsubscribe:
            return "unsubscribe";
        case MsgType::kPublish:
            return "publish";
        case MsgType::kPresence:
            return "presence";
        case MsgType::kHistory:
            return "history";
        case MsgType::kAck:
            return "ack";
        case MsgType::kPing:
            return "ping";
        case MsgType::kRefresh:
            return "refresh";
    }
    return "?";
}

std::optional<MsgType> msgTypeFromName(std::string_view name) {
    for (uint8_t t = 0; t <= static_cast<uint8_t>(MsgType::kRefresh); ++t) {
        if (msgTypeName(static_cast<MsgType>(t)) == name) {
            return static_cast<MsgType>(t);
        }
    }
    return std::nullopt;
}

base::Expected<std::string, std::string> parseInfo(std::string_view json) {
    if (json.empty()) {
        return std::string();
    }
    if (json.size() > kMaxFrameBytes) {
        return base::unexpected(std::string("info must be at most 1024 bytes of JSON"));
    }
    ThreadParser& parser = threadParser();
    dom::element root;
    const auto err = parser.parse(json, &root);
    if (err != simdjson::SUCCESS) {
        parser.trim();
        return base::unexpected(std::string("info is not valid JSON: ") +
                                simdjson::error_message(err));
    }
    const bool object = root.is_object();
    parser.trim();
    if (!object) {
        return base::unexpected(std::string("info must be a JSON object"));
    }
    std::string out;
    appendMinified(&out, json);
    if (out.size() > kMaxInfoBytes) {
        return base::unexpected(std::string("info must be at most 1024 bytes of JSON"));
    }
    return out;
}

base::Expected<std::string, std::string> parseData(std::string_view json) {
    if (json.size() > kMaxFrameBytes) {
        return base::unexpected(std::string("data larger than 16 MiB"));
    }
    ThreadParser& parser = threadParser();
    dom::element root;
    const auto err = parser.parse(json, &root);
    parser.trim();
    if (err != simdjson::SUCCESS) {
        return base::unexpected(std::string("not valid JSON: ") + simdjson::error_message(err));
    }
    std::string out;
    appendMinified(&out, json);
    return out;
}

std::optional<std::string> jsonStringValue(std::string_view json) {
    if (json.size() < 2 || json.front() != '"') {
        return std::nullopt;  // most data is not a string: no parse
    }
    ThreadParser& parser = threadParser();
    dom::element root;
    std::optional<std::string> out;
    std::string_view text;
    if (parser.parse(json, &root) == simdjson::SUCCESS &&
        root.get_string().get(text) == simdjson::SUCCESS) {
        out.emplace(text);
    }
    parser.trim();
    return out;
}

base::Expected<Request, ParseError> parseRequest(std::string_view frame) {
    if (frame.size() > kMaxFrameBytes) {
        return fail(ParseErrorKind::kBadJson, "frame larger than 16 MiB");
    }
    ThreadParser& parser = threadParser();
    dom::element root;
    if (const auto err = parser.parse(frame, &root)) {
        parser.trim();
        return badJson(err);
    }
    dom::object obj;
    if (root.get_object().get(obj) != simdjson::SUCCESS) {
        parser.trim();
        return fail(ParseErrorKind::kBadJson, "a request must be a JSON object");
    }
    auto result = parseObject(frame, obj);
    parser.trim();  // the Request refers only to the frame and its own storage
    return result;
}

void appendJsonString(std::string* out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out->push_back('"');
    size_t run = 0;  // start of the bytes not yet copied
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (!kEscape[c]) {
            continue;
        }
        out->append(s.data() + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            const char esc[2] = {'\\', static_cast<char>(c)};
            out->append(esc, 2);
        } else {
            const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
            out->append(esc, 6);
        }
    }
    out->append(s.data() + run, s.size() - run);
    out->push_back('"');
}

void encodeConnected(std::string* out, std::string_view id_json, std::string_view client,
                     std::string_view session, bool resumed, uint32_t ping_interval_s,
                     std::span<const RestoredChannel> channels, std::string_view user,
                     std::optional<uint64_t> expires_in) {
    openObject(out, "connected", id_json);
    appendStringField(out, R"(,"client":)", client);
    appendStringField(out, R"(,"session":)", session);
    out->append(R"(,"resumed":)");
    appendBool(out, resumed);
    out->append(R"(,"ping_interval":)");
    appendUint(out, ping_interval_s);
    if (!user.empty()) {
        appendStringField(out, R"(,"user":)", user);
    }
    if (expires_in) {
        out->append(R"(,"expires_in":)");
        appendUint(out, *expires_in);
    }
    if (resumed) {
        out->append(R"(,"channels":[)");
        for (size_t i = 0; i < channels.size(); ++i) {
            const RestoredChannel& c = channels[i];
            appendStringField(out, i == 0 ? R"({"channel":)" : R"(,{"channel":)", c.channel);
            appendStringField(out, R"(,"epoch":)", c.epoch);
            out->append(R"(,"offset":)");
            appendUint(out, c.offset);
            out->append(R"(,"recovered":)");
            appendBool(out, c.recovered);
            out->push_back('}');
        }
        out->push_back(']');
    }
    out->push_back('}');
}

void encodeSubscribed(std::string* out, std::string_view id_json, std::string_view channel,
                      std::string_view epoch, uint64_t offset, std::optional<bool> recovered) {
    openObject(out, "subscribed", id_json);
    appendStringField(out, R"(,"channel":)", channel);
    appendStringField(out, R"(,"epoch":)", epoch);
    out->append(R"(,"offset":)");
    appendUint(out, offset);
    if (recovered) {
        out->append(R"(,"recovered":)");
        appendBool(out, *recovered);
    }
    out->push_back('}');
}

void encodeUnsubscribed(std::string* out, std::string_view id_json, std::string_view channel) {
    openObject(out, "unsubscribed", id_json);
    appendStringField(out, R"(,"channel":)", channel);
    out->push_back('}');
}

void encodePublished(std::string* out, std::string_view id_json, std::string_view channel,
                     std::string_view epoch, uint64_t offset, bool duplicate) {
    openObject(out, "published", id_json);
    appendStringField(out, R"(,"channel":)", channel);
    appendStringField(out, R"(,"epoch":)", epoch);
    out->append(R"(,"offset":)");
    appendUint(out, offset);
    if (duplicate) {
        out->append(R"(,"duplicate":true)");
    }
    out->push_back('}');
}

void encodePresence(std::string* out, std::string_view id_json, std::string_view channel,
                    std::span<const PresenceEntry> clients) {
    openObject(out, "presence", id_json);
    appendStringField(out, R"(,"channel":)", channel);
    out->append(R"(,"count":)");
    appendUint(out, clients.size());
    out->append(R"(,"clients":[)");
    for (size_t i = 0; i < clients.size(); ++i) {
        const PresenceEntry& c = clients[i];
        appendStringField(out, i == 0 ? R"({"client":)" : R"(,{"client":)", c.client);
        appendStringField(out, R"(,"user":)", c.user);
        if (!c.info_json.empty()) {
            out->append(R"(,"info":)");
            out->append(c.info_json);
        }
        out->push_back('}');
    }
    out->append("]}");
}

void encodeHistory(std::string* out, std::string_view id_json, std::string_view channel,
                   std::string_view epoch, uint64_t top_offset, std::optional<bool> recovered,
                   std::span<const HistoryItem> pubs) {
    openObject(out, "history", id_json);
    appendStringField(out, R"(,"channel":)", channel);
    appendStringField(out, R"(,"epoch":)", epoch);
    out->append(R"(,"offset":)");
    appendUint(out, top_offset);
    if (recovered) {
        out->append(R"(,"recovered":)");
        appendBool(out, *recovered);
    }
    out->append(R"(,"publications":[)");
    for (size_t i = 0; i < pubs.size(); ++i) {
        out->append(i == 0 ? R"({"offset":)" : R"(,{"offset":)");
        appendUint(out, pubs[i].offset);
        out->append(R"(,"data":)");
        appendRawOrNull(out, pubs[i].data_json);
        out->push_back('}');
    }
    out->append("]}");
}

void encodeAcked(std::string* out, std::string_view id_json) {
    openObject(out, "acked", id_json);
    out->push_back('}');
}

void encodeRefreshed(std::string* out, std::string_view id_json,
                     std::optional<uint64_t> expires_in) {
    openObject(out, "refreshed", id_json);
    if (expires_in) {
        out->append(R"(,"expires_in":)");
        appendUint(out, *expires_in);
    }
    out->push_back('}');
}

void encodePong(std::string* out, std::string_view id_json) {
    openObject(out, "pong", id_json);
    out->push_back('}');
}

void encodeMessage(std::string* out, std::string_view channel, std::string_view epoch,
                   uint64_t offset, std::string_view data_json, bool gap) {
    // One allocation at most: the fixed text is ~60 bytes plus the escaped strings.
    out->reserve(out->size() + 64 + channel.size() + epoch.size() + data_json.size());
    out->append(R"({"type":"message")");
    appendStringField(out, R"(,"channel":)", channel);
    appendStringField(out, R"(,"epoch":)", epoch);
    out->append(R"(,"offset":)");
    appendUint(out, offset);
    out->append(R"(,"data":)");
    appendRawOrNull(out, data_json);
    if (gap) {
        out->append(R"(,"gap":true)");
    }
    out->push_back('}');
}

void encodeJoinLeave(std::string* out, bool join, std::string_view channel, std::string_view client,
                     std::string_view user, std::string_view info_json) {
    out->append(join ? R"({"type":"join")" : R"({"type":"leave")");
    appendStringField(out, R"(,"channel":)", channel);
    appendStringField(out, R"(,"client":)", client);
    appendStringField(out, R"(,"user":)", user);
    if (!info_json.empty()) {
        out->append(R"(,"info":)");
        out->append(info_json);
    }
    out->push_back('}');
}

void encodeError(std::string* out, std::string_view id_json, std::string_view code,
                 std::string_view message) {
    openObject(out, "error", id_json);
    appendStringField(out, R"(,"code":)", code);
    appendStringField(out, R"(,"message":)", message);
    out->push_back('}');
}

void encodeDisconnect(std::string* out, uint16_t code, std::string_view reason, bool reconnect) {
    out->append(R"({"type":"disconnect","code":)");
    appendUint(out, code);
    appendStringField(out, R"(,"reason":)", reason);
    out->append(R"(,"reconnect":)");
    appendBool(out, reconnect);
    out->push_back('}');
}

}  // namespace sb::protocol
