// Unit tests of the bookkeeper: SQLite in a temporary folder, hand-written journal files, a
// fake clock, and a database wrapper that fails on demand.
#include "bookkeeper/bookkeeper.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bookkeeper/event_mapper.h"
#include "bookkeeper/journal_files.h"
#include "db/schema.h"
#include "testing/fake_clock.h"

namespace ferry::bookkeeper {
namespace {

using Json = nlohmann::json;

// Forwards to a real database; fails the chosen operation while armed.
class FailingDatabase : public db::Database {
 public:
  FailingDatabase(std::unique_ptr<db::Database> inner, bool* fail_commit, int* fail_execute_after)
      : inner_(std::move(inner)), fail_commit_(fail_commit), fail_after_(fail_execute_after) {}
  db::Dialect dialect() const override { return inner_->dialect(); }
  // Query forwards; Execute (rows == nullptr) fails while armed.
  Status Run(std::string_view sql, const db::Params& p, db::Rows* rows,
             int64_t* changed) override {
    if (rows != nullptr) {
      FERRY_ASSIGN_OR_RETURN(*rows, inner_->Query(sql, p));
      return Status::Ok();
    }
    if (race_ && sql.starts_with("UPDATE journal_offsets")) {
      // Another bookkeeper moved the offset between our read and our write.
      race_ = false;
      auto moved = inner_->Execute(
          "UPDATE journal_offsets SET offset_bytes = offset_bytes + 1 "
          "WHERE file = $1",
          {p.at(0)});
      if (!moved) {
        return moved.error();
      }
    }
    if (*fail_after_ == 0) {
      return Status::Unavailable("injected: connection lost");
    }
    if (*fail_after_ > 0) {
      --*fail_after_;
    }
    FERRY_ASSIGN_OR_RETURN(*changed, inner_->Execute(sql, p));
    return Status::Ok();
  }
  Status ExecuteScript(std::string_view sql) override { return inner_->ExecuteScript(sql); }
  Status Begin() override { return inner_->Begin(); }
  Status Commit() override {
    if (*fail_commit_) {
      return Status::Unavailable("injected: commit failed");
    }
    return inner_->Commit();
  }
  Status Rollback() override { return inner_->Rollback(); }
  std::string Describe() const override { return inner_->Describe(); }
  static inline bool race_ = false;

