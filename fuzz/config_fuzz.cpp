// Fuzzes the config loader (toml++ and the schema walk): any text either loads or yields an
// error message; never a crash, a leak or undefined behaviour. A loaded config is also described
// and compared with the defaults, as check-config and SIGHUP do.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto loaded = sb::server::loadText(text, "fuzz.toml");
    if (loaded) {
        (void)sb::server::describe(*loaded);
        (void)sb::server::restartOnlyChanges(sb::server::LoadedConfig{}, *loaded);
    } else if (loaded.error().message.empty()) {
        __builtin_trap();  // every refusal says why
    }
    return 0;
}
