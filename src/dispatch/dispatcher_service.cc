#include "dispatch/dispatcher_service.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/logging.h"
#include "core/stop_signals.h"
#include "dispatch/dispatcher.h"
#include "spool/control.h"
#include "spool/service_lock.h"

namespace ferry {

int RunDispatcherService(const Config& config) {
  auto log = Logger("dispatcher");
  int sig_fd = BlockStopSignals();
  // Peers that close a connection must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "dispatcher", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One dispatcher per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "dispatcher");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "dispatcher", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  std::map<std::string, std::unique_ptr<Target>> targets;
  for (const auto& t : config.targets) {
    auto target = MakeTarget(t);
    if (!target) {
      log->error("target {}: {}", t.name, target.error().ToString());
      return 1;
    }
    targets[t.name] = std::move(*target);
  }
  Dispatcher dispatcher(config, std::move(targets), &spool, journal->get(), RealClock());
  s = dispatcher.Recover();
  if (!s.ok()) {
    log->error("cannot recover the dispatcher's work in {}/tmp/dispatcher: {}",
               config.data_folder, s.ToString());
    return 1;
  }

  int in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in_fd >= 0) {
    inotify_add_watch(in_fd, spool.StagePath(kOutgoing).c_str(),
                      IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
    // Suspend and resume take effect at once.
    std::string control = JoinPath(config.data_folder, kControlDir);
    if (DefaultFileSystem()->CreateDirs(control).ok()) {
      inotify_add_watch(in_fd, control.c_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE);
    }
  }
  std::map<std::string, int> watches;  // streamed series folder -> watch
  std::map<int, std::string> watched;  // watch -> streamed series folder
  std::set<std::string> changed;       // streamed series folders with news since the last pass

  log->info("dispatching to {} target(s) with {} worker(s)", config.targets.size(),
            config.dispatcher.workers);
  for (const auto& w : TargetFolderWarnings(config)) {
    log->warn("{}: {}; sending to this target fails (and is retried) until it is fixed", w.path,
              w.reason);
  }
  (*journal)->Append({"service.started", "", "", {{"targets", config.targets.size()}}});

  bool running = true;
  bool streams_changed = true;  // without inotify, every pass looks at the streamed folders
  while (running) {
    WallTime next = streams_changed ? dispatcher.RunOnce(true) : dispatcher.RunOnce(changed);
    changed.clear();
    streams_changed = in_fd < 0;
    if (in_fd >= 0) {
      std::vector<std::string> folders = dispatcher.StreamingFolders();
      std::set<std::string> added;
      for (const auto& f : folders) {
        if (watches.count(f) == 0) {
          watches[f] = inotify_add_watch(in_fd, f.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
          if (watches[f] >= 0) {
            watched[watches[f]] = f;
          }
          added.insert(f);
        }
        if (watches[f] < 0) {
          streams_changed = true;  // no watch (limit reached?): look at every pass instead
        }
      }
      for (auto it = watches.begin(); it != watches.end();) {
        if (std::find(folders.begin(), folders.end(), it->first) == folders.end()) {
          if (it->second >= 0) {
            inotify_rm_watch(in_fd, it->second);
            watched.erase(it->second);
          }
          it = watches.erase(it);
        } else {
          ++it;
        }
      }
      if (!added.empty()) {
        // A watch set up after the last instance arrived would miss it: look once more (only
        // at the new streams; the others have their watch).
        next = dispatcher.RunOnce(added);
      }
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - RealClock()->Now());
    // Events wake the loop; the bounded wait is the safety net against a missed one (and notices
    // the off-peak window), at the cost of a pass every few seconds.
    wait = std::clamp(wait + std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                      std::chrono::milliseconds(5000));
    pollfd fds[3] = {{sig_fd, POLLIN, 0}, {dispatcher.wake_fd(), POLLIN, 0}, {in_fd, POLLIN, 0}};
    int n = poll(fds, in_fd >= 0 ? 3 : 2, static_cast<int>(wait.count()));
    if (n > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (read(sig_fd, &info, sizeof(info)) > 0) {
        log->info("received {}; stopping", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      }
      running = false;
    }
    if (n > 0 && (fds[1].revents & POLLIN)) {
      dispatcher.DrainWake();
    }
    if (n > 0 && in_fd >= 0 && (fds[2].revents & POLLIN)) {
      alignas(inotify_event) char buf[4096];
      ssize_t len;
      while ((len = read(in_fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < len;) {
          const auto* event = reinterpret_cast<const inotify_event*>(buf + i);
          auto w = watched.find(event->wd);
          if (w != watched.end()) {
            changed.insert(w->second);  // news in a streamed series folder
          }
          i += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
      }
    }
  }
  dispatcher.Shutdown();
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("dispatcher stopped");
  return 0;
}

}  // namespace ferry
