// Evaluator: walks a compiled rule's syntax tree over the tags of one series.
//
// Internal to src/rules; CompiledRule (rule.h) is the public face. An Evaluator lives for one
// evaluation (or one constant folding at compile time, with no tags). Strings it produces
// borrow from the tags and from the program's constants where they can, so that a typical
// rule evaluates without allocating.
// Thread-safety: an Evaluator is used by one thread; the Program it reads is immutable and
// shared.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/ast.h"
#include "rules/tag_lookup.h"
#include "rules/value.h"

namespace re2 {
class RE2;
}

namespace ferry::rules {

// A compiled rule.
struct Program {
  std::string text;
  std::unique_ptr<Node> root;
  std::vector<std::string> at_tags;     // distinct @Tag@ names, in order of appearance
  std::vector<std::string> referenced;  // every tag name written in the rule, distinct
  std::deque<std::string> strings;      // bytes of the constant strs (stable addresses)
};

enum class Failure : std::uint8_t { kNone, kMissingTag, kError };

class Evaluator {
 public:
  // `tags` may be null only for constant folding (no tag node is evaluated then). With
  // `record`, the tags read are collected for reads().
  Evaluator(const Program& program, const TagLookup* tags, bool record);

  // Evaluates the whole rule for its truth (cheaper: no value is built for and/or/not and
  // comparisons) or for its value. False on failure: see failure() and message().
  bool RunTruth(bool* truth);
  bool RunValue(Value* value);

  // One node (constant folding).
  bool Eval(const Node& n, Value& out);

  Failure failure() const { return failure_; }
  const std::string& message() const { return message_; }
  std::vector<std::pair<std::string, std::string>>& reads() { return reads_; }

 private:
  bool Prepare();
  const Value* Ref(const Node& n, Value& scratch) {
    if (n.kind == NodeKind::kConst) {
      return &n.value;
    }
    return Eval(n, scratch) ? &scratch : nullptr;
  }
  bool Truth(const Node& n, bool* out);
  bool CompareChain(const Node& n, bool* out);
  bool Call(const Node& n, Value& out);
  bool Matches(const Node& n, Value& out);
  bool Fail(const Node& n, std::string message);
  bool Missing(const std::string& name);
  void Record(const std::string& name, const std::string* value);

  const Program& program_;
  const TagLookup* tags_;
  bool record_;
  static constexpr std::size_t kInlineSlots = 8;
  std::string_view inline_slots_[kInlineSlots];
  std::vector<std::string_view> heap_slots_;
  std::string_view* slots_ = inline_slots_;
  Failure failure_ = Failure::kNone;
  std::string message_;
  std::vector<std::pair<std::string, std::string>> reads_;
};

// Compiles a pattern for matches(); null with RE2's reason in *error if it is invalid.
std::unique_ptr<re2::RE2> CompileRegex(std::string_view pattern, std::string* error);

}  // namespace ferry::rules
