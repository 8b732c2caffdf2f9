#include "spool/service_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/clock.h"
#include "core/file_system.h"
#include "spool/control.h"

namespace ferry {

Result<std::unique_ptr<ServiceLock>> ServiceLock::Acquire(const std::string& data_folder,
                                                          const std::string& service) {
  std::string dir = JoinPath(data_folder, kRunDir);
  FERRY_RETURN_IF_ERROR(DefaultFileSystem()->CreateDirs(dir));
  std::string path = JoinPath(dir, service + ".lock");
  // Close-on-exec: children of the supervisor must not keep its lock alive after it dies.
  ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return Status::FromErrno(errno, "cannot open " + path);
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return Status::FromErrno(errno, "cannot lock " + path);
    }
    char buf[256] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof(buf) - 1, 0);
    std::string owner = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) {
      owner.pop_back();
    }
    return Status::FailedPrecondition(fmt::format(
        "another ferry {} ({}) already works on the data folder {}; stop it first, or give this "
        "one a data_folder of its own",
        service, owner.empty() ? "pid unknown" : owner, data_folder));
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string owner = fmt::format("pid {} on host {}, started {}\n", getpid(), host,
                                  FormatIso8601(RealClock()->Now()));
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), owner.data(), owner.size(), 0) != static_cast<ssize_t>(owner.size())) {
    return Status::FromErrno(errno, "cannot write " + path);
  }
  return std::unique_ptr<ServiceLock>(new ServiceLock(path, fd.release()));
}

}  // namespace ferry
