// The schema's declarations, the environment and flag layers, and what it prints (help,
// describe, formatted values). The TOML layer is in toml_layer.cpp, the only file that sees
// toml++.
#include "config/schema.h"

#include <cctype>
#include <cstring>

#include "config/convert.h"
#include "config/units.h"

namespace sb::config {

namespace {

std::string padTo(std::string s, size_t width) {
    if (s.size() < width) {
        s.resize(width, ' ');
    } else {
        s += ' ';
    }
    return s;
}

std::string joinChoices(const Setting& s, const char* sep) {
    std::string out;
    for (auto c : s.spec.choices) {
        if (!out.empty()) {
            out += sep;
        }
        out += c;
    }
    return out;
}

// What help says of a kind: "integer 0..65535", "size", "one of disconnect|drop".
std::string kindLabel(const Setting& s) {
    constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
    switch (s.spec.kind) {
        case Kind::kString:
            return "string";
        case Kind::kBool:
            return "boolean";
        case Kind::kUint:
            if (s.spec.max == kMax) {
                return s.spec.min == 0 ? "integer" : "integer >= " + std::to_string(s.spec.min);
            }
            return "integer " + std::to_string(s.spec.min) + ".." + std::to_string(s.spec.max);
        case Kind::kSize:
            return s.spec.max == kMax ? "size" : "size up to " + formatSize(s.spec.max);
        case Kind::kDuration:
            return s.spec.max == kMax ? "duration" : "duration up to " + formatDuration(s.spec.max);
        case Kind::kList:
            return "list";
        case Kind::kEnum:
        case Kind::kLogLevel:
            return joinChoices(s, "|");
    }
    return "";
}

const char* applyLabel(Apply a) {
    return a == Apply::kReload ? "applies on SIGHUP" : "needs a restart";
}

// A value's source for describe: where it was set, else how it was derived, else "default".
std::string sourceOf(const Setting& s, const std::string& full_key, const Value& v,
                     const Value& def, const Sources& sources) {
    if (auto it = sources.find(full_key); it != sources.end()) {
        return it->second;
    }
    if (!s.spec.derived.empty()) {
        return "derived: " + std::string(s.spec.derived);
    }
    return v == def ? "default" : "derived";
}

std::string describeLine(const std::string& key, const std::string& value,
                         const std::string& source) {
    return padTo(key + " = " + value, 52) + " # " + source + "\n";
}

}  // namespace

const Setting* SchemaBase::find(std::string_view key) const {
    for (const auto& s : settings_) {
        if (s.key == key) {
            return &s;
        }
    }
    return nullptr;
}

const Section* SchemaBase::findSection(std::string_view key) const {
    for (const auto& sec : sections_) {
        if (sec.spec.key == key) {
            return &sec;
        }
    }
    return nullptr;
}

std::string SchemaBase::envName(std::string_view key) const {
    if (!bare_table_.empty() && key.starts_with(bare_table_) && key.size() > bare_table_.size() &&
        key[bare_table_.size()] == '.') {
        key.remove_prefix(bare_table_.size() + 1);
    }
    std::string out = env_prefix_;
    for (char c : key) {
        out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

void SchemaBase::addSetting(Setting s) {
    for (const auto& other : settings_) {
        if (other.key == s.key || (!s.spec.flag.empty() && other.spec.flag == s.spec.flag) ||
            (!s.env.empty() && other.env == s.env)) {
            detail::badDeclaration(s.spec.key, "key, flag or environment name declared twice");
        }
    }
    settings_.push_back(std::move(s));
}

size_t SchemaBase::addSection(Section s) {
    if (s.spec.valid_name == nullptr) {
        detail::badDeclaration(s.spec.key, "a section needs valid_name");
    }
    sections_.push_back(std::move(s));
    return sections_.size() - 1;
}

void SchemaBase::addSectionOption(size_t section, Setting s) {
    Section& sec = sections_[section];
    if (!s.spec.flag.empty()) {
        detail::badDeclaration(s.spec.key, "section options are file only: no flag");
    }
    s.key = std::string(sec.spec.key) + ".*." + std::string(s.spec.key);
    s.env.clear();
    s.spec.apply = sec.spec.apply;
    sec.options.push_back(std::move(s));
}

Value SchemaBase::defaultValue(const Setting& s) const {
    for (const auto& sec : sections_) {
        for (const auto& opt : sec.options) {
            if (&opt == &s) {
                return s.get(sec.defaults.get());
            }
        }
    }
    return s.get(defaults_.get());
}

std::string SchemaBase::formatToml(const Setting& s, const Value& v) {
    switch (s.spec.kind) {
        case Kind::kBool:
            return std::get<bool>(v) ? "true" : "false";
        case Kind::kUint:
            return std::to_string(std::get<uint64_t>(v));
        case Kind::kSize: {
            uint64_t n = std::get<uint64_t>(v);
            std::string f = formatSize(n);
            return f == std::to_string(n) ? f : detail::quote(f);
        }
        case Kind::kDuration:
            return detail::quote(formatDuration(std::get<uint64_t>(v)));
        case Kind::kList: {
            std::string out = "[";
            for (const auto& item : std::get<std::vector<std::string>>(v)) {
                // A secret list (several keys) says how many there are, never what they are.
                out += (out.size() > 1 ? ", " : "") +
                       (s.spec.secret ? std::string("\"<set>\"") : detail::quote(item));
            }
            return out + "]";
        }
        case Kind::kString:
            if (s.spec.secret && !std::get<std::string>(v).empty()) {
                return "\"<set>\"";
            }
            return detail::quote(std::get<std::string>(v));
        case Kind::kEnum:
        case Kind::kLogLevel:
            return detail::quote(std::get<std::string>(v));
    }
    return "";
}

std::string SchemaBase::formatPlain(const Setting& s, const Value& v) {
    switch (s.spec.kind) {
        case Kind::kBool:
            return std::get<bool>(v) ? "true" : "false";
        case Kind::kUint:
            return std::to_string(std::get<uint64_t>(v));
        case Kind::kSize:
            return formatSize(std::get<uint64_t>(v));
        case Kind::kDuration:
            return formatDuration(std::get<uint64_t>(v));
        case Kind::kList: {
            std::string out;
            for (const auto& item : std::get<std::vector<std::string>>(v)) {
                out += (out.empty() ? "" : ",") + (s.spec.secret ? std::string("<set>") : item);
            }
            return out.empty() ? "(none)" : out;
        }
        case Kind::kString:
        case Kind::kEnum:
        case Kind::kLogLevel: {
            const auto& str = std::get<std::string>(v);
            if (str.empty()) {
                return "(none)";
            }
            return s.spec.secret ? "<set>" : str;
        }
    }
    return "";
}

std::string SchemaBase::expected(const Setting& s) {
    switch (s.spec.kind) {
        case Kind::kString:
            return "a string";
        case Kind::kBool:
            return "true or false";
        case Kind::kUint:
            if (s.spec.max == std::numeric_limits<uint64_t>::max()) {
                return s.spec.min == 0 ? "a non-negative integer"
                                       : "an integer of at least " + std::to_string(s.spec.min);
            }
            return "an integer from " + std::to_string(s.spec.min) + " to " +
                   std::to_string(s.spec.max);
        case Kind::kSize:
            return "a size: an integer (bytes) or a string such as \"64KiB\", \"16MiB\", \"1GiB\"";
        case Kind::kDuration:
            return "a duration: a string such as \"500ms\", \"25s\", \"2m\", \"1h\", or an "
                   "integer (seconds)";
        case Kind::kList:
            return "an array of strings (or one comma-separated string)";
        case Kind::kEnum:
        case Kind::kLogLevel:
            return "one of " + joinChoices(s, ", ");
    }
    return "";
}

base::Result<CommandLine> SchemaBase::parseCommandLine(int argc, char* const* argv) const {
    CommandLine cmd;
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            cmd.help = true;  // help wins over anything else on the line
            return cmd;
        }
    }
    std::vector<std::string> flags = {"--config"};
    for (const auto& s : settings_) {
        if (!s.spec.flag.empty()) {
            flags.emplace_back(s.spec.flag);
        }
    }
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (!a.starts_with("--")) {
            return base::fail("unexpected argument '" + std::string(a) +
                              "' (settings are flags: --name value)");
        }
        std::string_view name = a;
        std::string_view inline_value;
        bool has_inline = false;
        if (size_t eq = a.find('='); eq != std::string_view::npos) {
            name = a.substr(0, eq);
            inline_value = a.substr(eq + 1);
            has_inline = true;
        }
        auto takeValue = [&](std::string_view* out) -> bool {
            if (has_inline) {
                *out = inline_value;
                return true;
            }
            if (i + 1 >= argc) {
                return false;
            }
            *out = argv[++i];
            return true;
        };
        if (name == "--config") {
            std::string_view file;
            if (!takeValue(&file) || file.empty()) {
                return base::fail("flag --config: needs a file");
            }
            cmd.config_path = std::string(file);
            continue;
        }
        bool negated = false;
        const Setting* match = nullptr;
        for (const auto& s : settings_) {
            if (!s.spec.flag.empty() && s.spec.flag == name) {
                match = &s;
            } else if (s.spec.kind == Kind::kBool && !s.spec.flag.empty() &&
                       name.starts_with("--no-") && s.spec.flag.substr(2) == name.substr(5)) {
                match = &s;
                negated = true;
            }
        }
        if (match == nullptr) {
            return base::fail("unknown flag '" + std::string(name) + "'" +
                              detail::suggestion(name, flags));
        }
        std::string_view value;
        if (match->spec.kind == Kind::kBool) {
            if (negated && has_inline) {
                return base::fail("flag " + std::string(name) + ": takes no value");
            }
            value = has_inline ? inline_value : (negated ? "false" : "true");
        } else if (!takeValue(&value)) {
            return base::fail("flag " + std::string(name) + ": needs a value (" + expected(*match) +
                              ")");
        }
        cmd.flags.emplace_back(std::string(name), std::string(value));
    }
    return cmd;
}

