// RFC 7692 permessage-deflate over zlib raw deflate (negative windowBits): the parser of
// Sec-WebSocket-Extensions, the negotiation on both sides, and the per-direction codecs.
//
// Window bits 8: zlib refuses a raw 256-byte window (deflateInit2 with -8 fails since 1.2.9),
// so both codecs run with 9. That stays within the RFC: zlib's deflate never emits a distance
// greater than window size - 262 (MAX_DIST), i.e. 250 with a 512-byte window, so a stream it
// writes with 9 is readable by a peer holding only 256 bytes; and inflating with a larger
// window than the sender used is always safe. A unit test pins both facts.
#include "ws/deflate.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/ascii.h"

namespace sb::ws {

namespace {

constexpr std::string_view kExtensionName = "permessage-deflate";

using base::iequals;

bool isTchar(char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// One extension-param (RFC 6455 §9.1): token [ "=" (token | quoted-string) ]. For a quoted
// value, `value` is the raw text between the quotes (quoted-pairs not yet unescaped).
struct Param {
    std::string_view name;
    std::string_view value;
    bool has_value = false;
    bool quoted = false;
};

// permessage-deflate has four parameters; an extension with more is never acceptable, so we
// only remember that there were too many.
constexpr size_t kMaxParams = 8;

struct Extension {
    std::string_view name;
    Param params[kMaxParams];
    size_t count = 0;
    bool too_many = false;
};

// Reads a Sec-WebSocket-Extensions value one extension at a time (RFC 6455 §9.1):
//   extension-list = 1#( extension-token *( ";" extension-param ) )
// with optional whitespace around the separators and empty list elements ignored (RFC 9110
// §5.6.1).
class ExtensionReader {
public:
    enum class Next { kExtension, kEnd, kMalformed };

    explicit ExtensionReader(std::string_view s) : s_(s) {}

    Next next(Extension* e) {
        e->count = 0;
        e->too_many = false;
        while (pos_ < s_.size() && (isOws(s_[pos_]) || s_[pos_] == ',')) {
            ++pos_;
        }
        if (pos_ == s_.size()) {
            return Next::kEnd;
        }
        if (!token(&e->name)) {
            return Next::kMalformed;
        }
        for (;;) {
            skipOws();
            if (pos_ == s_.size()) {
                return Next::kExtension;
            }
            if (s_[pos_] == ',') {
                ++pos_;
                return Next::kExtension;
            }
            if (s_[pos_] != ';') {
                return Next::kMalformed;
            }
            ++pos_;
            skipOws();
            Param p;
            if (!token(&p.name)) {
                return Next::kMalformed;
            }
            skipOws();
            if (pos_ < s_.size() && s_[pos_] == '=') {
                ++pos_;
                skipOws();
                p.has_value = true;
                if (pos_ < s_.size() && s_[pos_] == '"') {
                    p.quoted = true;
                    if (!quoted(&p.value)) {
                        return Next::kMalformed;
                    }
                } else if (!token(&p.value)) {
                    return Next::kMalformed;
                }
            }
            if (e->count == kMaxParams) {
                e->too_many = true;
            } else {
                e->params[e->count++] = p;
            }
        }
    }

private:
    static bool isOws(char c) { return c == ' ' || c == '\t'; }

    void skipOws() {
        while (pos_ < s_.size() && isOws(s_[pos_])) {
            ++pos_;
        }
    }

    bool token(std::string_view* out) {
        const size_t start = pos_;
        while (pos_ < s_.size() && isTchar(s_[pos_])) {
            ++pos_;
        }
        *out = s_.substr(start, pos_ - start);
        return pos_ > start;
    }

    // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, pos_ on the opening quote.
    bool quoted(std::string_view* out) {
        const size_t start = ++pos_;
        while (pos_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[pos_]);
            if (c == '"') {
                *out = s_.substr(start, pos_ - start);
                ++pos_;
                return true;
            }
            if (c == '\\') {
                if (++pos_ == s_.size()) {
                    return false;
                }
                const auto e = static_cast<unsigned char>(s_[pos_]);
                if ((e < 0x20 && e != '\t') || e == 0x7F) {
                    return false;
                }
            } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
                return false;
            }
            ++pos_;
        }
        return false;  // unterminated
    }

