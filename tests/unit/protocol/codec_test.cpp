// Tests for protocol/codec.h: every request type with all its fields, every error path and its
// code, the depth and size edges, string lifetimes, the encoders read back by simdjson,
// string escaping, and the channel name table.
#include "protocol/codec.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sb::protocol {
namespace {

// Parses `frame` from an exactly sized heap copy, so ASan catches any read past its end.
struct Parsed {
    std::unique_ptr<char[]> buf;
    size_t size = 0;
    base::Expected<Request, ParseError> r;

    std::string_view frame() const { return {buf.get(), size}; }
    bool inFrame(std::string_view v) const {
        return v.data() >= buf.get() && v.data() + v.size() <= buf.get() + size;
    }
};

std::unique_ptr<Parsed> parse(std::string_view frame) {
    auto buf = std::make_unique<char[]>(frame.size());
    if (!frame.empty()) {
        std::memcpy(buf.get(), frame.data(), frame.size());
    }
    auto r = parseRequest(std::string_view(buf.get(), frame.size()));
    return std::unique_ptr<Parsed>(new Parsed{std::move(buf), frame.size(), std::move(r)});
}

Request ok(std::string_view frame) {
    auto r = parseRequest(frame);
    EXPECT_TRUE(r.has_value()) << frame << " → " << (r ? "" : r.error().message);
    return r ? std::move(*r) : Request{};
}

ParseError err(std::string_view frame) {
    auto r = parseRequest(frame);
    EXPECT_FALSE(r.has_value()) << frame;
    return r ? ParseError{} : r.error();
}

// ---- Requests -------------------------------------------------------------------------------

TEST(CodecParseTest, ConnectWithAllFields) {
    const auto p =
        parse(R"({"type":"connect","id":1,"name":"web","user":"alice","info":{"avatar":"a.png"},)"
              R"("session":"s_8f3"})");
    ASSERT_TRUE(p->r.has_value()) << p->r.error().message;
    const Request& r = *p->r;
    EXPECT_EQ(r.type, MsgType::kConnect);
    EXPECT_EQ(r.id_json, "1");
    EXPECT_EQ(r.name, "web");
    EXPECT_EQ(r.user, "alice");
    EXPECT_EQ(r.session, "s_8f3");
    EXPECT_EQ(r.info, R"({"avatar":"a.png"})");
    // Views into the caller's frame, nothing decoded aside.
    EXPECT_TRUE(p->inFrame(r.id_json));
    EXPECT_TRUE(p->inFrame(r.name));
    EXPECT_TRUE(p->inFrame(r.user));
    EXPECT_TRUE(p->inFrame(r.session));
    EXPECT_EQ(r.unescaped_storage, nullptr);
}

TEST(CodecParseTest, ConnectWithNoFields) {
    const Request r = ok(R"({"type":"connect"})");
    EXPECT_EQ(r.type, MsgType::kConnect);
    EXPECT_TRUE(r.id_json.empty());
    EXPECT_TRUE(r.user.empty());
    EXPECT_TRUE(r.session.empty());
    EXPECT_TRUE(r.info.empty());
}

TEST(CodecParseTest, SubscribeWithSince) {
    const auto p =
        parse(R"({"type":"subscribe","id":2,"channel":"chat:lobby","since":{"epoch":"e_9a",)"
              R"("offset":41,"extra":[1]}})");
    ASSERT_TRUE(p->r.has_value());
    const Request& r = *p->r;
    EXPECT_EQ(r.type, MsgType::kSubscribe);
    EXPECT_EQ(r.id_json, "2");
    EXPECT_EQ(r.channel, "chat:lobby");
    EXPECT_TRUE(p->inFrame(r.channel));
    ASSERT_TRUE(r.since.has_value());
    EXPECT_EQ(r.since->epoch, "e_9a");
    EXPECT_EQ(r.since->offset, 41u);
}

TEST(CodecParseTest, SubscribeWithoutSince) {
    const Request r = ok(R"({"type":"subscribe","channel":"chat:lobby"})");
    EXPECT_FALSE(r.since.has_value());
    EXPECT_FALSE(ok(R"({"type":"subscribe","channel":"a","since":null})").since.has_value());
}

TEST(CodecParseTest, Unsubscribe) {
    const Request r = ok(R"({"type":"unsubscribe","id":3,"channel":"chat:lobby"})");
    EXPECT_EQ(r.type, MsgType::kUnsubscribe);
    EXPECT_EQ(r.id_json, "3");
    EXPECT_EQ(r.channel, "chat:lobby");
}

TEST(CodecParseTest, PublishWithAllFields) {
    const auto p = parse(R"({"type":"publish","id":"req-4","channel":"chat:lobby",)"
                         R"("data":{"text":"hi"},"idempotency_key":"k-77"})");
    ASSERT_TRUE(p->r.has_value());
    const Request& r = *p->r;
    EXPECT_EQ(r.type, MsgType::kPublish);
    EXPECT_EQ(r.id_json, R"("req-4")");
    EXPECT_EQ(r.channel, "chat:lobby");
    EXPECT_EQ(r.data, R"({"text":"hi"})");
    EXPECT_EQ(r.idempotency_key, "k-77");
    EXPECT_TRUE(p->inFrame(r.idempotency_key));
}

TEST(CodecParseTest, PublishDataOfEveryKindIsKeptVerbatim) {
    const char* values[] = {R"("text")",
                            "42",
                            "-0",
                            "1.50e+3",
                            "18446744073709551615",
                            "-9223372036854775808",
                            "true",
                            "false",
                            "null",
                            "[]",
                            "{}",
                            R"([1,"two",{"three":[3.0]}])",
                            R"("quote \" backslash \\ tab \t uni \u00e9 \ud83d\ude00")",
                            R"({"k":"\"}{]["})"};
    for (const char* v : values) {
        const std::string frame = std::string(R"({"type":"publish","channel":"c","data":)") + v +
                                  R"(,"idempotency_key":"k"})";
        const Request r = ok(frame);
        EXPECT_EQ(r.data, v) << frame;
        EXPECT_EQ(r.idempotency_key, "k") << frame;
    }
}

