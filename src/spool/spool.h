// Spool: ferry's data and queue in one folder tree. A task or series is a folder; its stage is
// the folder it is in; a stage change is one rename(2).
//
//   <root>/incoming/<series uid>/<sop uid>.dcm           instances as received (byte-exact)
//   <root>/incoming/<series uid>/series.tags             tags of the series' first instance (JSON)
//   <root>/incoming/<series uid>/associations/<id>.open  an association delivering to the series
//   <root>/incoming/<series uid>/associations/<id>.ended ... and after it ended
//   <root>/processing/ outgoing/ success/ error/ discard/   task folders (router and later)
//   <root>/journal/                                      event journals (src/journal)
//   <root>/tmp/<service>/                                staging; emptied when the service starts
//
// Every file is published by write-to-temp, fsync, rename, fsync(dir) (Durability::kFsync), so
// no reader ever sees a partial file and an acknowledged file survives a power cut. With
// Durability::kOs the fsyncs are skipped: files are still atomic, but the last seconds of
// writes may be lost in a power cut. The receiver publishes instances with kOs when its intake
// log (intake_log.h) already made them durable.
//
// A series folder appears in incoming/ atomically with its series.tags already inside: it is
// built in tmp/ and renamed into place. The last arrival time of a series is the modification
// time of its folder (every instance is renamed into it).
//
// Thread-safety: a Spool may be used from many threads at once; concurrent publishers of the
// same series are resolved by the atomicity of mkdir/rename.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <unordered_set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/file_system.h"
#include "core/result.h"

namespace ferry {

enum class Durability { kFsync, kOs };

// Stage folder names, relative to the spool root.
inline constexpr std::string_view kIncoming = "incoming";
inline constexpr std::string_view kProcessing = "processing";
inline constexpr std::string_view kOutgoing = "outgoing";
inline constexpr std::string_view kSuccess = "success";
inline constexpr std::string_view kError = "error";
inline constexpr std::string_view kDiscard = "discard";
inline constexpr std::string_view kStudies = "studies";
// The state of a study that waits in studies/<key>/ for its completion (router).
inline constexpr std::string_view kStudyFile = "study.json";
inline constexpr std::string_view kJournal = "journal";
inline constexpr std::string_view kTmp = "tmp";

inline constexpr std::string_view kSeriesTagsFile = "series.tags";
// The description of a task in its folder (mercure's schema, spool/task.h).
inline constexpr std::string_view kTaskFile = "task.json";
inline constexpr std::string_view kAssociationsDir = "associations";
// Written into a series folder by `ferry series complete`: the router completes it at once.
inline constexpr std::string_view kForceCompleteFile = "force-complete";
// Written by `ferry series route UID --rule NAME`: route with that rule (the file holds the name).
inline constexpr std::string_view kForceRuleFile = "force-rule";

// True when `name` can be used as one path component: non-empty, at most 128 bytes, only
// [A-Za-z0-9._-], not starting with '.'. UIDs and ids are checked with it before they become
// file names, so that no sender can write outside the spool.
bool IsSafeFileName(std::string_view name);

// True for the name of an instance file in a series or task folder ("<SOP UID>.dcm"; hidden
// temporary files excluded).
bool IsInstanceFileName(std::string_view name);

class Spool {
 public:
  // `service` names the staging folder tmp/<service>/. `fs` must outlive the Spool.
  Spool(std::string root, std::string service, FileSystem* fs);

  const std::string& root() const { return root_; }
  std::string StagePath(std::string_view stage) const;
  std::string SeriesPath(std::string_view series_uid) const;
  FileSystem* fs() const { return fs_; }

  // Creates the stage folders and tmp/<service>/ if missing. Errors name the folder and the
  // OS reason (e.g. permission denied).
  Status Init();

  // Crash recovery for the receiver at start-up: removes everything in tmp/<service>/ (partial
  // writes of a previous process) and renames every incoming/*/associations/*.open to .ended
  // (associations of a previous process are gone). Returns the number of associations closed.
  Result<int> RecoverIncoming();

  // A fresh unique path in tmp/<service>/ for a file about to be written; `suffix` is appended.
  std::string NewTempPath(std::string_view suffix = "");

  // Writes `data` to <dir>/<name> atomically (temp file, fsync, rename, fsync(dir)).
  Status WriteFileAtomic(const std::string& dir, std::string_view name, std::string_view data,
                         Durability durability);

  // Publishes a complete file already written at `tmp_path` (in tmp/<service>/) as
  // <dir>/<name>: fsync the file, rename, fsync(dir). Replaces an existing file of that name.
  Status PublishFile(const std::string& tmp_path, const std::string& dir, std::string_view name,
                     Durability durability);

  struct AddResult {
    bool series_created = false;   // the series folder did not exist: "series first seen"
    bool replaced = false;         // an instance with this SOP Instance UID was replaced
  };

  // Moves the instance at `tmp_path` into incoming/<series_uid>/<sop_uid>.dcm durably. If the
  // series folder does not exist, it is first created atomically with `series_tags_json` as its
  // series.tags (FailedPrecondition when it is missing and `series_tags_json` is empty: read the
  // tags and call again). If the folder vanishes meanwhile (the router claimed the series), it is created
  // again: the instance becomes a late arrival, never lost. Both uids must be IsSafeFileName.
  Result<AddResult> AddInstance(std::string_view series_uid, std::string_view sop_uid,
                                const std::string& tmp_path, std::string_view series_tags_json,
                                Durability durability);

  struct AssociationState {
    std::string id;
    bool ended = false;
  };
  struct SeriesState {
    WallTime last_arrival;  // modification time of the series folder
    std::vector<AssociationState> associations;
    int instances = 0;
    bool forced = false;  // an operator asked to complete it now (kForceCompleteFile)
    std::string forced_rule;  // ... with this rule, whatever the tags (kForceRuleFile)
  };

  // Names (series UIDs) of the series folders in incoming/, in no particular order.
  Result<std::vector<std::string>> ListIncomingSeries();
  // What the router needs to decide whether the series is complete. NotFound if the folder is
  // gone (claimed meanwhile).
  Result<SeriesState> ReadSeriesState(std::string_view series_uid);

  // Records that association `association_id` delivers to the series (creates
  // associations/<id>.open; not fsynced: RecoverIncoming closes stale ones anyway).
  Status MarkAssociationOpen(std::string_view series_uid, std::string_view association_id);
  // Renames associations/<id>.open to .ended. OK if the series folder is gone (already routed).
  Status MarkAssociationEnded(std::string_view series_uid, std::string_view association_id);

 private:
  Status CreateSeriesFolder(std::string_view series_uid, std::string_view tags_json,
                            Durability durability, bool* created);

  std::string root_;
  std::string service_;
  std::string tmp_dir_;
  FileSystem* fs_;
  std::atomic<uint64_t> counter_{0};
  std::array<std::mutex, 64> replace_locks_;
  // Series whose folder's name in incoming/ is known to be durable (see AddInstance).
  std::mutex durable_mu_;
  std::unordered_set<std::string> durable_series_;
};

}  // namespace ferry