    std::string_view s_;
    size_t pos_ = 0;
};

// A window-bits value: a decimal 8..15 without leading zeros (RFC 7692 §7.1.2), possibly
// written as a quoted-string whose content, once unescaped, is that number (§7.1).
bool parseWindowBits(const Param& p, uint8_t* out) {
    char digits[3];
    size_t n = 0;
    for (size_t i = 0; i < p.value.size(); ++i) {
        char c = p.value[i];
        if (p.quoted && c == '\\' && i + 1 < p.value.size()) {
            c = p.value[++i];
        }
        if (c < '0' || c > '9' || n == sizeof(digits)) {
            return false;
        }
        digits[n++] = c;
    }
    if (n == 0 || n > 2 || digits[0] == '0') {
        return false;
    }
    const int v = n == 1 ? digits[0] - '0' : (digits[0] - '0') * 10 + (digits[1] - '0');
    if (v < 8 || v > 15) {
        return false;
    }
    *out = static_cast<uint8_t>(v);
    return true;
}

// The parameters of one permessage-deflate offer or response, as written by the peer.
struct Written {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    bool has_server_bits = false;
    bool has_client_bits = false;
    bool client_bits_has_value = false;
    uint8_t server_bits = 15;
    uint8_t client_bits = 15;
};

// Validates the parameters (RFC 7692 §7.1): names known and case-sensitive, none repeated, the
// *_no_context_takeover ones without a value, server_max_window_bits with one,
// client_max_window_bits with one unless `client_bits_may_omit_value` (offers only).
bool readParams(const Extension& e, bool client_bits_may_omit_value, Written* w) {
    if (e.too_many) {
        return false;
    }
    bool seen[4] = {};
    for (size_t i = 0; i < e.count; ++i) {
        const Param& p = e.params[i];
        int which = -1;
        if (p.name == "server_no_context_takeover") {
            which = 0;
        } else if (p.name == "client_no_context_takeover") {
            which = 1;
        } else if (p.name == "server_max_window_bits") {
            which = 2;
        } else if (p.name == "client_max_window_bits") {
            which = 3;
        } else {
            return false;  // unknown parameter: decline (§7.1)
        }
        if (seen[which]) {
            return false;  // duplicate: decline
        }
        seen[which] = true;
        switch (which) {
            case 0:
            case 1:
                if (p.has_value) {
                    return false;
                }
                (which == 0 ? w->server_no_context_takeover : w->client_no_context_takeover) = true;
                break;
            case 2:
                if (!p.has_value || !parseWindowBits(p, &w->server_bits)) {
                    return false;
                }
                w->has_server_bits = true;
                break;
            default:
                w->has_client_bits = true;
                if (!p.has_value) {
                    if (!client_bits_may_omit_value) {
                        return false;
                    }
                    break;
                }
                if (!parseWindowBits(p, &w->client_bits)) {
                    return false;
                }
                w->client_bits_has_value = true;
                break;
        }
    }
    return true;
}

void appendBits(std::string* out, std::string_view name, uint8_t bits) {
    out->append("; ");
    out->append(name);
    out->push_back('=');
    if (bits >= 10) {
        out->push_back('1');
    }
    out->push_back(static_cast<char>('0' + bits % 10));
}

// zlib's raw deflate cannot do 8 (see the file comment).
int zlibWindowBits(uint8_t bits) {
    return std::clamp<int>(bits, 9, 15);
}

constexpr uint8_t kTail[4] = {0x00, 0x00, 0xFF, 0xFF};  // RFC 7692 §7.2.1

}  // namespace

