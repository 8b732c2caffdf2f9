#include "spool/control.h"

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/file_system.h"
#include "spool/spool.h"

namespace ferry {

bool IsSuspendableActivity(std::string_view activity) {
  return activity == "dispatch" || activity == "processing";
}

std::string SuspendMarkerPath(const std::string& data_folder, std::string_view activity) {
  return JoinPath(JoinPath(data_folder, kControlDir), std::string(activity) + ".suspended");
}

bool IsSuspended(const std::string& data_folder, std::string_view activity) {
  struct stat st;
  return ::stat(SuspendMarkerPath(data_folder, activity).c_str(), &st) == 0;
}

Status SetSuspended(const std::string& data_folder, std::string_view activity, bool suspended,
                    std::string_view by, std::string_view reason) {
  if (!IsSuspendableActivity(activity)) {
    return Status::InvalidArgument("\"" + std::string(activity) +
                                   "\" cannot be suspended; use dispatch or processing");
  }
  FileSystem* fs = DefaultFileSystem();
  std::string dir = JoinPath(data_folder, kControlDir);
  std::string path = SuspendMarkerPath(data_folder, activity);
  if (!suspended) {
    Status s = fs->RemoveFile(path);
    if (!s.ok() && s.code() != Status::Code::kNotFound) {
      return s;
    }
    return fs->SyncDir(dir);
  }
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(dir));
  nlohmann::json marker = {{"by", by},
                           {"at", FormatIso8601(RealClock()->Now())},
                           {"reason", reason}};
  Spool spool(data_folder, "control", fs);
  FERRY_RETURN_IF_ERROR(spool.Init());
  return spool.WriteFileAtomic(dir, std::string(activity) + ".suspended", marker.dump() + "\n",
                               Durability::kFsync);
}

}  // namespace ferry
