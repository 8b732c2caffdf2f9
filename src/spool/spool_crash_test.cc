// Proof that publishing into the spool is crash-safe, in the style of leveldb's
// db/fault_injection_test.cc: the receiver's publishing sequence runs against a
// FaultInjectionFileSystem that makes every mutating operation from the k-th on fail (the
// process "dies" there), then drops everything a power cut would drop; a fresh Spool recovers
// and we check what is on disk. This is done for every k from 0 to the number of operations
// of the whole workload.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "spool/spool.h"
#include "testing/fault_injection_file_system.h"

namespace ferry {
namespace {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/ferry-crash-XXXXXX";
  char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  return dir ? dir : "";
}

// A fresh directory, removed at the end of the scope even when an assertion fails.
struct ScopedDir {
  ScopedDir() : path(MakeTempDir()) {}
  ~ScopedDir() { DefaultFileSystem()->RemoveTree(path); }
  std::string path;
};

std::vector<std::string> List(FileSystem* fs, const std::string& dir) {
  auto names = fs->ListDir(dir);
  std::vector<std::string> sorted = names ? *names : std::vector<std::string>{};
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::string ReadOr(FileSystem* fs, const std::string& path, std::string fallback) {
  auto content = fs->ReadFile(path);
  return content ? *content : fallback;
}

Status WriteFile(FileSystem* fs, const std::string& path, std::string_view data) {
  FERRY_ASSIGN_OR_RETURN(auto file, fs->NewWritableFile(path));
  FERRY_RETURN_IF_ERROR(file->Append(data));
  return file->Close();
}

// --- The fault-injecting file system itself ---------------------------------------------

class FaultInjectionFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { DefaultFileSystem()->RemoveTree(dir_); }

  std::string Path(std::string_view name) const { return JoinPath(dir_, name); }
  std::string Read(const std::string& path) { return ReadOr(&fs_, path, "<missing>"); }

  // A file whose content and name are durable.
  void WriteDurable(const std::string& path, std::string_view data) {
    auto file = fs_.NewWritableFile(path);
    ASSERT_TRUE(file.has_value());
    ASSERT_TRUE((*file)->Append(data).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE((*file)->Close().ok());
    ASSERT_TRUE(fs_.SyncDir(std::filesystem::path(path).parent_path().string()).ok());
  }

  FaultInjectionFileSystem fs_;
  std::string dir_;  // made outside fs_, so it counts as durable
};

TEST_F(FaultInjectionFileSystemTest, DataAfterLastSyncIsDropped) {
  auto file = fs_.NewWritableFile(Path("f"));
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("abc").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Append("def").ok());
  ASSERT_TRUE((*file)->Close().ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  EXPECT_EQ(Read(Path("f")), "abcdef");
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(Read(Path("f")), "abc");
}

TEST_F(FaultInjectionFileSystemTest, SyncFileMakesAllWrittenDataDurable) {
  ASSERT_TRUE(WriteFile(&fs_, Path("f"), "written by someone else").ok());
  ASSERT_TRUE(fs_.SyncFile(Path("f")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(Read(Path("f")), "written by someone else");
}

TEST_F(FaultInjectionFileSystemTest, AppendableFileKeepsItsDurablePrefix) {
  WriteDurable(Path("log"), "one\n");
  auto file = fs_.NewAppendableFile(Path("log"));
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("two\n").ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(Read(Path("log")), "one\n");
}

TEST_F(FaultInjectionFileSystemTest, CreationWithoutDirSyncIsUndone) {
  auto file = fs_.NewWritableFile(Path("f"));
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("abc").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE(fs_.CreateDirs(Path("a/b")).ok());
  ASSERT_TRUE(WriteFile(&fs_, Path("a/b/g"), "g").ok());
  ASSERT_TRUE(fs_.SyncDir(Path("a/b")).ok());
  ASSERT_TRUE(fs_.Link(Path("f"), Path("f2")).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_TRUE(List(&fs_, dir_).empty());
}

TEST_F(FaultInjectionFileSystemTest, RenameWithoutSyncOfTargetDirIsReverted) {
  ASSERT_TRUE(fs_.CreateDir(Path("src")).ok());
  ASSERT_TRUE(fs_.CreateDir(Path("dst")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  WriteDurable(Path("src/f"), "data");
  WriteDurable(Path("dst/old"), "old");
  ASSERT_TRUE(fs_.Rename(Path("src/f"), Path("dst/old")).ok());
  ASSERT_TRUE(fs_.SyncDir(Path("src")).ok()) << "syncing the source alone is not enough";
  EXPECT_EQ(fs_.pending_dir_changes(), 1u);
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(Read(Path("src/f")), "data");
  EXPECT_EQ(Read(Path("dst/old")), "old") << "the replaced file comes back";
}

TEST_F(FaultInjectionFileSystemTest, RenameFollowedBySyncOfTargetDirSurvives) {
  ASSERT_TRUE(fs_.CreateDir(Path("dst")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  WriteDurable(Path("f"), "data");
  ASSERT_TRUE(fs_.Rename(Path("f"), Path("dst/f")).ok());
  ASSERT_TRUE(fs_.SyncDir(Path("dst")).ok());
  EXPECT_EQ(fs_.pending_dir_changes(), 0u);
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_FALSE(fs_.Exists(Path("f")));
  EXPECT_EQ(Read(Path("dst/f")), "data");
}

TEST_F(FaultInjectionFileSystemTest, PendingChangesFollowARenamedDirectory) {
  ASSERT_TRUE(fs_.CreateDir(Path("t")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  WriteDurable(Path("t/durable"), "1");
  auto file = fs_.NewWritableFile(Path("t/pending"));  // its name is never made durable in t/
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("2").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE(fs_.Rename(Path("t"), Path("u")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(List(&fs_, dir_), std::vector<std::string>{"u"});
  EXPECT_EQ(List(&fs_, Path("u")), std::vector<std::string>{"durable"});
}

TEST_F(FaultInjectionFileSystemTest, RevertedDirectoryRenameTakesItsContentBack) {
  ASSERT_TRUE(fs_.CreateDir(Path("t")).ok());
  ASSERT_TRUE(fs_.CreateDir(Path("t/sub")).ok());
  ASSERT_TRUE(WriteFile(&fs_, Path("t/sub/f"), "x").ok());
  ASSERT_TRUE(fs_.SyncFile(Path("t/sub/f")).ok());
  ASSERT_TRUE(fs_.SyncDir(Path("t/sub")).ok());
  ASSERT_TRUE(fs_.SyncDir(Path("t")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  ASSERT_TRUE(fs_.Rename(Path("t"), Path("u")).ok());
  ASSERT_TRUE(WriteFile(&fs_, Path("u/sub/late"), "y").ok());
  ASSERT_TRUE(fs_.SyncDir(Path("u/sub")).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(List(&fs_, dir_), std::vector<std::string>{"t"});
  EXPECT_EQ(Read(Path("t/sub/f")), "x");
  EXPECT_EQ(Read(Path("t/sub/late")), "") << "its name was synced, its data never was";
}

TEST_F(FaultInjectionFileSystemTest, RemovalsWithoutDirSyncAreUndone) {
  ASSERT_TRUE(fs_.CreateDirs(Path("t/sub")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  ASSERT_TRUE(fs_.SyncDir(Path("t")).ok());
  WriteDurable(Path("t/sub/f"), "deep");
  WriteDurable(Path("g"), "flat");
  ASSERT_TRUE(fs_.RemoveFile(Path("g")).ok());
  ASSERT_TRUE(fs_.RemoveTree(Path("t")).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(Read(Path("g")), "flat");
  EXPECT_EQ(Read(Path("t/sub/f")), "deep");

  ASSERT_TRUE(fs_.RemoveTree(Path("t")).ok());
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_EQ(List(&fs_, dir_), std::vector<std::string>{"g"});
}

TEST_F(FaultInjectionFileSystemTest, FailAfterFailsTheNthAndLaterOperations) {
  EXPECT_EQ(fs_.mutating_ops(), 0);
  fs_.FailAfter(2);
  EXPECT_TRUE(fs_.CreateDir(Path("a")).ok());
  EXPECT_TRUE(fs_.SyncDir(dir_).ok());
  Status s = fs_.CreateDir(Path("b"));
  EXPECT_EQ(s.code(), Status::Code::kIoError) << s.ToString();
  EXPECT_FALSE(fs_.Exists(Path("b"))) << "a failed operation does not touch the disk";
  EXPECT_FALSE(fs_.NewWritableFile(Path("c")).has_value());
  EXPECT_FALSE(fs_.Rename(Path("a"), Path("d")).ok());
  EXPECT_TRUE(fs_.IsDirectory(Path("a"))) << "reads are not counted and never fail";
  EXPECT_EQ(fs_.mutating_ops(), 5);
  fs_.StopFailing();
  EXPECT_TRUE(fs_.CreateDir(Path("b")).ok());

  auto file = fs_.NewWritableFile(Path("f"));
  ASSERT_TRUE(file.has_value());
  fs_.FailAfter(1);
  EXPECT_TRUE((*file)->Append("x").ok());
  EXPECT_FALSE((*file)->Append("y").ok());
  EXPECT_FALSE((*file)->Sync().ok());
  ASSERT_TRUE(fs_.SimulateCrash().ok());
  EXPECT_TRUE(fs_.CreateDir(Path("e")).ok()) << "a crash ends failure injection";
}

// --- Crash safety of the spool ----------------------------------------------------------

struct Version {
  std::string content;
  bool acked = false;
};

// What the workload tried to publish and what it was told succeeded.
struct Outcome {
  std::map<std::string, std::string> tags;  // series uid -> series.tags
  std::map<std::pair<std::string, std::string>, std::vector<Version>> instances;  // oldest first
  std::vector<Version> task_json;
};

std::string RandomBytes(uint32_t seed, size_t size) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) {
    c = static_cast<char>(rng() & 0xff);
  }
  return out;
}

struct Step {
  int series;
  int instance;
  int version;
};

// 3 series x 4 instances arriving interleaved, then one instance sent again with new content.
std::vector<Step> Plan() {
  std::vector<Step> steps;
  for (int i = 0; i < 4; ++i) {
    for (int s = 0; s < 3; ++s) {
      steps.push_back({s, i, 0});
    }
  }
  steps.push_back({1, 2, 1});
  return steps;
}

std::string SeriesUid(int s) { return "1.2.826.0.1." + std::to_string(s + 1); }
std::string SopUid(int s, int i) { return SeriesUid(s) + "." + std::to_string(i + 1); }

// The receiver's part: Init, recovery, then instances staged (written without fsync, like
// DCMTK does) and added, with association markers. Stops quietly at the first failure of the
// steps that a real process could not continue without; everything after a failure fails too.
void RunWorkload(FileSystem* fs, const std::string& root, Durability durability, Outcome* out) {
  Spool spool(root, "receiver", fs);
  if (!spool.Init().ok() || !spool.RecoverIncoming().has_value()) {
    return;
  }
  for (const Step& step : Plan()) {
    const std::string series = SeriesUid(step.series);
    const std::string sop = SopUid(step.series, step.instance);
    std::string tags = "{\"SeriesInstanceUID\":\"" + series + "\",\"pad\":\"" +
                       std::string(50 * (step.series + 1), 'x') + "\"}";
    out->tags.emplace(series, tags);
    uint32_t seed = static_cast<uint32_t>(step.series * 100 + step.instance * 10 + step.version);
    size_t size = 1 + (seed * 7919u) % 70000u;
    std::string content = RandomBytes(seed, size);
    auto& versions = out->instances[{series, sop}];
    versions.push_back({content, false});

    const std::string tmp = spool.NewTempPath(".dcm");
    auto file = fs->NewWritableFile(tmp);
    if (!file) {
      continue;
    }
    // Two chunks: a crash can fall between them.
    if (!(*file)->Append(std::string_view(content).substr(0, size / 2)).ok() ||
        !(*file)->Append(std::string_view(content).substr(size / 2)).ok()) {
      continue;
    }
    (*file)->Close();
    auto added = spool.AddInstance(series, sop, tmp, tags, durability);
    if (added) {
      versions.back().acked = true;
      if (added->series_created) {
        spool.MarkAssociationOpen(series, "assoc-1");
      }
    }
  }
  for (const auto& [series, tags] : out->tags) {
    spool.MarkAssociationEnded(series, "assoc-1");
  }
  std::string task = "{\"task\":\"" + std::string(3000, 't') + "\"}";
  out->task_json.push_back({task, false});
  if (spool.WriteFileAtomic(spool.StagePath(kProcessing), "task.json", task, durability).ok()) {
    out->task_json.back().acked = true;
  }
}

// Checks a file against the versions that were attempted: an acknowledged version (or a
// later attempt) must be there; otherwise the file is absent or one complete version.
void CheckVersions(FileSystem* fs, const std::string& path, const std::vector<Version>& versions,
                   const std::string& context) {
  int last_acked = -1;
  for (int i = 0; i < static_cast<int>(versions.size()); ++i) {
    if (versions[i].acked) {
      last_acked = i;
    }
  }
  auto content = fs->ReadFile(path);
  if (!content) {
    EXPECT_EQ(last_acked, -1) << context << ": acknowledged " << path << " was lost";
    return;
  }
  bool matches = false;
  for (int i = std::max(last_acked, 0); i < static_cast<int>(versions.size()); ++i) {
    matches |= *content == versions[i].content;
  }
  EXPECT_TRUE(matches) << context << ": " << path << " holds " << content->size()
                       << " bytes that are not a complete version"
                       << (last_acked >= 0 ? " at least as new as the acknowledged one" : "");
}

// Recovers the spool at `root` with a fresh Spool and checks it against `out`.
void RecoverAndCheck(FileSystem* fs, const std::string& root, const Outcome& out,
                     const std::string& context) {
  Spool spool(root, "receiver", fs);
  ASSERT_TRUE(spool.Init().ok()) << context;
  auto recovered = spool.RecoverIncoming();
  ASSERT_TRUE(recovered.has_value()) << context << ": " << recovered.error().ToString();

  EXPECT_TRUE(List(fs, JoinPath(spool.StagePath(kTmp), "receiver")).empty()) << context;
  for (const std::string& series : List(fs, spool.StagePath(kIncoming))) {
    const std::string folder = spool.SeriesPath(series);
    ASSERT_EQ(out.tags.count(series), 1u) << context << ": unexpected " << folder;
    EXPECT_EQ(ReadOr(fs, JoinPath(folder, kSeriesTagsFile), "<missing>"), out.tags.at(series))
        << context << ": series.tags of " << series << " is missing or partial";
    EXPECT_TRUE(fs->IsDirectory(JoinPath(folder, kAssociationsDir))) << context;
    for (const std::string& marker : List(fs, JoinPath(folder, kAssociationsDir))) {
      EXPECT_EQ(marker, "assoc-1.ended") << context;
    }
    for (const std::string& name : List(fs, folder)) {
      if (name == kSeriesTagsFile || name == kAssociationsDir) {
        continue;
      }
      ASSERT_TRUE(name.size() > 4 && name.substr(name.size() - 4) == ".dcm") << context << name;
      std::string sop = name.substr(0, name.size() - 4);
      EXPECT_EQ(out.instances.count({series, sop}), 1u) << context << ": unexpected " << name;
    }
  }
  for (const auto& [key, versions] : out.instances) {
    const auto& [series, sop] = key;
    CheckVersions(fs, JoinPath(spool.SeriesPath(series), sop + ".dcm"), versions, context);
  }
  if (!out.task_json.empty()) {
    CheckVersions(fs, JoinPath(spool.StagePath(kProcessing), "task.json"), out.task_json, context);
  }
}

int CountAcked(const Outcome& out) {
  int acked = 0;
  for (const auto& [key, versions] : out.instances) {
    for (const Version& v : versions) {
      acked += v.acked ? 1 : 0;
    }
  }
  return acked;
}

// The number of mutating file system operations of the whole workload.
int64_t CountWorkloadOps() {
  ScopedDir scoped;
  FaultInjectionFileSystem fs;
  Outcome out;
  RunWorkload(&fs, scoped.path, Durability::kFsync, &out);
  EXPECT_EQ(CountAcked(out), 13);
  return fs.mutating_ops();
}

// Stops the workload at every operation k = 0..N; with `power_cut` also drops everything not
// durable (SimulateCrash), otherwise only the process dies (kill -9: the disk keeps all).
void CheckEveryStopPoint(bool power_cut) {
  const int64_t total_ops = CountWorkloadOps();
  ASSERT_GT(total_ops, 50);
  ::testing::Test::RecordProperty("stop_points", static_cast<int>(total_ops + 1));
  for (int64_t k = 0; k <= total_ops; ++k) {
    ScopedDir scoped;
    FaultInjectionFileSystem fs;
    fs.FailAfter(k);
    Outcome out;
    RunWorkload(&fs, scoped.path, Durability::kFsync, &out);
    if (k == total_ops) {
      EXPECT_EQ(CountAcked(out), 13) << "the last run is not stopped";
    }
    if (power_cut) {
      ASSERT_TRUE(fs.SimulateCrash().ok());
    } else {
      fs.StopFailing();
    }
    RecoverAndCheck(&fs, scoped.path, out,
                    (power_cut ? "power cut at operation " : "process killed at operation ") +
                        std::to_string(k));
    if (::testing::Test::HasFailure()) {
      return;  // one stop point's report is enough to debug
    }
  }
}

TEST(SpoolCrashTest, EveryCrashPointKeepsAcknowledgedInstancesAndNothingPartial) {
  CheckEveryStopPoint(/*power_cut=*/true);
}

TEST(SpoolCrashTest, EveryKillPointKeepsAcknowledgedInstancesAndLeavesNoTempFiles) {
  CheckEveryStopPoint(/*power_cut=*/false);
}

// A crash during recovery itself (after a crash during the workload) loses nothing either.
TEST(SpoolCrashTest, CrashDuringRecoveryIsRecoverable) {
  for (int64_t k : {20, 45, 70, 95}) {
    for (int64_t j : {0, 3, 6, 9, 12}) {
      ScopedDir scoped;
      const std::string& root = scoped.path;
      FaultInjectionFileSystem fs;
      fs.FailAfter(k);
      Outcome out;
      RunWorkload(&fs, root, Durability::kFsync, &out);
      ASSERT_TRUE(fs.SimulateCrash().ok());
      {
        fs.FailAfter(j);
        Spool spool(root, "receiver", &fs);
        if (spool.Init().ok()) {
          spool.RecoverIncoming();
        }
        ASSERT_TRUE(fs.SimulateCrash().ok());
      }
      RecoverAndCheck(&fs, root, out,
                      "crash at operation " + std::to_string(k) + ", then " + std::to_string(j));
    }
  }
}

// A writer (another thread, or a process that was killed) may have renamed the series folder
// into incoming/ without having fsynced incoming/ yet. An instance acknowledged by the next
// writer into that folder must survive a power cut all the same.
TEST(SpoolCrashTest, InstanceAddedToAFolderWhoseCreatorDiedIsDurable) {
  for (int64_t k = 0; k <= 16; ++k) {
    ScopedDir scoped;
    const std::string& root = scoped.path;
    FaultInjectionFileSystem fs;
    Spool first(root, "receiver", &fs);
    ASSERT_TRUE(first.Init().ok());
    std::string tmp = first.NewTempPath(".dcm");
    ASSERT_TRUE(WriteFile(&fs, tmp, "first").ok());
    fs.FailAfter(k);
    bool first_acked = first.AddInstance("7", "7.1", tmp, "{}", Durability::kFsync).has_value();
    fs.StopFailing();  // the process died; no power cut yet

    Spool second(root, "receiver", &fs);
    tmp = second.NewTempPath(".dcm");
    ASSERT_TRUE(WriteFile(&fs, tmp, "second").ok());
    ASSERT_TRUE(second.AddInstance("7", "7.2", tmp, "{}", Durability::kFsync).has_value());
    ASSERT_TRUE(fs.SimulateCrash().ok());

    const std::string folder = second.SeriesPath("7");
    EXPECT_EQ(ReadOr(&fs, JoinPath(folder, "7.2.dcm"), "<missing>"), "second") << "k=" << k;
    EXPECT_EQ(ReadOr(&fs, JoinPath(folder, kSeriesTagsFile), "<missing>"), "{}") << "k=" << k;
    if (first_acked) {
      EXPECT_EQ(ReadOr(&fs, JoinPath(folder, "7.1.dcm"), "<missing>"), "first") << "k=" << k;
    }
  }
}

// Eight threads race to create one series and add to it; after a power cut every
// acknowledged instance is there, whichever thread created the folder.
TEST(SpoolCrashTest, ConcurrentPublishersThenPowerCut) {
  ScopedDir scoped;
  const std::string& root = scoped.path;
  FaultInjectionFileSystem fs;
  Spool spool(root, "receiver", &fs);
  ASSERT_TRUE(spool.Init().ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5;
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string tmp = spool.NewTempPath(".dcm");
        ASSERT_TRUE(WriteFile(&fs, tmp, RandomBytes(t * 10 + i, 1000 + 97 * i)).ok());
        auto added = spool.AddInstance("8", "8." + std::to_string(t) + "." + std::to_string(i), tmp,
                                       "{}", Durability::kFsync);
        ASSERT_TRUE(added.has_value()) << added.error().ToString();
        created += added->series_created ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(created.load(), 1);
  ASSERT_TRUE(fs.SimulateCrash().ok());
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string path = JoinPath(spool.SeriesPath("8"),
                                  "8." + std::to_string(t) + "." + std::to_string(i) + ".dcm");
      EXPECT_EQ(ReadOr(&fs, path, "<missing>"), RandomBytes(t * 10 + i, 1000 + 97 * i)) << path;
    }
  }
  EXPECT_EQ(ReadOr(&fs, JoinPath(spool.SeriesPath("8"), kSeriesTagsFile), "<missing>"), "{}");
}

// Without fsync an acknowledged instance can be lost: shows that the fault-injecting file
// system really drops what was not made durable, so the test above proves something.
TEST(SpoolCrashTest, WithoutFsyncAcknowledgedInstancesCanBeLost) {
  ScopedDir scoped;
  const std::string& root = scoped.path;
  FaultInjectionFileSystem fs;
  Outcome out;
  RunWorkload(&fs, root, Durability::kOs, &out);
  ASSERT_EQ(CountAcked(out), 13);
  ASSERT_TRUE(fs.SimulateCrash().ok());

  Spool spool(root, "receiver", &fs);
  ASSERT_TRUE(spool.Init().ok());
  ASSERT_TRUE(spool.RecoverIncoming().has_value());
  int lost = 0;
  for (const auto& [key, versions] : out.instances) {
    const auto& [series, sop] = key;
    std::string content = ReadOr(&fs, JoinPath(spool.SeriesPath(series), sop + ".dcm"), "");
    lost += content != versions.back().content ? 1 : 0;
  }
  EXPECT_GT(lost, 0);
  EXPECT_EQ(lost, 12) << "with nothing synced, every instance is gone";
}

}  // namespace
}  // namespace ferry
