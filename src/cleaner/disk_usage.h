// DiskUsage: how full the file system holding the data folder is, behind a narrow interface so
// that the cleaner's emergency deletion can be tested with a fake (cleaner_test.cc) and runs on
// statvfs(2) in production.
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace ferry {

struct DiskUsageInfo {
  uint64_t used_bytes = 0;       // occupied blocks (all users, root included)
  uint64_t available_bytes = 0;  // free for an unprivileged writer

  // Usage as `df` shows it: used / (used + available), in percent. 0 for an empty file system.
  double Percent() const;
  // Bytes that must be freed for Percent() to fall below `percent` (0 if it already is).
  uint64_t BytesAbove(int percent) const;
};

class DiskUsage {
 public:
  virtual ~DiskUsage() = default;
  // Usage of the file system that holds `path`. IoError (naming the path and the OS reason) when
  // it cannot be read.
  virtual Result<DiskUsageInfo> Get(const std::string& path) = 0;
};

// statvfs(2). Never null; lives for the whole process.
DiskUsage* StatvfsDiskUsage();

}  // namespace ferry
