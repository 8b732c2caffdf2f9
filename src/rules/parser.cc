#include "rules/parser.h"

#include <algorithm>
#include <array>
#include <utility>

#include "rules/lexer.h"
#include "rules/text.h"

namespace ferry::rules {
namespace {

// One parameter of a built-in function or string method.
struct Param {
  std::string_view keyword;  // "" if it cannot be given by keyword
  bool positional;           // may be given by position
};

struct CallSpec {
  std::string_view name;
  int id;         // Builtin or Method
  int required;   // leading parameters that must be given
  bool variadic;  // min()/max(): any number of positional arguments
  std::vector<Param> params;
  std::string_view unsupported;  // a keyword Python knows but rules do not support
};

const std::vector<CallSpec>& Functions() {
  static const std::vector<CallSpec> specs = {
      {"bool", static_cast<int>(Builtin::kBool), 0, false, {{"", true}}, ""},
      {"int", static_cast<int>(Builtin::kInt), 0, false, {{"", true}, {"base", true}}, ""},
      {"float", static_cast<int>(Builtin::kFloat), 0, false, {{"", true}}, ""},
      {"str", static_cast<int>(Builtin::kStr), 0, false, {{"object", true}}, "encoding"},
      {"len", static_cast<int>(Builtin::kLen), 1, false, {{"", true}}, ""},
      {"min", static_cast<int>(Builtin::kMin), 1, true, {}, "key"},
      {"max", static_cast<int>(Builtin::kMax), 1, true, {}, "key"},
      {"abs", static_cast<int>(Builtin::kAbs), 1, false, {{"", true}}, ""},
      {"round",
       static_cast<int>(Builtin::kRound),
       1,
       false,
       {{"number", true}, {"ndigits", true}},
       ""},
      {"sum", static_cast<int>(Builtin::kSum), 1, false, {{"", true}, {"start", true}}, ""},
      {"any", static_cast<int>(Builtin::kAny), 1, false, {{"", true}}, ""},
      {"all", static_cast<int>(Builtin::kAll), 1, false, {{"", true}}, ""},
      {"sorted",
       static_cast<int>(Builtin::kSorted),
       1,
       false,
       {{"", true}, {"reverse", false}},
       "key"},
      {"pow",
       static_cast<int>(Builtin::kPow),
       2,
       false,
       {{"base", true}, {"exp", true}, {"mod", true}},
       ""},
      {"chr", static_cast<int>(Builtin::kChr), 1, false, {{"", true}}, ""},
      {"ord", static_cast<int>(Builtin::kOrd), 1, false, {{"", true}}, ""},
      {"list", static_cast<int>(Builtin::kList), 0, false, {{"", true}}, ""},
      {"tuple", static_cast<int>(Builtin::kTuple), 0, false, {{"", true}}, ""},
      {"matches", static_cast<int>(Builtin::kMatches), 2, false, {{"", true}, {"", true}}, ""},
  };
  return specs;
}

const std::vector<CallSpec>& Methods() {
  static const std::vector<CallSpec> specs = {
      {"lower", static_cast<int>(Method::kLower), 0, false, {}, ""},
      {"upper", static_cast<int>(Method::kUpper), 0, false, {}, ""},
      {"strip", static_cast<int>(Method::kStrip), 0, false, {{"", true}}, ""},
      {"lstrip", static_cast<int>(Method::kLstrip), 0, false, {{"", true}}, ""},
      {"rstrip", static_cast<int>(Method::kRstrip), 0, false, {{"", true}}, ""},
      {"startswith",
       static_cast<int>(Method::kStartswith),
       1,
       false,
       {{"", true}, {"", true}, {"", true}},
       ""},
      {"endswith",
       static_cast<int>(Method::kEndswith),
       1,
       false,
       {{"", true}, {"", true}, {"", true}},
       ""},
      {"split",
       static_cast<int>(Method::kSplit),
       0,
       false,
       {{"sep", true}, {"maxsplit", true}},
       ""},
      {"replace",
       static_cast<int>(Method::kReplace),
       2,
       false,
       {{"", true}, {"", true}, {"count", true}},
       ""},
      {"find", static_cast<int>(Method::kFind), 1, false, {{"", true}, {"", true}, {"", true}}, ""},
      {"count",
       static_cast<int>(Method::kCount),
       1,
       false,
       {{"", true}, {"", true}, {"", true}},
       ""},
      {"isdigit", static_cast<int>(Method::kIsdigit), 0, false, {}, ""},
      {"isalpha", static_cast<int>(Method::kIsalpha), 0, false, {}, ""},
      {"isalnum", static_cast<int>(Method::kIsalnum), 0, false, {}, ""},
      {"title", static_cast<int>(Method::kTitle), 0, false, {}, ""},
      {"capitalize", static_cast<int>(Method::kCapitalize), 0, false, {}, ""},
      {"zfill", static_cast<int>(Method::kZfill), 1, false, {{"", true}}, ""},
  };
  return specs;
}

const CallSpec* FindSpec(const std::vector<CallSpec>& specs, std::string_view name) {
  for (const CallSpec& s : specs) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

// Python keywords that cannot appear in an expression, with the reason to give.
const char* KeywordReason(std::string_view word) {
  if (word == "if" || word == "else") {
    return "conditional expressions (a if b else c) are not supported in rules";
  }
  if (word == "for" || word == "async") {
    return "comprehensions and generator expressions are not supported in rules";
  }
  if (word == "lambda") {
    return "lambda is not supported in rules";
  }
  if (word == "import" || word == "from") {
    return "import is not supported in rules";
  }
  static constexpr std::array<std::string_view, 18> kStatements = {
      "def",      "class",  "del",   "pass",  "return",   "while", "with",  "try",  "global",
      "nonlocal", "assert", "raise", "break", "continue", "yield", "await", "elif", "except"};
  for (std::string_view k : kStatements) {
    if (word == k) {
      return "statements are not allowed: a rule is one expression";
    }
  }
  if (word == "finally" || word == "as") {
    return "statements are not allowed: a rule is one expression";
  }
  return nullptr;
}

bool IsAugmentedAssign(std::string_view op) {
  return op == "+=" || op == "-=" || op == "*=" || op == "/=" || op == "//=" || op == "%=" ||
         op == "**=" || op == "&=" || op == "|=" || op == "^=" || op == ">>=" || op == "<<=";
}

std::string Arguments(size_t n) {
  if (n == 0) {
    return "no arguments";
  }
  if (n == 1) {
    return "one argument";
  }
  return std::to_string(n) + " arguments";
}

// Python's wording: "len() takes exactly one argument (2 given)".
std::string ArityMessage(const std::string& fname, int required, size_t max_positional,
                         size_t given) {
  std::string what;
  if (static_cast<size_t>(required) == max_positional) {
    what = (required == 0 ? "" : "exactly ") + Arguments(max_positional);
  } else if (given > max_positional) {
    what = "at most " + Arguments(max_positional);
  } else {
    what = "at least " + Arguments(static_cast<size_t>(required));
  }
  return fname + " takes " + what + " (" + std::to_string(given) + " given)";
}

std::unique_ptr<Node> MakeNode(NodeKind kind, std::uint32_t offset) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  n->offset = offset;
  return n;
}

class Parser {
 public:
  Parser(std::string_view rule, std::vector<Token> tokens)
      : rule_(rule), tokens_(std::move(tokens)) {}

