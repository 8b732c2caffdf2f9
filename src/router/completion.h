// Series completion: when has a sender finished a series?
//
// mercure and Orthanc wait for a fixed time of silence (60 s). ferry knows more: the receiver
// records which associations delivered to each series and whether each has ended
// (incoming/<series>/associations/). A series is complete when
//   (a) every association that delivered to it has ended and nothing arrived for `grace`,
//   (b) nothing arrived for `timeout` while an association is still open (a sender that keeps
//       its association open, or a receiver that was killed before it could mark the end), or
//   (c) it was forced by an operator.
// DecideSeriesCompletion is pure: the router feeds it what it read from the spool and the time,
// and tests drive it with any clock.
// Thread-safety: pure functions on values.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace ferry {

struct CompletionPolicy {
  std::chrono::milliseconds grace{3000};     // series_complete_grace
  std::chrono::milliseconds timeout{60000};  // series_complete_timeout
};

struct AssociationMark {
  std::string id;
  bool ended = false;
};

struct SeriesSnapshot {
  WallTime last_arrival;                     // when the last instance was added
  std::vector<AssociationMark> associations;  // which associations delivered to the series
  bool forced = false;                       // `ferry series complete`, or the API
};

enum class CompletionReason {
  kNotYet,
  kAssociationsEnded,  // (a)
  kIdleTimeout,        // (b)
  kForced,             // (c)
};

std::string_view CompletionReasonName(CompletionReason reason);

struct CompletionDecision {
  CompletionReason reason = CompletionReason::kNotYet;
  // When kNotYet: the earliest time at which the decision can change if nothing else happens
  // (no new instance, no association ending). The router sleeps until then or until woken.
  WallTime recheck_at;

  bool complete() const { return reason != CompletionReason::kNotYet; }
};

CompletionDecision DecideSeriesCompletion(const SeriesSnapshot& series,
                                          const CompletionPolicy& policy, WallTime now);

}  // namespace ferry
