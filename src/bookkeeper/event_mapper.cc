#include "bookkeeper/event_mapper.h"

#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "core/file_system.h"
#include "db/counters.h"

namespace ferry::bookkeeper {
namespace {

using Json = nlohmann::json;
using db::Param;

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) {
    return {};
  }
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return {};
  }
  return it->is_string() ? it->get<std::string>() : it->dump();
}

int64_t Int(const Json& j, const char* key, int64_t fallback = 0) {
  if (!j.is_object()) {
    return fallback;
  }
  auto it = j.find(key);
  if (it != j.end() && it->is_number()) {
    return it->get<int64_t>();
  }
  return fallback;
}

double Real(const Json& j, const char* key) {
  if (!j.is_object()) {
    return 0;
  }
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

// A text parameter, NULL when empty.
Param TextOrNull(const std::string& s) { return s.empty() ? Param(nullptr) : Param(s); }

// The Prometheus spelling of a bucket bound: 0.5, 1, 30.
std::string BoundText(double b) { return fmt::format("{}", b); }

// DICOM tag keyword in series.classified's details.tags -> series column.
constexpr std::pair<const char*, const char*> kTagColumns[] = {
    {"StudyInstanceUID", "study_uid"},
    {"PatientName", "patient_name"},
    {"PatientID", "patient_id"},
    {"PatientBirthDate", "patient_birth_date"},
    {"AccessionNumber", "accession_number"},
    {"StudyDescription", "study_description"},
    {"StudyDate", "study_date"},
    {"SeriesDescription", "series_description"},
    {"SeriesDate", "series_date"},
    {"SeriesNumber", "series_number"},
    {"Modality", "modality"},
    {"SenderAET", "sender_aet"},
    {"SenderAddress", "sender_address"},
    {"ReceiverAET", "receiver_aet"},
};

}  // namespace

std::optional<int64_t> ParseIso8601Micros(const std::string& text) {
  auto t = ParseIso8601(text);
  if (!t) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch()).count();
}

EventMapper::EventMapper(db::Database* db, std::string data_folder)
    : db_(db), data_folder_(std::move(data_folder)) {}

void EventMapper::Count(const std::string& name, const std::string& labels, double by) {
  pending_[{name, labels}] += by;
}

void EventMapper::ObserveLatency(double seconds) {
  const std::string name = "ferry_series_latency_seconds";
  for (double bound : kLatencyBuckets) {
    if (seconds <= bound) {
      Count(name + "_bucket", db::LabelText({{"le", BoundText(bound)}}));
    }
  }
  Count(name + "_bucket", db::LabelText({{"le", "+Inf"}}));
  Count(name + "_sum", "", seconds);
  Count(name + "_count", "");
}

Status EventMapper::FlushCounters() {
  for (const auto& [key, value] : pending_) {
    FERRY_RETURN_IF_ERROR(
        db_->Execute("INSERT INTO counters (name, labels, value) VALUES ($1, $2, $3) "
                     "ON CONFLICT (name, labels) DO UPDATE SET value = counters.value + "
                     "excluded.value",
                     {key.first, key.second, value})
            .status());
  }
  pending_.clear();
  return Status::Ok();
}

Status EventMapper::Apply(const Json& line) {
  Event e;
  e.time = Str(line, "time");
  e.ts_us = ParseIso8601Micros(e.time).value_or(0);
  e.service = Str(line, "service");
  e.pid = Int(line, "pid");
  e.type = Str(line, "event");
  e.task_id = Str(line, "task_id");
  e.series_uid = Str(line, "series_uid");
  static const Json kEmpty = Json::object();
  auto d = line.find("details");
  e.details = d != line.end() && d->is_object() ? &*d : &kEmpty;

  FERRY_RETURN_IF_ERROR(InsertEventRows(e));
  FERRY_RETURN_IF_ERROR(ApplySeries(e));
  FERRY_RETURN_IF_ERROR(ApplyTask(e));
  return ApplyCounters(e);
}

