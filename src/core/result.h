// Result<T>: a value or an error Status.
//
// A small subset of std::expected's API (value(), error(), has_value(), operator bool, *, ->),
// so that moving to std::expected later is a search-and-replace. An error Result never holds
// an OK Status.
#pragma once

#include <cassert>
#include <optional>
#include <utility>

#include "core/status.h"

namespace ferry {

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "a Result built from a Status must hold an error");
  }

  bool has_value() const { return value_.has_value(); }
  explicit operator bool() const { return has_value(); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

  // The error; OK when the Result holds a value.
  const Status& error() const { return status_; }
  Status status() const { return status_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace ferry

// Assigns the value of `expr` (a Result) to `lhs`, or returns its error from the enclosing
// function.
#define FERRY_ASSIGN_OR_RETURN(lhs, expr) FERRY_ASSIGN_OR_RETURN_IMPL(FERRY_CONCAT(r_, __LINE__), lhs, expr)
#define FERRY_CONCAT_INNER(a, b) a##b
#define FERRY_CONCAT(a, b) FERRY_CONCAT_INNER(a, b)
#define FERRY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.has_value()) {                           \
    return tmp.error();                             \
  }                                                 \
  lhs = std::move(tmp).value()
