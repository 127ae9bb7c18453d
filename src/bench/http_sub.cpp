// SSE and long-polling subscribers of the load tester (see http_sub.h).
#include "bench/http_sub.h"

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "bench/delivery.h"
#include "http/request.h"

namespace sb::bench {

namespace {

// Index just past the end of the JSON value starting at json[i] (object, array, string or a
// scalar), or npos when it does not end inside `json`.
size_t skipValue(std::string_view json, size_t i) {
    if (i >= json.size()) {
        return std::string_view::npos;
    }
    if (json[i] == '"') {
        for (size_t j = i + 1; j < json.size(); ++j) {
            if (json[j] == '\\') {
                ++j;
            } else if (json[j] == '"') {
                return j + 1;
            }
        }
        return std::string_view::npos;
    }
    if (json[i] == '{' || json[i] == '[') {
        int depth = 0;
        bool in_string = false;
        for (size_t j = i; j < json.size(); ++j) {
            const char c = json[j];
            if (in_string) {
                if (c == '\\') {
                    ++j;
                } else if (c == '"') {
                    in_string = false;
                }
            } else if (c == '"') {
                in_string = true;
            } else if (c == '{' || c == '[') {
                ++depth;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    return j + 1;
                }
            }
        }
        return std::string_view::npos;
    }
    size_t j = i;
    while (j < json.size() && json[j] != ',' && json[j] != ']' && json[j] != '}' &&
           json[j] != ' ' && json[j] != '\n' && json[j] != '\r' && json[j] != '\t') {
        ++j;
    }
    return j;
}

size_t skipWs(std::string_view s, size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
        ++i;
    }
    return i;
}

}  // namespace

bool splitPollBatch(std::string_view body, uint64_t* seq, std::vector<std::string_view>* events) {
    events->clear();
    if (!jsonUintField(body, "seq", seq)) {
        return false;
    }
    // The batch's own keys come first and its "id" holds no quote, so the first "events" key
    // is the batch's.
    const size_t key = body.find("\"events\"");
    if (key == std::string_view::npos) {
        return false;
    }
    size_t i = skipWs(body, key + 8);
    if (i >= body.size() || body[i] != ':') {
        return false;
    }
    i = skipWs(body, i + 1);
    if (i >= body.size() || body[i] != '[') {
        return false;
    }
    i = skipWs(body, i + 1);
    if (i < body.size() && body[i] == ']') {
        return true;
    }
    while (true) {
        const size_t end = skipValue(body, i);
        if (end == std::string_view::npos) {
            return false;
        }
        events->push_back(body.substr(i, end - i));
        i = skipWs(body, end);
        if (i >= body.size()) {
            return false;
        }
        if (body[i] == ']') {
            return true;
        }
        if (body[i] != ',') {
            return false;
        }
        i = skipWs(body, i + 1);
    }
}

void appendQueryValue(std::string* out, std::string_view v) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (const char ch : v) {
        const auto c = static_cast<unsigned char>(ch);
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved) {
            out->push_back(ch);
        } else {
            out->push_back('%');
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 0xF]);
        }
    }
}

HttpSub::HttpSub(loop::EventLoop* loop, int fd, HttpSubOptions opts, HttpSubSink* sink,
                 uint32_t slot)
    : net::StreamConn(loop, fd), opts_(std::move(opts)), sink_(sink), slot_(slot) {
    TimerNode::fire = &HttpSub::onTimer;
    host_header_ = opts_.host;
    if (opts_.port != 80) {
        host_header_ += ":" + std::to_string(opts_.port);
    }
}

HttpSub::~HttpSub() {
    loop()->timers().cancel(this);
}

void HttpSub::start() {
    loop()->timers().schedule(this, opts_.open_timeout_ms);
    sendRequest(opts_.target);
}

void HttpSub::sendRequest(const std::string& target) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_header_ + "\r\n";
    req += opts_.kind == HttpKind::kSse ? "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
                                        : "Accept: application/json\r\n";
    req += "\r\n";
    write(req.data(), req.size());
    uncork();
}

void HttpSub::closeByUs() {
    sink_ = nullptr;
    loop()->timers().cancel(this);
    close();
}

void HttpSub::fail(const std::string& why) {
    loop()->timers().cancel(this);
    if (sink_ != nullptr && !opened_) {
        HttpSubSink* s = sink_;
        sink_ = nullptr;
        s->onHttpOpen(slot_, nullptr, why);
    }
    close();
}

void HttpSub::drop(std::string_view why) {
    loop()->timers().cancel(this);
    if (sink_ != nullptr && opened_) {
        HttpSubSink* s = sink_;
        sink_ = nullptr;
        s->onHttpClosed(slot_, why);
    }
    close();
}

void HttpSub::onTimer(loop::TimerNode* node) {
    auto* self = static_cast<HttpSub*>(node);
    if (!self->opened_) {
        self->fail("handshake timed out");
    }
}

