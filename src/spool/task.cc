#include "spool/task.h"

#include <unistd.h>

namespace ferry {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return "";
  }
  return buf;
}

}  // namespace

nlohmann::json TaskAudience(const nlohmann::json& task) {
  nlohmann::json who = nlohmann::json::object();
  if (task.contains("info") && task["info"].is_object()) {
    for (const char* key : {"applied_rule", "patient_name", "mrn", "acc"}) {
      const nlohmann::json& v = task["info"].value(key, nlohmann::json());
      if (v.is_string()) {
        who[std::string_view(key) == "applied_rule" ? "rule" : key] = v;
      }
    }
  }
  return who;
}

nlohmann::json BuildTaskJson(const TaskSpec& spec, const std::string& ferry_version) {
  using Json = nlohmann::json;
  Json triggered = Json::object();
  for (const auto& r : spec.triggered_rules) {
    triggered[r] = true;
  }
  Json task = {
      {"id", spec.id},
      {"info",
       {{"action", spec.action},
        {"uid", spec.uid},
        {"uid_type", spec.uid_type},
        {"triggered_rules", triggered},
        {"applied_rule", spec.applied_rule},
        {"patient_name", spec.patient_name},
        {"mrn", spec.mrn},
        {"acc", spec.acc},
        {"sender_address", spec.sender_address.empty() ? "MISSING" : spec.sender_address},
        {"sender_aet", spec.sender_aet},
        {"receiver_aet", spec.receiver_aet},
        {"mercure_version", "ferry " + ferry_version},
        {"mercure_appliance", "ferry"},
        {"mercure_server", HostName()},
        {"device_serial_number", spec.device_serial_number},
        {"fail_stage", nullptr}}},
      {"dispatch", Json::object()},
      {"process", Json::object()},
      {"study", Json::object()},
  };
  if (!spec.targets.empty()) {
    task["dispatch"] = {{"target_name", spec.targets},
                        {"status", Json::object()},
                        {"retries", 0},
                        {"next_retry_at", 0},
                        {"series_uid", spec.uid_type == "series" ? spec.uid : ""}};
  }
  if (!spec.modules.empty()) {
    Json steps = Json::array();
    for (size_t i = 0; i < spec.modules.size(); ++i) {
      Json settings = spec.module_settings.is_array()
                          ? (i < spec.module_settings.size() ? spec.module_settings[i]
                                                             : Json::object())
                          : spec.module_settings;
      steps.push_back({{"module_name", spec.modules[i]},
                       {"module_config", nullptr},
                       {"settings", settings},
                       {"retain_input_images", spec.retain_input_images},
                       {"output", nullptr}});
    }
    // mercure writes a single module as an object and a chain as a list.
    task["process"] = steps.size() == 1 ? steps[0] : steps;
  }
  task["ferry"] = spec.ferry;
  return task;
}

}  // namespace ferry
