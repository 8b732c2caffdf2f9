#include "core/stop_signals.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "core/logging.h"

namespace ferry {

int BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signalfd(-1, &signals, SFD_CLOEXEC);
}

bool WaitForWork(int signal_fd, int event_fd, std::chrono::milliseconds timeout,
                 std::string_view service, std::chrono::milliseconds settle) {
  int ms = static_cast<int>(std::clamp<int64_t>(timeout.count(), 0, 24 * 3600 * 1000));
  if (signal_fd < 0 && event_fd < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return true;
  }
  pollfd fds[2] = {{signal_fd, POLLIN, 0}, {event_fd, POLLIN, 0}};
  // poll() ignores negative descriptors, so either may be missing.
  int n = poll(fds, 2, ms);
  if (n > 0 && (fds[0].revents & POLLIN)) {
    signalfd_siginfo info;
    if (read(signal_fd, &info, sizeof(info)) > 0) {
      Logger(std::string(service))
          ->info("received {}; stopping", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
    return false;
  }
  if (n > 0 && (fds[1].revents & POLLIN)) {
    if (settle.count() > 0) {
      poll(fds, 1, static_cast<int>(settle.count()));
      if (fds[0].revents & POLLIN) {
        return WaitForWork(signal_fd, -1, std::chrono::milliseconds(0), service);
      }
    }
    alignas(inotify_event) char buf[4096];
    while (read(event_fd, buf, sizeof(buf)) > 0) {
    }
  }
  return true;
}

}  // namespace ferry
