#include "spool/spool.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ferry {
namespace {

// --- IsSafeFileName ---------------------------------------------------------------------

struct NameCase {
  std::string name;
  bool safe;
};

class IsSafeFileNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(IsSafeFileNameTest, Table) {
  EXPECT_EQ(IsSafeFileName(GetParam().name), GetParam().safe) << "\"" << GetParam().name << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Table, IsSafeFileNameTest,
    ::testing::Values(NameCase{"1.2.3", true},
                      NameCase{"1.2.840.113619.2.55.3.604688119.969.1268071029.320", true},
                      NameCase{"assoc-17_b", true}, NameCase{"series.tags", true},
                      NameCase{std::string(128, '1'), true}, NameCase{"", false},
                      NameCase{"../x", false}, NameCase{"..", false}, NameCase{".", false},
                      NameCase{"a/b", false}, NameCase{"/abs", false}, NameCase{".hidden", false},
                      NameCase{std::string(129, '1'), false},
                      NameCase{std::string(200, 'a'), false}, NameCase{"a b", false},
                      NameCase{"a\\b", false}, NameCase{std::string("a\0b", 3), false},
                      NameCase{"uid\n", false}, NameCase{"caf\xc3\xa9", false},
                      NameCase{"a:b", false}, NameCase{"*", false}));

// --- Spool ------------------------------------------------------------------------------

// Forwards to the real file system; before the first rename into `series_dir` it moves that
// folder away, the way the router claims a series between two steps of AddInstance.
class ClaimingFileSystem final : public FileSystem {
 public:
  ClaimingFileSystem(std::string series_dir, std::string claimed_to, int claims)
      : series_dir_(std::move(series_dir)), claimed_to_(std::move(claimed_to)), claims_(claims) {}

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    return base_->NewWritableFile(p);
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override {
    return base_->NewAppendableFile(p);
  }
  Result<std::string> ReadFile(const std::string& p) override { return base_->ReadFile(p); }
  Status SyncFile(const std::string& p) override { return base_->SyncFile(p); }
  Status SyncDir(const std::string& d) override { return base_->SyncDir(d); }
  Status SyncFileSystem(const std::string& p) override { return base_->SyncFileSystem(p); }
  Status Rename(const std::string& from, const std::string& to) override {
    if (claims_ > 0 && to.rfind(series_dir_ + "/", 0) == 0) {
      --claims_;
      Status s = base_->Rename(series_dir_, claimed_to_ + std::to_string(claims_));
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    return base_->Rename(from, to);
  }
  Status Link(const std::string& f, const std::string& t) override { return base_->Link(f, t); }
  Status CreateDir(const std::string& p) override { return base_->CreateDir(p); }
  Status CreateDirs(const std::string& p) override { return base_->CreateDirs(p); }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status RemoveTree(const std::string& p) override { return base_->RemoveTree(p); }
  Result<std::vector<std::string>> ListDir(const std::string& d) override {
    return base_->ListDir(d);
  }
  bool Exists(const std::string& p) override { return base_->Exists(p); }
  bool IsDirectory(const std::string& p) override { return base_->IsDirectory(p); }
  Result<uint64_t> FileSize(const std::string& p) override { return base_->FileSize(p); }
  Result<WallTime> ModificationTime(const std::string& p) override {
    return base_->ModificationTime(p);
  }
  Result<DiskSpace> GetDiskSpace(const std::string& p) override { return base_->GetDiskSpace(p); }

 private:
  FileSystem* base_ = DefaultFileSystem();
  std::string series_dir_;
  std::string claimed_to_;
  int claims_;
};

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-spool-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    spool_ = std::make_unique<Spool>(dir_, "receiver", fs_);
    ASSERT_TRUE(spool_->Init().ok());
  }
  void TearDown() override { fs_->RemoveTree(dir_); }

  // Writes `data` to a fresh temp path of `spool`, as the DICOM layer does.
  std::string Stage(std::string_view data, Spool* spool = nullptr) {
    std::string path = (spool ? spool : spool_.get())->NewTempPath(".dcm");
    auto file = fs_->NewWritableFile(path);
    EXPECT_TRUE(file.has_value()) << file.error().ToString();
    if (file) {
      EXPECT_TRUE((*file)->Append(data).ok());
      EXPECT_TRUE((*file)->Close().ok());
    }
    return path;
  }

  std::string Read(const std::string& path) {
    auto content = fs_->ReadFile(path);
    EXPECT_TRUE(content.has_value()) << content.error().ToString();
    return content ? *content : "<missing>";
  }

