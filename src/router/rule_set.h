// RuleSet: the configured rules, compiled once, and the decision what happens to a series.
//
// Built from the `rules` section when the router starts (a broken rule is a config error: the
// router does not start half-configured). Classify() evaluates the rules on the tags of a
// series' first instance with mercure's semantics: rules in config order, disabled rules
// skipped, a triggered discard rule stops the evaluation and discards the series, fallback rules
// only when no other rule triggered, and with nothing triggered the series is discarded (kept
// in discard/ for the retention period).
// Thread-safety: immutable after Build; Classify is const and may run on any thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/result.h"
#include "router/study_trigger.h"
#include "rules/rule.h"

namespace ferry {

struct RuleOutcome {
  std::string rule;
  rules::Evaluation::Outcome outcome;
  std::string message;  // why it rejected (missing tag) or the run-time error
};

// What the router does with a series, decided from its first instance.
struct SeriesDecision {
  std::vector<RuleOutcome> outcomes;         // every rule evaluated, in order
  std::vector<std::string> triggered;        // names of the triggered rules
  std::string discard_rule;                  // a triggered discard rule, if any
  bool discard = false;                      // discard the series (rule, or nothing triggered)
  std::vector<std::string> route_targets;    // de-duplicated targets of series route rules
  std::vector<std::string> route_rules;      // the rules that contributed route_targets
  std::vector<const RuleOptions*> processing;    // series rules with action process or both
  std::vector<const RuleOptions*> notification;  // series rules with action notification
  std::vector<const RuleOptions*> study;         // triggered study-level rules
};

class RuleSet {
 public:
  struct Error {
    std::string path;    // "$.rules.<name>.rule"
    std::string reason;  // "column N: ..."
  };

  // Compiles every rule; on failure returns every error (nothing is half-loaded).
  static Result<std::shared_ptr<const RuleSet>> Build(const std::vector<RuleOptions>& rules,
                                                      std::vector<Error>* errors);

  SeriesDecision Classify(const rules::TagLookup& tags) const;

  // The decision when an operator routes a series with the named rule whatever its tags
  // (`ferry series route UID --rule NAME`). NotFound if no enabled rule has that name.
  Result<SeriesDecision> Force(const std::string& name) const;

  // The study_trigger_series of a study-level rule whose condition is "received_series".
  const StudyTrigger* TriggerFor(const std::string& name) const;

  // The named rule, or null.
  const RuleOptions* Find(const std::string& name) const;

  // Completion times for a series that triggered `triggered` rules: the largest override among
  // them, else the router's defaults.
  void CompletionFor(const SeriesDecision& decision, const RouterOptions& router,
                     std::chrono::milliseconds* grace, std::chrono::milliseconds* timeout) const;

 private:
  // Fills the actions of `out` from the triggered rules.
  static void Decide(const std::vector<const RuleOptions*>& triggered, SeriesDecision* out);

  struct Entry {
    RuleOptions options;
    rules::CompiledRule compiled;
  };
  std::vector<Entry> entries_;
  std::map<std::string, StudyTrigger> triggers_;
};

}  // namespace ferry
