#include "router/completion.h"

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Case {
  const char* name;
  std::vector<AssociationMark> associations;
  milliseconds since_last_arrival;
  bool forced;
  CompletionReason expected;
  milliseconds recheck_after_last;  // for kNotYet
};

class CompletionTest : public ::testing::TestWithParam<Case> {};

TEST_P(CompletionTest, Decides) {
  const Case& c = GetParam();
  FakeClock clock;
  WallTime last = clock.Now();
  clock.Advance(c.since_last_arrival);
  SeriesSnapshot s{last, c.associations, c.forced};
  CompletionDecision d = DecideSeriesCompletion(s, CompletionPolicy{}, clock.Now());
  EXPECT_EQ(d.reason, c.expected) << c.name;
  if (c.expected == CompletionReason::kNotYet) {
    EXPECT_EQ(d.recheck_at, last + c.recheck_after_last) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CompletionTest,
    ::testing::Values(
        Case{"open association, fresh", {{"a1", false}}, milliseconds(100), false,
             CompletionReason::kNotYet, seconds(60)},
        Case{"ended association, within grace", {{"a1", true}}, milliseconds(2999), false,
             CompletionReason::kNotYet, seconds(3)},
        Case{"ended association, grace passed", {{"a1", true}}, milliseconds(3000), false,
             CompletionReason::kAssociationsEnded, {}},
        Case{"one of two still open", {{"a1", true}, {"a2", false}}, seconds(10), false,
             CompletionReason::kNotYet, seconds(60)},
        Case{"both ended", {{"a1", true}, {"a2", true}}, seconds(4), false,
             CompletionReason::kAssociationsEnded, {}},
        Case{"open association, idle timeout", {{"a1", false}}, seconds(60), false,
             CompletionReason::kIdleTimeout, {}},
        Case{"no association recorded counts as ended", {}, seconds(3), false,
             CompletionReason::kAssociationsEnded, {}},
        Case{"forced while open", {{"a1", false}}, milliseconds(0), true,
             CompletionReason::kForced, {}}));

TEST(CompletionTest, ClockSteppingBackDoesNotDelayForever) {
  FakeClock clock;
  WallTime now = clock.Now();
  SeriesSnapshot s{now + seconds(3600), {{"a1", true}}, false};
  CompletionDecision d = DecideSeriesCompletion(s, CompletionPolicy{}, now);
  EXPECT_EQ(d.reason, CompletionReason::kNotYet);
  EXPECT_EQ(d.recheck_at, now + seconds(3));
}

TEST(CompletionTest, PolicyValuesAreHonoured) {
  FakeClock clock;
  WallTime last = clock.Now();
  CompletionPolicy p{milliseconds(500), seconds(5)};
  SeriesSnapshot open{last, {{"a1", false}}, false};
  SeriesSnapshot ended{last, {{"a1", true}}, false};
  EXPECT_FALSE(DecideSeriesCompletion(ended, p, last + milliseconds(499)).complete());
  EXPECT_TRUE(DecideSeriesCompletion(ended, p, last + milliseconds(500)).complete());
  EXPECT_FALSE(DecideSeriesCompletion(open, p, last + milliseconds(4999)).complete());
  EXPECT_EQ(DecideSeriesCompletion(open, p, last + seconds(5)).reason,
            CompletionReason::kIdleTimeout);
}

}  // namespace
}  // namespace ferry
