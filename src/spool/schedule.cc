#include "spool/schedule.h"

#include <time.h>

#include <algorithm>
#include <cmath>

namespace ferry {

Priority TaskPriority(const nlohmann::json& task) {
  std::string p = task.value("/ferry/priority"_json_pointer, std::string("normal"));
  return p == "urgent" ? Priority::kUrgent : p == "offpeak" ? Priority::kOffpeak : Priority::kNormal;
}

std::chrono::milliseconds RetryDelay(const RetryOptions& retry, int failed_attempts) {
  double delay = retry.initial_delay_ms;
  for (int i = 1; i < failed_attempts && delay < retry.max_delay_ms; ++i) {
    delay *= retry.multiplier;
  }
  delay = std::min<double>(delay, retry.max_delay_ms);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

std::vector<std::string> TaskQueue::Ready(WallTime now, bool offpeak_window,
                                          std::optional<WallTime>* next_ready) const {
  struct Candidate {
    int rank;
    WallTime created;
    const std::string* id;
  };
  std::vector<Candidate> ready;
  next_ready->reset();
  for (const auto& [id, t] : tasks_) {
    if (t.not_before > now) {
      if (!*next_ready || t.not_before < **next_ready) {
        *next_ready = t.not_before;
      }
      continue;
    }
    int rank = 1;
    switch (t.priority) {
      case Priority::kUrgent: rank = 0; break;
      case Priority::kNormal: rank = now - t.created > aging_ ? 0 : 1; break;
      case Priority::kOffpeak:
        if (!offpeak_window) {
          continue;  // the dispatcher wakes up at least once a minute to notice the window
        }
        rank = 2;
        break;
    }
    ready.push_back({rank, t.created, &id});
  }
  std::sort(ready.begin(), ready.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rank != b.rank) {
      return a.rank < b.rank;
    }
    if (a.created != b.created) {
      return a.created < b.created;
    }
    return *a.id < *b.id;
  });
  std::vector<std::string> ids;
  ids.reserve(ready.size());
  for (const auto& c : ready) {
    ids.push_back(*c.id);
  }
  return ids;
}

std::string ChooseGroupMember(const TargetGroupOptions& group,
                              const std::function<TargetState(const std::string&)>& state,
                              size_t* cursor) {
  const auto& members = group.targets;
  if (members.empty()) {
    return "";
  }
  switch (group.policy) {
    case GroupPolicy::kFailover:
      for (const auto& m : members) {
        if (!state(m).backing_off) {
          return m;
        }
      }
      return members.front();
    case GroupPolicy::kRoundRobin:
      for (size_t i = 0; i < members.size(); ++i) {
        size_t index = (*cursor + i) % members.size();
        if (!state(members[index]).backing_off) {
          *cursor = index + 1;
          return members[index];
        }
      }
      return members[(*cursor)++ % members.size()];
    case GroupPolicy::kLeastLoaded: {
      const std::string* best = nullptr;
      int best_load = 0;
      for (const auto& m : members) {
        TargetState s = state(m);
        if (s.backing_off) {
          continue;
        }
        if (best == nullptr || s.in_flight < best_load) {
          best = &m;
          best_load = s.in_flight;
        }
      }
      return best != nullptr ? *best : members.front();
    }
  }
  return members.front();
}

}  // namespace ferry
