// Scheduling decisions shared by the dispatcher and the processor, as pure functions and a plain
// queue so that they are unit-tested with a fake clock: which waiting task starts next
// (priorities, the off-peak window, FIFO, no starvation), how long a failed task waits before its
// next attempt, and which member of a target group receives a task (dispatcher).
// Thread-safety: values; TaskQueue is not thread-safe (its owner guards it).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/clock.h"

namespace ferry {

// The priority a task.json records (ferry.priority: "urgent", "offpeak", else normal).
Priority TaskPriority(const nlohmann::json& task);

// The wait before attempt `failed_attempts + 1`: initial * multiplier^(failed_attempts - 1),
// capped at max_delay.
std::chrono::milliseconds RetryDelay(const RetryOptions& retry, int failed_attempts);

// A task waiting in outgoing/.
struct QueuedTask {
  std::string id;
  Priority priority = Priority::kNormal;
  WallTime created;     // FIFO order within a priority
  WallTime not_before;  // next attempt (retry backoff); epoch for new tasks
};

// Urgent tasks start before normal ones, normal before off-peak ones, and off-peak ones only
// inside the off-peak window; within a priority the oldest starts first. A normal task that has
// waited longer than `aging` counts as urgent, so a stream of urgent work cannot starve it.
class TaskQueue {
 public:
  explicit TaskQueue(std::chrono::milliseconds aging = std::chrono::minutes(10)) : aging_(aging) {}

  void Put(const QueuedTask& task) { tasks_[task.id] = task; }
  void Remove(const std::string& id) { tasks_.erase(id); }
  bool Contains(const std::string& id) const { return tasks_.count(id) != 0; }
  size_t size() const { return tasks_.size(); }

  // The tasks that may start at `now`, best first. `next_ready` receives the earliest time a
  // task that is not ready yet becomes ready (unset when none).
  std::vector<std::string> Ready(WallTime now, bool offpeak_window,
                                 std::optional<WallTime>* next_ready) const;

 private:
  std::chrono::milliseconds aging_;
  std::map<std::string, QueuedTask> tasks_;
};

// What the dispatcher knows of a target when choosing a group member.
struct TargetState {
  bool backing_off = false;  // failed recently; skipped until its backoff passed
  int in_flight = 0;         // transfers running now
};

// Chooses the member of `group` to send to. failover: the first member that is not backing
// off; round_robin: the next member after `*cursor` that is not backing off; least_loaded: the
// member with the fewest transfers in flight, ties in group order. When every member is backing
// off, the one whose turn it is anyway (so a task still makes progress). Empty when the group
// has no members.
std::string ChooseGroupMember(const TargetGroupOptions& group,
                              const std::function<TargetState(const std::string&)>& state,
                              size_t* cursor);

}  // namespace ferry
