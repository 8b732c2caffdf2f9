// Notifier: turns task events of the journals into durable webhook and e-mail notifications
// and delivers them, retrying until they are sent or out of attempts.
//
//   <data>/notify/offsets.json          how far each journal file was read (bytes)
//   <data>/notify/pending/<id>.json     queued notifications (attempts, next attempt, content)
//   <data>/notify/failed/<id>.json      given up: refused for good or out of attempts
//   <data>/notify/sent/<id>.json        sent before the position of its journal line was saved;
//                                       removed once it is (replay protection)
//
// RunOnce reads what was appended to <data>/journal/*.jsonl since the last pass (complete lines
// only), queues the notifications of task.created / task.completed / task.failed lines for the
// rules that ask for them (each written atomically and fsynced before the journal position is
// saved, so a crash re-reads lines rather than losing them, and ids derived from the line keep a
// re-read line from queueing twice), then makes the delivery attempts that are due. Sent
// notifications are deleted; the notify.sent event is their record.
// Thread-safety: one thread calls Init and RunOnce.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "journal/journal.h"
#include "notify/delivery.h"
#include "notify/notification.h"
#include "spool/spool.h"

namespace ferry::notify {

class Notifier {
 public:
  // `spool`, `journal`, `clock` and `deliverer` must outlive the Notifier.
  Notifier(const Config& config, Spool* spool, Journal* journal, Clock* clock,
           Deliverer* deliverer);

  // Creates the notify/ folders, removes stale temporary files and loads offsets.json and the
  // pending notifications. Errors name the file and how to fix it.
  Status Init();

  // One pass: read new journal lines, queue their notifications, attempt what is due (at most
  // kMaxDeliveriesPerPass). Returns when the next pass is wanted (now when work is left).
  WallTime RunOnce();

  size_t pending() const { return pending_.size(); }
  std::string folder() const { return dir_; }

  static constexpr int kMaxDeliveriesPerPass = 16;

 private:
  // Reads the journals; returns true when a file has more to read than one pass takes.
  bool ScanJournals();
  // Queues the notifications of one journal line; false when one could not be written.
  bool Queue(const JournalLine& line);
  Status SaveOffsets();
  void PruneSent();
  void LoadPendingFolder();
  void Attempt(Notification n);
  void Record(const std::string& type, const Notification& n, nlohmann::json extra);
  bool Committed(const Notification& n) const;
  void WarnOnce(const std::string& key, const std::string& message);

  const Config& config_;
  Spool* spool_;
  Journal* journal_;
  Clock* clock_;
  Deliverer* deliverer_;
  std::string dir_;
  std::string pending_dir_;
  std::string failed_dir_;
  std::string sent_dir_;
  std::string journal_dir_;
  std::string own_prefix_;                         // journal files of notifiers are not read
  std::map<std::string, uint64_t> offsets_;        // journal file name -> bytes read
  std::map<std::string, uint64_t> saved_offsets_;  // ... as offsets.json says
  std::map<std::string, Notification> pending_;
  std::map<std::string, std::pair<std::string, uint64_t>> sent_;  // id -> journal line
  std::set<std::string> warned_;
  bool disk_failing_ = false;
  std::optional<WallTime> history_cutoff_;  // first start: older events are not notified
};

}  // namespace ferry::notify
