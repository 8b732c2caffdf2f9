#include "cleaner/cleaner_service.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "cleaner/cleaner.h"
#include "core/logging.h"
#include "core/stop_signals.h"
#include "spool/service_lock.h"

namespace ferry {
namespace {

std::string Duration(int64_t s) {
  if (s % 86400 == 0 && s > 0) {
    return fmt::format("{} d", s / 86400);
  }
  if (s % 3600 == 0 && s > 0) {
    return fmt::format("{} h", s / 3600);
  }
  return fmt::format("{} s", s);
}

std::string TimeOfDay(int minutes) {
  return fmt::format("{:02}:{:02}", minutes / 60, minutes % 60);
}

}  // namespace

int RunCleanerService(const Config& config) {
  auto log = Logger("cleaner");
  int sig_fd = BlockStopSignals();
  bool stopping = false;
  // Reads a pending SIGTERM/SIGINT without waiting; `wait_ms` > 0 waits that long for one.
  auto wait_for_stop = [&](int wait_ms) {
    if (stopping) {
      return true;
    }
    stopping = !WaitForWork(sig_fd, -1, std::chrono::milliseconds(wait_ms), "cleaner");
    return stopping;
  };

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "cleaner", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One cleaner per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "cleaner");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "cleaner", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  const CleanerOptions& o = config.cleaner;
  Cleaner cleaner(o, &spool, journal->get(), RealClock(), StatvfsDiskUsage());
  cleaner.set_stop_requested([&] { return wait_for_stop(0); });
  auto recovered = cleaner.Recover();
  if (!recovered) {
    log->error("{}", recovered.error().ToString());
    (*journal)->Append({"service.failed", "", "", {{"reason", recovered.error().ToString()}}});
    return 1;
  }
  if (*recovered > 0) {
    log->info("finished removing {} task(s) whose deletion was interrupted", *recovered);
  }

  log->info(
      "deleting finished tasks between {} and {} (local time) after {} (success/, "
      "discard/) or {} (error/); at any time above {}% disk usage until below {}%; "
      "every {} s",
      TimeOfDay(o.offpeak_start_min), TimeOfDay(o.offpeak_end_min), Duration(o.retention_s),
      Duration(o.error_retention_s), o.emergency_threshold_percent, o.low_water_percent,
      o.interval_s);
  if (o.offpeak_start_min == o.offpeak_end_min) {
    log->warn(
        "cleaner.offpeak_start equals cleaner.offpeak_end: the window is empty, so tasks "
        "are deleted only when the disk is full; set a window to apply the retention");
  }
  (*journal)->Append({"service.started",
                      "",
                      "",
                      {{"retention_s", o.retention_s},
                       {"error_retention_s", o.error_retention_s},
                       {"interval_s", o.interval_s}}});

  while (!wait_for_stop(0)) {
    auto pass = cleaner.RunOnce();
    if (!pass) {
      log->error("{}; check the owner and permissions of {}", pass.error().ToString(),
                 config.data_folder);
    }
    wait_for_stop(o.interval_s * 1000);
  }
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("cleaner stopped");
  return 0;
}

}  // namespace ferry
