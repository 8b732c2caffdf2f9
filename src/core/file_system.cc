// The POSIX implementation of FileSystem (see file_system.h for the contract).
//
// Every system call that can be interrupted by a signal is retried on EINTR; writes loop until
// every byte is written, because write(2) may write less than asked (signals, pipes, quotas).
// Errors are turned into Status values with Status::FromErrno, naming the operation and path.
#include "core/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace ferry {
namespace {

// Retries `call` while it fails with EINTR; returns its last result.
template <typename Call>
auto RetryOnEintr(Call call) {
  auto r = call();
  while (r == -1 && errno == EINTR) {
    r = call();
  }
  return r;
}

Status Errno(std::string_view what, const std::string& path) {
  return Status::FromErrno(errno, std::string(what) + " " + path);
}

// close(2) must not be retried on EINTR on Linux: the descriptor is released either way.
Status CloseFd(int fd, const std::string& path) {
  if (::close(fd) != 0 && errno != EINTR) {
    return Errno("close", path);
  }
  return Status::Ok();
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  PosixWritableFile(const PosixWritableFile&) = delete;
  PosixWritableFile& operator=(const PosixWritableFile&) = delete;

  // Writes straight to the descriptor, without a user-space buffer: callers append large
  // chunks (whole DICOM files, journal lines already assembled), so a buffer only adds a copy.
  Status Append(std::string_view data) override {
    if (fd_ < 0) {
      return Status::Internal("append to closed file " + path_);
    }
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = RetryOnEintr([&] { return ::write(fd_, p, left); });
      if (n < 0) {
        return Errno("write", path_);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (fd_ < 0) {
      return Status::Internal("sync of closed file " + path_);
    }
    if (RetryOnEintr([&] { return ::fdatasync(fd_); }) != 0) {
      return Errno("fdatasync", path_);
    }
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) {
      return Status::Ok();
    }
    int fd = fd_;
    fd_ = -1;
    return CloseFd(fd, path_);
  }

 private:
  std::string path_;
  int fd_;
};

Result<std::unique_ptr<WritableFile>> OpenForWriting(const std::string& path, int flags,
                                                     std::string_view what) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, 0644); });
  if (fd < 0) {
    return Errno(what, path);
  }
  return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
}

// Opens `path` read-only with `extra_flags`, fsyncs it and closes it.
Status FsyncPath(const std::string& path, int extra_flags, std::string_view what) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | extra_flags); });
  if (fd < 0) {
    return Errno(what, path);
  }
  if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) {
    Status s = Errno(what, path);
    ::close(fd);
    return s;
  }
  return CloseFd(fd, path);
}