base::Result<void> SchemaBase::setFromText(void* root, Sources* sources, const Setting& s,
                                           std::string_view text, const std::string& where) const {
    auto v = detail::valueFromText(s, text);
    if (!v) {
        return base::fail(where + ": " + s.key + ": " + v.error().message);
    }
    s.set(root, *v);
    (*sources)[s.key] = where;
    return {};
}

base::Result<void> SchemaBase::applyEnvErased(void* root, Sources* sources,
                                              char* const* envp) const {
    std::vector<std::string> names;
    for (const auto& s : settings_) {
        if (!s.env.empty()) {
            names.push_back(s.env);
        }
    }
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
        std::string_view kv = *e;
        size_t eq = kv.find('=');
        if (!kv.starts_with(env_prefix_) || eq == std::string_view::npos) {
            continue;
        }
        std::string name(kv.substr(0, eq));
        const Setting* match = nullptr;
        for (const auto& s : settings_) {
            if (!s.env.empty() && s.env == name) {
                match = &s;
            }
        }
        if (match == nullptr) {
            std::string hint = detail::suggestion(name, names);
            for (const auto& sec : sections_) {
                if (name.starts_with(envName(std::string(sec.spec.key)) + "_")) {
                    hint = " ([" + std::string(sec.spec.key) +
                           ".NAME] tables come only from the config file)";
                }
            }
            if (hint.empty()) {
                hint = " (" + env_prefix_ + "* variables name settings; see --help)";
            }
            return base::fail("env " + name + ": unknown variable" + hint);
        }
        if (auto r = setFromText(root, sources, *match, kv.substr(eq + 1), "env " + name); !r) {
            return r;
        }
    }
    return {};
}

