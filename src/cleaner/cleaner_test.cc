#include "cleaner/cleaner.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace ferry {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
namespace stdfs = std::filesystem;

// Disk usage of a pretend file system of `capacity` bytes that holds the data folder (measured
// for real, so deletions show) plus `other` bytes.
class FakeDiskUsage : public DiskUsage {
 public:
  FakeDiskUsage(std::string root, uint64_t capacity)
      : root_(std::move(root)), capacity_(capacity) {}
  Result<DiskUsageInfo> Get(const std::string&) override {
    ++calls;
    if (fail) {
      return Status::IoError("statvfs failed");
    }
    DiskUsageInfo info;
    info.used_bytes = other + TreeBytes(DefaultFileSystem(), root_);
    info.available_bytes = info.used_bytes < capacity_ ? capacity_ - info.used_bytes : 0;
    return info;
  }
  uint64_t other = 0;
  bool fail = false;
  int calls = 0;

 private:
  std::string root_;
  uint64_t capacity_;
};

// 2026-01-01T00:00:00Z; the tests run in UTC, so this is also 00:00 local time.
const WallTime kT0{FakeClock::kDefaultWallSinceEpoch};

class CleanerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
    root_ = stdfs::temp_directory_path() /
            ("ferry-cleaner-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    stdfs::remove_all(root_);
    spool_ = std::make_unique<Spool>(root_, "cleaner", DefaultFileSystem());
    ASSERT_TRUE(spool_->Init().ok());
    auto journal =
        Journal::Open(spool_->StagePath(kJournal), "cleaner", &clock_, DefaultFileSystem());
    ASSERT_TRUE(journal.has_value());
    journal_ = std::move(*journal);
    disk_ = std::make_unique<FakeDiskUsage>(root_, 1000000000);
    // Off-peak 22:00-06:00, retention 1 h, error retention 1 d.
    options_.retention_s = 3600;
    options_.error_retention_s = 86400;
  }

  void TearDown() override { stdfs::remove_all(root_); }

  Cleaner MakeCleaner() {
    return Cleaner(options_, spool_.get(), journal_.get(), &clock_, disk_.get());
  }

  // A task folder like the router and dispatcher publish: task.json and instances of `bytes`
  // bytes each; its folder's modification time is `finished`.
  std::string MakeTask(std::string_view stage, const std::string& id, WallTime finished,
                       int instances = 1, size_t bytes = 100, std::string completed_at = "") {
    std::string dir = JoinPath(spool_->StagePath(stage), id);
    stdfs::create_directories(dir);
    nlohmann::json task = {{"id", id}, {"info", {{"uid", "1.2.3"}}}, {"ferry", {{"stage", stage}}}};
    if (!completed_at.empty()) {
      task["ferry"]["dispatch"]["completed_at"] = completed_at;
    }
    std::ofstream(JoinPath(dir, "task.json")) << task.dump();
    for (int i = 0; i < instances; ++i) {
      std::ofstream(JoinPath(dir, "1.2.3." + std::to_string(i) + ".dcm"))
          << std::string(bytes, 'x');
    }
    SetMtime(dir, finished);
    return dir;
  }

  static void SetMtime(const std::string& path, WallTime t) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ns / 1000000000;
    times[0].tv_nsec = times[1].tv_nsec = ns % 1000000000;
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }

  bool Exists(std::string_view stage, const std::string& id) {
    return stdfs::exists(JoinPath(spool_->StagePath(stage), id));
  }

  std::vector<nlohmann::json> Events(const std::string& type) {
    auto lines = ReadJournalFile(journal_->path(), DefaultFileSystem());
    std::vector<nlohmann::json> out;
    for (const auto& e : lines ? *lines : std::vector<nlohmann::json>{}) {
      if (e.value("event", "") == type) {
        out.push_back(e);
      }
    }
    return out;
  }

  std::vector<std::string> DeletedIds() {
    std::vector<std::string> ids;
    for (const auto& e : Events("cleaner.deleted")) {
      ids.push_back(e.value("task_id", ""));
    }
    return ids;
  }

  std::string root_;
  FakeClock clock_{kT0};
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<FakeDiskUsage> disk_;
  CleanerOptions options_;
};

TEST(DiskUsageInfoTest, BytesAboveIsWhatMustBeFreed) {
  DiskUsageInfo info{950, 50};  // 95%
  EXPECT_DOUBLE_EQ(info.Percent(), 95.0);
  EXPECT_EQ(info.BytesAbove(80), 151u);  // 799 used is strictly below 80%
  EXPECT_EQ(info.BytesAbove(96), 0u);
  EXPECT_EQ((DiskUsageInfo{0, 0}).Percent(), 0.0);
}

