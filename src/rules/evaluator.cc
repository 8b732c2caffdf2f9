#include "rules/evaluator.h"

#include <re2/re2.h>

#include "rules/builtins.h"
#include "rules/lexer.h"
#include "rules/operations.h"

namespace ferry::rules {

namespace {
constexpr char kTagsUse[] =
    "TypeError: tags can only be used as tags.Name, tags['Name'] or "
    "'Name' in tags";
}  // namespace

std::unique_ptr<re2::RE2> CompileRegex(std::string_view pattern, std::string* error) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    *error = re->error();
    return nullptr;
  }
  return re;
}

Evaluator::Evaluator(const Program& program, const TagLookup* tags, bool record)
    : program_(program), tags_(tags), record_(record) {}

bool Evaluator::Fail(const Node& n, std::string message) {
  int line = 0;
  int column = 0;
  LineAndColumn(program_.text, n.offset, &line, &column);
  failure_ = Failure::kError;
  message_ = std::move(message) + " (column " + std::to_string(column) + ")";
  return false;
}

bool Evaluator::Missing(const std::string& name) {
  failure_ = Failure::kMissingTag;
  message_ = "tag " + name + " is missing";
  return false;
}

void Evaluator::Record(const std::string& name, const std::string* value) {
  if (!record_) {
    return;
  }
  for (const auto& r : reads_) {
    if (r.first == name) {
      return;
    }
  }
  reads_.emplace_back(name, value != nullptr ? *value : std::string("<missing>"));
}

bool Evaluator::Prepare() {
  // mercure substitutes every @Tag@ before it evaluates the rule; a tag the series does not
  // have leaves the rule unparseable, so it does not trigger -- wherever the reference stands,
  // even where `and`/`or` would not evaluate it. ferry keeps that behaviour.
  const auto& names = program_.at_tags;
  if (names.size() > kInlineSlots) {
    heap_slots_.resize(names.size());
    slots_ = heap_slots_.data();
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string* value = tags_->Find(names[i]);
    Record(names[i], value);
    if (value == nullptr) {
      return Missing(names[i]);
    }
    slots_[i] = *value;
  }
  return true;
}

bool Evaluator::RunTruth(bool* truth) { return Prepare() && Truth(*program_.root, truth); }

bool Evaluator::RunValue(Value* value) { return Prepare() && Eval(*program_.root, *value); }

bool Evaluator::Truth(const Node& n, bool* out) {
  switch (n.kind) {
    case NodeKind::kConst:
      *out = n.value.Truthy();
      return true;
    case NodeKind::kAnd:
    case NodeKind::kOr: {
      // The truth of `a and b` is that of the operand it returns; same for `or`.
      bool stop_on = n.kind == NodeKind::kOr;
      for (const auto& kid : n.kids) {
        bool t;
        if (!Truth(*kid, &t)) {
          return false;
        }
        if (t == stop_on) {
          *out = t;
          return true;
        }
      }
      *out = !stop_on;
      return true;
    }
    case NodeKind::kNot: {
      bool t;
      if (!Truth(*n.kids[0], &t)) {
        return false;
      }
      *out = !t;
      return true;
    }
    case NodeKind::kCompare:
      return CompareChain(n, out);
    default: {
      Value v;
      if (!Eval(n, v)) {
        return false;
      }
      *out = v.Truthy();
      return true;
    }
  }
}

