// A typed configuration schema: each setting is declared once (TOML key, flag, environment
// name, kind, help, whether SIGHUP applies it) and bound to a field of a plain options struct,
// whose default-constructed value supplies the defaults. Values are layered: defaults < TOML
// file (toml++) < environment < flags, and every value keeps where it came from. Generic: this
// layer knows nothing of the server; server/settings.cpp declares Switchboard's settings.
//
//   struct Opts { uint16_t port = 8080; };  // the reason for the default goes here
//   config::Schema<Opts> s("APP_", "server");
//   s.add({.key = "server.port", .flag = "--port", .kind = config::Kind::kUint,
//          .help = "listen port"}, [](auto& o) -> auto& { return o.port; });
//   Opts o; config::Sources src;
//   auto r = s.applyToml(&o, &src, "[server]\nport = 9000\n", "app.toml");
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "base/log.h"
#include "base/result.h"

namespace sb::config {

enum class Kind : uint8_t {
    kString,
    kBool,
    kUint,      // TOML integer; decimal text from env/flags; range [min, max]
    kSize,      // bytes: TOML integer, or "64KiB" / "16MiB" / "1GiB" / "4096"
    kDuration,  // milliseconds: "500ms" / "25s" / "2m" / "1h", or a TOML integer of seconds
    kList,      // TOML array of strings, or one comma-separated string (env, flags, TOML)
    kEnum,      // one of `choices`, bound to an enum whose enumerators are 0..n-1 in that order
    kLogLevel,  // trace|debug|info|warn|error|off, bound to base::LogLevel
};

// Whether a changed value takes effect on SIGHUP or only after a restart.
enum class Apply : uint8_t { kRestart, kReload };

// A setting's value as the schema handles it: kBool → bool; kUint, kSize (bytes), kDuration
// (ms) → uint64_t; kString, kEnum, kLogLevel (by name) → string; kList → vector.
using Value = std::variant<bool, uint64_t, std::string, std::vector<std::string>>;

// Where each value came from, by full key: "sb.toml:3", "env SWITCHBOARD_PORT", "flag --port".
// For a section entry, its table header ("namespaces.chat") as well as each option. A key that
// is absent has its default (or a value derived from others).
using Sources = std::map<std::string, std::string, std::less<>>;

// The declaration of one setting, apart from its binding. Strings must outlive the schema
// (they are literals in practice).
struct SettingSpec {
    std::string_view key;   // TOML path ("server.port"); in a section, the option ("presence")
    std::string_view flag;  // "--port"; empty = no flag. Boolean flags also have --no-X.
    Kind kind = Kind::kString;
    std::string_view help;  // what it does and why the default
    Apply apply = Apply::kRestart;
    uint64_t min = 0;  // kUint / kSize / kDuration (ms): inclusive range, narrowed to the field
    uint64_t max = std::numeric_limits<uint64_t>::max();
    std::vector<std::string_view> choices;  // kEnum: the names, in enumerator order
    // Non-empty: the value is derived from others when not set (or, for 0 = derived, when 0);
    // says how ("ping_interval + 10s"). Help and describe print it instead of "default".
    std::string_view derived;
    bool secret = false;  // describe prints "<set>" instead of the value
    bool has_env = true;  // false: no environment variable
};

// A declared setting: its spec, its environment name and its type-erased binding to the field
// of the root object (or, for section options, of the entry).
struct Setting {
    SettingSpec spec;
    std::string key;  // full key; for a section option "SECTION.*.OPTION"
    std::string env;  // environment variable; empty = none
    std::function<Value(const void*)> get;
    std::function<void(void*, const Value&)> set;
};

// [SECTION.NAME] tables: a map from NAME to an entry struct, whose options are settings bound
// to the entry. File only (no environment variables or flags).
struct SectionSpec {
    std::string_view key;  // "namespaces"
    std::string_view help;
    std::string_view name_rule;  // shown in errors and help: "[a-z0-9_-]{1,64}"
    bool (*valid_name)(std::string_view) = nullptr;
    Apply apply = Apply::kRestart;
};

struct Section {
    SectionSpec spec;
    std::vector<Setting> options;
    // The entry NAME of the root's map, added default-constructed when absent.
    std::function<void*(void* root, const std::string& name)> entry;
    // Every entry of the root's map, sorted by name.
    std::function<std::vector<std::pair<std::string, const void*>>(const void* root)> entries;
    std::shared_ptr<const void> defaults;  // a default-constructed entry
};

// The command line of a command using the schema: --config FILE, --help/-h and setting flags
// (--x V, --x=V, boolean --x and --no-x), in order.
struct CommandLine {
    std::string config_path;  // empty: no file
    bool help = false;
    std::vector<std::pair<std::string, std::string>> flags;  // (flag as written, value)
};

// The type-erased schema; Schema<Root> below is the typed interface. Every `void* root` is a
// Root of that schema. Errors read "WHERE: KEY: what is wrong; expected what", WHERE being
// "FILE:LINE", "env NAME" or "flag --x"; TOML syntax errors read "FILE:LINE:COL: what".
// Thread safety: a schema is immutable once declared; its const methods may run concurrently.
class SchemaBase {
public:
    const std::vector<Setting>& settings() const { return settings_; }
    const std::vector<Section>& sections() const { return sections_; }
    const Setting* find(std::string_view key) const;
    const Section* findSection(std::string_view key) const;
    // The environment name of `key`: prefix + key upper-cased, '.' → '_', with the bare
    // table's "TABLE." dropped ("server.port" → "SWITCHBOARD_PORT").
    std::string envName(std::string_view key) const;

