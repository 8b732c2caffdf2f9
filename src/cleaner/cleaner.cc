#include "cleaner/cleaner.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/logging.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

// How often the "disk full and nothing left to delete" error is repeated while it lasts.
constexpr std::chrono::minutes kExhaustedReportInterval{15};
// Task folders are two levels deep at most; the limit only guards against a symlink loop.
constexpr int kMaxTreeDepth = 32;

bool IsNotFound(const Status& s) { return s.code() == Status::Code::kNotFound; }

std::string FormatBytes(uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000.0 && unit + 1 < std::size(kUnits)) {
    value /= 1000.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, kUnits[unit]);
}

int64_t AgeSeconds(WallTime now, WallTime finished) {
  auto age = std::chrono::duration_cast<std::chrono::seconds>(now - finished).count();
  return std::max<int64_t>(age, 0);
}

uint64_t TreeBytesImpl(FileSystem* fs, const std::string& path, int depth) {
  if (!fs->IsDirectory(path)) {
    auto size = fs->FileSize(path);
    return size ? *size : 0;
  }
  if (depth >= kMaxTreeDepth) {
    return 0;
  }
  auto names = fs->ListDir(path);
  if (!names) {
    return 0;
  }
  uint64_t total = 0;
  for (const auto& name : *names) {
    total += TreeBytesImpl(fs, JoinPath(path, name), depth + 1);
  }
  return total;
}

// What an operator should look at when a stage fills the disk.
const char* StageHint(std::string_view stage) {
  if (stage == kIncoming) {
    return "incoming/ holds series not yet routed: check that `ferry router` runs and what its "
           "log says";
  }
  if (stage == kOutgoing) {
    return "outgoing/ holds tasks waiting for their targets: check the targets (`ferry targets "
           "test`) and the dispatcher's log";
  }
  if (stage == kProcessing) {
    return "processing/ holds tasks waiting for processing: check the processor";
  }
  if (stage == kStudies) {
    return "studies/ holds series of studies not yet complete: check router.study_complete_"
           "timeout and the study rules";
  }
  if (stage == kJournal) {
    return "journal/ holds the event journals: check that `ferry bookkeeper` runs";
  }
  if (stage == kTmp) {
    return "tmp/ holds the staging of running services: look for a service that is stuck";
  }
  return "most of the space is used outside ferry's stages: something else fills this file "
         "system";
}

}  // namespace

uint64_t TreeBytes(FileSystem* fs, const std::string& path) { return TreeBytesImpl(fs, path, 0); }

Cleaner::Cleaner(const CleanerOptions& options, Spool* spool, Journal* journal, Clock* clock,
                 DiskUsage* disk)
    : options_(options),
      spool_(spool),
      fs_(spool->fs()),
      journal_(journal),
      clock_(clock),
      disk_(disk),
      work_dir_(JoinPath(spool->StagePath(kTmp), "cleaner")) {}

Result<int> Cleaner::Recover() {
  auto names = fs_->ListDir(work_dir_);
  if (!names) {
    if (IsNotFound(names.error())) {
      FERRY_RETURN_IF_ERROR(fs_->CreateDirs(work_dir_).WithContext("cleaner"));
      return 0;
    }
    return names.error().WithContext("cleaner");
  }
  int removed = 0;
  for (const auto& name : *names) {
    std::string path = JoinPath(work_dir_, name);
    Status s = fs_->RemoveTree(path);
    if (!s.ok() && !IsNotFound(s)) {
      return s.WithContext("cleaner: cannot finish removing a deleted task (remove " + path +
                           " by hand or fix its permissions)");
    }
    ++removed;
  }
  return removed;
}

WallTime Cleaner::FinishTime(const std::string& dir, WallTime mtime) {
  auto it = times_.find(dir);
  if (it != times_.end() && it->second.mtime == mtime) {
    return it->second.finished;
  }
  WallTime finished = mtime;
  auto text = fs_->ReadFile(JoinPath(dir, kTaskFile));
  if (text) {
    Json task = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    static const Json::json_pointer kCompletedAt("/ferry/dispatch/completed_at");
    if (task.is_object() && task.contains(kCompletedAt) && task.at(kCompletedAt).is_string()) {
      auto t = ParseIso8601(task.at(kCompletedAt).get<std::string>());
      if (t) {
        finished = *t;
      }
    }
  }
  return finished;
}

Status Cleaner::Scan(std::vector<Candidate>* out) {
  std::map<std::string, CachedTime> seen;  // the cache for the tasks still there
  Status result;
  for (std::string_view stage : {kSuccess, kDiscard, kError}) {
    std::string stage_dir = spool_->StagePath(stage);
    auto names = fs_->ListDir(stage_dir);
    if (!names) {
      result = names.error().WithContext("cleaner: cannot list the finished tasks");
      continue;
    }
    for (const auto& name : *names) {
      if (name.empty() || name[0] == '.') {
        continue;
      }
      std::string path = JoinPath(stage_dir, name);
      if (!fs_->IsDirectory(path)) {
        continue;  // not a task
      }
      auto mtime = fs_->ModificationTime(path);
      if (!mtime) {
        continue;  // moved away meanwhile (e.g. `ferry task retry`)
      }
      WallTime finished = FinishTime(path, *mtime);
      seen[path] = {*mtime, finished};
      out->push_back({std::string(stage), name, finished});
    }
  }
  times_.swap(seen);
  return result;
}

