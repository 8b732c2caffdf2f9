#include "rules/builtins.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "rules/operations.h"
#include "rules/text.h"

namespace ferry::rules {
namespace {

std::string Quote(const char* type) { return std::string("'") + type + "'"; }

bool Raise(std::string* error, std::string_view kind, std::string message) {
  *error = std::string(kind) + ": " + std::move(message);
  return false;
}
bool TypeError(std::string* error, std::string message) {
  return Raise(error, "TypeError", std::move(message));
}
bool ValueError(std::string* error, std::string message) {
  return Raise(error, "ValueError", std::move(message));
}

bool Given(const Value* const* args, std::size_t nargs, std::size_t i) {
  return i < nargs && args[i] != nullptr;
}
// Given and not None.
bool GivenNotNone(const Value* const* args, std::size_t nargs, std::size_t i) {
  return Given(args, nargs, i) && !args[i]->is_none();
}

bool AsIndex(const Value& v, std::int64_t* out, std::string* error) {
  if (!v.is_integral()) {
    return TypeError(error, Quote(v.TypeName()) + " object cannot be interpreted as an integer");
  }
  *out = v.int_value();
  return true;
}

// The items of an iterable: a list's or tuple's own items, or the characters of a str.
bool Items(const Value& v, std::vector<Value>* storage, const std::vector<Value>** items,
           std::string* error) {
  if (v.is_sequence()) {
    *items = &v.items();
    return true;
  }
  if (v.is_str()) {
    std::string_view s = v.str();
    storage->clear();
    size_t pos = 0;
    while (pos < s.size()) {
      size_t start = pos;
      DecodeCodePoint(s, &pos);
      storage->emplace_back();
      SetSubstring(v, s.substr(start, pos - start), storage->back());
    }
    *items = storage;
    return true;
  }
  return TypeError(error, Quote(v.TypeName()) + " object is not iterable");
}

std::string_view StripPythonSpace(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e) {
    size_t p = b;
    if (!IsSpaceChar(DecodeCodePoint(s, &p))) {
      break;
    }
    b = p;
  }
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    size_t p = start;
    if (!IsSpaceChar(DecodeCodePoint(s, &p)) || p != e) {
      break;
    }
    e = start;
  }
  return s.substr(b, e - b);
}

int DigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'Z') {
    return c - 'A' + 10;
  }
  return 99;
}

}  // namespace

bool ParseIntLiteral(std::string_view text, int base, std::int64_t* value, bool* overflow) {
  *overflow = false;
  std::string_view s = StripPythonSpace(text);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  auto has_prefix = [&](char p) { return s.size() >= 2 && s[0] == '0' && (s[1] | 0x20) == p; };
  bool prefixed = false;
  if (base == 0) {
    if (has_prefix('x')) {
      base = 16;
    } else if (has_prefix('o')) {
      base = 8;
    } else if (has_prefix('b')) {
      base = 2;
    } else {
      base = 10;
      // Base 0 refuses "010" as Python's literals do.
      if (s.size() > 1 && s[0] == '0' && s.find_first_not_of("0_") != std::string_view::npos) {
        return false;
      }
    }
    prefixed = base != 10;
  } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) ||
             (base == 2 && has_prefix('b'))) {
    prefixed = true;
  }
  if (prefixed) {
    s.remove_prefix(2);
    if (!s.empty() && s[0] == '_') {
      s.remove_prefix(1);
    }
  }
  if (s.empty()) {
    return false;
  }
  std::uint64_t acc = 0;
  const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
  bool last_underscore = true;  // no leading underscore
  for (char c : s) {
    if (c == '_') {
      if (last_underscore) {
        return false;
      }
      last_underscore = true;
      continue;
    }
    int d = DigitValue(c);
    if (d >= base) {
      return false;
    }
    last_underscore = false;
    if (acc > (limit - static_cast<std::uint64_t>(d)) / static_cast<std::uint64_t>(base)) {
      *overflow = true;
    } else {
      acc = acc * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
    }
  }
  if (last_underscore) {
    return false;
  }
  if (*overflow) {
    return false;
  }
  *value = negative ? static_cast<std::int64_t>(0 - acc) : static_cast<std::int64_t>(acc);
  return true;
}