    // The value of `s` in a default-constructed Root (or, for section options, entry).
    Value defaultValue(const Setting& s) const;
    // TOML spelling: 8080, true, "25s", "16MiB", ["a", "b"]; secrets as "<set>".
    static std::string formatToml(const Setting& s, const Value& v);
    // Plain spelling for help: 8080, true, 25s, 16MiB, a,b; empty → "(none)".
    static std::string formatPlain(const Setting& s, const Value& v);
    // What the kind accepts, for messages: "an integer from 0 to 65535".
    static std::string expected(const Setting& s);

    // Flags, then usage errors (unknown flag with a suggestion, missing value). Values are
    // checked later, by applyFlags.
    base::Result<CommandLine> parseCommandLine(int argc, char* const* argv) const;
    // "  --port V   help\n      [server.port] integer 0..65535, env …, default 8080; restart"
    // for every setting, then each section's options.
    std::string help() const;

protected:
    SchemaBase(std::string env_prefix, std::string bare_table, std::shared_ptr<const void> defaults)
        : env_prefix_(std::move(env_prefix)),
          bare_table_(std::move(bare_table)),
          defaults_(std::move(defaults)) {}

    // A whole TOML document on top of `root`. Unknown keys (with a suggestion), wrong types,
    // bad values and invalid section names are errors naming file and line.
    base::Result<void> applyTomlErased(void* root, Sources* sources, std::string_view text,
                                       const std::string& file) const;
    // The prefix's variables of `envp` (NAME=VALUE, null-terminated; may be null). A variable
    // with the prefix that names no setting is an error.
    base::Result<void> applyEnvErased(void* root, Sources* sources, char* const* envp) const;
    base::Result<void> applyFlagsErased(void* root, Sources* sources, const CommandLine& cmd) const;
    // "key = value  # source" per setting, then per section entry one line per option.
    std::string describeErased(const void* root, const Sources& sources) const;
    // Full keys of `apply` settings (and section options) whose values differ.
    std::vector<std::string> changedErased(const void* a, const void* b, Apply apply) const;

    void addSetting(Setting s);
    size_t addSection(Section s);
    void addSectionOption(size_t section, Setting s);

private:
    base::Result<void> setFromText(void* root, Sources* sources, const Setting& s,
                                   std::string_view text, const std::string& where) const;

    std::string env_prefix_;
    std::string bare_table_;
    std::shared_ptr<const void> defaults_;
    std::vector<Setting> settings_;
    std::vector<Section> sections_;
};

namespace detail {

template <class>
inline constexpr bool kAlwaysFalse = false;

// A declaration that does not fit its field is a programming error, found by any test that
// builds the schema.
[[noreturn]] inline void badDeclaration(std::string_view key, const char* why) {
    std::fprintf(stderr, "config schema: setting '%.*s': %s\n", static_cast<int>(key.size()),
                 key.data(), why);
    std::abort();
}

inline constexpr std::string_view kLogLevelNames[] = {"trace", "debug", "info",
                                                      "warn",  "error", "off"};

// Binds `spec` to the field `field(obj)` of an Obj; narrows the range to the field's type.
template <class Obj, class Field>
Setting bind(SettingSpec spec, Field field) {
    using T = std::remove_cvref_t<decltype(field(std::declval<Obj&>()))>;
    Setting s;
    auto ref = [field](void* o) -> T& { return field(*static_cast<Obj*>(o)); };
    auto cref = [field](const void* o) -> const T& { return field(*static_cast<const Obj*>(o)); };
    if constexpr (std::is_same_v<T, bool>) {
        if (spec.kind != Kind::kBool) {
            badDeclaration(spec.key, "a bool field needs Kind::kBool");
        }
        s.get = [cref](const void* o) -> Value { return cref(o); };
        s.set = [ref](void* o, const Value& v) { ref(o) = std::get<bool>(v); };
    } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
        if (spec.kind != Kind::kUint && spec.kind != Kind::kSize && spec.kind != Kind::kDuration) {
            badDeclaration(spec.key, "an unsigned field needs kUint, kSize or kDuration");
        }
        spec.max = std::min<uint64_t>(spec.max, std::numeric_limits<T>::max());
        s.get = [cref](const void* o) -> Value { return static_cast<uint64_t>(cref(o)); };
        s.set = [ref](void* o, const Value& v) { ref(o) = static_cast<T>(std::get<uint64_t>(v)); };
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (spec.kind != Kind::kString) {
            badDeclaration(spec.key, "a string field needs Kind::kString");
        }
        s.get = [cref](const void* o) -> Value { return cref(o); };
        s.set = [ref](void* o, const Value& v) { ref(o) = std::get<std::string>(v); };
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (spec.kind != Kind::kList) {
            badDeclaration(spec.key, "a vector<string> field needs Kind::kList");
        }
        s.get = [cref](const void* o) -> Value { return cref(o); };
        s.set = [ref](void* o, const Value& v) { ref(o) = std::get<std::vector<std::string>>(v); };
    } else if constexpr (std::is_enum_v<T>) {
        if (std::is_same_v<T, base::LogLevel>) {
            if (spec.kind != Kind::kLogLevel) {
                badDeclaration(spec.key, "a base::LogLevel field needs Kind::kLogLevel");
            }
            spec.choices.assign(std::begin(kLogLevelNames), std::end(kLogLevelNames));
        } else if (spec.kind != Kind::kEnum || spec.choices.empty()) {
            badDeclaration(spec.key, "an enum field needs Kind::kEnum and its choices");
        }
        std::vector<std::string_view> names = spec.choices;
        s.get = [cref, names](const void* o) -> Value {
            auto i = static_cast<size_t>(cref(o));
            return i < names.size() ? std::string(names[i]) : std::to_string(i);
        };
        s.set = [ref, names](void* o, const Value& v) {
            const auto& name = std::get<std::string>(v);
            for (size_t i = 0; i < names.size(); ++i) {
                if (names[i] == name) {
                    ref(o) = static_cast<T>(i);
                }
            }
        };
    } else {
        static_assert(kAlwaysFalse<T>, "unsupported setting field type");
    }
    if (spec.min > spec.max) {
        badDeclaration(spec.key, "min is above max");
    }
    s.spec = spec;
    s.key = std::string(spec.key);
    return s;
}

}  // namespace detail

