// The bench's HTTP subscribers (`--transport sse|poll`): one connection of our own event loop
// that opens a Server-Sent Events stream (GET /sse) or runs a long-polling loop (GET /poll,
// then GET /poll?session=S&ack=N&wait=W on the same keep-alive connection), and hands every
// native JSON event it carries to the runner, as a WebSocket text message would be
// (docs/protocol.md, "Server-Sent Events and long-polling"). Plain HTTP/1.1 on ws:// targets;
// no TLS.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "loop/event_loop.h"
#include "loop/timer_wheel.h"
#include "net/socket.h"
#include "net/stream_conn.h"

namespace sb::bench {

enum class HttpKind : uint8_t { kSse, kPoll };

// The first CR or LF in s[from..], or npos. Two memchr passes: std::string_view::
// find_first_of calls memchr on the set once per byte (most of a generator's time over SSE).
inline size_t findLineEnd(std::string_view s, size_t from) {
    const char* p = s.data() + from;
    const size_t n = s.size() - from;
    const auto* lf = static_cast<const char*>(std::memchr(p, '\n', n));
    const size_t before = lf != nullptr ? static_cast<size_t>(lf - p) : n;
    const auto* cr = static_cast<const char*>(std::memchr(p, '\r', before));
    if (cr != nullptr) {
        return from + static_cast<size_t>(cr - p);
    }
    return lf != nullptr ? from + before : std::string_view::npos;
}

// Incremental text/event-stream parser (the WHATWG EventSource rules the bench needs): lines
// end with LF, CR or CRLF; "data:" lines are joined with LF; a blank line dispatches the event
// if it has data; "id:" sets the last event id; comments (":") and other fields are ignored.
class SseParser {
public:
    // Calls fn(std::string_view data) per dispatched event; stops early (returning false) when
    // fn returns false. A line longer than max_line bytes is an error (returns false, *bad).
    template <class Fn>
    bool feed(std::string_view bytes, Fn&& fn, bool* bad = nullptr);
    const std::string& lastId() const { return id_; }

    static constexpr size_t kMaxLine = 16u << 20;

private:
    // One complete line; false when fn asked to stop.
    template <class Fn>
    bool line(std::string_view l, Fn& fn);

    std::string line_;  // a partial line carried over between feeds
    std::string data_;  // the event being built
    std::string id_;
    bool has_data_ = false;
    bool skip_lf_ = false;  // the last byte was a CR: an LF right after it ends nothing
};

// A long-polling batch {"seq":N,"id":"<position>","events":[...]}: its seq and its events as
// views into `body` (each one JSON value, top-level in the array). False when malformed.
bool splitPollBatch(std::string_view body, uint64_t* seq, std::vector<std::string_view>* events);

// Percent-encodes everything but RFC 3986 unreserved characters (query values).
void appendQueryValue(std::string* out, std::string_view v);

class HttpSub;

// The runner's side. Every call is made on the loop thread, from the connection's own events
// (never inside a call the runner made on it, except onHttpOpen from openHttpSub).
class HttpSubSink {
public:
    virtual ~HttpSubSink() = default;
    // Once per openHttpSub: the response head arrived with 200 (`sub` set), or the attempt
    // failed (`sub` null; `err` as client::connect words it: "connection refused ...",
    // "server answered 503 ...", "handshake timed out", ...). May come before openHttpSub
    // returns.
    virtual void onHttpOpen(uint32_t slot, HttpSub* sub, const std::string& err) = 0;
    // One native event (a JSON object), in stream order.
    virtual void onHttpEvent(uint32_t slot, std::string_view json) = 0;
    // After a successful onHttpOpen, at most once: the server or the network ended it (`why`:
    // "eof", "status_410", "bad_response", ...). Not called after close() by the runner.
    virtual void onHttpClosed(uint32_t slot, std::string_view why) = 0;
};

struct HttpSubOptions {
    HttpKind kind = HttpKind::kSse;
    std::string host;  // numeric or "localhost"
    uint16_t port = 80;
    // The opening request's path and query, e.g. "/sse?channel=bench.0".
    std::string target;
    net::Endpoint source;  // len 0 = any
    uint32_t open_timeout_ms = 10'000;
    uint32_t poll_wait_s = 25;
};

class HttpSub final : public net::StreamConn, private loop::TimerNode {
public:
    HttpSub(loop::EventLoop* loop, int fd, HttpSubOptions opts, HttpSubSink* sink, uint32_t slot);
    ~HttpSub() override;

