// Value-or-error for fallible calls, plus a small error type that carries a human message.
// std::expected (C++23) where the toolchain has it; clang 14 (the libFuzzer preset) cannot
// compile libstdc++ 12's <expected>, so a minimal stand-in with the same surface is used
// there. Code writes base::Expected / base::Result and base::unexpected, never std:: directly.
#pragma once

#include <string>
#include <utility>

#if __has_include(<expected>)
#include <expected>
#endif

#if !(defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L)
#include <optional>
#include <variant>
#endif

namespace sb::base {

struct Error {
    std::string message;
};

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L

template <class T, class E = Error>
using Expected = std::expected<T, E>;
template <class E>
using Unexpected = std::unexpected<E>;

#else

template <class E>
class Unexpected {
public:
    explicit Unexpected(E e) : e_(std::move(e)) {}
    E& error() { return e_; }

private:
    E e_;
};

template <class T, class E = Error>
class [[nodiscard]] Expected {
public:
    Expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
    Expected(T v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT: implicit like std
    template <class G>
    Expected(Unexpected<G> u) : v_(std::in_place_index<1>, E(std::move(u.error()))) {}
    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }
    T& operator*() { return std::get<0>(v_); }
    const T& operator*() const { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& value() { return std::get<0>(v_); }
    E& error() { return std::get<1>(v_); }
    const E& error() const { return std::get<1>(v_); }

private:
    std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Expected<void, E> {
public:
    Expected() = default;
    template <class G>
    Expected(Unexpected<G> u) : e_(E(std::move(u.error()))) {}
    bool has_value() const { return !e_.has_value(); }
    explicit operator bool() const { return has_value(); }
    E& error() { return *e_; }
    const E& error() const { return *e_; }

private:
    std::optional<E> e_;
};

#endif

template <class T>
using Result = Expected<T, Error>;

template <class E>
Unexpected<E> unexpected(E e) {
    return Unexpected<E>(std::move(e));
}

inline Unexpected<Error> fail(std::string message) {
    return Unexpected<Error>(Error{std::move(message)});
}

}  // namespace sb::base
