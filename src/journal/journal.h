// Journal: the append-only event log of one service process, the audit trail that the
// bookkeeper later loads into the database.
//
// Each process writes its own file <data>/journal/<service>-<start time>-<pid>.jsonl, one JSON
// object per line: {"time", "service", "pid", "event", "series_uid"?, "task_id"?, "details"}.
// A line is written with a single write(2) and made durable with fdatasync before Append
// returns, so an event that was appended survives a crash; a crash can only leave a partial
// last line, which readers skip. A new process never appends to an old file.
//
// Appending never fails the caller's work: a journal write error is logged (once per failure
// streak) and counted, and the service carries on receiving images.
// Thread-safety: Append may be called from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/file_system.h"
#include "core/result.h"

namespace ferry {

struct JournalEvent {
  std::string type;        // e.g. "association.closed", "series.first_seen"
  std::string series_uid;  // optional
  std::string task_id;     // optional
  nlohmann::json details = nlohmann::json::object();
};

class Journal {
 public:
  // Creates the journal folder if needed and opens a new file for `service`.
  static Result<std::unique_ptr<Journal>> Open(const std::string& journal_dir,
                                               const std::string& service, Clock* clock,
                                               FileSystem* fs);

  void Append(const JournalEvent& event);

  const std::string& path() const { return path_; }
  uint64_t failed_appends() const;

 private:
  Journal(std::string path, std::string service, Clock* clock,
          std::unique_ptr<WritableFile> file);

  std::string path_;
  std::string service_;
  Clock* clock_;
  mutable std::mutex mu_;
  std::unique_ptr<WritableFile> file_;
  uint64_t failed_ = 0;
  bool failing_ = false;
};

// Reads the complete lines of a journal file, skipping a partial last line and lines that are
// not JSON objects. For tests and tools.
Result<std::vector<nlohmann::json>> ReadJournalFile(const std::string& path, FileSystem* fs);

}  // namespace ferry