  Result<std::unique_ptr<Node>> Run() {
    if (Peek().kind == TokenKind::kEnd) {
      return Status::InvalidArgument(SyntaxErrorMessage(rule_, 0, "the rule is empty"));
    }
    // Keywords that can never be part of a rule get their own message before any other error
    // (in "[a for a in b]" the comprehension is the problem, not the unknown name "a").
    for (const Token& t : tokens_) {
      if (t.kind == TokenKind::kName) {
        if (const char* reason = KeywordReason(t.text)) {
          return Status::InvalidArgument(SyntaxErrorMessage(rule_, t.offset, reason));
        }
      }
    }
    std::unique_ptr<Node> root = ParseExprList(/*allow_empty=*/false);
    if (root && Peek().kind != TokenKind::kEnd) {
      Unexpected(Peek(), "end of rule");
      root.reset();
    }
    if (root) {
      CheckTagsUse(*root, false);
    }
    if (!error_.ok()) {
      return error_;
    }
    return root;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Advance() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool IsOp(const Token& t, std::string_view op) const {
    return t.kind == TokenKind::kOp && t.text == op;
  }
  bool IsWord(const Token& t, std::string_view w) const {
    return t.kind == TokenKind::kName && t.text == w;
  }
  bool AcceptOp(std::string_view op) {
    if (IsOp(Peek(), op)) {
      Advance();
      return true;
    }
    return false;
  }

  // Rules are short; a limit on nesting keeps the parser's and the evaluator's recursion (and
  // the tree's destruction) far from the stack's end whatever the rule says.
  static constexpr int kMaxNesting = 200;  // two per level of brackets
  static constexpr std::uint16_t kMaxHeight = 400;

  // Sets the height of a finished node and refuses trees that are too deep.
  std::unique_ptr<Node> Checked(std::unique_ptr<Node> node) {
    if (!node) {
      return nullptr;
    }
    std::uint16_t height = 0;
    for (const auto& kid : node->kids) {
      if (kid) {
        height = std::max(height, kid->height);
      }
    }
    node->height = static_cast<std::uint16_t>(height + 1);
    if (node->height > kMaxHeight) {
      return Fail(node->offset, "the rule is nested too deeply");
    }
    return node;
  }

  // Counts nesting while a parse function recurses.
  class Nesting {
   public:
    explicit Nesting(int* depth) : depth_(depth) { ++*depth_; }
    ~Nesting() { --*depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    int* depth_;
  };
  bool TooDeep() {
    if (depth_ > kMaxNesting) {
      Fail(Peek().offset, "the rule is nested too deeply");
      return true;
    }
    return false;
  }

  std::nullptr_t Fail(std::size_t offset, std::string_view reason) {
    if (error_.ok()) {
      error_ = Status::InvalidArgument(SyntaxErrorMessage(rule_, offset, reason));
    }
    return nullptr;
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kEnd:
        return "the end of the rule";
      case TokenKind::kName:
        return "'" + t.text + "'";
      case TokenKind::kInt:
      case TokenKind::kFloat:
        return "a number";
      case TokenKind::kString:
        return "a string";
      case TokenKind::kTagRef:
        return "@" + t.text + "@";
      case TokenKind::kOp:
        return "'" + t.text + "'";
    }
    return "?";
  }

  std::nullptr_t Unexpected(const Token& t, std::string_view expected) {
    if (t.kind == TokenKind::kName) {
      if (const char* reason = KeywordReason(t.text)) {
        return Fail(t.offset, reason);
      }
    }
    if (IsOp(t, "=")) {
      return Fail(t.offset, "assignment is not supported in rules (use == to compare)");
    }
    if (t.kind == TokenKind::kOp && IsAugmentedAssign(t.text)) {
      return Fail(t.offset, "assignment is not supported in rules");
    }
    return Fail(t.offset, "expected " + std::string(expected) + ", found " + Describe(t));
  }

  // expr_list: test (',' test)* [','] -- a tuple if there is a comma.
  std::unique_ptr<Node> ParseExprList(bool allow_empty) {
    std::uint32_t offset = Peek().offset;
    std::unique_ptr<Node> first = ParseTest();
    if (!first) {
      return nullptr;
    }
    if (!IsOp(Peek(), ",")) {
      return first;
    }
    auto tuple = MakeNode(NodeKind::kTuple, offset);
    tuple->kids.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (!StartsExpression(Peek())) {
        break;
      }
      std::unique_ptr<Node> next = ParseTest();
      if (!next) {
        return nullptr;
      }
      tuple->kids.push_back(std::move(next));
    }
    return Checked(std::move(tuple));
  }

