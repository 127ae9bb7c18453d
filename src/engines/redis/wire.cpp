#include "engines/redis/wire.h"

namespace sb::engines::redis {

namespace {

void appendNetstring(std::string* out, std::string_view s) {
    out->append(std::to_string(s.size()));
    out->push_back(':');
    out->append(s);
}

bool takeNetstring(std::string_view* in, std::string* out) {
    const size_t colon = in->find(':');
    size_t len = 0;
    // Canonical lengths only ("15", never "015"): one value has one encoding.
    if (colon == std::string_view::npos || (colon > 1 && in->front() == '0') ||
        !parseNumber(in->substr(0, colon), &len) || in->size() - colon - 1 < len) {
        return false;
    }
    out->assign(in->substr(colon + 1, len));
    in->remove_prefix(colon + 1 + len);
    return true;
}

}  // namespace

std::string encodePresence(bool join_leave, std::string_view node, const broker::ClientInfo& who) {
    std::string v;
    v.reserve(node.size() + who.client_id.size() + who.user.size() + who.info_json.size() + 16);
    v.push_back(join_leave ? '1' : '0');
    v.append(node);
    v.push_back('\n');
    appendNetstring(&v, who.client_id);
    appendNetstring(&v, who.user);
    appendNetstring(&v, who.info_json);
    return v;
}

std::shared_ptr<const broker::ClientInfo> decodePresence(std::string_view v) {
    const size_t nl = v.find('\n');
    if (nl == std::string_view::npos) {
        return nullptr;
    }
    v.remove_prefix(nl + 1);
    auto who = std::make_shared<broker::ClientInfo>();
    if (!takeNetstring(&v, &who->client_id) || !takeNetstring(&v, &who->user) ||
        !takeNetstring(&v, &who->info_json) || !v.empty()) {
        return nullptr;
    }
    return who;
}

std::optional<PublicationFields> parsePublication(std::string_view payload) {
    const size_t a = payload.find('\n');
    if (a == std::string_view::npos) {
        return std::nullopt;
    }
    const size_t b = payload.find('\n', a + 1);
    if (b == std::string_view::npos) {
        return std::nullopt;
    }
    const size_t c = payload.find('\n', b + 1);
    if (c == std::string_view::npos) {
        return std::nullopt;
    }
    PublicationFields f;
    f.epoch = payload.substr(0, a);
    if (f.epoch.empty() || !parseNumber(payload.substr(a + 1, b - a - 1), &f.offset) ||
        !parseNumber(payload.substr(b + 1, c - b - 1), &f.time_ms)) {
        return std::nullopt;
    }
    f.data = payload.substr(c + 1);
    return f;
}

}  // namespace sb::engines::redis