TEST_F(CleanerTest, NothingIsDeletedOutsideTheWindow) {
  clock_.SetWall(kT0 + hours(12));  // noon: outside 22:00-06:00
  MakeTask(kSuccess, "s-old", kT0 - hours(100));
  MakeTask(kDiscard, "d-old", kT0 - hours(100));
  MakeTask(kError, "e-old", kT0 - hours(1000));
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value()) << pass.error().ToString();
  EXPECT_FALSE(pass->in_window);
  EXPECT_EQ(pass->retention_deleted, 0);
  EXPECT_TRUE(Exists(kSuccess, "s-old"));
  EXPECT_TRUE(Exists(kDiscard, "d-old"));
  EXPECT_TRUE(Exists(kError, "e-old"));
  EXPECT_TRUE(DeletedIds().empty());
}

TEST_F(CleanerTest, InTheWindowOnlyTasksPastRetentionGoOldestFirst) {
  clock_.SetWall(kT0 + hours(23));  // 23:00
  WallTime now = clock_.Now();
  MakeTask(kSuccess, "s-young", now - minutes(59));
  MakeTask(kSuccess, "s-old", now - hours(2));
  MakeTask(kDiscard, "d-older", now - hours(3));
  MakeTask(kSuccess, "s-oldest", now - hours(5));
  MakeTask(kDiscard, "d-young", now - minutes(10));
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value()) << pass.error().ToString();
  EXPECT_TRUE(pass->in_window);
  EXPECT_EQ(pass->retention_deleted, 3);
  EXPECT_FALSE(pass->emergency);
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"s-oldest", "d-older", "s-old"}));
  EXPECT_TRUE(Exists(kSuccess, "s-young"));
  EXPECT_TRUE(Exists(kDiscard, "d-young"));
  EXPECT_FALSE(Exists(kSuccess, "s-old"));

  auto events = Events("cleaner.deleted");
  ASSERT_EQ(events.size(), 3u);
  const auto& d = events[0]["details"];
  EXPECT_EQ(d["stage"], "success");
  EXPECT_EQ(d["reason"], "retention");
  EXPECT_EQ(d["age_s"], 5 * 3600);
  EXPECT_GT(d["bytes"].get<uint64_t>(), 100u);  // the instance and task.json
  EXPECT_EQ(events[1]["details"]["stage"], "discard");
  // The deletion area is empty again.
  EXPECT_TRUE(stdfs::is_empty(JoinPath(spool_->StagePath(kTmp), "cleaner")));

  // A second pass finds nothing more to do.
  pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->retention_deleted, 0);
}

TEST_F(CleanerTest, ErrorTasksHaveTheirOwnRetention) {
  clock_.SetWall(kT0 + hours(2));  // 02:00, inside the wrapped window
  WallTime now = clock_.Now();
  MakeTask(kError, "e-2h", now - hours(2));    // past success retention, not error retention
  MakeTask(kError, "e-25h", now - hours(25));  // past error retention
  MakeTask(kSuccess, "s-2h", now - hours(2));
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"e-25h", "s-2h"}));
  EXPECT_TRUE(Exists(kError, "e-2h"));
  EXPECT_FALSE(Exists(kError, "e-25h"));
}

TEST_F(CleanerTest, WindowWrappingMidnightOpensAndClosesOnTime) {
  options_.offpeak_start_min = 23 * 60 + 30;  // 23:30-00:30
  options_.offpeak_end_min = 30;
  MakeTask(kSuccess, "a", kT0 - hours(50));
  MakeTask(kSuccess, "b", kT0 - hours(49));
  Cleaner cleaner = MakeCleaner();

  clock_.SetWall(kT0 - minutes(31));  // 23:29
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_TRUE(Exists(kSuccess, "a"));

  clock_.SetWall(kT0 + minutes(30));  // 00:30: closed again
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_FALSE(pass->in_window);
  EXPECT_TRUE(Exists(kSuccess, "a"));

  clock_.SetWall(kT0 + minutes(29));  // 00:29, after midnight: open
  pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_TRUE(pass->in_window);
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(CleanerTest, CompletedAtInTaskJsonWinsOverTheFolderTime) {
  clock_.SetWall(kT0 + hours(23));
  WallTime now = clock_.Now();
  // Folder touched recently (e.g. copied), but the dispatcher recorded the completion 2 h ago.
  MakeTask(kSuccess, "copied", now - minutes(1), 1, 100, FormatIso8601(now - hours(2)));
  // Completed 10 minutes ago although the folder looks old.
  MakeTask(kSuccess, "recent", now - hours(10), 1, 100, FormatIso8601(now - minutes(10)));
  Cleaner cleaner = MakeCleaner();
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"copied"}));
  EXPECT_TRUE(Exists(kSuccess, "recent"));
}

