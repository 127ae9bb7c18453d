// Fuzzes the config reader: any input either parses or yields an error; never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/toml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto doc = sb::config::parseToml({reinterpret_cast<const char*>(data), size});
    if (doc) {
        for (const auto& [key, value] : *doc) {
            (void)value.typeName();
        }
    }
    return 0;
}