  std::vector<std::string> List(const std::string& dir) {
    auto names = fs_->ListDir(dir);
    EXPECT_TRUE(names.has_value()) << names.error().ToString();
    std::vector<std::string> sorted = names ? *names : std::vector<std::string>{};
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }

  std::string TmpDir() const { return JoinPath(spool_->StagePath(kTmp), "receiver"); }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(SpoolTest, InitCreatesLayout) {
  EXPECT_EQ(spool_->root(), dir_);
  EXPECT_EQ(spool_->StagePath(kIncoming), dir_ + "/incoming");
  EXPECT_EQ(spool_->SeriesPath("1.2.3"), dir_ + "/incoming/1.2.3");
  EXPECT_EQ(spool_->fs(), fs_);
  EXPECT_EQ(List(dir_),
            (std::vector<std::string>{"discard", "error", "incoming", "journal", "outgoing",
                                      "processing", "studies", "success", "tmp"}));
  EXPECT_EQ(List(spool_->StagePath(kTmp)), std::vector<std::string>{"receiver"});
  EXPECT_TRUE(spool_->Init().ok()) << "Init is idempotent";
}

TEST_F(SpoolTest, InitReportsTheFolder) {
  ASSERT_TRUE(fs_->NewWritableFile(JoinPath(dir_, "plain")).has_value());
  Spool bad(JoinPath(dir_, "plain"), "receiver", fs_);
  Status s = bad.Init();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(JoinPath(dir_, "plain")), std::string::npos) << s.ToString();
}

TEST_F(SpoolTest, NewTempPathIsUniqueAcrossThreadsAndSpools) {
  Spool other(dir_, "receiver", fs_);
  std::mutex mu;
  std::set<std::string> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Spool* s = t % 2 == 0 ? spool_.get() : &other;
      std::vector<std::string> mine;
      for (int i = 0; i < 1000; ++i) {
        mine.push_back(s->NewTempPath(".dcm"));
      }
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(seen.size(), 8000u);
  const std::string& any = *seen.begin();
  EXPECT_EQ(any.rfind(TmpDir() + "/", 0), 0u) << any;
  EXPECT_EQ(any.substr(any.size() - 4), ".dcm");
}

TEST_F(SpoolTest, WriteFileAtomic) {
  const std::string dir = spool_->StagePath(kProcessing);
  ASSERT_TRUE(spool_->WriteFileAtomic(dir, "task.json", "{\"a\":1}", Durability::kFsync).ok());
  EXPECT_EQ(Read(JoinPath(dir, "task.json")), "{\"a\":1}");
  ASSERT_TRUE(spool_->WriteFileAtomic(dir, "task.json", "{}", Durability::kOs).ok());
  EXPECT_EQ(Read(JoinPath(dir, "task.json")), "{}");
  EXPECT_EQ(spool_->WriteFileAtomic(dir, "../x", "{}", Durability::kOs).code(),
            Status::Code::kInvalidArgument);
  EXPECT_FALSE(spool_->WriteFileAtomic(JoinPath(dir, "missing"), "t", "{}", Durability::kOs).ok());
  EXPECT_TRUE(List(TmpDir()).empty()) << "no temp file left behind, even after a failure";
}

TEST_F(SpoolTest, PublishFile) {
  std::string tmp = Stage("payload");
  const std::string dir = spool_->StagePath(kOutgoing);
  ASSERT_TRUE(spool_->PublishFile(tmp, dir, "x.dcm", Durability::kFsync).ok());
  EXPECT_EQ(Read(JoinPath(dir, "x.dcm")), "payload");
  EXPECT_FALSE(fs_->Exists(tmp));
  EXPECT_EQ(spool_->PublishFile(tmp, dir, "y.dcm", Durability::kFsync).code(),
            Status::Code::kNotFound);
}

TEST_F(SpoolTest, AddInstanceToNewSeries) {
  std::string tmp = Stage("instance-1");
  auto added = spool_->AddInstance("1.2.3", "1.2.3.1", tmp, "{\"tags\":1}", Durability::kFsync);
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  EXPECT_TRUE(added->series_created);
  EXPECT_FALSE(added->replaced);
  const std::string series = spool_->SeriesPath("1.2.3");
  EXPECT_EQ(List(series), (std::vector<std::string>{"1.2.3.1.dcm", "associations", "series.tags"}));
  EXPECT_EQ(Read(JoinPath(series, "1.2.3.1.dcm")), "instance-1");
  EXPECT_EQ(Read(JoinPath(series, kSeriesTagsFile)), "{\"tags\":1}");
  EXPECT_TRUE(fs_->IsDirectory(JoinPath(series, kAssociationsDir)));
  EXPECT_FALSE(fs_->Exists(tmp));
  EXPECT_TRUE(List(TmpDir()).empty());
}