TEST_F(CleanerTest, EmergencyDeletesOldestFinishedUntilBelowLowWater) {
  clock_.SetWall(kT0 + hours(12));  // outside the window: emergency ignores it
  WallTime now = clock_.Now();
  // Unfinished work: never touched, even though it is the oldest.
  MakeTask(kOutgoing, "out", now - hours(500), 10, 1000);
  MakeTask(kProcessing, "proc", now - hours(500), 10, 1000);
  stdfs::create_directories(JoinPath(spool_->StagePath(kIncoming), "1.2.3"));
  std::ofstream(JoinPath(JoinPath(spool_->StagePath(kIncoming), "1.2.3"), "a.dcm"))
      << std::string(10000, 'x');
  // Finished: 6 x ~10 KB, none past its retention.
  MakeTask(kSuccess, "s1", now - minutes(50), 10, 1000);
  MakeTask(kDiscard, "d2", now - minutes(40), 10, 1000);
  MakeTask(kSuccess, "s3", now - minutes(30), 10, 1000);
  MakeTask(kSuccess, "s4", now - minutes(20), 10, 1000);
  MakeTask(kError, "e0", now - minutes(55), 10, 1000);  // oldest of all, but error/ goes last
  MakeTask(kDiscard, "d5", now - minutes(10), 10, 1000);
  // ~90.4 KB used of 95 KB: 95% > 90%. Below 80% (76 KB) needs ~15 KB freed: two tasks.
  disk_ = std::make_unique<FakeDiskUsage>(root_, 95000);
  uint64_t used = disk_->Get(root_)->used_bytes;
  ASSERT_GT(used * 100, 90u * 95000) << used;
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value()) << pass.error().ToString();
  EXPECT_FALSE(pass->in_window);
  EXPECT_TRUE(pass->emergency);
  EXPECT_FALSE(pass->exhausted);
  EXPECT_EQ(pass->emergency_deleted, 2);
  EXPECT_LT(pass->usage_after_percent, 80.0);
  EXPECT_GT(pass->usage_before_percent, 90.0);
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"s1", "d2"}));
  for (const auto& e : Events("cleaner.deleted")) {
    EXPECT_EQ(e["details"]["reason"], "emergency");
    EXPECT_GT(e["details"]["bytes"].get<uint64_t>(), 10000u);
  }
  EXPECT_TRUE(Exists(kSuccess, "s3"));
  EXPECT_TRUE(Exists(kError, "e0"));
  EXPECT_TRUE(Exists(kOutgoing, "out"));
  EXPECT_TRUE(Exists(kProcessing, "proc"));
  EXPECT_TRUE(Exists(kIncoming, "1.2.3"));

  // Below the threshold now: the next pass leaves everything alone.
  pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_FALSE(pass->emergency);
  EXPECT_EQ(DeletedIds().size(), 2u);
}

TEST_F(CleanerTest, EmergencyTakesErrorTasksOnlyAfterTheOthers) {
  clock_.SetWall(kT0 + hours(12));
  WallTime now = clock_.Now();
  MakeTask(kError, "e1", now - hours(3), 10, 1000);
  MakeTask(kSuccess, "s1", now - hours(1), 1, 1000);
  MakeTask(kError, "e2", now - hours(2), 10, 1000);
  // ~21.2 KB of 23 KB: 92%. Without s1 still 87.5%: the oldest error task must go too.
  disk_ = std::make_unique<FakeDiskUsage>(root_, 23000);
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"s1", "e1"}));
  EXPECT_TRUE(Exists(kError, "e2"));
  EXPECT_LT(pass->usage_after_percent, 80.0);
}

