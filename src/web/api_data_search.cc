// GET /api/v1/tasks, /tasks/{id}, /series, /series/{uid}: searches and details from the
// bookkeeper's tables (src/db/schema.h), with the live task.json from the spool.
//
// Every value from the request reaches SQL only as a bound parameter (WhereClause). Exact
// filters use the tables' indexes; the patient name filter is a case-insensitive substring
// (lower(...) LIKE '%x%'), which scans the rows the other filters leave.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <map>

#include <fmt/format.h>

#include "core/file_system.h"
#include "spool/spool.h"
#include "web/api_data_internal.h"

namespace ferry::web::data {
namespace {

constexpr const char* kTaskColumns =
    "t.task_id, t.parent_id, t.series_uid, t.study_uid, t.action, t.rule, t.targets, t.state, "
    "t.stage, t.priority, t.patient_name, t.patient_id, t.accession_number, t.created_us, "
    "t.updated_us, t.completed_us, t.attempts, t.last_error";

constexpr const char* kSeriesColumns =
    "s.series_uid, s.study_uid, s.patient_name, s.patient_id, s.patient_birth_date, "
    "s.accession_number, s.study_description, s.study_date, s.series_description, s.series_date, "
    "s.series_number, s.modality, s.sender_aet, s.sender_address, s.receiver_aet, "
    "s.first_seen_us, s.complete_us, s.instances, s.state, s.rule, s.last_event_us";

constexpr const char* kEventColumns = "id, ts_us, time, service, pid, event, task_id, series_uid, "
                                      "details";

// A patient name prefix matching more tasks than this is searched by walking the created_us
// index. Measured with sqlite3 on 1,000,000 tasks (bench/archive_bench.py's data): a prefix
// with 50,000 matches took 259 ms read by name and sorted, 14 ms walked newest first; one with
// 500 matches 2 ms by name, 83 ms walked.
constexpr int64_t kWalkTimeIndexAbove = 5000;
// PostgreSQL counts a patient name prefix's matches from the table (an expression index
// cannot answer the count alone): 0.75 s for 100,000 of 1,000,000 tasks. Beyond this many the
// total says "at least" (total_capped) instead of being counted.
constexpr int64_t kPrefixCountCap = 5000;

// Events returned with one series; a series that produced more is cut (and says so).
constexpr int64_t kMaxSeriesEvents = 2000;

Response BadRequest(const Status& s) { return Response::Error(400, s.message()); }

std::string Query(const Request& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? std::string() : it->second;
}

// The `targets` column as a list: a JSON array, or names separated by commas.
nlohmann::json TargetsFromColumn(const nlohmann::json& column) {
  nlohmann::json list = nlohmann::json::array();
  if (!column.is_string()) {
    return list;
  }
  const std::string& text = column.get_ref<const std::string&>();
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_array()) {
    return parsed;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string name = text.substr(start, comma == std::string::npos ? comma : comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (!name.empty()) {
      list.push_back(name);
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return list;
}

// Task rows as JSON, with their targets from task_targets (one query for the whole page) and,
// for tasks waiting to be retried, `next_attempt` from their last dispatch.retry_scheduled
// event (one more query, only when the page has such a task; null for the others).
Result<nlohmann::json> TaskItems(db::Database* db, const db::Rows& rows) {
  nlohmann::json items = nlohmann::json::array();
  if (rows.empty()) {
    return items;
  }
  std::string in;
  db::Params params;
  for (size_t i = 0; i < rows.size(); ++i) {
    params.push_back(rows[i].Text(0));
    in += (i == 0 ? "$" : ", $") + std::to_string(i + 1);
  }
  FERRY_ASSIGN_OR_RETURN(
      db::Rows targets,
      db->Query("SELECT task_id, target FROM task_targets WHERE task_id IN (" + in +
                    ") ORDER BY task_id, target",
                params));
  std::map<std::string, nlohmann::json> by_task;
  for (const auto& row : targets.rows) {
    by_task[row.Text(0)].push_back(row.Text(1));
  }
  std::string retrying_in;
  db::Params retrying;
  for (size_t i = 0; i < rows.size(); ++i) {
    nlohmann::json item = RowToJson(rows, i);
    auto it = by_task.find(rows[i].Text(0));
    item["targets"] = it != by_task.end() ? it->second : TargetsFromColumn(item["targets"]);
    item["next_attempt"] = nullptr;
    if (item.value("state", "") == "retrying") {
      retrying.push_back(rows[i].Text(0));
      retrying_in += (retrying.size() == 1 ? "$" : ", $") + std::to_string(retrying.size());
    }
    items.push_back(std::move(item));
  }
  if (!retrying.empty()) {
    FERRY_ASSIGN_OR_RETURN(
        db::Rows scheduled,
        db->Query("SELECT task_id, details FROM task_events WHERE task_id IN (" + retrying_in +
                      ") AND event = 'dispatch.retry_scheduled' ORDER BY ts_us",
                  retrying));
    std::map<std::string, nlohmann::json> next;  // the last one per task wins
    for (const auto& row : scheduled.rows) {
      auto details = nlohmann::json::parse(row.Text(1), nullptr, false);
      if (details.is_object() && details.contains("next_attempt")) {
        next[row.Text(0)] = details["next_attempt"];
      }
    }
    for (auto& item : items) {
      auto it = next.find(item.value("task_id", ""));
      if (it != next.end() && item.value("state", "") == "retrying") {
        item["next_attempt"] = it->second;
      }
    }
  }
  return items;
}

// limit, offset, from, to; the time range filters `time_column`.
struct Page {
  int64_t limit = kDefaultLimit;
  int64_t offset = 0;
};

Status ParsePage(const Request& req, Page* page) {
  FERRY_ASSIGN_OR_RETURN(page->limit, IntParam(req, "limit", kDefaultLimit, 1, kMaxLimit));
  FERRY_ASSIGN_OR_RETURN(page->offset, IntParam(req, "offset", 0, 0, INT64_MAX));
  return Status::Ok();
}

Status AddTimeRange(const Request& req, const std::string& column, WhereClause* where) {
  FERRY_ASSIGN_OR_RETURN(std::optional<int64_t> from, TimeParam(req, "from"));
  FERRY_ASSIGN_OR_RETURN(std::optional<int64_t> to, TimeParam(req, "to"));
  if (from && to && *from > *to) {
    return Status::InvalidArgument("query parameter from is after to; swap them");
  }
  if (from) {
    where->Add(column + " >= ?", *from);
  }
  if (to) {
    // A date alone ("2026-11-24") as the end of a range means the whole of that day.
    auto text = req.query.find("to")->second;
    bool date_only = text.size() == 10 && text[4] == '-' && text[7] == '-';
    where->Add(column + " <= ?", date_only ? *to + 86400LL * 1000000 - 1 : *to);
  }
  return Status::Ok();
}

// Runs the count and the page of a search; `select` is "SELECT <cols> FROM <table> <alias>".
// `known_total`: the count, when the caller has it already.
Result<std::pair<int64_t, db::Rows>> RunSearch(db::Database* db, const std::string& from_table,
                                               const std::string& columns,
                                               const std::string& order, WhereClause where,
                                               const Page& page,
                                               std::optional<int64_t> known_total = {}) {
  int64_t total = 0;
  if (known_total) {
    total = *known_total;
  } else {
    FERRY_ASSIGN_OR_RETURN(db::Rows count,
                           db->Query("SELECT COUNT(*) FROM " + from_table + where.Sql(),
                                     where.params()));
    total = count.empty() ? 0 : count[0].Int(0);
  }
  std::string sql = "SELECT " + columns + " FROM " + from_table + where.Sql() + " ORDER BY " +
                    order;
  sql += " LIMIT " + where.Next(page.limit);
  sql += " OFFSET " + where.Next(page.offset);
  FERRY_ASSIGN_OR_RETURN(db::Rows rows, db->Query(sql, where.params()));
  return std::make_pair(total, std::move(rows));
}

// The filters both searches share: the patient name as a case-insensitive substring
// (patient_name: scans) or prefix (patient_name_prefix: a range of the lower(patient_name)
// index), and exact matches of query parameters with columns of the table `alias` (parameter
// -> column).
//
// `walk_time_index` (SQLite only): the prefix terms are written as "+lower(...)", which the
// lower(patient_name) index does not answer, so that SQLite walks the created_us index newest
// first and stops after a page. SearchTasks asks for it when a prefix matches many tasks:
// reading and sorting all of them costs more than skipping the non-matching newer ones.
void AddFilters(const Request& req, std::string_view alias, db::Dialect dialect,
                std::initializer_list<std::pair<const char*, const char*>> exact,
                WhereClause* where, bool walk_time_index = false) {
  std::string prefix = std::string(alias) + ".";
  if (std::string v = Query(req, "patient_name"); !v.empty()) {
    where->Add("lower(" + prefix + "patient_name) LIKE lower(CAST(? AS TEXT)) ESCAPE '\\'",
               LikeSubstring(v));
  }
  if (std::string v = Query(req, "patient_name_prefix"); !v.empty()) {
    if (dialect == db::Dialect::kSqlite) {
      // SQLite's lower() folds ASCII only, and compares text byte by byte: every name that
      // starts with `v` lies in [v, v + U+10FFFF), which the expression index answers.
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) {
        return c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c);
      });
      std::string name = (walk_time_index ? "+lower(" : "lower(") + prefix + "patient_name)";
      where->Add(name + " >= ?", v);
      where->Add(name + " < ?", v + "\xF4\x8F\xBF\xBF");
    } else {
      // Collations other than "C" order names linguistically, so no byte range is safe here.
      where->Add("lower(" + prefix + "patient_name) LIKE lower(CAST(? AS TEXT)) ESCAPE '\\'",
                 LikeSubstring(v).substr(1));
    }
  }
  for (const auto& [param, column] : exact) {
    if (std::string v = Query(req, param); !v.empty()) {
      where->Add(prefix + column + " = ?", v);
    }
  }
}

// The ORDER BY for the `sort` parameter: a column of `allowed` (request name -> column),
// "-name" for descending; `fallback` when absent. The key column breaks ties so that pages do
// not overlap. InvalidArgument for anything else (nothing from the request reaches SQL text).
Result<std::string> SortOrder(const Request& req,
                              std::initializer_list<std::pair<const char*, const char*>> allowed,
                              const std::string& fallback, const std::string& key) {
  std::string v = Query(req, "sort");
  if (v.empty()) {
    return fallback;
  }
  bool desc = v[0] == '-';
  std::string name = desc ? v.substr(1) : v;
  std::string names;
  for (const auto& [param, column] : allowed) {
    if (name == param) {
      std::string dir = desc ? " DESC" : " ASC";
      return std::string(column) + dir + ", " + key + dir;
    }
    names += (names.empty() ? "" : ", ") + std::string(param);
  }
  return Status::InvalidArgument("sort must be one of " + names +
                                 ", with a leading - for descending order; not \"" + v + "\"");
}

}  // namespace