 private:
  std::unique_ptr<db::Database> inner_;
  bool* fail_commit_;
  int* fail_after_;
};

class BookkeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry_bookkeeper_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "journal");
    uri_ = "sqlite:" + (dir_ / "ferry.db").string();
    // FERRY_BOOKKEEPER_TEST_POSTGRES=<uri of a scratch database> runs the same tests against
    // PostgreSQL (its public schema is dropped before each test).
    if (const char* pg = std::getenv("FERRY_BOOKKEEPER_TEST_POSTGRES"); pg != nullptr && *pg) {
      uri_ = pg;
    }
    auto db = db::Database::Open(uri_);
    ASSERT_TRUE(db) << db.error().ToString();
    check_ = std::move(db).value();
    if (check_->dialect() == db::Dialect::kPostgres) {
      ASSERT_TRUE(check_->ExecuteScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public").ok());
    }
    ASSERT_TRUE(db::Migrate(check_.get()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Bookkeeper> Make(int batch_size = 1000) {
    BookkeeperSettings s;
    s.data_folder = dir_.string();
    s.database = uri_;
    s.batch_size = batch_size;
    s.reconnect_max = std::chrono::seconds(8);
    return std::make_unique<Bookkeeper>(
        s,
        [this]() -> Result<std::unique_ptr<db::Database>> {
          ++opens_;
          if (fail_open_) {
            return Status::Unavailable("injected: database down");
          }
          FERRY_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> db, db::Database::Open(uri_));
          FERRY_RETURN_IF_ERROR(db::Migrate(db.get()).status());
          return std::unique_ptr<db::Database>(
              new FailingDatabase(std::move(db), &fail_commit_, &fail_execute_after_));
        },
        &clock_, nullptr);
  }

  // One journal line as the journal writes it.
  static std::string Line(const std::string& time, const std::string& service,
                          const std::string& event, const std::string& series,
                          const std::string& task, Json details = Json::object()) {
    Json j = {{"time", time}, {"service", service}, {"pid", 42}, {"event", event}};
    if (!series.empty()) {
      j["series_uid"] = series;
    }
    if (!task.empty()) {
      j["task_id"] = task;
    }
    j["details"] = details;
    return j.dump() + "\n";
  }

  void Append(const std::string& file, const std::string& text) {
    std::ofstream out(dir_ / "journal" / file, std::ios::app | std::ios::binary);
    out << text;
  }

  int64_t Count(const std::string& sql) {
    auto rows = check_->Query(sql);
    EXPECT_TRUE(rows) << rows.error().ToString();
    return rows && !rows->empty() ? (*rows)[0].Int(0) : -1;
  }
  std::string Text(const std::string& sql) {
    auto rows = check_->Query(sql);
    EXPECT_TRUE(rows) << rows.error().ToString();
    return rows && !rows->empty() ? (*rows)[0].Text(0) : "<no row>";
  }
  double Counter(const std::string& name, const std::string& labels = "") {
    auto rows =
        check_->Query("SELECT value FROM counters WHERE name = $1 AND labels = $2", {name, labels});
    EXPECT_TRUE(rows);
    return rows && !rows->empty() ? (*rows)[0].Real(0) : 0;
  }
  int64_t EventRows() {
    return Count(
        "SELECT (SELECT COUNT(*) FROM task_events) + (SELECT COUNT(*) FROM "
        "system_events)");
  }
  int64_t Offset(const std::string& file) {
    auto rows = check_->Query("SELECT offset_bytes FROM journal_offsets WHERE file = $1", {file});
    EXPECT_TRUE(rows);
    return rows && !rows->empty() ? (*rows)[0].Int(0) : -1;
  }

  // A routed series: receiver, router and dispatcher events.
  void WriteRoutedSeries() {
    Append("receiver-1.jsonl",
           Line("2026-01-01T00:00:00.000000Z", "receiver", "service.started", "", "") +
               Line("2026-01-01T00:00:01.000000Z", "receiver", "series.first_seen", "1.2.3", "",
                    {{"study_uid", "1.2"},
                     {"peer", "127.0.0.1"},
                     {"calling_ae", "MODALITY"},
                     {"called_ae", "FERRY"}}) +
               Line("2026-01-01T00:00:02.000000Z", "receiver", "association.closed", "", "",
                    {{"result", "released"}, {"instances", 3}, {"bytes", 3000}}));
    Append("router-1.jsonl",
           Line("2026-01-01T00:00:03.000000Z", "router", "series.classified", "1.2.3", "",
                {{"triggered", {"ct"}},
                 {"tags",
                  {{"PatientName", "Doe^John"},
                   {"PatientID", "P1"},
                   {"StudyInstanceUID", "1.2"},
                   {"Modality", "CT"},
                   {"SeriesDescription", "Head"}}}}) +
               Line("2026-01-01T00:00:05.000000Z", "router", "series.complete", "1.2.3", "",
                    {{"instances", 3}, {"last_arrival", "2026-01-01T00:00:02.000000Z"}}) +
               Line("2026-01-01T00:00:05.100000Z", "router", "task.created", "1.2.3", "T1",
                    {{"stage", "outgoing"},
                     {"action", "route"},
                     {"targets", {"pacs", "archive"}},
                     {"rule", "ct"},
                     {"priority", "normal"},
                     {"patient_name", "Doe^John"},
                     {"mrn", "P1"},
                     {"acc", "A1"}}));
    Append("dispatcher-1.jsonl",
           Line("2026-01-01T00:00:06.000000Z", "dispatcher", "dispatch.begin", "1.2.3", "T1",
                {{"target", "pacs"}, {"attempt", 1}}) +
               Line("2026-01-01T00:00:07.000000Z", "dispatcher", "dispatch.complete", "1.2.3", "T1",
                    {{"target", "pacs"}, {"instances", 3}, {"bytes", 3000}}) +
               Line("2026-01-01T00:00:08.000000Z", "dispatcher", "task.completed", "1.2.3", "T1",
                    {{"attempt", 1}}));
  }

  std::filesystem::path dir_;
  std::string uri_;
  std::unique_ptr<db::Database> check_;
  FakeClock clock_;
  int opens_ = 0;
  bool fail_open_ = false;
  bool fail_commit_ = false;
  int fail_execute_after_ = -1;
};

TEST(ParseIso8601MicrosTest, ReadsJournalTimes) {
  EXPECT_EQ(ParseIso8601Micros("1970-01-01T00:00:01.5Z"), 1500000);
  EXPECT_EQ(ParseIso8601Micros("2026-01-01T00:00:00.000001Z"), 1767225600000001);
  EXPECT_EQ(ParseIso8601Micros("2026-01-01T01:00:00+01:00"), 1767225600000000);
  EXPECT_FALSE(ParseIso8601Micros("yesterday"));
}

TEST_F(BookkeeperTest, JournalFilesReturnOnlyCompleteLines) {
  Append("x.jsonl", "{\"a\":1}\n{\"b\":2}\n{\"c\":");
  auto chunk = ReadJournalLines((dir_ / "journal" / "x.jsonl").string(), 0, 10);
  ASSERT_TRUE(chunk);
  ASSERT_EQ(chunk->lines.size(), 2u);
  EXPECT_EQ(chunk->lines[1].text, "{\"b\":2}");
  EXPECT_EQ(chunk->lines[1].end_offset, 16u);
  auto rest = ReadJournalLines((dir_ / "journal" / "x.jsonl").string(), 8, 10);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->lines.size(), 1u);
  EXPECT_EQ(rest->lines[0].text, "{\"b\":2}");
}

TEST_F(BookkeeperTest, LoadsEventsIntoTheTablesAndCounters) {
  WriteRoutedSeries();
  auto keeper = Make();
  PassResult r = keeper->RunOnce();
  EXPECT_FALSE(r.database_down);
  EXPECT_EQ(r.lines_loaded, 9);
  EXPECT_EQ(r.bytes_behind, 0u);

  EXPECT_EQ(Count("SELECT COUNT(*) FROM system_events"), 2);  // started, association.closed
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_events"), 7);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_events WHERE task_id = 'T1'"), 4);

  EXPECT_EQ(Text("SELECT patient_name FROM series WHERE series_uid = '1.2.3'"), "Doe^John");
  EXPECT_EQ(Text("SELECT modality FROM series WHERE series_uid = '1.2.3'"), "CT");
  EXPECT_EQ(Text("SELECT sender_aet FROM series WHERE series_uid = '1.2.3'"), "MODALITY");
  EXPECT_EQ(Text("SELECT state FROM series WHERE series_uid = '1.2.3'"), "complete");
  EXPECT_EQ(Count("SELECT instances FROM series WHERE series_uid = '1.2.3'"), 3);
  EXPECT_EQ(Text("SELECT rule FROM series WHERE series_uid = '1.2.3'"), "ct");
  EXPECT_EQ(Count("SELECT first_seen_us FROM series"), 1767225601000000);

  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T1'"), "success");
  EXPECT_EQ(Text("SELECT stage FROM tasks WHERE task_id = 'T1'"), "success");
  EXPECT_EQ(Text("SELECT action FROM tasks WHERE task_id = 'T1'"), "route");
  EXPECT_EQ(Text("SELECT study_uid FROM tasks WHERE task_id = 'T1'"), "1.2");
  EXPECT_EQ(Text("SELECT accession_number FROM tasks WHERE task_id = 'T1'"), "A1");
  EXPECT_EQ(Count("SELECT attempts FROM tasks WHERE task_id = 'T1'"), 1);
  EXPECT_EQ(Count("SELECT completed_us FROM tasks WHERE task_id = 'T1'"), 1767225608000000);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_targets WHERE task_id = 'T1'"), 2);

  EXPECT_EQ(Counter("ferry_instances_received_total"), 3);
  EXPECT_EQ(Counter("ferry_bytes_received_total"), 3000);
  EXPECT_EQ(Counter("ferry_associations_total", "{result=\"released\"}"), 1);
  EXPECT_EQ(Counter("ferry_series_received_total"), 1);
  EXPECT_EQ(Counter("ferry_tasks_created_total", "{action=\"route\"}"), 1);
  EXPECT_EQ(Counter("ferry_tasks_finished_total", "{state=\"success\"}"), 1);
  EXPECT_EQ(Counter("ferry_dispatch_attempts_total", "{target=\"pacs\"}"), 1);
  EXPECT_EQ(Counter("ferry_dispatch_instances_total", "{target=\"pacs\"}"), 3);
  EXPECT_EQ(Counter("ferry_dispatch_bytes_total", "{target=\"pacs\"}"), 3000);
  EXPECT_EQ(Counter("ferry_journal_events_total", "{service=\"router\"}"), 3);
  EXPECT_EQ(Counter("ferry_journal_events_total", "{service=\"dispatcher\"}"), 3);
  // The dispatcher's journal sorts before the router's, so task.completed is loaded before
  // series.complete; the latency (8 s - 2 s) is still observed exactly once.
  EXPECT_EQ(Counter("ferry_series_latency_seconds_count"), 1);
  EXPECT_DOUBLE_EQ(Counter("ferry_series_latency_seconds_sum"), 6);
  EXPECT_EQ(Counter("ferry_series_latency_seconds_bucket", "{le=\"5\"}"), 0);
  EXPECT_EQ(Counter("ferry_series_latency_seconds_bucket", "{le=\"10\"}"), 1);
  EXPECT_EQ(Counter("ferry_series_latency_seconds_bucket", "{le=\"+Inf\"}"), 1);
}