bool ParseFloatLiteral(std::string_view text, double* value) {
  std::string_view s = StripPythonSpace(text);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  std::string lower = ToLower(s);
  if (lower == "inf" || lower == "infinity") {
    *value = negative ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  if (lower == "nan") {
    *value = std::nan("");
    return true;
  }
  // [digits] [. digits] [e [sign] digits], underscores only between digits.
  std::string clean;
  size_t i = 0;
  auto digits = [&](bool* any) {
    *any = false;
    while (i < s.size()) {
      if (s[i] >= '0' && s[i] <= '9') {
        clean.push_back(s[i]);
        *any = true;
        ++i;
      } else if (s[i] == '_' && *any && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
        ++i;
      } else {
        break;
      }
    }
  };
  bool int_digits = false;
  bool frac_digits = false;
  digits(&int_digits);
  if (i < s.size() && s[i] == '.') {
    clean.push_back('.');
    ++i;
    digits(&frac_digits);
  }
  if (!int_digits && !frac_digits) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean.push_back('e');
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      clean.push_back(s[i]);
      ++i;
    }
    bool exp_digits = false;
    digits(&exp_digits);
    if (!exp_digits) {
      return false;
    }
  }
  if (i != s.size()) {
    return false;
  }
  if (clean[0] == '.') {
    clean.insert(clean.begin(), '0');
  }
  double d = 0;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), d);
  if (res.ec == std::errc::result_out_of_range) {
    size_t e = clean.find('e');
    bool tiny = e != std::string::npos && e + 1 < clean.size() && clean[e + 1] == '-';
    d = tiny ? 0.0 : HUGE_VAL;
  } else if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) {
    return false;
  }
  *value = negative ? -d : d;
  return true;
}

namespace {

bool IntFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  bool has_base = Given(args, nargs, 1);
  if (!Given(args, nargs, 0)) {
    if (has_base) {
      return TypeError(error, "int() missing string argument");
    }
    out.SetInt(0);
    return true;
  }
  const Value& x = *args[0];
  int base = 10;
  if (has_base) {
    std::int64_t b;
    if (!AsIndex(*args[1], &b, error)) {
      return false;
    }
    if (!x.is_str()) {
      return TypeError(error, "int() can't convert non-string with explicit base");
    }
    if (b != 0 && (b < 2 || b > 36)) {
      return ValueError(error, "int() base must be >= 2 and <= 36, or 0");
    }
    base = static_cast<int>(b);
  }
  if (x.is_str()) {
    std::int64_t v;
    bool overflow;
    if (ParseIntLiteral(x.str(), base, &v, &overflow)) {
      out.SetInt(v);
      return true;
    }
    if (overflow) {
      return Raise(error, "OverflowError", "integer overflow (rule integers are 64-bit)");
    }
    return ValueError(
        error, "invalid literal for int() with base " + std::to_string(base) + ": " + x.Repr());
  }
  if (x.is_integral()) {
    out.SetInt(x.int_value());
    return true;
  }
  if (x.is_float()) {
    double d = x.float_value();
    if (std::isnan(d)) {
      return ValueError(error, "cannot convert float NaN to integer");
    }
    if (std::isinf(d)) {
      return Raise(error, "OverflowError", "cannot convert float infinity to integer");
    }
    double t = std::trunc(d);
    if (t >= 9223372036854775808.0 || t < -9223372036854775808.0) {
      return Raise(error, "OverflowError", "integer overflow (rule integers are 64-bit)");
    }
    out.SetInt(static_cast<std::int64_t>(t));
    return true;
  }
  return TypeError(error, std::string("int() argument must be a string, a bytes-like object or "
                                      "a real number, not ") +
                              Quote(x.TypeName()));
}

bool FloatFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  if (!Given(args, nargs, 0)) {
    out.SetFloat(0.0);
    return true;
  }
  const Value& x = *args[0];
  if (x.is_str()) {
    double d;
    if (!ParseFloatLiteral(x.str(), &d)) {
      return ValueError(error, "could not convert string to float: " + x.Repr());
    }
    out.SetFloat(d);
    return true;
  }
  if (x.is_number()) {
    out.SetFloat(x.AsDouble());
    return true;
  }
  return TypeError(error, std::string("float() argument must be a string or a real number, not ") +
                              Quote(x.TypeName()));
}

