#include "config/toml.h"

#include <cctype>
#include <charconv>
#include <set>

namespace sb::config {

std::string TomlValue::typeName() const {
    switch (v.index()) {
        case 0:
            return "string";
        case 1:
            return "integer";
        case 2:
            return "float";
        case 3:
            return "boolean";
        default:
            return "array";
    }
}

namespace {

class Parser {
public:
    explicit Parser(std::string_view text) : s_(text) {}

    base::Result<TomlDocument> run() {
        while (true) {
            skipBlankAndComments();
            if (eof()) {
                break;
            }
            if (peek() == '[') {
                if (auto r = table(); !r)
                    return base::unexpected(r.error());
            } else {
                if (auto r = keyValue(); !r)
                    return base::unexpected(r.error());
            }
        }
        return std::move(doc_);
    }

private:
    bool eof() const { return pos_ >= s_.size(); }
    char peek() const { return eof() ? '\0' : s_[pos_]; }

    base::Unexpected<base::Error> err(const std::string& what) const {
        return base::fail("line " + std::to_string(line_) + ": " + what);
    }

    void skipSpaces() {
        while (!eof() && (peek() == ' ' || peek() == '\t'))
            ++pos_;
    }
    void skipComment() {
        if (peek() == '#') {
            while (!eof() && peek() != '\n')
                ++pos_;
        }
    }
    void skipBlankAndComments() {
        while (!eof()) {
            skipSpaces();
            skipComment();
            if (peek() == '\n') {
                ++pos_;
                ++line_;
            } else if (peek() == '\r' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '\n') {
                pos_ += 2;
                ++line_;
            } else {
                break;
            }
        }
    }
    base::Result<void> endOfLine() {
        skipSpaces();
        skipComment();
        if (eof())
            return {};
        if (peek() == '\r')
            ++pos_;
        if (peek() != '\n')
            return err("unexpected text after the value");
        ++pos_;
        ++line_;
        return {};
    }

    base::Result<std::string> key() {
        std::string path;
        while (true) {
            skipSpaces();
            std::string part;
            if (peek() == '"' || peek() == '\'') {
                auto r = peek() == '"' ? basicString() : literalString();
                if (!r)
                    return base::unexpected(r.error());
                part = *r;
            } else {
                while (!eof() && (std::isalnum(static_cast<unsigned char>(peek())) ||
                                  peek() == '_' || peek() == '-')) {
                    part += s_[pos_++];
                }
                if (part.empty())
                    return err("expected a key");
            }
            path += part;
            skipSpaces();
            if (peek() != '.')
                break;
            ++pos_;
            path += '.';
        }
        return path;
    }

    base::Result<void> table() {
        ++pos_;
        if (peek() == '[')
            return err("arrays of tables ([[...]]) are not supported");
        auto k = key();
        if (!k)
            return base::unexpected(k.error());
        if (peek() != ']')
            return err("expected ']' after the table name");
        ++pos_;
        if (!tables_.insert(*k).second)
            return err("table [" + *k + "] is defined twice");
        prefix_ = *k + ".";
        return endOfLine();
    }

    base::Result<void> keyValue() {
        auto k = key();
        if (!k)
            return base::unexpected(k.error());
        if (peek() != '=')
            return err("expected '=' after key '" + *k + "'");
        ++pos_;
        skipSpaces();
        const int line = line_;
        auto v = value();
        if (!v)
            return base::unexpected(v.error());
        v->line = line;
        std::string full = prefix_ + *k;
        if (doc_.count(full) != 0)
            return err("key '" + full + "' is set twice");
        doc_.emplace(std::move(full), std::move(*v));
        return endOfLine();
    }

