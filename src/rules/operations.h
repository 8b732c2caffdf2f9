// The operators of the rule language on Values, with Python's semantics.
//
// Internal to src/rules. Each function either stores its result in `out` and returns true, or
// returns false with Python's exception name and message in *error ("TypeError: ...",
// "ZeroDivisionError: division by zero"). Where Python would grow an integer beyond 64 bits,
// these report "OverflowError". `out` must not be one of the operands.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>

#include "rules/ast.h"
#include "rules/value.h"

namespace ferry::rules {

// Largest str (bytes) or list (items) an operation may build: a rule that tries to build more
// fails with MemoryError instead of exhausting the router's memory.
inline constexpr std::size_t kMaxBuiltSize = std::size_t{1} << 24;

bool UnaryOperation(UnaryOp op, const Value& a, Value& out, std::string* error);
bool BinaryOperation(BinaryOp op, const Value& a, const Value& b, Value& out, std::string* error);

// `item in container`.
bool Contains(const Value& container, const Value& item, bool* result, std::string* error);

// ==, !=, <, <=, >, >=, is, is not (not `in`, see Contains).
bool CompareValues(CmpOp op, const Value& a, const Value& b, bool* result, std::string* error);

// container[index].
bool IndexValue(const Value& container, const Value& index, Value& out, std::string* error);

// container[start:stop:step]; null pointers and None stand for absent parts.
bool SliceValue(const Value& container, const Value* start, const Value* stop, const Value* step,
                Value& out, std::string* error);

// Sets `out` to a str that is `part` of `whole`: a borrowed view if `whole` is borrowed, a copy
// otherwise (so that `out` never points into a temporary).
void SetSubstring(const Value& whole, std::string_view part, Value& out);

const char* BinaryOpSymbol(BinaryOp op);

}  // namespace ferry::rules
