#include "rules/operations.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "rules/text.h"

namespace ferry::rules {
namespace {

constexpr char kOverflow[] = "OverflowError: integer overflow (rule integers are 64-bit)";

std::string Quote(const char* type) { return std::string("'") + type + "'"; }

bool TypeError(std::string* error, std::string message) {
  *error = "TypeError: " + std::move(message);
  return false;
}

bool Unsupported(const char* symbol, const Value& a, const Value& b, std::string* error) {
  return TypeError(error, std::string("unsupported operand type(s) for ") + symbol + ": " +
                              Quote(a.TypeName()) + " and " + Quote(b.TypeName()));
}

bool ZeroDivision(std::string* error, const char* message = "division by zero") {
  *error = std::string("ZeroDivisionError: ") + message;
  return false;
}

bool MemoryError(std::string* error) {
  *error = "MemoryError: the result would be larger than 16 MiB";
  return false;
}

// Python's float divmod (floor semantics, the sign of the remainder follows the divisor).
void FloatDivmod(double vx, double wx, double* floordiv, double* mod) {
  double m = std::fmod(vx, wx);
  double div = (vx - m) / wx;
  if (m != 0.0) {
    if ((wx < 0) != (m < 0)) {
      m += wx;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, wx);
  }
  double fd;
  if (div != 0.0) {
    fd = std::floor(div);
    if (div - fd > 0.5) {
      fd += 1.0;
    }
  } else {
    fd = std::copysign(0.0, vx / wx);
  }
  *floordiv = fd;
  *mod = m;
}

bool IntPow(std::int64_t base, std::int64_t exp, std::int64_t* out) {
  std::int64_t result = 1;
  std::int64_t b = base;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, b, &result)) {
        return false;
      }
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(b, b, &b)) {
      return false;
    }
  }
  *out = result;
  return true;
}

bool Repeat(const Value& seq, std::int64_t times, Value& out, std::string* error) {
  if (times < 0) {
    times = 0;
  }
  if (seq.is_str()) {
    std::string_view s = seq.str();
    if (!s.empty() && static_cast<std::uint64_t>(times) > kMaxBuiltSize / s.size()) {
      return MemoryError(error);
    }
    std::string* o = out.MutableStr();
    o->reserve(s.size() * static_cast<size_t>(times));
    for (std::int64_t i = 0; i < times; ++i) {
      o->append(s);
    }
    return true;
  }
  const auto& items = seq.items();
  if (!items.empty() && static_cast<std::uint64_t>(times) > kMaxBuiltSize / items.size()) {
    return MemoryError(error);
  }
  std::vector<Value> result;
  result.reserve(items.size() * static_cast<size_t>(times));
  for (std::int64_t i = 0; i < times; ++i) {
    result.insert(result.end(), items.begin(), items.end());
  }
  *out.MutableItems(seq.type() == Value::Type::kTuple) = std::move(result);
  return true;
}

bool FloatPow(double a, double b, Value& out, std::string* error) {
  if (a == 0.0 && b < 0.0) {
    return ZeroDivision(error, "0.0 cannot be raised to a negative power");
  }
  if (a < 0.0 && std::isfinite(b) && b != std::floor(b)) {
    *error =
        "ValueError: a negative number raised to a fractional power is complex, which "
        "rules do not support";
    return false;
  }
  double r = std::pow(a, b);
  if (std::isinf(r) && std::isfinite(a) && std::isfinite(b)) {
    *error = "OverflowError: numerical result out of range";
    return false;
  }
  out.SetFloat(r);
  return true;
}

}  // namespace

const char* BinaryOpSymbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kFloorDiv:
      return "//";
    case BinaryOp::kMod:
      return "%";
    case BinaryOp::kPow:
      return "** or pow()";
    case BinaryOp::kBitOr:
      return "|";
    case BinaryOp::kBitXor:
      return "^";
    case BinaryOp::kBitAnd:
      return "&";
    case BinaryOp::kShl:
      return "<<";
    case BinaryOp::kShr:
      return ">>";
  }
  return "?";
}

