#include "loop/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "base/log.h"

namespace sb::loop {

namespace {
thread_local EventLoop* t_current = nullptr;
// Tag for the wakeup eventfd in epoll data (never a valid Pollable address).
Pollable* const kWakeTag = reinterpret_cast<Pollable*>(uintptr_t{1});
}  // namespace

uint64_t EventLoop::monotonicMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

EventLoop::EventLoop() : now_ms_(monotonicMs()), timers_(now_ms_), recv_buf_(kRecvBufferSize) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || wake_fd_ < 0) {
        throw std::runtime_error("epoll/eventfd creation failed");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = kWakeTag;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

EventLoop::~EventLoop() {
    for (Pollable* p : dead_) {
        delete p;
    }
    dead_.clear();
    // Objects still alive (the loop stopped with connections open): each destructor disowns.
    while (owned_head_ != nullptr) {
        delete owned_head_;
    }
    if (wake_fd_ >= 0) {
        ::close(wake_fd_);
    }
    if (epfd_ >= 0) {
        ::close(epfd_);
    }
}

bool EventLoop::add(int fd, Pollable* p, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = p;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::modify(int fd, Pollable* p, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = p;
    return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::remove(int fd) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::stop() {
    stop_.store(true, std::memory_order_release);
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof one);
    (void)w;
}

void EventLoop::post(std::function<void()> fn) {
    {
        std::lock_guard lock(posted_mu_);
        posted_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof one);
    (void)w;
}

void EventLoop::destroyLater(Pollable* p) {
    dead_.push_back(p);
}

void EventLoop::own(Pollable* p) {
    p->owned_prev_ = nullptr;
    p->owned_next_ = owned_head_;
    if (owned_head_ != nullptr) {
        owned_head_->owned_prev_ = p;
    }
    owned_head_ = p;
}

void EventLoop::disown(Pollable* p) {
    if (p->owned_prev_ != nullptr) {
        p->owned_prev_->owned_next_ = p->owned_next_;
    } else if (owned_head_ == p) {
        owned_head_ = p->owned_next_;
    } else {
        return;  // not owned
    }
    if (p->owned_next_ != nullptr) {
        p->owned_next_->owned_prev_ = p->owned_prev_;
    }
    p->owned_prev_ = p->owned_next_ = nullptr;
}

void EventLoop::addIterationHook(std::function<void()> fn) {
    hooks_.push_back(std::move(fn));
}

void EventLoop::prependIterationHook(std::function<void()> fn) {
    hooks_.insert(hooks_.begin(), std::move(fn));
}

void EventLoop::defer(std::function<void()> fn) {
    deferred_.push_back(std::move(fn));
}

void EventLoop::readAgain(Pollable* p) {
    again_next_.push_back(p);
}

void EventLoop::drainPosted() {
    uint64_t n;
    while (::read(wake_fd_, &n, sizeof n) > 0) {
    }
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(posted_mu_);
        tasks.swap(posted_);
    }
    for (auto& t : tasks) {
        t();
    }
}

void EventLoop::endIteration() {
    // Deferred work (closes reported to their owners) can queue fan-out that the hooks drain,
    // and a drain can push another connection past its limit, which defers its close: repeat
    // until quiet. Each connection closes once, so this ends.
    std::vector<std::function<void()>> work;
    do {
        while (!deferred_.empty()) {
            work.swap(deferred_);
            for (auto& fn : work) {
                fn();
            }
            work.clear();
        }
        for (auto& h : hooks_) {
            h();
        }
    } while (!deferred_.empty());
    if (!dead_.empty()) {
        // A dying object may still be queued for a read-again pass: drop it from there first.
        if (!again_next_.empty()) {
            std::erase_if(again_next_, [this](Pollable* p) {
                return std::find(dead_.begin(), dead_.end(), p) != dead_.end();
            });
        }
        std::vector<Pollable*> dead;
        dead.swap(dead_);
        for (Pollable* p : dead) {
            delete p;
        }
    }
}

EventLoop* EventLoop::current() {
    return t_current;
}

void EventLoop::run() {
    owner_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    EventLoop* const outer = t_current;
    t_current = this;
    if (net_state_) {
        net_state_->onRunStart();
    }
    epoll_event events[kMaxEvents];
    while (!stop_.load(std::memory_order_acquire)) {
        int timeout = busy_poll_ || !again_next_.empty() ? 0 : timers_.msUntilNextTick(now_ms_);
        int n = epoll_wait(epfd_, events, kMaxEvents, timeout);
        if (n < 0 && errno != EINTR) {
            SB_ERROR("epoll_wait failed: errno %d", errno);
            break;
        }
        now_ms_ = monotonicMs();
        again_.swap(again_next_);
        for (int i = 0; i < n; ++i) {
            Pollable* p = static_cast<Pollable*>(events[i].data.ptr);
            if (p == kWakeTag) {
                drainPosted();
                continue;
            }
            p->onEvents(events[i].events);
        }
        for (Pollable* p : again_) {
            // Skip objects that died during this iteration's events.
            if (std::find(dead_.begin(), dead_.end(), p) == dead_.end()) {
                p->onEvents(EPOLLIN);
            }
        }
        again_.clear();
        timers_.advance(now_ms_);
        endIteration();
    }
    endIteration();
    if (net_state_) {
        net_state_->onRunEnd();
    }
    t_current = outer;
    stop_.store(false, std::memory_order_relaxed);  // run() may be called again
}

}  // namespace sb::loop
