// The TOML file layer: toml++ (header-only here, TOML_EXCEPTIONS=0, so a parse error is a value)
// reads the document, then a walk over its tables applies each key to its setting or section
// entry. Only tables that lead to a declared key are descended into, so the walk's depth is
// bounded by the schema, not by the input.
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include "config/convert.h"
#include "config/schema.h"
#include "config/units.h"

namespace sb::config {

namespace {

static_assert(!TOML_EXCEPTIONS, "the config layer reports TOML errors as values");

const char* typeName(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        default:
            return "nothing";
    }
}

// The value as the user wrote it, where that is short: "yes", -5, true; else "the value".
std::string shown(const toml::node& n) {
    if (const auto* s = n.as_string()) {
        return detail::quote(s->get());
    }
    if (const auto* i = n.as_integer()) {
        return std::to_string(i->get());
    }
    if (const auto* b = n.as_boolean()) {
        return b->get() ? "true" : "false";
    }
    return "the value";
}

base::Unexpected<base::Error> typeError(const Setting& s, const toml::node& n) {
    return base::fail(shown(n) + " is " + typeName(n) + "; expected " + SchemaBase::expected(s));
}

// A non-negative TOML integer, or the "is negative" error.
base::Result<uint64_t> nonNegative(const Setting& s, int64_t v) {
    if (v < 0) {
        return base::fail(std::to_string(v) + " is negative; expected " + SchemaBase::expected(s));
    }
    return static_cast<uint64_t>(v);
}

base::Result<Value> fromToml(const Setting& s, const toml::node& n) {
    switch (s.spec.kind) {
        case Kind::kString:
            if (const auto* str = n.as_string()) {
                return Value{str->get()};
            }
            return typeError(s, n);
        case Kind::kBool:
            if (const auto* b = n.as_boolean()) {
                return Value{b->get()};
            }
            return typeError(s, n);
        case Kind::kUint:
        case Kind::kSize:
        case Kind::kDuration: {
            if (const auto* i = n.as_integer()) {
                auto v = nonNegative(s, i->get());
                if (!v) {
                    return base::unexpected(v.error());
                }
                uint64_t scaled = *v;
                if (s.spec.kind == Kind::kDuration && !multiplyFits(*v, 1000, &scaled)) {
                    return base::fail(std::to_string(*v) +
                                      " seconds is too large: the longest duration is " +
                                      std::to_string(std::numeric_limits<uint64_t>::max()) + "ms");
                }
                return detail::checkRange(s, scaled, std::to_string(*v));
            }
            const auto* str = n.as_string();
            if (str == nullptr || s.spec.kind == Kind::kUint) {
                return typeError(s, n);
            }
            auto v =
                s.spec.kind == Kind::kSize ? parseSize(str->get()) : parseDurationMs(str->get());
            if (!v) {
                return base::unexpected(v.error());
            }
            return detail::checkRange(s, *v, detail::quote(str->get()));
        }
        case Kind::kList: {
            if (const auto* str = n.as_string()) {
                return Value{detail::splitList(str->get())};
            }
            const auto* arr = n.as_array();
            if (arr == nullptr) {
                return typeError(s, n);
            }
            std::vector<std::string> out;
            for (size_t i = 0; i < arr->size(); ++i) {
                const auto* item = (*arr)[i].as_string();
                if (item == nullptr) {
                    return base::fail("item " + std::to_string(i + 1) + " is " +
                                      typeName((*arr)[i]) + "; expected " +
                                      SchemaBase::expected(s));
                }
                out.push_back(item->get());
            }
            return Value{std::move(out)};
        }
        case Kind::kEnum:
        case Kind::kLogLevel:
            if (const auto* str = n.as_string()) {
                return detail::valueFromText(s, str->get());
            }
            return typeError(s, n);
    }
    return typeError(s, n);
}

// The entries of `t` in the order they appear in the file (toml++ keeps a table sorted by key),
// so that of several mistakes the first one in the file is the one reported.
std::vector<std::pair<const toml::key*, const toml::node*>> inFileOrder(const toml::table& t) {
    std::vector<std::pair<const toml::key*, const toml::node*>> out;
    out.reserve(t.size());
    for (auto&& [k, node] : t) {
        out.emplace_back(&k, &node);
    }
    // A key without a position is placed by its value's, as at() reports it.
    auto pos = [](const auto& entry) {
        toml::source_position p = entry.first->source().begin;
        if (p.line == 0) {
            p = entry.second->source().begin;
        }
        return std::pair(p.line, p.column);
    };
    std::stable_sort(out.begin(), out.end(),
                     [&pos](const auto& a, const auto& b) { return pos(a) < pos(b); });
    return out;
}

// The TOML walk of one document.
class Walk {
public:
    Walk(const SchemaBase& schema, void* root, Sources* sources, const std::string& file)
        : schema_(schema), root_(root), sources_(sources), file_(file) {
        for (const auto& s : schema.settings()) {
            candidates_.push_back(s.key);
        }
        for (const auto& sec : schema.sections()) {
            candidates_.emplace_back(sec.spec.key);
        }
    }