TEST(CodecParseTest, PublishDataIsMinified) {
    const Request r =
        ok("{ \"type\" : \"publish\" ,\n\t\"data\" : { \"a b\" : [ 1 , 2 ,\r\n\"x  y\" ] , "
           "\"c\" : { } } , \"channel\" : \"x\" , \"id\" : 7 }");
    EXPECT_EQ(r.data, R"({"a b":[1,2,"x  y"],"c":{}})");
    EXPECT_EQ(r.channel, "x");
    EXPECT_EQ(r.id_json, "7");
}

TEST(CodecParseTest, Presence) {
    const Request r = ok(R"({"type":"presence","id":5,"channel":"chat:lobby"})");
    EXPECT_EQ(r.type, MsgType::kPresence);
    EXPECT_EQ(r.channel, "chat:lobby");
}

TEST(CodecParseTest, HistoryWithAllFields) {
    const Request r = ok(
        R"({"type":"history","id":6,"channel":"chat:lobby","since":{"epoch":"e_9a","offset":50},)"
        R"("limit":100})");
    EXPECT_EQ(r.type, MsgType::kHistory);
    EXPECT_EQ(r.channel, "chat:lobby");
    ASSERT_TRUE(r.since.has_value());
    EXPECT_EQ(r.since->epoch, "e_9a");
    EXPECT_EQ(r.since->offset, 50u);
    EXPECT_EQ(r.limit, 100u);
    EXPECT_EQ(ok(R"({"type":"history","channel":"c"})").limit, 0u);
    EXPECT_EQ(ok(R"({"type":"history","channel":"c","limit":1099511627776})").limit, UINT32_MAX);
}

TEST(CodecParseTest, Ack) {
    const Request r = ok(R"({"type":"ack","channel":"jobs:eu","offset":18446744073709551615})");
    EXPECT_EQ(r.type, MsgType::kAck);
    EXPECT_TRUE(r.id_json.empty());
    EXPECT_EQ(r.channel, "jobs:eu");
    EXPECT_EQ(r.offset, UINT64_MAX);
}

TEST(CodecParseTest, Ping) {
    const Request r = ok(R"({"type":"ping","id":7})");
    EXPECT_EQ(r.type, MsgType::kPing);
    EXPECT_EQ(r.id_json, "7");
}

TEST(CodecParseTest, IdFormsAreEchoedUnchanged) {
    EXPECT_EQ(ok(R"({"id":-1.5e3,"type":"ping"})").id_json, "-1.5e3");
    EXPECT_EQ(ok(R"({"type":"ping","id":"a\"b\u0041"})").id_json, R"("a\"b\u0041")");
    EXPECT_EQ(ok(R"({"type":"ping","id":""})").id_json, R"("")");
    EXPECT_EQ(ok(R"({"type":"ping","id" :  12 })").id_json, "12");
    EXPECT_TRUE(ok(R"({"type":"ping","id":null})").id_json.empty());
    const std::string id64(64, 'x');
    EXPECT_EQ(ok(R"({"type":"ping","id":")" + id64 + "\"}").id_json, "\"" + id64 + "\"");
    const std::string num64 = "1." + std::string(60, '0') + "e0";  // 64 characters
    EXPECT_EQ(ok(R"({"type":"ping","id":)" + num64 + "}").id_json, num64);
}