TEST_F(BookkeeperTest, LatencyIsObservedOnceWhenTheRouterJournalIsLoadedFirst) {
  WriteRoutedSeries();
  // Load the router's journal alone first by hiding the dispatcher's.
  std::filesystem::rename(dir_ / "journal" / "dispatcher-1.jsonl", dir_ / "dispatcher-1.hidden");
  auto keeper = Make();
  keeper->RunOnce();
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T1'"), "queued");
  std::filesystem::rename(dir_ / "dispatcher-1.hidden", dir_ / "journal" / "zz-dispatcher.jsonl");
  keeper->RunOnce();
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T1'"), "success");
  EXPECT_EQ(Counter("ferry_series_latency_seconds_count"), 1);
  EXPECT_DOUBLE_EQ(Counter("ferry_series_latency_seconds_sum"), 6);
}

TEST_F(BookkeeperTest, AnOlderEventLoadedLaterDoesNotUndoTheTaskState) {
  // The dispatcher's journal is loaded before the router's: task.created (older) comes last.
  WriteRoutedSeries();
  auto keeper = Make();
  keeper->RunOnce();
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T1'"), "success");
  EXPECT_EQ(Count("SELECT created_us FROM tasks WHERE task_id = 'T1'"), 1767225605100000);
  EXPECT_EQ(Text("SELECT targets FROM tasks WHERE task_id = 'T1'"), "[\"pacs\",\"archive\"]");
}