Status EventMapper::InsertEventRows(const Event& e) {
  std::string details = e.details->dump(-1, ' ', false, Json::error_handler_t::replace);
  if (!e.task_id.empty() || !e.series_uid.empty()) {
    FERRY_RETURN_IF_ERROR(
        db_->Execute("INSERT INTO task_events (ts_us, time, service, pid, event, task_id, "
                     "series_uid, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     {e.ts_us, e.time, e.service, e.pid, e.type, TextOrNull(e.task_id),
                      TextOrNull(e.series_uid), details})
            .status());
  } else {
    FERRY_RETURN_IF_ERROR(
        db_->Execute("INSERT INTO system_events (ts_us, time, service, pid, event, details) "
                     "VALUES ($1, $2, $3, $4, $5, $6)",
                     {e.ts_us, e.time, e.service, e.pid, e.type, details})
            .status());
  }
  if (e.type.starts_with("audit.")) {
    std::string actor = Str(*e.details, "actor");
    FERRY_RETURN_IF_ERROR(
        db_->Execute("INSERT INTO audit (ts_us, time, actor, address, action, object, details) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                     {e.ts_us, e.time, actor.empty() ? e.service : actor,
                      TextOrNull(Str(*e.details, "address")), e.type.substr(6),
                      TextOrNull(Str(*e.details, "object")), details})
            .status());
  }
  return Status::Ok();
}

// ---- series ---------------------------------------------------------------------------------

Status EventMapper::UpsertSeries(const Event& e, const std::map<std::string, Param>& columns,
                                 const char* state, bool add_instances) {
  // $1 series_uid, $2 event time, $3 state (or NULL), then the columns.
  std::string names = "series_uid, last_event_us, state";
  std::string values = "$1, $2, COALESCE($3, 'receiving')";
  std::string updates =
      "last_event_us = CASE WHEN series.last_event_us IS NULL OR series.last_event_us < "
      "excluded.last_event_us THEN excluded.last_event_us ELSE series.last_event_us END";
  if (state != nullptr) {
    updates +=
        ", state = CASE WHEN series.last_event_us IS NULL OR series.last_event_us <= "
        "excluded.last_event_us THEN excluded.state ELSE series.state END";
  }
  db::Params params = {e.series_uid, e.ts_us,
                       state != nullptr ? Param(std::string(state)) : Param(nullptr)};
  for (const auto& [column, value] : columns) {
    params.push_back(value);
    names += ", " + column;
    values += fmt::format(", ${}", params.size());
    if (column == "instances" && add_instances) {
      updates += ", instances = series.instances + excluded.instances";
    } else if (column == "first_seen_us") {
      updates +=
          ", first_seen_us = CASE WHEN series.first_seen_us IS NULL OR "
          "excluded.first_seen_us < series.first_seen_us THEN excluded.first_seen_us "
          "ELSE series.first_seen_us END";
    } else {
      updates += fmt::format(", {0} = COALESCE(excluded.{0}, series.{0})", column);
    }
  }
  std::string sql =
      fmt::format("INSERT INTO series ({}) VALUES ({}) ON CONFLICT (series_uid) DO UPDATE SET {}",
                  names, values, updates);
  return db_->Execute(sql, params).status();
}

