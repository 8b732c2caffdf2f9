// A power cut after instances were acknowledged through the intake log: the spool on a
// FaultInjectionFileSystem loses everything not yet flushed, and RecoverIntakeLog must put
// every acknowledged instance back, byte for byte.
#include "receiver/intake_recovery.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "spool/intake_log.h"
#include "testing/fake_clock.h"
#include "testing/fault_injection_file_system.h"

namespace ferry {
namespace {

// One explicit VR little endian element with a short (2-byte) length.
void Element(std::string* out, uint16_t group, uint16_t element, const char vr[2],
             std::string value) {
  if (value.size() % 2 != 0) {
    value.push_back(vr[0] == 'U' && vr[1] == 'I' ? '\0' : ' ');
  }
  auto put16 = [&](uint16_t v) {
    out->push_back(static_cast<char>(v & 0xff));
    out->push_back(static_cast<char>(v >> 8));
  };
  put16(group);
  put16(element);
  out->append(vr, 2);
  put16(static_cast<uint16_t>(value.size()));
  out->append(value);
}

// A small Part-10 CT instance; `filler` makes instances of one series differ in content.
std::string MakeInstance(const std::string& series, const std::string& sop,
                         const std::string& filler) {
  const std::string ct = "1.2.840.10008.5.1.4.1.1.2";
  std::string meta;
  Element(&meta, 0x0002, 0x0002, "UI", ct);
  Element(&meta, 0x0002, 0x0003, "UI", sop);
  Element(&meta, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
  std::string out(128, '\0');
  out += "DICM";
  std::string length(4, '\0');
  uint32_t n = static_cast<uint32_t>(meta.size());
  for (int i = 0; i < 4; ++i) {
    length[i] = static_cast<char>(n >> (8 * i));
  }
  out += std::string("\x02\x00\x00\x00UL\x04\x00", 8) + length + meta;
  Element(&out, 0x0008, 0x0016, "UI", ct);
  Element(&out, 0x0008, 0x0018, "UI", sop);
  Element(&out, 0x0008, 0x0060, "CS", "CT");
  Element(&out, 0x0010, 0x0010, "PN", "Doe^Jane");
  Element(&out, 0x0020, 0x000D, "UI", "1.2.3.4");
  Element(&out, 0x0020, 0x000E, "UI", series);
  Element(&out, 0x0020, 0x4000, "LT", filler);
  return out;
}

class IntakeRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-intake-recovery-XXXXXX";
    dir_ = mkdtemp(tmpl);
    spool_ = std::make_unique<Spool>(dir_, "receiver", &fault_);
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(dir_ + "/journal", "receiver", &clock_, DefaultFileSystem());
    ASSERT_TRUE(j.has_value());
    journal_ = std::move(j).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Receives `n` instances the way the receiver does with the log: stage, log, publish
  // without flushing, acknowledge. A checkpoint runs after `checkpoint_after` of them.
  void Receive(int n, int checkpoint_after) {
    IntakeLog::Options o;
    o.spool_root = dir_;
    o.capacity_bytes = 8 << 20;
    o.checkpoint_interval = std::chrono::hours(1);
    o.boot_id = "boot-a";
    o.checkpoint_on_close = false;  // killed: no last checkpoint
    auto log = IntakeLog::Open(o, &fault_, 0);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    for (int i = 0; i < n; ++i) {
      std::string series = "1.2.3.4." + std::to_string(i % 3);
      std::string sop = series + "." + std::to_string(i);
      std::string data = MakeInstance(series, sop, std::string(100 + i * 37, 'x'));
      std::string staged = spool_->NewTempPath(".dcm");
      auto file = fault_.NewWritableFile(staged);
      ASSERT_TRUE(file.has_value());
      ASSERT_TRUE((*file)->Append(data).ok());
      ASSERT_TRUE((*file)->Close().ok());
      auto lsn = (*log)->Append(series, sop, "127.0.0.1\\SCU\\FERRY", staged);
      ASSERT_TRUE(lsn.has_value()) << lsn.error().ToString();
      auto added = spool_->AddInstance(series, sop, staged, "{\"SeriesInstanceUID\":\"" + series + "\"}",
                                       Durability::kOs);
      ASSERT_TRUE(added.has_value()) << added.error().ToString();
      (*log)->Published(*lsn);
      acknowledged_[JoinPath(spool_->SeriesPath(series), sop + ".dcm")] = data;
      if (i + 1 == checkpoint_after) {
        ASSERT_TRUE((*log)->Checkpoint().ok());
      }
    }
  }

  int Missing() {
    int missing = 0;
    for (const auto& [path, data] : acknowledged_) {
      auto content = DefaultFileSystem()->ReadFile(path);
      missing += !content || *content != data;
    }
    return missing;
  }

  std::string dir_;
  FakeClock clock_;
  FaultInjectionFileSystem fault_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
  std::map<std::string, std::string> acknowledged_;  // path in incoming/ -> bytes
};

TEST_F(IntakeRecoveryTest, APowerCutLosesNoAcknowledgedInstance) {
  Receive(12, 6);
  ASSERT_TRUE(fault_.SimulateCrash().ok());
  ASSERT_TRUE(spool_->RecoverIncoming().has_value());
  const int lost = Missing();
  ASSERT_GT(lost, 0) << "the crash should have taken the instances published after the "
                        "checkpoint";
  auto recovered = RecoverIntakeLog(spool_.get(), journal_.get(), "boot-b");
  ASSERT_TRUE(recovered.has_value()) << recovered.error().ToString();
  EXPECT_EQ(recovered->replayed, lost);
  EXPECT_EQ(recovered->replayed + recovered->unchanged, 6);  // the records after the checkpoint
  EXPECT_EQ(recovered->last_lsn, 12u);
  EXPECT_EQ(Missing(), 0);
  // Every series folder has tags the router can read, rebuilt from the instance if needed.
  for (int s = 0; s < 3; ++s) {
    auto tags = DefaultFileSystem()->ReadFile(
        JoinPath(spool_->SeriesPath("1.2.3.4." + std::to_string(s)), kSeriesTagsFile));
    ASSERT_TRUE(tags.has_value());
    auto json = nlohmann::json::parse(*tags, nullptr, false);
    ASSERT_TRUE(json.is_object());
    EXPECT_EQ(json.value("SeriesInstanceUID", ""), "1.2.3.4." + std::to_string(s));
  }
  // A second start replays nothing more: the recovery made the spool durable.
  auto again = RecoverIntakeLog(spool_.get(), journal_.get(), "boot-c");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->replayed, 0);
}

TEST_F(IntakeRecoveryTest, AKilledProcessWithoutRebootReplaysNothing) {
  Receive(9, 3);
  // No power cut: the operating system kept every write of the killed process.
  auto recovered = RecoverIntakeLog(spool_.get(), journal_.get(), "boot-a");
  ASSERT_TRUE(recovered.has_value()) << recovered.error().ToString();
  EXPECT_EQ(recovered->replayed, 0);
  EXPECT_EQ(recovered->same_boot, 6);
  EXPECT_EQ(Missing(), 0);
}

TEST_F(IntakeRecoveryTest, ACrashAtEveryStepLosesNoAcknowledgedInstance) {
  // The receiving sequence fails from the k-th file-system operation on, then the power goes.
  for (int k = 0;; ++k) {
    TearDown();
    acknowledged_.clear();
    fault_.StopFailing();
    SetUp();
    const int64_t start = fault_.mutating_ops();
    fault_.FailAfter(k);
    IntakeLog::Options o;
    o.spool_root = dir_;
    o.capacity_bytes = 8 << 20;
    o.checkpoint_interval = std::chrono::hours(1);
    o.boot_id = "boot-a";
    o.checkpoint_on_close = false;
    auto opened = IntakeLog::Open(o, &fault_, 0);
    bool finished = opened.has_value();
    std::unique_ptr<IntakeLog> log = finished ? std::move(opened).value() : nullptr;
    for (int i = 0; i < 6 && finished; ++i) {
      std::string series = "1.2.3.4." + std::to_string(i % 2);
      std::string sop = series + "." + std::to_string(i);
      std::string data = MakeInstance(series, sop, std::string(50 + i, 'y'));
      std::string staged = spool_->NewTempPath(".dcm");
      auto file = fault_.NewWritableFile(staged);
      if (!file || !(*file)->Append(data).ok() || !(*file)->Close().ok()) {
        finished = false;
        break;
      }
      auto lsn = log->Append(series, sop, "", staged);
      if (!lsn) {
        finished = false;
        break;
      }
      auto added = spool_->AddInstance(series, sop, staged, "{}", Durability::kOs);
      log->Published(*lsn);
      if (!added) {
        finished = false;
        break;
      }
      acknowledged_[JoinPath(spool_->SeriesPath(series), sop + ".dcm")] = data;
      if (i == 2 && !log->Checkpoint().ok()) {
        finished = false;
      }
    }
    const bool done = finished && fault_.mutating_ops() - start < k;
    log.reset();  // stop the log before the power cut
    ASSERT_TRUE(fault_.SimulateCrash().ok());
    ASSERT_TRUE(spool_->RecoverIncoming().has_value());
    auto recovered = RecoverIntakeLog(spool_.get(), journal_.get(), "boot-b");
    ASSERT_TRUE(recovered.has_value()) << "k=" << k << ": " << recovered.error().ToString();
    EXPECT_EQ(Missing(), 0) << "k=" << k;
    if (done) {
      break;
    }
    ASSERT_LT(k, 500);
  }
}

}  // namespace
}  // namespace ferry
