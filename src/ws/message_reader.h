// RFC 6455 §5-§6 receive path: turns the bytes of one connection into whole messages and
// control frames. Pure (no I/O); the handler is a template parameter, so no virtual calls.
// Complete frames are parsed and unmasked in place in the caller's receive buffer; only a frame
// split across reads or a fragmented message is copied, into a lazily allocated spill buffer.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/mask.h"
#include "ws/types.h"
#include "ws/utf8.h"

namespace sb::ws {

// Shared by all connections of a route: not stored per connection.
struct ReaderConfig {
    Role role = Role::kServer;
    // Applies to the reassembled (and inflated) message. 16 MiB: big enough for any chat or
    // sync payload, small enough that a few hostile connections cannot exhaust memory.
    size_t max_message_size = 16u << 20;
    // permessage-deflate negotiated: RSV1 allowed on the first frame of a data message.
    bool compression = false;
};

enum class ReadResult : uint8_t { kContinue, kStopped };

// What consume() calls. Spans are valid only during the call (they point into the caller's
// receive buffer, the reader's spill buffer or an inflate buffer); the handler may modify the
// bytes. After onClose (the caller echoes the close, §5.5.1) or onError (the caller closes
// with closeCodeFor(e)) consume() returns kStopped.
//   bool onMessage(Opcode op, std::span<uint8_t> payload);  // kText or kBinary; complete;
//                                                           // text is valid UTF-8; inflated
//   bool onPing(std::span<uint8_t> payload);
//   bool onPong(std::span<uint8_t> payload);
//   void onClose(uint16_t code, std::string_view reason);   // validated; 1005 if no payload
//   void onError(WsError e);                                // protocol violation
// Returning false from onMessage/onPing/onPong means "stop, the connection is closing".
// No handler may call consume() on the same reader (no re-entrancy); destroying the reader
// inside a callback is not allowed (mark the connection closing instead).
template <class H>
concept MessageHandler = requires(H& h, Opcode op, std::span<uint8_t> s, uint16_t code,
                                  std::string_view reason, WsError e) {
    { h.onMessage(op, s) } -> std::convertible_to<bool>;
    { h.onPing(s) } -> std::convertible_to<bool>;
    { h.onPong(s) } -> std::convertible_to<bool>;
    h.onClose(code, reason);
    h.onError(e);
};

namespace detail {

// Bytes a compressed message may occupy on the wire. Deflate can expand incompressible data a
// little (stored blocks: 5 bytes per <= 64 KiB), so a message at the inflated limit must still
// fit; the inflater enforces the real limit on its output.
constexpr uint64_t compressedLimit(size_t max_message_size) {
    const uint64_t m = max_message_size;
    const uint64_t slack = (m >> 8) + 64;
    return m > UINT64_MAX - slack ? UINT64_MAX : m + slack;
}

}  // namespace detail

// Per-connection receive state. One loop thread only. 48 bytes and no heap memory while idle.
class MessageReader {
public:
    MessageReader() = default;
    ~MessageReader() { releaseSpill(); }
    MessageReader(MessageReader&& other) noexcept;
    MessageReader& operator=(MessageReader&& other) noexcept;
    MessageReader(const MessageReader&) = delete;
    MessageReader& operator=(const MessageReader&) = delete;

    // Consumes all `len` bytes (unmasking them in place; `data` is the caller's receive buffer,
    // valid only during the call). Partial frame headers (<= 14 B), partial frames and
    // fragmented messages are buffered internally; a complete unfragmented uncompressed frame
    // that lies entirely inside `data` is delivered zero-copy as a span into `data`.
    // Control frames are delivered as soon as they are complete, also between the fragments of
    // a message. Returns kStopped after onClose/onError or a handler returning false; further
    // calls return kStopped immediately. `inflater` may be null unless cfg.compression (a
    // compressed message without one fails with kInflateFailed).
    template <class Handler>
    ReadResult consume(uint8_t* data, size_t len, const ReaderConfig& cfg, Inflater* inflater,
                       Handler& h);