Status EventMapper::ApplySeries(const Event& e) {
  if (e.series_uid.empty()) {
    return Status::Ok();
  }
  const Json& d = *e.details;
  if (e.type == "series.first_seen") {
    return UpsertSeries(e,
                        {{"study_uid", TextOrNull(Str(d, "study_uid"))},
                         {"sender_aet", TextOrNull(Str(d, "calling_ae"))},
                         {"sender_address", TextOrNull(Str(d, "peer"))},
                         {"receiver_aet", TextOrNull(Str(d, "called_ae"))},
                         {"first_seen_us", e.ts_us}},
                        "receiving", false);
  }
  if (e.type == "series.classified") {
    std::map<std::string, Param> columns;
    const Json* tags = d.contains("tags") && d["tags"].is_object() ? &d["tags"] : nullptr;
    for (const auto& [keyword, column] : kTagColumns) {
      columns[column] = tags != nullptr ? TextOrNull(Str(*tags, keyword)) : Param(nullptr);
    }
    std::string rules;
    if (d.contains("triggered") && d["triggered"].is_array()) {
      for (const auto& r : d["triggered"]) {
        if (r.is_string()) {
          rules += (rules.empty() ? "" : ", ") + r.get<std::string>();
        }
      }
    }
    columns["rule"] = TextOrNull(rules);
    FERRY_RETURN_IF_ERROR(UpsertSeries(e, columns, nullptr, false));
    // Tasks loaded before this event learn their study.
    std::string study = tags != nullptr ? Str(*tags, "StudyInstanceUID") : "";
    if (!study.empty()) {
      FERRY_RETURN_IF_ERROR(db_->Execute("UPDATE tasks SET study_uid = $2 WHERE series_uid = $1 "
                                         "AND study_uid IS NULL",
                                         {e.series_uid, study})
                                .status());
    }
    return Status::Ok();
  }
  if (e.type == "series.complete") {
    FERRY_RETURN_IF_ERROR(UpsertSeries(
        e, {{"complete_us", e.ts_us}, {"instances", Int(d, "instances")}}, "complete", true));
    return LatencyOnSeriesComplete(e);
  }
  if (e.type == "series.discarded") {
    return UpsertSeries(e, {}, "discarded", false);
  }
  return Status::Ok();
}

// ---- tasks ----------------------------------------------------------------------------------

Status EventMapper::EnsureTask(const Event& e) {
  return db_
      ->Execute(
          "INSERT INTO tasks (task_id, series_uid, state, created_us) VALUES ($1, $2, "
          "'queued', $3) ON CONFLICT (task_id) DO UPDATE SET series_uid = "
          "COALESCE(tasks.series_uid, excluded.series_uid)",
          {e.task_id, TextOrNull(e.series_uid), e.ts_us})
      .status();
}

Status EventMapper::CreateTask(const Event& e, const std::string& action, const std::string& state,
                               const std::string& stage, const std::string& study_uid) {
  const Json& d = *e.details;
  Json targets = d.contains("targets") && d["targets"].is_array() ? d["targets"] : Json::array();
  bool terminal = state == "success" || state == "discarded";
  db::Params params = {e.task_id,
                       TextOrNull(Str(d, "parent_task")),
                       TextOrNull(e.series_uid),
                       TextOrNull(study_uid),
                       TextOrNull(action),
                       TextOrNull(Str(d, "rule")),
                       targets.dump(),
                       state,
                       TextOrNull(stage),
                       TextOrNull(Str(d, "priority")),
                       TextOrNull(Str(d, "patient_name")),
                       TextOrNull(Str(d, "mrn")),
                       TextOrNull(Str(d, "acc")),
                       e.ts_us,
                       terminal ? Param(e.ts_us) : Param(nullptr)};
  FERRY_RETURN_IF_ERROR(
      db_->Execute(
             "INSERT INTO tasks (task_id, parent_id, series_uid, study_uid, action, rule, "
             "targets, state, stage, priority, patient_name, patient_id, accession_number, "
             "created_us, updated_us, completed_us) VALUES ($1, $2, $3, COALESCE($4, (SELECT "
             "study_uid FROM series WHERE series_uid = $3)), $5, $6, $7, $8, $9, $10, $11, $12, "
             "$13, $14, $14, $15) "
             "ON CONFLICT (task_id) DO UPDATE SET "
             "parent_id = COALESCE(excluded.parent_id, tasks.parent_id), "
             "series_uid = COALESCE(excluded.series_uid, tasks.series_uid), "
             "study_uid = COALESCE(tasks.study_uid, excluded.study_uid), "
             "action = excluded.action, rule = excluded.rule, targets = excluded.targets, "
             "priority = excluded.priority, patient_name = excluded.patient_name, "
             "patient_id = excluded.patient_id, accession_number = excluded.accession_number, "
             "created_us = excluded.created_us, "
             "state = CASE WHEN tasks.updated_us IS NULL OR tasks.updated_us <= "
             "excluded.updated_us THEN excluded.state ELSE tasks.state END, "
             "stage = CASE WHEN tasks.updated_us IS NULL OR tasks.updated_us <= "
             "excluded.updated_us THEN excluded.stage ELSE tasks.stage END, "
             "completed_us = CASE WHEN tasks.updated_us IS NULL OR tasks.updated_us <= "
             "excluded.updated_us THEN excluded.completed_us ELSE tasks.completed_us END, "
             "updated_us = CASE WHEN tasks.updated_us IS NULL OR tasks.updated_us <= "
             "excluded.updated_us THEN excluded.updated_us ELSE tasks.updated_us END",
             params)
          .status());
  for (const auto& t : targets) {
    if (t.is_string()) {
      FERRY_RETURN_IF_ERROR(db_->Execute("INSERT INTO task_targets (task_id, target) VALUES "
                                         "($1, $2) ON CONFLICT (task_id, target) DO NOTHING",
                                         {e.task_id, t.get<std::string>()})
                                .status());
    }
  }
  return Status::Ok();
}