  bool StartsExpression(const Token& t) const {
    switch (t.kind) {
      case TokenKind::kEnd:
        return false;
      case TokenKind::kOp:
        return t.text == "(" || t.text == "[" || t.text == "-" || t.text == "+" || t.text == "~" ||
               t.text == "*" || t.text == "...";
      case TokenKind::kName:
        return !(t.text == "if" || t.text == "else" || t.text == "for" || t.text == "in" ||
                 t.text == "and" || t.text == "or" || t.text == "is");
      default:
        return true;
    }
  }

  // test: or_test -- a following 'if' would make a conditional expression, which is refused.
  std::unique_ptr<Node> ParseTest() {
    std::unique_ptr<Node> n = ParseOr();
    if (!n) {
      return nullptr;
    }
    if (IsWord(Peek(), "if")) {
      return Fail(Peek().offset, KeywordReason("if"));
    }
    if (IsOp(Peek(), ":=")) {
      return Fail(Peek().offset, "assignment expressions (:=) are not supported in rules");
    }
    return n;
  }

  std::unique_ptr<Node> ParseBool(bool is_or) {
    std::uint32_t offset = Peek().offset;
    std::unique_ptr<Node> first = is_or ? ParseBool(false) : ParseNot();
    if (!first) {
      return nullptr;
    }
    std::string_view word = is_or ? "or" : "and";
    if (!IsWord(Peek(), word)) {
      return first;
    }
    auto node = MakeNode(is_or ? NodeKind::kOr : NodeKind::kAnd, offset);
    node->kids.push_back(std::move(first));
    while (IsWord(Peek(), word)) {
      Advance();
      std::unique_ptr<Node> next = is_or ? ParseBool(false) : ParseNot();
      if (!next) {
        return nullptr;
      }
      node->kids.push_back(std::move(next));
    }
    return Checked(std::move(node));
  }
  std::unique_ptr<Node> ParseOr() { return ParseBool(true); }

