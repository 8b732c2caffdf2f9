#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "core/clock.h"
#include "core/file_system.h"
#include "core/logging.h"
#include "spool/spool.h"
#include "web/api_data_internal.h"

namespace ferry::web::data {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Reads exactly `n` digits at `pos`.
bool Digits(std::string_view s, size_t* pos, size_t n, int* out) {
  if (*pos + n > s.size() || !AllDigits(s.substr(*pos, n))) {
    return false;
  }
  *out = std::atoi(std::string(s.substr(*pos, n)).c_str());
  *pos += n;
  return true;
}

bool Expect(std::string_view s, size_t* pos, char c) {
  if (*pos < s.size() && s[*pos] == c) {
    ++*pos;
    return true;
  }
  return false;
}

}  // namespace

Response NoDatabase() {
  return Response::Error(
      503,
      "the database is not reachable, so tasks and series cannot be searched; check "
      "bookkeeper.database in the config and that the database is up (the spool, the queues and "
      "their actions work without it)");
}

Response DatabaseError(const Status& status, std::string_view what) {
  if (status.retryable()) {
    Logger("web")->warn("{}: database unavailable: {}", what, status.ToString());
    return Response::Error(503, fmt::format("{}: the database is unavailable ({}); try again in a "
                                            "moment",
                                            what, status.message()));
  }
  Logger("web")->error("{}: database query failed: {}", what, status.ToString());
  return Response::Error(500, fmt::format("{}: the database query failed: {}", what,
                                          status.message()));
}

Result<int64_t> IntParam(const Request& req, const std::string& name, int64_t fallback,
                         int64_t min, int64_t max) {
  auto it = req.query.find(name);
  if (it == req.query.end() || it->second.empty()) {
    return fallback;
  }
  int64_t value = 0;
  const std::string& text = it->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument(
        fmt::format("query parameter {} must be an integer, not \"{}\"", name, text));
  }
  if (value < min) {
    return Status::InvalidArgument(
        fmt::format("query parameter {} must be at least {}, not {}", name, min, value));
  }
  return std::min(value, max);
}

std::optional<int64_t> ParseTimeUs(std::string_view s) {
  // Seconds since the epoch, with an optional fraction.
  size_t dot = s.find('.');
  if (AllDigits(s.substr(0, dot)) &&
      (dot == std::string_view::npos || AllDigits(s.substr(dot + 1)))) {
    if (s.size() > 15) {
      return std::nullopt;
    }
    double seconds = std::strtod(std::string(s).c_str(), nullptr);
    return static_cast<int64_t>(seconds * 1e6);
  }
  size_t pos = 0;
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Digits(s, &pos, 4, &year) || !Expect(s, &pos, '-') || !Digits(s, &pos, 2, &month) ||
      !Expect(s, &pos, '-') || !Digits(s, &pos, 2, &day)) {
    return std::nullopt;
  }
  int64_t micros = 0;
  int64_t offset_s = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') {
      return std::nullopt;
    }
    ++pos;
    if (!Digits(s, &pos, 2, &hour) || !Expect(s, &pos, ':') || !Digits(s, &pos, 2, &minute)) {
      return std::nullopt;
    }
    if (Expect(s, &pos, ':') && !Digits(s, &pos, 2, &second)) {
      return std::nullopt;
    }
    if (Expect(s, &pos, '.')) {
      size_t start = pos;
      int64_t scale = 100000;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        micros += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) {
        return std::nullopt;
      }
    }
    if (pos < s.size()) {
      if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
      } else if (s[pos] == '+' || s[pos] == '-') {
        int sign = s[pos] == '-' ? -1 : 1;
        ++pos;
        int oh = 0, om = 0;
        if (!Digits(s, &pos, 2, &oh)) {
          return std::nullopt;
        }
        Expect(s, &pos, ':');
        if (pos < s.size() && !Digits(s, &pos, 2, &om)) {
          return std::nullopt;
        }
        offset_s = sign * (oh * 3600 + om * 60);
      }
    }
    if (pos != s.size()) {
      return std::nullopt;
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
      second > 60) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  int64_t epoch = static_cast<int64_t>(::timegm(&tm)) - offset_s;
  return epoch * 1000000 + micros;
}