TEST_F(BookkeeperTest, PartialLastLineWaitsUntilItIsComplete) {
  std::string line = Line("2026-01-01T00:00:00Z", "router", "service.started", "", "");
  Append("router-1.jsonl", line + line.substr(0, 20));
  auto keeper = Make();
  PassResult r = keeper->RunOnce();
  EXPECT_EQ(r.lines_loaded, 1);
  EXPECT_EQ(EventRows(), 1);
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(line.size()));
  EXPECT_EQ(r.bytes_behind, 20u);
  EXPECT_EQ(keeper->RunOnce().lines_loaded, 0);
  Append("router-1.jsonl", line.substr(20));
  EXPECT_EQ(keeper->RunOnce().lines_loaded, 1);
  EXPECT_EQ(EventRows(), 2);
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(2 * line.size()));
}

TEST_F(BookkeeperTest, RestartResumesAtTheOffsetWithoutDuplicates) {
  WriteRoutedSeries();
  Make()->RunOnce();
  EXPECT_EQ(EventRows(), 9);
  Append("router-1.jsonl", Line("2026-01-01T00:01:00Z", "router", "service.stopped", "", ""));
  auto second = Make();  // a new process: no memory of the first
  PassResult r = second->RunOnce();
  EXPECT_EQ(r.lines_loaded, 1);
  EXPECT_EQ(EventRows(), 10);
  EXPECT_EQ(Counter("ferry_journal_events_total", "{service=\"router\"}"), 4);
  EXPECT_EQ(Counter("ferry_tasks_created_total", "{action=\"route\"}"), 1);
}

