#include "router/rule_set.h"

#include <algorithm>

namespace ferry {

Result<std::shared_ptr<const RuleSet>> RuleSet::Build(const std::vector<RuleOptions>& rules,
                                                      std::vector<Error>* errors) {
  auto set = std::make_shared<RuleSet>();
  for (const auto& options : rules) {
    if (options.disabled) {
      continue;  // never evaluated; mercure loads disabled rules whatever they say
    }
    if (options.action_trigger == RuleTrigger::kStudy &&
        options.study_trigger_condition == StudyTriggerCondition::kReceivedSeries) {
      auto trigger = StudyTrigger::Parse(options.study_trigger_series);
      if (!trigger) {
        errors->push_back({"$.rules." + options.name + ".study_trigger_series",
                           trigger.error().message()});
      } else {
        set->triggers_.emplace(options.name, std::move(trigger).value());
      }
    }
    // mercure treats an empty rule as one that never triggers.
    bool blank = options.rule.find_first_not_of(" \t\r\n") == std::string::npos;
    auto compiled = rules::CompiledRule::Compile(blank ? "False" : options.rule);
    if (!compiled) {
      errors->push_back({"$.rules." + options.name + ".rule", compiled.error().message()});
      continue;
    }
    set->entries_.push_back({options, std::move(compiled).value()});
  }
  if (!errors->empty()) {
    return Status::InvalidArgument("the rules section has errors");
  }
  return std::shared_ptr<const RuleSet>(std::move(set));
}

const StudyTrigger* RuleSet::TriggerFor(const std::string& name) const {
  auto it = triggers_.find(name);
  return it == triggers_.end() ? nullptr : &it->second;
}

const RuleOptions* RuleSet::Find(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.options.name == name) {
      return &e.options;
    }
  }
  return nullptr;
}

SeriesDecision RuleSet::Classify(const rules::TagLookup& tags) const {
  SeriesDecision d;
  std::vector<const RuleOptions*> triggered;
  auto evaluate = [&](const Entry& e) {
    rules::Evaluation ev = e.compiled.Evaluate(tags);
    d.outcomes.push_back({e.options.name, ev.outcome, ev.message});
    if (ev.triggered()) {
      triggered.push_back(&e.options);
    }
    return ev.triggered();
  };
  for (const auto& e : entries_) {
    if (e.options.disabled || e.options.fallback) {
      continue;
    }
    if (evaluate(e) && e.options.action == RuleAction::kDiscard) {
      d.discard_rule = e.options.name;
      break;
    }
  }
  if (triggered.empty()) {
    for (const auto& e : entries_) {
      if (e.options.disabled || !e.options.fallback) {
        continue;
      }
      if (evaluate(e) && e.options.action == RuleAction::kDiscard) {
        d.discard_rule = e.options.name;
        break;
      }
    }
  }
  Decide(triggered, &d);
  return d;
}

Result<SeriesDecision> RuleSet::Force(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.options.name == name) {
      SeriesDecision d;
      d.outcomes.push_back({name, rules::Evaluation::Outcome::kTrigger, "forced by an operator"});
      if (e.options.action == RuleAction::kDiscard) {
        d.discard_rule = name;
      }
      Decide({&e.options}, &d);
      return d;
    }
  }
  return Status::NotFound("no enabled rule is named \"" + name + "\"");
}

void RuleSet::Decide(const std::vector<const RuleOptions*>& triggered, SeriesDecision* out) {
  SeriesDecision& d = *out;
  for (const RuleOptions* r : triggered) {
    d.triggered.push_back(r->name);
  }
  if (!d.discard_rule.empty() || triggered.empty()) {
    d.discard = true;
    return;
  }
  for (const RuleOptions* r : triggered) {
    if (r->action_trigger == RuleTrigger::kStudy) {
      d.study.push_back(r);
      continue;
    }
    switch (r->action) {
      case RuleAction::kRoute:
        d.route_rules.push_back(r->name);
        for (const auto& t : r->targets) {
          if (std::find(d.route_targets.begin(), d.route_targets.end(), t) ==
              d.route_targets.end()) {
            d.route_targets.push_back(t);
          }
        }
        break;
      case RuleAction::kProcess:
      case RuleAction::kBoth:
        d.processing.push_back(r);
        break;
      case RuleAction::kNotification:
        d.notification.push_back(r);
        break;
      case RuleAction::kDiscard:
        break;  // handled above
    }
  }
}

void RuleSet::CompletionFor(const SeriesDecision& decision, const RouterOptions& router,
                            std::chrono::milliseconds* grace,
                            std::chrono::milliseconds* timeout) const {
  int grace_ms = 0;
  int timeout_s = 0;
  for (const auto& name : decision.triggered) {
    if (const RuleOptions* r = Find(name)) {
      grace_ms = std::max(grace_ms, r->series_complete_grace_ms);
      timeout_s = std::max(timeout_s, r->series_complete_timeout_s);
    }
  }
  *grace = std::chrono::milliseconds(grace_ms > 0 ? grace_ms : router.series_complete_grace_ms);
  *timeout = std::chrono::seconds(timeout_s > 0 ? timeout_s : router.series_complete_timeout_s);
}

}  // namespace ferry