Result<std::optional<int64_t>> TimeParam(const Request& req, const std::string& name) {
  auto it = req.query.find(name);
  if (it == req.query.end() || it->second.empty()) {
    return std::optional<int64_t>();
  }
  auto us = ParseTimeUs(it->second);
  if (!us) {
    return Status::InvalidArgument(fmt::format(
        "query parameter {} must be an ISO 8601 time (2026-11-24T17:30:00Z, or a date "
        "2026-11-24) or seconds since the epoch, not \"{}\"",
        name, it->second));
  }
  return std::optional<int64_t>(*us);
}

Result<nlohmann::json> JsonBody(const Request& req) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return nlohmann::json::object();
  }
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return Status::InvalidArgument("the request body is not valid JSON");
  }
  if (!body.is_object()) {
    return Status::InvalidArgument("the request body must be a JSON object");
  }
  return body;
}

std::string IsoFromUs(int64_t us) {
  return FormatIso8601(WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::microseconds(us))));
}

nlohmann::json RowToJson(const db::Rows& rows, size_t i) {
  static const std::set<std::string> kIntegers = {"attempts", "instances", "pid", "id", "total"};
  const db::Row& row = rows[i];
  nlohmann::json out = nlohmann::json::object();
  for (size_t c = 0; c < rows.columns.size(); ++c) {
    const std::string& name = rows.columns[c];
    bool time = name.size() > 3 && name.ends_with("_us");
    std::string companion = time ? name.substr(0, name.size() - 3) : "";
    if (row.IsNull(c)) {
      out[name] = nullptr;
      if (time && companion != "ts") {
        out[companion] = nullptr;
      }
      continue;
    }
    if (time) {
      out[name] = row.Int(c);
      if (companion != "ts") {
        out[companion] = IsoFromUs(row.Int(c));
      }
    } else if (kIntegers.count(name) != 0) {
      out[name] = row.Int(c);
    } else if (name == "details" || name == "task_json") {
      nlohmann::json parsed = nlohmann::json::parse(row.Text(c), nullptr, false);
      out[name] = parsed.is_discarded() ? nlohmann::json(row.Text(c)) : parsed;
    } else {
      out[name] = row.Text(c);
    }
  }
  return out;
}

std::optional<std::string> FindTaskStage(const std::string& data_folder, const std::string& id) {
  static const char* kPlaces[] = {"processing", "tmp/processor", "outgoing", "tmp/dispatcher",
                                  "success",    "error",         "discard"};
  FileSystem* fs = DefaultFileSystem();
  // A task moves while we look (outgoing -> tmp/dispatcher -> outgoing on a retry); a second
  // round finds it where it settled.
  for (int round = 0; round < 2; ++round) {
    for (const char* place : kPlaces) {
      if (fs->IsDirectory(JoinPath(JoinPath(data_folder, place), id))) {
        return std::string(place);
      }
    }
  }
  return std::nullopt;
}

void Audit(Context& ctx, const Request& req, const std::string& action,
           const std::string& object, nlohmann::json extra, const std::string& task_id,
           const std::string& series_uid) {
  nlohmann::json details = {{"actor", req.user}, {"address", req.address}, {"object", object}};
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    details[it.key()] = it.value();
  }
  Logger("web")->info("audit: {} {} by {} from {}{}", action, object, req.user, req.address,
                      task_id.empty() ? "" : " task=" + task_id);
  if (ctx.journal != nullptr) {
    ctx.journal->Append({"audit." + action, series_uid, task_id, details});
  }
}

void WhereClause::Add(std::string_view condition, db::Param param) {
  params_.push_back(std::move(param));
  std::string placeholder = "$" + std::to_string(params_.size());
  std::string cond;
  for (char c : condition) {
    if (c == '?') {
      cond += placeholder;
    } else {
      cond += c;
    }
  }
  sql_ += (sql_.empty() ? " WHERE " : " AND ") + cond;
}

std::string WhereClause::Sql() const { return sql_; }

std::string WhereClause::Next(db::Param param) {
  params_.push_back(std::move(param));
  return "$" + std::to_string(params_.size());
}

std::string LikeSubstring(std::string_view value) {
  std::string out = "%";
  for (char c : value) {
    if (c == '%' || c == '_' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '%';
  return out;
}

}  // namespace ferry::web::data
