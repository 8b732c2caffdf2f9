#include "spool/intake_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace ferry {
namespace {

namespace stdfs = std::filesystem;

class IntakeLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-intake-XXXXXX";
    root_ = mkdtemp(tmpl);
    stdfs::create_directories(root_ + "/staged");
  }
  void TearDown() override { stdfs::remove_all(root_); }

  IntakeLog::Options Opts(uint64_t capacity_mb = 8) {
    IntakeLog::Options o;
    o.spool_root = root_;
    o.capacity_bytes = capacity_mb << 20;
    o.checkpoint_interval = std::chrono::hours(1);  // checkpoints only when a test asks
    o.boot_id = "boot-a";
    return o;
  }

  std::unique_ptr<IntakeLog> OpenLog(const IntakeLog::Options& o, uint64_t last_lsn = 0) {
    auto log = IntakeLog::Open(o, DefaultFileSystem(), last_lsn);
    EXPECT_TRUE(log.has_value()) << (log ? "" : log.error().ToString());
    return log ? std::move(log).value() : nullptr;
  }

  // A staged file of `size` pseudo-random bytes; returns its path.
  std::string Stage(const std::string& name, size_t size, std::string* content = nullptr) {
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(name)));
    std::string data(size, '\0');
    for (auto& c : data) {
      c = static_cast<char>(rng());
    }
    std::string path = root_ + "/staged/" + name;
    std::ofstream(path, std::ios::binary) << data;
    if (content) {
      *content = data;
    }
    return path;
  }

  // What a power cut would leave of intake/ now: every record Append() returned is flushed,
  // so a copy of the files is such a state.
  void SnapshotIntake() {
    stdfs::remove_all(root_ + "/snapshot");
    stdfs::create_directories(root_ + "/snapshot/intake");
    for (const auto& entry : stdfs::directory_iterator(root_ + "/intake")) {
      std::error_code ignored;  // the checkpointer's temporary file may vanish meanwhile
      stdfs::copy_file(entry.path(), root_ + "/snapshot/intake/" + entry.path().filename().string(),
                       ignored);
    }
  }
  std::string snapshot_root() const { return root_ + "/snapshot"; }

  IntakeLog::ScanResult ScanOf(const std::string& root) {
    auto scan = IntakeLog::Scan(DefaultFileSystem(), root);
    EXPECT_TRUE(scan.has_value()) << (scan ? "" : scan.error().ToString());
    return scan ? *scan : IntakeLog::ScanResult{};
  }

  std::string root_;
};

TEST_F(IntakeLogTest, RecordsAboveTheCheckpointComeBackInOrderWithTheirBytes) {
  auto log = OpenLog(Opts());
  ASSERT_NE(log, nullptr);
  std::vector<std::string> contents(3);
  for (int i = 0; i < 3; ++i) {
    auto lsn = log->Append("1.2.3", "1.2.3." + std::to_string(i), "127.0.0.1\\SCU\\FERRY",
                           Stage("f" + std::to_string(i), 1000 + 5000 * i, &contents[i]));
    ASSERT_TRUE(lsn.has_value()) << lsn.error().ToString();
    EXPECT_EQ(*lsn, static_cast<uint64_t>(i + 1));
  }
  SnapshotIntake();
  auto scan = ScanOf(snapshot_root());
  EXPECT_EQ(scan.checkpoint_lsn, 0u);
  EXPECT_EQ(scan.max_lsn, 3u);
  ASSERT_EQ(scan.after_checkpoint.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& r = scan.after_checkpoint[i];
    EXPECT_EQ(r.lsn, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(r.series_uid, "1.2.3");
    EXPECT_EQ(r.sop_uid, "1.2.3." + std::to_string(i));
    EXPECT_EQ(r.boot_id, "boot-a");
    EXPECT_EQ(r.context, "127.0.0.1\\SCU\\FERRY");
    auto payload = IntakeLog::ReadPayload(r);
    ASSERT_TRUE(payload.has_value());
    EXPECT_EQ(*payload, contents[i]);
  }
}

TEST_F(IntakeLogTest, ACheckpointCoversOnlyPublishedRecords) {
  auto log = OpenLog(Opts());
  ASSERT_NE(log, nullptr);
  auto a = log->Append("s", "a", "", Stage("a", 100));
  auto b = log->Append("s", "b", "", Stage("b", 100));
  auto c = log->Append("s", "c", "", Stage("c", 100));
  ASSERT_TRUE(a && b && c);
  log->Published(*a);
  log->Published(*c);  // b is still being published: the checkpoint stops before it
  ASSERT_TRUE(log->Checkpoint().ok());
  SnapshotIntake();
  auto scan = ScanOf(snapshot_root());
  EXPECT_EQ(scan.checkpoint_lsn, 1u);
  ASSERT_EQ(scan.after_checkpoint.size(), 2u);
  EXPECT_EQ(scan.after_checkpoint[0].sop_uid, "b");
  EXPECT_EQ(scan.after_checkpoint[1].sop_uid, "c");

  log->Published(*b);
  ASSERT_TRUE(log->Checkpoint().ok());
  SnapshotIntake();
  scan = ScanOf(snapshot_root());
  EXPECT_EQ(scan.checkpoint_lsn, 3u);
  EXPECT_TRUE(scan.after_checkpoint.empty());
}

TEST_F(IntakeLogTest, ATornRecordEndsItsSegment) {
  auto log = OpenLog(Opts());
  ASSERT_NE(log, nullptr);
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(log->Append("s", name, "", Stage(name, 20000)).has_value());
  }
  SnapshotIntake();
  auto scan = ScanOf(snapshot_root());
  ASSERT_EQ(scan.after_checkpoint.size(), 3u);
  // Record b was not completely on disk: it and everything after it in its segment (which
  // could not have been acknowledged before it) are not records.
  const IntakeLog::Record b = scan.after_checkpoint[1];
  {
    std::fstream f(b.segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(b.payload_offset + 777));
    f.put('\x5a');
  }
  scan = ScanOf(snapshot_root());
  ASSERT_EQ(scan.after_checkpoint.size(), 1u);
  EXPECT_EQ(scan.after_checkpoint[0].sop_uid, "a");
  // A header that is half old bytes reads as the end, too.
  {
    std::fstream f(b.segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(scan.after_checkpoint[0].payload_offset - 512 + 20));
    f.put('\x01');
  }
  scan = ScanOf(snapshot_root());
  EXPECT_TRUE(scan.after_checkpoint.empty());
}