TEST_F(SpoolTest, AddInstanceToExistingSeriesKeepsFirstTags) {
  ASSERT_TRUE(spool_->AddInstance("9", "9.1", Stage("a"), "{\"first\":1}", Durability::kFsync));
  auto added = spool_->AddInstance("9", "9.2", Stage("b"), "{\"second\":1}", Durability::kOs);
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  EXPECT_FALSE(added->series_created);
  EXPECT_FALSE(added->replaced);
  const std::string series = spool_->SeriesPath("9");
  EXPECT_EQ(Read(JoinPath(series, "9.1.dcm")), "a");
  EXPECT_EQ(Read(JoinPath(series, "9.2.dcm")), "b");
  EXPECT_EQ(Read(JoinPath(series, kSeriesTagsFile)), "{\"first\":1}");
}

TEST_F(SpoolTest, AddInstanceReplacesSameSop) {
  ASSERT_TRUE(spool_->AddInstance("9", "9.1", Stage("old"), "{}", Durability::kFsync));
  auto added = spool_->AddInstance("9", "9.1", Stage("new"), "{}", Durability::kFsync);
  ASSERT_TRUE(added.has_value());
  EXPECT_FALSE(added->series_created);
  EXPECT_TRUE(added->replaced);
  EXPECT_EQ(Read(JoinPath(spool_->SeriesPath("9"), "9.1.dcm")), "new");
}

TEST_F(SpoolTest, AddInstanceAfterSeriesWasClaimedCreatesItAgain) {
  ASSERT_TRUE(spool_->AddInstance("9", "9.1", Stage("a"), "{}", Durability::kFsync));
  const std::string claimed = JoinPath(spool_->StagePath(kProcessing), "task-1");
  ASSERT_TRUE(fs_->Rename(spool_->SeriesPath("9"), claimed).ok());
  auto added = spool_->AddInstance("9", "9.2", Stage("late"), "{\"late\":1}", Durability::kFsync);
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  EXPECT_TRUE(added->series_created) << "a late arrival starts a new series folder";
  EXPECT_EQ(List(spool_->SeriesPath("9")),
            (std::vector<std::string>{"9.2.dcm", "associations", "series.tags"}));
  EXPECT_EQ(List(claimed), (std::vector<std::string>{"9.1.dcm", "associations", "series.tags"}));
}

TEST_F(SpoolTest, AddInstanceRetriesWhenFolderVanishesMidway) {
  ASSERT_TRUE(spool_->AddInstance("9", "9.1", Stage("a"), "{}", Durability::kFsync));
  const std::string claimed = JoinPath(spool_->StagePath(kProcessing), "task-");
  ClaimingFileSystem racing(spool_->SeriesPath("9"), claimed, /*claims=*/2);
  Spool spool(dir_, "receiver", &racing);
  auto added = spool.AddInstance("9", "9.2", Stage("b"), "{}", Durability::kFsync);
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  EXPECT_TRUE(added->series_created);
  EXPECT_EQ(Read(JoinPath(spool_->SeriesPath("9"), "9.2.dcm")), "b");
  EXPECT_EQ(List(claimed + "1"),
            (std::vector<std::string>{"9.1.dcm", "associations", "series.tags"}));
  EXPECT_EQ(List(claimed + "0"), (std::vector<std::string>{"associations", "series.tags"}));
  EXPECT_TRUE(List(TmpDir()).empty());
}

TEST_F(SpoolTest, AddInstanceGivesUpWhenFolderKeepsVanishing) {
  const std::string claimed = JoinPath(spool_->StagePath(kProcessing), "task-");
  ClaimingFileSystem racing(spool_->SeriesPath("9"), claimed, /*claims=*/100);
  Spool spool(dir_, "receiver", &racing);
  std::string tmp = Stage("b");
  auto added = spool.AddInstance("9", "9.2", tmp, "{}", Durability::kOs);
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code(), Status::Code::kUnavailable) << added.error().ToString();
  EXPECT_TRUE(fs_->Exists(tmp)) << "the caller still owns the staged file";
}

