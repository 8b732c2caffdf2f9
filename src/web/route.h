// Route: one endpoint of ferry's HTTP API, described once. The server registers handlers from
// these descriptions, checks authentication and role before calling a handler, and the
// OpenAPI document (/api/v1/openapi.json) is generated from the same list, so the two never
// disagree.
// Thread-safety: handlers run on the server's worker threads, each with its own Context.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "db/database.h"
#include "journal/journal.h"

namespace ferry::web {

enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };

struct UploadedFile {
  std::string field;     // form field name
  std::string filename;  // as sent by the client
  std::string content;
};

struct Request {
  std::string method;                               // "GET", "POST", ...
  std::string path;                                 // "/api/v1/tasks/abc"
  std::map<std::string, std::string> path_params;   // {"id": "abc"} for /api/v1/tasks/{id}
  std::map<std::string, std::string> query;         // decoded query string
  std::string body;
  std::string content_type;
  std::vector<UploadedFile> files;                  // multipart/form-data uploads
  std::string user;                                 // authenticated user name
  Role role = Role::kViewer;
  std::string address;                              // client address, for the audit
  std::string session_id;                           // login session; empty for token requests
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;

  static Response Json(const nlohmann::json& value, int status = 200) {
    return {status, "application/json", value.dump(), {}};
  }
  // {"error": message}; message says what is wrong and how to fix it.
  static Response Error(int status, const std::string& message) {
    return Json({{"error", message}}, status);
  }
};

// What a handler may use. `db` is a connection owned by the calling worker thread; it may be
// null when the database cannot be reached (handlers answer 503 then). `journal` is the web
// service's journal (audit.* events go there; see docs/architecture.md).
struct Context {
  const Config* config = nullptr;
  db::Database* db = nullptr;
  Journal* journal = nullptr;
};

struct RouteParam {
  std::string name;
  std::string in = "query";  // "query" or "path"
  std::string type = "string";  // JSON schema type: string, integer, boolean
  std::string description;
  bool required = false;
};

using Handler = std::function<Response(const Request&, Context&)>;

struct Route {
  std::string method;      // "GET", "POST", "PUT", "DELETE"
  std::string path;        // "/api/v1/tasks/{id}"
  Role min_role = Role::kViewer;
  bool anonymous = false;  // served without authentication (/healthz, login)
  std::string summary;     // one line for the OpenAPI document
  std::vector<RouteParam> params;
  std::string request_body;  // short description of the JSON body, empty if none
  Handler handler;
};

// The data and queue endpoints (status, tasks, series, queue actions, rules, targets);
// src/web/api_data.cc.
void AddDataRoutes(std::vector<Route>* routes);

// The account, token, config and session endpoints; src/web/api_admin.cc.
void AddAdminRoutes(std::vector<Route>* routes);

// The dashboard's time series (GET /api/v1/stats/timeseries); src/web/api_stats.cc.
void AddStatsRoutes(std::vector<Route>* routes);

// Service restart (admin) and service logs; src/web/api_services.cc.
void AddServiceRoutes(std::vector<Route>* routes);

// Every resource route above, in one list: what `ferry web` serves (the server adds the
// session, /healthz, /metrics and OpenAPI routes). src/web/web_service.cc.
std::vector<Route> ResourceRoutes();

}  // namespace ferry::web
