// Logging: one named spdlog logger per module ("receiver", "spool", "dicom", ...), all writing
// to stderr with the same pattern, so that a supervisor's and its children's lines interleave
// readably in one journal (systemd) or terminal.
//
// Levels: error = a person must act; warn = degraded or retrying; info = one line per
// association or task; debug = per instance. Thread-safety: spdlog loggers are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "core/status.h"

namespace ferry {

// Sets the level of every ferry logger ("trace", "debug", "info", "warn", "error", "off").
// InvalidArgument for an unknown level name. `process` is shown in each line, e.g. "receiver".
Status InitLogging(std::string_view level, std::string_view process);

// Returns the logger for `module`, creating it on first use.
std::shared_ptr<spdlog::logger> Logger(const std::string& module);

}  // namespace ferry
