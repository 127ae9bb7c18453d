// SSE / long-polling event ids (server/session_open.h): Last-Event-ID and lastEventId come from
// the client. Any input is parsed without crashing, and what parses re-encodes to an id that
// parses to the same position (one meaning per id).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/session_open.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto pos = sb::server::parseEventId(in);
    if (!pos) {
        return 0;
    }
    const std::string again = sb::server::encodeEventId(*pos);
    auto back = sb::server::parseEventId(again);
    if (!back || back->session != pos->session || back->channels != pos->channels) {
        std::abort();
    }
    return 0;
}
