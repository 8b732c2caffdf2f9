// GET /api/v1/status: what an operator looks at first. Read from the data folder only (the
// supervisor's services.json, the spool's stage folders, the suspend markers, statvfs), so it
// answers even when the database or the bookkeeper is down.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/file_system.h"
#include "spool/control.h"
#include "spool/spool.h"
#include "web/api_data_internal.h"

namespace ferry::web::data {
namespace {

// Number of sub-folders of `dir` (series or task folders; staging files are not counted), or
// -1 when the folder cannot be read. Uses d_type, so a stage with many thousands of tasks costs
// no stat() per entry.
int64_t CountFolders(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return errno == ENOENT ? 0 : -1;
  }
  int64_t n = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') {
      continue;
    }
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = ::stat(JoinPath(dir, e->d_name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    n += is_dir ? 1 : 0;
  }
  ::closedir(d);
  return n;
}

nlohmann::json ReadServices(const std::string& data_folder, nlohmann::json* out) {
  std::string path =
      JoinPath(JoinPath(data_folder, kRunDir), std::string(kServicesStatusFile));
  auto text = DefaultFileSystem()->ReadFile(path);
  if (!text) {
    (*out)["services"] = nlohmann::json::object();
    return text.error().code() == Status::Code::kNotFound
               ? nlohmann::json("no " + path +
                                ": ferry serve is not running on this data folder (services "
                                "started one by one are not listed)")
               : nlohmann::json("cannot read " + path + ": " + text.error().message());
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
  if (!doc.is_object() || !doc.contains("services") || !doc["services"].is_object()) {
    (*out)["services"] = nlohmann::json::object();
    return "cannot parse " + path + " (written by ferry serve); the services are not listed";
  }
  (*out)["services"] = doc["services"];
  (*out)["services_updated_at"] = doc.value("updated_at", nlohmann::json());
  return nullptr;
}

nlohmann::json Suspension(const std::string& data_folder, std::string_view activity) {
  nlohmann::json s = {{"suspended", IsSuspended(data_folder, activity)}};
  if (s["suspended"].get<bool>()) {
    auto text = DefaultFileSystem()->ReadFile(SuspendMarkerPath(data_folder, activity));
    nlohmann::json marker =
        text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (marker.is_object()) {
      s["by"] = marker.value("by", "");
      s["at"] = marker.value("at", "");
      s["reason"] = marker.value("reason", "");
    }
  }
  return s;
}

}  // namespace

Response GetStatus(const Request& req, Context& ctx) {
  const std::string& data = ctx.config->data_folder;
  nlohmann::json out = {{"version", kVersion}};
  nlohmann::json notes = nlohmann::json::array();
  nlohmann::json note = ReadServices(data, &out);
  if (!note.is_null()) {
    notes.push_back(note);
  }

  nlohmann::json queues = nlohmann::json::object();
  const std::pair<const char*, std::string> kStages[] = {
      {"incoming", std::string(kIncoming)},  {"processing", std::string(kProcessing)},
      {"outgoing", std::string(kOutgoing)},  {"dispatching", JoinPath(kTmp, "dispatcher")},
      {"success", std::string(kSuccess)},    {"error", std::string(kError)},
      {"discard", std::string(kDiscard)},
  };
  for (const auto& [name, folder] : kStages) {
    int64_t n = CountFolders(JoinPath(data, folder));
    if (n < 0) {
      notes.push_back(fmt::format("cannot read {}: {}", JoinPath(data, folder),
                                  std::strerror(errno)));
      queues[name] = nullptr;
    } else {
      queues[name] = n;
    }
  }
  out["queues"] = queues;

  struct statvfs vfs;
  if (::statvfs(data.c_str(), &vfs) == 0) {
    uint64_t total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    uint64_t free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    uint64_t used = static_cast<uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    // As df(1) counts: the share of what an unprivileged writer can use.
    double percent = used + free == 0 ? 0.0 : 100.0 * static_cast<double>(used) /
                                                  static_cast<double>(used + free);
    out["disk"] = {{"path", data},
                   {"total_bytes", total},
                   {"used_bytes", used},
                   {"free_bytes", free},
                   {"used_percent", static_cast<double>(static_cast<int64_t>(percent * 10)) / 10}};
  } else {
    out["disk"] = nullptr;
    notes.push_back(fmt::format("cannot read the disk usage of {}: {}", data,
                                std::strerror(errno)));
  }

  const CleanerOptions& cleaner = ctx.config->cleaner;
  out["cleaner"] = {{"emergency_threshold_percent", cleaner.emergency_threshold_percent},
                    {"low_water_percent", cleaner.low_water_percent},
                    {"retention_s", cleaner.retention_s},
                    {"error_retention_s", cleaner.error_retention_s}};
  out["suspended"] = {{"dispatch", Suspension(data, "dispatch")},
                      {"processing", Suspension(data, "processing")}};
  out["database"] = {{"available", ctx.db != nullptr}};
  out["notes"] = notes;
  return Response::Json(out);
}

}  // namespace ferry::web::data
