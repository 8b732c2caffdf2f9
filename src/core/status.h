// Status: the outcome of an operation that can fail, classified where the failure arises.
//
// A Status is either OK or carries a code, a message meant for an operator, and whether
// retrying the same operation later may succeed (a peer that is down, a full disk) or not
// (bad input, a refused SOP class). Functions return errors as values; exceptions from
// third-party libraries are caught in their adapters and turned into a Status there.
// Thread-safety: a Status is a value; copies are independent.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace ferry {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,   // the input is wrong; retrying will not help
    kNotFound,          // a file, key or object does not exist
    kAlreadyExists,
    kIoError,           // the operating system reported an I/O failure
    kUnavailable,       // a peer or resource is temporarily unavailable: retry later
    kResourceExhausted, // disk full, too many connections
    kPermissionDenied,
    kCorruption,        // data on disk or on the wire is malformed
    kFailedPrecondition,  // the system is not in the state the operation needs
    kInternal,
  };

  Status() = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status ResourceExhausted(std::string msg) {
    return {Code::kResourceExhausted, std::move(msg)};
  }
  static Status PermissionDenied(std::string msg) {
    return {Code::kPermissionDenied, std::move(msg)};
  }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  // Returns an error Status for the current errno value of a failed system call.
  // `what` names the operation and its object, e.g. "rename /a to /b".
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // True when the same operation may succeed later without anyone changing anything.
  bool retryable() const {
    return code_ == Code::kUnavailable || code_ == Code::kResourceExhausted ||
           code_ == Code::kIoError;
  }

  // "OK" or "<code name>: <message>".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context`.
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code code);

}  // namespace ferry

// Evaluates `expr` (a Status) and returns it from the enclosing function if it is an error.
#define FERRY_RETURN_IF_ERROR(expr)         \
  do {                                      \
    ::ferry::Status ferry_status_ = (expr); \
    if (!ferry_status_.ok()) {              \
      return ferry_status_;                 \
    }                                       \
  } while (0)
