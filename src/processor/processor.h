// Processor: runs the processing modules of the tasks in processing/ (mercure's module contract)
// and hands each result on to the dispatcher (outgoing/) or files it (success/, error/).
//
// A task waits in processing/<id>/ with its received images. To work on it the processor claims
// it by renaming the folder to tmp/processor/<id>/ and runs it as one job on a thread of its own,
// at most processor.workers jobs at once and at most a module's max_parallel of one module:
//
//   1. The received files move into as_received/ (kept untouched, so a failed or interrupted
//      job starts again from them).
//   2. For each step of the module chain: in/ holds the input — for the first step copies of
//      the received images named as mercure names them ("<series uid>#<sop uid>.dcm", each with
//      its ".tags"), for the next ones the previous step's out/ — and the step's task.json
//      (task_view.h); out/ is empty. The module runs (ModuleRuntime); its output is logged to
//      logs/<step>-<module>.log. A non-zero exit, a timeout, or an empty out/ fails the task.
//   3. The last out/ becomes the result: the received images are added when the rule retains
//      them, result.json's dynamic routing is applied, and the folder is published by one
//      rename into outgoing/<id>/ (something to send) or success/<id>/ (nothing to send).
//
// A failed task goes to error/<id>/ with its received images back in place, the reason in
// task.json (info.fail_stage "PROCESSING", ferry.process.failure) and the journal, and its logs;
// `ferry task retry` puts it back into processing/. When the container engine cannot be reached
// the task goes back into processing/ and is tried again later (processor.retry).
//
// Crash safety: a killed processor leaves its claims in tmp/processor/; Recover() removes the
// containers it left running and puts each claimed task back into processing/ with its received
// images (or, when its result had already been published, just removes the leftovers), so every
// task finishes exactly once.
//
// Threads: RunOnce, Recover and Shutdown are called from the service's loop thread; each job runs
// on a thread of its own and reports back through the wake-up fd.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/clock.h"
#include "journal/journal.h"
#include "processor/module_runtime.h"
#include "spool/schedule.h"
#include "spool/spool.h"

namespace ferry {

class Processor {
 public:
  // The Series Instance UID of an instance file (for study tasks, whose files are not named by
  // series); tests replace the DICOM reader.
  using SeriesOf = std::function<Result<std::string>(const std::string& path)>;

  // `docker` and `local` run the modules of each runtime (either may be null when no module
  // uses it). All pointers must outlive the Processor; `spool` is the processor's own
  // (service "processor").
  Processor(const Config& config, ModuleRuntime* docker, ModuleRuntime* local, Spool* spool,
            Journal* journal, Clock* clock, SeriesOf series_of);
  ~Processor();

  // Puts back what a killed predecessor had claimed. Call once before RunOnce.
  Status Recover();

  // One pass: ends finished jobs, notices new tasks, starts what may start. Returns when the
  // next pass is due at the latest (a retry, the off-peak window).
  WallTime RunOnce();

  int wake_fd() const { return wake_fd_; }
  void DrainWake();

  // Jobs running now.
  size_t running() const { return jobs_.size(); }

  // Stops every job (their containers are stopped), waits for them, and puts their tasks back
  // into processing/ without counting an attempt.
  void Shutdown();

 private:
  struct Job {
    std::string id;
    std::string dir;  // tmp/processor/<id>
    nlohmann::json task;
    std::vector<std::string> modules;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  struct Waiting {
    QueuedTask queued;
    std::vector<std::string> modules;
  };
  // How a job ended, for the loop's bookkeeping.
  enum class Ending { kPublished, kFailed, kRequeued };

  void Scan();
  Result<Waiting> ReadWaiting(const std::string& id);
  bool ModulesHaveRoom(const std::vector<std::string>& modules) const;
  void Start(const std::string& id, const Waiting& w);
  void RunJob(Job* job);
  // The whole job; returns how it ended.
  Ending Work(Job* job);
  Status KeepReceived(const std::string& dir);
  Status PrepareFirstInput(const Job& job, const std::string& in_dir, int* instances);
  // Moves the received files back to the task folder and removes in/, out/ (out/ kept as
  // failed-output/ when `keep_output`).
  Status RestoreInput(const std::string& dir, bool keep_output);
  Ending Requeue(Job* job, const std::string& reason, bool count_attempt);
  Ending Fail(Job* job, const std::string& reason, int step, const std::string& module);
  Status WriteTask(const std::string& dir, const nlohmann::json& task);
  ModuleRuntime* RuntimeFor(const ModuleOptions& module);
  void Wake();

  Config config_;
  ModuleRuntime* docker_;
  ModuleRuntime* local_;
  Spool* spool_;
  Journal* journal_;
  Clock* clock_;
  SeriesOf series_of_;
  std::string work_dir_;
  int wake_fd_ = -1;

  TaskQueue queue_;
  std::map<std::string, Waiting> waiting_;
  std::set<std::string> unreadable_;  // processing/ entries already reported as broken
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::map<std::string, int> module_running_;
  bool suspended_ = false;
  std::atomic<bool> cancel_{false};
};

}  // namespace ferry
