// The storm scenario (see storm.h): the server as a child process, a controller thread that
// stops and restarts it once every client is connected and samples its CPU and RSS, and the
// fanout run (bench/runner.cpp) with production-style reconnects doing the rest. Times are
// CLOCK_MONOTONIC, the clock of the run's timeline, so the kill and each client's return are
// on one axis.
#include "bench/storm.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "bench/report.h"
#include "bench/workers.h"
#include "client/ws_client.h"
#include "net/socket.h"

namespace sb::bench {

namespace {

uint64_t nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The server under test: `/bin/sh -c "exec CMD"`, so the PID is the server's own.
pid_t startServer(const std::string& cmd) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);  // its log would only compete for the cores
            ::dup2(null, STDERR_FILENO);
        }
        const std::string line = "exec " + cmd;
        ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

// True once something accepts TCP connections on host:port (the server listens).
bool waitListening(const client::WsUrl& url, double timeout_s, pid_t pid) {
    const uint64_t deadline = nowNs() + static_cast<uint64_t>(timeout_s * 1e9);
    while (nowNs() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            return false;  // it exited
        }
        auto ep = net::resolve(url.host, url.port);
        if (ep) {
            const int fd = ::socket(ep->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0) {
                const bool ok =
                    ::connect(fd, reinterpret_cast<const sockaddr*>(&ep->addr), ep->len) == 0;
                ::close(fd);
                if (ok) {
                    return true;
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

// CPU seconds (user + system) and resident bytes of a process, from /proc.
bool sampleProc(pid_t pid, double* cpu_s, uint64_t* rss) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return false;
    }
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) {
        return false;
    }
    std::istringstream in(line.substr(paren + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) {
            utime = std::stoull(field);
        } else if (i == 15) {
            stime = std::stoull(field);
        }
    }
    *cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            *rss = std::stoull(line.substr(6)) * 1024;
            return true;
        }
    }
    return false;
}

// Forwards progress to the line and notes when every client is connected (traffic begins).
class StormSink final : public ProgressSink {
public:
    explicit StormSink(ProgressLine* line) : line_(line) {}
    void update(const Progress& p) override {
        line_->update(p);
        if (p.phase == "running" || p.phase == "draining" || p.phase == "closing") {
            std::lock_guard lock(mu_);
            if (!traffic_) {
                traffic_ = true;
                cv_.notify_all();
            }
        }
    }
    // Waits for the traffic phase; false on `stop`.
    bool waitTraffic(const std::atomic<bool>& stop) {
        std::unique_lock lock(mu_);
        while (!traffic_ && !stop.load()) {
            cv_.wait_for(lock, std::chrono::milliseconds(50));
        }
        return traffic_;
    }

private:
    ProgressLine* line_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool traffic_ = false;
};

struct StormFacts {
    pid_t pid = -1;         // the running server
    uint64_t kill_ns = 0;   // signal sent
    uint64_t exit_ns = 0;   // the old server gone
    uint64_t ready_ns = 0;  // the new one listening
    double peak_cpu = 0;    // busiest 500 ms of the new server (1.0 = a core)
    uint64_t peak_rss = 0;
    double cpu_s_after = 0;  // CPU the new server used from its start to the end of the run
    std::string error;
};

}  // namespace