Cleaner::DeleteOutcome Cleaner::Delete(const Candidate& c, const char* reason, uint64_t* bytes) {
  auto log = Logger("cleaner");
  *bytes = 0;
  std::string stage_dir = spool_->StagePath(c.stage);
  std::string from = JoinPath(stage_dir, c.id);
  std::string to = JoinPath(work_dir_, fmt::format("{}-{}-{}", c.stage, c.id, ++counter_));
  Status s = fs_->Rename(from, to);
  if (!s.ok()) {
    if (IsNotFound(s)) {
      log->debug("task={} left {}/ before it could be deleted", c.id, c.stage);
      return DeleteOutcome::kGone;
    }
    log->error("task={} cannot be deleted from {}/: {}; check the owner and permissions of {}",
               c.id, c.stage, s.ToString(), spool_->root());
    return DeleteOutcome::kFailed;
  }
  // The task leaves its stage durably before any of its files is removed: after a crash it is
  // either whole in its stage or in tmp/cleaner/, which the next start empties.
  for (const std::string& dir : {work_dir_, stage_dir}) {
    Status sync = fs_->SyncDir(dir);
    if (!sync.ok()) {
      log->warn("task={}: cannot make the move out of {}/ durable: {}", c.id, c.stage,
                sync.ToString());
    }
  }
  *bytes = TreeBytes(fs_, to);
  int64_t age_s = AgeSeconds(clock_->Now(), c.finished);
  Json details = {{"stage", c.stage}, {"reason", reason}, {"age_s", age_s}, {"bytes", *bytes}};
  Status removed = fs_->RemoveTree(to);
  if (!removed.ok() && !IsNotFound(removed)) {
    log->error(
        "task={} was taken out of {}/ but not all of its files could be removed: {}; "
        "the cleaner tries again at every pass (fix the permissions of {})",
        c.id, c.stage, removed.ToString(), to);
    details["removal_error"] = removed.ToString();
  }
  journal_->Append({"cleaner.deleted", "", c.id, std::move(details)});
  log->debug("task={} deleted from {}/ ({}, {} s old, {})", c.id, c.stage, reason, age_s,
             FormatBytes(*bytes));
  return DeleteOutcome::kDeleted;
}

Result<PassSummary> Cleaner::RunOnce() {
  auto log = Logger("cleaner");
  PassSummary summary;
  // Leftovers of a deletion whose removal failed earlier in this process.
  auto leftovers = Recover();
  if (!leftovers) {
    log->warn("{}", leftovers.error().ToString());
  }

  WallTime now = clock_->Now();
  summary.in_window =
      InWindow(LocalMinuteOfDay(now), options_.offpeak_start_min, options_.offpeak_end_min);
  Status scan_status;
  if (summary.in_window) {
    std::vector<Candidate> all;
    scan_status = Scan(&all);
    std::vector<Candidate> due;
    for (auto& c : all) {
      int64_t retention = c.stage == kError ? options_.error_retention_s : options_.retention_s;
      if (AgeSeconds(now, c.finished) > retention) {
        due.push_back(std::move(c));
      }
    }
    std::sort(due.begin(), due.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.finished, a.stage, a.id) < std::tie(b.finished, b.stage, b.id);
    });
    for (const auto& c : due) {
      if (StopRequested()) {
        break;
      }
      uint64_t bytes = 0;
      switch (Delete(c, "retention", &bytes)) {
        case DeleteOutcome::kDeleted:
          ++summary.retention_deleted;
          summary.retention_bytes += bytes;
          break;
        case DeleteOutcome::kFailed:
          ++summary.failed;
          break;
        case DeleteOutcome::kGone:
          break;
      }
    }
  }
  if (!StopRequested()) {
    Status s = Emergency(&summary);
    if (scan_status.ok()) {
      scan_status = s;
    }
  }

  int deleted = summary.retention_deleted + summary.emergency_deleted;
  if (deleted > 0 || summary.failed > 0) {
    std::string reasons;
    if (summary.retention_deleted > 0) {
      reasons = fmt::format("{} after their retention ({})", summary.retention_deleted,
                            FormatBytes(summary.retention_bytes));
    }
    if (summary.emergency_deleted > 0) {
      reasons += fmt::format("{}{} in an emergency ({}; disk {:.1f}% -> {:.1f}%)",
                             reasons.empty() ? "" : ", ", summary.emergency_deleted,
                             FormatBytes(summary.emergency_bytes), summary.usage_before_percent,
                             summary.usage_after_percent);
    }
    if (summary.failed > 0) {
      reasons += fmt::format("{}{} could not be deleted (see above)", reasons.empty() ? "" : ", ",
                             summary.failed);
    }
    log->info("deleted {} finished task(s), {}: {}", deleted,
              FormatBytes(summary.retention_bytes + summary.emergency_bytes), reasons);
  }
  if (!scan_status.ok()) {
    return scan_status;
  }
  return summary;
}