TEST_F(IntakeLogTest, SegmentsAreReusedAfterACheckpointAndOldRecordsStayHidden) {
  auto o = Opts(8);  // four segments of 2 MiB
  o.checkpoint_interval = std::chrono::milliseconds(5);
  auto log = OpenLog(o);
  ASSERT_NE(log, nullptr);
  const int n = 80;  // 80 x 300 kB = 24 MB through an 8 MiB log
  std::string last_content;
  for (int i = 0; i < n; ++i) {
    std::string name = "i" + std::to_string(i);
    auto lsn = log->Append("s", name, "", Stage(name, 300000, &last_content));
    ASSERT_TRUE(lsn.has_value()) << i << ": " << lsn.error().ToString();
    log->Published(*lsn);
  }
  auto stats = log->stats();
  EXPECT_LE(stats.segments, 4u);
  EXPECT_GE(stats.checkpoints, 1u);
  EXPECT_EQ(stats.appended, static_cast<uint64_t>(n));
  // One more record, not yet checkpointed, in a reused segment full of older records.
  auto extra = log->Append("s", "extra", "", Stage("extra", 1000, &last_content));
  ASSERT_TRUE(extra.has_value());
  SnapshotIntake();
  auto scan = ScanOf(snapshot_root());
  EXPECT_EQ(scan.max_lsn, static_cast<uint64_t>(n + 1));
  ASSERT_FALSE(scan.after_checkpoint.empty());
  for (const auto& r : scan.after_checkpoint) {
    EXPECT_GT(r.lsn, scan.checkpoint_lsn);
  }
  EXPECT_EQ(scan.after_checkpoint.back().sop_uid, "extra");
  auto payload = IntakeLog::ReadPayload(scan.after_checkpoint.back());
  ASSERT_TRUE(payload.has_value());
  EXPECT_EQ(*payload, last_content);
}

TEST_F(IntakeLogTest, AFullLogRefusesAfterItsWaitAndATooLargeInstanceAtOnce) {
  auto o = Opts(8);
  o.max_wait = std::chrono::milliseconds(100);
  auto log = OpenLog(o);
  ASSERT_NE(log, nullptr);
  auto big = log->Append("s", "big", "", Stage("big", log->max_payload() + 1));
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code(), Status::Code::kUnavailable);
  // Nothing is published, so no checkpoint can free a segment.
  Status last;
  int accepted = 0;
  for (int i = 0; i < 100 && last.ok(); ++i) {
    auto lsn = log->Append("s", "x" + std::to_string(i), "", Stage("x", 900000));
    if (lsn) {
      ++accepted;
    } else {
      last = lsn.error();
    }
  }
  EXPECT_EQ(last.code(), Status::Code::kUnavailable) << last.ToString();
  EXPECT_GE(accepted, 4);
  EXPECT_LE(accepted, 10);  // at most 8 MiB of 900 kB records
}

