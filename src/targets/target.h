// Target: one destination of dispatched images (DICOM node, DICOMweb server, SFTP server, S3
// bucket, folder), behind one interface so that the dispatcher's queue, retries and groups do
// not depend on how bytes travel.
//
// The dispatcher calls Send() with a batch of instances of one task, possibly several times for
// one task (a retry resends only what failed; streaming dispatch sends a series while it
// arrives), then Finish() once when every instance of the task has been delivered. A Target
// classifies every failure: transient ones (connection refused, timeout, a busy peer, HTTP 5xx or
// 429) are retried later with backoff; permanent ones (SOP class or transfer syntax refused,
// HTTP 4xx, authentication failed) are not, because retrying cannot help.
//
// Threads: a Target may be used by several dispatcher threads at once, each with its own
// Session; implementations keep per-transfer state in the Session, not in the Target.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/result.h"

namespace ferry {

// One instance to deliver, with the identifiers the dispatcher read from its header.
struct OutgoingInstance {
  std::string path;              // the file, byte-exact as received
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string transfer_syntax_uid;
  uint64_t size = 0;             // bytes
};

enum class Outcome {
  kDelivered,  // the destination confirmed it
  kTransient,  // not delivered; retrying later may succeed
  kPermanent,  // not delivered; retrying will not help
};

struct InstanceResult {
  Outcome outcome = Outcome::kTransient;
  std::string detail;  // for operators: why, in words (and the peer's status code, if any)
};

// What the dispatcher knows about the task a batch belongs to.
struct TaskContext {
  std::string task_id;
  std::string sender_address;  // where the series came from (DICOM "ip": "sender")
  std::string sender_aet;      // calling AE title of the sender (pass_sender_aet)
  std::string receiver_aet;    // AE title the series was sent to (pass_receiver_aet)
  const std::atomic<bool>* cancel = nullptr;  // set when ferry shuts down; stop soon
};

// The state of one transfer (an open association, HTTP connection, SSH session). The dispatcher
// creates one per task and target, sends one or more batches through it, and destroys it when
// the task is done with the target or fails.
class TargetSession {
 public:
  virtual ~TargetSession() = default;

  // Delivers `instances`; `results` receives one entry per instance, in the same order. A
  // failure that stops the whole batch (the peer is unreachable) marks every instance that was
  // not delivered with that failure. Never throws.
  virtual void Send(const std::vector<OutgoingInstance>& instances,
                    std::vector<InstanceResult>* results) = 0;

  // Called once after every instance of the task reached this target: folder and SFTP targets
  // write their `.complete` marker here. A non-OK Status is a failure of the task (transient
  // unless it is kFailedPrecondition / kPermissionDenied / kInvalidArgument).
  virtual Status Finish() { return Status::Ok(); }
};

class Target {
 public:
  virtual ~Target() = default;

  const TargetOptions& options() const { return options_; }

  // Opens a session for one task. Errors are transient unless the Status says otherwise
  // (see IsPermanent).
  virtual Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) = 0;

  // `ferry targets test`: checks that the target is reachable and usable (C-ECHO, STOW endpoint
  // reachable and authorised, SSH login and folder, bucket reachable, folder writable) without
  // delivering data. OK, or an error whose message says what failed and how to fix it.
  virtual Status Check() = 0;

 protected:
  explicit Target(TargetOptions options) : options_(std::move(options)) {}

 private:
  TargetOptions options_;
};

// Reads the identifiers of a DICOM file (from its header; pixel data is not read).
Result<OutgoingInstance> DescribeInstance(const std::string& path);

std::string_view OutcomeName(Outcome outcome);

// The file name of `path` (after the last '/').
std::string BaseName(const std::string& path);

// mercure's file_filter of folder and SFTP targets: comma-separated glob patterns matched
// against the file name; an empty filter passes everything.
bool PassesFileFilter(const std::string& filter, const std::string& name);

// A task id that is safe as one folder name at a destination.
bool IsSafeTaskFolderName(const std::string& name);

// The result of an instance that failed with `status`: permanent or transient by IsPermanent.
InstanceResult FailedResult(const Status& status);

// True for errors that retrying cannot fix (a refused login or request, a bad configuration).
bool IsPermanent(const Status& status);

// Builds the Target for `options`.
Result<std::unique_ptr<Target>> MakeTarget(const TargetOptions& options);

// One constructor per type (target_*.cc); MakeTarget dispatches on options.type.
std::unique_ptr<Target> MakeDicomTarget(const TargetOptions& options);
std::unique_ptr<Target> MakeDicomwebTarget(const TargetOptions& options);
std::unique_ptr<Target> MakeSftpTarget(const TargetOptions& options);
std::unique_ptr<Target> MakeS3Target(const TargetOptions& options);
std::unique_ptr<Target> MakeFolderTarget(const TargetOptions& options);

}  // namespace ferry
