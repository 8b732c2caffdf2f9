// Dispatcher: delivers the tasks in outgoing/ to their targets, with retries, priorities,
// per-target limits and target groups.
//
// A task waits in outgoing/<id>/ (new, or scheduled for a retry). To work on it the dispatcher
// claims it by renaming the folder to tmp/dispatcher/<id>/, and sends its instances to every
// destination the task names (a target, or a group of which it picks one member) in parallel,
// one job per destination. What each destination confirmed is remembered, so a retry resends
// only what failed. When every destination has everything, the task moves to success/; a
// permanent failure (refused SOP class, HTTP 4xx, bad credentials) moves it to error/ at once;
// a transient one (peer down, timeout, busy) puts it back into outgoing/ with its next attempt
// time in task.json (exponential backoff), until the last attempt, after which it goes to
// error/. `ferry task retry` puts an errored task back.
//
// Streaming tasks (ferry.streaming in task.json) are created by the router when a series
// starts arriving: their instances are read from incoming/<series>/ as they arrive, and when
// the router seals the series (incoming/<series>/stream.sealed), the dispatcher moves the
// series folder into the task and completes it once all of it is delivered.
//
// Crash safety: task.json is rewritten atomically after each job; a killed dispatcher leaves
// claimed tasks in tmp/dispatcher/, which Recover() puts back into outgoing/ — delivery is at
// least once.
//
// Threads: RunOnce, Notify and Shutdown are called from the service's single loop thread; each
// job runs on a thread of its own and reports back through a queue and the wake-up fd.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/clock.h"
#include "spool/schedule.h"
#include "journal/journal.h"
#include "router/router.h"
#include "spool/spool.h"
#include "targets/target.h"

namespace ferry {

class Dispatcher {
 public:
  // `targets` holds one Target per configured target name. All pointers must outlive the
  // Dispatcher. `spool` is the dispatcher's own Spool (service "dispatcher").
  // `describe` reads an instance's identifiers (DescribeInstance; tests replace it).
  using Describer = std::function<Result<OutgoingInstance>(const std::string& path)>;
  Dispatcher(const Config& config, std::map<std::string, std::unique_ptr<Target>> targets,
             Spool* spool, Journal* journal, Clock* clock, Describer describe = DescribeInstance);
  ~Dispatcher();

  // Puts back what a killed predecessor had claimed. Call once before RunOnce.
  Status Recover();

  // One pass: notices new tasks, ends finished jobs, starts what may start. Returns when the
  // next pass is due at the latest (a retry or the off-peak window); events come earlier
  // through wake_fd() and the service's inotify watches. `streams_changed` says whether a
  // folder of StreamingFolders() may have changed since the last pass (a watch fired or was
  // just set up): only then does a stream that ran out of instances look again, so that it
  // does not take its worker back from queued tasks every few hundred milliseconds.
  WallTime RunOnce(bool streams_changed = true);
  // The same, telling exactly which folders of StreamingFolders() changed: only their streams
  // look again.
  WallTime RunOnce(const std::set<std::string>& changed_folders);

  // Readable when a job ended or wants attention; the service polls it and calls RunOnce.
  int wake_fd() const { return wake_fd_; }
  void DrainWake();

  // Folders whose changes matter to running streaming tasks (incoming/<series>/); the
  // service watches them and calls RunOnce when they change.
  std::vector<std::string> StreamingFolders() const;

  // Stops every job (they end soon after their current instance), waits for them, and puts
  // their tasks back into outgoing/ without counting an attempt.
  void Shutdown();


 private:
  struct Destination {
    std::string name;    // as the task names it: a target or a group
    std::string target;  // the target of the current or last job
    bool complete = false;
    bool permanent = false;  // failed permanently: the task goes to error/
    bool transient = false;  // failed transiently in this attempt
    bool running = false;
    bool parked = false;     // a streaming job that ran out of instances; restarts on news
    uint64_t parked_at = 0;  // the task's change counter when it parked
    std::string error;
    std::set<std::string> delivered;  // file names confirmed by the destination
    // The group member that confirmed `delivered` (empty: not known, or not a group). A series
    // is never left split over members: a job on another member sends all of it again.
    std::string delivered_to;
    std::map<std::string, std::string> failed;  // file name -> reason (permanent)
  };

  struct Active {
    std::string id;
    std::string dir;  // tmp/dispatcher/<id>
    nlohmann::json task;
    std::vector<Destination> dests;
    bool streaming = false;
    std::string series_uid;
    bool sealed = false;
    bool fail_when_sealed = false;  // failed while its series still arrives (FinishTask)
    std::string study_uid;
    int attempt = 1;
    WallTime created;
    WallTime received;  // the series' first instance arrived (ferry.received_at): ordered targets
    TaskContext context;
    // Delivered instances counted when SaveProgress last looked, and when it did.
    size_t saved_delivered = 0;
    WallTime saved_at;
    // Guards dests[*].delivered/failed (written by jobs) and `changes`.
    std::mutex mu;
    std::condition_variable cv;
    uint64_t changes = 0;  // bumped when new instances may be there
  };

  struct Waiting {  // a task in outgoing/
    QueuedTask queued;
    std::string study_uid;
    WallTime received;
    std::vector<std::string> pending;  // destinations not complete yet
  };

  struct JobDone {
    std::string task_id;
    size_t dest = 0;
    bool parked = false;
  };

  struct TargetHealth {
    int in_flight = 0;
    int failures = 0;  // consecutive
    WallTime backoff_until;
  };

  void ScanOutgoing();
  // Writes task.json for tasks whose running jobs delivered more since the last write, at most
  // once per interval; lowers `next` to when it should look again.
  void SaveProgress(WallTime now, WallTime* next);
  Result<Waiting> ReadWaiting(const std::string& id);
  bool Claim(const std::string& id);
  void StartJobs();
  // Whether the job of destination `d` may start now (worker, per-target limit, ordered
  // delivery); `target` receives the target to use. `commit` advances a round-robin group.
  bool CanStart(const Active& a, const Destination& d, std::string* target, bool commit);
  void StartJob(Active* a, size_t dest, const std::string& target);
  void RunJob(Active* a, size_t dest, Target* target);
  void HandleDone(const JobDone& done);
  void FinishTask(Active* a);
  void UpdateStreams(bool all, const std::set<std::string>& changed);
  WallTime Pass(bool all, const std::set<std::string>& changed);
  Status SealStream(Active* a);
  Status MoveSeriesIntoTask(const std::string& dir);
  void WriteTaskJson(Active* a);
  Status MoveTask(Active* a, std::string_view stage);
  std::string ResolveGroup(const std::string& name, bool commit);
  bool GroupHasHealthyMember(const std::string& name);
  TargetState StateOf(const std::string& target);
  void Wake();

  Config config_;
  std::map<std::string, std::unique_ptr<Target>> targets_;
  Spool* spool_;
  Journal* journal_;
  Clock* clock_;
  Describer describe_;
  std::string work_dir_;
  int wake_fd_ = -1;

  TaskQueue queue_;
  std::map<std::string, Waiting> waiting_;
  std::map<std::string, std::unique_ptr<Active>> active_;
  std::map<std::string, TargetHealth> health_;
  std::map<std::string, size_t> group_cursor_;
  std::set<std::string> unreadable_;  // outgoing/ entries already reported as broken
  size_t running_ = 0;
  bool suspended_ = false;  // dispatch suspended by an operator at the last pass

  std::atomic<bool> cancel_{false};
  mutable std::mutex done_mu_;
  std::vector<JobDone> done_;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> finished_threads_;
};


}  // namespace ferry
