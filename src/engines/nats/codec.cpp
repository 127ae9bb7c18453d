#include "engines/nats/codec.h"

#include "engines/redis/wire.h"

namespace sb::engines::nats {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool keptInToken(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;  // lower case is not produced, so not accepted: one spelling per name
}

// Netstrings ("<len>:<bytes>"): any byte may occur in the fields.
void putField(std::string* out, std::string_view s) {
    out->append(std::to_string(s.size()));
    out->push_back(':');
    out->append(s);
}

class FieldReader {
public:
    explicit FieldReader(std::string_view in) : in_(in) {}

    std::optional<std::string_view> next() {
        const size_t colon = in_.find(':');
        size_t len = 0;
        // Canonical lengths only (no leading zero): one encoding per value.
        if (colon == std::string_view::npos || colon > 10 || (colon > 1 && in_[0] == '0') ||
            !redis::parseNumber(in_.substr(0, colon), &len) || len > in_.size() - colon - 1) {
            return std::nullopt;
        }
        std::string_view field = in_.substr(colon + 1, len);
        in_.remove_prefix(colon + 1 + len);
        return field;
    }
    std::optional<uint64_t> number() {
        auto f = next();
        uint64_t v = 0;
        if (!f || !redis::parseNumber(*f, &v)) {
            return std::nullopt;
        }
        return v;
    }
    bool done() const { return in_.empty(); }

private:
    std::string_view in_;
};

}  // namespace

std::string encodeToken(std::string_view raw) {
    if (raw.empty()) {
        return "=";
    }
    std::string out;
    out.reserve(raw.size());
    for (const char ch : raw) {
        const auto c = static_cast<unsigned char>(ch);
        if (keptInToken(c)) {
            out.push_back(ch);
        } else {
            out.push_back('=');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

std::optional<std::string> decodeToken(std::string_view token) {
    if (token == "=") {
        return std::string();
    }
    if (token.empty()) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(token.size());
    for (size_t i = 0; i < token.size(); ++i) {
        const auto c = static_cast<unsigned char>(token[i]);
        if (keptInToken(c)) {
            out.push_back(token[i]);
            continue;
        }
        if (c != '=' || i + 2 >= token.size()) {
            return std::nullopt;
        }
        const int hi = hexValue(token[i + 1]);
        const int lo = hexValue(token[i + 2]);
        if (hi < 0 || lo < 0 || keptInToken(static_cast<unsigned char>(hi * 16 + lo))) {
            return std::nullopt;  // a kept byte escaped would give one name two spellings
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::string hexName(std::string_view raw) {
    static constexpr char kLower[] = "0123456789abcdef";
    std::string out;
    out.reserve(raw.size() * 2);
    for (const char ch : raw) {
        const auto c = static_cast<unsigned char>(ch);
        out.push_back(kLower[c >> 4]);
        out.push_back(kLower[c & 15]);
    }
    return out;
}

std::string encodeSession(const broker::SessionRecord& rec, uint64_t expires_ms) {
    std::string out;
    putField(&out, rec.owner);
    putField(&out, rec.holder);
    putField(&out, std::to_string(rec.ttl_ms));
    putField(&out, std::to_string(expires_ms));
    for (const auto& [channel, pos] : rec.channels) {
        putField(&out, channel);
        putField(&out, pos.epoch);
        putField(&out, std::to_string(pos.offset));
    }
    return out;
}

std::optional<StoredSession> decodeSession(std::string_view value) {
    FieldReader r(value);
    StoredSession s;
    auto owner = r.next();
    auto holder = r.next();
    auto ttl = r.number();
    auto expires = r.number();
    if (!owner || !holder || !ttl || !expires) {
        return std::nullopt;
    }
    s.rec.owner = std::string(*owner);
    s.rec.holder = std::string(*holder);
    s.rec.ttl_ms = *ttl;
    s.expires_ms = *expires;
    while (!r.done()) {
        auto channel = r.next();
        auto epoch = r.next();
        auto offset = r.number();
        if (!channel || !epoch || !offset) {
            return std::nullopt;
        }
        s.rec.channels.emplace_back(std::string(*channel),
                                    broker::StreamPos{std::string(*epoch), *offset});
    }
    return s;
}

std::string encodeNode(const NodeEntry& n) {
    std::string out;
    putField(&out, n.name);
    putField(&out, std::to_string(n.connections));
    putField(&out, std::to_string(n.seen_ms));
    return out;
}

std::optional<NodeEntry> decodeNode(std::string_view value) {
    FieldReader r(value);
    auto name = r.next();
    auto connections = r.number();
    auto seen = r.number();
    if (!name || !connections || !seen || !r.done()) {
        return std::nullopt;
    }
    return NodeEntry{std::string(*name), *connections, *seen};
}

}  // namespace sb::engines::nats