  std::unique_ptr<Node> ParseNot() {
    Nesting nesting(&depth_);
    if (TooDeep()) {
      return nullptr;
    }
    if (IsWord(Peek(), "not")) {
      std::uint32_t offset = Advance().offset;
      std::unique_ptr<Node> operand = ParseNot();
      if (!operand) {
        return nullptr;
      }
      auto node = MakeNode(NodeKind::kNot, offset);
      node->kids.push_back(std::move(operand));
      return Checked(std::move(node));
    }
    return ParseComparison();
  }

  bool PeekCompareOp(CmpOp* op, int* length) const {
    const Token& t = Peek();
    *length = 1;
    if (t.kind == TokenKind::kOp) {
      if (t.text == "==") {
        *op = CmpOp::kEq;
      } else if (t.text == "!=") {
        *op = CmpOp::kNe;
      } else if (t.text == "<") {
        *op = CmpOp::kLt;
      } else if (t.text == "<=") {
        *op = CmpOp::kLe;
      } else if (t.text == ">") {
        *op = CmpOp::kGt;
      } else if (t.text == ">=") {
        *op = CmpOp::kGe;
      } else {
        return false;
      }
      return true;
    }
    if (IsWord(t, "in")) {
      *op = CmpOp::kIn;
      return true;
    }
    if (IsWord(t, "not") && IsWord(Peek(1), "in")) {
      *op = CmpOp::kNotIn;
      *length = 2;
      return true;
    }
    if (IsWord(t, "is")) {
      if (IsWord(Peek(1), "not")) {
        *op = CmpOp::kIsNot;
        *length = 2;
      } else {
        *op = CmpOp::kIs;
      }
      return true;
    }
    return false;
  }

  std::unique_ptr<Node> ParseComparison() {
    std::uint32_t offset = Peek().offset;
    std::unique_ptr<Node> first = ParseBinary(0);
    if (!first) {
      return nullptr;
    }
    CmpOp op;
    int length;
    if (!PeekCompareOp(&op, &length)) {
      return first;
    }
    auto node = MakeNode(NodeKind::kCompare, offset);
    node->kids.push_back(std::move(first));
    while (PeekCompareOp(&op, &length)) {
      for (int i = 0; i < length; ++i) {
        Advance();
      }
      std::unique_ptr<Node> next = ParseBinary(0);
      if (!next) {
        return nullptr;
      }
      node->cmp_ops.push_back(op);
      node->kids.push_back(std::move(next));
    }
    return Checked(std::move(node));
  }