Response SearchTasks(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return NoDatabase();
  }
  Page page;
  Status parsed = ParsePage(req, &page);
  if (!parsed.ok()) {
    return BadRequest(parsed);
  }
  auto build = [&](bool walk_time_index, WhereClause* where) {
    AddFilters(req, "t", ctx.db->dialect(),
               {{"patient_id", "patient_id"},
                {"accession", "accession_number"},
                {"study_uid", "study_uid"},
                {"series_uid", "series_uid"},
                {"rule", "rule"},
                {"state", "state"},
                {"action", "action"},
                {"parent_id", "parent_id"}},
               where, walk_time_index);
    if (std::string v = Query(req, "target"); !v.empty()) {
      where->Add("t.task_id IN (SELECT task_id FROM task_targets WHERE target = ?)", v);
    }
    return AddTimeRange(req, "t.created_us", where);
  };
  WhereClause where;
  std::optional<int64_t> total;
  Status range = build(false, &where);
  if (!range.ok()) {
    return BadRequest(range);
  }
  bool total_capped = false;
  if (ctx.db->dialect() == db::Dialect::kPostgres && !Query(req, "patient_name_prefix").empty()) {
    auto count = ctx.db->Query(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tasks t" + where.Sql() + " LIMIT " +
            std::to_string(kPrefixCountCap + 1) + ") AS matches",
        where.params());
    if (!count) {
      return DatabaseError(count.error(), "counting tasks");
    }
    total = count->empty() ? 0 : (*count)[0].Int(0);
    if (*total > kPrefixCountCap) {
      total = kPrefixCountCap;
      total_capped = true;
    }
  }
  if (ctx.db->dialect() == db::Dialect::kSqlite && !Query(req, "patient_name_prefix").empty() &&
      Query(req, "sort").empty()) {
    // Many matches: walk newest first instead (see AddFilters). Counting them on the index is
    // cheap (10 ms for 50,000 of 1,000,000 tasks); the walk's terms could not count them so.
    auto count = ctx.db->Query("SELECT COUNT(*) FROM tasks t" + where.Sql(), where.params());
    if (!count) {
      return DatabaseError(count.error(), "counting tasks");
    }
    total = count->empty() ? 0 : (*count)[0].Int(0);
    if (*total > kWalkTimeIndexAbove) {
      WhereClause walk;
      (void)build(true, &walk);
      where = std::move(walk);
    }
  }
  auto order = SortOrder(req,
                         {{"created", "t.created_us"},
                          {"updated", "t.updated_us"},
                          {"patient_name", "t.patient_name"},
                          {"rule", "t.rule"},
                          {"state", "t.state"},
                          {"attempts", "t.attempts"}},
                         "t.created_us DESC, t.task_id DESC", "t.task_id");
  if (!order) {
    return BadRequest(order.error());
  }
  auto result = RunSearch(ctx.db, "tasks t", kTaskColumns, *order, where, page, total);
  if (!result) {
    return DatabaseError(result.error(), "searching tasks");
  }
  auto items = TaskItems(ctx.db, result->second);
  if (!items) {
    return DatabaseError(items.error(), "reading the targets of tasks");
  }
  nlohmann::json out = {{"total", result->first},
                        {"limit", page.limit},
                        {"offset", page.offset},
                        {"items", *items}};
  if (total_capped) {
    out["total_capped"] = true;  // more than `total` match; narrow the search to count them
  }
  return Response::Json(out);
}