TEST_F(BookkeeperTest, BatchesAreLimitedAndEachCommitsItsOffset) {
  std::string all;
  for (int i = 0; i < 5; ++i) {
    all += Line("2026-01-01T00:00:0" + std::to_string(i) + "Z", "router", "router.tick", "", "");
  }
  Append("router-1.jsonl", all);
  auto keeper = Make(2);
  PassResult r = keeper->RunOnce();
  EXPECT_EQ(r.lines_loaded, 2);
  EXPECT_TRUE(r.more);
  EXPECT_EQ(EventRows(), 2);
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(all.size() * 2 / 5));
  keeper->RunOnce();
  r = keeper->RunOnce();
  EXPECT_EQ(r.lines_loaded, 1);
  EXPECT_FALSE(r.more);
  EXPECT_EQ(EventRows(), 5);
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(all.size()));
}

TEST_F(BookkeeperTest, AFailedTransactionLeavesOffsetAndRowsUnchanged) {
  WriteRoutedSeries();
  auto keeper = Make();
  fail_commit_ = true;
  PassResult r = keeper->RunOnce();
  EXPECT_TRUE(r.database_down);
  ASSERT_TRUE(r.retry_at);
  EXPECT_GT(r.bytes_behind, 0u);
  EXPECT_EQ(EventRows(), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM tasks"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM counters"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM journal_offsets"), 0);

  // A statement failing half way through a batch: the same.
  fail_commit_ = false;
  fail_execute_after_ = 4;
  clock_.Advance(std::chrono::seconds(1));
  r = keeper->RunOnce();
  EXPECT_TRUE(r.database_down);
  EXPECT_EQ(EventRows(), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM series"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM journal_offsets"), 0);

  fail_execute_after_ = -1;
  clock_.Advance(std::chrono::seconds(2));
  r = keeper->RunOnce();
  EXPECT_FALSE(r.database_down);
  EXPECT_EQ(r.lines_loaded, 9);
  EXPECT_EQ(EventRows(), 9);
  EXPECT_EQ(Counter("ferry_series_received_total"), 1);
  EXPECT_EQ(Counter("ferry_tasks_finished_total", "{state=\"success\"}"), 1);
}

TEST_F(BookkeeperTest, AnOffsetMovedByAnotherBookkeeperRollsTheBatchBack) {
  std::string line = Line("2026-01-01T00:00:00Z", "router", "router.tick", "", "");
  Append("router-1.jsonl", line);
  auto keeper = Make();
  keeper->RunOnce();
  Append("router-1.jsonl", line + line);
  FailingDatabase::race_ = true;
  PassResult r = keeper->RunOnce();
  EXPECT_FALSE(FailingDatabase::race_);
  EXPECT_FALSE(r.database_down);  // a lost race is not an outage
  EXPECT_EQ(r.lines_loaded, 0);
  EXPECT_EQ(EventRows(), 1);  // the batch was rolled back, sabotage included
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(line.size()));
  r = keeper->RunOnce();
  EXPECT_EQ(r.lines_loaded, 2);
  EXPECT_EQ(EventRows(), 3);
  EXPECT_EQ(Offset("router-1.jsonl"), static_cast<int64_t>(3 * line.size()));
}

TEST_F(BookkeeperTest, BacksOffWhileTheDatabaseIsDown) {
  Append("router-1.jsonl", Line("2026-01-01T00:00:00Z", "router", "service.started", "", ""));
  fail_open_ = true;
  auto keeper = Make();
  PassResult r = keeper->RunOnce();
  EXPECT_TRUE(r.database_down);
  EXPECT_EQ(opens_, 1);
  ASSERT_TRUE(r.retry_at);
  EXPECT_EQ(*r.retry_at - clock_.SteadyNow(), std::chrono::milliseconds(500));
  keeper->RunOnce();  // before retry_at: no attempt
  EXPECT_EQ(opens_, 1);
  // Doubling up to reconnect_max (8 s): 0.5, 1, 2, 4, 8, 8.
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(*r.retry_at - clock_.SteadyNow());
    r = keeper->RunOnce();
    delays.push_back(
        std::chrono::duration_cast<std::chrono::milliseconds>(*r.retry_at - clock_.SteadyNow())
            .count());
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1000, 2000, 4000, 8000, 8000}));
  EXPECT_EQ(opens_, 6);
  EXPECT_EQ(EventRows(), 0);
  fail_open_ = false;
  clock_.Advance(std::chrono::seconds(8));
  r = keeper->RunOnce();
  EXPECT_FALSE(r.database_down);
  EXPECT_EQ(EventRows(), 1);
}

