// The syntax tree of a compiled rule.
//
// Internal to src/rules: the parser builds it, CompileRule (rule.cc) resolves names, folds
// constants and compiles literal regular expressions, and the evaluator walks it. Every node
// keeps the byte offset of its first character in the rule text, for messages that name the
// column. A tree is immutable after compilation and is shared by every evaluation.
// Thread-safety: read-only after compilation; any number of threads may evaluate one tree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/value.h"

namespace re2 {
class RE2;
}

namespace ferry::rules {

enum class NodeKind : std::uint8_t {
  kConst,       // a literal or a folded constant: value
  kTagRef,      // @Tag@: name, slot
  kTagAttr,     // tags.Name, case-insensitive: name, lower_name
  kTagItem,     // tags[key], exact: kids[0] is the key
  kTagsObject,  // bare `tags`: only as the right operand of `in` / `not in`
  kList,        // [kids...]
  kTuple,       // (kids...)
  kUnary,       // unary kids[0]
  kNot,         // not kids[0]
  kBinary,      // kids[0] binary kids[1]
  kAnd,         // kids[0] and kids[1] and ...
  kOr,          // kids[0] or kids[1] or ...
  kCompare,     // kids[0] cmp_ops[0] kids[1] cmp_ops[1] kids[2] ...
  kIndex,       // kids[0][kids[1]]
  kSlice,       // kids[0][kids[1]:kids[2]:kids[3]]; absent parts are null
  kCall,        // builtin(kids...); absent optional arguments are null
  kMethod,      // kids[0].method(kids[1...]); absent optional arguments are null
};

enum class UnaryOp : std::uint8_t { kNeg, kPos, kInvert };

enum class BinaryOp : std::uint8_t {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kFloorDiv,
  kMod,
  kPow,
  kBitOr,
  kBitXor,
  kBitAnd,
  kShl,
  kShr,
};

enum class CmpOp : std::uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn, kIs, kIsNot };

enum class Builtin : std::uint8_t {
  kBool,
  kInt,
  kFloat,
  kStr,
  kLen,
  kMin,
  kMax,
  kAbs,
  kRound,
  kSum,
  kAny,
  kAll,
  kSorted,
  kPow,
  kChr,
  kOrd,
  kList,
  kTuple,
  kMatches,
};

enum class Method : std::uint8_t {
  kLower,
  kUpper,
  kStrip,
  kLstrip,
  kRstrip,
  kStartswith,
  kEndswith,
  kSplit,
  kReplace,
  kFind,
  kCount,
  kIsdigit,
  kIsalpha,
  kIsalnum,
  kTitle,
  kCapitalize,
  kZfill,
};

struct Node {
  NodeKind kind = NodeKind::kConst;
  std::uint32_t offset = 0;
  UnaryOp unary = UnaryOp::kNeg;
  BinaryOp binary = BinaryOp::kAdd;
  Builtin builtin = Builtin::kBool;
  Method method = Method::kLower;
  std::vector<CmpOp> cmp_ops;
  Value value;               // kConst
  std::string name;          // tag name, or the function or method name (for messages)
  std::string lower_name;    // kTagAttr
  int slot = -1;             // kTagRef: index into the rule's list of @Tag@ names
  std::uint16_t height = 1;  // of the subtree (the parser limits it)
  std::vector<std::unique_ptr<Node>> kids;
  std::shared_ptr<const re2::RE2> regex;  // kCall matches() with a constant pattern
};

}  // namespace ferry::rules
