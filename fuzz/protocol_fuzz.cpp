// Fuzz target for the native protocol codec (protocol/codec.h). Input: one text frame. The
// parser must never crash; a second parse of the same frame must agree with the first (the
// thread's parser is reused); whatever it returns, re-encoded by the encoders, must be JSON
// that simdjson accepts — the request's data in a `message`, its id and strings in replies,
// and the error message in an `error`.
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/codec.h"

namespace {

namespace protocol = sb::protocol;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "protocol_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

simdjson::dom::parser& jsonParser() {
    static simdjson::dom::parser parser;
    return parser;
}

void checkJson(const std::string& text, const char* what) {
    simdjson::dom::element e;
    check(jsonParser().parse(text).get(e) == simdjson::SUCCESS, what);
    check(e.is_object(), what);
}

bool inside(std::string_view v, std::string_view frame) {
    return v.empty() ||
           (v.data() >= frame.data() && v.data() + v.size() <= frame.data() + frame.size());
}

bool sameRequest(const protocol::Request& a, const protocol::Request& b) {
    return a.type == b.type && a.id_json == b.id_json && a.channel == b.channel &&
           a.since.has_value() == b.since.has_value() &&
           (!a.since || (a.since->epoch == b.since->epoch && a.since->offset == b.since->offset)) &&
           a.data == b.data && a.idempotency_key == b.idempotency_key && a.session == b.session &&
           a.user == b.user && a.name == b.name && a.info == b.info && a.offset == b.offset &&
           a.limit == b.limit;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exactly sized copy so that ASan sees any read past the frame.
    auto buf = std::make_unique<char[]>(size);
    if (size > 0) {
        std::memcpy(buf.get(), data, size);
    }
    const std::string_view frame(buf.get(), size);
    const auto r = protocol::parseRequest(frame);
    const auto again = protocol::parseRequest(frame);
    check(r.has_value() == again.has_value(), "same frame, same outcome");

    std::string out;
    if (!r.has_value()) {
        const protocol::ParseError& e = r.error();
        check(e.kind == again.error().kind && e.message == again.error().message &&
                  e.id_json == again.error().id_json,
              "same frame, same error");
        check(e.kind == protocol::ParseErrorKind::kBadJson ||
                  e.kind == protocol::ParseErrorKind::kBadRequest ||
                  e.kind == protocol::ParseErrorKind::kUnknownType,
              "error kind");
        check(inside(e.id_json, frame), "error id points into the frame");
        protocol::encodeError(&out, e.id_json, "bad_request", e.message);
        checkJson(out, "error reply is JSON");
        return 0;
    }
    const protocol::Request& req = *r;
    check(sameRequest(req, *again), "same frame, same request");
    check(inside(req.id_json, frame), "id points into the frame");
    check(req.id_json.size() <= protocol::kMaxIdBytes * 6 + 2, "id size");
    check(req.info.size() <= protocol::kMaxInfoBytes, "info size");

    protocol::encodePong(&out, req.id_json);
    checkJson(out, "pong is JSON");
    out.clear();
    protocol::encodeConnected(&out, req.id_json, req.name, req.session, true, 25);
    checkJson(out, "connected is JSON");
    out.clear();
    const protocol::PresenceEntry entry{req.user, req.idempotency_key, req.info};
    protocol::encodePresence(&out, req.id_json, req.channel, {&entry, 1});
    checkJson(out, "presence is JSON");
    out.clear();
    const std::string_view epoch = req.since ? std::string_view(req.since->epoch) : "e";
    protocol::encodeMessage(&out, req.channel, epoch, req.offset, req.data, req.limit != 0);
    checkJson(out, "message is JSON");
    if (req.type == protocol::MsgType::kPublish) {
        simdjson::dom::element e;
        check(jsonParser().parse(req.data).get(e) == simdjson::SUCCESS, "data alone is JSON");
    }
    return 0;
}
