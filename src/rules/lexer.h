// Lexer of the rule language: Python's tokens for the expression subset, plus mercure's
// @Tag@ references.
//
// Internal to src/rules (parser.cc is its only user). Tokens keep the byte offset where they
// start so that errors can name the column. Python constructs that the language leaves out but
// that are recognisable from their tokens alone (f-strings, bytes literals, complex numbers,
// the walrus operator, braces) are reported here with a message that says so.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/status.h"

namespace ferry::rules {

enum class TokenKind : std::uint8_t {
  kEnd,     // end of the rule
  kName,    // identifier or keyword; text holds it
  kInt,     // int_value
  kFloat,   // float_value
  kString,  // text holds the decoded value (adjacent literals are not yet joined)
  kTagRef,  // @Tag@; text holds the tag name
  kOp,      // operator or delimiter; text holds it
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::uint32_t offset = 0;  // byte offset of the token's first character
  std::string text;
  std::int64_t int_value = 0;
  double float_value = 0;
};

// Splits `rule` into tokens ending with one kEnd token, or returns InvalidArgument with a
// message from SyntaxErrorMessage.
Result<std::vector<Token>> Lex(std::string_view rule);

// "column N: <reason>" (or "line L, column N: <reason>" for a rule of several lines), with N the
// 1-based position in code points of byte `offset` of `rule`.
std::string SyntaxErrorMessage(std::string_view rule, std::size_t offset, std::string_view reason);

// The 1-based line and column (in code points) of byte `offset`.
void LineAndColumn(std::string_view rule, std::size_t offset, int* line, int* column);

}  // namespace ferry::rules
