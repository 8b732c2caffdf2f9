#include "rules/lexer.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "rules/text.h"

namespace ferry::rules {

void LineAndColumn(std::string_view rule, std::size_t offset, int* line, int* column) {
  *line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < rule.size(); ++i) {
    if (rule[i] == '\n') {
      ++*line;
      line_start = i + 1;
    }
  }
  std::string_view this_line = rule.substr(line_start);
  *column = static_cast<int>(CodePointIndexOfByte(this_line, offset - line_start)) + 1;
}

std::string SyntaxErrorMessage(std::string_view rule, std::size_t offset, std::string_view reason) {
  int line = 0;
  int column = 0;
  LineAndColumn(rule, offset, &line, &column);
  std::string out;
  if (rule.find('\n') != std::string_view::npos) {
    out = "line " + std::to_string(line) + ", ";
  }
  out += "column " + std::to_string(column) + ": ";
  out += reason;
  return out;
}

namespace {

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// Characters of a tag name between '@'s: DICOM keywords, mercure's extra keys and
// "gggg,eeee" keys of private and unknown elements.
bool IsTagNameChar(char c) { return IsIdentChar(c) || c == ',' || c == '-' || c == '.'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view rule) : s_(rule) {}

  Result<std::vector<Token>> Run() {
    while (true) {
      Status st = SkipSpace();
      if (!st.ok()) {
        return st;
      }
      if (pos_ >= s_.size()) {
        Token end;
        end.kind = TokenKind::kEnd;
        end.offset = static_cast<std::uint32_t>(pos_);
        tokens_.push_back(std::move(end));
        return std::move(tokens_);
      }
      st = Next();
      if (!st.ok()) {
        return st;
      }
    }
  }

 private:
  Status Error(size_t offset, std::string_view reason) const {
    return Status::InvalidArgument(SyntaxErrorMessage(s_, offset, reason));
  }

