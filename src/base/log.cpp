#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace sb::base {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<bool> g_json{false};
const char* const kNames[] = {"trace", "debug", "info", "warn", "error", "off"};
}  // namespace

bool parseLogLevel(std::string_view s, LogLevel& out) {
    for (int i = 0; i <= static_cast<int>(LogLevel::kOff); ++i) {
        if (s == kNames[i]) {
            out = static_cast<LogLevel>(i);
            return true;
        }
    }
    return false;
}
void setLogLevel(LogLevel level) {
    g_level.store(level, std::memory_order_relaxed);
}
LogLevel logLevel() {
    return g_level.load(std::memory_order_relaxed);
}
void setLogJson(bool json) {
    g_json.store(json, std::memory_order_relaxed);
}

void logf(LogLevel level, const char* fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    char line[1400];
    int len;
    if (g_json.load(std::memory_order_relaxed)) {
        // Escape quotes, backslashes and control characters of the message for JSON.
        char esc[1100];
        size_t j = 0;
        for (const char* p = msg; *p && j + 7 < sizeof esc; ++p) {
            unsigned char c = static_cast<unsigned char>(*p);
            if (c == '"' || c == '\\') {
                esc[j++] = '\\';
                esc[j++] = static_cast<char>(c);
            } else if (c < 0x20) {
                j += static_cast<size_t>(std::snprintf(esc + j, 7, "\\u%04x", c));
            } else {
                esc[j++] = static_cast<char>(c);
            }
        }
        esc[j] = 0;
        len = std::snprintf(line, sizeof line,
                            "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                            "\"msg\":\"%s\"}\n",
                            t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                            t.tm_sec, ts.tv_nsec / 1000000, kNames[static_cast<int>(level)], esc);
    } else {
        len = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n",
                            t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                            t.tm_sec, ts.tv_nsec / 1000000, kNames[static_cast<int>(level)], msg);
    }
    if (len > 0) {
        ssize_t w =
            ::write(2, line, static_cast<size_t>(len) < sizeof line ? len : sizeof line - 1);
        (void)w;
    }
}

}  // namespace sb::base