    // Heap memory held for partial frames/messages (0 when idle).
    size_t bufferedBytes() const;
    bool stopped() const { return (flags_ & kDone) != 0; }

private:
    // Partial data: the fragments of the open message (compressed bytes if it is compressed)
    // and a control frame split across reads (which may arrive between fragments).
    struct Spill {
        std::vector<uint8_t> message;
        uint8_t control[kMaxControlPayload];
        uint8_t control_len = 0;
    };

    enum Flag : uint8_t {
        kInFrame = 1 << 0,        // a frame's payload continues in the next read
        kFrameFin = 1 << 1,       // ...and that frame has FIN set
        kFrameMasked = 1 << 2,    // ...and is masked (mask_key_, mask_phase_ valid)
        kMsgCompressed = 1 << 3,  // the open message had RSV1 on its first frame
        kDone = 1 << 4,           // closed or failed: consume() does nothing any more
    };

    template <class Handler>
    bool beginFrame(const FrameHeader& fh, WsError e, uint8_t*& p, uint8_t* end,
                    const ReaderConfig& cfg, Inflater* inflater, Handler& h);
    template <class Handler>
    bool continueFrame(uint8_t*& p, uint8_t* end, const ReaderConfig& cfg, Inflater* inflater,
                       Handler& h);
    template <class Handler>
    bool deliverControl(Opcode op, uint8_t* payload, size_t len, Handler& h);
    template <class Handler>
    bool deliverUnfragmented(const FrameHeader& fh, uint8_t* payload, size_t len,
                             const ReaderConfig& cfg, Inflater* inflater, Handler& h);
    template <class Handler>
    bool finishMessage(const ReaderConfig& cfg, Inflater* inflater, Handler& h);

    bool fillHeader(uint8_t*& p, uint8_t* end);
    void stashHeader(const uint8_t* p, const uint8_t* end);
    WsError checkDataFrame(const FrameHeader& fh, const ReaderConfig& cfg) const;
    void openMessage(const FrameHeader& fh);
    WsError appendFragment(const uint8_t* p, size_t len);
    static WsError inflate(const uint8_t* p, size_t len, const ReaderConfig& cfg,
                           Inflater* inflater, Opcode op, std::string* out);
    Spill& spill();
    void releaseSpill();
    ReadResult stop() {
        flags_ |= kDone;
        releaseSpill();
        return ReadResult::kStopped;
    }