template <class Root>
class Schema;

// Declares the options of one section ([SECTION.NAME] tables whose entries are Entry).
template <class Root, class Entry>
class SectionBuilder {
public:
    // `field`: a generic lambda returning the bound member, [](auto& e) -> auto& { return e.x; }.
    template <class Field>
    SectionBuilder& add(SettingSpec spec, Field field) {
        schema_->addSectionOption(index_, detail::bind<Entry>(spec, field));
        return *this;
    }

private:
    friend class Schema<Root>;
    SectionBuilder(Schema<Root>* schema, size_t index) : schema_(schema), index_(index) {}
    Schema<Root>* schema_;
    size_t index_;
};

// The typed schema of Root (a default-constructible options struct, the only copy of the
// defaults). Declare every setting once with add() and section(), then load layers into a Root
// that started default-constructed.
template <class Root>
class Schema : public SchemaBase {
public:
    // Environment names are env_prefix + key; keys of `bare_table` drop "bare_table.".
    Schema(std::string env_prefix, std::string bare_table)
        : SchemaBase(std::move(env_prefix), std::move(bare_table), std::make_shared<const Root>()) {
    }

    // `field`: a generic lambda returning the bound member,
    // [](auto& c) -> auto& { return c.server.port; }. The kind must fit the member's type
    // (checked when declared: a mismatch aborts with the key).
    template <class Field>
    void add(SettingSpec spec, Field field) {
        Setting s = detail::bind<Root>(spec, field);
        s.env = spec.has_env && !spec.key.empty() ? envName(spec.key) : "";
        addSetting(std::move(s));
    }

    // `map_field` returns a std::map / std::unordered_map<std::string, Entry> member.
    template <class MapField>
    auto section(SectionSpec spec, MapField map_field) {
        using Map = std::remove_cvref_t<decltype(map_field(std::declval<Root&>()))>;
        using Entry = typename Map::mapped_type;
        Section sec;
        sec.spec = spec;
        sec.entry = [map_field](void* root, const std::string& name) -> void* {
            return &map_field(*static_cast<Root*>(root)).try_emplace(name).first->second;
        };
        sec.entries = [map_field](const void* root) {
            std::vector<std::pair<std::string, const void*>> out;
            for (const auto& entry : map_field(*static_cast<const Root*>(root))) {
                out.emplace_back(entry.first, &entry.second);
            }
            std::sort(out.begin(), out.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
            return out;
        };
        sec.defaults = std::make_shared<const Entry>();
        return SectionBuilder<Root, Entry>(this, addSection(std::move(sec)));
    }

    base::Result<void> applyToml(Root* root, Sources* sources, std::string_view text,
                                 const std::string& file) const {
        return applyTomlErased(root, sources, text, file);
    }
    base::Result<void> applyEnv(Root* root, Sources* sources, char* const* envp) const {
        return applyEnvErased(root, sources, envp);
    }
    base::Result<void> applyFlags(Root* root, Sources* sources, const CommandLine& cmd) const {
        return applyFlagsErased(root, sources, cmd);
    }
    std::string describe(const Root& root, const Sources& sources) const {
        return describeErased(&root, sources);
    }
    std::vector<std::string> changed(const Root& a, const Root& b, Apply apply) const {
        return changedErased(&a, &b, apply);
    }

private:
    template <class, class>
    friend class SectionBuilder;
};

}  // namespace sb::config
