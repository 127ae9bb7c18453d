// Minimal leveled logger: one line per event on stderr, plain text or JSON. Thread-safe
// (each line is one write(2)). Nothing sensitive is ever passed to it.
#pragma once

#include <cstdarg>
#include <string_view>

namespace sb::base {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

// Parses "trace|debug|info|warn|error|off"; returns false on anything else.
bool parseLogLevel(std::string_view s, LogLevel& out);
void setLogLevel(LogLevel level);
LogLevel logLevel();
void setLogJson(bool json);

void logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace sb::base

#define SB_LOG(level, ...)                                                         \
    do {                                                                           \
        if (static_cast<int>(level) >= static_cast<int>(::sb::base::logLevel())) { \
            ::sb::base::logf(level, __VA_ARGS__);                                  \
        }                                                                          \
    } while (0)
#define SB_DEBUG(...) SB_LOG(::sb::base::LogLevel::kDebug, __VA_ARGS__)
#define SB_INFO(...) SB_LOG(::sb::base::LogLevel::kInfo, __VA_ARGS__)
#define SB_WARN(...) SB_LOG(::sb::base::LogLevel::kWarn, __VA_ARGS__)
#define SB_ERROR(...) SB_LOG(::sb::base::LogLevel::kError, __VA_ARGS__)