TEST_F(SpoolTest, AddInstanceRejectsUnsafeUids) {
  std::string tmp = Stage("x");
  EXPECT_EQ(spool_->AddInstance("../evil", "1", tmp, "{}", Durability::kOs).error().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(spool_->AddInstance("1", "a/b", tmp, "{}", Durability::kOs).error().code(),
            Status::Code::kInvalidArgument);
  EXPECT_TRUE(fs_->Exists(tmp));
  EXPECT_TRUE(List(spool_->StagePath(kIncoming)).empty());
}

TEST_F(SpoolTest, AddInstanceOfMissingTempFileFails) {
  auto added = spool_->AddInstance("9", "9.1", spool_->NewTempPath(".dcm"), "{}", Durability::kOs);
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code(), Status::Code::kNotFound);
  EXPECT_TRUE(List(spool_->StagePath(kIncoming)).empty()) << "no empty series folder";
}

// kOs: real fsyncs under a busy disk would make this slow; the same race with kFsync is proven
// against the fault-injecting file system in spool_crash_test.cc.
TEST_F(SpoolTest, ConcurrentAddInstanceCreatesSeriesOnceAndLosesNothing) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 12;
  std::atomic<int> created{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::string> staged;
      for (int i = 0; i < kPerThread; ++i) {
        staged.push_back(Stage("t" + std::to_string(t) + "i" + std::to_string(i)));
      }
      ++ready;
      while (ready.load() < kThreads) {
        std::this_thread::yield();
      }
      for (int i = 0; i < kPerThread; ++i) {
        std::string sop = "5." + std::to_string(t) + "." + std::to_string(i);
        auto added = spool_->AddInstance("5", sop, staged[i],
                                         "{\"thread\":" + std::to_string(t) + "}", Durability::kOs);
        ASSERT_TRUE(added.has_value()) << added.error().ToString();
        EXPECT_FALSE(added->replaced);
        created += added->series_created ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(created.load(), 1);
  const std::string series = spool_->SeriesPath("5");
  EXPECT_EQ(List(series).size(), static_cast<size_t>(kThreads * kPerThread + 2));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string sop = "5." + std::to_string(t) + "." + std::to_string(i) + ".dcm";
      EXPECT_EQ(Read(JoinPath(series, sop)), "t" + std::to_string(t) + "i" + std::to_string(i));
    }
  }
  EXPECT_EQ(Read(JoinPath(series, kSeriesTagsFile)).rfind("{\"thread\":", 0), 0u);
  EXPECT_TRUE(List(TmpDir()).empty()) << "losers removed their staging folders";
  EXPECT_EQ(List(spool_->StagePath(kIncoming)), std::vector<std::string>{"5"});
}

TEST_F(SpoolTest, AssociationMarkers) {
  ASSERT_TRUE(spool_->AddInstance("9", "9.1", Stage("a"), "{}", Durability::kOs));
  const std::string associations = JoinPath(spool_->SeriesPath("9"), kAssociationsDir);
  ASSERT_TRUE(spool_->MarkAssociationOpen("9", "a1").ok());
  EXPECT_EQ(List(associations), std::vector<std::string>{"a1.open"});
  ASSERT_TRUE(spool_->MarkAssociationEnded("9", "a1").ok());
  EXPECT_EQ(List(associations), std::vector<std::string>{"a1.ended"});
  EXPECT_TRUE(spool_->MarkAssociationEnded("9", "a1").ok()) << "ending twice is harmless";
  EXPECT_TRUE(spool_->MarkAssociationEnded("gone", "a1").ok()) << "series already routed";
  EXPECT_EQ(spool_->MarkAssociationEnded("9", "never").code(), Status::Code::kNotFound);
  EXPECT_EQ(spool_->MarkAssociationOpen("9", "../a").code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(spool_->MarkAssociationOpen("gone", "a2").ok());
}

TEST_F(SpoolTest, RecoverIncomingCleansTmpAndClosesOpenMarkers) {
  ASSERT_TRUE(spool_->AddInstance("1", "1.1", Stage("a"), "{}", Durability::kOs));
  ASSERT_TRUE(spool_->AddInstance("2", "2.1", Stage("b"), "{}", Durability::kOs));
  ASSERT_TRUE(spool_->MarkAssociationOpen("1", "x").ok());
  ASSERT_TRUE(spool_->MarkAssociationOpen("1", "y").ok());
  ASSERT_TRUE(spool_->MarkAssociationEnded("1", "y").ok());
  ASSERT_TRUE(spool_->MarkAssociationOpen("2", "x").ok());
  // What a killed receiver leaves behind: a partial instance and a half-built series folder.
  Stage("partial");
  ASSERT_TRUE(fs_->CreateDirs(JoinPath(TmpDir(), "123-456-7/associations")).ok());
  // Another service's staging area is not the receiver's to clean.
  ASSERT_TRUE(fs_->CreateDirs(JoinPath(spool_->StagePath(kTmp), "router/keep")).ok());
  // Stray entries in incoming/ are ignored.
  ASSERT_TRUE(fs_->NewWritableFile(JoinPath(spool_->StagePath(kIncoming), "stray")).has_value());

  Spool fresh(dir_, "receiver", fs_);
  ASSERT_TRUE(fresh.Init().ok());
  auto closed = fresh.RecoverIncoming();
  ASSERT_TRUE(closed.has_value()) << closed.error().ToString();
  EXPECT_EQ(*closed, 2);
  EXPECT_TRUE(List(TmpDir()).empty());
  EXPECT_TRUE(fs_->IsDirectory(JoinPath(spool_->StagePath(kTmp), "router/keep")));
  EXPECT_EQ(List(JoinPath(spool_->SeriesPath("1"), kAssociationsDir)),
            (std::vector<std::string>{"x.ended", "y.ended"}));
  EXPECT_EQ(List(JoinPath(spool_->SeriesPath("2"), kAssociationsDir)),
            std::vector<std::string>{"x.ended"});
  EXPECT_EQ(Read(JoinPath(spool_->SeriesPath("1"), "1.1.dcm")), "a");
  auto again = fresh.RecoverIncoming();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 0);
}

