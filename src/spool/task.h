// task.json: the description of one task, in mercure's schema so that mercure processing modules
// read it unchanged.
//
//   {"id": ..., "info": {action, uid, uid_type, triggered_rules, applied_rule, patient_name, mrn,
//    acc, sender_address, sender_aet, receiver_aet, mercure_version, mercure_appliance,
//    mercure_server, fail_stage}, "dispatch": {target_name, status, retries, next_retry_at,
//    series_uid}, "process": {module_name, module_config, settings, retain_input_images},
//    "study": {...}, "ferry": {ferry's own fields}}
//
// ferry's own fields live under "ferry" (priority, trigger reason, parent task of a follow-up,
// timestamps, later attempt counts and per-instance results). Fields ferry does not know are
// preserved when a task.json is read and written again.
// Thread-safety: values and pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ferry {

struct TaskSpec {
  std::string id;
  std::string action;     // "route", "both", "process", "discard", "notification"
  std::string uid;        // series or study UID
  std::string uid_type;   // "series" or "study"
  std::vector<std::string> triggered_rules;
  std::string applied_rule;
  // From the series' tags.
  std::string patient_name;
  std::string mrn;
  std::string acc;
  std::string sender_address;
  std::string sender_aet;
  std::string receiver_aet;
  std::string device_serial_number;
  // Dispatch: empty when the task does not route.
  std::vector<std::string> targets;
  // Processing: empty when the task does not process.
  std::vector<std::string> modules;
  nlohmann::json module_settings = nlohmann::json::object();  // object or list (one per module)
  bool retain_input_images = false;
  // ferry's own fields (merged into "ferry").
  nlohmann::json ferry = nlohmann::json::object();
};

// Who a task is for, as the notifier and the bookkeeper read it from task.completed and
// task.failed events: {rule (info.applied_rule), patient_name, mrn, acc}, the string ones present.
nlohmann::json TaskAudience(const nlohmann::json& task);

// Builds task.json for a new task.
nlohmann::json BuildTaskJson(const TaskSpec& spec, const std::string& ferry_version);

}  // namespace ferry