  // Binary operators by precedence level, lowest first: | ^ & (<< >>) (+ -) (* / // %).
  bool BinaryOpAt(int level, const Token& t, BinaryOp* op) const {
    if (t.kind != TokenKind::kOp) {
      return false;
    }
    const std::string& s = t.text;
    switch (level) {
      case 0:
        *op = BinaryOp::kBitOr;
        return s == "|";
      case 1:
        *op = BinaryOp::kBitXor;
        return s == "^";
      case 2:
        *op = BinaryOp::kBitAnd;
        return s == "&";
      case 3:
        if (s == "<<") {
          *op = BinaryOp::kShl;
          return true;
        }
        *op = BinaryOp::kShr;
        return s == ">>";
      case 4:
        if (s == "+") {
          *op = BinaryOp::kAdd;
          return true;
        }
        *op = BinaryOp::kSub;
        return s == "-";
      case 5:
        if (s == "*") {
          *op = BinaryOp::kMul;
        } else if (s == "/") {
          *op = BinaryOp::kDiv;
        } else if (s == "//") {
          *op = BinaryOp::kFloorDiv;
        } else if (s == "%") {
          *op = BinaryOp::kMod;
        } else {
          return false;
        }
        return true;
      default:
        return false;
    }
  }

  std::unique_ptr<Node> ParseBinary(int level) {
    if (level > 5) {
      return ParseFactor();
    }
    std::unique_ptr<Node> left = ParseBinary(level + 1);
    if (!left) {
      return nullptr;
    }
    BinaryOp op;
    while (BinaryOpAt(level, Peek(), &op)) {
      std::uint32_t offset = Advance().offset;
      std::unique_ptr<Node> right = ParseBinary(level + 1);
      if (!right) {
        return nullptr;
      }
      auto node = MakeNode(NodeKind::kBinary, offset);
      node->binary = op;
      node->kids.push_back(std::move(left));
      node->kids.push_back(std::move(right));
      left = Checked(std::move(node));
      if (!left) {
        return nullptr;
      }
    }
    return left;
  }

  std::unique_ptr<Node> ParseFactor() {
    Nesting nesting(&depth_);
    if (TooDeep()) {
      return nullptr;
    }
    const Token& t = Peek();
    if (IsOp(t, "-") || IsOp(t, "+") || IsOp(t, "~")) {
      UnaryOp op = IsOp(t, "-") ? UnaryOp::kNeg : (IsOp(t, "+") ? UnaryOp::kPos : UnaryOp::kInvert);
      std::uint32_t offset = Advance().offset;
      std::unique_ptr<Node> operand = ParseFactor();
      if (!operand) {
        return nullptr;
      }
      auto node = MakeNode(NodeKind::kUnary, offset);
      node->unary = op;
      node->kids.push_back(std::move(operand));
      return Checked(std::move(node));
    }
    return ParsePower();
  }

  std::unique_ptr<Node> ParsePower() {
    std::unique_ptr<Node> base = ParsePrimary();
    if (!base) {
      return nullptr;
    }
    if (IsOp(Peek(), "**")) {
      std::uint32_t offset = Advance().offset;
      std::unique_ptr<Node> exponent = ParseFactor();
      if (!exponent) {
        return nullptr;
      }
      auto node = MakeNode(NodeKind::kBinary, offset);
      node->binary = BinaryOp::kPow;
      node->kids.push_back(std::move(base));
      node->kids.push_back(std::move(exponent));
      return Checked(std::move(node));
    }
    return base;
  }

