// CompiledRule: a mercure routing rule, parsed once and evaluated on the tags of many series.
//
// The language is mercure's (docs/rules.md): a Python expression over the tags of a series'
// first instance, written with @Tag@, tags.Tag or tags['Tag'], with Python's operators, a
// whitelist of built-in functions and string methods, and matches(value, pattern) for RE2
// regular expressions. Compile() finds every syntax error, every name or construct outside
// the language and every invalid literal regular expression; its message starts with
// "column N: " (1-based, in characters). Evaluate() then never fails as a call: its outcome is
// trigger, reject (the rule is false, or reads a tag the series does not have: mercure's
// behaviour) or error (a run-time error such as a wrong type or a division by zero, which the
// router reports as a rule error event).
//
// Typical use (the router): compile every rule when the config loads, build one TagLookup per
// series, evaluate each rule with Detail::kOutcome; `ferry rules eval --explain` uses
// Detail::kFull for the tags read and the rule's value.
// Thread-safety: a CompiledRule is immutable; Evaluate() may run on any number of threads at
// once. Copies share the compiled program.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "rules/tag_lookup.h"

namespace ferry::rules {

struct Program;

struct Evaluation {
  enum class Outcome { kTrigger, kReject, kError };

  Outcome outcome = Outcome::kReject;
  // kReject: why ("tag PatientAge is missing"; with Detail::kFull also "the rule's value is
  // False"). kError: the run-time error, "TypeError: ... (column N)". kTrigger: with
  // Detail::kFull, "the rule's value is True".
  std::string message;
  // Detail::kFull only: tags read, in order, as (name, value); the value is "<missing>" for a
  // tag the series does not have (for tags.Name, the name as the series spells it).
  std::vector<std::pair<std::string, std::string>> tags_read;
  // Detail::kFull only: Python's repr() of the rule's value, if evaluation completed.
  std::string value;

  bool triggered() const { return outcome == Outcome::kTrigger; }
};

enum class Detail {
  kOutcome,  // outcome, and the message of errors and missing tags: the router's fast path
  kFull,     // also the tags read, the value and a message for every outcome
};

class CompiledRule {
 public:
  // Parses and checks `expr`. InvalidArgument("column N: <reason>") if it is not a valid rule.
  static Result<CompiledRule> Compile(std::string_view expr);

  Evaluation Evaluate(const TagLookup& tags, Detail detail = Detail::kOutcome) const;

  // The rule as written.
  const std::string& text() const;
  // Every tag name the rule writes out (@Tag@, tags.Tag, tags['Tag'], 'Tag' in tags), distinct,
  // in order of appearance.
  const std::vector<std::string>& referenced_tags() const;

 private:
  explicit CompiledRule(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

  std::shared_ptr<const Program> program_;
};

// For a message of Compile() ("column N: ..." or "line L, column N: ..."): the line of `rule`
// it points into and a caret under the column, as two lines without a final newline, each
// indented by `indent`. Empty if the message names no column.
std::string ShowErrorPosition(std::string_view rule, std::string_view message,
                              std::string_view indent = "  ");

}  // namespace ferry::rules