std::optional<DeflateParams> negotiateDeflate(std::string_view offers,
                                              const DeflateServerPolicy& policy,
                                              std::string* response) {
    if (!policy.enabled) {
        return std::nullopt;
    }
    const auto max_server_bits =
        static_cast<uint8_t>(std::clamp<int>(policy.max_server_window_bits, 8, 15));
    ExtensionReader reader(offers);
    Extension e;
    for (;;) {
        const ExtensionReader::Next n = reader.next(&e);
        if (n != ExtensionReader::Next::kExtension) {
            return std::nullopt;  // no acceptable offer (or the list became unreadable)
        }
        Written w;
        if (!iequals(e.name, kExtensionName) || !readParams(e, true, &w)) {
            continue;  // another extension, or an invalid offer: try the next one
        }
        DeflateParams p;
        p.server_no_context_takeover = w.server_no_context_takeover || !policy.context_takeover;
        // A client that offers client_no_context_takeover will not use takeover anyway
        // (§7.1.1.2); confirming it lets us reset our inflater per message. Without takeover
        // by policy we ask it of every client.
        p.client_no_context_takeover = w.client_no_context_takeover || !policy.context_takeover;
        bool send_server_bits = false;
        if (w.has_server_bits) {
            // §7.1.2.1: we must not use a larger window than the client asked for.
            p.server_max_window_bits = std::min(w.server_bits, max_server_bits);
            send_server_bits = true;
        } else if (max_server_bits < 15) {
            p.server_max_window_bits = max_server_bits;  // we may announce a smaller window
            send_server_bits = true;
        }
        // §7.1.2.2: a value limits the client's window; we accept what it proposes. Without a
        // value (or without the parameter) the client may use 15 and we say nothing.
        if (w.client_bits_has_value) {
            p.client_max_window_bits = w.client_bits;
        }
        response->assign(kExtensionName);
        if (p.server_no_context_takeover) {
            response->append("; server_no_context_takeover");
        }
        if (p.client_no_context_takeover) {
            response->append("; client_no_context_takeover");
        }
        if (send_server_bits) {
            appendBits(response, "server_max_window_bits", p.server_max_window_bits);
        }
        if (w.client_bits_has_value) {
            appendBits(response, "client_max_window_bits", p.client_max_window_bits);
        }
        return p;
    }
}

std::string clientDeflateOffer() {
    // We can inflate any window and take any constraint on our own; announcing
    // client_max_window_bits lets the server shrink our window if it wants to.
    return "permessage-deflate; client_max_window_bits";
}

std::optional<DeflateParams> parseDeflateResponse(std::string_view response) {
    ExtensionReader reader(response);
    Extension e;
    if (reader.next(&e) != ExtensionReader::Next::kExtension || !iequals(e.name, kExtensionName)) {
        return std::nullopt;
    }
    Written w;
    if (!readParams(e, false, &w)) {
        return std::nullopt;
    }
    Extension extra;
    if (reader.next(&extra) != ExtensionReader::Next::kEnd) {
        return std::nullopt;  // a second extension (or garbage): we offered only one
    }
    DeflateParams p;
    p.server_no_context_takeover = w.server_no_context_takeover;
    p.client_no_context_takeover = w.client_no_context_takeover;
    p.server_max_window_bits = w.server_bits;
    p.client_max_window_bits = w.client_bits;
    return p;
}

// --- Inflater ---

// The zlib stream lives in its own allocation made on the first message: ~7 KiB of inflate
// state plus the window (2^bits bytes, allocated by zlib on first output). An idle connection
// holds only State (16 bytes).
struct InflateStream {
    z_stream z{};
    ~InflateStream() { inflateEnd(&z); }
};

struct Inflater::State {
    std::unique_ptr<InflateStream> stream;
    uint8_t window_bits = 15;
};

Inflater::Inflater(uint8_t window_bits, bool takeover)
    : s_(std::make_unique<State>()), takeover_(takeover) {
    s_->window_bits = window_bits;
}

Inflater::~Inflater() = default;