TEST_F(CleanerTest, EmergencyOutOfFinishedTasksSaysWhatFillsTheDisk) {
  clock_.SetWall(kT0 + hours(12));
  WallTime now = clock_.Now();
  MakeTask(kOutgoing, "stuck", now - hours(1), 10, 5000);  // 50 KB waiting for a target
  MakeTask(kSuccess, "s1", now - hours(1), 1, 1000);
  MakeTask(kError, "e1", now - hours(1), 1, 1000);
  disk_ = std::make_unique<FakeDiskUsage>(root_, 54000);
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_TRUE(pass->emergency);
  EXPECT_TRUE(pass->exhausted);
  EXPECT_EQ(pass->emergency_deleted, 2);
  EXPECT_TRUE(Exists(kOutgoing, "stuck"));
  auto full = Events("cleaner.disk_full");
  ASSERT_EQ(full.size(), 1u);
  EXPECT_GT(full[0]["details"]["bytes"]["outgoing"].get<uint64_t>(), 50000u);
  EXPECT_EQ(full[0]["details"]["bytes"]["incoming"], 0);

  // Repeated at most every 15 minutes while it lasts.
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_EQ(Events("cleaner.disk_full").size(), 1u);
  clock_.Advance(minutes(16));
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_EQ(Events("cleaner.disk_full").size(), 2u);
}

TEST_F(CleanerTest, UnreadableDiskUsageDisablesOnlyTheEmergency) {
  clock_.SetWall(kT0 + hours(23));
  MakeTask(kSuccess, "old", clock_.Now() - hours(2));
  disk_->fail = true;
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->retention_deleted, 1);
  EXPECT_FALSE(pass->emergency);
  EXPECT_EQ(pass->usage_before_percent, -1);
}

TEST_F(CleanerTest, LeftoversInTmpCleanerAreRemovedAtStart) {
  std::string work = JoinPath(spool_->StagePath(kTmp), "cleaner");
  std::string half = JoinPath(work, "success-abc-1");
  stdfs::create_directories(JoinPath(half, "sub"));
  std::ofstream(JoinPath(half, "x.dcm")) << "data";
  std::ofstream(JoinPath(work, "stray-file")) << "data";
  // Other services' staging is not the cleaner's.
  std::string other = JoinPath(JoinPath(spool_->StagePath(kTmp), "router"), "claim-1");
  stdfs::create_directories(other);
  Cleaner cleaner = MakeCleaner();
  auto removed = cleaner.Recover();
  ASSERT_TRUE(removed.has_value()) << removed.error().ToString();
  EXPECT_EQ(*removed, 2);
  EXPECT_TRUE(stdfs::is_empty(work));
  EXPECT_TRUE(stdfs::exists(other));
}

TEST_F(CleanerTest, ATaskThatCameBackIsAgedAgain) {
  options_.offpeak_start_min = 22 * 60;
  clock_.SetWall(kT0 + hours(12));
  std::string dir = MakeTask(kError, "retried", kT0 - hours(48));
  Cleaner cleaner = MakeCleaner();
  ASSERT_TRUE(cleaner.RunOnce().has_value());  // outside the window; its age is now known
  // `ferry task retry` sent it out again and it failed again just now.
  SetMtime(dir, clock_.Now());
  clock_.SetWall(kT0 + hours(23));
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_TRUE(Exists(kError, "retried"));
  clock_.SetWall(kT0 + hours(24 + 23));  // the next night: 35 h after the failure
  ASSERT_TRUE(cleaner.RunOnce().has_value());
  EXPECT_FALSE(Exists(kError, "retried"));
}

TEST_F(CleanerTest, StopRequestEndsThePassBetweenDeletions) {
  clock_.SetWall(kT0 + hours(23));
  for (int i = 0; i < 5; ++i) {
    MakeTask(kSuccess, "t" + std::to_string(i), clock_.Now() - hours(10 - i));
  }
  Cleaner cleaner = MakeCleaner();
  int asked = 0;
  cleaner.set_stop_requested([&] { return ++asked > 2; });
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->retention_deleted, 2);
  EXPECT_EQ(DeletedIds(), (std::vector<std::string>{"t0", "t1"}));
}

TEST_F(CleanerTest, NonTaskEntriesAreIgnored) {
  clock_.SetWall(kT0 + hours(23));
  std::string stray = JoinPath(spool_->StagePath(kSuccess), "README");
  std::ofstream(stray) << "not a task";
  SetMtime(stray, kT0 - hours(100));
  Cleaner cleaner = MakeCleaner();
  auto pass = cleaner.RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->retention_deleted, 0);
  EXPECT_TRUE(stdfs::exists(stray));
}

}  // namespace
}  // namespace ferry
