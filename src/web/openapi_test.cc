#include "web/openapi.h"

#include <gtest/gtest.h>

namespace ferry::web {
namespace {

TEST(OpenApi, DescribesEveryRoute) {
  std::vector<Route> routes;
  AddAdminRoutes(&routes);
  routes.push_back({"GET", "/healthz", Role::kViewer, true, "health", {}, "", nullptr});
  routes.push_back(
      {"POST", "/api/v1/tasks/{id}/retry", Role::kOperator, false, "retry", {}, "", nullptr});
  nlohmann::json doc = BuildOpenApi(routes, false);
  EXPECT_EQ(doc["openapi"], "3.0.3");
  for (const auto& r : routes) {
    std::string method = r.method;
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    ASSERT_TRUE(doc["paths"].contains(r.path)) << r.path;
    ASSERT_TRUE(doc["paths"][r.path].contains(method)) << r.method << " " << r.path;
    EXPECT_EQ(doc["paths"][r.path][method]["summary"], r.summary);
  }
  const auto& health = doc["paths"]["/healthz"]["get"];
  EXPECT_TRUE(health["security"].empty());
  const auto& retry = doc["paths"]["/api/v1/tasks/{id}/retry"]["post"];
  EXPECT_EQ(retry["x-ferry-min-role"], "operator");
  EXPECT_FALSE(retry.contains("security"));  // the global requirement applies
  ASSERT_EQ(retry["parameters"].size(), 1u);
  EXPECT_EQ(retry["parameters"][0]["name"], "id");
  EXPECT_EQ(retry["parameters"][0]["in"], "path");
  EXPECT_TRUE(retry["parameters"][0]["required"]);
  EXPECT_EQ(doc["paths"]["/api/v1/users"]["get"]["x-ferry-min-role"], "admin");
}

}  // namespace
}  // namespace ferry::web
