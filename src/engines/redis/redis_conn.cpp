#include "engines/redis/redis_conn.h"

// Only hiredis's reader is used (with reply objects of our own): the I/O is ours.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "net/tls.h"

namespace sb::engines::redis {

namespace {

// hiredis's reader, building our Reply tree directly instead of its redisReply objects. Also a
// bound: hiredis's own objects allocate an array's element table from the length in the
// header, so "*1444444444" alone would ask for gigabytes; here an array grows with the
// elements that actually arrive (a reply costs memory in proportion to its bytes).
Reply* place(const redisReadTask* task, Reply&& r) {
    if (task->parent == nullptr) {
        return new Reply(std::move(r));
    }
    // Children arrive in order; a parent's vector does not grow while a child is being filled
    // (its next element comes after), so the pointers hiredis keeps stay valid.
    auto* parent = static_cast<Reply*>(task->parent->obj);
    parent->elements.push_back(std::move(r));
    return &parent->elements.back();
}

void* makeString(const redisReadTask* task, char* str, size_t len) {
    Reply r;
    r.type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::kError
             : task->type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                : Reply::Type::kString;
    r.str.assign(str, len);
    return place(task, std::move(r));
}

void* makeArray(const redisReadTask* task, int elements) {
    Reply r;
    r.type = Reply::Type::kArray;
    r.elements.reserve(static_cast<size_t>(std::clamp(elements, 0, 64)));
    return place(task, std::move(r));
}

void* makeInteger(const redisReadTask* task, long long value) {
    Reply r;
    r.type = Reply::Type::kInteger;
    r.integer = value;
    return place(task, std::move(r));
}

void* makeNil(const redisReadTask* task) {
    return place(task, Reply{});
}

// Only roots are handed back (or abandoned on a protocol error): children live in them.
void freeReply(void* obj) {
    delete static_cast<Reply*>(obj);
}

redisReplyObjectFunctions kReplyFunctions = {makeString, makeArray, makeInteger, makeNil,
                                             freeReply};

redisReader* newReader() {
    return redisReaderCreateWithFunctions(&kReplyFunctions);
}

bool isPush(const Reply& r) {
    return r.type == Reply::Type::kArray && r.elements.size() == 3 &&
           r.elements[0].type == Reply::Type::kString && r.elements[0].str == "message";
}

}  // namespace

base::Result<std::vector<Reply>> parseReplies(std::string_view bytes) {
    std::unique_ptr<redisReader, void (*)(redisReader*)> reader(newReader(), redisReaderFree);
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
        std::unique_ptr<Reply> r(static_cast<Reply*>(raw));
        out.push_back(std::move(*r));
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

RedisConn::RedisConn(loop::EventLoop* loop, int fd) : StreamConn(loop, fd), reader_(newReader()) {
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
        std::unique_ptr<Reply> r(static_cast<Reply*>(raw));
        // Subscriber mode: ["message", channel, payload] is a push, not a reply.
        if (on_push_ && isPush(*r)) {
            on_push_(r->elements[1].str, r->elements[2].str);
            continue;
        }
        Reply reply = std::move(*r);
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
