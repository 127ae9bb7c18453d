// The cold, non-template half of MessageReader: spill buffer management, moves, fragments and
// inflation. Kept out of the header so the inlined hot path stays small.
#include "ws/message_reader.h"

#include <utility>

namespace sb::ws {

static_assert(sizeof(MessageReader) <= 48, "one per connection: keep the reader small");

MessageReader::MessageReader(MessageReader&& other) noexcept
    : spill_(std::exchange(other.spill_, nullptr)),
      frame_remaining_(other.frame_remaining_),
      utf8_(other.utf8_),
      header_len_(other.header_len_),
      frame_op_(other.frame_op_),
      msg_op_(other.msg_op_),
      mask_phase_(other.mask_phase_),
      flags_(other.flags_) {
    std::memcpy(mask_key_, other.mask_key_, sizeof(mask_key_));
    std::memcpy(header_, other.header_, sizeof(header_));
    other = MessageReader();
}

MessageReader& MessageReader::operator=(MessageReader&& other) noexcept {
    if (this != &other) {
        releaseSpill();
        spill_ = std::exchange(other.spill_, nullptr);
        frame_remaining_ = other.frame_remaining_;
        std::memcpy(mask_key_, other.mask_key_, sizeof(mask_key_));
        utf8_ = other.utf8_;
        std::memcpy(header_, other.header_, sizeof(header_));
        header_len_ = other.header_len_;
        frame_op_ = other.frame_op_;
        msg_op_ = other.msg_op_;
        mask_phase_ = other.mask_phase_;
        flags_ = other.flags_;
        // Leave the source idle and empty.
        other.frame_remaining_ = 0;
        other.utf8_.reset();
        other.header_len_ = 0;
        other.frame_op_ = 0;
        other.msg_op_ = 0;
        other.mask_phase_ = 0;
        other.flags_ = 0;
    }
    return *this;
}

size_t MessageReader::bufferedBytes() const {
    return spill_ == nullptr ? 0 : sizeof(Spill) + spill_->message.capacity();
}

// Appends to the split header until it is complete (its size is known once 2 bytes are in).
bool MessageReader::fillHeader(uint8_t*& p, uint8_t* end) {
    for (;;) {
        const size_t need = header_len_ < 2 ? 2 : frameHeaderSizeFromByte1(header_[1]);
        if (header_len_ >= need) {
            return true;
        }
        const size_t take = std::min(need - header_len_, static_cast<size_t>(end - p));
        if (take == 0) {
            return false;
        }
        std::memcpy(header_ + header_len_, p, take);
        header_len_ = static_cast<uint8_t>(header_len_ + take);
        p += take;
    }
}

void MessageReader::stashHeader(const uint8_t* p, const uint8_t* end) {
    const auto n = static_cast<size_t>(end - p);  // < the header's size <= 14
    std::memcpy(header_, p, n);
    header_len_ = static_cast<uint8_t>(n);
}

void MessageReader::openMessage(const FrameHeader& fh) {
    msg_op_ = static_cast<uint8_t>(fh.opcode);
    if (fh.rsv1) {
        flags_ |= kMsgCompressed;
    } else {
        flags_ &= static_cast<uint8_t>(~kMsgCompressed);
    }
    utf8_.reset();
    spill().message.clear();
}

// Adds payload bytes of the open message. Uncompressed text is validated as it arrives so an
// invalid byte fails the connection at once, not at the end of the message (Autobahn 6.4).
// Compressed text can only be checked after inflating.
WsError MessageReader::appendFragment(const uint8_t* p, size_t len) {
    if (len == 0) {
        return WsError::kNone;
    }
    if (msg_op_ == static_cast<uint8_t>(Opcode::kText) && (flags_ & kMsgCompressed) == 0 &&
        !utf8_.feed(p, len)) {
        return WsError::kInvalidUtf8;
    }
    std::vector<uint8_t>& buf = spill_->message;
    buf.insert(buf.end(), p, p + len);
    return WsError::kNone;
}

WsError MessageReader::inflate(const uint8_t* p, size_t len, const ReaderConfig& cfg,
                               Inflater* inflater, Opcode op, std::string* out) {
    if (inflater == nullptr) {
        return WsError::kInflateFailed;  // RSV1 accepted without a decompressor: fail safe
    }
    switch (inflater->inflateMessage(std::span<const uint8_t>(p, len), cfg.max_message_size, out)) {
        case InflateStatus::kOk:
            break;
        case InflateStatus::kTooBig:
            return WsError::kMessageTooBig;
        case InflateStatus::kCorrupt:
            return WsError::kInflateFailed;
    }
    if (op == Opcode::kText && !isValidUtf8(std::string_view(*out))) {
        return WsError::kInvalidUtf8;
    }
    return WsError::kNone;
}

MessageReader::Spill& MessageReader::spill() {
    if (spill_ == nullptr) {
        spill_ = new Spill;
    }
    return *spill_;
}

void MessageReader::releaseSpill() {
    delete spill_;
    spill_ = nullptr;
}

}  // namespace sb::ws
