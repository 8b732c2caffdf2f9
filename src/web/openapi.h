// The OpenAPI 3.0 document of ferry's HTTP API (/api/v1/openapi.json), generated from the route
// list so that the description and the server never disagree.
// Thread-safety: a pure function.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "web/route.h"

namespace ferry::web {

// One path item per route path; per operation the summary, the parameters, the request body
// description, the minimum role (x-ferry-min-role) and the security requirement (none for
// anonymous routes, else a session cookie or a bearer token).
nlohmann::json BuildOpenApi(const std::vector<Route>& routes, bool tls);

}  // namespace ferry::web
