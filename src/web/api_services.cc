// The services of `ferry serve` as the web UI sees them:
//   POST /api/v1/services/{name}/restart (admin)  asks the supervisor to restart a service
//        (spool/control.h RequestRestart: a file it takes within a fraction of a second);
//        audited as audit.service_restart.
//   GET  /api/v1/logs (operator)  the recent lines of each service's log file, <data>/log/
//        <service>.log and its rotated <service>.1.log (the supervisor has each child write
//        one; core/logging.h), newest first, filtered by service, lowest level and text, with
//        passwords, API tokens and URL credentials masked.
// Thread-safety: reentrant; reads files and writes one control file per request.
#include "web/api_services.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "core/file_system.h"
#include "spool/control.h"
#include "web/api_data_internal.h"

namespace ferry::web {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultLogLines = 200;
constexpr int64_t kMaxLogLines = 2000;

int LevelRank(std::string_view level) {
  static constexpr std::string_view kLevels[] = {"trace", "debug", "info",
                                                 "warn",  "error", "critical"};
  for (size_t i = 0; i < std::size(kLevels); ++i) {
    if (level == kLevels[i]) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool IsService(const std::string& name) {
  return std::find(std::begin(kServiceNames), std::end(kServiceNames), name) !=
         std::end(kServiceNames);
}

Response Restart(const Request& req, Context& ctx) {
  const std::string& name = req.path_params.at("name");
  if (!IsService(name)) {
    return Response::Error(404, fmt::format("\"{}\" is not a ferry service", name));
  }
  const std::string& data = ctx.config->data_folder;
  auto text = DefaultFileSystem()->ReadFile(
      JoinPath(JoinPath(data, kRunDir), std::string(kServicesStatusFile)));
  json services = text ? json::parse(*text, nullptr, false) : json();
  if (!services.is_object() || !services.contains("services") ||
      !services["services"].contains(name)) {
    return Response::Error(409, fmt::format("`ferry serve` does not run {} on this data folder "
                                            "(see the dashboard), so it cannot restart it; "
                                            "restart it where it runs (systemd, container)",
                                            name));
  }
  Status s = RequestRestart(data, name, req.user);
  if (!s.ok()) {
    return Response::Error(500, "cannot write the restart request: " + s.message());
  }
  data::Audit(ctx, req, "service_restart", "service/" + name, json::object());
  return Response::Json({{"service", name},
                         {"requested", true},
                         {"note", "the supervisor restarts it within a second"}},
                        202);
}

}  // namespace

std::string RedactLogLine(std::string line) {
  static const std::regex kQuoted(
      R"((password|passwd|secret|token)([^'"\n]{0,20}?)(['"])[^'"]*(['"]))", std::regex::icase);
  static const std::regex kAssigned(
      R"(\b(password|passwd|secret|token|api_key|apikey|access_key|secret_key))"
      R"((\s*[=:]\s*)[^\s'",}]+)",
      std::regex::icase);
  static const std::regex kToken(R"(ferry_[0-9a-f]{64})");
  static const std::regex kUrlCredentials(R"(://([^:/@\s]+):([^@\s]+)@)");
  static const std::regex kBearer(R"((Bearer\s+)\S+)", std::regex::icase);
  line = std::regex_replace(line, kQuoted, "$1$2$3***$4");
  line = std::regex_replace(line, kAssigned, "$1$2***");
  line = std::regex_replace(line, kToken, "ferry_***");
  line = std::regex_replace(line, kUrlCredentials, "://$1:***@");
  line = std::regex_replace(line, kBearer, "$1***");
  return line;
}

std::optional<LogLine> ParseLogLine(std::string_view text) {
  // "2026-12-08T04:00:00.123+00:00 info  web[42] web: message" (core/logging.cc's pattern)
  size_t time_end = text.find(' ');
  if (time_end == std::string_view::npos || time_end < 19 || text[4] != '-' || text[10] != 'T') {
    return std::nullopt;
  }
  size_t level_start = time_end + 1;
  size_t level_end = text.find(' ', level_start);
  if (level_end == std::string_view::npos) {
    return std::nullopt;
  }
  LogLine line;
  line.time = std::string(text.substr(0, time_end));
  line.level = std::string(text.substr(level_start, level_end - level_start));
  if (line.level == "warning") {
    line.level = "warn";  // spdlog's long name; the API speaks of warn, as the config does
  }
  if (LevelRank(line.level) < 0) {
    return std::nullopt;
  }
  size_t rest = text.find_first_not_of(' ', level_end);
  line.message = rest == std::string_view::npos ? "" : std::string(text.substr(rest));
  return line;
}

