// getrandom(2) with a fallback to std::random_device (which reads the same kernel source) for
// kernels or sandboxes without the syscall.
#include "broker/random_id.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <random>

namespace sb::broker {
namespace {

void fillRandom(uint8_t* out, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = ::getrandom(out + done, n - done, 0);
        if (r > 0) {
            done += static_cast<size_t>(r);
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (done < n) {
        thread_local std::random_device rd;
        for (; done < n; ++done) {
            out[done] = static_cast<uint8_t>(rd());
        }
    }
}

}  // namespace

std::string randomHex(size_t bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    uint8_t raw[64];
    std::string out;
    out.reserve(bytes * 2);
    while (bytes > 0) {
        size_t n = bytes < sizeof(raw) ? bytes : sizeof(raw);
        fillRandom(raw, n);
        for (size_t i = 0; i < n; ++i) {
            out.push_back(kHex[raw[i] >> 4]);
            out.push_back(kHex[raw[i] & 0xf]);
        }
        bytes -= n;
    }
    return out;
}

}  // namespace sb::broker