void SetSubstring(const Value& whole, std::string_view part, Value& out) {
  if (whole.borrowed()) {
    out.SetStrView(part);
  } else {
    out.SetStr(std::string(part));
  }
}

bool UnaryOperation(UnaryOp op, const Value& a, Value& out, std::string* error) {
  switch (op) {
    case UnaryOp::kNeg:
      if (a.is_integral()) {
        if (a.int_value() == std::numeric_limits<std::int64_t>::min()) {
          *error = kOverflow;
          return false;
        }
        out.SetInt(-a.int_value());
        return true;
      }
      if (a.is_float()) {
        out.SetFloat(-a.float_value());
        return true;
      }
      return TypeError(error, std::string("bad operand type for unary -: ") + Quote(a.TypeName()));
    case UnaryOp::kPos:
      if (a.is_integral()) {
        out.SetInt(a.int_value());
        return true;
      }
      if (a.is_float()) {
        out.SetFloat(a.float_value());
        return true;
      }
      return TypeError(error, std::string("bad operand type for unary +: ") + Quote(a.TypeName()));
    case UnaryOp::kInvert:
      if (a.is_integral()) {
        out.SetInt(~a.int_value());
        return true;
      }
      return TypeError(error, std::string("bad operand type for unary ~: ") + Quote(a.TypeName()));
  }
  return false;
}

