#include "spool/spool.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "core/logging.h"

namespace ferry {
namespace {

// How often AddInstance re-creates a series folder that vanishes under it (the router claims
// series concurrently) before giving up; more than one vanishing in a row is already unusual.
constexpr int kMaxAddAttempts = 3;

constexpr std::string_view kDcmSuffix = ".dcm";
constexpr std::string_view kOpenSuffix = ".open";
constexpr std::string_view kEndedSuffix = ".ended";

// Each Spool's temp-name counter starts in its own 2^32 block, so that two Spool objects of the
// same service in one process (tests, a restarted component) never hand out the same name.
std::atomic<uint64_t> g_spool_instances{0};

bool IsNotFound(const Status& s) { return s.code() == Status::Code::kNotFound; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Status CheckName(std::string_view what, std::string_view name) {
  if (!IsSafeFileName(name)) {
    return Status::InvalidArgument(
        fmt::format("{} \"{}\" cannot be used as a file name", what, name));
  }
  return Status::Ok();
}

}  // namespace

bool IsInstanceFileName(std::string_view name) {
  return name.size() > kDcmSuffix.size() && name.ends_with(kDcmSuffix) && name[0] != '.';
}

bool IsSafeFileName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

Spool::Spool(std::string root, std::string service, FileSystem* fs)
    : root_(std::move(root)),
      service_(std::move(service)),
      tmp_dir_(JoinPath(JoinPath(root_, kTmp), service_)),
      fs_(fs) {
  counter_.store(g_spool_instances.fetch_add(1) << 32);
}

std::string Spool::StagePath(std::string_view stage) const { return JoinPath(root_, stage); }

std::string Spool::SeriesPath(std::string_view series_uid) const {
  return JoinPath(StagePath(kIncoming), series_uid);
}

Status Spool::Init() {
  for (std::string_view stage :
       {kIncoming, kStudies, kProcessing, kOutgoing, kSuccess, kError, kDiscard, kJournal}) {
    FERRY_RETURN_IF_ERROR(fs_->CreateDirs(StagePath(stage)).WithContext("spool"));
  }
  FERRY_RETURN_IF_ERROR(fs_->CreateDirs(tmp_dir_).WithContext("spool"));
  // The stage folders must survive a power cut before anything is published into them: a
  // series acknowledged in incoming/ is only durable if incoming/ itself is. Two fsyncs at
  // start-up are cheap.
  FERRY_RETURN_IF_ERROR(fs_->SyncDir(StagePath(kTmp)).WithContext("spool"));
  FERRY_RETURN_IF_ERROR(fs_->SyncDir(root_).WithContext("spool"));
  return Status::Ok();
}

Result<int> Spool::RecoverIncoming() {
  auto log = Logger("spool");
  auto leftovers = fs_->ListDir(tmp_dir_);
  if (!leftovers) {
    return leftovers.error().WithContext("spool recovery");
  }
  for (const std::string& name : *leftovers) {
    std::string path = JoinPath(tmp_dir_, name);
    Status s = fs_->RemoveTree(path);
    if (!s.ok() && !IsNotFound(s)) {
      return s.WithContext("spool recovery: cannot remove a partial write");
    }
  }
  if (!leftovers->empty()) {
    log->info("removed {} partial writes of a previous run from {}", leftovers->size(), tmp_dir_);
  }

  const std::string incoming = StagePath(kIncoming);
  auto series = fs_->ListDir(incoming);
  if (!series) {
    return series.error().WithContext("spool recovery");
  }
  int closed = 0;
  for (const std::string& uid : *series) {
    std::string associations = JoinPath(JoinPath(incoming, uid), kAssociationsDir);
    if (!fs_->IsDirectory(associations)) {
      continue;  // not a series folder, or claimed by the router meanwhile
    }
    auto markers = fs_->ListDir(associations);
    if (!markers) {
      if (IsNotFound(markers.error())) {
        continue;
      }
      return markers.error().WithContext("spool recovery");
    }
    for (const std::string& marker : *markers) {
      if (!EndsWith(marker, kOpenSuffix)) {
        continue;
      }
      std::string ended = std::string(marker.substr(0, marker.size() - kOpenSuffix.size())) +
                          std::string(kEndedSuffix);
      Status s = fs_->Rename(JoinPath(associations, marker), JoinPath(associations, ended));
      if (s.ok()) {
        ++closed;
      } else if (!IsNotFound(s)) {
        return s.WithContext("spool recovery");
      }
    }
  }
  return closed;
}

std::string Spool::NewTempPath(std::string_view suffix) {
  uint64_t n = counter_.fetch_add(1);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return JoinPath(tmp_dir_, fmt::format("{}-{}-{:x}{}", getpid(), micros, n, suffix));
}

Status Spool::WriteFileAtomic(const std::string& dir, std::string_view name, std::string_view data,
                              Durability durability) {
  FERRY_RETURN_IF_ERROR(CheckName("file name", name));
  const std::string tmp = NewTempPath(".tmp");
  Status s = [&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(tmp));
    FERRY_RETURN_IF_ERROR(file->Append(data));
    if (durability == Durability::kFsync) {
      FERRY_RETURN_IF_ERROR(file->Sync());
    }
    FERRY_RETURN_IF_ERROR(file->Close());
    FERRY_RETURN_IF_ERROR(fs_->Rename(tmp, JoinPath(dir, name)));
    return Status::Ok();
  }();
  if (!s.ok()) {
    fs_->RemoveFile(tmp);
    return s;
  }
  if (durability == Durability::kFsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncDir(dir));
  }
  return Status::Ok();
}