TEST(CodecParseTest, UnknownAndForeignFieldsAreIgnored) {
    const Request r =
        ok(R"({"x":{"deep":[1,2,{"y":null}]},"type":"ping","channel":5,"data":1,"offset":-1,)"
           R"("since":"no","limit":"no","info":[],"id":9,"z":"after"})");
    EXPECT_EQ(r.type, MsgType::kPing);
    EXPECT_EQ(r.id_json, "9");
    EXPECT_TRUE(r.channel.empty());
    EXPECT_TRUE(r.data.empty());
}

TEST(CodecParseTest, OptionalNullsAreAbsent) {
    const Request r =
        ok(R"({"type":"connect","session":null,"user":null,"name":null,"info":null})");
    EXPECT_TRUE(r.session.empty());
    EXPECT_TRUE(r.info.empty());
    const Request p = ok(R"({"type":"publish","channel":"c","data":null,"idempotency_key":null})");
    EXPECT_EQ(p.data, "null");
    EXPECT_TRUE(p.idempotency_key.empty());
    EXPECT_EQ(ok(R"({"type":"history","channel":"c","limit":null})").limit, 0u);
}

TEST(CodecParseTest, FirstDuplicateKeyWins) {
    const Request r = ok(R"({"type":"publish","channel":"a","type":"ping","channel":"b",)"
                         R"("data":1,"data":2})");
    EXPECT_EQ(r.type, MsgType::kPublish);
    EXPECT_EQ(r.channel, "a");
    EXPECT_EQ(r.data, "1");
}

TEST(CodecParseTest, EscapedStringsAreDecodedIntoOwnedStorage) {
    auto p = parse(R"({"type":"connect","user":"Jos\u00e9","name":"O\"Brien",)"
                   R"("session":"s\/1","info":{"n":"\u00e9"}})");
    ASSERT_TRUE(p->r.has_value());
    Request copy = *p->r;
    EXPECT_EQ(copy.user, "José");
    EXPECT_EQ(copy.name, "O\"Brien");
    EXPECT_EQ(copy.session, "s/1");
    EXPECT_EQ(copy.info, R"({"n":"\u00e9"})");  // embedded JSON stays as written
    EXPECT_FALSE(p->inFrame(copy.user));
    EXPECT_NE(copy.unescaped_storage, nullptr);
    // The decoded strings outlive the frame, the original Request and the parser's next use.
    p.reset();
    ok(R"({"type":"connect","user":"someone else entirely, and longer"})");
    EXPECT_EQ(copy.user, "José");
    EXPECT_EQ(copy.name, "O\"Brien");
    Request moved = std::move(copy);
    EXPECT_EQ(moved.session, "s/1");

    const Request c = ok(R"({"type":"subscribe","channel":"chat\u003alobby"})");
    EXPECT_EQ(c.channel, "chat:lobby");
    EXPECT_EQ(ok(R"({"type":"ping","id":7,"\u0074ype":"connect"})").type, MsgType::kPing);
    EXPECT_EQ(ok(R"({"t\u0079pe":"\u0070ing"})").type, MsgType::kPing);
}

TEST(CodecParseTest, LargeFrameThenSmallFrames) {
    // Above the capacity the thread's parser keeps: parsed, then the parser is released.
    std::string big = R"({"type":"publish","channel":"c","data":")";
    big.append(300u << 10, 'x');
    big += R"(","id":1})";
    for (int i = 0; i < 2; ++i) {
        const Request r = ok(big);
        EXPECT_EQ(r.data.size(), (300u << 10) + 2);
        EXPECT_EQ(r.id_json, "1");
        EXPECT_EQ(ok(R"({"type":"ping","id":2})").id_json, "2");
    }
}

TEST(CodecParseTest, EachThreadHasItsOwnParser) {
    auto work = [](int salt) {
        for (int i = 0; i < 2000; ++i) {
            const std::string ch = "c" + std::to_string(salt * 100000 + i);
            const std::string frame = R"({"type":"publish","channel":")" + ch + R"(","data":[)" +
                                      std::to_string(i) + "]}";
            auto r = parseRequest(frame);
            if (!r || r->channel != ch || r->data != "[" + std::to_string(i) + "]") {
                return false;
            }
        }
        return true;
    };
    bool a = false;
    bool b = false;
    std::thread t1([&] { a = work(1); });
    std::thread t2([&] { b = work(2); });
    t1.join();
    t2.join();
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
}

// ---- Errors ---------------------------------------------------------------------------------

