// Unguessable identifiers for the broker: channel epochs and session ids, from the kernel's
// CSPRNG (getrandom), so a restarted server never reuses an epoch a client still holds.
#pragma once

#include <cstddef>
#include <string>

namespace sb::broker {

// `bytes` random bytes as 2*bytes lowercase hex characters. Thread-safe. Costs one syscall.
std::string randomHex(size_t bytes);

}  // namespace sb::broker