bool RoundFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  const Value& x = *args[0];
  if (!x.is_number()) {
    return TypeError(error,
                     std::string("type ") + x.TypeName() + " doesn't define __round__ method");
  }
  bool has_nd = GivenNotNone(args, nargs, 1);
  std::int64_t nd = 0;
  if (has_nd && !AsIndex(*args[1], &nd, error)) {
    return false;
  }
  if (x.is_integral()) {
    std::int64_t v = x.int_value();
    if (!has_nd || nd >= 0) {
      out.SetInt(v);
      return true;
    }
    if (nd <= -19) {
      out.SetInt(0);
      return true;
    }
    std::int64_t p = 1;
    for (std::int64_t i = 0; i < -nd; ++i) {
      p *= 10;
    }
    std::int64_t q = v / p;
    std::int64_t r = v % p;
    if (r < 0) {
      r += p;
      q -= 1;
    }
    // Round half to even.
    if (2 * static_cast<__int128>(r) > p || (2 * static_cast<__int128>(r) == p && (q & 1))) {
      q += 1;
    }
    std::int64_t result;
    if (__builtin_mul_overflow(q, p, &result)) {
      return Raise(error, "OverflowError", "integer overflow (rule integers are 64-bit)");
    }
    out.SetInt(result);
    return true;
  }
  double d = x.float_value();
  if (!has_nd) {
    if (std::isnan(d)) {
      return ValueError(error, "cannot convert float NaN to integer");
    }
    if (std::isinf(d)) {
      return Raise(error, "OverflowError", "cannot convert float infinity to integer");
    }
    double r = std::nearbyint(d);  // round half to even in the default rounding mode
    if (r >= 9223372036854775808.0 || r < -9223372036854775808.0) {
      return Raise(error, "OverflowError", "integer overflow (rule integers are 64-bit)");
    }
    out.SetInt(static_cast<std::int64_t>(r));
    return true;
  }
  if (!std::isfinite(d) || d == 0.0 || nd > 323) {
    out.SetFloat(d);
    return true;
  }
  if (nd < -308) {
    out.SetFloat(std::copysign(0.0, d));
    return true;
  }
  if (nd >= 0) {
    // printf rounds the exact binary value correctly, ties to even, as Python's round does.
    char buf[800];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(nd), d);
    out.SetFloat(std::strtod(buf, nullptr));
    return true;
  }
  double p = std::pow(10.0, static_cast<double>(-nd));
  double r = std::nearbyint(d / p) * p;
  if (!std::isfinite(r)) {
    return Raise(error, "OverflowError", "rounded value too large to represent");
  }
  out.SetFloat(r);
  return true;
}

bool MinMax(bool is_max, const Value* const* args, std::size_t nargs, Value& out,
            std::string* error) {
  const char* name = is_max ? "max()" : "min()";
  std::vector<Value> storage;
  const Value* best = nullptr;
  auto consider = [&](const Value& v) -> bool {
    if (best == nullptr) {
      best = &v;
      return true;
    }
    bool better;
    if (!CompareValues(is_max ? CmpOp::kGt : CmpOp::kLt, v, *best, &better, error)) {
      return false;
    }
    if (better) {
      best = &v;
    }
    return true;
  };
  if (nargs == 1) {
    const std::vector<Value>* items;
    if (!Items(*args[0], &storage, &items, error)) {
      return false;
    }
    if (items->empty()) {
      return ValueError(error, std::string(name) + " arg is an empty sequence");
    }
    for (const Value& v : *items) {
      if (!consider(v)) {
        return false;
      }
    }
  } else {
    for (std::size_t i = 0; i < nargs; ++i) {
      if (!consider(*args[i])) {
        return false;
      }
    }
  }
  out = *best;
  return true;
}

bool SumFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  Value acc = Value::Int(0);
  if (Given(args, nargs, 1)) {
    if (args[1]->is_str()) {
      return TypeError(error, "sum() can't sum strings [use ''.join(seq) instead]");
    }
    acc = *args[1];
  }
  std::vector<Value> storage;
  const std::vector<Value>* items;
  if (!Items(*args[0], &storage, &items, error)) {
    return false;
  }
  Value next;
  for (const Value& v : *items) {
    if (!BinaryOperation(BinaryOp::kAdd, acc, v, next, error)) {
      return false;
    }
    std::swap(acc, next);
  }
  out = std::move(acc);
  return true;
}

