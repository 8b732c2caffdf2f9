#include "processor/task_view.h"

#include <algorithm>

#include <fmt/format.h>

namespace ferry {

using Json = nlohmann::json;

std::vector<Json> ProcessSteps(const Json& task) {
  std::vector<Json> steps;
  if (!task.contains("process")) {
    return steps;
  }
  const Json& p = task["process"];
  if (p.is_array()) {
    for (const auto& s : p) {
      if (s.is_object()) {
        steps.push_back(s);
      }
    }
  } else if (p.is_object() && p.contains("module_name")) {
    steps.push_back(p);
  }
  return steps;
}

Json MercureModuleConfig(const ModuleOptions& m) {
  // mercure keeps environment, volumes and arguments as JSON text.
  auto text = [](const std::string& json) { return json == "{}" ? std::string() : json; };
  return {{"docker_tag", m.docker_tag},
          {"additional_volumes", text(m.additional_volumes_json)},
          {"environment", text(m.environment_json)},
          {"docker_arguments", text(m.docker_arguments_json)},
          {"settings", Json::parse(m.settings_json, nullptr, false)},
          {"contact", m.contact},
          {"comment", m.comment},
          {"constraints", m.constraints},
          {"resources", m.resources},
          {"requires_root", m.requires_root},
          {"requires_persistence", m.requires_persistence},
          {"persistence_folder_name", m.persistence_folder_name},
          {"network_enabled", m.network_enabled}};
}

Json ModuleTaskView(const Json& task, size_t step, const ModuleOptions& module) {
  Json view = task;
  view.erase("ferry");
  std::vector<Json> steps = ProcessSteps(task);
  Json current = step < steps.size() ? steps[step] : Json::object();
  Json settings = Json::parse(module.settings_json, nullptr, false);
  if (!settings.is_object()) {
    settings = Json::object();
  }
  if (current.contains("settings") && current["settings"].is_object()) {
    for (const auto& [k, v] : current["settings"].items()) {
      settings[k] = v;  // the rule's value wins, key by key (mercure's dict.update)
    }
  }
  current["module_name"] = module.name;
  current["module_config"] = MercureModuleConfig(module);
  current["settings"] = settings;
  current["retain_input_images"] = current.value("retain_input_images", false);
  if (!current.contains("output")) {
    current["output"] = nullptr;
  }
  view["process"] = current;
  return view;
}

RoutingOutcome DynamicRouting(const Json& last_output, const RuleOptions* rule,
                              const Config& config) {
  RoutingOutcome out;
  if (!last_output.is_object() || !last_output.contains("__mercure_routing")) {
    return out;
  }
  const Json& r = last_output["__mercure_routing"];
  if (!r.is_object()) {
    out.note = "result.json's __mercure_routing is not an object; ignored";
    return out;
  }
  if (rule == nullptr) {
    out.note = "result.json asks for dynamic routing, but the task's rule is no longer in the "
               "config; ignored";
    return out;
  }
  if (!rule->dynamic_routing) {
    out.note = fmt::format("result.json asks for dynamic routing, but rule {} does not enable "
                           "dynamic_routing; ignored",
                           rule->name);
    return out;
  }
  auto flag = [&](const char* key) { return r.contains(key) && r[key] == true; };
  if (flag("discard")) {
    out.changed = true;
    out.discard = true;
    out.note = "the module asked to discard the result: nothing is sent";
    return out;
  }
  if (r.contains("target")) {
    std::vector<std::string> wanted;
    if (r["target"].is_string()) {
      wanted.push_back(r["target"].get<std::string>());
    } else if (r["target"].is_array()) {
      for (const auto& t : r["target"]) {
        if (t.is_string()) {
          wanted.push_back(t.get<std::string>());
        }
      }
    }
    const auto& allowed = rule->dynamic_routing_allowed_targets;
    for (const auto& t : wanted) {
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
        out.note = fmt::format("the module asked to send to \"{}\", which rule {}'s "
                               "dynamic_routing_allowed_targets does not allow; the rule's own "
                               "targets are used",
                               t, rule->name);
        return out;
      }
      if (!IsDestination(config, t)) {
        out.note = fmt::format("the module asked to send to \"{}\", which is not a target; the "
                               "rule's own targets are used",
                               t);
        return out;
      }
    }
    if (wanted.empty()) {
      out.note = "the module's __mercure_routing names no target; ignored";
      return out;
    }
    out.changed = true;
    out.targets = wanted;
    out.note = fmt::format("the module chose the target(s) {}", fmt::join(wanted, ", "));
    return out;
  }
  if (flag("use_alternate_target")) {
    const std::string& alt = rule->conditional_alternate_target;
    if (alt.empty() || !IsDestination(config, alt)) {
      out.note = fmt::format("the module asked for the alternate target, but rule {} has no "
                             "valid conditional_alternate_target; the rule's own targets are used",
                             rule->name);
      return out;
    }
    out.changed = true;
    out.targets = {alt};
    out.note = "the module asked for the alternate target " + alt;
  }
  return out;
}

Notification ModuleNotification(const std::vector<std::pair<std::string, Json>>& outputs) {
  Notification n;
  for (const auto& [module, output] : outputs) {
    if (!output.is_object() || !output.contains("__mercure_notification")) {
      continue;
    }
    const Json& note = output["__mercure_notification"];
    if (!note.is_object()) {
      continue;
    }
    if (note.contains("text") && note["text"].is_string() &&
        !note["text"].get<std::string>().empty()) {
      n.text += (n.text.empty() ? "" : "\n") + module + ": " + note["text"].get<std::string>();
    }
    const Json req = note.contains("requested") ? note["requested"] : Json(false);
    n.requested |= req.is_boolean() ? req.get<bool>() : !req.is_null() && req != 0;
  }
  return n;
}

std::string MercureInstanceName(const std::string& series_uid, const std::string& file) {
  return series_uid + "#" + file;
}

}  // namespace ferry
