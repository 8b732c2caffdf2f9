// Supervisor: `ferry serve`, one child process per service, restarted when it dies.
//
// Each service runs as `ferry <service> --config PATH` in its own process, so a crash or hang of
// one never stops another (above all, the receiver keeps accepting images). A child that exits
// or is killed is restarted after a backoff that doubles from supervisor.restart_backoff_initial
// up to restart_backoff_max, and resets once the child has run for a minute. On SIGTERM or
// SIGINT the supervisor forwards SIGTERM to every child, waits up to supervisor.shutdown_timeout
// for them to finish their in-flight work, SIGKILLs what is left, and returns 0. Children get
// SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG), so no orphan keeps the DICOM port.
// Threads: single-threaded; signals are taken synchronously with sigtimedwait.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace ferry {

struct ServiceSpec {
  std::string name;               // "receiver"
  std::vector<std::string> argv;  // full command line of the child
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int RunSupervisor(const Config& config, const std::vector<ServiceSpec>& services);

}  // namespace ferry
