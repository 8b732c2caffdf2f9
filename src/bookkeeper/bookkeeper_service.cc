#include "bookkeeper/bookkeeper_service.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>

#include "bookkeeper/bookkeeper.h"
#include "core/logging.h"
#include "core/scoped_fd.h"
#include "core/stop_signals.h"
#include "db/schema.h"
#include "spool/spool.h"

namespace ferry {

int RunBookkeeperService(const Config& config) {
  auto log = Logger("bookkeeper");
  int sig_fd = BlockStopSignals();
  signal(SIGPIPE, SIG_IGN);

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "bookkeeper", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "bookkeeper", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  const std::string uri = DatabaseUri(config);
  const std::string shown = db::RedactUri(DatabaseUri(config));

  bookkeeper::BookkeeperSettings settings;
  settings.data_folder = config.data_folder;
  settings.database = shown;
  settings.batch_size = config.bookkeeper.batch_size;
  settings.reconnect_max = std::chrono::seconds(std::max(1, config.bookkeeper.reconnect_max_s));
  bookkeeper::Bookkeeper keeper(
      settings,
      [&uri]() -> Result<std::unique_ptr<db::Database>> {
        FERRY_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> db, db::Database::Open(uri));
        FERRY_ASSIGN_OR_RETURN(int version, db::Migrate(db.get()));
        (void)version;
        return db;
      },
      RealClock(), journal->get());

  ScopedFd in_fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (in_fd.get() >= 0) {
    if (inotify_add_watch(in_fd.get(), spool.StagePath(kJournal).c_str(),
                          IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
      log->warn("cannot watch {} with inotify; looking every {} ms instead",
                spool.StagePath(kJournal), config.bookkeeper.poll_interval_ms);
    }
  }
  log->info("loading the journals of {} into {} (batches of {} lines)", config.data_folder, shown,
            settings.batch_size);
  (*journal)->Append({"service.started", "", "", {{"database", shown}}});

  const auto poll_interval =
      std::chrono::milliseconds(std::max(10, config.bookkeeper.poll_interval_ms));
  bool running = true;
  while (running) {
    bookkeeper::PassResult pass = keeper.RunOnce();
    std::chrono::milliseconds wait = poll_interval;
    if (pass.more) {
      wait = std::chrono::milliseconds(0);
    } else if (pass.retry_at) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(*pass.retry_at -
                                                                   RealClock()->SteadyNow());
      wait = std::clamp(wait + std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                        std::chrono::milliseconds(60000));
    }
    running = WaitForWork(sig_fd, in_fd.get(), wait, "bookkeeper");
  }
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("bookkeeper stopped");
  return 0;
}

}  // namespace ferry