TEST(CodecErrorTest, BadJson) {
    const std::string cases[] = {
        "",
        "   ",
        "not json",
        "{",
        R"({"type":"ping"} x)",
        R"({"type":"ping",})",
        R"({'type':'ping'})",
        R"({"type":"ping","id":01})",
        R"({"type":"ping","id":1e400})",
        R"({"type":"ping","id":123456789012345678901234567890})",
        R"({"type":"ping","x":"\ud800"})",
        R"({"type":"ping","x":"\q"})",
        std::string("{\"type\":\"ping\",\"x\":\"a\tb\"}"),
        std::string("{\"type\":\"ping\"}\0", 16),
        "\xEF\xBB\xBF{\"type\":\"ping\"}",
        "{\"type\":\"ping\",\"x\":\"\xC3\x28\"}",
        "{\"type\":\"ping\",\"x\":\"\xED\xA0\x80\"}",
    };
    for (const auto& c : cases) {
        const ParseError e = err(c);
        EXPECT_EQ(e.kind, ParseErrorKind::kBadJson) << c;
        EXPECT_TRUE(e.id_json.empty()) << c;
        EXPECT_FALSE(e.message.empty());
    }
}

TEST(CodecErrorTest, NotAnObjectIsBadJson) {
    for (const char* c : {"[1,2]", R"("ping")", "42", "null", "true", R"([{"type":"ping"}])"}) {
        const ParseError e = err(c);
        EXPECT_EQ(e.kind, ParseErrorKind::kBadJson) << c;
        EXPECT_EQ(e.message, "a request must be a JSON object");
    }
}

// The envelope is level 1; `data` holds containers at levels 2..`levels` (objects on even
// levels, arrays on odd ones), the innermost one empty or holding a 1.
std::string nested(size_t levels, bool innermost_empty) {
    std::string open;
    std::string close;
    for (size_t level = 2; level <= levels; ++level) {
        const bool last = level == levels;
        if (level % 2 == 0) {
            open += last && innermost_empty ? "{" : R"({"k":)";
            close.insert(0, "}");
        } else {
            open += "[";
            close.insert(0, "]");
        }
    }
    return R"({"type":"publish","channel":"c","data":)" + open + (innermost_empty ? "" : "1") +
           close + "}";
}

TEST(CodecErrorTest, DepthLimitIsExactlyThirtyTwo) {
    for (bool empty : {false, true}) {
        for (size_t levels : {2u, 31u, 32u}) {
            const std::string f = nested(levels, empty);
            auto r = parseRequest(f);
            EXPECT_TRUE(r.has_value()) << levels << " levels, empty " << empty << ": " << f;
        }
        for (size_t levels : {33u, 34u, 100u, 5000u}) {
            const std::string f = nested(levels, empty);
            const ParseError e = err(f);
            EXPECT_EQ(e.kind, ParseErrorKind::kBadJson) << levels << " empty " << empty;
            EXPECT_EQ(e.message, "nesting deeper than 32 levels") << levels;
        }
    }
    // Depth-32 documents parse again and again (the slow path restores the fast one).
    EXPECT_TRUE(parseRequest(nested(32, false)).has_value());
    EXPECT_TRUE(parseRequest(R"({"type":"ping"})").has_value());
    EXPECT_FALSE(parseRequest(nested(33, true)).has_value());
    EXPECT_TRUE(parseRequest(nested(32, false)).has_value());
}

TEST(CodecErrorTest, OversizedFrameIsRefusedUnparsed) {
    std::string big(kMaxFrameBytes + 1, ' ');
    const ParseError e = err(big);
    EXPECT_EQ(e.kind, ParseErrorKind::kBadJson);
    EXPECT_EQ(e.message, "frame larger than 16 MiB");
}

TEST(CodecErrorTest, TypeMissingOrNotAString) {
    ParseError e = err(R"({"id":1})");
    EXPECT_EQ(e.kind, ParseErrorKind::kBadRequest);
    EXPECT_EQ(e.message, R"(field "type" is required)");
    EXPECT_EQ(e.id_json, "1");
    e = err(R"({"type":5,"id":"x"})");
    EXPECT_EQ(e.kind, ParseErrorKind::kBadRequest);
    EXPECT_EQ(e.message, R"(field "type" must be a string)");
    EXPECT_EQ(e.id_json, R"("x")");
    EXPECT_EQ(err(R"({"type":null})").kind, ParseErrorKind::kBadRequest);
    EXPECT_EQ(err(R"({})").kind, ParseErrorKind::kBadRequest);
}

