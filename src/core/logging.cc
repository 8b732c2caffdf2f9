#include "core/logging.h"

#include <mutex>

#include <cstdlib>

#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace ferry {
namespace {

std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
std::string g_process = "ferry";

// stderr, plus the file named by FERRY_LOG_FILE once InitLogging has seen it.
std::shared_ptr<spdlog::sinks::dist_sink_mt> Sink() {
  static auto sink = std::make_shared<spdlog::sinks::dist_sink_mt>(
      std::vector<spdlog::sink_ptr>{std::make_shared<spdlog::sinks::stderr_sink_mt>()});
  return sink;
}

bool g_file_added = false;

std::string Pattern() { return "%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ " + g_process + "[%P] %n: %v"; }

}  // namespace

Status InitLogging(std::string_view level, std::string_view process) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Status::InvalidArgument("unknown log level '" + std::string(level) +
                                   "'; use trace, debug, info, warn, error or off");
  }
  std::lock_guard<std::mutex> lock(g_mu);
  g_level = lvl;
  g_process = std::string(process);
  const char* file = std::getenv("FERRY_LOG_FILE");
  if (file != nullptr && *file != '\0' && !g_file_added) {
    try {
      Sink()->add_sink(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          file, kLogFileMaxBytes, /*max_files=*/1));
      g_file_added = true;
    } catch (const spdlog::spdlog_ex& e) {
      // Logging to stderr still works; the web UI's log view misses this service.
      std::fprintf(stderr, "ferry: cannot write the log file %s: %s\n", file, e.what());
    }
  }
  Sink()->set_pattern(Pattern());
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(lvl); });
  return Status::Ok();
}

std::shared_ptr<spdlog::logger> Logger(const std::string& module) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto existing = spdlog::get(module)) {
    return existing;
  }
  auto logger = std::make_shared<spdlog::logger>(module, Sink());
  Sink()->set_pattern(Pattern());
  logger->set_level(g_level);
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace ferry
