#include "rules/rule.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstdlib>

#include "rules/evaluator.h"
#include "rules/lexer.h"
#include "rules/parser.h"
#include "rules/text.h"

namespace ferry::rules {
namespace {

bool Foldable(NodeKind kind) {
  switch (kind) {
    case NodeKind::kList:
    case NodeKind::kTuple:
    case NodeKind::kUnary:
    case NodeKind::kNot:
    case NodeKind::kBinary:
    case NodeKind::kAnd:
    case NodeKind::kOr:
    case NodeKind::kCompare:
    case NodeKind::kIndex:
    case NodeKind::kSlice:
    case NodeKind::kCall:
    case NodeKind::kMethod:
      return true;
    default:
      return false;
  }
}

std::uint32_t MinOffset(const Node& node) {
  std::uint32_t offset = node.offset;
  for (const auto& kid : node.kids) {
    if (kid) {
      offset = std::min(offset, MinOffset(*kid));
    }
  }
  return offset;
}

// Evaluates every subtree made of constants only, once, at compile time. A subtree whose
// evaluation fails (1/0) is left alone: that is a run-time error of the rule, reported each
// time it is evaluated, as mercure does.
void FoldConstants(Node* node, const Program& program) {
  bool all_const = true;
  for (auto& kid : node->kids) {
    if (!kid) {
      continue;
    }
    FoldConstants(kid.get(), program);
    if (kid->kind != NodeKind::kConst) {
      all_const = false;
    }
  }
  if (!all_const || !Foldable(node->kind)) {
    return;
  }
  Evaluator evaluator(program, nullptr, false);
  Value value;
  if (!evaluator.Eval(*node, value)) {
    return;
  }
  value.MakeOwned();
  // A folded constant stands where its text starts (for messages about it).
  node->offset = MinOffset(*node);
  node->kind = NodeKind::kConst;
  node->value = std::move(value);
  node->kids.clear();
}

// Moves the bytes of constant strs into the program, and makes the constants borrow them: a
// copy of a constant (into a list, a comparison) then never allocates.
void InternStrings(Value* value, Program* program) {
  if (value->is_str() && !value->borrowed()) {
    program->strings.emplace_back(value->str());
    value->SetStrView(program->strings.back());
  } else if (value->is_sequence()) {
    std::vector<Value> items = value->items();
    for (Value& item : items) {
      InternStrings(&item, program);
    }
    *value->MutableItems(value->type() == Value::Type::kTuple) = std::move(items);
  }
}

void AddName(std::vector<std::string>* names, const std::string& name) {
  if (std::find(names->begin(), names->end(), name) == names->end()) {
    names->push_back(name);
  }
}

// Resolves @Tag@ slots, compiles literal patterns of matches(), interns constants and collects
// the names of the tags the rule refers to.
Status Finish(Node* node, Program* program) {
  switch (node->kind) {
    case NodeKind::kConst:
      InternStrings(&node->value, program);
      break;
    case NodeKind::kTagRef: {
      auto& at = program->at_tags;
      auto it = std::find(at.begin(), at.end(), node->name);
      node->slot = static_cast<int>(it - at.begin());
      if (it == at.end()) {
        at.push_back(node->name);
      }
      AddName(&program->referenced, node->name);
      break;
    }
    case NodeKind::kTagAttr:
      AddName(&program->referenced, node->name);
      break;
    case NodeKind::kTagItem:
      if (node->kids[0]->kind == NodeKind::kConst && node->kids[0]->value.is_str()) {
        AddName(&program->referenced, std::string(node->kids[0]->value.str()));
      }
      break;
    case NodeKind::kCompare:
      for (size_t i = 0; i < node->cmp_ops.size(); ++i) {
        const Node& left = *node->kids[i];
        if (node->kids[i + 1]->kind == NodeKind::kTagsObject && left.kind == NodeKind::kConst &&
            left.value.is_str()) {
          AddName(&program->referenced, std::string(left.value.str()));
        }
      }
      break;
    case NodeKind::kCall:
      if (node->builtin == Builtin::kMatches && node->kids[1]->kind == NodeKind::kConst &&
          node->kids[1]->value.is_str()) {
        std::string error;
        std::unique_ptr<re2::RE2> re = CompileRegex(node->kids[1]->value.str(), &error);
        if (!re) {
          return Status::InvalidArgument(
              SyntaxErrorMessage(program->text, node->kids[1]->offset,
                                 "invalid regular expression in matches(): " + error));
        }
        node->regex = std::move(re);
      }
      break;
    default:
      break;
  }
  for (auto& kid : node->kids) {
    if (kid) {
      FERRY_RETURN_IF_ERROR(Finish(kid.get(), program));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<CompiledRule> CompiledRule::Compile(std::string_view expr) {
  auto program = std::make_shared<Program>();
  program->text = std::string(expr);
  auto root = Parse(program->text);
  if (!root) {
    return root.error();
  }
  program->root = std::move(root).value();
  FoldConstants(program->root.get(), *program);
  FERRY_RETURN_IF_ERROR(Finish(program->root.get(), program.get()));
  return CompiledRule(std::move(program));
}

Evaluation CompiledRule::Evaluate(const TagLookup& tags, Detail detail) const {
  const bool full = detail == Detail::kFull;
  Evaluator evaluator(*program_, &tags, full);
  Evaluation result;
  bool ok;
  bool truth = false;
  if (full) {
    Value value;
    ok = evaluator.RunValue(&value);
    if (ok) {
      truth = value.Truthy();
      result.value = value.Repr();
      result.message = "the rule's value is " + result.value;
    }
  } else {
    ok = evaluator.RunTruth(&truth);
  }
  if (ok) {
    result.outcome = truth ? Evaluation::Outcome::kTrigger : Evaluation::Outcome::kReject;
  } else if (evaluator.failure() == Failure::kMissingTag) {
    result.outcome = Evaluation::Outcome::kReject;
    result.message = evaluator.message();
  } else {
    result.outcome = Evaluation::Outcome::kError;
    result.message = evaluator.message();
  }
  if (full) {
    result.tags_read = std::move(evaluator.reads());
  }
  return result;
}

const std::string& CompiledRule::text() const { return program_->text; }

const std::vector<std::string>& CompiledRule::referenced_tags() const {
  return program_->referenced;
}

std::string ShowErrorPosition(std::string_view rule, std::string_view message,
                              std::string_view indent) {
  int line = 1;
  std::string_view rest = message;
  if (rest.substr(0, 5) == "line ") {
    rest.remove_prefix(5);
    size_t comma = rest.find(", ");
    if (comma == std::string_view::npos) {
      return "";
    }
    line = std::atoi(std::string(rest.substr(0, comma)).c_str());
    rest.remove_prefix(comma + 2);
  }
  if (rest.substr(0, 7) != "column ") {
    return "";
  }
  int column = std::atoi(std::string(rest.substr(7)).c_str());
  if (column < 1 || line < 1) {
    return "";
  }
  std::string_view text = rule;
  for (int i = 1; i < line; ++i) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      return "";
    }
    text.remove_prefix(nl + 1);
  }
  text = text.substr(0, text.find('\n'));
  std::string out(indent);
  out += text;
  out += "\n";
  out += indent;
  // Tabs keep their width so that the caret lines up.
  size_t pos = 0;
  for (int c = 1; c < column && pos < text.size(); ++c) {
    out.push_back(text[pos] == '\t' ? '\t' : ' ');
    DecodeCodePoint(text, &pos);
  }
  out += "^";
  return out;
}

}  // namespace ferry::rules