Response GetTaskLog(const Request& req, Context& ctx) {
  const std::string id = req.path_params.count("id") ? req.path_params.at("id") : "";
  if (!IsSafeFileName(id)) {
    return Response::Error(400, "\"" + id + "\" is not a task id");
  }
  const std::string& data = ctx.config->data_folder;
  std::optional<std::string> stage = FindTaskStage(data, id);
  if (!stage) {
    return Response::Error(404, "task " + id + " is not in the spool (" + data +
                                    "); its logs went with it when the cleaner removed it");
  }
  FileSystem* fs = DefaultFileSystem();
  std::string dir = JoinPath(JoinPath(JoinPath(data, *stage), id), "logs");
  constexpr uint64_t kMaxLog = 1 << 20;  // the end of a longer log is what explains a failure
  nlohmann::json logs = nlohmann::json::array();
  auto names = fs->ListDir(dir);
  std::vector<std::string> files = names ? *names : std::vector<std::string>{};
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return std::atoi(a.c_str()) < std::atoi(b.c_str()) || (std::atoi(a.c_str()) ==
                                                               std::atoi(b.c_str()) && a < b);
  });
  for (const auto& name : files) {
    if (!name.ends_with(".log")) {
      continue;
    }
    auto text = fs->ReadFile(JoinPath(dir, name));
    if (!text) {
      continue;
    }
    std::string body = *text;
    bool cut = body.size() > kMaxLog;
    if (cut) {
      body = body.substr(body.size() - kMaxLog);
    }
    size_t dash = name.find('-');
    nlohmann::json entry = {
        {"file", name},
        {"step", std::atoi(name.c_str())},
        {"module", dash == std::string::npos ? "" : name.substr(dash + 1, name.size() - dash - 5)},
        {"truncated", cut},
        {"text", nlohmann::json(body).dump(-1, ' ', false,
                                           nlohmann::json::error_handler_t::replace)}};
    entry["text"] = nlohmann::json::parse(entry["text"].get<std::string>());
    logs.push_back(entry);
  }
  return Response::Json({{"task_id", id}, {"stage", *stage}, {"logs", logs}});
}