int runStorm(BenchOptions o, bool progress, const std::atomic<bool>* interrupt) {
    const StormOptions& s = o.storm;
    auto url = client::parseWsUrl(o.url);
    if (!url) {
        std::fprintf(stderr, "switchboard bench: %s\n", url.error().message.c_str());
        return 2;
    }
    StormFacts f;
    f.pid = startServer(s.server_cmd);
    if (f.pid < 0 || !waitListening(*url, 20, f.pid)) {
        std::fprintf(stderr,
                     "switchboard bench: the server command did not listen on %s:%u within 20 s "
                     "(check --server-cmd and that its port is the --url's): %s\n",
                     url->host.c_str(), url->port, s.server_cmd.c_str());
        if (f.pid > 0) {
            ::kill(f.pid, SIGKILL);
            ::waitpid(f.pid, nullptr, 0);
        }
        return 2;
    }
    if (o.procs == 0) {
        o.procs = procsNeeded(o);
    }
    o.t0_ns = nowNs();
    const uint64_t total = uint64_t{o.conns} + o.publishers;
    ProgressLine line(stderr, progress, total);
    StormSink sink(&line);
    std::atomic<bool> done{false};
    std::thread controller([&] {
        if (!sink.waitTraffic(done)) {
            return;
        }
        const uint64_t at = nowNs() + static_cast<uint64_t>(s.at_s * 1e9);
        while (nowNs() < at && !done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (done.load()) {
            return;
        }
        f.kill_ns = nowNs();
        if (s.handover) {
            // The successor takes the listening sockets over; the old server drains and exits
            // by itself. Nothing is killed.
            const pid_t next = startServer(s.server_cmd);
            const pid_t old = f.pid;
            while (!done.load()) {
                if (::waitpid(old, nullptr, WNOHANG) == old) {
                    break;
                }
                if (::waitpid(next, nullptr, WNOHANG) == next) {
                    f.error =
                        "the new server exited at once: does --server-cmd pass "
                        "--handover-socket?";
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            f.exit_ns = nowNs();
            f.pid = next;
            f.ready_ns = f.kill_ns;  // it accepts from the moment it has the sockets
        } else {
            ::kill(f.pid, s.kill9 ? SIGKILL : SIGTERM);
            ::waitpid(f.pid, nullptr, 0);
            f.exit_ns = nowNs();
            f.pid = startServer(s.server_cmd);
            if (f.pid < 0 || !waitListening(*url, 20, f.pid)) {
                f.error = "the restarted server did not listen within 20 s";
                return;
            }
            f.ready_ns = nowNs();
        }
        double last_cpu = 0;
        uint64_t last_ns = nowNs();
        sampleProc(f.pid, &last_cpu, &f.peak_rss);
        while (!done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            double cpu = 0;
            uint64_t rss = 0;
            const uint64_t t = nowNs();
            if (!sampleProc(f.pid, &cpu, &rss)) {
                break;
            }
            f.peak_cpu =
                std::max(f.peak_cpu, (cpu - last_cpu) / (static_cast<double>(t - last_ns) * 1e-9));
            f.peak_rss = std::max(f.peak_rss, rss);
            f.cpu_s_after = cpu;
            last_cpu = cpu;
            last_ns = t;
        }
    });
    auto result = runScenario(o, &sink, interrupt);
    done.store(true);
    controller.join();
    line.finish();
    if (f.pid > 0) {
        ::kill(f.pid, SIGTERM);
        ::waitpid(f.pid, nullptr, 0);
    }
    if (!result) {
        std::fprintf(stderr, "switchboard bench: %s\n", result.error().message.c_str());
        return 3;
    }
    const BenchResult& r = *result;
    std::fputs(formatTable(o, r).c_str(), stdout);
    const auto ms = [](uint64_t ns) { return static_cast<double>(ns) / 1e6; };
    std::string out;
    bool ok = f.error.empty() && f.kill_ns != 0;
    if (f.kill_ns == 0) {
        out +=
            "storm: the run ended before the server was stopped: make -d longer than "
            "--storm-at\n";
    } else {
        const uint64_t kill_rel = f.kill_ns - o.t0_ns;
        const uint64_t back = r.rejoin_ns.count();
        const uint64_t last = r.rejoin_ns.max() > kill_rel ? r.rejoin_ns.max() - kill_rel : 0;
        out += format(
            "storm: %s at %.2f s; the old server exited after %.0f ms, the new one listened %.0f "
            "ms after the signal\n",
            s.handover ? "handover"
            : s.kill9  ? "SIGKILL"
                       : "SIGTERM",
            ms(kill_rel) / 1000, ms(f.exit_ns - f.kill_ns),
            f.ready_ns != 0 ? ms(f.ready_ns - f.kill_ns) : -1.0);
        out += format("  clients back:   %llu of %llu dropped (%llu open at the start)\n",
                      static_cast<unsigned long long>(back),
                      static_cast<unsigned long long>(r.counters.drops),
                      static_cast<unsigned long long>(total));
        out += format("  all back after: %.0f ms from the signal\n", ms(last));
        out += format("  time away:      p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms\n",
                      ms(r.downtime_ns.percentile(50)), ms(r.downtime_ns.percentile(95)),
                      ms(r.downtime_ns.percentile(99)), ms(r.downtime_ns.max()));
        out += format("  recovery:       %llu recovered:true, %llu recovered:false\n",
                      static_cast<unsigned long long>(r.counters.recoveries),
                      static_cast<unsigned long long>(r.counters.recoveries_failed));
        uint64_t refused = 0;
        for (const auto& [kind, n] : r.errors) {
            if (kind == "handshake_status_503") {
                refused += n;
            }
        }
        out += format("  refused (503):  %llu reconnect attempts\n",
                      static_cast<unsigned long long>(refused));
        out += format(
            "  new server:     peak CPU %.0f %% of a core (500 ms windows), peak RSS %.1f MiB, CPU "
            "%.2f s until the end\n",
            f.peak_cpu * 100, static_cast<double>(f.peak_rss) / (1 << 20), f.cpu_s_after);
        if (!f.error.empty()) {
            out += "  error: " + f.error + "\n";
        }
        ok = ok && back >= r.counters.drops && !r.interrupted;
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (!o.json_path.empty()) {
        std::string js = "{\"storm\":{";
        js += format("\"signal\":\"%s\",\"at_ms\":%.1f,\"exit_ms\":%.1f,\"listen_ms\":%.1f,",
                     s.handover ? "handover"
                     : s.kill9  ? "SIGKILL"
                                : "SIGTERM",
                     f.kill_ns != 0 ? ms(f.kill_ns - o.t0_ns) : -1.0,
                     f.exit_ns != 0 ? ms(f.exit_ns - f.kill_ns) : -1.0,
                     f.ready_ns != 0 ? ms(f.ready_ns - f.kill_ns) : -1.0);
        const uint64_t kill_rel = f.kill_ns != 0 ? f.kill_ns - o.t0_ns : 0;
        js +=
            format("\"back\":%llu,\"all_back_ms\":%.1f,\"away_p50_ms\":%.1f,\"away_p99_ms\":%.1f,",
                   static_cast<unsigned long long>(r.rejoin_ns.count()),
                   r.rejoin_ns.max() > kill_rel ? ms(r.rejoin_ns.max() - kill_rel) : 0.0,
                   ms(r.downtime_ns.percentile(50)), ms(r.downtime_ns.percentile(99)));
        js += format("\"peak_cpu\":%.3f,\"peak_rss_bytes\":%llu},\"run\":", f.peak_cpu,
                     static_cast<unsigned long long>(f.peak_rss));
        js += toJson(o, r);
        js += "}\n";
        std::FILE* fp = std::fopen(o.json_path.c_str(), "w");
        if (fp == nullptr || std::fputs(js.c_str(), fp) < 0) {
            std::fprintf(stderr, "switchboard bench: cannot write %s\n", o.json_path.c_str());
            ok = false;
        }
        if (fp != nullptr) {
            std::fclose(fp);
        }
    }
    return ok ? 0 : 1;
}

}  // namespace sb::bench
