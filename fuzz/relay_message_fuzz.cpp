// Node-to-node relay messages (server/session_relay.h): they come from other nodes through the
// engine. Any input is parsed without crashing, and what parses re-encodes to a message that
// parses to the same fields (one meaning per message).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/session_relay.h"

using sb::server::RelayMessage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto m = sb::server::parseRelayMessage(in);
    if (!m) {
        return 0;
    }
    std::string again;
    switch (m->type) {
        case RelayMessage::Type::kRequest:
            again = sb::server::encodeRelayRequest(m->origin, m->id, m->request);
            break;
        case RelayMessage::Type::kReply:
            again = sb::server::encodeRelayReply(m->id, m->reply);
            break;
        case RelayMessage::Type::kPiece:
            if (!m->last) {
                return 0;
            }
            again = sb::server::splitRelayReply(m->id, m->piece, m->piece.size() + 1)[0];
            break;
    }
    auto back = sb::server::parseRelayMessage(again);
    if (!back || back->type != m->type || back->id != m->id || back->origin != m->origin ||
        back->request.kind != m->request.kind || back->request.session != m->request.session ||
        back->request.user != m->request.user || back->request.body != m->request.body ||
        back->request.ack != m->request.ack || back->request.wait_ms != m->request.wait_ms ||
        back->reply.status != m->reply.status || back->reply.body != m->reply.body ||
        back->reply.content_type != m->reply.content_type ||
        back->reply.extra_headers != m->reply.extra_headers || back->piece != m->piece ||
        back->last != m->last) {
        std::abort();
    }
    return 0;
}