Status EventMapper::UpdateTaskState(const Event& e, const std::string& state,
                                    const std::map<std::string, Param>& columns) {
  FERRY_RETURN_IF_ERROR(EnsureTask(e));
  db::Params params = {e.task_id, e.ts_us};
  std::string sets = "updated_us = $2";
  if (!state.empty()) {
    params.push_back(state);
    sets += fmt::format(", state = ${}", params.size());
  }
  for (const auto& [column, value] : columns) {
    params.push_back(value);
    sets += fmt::format(", {} = ${}", column, params.size());
  }
  return db_
      ->Execute(fmt::format("UPDATE tasks SET {} WHERE task_id = $1 AND (updated_us IS NULL OR "
                            "updated_us <= $2)",
                            sets),
                params)
      .status();
}

db::Param EventMapper::TaskSnapshot(const std::string& task_id, const char* stage) const {
  std::string path = JoinPath(JoinPath(JoinPath(data_folder_, stage), task_id), "task.json");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return nullptr;
  }
  std::ostringstream text;
  text << in.rdbuf();
  // Stored as loaded; only a document that parses is kept.
  auto j = Json::parse(text.str(), nullptr, false);
  if (j.is_discarded()) {
    return nullptr;
  }
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string EventMapper::ActionOfStudyTask(const std::string& task_id,
                                           const std::string& stage) const {
  for (const char* s : {stage.c_str(), "outgoing", "processing", "success", "error", "discard"}) {
    Param snap = TaskSnapshot(task_id, s);
    if (const auto* text = std::get_if<std::string>(&snap)) {
      auto j = Json::parse(*text, nullptr, false);
      std::string action = j.is_object() && j.contains("info") ? Str(j["info"], "action") : "";
      if (!action.empty()) {
        return action;
      }
    }
  }
  if (stage == "outgoing") {
    return "route";
  }
  if (stage == "processing") {
    return "process";
  }
  if (stage == "success") {
    return "notification";
  }
  return "discard";
}