  std::unique_ptr<Node> ParsePrimary() {
    std::unique_ptr<Node> node = ParseAtom();
    while (node) {
      const Token& t = Peek();
      if (IsOp(t, ".")) {
        node = ParseAttribute(std::move(node));
      } else if (IsOp(t, "[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp(t, "(")) {
        return Fail(t.offset, "only the built-in functions and string methods can be called");
      } else {
        break;
      }
    }
    return Checked(std::move(node));
  }

  std::unique_ptr<Node> ParseAttribute(std::unique_ptr<Node> receiver) {
    std::uint32_t dot = Advance().offset;
    const Token& name = Peek();
    if (name.kind != TokenKind::kName) {
      return Unexpected(name, "a name after '.'");
    }
    Advance();
    if (receiver->kind == NodeKind::kTagsObject) {
      if (!name.text.empty() && name.text[0] == '_') {
        return Fail(name.offset, "tags." + name.text +
                                     " is not allowed: names starting with '_' are not tag names");
      }
      if (IsOp(Peek(), "(")) {
        return Fail(name.offset, "tags." + name.text + " is a tag value and cannot be called");
      }
      auto node = MakeNode(NodeKind::kTagAttr, receiver->offset);
      node->name = name.text;
      node->lower_name = ToLower(name.text);
      return Checked(std::move(node));
    }
    if (receiver->kind == NodeKind::kConst && !receiver->value.is_str()) {
      return Fail(dot,
                  std::string("attribute access is only allowed on tags and strings, not on ") +
                      receiver->value.TypeName() + " values");
    }
    const CallSpec* spec = FindSpec(Methods(), name.text);
    if (spec == nullptr) {
      return Fail(name.offset, "'" + name.text +
                                   "' is not a supported string method (attribute access is "
                                   "only allowed for tags.Name and string methods)");
    }
    if (!IsOp(Peek(), "(")) {
      return Fail(name.offset,
                  "string method '" + name.text + "' must be called, as in ." + name.text + "()");
    }
    auto node = MakeNode(NodeKind::kMethod, receiver->offset);
    node->method = static_cast<Method>(spec->id);
    node->name = name.text;
    node->kids.push_back(std::move(receiver));
    if (!ParseCallArguments(*spec, node.get(), name.offset)) {
      return nullptr;
    }
    return Checked(std::move(node));
  }

  std::unique_ptr<Node> ParseSubscript(std::unique_ptr<Node> receiver) {
    std::uint32_t bracket = Advance().offset;
    std::unique_ptr<Node> parts[3];
    bool is_slice = false;
    int part = 0;
    while (true) {
      const Token& t = Peek();
      if (IsOp(t, "]")) {
        Advance();
        break;
      }
      if (IsOp(t, ":")) {
        Advance();
        is_slice = true;
        ++part;
        if (part > 2) {
          return Fail(t.offset, "a slice has at most two ':'");
        }
        continue;
      }
      if (parts[part]) {
        return Unexpected(t, is_slice ? "':' or ']'" : "']'");
      }
      parts[part] = is_slice ? ParseTest() : ParseExprList(false);
      if (!parts[part]) {
        return nullptr;
      }
    }
    if (!is_slice && !parts[0]) {
      return Fail(bracket, "an index is missing between '[' and ']'");
    }
    if (receiver->kind == NodeKind::kTagsObject) {
      if (is_slice) {
        return Fail(bracket, "tags cannot be sliced; use tags['Name']");
      }
      auto node = MakeNode(NodeKind::kTagItem, receiver->offset);
      node->kids.push_back(std::move(parts[0]));
      return Checked(std::move(node));
    }
    auto node = MakeNode(is_slice ? NodeKind::kSlice : NodeKind::kIndex, bracket);
    node->kids.push_back(std::move(receiver));
    node->kids.push_back(std::move(parts[0]));
    if (is_slice) {
      node->kids.push_back(std::move(parts[1]));
      node->kids.push_back(std::move(parts[2]));
    }
    return Checked(std::move(node));
  }

  // Parses "(args)" and places the arguments of `node` in the parameter slots of `spec`.
  bool ParseCallArguments(const CallSpec& spec, Node* node, std::uint32_t name_offset) {
    Advance();  // '('
    std::string fname = std::string(spec.name) + "()";
    std::vector<std::unique_ptr<Node>> positional;
    std::vector<std::pair<std::string, std::unique_ptr<Node>>> keywords;
    std::vector<std::uint32_t> keyword_offsets;
    while (!IsOp(Peek(), ")")) {
      const Token& t = Peek();
      if (IsOp(t, "*") || IsOp(t, "**")) {
        Fail(t.offset, "argument unpacking (*args, **kwargs) is not supported in rules");
        return false;
      }
      if (t.kind == TokenKind::kName && IsOp(Peek(1), "=")) {
        std::string keyword = t.text;
        std::uint32_t offset = t.offset;
        if (!spec.unsupported.empty() && keyword == spec.unsupported) {
          Fail(offset,
               fname + ": the keyword argument '" + keyword + "' is not supported in rules");
          return false;
        }
        Advance();
        Advance();
        std::unique_ptr<Node> value = ParseTest();
        if (!value) {
          return false;
        }
        keywords.emplace_back(std::move(keyword), std::move(value));
        keyword_offsets.push_back(offset);
      } else {
        if (!keywords.empty()) {
          Fail(t.offset, "positional argument follows keyword argument");
          return false;
        }
        std::unique_ptr<Node> value = ParseTest();
        if (!value) {
          return false;
        }
        positional.push_back(std::move(value));
      }
      if (IsWord(Peek(), "for")) {
        Fail(Peek().offset, KeywordReason("for"));
        return false;
      }
      if (!AcceptOp(",")) {
        if (!IsOp(Peek(), ")")) {
          Unexpected(Peek(), "',' or ')'");
          return false;
        }
      }
    }
    Advance();  // ')'
    if (spec.variadic) {
      if (!keywords.empty()) {
        Fail(keyword_offsets[0],
             fname + " got an unexpected keyword argument '" + keywords[0].first + "'");
        return false;
      }
      if (positional.empty()) {
        Fail(name_offset, fname + " expected at least 1 argument, got 0");
        return false;
      }
      for (auto& p : positional) {
        node->kids.push_back(std::move(p));
      }
      return true;
    }
    size_t max_positional = 0;
    while (max_positional < spec.params.size() && spec.params[max_positional].positional) {
      ++max_positional;
    }
    if (positional.size() > max_positional) {
      Fail(name_offset, ArityMessage(fname, spec.required, max_positional, positional.size()));
      return false;
    }
    std::vector<std::unique_ptr<Node>> slots(spec.params.size());
    for (size_t i = 0; i < positional.size(); ++i) {
      slots[i] = std::move(positional[i]);
    }
    for (size_t k = 0; k < keywords.size(); ++k) {
      size_t slot = spec.params.size();
      for (size_t i = 0; i < spec.params.size(); ++i) {
        if (!spec.params[i].keyword.empty() && spec.params[i].keyword == keywords[k].first) {
          slot = i;
        }
      }
      if (slot == spec.params.size()) {
        Fail(keyword_offsets[k],
             fname + " got an unexpected keyword argument '" + keywords[k].first + "'");
        return false;
      }
      if (slots[slot]) {
        Fail(keyword_offsets[k],
             fname + " got multiple values for argument '" + keywords[k].first + "'");
        return false;
      }
      slots[slot] = std::move(keywords[k].second);
    }
    for (int i = 0; i < spec.required; ++i) {
      if (!slots[static_cast<size_t>(i)]) {
        Fail(name_offset, ArityMessage(fname, spec.required, max_positional, positional.size()));
        return false;
      }
    }
    for (auto& s : slots) {
      node->kids.push_back(std::move(s));
    }
    return true;
  }

  std::unique_ptr<Node> ParseAtom() {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt: {
        auto node = MakeNode(NodeKind::kConst, t.offset);
        node->value.SetInt(t.int_value);
        Advance();
        return Checked(std::move(node));
      }
      case TokenKind::kFloat: {
        auto node = MakeNode(NodeKind::kConst, t.offset);
        node->value.SetFloat(t.float_value);
        Advance();
        return Checked(std::move(node));
      }
      case TokenKind::kString: {
        auto node = MakeNode(NodeKind::kConst, t.offset);
        std::string s;
        while (Peek().kind == TokenKind::kString) {
          s += Advance().text;  // adjacent literals are joined, as in Python
        }
        node->value.SetStr(std::move(s));
        return Checked(std::move(node));
      }
      case TokenKind::kTagRef: {
        auto node = MakeNode(NodeKind::kTagRef, t.offset);
        node->name = t.text;
        Advance();
        return Checked(std::move(node));
      }
      case TokenKind::kName:
        return ParseName();
      case TokenKind::kOp:
        if (t.text == "(") {
          return ParseParenthesized();
        }
        if (t.text == "[") {
          return ParseListDisplay();
        }
        if (t.text == "*") {
          return Fail(t.offset, "argument unpacking (*x) is not supported in rules");
        }
        if (t.text == "...") {
          return Fail(t.offset, "Ellipsis (...) is not supported in rules");
        }
        return Unexpected(t, "an expression");
      case TokenKind::kEnd:
        return Unexpected(t, "an expression");
    }
    return Unexpected(t, "an expression");
  }

  std::unique_ptr<Node> ParseName() {
    const Token& t = Peek();
    std::uint32_t offset = t.offset;
    const std::string& name = t.text;
    if (name == "True" || name == "False" || name == "None") {
      auto node = MakeNode(NodeKind::kConst, offset);
      if (name == "None") {
        node->value.SetNone();
      } else {
        node->value.SetBool(name == "True");
      }
      Advance();
      return Checked(std::move(node));
    }
    if (name == "tags") {
      Advance();
      return MakeNode(NodeKind::kTagsObject, offset);
    }
    if (const CallSpec* spec = FindSpec(Functions(), name)) {
      Advance();
      if (!IsOp(Peek(), "(")) {
        return Fail(offset, "'" + name + "' is a function: call it, as in " + name + "(...)");
      }
      auto node = MakeNode(NodeKind::kCall, offset);
      node->builtin = static_cast<Builtin>(spec->id);
      node->name = name;
      if (!ParseCallArguments(*spec, node.get(), offset)) {
        return nullptr;
      }
      return Checked(std::move(node));
    }
    if (const char* reason = KeywordReason(name)) {
      return Fail(offset, reason);
    }
    if (name == "and" || name == "or" || name == "not" || name == "in" || name == "is") {
      return Unexpected(t, "an expression");
    }
    return Fail(offset, "name '" + name +
                            "' is not defined (tags are written @Name@, tags.Name or "
                            "tags['Name']; text must be quoted)");
  }

  std::unique_ptr<Node> ParseParenthesized() {
    std::uint32_t offset = Advance().offset;
    if (AcceptOp(")")) {
      return MakeNode(NodeKind::kTuple, offset);
    }
    std::unique_ptr<Node> first = ParseTest();
    if (!first) {
      return nullptr;
    }
    if (IsWord(Peek(), "for")) {
      return Fail(Peek().offset, KeywordReason("for"));
    }
    if (AcceptOp(")")) {
      return first;
    }
    if (!IsOp(Peek(), ",")) {
      return Unexpected(Peek(), "')'");
    }
    auto tuple = MakeNode(NodeKind::kTuple, offset);
    tuple->kids.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsOp(Peek(), ")")) {
        break;
      }
      std::unique_ptr<Node> next = ParseTest();
      if (!next) {
        return nullptr;
      }
      tuple->kids.push_back(std::move(next));
    }
    if (!AcceptOp(")")) {
      return Unexpected(Peek(), "',' or ')'");
    }
    return Checked(std::move(tuple));
  }

