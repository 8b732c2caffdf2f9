// AddDataRoutes: the data and queue endpoints of the REST API, each described once (path, role,
// parameters) for the server and the OpenAPI document. The handlers are in api_data_*.cc.
#include "web/api_data_internal.h"
#include "web/route.h"

namespace ferry::web {
namespace {

RouteParam Q(std::string name, std::string description, std::string type = "string") {
  return {std::move(name), "query", std::move(type), std::move(description), false};
}

RouteParam P(std::string name, std::string description) {
  return {std::move(name), "path", "string", std::move(description), true};
}

// Operator actions are refused when they could not be audited (no journal).
Handler Audited(Handler handler) {
  return [handler = std::move(handler)](const Request& req, Context& ctx) {
    if (ctx.journal == nullptr) {
      return Response::Error(500, "the web service has no journal open, so this action could "
                                  "not be audited and is refused; check the web service's log");
    }
    return handler(req, ctx);
  };
}

std::vector<RouteParam> PageParams(std::vector<RouteParam> params, const std::string& time_of) {
  params.push_back(Q("from", "only " + time_of + " at or after this time (ISO 8601 or epoch "
                             "seconds)"));
  params.push_back(Q("to", "only " + time_of + " at or before this time (ISO 8601 or epoch "
                           "seconds; a date alone includes that whole day)"));
  params.push_back(Q("limit", "page size, default 50, at most 500", "integer"));
  params.push_back(Q("offset", "rows to skip, default 0", "integer"));
  return params;
}

}  // namespace

void AddDataRoutes(std::vector<Route>* routes) {
  const RouteParam kTaskId = P("id", "task id");
  const RouteParam kSeriesUid = P("uid", "Series Instance UID");

  routes->push_back({"GET", "/api/v1/status", Role::kViewer, false,
                     "Services, queue sizes per stage, disk usage, suspended activities, version",
                     {}, "", data::GetStatus});
  routes->push_back(
      {"GET", "/api/v1/tasks", Role::kViewer, false, "Search tasks, newest first",
       PageParams({Q("patient_name", "case-insensitive substring of the patient name"),
                   Q("patient_name_prefix", "case-insensitive start of the patient name "
                                            "(uses an index; prefer it to patient_name)"),
                   Q("patient_id", "patient id (exact)"),
                   Q("accession", "accession number (exact)"),
                   Q("study_uid", "Study Instance UID (exact)"),
                   Q("series_uid", "Series Instance UID (exact)"),
                   Q("rule", "rule that created the task (exact)"),
                   Q("target", "a target the task sends to (exact)"),
                   Q("state", "task state (exact): queued, dispatching, retrying, success, "
                              "error or discarded"),
                   Q("action", "route, process, both, notification or discard"),
                   Q("parent_id", "follow-up tasks of this task"),
                   Q("sort", "created (default -created), updated, patient_name, rule, state or "
                             "attempts; a leading - sorts descending")},
                  "tasks created"),
       "", data::SearchTasks});
  routes->push_back({"GET", "/api/v1/tasks/{id}", Role::kViewer, false,
                     "One task: its row, event timeline, follow-up tasks and task.json",
                     {kTaskId}, "", data::GetTask});
  routes->push_back({"GET", "/api/v1/tasks/{id}/log", Role::kViewer, false,
                     "The logs of a task's processing modules (one per step), from its folder",
                     {kTaskId}, "", data::GetTaskLog});
  routes->push_back(
      {"GET", "/api/v1/series", Role::kViewer, false, "Search series, newest first",
       PageParams({Q("patient_name", "case-insensitive substring of the patient name"),
                   Q("patient_name_prefix", "case-insensitive start of the patient name "
                                            "(uses an index; prefer it to patient_name)"),
                   Q("patient_id", "patient id (exact)"),
                   Q("accession", "accession number (exact)"),
                   Q("study_uid", "Study Instance UID (exact)"),
                   Q("modality", "modality (exact), e.g. MR"),
                   Q("state", "series state (exact)"), Q("rule", "rule (exact)"),
                   Q("sort", "first_seen (default -first_seen), patient_name, modality, state "
                             "or instances; a leading - sorts descending")},
                  "series first seen"),
       "", data::SearchSeries});
  routes->push_back({"GET", "/api/v1/series/{uid}", Role::kViewer, false,
                     "One series: its row, its tasks and its events", {kSeriesUid}, "",
                     data::GetSeries});

  const std::string kReasonBody = "{\"reason\": \"why\"} (optional)";
  routes->push_back({"POST", "/api/v1/queue/{activity}/suspend", Role::kOperator, false,
                     "Suspend dispatch or processing: running work finishes, nothing new starts",
                     {P("activity", "dispatch or processing")}, kReasonBody,
                     Audited(data::SuspendQueue)});
  routes->push_back({"POST", "/api/v1/queue/{activity}/resume", Role::kOperator, false,
                     "Resume dispatch or processing", {P("activity", "dispatch or processing")},
                     kReasonBody, Audited(data::ResumeQueue)});
  routes->push_back({"POST", "/api/v1/tasks/{id}/retry", Role::kOperator, false,
                     "Put a failed task (error/) back to work: processing when a module failed, else dispatch", {kTaskId}, "",
                     Audited(data::RetryTaskAction)});
  routes->push_back({"POST", "/api/v1/tasks/{id}/discard", Role::kOperator, false,
                     "Move a failed task from error/ to discard/", {kTaskId}, kReasonBody,
                     Audited(data::DiscardTask)});
  routes->push_back({"POST", "/api/v1/series/{uid}/complete", Role::kOperator, false,
                     "Force a series in incoming/ complete: the router routes it now",
                     {kSeriesUid}, "", Audited(data::CompleteSeries)});
  routes->push_back({"POST", "/api/v1/series/{uid}/route", Role::kOperator, false,
                     "Route a series in incoming/ now with the named rule, whatever its tags",
                     {kSeriesUid}, "{\"rule\": \"NAME\"} (an enabled rule)",
                     Audited(data::RouteSeries)});
  routes->push_back({"POST", "/api/v1/studies/{uid}/complete", Role::kOperator, false,
                     "Force a study complete for every study-level rule collecting it",
                     {P("uid", "Study Instance UID")}, "", Audited(data::CompleteStudy)});
  routes->push_back(
      {"POST", "/api/v1/rules/evaluate", Role::kViewer, false,
       "Evaluate a rule against tags or an uploaded DICOM file, as `ferry rules eval --explain`",
       {},
       "{\"rule\": \"<expression>\" or \"rule_name\": \"NAME\", \"tags\": {\"Tag\": \"value\"}}, "
       "or multipart/form-data with fields file (DICOM) and rule",
       data::EvaluateRule});
  routes->push_back({"POST", "/api/v1/targets/{name}/test", Role::kOperator, false,
                     "Check a target as `ferry targets test` does", {P("name", "target name")},
                     "", Audited(data::TestTarget)});
}

}  // namespace ferry::web
