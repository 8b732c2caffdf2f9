// ServiceLock: one process of each service per data folder.
//
// A service that moves folders in the spool (the supervisor, receiver, router, processor,
// dispatcher, notifier, cleaner) takes <data>/run/<service>.lock with flock(2) when it starts and
// holds it until it exits; the kernel releases it when the process dies, however it dies. A
// second instance on the same data folder — another `ferry serve` started by mistake — is
// refused at once with the first one's pid, host and start time, instead of routing and sending
// the same series twice or taking over the first one's claimed work as if it had crashed.
// Thread-safety: a lock is owned by one process; the object is immutable once acquired.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "core/scoped_fd.h"

namespace ferry {

class ServiceLock {
 public:
  // FailedPrecondition naming the other process when the lock is held; the OS error when the
  // run/ folder or the lock file cannot be created.
  static Result<std::unique_ptr<ServiceLock>> Acquire(const std::string& data_folder,
                                                      const std::string& service);

  const std::string& path() const { return path_; }

 private:
  ServiceLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  ScopedFd fd_;
};

}  // namespace ferry