    base::Result<void> table(const toml::table& t, const std::string& prefix) {
        for (auto [kp, np] : inFileOrder(t)) {
            const toml::key& k = *kp;
            const toml::node& node = *np;
            std::string key =
                prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
            std::string where = at(k, node);
            if (const Setting* s = schema_.find(key)) {
                if (auto r = apply(*s, node, key, where, root_); !r) {
                    return r;
                }
            } else if (const Section* sec = schema_.findSection(key)) {
                const toml::table* entries = node.as_table();
                if (entries == nullptr) {
                    return base::fail(where + ": " + key + ": " + shown(node) + " is " +
                                      typeName(node) + "; expected [" + key + ".NAME] tables");
                }
                if (auto r = section(*sec, *entries); !r) {
                    return r;
                }
            } else if (leadsToSetting(key)) {
                const toml::table* sub = node.as_table();
                if (sub == nullptr) {
                    return base::fail(where + ": " + key + ": " + shown(node) + " is " +
                                      typeName(node) + "; expected a table [" + key + "]");
                }
                if (auto r = table(*sub, key); !r) {
                    return r;
                }
            } else {
                return base::fail(where + ": unknown key '" + key + "'" +
                                  detail::suggestion(key, candidates_));
            }
        }
        return {};
    }

private:
    // [SECTION.NAME] tables.
    base::Result<void> section(const Section& sec, const toml::table& entries) {
        for (auto [kp, np] : inFileOrder(entries)) {
            const toml::key& k = *kp;
            const toml::node& node = *np;
            std::string name(k.str());
            std::string table_key = std::string(sec.spec.key) + "." + name;
            std::string where = at(k, node);
            if (!sec.spec.valid_name(name)) {
                return base::fail(where + ": " + table_key + ": " + detail::quote(name) +
                                  " is not a valid name; expected a name matching " +
                                  std::string(sec.spec.name_rule));
            }
            const toml::table* opts = node.as_table();
            if (opts == nullptr) {
                return base::fail(where + ": " + table_key + ": " + shown(node) + " is " +
                                  typeName(node) + "; expected a table [" + table_key + "]");
            }
            void* entry = sec.entry(root_, name);
            (*sources_)[table_key] = where;
            for (auto [okp, onp] : inFileOrder(*opts)) {
                const toml::key& ok = *okp;
                const toml::node& onode = *onp;
                std::string key = table_key + "." + std::string(ok.str());
                const Setting* opt = nullptr;
                std::vector<std::string> known;
                for (const auto& o : sec.options) {
                    known.push_back(table_key + "." + std::string(o.spec.key));
                    if (o.spec.key == ok.str()) {
                        opt = &o;
                    }
                }
                if (opt == nullptr) {
                    return base::fail(at(ok, onode) + ": unknown key '" + key + "'" +
                                      detail::suggestion(key, known));
                }
                if (auto r = apply(*opt, onode, key, at(ok, onode), entry); !r) {
                    return r;
                }
            }
        }
        return {};
    }

    base::Result<void> apply(const Setting& s, const toml::node& node, const std::string& key,
                             const std::string& where, void* target) {
        auto v = fromToml(s, node);
        if (!v) {
            return base::fail(where + ": " + key + ": " + v.error().message);
        }
        s.set(target, *v);
        (*sources_)[key] = where;
        return {};
    }

    bool leadsToSetting(const std::string& key) const {
        for (const auto& c : candidates_) {
            if (c.size() > key.size() && c.starts_with(key) && c[key.size()] == '.') {
                return true;
            }
        }
        return false;
    }

    // "FILE:LINE" of a key (its value's line when the key has none).
    std::string at(const toml::key& k, const toml::node& node) const {
        auto line = k.source().begin.line;
        if (line == 0) {
            line = node.source().begin.line;
        }
        return file_ + ":" + std::to_string(line);
    }

    const SchemaBase& schema_;
    void* root_;
    Sources* sources_;
    const std::string& file_;
    std::vector<std::string> candidates_;
};

}  // namespace

base::Result<void> SchemaBase::applyTomlErased(void* root, Sources* sources, std::string_view text,
                                               const std::string& file) const {
    toml::parse_result doc = toml::parse(text, std::string_view(file));
    if (!doc) {
        const toml::parse_error& e = doc.error();
        std::string what(e.description());
        if (!what.empty()) {
            what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
        }
        return base::fail(file + ":" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": " + what);
    }
    return Walk(*this, root, sources, file).table(doc.table(), "");
}

}  // namespace sb::config