// Removes `path` and, if it is a directory, everything below it. Entries that vanish while
// we walk (a concurrent remover) are not errors; a missing `path` itself is NotFound.
Status RemoveTreeImpl(const std::string& path, bool top) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !top) {
      return Status::Ok();
    }
    return Errno("stat", path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && !(errno == ENOENT && !top)) {
      return Errno("unlink", path);
    }
    return Status::Ok();
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT && !top) {
      return Status::Ok();
    }
    return Errno("opendir", path);
  }
  std::vector<std::string> children;
  errno = 0;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      children.push_back(JoinPath(path, name));
    }
  }
  int read_errno = errno;
  ::closedir(dir);
  if (read_errno != 0) {
    return Status::FromErrno(read_errno, "readdir " + path);
  }
  for (const std::string& child : children) {
    FERRY_RETURN_IF_ERROR(RemoveTreeImpl(child, /*top=*/false));
  }
  if (::rmdir(path.c_str()) != 0 && !(errno == ENOENT && !top)) {
    return Errno("rmdir", path);
  }
  return Status::Ok();
}

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return OpenForWriting(path, O_WRONLY | O_CREAT | O_TRUNC, "create");
  }

  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return OpenForWriting(path, O_WRONLY | O_CREAT | O_APPEND, "open for appending");
  }

  Result<std::string> ReadFile(const std::string& path) override {
    int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) {
      return Errno("open", path);
    }
    std::string out;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      out.reserve(static_cast<size_t>(st.st_size));
    }
    char buf[64 * 1024];
    while (true) {
      ssize_t n = RetryOnEintr([&] { return ::read(fd, buf, sizeof(buf)); });
      if (n < 0) {
        Status s = Errno("read", path);
        ::close(fd);
        return s;
      }
      if (n == 0) {
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Status SyncFile(const std::string& path) override { return FsyncPath(path, 0, "fsync"); }

  Status SyncDir(const std::string& dir) override {
    return FsyncPath(dir, O_DIRECTORY, "fsync directory");
  }

  Status SyncFileSystem(const std::string& path) override {
    int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) {
      return Errno("syncfs", path);
    }
    if (::syncfs(fd) != 0) {
      Status s = Errno("syncfs", path);
      ::close(fd);
      return s;
    }
    return CloseFd(fd, path);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      int err = errno;
      std::string what = "rename " + from + " to " + to;
      if (err == ENOTEMPTY || err == EEXIST) {
        return Status::AlreadyExists(what + ": the target is a non-empty directory");
      }
      return Status::FromErrno(err, what);
    }
    return Status::Ok();
  }

  Status Link(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) {
      return Status::FromErrno(errno, "link " + from + " to " + to);
    }
    return Status::Ok();
  }

  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) {
      return Errno("mkdir", path);
    }
    return Status::Ok();
  }

  Status CreateDirs(const std::string& path) override {
    if (path.empty()) {
      return Status::InvalidArgument("mkdir: empty path");
    }
    // Create each prefix ending before a '/', then the whole path.
    for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
      std::string prefix = pos == std::string::npos ? path : path.substr(0, pos);
      if (!prefix.empty() && prefix.back() != '/' && ::mkdir(prefix.c_str(), 0755) != 0) {
        int err = errno;
        if (err != EEXIST) {
          return Status::FromErrno(err, "mkdir " + prefix);
        }
        if (!IsDirectory(prefix)) {
          return Status::AlreadyExists("mkdir " + prefix + ": exists and is not a directory");
        }
      }
      if (pos == std::string::npos) {
        break;
      }
    }
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) {
      return Errno("unlink", path);
    }
    return Status::Ok();
  }

  Status RemoveTree(const std::string& path) override { return RemoveTreeImpl(path, true); }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      return Errno("opendir", dir);
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") {
        names.emplace_back(name);
      }
    }
    int read_errno = errno;
    ::closedir(d);
    if (read_errno != 0) {
      return Status::FromErrno(read_errno, "readdir " + dir);
    }
    return names;
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return Errno("stat", path);
    }
    return static_cast<uint64_t>(st.st_size);
  }

  Result<WallTime> ModificationTime(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return Errno("stat", path);
    }
    auto since_epoch = std::chrono::seconds(st.st_mtim.tv_sec) +
                       std::chrono::nanoseconds(st.st_mtim.tv_nsec);
    return WallTime(std::chrono::duration_cast<WallTime::duration>(since_epoch));
  }

  Result<DiskSpace> GetDiskSpace(const std::string& path) override {
    struct statvfs vfs;
    if (RetryOnEintr([&] { return ::statvfs(path.c_str(), &vfs); }) != 0) {
      return Errno("statvfs", path);
    }
    DiskSpace space;
    space.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    space.total_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    return space;
  }
};

}  // namespace

FileSystem* DefaultFileSystem() {
  static PosixFileSystem* fs = new PosixFileSystem();
  return fs;
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) {
    return std::string(b);
  }
  if (b.empty()) {
    return std::string(a);
  }
  size_t a_end = a.find_last_not_of('/');
  size_t b_start = b.find_first_not_of('/');
  std::string out(a_end == std::string_view::npos ? std::string_view() : a.substr(0, a_end + 1));
  out += '/';
  if (b_start != std::string_view::npos) {
    out += b.substr(b_start);
  }
  return out;
}

}  // namespace ferry
