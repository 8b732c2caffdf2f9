#include "cleaner/disk_usage.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cmath>

namespace ferry {

double DiskUsageInfo::Percent() const {
  uint64_t size = used_bytes + available_bytes;
  return size == 0 ? 0.0 : 100.0 * static_cast<double>(used_bytes) / static_cast<double>(size);
}

uint64_t DiskUsageInfo::BytesAbove(int percent) const {
  // used' / size < percent / 100, with size = used + available unchanged by deletions.
  uint64_t size = used_bytes + available_bytes;
  auto allowed = static_cast<uint64_t>(
      std::floor(static_cast<double>(size) * static_cast<double>(percent) / 100.0));
  if (allowed > 0 && static_cast<double>(allowed) * 100.0 >=
                         static_cast<double>(size) * static_cast<double>(percent)) {
    --allowed;  // strictly below
  }
  return used_bytes > allowed ? used_bytes - allowed : 0;
}

namespace {

class Statvfs final : public DiskUsage {
 public:
  Result<DiskUsageInfo> Get(const std::string& path) override {
    struct statvfs vfs;
    int rc;
    do {
      rc = ::statvfs(path.c_str(), &vfs);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      return Status::FromErrno(errno, "statvfs " + path);
    }
    DiskUsageInfo info;
    info.used_bytes = static_cast<uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    info.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    return info;
  }
};

}  // namespace

DiskUsage* StatvfsDiskUsage() {
  static Statvfs* usage = new Statvfs();
  return usage;
}

}  // namespace ferry