bool SortedFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  bool reverse = GivenNotNone(args, nargs, 1) && args[1]->Truthy();
  if (Given(args, nargs, 1) && !args[1]->is_integral()) {
    return TypeError(error,
                     Quote(args[1]->TypeName()) + " object cannot be interpreted as an integer");
  }
  std::vector<Value> storage;
  const std::vector<Value>* items;
  if (!Items(*args[0], &storage, &items, error)) {
    return false;
  }
  std::vector<Value> sorted = *items;
  // Insertion sort: stable, and it stops at the first pair that cannot be ordered (TypeError).
  // Rule lists are short.
  for (size_t i = 1; i < sorted.size(); ++i) {
    size_t j = i;
    while (j > 0) {
      bool less;
      const Value& a = reverse ? sorted[j - 1] : sorted[j];
      const Value& b = reverse ? sorted[j] : sorted[j - 1];
      if (!CompareValues(CmpOp::kLt, a, b, &less, error)) {
        return false;
      }
      if (!less) {
        break;
      }
      std::swap(sorted[j], sorted[j - 1]);
      --j;
    }
  }
  *out.MutableItems(false) = std::move(sorted);
  return true;
}

bool PowFn(const Value* const* args, std::size_t nargs, Value& out, std::string* error) {
  if (!GivenNotNone(args, nargs, 2)) {
    return BinaryOperation(BinaryOp::kPow, *args[0], *args[1], out, error);
  }
  const Value& b = *args[0];
  const Value& e = *args[1];
  const Value& m = *args[2];
  if (!b.is_integral() || !e.is_integral() || !m.is_integral()) {
    return TypeError(error, "pow() 3rd argument not allowed unless all arguments are integers");
  }
  std::int64_t mod = m.int_value();
  if (mod == 0) {
    return ValueError(error, "pow() 3rd argument cannot be 0");
  }
  std::int64_t exp = e.int_value();
  if (exp < 0) {
    return ValueError(error,
                      "pow() with a negative exponent and a modulus is not supported in "
                      "rules");
  }
  __int128 am = mod < 0 ? -static_cast<__int128>(mod) : mod;
  __int128 base = static_cast<__int128>(b.int_value()) % am;
  if (base < 0) {
    base += am;
  }
  __int128 result = 1 % am;
  while (exp > 0) {
    if (exp & 1) {
      result = result * base % am;
    }
    base = base * base % am;
    exp >>= 1;
  }
  if (mod < 0 && result != 0) {
    result -= am;
  }
  out.SetInt(static_cast<std::int64_t>(result));
  return true;
}

}  // namespace

