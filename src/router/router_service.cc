#include "router/router_service.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "core/logging.h"
#include "core/stop_signals.h"
#include "router/router.h"
#include "spool/service_lock.h"

namespace ferry {

int RunRouterService(const Config& config) {
  auto log = Logger("router");
  int sig_fd = BlockStopSignals();

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "router", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One router per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "router");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "router", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  std::vector<RuleSet::Error> errors;
  auto rules = RuleSet::Build(config.rules, &errors);
  if (!rules) {
    for (const auto& e : errors) {
      log->error("{}: {}", e.path, e.reason);
    }
    log->error("the router cannot start: fix the rules above (ferry config check shows them)");
    (*journal)->Append({"service.failed", "", "", {{"reason", "invalid rules"}}});
    return 1;
  }
  Router router(config.router, *rules, &spool, journal->get(), RealClock());
  s = router.Recover();
  if (!s.ok()) {
    log->error("cannot recover the router's work in {}/tmp/router: {}", config.data_folder,
               s.ToString());
    return 1;
  }

  int in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  std::string incoming = spool.StagePath(kIncoming);
  if (in_fd >= 0) {
    inotify_add_watch(in_fd, incoming.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
  }
  std::set<std::string> watched;

  log->info("routing {} rule(s); series complete {} ms after their associations end, or after "
            "{} s without new instances",
            config.rules.size(), config.router.series_complete_grace_ms,
            config.router.series_complete_timeout_s);
  (*journal)->Append({"service.started", "", "", {{"rules", config.rules.size()}}});

  bool running = true;
  while (running) {
    auto pass = router.RunOnce();
    auto wait = std::chrono::milliseconds(1000);
    if (!pass) {
      log->error("cannot read {}: {}; retrying", incoming, pass.error().ToString());
    } else if (pass->next_check) {
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(*pass->next_check -
                                                                          RealClock()->Now());
      wait = std::clamp(until + std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                        wait);
    }
    // Wake up when an association of a pending series ends.
    if (in_fd >= 0 && pass) {
      std::vector<std::string> pending = router.PendingSeries();
      for (const auto& uid : pending) {
        if (watched.insert(uid).second) {
          std::string dir = JoinPath(spool.SeriesPath(uid), kAssociationsDir);
          inotify_add_watch(in_fd, dir.c_str(), IN_MOVED_TO | IN_CREATE | IN_ONLYDIR);
        }
      }
      if (watched.size() > 4 * pending.size() + 1024) {
        watched.clear();  // forget routed series; watches of deleted folders vanish anyway
      }
    }
    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {in_fd, POLLIN, 0}};
    int n = poll(fds, in_fd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
    if (n > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (read(sig_fd, &info, sizeof(info)) > 0) {
        log->info("received {}; stopping", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      }
      running = false;
    }
    if (n > 0 && in_fd >= 0 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (read(in_fd, buf, sizeof(buf)) > 0) {
      }
    }
  }
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("router stopped");
  return 0;
}

}  // namespace ferry
