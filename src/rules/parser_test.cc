// Tests of the lexer and parser: tokens, precedence and the shape of the tree.
#include "rules/parser.h"

#include <gtest/gtest.h>

#include "rules/lexer.h"

namespace ferry::rules {
namespace {

// The tree as a compact S-expression, to compare shapes.
std::string Dump(const Node* n) {
  if (n == nullptr) {
    return "_";
  }
  std::string out;
  switch (n->kind) {
    case NodeKind::kConst:
      return n->value.Repr();
    case NodeKind::kTagRef:
      return "@" + n->name;
    case NodeKind::kTagAttr:
      return "tags." + n->name;
    case NodeKind::kTagsObject:
      return "tags";
    case NodeKind::kTagItem:
      out = "(item";
      break;
    case NodeKind::kList:
      out = "(list";
      break;
    case NodeKind::kTuple:
      out = "(tuple";
      break;
    case NodeKind::kUnary:
      out = "(unary" + std::to_string(static_cast<int>(n->unary));
      break;
    case NodeKind::kNot:
      out = "(not";
      break;
    case NodeKind::kBinary:
      out = "(binary" + std::to_string(static_cast<int>(n->binary));
      break;
    case NodeKind::kAnd:
      out = "(and";
      break;
    case NodeKind::kOr:
      out = "(or";
      break;
    case NodeKind::kCompare:
      out = "(cmp";
      for (CmpOp op : n->cmp_ops) {
        out += std::to_string(static_cast<int>(op));
      }
      break;
    case NodeKind::kIndex:
      out = "(index";
      break;
    case NodeKind::kSlice:
      out = "(slice";
      break;
    case NodeKind::kCall:
      out = "(" + n->name;
      break;
    case NodeKind::kMethod:
      out = "(." + n->name;
      break;
  }
  for (const auto& kid : n->kids) {
    out += " " + Dump(kid.get());
  }
  return out + ")";
}

std::string ParseDump(const std::string& rule) {
  auto tree = Parse(rule);
  if (!tree) {
    return "error: " + tree.error().message();
  }
  return Dump(tree->get());
}

TEST(LexerTest, Tokens) {
  auto tokens = Lex("@Modality@ == 'MR' and tags.X[1:] >= 1.5e1 # comment");
  ASSERT_TRUE(tokens.has_value());
  std::vector<TokenKind> kinds;
  for (const Token& t : *tokens) {
    kinds.push_back(t.kind);
  }
  EXPECT_EQ(kinds, (std::vector<TokenKind>{TokenKind::kTagRef, TokenKind::kOp, TokenKind::kString,
                                           TokenKind::kName, TokenKind::kName, TokenKind::kOp,
                                           TokenKind::kName, TokenKind::kOp, TokenKind::kInt,
                                           TokenKind::kOp, TokenKind::kOp, TokenKind::kOp,
                                           TokenKind::kFloat, TokenKind::kEnd}));
  EXPECT_EQ((*tokens)[0].text, "Modality");
  EXPECT_EQ((*tokens)[2].text, "MR");
  EXPECT_EQ((*tokens)[12].float_value, 15.0);
  EXPECT_EQ((*tokens)[3].offset, 19u);
}

TEST(LexerTest, StringPrefixesAndEscapes) {
  auto tokens = Lex(R"(r'\n' u'\n' R"\"" '\'' "\x41\u00e9")");
  ASSERT_TRUE(tokens.has_value()) << tokens.error().message();
  EXPECT_EQ((*tokens)[0].text, "\\n");
  EXPECT_EQ((*tokens)[1].text, "\n");
  EXPECT_EQ((*tokens)[2].text, "\\\"");
  EXPECT_EQ((*tokens)[3].text, "'");
  EXPECT_EQ((*tokens)[4].text, "A\u00e9");
}

TEST(ParserTest, Precedence) {
  EXPECT_EQ(ParseDump("1 + 2 * 3"), "(binary0 1 (binary2 2 3))");
  EXPECT_EQ(ParseDump("-2 ** 2"), "(unary0 (binary6 2 2))");
  EXPECT_EQ(ParseDump("2 ** -1"), "(binary6 2 (unary0 1))");
  EXPECT_EQ(ParseDump("not a == b" + std::string()).substr(0, 6), "error:");
  EXPECT_EQ(ParseDump("not 1 == 2"), "(not (cmp0 1 2))");
  EXPECT_EQ(ParseDump("1 or 2 and 3"), "(or 1 (and 2 3))");
  EXPECT_EQ(ParseDump("1 < 2 <= 3"), "(cmp23 1 2 3)");
  EXPECT_EQ(ParseDump("'a' not in @X@"), "(cmp7 'a' @X)");
  EXPECT_EQ(ParseDump("None is not None"), "(cmp9 None None)");
  EXPECT_EQ(ParseDump("1 | 2 ^ 3 & 4"), "(binary7 1 (binary8 2 (binary9 3 4)))");
  EXPECT_EQ(ParseDump("1 < 2 | 3"), "(cmp2 1 (binary7 2 3))");
}

TEST(ParserTest, TagsAndCalls) {
  EXPECT_EQ(ParseDump("tags.Modality"), "tags.Modality");
  EXPECT_EQ(ParseDump("tags['Modality']"), "(item 'Modality')");
  EXPECT_EQ(ParseDump("'X' in tags"), "(cmp6 'X' tags)");
  EXPECT_EQ(ParseDump("@A@.split(maxsplit=1)"), "(.split @A _ 1)");
  EXPECT_EQ(ParseDump("round(ndigits=1, number=2.5)"), "(round 2.5 1)");
  EXPECT_EQ(ParseDump("sorted(@A@, reverse=True)"), "(sorted @A True)");
  EXPECT_EQ(ParseDump("max(1, 2, 3)"), "(max 1 2 3)");
  EXPECT_EQ(ParseDump("@A@[1:]"), "(slice @A 1 _ _)");
  EXPECT_EQ(ParseDump("@A@[::-1]"), "(slice @A _ _ (unary0 1))");
  EXPECT_EQ(ParseDump("[1, (2,), ()]"), "(list 1 (tuple 2) (tuple))");
  EXPECT_EQ(ParseDump("(1)"), "1");
  EXPECT_EQ(ParseDump("'a' 'b'"), "'ab'");
}

}  // namespace
}  // namespace ferry::rules