Response GetTask(const Request& req, Context& ctx) {
  const std::string id = req.path_params.count("id") ? req.path_params.at("id") : "";
  if (!IsSafeFileName(id)) {
    return Response::Error(400, "\"" + id + "\" is not a task id (task ids are folder names "
                                "such as those listed by GET /api/v1/tasks)");
  }
  if (ctx.db == nullptr) {
    return NoDatabase();
  }
  auto rows = ctx.db->Query(std::string("SELECT ") + kTaskColumns +
                                ", t.task_json FROM tasks t WHERE t.task_id = $1",
                            {id});
  if (!rows) {
    return DatabaseError(rows.error(), "reading task " + id);
  }
  const std::string& data = ctx.config->data_folder;
  std::optional<std::string> stage = FindTaskStage(data, id);
  if (rows->empty() && !stage) {
    return Response::Error(404, "no task " + id + " in the database or in the spool (" + data +
                                    "); it may have been removed by the cleaner");
  }
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json stored_json;
  if (!rows->empty()) {
    auto items = TaskItems(ctx.db, *rows);
    if (!items) {
      return DatabaseError(items.error(), "reading the targets of task " + id);
    }
    out["task"] = (*items)[0];
    stored_json = out["task"]["task_json"];
    out["task"].erase("task_json");
  } else {
    out["task"] = {{"task_id", id}};
    out["note"] = "the bookkeeper has not loaded this task into the database yet; its spool "
                  "folder is shown";
  }
  out["spool_stage"] = stage ? nlohmann::json(*stage) : nlohmann::json();

  auto events = ctx.db->Query(std::string("SELECT ") + kEventColumns +
                                  " FROM task_events WHERE task_id = $1 ORDER BY ts_us, id",
                              {id});
  if (!events) {
    return DatabaseError(events.error(), "reading the events of task " + id);
  }
  out["events"] = nlohmann::json::array();
  for (size_t i = 0; i < events->size(); ++i) {
    out["events"].push_back(RowToJson(*events, i));
  }
  // parent_id is NULL for almost every task: after an ANALYZE, SQLite's statistics say the
  // index does not narrow anything down and it scans the table (0.5 s for 1,000,000 tasks)
  // unless told to use the index; "+created_us" keeps it from walking created_us instead.
  std::string from = ctx.db->dialect() == db::Dialect::kSqlite
                         ? " FROM tasks t INDEXED BY tasks_parent"
                         : " FROM tasks t";
  auto children = ctx.db->Query(std::string("SELECT ") + kTaskColumns + from +
                                    " WHERE t.parent_id = $1 ORDER BY +t.created_us",
                                {id});
  if (!children) {
    return DatabaseError(children.error(), "reading the follow-up tasks of task " + id);
  }
  auto child_items = TaskItems(ctx.db, *children);
  if (!child_items) {
    return DatabaseError(child_items.error(), "reading the follow-up tasks of task " + id);
  }
  out["children"] = *child_items;

  // task.json as it is now: live from the spool, else as the bookkeeper last stored it.
  out["task_json"] = nullptr;
  out["task_json_source"] = nullptr;
  if (stage) {
    auto text = DefaultFileSystem()->ReadFile(
        JoinPath(JoinPath(JoinPath(data, *stage), id), kTaskFile));
    if (text) {
      nlohmann::json live = nlohmann::json::parse(*text, nullptr, false);
      if (!live.is_discarded()) {
        out["task_json"] = live;
        out["task_json_source"] = "spool";
      }
    }
  }
  if (out["task_json"].is_null() && !stored_json.is_null()) {
    out["task_json"] = stored_json;
    out["task_json_source"] = "database";
  }
  return Response::Json(out);
}

