// IntakeLog: makes a received instance durable with one flush of a file written in advance,
// instead of flushing the instance file and its folder entry (two flushes, each with metadata
// writes) before the C-STORE response.
//
//   <spool>/intake/<n>.seg      segments, filled with zeros when created, reused in turn
//   <spool>/intake/checkpoint   {"lsn": N, "durable_until_ns": T, "idle": B, "boot_id": "..."}
//   <spool>/intake/lock         flock(2)ed by the receiver that owns the log
//
// The receiver appends each instance (the whole staged Part-10 file, its series and SOP
// Instance UIDs) as a record with a sequence number (LSN) and a hash, waits until the record is
// flushed (concurrent appenders share one fdatasync: group commit), publishes the instance into
// incoming/ without fsync, and then answers success. A checkpointer thread makes the spool
// durable in one step (syncfs) every `checkpoint_interval`, then records in `checkpoint` the
// highest LSN whose instance is durable in the spool, and reuses segments below it.
//
// After an unclean stop the receiver calls Scan() before accepting associations. If the
// records were written in the current boot, the operating system still holds every write the
// killed process made, so nothing is replayed. After a reboot (power cut), every record above
// the checkpoint is put back into incoming/ unless the spool already holds it unchanged.
//
// `durable_until_ns` is the router's gate: a series whose last arrival (its folder's mtime) is
// older than that time is durable in the spool and may leave incoming/. It is the time read
// before the flush it vouches for, minus 20 ms, because the kernel may stamp files with a
// coarse clock that lags by up to one tick. Checkpoints go on until the gate has passed the
// last publication; the next one then writes `idle`: every instance is durable and none is on
// its way, so the router lets every series pass (a folder's mtime also changes when an
// operator drops a marker into it). The first Append() after that clears `idle` before its
// instance can reach incoming/.
//
// Record layout: a 512-byte header (magic, LSN, payload size, payload hash, boot id, UIDs,
// caller's context, header hash) and the payload, padded to a multiple of 4 KiB, at a 4 KiB boundary, so that no
// write touches a page another record uses. Records are written in LSN order under one lock,
// so a record is only acknowledged when every earlier record of its segment is durable too;
// Scan() stops a segment at the first record that is torn or older than its predecessor (an
// old record of a reused segment).
//
// Thread-safety: Append() and Published() may be called from many threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/file_system.h"
#include "core/result.h"
#include "core/scoped_fd.h"

namespace ferry {

inline constexpr std::string_view kIntakeDir = "intake";
inline constexpr std::string_view kIntakeCheckpointFile = "checkpoint";

// What the checkpoint file says.
struct IntakeCheckpoint {
  uint64_t lsn = 0;
  WallTime durable_until;
  // Nothing was on its way and every instance published was durable in the spool when this
  // was written: the gate is open whatever the times.
  bool idle = false;
  std::string boot_id;
};

// Reads <spool root>/intake/checkpoint. nullopt when there is no intake log (receiver in "os"
// mode or with the log turned off): then every instance in incoming/ is as durable as it gets.
Result<std::optional<IntakeCheckpoint>> ReadIntakeCheckpoint(FileSystem* fs,
                                                             const std::string& spool_root);

// Removes <spool root>/intake/ when the receiver runs without the log (after recovery), so that
// the router's gate is off. FailedPrecondition if another receiver holds the log.
Status RemoveUnusedIntakeLog(FileSystem* fs, const std::string& spool_root);

// This machine's boot id (/proc/sys/kernel/random/boot_id); "" if unknown.
std::string CurrentBootId();

class IntakeLog {
 public:
  struct Options {
    std::string spool_root;
    uint64_t capacity_bytes = 512ull << 20;  // all segments together
    std::chrono::milliseconds checkpoint_interval{100};
    // How long Append() waits for room before it gives up (the caller then flushes the
    // instance file itself).
    std::chrono::milliseconds max_wait{2000};
    std::string boot_id;  // empty: CurrentBootId()
    // Tests set false to leave the log as a killed process would (no last checkpoint).
    bool checkpoint_on_close = true;
  };

