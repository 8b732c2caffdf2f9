// The log-line helpers of the service endpoints (AddServiceRoutes, declared in route.h);
// src/web/api_services.cc.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "web/route.h"

namespace ferry::web {

// One line of a service's log file, as core/logging.cc writes it.
struct LogLine {
  std::string time;     // "2026-12-08T04:00:00.123+00:00"
  std::string level;    // "info", "warn", ...
  std::string message;  // "web[42] web: listening on ..."
};

// Splits a log line; nullopt for a line that is not one (a continuation, a child's stray output).
std::optional<LogLine> ParseLogLine(std::string_view text);

// `line` with passwords ('...' after "password", password=...), API tokens, bearer tokens and
// credentials in URLs replaced by ***.
std::string RedactLogLine(std::string line);

}  // namespace ferry::web