TEST(CodecErrorTest, UnknownTypeEchoesTheId) {
    ParseError e = err(R"({"type":"connected","id":42})");
    EXPECT_EQ(e.kind, ParseErrorKind::kUnknownType);
    EXPECT_EQ(e.message, R"(unknown type "connected")");
    EXPECT_EQ(e.id_json, "42");
    e = err(R"({"id":"q","type":"PING"})");
    EXPECT_EQ(e.kind, ParseErrorKind::kUnknownType);
    EXPECT_EQ(e.id_json, R"("q")");
    // A long type name is quoted up to 32 bytes, cut on a code point boundary.
    e = err(R"({"type":")" + std::string(31, 'a') + "\xC3\xA9" + "zzzz\"}");
    EXPECT_EQ(e.message, "unknown type \"" + std::string(31, 'a') + "\"");
}

TEST(CodecErrorTest, BadId) {
    const std::string cases[] = {
        R"({"type":"ping","id":{}})",
        R"({"type":"ping","id":[1]})",
        R"({"type":"ping","id":true})",
        R"({"type":"ping","id":")" + std::string(65, 'x') + "\"}",
        R"({"type":"ping","id":)" + std::string(65, '1') + "e0}",
        R"({"type":"nope","id":false})",
    };
    for (const auto& c : cases) {
        const ParseError e = err(c);
        EXPECT_EQ(e.kind, ParseErrorKind::kBadRequest) << c;
        EXPECT_EQ(e.message, R"(field "id" must be a number or a string of at most 64 bytes)");
        EXPECT_TRUE(e.id_json.empty());
    }
}

TEST(CodecErrorTest, FieldErrorsNameTheFieldAndEchoTheId) {
    struct Case {
        const char* frame;
        const char* message;
    };
    const Case cases[] = {
        {R"({"type":"subscribe","id":1})", R"(field "channel" is required)"},
        {R"({"type":"subscribe","id":1,"channel":null})", R"(field "channel" must be a string)"},
        {R"({"type":"unsubscribe","id":1,"channel":["a"]})", R"(field "channel" must be a string)"},
        {R"({"type":"presence","id":1,"channel":1})", R"(field "channel" must be a string)"},
        {R"({"type":"history","id":1})", R"(field "channel" is required)"},
        {R"({"type":"ack","id":1,"offset":1})", R"(field "channel" is required)"},
        {R"({"type":"publish","id":1,"data":1})", R"(field "channel" is required)"},
        {R"({"type":"publish","id":1,"channel":"c"})", R"(field "data" is required)"},
        {R"({"type":"publish","id":1,"channel":"c","data":1,"idempotency_key":5})",
         R"(field "idempotency_key" must be a string)"},
        {R"({"type":"ack","id":1,"channel":"c"})", R"(field "offset" is required)"},
        {R"({"type":"ack","id":1,"channel":"c","offset":-1})",
         R"(field "offset" must be an unsigned integer)"},
        {R"({"type":"ack","id":1,"channel":"c","offset":1.0})",
         R"(field "offset" must be an unsigned integer)"},
        {R"({"type":"ack","id":1,"channel":"c","offset":"1"})",
         R"(field "offset" must be an unsigned integer)"},
        {R"({"type":"ack","id":1,"channel":"c","offset":null})",
         R"(field "offset" must be an unsigned integer)"},
        {R"({"type":"subscribe","id":1,"channel":"c","since":[]})",
         R"(field "since" must be an object with "epoch" and "offset")"},
        {R"({"type":"subscribe","id":1,"channel":"c","since":{"offset":1}})",
         R"(field "since.epoch" must be a string)"},
        {R"({"type":"history","id":1,"channel":"c","since":{"epoch":1,"offset":1}})",
         R"(field "since.epoch" must be a string)"},
        {R"({"type":"subscribe","id":1,"channel":"c","since":{"epoch":"e"}})",
         R"(field "since.offset" must be an unsigned integer)"},
        {R"({"type":"subscribe","id":1,"channel":"c","since":{"epoch":"e","offset":-3}})",
         R"(field "since.offset" must be an unsigned integer)"},
        {R"({"type":"history","id":1,"channel":"c","limit":-1})",
         R"(field "limit" must be an unsigned integer)"},
        {R"({"type":"history","id":1,"channel":"c","limit":2.5})",
         R"(field "limit" must be an unsigned integer)"},
        {R"({"type":"connect","id":1,"session":1})", R"(field "session" must be a string)"},
        {R"({"type":"connect","id":1,"user":{}})", R"(field "user" must be a string)"},
        {R"({"type":"connect","id":1,"name":false})", R"(field "name" must be a string)"},
        {R"({"type":"connect","id":1,"info":"x"})", R"(field "info" must be an object)"},
        {R"({"type":"connect","id":1,"info":[]})", R"(field "info" must be an object)"},
    };
    for (const auto& c : cases) {
        const ParseError e = err(c.frame);
        EXPECT_EQ(e.kind, ParseErrorKind::kBadRequest) << c.frame;
        EXPECT_EQ(e.message, c.message) << c.frame;
        EXPECT_EQ(e.id_json, "1") << c.frame;
    }
}