InflateStatus Inflater::inflateMessage(std::span<const uint8_t> in, size_t max_size,
                                       std::string* out) {
    const size_t original = out->size();
    if (in.empty()) {
        // Not a valid payload for a compressed message (even an empty message is one 0x00
        // byte, §7.2.3.6); read it as empty rather than desynchronise the context.
        return out->size() > max_size ? InflateStatus::kTooBig : InflateStatus::kOk;
    }
    if (!s_->stream) {
        auto stream = std::make_unique<InflateStream>();
        if (inflateInit2(&stream->z, -zlibWindowBits(s_->window_bits)) != Z_OK) {
            return InflateStatus::kCorrupt;  // out of memory; the connection cannot go on
        }
        s_->stream = std::move(stream);
    }
    z_stream& z = s_->stream->z;
    // Produce at most max_size + 1 bytes in total: one byte over the cap proves the message
    // too big without inflating the rest of a bomb.
    const size_t cap = max_size == SIZE_MAX ? SIZE_MAX : max_size + 1;

    InflateStatus status = InflateStatus::kOk;
    const uint8_t* next = in.data();
    size_t left = in.size();
    bool in_tail = false;
    bool stream_ended = false;    // the payload finished exactly on a BFINAL block
    bool boundary = false;        // the last call stopped between two blocks
    bool output_pending = false;  // the last call filled the output: call again first
    size_t used = out->size();    // bytes of *out that hold output; the rest is room
    for (;;) {
        if (z.avail_in == 0 && !output_pending) {
            if (left == 0) {
                if (in_tail || stream_ended) {
                    break;
                }
                in_tail = true;  // §7.2.2: append 00 00 FF FF, then inflate
                next = kTail;
                left = sizeof(kTail);
            }
            const size_t n = std::min<size_t>(left, UINT_MAX);
            z.next_in = const_cast<Bytef*>(next);
            z.avail_in = static_cast<uInt>(n);
            next += n;
            left -= n;
        }
        if (used == out->size()) {
            if (used >= cap) {
                status = InflateStatus::kTooBig;
                break;
            }
            // Grow geometrically (4 KiB to 1 MiB per step), never past the cap. Room left
            // over stays for the next call, so many tiny blocks cost no zero-filling.
            const size_t grow =
                std::min(std::clamp<size_t>(std::max(used, in.size() * 2), 4096, size_t{1} << 20),
                         cap - used);
            out->resize(used + grow);
        }
        const size_t room = std::min<size_t>(out->size() - used, UINT_MAX);
        z.next_out = reinterpret_cast<Bytef*>(out->data() + used);
        z.avail_out = static_cast<uInt>(room);
        const int rc = inflate(&z, Z_SYNC_FLUSH);
        used += room - z.avail_out;
        output_pending = z.avail_out == 0;
        if (used > max_size) {
            status = InflateStatus::kTooBig;
            break;
        }
        if (rc == Z_STREAM_END) {
            // §7.2.3.4: a BFINAL block ends the DEFLATE stream, not the message nor the LZ77
            // context. inflateResetKeep starts a new stream over the same window in O(1), so
            // a payload of many tiny final blocks stays cheap.
            if (inflateResetKeep(&z) != Z_OK) {
                status = InflateStatus::kCorrupt;
                break;
            }
            // Ended together with the payload: the tail would only open an unfinished block.
            stream_ended = !in_tail && z.avail_in == 0 && left == 0;
            boundary = true;
            output_pending = false;
            continue;
        }
        if (rc == Z_BUF_ERROR) {
            // No progress possible: expected once the input is used up and output had room.
            if (z.avail_in != 0 && z.avail_out != 0) {
                status = InflateStatus::kCorrupt;
                break;
            }
        } else if (rc != Z_OK) {
            status = InflateStatus::kCorrupt;  // Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR
            break;
        }
        stream_ended = false;
        // data_type bit 128: zlib stopped where a block header is expected.
        boundary = (z.data_type & 128) != 0;
    }
    // The message must end between blocks; otherwise it was truncated and the next message
    // would be decoded from the middle of a block.
    if (status == InflateStatus::kOk && !boundary) {
        status = InflateStatus::kCorrupt;
    }
    if (status != InflateStatus::kOk) {
        out->resize(original);
        inflateReset(&z);  // the connection is failing; leave a sane stream behind
    } else {
        out->resize(used);
        if (!takeover_) {
            inflateReset(&z);
        }
    }
    z.next_in = nullptr;
    z.avail_in = 0;
    z.next_out = nullptr;
    z.avail_out = 0;
    return status;
}

