// Clock: wall time for what people see (journal timestamps, file names) and steady time for
// intervals (timeouts, backoff). Injected everywhere a component needs time, so that tests
// drive time with testing/fake_clock.h instead of sleeping.
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <string>

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

// Seconds since the Unix epoch, with fractions: how task.json stores times (as mercure does).
double EpochSeconds(WallTime t);

}  // namespace ferry
