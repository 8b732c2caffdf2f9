// Cleaner: deletes finished tasks (success/, discard/, error/) from the spool.
//
// Two reasons to delete a task:
//   - retention: inside the off-peak window only, a task whose age (time since it finished)
//     exceeds its stage's retention (CleanerOptions::retention_s for success/ and discard/,
//     error_retention_s for error/); oldest first.
//   - emergency: whenever the data folder's file system is fuller than
//     emergency_threshold_percent, whatever the window and the retention: first success/ and
//     discard/ (together, oldest first), then error/ (oldest first: these tasks never reached
//     their destination, so they go last), until usage is below low_water_percent.
// Unfinished work (incoming/, processing/, outgoing/, studies/, tmp/, journal/) is never
// touched.
//
// A task's finish time is `ferry.dispatch.completed_at` of its task.json when present (the
// dispatcher writes it when the task moves to success/), otherwise the modification time of its
// folder (the last entry added to it: task.json is written just before the folder moves to its
// stage).
//
// A deletion renames the task folder into <data>/tmp/cleaner/ (same file system: one atomic
// rename, made durable), then removes it recursively, so a crash never leaves a half-deleted
// task in a stage; Recover() finishes what a killed predecessor left in tmp/cleaner/. Each
// deletion is a `cleaner.deleted` journal event.
//
// Threading: single-threaded; RunOnce() is one synchronous pass and the service loop
// (cleaner_service.cc) calls it every interval.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cleaner/disk_usage.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/file_system.h"
#include "core/result.h"
#include "journal/journal.h"
#include "spool/spool.h"

namespace ferry {

// What one pass did.
struct PassSummary {
  bool in_window = false;  // the off-peak window was open: retention applied
  int retention_deleted = 0;
  uint64_t retention_bytes = 0;
  bool emergency = false;  // usage was above the emergency threshold
  int emergency_deleted = 0;
  uint64_t emergency_bytes = 0;
  bool exhausted = false;            // emergency ran out of finished tasks above the threshold
  int failed = 0;                    // tasks that could not be deleted (logged)
  double usage_before_percent = -1;  // -1: unknown (the usage could not be read)
  double usage_after_percent = -1;
};

// Apparent size (sum of file sizes) of everything under `path`; 0 for a missing path.
// Unreadable entries are skipped.
uint64_t TreeBytes(FileSystem* fs, const std::string& path);

class Cleaner {
 public:
  // All pointers must outlive the Cleaner. `spool` should be created for service "cleaner" and
  // initialised (its tmp/cleaner/ is the deletion area).
  Cleaner(const CleanerOptions& options, Spool* spool, Journal* journal, Clock* clock,
          DiskUsage* disk);

  // Removes everything left in tmp/cleaner/ by a predecessor that was killed mid-deletion.
  // Returns how many entries were removed; IoError/PermissionDenied naming the entry when one
  // cannot be removed.
  Result<int> Recover();

  // One pass: retention deletion if the off-peak window is open, then emergency deletion if
  // the disk is above the threshold. Individual deletions that fail are logged and counted in
  // `failed`; an error is returned only when a finished stage cannot be listed.
  Result<PassSummary> RunOnce();

  // Called before every deletion; when it returns true the pass ends early (the service asks
  // it whether SIGTERM arrived, so that stopping never waits for a long pass).
  void set_stop_requested(std::function<bool()> stop) { stop_requested_ = std::move(stop); }

 private:
  struct Candidate {
    std::string stage;
    std::string id;
    WallTime finished;
  };
  struct CachedTime {
    WallTime mtime;
    WallTime finished;
  };

  enum class DeleteOutcome { kDeleted, kGone, kFailed };

  // Every task folder in success/, discard/ and error/ with its finish time. A stage that
  // cannot be listed is skipped and its error returned; the others are still listed.
  Status Scan(std::vector<Candidate>* out);
  // The finish time of the task in `dir` (cached while the folder's mtime is unchanged).
  WallTime FinishTime(const std::string& dir, WallTime mtime);
  // Renames the task into tmp/cleaner/, removes it and writes the journal event. kGone: it
  // left its stage meanwhile; kFailed: it could not be moved (logged).
  DeleteOutcome Delete(const Candidate& c, const char* reason, uint64_t* bytes);
  bool StopRequested() const { return stop_requested_ && stop_requested_(); }
  // Emergency deletion if the disk is above the threshold; returns Scan's error, if any.
  Status Emergency(PassSummary* summary);
  void ReportExhausted(const DiskUsageInfo& usage);

  CleanerOptions options_;
  Spool* spool_;
  FileSystem* fs_;
  Journal* journal_;
  Clock* clock_;
  DiskUsage* disk_;
  std::string work_dir_;  // <data>/tmp/cleaner
  std::function<bool()> stop_requested_;
  std::map<std::string, CachedTime> times_;  // task folder -> finish time, while mtime holds
  SteadyTime last_exhausted_report_{};
  bool exhausted_reported_ = false;
  uint64_t counter_ = 0;
};

}  // namespace ferry