bool BinaryOperation(BinaryOp op, const Value& a, const Value& b, Value& out, std::string* error) {
  const bool ints = a.is_integral() && b.is_integral();
  const bool numbers = a.is_number() && b.is_number();
  switch (op) {
    case BinaryOp::kAdd:
      if (ints) {
        std::int64_t r;
        if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) {
          *error = kOverflow;
          return false;
        }
        out.SetInt(r);
        return true;
      }
      if (numbers) {
        out.SetFloat(a.AsDouble() + b.AsDouble());
        return true;
      }
      if (a.is_str() && b.is_str()) {
        if (a.str().size() + b.str().size() > kMaxBuiltSize) {
          return MemoryError(error);
        }
        std::string* o = out.MutableStr();
        o->reserve(a.str().size() + b.str().size());
        o->append(a.str());
        o->append(b.str());
        return true;
      }
      if (a.is_sequence() && a.type() == b.type()) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        *out.MutableItems(a.type() == Value::Type::kTuple) = std::move(items);
        return true;
      }
      if (a.is_str()) {
        return TypeError(
            error, std::string("can only concatenate str (not \"") + b.TypeName() + "\") to str");
      }
      return Unsupported("+", a, b, error);
    case BinaryOp::kSub:
      if (ints) {
        std::int64_t r;
        if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) {
          *error = kOverflow;
          return false;
        }
        out.SetInt(r);
        return true;
      }
      if (numbers) {
        out.SetFloat(a.AsDouble() - b.AsDouble());
        return true;
      }
      return Unsupported("-", a, b, error);
    case BinaryOp::kMul:
      if (ints) {
        std::int64_t r;
        if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) {
          *error = kOverflow;
          return false;
        }
        out.SetInt(r);
        return true;
      }
      if (numbers) {
        out.SetFloat(a.AsDouble() * b.AsDouble());
        return true;
      }
      if ((a.is_str() || a.is_sequence()) && b.is_integral()) {
        return Repeat(a, b.int_value(), out, error);
      }
      if (a.is_integral() && (b.is_str() || b.is_sequence())) {
        return Repeat(b, a.int_value(), out, error);
      }
      if ((a.is_str() || a.is_sequence()) && b.is_float()) {
        return TypeError(error, std::string("can't multiply sequence by non-int of type 'float'"));
      }
      return Unsupported("*", a, b, error);
    case BinaryOp::kDiv:
      if (numbers) {
        double d = b.AsDouble();
        if (d == 0.0) {
          return ZeroDivision(error);
        }
        out.SetFloat(a.AsDouble() / d);
        return true;
      }
      return Unsupported("/", a, b, error);
    case BinaryOp::kFloorDiv:
    case BinaryOp::kMod:
      if (ints) {
        std::int64_t x = a.int_value();
        std::int64_t y = b.int_value();
        if (y == 0) {
          return ZeroDivision(error, "integer division or modulo by zero");
        }
        if (x == std::numeric_limits<std::int64_t>::min() && y == -1) {
          if (op == BinaryOp::kMod) {
            out.SetInt(0);
            return true;
          }
          *error = kOverflow;
          return false;
        }
        std::int64_t q = x / y;
        std::int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        out.SetInt(op == BinaryOp::kFloorDiv ? q : r);
        return true;
      }
      if (numbers) {
        double y = b.AsDouble();
        if (y == 0.0) {
          return ZeroDivision(error, op == BinaryOp::kMod ? "float modulo by zero"
                                                          : "float floor division by zero");
        }
        double fd;
        double m;
        FloatDivmod(a.AsDouble(), y, &fd, &m);
        out.SetFloat(op == BinaryOp::kFloorDiv ? fd : m);
        return true;
      }
      if (op == BinaryOp::kMod && a.is_str()) {
        return TypeError(error, "string formatting with % is not supported in rules");
      }
      return Unsupported(BinaryOpSymbol(op), a, b, error);
    case BinaryOp::kPow:
      if (ints) {
        std::int64_t base = a.int_value();
        std::int64_t exp = b.int_value();
        if (exp < 0) {
          return FloatPow(static_cast<double>(base), static_cast<double>(exp), out, error);
        }
        std::int64_t r;
        if (!IntPow(base, exp, &r)) {
          *error = kOverflow;
          return false;
        }
        out.SetInt(r);
        return true;
      }
      if (numbers) {
        return FloatPow(a.AsDouble(), b.AsDouble(), out, error);
      }
      return Unsupported("** or pow()", a, b, error);
    case BinaryOp::kBitOr:
    case BinaryOp::kBitXor:
    case BinaryOp::kBitAnd: {
      if (!ints) {
        return Unsupported(BinaryOpSymbol(op), a, b, error);
      }
      std::int64_t x = a.int_value();
      std::int64_t y = b.int_value();
      std::int64_t r = op == BinaryOp::kBitOr    ? (x | y)
                       : op == BinaryOp::kBitXor ? (x ^ y)
                                                 : (x & y);
      if (a.is_bool() && b.is_bool()) {
        out.SetBool(r != 0);
      } else {
        out.SetInt(r);
      }
      return true;
    }
    case BinaryOp::kShl:
    case BinaryOp::kShr: {
      if (!ints) {
        return Unsupported(BinaryOpSymbol(op), a, b, error);
      }
      std::int64_t x = a.int_value();
      std::int64_t n = b.int_value();
      if (n < 0) {
        *error = "ValueError: negative shift count";
        return false;
      }
      if (op == BinaryOp::kShr) {
        out.SetInt(n >= 63 ? (x < 0 ? -1 : 0) : (x >> n));
        return true;
      }
      if (x == 0) {
        out.SetInt(0);
        return true;
      }
      if (n >= 63 || (x > 0 ? x > (std::numeric_limits<std::int64_t>::max() >> n)
                            : x < (std::numeric_limits<std::int64_t>::min() >> n))) {
        *error = kOverflow;
        return false;
      }
      out.SetInt(static_cast<std::int64_t>(static_cast<std::uint64_t>(x) << n));
      return true;
    }
  }
  return false;
}