TEST(SpoolTagsTest, MissingFolderWithoutTagsIsAFailedPrecondition) {
  char tmpl[] = "/tmp/ferry-spool-tags-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  FileSystem* fs = DefaultFileSystem();
  Spool spool(dir, "receiver", fs);
  ASSERT_TRUE(spool.Init().ok());
  std::string tmp = spool.NewTempPath(".dcm");
  auto f = fs->NewWritableFile(tmp);
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE((*f)->Append("x").ok());
  ASSERT_TRUE((*f)->Close().ok());
  auto added = spool.AddInstance("7.7", "7.7.1", tmp, "", Durability::kFsync);
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(fs->Exists(tmp));  // nothing was consumed; the caller retries with tags
  EXPECT_FALSE(fs->Exists(spool.SeriesPath("7.7")));
  added = spool.AddInstance("7.7", "7.7.1", tmp, "{}", Durability::kFsync);
  ASSERT_TRUE(added.has_value());
  EXPECT_TRUE(added->series_created);
  fs->RemoveTree(dir);
}

TEST(SpoolSeriesStateTest, ReadsArrivalInstancesAndAssociations) {
  char tmpl[] = "/tmp/ferry-spool-state-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  FileSystem* fs = DefaultFileSystem();
  Spool spool(dir, "receiver", fs);
  ASSERT_TRUE(spool.Init().ok());
  for (const char* sop : {"1.1", "1.2"}) {
    std::string tmp = spool.NewTempPath(".dcm");
    auto f = fs->NewWritableFile(tmp);
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE((*f)->Append("x").ok());
    ASSERT_TRUE((*f)->Close().ok());
    ASSERT_TRUE(spool.AddInstance("9.9", sop, tmp, "{}", Durability::kOs).has_value());
  }
  ASSERT_TRUE(spool.MarkAssociationOpen("9.9", "a1").ok());
  ASSERT_TRUE(spool.MarkAssociationOpen("9.9", "a2").ok());
  ASSERT_TRUE(spool.MarkAssociationEnded("9.9", "a1").ok());
  auto series = spool.ListIncomingSeries();
  ASSERT_TRUE(series.has_value());
  EXPECT_EQ(*series, std::vector<std::string>{"9.9"});
  auto state = spool.ReadSeriesState("9.9");
  ASSERT_TRUE(state.has_value()) << state.error().ToString();
  EXPECT_EQ(state->instances, 2);
  ASSERT_EQ(state->associations.size(), 2u);
  int ended = 0;
  for (const auto& a : state->associations) {
    ended += a.ended ? 1 : 0;
    EXPECT_TRUE(a.id == "a1" ? a.ended : !a.ended) << a.id;
  }
  EXPECT_EQ(ended, 1);
  auto age = std::chrono::system_clock::now() - state->last_arrival;
  EXPECT_LT(age, std::chrono::seconds(60));
  EXPECT_EQ(spool.ReadSeriesState("8.8").error().code(), Status::Code::kNotFound);
  fs->RemoveTree(dir);
}

}  // namespace
}  // namespace ferry
