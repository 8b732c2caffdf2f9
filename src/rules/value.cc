#include "rules/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "rules/text.h"

namespace ferry::rules {

void Value::CopyFrom(const Value& other) {
  type_ = other.type_;
  switch (type_) {
    case Type::kNone:
      break;
    case Type::kBool:
    case Type::kInt:
      i_ = other.i_;
      break;
    case Type::kFloat:
      f_ = other.f_;
      break;
    case Type::kStr:
      borrowed_ = other.borrowed_;
      if (borrowed_) {
        view_ = other.view_;
      } else {
        str_ = other.str_;
      }
      break;
    case Type::kList:
    case Type::kTuple:
      items_ = other.items_;
      break;
  }
}

void Value::MoveFrom(Value&& other) {
  type_ = other.type_;
  switch (type_) {
    case Type::kNone:
      break;
    case Type::kBool:
    case Type::kInt:
      i_ = other.i_;
      break;
    case Type::kFloat:
      f_ = other.f_;
      break;
    case Type::kStr:
      borrowed_ = other.borrowed_;
      if (borrowed_) {
        view_ = other.view_;
      } else {
        str_.swap(other.str_);
      }
      break;
    case Type::kList:
    case Type::kTuple:
      items_.swap(other.items_);
      break;
  }
}

bool Value::Truthy() const {
  switch (type_) {
    case Type::kNone:
      return false;
    case Type::kBool:
    case Type::kInt:
      return i_ != 0;
    case Type::kFloat:
      return f_ != 0.0;
    case Type::kStr:
      return !str().empty();
    case Type::kList:
    case Type::kTuple:
      return !items_.empty();
  }
  return false;
}

const char* Value::TypeName() const {
  switch (type_) {
    case Type::kNone:
      return "NoneType";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kStr:
      return "str";
    case Type::kList:
      return "list";
    case Type::kTuple:
      return "tuple";
  }
  return "?";
}

std::string FormatFloat(double d) {
  if (std::isnan(d)) {
    return "nan";
  }
  if (std::isinf(d)) {
    return d > 0 ? "inf" : "-inf";
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, res.ptr - buf);  // e.g. "-1.5e-05"
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) {
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') {
      digits.push_back(c);
    }
  }
  int exponent = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                  exponent);
  while (digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
  }
  int decpt = exponent + 1;  // digits[0..decpt) are before the decimal point
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits;
      out.append(static_cast<size_t>(decpt) - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, decpt);
      out += '.';
      out += digits.substr(decpt);
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  }
  return out;
}

namespace {

bool IsPrintable(char32_t cp) {
  if (cp < 0x20 || cp == 0x7F) {
    return false;
  }
  if (cp < 0x7F) {
    return true;
  }
  return !((cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 ||
           cp == 0xFEFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0xE000 && cp <= 0xF8FF));
}

}  // namespace

void AppendStrRepr(std::string_view s, std::string* out) {
  char quote = '\'';
  if (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) {
    quote = '"';
  }
  out->push_back(quote);
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t cp = DecodeCodePoint(s, &pos);
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      *out += "\\n";
    } else if (cp == '\r') {
      *out += "\\r";
    } else if (cp == '\t') {
      *out += "\\t";
    } else if (IsPrintable(cp)) {
      AppendCodePoint(cp, out);
    } else {
      char buf[16];
      if (cp < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
      } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
      }
      *out += buf;
    }
  }
  out->push_back(quote);
}

std::string Value::Repr() const {
  switch (type_) {
    case Type::kNone:
      return "None";
    case Type::kBool:
      return i_ ? "True" : "False";
    case Type::kInt:
      return std::to_string(i_);
    case Type::kFloat:
      return FormatFloat(f_);
    case Type::kStr: {
      std::string out;
      AppendStrRepr(str(), &out);
      return out;
    }
    case Type::kList:
    case Type::kTuple: {
      bool tuple = type_ == Type::kTuple;
      std::string out = tuple ? "(" : "[";
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i > 0) {
          out += ", ";
        }
        out += items_[i].Repr();
      }
      if (tuple && items_.size() == 1) {
        out += ",";
      }
      out += tuple ? ")" : "]";
      return out;
    }
  }
  return "?";
}

std::string Value::ToString() const {
  if (type_ == Type::kStr) {
    return std::string(str());
  }
  return Repr();
}

void Value::MakeOwned() {
  if (type_ == Type::kStr && borrowed_) {
    str_.assign(view_);
    borrowed_ = false;
  } else if (is_sequence()) {
    for (Value& item : items_) {
      item.MakeOwned();
    }
  }
}

bool Equal(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) {
      return a.int_value() == b.int_value();
    }
    return a.AsDouble() == b.AsDouble();
  }
  if (a.type() != b.type()) {
    return false;
  }
  switch (a.type()) {
    case T::kNone:
      return true;
    case T::kStr:
      return a.str() == b.str();
    case T::kList:
    case T::kTuple: {
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) {
        return false;
      }
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i])) {
          return false;
        }
      }
      return true;
    }
    default:
      return false;
  }
}

namespace {

template <typename T>
bool Apply(CompareOp op, const T& a, const T& b) {
  switch (op) {
    case CompareOp::kLt:
      return a < b;
    case CompareOp::kLe:
      return a <= b;
    case CompareOp::kGt:
      return a > b;
    case CompareOp::kGe:
      return a >= b;
  }
  return false;
}

}  // namespace

bool Ordered(CompareOp op, const Value& a, const Value& b, bool* result) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) {
      *result = Apply(op, a.int_value(), b.int_value());
    } else {
      *result = Apply(op, a.AsDouble(), b.AsDouble());
    }
    return true;
  }
  if (a.is_str() && b.is_str()) {
    // UTF-8 byte order is code point order, which is how Python orders str.
    *result = Apply(op, a.str(), b.str());
    return true;
  }
  if (a.is_sequence() && a.type() == b.type()) {
    const auto& x = a.items();
    const auto& y = b.items();
    size_t n = std::min(x.size(), y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!Equal(x[i], y[i])) {
        return Ordered(op, x[i], y[i], result);
      }
    }
    *result = Apply(op, x.size(), y.size());
    return true;
  }
  return false;
}

}  // namespace ferry::rules