bool Contains(const Value& container, const Value& item, bool* result, std::string* error) {
  if (container.is_str()) {
    if (!item.is_str()) {
      return TypeError(error, std::string("'in <string>' requires string as left operand, not ") +
                                  item.TypeName());
    }
    *result = container.str().find(item.str()) != std::string_view::npos;
    return true;
  }
  if (container.is_sequence()) {
    for (const Value& v : container.items()) {
      if (Equal(v, item)) {
        *result = true;
        return true;
      }
    }
    *result = false;
    return true;
  }
  return TypeError(
      error, std::string("argument of type ") + Quote(container.TypeName()) + " is not iterable");
}

bool CompareValues(CmpOp op, const Value& a, const Value& b, bool* result, std::string* error) {
  switch (op) {
    case CmpOp::kEq:
      *result = Equal(a, b);
      return true;
    case CmpOp::kNe:
      *result = !Equal(a, b);
      return true;
    case CmpOp::kIs:
    case CmpOp::kIsNot: {
      // Identity: None, True and False are singletons; other values are never identical here.
      bool same = (a.is_none() && b.is_none()) ||
                  (a.is_bool() && b.is_bool() && a.bool_value() == b.bool_value());
      *result = op == CmpOp::kIs ? same : !same;
      return true;
    }
    case CmpOp::kLt:
    case CmpOp::kLe:
    case CmpOp::kGt:
    case CmpOp::kGe: {
      CompareOp c = op == CmpOp::kLt   ? CompareOp::kLt
                    : op == CmpOp::kLe ? CompareOp::kLe
                    : op == CmpOp::kGt ? CompareOp::kGt
                                       : CompareOp::kGe;
      if (Ordered(c, a, b, result)) {
        return true;
      }
      const char* sym = op == CmpOp::kLt   ? "<"
                        : op == CmpOp::kLe ? "<="
                        : op == CmpOp::kGt ? ">"
                                           : ">=";
      return TypeError(error, std::string("'") + sym + "' not supported between instances of " +
                                  Quote(a.TypeName()) + " and " + Quote(b.TypeName()));
    }
    case CmpOp::kIn:
    case CmpOp::kNotIn: {
      bool r;
      if (!Contains(b, a, &r, error)) {
        return false;
      }
      *result = op == CmpOp::kIn ? r : !r;
      return true;
    }
  }
  return false;
}

bool IndexValue(const Value& container, const Value& index, Value& out, std::string* error) {
  if (!container.is_str() && !container.is_sequence()) {
    return TypeError(error, Quote(container.TypeName()) + " object is not subscriptable");
  }
  if (!index.is_integral()) {
    if (container.is_str()) {
      return TypeError(
          error, std::string("string indices must be integers, not ") + Quote(index.TypeName()));
    }
    return TypeError(error, std::string(container.TypeName()) +
                                " indices must be integers or slices, not " + index.TypeName());
  }
  std::int64_t i = index.int_value();
  if (container.is_str()) {
    std::string_view s = container.str();
    if (IsAscii(s)) {
      std::int64_t n = static_cast<std::int64_t>(s.size());
      if (i < 0) {
        i += n;
      }
      if (i < 0 || i >= n) {
        *error = "IndexError: string index out of range";
        return false;
      }
      SetSubstring(container, s.substr(static_cast<size_t>(i), 1), out);
      return true;
    }
    std::int64_t n = static_cast<std::int64_t>(CodePointCount(s));
    if (i < 0) {
      i += n;
    }
    if (i < 0 || i >= n) {
      *error = "IndexError: string index out of range";
      return false;
    }
    size_t begin = ByteOffsetOfCodePoint(s, static_cast<size_t>(i));
    size_t end = begin;
    DecodeCodePoint(s, &end);
    SetSubstring(container, s.substr(begin, end - begin), out);
    return true;
  }
  const auto& items = container.items();
  std::int64_t n = static_cast<std::int64_t>(items.size());
  if (i < 0) {
    i += n;
  }
  if (i < 0 || i >= n) {
    *error = std::string("IndexError: ") + container.TypeName() + " index out of range";
    return false;
  }
  out = items[static_cast<size_t>(i)];
  return true;
}