Status EventMapper::ApplyTask(const Event& e) {
  if (e.task_id.empty()) {
    return Status::Ok();
  }
  const Json& d = *e.details;
  const std::string& t = e.type;
  if (t == "task.created") {
    std::string stage = Str(d, "stage");
    std::string action = Str(d, "action");
    Count("ferry_tasks_created_total", db::LabelText({{"action", action}}));
    return CreateTask(e, action, stage == "success" ? "success" : "queued", stage, "");
  }
  if (t == "series.discarded") {
    Count("ferry_tasks_created_total", db::LabelText({{"action", "discard"}}));
    FERRY_RETURN_IF_ERROR(CreateTask(e, "discard", "discarded", "discard", ""));
    return UpdateTaskState(e, "", {{"task_json", TaskSnapshot(e.task_id, "discard")}});
  }
  if (t == "study.complete" || t == "study.discarded") {
    bool discarded = t == "study.discarded";
    std::string stage = discarded ? "discard" : Str(d, "stage");
    std::string action = discarded ? "discard" : ActionOfStudyTask(e.task_id, stage);
    Count("ferry_tasks_created_total", db::LabelText({{"action", action}}));
    std::string state = discarded ? "discarded" : stage == "success" ? "success" : "queued";
    return CreateTask(e, action, state, stage, Str(d, "study_uid"));
  }
  if (t == "task.follow_up") {
    FERRY_RETURN_IF_ERROR(EnsureTask(e));
    return db_
        ->Execute("UPDATE tasks SET parent_id = $2 WHERE task_id = $1",
                  {e.task_id, TextOrNull(Str(d, "parent_task"))})
        .status();
  }
  if (t == "dispatch.begin") {
    return UpdateTaskState(
        e, "dispatching",
        {{"stage", std::string("dispatching")}, {"attempts", Int(d, "attempt", 1)}});
  }
  if (t == "dispatch.failed") {
    FERRY_RETURN_IF_ERROR(EnsureTask(e));
    return db_
        ->Execute(
            "UPDATE tasks SET last_error = $2 WHERE task_id = $1 AND (updated_us IS NULL "
            "OR updated_us <= $3)",
            {e.task_id, fmt::format("{}: {}", Str(d, "target"), Str(d, "reason")), e.ts_us})
        .status();
  }
  if (t == "dispatch.retry_scheduled") {
    return UpdateTaskState(
        e, "retrying", {{"stage", std::string("outgoing")}, {"attempts", Int(d, "attempt", 1)}});
  }
  if (t == "task.completed") {
    Count("ferry_tasks_finished_total", db::LabelText({{"state", "success"}}));
    FERRY_RETURN_IF_ERROR(UpdateTaskState(e, "success",
                                          {{"stage", std::string("success")},
                                           {"completed_us", e.ts_us},
                                           {"attempts", Int(d, "attempt", 1)},
                                           {"task_json", TaskSnapshot(e.task_id, "success")}}));
    return LatencyOnTaskCompleted(e);
  }
  if (t == "task.failed") {
    Count("ferry_tasks_finished_total", db::LabelText({{"state", "error"}}));
    return UpdateTaskState(e, "error",
                           {{"stage", std::string("error")},
                            {"completed_us", e.ts_us},
                            {"attempts", Int(d, "attempt", 1)},
                            {"last_error", TextOrNull(Str(d, "reason"))},
                            {"task_json", TaskSnapshot(e.task_id, "error")}});
  }
  if (t == "task.discarded") {
    Count("ferry_tasks_finished_total", db::LabelText({{"state", "discarded"}}));
    return UpdateTaskState(e, "discarded",
                           {{"stage", std::string("discard")},
                            {"completed_us", e.ts_us},
                            {"task_json", TaskSnapshot(e.task_id, "discard")}});
  }
  if (t == "task.retry_requested") {
    std::string stage = Str(d, "stage");
    return UpdateTaskState(e, "queued",
                           {{"stage", stage.empty() ? std::string("outgoing") : stage},
                            {"attempts", int64_t{0}},
                            {"completed_us", nullptr}});
  }
  if (t == "task.recovered") {
    std::string stage = Str(d, "stage");
    return UpdateTaskState(e, "queued",
                           {{"stage", stage.empty() ? std::string("outgoing") : stage}});
  }
  // The processor: a job runs (state "processing"), is put back for a later attempt, or its
  // result moves on to outgoing/ (queued for the dispatcher). Success and failure come as
  // task.completed and task.failed.
  if (t == "process.begin") {
    return UpdateTaskState(
        e, "processing",
        {{"stage", std::string("processing")}, {"attempts", Int(d, "attempt", 1)}});
  }
  if (t == "process.retry_scheduled") {
    return UpdateTaskState(e, "retrying",
                           {{"stage", std::string("processing")},
                            {"last_error", TextOrNull(Str(d, "reason"))}});
  }
  if (t == "process.complete" && Str(d, "stage") == "outgoing") {
    return UpdateTaskState(e, "queued", {{"stage", std::string("outgoing")}});
  }
  return Status::Ok();
}