TEST_F(BookkeeperTest, MapsAuditNotificationCleanerAndFailureEvents) {
  Append("web-1.jsonl", Line("2026-01-01T00:00:00Z", "web", "audit.login", "", "",
                             {{"actor", "alice"}, {"address", "10.0.0.1"}, {"object", "session"}}));
  Append("notifier-1.jsonl",
         Line("2026-01-01T00:00:01Z", "notifier", "notify.sent", "", "T2", {{"channel", "email"}}) +
             Line("2026-01-01T00:00:02Z", "notifier", "notify.failed", "", "T2",
                  {{"channel", "webhook"}}));
  Append("cleaner-1.jsonl", Line("2026-01-01T00:00:03Z", "cleaner", "cleaner.deleted", "", "T3",
                                 {{"reason", "retention"}}));
  Append("receiver-1.jsonl",
         Line("2026-01-01T00:00:04Z", "receiver", "association.rejected", "", "") +
             Line("2026-01-01T00:00:05Z", "receiver", "instance.rejected", "9.9", ""));
  Append("router-1.jsonl",
         Line("2026-01-01T00:00:06Z", "router", "task.created", "9.8", "T4",
              {{"stage", "outgoing"}, {"action", "route"}, {"targets", {"pacs"}}}) +
             Line("2026-01-01T00:00:06.5Z", "router", "series.discarded", "9.7", "T5",
                  {{"stage", "discard"}, {"action", "discard"}}) +
             Line("2026-01-01T00:00:07Z", "router", "task.created", "9.8", "T6",
                  {{"stage", "outgoing"}, {"action", "route"}, {"parent_task", "T4"}}) +
             Line("2026-01-01T00:00:07Z", "router", "task.follow_up", "9.8", "T6",
                  {{"parent_task", "T4"}}));
  Append("router-2.jsonl", Line("2026-01-01T00:00:08Z", "dispatcher", "dispatch.begin", "9.8", "T4",
                                {{"target", "pacs"}, {"attempt", 1}}) +
                               Line("2026-01-01T00:00:09Z", "dispatcher", "dispatch.failed", "9.8",
                                    "T4", {{"target", "pacs"}, {"reason", "refused"}}) +
                               Line("2026-01-01T00:00:10Z", "dispatcher",
                                    "dispatch.retry_scheduled", "9.8", "T4", {{"attempt", 1}}) +
                               Line("2026-01-01T00:00:11Z", "dispatcher", "dispatch.begin", "9.8",
                                    "T4", {{"target", "pacs"}, {"attempt", 2}}) +
                               Line("2026-01-01T00:00:12Z", "dispatcher", "task.failed", "9.8",
                                    "T4", {{"attempt", 2}, {"reason", "gave up"}}));
  std::filesystem::create_directories(dir_ / "error" / "T4");
  std::ofstream(dir_ / "error" / "T4" / "task.json") << "{\"id\": \"T4\"}";
  Make()->RunOnce();

  EXPECT_EQ(Text("SELECT actor FROM audit"), "alice");
  EXPECT_EQ(Text("SELECT action FROM audit"), "login");
  EXPECT_EQ(Text("SELECT address FROM audit"), "10.0.0.1");
  EXPECT_EQ(Text("SELECT object FROM audit"), "session");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM system_events WHERE event = 'audit.login'"), 1);
  EXPECT_EQ(Counter("ferry_notifications_total", "{channel=\"email\",result=\"sent\"}"), 1);
  EXPECT_EQ(Counter("ferry_notifications_total", "{channel=\"webhook\",result=\"failed\"}"), 1);
  EXPECT_EQ(Counter("ferry_cleaner_deleted_total", "{reason=\"retention\"}"), 1);
  EXPECT_EQ(Counter("ferry_associations_rejected_total"), 1);
  EXPECT_EQ(Counter("ferry_instances_rejected_total"), 1);
  EXPECT_EQ(Counter("ferry_dispatch_failures_total", "{target=\"pacs\"}"), 1);
  EXPECT_EQ(Counter("ferry_dispatch_attempts_total", "{target=\"pacs\"}"), 2);
  EXPECT_EQ(Counter("ferry_tasks_finished_total", "{state=\"error\"}"), 1);
  EXPECT_EQ(Counter("ferry_tasks_created_total", "{action=\"discard\"}"), 1);
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T4'"), "error");
  EXPECT_EQ(Text("SELECT last_error FROM tasks WHERE task_id = 'T4'"), "gave up");
  EXPECT_EQ(Count("SELECT attempts FROM tasks WHERE task_id = 'T4'"), 2);
  EXPECT_EQ(Text("SELECT task_json FROM tasks WHERE task_id = 'T4'"), "{\"id\":\"T4\"}");
  EXPECT_EQ(Text("SELECT parent_id FROM tasks WHERE task_id = 'T6'"), "T4");
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'T5'"), "discarded");
  EXPECT_EQ(Text("SELECT state FROM series WHERE series_uid = '9.7'"), "discarded");
}

