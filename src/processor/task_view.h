// What a processing module sees of its task, and what the processor makes of what the module
// returns — pure functions over task.json, unit-tested without containers.
//
// - The module's task.json is mercure's Task: ferry's own "ferry" key is left out (mercure's
//   model forbids extra fields), and "process" holds only the current step, with the module's
//   `settings` overridden key by key by the rule's `processing_settings` for that step.
// - result.json: `__mercure_notification` ({text, requested}) of each step, and the last step's
//   `__mercure_routing` ({discard}, {target: name or list}, {use_alternate_target}), honoured
//   only when the task's rule has `dynamic_routing`, and only for allowed targets.
// Thread-safety: values and pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace ferry {

// The steps of a processing task: task.json's "process" (one object, or a list for a chain).
std::vector<nlohmann::json> ProcessSteps(const nlohmann::json& task);

// The task.json that step `step` (0-based) of `task` gives its module.
nlohmann::json ModuleTaskView(const nlohmann::json& task, size_t step,
                              const ModuleOptions& module);

// mercure's view of a module (its Module fields), for the step's "module_config".
nlohmann::json MercureModuleConfig(const ModuleOptions& module);

struct RoutingOutcome {
  bool changed = false;    // the module's result changed where the task goes
  bool discard = false;    // nothing is sent: the task ends in success/
  std::vector<std::string> targets;  // the new targets (when changed and not discard)
  std::string note;        // what happened and why, for the log and the journal
};

// Applies the last step's `__mercure_routing` under the rule's dynamic routing settings.
// `rule` may be null (the rule was removed from the config): nothing changes.
RoutingOutcome DynamicRouting(const nlohmann::json& last_output, const RuleOptions* rule,
                              const Config& config);

struct Notification {
  std::string text;        // "<module>: <text>" lines of every step that gave one
  bool requested = false;  // some step asked for a notification (`requested`)
};
// `outputs` holds one (module name, result.json or null) pair per step.
Notification ModuleNotification(
    const std::vector<std::pair<std::string, nlohmann::json>>& outputs);

// mercure's name for an instance of series `series_uid` in a module's input:
// "<series uid>#<file>" (file: "<sop uid>.dcm" or "<sop uid>.tags").
std::string MercureInstanceName(const std::string& series_uid, const std::string& file);

}  // namespace ferry