TEST(CodecErrorTest, InfoIsAtMostOneKiB) {
    // {"a":"xxx…"} is 8 bytes of syntax plus the string.
    const std::string fits = R"({"a":")" + std::string(kMaxInfoBytes - 8, 'x') + "\"}";
    const std::string over = R"({"a":")" + std::string(kMaxInfoBytes - 7, 'x') + "\"}";
    EXPECT_EQ(ok(R"({"type":"connect","info":)" + fits + "}").info.size(), kMaxInfoBytes);
    // Measured minified: whitespace does not count.
    EXPECT_EQ(ok(R"({"type":"connect","info":  {  "a" :  ")" + std::string(kMaxInfoBytes - 8, 'x') +
                 "\"  }  }")
                  .info,
              fits);
    const std::string frame = R"({"type":"connect","id":3,"info":)" + over + "}";
    const ParseError e = err(frame);
    EXPECT_EQ(e.kind, ParseErrorKind::kBadRequest);
    EXPECT_EQ(e.message, R"(field "info" must be at most 1024 bytes of JSON)");
    EXPECT_EQ(e.id_json, "3");
}

// ---- Encoders -------------------------------------------------------------------------------

// Parses encoder output with simdjson; fails the test if it is not one valid JSON object.
class Json {
public:
    explicit Json(const std::string& text) {
        auto err = parser_.parse(text).get(obj_);
        EXPECT_EQ(err, simdjson::SUCCESS) << text;
    }
    std::string str(const char* key) {
        std::string_view v;
        EXPECT_EQ(obj_[key].get_string().get(v), simdjson::SUCCESS) << key;
        return std::string(v);
    }
    uint64_t num(const char* key) {
        uint64_t v = 0;
        EXPECT_EQ(obj_[key].get_uint64().get(v), simdjson::SUCCESS) << key;
        return v;
    }
    bool flag(const char* key) {
        bool v = false;
        EXPECT_EQ(obj_[key].get_bool().get(v), simdjson::SUCCESS) << key;
        return v;
    }
    bool has(const char* key) { return obj_[key].error() == simdjson::SUCCESS; }
    std::string minified(const char* key) { return simdjson::minify(obj_[key].value()); }
    simdjson::dom::element at(const char* key) { return obj_[key].value(); }

private:
    simdjson::dom::parser parser_;
    simdjson::dom::object obj_;
};

TEST(CodecEncodeTest, Connected) {
    std::string out = "prefix";
    encodeConnected(&out, "1", "c_1f2e", "s_8f3", true, 25);
    EXPECT_EQ(out, R"(prefix{"type":"connected","id":1,"client":"c_1f2e","session":"s_8f3",)"
                   R"("resumed":true,"ping_interval":25,"channels":[]})");
    out.clear();
    encodeConnected(&out, "", "c\"1", "", false, 0);
    Json j(out);
    EXPECT_EQ(j.str("type"), "connected");
    EXPECT_FALSE(j.has("id"));
    EXPECT_EQ(j.str("client"), "c\"1");
    EXPECT_EQ(j.str("session"), "");
    EXPECT_FALSE(j.flag("resumed"));
    EXPECT_EQ(j.num("ping_interval"), 0u);
    EXPECT_FALSE(j.has("channels"));  // only a resume restores channels
    out.clear();
    const RestoredChannel restored[] = {{"room:x", "e_1", 5, true}, {"a\"b", "", 0, false}};
    encodeConnected(&out, "", "c", "s", true, 25, restored);
    EXPECT_EQ(out, R"({"type":"connected","client":"c","session":"s","resumed":true,)"
                   R"("ping_interval":25,"channels":[{"channel":"room:x","epoch":"e_1",)"
                   R"("offset":5,"recovered":true},{"channel":"a\"b","epoch":"","offset":0,)"
                   R"("recovered":false}]})");
}

TEST(CodecEncodeTest, Subscribed) {
    std::string out;
    encodeSubscribed(&out, "2", "chat:lobby", "e_9a", 57, true);
    EXPECT_EQ(out, R"({"type":"subscribed","id":2,"channel":"chat:lobby","epoch":"e_9a",)"
                   R"("offset":57,"recovered":true})");
    out.clear();
    encodeSubscribed(&out, R"("s")", "a", "e", UINT64_MAX, std::nullopt);
    Json j(out);
    EXPECT_EQ(j.str("id"), "s");
    EXPECT_EQ(j.num("offset"), UINT64_MAX);
    EXPECT_FALSE(j.has("recovered"));
    out.clear();
    encodeSubscribed(&out, "", "a", "e", 0, false);
    EXPECT_FALSE(Json(out).flag("recovered"));
}

