#include "web/openapi.h"

#include <algorithm>
#include <cctype>

#include "web/auth.h"

namespace ferry::web {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "GET /api/v1/tasks/{id}" -> "get_api_v1_tasks_id": a stable operationId.
std::string OperationId(const Route& r) {
  std::string id = Lower(r.method) + "_";
  for (char c : r.path) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      id += c;
    } else if (c == '/' && id.back() != '_') {
      id += '_';
    }
  }
  while (!id.empty() && id.back() == '_') {
    id.pop_back();
  }
  return id;
}

}  // namespace

nlohmann::json BuildOpenApi(const std::vector<Route>& routes, bool tls) {
  nlohmann::json paths = nlohmann::json::object();
  for (const auto& r : routes) {
    nlohmann::json op;
    op["operationId"] = OperationId(r);
    op["summary"] = r.summary;
    op["x-ferry-min-role"] = r.anonymous ? "none" : std::string(RoleName(r.min_role));
    nlohmann::json params = nlohmann::json::array();
    for (const auto& p : r.params) {
      nlohmann::json param = {{"name", p.name},
                              {"in", p.in},
                              {"required", p.in == "path" ? true : p.required},
                              {"schema", {{"type", p.type}}}};
      if (!p.description.empty()) {
        param["description"] = p.description;
      }
      params.push_back(param);
    }
    // Path parameters the route did not describe are still required by OpenAPI.
    for (size_t i = r.path.find('{'); i != std::string::npos; i = r.path.find('{', i + 1)) {
      std::string name = r.path.substr(i + 1, r.path.find('}', i) - i - 1);
      bool described = std::any_of(r.params.begin(), r.params.end(), [&](const RouteParam& p) {
        return p.in == "path" && p.name == name;
      });
      if (!described) {
        params.push_back(
            {{"name", name}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
      }
    }
    if (!params.empty()) {
      op["parameters"] = params;
    }
    if (!r.request_body.empty()) {
      op["requestBody"] = {{"description", r.request_body},
                           {"content", {{"application/json", {{"schema", {{"type", "object"}}}}}}}};
    }
    nlohmann::json responses = {{"200", {{"description", "success"}}}};
    if (r.anonymous) {
      op["security"] = nlohmann::json::array();
    } else {
      responses["401"] = {{"description", "not authenticated"}};
      responses["403"] = {{"description", "role too low, or missing CSRF token"}};
    }
    op["responses"] = responses;
    paths[r.path][Lower(r.method)] = op;
  }
  return {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "ferry API"},
        {"version", "1"},
        {"description",
         "ferry's REST API. Authenticate with a session (POST /api/v1/session; unsafe methods "
         "then need the X-CSRF-Token header) or an API token (Authorization: Bearer)."}}},
      {"servers", nlohmann::json::array({{{"url", tls ? "https://{host}" : "http://{host}"},
                                          {"variables", {{"host", {{"default", "localhost"}}}}}}})},
      {"paths", paths},
      {"components",
       {{"securitySchemes",
         {{"session", {{"type", "apiKey"}, {"in", "cookie"}, {"name", "ferry_session"}}},
          {"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"security", nlohmann::json::array({{{"session", nlohmann::json::array()}},
                                          {{"bearer", nlohmann::json::array()}}})},
  };
}

}  // namespace ferry::web