base::Result<void> SchemaBase::applyFlagsErased(void* root, Sources* sources,
                                                const CommandLine& cmd) const {
    for (const auto& [flag, value] : cmd.flags) {
        std::string_view name = flag;
        bool negated = name.starts_with("--no-");
        const Setting* match = nullptr;
        for (const auto& s : settings_) {
            if (s.spec.flag == name ||
                (negated && s.spec.kind == Kind::kBool && !s.spec.flag.empty() &&
                 s.spec.flag.substr(2) == name.substr(5))) {
                match = &s;
            }
        }
        if (match == nullptr) {
            return base::fail("unknown flag '" + flag + "'");
        }
        if (auto r = setFromText(root, sources, *match, value, "flag " + flag); !r) {
            return r;
        }
    }
    return {};
}

std::string SchemaBase::describeErased(const void* root, const Sources& sources) const {
    std::string out;
    for (const auto& s : settings_) {
        Value v = s.get(root);
        out +=
            describeLine(s.key, formatToml(s, v), sourceOf(s, s.key, v, defaultValue(s), sources));
    }
    for (const auto& sec : sections_) {
        std::string prefix(sec.spec.key);
        for (const auto& [name, entry] : sec.entries(root)) {
            std::string table = prefix + "." + name;
            auto it = sources.find(table);
            out += "# [" + table + "] " + (it != sources.end() ? it->second : "default") + "\n";
            for (const auto& opt : sec.options) {
                std::string key = table + "." + std::string(opt.spec.key);
                Value v = opt.get(entry);
                out += describeLine(key, formatToml(opt, v),
                                    sourceOf(opt, key, v, opt.get(sec.defaults.get()), sources));
            }
        }
    }
    return out;
}

