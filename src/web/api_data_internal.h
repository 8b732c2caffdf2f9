// The handlers behind AddDataRoutes (src/web/api_data.cc) and the helpers they share: request
// parameter parsing, database error answers, row-to-JSON conversion, spool look-ups and the
// audit journal event. Internal to src/web; the unit test calls the handlers through the route
// list.
// Thread-safety: every function is reentrant; handlers use only their Context and Request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "db/database.h"
#include "web/route.h"

namespace ferry::web::data {

inline constexpr const char* kVersion = "0.1.0";
inline constexpr int64_t kDefaultLimit = 50;
inline constexpr int64_t kMaxLimit = 500;

// --- reads (api_data_status.cc, api_data_search.cc) ---
Response GetStatus(const Request& req, Context& ctx);
Response SearchTasks(const Request& req, Context& ctx);
Response GetTask(const Request& req, Context& ctx);
Response GetTaskLog(const Request& req, Context& ctx);
Response SearchSeries(const Request& req, Context& ctx);
Response GetSeries(const Request& req, Context& ctx);

// --- actions (api_data_actions.cc) ---
Response SuspendQueue(const Request& req, Context& ctx);
Response ResumeQueue(const Request& req, Context& ctx);
Response RetryTaskAction(const Request& req, Context& ctx);
Response DiscardTask(const Request& req, Context& ctx);
Response CompleteSeries(const Request& req, Context& ctx);
Response RouteSeries(const Request& req, Context& ctx);
Response CompleteStudy(const Request& req, Context& ctx);
Response EvaluateRule(const Request& req, Context& ctx);
Response TestTarget(const Request& req, Context& ctx);

// --- helpers (api_data_util.cc) ---

// 503: no database connection, with what to check.
Response NoDatabase();
// 503 for a retryable database error, 500 otherwise; logs it once.
Response DatabaseError(const Status& status, std::string_view what);

// The integer query parameter `name`: `fallback` when absent, InvalidArgument when it is not an
// integer or below `min`; values above `max` are clamped to `max`.
Result<int64_t> IntParam(const Request& req, const std::string& name, int64_t fallback,
                         int64_t min, int64_t max);

// A point in time as microseconds since the epoch: ISO 8601 ("2026-11-24",
// "2026-11-24T17:30:00Z", "...T17:30:00.5+01:00"; no zone means UTC) or seconds since the epoch
// ("1795000000", "1795000000.25"). nullopt when `text` is neither.
std::optional<int64_t> ParseTimeUs(std::string_view text);
// The query parameter `name` parsed with ParseTimeUs; nullopt when absent, InvalidArgument when
// malformed.
Result<std::optional<int64_t>> TimeParam(const Request& req, const std::string& name);

// The request body as a JSON object; an empty body is {}. InvalidArgument otherwise.
Result<nlohmann::json> JsonBody(const Request& req);

// "2026-11-24T17:30:36.123456Z" for microseconds since the epoch.
std::string IsoFromUs(int64_t us);

// Rows as JSON objects keyed by column name: NULL → null; *_us columns as integers plus an ISO
// 8601 companion without the suffix (created_us → created); counters as integers; `details`
// and `task_json` parsed as JSON.
nlohmann::json RowToJson(const db::Rows& rows, size_t i);

// Where task `id` is in the spool right now: "processing", "outgoing", "tmp/dispatcher",
// "success", "error" or "discard"; nullopt if in none. `id` must be IsSafeFileName.
std::optional<std::string> FindTaskStage(const std::string& data_folder, const std::string& id);

// Appends "audit.<action>" to the web journal with details {actor, address, object, ...extra}.
void Audit(Context& ctx, const Request& req, const std::string& action,
           const std::string& object, nlohmann::json extra, const std::string& task_id = "",
           const std::string& series_uid = "");

// Collects "<condition> AND ..." with positional parameters: each '?' in a condition becomes
// the next $N, so user input only ever reaches the database as a bound parameter.
class WhereClause {
 public:
  void Add(std::string_view condition, db::Param param);
  // " WHERE a AND b", or "" when there is no condition.
  std::string Sql() const;
  const db::Params& params() const { return params_; }
  // The next placeholder ("$N") for parameters appended after the conditions (LIMIT, OFFSET).
  std::string Next(db::Param param);

 private:
  std::string sql_;
  db::Params params_;
};

// `value` with the LIKE wildcards % and _ (and the escape character \) escaped, wrapped in %:
// a substring pattern for "... LIKE ? ESCAPE '\'".
std::string LikeSubstring(std::string_view value);

}  // namespace ferry::web::data
