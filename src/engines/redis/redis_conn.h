// One connection to a Redis server, on one of our event loops (no hiredis I/O, no thread of its
// own): commands are RESP arrays written through the connection's cork, so every command queued
// in one loop iteration leaves in one send (pipelining for free), and replies are parsed by
// hiredis's reader and matched to their callbacks in order. A connection in subscriber mode
// hands "message" pushes to a handler instead. TLS comes from net::StreamConn, like every other
// connection of ours.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/socket.h"
#include "net/stream_conn.h"

struct redisReader;

namespace sb::net {
class TlsContext;
}

namespace sb::engines::redis {

// A RESP2 reply, copied out of hiredis's reader.
struct Reply {
    enum class Type : uint8_t { kNil, kInteger, kString, kStatus, kError, kArray };
    Type type = Type::kNil;
    int64_t integer = 0;
    std::string str;  // kString, kStatus, kError
    std::vector<Reply> elements;

    bool isError() const { return type == Type::kError; }
    // A reply standing for a failure on our side ("connection lost", "timed out").
    static Reply error(std::string message) {
        Reply r;
        r.type = Type::kError;
        r.str = std::move(message);
        return r;
    }
};

// Appends the RESP encoding of one command (an array of bulk strings) to `out`.
void encodeCommand(std::string* out, std::span<const std::string_view> args);
inline void encodeCommand(std::string* out, std::initializer_list<std::string_view> args) {
    encodeCommand(out, std::span<const std::string_view>(args.begin(), args.size()));
}

// Every complete reply in `bytes` (RESP2, as a server sends them), through the same reader and
// conversion as a connection; an error for a protocol violation. For tests and the fuzz target.
base::Result<std::vector<Reply>> parseReplies(std::string_view bytes);

class RedisConn final : public net::StreamConn {
public:
    using Callback = std::function<void(Reply&)>;
    // Subscriber mode: a published message. Views into the parsed reply, valid during the call.
    using PushHandler = std::function<void(std::string_view channel, std::string_view payload)>;
    // Called once when the connection ends for any reason (after every pending callback got an
    // error reply). The object is freed at the end of that loop iteration: forget it then.
    using LostHandler = std::function<void(std::string_view why)>;

    // Starts a non-blocking connect on `loop` (its thread). `tls` non-null: TLS with
    // `server_name` checked against the certificate. Commands may be sent at once; they leave
    // when the connection is up. Errors here are immediate (bad address, no fds).
    static base::Result<RedisConn*> connect(loop::EventLoop* loop, const net::Endpoint& to,
                                            std::shared_ptr<net::TlsContext> tls,
                                            const std::string& server_name);

    // Loop thread. `encoded`: one command (encodeCommand). `cb` gets its reply, or an error
    // reply if the connection ends first. Never called inside send().
    void send(std::string_view encoded, Callback cb);
    void setPushHandler(PushHandler h) { on_push_ = std::move(h); }
    void setLostHandler(LostHandler h) { on_lost_ = std::move(h); }
    // Commands sent and not answered yet, and when the oldest of them was sent (loop ms).
    size_t pending() const { return pending_.size(); }
    uint64_t oldestPendingMs() const { return pending_.empty() ? 0 : pending_.front().sent_ms; }
    // Ends the connection now: pending callbacks get `why`, then the lost handler runs.
    void fail(std::string_view why);

    ~RedisConn() override;

protected:
    void onData(uint8_t* data, size_t len) override;
    void onEof() override;
    void onClosed() override;
    void onTlsHandshake(std::string_view error) override;

private:
    RedisConn(loop::EventLoop* loop, int fd);
    struct Pending {
        Callback cb;
        uint64_t sent_ms;
    };
    redisReader* reader_;
    std::deque<Pending> pending_;
    PushHandler on_push_;
    LostHandler on_lost_;
    std::string why_ = "connection closed by the server";
};

}  // namespace sb::engines::redis
