// PubRing: a FIFO of publications in one growable circular buffer, used for channel history and
// a session's un-acked queue. Unlike std::deque it allocates nothing while empty and nothing in
// steady state once it has grown to its working size, so a publish into a full history costs no
// allocation for the history itself.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "broker/engine.h"

namespace sb::broker {

// Not thread-safe: owned by one channel or session, under its lock.
class PubRing {
public:
    size_t size() const { return count_; }
    bool empty() const { return count_ == 0; }
    size_t capacity() const { return buf_.size(); }

    // i-th oldest (0 = front). Precondition: i < size().
    const PubPtr& operator[](size_t i) const { return buf_[wrap(head_ + i)]; }
    const PubPtr& front() const { return buf_[head_]; }
    const PubPtr& back() const { return buf_[wrap(head_ + count_ - 1)]; }

    void pushBack(PubPtr p) {
        if (count_ == buf_.size()) {
            grow();
        }
        buf_[wrap(head_ + count_)] = std::move(p);
        ++count_;
    }

    // Precondition: !empty(). Frees the buffer when a large ring drains completely, so a burst
    // does not pin its peak memory for the life of the owner.
    void popFront() {
        buf_[head_].reset();
        head_ = wrap(head_ + 1);
        if (--count_ == 0) {
            head_ = 0;
            if (buf_.size() > kKeepCapacity) {
                std::vector<PubPtr>().swap(buf_);
            }
        }
    }

    void clear() {
        std::vector<PubPtr>().swap(buf_);
        head_ = 0;
        count_ = 0;
    }

    // Removes every element for which pred(const PubPtr&) is true, keeping the order.
    template <class Pred>
    size_t eraseIf(Pred pred) {
        size_t kept = 0;
        for (size_t i = 0; i < count_; ++i) {
            PubPtr& p = buf_[wrap(head_ + i)];
            if (!pred(static_cast<const PubPtr&>(p))) {
                buf_[wrap(head_ + kept)] = std::move(p);
                ++kept;
            }
        }
        for (size_t i = kept; i < count_; ++i) {
            buf_[wrap(head_ + i)].reset();
        }
        size_t removed = count_ - kept;
        count_ = kept;
        if (count_ == 0) {
            head_ = 0;
        }
        return removed;
    }

private:
    static constexpr size_t kMinCapacity = 8;
    static constexpr size_t kKeepCapacity = 64;  // small rings keep their buffer when drained

    size_t wrap(size_t i) const { return i >= buf_.size() ? i - buf_.size() : i; }

    // Doubles the buffer, unrolling the ring so the oldest element lands at index 0.
    void grow() {
        std::vector<PubPtr> next(buf_.empty() ? kMinCapacity : buf_.size() * 2);
        for (size_t i = 0; i < count_; ++i) {
            next[i] = std::move(buf_[wrap(head_ + i)]);
        }
        buf_.swap(next);
        head_ = 0;
    }

    std::vector<PubPtr> buf_;
    size_t head_ = 0;
    size_t count_ = 0;
};

}  // namespace sb::broker
