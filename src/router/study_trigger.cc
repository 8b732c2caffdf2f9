#include "router/study_trigger.h"

#include <fmt/format.h>

namespace ferry {
namespace {

struct Token {
  enum Kind { kString, kAnd, kOr, kOpen, kClose, kEnd } kind;
  std::string text;
  size_t column;  // 1-based
};

Result<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    size_t col = i + 1;
    if (c == '\'' || c == '"') {
      size_t end = s.find(c, i + 1);
      if (end == std::string_view::npos) {
        return Status::InvalidArgument(fmt::format("column {}: unterminated string", col));
      }
      out.push_back({Token::kString, std::string(s.substr(i + 1, end - i - 1)), col});
      i = end + 1;
    } else if (c == '(' || c == ')') {
      out.push_back({c == '(' ? Token::kOpen : Token::kClose, "", col});
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      size_t end = i;
      while (end < s.size() && std::isalpha(static_cast<unsigned char>(s[end]))) {
        ++end;
      }
      std::string word(s.substr(i, end - i));
      if (word == "and") {
        out.push_back({Token::kAnd, word, col});
      } else if (word == "or") {
        out.push_back({Token::kOr, word, col});
      } else {
        return Status::InvalidArgument(fmt::format(
            "column {}: \"{}\" is not allowed; write quoted parts of series descriptions "
            "combined with and, or and parentheses",
            col, word));
      }
      i = end;
    } else {
      return Status::InvalidArgument(fmt::format("column {}: unexpected '{}'", col, c));
    }
  }
  out.push_back({Token::kEnd, "", s.size() + 1});
  return out;
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  template <typename Emit>
  Status Expr(Emit& emit) {
    FERRY_RETURN_IF_ERROR(Term(emit));
    while (t_[pos_].kind == Token::kOr) {
      ++pos_;
      FERRY_RETURN_IF_ERROR(Term(emit));
      emit(2);
    }
    return Status::Ok();
  }
  template <typename Emit>
  Status Term(Emit& emit) {
    FERRY_RETURN_IF_ERROR(Factor(emit));
    while (t_[pos_].kind == Token::kAnd) {
      ++pos_;
      FERRY_RETURN_IF_ERROR(Factor(emit));
      emit(1);
    }
    return Status::Ok();
  }
  template <typename Emit>
  Status Factor(Emit& emit) {
    const Token& tok = t_[pos_];
    if (tok.kind == Token::kString) {
      ++pos_;
      emit(0, tok.text);
      return Status::Ok();
    }
    if (tok.kind == Token::kOpen) {
      ++pos_;
      FERRY_RETURN_IF_ERROR(Expr(emit));
      if (t_[pos_].kind != Token::kClose) {
        return Status::InvalidArgument(fmt::format("column {}: expected ')'", t_[pos_].column));
      }
      ++pos_;
      return Status::Ok();
    }
    return Status::InvalidArgument(
        fmt::format("column {}: expected a quoted series description or '('", tok.column));
  }
  bool AtEnd() const { return t_[pos_].kind == Token::kEnd; }
  size_t Column() const { return t_[pos_].column; }

 private:
  const std::vector<Token>& t_;
  size_t pos_ = 0;
};

}  // namespace

Result<StudyTrigger> StudyTrigger::Parse(std::string_view text) {
  FERRY_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
  StudyTrigger trigger;
  auto emit = [&](int kind, std::string literal = "") {
    trigger.program_.push_back({kind == 0 ? Op::kLiteral : kind == 1 ? Op::kAnd : Op::kOr,
                                std::move(literal)});
  };
  Parser parser(tokens);
  FERRY_RETURN_IF_ERROR(parser.Expr(emit));
  if (!parser.AtEnd()) {
    return Status::InvalidArgument(
        fmt::format("column {}: expected 'and', 'or' or the end", parser.Column()));
  }
  return trigger;
}

bool StudyTrigger::Satisfied(const std::vector<std::string>& descriptions) const {
  std::vector<bool> stack;
  for (const Op& op : program_) {
    if (op.kind == Op::kLiteral) {
      bool found = false;
      for (const auto& d : descriptions) {
        found |= d.find(op.text) != std::string::npos;
      }
      stack.push_back(found);
      continue;
    }
    bool b = stack.back();
    stack.pop_back();
    bool a = stack.back();
    stack.back() = op.kind == Op::kAnd ? (a && b) : (a || b);
  }
  return !stack.empty() && stack.back();
}

}  // namespace ferry
