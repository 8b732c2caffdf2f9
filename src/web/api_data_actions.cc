// The operator's actions on the queue (suspend/resume, retry, discard, force a series), the
// rule evaluator and the target check. They act on the spool exactly as the CLI commands do
// (the same functions or the same marker files), so the services see no difference; each
// performed action leaves an audit.<action> event in the web journal.
#include <sstream>

#include <fmt/format.h>

#include "app/rules_cli.h"
#include "app/targets_cli.h"
#include "core/file_system.h"
#include "core/logging.h"
#include "spool/queue_actions.h"
#include "spool/control.h"
#include "spool/spool.h"
#include "web/api_data_internal.h"

namespace ferry::web::data {
namespace {

std::string PathParam(const Request& req, const std::string& name) {
  auto it = req.path_params.find(name);
  return it == req.path_params.end() ? std::string() : it->second;
}

// The optional "reason" of an action's JSON body.
Result<std::string> Reason(const Request& req) {
  FERRY_ASSIGN_OR_RETURN(nlohmann::json body, JsonBody(req));
  if (!body.contains("reason") || body["reason"].is_null()) {
    return std::string();
  }
  if (!body["reason"].is_string()) {
    return Status::InvalidArgument("\"reason\" must be a string");
  }
  return body["reason"].get<std::string>();
}

Response SetQueueSuspended(const Request& req, Context& ctx, bool suspend) {
  const std::string activity = PathParam(req, "activity");
  if (!IsSuspendableActivity(activity)) {
    return Response::Error(404, "\"" + activity +
                                    "\" is not an activity that can be suspended; use dispatch "
                                    "or processing");
  }
  auto reason = Reason(req);
  if (!reason) {
    return Response::Error(400, reason.error().message());
  }
  const std::string& data = ctx.config->data_folder;
  bool was = IsSuspended(data, activity);
  Status s = SetSuspended(data, activity, suspend, req.user, *reason);
  if (!s.ok()) {
    Logger("web")->error("cannot {} {}: {}", suspend ? "suspend" : "resume", activity,
                         s.ToString());
    return Response::Error(500, fmt::format("cannot {} {}: {}", suspend ? "suspend" : "resume",
                                            activity, s.message()));
  }
  Audit(ctx, req, suspend ? "suspend" : "resume", "queue/" + activity,
        {{"activity", activity}, {"reason", *reason}, {"was_suspended", was}});
  std::string what = activity == "dispatch" ? "no new transfer starts"
                                            : "no new processing task starts";
  std::string message;
  if (suspend) {
    message = fmt::format("{} {} by {}: {} until it is resumed (work already running finishes)",
                          activity, was ? "was already suspended; now suspended" : "suspended",
                          req.user, what);
  } else {
    message = was ? fmt::format("{} resumed by {}", activity, req.user)
                  : fmt::format("{} was not suspended; nothing changed", activity);
  }
  return Response::Json({{"activity", activity}, {"suspended", suspend}, {"message", message}});
}

// The series UID of a task, from its task.json in `dir` (empty when unreadable).
std::string TaskSeriesUid(const std::string& dir) {
  auto text = DefaultFileSystem()->ReadFile(JoinPath(dir, kTaskFile));
  if (!text) {
    return "";
  }
  nlohmann::json task = nlohmann::json::parse(*text, nullptr, false);
  if (!task.is_object()) {
    return "";
  }
  return task.value("/info/uid"_json_pointer, std::string());
}

// 409 naming where a task is instead of error/, or 404 when it is nowhere.
Response NotInError(const std::string& data, const std::string& id, const std::string& action) {
  auto stage = FindTaskStage(data, id);
  if (!stage) {
    return Response::Error(404, "no task " + id + " in the spool (" + data +
                                    "); it may have been removed by the cleaner");
  }
  return Response::Error(409, fmt::format("task {} is in {}/, not in error/; only failed tasks "
                                          "can be {}",
                                          id, *stage, action));
}

Response ForceSeries(const Request& req, Context& ctx, const std::string& rule) {
  const std::string uid = PathParam(req, "uid");
  if (!IsSafeFileName(uid)) {
    return Response::Error(400, "\"" + uid + "\" is not a valid Series Instance UID");
  }
  Spool spool(ctx.config->data_folder, "web", DefaultFileSystem());
  std::string folder = spool.SeriesPath(uid);
  if (!spool.fs()->IsDirectory(folder)) {
    return Response::Error(404, "series " + uid + " is not in " + spool.StagePath(kIncoming) +
                                    " (not received, or already routed)");
  }
  Status s = spool.Init();
  if (s.ok()) {
    s = rule.empty()
            ? spool.WriteFileAtomic(folder, kForceCompleteFile, "", Durability::kFsync)
            : spool.WriteFileAtomic(folder, kForceRuleFile, rule, Durability::kFsync);
  }
  if (!s.ok()) {
    if (!spool.fs()->IsDirectory(folder)) {
      return Response::Error(409, "series " + uid + " was routed while it was being marked; "
                                  "nothing to force");
    }
    Logger("web")->error("cannot mark series {} complete: {}", uid, s.ToString());
    return Response::Error(500, "cannot mark series " + uid + " complete: " + s.message());
  }
  if (rule.empty()) {
    Audit(ctx, req, "series_complete", "series/" + uid, nlohmann::json::object(), "", uid);
  } else {
    Audit(ctx, req, "series_route", "series/" + uid, {{"rule", rule}}, "", uid);
  }
  return Response::Json(
      {{"series_uid", uid},
       {"rule", rule.empty() ? nlohmann::json() : nlohmann::json(rule)},
       {"message", "series " + uid + " marked complete" + (rule.empty() ? "" : " with rule " + rule) +
                       "; the router routes it now"}});
}

}  // namespace

Response SuspendQueue(const Request& req, Context& ctx) {
  return SetQueueSuspended(req, ctx, true);
}

Response ResumeQueue(const Request& req, Context& ctx) {
  return SetQueueSuspended(req, ctx, false);
}

Response RetryTaskAction(const Request& req, Context& ctx) {
  const std::string id = PathParam(req, "id");
  if (!IsSafeFileName(id)) {
    return Response::Error(400, "\"" + id + "\" is not a task id");
  }
  const std::string& data = ctx.config->data_folder;
  Spool spool(data, "web", DefaultFileSystem());
  Status s = spool.Init();
  std::string series_uid = TaskSeriesUid(JoinPath(spool.StagePath(kError), id));
  std::string stage(kOutgoing);
  if (s.ok()) {
    auto retried = RetryTask(&spool, ctx.journal, id);
    s = retried.status();
    stage = retried ? *retried : stage;
  }
  if (!s.ok()) {
    switch (s.code()) {
      case Status::Code::kNotFound:
        return NotInError(data, id, "retried");
      case Status::Code::kFailedPrecondition:
      case Status::Code::kInvalidArgument:
        return Response::Error(409, "task " + id + " cannot be retried: " + s.message());
      default:
        Logger("web")->error("cannot retry task {}: {} task={}", id, s.ToString(), id);
        return Response::Error(500, "cannot retry task " + id + ": " + s.message());
    }
  }
  Audit(ctx, req, "retry", "task/" + id, nlohmann::json::object(), id, series_uid);
  bool processing = stage == kProcessing;
  return Response::Json(
      {{"task_id", id},
       {"stage", stage},
       {"message", "task " + id + " is queued again in " + spool.StagePath(stage) +
                       (processing ? "; the processor runs its modules again"
                                   : "; the dispatcher sends it now")}});
}

Response DiscardTask(const Request& req, Context& ctx) {
  const std::string id = PathParam(req, "id");
  if (!IsSafeFileName(id)) {
    return Response::Error(400, "\"" + id + "\" is not a task id");
  }
  auto reason = Reason(req);
  if (!reason) {
    return Response::Error(400, reason.error().message());
  }
  const std::string& data = ctx.config->data_folder;
  Spool spool(data, "web", DefaultFileSystem());
  FileSystem* fs = spool.fs();
  std::string from = JoinPath(spool.StagePath(kError), id);
  std::string to = JoinPath(spool.StagePath(kDiscard), id);
  if (!fs->IsDirectory(from)) {
    return NotInError(data, id, "discarded");
  }
  std::string series_uid = TaskSeriesUid(from);
  Status s = fs->CreateDirs(spool.StagePath(kDiscard));
  if (s.ok() && fs->Exists(to)) {
    return Response::Error(409, "task " + id + " is already in " + spool.StagePath(kDiscard) +
                                    "; remove the copy in error/ by hand if it is stale");
  }
  if (s.ok()) {
    s = fs->Rename(from, to);
  }
  if (!s.ok()) {
    if (!fs->IsDirectory(from)) {
      return NotInError(data, id, "discarded");  // moved meanwhile (retried by someone else)
    }
    Logger("web")->error("cannot discard task {}: {} task={}", id, s.ToString(), id);
    return Response::Error(500, "cannot move task " + id + " to discard/: " + s.message());
  }
  Status synced = fs->SyncDir(spool.StagePath(kDiscard));
  if (synced.ok()) {
    synced = fs->SyncDir(spool.StagePath(kError));
  }
  if (!synced.ok()) {
    Logger("web")->warn("task {} moved to discard/ but the folder could not be synced: {} task={}",
                        id, synced.ToString(), id);
  }
  ctx.journal->Append(
      {"task.discarded", series_uid, id, {{"by", req.user}, {"reason", *reason}}});
  Audit(ctx, req, "discard", "task/" + id, {{"reason", *reason}}, id, series_uid);
  return Response::Json({{"task_id", id},
                         {"stage", "discard"},
                         {"message", "task " + id + " moved from error/ to discard/; it is kept "
                                     "until the cleaner's retention period ends"}});
}

Response CompleteSeries(const Request& req, Context& ctx) { return ForceSeries(req, ctx, ""); }

Response RouteSeries(const Request& req, Context& ctx) {
  auto body = JsonBody(req);
  if (!body) {
    return Response::Error(400, body.error().message());
  }
  if (!body->contains("rule") || !(*body)["rule"].is_string() ||
      (*body)["rule"].get<std::string>().empty()) {
    return Response::Error(400, "the body must name the rule to apply: {\"rule\": \"NAME\"}");
  }
  std::string rule = (*body)["rule"].get<std::string>();
  bool known = false;
  std::string enabled;
  for (const auto& r : ctx.config->rules) {
    known |= r.name == rule && !r.disabled;
    if (!r.disabled) {
      enabled += (enabled.empty() ? "" : ", ") + r.name;
    }
  }
  if (!known) {
    return Response::Error(400, fmt::format("no enabled rule is named \"{}\" in {}; enabled "
                                            "rules: {}",
                                            rule, ctx.config->path,
                                            enabled.empty() ? "none" : enabled));
  }
  return ForceSeries(req, ctx, rule);
}

Response CompleteStudy(const Request& req, Context& ctx) {
  const std::string uid = PathParam(req, "uid");
  if (uid.empty() || uid.size() > 64) {
    return Response::Error(400, "\"" + uid + "\" is not a valid Study Instance UID");
  }
  Spool spool(ctx.config->data_folder, "web", DefaultFileSystem());
  FileSystem* fs = spool.fs();
  std::string studies = spool.StagePath(kStudies);
  auto keys = fs->ListDir(studies);
  std::vector<std::string> marked;
  std::vector<std::string> rules;
  for (const auto& key : keys ? *keys : std::vector<std::string>()) {
    std::string dir = JoinPath(studies, key);
    auto text = fs->ReadFile(JoinPath(dir, kStudyFile));
    nlohmann::json state = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (!state.is_object() || state.value("study_uid", std::string()) != uid) {
      continue;
    }
    // One study may wait for several study-level rules: each completes now.
    Status s = spool.WriteFileAtomic(dir, kForceCompleteFile, "", Durability::kFsync);
    if (!s.ok()) {
      if (!fs->IsDirectory(dir)) {
        continue;  // completed meanwhile
      }
      Logger("web")->error("cannot mark study {} complete: {}", uid, s.ToString());
      return Response::Error(500, "cannot mark study " + uid + " complete: " + s.message());
    }
    marked.push_back(key);
    rules.push_back(state.value("rule", std::string()));
  }
  if (marked.empty()) {
    return Response::Error(404, "study " + uid + " is not waiting for completion in " + studies +
                                    " (no study-level rule collects it, or it is already "
                                    "complete)");
  }
  Audit(ctx, req, "study_complete", "study/" + uid, {{"rules", rules}}, "", "");
  return Response::Json({{"study_uid", uid},
                         {"rules", rules},
                         {"message", fmt::format("study {} marked complete for rule(s) {}; the "
                                                 "router finishes it now",
                                                 uid, fmt::join(rules, ", "))}});
}

Response EvaluateRule(const Request& req, Context& ctx) {
  std::string rule;
  std::string rule_name;
  const UploadedFile* dicom = nullptr;
  std::string tags_text;
  bool multipart = req.content_type.find("multipart/form-data") != std::string::npos;
  if (multipart || !req.files.empty()) {
    for (const auto& f : req.files) {
      if (f.field == "file") {
        dicom = &f;
      } else if (f.field == "rule") {
        rule = f.content;
      } else if (f.field == "rule_name") {
        rule_name = f.content;
      } else if (f.field == "tags") {
        tags_text = f.content;
      }
    }
    if (auto it = req.query.find("rule"); rule.empty() && it != req.query.end()) {
      rule = it->second;
    }
    if (dicom == nullptr && tags_text.empty()) {
      return Response::Error(400, "upload the DICOM file as form field \"file\" (or send JSON "
                                  "{\"rule\": ..., \"tags\": {...}})");
    }
  } else {
    auto body = JsonBody(req);
    if (!body) {
      return Response::Error(400, body.error().message() +
                                      "; send {\"rule\": \"<expression>\", \"tags\": {...}}");
    }
    if (body->contains("rule") && !(*body)["rule"].is_string()) {
      return Response::Error(400, "\"rule\" must be a string (the rule expression)");
    }
    rule = body->value("rule", "");
    rule_name = body->value("rule_name", "");
    if (!body->contains("tags") || !(*body)["tags"].is_object()) {
      return Response::Error(400, "\"tags\" must be an object of tag names and string values "
                                  "(mercure's .tags form), e.g. {\"Modality\": \"MR\"}");
    }
    tags_text = (*body)["tags"].dump();
  }
  if (!rule_name.empty()) {
    const RuleOptions* found = nullptr;
    for (const auto& r : ctx.config->rules) {
      found = r.name == rule_name ? &r : found;
    }
    if (found == nullptr) {
      return Response::Error(404, "no rule is named \"" + rule_name + "\" in " +
                                      ctx.config->path);
    }
    rule = found->rule;
  }
  if (rule.empty()) {
    return Response::Error(400, "give the rule expression as \"rule\" (or a configured rule's "
                                "name as \"rule_name\")");
  }

  RuleEvalReport report;
  if (dicom != nullptr) {
    // dicom::ReadInstanceHeader reads files: stage the upload in tmp/web.
    Spool spool(ctx.config->data_folder, "web", DefaultFileSystem());
    Status s = spool.Init();
    std::string path = spool.NewTempPath(".dcm");
    if (s.ok()) {
      auto file = spool.fs()->NewWritableFile(path);
      s = file ? (*file)->Append(dicom->content) : file.error();
      if (s.ok()) {
        s = (*file)->Close();
      }
    }
    if (!s.ok()) {
      spool.fs()->RemoveFile(path);
      Logger("web")->error("cannot stage an uploaded DICOM file: {}", s.ToString());
      return Response::Error(500, "cannot store the uploaded file for reading: " + s.message());
    }
    report = EvaluateRuleOnDicomFile(rule, path, /*explain=*/true);
    spool.fs()->RemoveFile(path);
    // The message names the staging path; the client knows the file by its name.
    std::string staged = path;
    for (size_t pos = report.message.find(staged); pos != std::string::npos;
         pos = report.message.find(staged)) {
      report.message.replace(pos, staged.size(),
                             dicom->filename.empty() ? "the upload" : dicom->filename);
    }
  } else {
    report = EvaluateRuleOnTagsJson(rule, tags_text, "tags", /*explain=*/true);
  }
  std::ostringstream text;
  PrintRuleEvalReport(report, /*explain=*/true, text);
  nlohmann::json tags_read = nlohmann::json::array();
  for (const auto& t : report.tags_read) {
    tags_read.push_back({{"name", t.name},
                         {"value", t.missing ? nlohmann::json() : nlohmann::json(t.value)},
                         {"missing", t.missing}});
  }
  return Response::Json({{"rule", rule},
                         {"outcome", RuleEvalOutcomeName(report.outcome)},
                         {"message", report.message},
                         {"error_position", report.error_position},
                         {"tags_read", tags_read},
                         {"value", report.value},
                         {"output", text.str()}});
}

Response TestTarget(const Request& req, Context& ctx) {
  const std::string name = PathParam(req, "name");
  if (FindTarget(*ctx.config, name) == nullptr) {
    std::string known;
    for (const auto& t : ctx.config->targets) {
      known += (known.empty() ? "" : ", ") + t.name;
    }
    return Response::Error(404, fmt::format("no target is named \"{}\" in {}; {}", name,
                                            ctx.config->path,
                                            known.empty() ? "the config defines none"
                                                          : "targets: " + known));
  }
  std::ostringstream out;
  int code = RunTargetsTest(*ctx.config, name, out);
  std::string message = out.str();
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
    message.pop_back();
  }
  for (const char* prefix : {"PASS ", "FAIL "}) {
    if (message.starts_with(prefix)) {
      message.erase(0, 5);
    }
  }
  bool ok = code == 0;
  Audit(ctx, req, "target_test", "target/" + name, {{"ok", ok}, {"message", message}});
  return Response::Json({{"name", name}, {"ok", ok}, {"message", message}});
}

}  // namespace ferry::web::data
