// In-process and forked execution of a bench run. The parent of a forked run does no network
// I/O: it forwards barrier messages, sums progress and merges results. Pipe frames are
// [type byte][u32 little-endian length][payload]:
//   worker -> parent: 'R' ready, 'P' published (per-room counts), 'S' progress, 'F' result
//   parent -> worker: 'G' go, 'E' expected (per-room totals), 'X' stop
#include "bench/workers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/flow.h"

namespace sb::bench {

namespace {

// Descriptors kept free for the loop, timerfd, pipes and stdio.
constexpr uint64_t kReservedFds = 64;

void putCounts(std::string* out, const std::vector<uint64_t>& v) {
    putVarint(out, v.size());
    for (uint64_t x : v) {
        putVarint(out, x);
    }
}

bool getCounts(std::string_view in, std::vector<uint64_t>* v) {
    uint64_t n = 0;
    if (!getVarint(&in, &n) || n > (1u << 20)) {
        return false;
    }
    v->assign(n, 0);
    for (uint64_t& x : *v) {
        if (!getVarint(&in, &x)) {
            return false;
        }
    }
    return in.empty();
}

// Writes a whole frame to a blocking pipe. False when the reader is gone.
bool writeFrame(int fd, char type, std::string_view payload) {
    std::string frame;
    frame.reserve(5 + payload.size());
    frame.push_back(type);
    const auto len = static_cast<uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) {
        frame.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
    }
    frame.append(payload);
    size_t off = 0;
    while (off < frame.size()) {
        ssize_t w = ::write(fd, frame.data() + off, frame.size() - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        off += static_cast<size_t>(w);
    }
    return true;
}

// Splits complete frames off the front of `buf`; calls fn(type, payload) for each.
template <class Fn>
void takeFrames(std::string* buf, Fn&& fn) {
    size_t off = 0;
    while (buf->size() - off >= 5) {
        uint32_t len = 0;
        for (int i = 0; i < 4; ++i) {
            len |= static_cast<uint32_t>(static_cast<uint8_t>((*buf)[off + 1 + i])) << (8 * i);
        }
        if (buf->size() - off - 5 < len) {
            break;
        }
        fn((*buf)[off], std::string_view(buf->data() + off + 5, len));
        off += 5 + len;
    }
    buf->erase(0, off);
}

// --ready-file: every connection of the run is open.
void touchReadyFile(const std::string& path) {
    if (path.empty()) {
        return;
    }
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        std::fprintf(stderr, "switchboard bench: cannot write %s: %s\n", path.c_str(),
                     std::strerror(errno));
        return;
    }
    std::fclose(f);
}

// Single process: the barriers are immediate (posted so the runner finishes its callback).
class LocalCoordinator final : public Coordinator {
public:
    LocalCoordinator(ProgressSink* sink, std::string ready_file)
        : sink_(sink), ready_file_(std::move(ready_file)) {}
    void onReady(Runner& r) override {
        touchReadyFile(ready_file_);
        r.loop().post([&r] { r.go(); });
    }
    void onPublished(Runner& r, const std::vector<uint64_t>& per_room) override {
        r.loop().post([&r, per_room] { r.setExpected(per_room); });
    }
    void onProgress(Runner&, const Progress& p) override {
        if (sink_ != nullptr) {
            sink_->update(p);
        }
    }

private:
    ProgressSink* sink_;
    std::string ready_file_;
};

// A worker's side of the pipes; the control pipe is read on the runner's loop.
class PipeCoordinator final : public Coordinator, private loop::Pollable {
public:
    PipeCoordinator(int up, int down, FlowBoard* board) : up_(up), down_(down), board_(board) {}
    FlowBoard* flowBoard() override { return board_; }

