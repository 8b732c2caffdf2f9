// Router: turns complete series in incoming/ into tasks according to the rules.
//
// Each pass (RunOnce) looks at every series folder in incoming/. A series seen for the first
// time is classified from its series.tags (the tags of its first instance): which rules trigger
// decides what will happen and also which completion times apply. When DecideSeriesCompletion
// says it is complete, the router claims the folder (one rename into tmp/router/claim-<uid>),
// and publishes one task folder per consumer with a mercure task.json:
//   route rules     -> outgoing/<task>/    (one task for all route targets, de-duplicated)
//   process / both  -> processing/<task>/  (one task per rule)
//   notification    -> success/<task>/
//   discard, or no rule triggered -> discard/<task>/  (kept for retention, never deleted here)
// When one task consumes the series the claimed folder itself becomes the task (rename); when
// several do, each gets hard links to the instances. An instance that arrives after its series
// was routed re-creates the series folder (receiver); it is routed by the same rules as a
// follow-up task whose task.json names the earlier task (ferry.parent_task).
//
// Crash safety: every task folder is built in tmp/router and renamed into its stage with its
// task.json already inside; a claimed series with several consumers first records its plan
// (plan.json). Recover() at start finishes or undoes whatever a killed router left there, so a
// series is never lost (at worst routed twice).
//
// Threads: single-threaded; RunOnce is called by RunRouterService's loop or by tests.
#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/clock.h"
#include "journal/journal.h"
#include "router/completion.h"
#include "router/rule_set.h"
#include "spool/intake_log.h"
#include "spool/spool.h"

namespace ferry {

class Router {
 public:
  // All pointers must outlive the Router. `spool` is the router's own Spool (service "router").
  Router(RouterOptions options, std::shared_ptr<const RuleSet> rules, Spool* spool,
         Journal* journal, Clock* clock);

  // Finishes or undoes work of a predecessor that was killed (see above). Call once at start.
  Status Recover();

  struct PassResult {
    int tasks_created = 0;
    int series_pending = 0;
    // The earliest time at which a pending series may become complete without new arrivals.
    std::optional<WallTime> next_check;
  };

  // One pass over incoming/. Errors with one series are logged and journaled and do not stop
  // the pass; an error listing incoming/ itself is returned.
  Result<PassResult> RunOnce();

  // The series in incoming/ the last pass classified and is waiting on.
  std::vector<std::string> PendingSeries() const;

 private:
  // How soon a series complete but not yet durable in the spool is looked at again.
  static constexpr std::chrono::milliseconds kIntakeRecheck{50};
  // False while the receiver's intake log has not yet made instances that arrived at
  // `last_arrival` durable in the spool; `gate` caches the checkpoint for one pass.
  bool IntakeDurable(WallTime last_arrival,
                     std::optional<std::optional<IntakeCheckpoint>>* gate);

  struct Pending {
    rules::TagLookup::Map tags;  // series.tags
    SeriesDecision decision;
    CompletionPolicy policy;
    std::string forced_rule;  // set once an operator's forced rule replaced the decision
    std::string stream_task;  // the streaming task that sends the series while it arrives
    WallTime first_arrival;   // when series.tags was written: the series' first instance
  };

  Result<Pending> Classify(const std::string& series_uid);
  // Claims the series and publishes its tasks. Returns the number of tasks created.
  Result<int> Route(const std::string& series_uid, const Pending& pending,
                    CompletionReason reason, int instances);
  Status PublishTask(const std::string& folder, std::string_view stage, const std::string& id,
                     const nlohmann::json& task);
  Status Restore(const std::string& claim_dir);
  // Study-level rules: the series' instances join studies/<study uid>-<rule>/ (study.json keeps
  // the received series); RunStudies publishes a study's task when it is complete.
  Status AddToStudy(const std::string& claim, const RuleOptions& rule,
                    const std::string& series_uid, const rules::TagLookup::Map& tags);
  Status RunStudies(WallTime now, PassResult* result);
  Status FinishStudy(const std::string& key, const nlohmann::json& state, const RuleOptions* rule,
                     const std::string& reason, bool discard);
  static std::string StudyKey(const std::string& study_uid, const std::string& rule);
  std::string RoutedMarkerPath(const std::string& series_uid) const;
  // Streaming dispatch: a series that only series-level route rules with `streaming` (the
  // default) take gets its outgoing task as soon as it is classified; the dispatcher sends its
  // instances from incoming/ while they arrive. On completion the router seals the series
  // (kStreamSealedFile names the task) instead of claiming it, and the dispatcher takes the
  // folder over. router/streaming/<series uid> remembers the task across restarts.
  bool Streams(const Pending& pending) const;
  // The priority of the one route task for all triggered route rules.
  Priority RoutePriority(const SeriesDecision& d) const;
  Status StartStream(const std::string& series_uid, Pending* pending);
  Status SealStream(const std::string& series_uid, const Pending& pending,
                    CompletionReason reason, int instances);
  std::string StreamMarkerPath(const std::string& series_uid) const;

  RouterOptions options_;
  std::shared_ptr<const RuleSet> rules_;
  Spool* spool_;
  Journal* journal_;
  Clock* clock_;
  std::string work_dir_;
  std::map<std::string, Pending> pending_;  // by series uid
};

// Written into incoming/<series>/ when a streamed series is complete; holds the task id.
inline constexpr std::string_view kStreamSealedFile = "stream.sealed";

// A new task id: a random UUID (version 4), as mercure uses.
std::string NewTaskId();

}  // namespace ferry
