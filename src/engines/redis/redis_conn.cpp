#include "engines/redis/redis_conn.h"

// Only hiredis's reader (and the reply objects it builds) is used: the I/O is ours.
#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstring>

#include "net/tls.h"

namespace sb::engines::redis {

namespace {

Reply convert(const redisReply* r) {
    Reply out;
    switch (r->type) {
        case REDIS_REPLY_INTEGER:
            out.type = Reply::Type::kInteger;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_STRING:
            out.type = Reply::Type::kString;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = Reply::Type::kStatus;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = Reply::Type::kError;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ARRAY:
            out.type = Reply::Type::kArray;
            out.elements.reserve(r->elements);
            for (size_t i = 0; i < r->elements; ++i) {
                out.elements.push_back(convert(r->element[i]));
            }
            break;
        default:
            out.type = Reply::Type::kNil;
    }
    return out;
}

bool isString(const redisReply* r, std::string_view s) {
    return r->type == REDIS_REPLY_STRING && std::string_view(r->str, r->len) == s;
}

}  // namespace

base::Result<std::vector<Reply>> parseReplies(std::string_view bytes) {
    std::unique_ptr<redisReader, void (*)(redisReader*)> reader(redisReaderCreate(),
                                                                redisReaderFree);
    if (redisReaderFeed(reader.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        return base::fail("cannot buffer the input");
    }
    std::vector<Reply> out;
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) {
            return base::fail(std::string("protocol error: ") + reader->errstr);
        }
        if (raw == nullptr) {
            return out;
        }
        out.push_back(convert(static_cast<redisReply*>(raw)));
        freeReplyObject(raw);
    }
}

void encodeCommand(std::string* out, std::span<const std::string_view> args) {
    out->push_back('*');
    out->append(std::to_string(args.size()));
    out->append("\r\n");
    for (std::string_view a : args) {
        out->push_back('$');
        out->append(std::to_string(a.size()));
        out->append("\r\n");
        out->append(a);
        out->append("\r\n");
    }
}

RedisConn::RedisConn(loop::EventLoop* loop, int fd)
    : StreamConn(loop, fd), reader_(redisReaderCreate()) {
    // Replies as large as the biggest history page: no cap from the reader itself (the
    // server's own limits and ours on history size bound them).
    reader_->maxbuf = 0;
}

RedisConn::~RedisConn() {
    redisReaderFree(reader_);
}

base::Result<RedisConn*> RedisConn::connect(loop::EventLoop* loop, const net::Endpoint& to,
                                            std::shared_ptr<net::TlsContext> tls,
                                            const std::string& server_name) {
    auto fd = net::connectNonBlocking(to);
    if (!fd) {
        return base::fail(fd.error().message);
    }
    net::setNoDelay(*fd);
    auto* c = new RedisConn(loop, *fd);
    if (!c->attach()) {
        const int err = errno;
        c->close();  // freed at the end of the iteration
        return base::fail(std::string("cannot register the socket: ") + std::strerror(err));
    }
    if (tls) {
        auto session = net::TlsSession::create(std::move(tls), server_name);
        if (!session) {
            c->close();
            return base::fail("TLS setup failed: " + session.error().message);
        }
        c->startTls(std::move(*session));
    }
    return c;
}

void RedisConn::send(std::string_view encoded, Callback cb) {
    if (isClosed()) {
        // Reported like a loss, but never inside the caller's own call.
        loop()->defer([cb = std::move(cb), why = why_]() mutable {
            Reply r = Reply::error(why);
            cb(r);
        });
        return;
    }
    pending_.push_back(Pending{std::move(cb), loop()->nowMs()});
    write(encoded.data(), encoded.size());
}

void RedisConn::onData(uint8_t* data, size_t len) {
    if (redisReaderFeed(reader_, reinterpret_cast<const char*>(data), len) != REDIS_OK) {
        fail("cannot buffer the reply");
        return;
    }
    while (!isClosed()) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
            fail(std::string("protocol error: ") + reader_->errstr);
            return;
        }
        if (raw == nullptr) {
            return;  // need more bytes
        }
        auto* r = static_cast<redisReply*>(raw);
        // Subscriber mode: ["message", channel, payload] is a push, not a reply.
        if (on_push_ && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            isString(r->element[0], "message")) {
            on_push_(std::string_view(r->element[1]->str, r->element[1]->len),
                     std::string_view(r->element[2]->str, r->element[2]->len));
            freeReplyObject(r);
            continue;
        }
        Reply reply = convert(r);
        freeReplyObject(r);
        if (pending_.empty()) {
            fail("a reply nobody asked for");
            return;
        }
        Callback cb = std::move(pending_.front().cb);
        pending_.pop_front();
        cb(reply);
    }
}

void RedisConn::fail(std::string_view why) {
    if (isClosed()) {
        return;
    }
    why_ = std::string(why);
    close();
}

void RedisConn::onEof() {
    fail("connection closed by the server");
}

void RedisConn::onTlsHandshake(std::string_view error) {
    if (!error.empty()) {
        fail("TLS handshake failed: " + std::string(error));
    }
}

void RedisConn::onClosed() {
    // Each pending command learns that its answer will never come; then the owner.
    std::deque<Pending> pending;
    pending.swap(pending_);
    for (Pending& p : pending) {
        Reply r = Reply::error(why_);
        p.cb(r);
    }
    if (on_lost_) {
        LostHandler h = std::move(on_lost_);
        on_lost_ = nullptr;
        h(why_);
    }
}

}  // namespace sb::engines::redis
