// Bookkeeper: loads the event journals (<data>/journal/*.jsonl) into the database, exactly once.
//
// For each journal file the database holds the byte offset just after the last loaded line
// (journal_offsets). One RunOnce() pass looks at every file that has grown past its offset and
// loads its new complete lines in batches of `batch_size`, each batch one transaction with its
// rows, its counters and the new offset. The offset is read inside the transaction and written
// with a compare-and-set, so neither a crash, a lost COMMIT answer nor a second bookkeeper can
// load a line twice; a failed transaction leaves offset and rows as they were.
//
// While the database is unreachable the journals simply grow: the bookkeeper drops its
// connection, retries with a doubling backoff up to `reconnect_max`, logs the outage once and
// once more when it is over. Other services never wait for it.
// Thread-safety: one thread calls RunOnce(); the clock may be a FakeClock in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "db/database.h"
#include "journal/journal.h"

namespace ferry::bookkeeper {

struct BookkeeperSettings {
  std::string data_folder;  // journals in <data_folder>/journal, task snapshots in its stages
  std::string database;     // the URI, for logs only (redacted)
  int batch_size = 1000;
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::seconds reconnect_max{30};
};

// Opens (and migrates) a connection; Unavailable when the database is down.
using DatabaseOpener = std::function<Result<std::unique_ptr<db::Database>>()>;

struct PassResult {
  int64_t lines_loaded = 0;
  bool more = false;                   // a batch limit was hit: run again at once
  bool database_down = false;          // the pass stopped on a database error
  std::optional<SteadyTime> retry_at;  // when to try again while it is down
  uint64_t bytes_behind = 0;           // journal bytes not loaded after this pass
};

class Bookkeeper {
 public:
  // `journal` (may be null) receives database.unreachable / database.reachable events.
  Bookkeeper(BookkeeperSettings settings, DatabaseOpener opener, Clock* clock, Journal* journal);

  // One pass over the journal folder (see the header comment). Never blocks longer than the
  // database calls it makes; does nothing but report before `retry_at` while the database is
  // down.
  PassResult RunOnce();

  // The database connection, null while down (tests).
  db::Database* database() { return db_.get(); }

 private:
  // Loads one batch of `file`; sets *loaded to the lines loaded (0: nothing new) and *more
  // when the file has further complete lines.
  Status LoadBatch(const std::string& file, int64_t* loaded, bool* more);
  void OnFailure(const Status& s, const std::string& file, uint64_t bytes_behind);
  void OnSuccess();
  uint64_t BytesBehind();

  BookkeeperSettings settings_;
  std::string journal_dir_;
  DatabaseOpener opener_;
  Clock* clock_;
  Journal* journal_;
  std::unique_ptr<db::Database> db_;
  // Offsets as last committed: a hint that avoids empty transactions, never trusted for
  // loading (the transaction reads the database's offset). Cleared on every failure.
  std::map<std::string, uint64_t> loaded_;
  std::map<std::string, bool> warned_bad_line_;

  // Outage state.
  bool down_ = false;
  int failures_ = 0;
  WallTime down_since_;
  SteadyTime retry_at_;
  std::string last_error_;
};

}  // namespace ferry::bookkeeper
