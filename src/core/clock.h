// Clock: wall time for what people see (journal timestamps, file names) and steady time for
// intervals (timeouts, backoff). Injected everywhere a component needs time, so that tests
// drive time with testing/fake_clock.h instead of sleeping.
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.h"

namespace ferry {

using WallTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
  virtual SteadyTime SteadyNow() const = 0;
};

// The process-wide real clock. Never null; lives for the whole process.
Clock* RealClock();

// "2026-11-24T17:30:36.123456Z" (UTC, microseconds).
std::string FormatIso8601(WallTime t);

// "20261124T173036Z" (UTC, seconds): sortable and safe in file names.
std::string FormatCompact(WallTime t);

// Parses an ISO 8601 time with a date, "T", hours, minutes and seconds, optional fractions,
// and "Z" or an offset ("+01:00"): FormatIso8601's form and what other systems write.
// InvalidArgument when `text` is not such a time.
Result<WallTime> ParseIso8601(std::string_view text);

// True when `minute` (after local midnight) lies in [start, end), which may wrap midnight
// (22:00 to 06:00). start == end means an empty window.
bool InWindow(int minute, int start_min, int end_min);

// Minutes after local midnight of `t` in the machine's time zone.
int LocalMinuteOfDay(WallTime t);

// Seconds since the Unix epoch, with fractions: how task.json stores times (as mercure does).
double EpochSeconds(WallTime t);

}  // namespace ferry