bool HttpSub::deliver(std::string_view json) {
    if (sink_ == nullptr) {
        return false;
    }
    sink_->onHttpEvent(slot_, json);
    return sink_ != nullptr && !isClosed();
}

void HttpSub::onData(uint8_t* data, size_t len) {
    if (sink_ == nullptr || isClosed()) {
        return;
    }
    const std::string_view bytes(reinterpret_cast<const char*>(data), len);
    if (streaming_) {
        bool bad = false;
        sse_.feed(
            bytes, [this](std::string_view ev) { return deliver(ev); }, &bad);
        if (bad) {
            drop("bad_event");
        }
        return;
    }
    buf_.append(bytes);
    process();
}

void HttpSub::process() {
    while (sink_ != nullptr && !isClosed()) {
        http::Response resp;
        http::HttpError err = http::HttpError::kNone;
        const http::ParseStatus st = http::parseResponse(buf_, http::ParserLimits{}, &resp, &err);
        if (st == http::ParseStatus::kNeedMore) {
            return;
        }
        if (st == http::ParseStatus::kError) {
            const std::string why = "bad HTTP response: " + std::string(http::describe(err));
            if (opened_) {
                drop("bad_response");
            } else {
                fail(why);
            }
            return;
        }
        const uint16_t status = resp.status;
        const size_t head = resp.head_size;
        if (opts_.kind == HttpKind::kSse) {
            if (status != 200) {
                fail("server answered " + std::to_string(status) + " to GET /sse");
                return;
            }
            opened_ = true;
            streaming_ = true;
            loop()->timers().cancel(this);
            sink_->onHttpOpen(slot_, this, {});
            if (sink_ == nullptr || isClosed()) {
                return;
            }
            std::string rest = buf_.substr(head);
            buf_.clear();
            buf_.shrink_to_fit();
            bool bad = false;
            sse_.feed(
                rest, [this](std::string_view ev) { return deliver(ev); }, &bad);
            if (bad) {
                drop("bad_event");
            }
            return;
        }
        // Poll: a whole response (Content-Length) at a time.
        const std::string_view cl = resp.header("Content-Length");
        uint64_t body_len = 0;
        const auto r = std::from_chars(cl.data(), cl.data() + cl.size(), body_len);
        if (cl.empty() || r.ec != std::errc{} || r.ptr != cl.data() + cl.size() ||
            body_len > (64u << 20)) {
            if (opened_) {
                drop("bad_response");
            } else {
                fail("bad HTTP response: no usable Content-Length");
            }
            return;
        }
        if (buf_.size() < head + body_len) {
            return;
        }
        if (status != 200) {
            if (opened_) {
                drop("status_" + std::to_string(status));
            } else {
                fail("server answered " + std::to_string(status) + " to GET /poll");
            }
            return;
        }
        batch_.assign(buf_, head, body_len);
        buf_.erase(0, head + body_len);
        if (!opened_) {
            opened_ = true;
            loop()->timers().cancel(this);
            sink_->onHttpOpen(slot_, this, {});
            if (sink_ == nullptr || isClosed()) {
                return;
            }
        }
        uint64_t seq = 0;
        if (!splitPollBatch(batch_, &seq, &events_)) {
            drop("bad_batch");
            return;
        }
        for (const std::string_view ev : events_) {
            if (session_.empty() && jsonStringField(ev, "type") == "connected") {
                session_ = jsonStringField(ev, "session");
            }
            if (!deliver(ev)) {
                return;
            }
        }
        if (seq != 0) {
            ack_ = seq;
        }
        if (session_.empty()) {
            drop("no_session");
            return;
        }
        std::string again = "/poll?session=";
        appendQueryValue(&again, session_);
        again += "&ack=" + std::to_string(ack_) + "&wait=" + std::to_string(opts_.poll_wait_s);
        sendRequest(again);
    }
}

void HttpSub::onEof() {
    if (!opened_) {
        // As client::connect tells a refused connect from a server that closed on us.
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const bool refused =
            buf_.empty() && getpeername(fd(), reinterpret_cast<sockaddr*>(&peer), &len) != 0;
        fail(refused ? "connection refused (or reset before any response)"
                     : "connection closed during the handshake");
        return;
    }
    drop("eof");
}

void openHttpSub(loop::EventLoop& loop, HttpSubOptions opts, HttpSubSink* sink, uint32_t slot) {
    auto ep = net::resolve(opts.host, opts.port);
    if (!ep) {
        sink->onHttpOpen(slot, nullptr, ep.error().message);
        return;
    }
    auto fd = net::connectNonBlocking(*ep, opts.source.len != 0 ? &opts.source : nullptr);
    if (!fd) {
        sink->onHttpOpen(slot, nullptr, fd.error().message);
        return;
    }
    auto* s = new HttpSub(&loop, *fd, std::move(opts), sink, slot);
    if (!s->attach()) {
        const int err = errno;
        s->fail(std::string("cannot register the socket with the event loop: ") +
                std::strerror(err));
        return;
    }
    s->start();
}

}  // namespace sb::bench