  std::unique_ptr<Node> ParseListDisplay() {
    std::uint32_t offset = Advance().offset;
    auto list = MakeNode(NodeKind::kList, offset);
    while (!IsOp(Peek(), "]")) {
      std::unique_ptr<Node> item = ParseTest();
      if (!item) {
        return nullptr;
      }
      if (IsWord(Peek(), "for")) {
        return Fail(Peek().offset, KeywordReason("for"));
      }
      list->kids.push_back(std::move(item));
      if (!AcceptOp(",")) {
        if (!IsOp(Peek(), "]")) {
          return Unexpected(Peek(), "',' or ']'");
        }
      }
    }
    Advance();
    return Checked(std::move(list));
  }

  // `tags` alone is only meaningful in "'Name' in tags" (and "not in").
  void CheckTagsUse(const Node& node, bool allowed) {
    if (node.kind == NodeKind::kTagsObject && !allowed) {
      Fail(node.offset, "tags can only be used as tags.Name, tags['Name'] or 'Name' in tags");
      return;
    }
    for (size_t i = 0; i < node.kids.size(); ++i) {
      if (!node.kids[i]) {
        continue;
      }
      bool ok = node.kind == NodeKind::kCompare && i > 0 &&
                (node.cmp_ops[i - 1] == CmpOp::kIn || node.cmp_ops[i - 1] == CmpOp::kNotIn);
      CheckTagsUse(*node.kids[i], ok);
    }
  }

  std::string_view rule_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  Status error_;
};

}  // namespace

Result<std::unique_ptr<Node>> Parse(std::string_view rule) {
  auto tokens = Lex(rule);
  if (!tokens) {
    return tokens.error();
  }
  return Parser(rule, std::move(tokens).value()).Run();
}

}  // namespace ferry::rules