bool CallBuiltin(Builtin fn, const Value* const* args, std::size_t nargs, Value& out,
                 std::string* error) {
  switch (fn) {
    case Builtin::kBool:
      out.SetBool(Given(args, nargs, 0) && args[0]->Truthy());
      return true;
    case Builtin::kInt:
      return IntFn(args, nargs, out, error);
    case Builtin::kFloat:
      return FloatFn(args, nargs, out, error);
    case Builtin::kStr:
      if (!Given(args, nargs, 0)) {
        out.SetStrView(std::string_view());
      } else if (args[0]->is_str()) {
        out = *args[0];
      } else {
        out.SetStr(args[0]->ToString());
      }
      return true;
    case Builtin::kLen: {
      const Value& x = *args[0];
      if (x.is_str()) {
        std::string_view s = x.str();
        out.SetInt(static_cast<std::int64_t>(IsAscii(s) ? s.size() : CodePointCount(s)));
        return true;
      }
      if (x.is_sequence()) {
        out.SetInt(static_cast<std::int64_t>(x.items().size()));
        return true;
      }
      return TypeError(error,
                       std::string("object of type ") + Quote(x.TypeName()) + " has no len()");
    }
    case Builtin::kMin:
    case Builtin::kMax:
      return MinMax(fn == Builtin::kMax, args, nargs, out, error);
    case Builtin::kAbs: {
      const Value& x = *args[0];
      if (x.is_integral()) {
        if (x.int_value() == std::numeric_limits<std::int64_t>::min()) {
          return Raise(error, "OverflowError", "integer overflow (rule integers are 64-bit)");
        }
        out.SetInt(x.int_value() < 0 ? -x.int_value() : x.int_value());
        return true;
      }
      if (x.is_float()) {
        out.SetFloat(std::fabs(x.float_value()));
        return true;
      }
      return TypeError(error, std::string("bad operand type for abs(): ") + Quote(x.TypeName()));
    }
    case Builtin::kRound:
      return RoundFn(args, nargs, out, error);
    case Builtin::kSum:
      return SumFn(args, nargs, out, error);
    case Builtin::kAny:
    case Builtin::kAll: {
      std::vector<Value> storage;
      const std::vector<Value>* items;
      if (!Items(*args[0], &storage, &items, error)) {
        return false;
      }
      bool want = fn == Builtin::kAny;
      for (const Value& v : *items) {
        if (v.Truthy() == want) {
          out.SetBool(want);
          return true;
        }
      }
      out.SetBool(!want);
      return true;
    }
    case Builtin::kSorted:
      return SortedFn(args, nargs, out, error);
    case Builtin::kPow:
      return PowFn(args, nargs, out, error);
    case Builtin::kChr: {
      std::int64_t i;
      if (!AsIndex(*args[0], &i, error)) {
        return false;
      }
      if (i < 0 || i > 0x10FFFF) {
        return ValueError(error, "chr() arg not in range(0x110000)");
      }
      std::string* s = out.MutableStr();
      AppendCodePoint(static_cast<char32_t>(i), s);
      return true;
    }
    case Builtin::kOrd: {
      const Value& x = *args[0];
      if (!x.is_str()) {
        return TypeError(error, std::string("ord() expected string of length 1, but ") +
                                    x.TypeName() + " found");
      }
      std::string_view s = x.str();
      size_t n = CodePointCount(s);
      if (n != 1) {
        return TypeError(error, "ord() expected a character, but string of length " +
                                    std::to_string(n) + " found");
      }
      size_t pos = 0;
      out.SetInt(static_cast<std::int64_t>(DecodeCodePoint(s, &pos)));
      return true;
    }
    case Builtin::kList:
    case Builtin::kTuple: {
      bool tuple = fn == Builtin::kTuple;
      if (!Given(args, nargs, 0)) {
        out.MutableItems(tuple);
        return true;
      }
      std::vector<Value> storage;
      const std::vector<Value>* items;
      if (!Items(*args[0], &storage, &items, error)) {
        return false;
      }
      std::vector<Value> copy = *items;
      *out.MutableItems(tuple) = std::move(copy);
      return true;
    }
    case Builtin::kMatches:
      return TypeError(error, "internal: matches() is evaluated by the evaluator");
  }
  return false;
}

// ---- String methods ----

namespace {

// A str with its code point boundaries, for the methods that index by code point.
struct Chars {
  explicit Chars(std::string_view text) : s(text), ascii(IsAscii(text)) {
    if (!ascii) {
      size_t pos = 0;
      while (pos < s.size()) {
        offsets.push_back(pos);
        DecodeCodePoint(s, &pos);
      }
      offsets.push_back(s.size());
    }
  }
  std::int64_t size() const {
    return static_cast<std::int64_t>(ascii ? s.size() : offsets.size() - 1);
  }
  size_t Byte(std::int64_t cp_index) const {
    return ascii ? static_cast<size_t>(cp_index) : offsets[static_cast<size_t>(cp_index)];
  }
  std::int64_t Index(size_t byte) const {
    if (ascii) {
      return static_cast<std::int64_t>(byte);
    }
    auto it = std::lower_bound(offsets.begin(), offsets.end(), byte);
    return static_cast<std::int64_t>(it - offsets.begin());
  }

