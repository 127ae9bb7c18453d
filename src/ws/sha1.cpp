// FIPS 180-4 §6.1.2, the SHA-1 hash computation, written from the standard. Runs once per
// WebSocket handshake over 60 bytes (two blocks), so it favours clarity over unrolling.
#include "ws/sha1.h"

#include <cstring>

namespace sb::ws {

namespace {

constexpr uint32_t rotl(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

uint32_t loadBe32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void storeBe32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

}  // namespace

void Sha1::reset() {
    // §5.3.1: the initial hash value.
    h_[0] = 0x67452301;
    h_[1] = 0xEFCDAB89;
    h_[2] = 0x98BADCFE;
    h_[3] = 0x10325476;
    h_[4] = 0xC3D2E1F0;
    total_ = 0;
    fill_ = 0;
}

void Sha1::compress(const uint8_t* block) {
    // §6.1.2 step 1: the message schedule, kept as a 16-word ring (W[t] for t >= 16 only
    // needs the previous 16 words).
    uint32_t w[16];
    for (int t = 0; t < 16; ++t) {
        w[t] = loadBe32(block + 4 * t);
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
    for (int t = 0; t < 80; ++t) {
        if (t >= 16) {
            w[t & 15] = rotl(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15], 1);
        }
        uint32_t f, k;  // §4.1.1 and §4.2.1: the function and constant of each 20-round stage
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        const uint32_t temp = rotl(a, 5) + f + e + k + w[t & 15];
        e = d;
        d = c;
        c = rotl(b, 30);
        b = a;
        a = temp;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
}

void Sha1::update(const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    total_ += len;
    if (fill_ > 0) {
        const size_t take = len < 64 - fill_ ? len : 64 - fill_;
        std::memcpy(block_ + fill_, p, take);
        fill_ += take;
        p += take;
        len -= take;
        if (fill_ < 64) {
            return;
        }
        compress(block_);
        fill_ = 0;
    }
    for (; len >= 64; p += 64, len -= 64) {
        compress(p);
    }
    if (len > 0) {
        std::memcpy(block_, p, len);
        fill_ = len;
    }
}

void Sha1::finish(uint8_t out[kDigestSize]) {
    // §5.1.1 padding: a 1 bit, zeros up to 56 mod 64 bytes, then the length in bits (64-bit,
    // big-endian).
    const uint64_t bits = total_ * 8;
    block_[fill_++] = 0x80;
    if (fill_ > 56) {
        std::memset(block_ + fill_, 0, 64 - fill_);
        compress(block_);
        fill_ = 0;
    }
    std::memset(block_ + fill_, 0, 56 - fill_);
    storeBe32(block_ + 56, static_cast<uint32_t>(bits >> 32));
    storeBe32(block_ + 60, static_cast<uint32_t>(bits));
    compress(block_);
    for (int i = 0; i < 5; ++i) {
        storeBe32(out + 4 * i, h_[i]);
    }
}

}  // namespace sb::ws
