// FakeClock: a Clock for tests whose time moves only when the test says so.
//
// Both clocks start at fixed, known points (wall: 2026-01-01T00:00:00Z) so that file names and
// timestamps derived from them are reproducible. Advance() moves wall and steady time together,
// as real time would; SetWall() jumps the wall clock alone (an NTP step, a changed time zone
// does not matter: wall time is UTC) and never touches steady time, which only moves forward.
// Thread-safety: all methods may be called concurrently; the component under test typically
// reads the clock from its threads while the test advances it.
#pragma once

#include <chrono>
#include <mutex>

#include "core/clock.h"

namespace ferry {

class FakeClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z.
  static constexpr std::chrono::seconds kDefaultWallSinceEpoch{1767225600};

  FakeClock() : FakeClock(WallTime(kDefaultWallSinceEpoch)) {}
  // Steady time starts at an arbitrary non-zero point, like the real steady clock.
  explicit FakeClock(WallTime wall) : wall_(wall), steady_(SteadyTime(std::chrono::hours(1))) {}

  WallTime Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return wall_;
  }

  SteadyTime SteadyNow() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return steady_;
  }

  // Moves both clocks forward by `d` (negative durations are ignored: time does not go back).
  template <typename Rep, typename Period>
  void Advance(std::chrono::duration<Rep, Period> d) {
    if (d < d.zero()) {
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
    steady_ += std::chrono::duration_cast<SteadyTime::duration>(d);
  }

  // Sets the wall clock to `t`, forwards or backwards; steady time is unchanged.
  void SetWall(WallTime t) {
    std::lock_guard<std::mutex> lock(mu_);
    wall_ = t;
  }

 private:
  mutable std::mutex mu_;
  WallTime wall_;
  SteadyTime steady_;
};

}  // namespace ferry