bool Evaluator::CompareChain(const Node& n, bool* out) {
  Value scratch[2];
  int free = 1;
  const Value* left = Ref(*n.kids[0], scratch[0]);
  if (left == nullptr) {
    return false;
  }
  std::string error;
  for (size_t i = 0; i < n.cmp_ops.size(); ++i) {
    const Node& right_node = *n.kids[i + 1];
    CmpOp op = n.cmp_ops[i];
    bool result;
    if (right_node.kind == NodeKind::kTagsObject) {
      // 'Name' in tags: is there a tag of exactly that name? (a non-str is never a name)
      bool present = false;
      if (left->is_str()) {
        std::string name(left->str());
        const std::string* value = tags_ != nullptr ? tags_->Find(name) : nullptr;
        Record(name, value);
        present = value != nullptr;
      }
      result = op == CmpOp::kIn ? present : !present;
      if (!result) {
        *out = false;
        return true;
      }
      if (i + 1 < n.cmp_ops.size()) {
        return Fail(right_node, kTagsUse);
      }
      continue;
    }
    const Value* right = Ref(right_node, scratch[free]);
    if (right == nullptr) {
      return false;
    }
    if (!CompareValues(op, *left, *right, &result, &error)) {
      return Fail(n, std::move(error));
    }
    if (!result) {
      *out = false;
      return true;
    }
    if (right == &scratch[free]) {
      free = 1 - free;
    }
    left = right;
  }
  *out = true;
  return true;
}

bool Evaluator::Eval(const Node& n, Value& out) {
  std::string error;
  switch (n.kind) {
    case NodeKind::kConst:
      out = n.value;
      return true;
    case NodeKind::kTagRef:
      out.SetStrView(slots_[n.slot]);
      return true;
    case NodeKind::kTagAttr: {
      const auto* entry = tags_->FindIgnoringCase(n.name, n.lower_name);
      if (entry == nullptr) {
        Record(n.name, nullptr);
        return Missing(n.name);
      }
      Record(entry->first, &entry->second);
      out.SetStrView(entry->second);
      return true;
    }
    case NodeKind::kTagItem: {
      Value scratch;
      const Value* key = Ref(*n.kids[0], scratch);
      if (key == nullptr) {
        return false;
      }
      if (!key->is_str()) {
        return Missing(key->Repr());
      }
      std::string name(key->str());
      const std::string* value = tags_->Find(name);
      Record(name, value);
      if (value == nullptr) {
        return Missing(name);
      }
      out.SetStrView(*value);
      return true;
    }
    case NodeKind::kTagsObject:
      return Fail(n, kTagsUse);
    case NodeKind::kList:
    case NodeKind::kTuple: {
      std::vector<Value> items(n.kids.size());
      for (size_t i = 0; i < n.kids.size(); ++i) {
        if (!Eval(*n.kids[i], items[i])) {
          return false;
        }
      }
      *out.MutableItems(n.kind == NodeKind::kTuple) = std::move(items);
      return true;
    }
    case NodeKind::kUnary: {
      Value scratch;
      const Value* a = Ref(*n.kids[0], scratch);
      if (a == nullptr) {
        return false;
      }
      if (!UnaryOperation(n.unary, *a, out, &error)) {
        return Fail(n, std::move(error));
      }
      return true;
    }
    case NodeKind::kNot:
    case NodeKind::kCompare: {
      bool t;
      if (!Truth(n, &t)) {
        return false;
      }
      out.SetBool(t);
      return true;
    }
    case NodeKind::kBinary: {
      Value sa;
      Value sb;
      const Value* a = Ref(*n.kids[0], sa);
      if (a == nullptr) {
        return false;
      }
      const Value* b = Ref(*n.kids[1], sb);
      if (b == nullptr) {
        return false;
      }
      if (!BinaryOperation(n.binary, *a, *b, out, &error)) {
        return Fail(n, std::move(error));
      }
      return true;
    }
    case NodeKind::kAnd:
    case NodeKind::kOr: {
      bool stop_on = n.kind == NodeKind::kOr;
      for (size_t i = 0; i + 1 < n.kids.size(); ++i) {
        Value scratch;
        const Value* v = Ref(*n.kids[i], scratch);
        if (v == nullptr) {
          return false;
        }
        if (v->Truthy() == stop_on) {
          out = *v;
          return true;
        }
      }
      return Eval(*n.kids.back(), out);
    }
    case NodeKind::kIndex: {
      Value sc;
      Value si;
      const Value* c = Ref(*n.kids[0], sc);
      if (c == nullptr) {
        return false;
      }
      const Value* i = Ref(*n.kids[1], si);
      if (i == nullptr) {
        return false;
      }
      if (!IndexValue(*c, *i, out, &error)) {
        return Fail(n, std::move(error));
      }
      return true;
    }
    case NodeKind::kSlice: {
      Value scratch[4];
      const Value* parts[4] = {nullptr, nullptr, nullptr, nullptr};
      for (size_t i = 0; i < 4; ++i) {
        if (n.kids[i]) {
          parts[i] = Ref(*n.kids[i], scratch[i]);
          if (parts[i] == nullptr) {
            return false;
          }
        }
      }
      if (!SliceValue(*parts[0], parts[1], parts[2], parts[3], out, &error)) {
        return Fail(n, std::move(error));
      }
      return true;
    }
    case NodeKind::kCall:
    case NodeKind::kMethod:
      return Call(n, out);
  }
  return Fail(n, "internal error: unknown node");
}