  // One record found by Scan().
  struct Record {
    uint64_t lsn = 0;
    std::string series_uid;
    std::string sop_uid;
    std::string boot_id;
    std::string context;  // what the caller passed to Append (at most 160 bytes)
    std::string segment;  // path of its segment
    uint64_t payload_offset = 0;
    uint64_t payload_size = 0;
    uint64_t payload_hash = 0;
  };
  struct ScanResult {
    uint64_t checkpoint_lsn = 0;
    uint64_t max_lsn = 0;
    std::vector<Record> after_checkpoint;  // valid records above the checkpoint, LSN order
  };

  // Reads every segment in <spool root>/intake/ (missing folder: empty result).
  static Result<ScanResult> Scan(FileSystem* fs, const std::string& spool_root);
  // The payload of a record found by Scan(), checked against its hash.
  static Result<std::string> ReadPayload(const Record& record);
  static uint64_t Hash(std::string_view data);

  // Opens the log for appending after recovery: the caller has put every needed record back
  // into the spool and made the spool durable. Existing segments are reused; the checkpoint is
  // rewritten at `last_lsn` (from Scan()), so nothing old is ever replayed again.
  static Result<std::unique_ptr<IntakeLog>> Open(const Options& options, FileSystem* fs,
                                                 uint64_t last_lsn);
  // Stops the checkpointer after a final checkpoint.
  ~IntakeLog();

  IntakeLog(const IntakeLog&) = delete;
  IntakeLog& operator=(const IntakeLog&) = delete;

  // The largest payload Append() takes; larger instances are flushed directly by the caller.
  uint64_t max_payload() const { return segment_bytes_ / 2; }

  // Appends the file at `path` as a record and returns once it is durable, with the record's
  // LSN. `context` (at most 160 bytes kept) comes back with the record in Scan(). The caller must call Published(lsn) once the instance is in the spool (or was
  // refused). Unavailable when the payload is too large or the log stays full for
  // `max_wait`; IoError when the segment cannot be written or flushed.
  Result<uint64_t> Append(std::string_view series_uid, std::string_view sop_uid,
                          std::string_view context, const std::string& path);
  void Published(uint64_t lsn);
  // An instance was made durable without the log: the gate may move past it at once.
  void NoteDirectWrite();

  // Runs one checkpoint now (tests; the checkpointer does this by itself).
  Status Checkpoint();

  struct Stats {
    uint64_t appended = 0;
    uint64_t flushes = 0;
    uint64_t checkpoints = 0;
    uint64_t segments = 0;
    uint64_t full_waits = 0;
  };
  Stats stats() const;

 private:
  struct Segment;

  IntakeLog(const Options& options, FileSystem* fs, uint64_t last_lsn);
  Status Start();
  Result<std::shared_ptr<Segment>> CreateSegment();
  Status WriteCheckpoint(uint64_t lsn, WallTime durable_until, bool idle);
  void CheckpointLoop();
  // Waits until `segment` is durable up to `end`, flushing it if nobody else is.
  Status SyncTo(const std::shared_ptr<Segment>& segment, uint64_t end);

  const Options options_;
  FileSystem* const fs_;
  const std::string dir_;
  const std::string boot_id_;
  ScopedFd lock_;  // intake/lock: one receiver per data folder
  uint64_t segment_bytes_ = 0;
  size_t max_segments_ = 0;

  mutable std::mutex mu_;  // layout: segments, offsets, LSNs, in-flight records
  std::condition_variable room_cv_;
  std::shared_ptr<Segment> current_;
  std::vector<std::shared_ptr<Segment>> full_;  // written, waiting for the checkpoint
  std::vector<std::shared_ptr<Segment>> free_;  // reusable
  size_t segment_count_ = 0;
  uint64_t next_segment_number_ = 0;
  uint64_t last_lsn_ = 0;        // last LSN handed out
  uint64_t checkpoint_lsn_ = 0;  // every record up to here is durable in the spool
  std::set<uint64_t> in_flight_;  // appended, not yet published
  // The gate time may predate the last publication (Published() or NoteDirectWrite()).
  bool gate_behind_ = false;
  WallTime last_publication_;
  Stats stats_;

  std::mutex sync_mu_;  // group commit
  std::condition_variable sync_cv_;

  std::mutex gate_mu_;        // the checkpoint file; taken before mu_
  bool idle_written_ = false;  // the file says "idle" (gate_mu_)
  WallTime gate_time_;         // durable_until in the file (gate_mu_)

  std::mutex checkpoint_mu_;  // one checkpoint at a time
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stop_ = false;
  std::thread checkpointer_;
};

}  // namespace ferry