    void onStart(Runner& r) override {
        runner_ = &r;
        fcntl(down_, F_SETFL, fcntl(down_, F_GETFL) | O_NONBLOCK);
        r.loop().add(down_, this, EPOLLIN | EPOLLRDHUP);
    }
    void onReady(Runner& r) override { send(r, 'R', {}); }
    void onPublished(Runner& r, const std::vector<uint64_t>& per_room) override {
        std::string p;
        putCounts(&p, per_room);
        send(r, 'P', p);
    }
    void onProgress(Runner& r, const Progress& progress) override {
        std::string p;
        serializeProgress(progress, &p);
        send(r, 'S', p);
    }
    void detach(Runner& r) { r.loop().remove(down_); }

private:
    void send(Runner& r, char type, std::string_view payload) {
        if (!writeFrame(up_, type, payload)) {
            r.requestStop();  // the parent is gone: finish quietly
        }
    }
    void onEvents(uint32_t) override {
        char tmp[4096];
        while (true) {
            ssize_t n = ::read(down_, tmp, sizeof tmp);
            if (n > 0) {
                buf_.append(tmp, static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n == 0) {
                runner_->loop().remove(down_);
                runner_->requestStop();
            }
            break;
        }
        takeFrames(&buf_, [this](char type, std::string_view payload) {
            if (type == 'G') {
                runner_->go();
            } else if (type == 'E') {
                std::vector<uint64_t> totals;
                if (getCounts(payload, &totals)) {
                    runner_->setExpected(totals);
                }
            } else if (type == 'X') {
                runner_->requestStop();
            }
        });
    }

    int up_;
    int down_;
    FlowBoard* board_;
    Runner* runner_ = nullptr;
    std::string buf_;
};

[[noreturn]] void workerMain(const BenchOptions& o, Slice slice, int up, int down, FlowBoard* board,
                             const std::atomic<bool>* interrupt) {
    raiseFileLimit();
    PipeCoordinator coord(up, down, board);
    BenchResult result;
    {
        Runner runner(o, slice, &coord, interrupt);
        if (auto r = runner.prepare(); !r) {
            result.addError("worker_setup");
        } else {
            result = runner.run();
            coord.detach(runner);
        }
    }
    std::string wire;
    result.serialize(&wire);
    writeFrame(up, 'F', wire);
    ::close(up);
    ::close(down);
    std::fflush(nullptr);
    _exit(0);
}

struct Worker {
    pid_t pid = -1;
    int up = -1;    // parent reads
    int down = -1;  // parent writes
    std::string buf;
    bool eof = false;
    bool ready = false;
    bool published = false;
    bool have_result = false;
    bool have_progress = false;
    Progress progress;
    Histogram recent;  // latencies since the last line printed
};

base::Result<BenchResult> runForked(const BenchOptions& o, uint32_t procs, ProgressSink* sink,
                                    const std::atomic<bool>* interrupt) {
    // A worker that exits early closes its pipe: writing to it must be an error, not SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    std::vector<Worker> workers(procs);
    // --flow delivery: the board the workers share, mapped before they are forked.
    std::unique_ptr<FlowBoard> board;
    if (o.scenario == Scenario::kFanout && o.flow == Flow::kDelivery && o.interval_ms <= 0) {
        auto b = FlowBoard::create(procs, o.publishers, true);
        if (!b) {
            return base::fail(b.error().message);
        }
        board = std::move(*b);
    }
    std::fflush(nullptr);  // a child must not flush the parent's buffered output again
    for (uint32_t i = 0; i < procs; ++i) {
        int up[2];
        int down[2];
        if (pipe2(up, O_CLOEXEC) != 0) {
            return base::fail(std::string("pipe: ") + std::strerror(errno));
        }
        if (pipe2(down, O_CLOEXEC) != 0) {
            ::close(up[0]);
            ::close(up[1]);
            return base::fail(std::string("pipe: ") + std::strerror(errno));
        }
        pid_t pid = fork();
        if (pid < 0) {
            return base::fail(std::string("fork: ") + std::strerror(errno));
        }
        if (pid == 0) {
            for (uint32_t j = 0; j < i; ++j) {
                ::close(workers[j].up);
                ::close(workers[j].down);
            }
            ::close(up[0]);
            ::close(down[1]);
            workerMain(o, sliceFor(o, i, procs), up[1], down[0], board.get(), interrupt);
        }
        ::close(up[1]);
        ::close(down[0]);
        workers[i].pid = pid;
        workers[i].up = up[0];
        workers[i].down = down[1];
    }

    BenchResult merged;
    std::string failure;
    std::vector<uint64_t> totals;
    bool go_sent = false;
    bool expected_sent = false;
    bool stop_sent = false;
    uint64_t next_progress_ms = loop::EventLoop::monotonicMs() + 1000;
    auto broadcast = [&](char type, std::string_view payload) {
        for (Worker& w : workers) {
            if (!w.eof) {
                writeFrame(w.down, type, payload);
            }
        }
    };
    auto live = [&] {
        size_t n = 0;
        for (const Worker& w : workers) {
            n += w.eof ? 0 : 1;
        }
        return n;
    };
    while (live() > 0) {
        if (interrupt != nullptr && interrupt->load() && !stop_sent) {
            stop_sent = true;
            broadcast('X', {});
        }
        std::vector<pollfd> fds;
        std::vector<size_t> index;
        for (size_t i = 0; i < workers.size(); ++i) {
            if (!workers[i].eof) {
                fds.push_back(pollfd{workers[i].up, POLLIN, 0});
                index.push_back(i);
            }
        }
        int n = ::poll(fds.data(), fds.size(), 100);
        if (n < 0 && errno != EINTR) {
            failure = std::string("poll: ") + std::strerror(errno);
            break;
        }
        for (size_t k = 0; k < fds.size() && n > 0; ++k) {
            if (fds[k].revents == 0) {
                continue;
            }
            Worker& w = workers[index[k]];
            char tmp[65536];
            ssize_t r = ::read(w.up, tmp, sizeof tmp);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                w.eof = true;
                w.ready = w.published = true;  // a dead worker must not hold the barriers
                ::close(w.up);
                ::close(w.down);
                if (!w.have_result && failure.empty()) {
                    failure = "worker " + std::to_string(index[k]) + " exited without a result";
                }
                continue;
            }
            w.buf.append(tmp, static_cast<size_t>(r));
            takeFrames(&w.buf, [&](char type, std::string_view payload) {
                if (type == 'R') {
                    w.ready = true;
                } else if (type == 'P') {
                    std::vector<uint64_t> counts;
                    if (getCounts(payload, &counts)) {
                        totals.resize(std::max(totals.size(), counts.size()), 0);
                        for (size_t j = 0; j < counts.size(); ++j) {
                            totals[j] += counts[j];
                        }
                    }
                    w.published = true;
                } else if (type == 'S') {
                    Progress p;
                    if (deserializeProgress(payload, &p)) {
                        w.recent.merge(p.recent);
                        w.progress = std::move(p);
                        w.have_progress = true;
                    }
                } else if (type == 'F') {
                    auto res = BenchResult::deserialize(payload);
                    if (res) {
                        merged.merge(*res);
                        w.have_result = true;
                    } else if (failure.empty()) {
                        failure = res.error().message;
                    }
                }
            });
        }
        bool all_ready = true;
        bool all_published = true;
        for (const Worker& w : workers) {
            all_ready = all_ready && w.ready;
            all_published = all_published && w.published;
        }
        if (all_ready && !go_sent) {
            go_sent = true;
            touchReadyFile(o.ready_file);
            broadcast('G', {});
        }
        if (all_published && !expected_sent) {
            expected_sent = true;
            std::string p;
            putCounts(&p, totals);
            broadcast('E', p);
        }
        // One line a second from the parent's clock, with each worker's latest numbers.
        const uint64_t now_ms = loop::EventLoop::monotonicMs();
        bool all_reported = true;
        for (const Worker& w : workers) {
            all_reported = all_reported && (w.have_progress || w.eof);
        }
        if (sink != nullptr && all_reported && now_ms >= next_progress_ms) {
            next_progress_ms = now_ms + 1000;
            Progress sum;
            for (const Worker& w : workers) {
                if (!w.have_progress) {
                    continue;
                }
                sum.elapsed_s = std::max(sum.elapsed_s, w.progress.elapsed_s);
                sum.phase = w.progress.phase;
                sum.open += w.progress.open;
                sum.connects_ok += w.progress.connects_ok;
                sum.connects_failed += w.progress.connects_failed;
                sum.sent += w.progress.sent;
                sum.received += w.progress.received;
                sum.errors += w.progress.errors;
                sum.recent.merge(w.recent);
            }
            for (Worker& w : workers) {
                w.recent.reset();
            }
            if (!sum.phase.empty()) {
                sink->update(sum);
            }
        }
    }
    for (Worker& w : workers) {
        int status = 0;
        while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (failure.empty()) {
                failure = "worker pid " + std::to_string(w.pid) + " failed";
            }
        }
    }
    if (!failure.empty() && merged.scenario.empty()) {
        return base::fail(failure);
    }
    if (!failure.empty()) {
        merged.addError("worker_failed");
    }
    merged.procs = procs;
    return merged;
}

}  // namespace

