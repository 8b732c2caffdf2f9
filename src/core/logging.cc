#include "core/logging.h"

#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>

namespace ferry {
namespace {

std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
std::string g_process = "ferry";

spdlog::sink_ptr Sink() {
  static spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return sink;
}

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
