// GET /api/v1/stats/timeseries on a temporary SQLite database filled with events.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "db/schema.h"
#include "web/api_data_internal.h"
#include "web/route.h"

namespace ferry::web {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kT0 = 1795000000LL * kSecond;  // on a 10 s step boundary

class ApiStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry_api_stats_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.data_folder = dir_.string();
    auto db = db::Database::Open("sqlite:" + (dir_ / "ferry.db").string());
    ASSERT_TRUE(db) << db.error().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(db::Migrate(db_.get()));
    ctx_.config = &config_;
    ctx_.db = db_.get();
    AddStatsRoutes(&routes_);
    ASSERT_EQ(routes_.size(), 1u);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void TaskEvent(int64_t ts, const std::string& event, const std::string& series,
                 const json& details) {
    ASSERT_TRUE(
        db_->Execute("INSERT INTO task_events (ts_us, time, service, pid, event, "
                     "task_id, series_uid, details) VALUES ($1, '', 'test', 1, $2, "
                     "'t', $3, $4)",
                     {ts, event, series, details.dump()}));
  }
  void SystemEvent(int64_t ts, const std::string& event, const json& details) {
    ASSERT_TRUE(
        db_->Execute("INSERT INTO system_events (ts_us, time, service, pid, event, "
                     "details) VALUES ($1, '', 'test', 1, $2, $3)",
                     {ts, event, details.dump()}));
  }

  json Get(std::map<std::string, std::string> query, int expect_status = 200) {
    Request req;
    req.method = "GET";
    req.query = std::move(query);
    Response r = routes_[0].handler(req, ctx_);
    EXPECT_EQ(r.status, expect_status) << r.body;
    return json::parse(r.body);
  }

  fs::path dir_;
  Config config_;
  std::unique_ptr<db::Database> db_;
  Context ctx_;
  std::vector<Route> routes_;
};

TEST_F(ApiStatsTest, CountsEventsPerStepAndTarget) {
  // The window: 1 minute in 10 s steps ending with the step that holds kT0 + 5 s.
  const int64_t to = kT0 + 5 * kSecond;
  const int64_t from = kT0 + 10 * kSecond - 60 * kSecond;  // six steps
  SystemEvent(from + 1 * kSecond, "association.closed", {{"instances", 3}});
  SystemEvent(from + 2 * kSecond, "association.closed", {{"instances", 4}});
  SystemEvent(from - 1 * kSecond, "association.closed", {{"instances", 100}});  // before
  SystemEvent(from + 12 * kSecond, "association.rejected", {{"instances", 100}});
  // A series whose last instance arrived just before the window, completed in step 0 and
  // delivered in step 1 (latency 11.5 s) and step 5 (latency 51.5 s, and failed once before).
  TaskEvent(from + 3 * kSecond, "series.complete", "s1",
            {{"last_arrival", data::IsoFromUs(from - 500'000)}});
  TaskEvent(from + 4 * kSecond, "task.created", "s1", json::object());
  TaskEvent(from + 4 * kSecond, "task.created", "s1", json::object());
  TaskEvent(from + 11 * kSecond, "dispatch.complete", "s1", {{"target", "pacs"}});
  TaskEvent(from + 11 * kSecond, "task.completed", "s1", json::object());
  TaskEvent(from + 21 * kSecond, "dispatch.failed", "s1", {{"target", "ai"}});
  TaskEvent(from + 51 * kSecond, "dispatch.complete", "s1", {{"target", "ai"}});
  TaskEvent(from + 51 * kSecond, "task.completed", "s1", json::object());
  TaskEvent(from + 61 * kSecond, "task.created", "s2", json::object());  // after the window

  json j = Get({{"minutes", "1"}, {"to", std::to_string(to / kSecond) + ".0"}});
  EXPECT_EQ(j["from_us"], from);
  EXPECT_EQ(j["points"], 6);
  EXPECT_EQ(j["step_s"], 10);
  EXPECT_EQ(j["instances_received"], json({7, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["series_completed"], json({1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["tasks_created"], json({2, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["dispatched"]["pacs"], json({0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(j["dispatched"]["ai"], json({0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(j["failed"]["ai"], json({0, 0, 1, 0, 0, 0}));
  EXPECT_FALSE(j["failed"].contains("pacs"));
  EXPECT_DOUBLE_EQ(j["latency_mean_s"][1].get<double>(), 11.5);
  EXPECT_DOUBLE_EQ(j["latency_max_s"][5].get<double>(), 51.5);
  EXPECT_TRUE(j["latency_mean_s"][0].is_null());
}

TEST_F(ApiStatsTest, RefusesBadParametersAndAnswers503WithoutDatabase) {
  Get({{"minutes", "x"}}, 400);
  Get({{"minutes", "1440"}, {"step", "1"}}, 400);  // 86400 points
  Get({{"to", "yesterday"}}, 400);
  ctx_.db = nullptr;
  Get({}, 503);
}

}  // namespace
}  // namespace ferry::web
