// The Redis engine's decoders: RESP replies (hiredis's reader and our conversion of nested
// replies), publication messages and presence values. Client-supplied bytes travel inside
// these, so none may crash or misread on any input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engines/redis/redis_conn.h"
#include "engines/redis/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)sb::engines::redis::parseReplies(in);
    if (auto p = sb::engines::redis::parsePublication(in)) {
        // Fields are views into the input.
        if (p->epoch.data() < in.data() || p->data.data() + p->data.size() > in.data() + size) {
            __builtin_trap();
        }
    }
    if (auto who = sb::engines::redis::decodePresence(in)) {
        // What decodes encodes back to the same bytes after the node part.
        const std::string again = sb::engines::redis::encodePresence(in[0] == '1', {}, *who);
        const size_t nl = in.find('\n');
        if (std::string_view(again).substr(again.find('\n')) != in.substr(nl)) {
            __builtin_trap();
        }
    }
    return 0;
}