TEST(CodecEncodeTest, UnsubscribedPublishedAckedPong) {
    std::string out;
    encodeUnsubscribed(&out, "3", "chat:lobby");
    EXPECT_EQ(out, R"({"type":"unsubscribed","id":3,"channel":"chat:lobby"})");
    out.clear();
    encodePublished(&out, "4", "chat:lobby", "e_9a", 58, false);
    EXPECT_EQ(out,
              R"({"type":"published","id":4,"channel":"chat:lobby","epoch":"e_9a","offset":58})");
    out.clear();
    encodePublished(&out, "4", "chat:lobby", "e_9a", 58, true);
    Json j(out);
    EXPECT_TRUE(j.flag("duplicate"));
    EXPECT_EQ(j.num("offset"), 58u);
    out.clear();
    encodeAcked(&out, "-1.5");
    EXPECT_EQ(out, R"({"type":"acked","id":-1.5})");
    out.clear();
    encodePong(&out, "7");
    EXPECT_EQ(out, R"({"type":"pong","id":7})");
    out.clear();
    encodePong(&out, "");
    EXPECT_EQ(out, R"({"type":"pong"})");
}

TEST(CodecEncodeTest, Presence) {
    const PresenceEntry entries[] = {{"c_1f2e", "alice", R"({"avatar":"a.png"})"},
                                     {"c_77", "bob", ""}};
    std::string out;
    encodePresence(&out, "5", "chat:lobby", entries);
    EXPECT_EQ(out, R"({"type":"presence","id":5,"channel":"chat:lobby","count":2,"clients":[)"
                   R"({"client":"c_1f2e","user":"alice","info":{"avatar":"a.png"}},)"
                   R"({"client":"c_77","user":"bob"}]})");
    Json j(out);
    EXPECT_EQ(j.num("count"), 2u);
    out.clear();
    encodePresence(&out, "", "c", {});
    Json e(out);
    EXPECT_EQ(e.num("count"), 0u);
    EXPECT_EQ(e.minified("clients"), "[]");
}

TEST(CodecEncodeTest, History) {
    const HistoryItem pubs[] = {{51, R"({"text":"a"})"}, {52, "[1,2]"}, {53, ""}};
    std::string out;
    encodeHistory(&out, "6", "chat:lobby", "e_9a", 58, true, pubs);
    EXPECT_EQ(out,
              R"({"type":"history","id":6,"channel":"chat:lobby","epoch":"e_9a",)"
              R"("offset":58,"recovered":true,"publications":[{"offset":51,)"
              R"("data":{"text":"a"}},{"offset":52,"data":[1,2]},{"offset":53,"data":null}]})");
    out.clear();
    encodeHistory(&out, "", "c", "e", 0, std::nullopt, {});
    Json j(out);
    EXPECT_FALSE(j.has("recovered"));
    EXPECT_EQ(j.minified("publications"), "[]");
}

TEST(CodecEncodeTest, Message) {
    std::string out;
    encodeMessage(&out, "chat:lobby", "e_9a", 58, R"({"text":"hi"})", false);
    EXPECT_EQ(out, R"({"type":"message","channel":"chat:lobby","epoch":"e_9a","offset":58,)"
                   R"("data":{"text":"hi"}})");
    out.clear();
    encodeMessage(&out, "c", "e", 1, "", true);
    EXPECT_EQ(out, R"({"type":"message","channel":"c","epoch":"e","offset":1,"data":null,)"
                   R"("gap":true})");
}

TEST(CodecEncodeTest, JoinLeave) {
    std::string out;
    encodeJoinLeave(&out, true, "chat:lobby", "c_1", "alice", R"({"a":1})");
    EXPECT_EQ(
        out,
        R"({"type":"join","channel":"chat:lobby","client":"c_1","user":"alice","info":{"a":1}})");
    out.clear();
    encodeJoinLeave(&out, false, "chat:lobby", "c_1", "", "");
    EXPECT_EQ(out, R"({"type":"leave","channel":"chat:lobby","client":"c_1","user":""})");
}

