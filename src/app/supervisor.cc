#include "app/supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "core/logging.h"
#include "journal/journal.h"
#include "spool/control.h"
#include "spool/service_lock.h"
#include "spool/spool.h"

namespace ferry {
namespace {

using Steady = std::chrono::steady_clock;

struct Child {
  ServiceSpec spec;
  pid_t pid = 0;
  Steady::time_point started;
  std::optional<Steady::time_point> restart_at;
  int backoff_s = 0;
  int restarts = 0;
  WallTime started_wall;
  std::string last_exit;  // how the last run ended, empty before the first exit
  bool restart_requested = false;  // stopped on an admin's request: restart without backoff
};

// <data>/run/services.json: the live view of the services for `ferry web` (status, /metrics).
void WriteStatus(Spool* spool, const std::vector<Child>& children, bool stopping) {
  nlohmann::json services = nlohmann::json::object();
  for (const auto& c : children) {
    nlohmann::json s = {{"pid", c.pid},
                        {"state", c.pid > 0     ? (stopping ? "stopping" : "running")
                                  : stopping    ? "stopped"
                                                : "restarting"},
                        {"restarts", c.restarts},
                        {"last_exit", c.last_exit}};
    if (c.pid > 0) {
      s["started_at"] = FormatIso8601(c.started_wall);
    }
    services[c.spec.name] = std::move(s);
  }
  nlohmann::json status = {{"supervisor_pid", getpid()},
                           {"updated_at", FormatIso8601(RealClock()->Now())},
                           {"services", std::move(services)}};
  std::string dir = JoinPath(spool->root(), kRunDir);
  Status s = spool->fs()->CreateDirs(dir);
  if (s.ok()) {
    s = spool->WriteFileAtomic(dir, kServicesStatusFile, status.dump(2) + "\n", Durability::kOs);
  }
  if (!s.ok()) {
    Logger("supervisor")->warn("cannot write the service status file in {}: {}", dir,
                               s.ToString());
  }
}

// `log_file`: where the child also writes its log lines (FERRY_LOG_FILE, core/logging.h), for
// the web UI's log view; empty for none.
pid_t Spawn(const ServiceSpec& spec, const sigset_t& blocked, const std::string& log_file) {
  pid_t pid = fork();
  if (pid != 0) {
    return pid;  // parent, or -1
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &blocked, nullptr);
  if (!log_file.empty()) {
    setenv("FERRY_LOG_FILE", log_file.c_str(), 1);
  }
  std::vector<char*> argv;
  for (const auto& a : spec.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "ferry: cannot start service %s: %s\n", spec.name.c_str(),
               std::strerror(errno));
  _exit(127);
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) {
    return "exited with code " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  }
  return "stopped";
}

}  // namespace

