// ferry_openapi: prints the OpenAPI document of `ferry web` (the same route list the server
// registers) without starting a server or opening a database. The web UI's build turns it into
// TypeScript types (web/src/api/schema.d.ts), so an endpoint that changes breaks the UI's type
// check rather than a page at run time.
#include <iostream>

#include "core/clock.h"
#include "web/openapi.h"
#include "web/route.h"
#include "web/server.h"

int main() {
  ferry::Config config;  // defaults: the route list does not depend on the configuration
  ferry::web::WebServer server(config, ferry::web::ResourceRoutes(), nullptr, ferry::RealClock());
  std::cout << ferry::web::BuildOpenApi(server.routes(), false).dump(2) << "\n";
  return 0;
}
