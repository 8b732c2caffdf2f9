#include "web/web_service.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "core/logging.h"
#include "core/stop_signals.h"
#include "journal/journal.h"
#include "spool/spool.h"
#include "web/server.h"

#ifdef FERRY_WEB_WITHOUT_DATA_ROUTES
// Built before src/web/api_data.cc existed (see CMakeLists.txt): no data endpoints.
namespace ferry::web {
void AddDataRoutes(std::vector<Route>*) {}
}  // namespace ferry::web
#endif

namespace ferry {

namespace web {
std::vector<Route> ResourceRoutes() {
  std::vector<Route> routes;
  AddDataRoutes(&routes);
  AddAdminRoutes(&routes);
  AddStatsRoutes(&routes);
  AddServiceRoutes(&routes);
  return routes;
}
}  // namespace web

int RunWebService(const Config& config) {
  auto log = Logger("web");
  int sig_fd = BlockStopSignals();
  signal(SIGPIPE, SIG_IGN);
  Status crypto = web::InitCrypto();
  if (!crypto.ok()) {
    log->error("{}", crypto.ToString());
    return 1;
  }
  FileSystem* fs = DefaultFileSystem();
  auto journal =
      Journal::Open(config.data_folder + "/" + std::string(kJournal), "web", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  web::WebServer server(config, web::ResourceRoutes(), journal->get(), RealClock());
  Status s = server.Bind();
  if (!s.ok()) {
    log->error("{}", s.ToString());
    (*journal)->Append({"service.failed", "", "", {{"reason", s.message()}}});
    return 1;
  }
  // Connect (and migrate, and create the first admin) now rather than on the first request, so
  // that the first-start password appears in the log at once.
  std::string health = server.db_pool()->Health();
  if (health != "ok") {
    log->warn(
        "starting without the database ({}); database-backed endpoints answer 503 until "
        "it is back",
        health);
  }
  (*journal)->Append(
      {"service.started", "", "", {{"port", config.web.port}, {"tls", config.web.tls.enabled}}});

  int wake[2] = {-1, -1};
  if (pipe2(wake, O_CLOEXEC) != 0) {
    log->error("cannot create a pipe: {}", std::strerror(errno));
    return 1;
  }
  std::thread watcher([&] {
    pollfd fds[2] = {{wake[0], POLLIN, 0}, {sig_fd, POLLIN, 0}};
    while (poll(fds, sig_fd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR) {
    }
    signalfd_siginfo info;
    if ((fds[1].revents & POLLIN) && read(sig_fd, &info, sizeof(info)) > 0) {
      log->info("received {}; stopping", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
    server.Stop();
  });
  server.Serve();
  // Serve() returns after Stop(), or when listening failed: end the watcher either way.
  char byte = 1;
  (void)!write(wake[1], &byte, 1);
  watcher.join();
  close(wake[0]);
  close(wake[1]);
  (*journal)->Append({"service.stopped", "", "", nlohmann::json::object()});
  log->info("web service stopped");
  return 0;
}

}  // namespace ferry
