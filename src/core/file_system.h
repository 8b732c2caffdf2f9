// FileSystem: the narrow interface through which ferry touches the disk.
//
// One real implementation (DefaultFileSystem(), POSIX) and, for tests, a fault-injecting one
// (testing/fault_injection_file_system.h) that can drop everything not yet made durable, the
// way a power cut would. Paths are absolute or relative std::strings; errors come back as
// Status values built with Status::FromErrno so that they name the path and the OS reason.
// Thread-safety: all methods may be called concurrently from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/status.h"

namespace ferry {

// A file being written. Data appended is not durable until Sync() returns OK.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // Makes all data appended so far durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

struct DiskSpace {
  uint64_t available_bytes = 0;  // usable by an unprivileged writer
  uint64_t total_bytes = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates `path` (truncating an existing file) for writing.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens `path` for appending, creating it if needed.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;

  // Makes the contents of a file written by someone else (e.g. DCMTK) durable: open, fsync, close.
  virtual Status SyncFile(const std::string& path) = 0;
  // Makes the directory entries in `dir` (creations, renames, deletions) durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Makes everything written so far to the file system that holds `path` durable: file data
  // and directory entries, whoever wrote them (syncfs(2)). One flush for many files.
  virtual Status SyncFileSystem(const std::string& path) = 0;

  // rename(2): atomic; replaces an existing file `to`. A directory `from` can only replace an
  // empty directory; otherwise AlreadyExists.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // link(2): a second name for the same file.
  virtual Status Link(const std::string& from, const std::string& to) = 0;

  // Creates one directory; AlreadyExists if it exists.
  virtual Status CreateDir(const std::string& path) = 0;
  // Creates a directory and its missing parents; OK if it exists.
  virtual Status CreateDirs(const std::string& path) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Removes a directory and everything under it.
  virtual Status RemoveTree(const std::string& path) = 0;

  // Names of the entries of `dir` (without "." and ".."), in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Last modification time of a file or directory (a directory changes when an entry is added,
  // renamed in or removed).
  virtual Result<WallTime> ModificationTime(const std::string& path) = 0;
  virtual Result<DiskSpace> GetDiskSpace(const std::string& path) = 0;
};

// The process-wide POSIX file system. Never null; lives for the whole process.
FileSystem* DefaultFileSystem();

// Joins path components with exactly one '/' between them.
std::string JoinPath(std::string_view a, std::string_view b);

}  // namespace ferry