    base::Result<TomlValue> value() {
        TomlValue out;
        char c = peek();
        if (c == '"') {
            if (s_.substr(pos_, 3) == "\"\"\"")
                return err("multi-line strings are not supported");
            auto r = basicString();
            if (!r)
                return base::unexpected(r.error());
            out.v = *r;
        } else if (c == '\'') {
            auto r = literalString();
            if (!r)
                return base::unexpected(r.error());
            out.v = *r;
        } else if (c == '[') {
            ++pos_;
            TomlArray arr;
            while (true) {
                skipBlankAndComments();
                if (peek() == ']') {
                    ++pos_;
                    break;
                }
                auto item = value();
                if (!item)
                    return base::unexpected(item.error());
                item->line = line_;
                arr.push_back(std::move(*item));
                skipBlankAndComments();
                if (peek() == ',') {
                    ++pos_;
                } else if (peek() != ']') {
                    return err("expected ',' or ']' in array");
                }
            }
            out.v = std::move(arr);
        } else if (c == '{') {
            return err("inline tables are not supported: use a [table] section");
        } else if (s_.substr(pos_, 4) == "true") {
            pos_ += 4;
            out.v = true;
        } else if (s_.substr(pos_, 5) == "false") {
            pos_ += 5;
            out.v = false;
        } else {
            size_t start = pos_;
            while (!eof() && (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '+' ||
                              peek() == '-' || peek() == '_' || peek() == '.')) {
                ++pos_;
            }
            std::string num;
            for (char ch : s_.substr(start, pos_ - start)) {
                if (ch != '_')
                    num += ch;
            }
            if (num.empty())
                return err("expected a value");
            if (num[0] == '+')
                num.erase(0, 1);
            int64_t i = 0;
            auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), i);
            if (ec == std::errc() && p == num.data() + num.size()) {
                out.v = i;
            } else {
                double d = 0;
                auto [p2, ec2] = std::from_chars(num.data(), num.data() + num.size(), d);
                if (ec2 != std::errc() || p2 != num.data() + num.size()) {
                    return err("'" + num + "' is not a valid value (strings need quotes)");
                }
                out.v = d;
            }
        }
        return out;
    }

    base::Result<std::string> basicString() {
        ++pos_;
        std::string out;
        while (true) {
            if (eof() || peek() == '\n')
                return err("unterminated string");
            char c = s_[pos_++];
            if (c == '"')
                break;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (eof())
                return err("unterminated string");
            char e = s_[pos_++];
            switch (e) {
                case 'n':
                    out += '\n';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'u': {
                    if (pos_ + 4 > s_.size())
                        return err("bad \\u escape");
                    unsigned cp = 0;
                    auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, cp, 16);
                    if (ec != std::errc() || p != s_.data() + pos_ + 4)
                        return err("bad \\u escape");
                    pos_ += 4;
                    if (cp >= 0xD800 && cp <= 0xDFFF)
                        return err("\\u escape is a surrogate");
                    if (cp < 0x80) {
                        out += static_cast<char>(cp);
                    } else if (cp < 0x800) {
                        out += static_cast<char>(0xC0 | (cp >> 6));
                        out += static_cast<char>(0x80 | (cp & 0x3F));
                    } else {
                        out += static_cast<char>(0xE0 | (cp >> 12));
                        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                        out += static_cast<char>(0x80 | (cp & 0x3F));
                    }
                    break;
                }
                default:
                    return err(std::string("unknown escape '\\") + e + "'");
            }
        }
        return out;
    }

    base::Result<std::string> literalString() {
        ++pos_;
        size_t end = s_.find_first_of("'\n", pos_);
        if (end == std::string_view::npos || s_[end] != '\'')
            return err("unterminated string");
        std::string out(s_.substr(pos_, end - pos_));
        pos_ = end + 1;
        return out;
    }

    std::string_view s_;
    size_t pos_ = 0;
    int line_ = 1;
    std::string prefix_;
    std::set<std::string> tables_;
    TomlDocument doc_;
};

}  // namespace

base::Result<TomlDocument> parseToml(std::string_view text) {
    return Parser(text).run();
}

}  // namespace sb::config