Status Spool::PublishFile(const std::string& tmp_path, const std::string& dir,
                          std::string_view name, Durability durability) {
  FERRY_RETURN_IF_ERROR(CheckName("file name", name));
  if (durability == Durability::kFsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncFile(tmp_path));
  }
  FERRY_RETURN_IF_ERROR(fs_->Rename(tmp_path, JoinPath(dir, name)));
  if (durability == Durability::kFsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncDir(dir));
  }
  return Status::Ok();
}

Status Spool::CreateSeriesFolder(std::string_view series_uid, std::string_view tags_json,
                                 Durability durability, bool* created) {
  *created = false;
  const bool fsync = durability == Durability::kFsync;
  const std::string work = NewTempPath();
  Status s = [&]() -> Status {
    FERRY_RETURN_IF_ERROR(fs_->CreateDir(work));
    FERRY_ASSIGN_OR_RETURN(auto tags, fs_->NewWritableFile(JoinPath(work, kSeriesTagsFile)));
    FERRY_RETURN_IF_ERROR(tags->Append(tags_json));
    if (fsync) {
      FERRY_RETURN_IF_ERROR(tags->Sync());
    }
    FERRY_RETURN_IF_ERROR(tags->Close());
    FERRY_RETURN_IF_ERROR(fs_->CreateDir(JoinPath(work, kAssociationsDir)));
    if (fsync) {
      FERRY_RETURN_IF_ERROR(fs_->SyncDir(work));
    }
    return fs_->Rename(work, SeriesPath(series_uid));
  }();
  if (s.code() == Status::Code::kAlreadyExists) {
    // Another publisher created the folder first; ours was never visible.
    fs_->RemoveTree(work);
    return Status::Ok();
  }
  if (!s.ok()) {
    fs_->RemoveTree(work);
    return s.WithContext(fmt::format("cannot create the folder of series {}", series_uid));
  }
  *created = true;
  if (fsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncDir(StagePath(kIncoming)));
  }
  return Status::Ok();
}

Result<Spool::AddResult> Spool::AddInstance(std::string_view series_uid, std::string_view sop_uid,
                                            const std::string& tmp_path,
                                            std::string_view series_tags_json,
                                            Durability durability) {
  FERRY_RETURN_IF_ERROR(CheckName("Series Instance UID", series_uid));
  FERRY_RETURN_IF_ERROR(CheckName("SOP Instance UID", sop_uid));
  const bool fsync = durability == Durability::kFsync;
  // Check the staged file first, so that a bad call does not leave an empty series folder.
  if (fsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncFile(tmp_path));
  } else if (!fs_->Exists(tmp_path)) {
    return Status::NotFound("cannot add instance: no staged file " + tmp_path);
  }
  const std::string folder = SeriesPath(series_uid);
  const std::string target = JoinPath(folder, std::string(sop_uid) + std::string(kDcmSuffix));
  AddResult result;
  bool incoming_synced = false;  // whether incoming/ was fsynced after the folder appeared
  for (int attempt = 1;; ++attempt) {
    incoming_synced = false;
    if (!fs_->IsDirectory(folder)) {
      if (series_tags_json.empty()) {
        return Status::FailedPrecondition(
            fmt::format("series folder {} does not exist and no tags were given to create it",
                        series_uid));
      }
      bool created = false;
      FERRY_RETURN_IF_ERROR(CreateSeriesFolder(series_uid, series_tags_json, durability, &created));
      result.series_created |= created;
      incoming_synced = created;
    }
    Status s;
    {
      // Two associations delivering the same instance at once must not both see it as new:
      // the existence check and the rename are one step for this process.
      std::lock_guard<std::mutex> lock(
          replace_locks_[std::hash<std::string>{}(target) % replace_locks_.size()]);
      result.replaced = fs_->Exists(target);
      s = fs_->Rename(tmp_path, target);
    }
    if (s.ok()) {
      break;
    }
    if (!IsNotFound(s) || fs_->IsDirectory(folder) || !fs_->Exists(tmp_path)) {
      return s.WithContext(fmt::format("cannot add instance {} to series {}", sop_uid, series_uid));
    }
    if (attempt == kMaxAddAttempts) {
      return Status::Unavailable(fmt::format(
          "cannot add instance {} to series {}: the series folder vanished {} times in a row",
          sop_uid, series_uid, kMaxAddAttempts));
    }
    Logger("spool")->info(
        "series {} was claimed while instance {} was being added; creating "
        "its folder again (late arrival)",
        series_uid, sop_uid);
  }
  if (fsync) {
    FERRY_RETURN_IF_ERROR(fs_->SyncDir(folder).WithContext(
        fmt::format("cannot make instance {} of series {} durable", sop_uid, series_uid)));
    // The folder may have been renamed into incoming/ by another thread or a killed process
    // whose fsync of incoming/ has not happened yet; the instance is only durable once the
    // folder's own name is. Once incoming/ was synced after this folder appeared, that holds
    // for every later instance, so remember it instead of syncing incoming/ per instance.
    std::string key(series_uid);
    bool known = false;
    {
      std::lock_guard<std::mutex> lock(durable_mu_);
      known = durable_series_.count(key) != 0;
    }
    if (!incoming_synced && !known) {
      FERRY_RETURN_IF_ERROR(fs_->SyncDir(StagePath(kIncoming)));
    }
    if (!known) {
      std::lock_guard<std::mutex> lock(durable_mu_);
      if (durable_series_.size() > 100000) {
        durable_series_.clear();  // bound the memory; forgetting only costs an fsync
      }
      durable_series_.insert(std::move(key));
    }
  }
  return result;
}