int RunSupervisor(const Config& config, const std::vector<ServiceSpec>& services) {
  auto log = Logger("supervisor");
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGCHLD);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigprocmask(SIG_BLOCK, &sigs, nullptr);

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "supervisor", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One supervisor per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "supervisor");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "supervisor", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  const SupervisorOptions& opt = config.supervisor;

  std::vector<Child> children;
  for (const auto& spec : services) {
    Child c;
    c.spec = spec;
    c.backoff_s = opt.restart_backoff_initial_s;
    c.restart_at = Steady::now();
    children.push_back(std::move(c));
  }
  (*journal)->Append({"supervisor.started", "", "", {{"services", services.size()}}});
  // Each service's log lines also go to <data>/log/<service>.log (kept small by rotation).
  std::string log_dir = JoinPath(config.data_folder, kLogDir);
  if (Status made = fs->CreateDirs(log_dir); !made.ok()) {
    log->warn("cannot create {}: {}; the web UI will show no service logs", log_dir,
              made.ToString());
    log_dir.clear();
  }

  bool stopping = false;
  bool status_changed = true;
  Steady::time_point stop_deadline;
  for (;;) {
    if (status_changed) {
      WriteStatus(&spool, children, stopping);
      status_changed = false;
    }
    auto now = Steady::now();
    if (!stopping) {
      for (auto& c : children) {
        if (c.pid == 0 && c.restart_at && *c.restart_at <= now) {
          c.restart_at.reset();
          c.pid = Spawn(c.spec, sigs,
                        log_dir.empty() ? "" : JoinPath(log_dir, c.spec.name + ".log"));
          c.started = now;
          c.started_wall = RealClock()->Now();
          status_changed = true;
          if (c.pid < 0) {
            log->error("cannot fork service {}: {}; retrying in {} s", c.spec.name,
                       std::strerror(errno), c.backoff_s);
            c.pid = 0;
            c.restart_at = now + std::chrono::seconds(c.backoff_s);
            continue;
          }
          log->info("started service {} (pid {})", c.spec.name, c.pid);
          (*journal)->Append({c.restarts == 0 ? "service.started" : "service.restarted", "", "",
                              {{"service", c.spec.name}, {"pid", c.pid}, {"restarts", c.restarts}}});
        }
      }
    }
    // Restarts an admin asked for (POST /api/v1/services/{name}/restart).
    for (const auto& [name, by] : stopping ? std::vector<std::pair<std::string, std::string>>{}
                                           : TakeRestartRequests(config.data_folder)) {
      for (auto& c : children) {
        if (c.spec.name != name) {
          continue;
        }
        log->info("restarting service {} as {} asked", name, by.empty() ? "an admin" : by);
        (*journal)->Append({"service.restart_requested", "", "",
                            {{"service", name}, {"by", by}, {"pid", c.pid}}});
        if (c.pid > 0) {
          c.restart_requested = true;
          kill(c.pid, SIGTERM);
        } else {
          c.restart_at = now;  // waiting out a backoff: start it now
        }
      }
    }
    bool any_running = std::any_of(children.begin(), children.end(),
                                   [](const Child& c) { return c.pid > 0; });
    if (stopping && !any_running) {
      break;
    }
    if (stopping && now >= stop_deadline) {
      for (auto& c : children) {
        if (c.pid > 0) {
          log->warn("service {} (pid {}) did not stop within {} s; killing it", c.spec.name,
                    c.pid, opt.shutdown_timeout_s);
          kill(c.pid, SIGKILL);
        }
      }
      stop_deadline = now + std::chrono::seconds(5);
    }

    timespec timeout{0, 200 * 1000 * 1000};
    siginfo_t info;
    int sig = sigtimedwait(&sigs, &info, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      if (!stopping) {
        log->info("received {}; stopping {} service(s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                  children.size());
        stopping = true;
        status_changed = true;
        stop_deadline = Steady::now() + std::chrono::seconds(opt.shutdown_timeout_s);
        for (auto& c : children) {
          if (c.pid > 0) {
            kill(c.pid, SIGTERM);
          }
        }
      }
      continue;
    }
    // Reap every child that ended (SIGCHLD, or found on the periodic check).
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {
        break;
      }
      for (auto& c : children) {
        if (c.pid != pid) {
          continue;
        }
        c.pid = 0;
        c.last_exit = DescribeExit(status);
        status_changed = true;
        auto uptime = Steady::now() - c.started;
        auto uptime_s = std::chrono::duration_cast<std::chrono::seconds>(uptime).count();
        if (stopping) {
          log->info("service {} stopped ({})", c.spec.name, DescribeExit(status));
          (*journal)->Append({"service.stopped", "", "",
                              {{"service", c.spec.name}, {"exit", DescribeExit(status)}}});
          break;
        }
        if (c.restart_requested) {
          c.restart_requested = false;
          log->info("service {} stopped ({}) for the requested restart", c.spec.name,
                    DescribeExit(status));
          (*journal)->Append({"service.stopped", "", "",
                              {{"service", c.spec.name},
                               {"exit", DescribeExit(status)},
                               {"reason", "restart requested"}}});
          c.restart_at = Steady::now();
          ++c.restarts;
          break;
        }
        if (uptime > std::chrono::seconds(60)) {
          c.backoff_s = opt.restart_backoff_initial_s;
        }
        log->error("service {} (pid {}) {} after {} s; restarting it in {} s", c.spec.name, pid,
                   DescribeExit(status), uptime_s, c.backoff_s);
        (*journal)->Append({"service.crashed", "", "",
                            {{"service", c.spec.name},
                             {"pid", pid},
                             {"exit", DescribeExit(status)},
                             {"uptime_s", uptime_s},
                             {"restart_in_s", c.backoff_s}}});
        c.restart_at = Steady::now() + std::chrono::seconds(c.backoff_s);
        c.backoff_s = std::min(c.backoff_s * 2, opt.restart_backoff_max_s);
        ++c.restarts;
        break;
      }
    }
  }
  WriteStatus(&spool, children, stopping);
  (*journal)->Append({"supervisor.stopped", "", "", nlohmann::json::object()});
  log->info("all services stopped");
  return 0;
}

}  // namespace ferry
