// SHA-1 (FIPS 180-4 §6.1) for the WebSocket accept key (RFC 6455 §4.2.2), and nothing else:
// SHA-1 is not collision resistant, and the handshake only needs it as a fixed transform.
// Our own small implementation rather than libcrypto's: the first EVP digest fetch of
// OpenSSL 3 loads its provider tables, about 2.3 MB of resident memory that a plain ws://
// server would otherwise carry for its whole life (docs/benchmarks.md, idle memory).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sb::ws {

// Incremental SHA-1. Any thread; one object per digest (not shared between threads).
class Sha1 {
public:
    static constexpr size_t kDigestSize = 20;

    Sha1() { reset(); }
    void reset();
    void update(const void* data, size_t len);
    // Writes the 20-byte digest; the object must be reset() before it is used again.
    void finish(uint8_t out[kDigestSize]);

private:
    void compress(const uint8_t* block);

    uint32_t h_[5];
    uint64_t total_ = 0;  // bytes hashed so far
    uint8_t block_[64];
    size_t fill_ = 0;  // bytes waiting in block_
};

}  // namespace sb::ws