std::vector<std::string> SchemaBase::changedErased(const void* a, const void* b,
                                                   Apply apply) const {
    std::vector<std::string> out;
    for (const auto& s : settings_) {
        if (s.spec.apply == apply && s.get(a) != s.get(b)) {
            out.push_back(s.key);
        }
    }
    for (const auto& sec : sections_) {
        if (sec.spec.apply != apply) {
            continue;
        }
        auto ea = sec.entries(a);
        auto eb = sec.entries(b);
        std::map<std::string, std::pair<const void*, const void*>> both;
        for (const auto& [name, e] : ea) {
            both[name].first = e;
        }
        for (const auto& [name, e] : eb) {
            both[name].second = e;
        }
        for (const auto& [name, pair] : both) {
            std::string table = std::string(sec.spec.key) + "." + name;
            if (pair.first == nullptr || pair.second == nullptr) {
                out.push_back(table);
                continue;
            }
            for (const auto& opt : sec.options) {
                if (opt.get(pair.first) != opt.get(pair.second)) {
                    out.push_back(table + "." + std::string(opt.spec.key));
                }
            }
        }
    }
    return out;
}

std::string SchemaBase::help() const {
    std::string out;
    for (const auto& s : settings_) {
        std::string flag = s.spec.flag.empty() ? "(no flag)"
                                               : std::string(s.spec.flag) +
                                                     (s.spec.kind == Kind::kBool ? "" : " V");
        out += "  " + padTo(flag, 29) + std::string(s.spec.help) + "\n";
        std::string def = "default " + formatPlain(s, defaultValue(s));
        if (!s.spec.derived.empty()) {
            def += " (derived: " + std::string(s.spec.derived) + ")";
        }
        out += std::string(33, ' ') + "[" + s.key + "] " + kindLabel(s) +
               (s.env.empty() ? "" : ", env " + s.env) + ", " + def + ", " +
               applyLabel(s.spec.apply) + "\n";
    }
    for (const auto& sec : sections_) {
        out += "\n  [" + std::string(sec.spec.key) +
               ".NAME] tables, config file only: " + std::string(sec.spec.help) + "\n  NAME is " +
               std::string(sec.spec.name_rule) + "; " + applyLabel(sec.spec.apply) + ". Options:\n";
        for (const auto& opt : sec.options) {
            out += "  " + padTo("  " + std::string(opt.spec.key), 29) + std::string(opt.spec.help) +
                   "\n";
            out += std::string(33, ' ') + kindLabel(opt) + ", default " +
                   formatPlain(opt, opt.get(sec.defaults.get())) + "\n";
        }
    }
    return out;
}

}  // namespace sb::config
