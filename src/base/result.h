// Value-or-error for fallible calls (std::expected, C++23) plus a small error type that carries
// a machine-readable code and a human message. Data-path code uses enum errors instead.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace sb::base {

struct Error {
    std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) {
    return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace sb::base