// --- Deflater ---

// Lazily created like InflateStream: deflate state is ~2^(bits+2) + 2^(memLevel+9) bytes,
// 256 KiB at 15 bits, and a connection that never sends must not pay for it.
struct DeflateStream {
    z_stream z{};
    ~DeflateStream() { deflateEnd(&z); }
};

struct Deflater::State {
    std::unique_ptr<DeflateStream> stream;
    uint8_t window_bits = 15;
};

Deflater::Deflater(uint8_t window_bits, bool takeover, uint8_t mem_level)
    : s_(std::make_unique<State>()),
      takeover_(takeover),
      mem_level_(std::clamp<uint8_t>(mem_level, 1, 9)) {
    s_->window_bits = window_bits;
}

Deflater::~Deflater() = default;

namespace {

// Stored (uncompressed) DEFLATE blocks, used only if zlib cannot allocate its state: still a
// valid permessage-deflate payload, and it keeps the peer's context consistent.
void appendStored(std::span<const uint8_t> in, std::string* out) {
    size_t pos = 0;
    do {
        const size_t n = std::min<size_t>(in.size() - pos, 65535);
        const char header[5] = {0x00, static_cast<char>(n & 0xFF), static_cast<char>(n >> 8),
                                static_cast<char>(~n & 0xFF), static_cast<char>((~n >> 8) & 0xFF)};
        out->append(header, sizeof(header));
        out->append(reinterpret_cast<const char*>(in.data()) + pos, n);
        pos += n;
    } while (pos < in.size());
    out->push_back('\0');  // the empty stored block of the flush, minus its stripped tail
}

}  // namespace

void Deflater::deflateMessage(std::span<const uint8_t> in, std::string* out) {
    if (in.empty()) {
        // §7.2.3.6: an empty message is a single 0x00 (an empty stored block, tail stripped).
        // zlib would emit nothing for a second flush in a row.
        out->push_back('\0');
        return;
    }
    const int bits = zlibWindowBits(s_->window_bits);
    if (!s_->stream) {
        auto stream = std::make_unique<DeflateStream>();
        if (deflateInit2(&stream->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, mem_level_,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            appendStored(in, out);
            return;
        }
        s_->stream = std::move(stream);
    }
    z_stream& z = s_->stream->z;
    const size_t start = out->size();
    const uint8_t* next = in.data();
    size_t left = in.size();
    for (;;) {
        if (z.avail_in == 0 && left > 0) {
            const size_t n = std::min<size_t>(left, UINT_MAX);
            z.next_in = const_cast<Bytef*>(next);
            z.avail_in = static_cast<uInt>(n);
            next += n;
            left -= n;
        }
        const size_t have = out->size();
        // deflateBound does not count the flush marker; +16 covers it.
        const size_t room = std::min<size_t>(
            std::max<size_t>(deflateBound(&z, static_cast<uLong>(z.avail_in)) + 16, 4096),
            UINT_MAX);
        out->resize(have + room);
        z.next_out = reinterpret_cast<Bytef*>(out->data() + have);
        z.avail_out = static_cast<uInt>(room);
        const int rc = deflate(&z, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        out->resize(have + room - z.avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            break;  // cannot happen with a valid stream; what was produced is still valid
        }
        if (left == 0 && z.avail_in == 0 && z.avail_out != 0) {
            break;  // flushed completely
        }
    }
    // §7.2.1: drop the 00 00 FF FF that ends a sync flush.
    if (out->size() - start >= 4 &&
        std::memcmp(out->data() + out->size() - 4, kTail, sizeof(kTail)) == 0) {
        out->resize(out->size() - 4);
    }
    if (!takeover_) {
        deflateReset(&z);
    }
    z.next_in = nullptr;
    z.avail_in = 0;
    z.next_out = nullptr;
    z.avail_out = 0;
}

}  // namespace sb::ws