TEST_F(IntakeLogTest, ConcurrentAppendsAllComeBack) {
  auto log = OpenLog(Opts(64));
  ASSERT_NE(log, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto lsn = log->Append("s", name, "", Stage(name, 8000 + i));
        EXPECT_TRUE(lsn.has_value());
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  SnapshotIntake();
  auto scan = ScanOf(snapshot_root());
  ASSERT_EQ(scan.after_checkpoint.size(), 160u);
  for (size_t i = 0; i < scan.after_checkpoint.size(); ++i) {
    EXPECT_EQ(scan.after_checkpoint[i].lsn, i + 1);
  }
}

TEST_F(IntakeLogTest, TheGateTimeSeparatesFilesBeforeAndAfterACheckpoint) {
  auto log = OpenLog(Opts());
  ASSERT_NE(log, nullptr);
  std::string before = Stage("before", 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // more than the clock slack
  auto lsn = log->Append("s", "before", "", before);
  ASSERT_TRUE(lsn.has_value());
  log->Published(*lsn);
  ASSERT_TRUE(log->Checkpoint().ok());
  std::string after = Stage("after", 10);
  auto cp = ReadIntakeCheckpoint(DefaultFileSystem(), root_);
  ASSERT_TRUE(cp.has_value());
  ASSERT_TRUE(cp->has_value());
  EXPECT_EQ((*cp)->lsn, 1u);
  EXPECT_EQ((*cp)->boot_id, "boot-a");
  auto t_before = DefaultFileSystem()->ModificationTime(before);
  auto t_after = DefaultFileSystem()->ModificationTime(after);
  ASSERT_TRUE(t_before && t_after);
  EXPECT_LT(*t_before, (*cp)->durable_until);
  EXPECT_GE(*t_after, (*cp)->durable_until);
  EXPECT_FALSE((*cp)->idle);

  // Once the gate has passed the last publication and nothing is on its way, the log says it
  // is idle: the router then stops comparing times.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(log->Checkpoint().ok());  // moves the gate past the publication
  ASSERT_TRUE(log->Checkpoint().ok());  // nothing left: idle
  cp = ReadIntakeCheckpoint(DefaultFileSystem(), root_);
  ASSERT_TRUE(cp.has_value() && cp->has_value());
  EXPECT_TRUE((*cp)->idle);
  // The next instance ends the idle state before Append() returns.
  lsn = log->Append("s", "next", "", Stage("next", 10));
  ASSERT_TRUE(lsn.has_value());
  cp = ReadIntakeCheckpoint(DefaultFileSystem(), root_);
  ASSERT_TRUE(cp.has_value() && cp->has_value());
  EXPECT_FALSE((*cp)->idle);
  EXPECT_EQ((*cp)->lsn, 1u);
}

TEST_F(IntakeLogTest, NoLogMeansNoGateAndAnEmptyScan) {
  auto cp = ReadIntakeCheckpoint(DefaultFileSystem(), root_);
  ASSERT_TRUE(cp.has_value());
  EXPECT_FALSE(cp->has_value());
  auto scan = ScanOf(root_);
  EXPECT_EQ(scan.max_lsn, 0u);
  EXPECT_TRUE(scan.after_checkpoint.empty());
}

TEST_F(IntakeLogTest, ReopeningContinuesTheSequenceAndReusesSegments) {
  uint64_t segments = 0;
  {
    auto log = OpenLog(Opts());
    ASSERT_NE(log, nullptr);
    for (const char* name : {"a", "b"}) {
      auto lsn = log->Append("s", name, "", Stage(name, 100));
      ASSERT_TRUE(lsn.has_value());
      log->Published(*lsn);
    }
    segments = log->stats().segments;
  }
  auto scan = ScanOf(root_);
  EXPECT_EQ(scan.max_lsn, 2u);
  EXPECT_EQ(scan.checkpoint_lsn, 2u);  // closing checkpointed everything
  auto log = OpenLog(Opts(), scan.max_lsn);
  ASSERT_NE(log, nullptr);
  auto lsn = log->Append("s", "c", "", Stage("c", 100));
  ASSERT_TRUE(lsn.has_value());
  EXPECT_EQ(*lsn, 3u);
  EXPECT_EQ(log->stats().segments, segments);  // the old ones were reused, none created
}

TEST_F(IntakeLogTest, OneReceiverPerDataFolder) {
  auto log = OpenLog(Opts());
  ASSERT_NE(log, nullptr);
  auto second = IntakeLog::Open(Opts(), DefaultFileSystem(), 0);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("another ferry receiver"), std::string::npos);
  // A receiver without the log must not remove the log of one that uses it.
  EXPECT_EQ(RemoveUnusedIntakeLog(DefaultFileSystem(), root_).code(),
            Status::Code::kFailedPrecondition);
  log.reset();
  EXPECT_TRUE(RemoveUnusedIntakeLog(DefaultFileSystem(), root_).ok());
  EXPECT_FALSE(stdfs::exists(root_ + "/intake"));
}

}  // namespace
}  // namespace ferry
