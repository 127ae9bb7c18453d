// Fuzz target for the RFC 6455 frame reader (ws/message_reader.h). Input: one control byte,
// then the bytes a client sends. The reader runs twice in server role — whole buffer, and in
// reads of a size taken from the control byte — and both runs must report the same events
// (differential oracle), besides the invariants checked on every event.
//
// Control byte: bits 0-5 read size - 1 (1..64); bit 6 permessage-deflate on; bit 7 a small
// (1 KiB) message limit so the size checks are reached.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/deflate.h"
#include "ws/message_reader.h"
#include "ws/utf8.h"

namespace {

using sb::ws::Opcode;
using sb::ws::WsError;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "ws_frame_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

struct Recorder {
    size_t max_message_size = 0;
    bool done = false;
    std::vector<std::string> events;

    bool onMessage(Opcode op, std::span<uint8_t> p) {
        check(!done, "event after stop");
        check(op == Opcode::kText || op == Opcode::kBinary, "message opcode");
        check(p.size() <= max_message_size, "message over the limit");
        check(op != Opcode::kText || sb::ws::isValidUtf8(p.data(), p.size()), "text is UTF-8");
        events.push_back(std::string(op == Opcode::kText ? "t" : "b") +
                         std::string(reinterpret_cast<const char*>(p.data()), p.size()));
        return true;
    }
    bool onPing(std::span<uint8_t> p) {
        check(!done && p.size() <= 125, "ping");
        events.push_back("i" + std::string(reinterpret_cast<const char*>(p.data()), p.size()));
        return true;
    }
    bool onPong(std::span<uint8_t> p) {
        check(!done && p.size() <= 125, "pong");
        events.push_back("o" + std::string(reinterpret_cast<const char*>(p.data()), p.size()));
        return true;
    }
    void onClose(uint16_t code, std::string_view reason) {
        check(!done, "close after stop");
        check(code == sb::ws::close_code::kNoStatus || sb::ws::isValidWireCloseCode(code),
              "close code");
        check(reason.size() <= 123 && sb::ws::isValidUtf8(reason), "close reason");
        done = true;
        events.push_back("c" + std::to_string(code) + ":" + std::string(reason));
    }
    void onError(WsError e) {
        check(!done, "error after stop");
        check(e != WsError::kNone, "error kNone");
        done = true;
        events.push_back("e" + std::to_string(static_cast<int>(e)));
    }
};

std::vector<std::string> runReader(const uint8_t* data, size_t size, size_t read_size,
                                   const sb::ws::ReaderConfig& cfg) {
    std::unique_ptr<sb::ws::Inflater> inflater;
    if (cfg.compression) {
        inflater = std::make_unique<sb::ws::Inflater>(15, true);
    }
    sb::ws::MessageReader reader;
    Recorder rec;
    rec.max_message_size = cfg.max_message_size;
    bool stopped = false;
    for (size_t pos = 0; pos < size || pos == 0; pos += read_size) {
        // Each read in its own exactly-sized heap buffer: ASan sees any overrun.
        const size_t n = std::min(read_size, size - pos);
        std::vector<uint8_t> chunk(data + pos, data + pos + n);
        const auto r = reader.consume(chunk.data(), chunk.size(), cfg, inflater.get(), rec);
        check(!stopped || r == sb::ws::ReadResult::kStopped, "stopped is final");
        stopped = r == sb::ws::ReadResult::kStopped;
        check(stopped == rec.done, "kStopped exactly after close/error");
        check(!stopped || reader.bufferedBytes() == 0, "stopped reader holds no memory");
        if (n == 0) {
            break;
        }
    }
    return rec.events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const uint8_t ctl = data[0];
    sb::ws::ReaderConfig cfg;
    cfg.role = sb::ws::Role::kServer;
    cfg.compression = (ctl & 0x40) != 0;
    cfg.max_message_size = (ctl & 0x80) != 0 ? 1024 : 1u << 20;
    const size_t read_size = 1 + (ctl & 0x3F);
    const auto whole = runReader(data + 1, size - 1, size, cfg);
    const auto split = runReader(data + 1, size - 1, read_size, cfg);
    check(whole == split, "split reads give the same events as one read");
    return 0;
}
