#include "router/completion.h"

#include <algorithm>

namespace ferry {

std::string_view CompletionReasonName(CompletionReason reason) {
  switch (reason) {
    case CompletionReason::kNotYet: return "not complete";
    case CompletionReason::kAssociationsEnded: return "associations ended";
    case CompletionReason::kIdleTimeout: return "idle timeout";
    case CompletionReason::kForced: return "forced";
  }
  return "unknown";
}

CompletionDecision DecideSeriesCompletion(const SeriesSnapshot& series,
                                          const CompletionPolicy& policy, WallTime now) {
  CompletionDecision d;
  if (series.forced) {
    d.reason = CompletionReason::kForced;
    return d;
  }
  // A clock that stepped backwards must not make a series wait longer than the policy says.
  WallTime last = std::min(series.last_arrival, now);
  bool all_ended = std::all_of(series.associations.begin(), series.associations.end(),
                               [](const AssociationMark& a) { return a.ended; });
  if (all_ended && now - last >= policy.grace) {
    d.reason = CompletionReason::kAssociationsEnded;
    return d;
  }
  if (now - last >= policy.timeout) {
    d.reason = CompletionReason::kIdleTimeout;
    return d;
  }
  d.recheck_at = last + (all_ended ? policy.grace : policy.timeout);
  return d;
}

}  // namespace ferry
