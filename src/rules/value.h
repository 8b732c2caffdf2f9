// Value: a run-time value of the rule language, with Python's semantics for truth, equality,
// ordering, str() and repr().
//
// The types are those of the language: None, bool, int (64-bit: ferry reports an overflow where
// Python would grow the integer), float, str, list and tuple. A str either owns its bytes or
// borrows them (a tag value, a literal of the compiled rule); a borrowed str is valid as long as
// what it borrows from, which the evaluator guarantees for the duration of one evaluation.
// MakeOwned() turns a value into one that borrows nothing.
// Thread-safety: a Value is a plain value; distinct Values may be used from distinct threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::rules {

class Value {
 public:
  enum class Type : std::uint8_t { kNone, kBool, kInt, kFloat, kStr, kList, kTuple };

  Value() = default;  // None
  Value(const Value& other) { CopyFrom(other); }
  Value(Value&& other) noexcept { MoveFrom(std::move(other)); }
  Value& operator=(const Value& other) {
    if (this != &other) {
      CopyFrom(other);
    }
    return *this;
  }
  Value& operator=(Value&& other) noexcept {
    if (this != &other) {
      MoveFrom(std::move(other));
    }
    return *this;
  }

  static Value None() { return Value(); }
  static Value Bool(bool b) {
    Value v;
    v.SetBool(b);
    return v;
  }
  static Value Int(std::int64_t i) {
    Value v;
    v.SetInt(i);
    return v;
  }
  static Value Float(double d) {
    Value v;
    v.SetFloat(d);
    return v;
  }
  static Value Str(std::string s) {
    Value v;
    v.SetStr(std::move(s));
    return v;
  }
  // Borrows `s`: the caller keeps the bytes alive while the value (or a copy) is used.
  static Value StrView(std::string_view s) {
    Value v;
    v.SetStrView(s);
    return v;
  }
  static Value List(std::vector<Value> items) {
    Value v;
    v.type_ = Type::kList;
    v.items_ = std::move(items);
    return v;
  }
  static Value Tuple(std::vector<Value> items) {
    Value v;
    v.type_ = Type::kTuple;
    v.items_ = std::move(items);
    return v;
  }

  // In-place setters. They keep the capacity of the owned buffers, so that a Value reused as
  // scratch space does not allocate again.
  void SetNone() { type_ = Type::kNone; }
  void SetBool(bool b) {
    type_ = Type::kBool;
    i_ = b ? 1 : 0;
  }
  void SetInt(std::int64_t i) {
    type_ = Type::kInt;
    i_ = i;
  }
  void SetFloat(double d) {
    type_ = Type::kFloat;
    f_ = d;
  }
  void SetStrView(std::string_view s) {
    type_ = Type::kStr;
    borrowed_ = true;
    view_ = s;
  }
  void SetStr(std::string s) {
    type_ = Type::kStr;
    borrowed_ = false;
    str_ = std::move(s);
  }
  // Makes this an empty owned str and returns its buffer for the caller to fill.
  std::string* MutableStr() {
    type_ = Type::kStr;
    borrowed_ = false;
    str_.clear();
    return &str_;
  }
  // Makes this an empty list (or tuple) and returns its items for the caller to fill.
  std::vector<Value>* MutableItems(bool tuple) {
    type_ = tuple ? Type::kTuple : Type::kList;
    items_.clear();
    return &items_;
  }

  Type type() const { return type_; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_float() const { return type_ == Type::kFloat; }
  bool is_str() const { return type_ == Type::kStr; }
  bool is_sequence() const { return type_ == Type::kList || type_ == Type::kTuple; }
  // bool and int: Python's bool is a subclass of int.
  bool is_integral() const { return type_ == Type::kBool || type_ == Type::kInt; }
  bool is_number() const { return is_integral() || type_ == Type::kFloat; }

  bool bool_value() const { return i_ != 0; }
  // For bool and int.
  std::int64_t int_value() const { return i_; }
  double float_value() const { return f_; }
  // For any number.
  double AsDouble() const { return type_ == Type::kFloat ? f_ : static_cast<double>(i_); }
  std::string_view str() const { return borrowed_ ? view_ : std::string_view(str_); }
  // For str: true if the bytes are borrowed (and so outlive this value during an evaluation).
  bool borrowed() const { return borrowed_; }
  const std::vector<Value>& items() const { return items_; }

  // Python's truth value.
  bool Truthy() const;
  // Python's type name: "NoneType", "bool", "int", "float", "str", "list", "tuple".
  const char* TypeName() const;
  // Python's repr() and str().
  std::string Repr() const;
  std::string ToString() const;

  // Copies borrowed bytes into the value (recursively), so that it outlives what it borrowed.
  void MakeOwned();

 private:
  void CopyFrom(const Value& other);
  void MoveFrom(Value&& other);

  Type type_ = Type::kNone;
  bool borrowed_ = false;
  union {
    std::int64_t i_ = 0;
    double f_;
  };
  std::string_view view_;
  std::string str_;
  std::vector<Value> items_;
};

// Python's ==. Numbers compare by value across bool, int and float; list and tuple never equal.
bool Equal(const Value& a, const Value& b);

enum class CompareOp : std::uint8_t { kLt, kLe, kGt, kGe };

// Python's <, <=, >, >=. Returns false if the two types cannot be ordered (Python's TypeError);
// otherwise stores the outcome in *result.
bool Ordered(CompareOp op, const Value& a, const Value& b, bool* result);

// Python's repr() of a float: the shortest string that reads back as the same double
// ("1.0", "0.1", "1e+16", "1.5e-05", "inf", "nan").
std::string FormatFloat(double d);

// Appends Python's repr() of a str (quotes chosen and characters escaped as Python does).
void AppendStrRepr(std::string_view s, std::string* out);

}  // namespace ferry::rules
