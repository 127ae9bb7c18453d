// Delivery flow control of `fanout --flow delivery` across the worker processes of one run.
// Each process posts, per publisher, how many of that publisher's publications every one of
// its own subscribers in the publisher's room has received or skipped; the publisher's process
// takes the minimum over the processes and keeps at most --window publications beyond it.
// With --procs the board lives in memory shared by the processes (mapped before the fork), and
// a process that frees a slot for a publisher waiting in another process wakes that process
// through its eventfd. In one process it is plain memory and nobody needs waking.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/result.h"

namespace sb::bench {

class FlowBoard {
public:
    // A process with no subscriber in the publisher's room posts kNone.
    static constexpr uint64_t kNone = UINT64_MAX;

    // `shared`: the memory and eventfds outlive a fork (--procs). Every entry starts at 0: a
    // process that has not posted yet holds its publishers back.
    static base::Result<std::unique_ptr<FlowBoard>> create(uint32_t procs, uint32_t publishers,
                                                           bool shared);
    ~FlowBoard();
    FlowBoard(const FlowBoard&) = delete;
    FlowBoard& operator=(const FlowBoard&) = delete;

    uint32_t procs() const { return procs_; }
    uint32_t publishers() const { return publishers_; }

    // Process `proc`: all its subscribers of publisher `pub`'s room hold every sequence number
    // below `done` (or kNone).
    void post(uint32_t proc, uint32_t pub, uint64_t done) {
        slot(proc, pub).store(done, std::memory_order_release);
    }
    // The publications of `pub` every subscriber of every process holds (kNone: nobody
    // subscribes to its room).
    uint64_t completed(uint32_t pub) const;

    // The publisher's process marks `pub` as held back by the window; whoever then frees a
    // slot takes the mark and wakes that process (so a wake-up costs a system call only when
    // somebody waits).
    void setWaiting(uint32_t pub) { waiting(pub).store(1, std::memory_order_seq_cst); }
    bool takeWaiting(uint32_t pub) { return waiting(pub).exchange(0) != 0; }
    void wake(uint32_t proc) const;
    // Process `proc`'s wake-up descriptor (readable after wake(proc)); -1 when not shared.
    int eventFd(uint32_t proc) const;

private:
    FlowBoard() = default;
    std::atomic<uint64_t>& slot(uint32_t proc, uint32_t pub) const {
        return done_[size_t{proc} * row_ + pub];
    }
    std::atomic<uint32_t>& waiting(uint32_t pub) const { return waiting_[pub]; }

    uint32_t procs_ = 1;
    uint32_t publishers_ = 0;
    size_t row_ = 0;  // entries per process row, padded to a cache line
    void* mem_ = nullptr;
    size_t mem_size_ = 0;
    bool shared_ = false;
    std::atomic<uint64_t>* done_ = nullptr;
    std::atomic<uint32_t>* waiting_ = nullptr;
    std::unique_ptr<int[]> efd_;
};

}  // namespace sb::bench
