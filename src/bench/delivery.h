// What a fanout publication carries and how a subscriber checks what it receives: the stamp
// (publisher, sequence number, send time) written into every payload, the per-publisher
// sequence tracker that tells loss, duplicates and reordering apart, and the few JSON scans
// the native protocol needs (the bench reads only `type`, `code`, `data` and `gap`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb::bench {

// "sb1:<publisher>:<seq>:<send ns>:" then 'x' padding up to `size` bytes. Plain ASCII, so it
// is valid UTF-8 text and a valid JSON string body (the native `data`).
struct Stamp {
    uint32_t publisher = 0;
    uint64_t seq = 0;
    uint64_t sent_ns = 0;
};
void writeStamp(std::string* out, const Stamp& s, size_t size);
// Finds the first stamp in `payload` (anywhere: a native `message` carries it inside its
// JSON). False when there is none or it is malformed.
bool findStamp(std::string_view payload, Stamp* out);
// The stamp that starts `payload` exactly (the receive path's fast case: a plain payload, or
// a native message read past its `"data":"`). False when there is none there.
bool stampAt(std::string_view payload, Stamp* out);

// Per (subscriber, publisher): every sequence number below next() has arrived or is a
// recorded hole. An arrival in a hole is late (out of order); one that is neither is a
// duplicate. Whatever stays in holes (and past the last arrival) was lost. Memory grows only
// with the number of disjoint holes.
class SequenceTracker {
public:
    enum class Verdict : uint8_t { kInOrder, kLate, kDuplicate };

    Verdict onReceive(uint64_t seq);
    uint64_t unique() const { return unique_; }
    uint64_t next() const { return next_; }
    // Sequence numbers below next() that never arrived.
    uint64_t holes() const;

private:
    uint64_t next_ = 0;
    uint64_t unique_ = 0;
    std::vector<std::pair<uint64_t, uint64_t>> holes_;  // [lo, hi), sorted, disjoint
};

// Native protocol scans. They expect the server's compact JSON (docs/protocol.md) and
// tolerate whitespace around ':'; they do not validate the rest of the object.
// The string value of top-level-looking key `key` ("" when absent or not a string).
std::string_view jsonStringField(std::string_view json, std::string_view key);
// True when `key` is present with the literal `true`.
bool jsonTrueField(std::string_view json, std::string_view key);
// The unsigned integer value of `key`; false when absent or not a plain unsigned integer.
bool jsonUintField(std::string_view json, std::string_view key, uint64_t* out);

}  // namespace sb::bench