    Spill* spill_ = nullptr;                // null unless a frame or message is partial
    uint64_t frame_remaining_ = 0;          // payload bytes of the current frame still to come
    uint8_t mask_key_[4] = {};              // current frame's key (kFrameMasked)
    Utf8Validator utf8_;                    // the open uncompressed text message, as it arrives
    uint8_t header_[kMaxFrameHeader] = {};  // a header split across reads
    uint8_t header_len_ = 0;
    uint8_t frame_op_ = 0;    // opcode of the current partial frame (kInFrame)
    uint8_t msg_op_ = 0;      // kText/kBinary while a message is open (fragmented or partial)
    uint8_t mask_phase_ = 0;  // key phase of the next payload byte of the current frame
    uint8_t flags_ = 0;
};

// ---- Inline and template implementation ---------------------------------------------------

// RFC 6455 §5.4 sequencing and the size limit, checked when a data frame's header arrives so
// that an oversized message fails before any of it is buffered.
inline WsError MessageReader::checkDataFrame(const FrameHeader& fh, const ReaderConfig& cfg) const {
    const bool continuation = fh.opcode == Opcode::kContinuation;
    if (continuation && msg_op_ == 0) {
        return WsError::kUnexpectedContinuation;
    }
    if (!continuation && msg_op_ != 0) {
        return WsError::kExpectedContinuation;
    }
    const uint64_t so_far = continuation ? spill_->message.size() : 0;
    const bool compressed = continuation ? (flags_ & kMsgCompressed) != 0 : fh.rsv1;
    const uint64_t limit =
        compressed ? detail::compressedLimit(cfg.max_message_size) : cfg.max_message_size;
    if (fh.payload_len > limit - so_far) {
        return WsError::kMessageTooBig;
    }
    return WsError::kNone;
}

template <class Handler>
ReadResult MessageReader::consume(uint8_t* data, size_t len, const ReaderConfig& cfg,
                                  Inflater* inflater, Handler& h) {
    static_assert(MessageHandler<Handler>, "see the handler contract above MessageHandler");
    if ((flags_ & kDone) != 0) {
        return ReadResult::kStopped;
    }
    uint8_t* p = data;
    uint8_t* const end = data + len;

    // 1. The rest of a frame whose payload straddled the previous read.
    if ((flags_ & kInFrame) != 0) {
        if (!continueFrame(p, end, cfg, inflater, h)) {
            return stop();
        }
        if ((flags_ & kInFrame) != 0) {
            return ReadResult::kContinue;  // all of data was payload
        }
    }
    // 2. A header split across reads.
    if (header_len_ != 0) {
        if (!fillHeader(p, end)) {
            return ReadResult::kContinue;
        }
        FrameHeader fh;
        const WsError e = decodeFrameHeader(header_, cfg.role, cfg.compression, &fh);
        header_len_ = 0;
        if (!beginFrame(fh, e, p, end, cfg, inflater, h)) {
            return stop();
        }
    }
    // 3. The hot loop: whole headers in the buffer, payloads mostly too.
    while (p != end) {
        const auto avail = static_cast<size_t>(end - p);
        if (avail < 2 || avail < frameHeaderSizeFromByte1(p[1])) {
            stashHeader(p, end);
            break;
        }
        FrameHeader fh;
        const WsError e = decodeFrameHeader(p, cfg.role, cfg.compression, &fh);
        p += fh.size;  // only meaningful without error; beginFrame stops on error
        if (!beginFrame(fh, e, p, end, cfg, inflater, h)) {
            return stop();
        }
    }
    return ReadResult::kContinue;
}

// Starts the frame described by fh, whose payload begins at p. Returns false when the
// connection is done (the handler has been told why, or asked to stop).
template <class Handler>
bool MessageReader::beginFrame(const FrameHeader& fh, WsError e, uint8_t*& p, uint8_t* end,
                               const ReaderConfig& cfg, Inflater* inflater, Handler& h) {
    const bool control = isControl(fh.opcode);
    if (e == WsError::kNone && !control) {
        e = checkDataFrame(fh, cfg);  // sequencing and size, before anything is buffered
    }
    if (e != WsError::kNone) {
        h.onError(e);
        return false;
    }
    if (fh.payload_len <= static_cast<uint64_t>(end - p)) {
        // The whole payload is here: unmask in place, no copy for control frames and
        // unfragmented messages.
        uint8_t* payload = p;
        const auto n = static_cast<size_t>(fh.payload_len);
        p += n;
        if (fh.masked) {
            applyMask(payload, n, fh.mask_key, 0);
        }
        if (control) {
            return deliverControl(fh.opcode, payload, n, h);
        }
        if (fh.opcode != Opcode::kContinuation) {
            if (fh.fin) {
                return deliverUnfragmented(fh, payload, n, cfg, inflater, h);
            }
            openMessage(fh);
        }
        if (const WsError fe = appendFragment(payload, n); fe != WsError::kNone) {
            h.onError(fe);
            return false;
        }
        return fh.fin ? finishMessage(cfg, inflater, h) : true;
    }
    // The payload continues in later reads: remember the frame, buffer what is here.
    frame_remaining_ = fh.payload_len;
    frame_op_ = static_cast<uint8_t>(fh.opcode);
    mask_phase_ = 0;
    std::memcpy(mask_key_, fh.mask_key, 4);
    flags_ = static_cast<uint8_t>((flags_ & kMsgCompressed) | kInFrame | (fh.fin ? kFrameFin : 0) |
                                  (fh.masked ? kFrameMasked : 0));
    if (control) {
        spill().control_len = 0;
    } else if (fh.opcode != Opcode::kContinuation) {
        openMessage(fh);
    }
    return continueFrame(p, end, cfg, inflater, h);
}

// Takes as much of the current partial frame's payload as [p, end) holds.
template <class Handler>
bool MessageReader::continueFrame(uint8_t*& p, uint8_t* end, const ReaderConfig& cfg,
                                  Inflater* inflater, Handler& h) {
    const auto n =
        static_cast<size_t>(std::min<uint64_t>(frame_remaining_, static_cast<uint64_t>(end - p)));
    if (n == 0) {
        return true;  // frames of length 0 never get here, so the frame is still open
    }
    if ((flags_ & kFrameMasked) != 0) {
        mask_phase_ = static_cast<uint8_t>(applyMask(p, n, mask_key_, mask_phase_));
    }
    const auto op = static_cast<Opcode>(frame_op_);
    const bool control = isControl(op);
    if (control) {
        Spill& s = spill();
        std::memcpy(s.control + s.control_len, p, n);  // n <= 125 - control_len by the header
        s.control_len = static_cast<uint8_t>(s.control_len + n);
    } else if (const WsError e = appendFragment(p, n); e != WsError::kNone) {
        h.onError(e);  // fail fast: invalid UTF-8 is reported before the frame ends
        return false;
    }
    p += n;
    frame_remaining_ -= n;
    if (frame_remaining_ != 0) {
        return true;
    }
    const bool fin = (flags_ & kFrameFin) != 0;
    flags_ &= static_cast<uint8_t>(~(kInFrame | kFrameFin | kFrameMasked));
    if (control) {
        Spill& s = *spill_;
        if (!deliverControl(op, s.control, s.control_len, h)) {
            return false;
        }
        if (msg_op_ == 0) {
            releaseSpill();  // the spill existed only for this control frame
        }
        return true;
    }
    return fin ? finishMessage(cfg, inflater, h) : true;
}

template <class Handler>
bool MessageReader::deliverControl(Opcode op, uint8_t* payload, size_t len, Handler& h) {
    const std::span<uint8_t> s(payload, len);
    if (op == Opcode::kPing) {
        return h.onPing(s);
    }
    if (op == Opcode::kPong) {
        return h.onPong(s);
    }
    uint16_t code = 0;
    std::string_view reason;
    if (const WsError e = parseClosePayload(payload, len, &code, &reason); e != WsError::kNone) {
        h.onError(e);
        return false;
    }
    h.onClose(code, reason);
    return false;  // §5.5.1: nothing after a close frame is data
}

// A text/binary message in one frame that is entirely in the buffer: the zero-copy path.
template <class Handler>
bool MessageReader::deliverUnfragmented(const FrameHeader& fh, uint8_t* payload, size_t len,
                                        const ReaderConfig& cfg, Inflater* inflater, Handler& h) {
    if (fh.rsv1) {
        std::string out;
        if (const WsError e = inflate(payload, len, cfg, inflater, fh.opcode, &out);
            e != WsError::kNone) {
            h.onError(e);
            return false;
        }
        return h.onMessage(fh.opcode,
                           std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
    }
    if (fh.opcode == Opcode::kText && !isValidUtf8(payload, len)) {
        h.onError(WsError::kInvalidUtf8);
        return false;
    }
    return h.onMessage(fh.opcode, std::span<uint8_t>(payload, len));
}

// The final fragment of the open message has arrived: deliver it from the spill buffer.
template <class Handler>
bool MessageReader::finishMessage(const ReaderConfig& cfg, Inflater* inflater, Handler& h) {
    const auto op = static_cast<Opcode>(msg_op_);
    msg_op_ = 0;
    std::vector<uint8_t>& buf = spill_->message;
    if ((flags_ & kMsgCompressed) != 0) {
        flags_ &= static_cast<uint8_t>(~kMsgCompressed);
        std::string out;
        if (const WsError e = inflate(buf.data(), buf.size(), cfg, inflater, op, &out);
            e != WsError::kNone) {
            h.onError(e);
            return false;
        }
        releaseSpill();
        return h.onMessage(op,
                           std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
    }
    if (op == Opcode::kText && !utf8_.complete()) {  // ended inside a code point
        h.onError(WsError::kInvalidUtf8);
        return false;
    }
    const bool ok = h.onMessage(op, std::span<uint8_t>(buf.data(), buf.size()));
    releaseSpill();
    return ok;
}

}  // namespace sb::ws