bool Evaluator::Call(const Node& n, Value& out) {
  if (n.kind == NodeKind::kCall && n.builtin == Builtin::kMatches) {
    return Matches(n, out);
  }
  const size_t first = n.kind == NodeKind::kMethod ? 1 : 0;
  const size_t nargs = n.kids.size() - first;
  constexpr size_t kInline = 3;
  Value inline_scratch[kInline];
  std::vector<Value> heap_scratch;
  Value* scratch = inline_scratch;
  const Value* inline_args[kInline];
  std::vector<const Value*> heap_args;
  const Value** args = inline_args;
  if (nargs > kInline) {
    heap_scratch.resize(nargs);
    heap_args.resize(nargs);
    scratch = heap_scratch.data();
    args = heap_args.data();
  }
  Value receiver_scratch;
  const Value* receiver = nullptr;
  if (n.kind == NodeKind::kMethod) {
    receiver = Ref(*n.kids[0], receiver_scratch);
    if (receiver == nullptr) {
      return false;
    }
    if (!receiver->is_str()) {
      return Fail(n, std::string("AttributeError: '") + receiver->TypeName() +
                         "' object has no attribute '" + n.name + "' (string methods need a str)");
    }
  }
  for (size_t i = 0; i < nargs; ++i) {
    const Node* kid = n.kids[first + i].get();
    if (kid == nullptr) {
      args[i] = nullptr;
      continue;
    }
    args[i] = Ref(*kid, scratch[i]);
    if (args[i] == nullptr) {
      return false;
    }
  }
  std::string error;
  bool ok = n.kind == NodeKind::kMethod ? CallMethod(n.method, *receiver, args, nargs, out, &error)
                                        : CallBuiltin(n.builtin, args, nargs, out, &error);
  if (!ok) {
    return Fail(n, std::move(error));
  }
  return true;
}

bool Evaluator::Matches(const Node& n, Value& out) {
  Value sv;
  const Value* value = Ref(*n.kids[0], sv);
  if (value == nullptr) {
    return false;
  }
  if (!value->is_str()) {
    return Fail(
        n, std::string("TypeError: matches() argument 1 must be str, not ") + value->TypeName());
  }
  re2::StringPiece text(value->str().data(), value->str().size());
  if (n.regex) {
    out.SetBool(re2::RE2::PartialMatch(text, *n.regex));
    return true;
  }
  Value sp;
  const Value* pattern = Ref(*n.kids[1], sp);
  if (pattern == nullptr) {
    return false;
  }
  if (!pattern->is_str()) {
    return Fail(
        n, std::string("TypeError: matches() argument 2 must be str, not ") + pattern->TypeName());
  }
  std::string error;
  std::unique_ptr<re2::RE2> re = CompileRegex(pattern->str(), &error);
  if (!re) {
    return Fail(n, "ValueError: matches(): invalid regular expression: " + error);
  }
  out.SetBool(re2::RE2::PartialMatch(text, *re));
  return true;
}

}  // namespace ferry::rules