Response SearchSeries(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return NoDatabase();
  }
  Page page;
  Status parsed = ParsePage(req, &page);
  if (!parsed.ok()) {
    return BadRequest(parsed);
  }
  WhereClause where;
  AddFilters(req, "s", ctx.db->dialect(),
             {{"patient_id", "patient_id"},
              {"accession", "accession_number"},
              {"study_uid", "study_uid"},
              {"modality", "modality"},
              {"state", "state"},
              {"rule", "rule"}},
             &where);
  Status range = AddTimeRange(req, "s.first_seen_us", &where);
  if (!range.ok()) {
    return BadRequest(range);
  }
  auto order = SortOrder(req,
                         {{"first_seen", "s.first_seen_us"},
                          {"patient_name", "s.patient_name"},
                          {"modality", "s.modality"},
                          {"state", "s.state"},
                          {"instances", "s.instances"}},
                         "s.first_seen_us DESC, s.series_uid DESC", "s.series_uid");
  if (!order) {
    return BadRequest(order.error());
  }
  auto result = RunSearch(ctx.db, "series s", kSeriesColumns, *order, where, page);
  if (!result) {
    return DatabaseError(result.error(), "searching series");
  }
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = 0; i < result->second.size(); ++i) {
    items.push_back(RowToJson(result->second, i));
  }
  return Response::Json({{"total", result->first},
                         {"limit", page.limit},
                         {"offset", page.offset},
                         {"items", items}});
}