  std::string_view s;
  bool ascii;
  std::vector<size_t> offsets;
};

// Python's start/end arguments of find(), count(), startswith(): the window [*b, *e) in code
// points; false if start lies beyond the end (nothing can match, not even "").
bool Window(const Chars& chars, const Value* const* args, std::size_t nargs, std::size_t first,
            std::int64_t* b, std::int64_t* e, bool* ok, std::string* error) {
  std::int64_t n = chars.size();
  std::int64_t start = 0;
  std::int64_t end = n;
  for (std::size_t k = 0; k < 2; ++k) {
    if (!GivenNotNone(args, nargs, first + k)) {
      continue;
    }
    const Value& v = *args[first + k];
    if (!v.is_integral()) {
      return TypeError(error, "slice indices must be integers or None or have an __index__ method");
    }
    std::int64_t x = v.int_value();
    if (x < 0) {
      x = std::max<std::int64_t>(x + n, 0);
    } else if (x > n) {
      x = k == 0 ? x : n;
    }
    (k == 0 ? start : end) = x;
  }
  *ok = start <= n && start <= end;
  *b = start;
  *e = std::max(end, start);
  return true;
}

bool NeedStr(const Value& v, const char* what, std::string* error) {
  if (v.is_str()) {
    return true;
  }
  return TypeError(error, std::string(what) + " must be str, not " + v.TypeName());
}

bool Strip(Method m, const Value& recv, const Value* chars_arg, Value& out, std::string* error) {
  std::string_view s = recv.str();
  bool custom = chars_arg != nullptr && !chars_arg->is_none();
  if (custom && !chars_arg->is_str()) {
    return TypeError(error, std::string(m == Method::kStrip    ? "strip"
                                        : m == Method::kLstrip ? "lstrip"
                                                               : "rstrip") +
                                " arg must be None or str");
  }
  std::vector<char32_t> set;
  if (custom) {
    set = ToCodePoints(chars_arg->str());
  }
  auto strip_it = [&](char32_t c) {
    if (!custom) {
      return IsSpaceChar(c);
    }
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  Chars chars(s);
  std::int64_t b = 0;
  std::int64_t e = chars.size();
  auto at = [&](std::int64_t i) {
    size_t p = chars.Byte(i);
    return DecodeCodePoint(s, &p);
  };
  if (m != Method::kRstrip) {
    while (b < e && strip_it(at(b))) {
      ++b;
    }
  }
  if (m != Method::kLstrip) {
    while (e > b && strip_it(at(e - 1))) {
      --e;
    }
  }
  size_t bb = chars.Byte(b);
  size_t eb = chars.Byte(e);
  SetSubstring(recv, s.substr(bb, eb - bb), out);
  return true;
}

bool AffixCheck(bool starts, const Value& recv, const Value* const* args, std::size_t nargs,
                Value& out, std::string* error) {
  const char* name = starts ? "startswith" : "endswith";
  const Value& affix = *args[0];
  std::vector<std::string_view> candidates;
  if (affix.is_str()) {
    candidates.push_back(affix.str());
  } else if (affix.type() == Value::Type::kTuple) {
    for (const Value& v : affix.items()) {
      if (!v.is_str()) {
        return TypeError(error, std::string("tuple for ") + name + " must only contain str, not " +
                                    v.TypeName());
      }
      candidates.push_back(v.str());
    }
  } else {
    return TypeError(error, std::string(name) + " first arg must be str or a tuple of str, not " +
                                affix.TypeName());
  }
  Chars chars(recv.str());
  std::int64_t b;
  std::int64_t e;
  bool ok;
  if (!Window(chars, args, nargs, 1, &b, &e, &ok, error)) {
    return false;
  }
  if (!ok) {
    out.SetBool(false);
    return true;
  }
  std::string_view w = recv.str().substr(chars.Byte(b), chars.Byte(e) - chars.Byte(b));
  for (std::string_view c : candidates) {
    if (c.size() <= w.size() &&
        (starts ? w.substr(0, c.size()) == c : w.substr(w.size() - c.size()) == c)) {
      out.SetBool(true);
      return true;
    }
  }
  out.SetBool(false);
  return true;
}

bool FindOrCount(bool count, const Value& recv, const Value* const* args, std::size_t nargs,
                 Value& out, std::string* error) {
  if (!NeedStr(*args[0], count ? "count() argument 1" : "find() argument 1", error)) {
    return false;
  }
  std::string_view sub = args[0]->str();
  Chars chars(recv.str());
  std::int64_t b;
  std::int64_t e;
  bool ok;
  if (!Window(chars, args, nargs, 1, &b, &e, &ok, error)) {
    return false;
  }
  if (!ok) {
    out.SetInt(count ? 0 : -1);
    return true;
  }
  size_t bb = chars.Byte(b);
  std::string_view w = recv.str().substr(bb, chars.Byte(e) - bb);
  if (!count) {
    size_t p = w.find(sub);
    out.SetInt(p == std::string_view::npos ? -1 : chars.Index(bb + p));
    return true;
  }
  if (sub.empty()) {
    out.SetInt(e - b + 1);
    return true;
  }
  std::int64_t n = 0;
  size_t p = 0;
  while ((p = w.find(sub, p)) != std::string_view::npos) {
    ++n;
    p += sub.size();
  }
  out.SetInt(n);
  return true;
}

bool Split(const Value& recv, const Value* const* args, std::size_t nargs, Value& out,
           std::string* error) {
  std::string_view s = recv.str();
  std::int64_t maxsplit = -1;
  if (Given(args, nargs, 1) && !AsIndex(*args[1], &maxsplit, error)) {
    return false;
  }
  std::vector<Value> parts;
  auto add = [&](std::string_view part) {
    parts.emplace_back();
    SetSubstring(recv, part, parts.back());
  };
  if (!GivenNotNone(args, nargs, 0)) {
    // Runs of whitespace separate; leading and trailing whitespace make no empty parts.
    size_t pos = 0;
    auto space_at = [&](size_t p, size_t* next) {
      *next = p;
      return IsSpaceChar(DecodeCodePoint(s, next));
    };
    std::int64_t splits = 0;
    while (true) {
      size_t next;
      while (pos < s.size() && space_at(pos, &next)) {
        pos = next;
      }
      if (pos >= s.size()) {
        break;
      }
      if (maxsplit >= 0 && splits >= maxsplit) {
        add(s.substr(pos));
        break;
      }
      size_t start = pos;
      while (pos < s.size() && !space_at(pos, &next)) {
        pos = next;
      }
      add(s.substr(start, pos - start));
      ++splits;
    }
  } else {
    if (!args[0]->is_str()) {
      return TypeError(error, std::string("must be str or None, not ") + args[0]->TypeName());
    }
    std::string_view sep = args[0]->str();
    if (sep.empty()) {
      return ValueError(error, "empty separator");
    }
    size_t pos = 0;
    std::int64_t splits = 0;
    while (true) {
      size_t p = (maxsplit >= 0 && splits >= maxsplit) ? std::string_view::npos : s.find(sep, pos);
      if (p == std::string_view::npos) {
        add(s.substr(pos));
        break;
      }
      add(s.substr(pos, p - pos));
      pos = p + sep.size();
      ++splits;
    }
  }
  *out.MutableItems(false) = std::move(parts);
  return true;
}

bool Replace(const Value& recv, const Value* const* args, std::size_t nargs, Value& out,
             std::string* error) {
  if (!NeedStr(*args[0], "replace() argument 1", error) ||
      !NeedStr(*args[1], "replace() argument 2", error)) {
    return false;
  }
  std::int64_t count = -1;
  if (Given(args, nargs, 2) && !AsIndex(*args[2], &count, error)) {
    return false;
  }
  std::string_view s = recv.str();
  std::string_view old_s = args[0]->str();
  std::string_view new_s = args[1]->str();
  std::string result;
  std::int64_t done = 0;
  auto budget = [&]() { return count < 0 || done < count; };
  if (old_s.empty()) {
    size_t pos = 0;
    while (true) {
      if (budget()) {
        result.append(new_s);
        ++done;
      }
      if (pos >= s.size()) {
        break;
      }
      size_t start = pos;
      DecodeCodePoint(s, &pos);
      result.append(s.substr(start, pos - start));
      if (result.size() > kMaxBuiltSize) {
        return Raise(error, "MemoryError", "the result would be larger than 16 MiB");
      }
    }
  } else {
    size_t pos = 0;
    while (true) {
      size_t p = budget() ? s.find(old_s, pos) : std::string_view::npos;
      if (p == std::string_view::npos) {
        result.append(s.substr(pos));
        break;
      }
      result.append(s.substr(pos, p - pos));
      result.append(new_s);
      ++done;
      pos = p + old_s.size();
      if (result.size() > kMaxBuiltSize) {
        return Raise(error, "MemoryError", "the result would be larger than 16 MiB");
      }
    }
  }
  if (done == 0) {
    SetSubstring(recv, s, out);
  } else {
    out.SetStr(std::move(result));
  }
  return true;
}

bool CaseMap(bool upper, const Value& recv, Value& out) {
  std::string_view s = recv.str();
  if (IsAscii(s)) {
    bool changes = false;
    for (char c : s) {
      if (upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z')) {
        changes = true;
        break;
      }
    }
    if (!changes) {
      SetSubstring(recv, s, out);
      return true;
    }
    std::string* o = out.MutableStr();
    o->resize(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (upper && c >= 'a' && c <= 'z') {
        c = static_cast<char>(c - 32);
      } else if (!upper && c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c + 32);
      }
      (*o)[i] = c;
    }
    return true;
  }
  out.SetStr(upper ? ToUpper(s) : ToLower(s));
  return true;
}

template <typename Pred>
void AllChars(const Value& recv, Pred pred, Value& out) {
  std::string_view s = recv.str();
  if (s.empty()) {
    out.SetBool(false);
    return;
  }
  size_t pos = 0;
  while (pos < s.size()) {
    if (!pred(DecodeCodePoint(s, &pos))) {
      out.SetBool(false);
      return;
    }
  }
  out.SetBool(true);
}

}  // namespace