Status Cleaner::Emergency(PassSummary* summary) {
  auto log = Logger("cleaner");
  const std::string& root = spool_->root();
  auto usage = disk_->Get(root);
  if (!usage) {
    log->warn(
        "cannot read how full the disk of {} is: {}; emergency deletion cannot work until "
        "it can",
        root, usage.error().ToString());
    return Status::Ok();
  }
  summary->usage_before_percent = summary->usage_after_percent = usage->Percent();
  if (usage->Percent() <= options_.emergency_threshold_percent) {
    exhausted_reported_ = false;
    return Status::Ok();
  }
  summary->emergency = true;
  uint64_t to_free = usage->BytesAbove(options_.low_water_percent);
  std::vector<Candidate> all;
  Status scan_status = Scan(&all);
  if (!all.empty() || !exhausted_reported_) {  // else ReportExhausted repeats itself
    log->warn(
        "the disk of {} is {:.1f}% full (emergency threshold {}%): deleting the oldest "
        "finished tasks until it is below {}% ({} to free)",
        root, usage->Percent(), options_.emergency_threshold_percent, options_.low_water_percent,
        FormatBytes(to_free));
  }
  // Delivered and discarded tasks first; error/ last: those never reached their destination.
  auto tier = [](const Candidate& c) { return c.stage == kError ? 1 : 0; };
  std::sort(all.begin(), all.end(), [&](const Candidate& a, const Candidate& b) {
    return std::make_tuple(tier(a), a.finished, a.stage, a.id) <
           std::make_tuple(tier(b), b.finished, b.stage, b.id);
  });
  DiskUsageInfo current = *usage;
  uint64_t freed = 0;
  bool done = false;
  for (const auto& c : all) {
    if (StopRequested()) {
      return scan_status;
    }
    uint64_t bytes = 0;
    switch (Delete(c, "emergency", &bytes)) {
      case DeleteOutcome::kDeleted:
        ++summary->emergency_deleted;
        summary->emergency_bytes += bytes;
        freed += bytes;
        break;
      case DeleteOutcome::kFailed:
        ++summary->failed;
        continue;
      case DeleteOutcome::kGone:
        continue;
    }
    auto now_usage = disk_->Get(root);
    if (now_usage) {
      current = *now_usage;
    }
    // Counting what was freed stops the deletion even when the file system reports freed
    // blocks late; if usage is still high, the next pass goes on.
    if (current.Percent() < options_.low_water_percent || freed >= to_free) {
      done = true;
      break;
    }
  }
  summary->usage_after_percent = current.Percent();
  if (!done) {
    if (current.Percent() > options_.emergency_threshold_percent) {
      summary->exhausted = true;
      ReportExhausted(current);
    } else {
      log->warn(
          "deleted every finished task; the disk of {} is {:.1f}% full, below the "
          "emergency threshold ({}%) but above low water ({}%)",
          root, current.Percent(), options_.emergency_threshold_percent,
          options_.low_water_percent);
    }
  }
  return scan_status;
}

void Cleaner::ReportExhausted(const DiskUsageInfo& usage) {
  SteadyTime now = clock_->SteadyNow();
  if (exhausted_reported_ && now - last_exhausted_report_ < kExhaustedReportInterval) {
    return;
  }
  exhausted_reported_ = true;
  last_exhausted_report_ = now;
  const std::string& root = spool_->root();
  std::vector<std::pair<std::string, uint64_t>> sizes;
  uint64_t in_stages = 0;
  Json details = {{"usage_percent", usage.Percent()},
                  {"threshold_percent", options_.emergency_threshold_percent}};
  for (std::string_view stage : {kIncoming, kProcessing, kOutgoing, kStudies, kTmp, kJournal}) {
    uint64_t bytes = TreeBytes(fs_, spool_->StagePath(stage));
    sizes.emplace_back(std::string(stage), bytes);
    in_stages += bytes;
    details["bytes"][std::string(stage)] = bytes;
  }
  // Whatever else is on the file system (other folders of the data folder, other programs).
  uint64_t outside = usage.used_bytes > in_stages ? usage.used_bytes - in_stages : 0;
  sizes.emplace_back("other", outside);
  details["bytes"]["other"] = outside;
  std::stable_sort(sizes.begin(), sizes.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string listing;
  for (const auto& [name, bytes] : sizes) {
    listing += fmt::format("{}{}{} {}", listing.empty() ? "" : ", ", name,
                           name == "other" ? "" : "/", FormatBytes(bytes));
  }
  Logger("cleaner")->error(
      "the disk of {} is {:.1f}% full (emergency threshold {}%) and no finished task is left to "
      "delete; space used: {}. {}. Free space on this file system or enlarge it; while free "
      "space is below receiver.disk_reserve_mb the receiver refuses new images",
      root, usage.Percent(), options_.emergency_threshold_percent, listing,
      StageHint(sizes.front().first));
  journal_->Append({"cleaner.disk_full", "", "", std::move(details)});
}

}  // namespace ferry
