// The shared board of `fanout --flow delivery` (bench/flow.h).
#include "bench/flow.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

namespace sb::bench {

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the board is shared across processes");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "the board is shared across processes");

base::Result<std::unique_ptr<FlowBoard>> FlowBoard::create(uint32_t procs, uint32_t publishers,
                                                           bool shared) {
    std::unique_ptr<FlowBoard> b(new FlowBoard());
    b->procs_ = std::max<uint32_t>(1, procs);
    b->publishers_ = publishers;
    b->shared_ = shared;
    // One row of entries per process, each row on cache lines of its own (processes write
    // only their row; the publisher's process reads every row).
    constexpr size_t kPerLine = 64 / sizeof(uint64_t);
    b->row_ = (size_t{publishers} + kPerLine - 1) / kPerLine * kPerLine;
    const size_t done_bytes = b->row_ * b->procs_ * sizeof(uint64_t);
    const size_t waiting_bytes = std::max<size_t>(1, publishers) * sizeof(uint32_t);
    b->mem_size_ = done_bytes + waiting_bytes;
    const int flags = MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE);
    void* mem = mmap(nullptr, b->mem_size_, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (mem == MAP_FAILED) {
        return base::fail(std::string("flow board: mmap: ") + std::strerror(errno));
    }
    b->mem_ = mem;
    b->done_ = static_cast<std::atomic<uint64_t>*>(mem);
    for (size_t i = 0; i < b->row_ * b->procs_; ++i) {
        new (&b->done_[i]) std::atomic<uint64_t>(0);
    }
    b->waiting_ = reinterpret_cast<std::atomic<uint32_t>*>(static_cast<char*>(mem) + done_bytes);
    for (uint32_t i = 0; i < std::max<uint32_t>(1, publishers); ++i) {
        new (&b->waiting_[i]) std::atomic<uint32_t>(0);
    }
    b->efd_ = std::make_unique<int[]>(b->procs_);
    for (uint32_t i = 0; i < b->procs_; ++i) {
        b->efd_[i] = -1;
    }
    if (shared) {
        for (uint32_t i = 0; i < b->procs_; ++i) {
            b->efd_[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (b->efd_[i] < 0) {
                return base::fail(std::string("flow board: eventfd: ") + std::strerror(errno));
            }
        }
    }
    return b;
}

FlowBoard::~FlowBoard() {
    if (efd_) {
        for (uint32_t i = 0; i < procs_; ++i) {
            if (efd_[i] >= 0) {
                ::close(efd_[i]);
            }
        }
    }
    if (mem_ != nullptr) {
        munmap(mem_, mem_size_);
    }
}

uint64_t FlowBoard::completed(uint32_t pub) const {
    uint64_t m = kNone;
    for (uint32_t p = 0; p < procs_; ++p) {
        m = std::min(m, slot(p, pub).load(std::memory_order_acquire));
    }
    return m;
}

void FlowBoard::wake(uint32_t proc) const {
    if (proc < procs_ && efd_[proc] >= 0) {
        const uint64_t one = 1;
        while (::write(efd_[proc], &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

int FlowBoard::eventFd(uint32_t proc) const {
    return proc < procs_ ? efd_[proc] : -1;
}

}  // namespace sb::bench