Result<std::vector<std::string>> Spool::ListIncomingSeries() {
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->ListDir(StagePath(kIncoming)));
  std::vector<std::string> series;
  for (auto& name : names) {
    if (IsSafeFileName(name)) {
      series.push_back(std::move(name));
    }
  }
  return series;
}

Result<Spool::SeriesState> Spool::ReadSeriesState(std::string_view series_uid) {
  FERRY_RETURN_IF_ERROR(CheckName("Series Instance UID", series_uid));
  const std::string folder = SeriesPath(series_uid);
  SeriesState state;
  FERRY_ASSIGN_OR_RETURN(state.last_arrival, fs_->ModificationTime(folder));
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs_->ListDir(folder));
  for (const auto& e : entries) {
    if (IsInstanceFileName(e)) {
      ++state.instances;
    } else if (e == kForceCompleteFile) {
      state.forced = true;
    } else if (e == kForceRuleFile) {
      auto rule = fs_->ReadFile(JoinPath(folder, kForceRuleFile));
      if (rule) {
        state.forced = true;
        state.forced_rule = *rule;
      }
    }
  }
  auto markers = fs_->ListDir(JoinPath(folder, kAssociationsDir));
  if (!markers && !IsNotFound(markers.error())) {
    return markers.error();
  }
  if (markers) {
    for (const auto& m : *markers) {
      if (m.ends_with(".open")) {
        state.associations.push_back({m.substr(0, m.size() - 5), false});
      } else if (m.ends_with(".ended")) {
        state.associations.push_back({m.substr(0, m.size() - 6), true});
      }
    }
  }
  return state;
}

Status Spool::MarkAssociationOpen(std::string_view series_uid, std::string_view association_id) {
  FERRY_RETURN_IF_ERROR(CheckName("Series Instance UID", series_uid));
  FERRY_RETURN_IF_ERROR(CheckName("association id", association_id));
  std::string path = JoinPath(JoinPath(SeriesPath(series_uid), kAssociationsDir),
                              std::string(association_id) + std::string(kOpenSuffix));
  FERRY_ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(path));
  return file->Close();
}

Status Spool::MarkAssociationEnded(std::string_view series_uid, std::string_view association_id) {
  FERRY_RETURN_IF_ERROR(CheckName("Series Instance UID", series_uid));
  FERRY_RETURN_IF_ERROR(CheckName("association id", association_id));
  const std::string folder = SeriesPath(series_uid);
  const std::string associations = JoinPath(folder, kAssociationsDir);
  const std::string open =
      JoinPath(associations, std::string(association_id) + std::string(kOpenSuffix));
  const std::string ended =
      JoinPath(associations, std::string(association_id) + std::string(kEndedSuffix));
  Status s = fs_->Rename(open, ended);
  if (s.ok() || !IsNotFound(s)) {
    return s;
  }
  if (!fs_->IsDirectory(folder) || fs_->Exists(ended)) {
    return Status::Ok();  // already routed, or already ended
  }
  return s;
}

}  // namespace ferry