  // Whitespace, comments and backslash continuations. Python reads a rule as one logical line:
  // a line break is allowed inside brackets and at the end, not between two parts of a rule.
  Status SkipSpace() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\f' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') {
          ++pos_;
        }
      } else if (c == '\\' && pos_ + 1 < s_.size() &&
                 (s_[pos_ + 1] == '\n' || s_[pos_ + 1] == '\r')) {
        pos_ += 2;
        if (pos_ < s_.size() && s_[pos_ - 1] == '\r' && s_[pos_] == '\n') {
          ++pos_;
        }
      } else if (c == '\n') {
        if (depth_ == 0) {
          size_t at = pos_;
          ++pos_;
          // Only blank lines and comments may follow.
          while (pos_ < s_.size()) {
            char d = s_[pos_];
            if (d == ' ' || d == '\t' || d == '\f' || d == '\r' || d == '\n') {
              ++pos_;
            } else if (d == '#') {
              while (pos_ < s_.size() && s_[pos_] != '\n') {
                ++pos_;
              }
            } else {
              return Error(at,
                           "a rule is one expression: a line break is only allowed inside "
                           "brackets");
            }
          }
        } else {
          ++pos_;
        }
      } else {
        break;
      }
    }
    return Status::Ok();
  }

  void Push(TokenKind kind, size_t offset, std::string text) {
    Token t;
    t.kind = kind;
    t.offset = static_cast<std::uint32_t>(offset);
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  Status Next() {
    size_t start = pos_;
    char c = s_[pos_];
    if (IsIdentStart(c)) {
      while (pos_ < s_.size() && IsIdentChar(s_[pos_])) {
        ++pos_;
      }
      std::string_view word = s_.substr(start, pos_ - start);
      if (pos_ < s_.size() && (s_[pos_] == '\'' || s_[pos_] == '"') && word.size() <= 2) {
        return LexStringWithPrefix(start, word);
      }
      Push(TokenKind::kName, start, std::string(word));
      return Status::Ok();
    }
    if (IsDigit(c) || (c == '.' && pos_ + 1 < s_.size() && IsDigit(s_[pos_ + 1]))) {
      return LexNumber();
    }
    if (c == '\'' || c == '"') {
      return LexString(start, /*raw=*/false);
    }
    if (c == '@') {
      return LexTagRef();
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      size_t p = pos_;
      char32_t cp = DecodeCodePoint(s_, &p);
      std::string ch;
      AppendCodePoint(cp, &ch);
      return Error(start, "invalid character '" + ch + "' (text must be inside quotes)");
    }
    static const char* const kOps[] = {
        "**=", "//=", ">>=", "<<=", "...", "**", "//", "==", "!=", "<=", ">=", "<<",
        ">>",  ":=",  "->",  "+=",  "-=",  "*=", "/=", "%=", "&=", "|=", "^=", "(",
        ")",   "[",   "]",   "{",   "}",   ",",  ":",  ".",  "+",  "-",  "*",  "/",
        "%",   "<",   ">",   "=",   "|",   "&",  "^",  "~",  ";"};
    for (const char* op : kOps) {
      size_t n = std::strlen(op);
      if (s_.substr(pos_, n) == op) {
        std::string_view o(op, n);
        if (o == ":=") {
          return Error(start, "assignment expressions (:=) are not supported in rules");
        }
        if (o == "{" || o == "}") {
          return Error(start, "dicts and sets ({...}) are not supported in rules");
        }
        if (o == ";") {
          return Error(start, "a rule is one expression: ';' is not allowed");
        }
        if (o == "(" || o == "[") {
          ++depth_;
        } else if ((o == ")" || o == "]") && depth_ > 0) {
          --depth_;
        }
        pos_ += n;
        Push(TokenKind::kOp, start, std::string(o));
        return Status::Ok();
      }
    }
    if (c == '!') {
      return Error(start, "'!' is not an operator: use 'not' or '!='");
    }
    return Error(start, std::string("invalid character '") + c + "'");
  }

  Status LexTagRef() {
    size_t start = pos_;
    ++pos_;
    size_t name_start = pos_;
    while (pos_ < s_.size() && IsTagNameChar(s_[pos_])) {
      ++pos_;
    }
    if (pos_ == name_start) {
      if (pos_ < s_.size() && s_[pos_] == '@') {
        return Error(start, "empty tag reference '@@'");
      }
      return Error(start,
                   "'@' starts a tag reference such as @Modality@ (the matrix operator is not "
                   "supported)");
    }
    if (pos_ >= s_.size() || s_[pos_] != '@') {
      return Error(start, "unterminated tag reference '@" +
                              std::string(s_.substr(name_start, pos_ - name_start)) +
                              "': a tag name must be closed with '@'");
    }
    std::string name(s_.substr(name_start, pos_ - name_start));
    ++pos_;
    Push(TokenKind::kTagRef, start, std::move(name));
    return Status::Ok();
  }

  Status LexStringWithPrefix(size_t start, std::string_view prefix) {
    bool raw = false;
    for (char p : prefix) {
      char l = static_cast<char>(p | 0x20);
      if (l == 'f') {
        return Error(start, "f-strings are not supported in rules");
      }
      if (l == 'b') {
        return Error(start, "bytes literals are not supported in rules");
      }
      if (l == 'r') {
        raw = true;
      } else if (l != 'u' || prefix.size() != 1) {
        Push(TokenKind::kName, start, std::string(prefix));
        return Status::Ok();
      }
    }
    return LexString(start, raw);
  }

  Status LexString(size_t start, bool raw) {
    char quote = s_[pos_];
    bool triple = s_.substr(pos_, 3) == std::string(3, quote);
    pos_ += triple ? 3 : 1;
    std::string value;
    while (true) {
      if (pos_ >= s_.size()) {
        return Error(start, triple ? "unterminated triple-quoted string literal"
                                   : "unterminated string literal");
      }
      char c = s_[pos_];
      if (c == quote) {
        if (!triple) {
          ++pos_;
          break;
        }
        if (s_.substr(pos_, 3) == std::string(3, quote)) {
          pos_ += 3;
          break;
        }
        value.push_back(c);
        ++pos_;
        continue;
      }
      if (c == '\n' && !triple) {
        return Error(start, "unterminated string literal");
      }
      if (c != '\\') {
        value.push_back(c);
        ++pos_;
        continue;
      }
      // A backslash.
      if (pos_ + 1 >= s_.size()) {
        return Error(start, "unterminated string literal");
      }
      char e = s_[pos_ + 1];
      if (raw) {
        // In a raw string the backslash stays, but still keeps the next quote from ending it.
        value.push_back('\\');
        value.push_back(e);
        pos_ += 2;
        continue;
      }
      size_t esc = pos_;
      pos_ += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          int digits = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (int k = 0; k < digits; ++k) {
            int h = pos_ < s_.size() ? HexValue(s_[pos_]) : -1;
            if (h < 0) {
              return Error(esc, std::string("truncated \\") + e + " escape: it needs " +
                                    std::to_string(digits) + " hexadecimal digits");
            }
            cp = cp * 16 + static_cast<char32_t>(h);
            ++pos_;
          }
          if (cp > 0x10FFFF) {
            return Error(esc, "\\U escape beyond U+10FFFF");
          }
          AppendCodePoint(cp, &value);
          break;
        }
        case 'N':
          return Error(esc, "\\N{...} escapes are not supported in rules");
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(s_[pos_] - '0');
              ++pos_;
            }
            AppendCodePoint(cp, &value);
          } else {
            // Python keeps an unknown escape as it is ("\d" stays backslash-d).
            value.push_back('\\');
            pos_ = esc + 1;
          }
          break;
      }
    }
    Push(TokenKind::kString, start, std::move(value));
    return Status::Ok();
  }

  // Reads digits with single underscores between them; false if an underscore is misplaced.
  bool Digits(bool (*is_digit)(char), std::string* out) {
    bool last_underscore = false;
    bool any = false;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (is_digit(c)) {
        out->push_back(c);
        last_underscore = false;
        any = true;
      } else if (c == '_' && any && !last_underscore && pos_ + 1 < s_.size() &&
                 is_digit(s_[pos_ + 1])) {
        last_underscore = true;
      } else {
        break;
      }
      ++pos_;
    }
    return any;
  }

  Status LexNumber() {
    size_t start = pos_;
    auto finish_check = [&]() -> Status {
      if (pos_ < s_.size() && (s_[pos_] == 'j' || s_[pos_] == 'J')) {
        return Error(start, "complex numbers are not supported in rules");
      }
      if (pos_ < s_.size() && (IsIdentChar(s_[pos_]) || s_[pos_] == '_')) {
        return Error(start, "invalid number literal");
      }
      return Status::Ok();
    };
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && std::strchr("xXoObB", s_[pos_ + 1]) != nullptr) {
      char kind = static_cast<char>(s_[pos_ + 1] | 0x20);
      pos_ += 2;
      if (pos_ < s_.size() && s_[pos_] == '_') {
        ++pos_;
      }
      std::string digits;
      bool (*pred)(char) = kind == 'x'   ? +[](char c) { return HexValue(c) >= 0; }
                           : kind == 'o' ? +[](char c) { return c >= '0' && c <= '7'; }
                                         : +[](char c) { return c == '0' || c == '1'; };
      if (!Digits(pred, &digits)) {
        return Error(start, "invalid number literal");
      }
      FERRY_RETURN_IF_ERROR(finish_check());
      int base = kind == 'x' ? 16 : (kind == 'o' ? 8 : 2);
      std::uint64_t v = 0;
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
      if (res.ec != std::errc() || v > static_cast<std::uint64_t>(INT64_MAX)) {
        return Error(start, "integer literal too large for ferry's 64-bit integers");
      }
      Token t;
      t.kind = TokenKind::kInt;
      t.offset = static_cast<std::uint32_t>(start);
      t.int_value = static_cast<std::int64_t>(v);
      tokens_.push_back(std::move(t));
      return Status::Ok();
    }
    std::string text;
    bool is_float = false;
    auto is_dec = +[](char c) { return c >= '0' && c <= '9'; };
    if (s_[pos_] != '.') {
      Digits(is_dec, &text);
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      is_float = true;
      text.push_back('.');
      ++pos_;
      if (pos_ < s_.size() && IsDigit(s_[pos_])) {
        Digits(is_dec, &text);
      }
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t save = pos_;
      std::string exp = "e";
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
        exp.push_back(s_[pos_]);
        ++pos_;
      }
      if (pos_ < s_.size() && IsDigit(s_[pos_])) {
        Digits(is_dec, &exp);
        text += exp;
        is_float = true;
      } else {
        pos_ = save;
        return Error(start, "invalid number literal");
      }
    }
    FERRY_RETURN_IF_ERROR(finish_check());
    Token t;
    t.offset = static_cast<std::uint32_t>(start);
    if (is_float) {
      t.kind = TokenKind::kFloat;
      std::string_view v = text;
      if (!v.empty() && v[0] == '.') {
        text.insert(text.begin(), '0');
      }
      auto res = std::from_chars(text.data(), text.data() + text.size(), t.float_value);
      if (res.ec == std::errc::result_out_of_range) {
        // Python reads an overflowing literal as inf and an underflowing one as 0.0.
        t.float_value = text.find("e-") != std::string::npos ? 0.0 : HUGE_VAL;
      } else if (res.ec != std::errc()) {
        return Error(start, "invalid number literal");
      }
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
        return Error(start,
                     "leading zeros in decimal integer literals are not permitted (use 0o for "
                     "octal)");
      }
      t.kind = TokenKind::kInt;
      auto res = std::from_chars(text.data(), text.data() + text.size(), t.int_value);
      if (res.ec != std::errc()) {
        return Error(start, "integer literal too large for ferry's 64-bit integers");
      }
    }
    tokens_.push_back(std::move(t));
    return Status::Ok();
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> Lex(std::string_view rule) { return Lexer(rule).Run(); }

}  // namespace ferry::rules