Response GetLogs(const Request& req, Context& ctx) {
  auto get = [&](const char* key) {
    auto it = req.query.find(key);
    return it == req.query.end() ? std::string() : it->second;
  };
  std::string service = get("service");
  if (!service.empty() && !IsService(service)) {
    return Response::Error(400, fmt::format("\"{}\" is not a ferry service", service));
  }
  std::string level = get("level");
  int min_rank = level.empty() ? 0 : LevelRank(level);
  if (min_rank < 0) {
    return Response::Error(400, "level must be trace, debug, info, warn, error or critical");
  }
  auto limit = data::IntParam(req, "limit", kDefaultLogLines, 1, kMaxLogLines);
  if (!limit) {
    return Response::Error(400, limit.error().message());
  }
  std::string needle = Lower(get("q"));

  std::string dir = JoinPath(ctx.config->data_folder, kLogDir);
  std::vector<std::string> services;
  if (!service.empty()) {
    services.push_back(service);
  } else {
    for (const char* s : kServiceNames) {
      services.push_back(s);
    }
  }
  json items = json::array();
  json files = json::array();
  std::vector<std::pair<std::string, json>> matched;  // (time, line) to sort across services
  for (const auto& s : services) {
    // Older lines first: <service>.1.log, then <service>.log.
    for (const std::string& name : {s + ".1.log", s + ".log"}) {
      auto text = DefaultFileSystem()->ReadFile(JoinPath(dir, name));
      if (!text) {
        continue;
      }
      files.push_back(name);
      size_t pos = 0;
      while (pos < text->size()) {
        size_t end = text->find('\n', pos);
        if (end == std::string::npos) {
          end = text->size();
        }
        std::string_view raw(text->data() + pos, end - pos);
        pos = end + 1;
        auto line = ParseLogLine(raw);
        if (!line || LevelRank(line->level) < min_rank) {
          continue;
        }
        std::string message = RedactLogLine(line->message);
        if (!needle.empty() && Lower(message).find(needle) == std::string::npos) {
          continue;
        }
        matched.emplace_back(line->time, json{{"service", s},
                                              {"time", line->time},
                                              {"level", line->level},
                                              {"message", std::move(message)}});
      }
    }
  }
  // Newest first across services; the times share one format and zone per machine.
  std::stable_sort(matched.begin(), matched.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  size_t n = std::min(matched.size(), static_cast<size_t>(*limit));
  for (size_t i = 0; i < n; ++i) {
    items.push_back(std::move(matched[i].second));
  }
  return Response::Json({{"items", items},
                         {"total", matched.size()},
                         {"limit", *limit},
                         {"files", files},
                         {"folder", dir}});
}

void AddServiceRoutes(std::vector<Route>* routes) {
  routes->push_back({"POST",
                     "/api/v1/services/{name}/restart",
                     Role::kAdmin,
                     false,
                     "Ask `ferry serve` to restart one of its services (audited)",
                     {{"name", "path", "string", "service name, e.g. dispatcher", true}},
                     "",
                     [](const Request& req, Context& ctx) {
                       if (ctx.journal == nullptr) {
                         return Response::Error(500,
                                                "no journal: the restart could not be "
                                                "audited and is refused");
                       }
                       return Restart(req, ctx);
                     }});
  routes->push_back(
      {"GET",
       "/api/v1/logs",
       Role::kOperator,
       false,
       "Recent log lines of the services run by `ferry serve`, newest first, secrets masked",
       {{"service", "query", "string", "only this service"},
        {"level", "query", "string", "lowest level: trace, debug, info, warn, error"},
        {"q", "query", "string", "case-insensitive text the line contains"},
        {"limit", "query", "integer", "lines, default 200, at most 2000"}},
       "",
       GetLogs});
}

}  // namespace ferry::web
