#include "spool/schedule.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(RetryDelay, GrowsExponentiallyUpToTheCap) {
  RetryOptions r;
  r.initial_delay_ms = 1000;
  r.multiplier = 2.0;
  r.max_delay_ms = 5000;
  EXPECT_EQ(RetryDelay(r, 1), milliseconds(1000));
  EXPECT_EQ(RetryDelay(r, 2), milliseconds(2000));
  EXPECT_EQ(RetryDelay(r, 3), milliseconds(4000));
  EXPECT_EQ(RetryDelay(r, 4), milliseconds(5000));
  EXPECT_EQ(RetryDelay(r, 1000), milliseconds(5000));
}

class TaskQueueTest : public ::testing::Test {
 protected:
  WallTime t0_ = WallTime() + std::chrono::hours(24 * 365 * 50);
  TaskQueue queue_;

  void Add(const std::string& id, Priority p, int created_s, int not_before_s = -1000000) {
    queue_.Put({id, p, t0_ + seconds(created_s), t0_ + seconds(not_before_s)});
  }
  std::vector<std::string> Ready(int now_s, bool offpeak, std::optional<WallTime>* next = nullptr) {
    std::optional<WallTime> ignored;
    return queue_.Ready(t0_ + seconds(now_s), offpeak, next != nullptr ? next : &ignored);
  }
};

TEST_F(TaskQueueTest, UrgentFirstThenFifo) {
  Add("n1", Priority::kNormal, 1);
  Add("n2", Priority::kNormal, 2);
  Add("u1", Priority::kUrgent, 3);
  Add("n0", Priority::kNormal, 0);
  EXPECT_EQ(Ready(10, false), (std::vector<std::string>{"u1", "n0", "n1", "n2"}));
}

TEST_F(TaskQueueTest, OffpeakOnlyInsideTheWindowAndLast) {
  Add("o1", Priority::kOffpeak, 0);
  Add("n1", Priority::kNormal, 5);
  EXPECT_EQ(Ready(10, false), (std::vector<std::string>{"n1"}));
  EXPECT_EQ(Ready(10, true), (std::vector<std::string>{"n1", "o1"}));
}

TEST_F(TaskQueueTest, BackoffDelaysATaskAndReportsWhenItIsReady) {
  Add("retry", Priority::kUrgent, 0, /*not_before_s=*/60);
  Add("n1", Priority::kNormal, 5);
  std::optional<WallTime> next;
  EXPECT_EQ(Ready(10, false, &next), (std::vector<std::string>{"n1"}));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, t0_ + seconds(60));
  EXPECT_EQ(Ready(60, false, &next), (std::vector<std::string>{"retry", "n1"}));
  EXPECT_FALSE(next.has_value());
}

TEST_F(TaskQueueTest, LongWaitingNormalTaskIsNotStarvedByUrgentOnes) {
  Add("old", Priority::kNormal, 0);
  Add("u1", Priority::kUrgent, 900);
  // After ten minutes the normal task ranks with urgent ones, and it is older.
  EXPECT_EQ(Ready(601, false), (std::vector<std::string>{"old", "u1"}));
  EXPECT_EQ(Ready(598, false).front(), "u1");
}

class GroupTest : public ::testing::Test {
 protected:
  std::map<std::string, TargetState> states_;
  TargetGroupOptions group_{"g", GroupPolicy::kFailover, {"a", "b", "c"}};
  size_t cursor_ = 0;

  std::string Choose() {
    return ChooseGroupMember(group_, [&](const std::string& n) { return states_[n]; }, &cursor_);
  }
};

TEST_F(GroupTest, FailoverTakesTheFirstHealthyMember) {
  EXPECT_EQ(Choose(), "a");
  states_["a"].backing_off = true;
  EXPECT_EQ(Choose(), "b");
  states_["b"].backing_off = true;
  EXPECT_EQ(Choose(), "c");
  states_["c"].backing_off = true;
  EXPECT_EQ(Choose(), "a");  // all backing off: still try, in order
}

TEST_F(GroupTest, RoundRobinRotatesAndSkipsBackingOffMembers) {
  group_.policy = GroupPolicy::kRoundRobin;
  EXPECT_EQ(Choose(), "a");
  EXPECT_EQ(Choose(), "b");
  EXPECT_EQ(Choose(), "c");
  EXPECT_EQ(Choose(), "a");
  states_["b"].backing_off = true;
  EXPECT_EQ(Choose(), "c");
  EXPECT_EQ(Choose(), "a");
}

TEST_F(GroupTest, LeastLoadedTakesTheIdlestMember) {
  group_.policy = GroupPolicy::kLeastLoaded;
  states_["a"].in_flight = 2;
  states_["b"].in_flight = 1;
  states_["c"].in_flight = 1;
  EXPECT_EQ(Choose(), "b");
  states_["b"].backing_off = true;
  EXPECT_EQ(Choose(), "c");
}

}  // namespace
}  // namespace ferry