uint64_t raiseFileLimit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

uint32_t procsNeeded(const BenchOptions& o) {
    rlimit rl{};
    uint64_t limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        limit = rl.rlim_max == RLIM_INFINITY ? (1u << 20) : rl.rlim_max;
    }
    const uint64_t per_proc = limit > 2 * kReservedFds ? limit - kReservedFds : kReservedFds;
    const uint64_t total = uint64_t{o.conns} + (o.scenario == Scenario::kFanout ? o.publishers : 0);
    return static_cast<uint32_t>(std::max<uint64_t>(1, (total + per_proc - 1) / per_proc));
}

base::Result<BenchResult> runScenario(const BenchOptions& o, ProgressSink* sink,
                                      const std::atomic<bool>* interrupt) {
    const uint32_t procs = std::max<uint32_t>(1, o.procs);
    if (procs > 1) {
        return runForked(o, procs, sink, interrupt);
    }
    raiseFileLimit();
    LocalCoordinator coord(sink, o.ready_file);
    Runner runner(o, sliceFor(o, 0, 1), &coord, interrupt);
    if (auto r = runner.prepare(); !r) {
        return base::fail(r.error().message);
    }
    BenchResult result = runner.run();
    result.procs = 1;
    return result;
}

void serializeProgress(const Progress& p, std::string* out) {
    putVarint(out, std::bit_cast<uint64_t>(p.elapsed_s));
    putVarint(out, p.phase.size());
    out->append(p.phase);
    putVarint(out, p.open);
    putVarint(out, p.connects_ok);
    putVarint(out, p.connects_failed);
    putVarint(out, p.sent);
    putVarint(out, p.received);
    putVarint(out, p.errors);
    p.recent.serialize(out);
}

bool deserializeProgress(std::string_view in, Progress* p) {
    uint64_t elapsed = 0;
    uint64_t phase_len = 0;
    if (!getVarint(&in, &elapsed) || !getVarint(&in, &phase_len) || phase_len > in.size()) {
        return false;
    }
    p->elapsed_s = std::bit_cast<double>(elapsed);
    p->phase.assign(in.substr(0, phase_len));
    in.remove_prefix(phase_len);
    if (!getVarint(&in, &p->open) || !getVarint(&in, &p->connects_ok) ||
        !getVarint(&in, &p->connects_failed) || !getVarint(&in, &p->sent) ||
        !getVarint(&in, &p->received) || !getVarint(&in, &p->errors)) {
        return false;
    }
    auto h = Histogram::deserialize(&in);
    if (!h || !in.empty()) {
        return false;
    }
    p->recent = std::move(*h);
    return true;
}

}  // namespace sb::bench
