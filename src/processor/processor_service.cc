#include "processor/processor_service.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>

#include "core/logging.h"
#include "core/stop_signals.h"
#include "dicom/instance_header.h"
#include "processor/processor.h"
#include "processor/runtimes.h"
#include "spool/control.h"
#include "spool/service_lock.h"

namespace ferry {

int RunProcessorService(const Config& config) {
  auto log = Logger("processor");
  int sig_fd = BlockStopSignals();
  signal(SIGPIPE, SIG_IGN);

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "processor", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One processor per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "processor");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "processor", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  bool uses_docker = std::any_of(config.modules.begin(), config.modules.end(), [](const auto& m) {
    return m.runtime == ModuleRuntimeKind::kDocker;
  });
  DockerRuntime docker(config.processor, config.data_folder, RealClock());
  LocalRuntime local(config.processor);
  if (uses_docker) {
    DockerApi api(DockerSocketPath(config.processor.docker_socket));
    auto engine = api.Version();
    if (engine) {
      log->info("container engine: {} {} at {}", engine->name, engine->version,
                api.socket_path());
    } else {
      log->warn("{}; container modules wait until it can be reached", engine.error().message());
    }
  }
  auto series_of = [](const std::string& path) -> Result<std::string> {
    FERRY_ASSIGN_OR_RETURN(dicom::InstanceHeader h,
                           dicom::ReadInstanceHeader(path, {}, [](const std::string&) {
                             return false;
                           }));
    return h.series_instance_uid;
  };
  Processor processor(config, uses_docker ? &docker : nullptr, &local, &spool, journal->get(),
                      RealClock(), series_of);
  s = processor.Recover();
  if (!s.ok()) {
    log->error("cannot recover the processor's work in {}/tmp/processor: {}", config.data_folder,
               s.ToString());
    return 1;
  }
  int in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in_fd >= 0) {
    inotify_add_watch(in_fd, spool.StagePath(kProcessing).c_str(),
                      IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
    std::string control = JoinPath(config.data_folder, kControlDir);
    if (fs->CreateDirs(control).ok()) {
      inotify_add_watch(in_fd, control.c_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE);
    }
  }
  log->info("processing with {} module(s), up to {} job(s) at once", config.modules.size(),
            config.processor.workers);
  (*journal)->Append({"service.started", "", "",
                      {{"modules", config.modules.size()}, {"workers", config.processor.workers}}});
  bool running = true;
  while (running) {
    WallTime next = processor.RunOnce();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - RealClock()->Now());
    wait = std::clamp(wait + std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                      std::chrono::milliseconds(5000));
    pollfd fds[3] = {{sig_fd, POLLIN, 0}, {processor.wake_fd(), POLLIN, 0}, {in_fd, POLLIN, 0}};
    int n = poll(fds, in_fd >= 0 ? 3 : 2, static_cast<int>(wait.count()));
    if (n > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (read(sig_fd, &info, sizeof(info)) > 0) {
        log->info("received {}; stopping (running modules are stopped and their tasks queued "
                  "again)",
                  info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      }
      running = false;
    }
    if (n > 0 && (fds[1].revents & POLLIN)) {
      processor.DrainWake();
    }
    if (n > 0 && in_fd >= 0 && (fds[2].revents & POLLIN)) {
      alignas(inotify_event) char buf[4096];
      while (read(in_fd, buf, sizeof(buf)) > 0) {
      }
    }
  }
  processor.Shutdown();
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("processor stopped");
  return 0;
}

}  // namespace ferry