Response GetSeries(const Request& req, Context& ctx) {
  const std::string uid = req.path_params.count("uid") ? req.path_params.at("uid") : "";
  if (uid.empty() || uid.size() > 128) {
    return Response::Error(400, "\"" + uid + "\" is not a Series Instance UID");
  }
  if (ctx.db == nullptr) {
    return NoDatabase();
  }
  auto rows = ctx.db->Query(
      std::string("SELECT ") + kSeriesColumns + " FROM series s WHERE s.series_uid = $1", {uid});
  if (!rows) {
    return DatabaseError(rows.error(), "reading series " + uid);
  }
  // A series still being received may not be in the database yet; incoming/ knows it.
  nlohmann::json incoming = nullptr;
  if (IsSafeFileName(uid)) {
    Spool spool(ctx.config->data_folder, "web", DefaultFileSystem());
    auto state = spool.ReadSeriesState(uid);
    if (state) {
      int open = 0;
      for (const auto& a : state->associations) {
        open += a.ended ? 0 : 1;
      }
      incoming = {{"instances", state->instances},
                  {"last_arrival", FormatIso8601(state->last_arrival)},
                  {"open_associations", open},
                  {"forced", state->forced},
                  {"forced_rule", state->forced_rule}};
    }
  }
  if (rows->empty() && incoming.is_null()) {
    return Response::Error(404, "no series " + uid + " in the database or in " +
                                    JoinPath(ctx.config->data_folder, kIncoming));
  }
  nlohmann::json out = {{"series", rows->empty() ? nlohmann::json({{"series_uid", uid}})
                                                 : RowToJson(*rows, 0)},
                        {"incoming", incoming}};
  auto tasks = ctx.db->Query(std::string("SELECT ") + kTaskColumns +
                                 " FROM tasks t WHERE t.series_uid = $1 ORDER BY +t.created_us",
                             {uid});
  if (!tasks) {
    return DatabaseError(tasks.error(), "reading the tasks of series " + uid);
  }
  auto task_items = TaskItems(ctx.db, *tasks);
  if (!task_items) {
    return DatabaseError(task_items.error(), "reading the tasks of series " + uid);
  }
  out["tasks"] = *task_items;
  auto events = ctx.db->Query(std::string("SELECT ") + kEventColumns +
                                  " FROM task_events WHERE series_uid = $1 ORDER BY ts_us, id "
                                  "LIMIT $2",
                              {uid, kMaxSeriesEvents + 1});
  if (!events) {
    return DatabaseError(events.error(), "reading the events of series " + uid);
  }
  out["events"] = nlohmann::json::array();
  for (size_t i = 0; i < events->size() && i < static_cast<size_t>(kMaxSeriesEvents); ++i) {
    out["events"].push_back(RowToJson(*events, i));
  }
  out["events_truncated"] = events->size() > static_cast<size_t>(kMaxSeriesEvents);
  return Response::Json(out);
}

}  // namespace ferry::web::data
