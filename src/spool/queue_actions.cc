#include "spool/queue_actions.h"

#include <nlohmann/json.hpp>

namespace ferry {

using Json = nlohmann::json;

namespace {

bool HasTargets(const Json& task) {
  if (!task.contains("dispatch") || !task["dispatch"].is_object()) {
    return false;
  }
  const Json& names = task["dispatch"].value("target_name", Json());
  return (names.is_array() && !names.empty()) ||
         (names.is_string() && !names.get<std::string>().empty());
}

}  // namespace

Result<std::string> RetryTask(Spool* spool, Journal* journal, const std::string& task_id) {
  if (!IsSafeFileName(task_id)) {
    return Status::InvalidArgument("\"" + task_id + "\" is not a task id");
  }
  FileSystem* fs = spool->fs();
  std::string dir = JoinPath(spool->StagePath(kError), task_id);
  if (!fs->IsDirectory(dir)) {
    return Status::NotFound("task " + task_id + " is not in " + spool->StagePath(kError));
  }
  auto text = fs->ReadFile(JoinPath(dir, kTaskFile));
  if (!text) {
    return text.error();
  }
  Json task = Json::parse(*text, nullptr, false);
  if (!task.is_object()) {
    return Status::Corruption("task.json of " + task_id + " is not valid JSON");
  }
  // mercure's FailStage name; tasks failed by older versions of ferry say "processing".
  Json stage_failed = task.value("/info/fail_stage"_json_pointer, Json());
  bool processing = stage_failed == "PROCESSING" || stage_failed == "processing";
  std::string_view stage = processing ? kProcessing : kOutgoing;
  if (processing) {
    task["ferry"]["process"]["attempts"] = 0;
    task["ferry"]["process"]["next_attempt_at"] = nullptr;
    task["ferry"]["process"].erase("failure");
    // What the failed run left for diagnosis is not input to the next one.
    fs->RemoveTree(JoinPath(dir, "failed-output"));
  } else {
    if (!HasTargets(task)) {
      return Status::FailedPrecondition("task " + task_id + " has no targets to send to and did "
                                        "not fail while processing; there is nothing to retry");
    }
    task["ferry"]["dispatch"]["attempts"] = 0;
    task["ferry"]["dispatch"]["next_attempt_at"] = nullptr;
    task["ferry"]["dispatch"]["errors"] = Json::object();
    task["ferry"]["dispatch"].erase("failure");
    task["dispatch"]["retries"] = 0;
    task["dispatch"]["next_retry_at"] = nullptr;
  }
  task["ferry"]["stage"] = std::string(stage);
  task["info"]["fail_stage"] = nullptr;
  FERRY_RETURN_IF_ERROR(spool->WriteFileAtomic(dir, kTaskFile, task.dump(2) + "\n",
                                               Durability::kFsync));
  FERRY_RETURN_IF_ERROR(fs->Rename(dir, JoinPath(spool->StagePath(stage), task_id)));
  FERRY_RETURN_IF_ERROR(fs->SyncDir(spool->StagePath(stage)));
  journal->Append({"task.retry_requested", task.value("/info/uid"_json_pointer, std::string()),
                   task_id, {{"stage", std::string(stage)}}});
  return std::string(stage);
}

}  // namespace ferry
