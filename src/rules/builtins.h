// The built-in functions and string methods of the rule language, with Python's semantics.
//
// Internal to src/rules. Arguments arrive in the parameter slots the parser assigned (see
// parser.cc): a null pointer is an optional argument that was not given. Like operations.h,
// each function stores its result in `out` or returns false with "ExceptionName: message" in
// *error. matches() is evaluated by the evaluator itself (it needs the compiled pattern).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>

#include "rules/ast.h"
#include "rules/value.h"

namespace ferry::rules {

bool CallBuiltin(Builtin fn, const Value* const* args, std::size_t nargs, Value& out,
                 std::string* error);

// `receiver` must be a str.
bool CallMethod(Method method, const Value& receiver, const Value* const* args, std::size_t nargs,
                Value& out, std::string* error);

// Python's int(str, base): whitespace around, a sign, underscores between digits, a 0x/0o/0b
// prefix that matches `base` (or any with base 0). False if `text` is not such a literal or
// does not fit 64 bits (*overflow set then).
bool ParseIntLiteral(std::string_view text, int base, std::int64_t* value, bool* overflow);

// Python's float(str): whitespace around, a sign, decimal digits with underscores, an
// exponent, "inf", "infinity" and "nan" in any case.
bool ParseFloatLiteral(std::string_view text, double* value);

}  // namespace ferry::rules