namespace {

// Python's slice.indices(): clamps start/stop for a sequence of `length` and a given step.
bool SliceIndices(const Value* start, const Value* stop, const Value* step, std::int64_t length,
                  std::int64_t* b, std::int64_t* e, std::int64_t* st, std::string* error) {
  auto get = [&](const Value* v, std::int64_t* out) -> int {
    if (v == nullptr || v->is_none()) {
      return 0;  // absent
    }
    if (!v->is_integral()) {
      TypeError(error, "slice indices must be integers or None");
      return -1;
    }
    *out = v->int_value();
    return 1;
  };
  std::int64_t s = 1;
  int has_step = get(step, &s);
  if (has_step < 0) {
    return false;
  }
  if (s == 0) {
    *error = "ValueError: slice step cannot be zero";
    return false;
  }
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  int has_start = get(start, &lo);
  int has_stop = get(stop, &hi);
  if (has_start < 0 || has_stop < 0) {
    return false;
  }
  auto adjust = [&](std::int64_t v) {
    if (v < 0) {
      v += length;
      if (v < 0) {
        v = s < 0 ? -1 : 0;
      }
    } else if (v >= length) {
      v = s < 0 ? length - 1 : length;
    }
    return v;
  };
  if (has_start) {
    lo = adjust(lo);
  } else {
    lo = s < 0 ? length - 1 : 0;
  }
  if (has_stop) {
    hi = adjust(hi);
  } else {
    hi = s < 0 ? -1 : length;
  }
  *b = lo;
  *e = hi;
  *st = s;
  return true;
}

}  // namespace

bool SliceValue(const Value& container, const Value* start, const Value* stop, const Value* step,
                Value& out, std::string* error) {
  if (!container.is_str() && !container.is_sequence()) {
    return TypeError(error, Quote(container.TypeName()) + " object is not subscriptable");
  }
  if (container.is_str()) {
    std::string_view s = container.str();
    bool ascii = IsAscii(s);
    std::vector<char32_t> cps;
    std::int64_t n;
    if (ascii) {
      n = static_cast<std::int64_t>(s.size());
    } else {
      cps = ToCodePoints(s);
      n = static_cast<std::int64_t>(cps.size());
    }
    std::int64_t b;
    std::int64_t e;
    std::int64_t st;
    if (!SliceIndices(start, stop, step, n, &b, &e, &st, error)) {
      return false;
    }
    if (st == 1) {
      if (e <= b) {
        out.SetStrView(std::string_view());
        return true;
      }
      if (ascii) {
        SetSubstring(container, s.substr(static_cast<size_t>(b), static_cast<size_t>(e - b)), out);
      } else {
        size_t bb = ByteOffsetOfCodePoint(s, static_cast<size_t>(b));
        size_t eb = ByteOffsetOfCodePoint(s, static_cast<size_t>(e));
        SetSubstring(container, s.substr(bb, eb - bb), out);
      }
      return true;
    }
    std::string result;
    for (std::int64_t i = b; st > 0 ? i < e : i > e; i += st) {
      if (ascii) {
        result.push_back(s[static_cast<size_t>(i)]);
      } else {
        AppendCodePoint(cps[static_cast<size_t>(i)], &result);
      }
    }
    out.SetStr(std::move(result));
    return true;
  }
  const auto& items = container.items();
  std::int64_t b;
  std::int64_t e;
  std::int64_t st;
  if (!SliceIndices(start, stop, step, static_cast<std::int64_t>(items.size()), &b, &e, &st,
                    error)) {
    return false;
  }
  std::vector<Value> result;
  for (std::int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    result.push_back(items[static_cast<size_t>(i)]);
  }
  *out.MutableItems(container.type() == Value::Type::kTuple) = std::move(result);
  return true;
}

}  // namespace ferry::rules