// ---- latency histogram ----------------------------------------------------------------------
// The time from a series' last instance (series.complete's last_arrival) to the task.completed
// of its task. The two events come from different journals (router, dispatcher) and either may
// be loaded first; the one loaded second observes, so each completed task counts once.

Status EventMapper::LatencyOnTaskCompleted(const Event& e) {
  if (e.series_uid.empty() || e.ts_us == 0) {
    return Status::Ok();
  }
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows, db_->Query("SELECT details FROM task_events WHERE series_uid = $1 AND event = "
                                "'series.complete' ORDER BY ts_us DESC LIMIT 1",
                                {e.series_uid}));
  if (rows.empty()) {
    return Status::Ok();  // observed when series.complete is loaded
  }
  auto details = Json::parse(rows[0].Text(0), nullptr, false);
  auto last = ParseIso8601Micros(Str(details, "last_arrival"));
  if (last && *last <= e.ts_us) {
    ObserveLatency(static_cast<double>(e.ts_us - *last) / 1e6);
  }
  return Status::Ok();
}

Status EventMapper::LatencyOnSeriesComplete(const Event& e) {
  auto last = ParseIso8601Micros(Str(*e.details, "last_arrival"));
  if (!last) {
    return Status::Ok();
  }
  // Tasks of this series whose task.completed was loaded before this event.
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows,
      db_->Query("SELECT DISTINCT te.ts_us FROM task_events te WHERE te.series_uid = $1 AND "
                 "te.event = 'task.completed' AND te.ts_us >= $2",
                 {e.series_uid, *last}));
  for (const auto& row : rows.rows) {
    ObserveLatency(static_cast<double>(row.Int(0) - *last) / 1e6);
  }
  return Status::Ok();
}

// ---- counters -------------------------------------------------------------------------------

Status EventMapper::ApplyCounters(const Event& e) {
  const Json& d = *e.details;
  const std::string& t = e.type;
  Count("ferry_journal_events_total", db::LabelText({{"service", e.service}}));
  if (t == "association.closed") {
    Count("ferry_instances_received_total", "", static_cast<double>(Int(d, "instances")));
    Count("ferry_bytes_received_total", "", Real(d, "bytes"));
    Count("ferry_associations_total", db::LabelText({{"result", Str(d, "result")}}));
  } else if (t == "association.rejected") {
    Count("ferry_associations_rejected_total", "");
  } else if (t == "instance.rejected") {
    Count("ferry_instances_rejected_total", "");
  } else if (t == "series.first_seen") {
    Count("ferry_series_received_total", "");
  } else if (t == "dispatch.begin") {
    Count("ferry_dispatch_attempts_total", db::LabelText({{"target", Str(d, "target")}}));
  } else if (t == "dispatch.failed") {
    Count("ferry_dispatch_failures_total", db::LabelText({{"target", Str(d, "target")}}));
  } else if (t == "dispatch.complete" || t == "dispatch.progress") {
    std::string labels = db::LabelText({{"target", Str(d, "target")}});
    Count("ferry_dispatch_instances_total", labels, static_cast<double>(Int(d, "instances")));
    Count("ferry_dispatch_bytes_total", labels, Real(d, "bytes"));
  } else if (t == "notify.sent" || t == "notify.failed") {
    Count("ferry_notifications_total",
          db::LabelText({{"channel", Str(d, "channel")},
                     {"result", t == "notify.sent" ? "sent" : "failed"}}));
  } else if (t == "cleaner.deleted") {
    Count("ferry_cleaner_deleted_total", db::LabelText({{"reason", Str(d, "reason")}}));
  }
  return Status::Ok();
}

}  // namespace ferry::bookkeeper
