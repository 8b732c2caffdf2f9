// Folder target: copies each task's instances into <folder>/<task id>/ and writes an empty
// `.complete` file there when the task is fully delivered. Each file is written under a hidden
// temporary name, fsynced and renamed, so a program watching the folder never reads a partial
// file; `.complete` tells it the set is whole.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/scoped_fd.h"
#include "core/file_system.h"
#include "targets/target.h"

namespace ferry {
namespace {

constexpr const char* kCompleteMarker = ".complete";

// Maps an errno of the destination to an outcome: a full or read-only disk may clear up; a
// permission problem needs an operator.
Status DestinationError(int err, const std::string& what) {
  Status s = Status::FromErrno(err, what);
  if (err == EACCES || err == EPERM) {
    return Status::PermissionDenied(s.message() +
                                    "; give the user running ferry write permission on the "
                                    "target folder");
  }
  return Status::Unavailable(s.message());
}

Status SyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return DestinationError(errno, "open " + path);
  }
  ScopedFd closer(fd);
  if (::fsync(fd) != 0) {
    return DestinationError(errno, "fsync " + path);
  }
  return Status::Ok();
}

// Copies `from` to `dir`/`name` through a hidden temporary file.
Status CopyAtomically(const std::string& from, const std::string& dir, const std::string& name) {
  ScopedFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    return Status::FromErrno(errno, "open " + from);
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) {
    return Status::FromErrno(errno, "stat " + from);
  }
  std::string tmp = JoinPath(dir, "." + name + ".tmp");
  ScopedFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.get() < 0) {
    return DestinationError(errno, "create " + tmp);
  }
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr,
                                  static_cast<size_t>(left), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::unlink(tmp.c_str());
      return DestinationError(err, "copy " + from + " to " + tmp);
    }
    left -= n;
  }
  if (::fsync(out.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return DestinationError(err, "fsync " + tmp);
  }
  ::close(out.release());
  if (::rename(tmp.c_str(), JoinPath(dir, name).c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return DestinationError(err, "rename " + tmp);
  }
  return Status::Ok();
}

class FolderSession : public TargetSession {
 public:
  FolderSession(std::string dir, std::string filter)
      : dir_(std::move(dir)), filter_(std::move(filter)) {}

  void Send(const std::vector<OutgoingInstance>& instances,
            std::vector<InstanceResult>* results) override {
    results->assign(instances.size(), InstanceResult{});
    Status ready = EnsureDir();
    bool copied = false;
    for (size_t i = 0; i < instances.size(); ++i) {
      InstanceResult& r = (*results)[i];
      if (!ready.ok()) {
        r = FailedResult(ready);
        continue;
      }
      std::string name = BaseName(instances[i].path);
      if (!PassesFileFilter(filter_, name)) {
        r = {Outcome::kDelivered, "skipped by file_filter"};
        continue;
      }
      Status s = CopyAtomically(instances[i].path, dir_, name);
      if (s.ok()) {
        r = {Outcome::kDelivered, ""};
        copied = true;
      } else {
        r = FailedResult(s);
      }
    }
    if (copied) {
      Status synced = SyncPath(dir_);
      if (!synced.ok()) {
        for (auto& r : *results) {
          if (r.outcome == Outcome::kDelivered) {
            r = {Outcome::kTransient, synced.message()};
          }
        }
      }
    }
  }

  Status Finish() override {
    FERRY_RETURN_IF_ERROR(EnsureDir());
    std::string marker = JoinPath(dir_, kCompleteMarker);
    ScopedFd fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      return DestinationError(errno, "create " + marker);
    }
    if (::fsync(fd.get()) != 0) {
      return DestinationError(errno, "fsync " + marker);
    }
    return SyncPath(dir_);
  }

 private:
  Status EnsureDir() {
    if (dir_ready_) {
      return Status::Ok();
    }
    if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      return DestinationError(errno, "create " + dir_);
    }
    std::string parent = dir_.substr(0, dir_.rfind('/'));
    FERRY_RETURN_IF_ERROR(SyncPath(parent.empty() ? "/" : parent));
    dir_ready_ = true;
    return Status::Ok();
  }

  std::string dir_;
  std::string filter_;
  bool dir_ready_ = false;
};

class FolderTarget : public Target {
 public:
  explicit FolderTarget(const TargetOptions& o) : Target(o) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) override {
    if (!IsSafeTaskFolderName(task.task_id)) {
      return Status::InvalidArgument("task id '" + task.task_id + "' is not a safe folder name");
    }
    FERRY_RETURN_IF_ERROR(CheckFolder());
    return std::unique_ptr<TargetSession>(std::make_unique<FolderSession>(
        JoinPath(options().folder, task.task_id), options().file_filter));
  }

  Status Check() override {
    FERRY_RETURN_IF_ERROR(CheckFolder());
    std::string probe = JoinPath(options().folder, fmt::format(".ferry-check-{}", ::getpid()));
    ScopedFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      return DestinationError(errno, "cannot write in " + options().folder);
    }
    ::unlink(probe.c_str());
    return Status::Ok();
  }

 private:
  Status CheckFolder() const {
    struct stat st {};
    if (::stat(options().folder.c_str(), &st) != 0) {
      if (errno == ENOENT) {
        return Status::Unavailable("the target folder " + options().folder +
                                   " does not exist; create it (or mount the share)");
      }
      return DestinationError(errno, "stat " + options().folder);
    }
    if (!S_ISDIR(st.st_mode)) {
      return Status::FailedPrecondition(options().folder + " is not a folder; point the "
                                        "target's \"folder\" at a folder");
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Target> MakeFolderTarget(const TargetOptions& options) {
  return std::make_unique<FolderTarget>(options);
}

}  // namespace ferry