bool CallMethod(Method method, const Value& recv, const Value* const* args, std::size_t nargs,
                Value& out, std::string* error) {
  std::string_view s = recv.str();
  switch (method) {
    case Method::kLower:
      return CaseMap(false, recv, out);
    case Method::kUpper:
      return CaseMap(true, recv, out);
    case Method::kStrip:
    case Method::kLstrip:
    case Method::kRstrip:
      return Strip(method, recv, Given(args, nargs, 0) ? args[0] : nullptr, out, error);
    case Method::kStartswith:
    case Method::kEndswith:
      return AffixCheck(method == Method::kStartswith, recv, args, nargs, out, error);
    case Method::kSplit:
      return Split(recv, args, nargs, out, error);
    case Method::kReplace:
      return Replace(recv, args, nargs, out, error);
    case Method::kFind:
    case Method::kCount:
      return FindOrCount(method == Method::kCount, recv, args, nargs, out, error);
    case Method::kIsdigit:
      AllChars(recv, IsDigitChar, out);
      return true;
    case Method::kIsalpha:
      AllChars(recv, IsAlphaChar, out);
      return true;
    case Method::kIsalnum:
      AllChars(
          recv, [](char32_t c) { return IsAlphaChar(c) || IsDigitChar(c); }, out);
      return true;
    case Method::kTitle: {
      std::string* o = out.MutableStr();
      bool previous_cased = false;
      size_t pos = 0;
      while (pos < s.size()) {
        char32_t c = DecodeCodePoint(s, &pos);
        AppendCodePoint(previous_cased ? ToLowerChar(c) : ToUpperChar(c), o);
        previous_cased = IsCased(c);
      }
      return true;
    }
    case Method::kCapitalize: {
      std::string* o = out.MutableStr();
      size_t pos = 0;
      bool first = true;
      while (pos < s.size()) {
        char32_t c = DecodeCodePoint(s, &pos);
        AppendCodePoint(first ? ToUpperChar(c) : ToLowerChar(c), o);
        first = false;
      }
      return true;
    }
    case Method::kZfill: {
      std::int64_t width;
      if (!AsIndex(*args[0], &width, error)) {
        return false;
      }
      std::int64_t n = static_cast<std::int64_t>(CodePointCount(s));
      if (width <= n) {
        SetSubstring(recv, s, out);
        return true;
      }
      if (static_cast<std::uint64_t>(width) > kMaxBuiltSize) {
        return Raise(error, "MemoryError", "the result would be larger than 16 MiB");
      }
      std::string* o = out.MutableStr();
      std::string_view rest = s;
      if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
        o->push_back(rest[0]);
        rest.remove_prefix(1);
      }
      o->append(static_cast<size_t>(width - n), '0');
      o->append(rest);
      return true;
    }
  }
  return false;
}

}  // namespace ferry::rules