TEST_F(BookkeeperTest, StudyTasksRetriesRecoveriesAndFollowUps) {
  std::filesystem::create_directories(dir_ / "outgoing" / "S1");
  std::ofstream(dir_ / "outgoing" / "S1" / "task.json") << R"({"info": {"action": "route"}})";
  Append(
      "router-1.jsonl",
      Line("2026-01-01T00:00:00Z", "router", "series.complete", "5.5", "", {{"instances", 2}}) +
          Line("2026-01-01T00:00:01Z", "router", "study.complete", "", "S1",
               {{"study_uid", "7.7"}, {"rule", "study"}, {"stage", "outgoing"}}) +
          Line("2026-01-01T00:00:02Z", "router", "study.discarded", "", "S2",
               {{"study_uid", "7.8"}, {"rule", "study"}, {"stage", "discard"}}) +
          // A late arrival: the series completes a second time with more instances.
          Line("2026-01-01T00:01:00Z", "router", "series.complete", "5.5", "", {{"instances", 1}}));
  Append("router-2.jsonl",
         Line("2026-01-01T00:00:03Z", "dispatcher", "task.failed", "", "S1",
              {{"attempt", 3}, {"reason", "gave up"}}) +
             Line("2026-01-01T00:00:04Z", "ferry", "task.retry_requested", "", "S1") +
             Line("2026-01-01T00:00:05Z", "dispatcher", "dispatch.begin", "", "S1",
                  {{"target", "pacs"}, {"attempt", 1}}) +
             Line("2026-01-01T00:00:06Z", "dispatcher", "task.recovered", "", "S1"));
  Make()->RunOnce();
  EXPECT_EQ(Count("SELECT instances FROM series WHERE series_uid = '5.5'"), 3);
  EXPECT_EQ(Count("SELECT complete_us FROM series WHERE series_uid = '5.5'"), 1767225660000000);
  EXPECT_EQ(Text("SELECT action FROM tasks WHERE task_id = 'S1'"), "route");
  EXPECT_EQ(Text("SELECT study_uid FROM tasks WHERE task_id = 'S1'"), "7.7");
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'S1'"), "queued");
  EXPECT_EQ(Count("SELECT attempts FROM tasks WHERE task_id = 'S1'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM tasks WHERE task_id = 'S1' AND completed_us IS NULL"), 1);
  EXPECT_EQ(Text("SELECT state FROM tasks WHERE task_id = 'S2'"), "discarded");
  EXPECT_EQ(Text("SELECT action FROM tasks WHERE task_id = 'S2'"), "discard");
  EXPECT_EQ(Counter("ferry_tasks_created_total", "{action=\"route\"}"), 1);
  EXPECT_EQ(Counter("ferry_tasks_created_total", "{action=\"discard\"}"), 1);
  EXPECT_EQ(Counter("ferry_tasks_finished_total", "{state=\"error\"}"), 1);
}

TEST_F(BookkeeperTest, LinesThatAreNotJsonAreSkippedButCounted) {
  Append("router-1.jsonl", "garbage\n" + Line("2026-01-01T00:00:00Z", "router", "x.y", "", ""));
  PassResult r = Make()->RunOnce();
  EXPECT_EQ(r.lines_loaded, 2);
  EXPECT_EQ(EventRows(), 1);
  EXPECT_EQ(r.bytes_behind, 0u);
}

}  // namespace
}  // namespace ferry::bookkeeper