TEST(CodecEncodeTest, ErrorAndDisconnect) {
    std::string out;
    encodeError(&out, "8", "bad_request", R"(field "channel" is required)");
    EXPECT_EQ(out, R"({"type":"error","id":8,"code":"bad_request",)"
                   R"("message":"field \"channel\" is required"})");
    out.clear();
    encodeDisconnect(&out, 4000, "slow consumer", true);
    EXPECT_EQ(out,
              R"({"type":"disconnect","code":4000,"reason":"slow consumer","reconnect":true})");
    out.clear();
    encodeDisconnect(&out, 1001, "server shutting down; reconnect", false);
    Json j(out);
    EXPECT_EQ(j.num("code"), 1001u);
    EXPECT_FALSE(j.flag("reconnect"));
}

// A request's id and data go back out exactly as they came in.
TEST(CodecEncodeTest, RoundTripThroughParseAndEncode) {
    const Request r = ok(R"({"type":"publish","id":"r\"1","channel":"chat:lobby",)"
                         R"("data":{ "t" : "a\nb", "n": [1, 2.5] }})");
    std::string out;
    encodePublished(&out, r.id_json, r.channel, "e", 1, false);
    encodeMessage(&out, r.channel, "e", 1, r.data, false);
    const std::string published = out.substr(0, out.find("}{") + 1);
    const std::string message = out.substr(published.size());
    Json p(published);
    EXPECT_EQ(p.str("id"), "r\"1");
    Json m(message);
    EXPECT_EQ(m.minified("data"), R"({"t":"a\nb","n":[1,2.5]})");
    std::string_view t;
    ASSERT_EQ(m.at("data")["t"].get_string().get(t), simdjson::SUCCESS);
    EXPECT_EQ(t, "a\nb");
}

// ---- Escaping -------------------------------------------------------------------------------

std::string jsonQuoted(std::string_view s) {
    std::string out;
    appendJsonString(&out, s);
    return out;
}

TEST(CodecEscapeTest, Table) {
    EXPECT_EQ(jsonQuoted(""), R"("")");
    EXPECT_EQ(jsonQuoted("plain"), R"("plain")");
    EXPECT_EQ(jsonQuoted("a\"b"), R"("a\"b")");
    EXPECT_EQ(jsonQuoted("a\\b"), R"("a\\b")");
    EXPECT_EQ(jsonQuoted("\\\""), R"("\\\"")");
    EXPECT_EQ(jsonQuoted("\n\r\t\b\f"), R"("\u000a\u000d\u0009\u0008\u000c")");
    EXPECT_EQ(jsonQuoted(std::string_view("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
    EXPECT_EQ(jsonQuoted("\x7f"), "\"\x7f\"");
    EXPECT_EQ(jsonQuoted("/"), R"("/")");
    EXPECT_EQ(jsonQuoted("é€😀 日本"), "\"é€😀 日本\"");
    EXPECT_EQ(jsonQuoted("\xE2\x80\xA8"), "\"\xE2\x80\xA8\"");  // U+2028 is legal JSON text
}

TEST(CodecEscapeTest, EveryByteValueRoundTrips) {
    // Every ASCII byte, each alone and all together, plus multi-byte UTF-8, read back by
    // simdjson to the same string.
    std::vector<std::string> inputs;
    std::string all;
    for (int c = 0; c < 0x80; ++c) {
        inputs.emplace_back(1, static_cast<char>(c));
        all.push_back(static_cast<char>(c));
    }
    inputs.push_back(all);
    inputs.emplace_back("mixé\"\\\x01€😀\x1f end");
    simdjson::dom::parser parser;
    for (const auto& s : inputs) {
        const std::string json = jsonQuoted(s);
        std::string_view back;
        ASSERT_EQ(parser.parse(json).get_string().get(back), simdjson::SUCCESS) << json;
        EXPECT_EQ(back, s);
    }
}

TEST(CodecEscapeTest, EncodedStringsRoundTripThroughParseRequest) {
    const std::string nasty = "q\"b\\s\x01\x1f\n é😀";
    std::string frame = R"({"type":"connect","user":)";
    appendJsonString(&frame, nasty);
    frame += '}';
    const Request r = ok(frame);
    EXPECT_EQ(r.user, nasty);
}

TEST(CodecTypeTest, NamesRoundTrip) {
    for (const char* n :
         {"connect", "subscribe", "unsubscribe", "publish", "presence", "history", "ack", "ping"}) {
        const auto t = msgTypeFromName(n);
        ASSERT_TRUE(t.has_value()) << n;
        EXPECT_EQ(msgTypeName(*t), n);
    }
    EXPECT_FALSE(msgTypeFromName("pong").has_value());
    EXPECT_FALSE(msgTypeFromName("").has_value());
    EXPECT_EQ(kSubprotocol, "switchboard.v1.json");
}

}  // namespace
}  // namespace sb::protocol
