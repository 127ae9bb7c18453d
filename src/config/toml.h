// A small, strict TOML reader for switchboard.toml: tables ([a], [a.b]), bare and quoted keys,
// strings (basic with escapes, literal), integers, floats, booleans and arrays of those.
// Inline tables, dates and multi-line strings are refused with a clear error. Pure: no I/O;
// every key keeps its line so configuration errors can point at it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace sb::config {

struct TomlValue;
using TomlArray = std::vector<TomlValue>;

struct TomlValue {
    std::variant<std::string, int64_t, double, bool, TomlArray> v;
    int line = 0;

    bool isString() const { return std::holds_alternative<std::string>(v); }
    bool isInt() const { return std::holds_alternative<int64_t>(v); }
    bool isBool() const { return std::holds_alternative<bool>(v); }
    bool isArray() const { return std::holds_alternative<TomlArray>(v); }
    std::string typeName() const;
};

// Every key by its full dotted path ("namespaces.chat.presence"), in order of the path.
using TomlDocument = std::map<std::string, TomlValue>;

// Parses a whole document. Errors read "line N: what is wrong".
base::Result<TomlDocument> parseToml(std::string_view text);

}  // namespace sb::config
