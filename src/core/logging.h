// Logging: one named spdlog logger per module ("receiver", "spool", "dicom", ...), all writing
// to stderr with the same pattern, so that a supervisor's and its children's lines interleave
// readably in one journal (systemd) or terminal.
//
// FERRY_LOG_FILE=<path> in the environment (the supervisor sets <data>/log/<service>.log for
// each child) makes InitLogging also write every line to that file, rotated at
// kLogFileMaxBytes (the older lines move to <name>.1.log), so the web UI can show recent
// lines of each service.
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

inline constexpr size_t kLogFileMaxBytes = size_t{1} << 20;

// Sets the level of every ferry logger ("trace", "debug", "info", "warn", "error", "off").
// InvalidArgument for an unknown level name. `process` is shown in each line, e.g. "receiver".
Status InitLogging(std::string_view level, std::string_view process);

// Returns the logger for `module`, creating it on first use.
std::shared_ptr<spdlog::logger> Logger(const std::string& module);

}  // namespace ferry
