#include "notify/notifier_service.h"

#include <curl/curl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>

#include "core/logging.h"
#include "core/scoped_fd.h"
#include "core/stop_signals.h"
#include "notify/notifier.h"
#include "spool/service_lock.h"

namespace ferry {

int RunNotifierService(const Config& config) {
  auto log = Logger("notify");
  int sig_fd = BlockStopSignals();
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    log->error("libcurl cannot be initialised; no notification can be sent");
    return 1;
  }

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "notifier", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One notifier per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "notifier");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "notifier", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  std::unique_ptr<notify::Deliverer> deliverer =
      notify::MakeCurlDeliverer(config.notifications, RealClock());
  notify::Notifier notifier(config, &spool, journal->get(), RealClock(), deliverer.get());
  s = notifier.Init();
  if (!s.ok()) {
    log->error("{}", s.ToString());
    return 1;
  }

  ScopedFd in_fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (in_fd.get() < 0 || inotify_add_watch(in_fd.get(), spool.StagePath(kJournal).c_str(),
                                           IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
    log->warn("inotify is not available; journals are read every 5 s");
  }
  int rules = static_cast<int>(
      std::count_if(config.rules.begin(), config.rules.end(), [](const RuleOptions& r) {
        return !r.notification_webhook.empty() || !r.notification_email.empty();
      }));
  log->info("notifying for {} rule(s); SMTP server {}:{}{}; patient data in notifications {}",
            rules, config.notifications.smtp.host, config.notifications.smtp.port,
            config.notifications.smtp.starttls ? " (STARTTLS)" : "",
            config.notifications.phi_notifications ? "on" : "off");
  (*journal)->Append({"service.started", "", "", {{"rules", rules}}});

  bool running = true;
  while (running) {
    WallTime next = notifier.RunOnce();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - RealClock()->Now());
    wait = std::clamp(wait + std::chrono::milliseconds(1), std::chrono::milliseconds(0),
                      std::chrono::milliseconds(5000));
    // Journals grow one event at a time: let a burst settle, then read it in one pass.
    running = WaitForWork(sig_fd, in_fd.get(), wait, "notify", std::chrono::milliseconds(20));
  }
  (*journal)->Append({"service.stopped", "", "", {{"pending", notifier.pending()}}});
  log->info("notifier stopped ({} notification(s) pending)", notifier.pending());
  curl_global_cleanup();
  return 0;
}

}  // namespace ferry
