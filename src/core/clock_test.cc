#include "core/clock.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ParseIso8601Test, ReadsWhatFormatIso8601Writes) {
  WallTime t0 = std::chrono::system_clock::from_time_t(1767225600);  // 2026-01-01T00:00:00Z
  WallTime t = t0 + hours(17) + minutes(30) + seconds(36) + std::chrono::microseconds(123456);
  auto parsed = ParseIso8601(FormatIso8601(t));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, t);
  auto whole = ParseIso8601("2026-01-01T00:00:00Z");
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(*whole, t0);
  auto offset = ParseIso8601("2026-01-01T01:30:00.5+01:30");
  ASSERT_TRUE(offset.has_value());
  EXPECT_EQ(*offset, t0 + std::chrono::milliseconds(500));
  EXPECT_FALSE(ParseIso8601("2026-01-01 00:00:00").has_value());
  EXPECT_FALSE(ParseIso8601("2026-01-01T00:00:00").has_value());
  EXPECT_FALSE(ParseIso8601("2026-13-01T00:00:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("2026-01-01T00:00:00.Z").has_value());
  EXPECT_FALSE(ParseIso8601("2026-01-01T00:00:00Zjunk").has_value());
  EXPECT_FALSE(ParseIso8601("").has_value());
}

TEST(InWindowTest, PlainAndWrappingWindows) {
  // 08:00-17:00
  EXPECT_FALSE(InWindow(7 * 60 + 59, 8 * 60, 17 * 60));
  EXPECT_TRUE(InWindow(8 * 60, 8 * 60, 17 * 60));
  EXPECT_TRUE(InWindow(16 * 60 + 59, 8 * 60, 17 * 60));
  EXPECT_FALSE(InWindow(17 * 60, 8 * 60, 17 * 60));
  // 22:00-06:00 wraps midnight.
  EXPECT_FALSE(InWindow(21 * 60 + 59, 22 * 60, 6 * 60));
  EXPECT_TRUE(InWindow(22 * 60, 22 * 60, 6 * 60));
  EXPECT_TRUE(InWindow(0, 22 * 60, 6 * 60));
  EXPECT_TRUE(InWindow(5 * 60 + 59, 22 * 60, 6 * 60));
  EXPECT_FALSE(InWindow(6 * 60, 22 * 60, 6 * 60));
  EXPECT_FALSE(InWindow(12 * 60, 22 * 60, 6 * 60));
  // Equal ends: an empty window.
  EXPECT_FALSE(InWindow(10 * 60, 10 * 60, 10 * 60));
}

}  // namespace
}  // namespace ferry
