#include "spool/control.h"

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "config/config.h"
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

namespace {

std::string RestartDir(const std::string& data_folder) {
  return JoinPath(JoinPath(data_folder, kControlDir), "restart");
}

bool IsServiceName(std::string_view name) {
  for (const char* s : kServiceNames) {
    if (name == s) {
      return true;
    }
  }
  return false;
}

}  // namespace

Status RequestRestart(const std::string& data_folder, std::string_view service,
                      std::string_view by) {
  if (!IsServiceName(service)) {
    return Status::InvalidArgument("\"" + std::string(service) + "\" is not a ferry service");
  }
  FileSystem* fs = DefaultFileSystem();
  std::string dir = RestartDir(data_folder);
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(dir));
  nlohmann::json request = {{"by", by}, {"at", FormatIso8601(RealClock()->Now())}};
  Spool spool(data_folder, "control", fs);
  FERRY_RETURN_IF_ERROR(spool.Init());
  return spool.WriteFileAtomic(dir, std::string(service), request.dump() + "\n",
                               Durability::kFsync);
}

std::vector<std::pair<std::string, std::string>> TakeRestartRequests(
    const std::string& data_folder) {
  std::vector<std::pair<std::string, std::string>> out;
  FileSystem* fs = DefaultFileSystem();
  std::string dir = RestartDir(data_folder);
  auto names = fs->ListDir(dir);
  if (!names) {
    return out;
  }
  for (const auto& name : *names) {
    if (!IsServiceName(name)) {
      continue;  // staging files of WriteFileAtomic, or junk
    }
    std::string path = JoinPath(dir, name);
    auto text = fs->ReadFile(path);
    nlohmann::json request =
        text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    std::string by = request.is_object() ? request.value("by", "") : "";
    if (fs->RemoveFile(path).ok()) {
      out.emplace_back(name, by);
    }
  }
  return out;
}

}  // namespace ferry