    // The runner closes it: no more callbacks; the object is freed at the end of the iteration.
    void closeByUs();
    const std::string& session() const { return session_; }

private:
    friend void openHttpSub(loop::EventLoop& loop, HttpSubOptions opts, HttpSubSink* sink,
                            uint32_t slot);
    void start();
    void sendRequest(const std::string& target);
    void fail(const std::string& why);  // before the open: onHttpOpen(null)
    void drop(std::string_view why);    // after the open: onHttpClosed
    // Handles whole responses in buf_ (poll) / the head then the stream (SSE).
    void process();
    bool deliver(std::string_view json);  // false: the runner closed us meanwhile
    static void onTimer(loop::TimerNode* node);

    void onData(uint8_t* data, size_t len) override;
    void onEof() override;

    HttpSubOptions opts_;
    HttpSubSink* sink_;
    uint32_t slot_;
    std::string host_header_;
    std::string buf_;  // bytes of a response not handled yet
    bool opened_ = false;
    bool streaming_ = false;  // SSE: past the head, buf_ unused
    SseParser sse_;
    std::string session_;  // poll: from the `connected` event
    uint64_t ack_ = 0;     // poll: the last non-empty batch's seq
    std::vector<std::string_view> events_;
    std::string batch_;  // poll: the body being dispatched (events_ point into it)
};

// Starts one subscriber connection; reports to `sink` (onHttpOpen exactly once).
void openHttpSub(loop::EventLoop& loop, HttpSubOptions opts, HttpSubSink* sink, uint32_t slot);

// ---- SseParser ------------------------------------------------------------------------------

template <class Fn>
bool SseParser::line(std::string_view l, Fn& fn) {
    if (l.empty()) {
        if (has_data_) {
            has_data_ = false;
            const bool go_on = fn(std::string_view(data_));
            data_.clear();
            return go_on;
        }
        data_.clear();
        return true;
    }
    if (l.front() == ':') {
        return true;  // a comment
    }
    const size_t colon = l.find(':');
    std::string_view field = l.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
        value = l.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
    }
    if (field == "data") {
        if (has_data_) {
            data_.push_back('\n');
        }
        data_.append(value);
        has_data_ = true;
    } else if (field == "id" && value.find('\0') == std::string_view::npos) {
        id_.assign(value);
    }
    return true;
}

template <class Fn>
bool SseParser::feed(std::string_view bytes, Fn&& fn, bool* bad) {
    size_t i = 0;
    if (skip_lf_ && !bytes.empty()) {
        skip_lf_ = false;
        if (bytes.front() == '\n') {
            i = 1;
        }
    }
    while (i < bytes.size()) {
        const size_t end = findLineEnd(bytes, i);
        if (end == std::string_view::npos) {
            if (line_.size() + bytes.size() - i > kMaxLine) {
                if (bad != nullptr) {
                    *bad = true;
                }
                return false;
            }
            line_.append(bytes.substr(i));
            return true;
        }
        std::string_view l = bytes.substr(i, end - i);
        if (!line_.empty()) {
            line_.append(l);
            l = line_;
        }
        i = end + 1;
        if (bytes[end] == '\r') {
            if (i < bytes.size()) {
                i += bytes[i] == '\n' ? 1 : 0;
            } else {
                skip_lf_ = true;
            }
        }
        const bool go_on = line(l, fn);
        line_.clear();
        if (!go_on) {
            return false;
        }
    }
    return true;
}

}  // namespace sb::bench
