#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "targets/target.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

class FolderTargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fs::path("ferry-folder-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "src");
    fs::create_directories(root_ / "dest");
    options_.name = "out";
    options_.type = TargetType::kFolder;
    options_.folder = (root_ / "dest").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  OutgoingInstance Instance(const std::string& name, const std::string& body) {
    std::string path = (root_ / "src" / name).string();
    std::ofstream(path) << body;
    OutgoingInstance i;
    i.path = path;
    i.size = body.size();
    return i;
  }

  static TaskContext Task(const std::string& id) {
    TaskContext t;
    t.task_id = id;
    return t;
  }

  fs::path root_;
  TargetOptions options_;
};

TEST_F(FolderTargetTest, CopiesIntoTaskFolderAndMarksCompleteOnFinish) {
  auto target = MakeTarget(options_);
  ASSERT_TRUE(target.has_value());
  ASSERT_TRUE((*target)->Check().ok());
  auto session = (*target)->Open(Task("t1"));
  ASSERT_TRUE(session.has_value());
  std::vector<InstanceResult> results;
  (*session)->Send({Instance("a.dcm", "AAA"), Instance("b.dcm", "BB")}, &results);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_FALSE(fs::exists(root_ / "dest" / "t1" / ".complete"));
  ASSERT_TRUE((*session)->Finish().ok());
  EXPECT_TRUE(fs::exists(root_ / "dest" / "t1" / ".complete"));
  EXPECT_EQ(fs::file_size(root_ / "dest" / "t1" / "a.dcm"), 3u);
  EXPECT_EQ(fs::file_size(root_ / "dest" / "t1" / "b.dcm"), 2u);
  // Nothing temporary is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(root_ / "dest" / "t1")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 3);
}

TEST_F(FolderTargetTest, FileFilterSkipsOtherFiles) {
  options_.file_filter = "*.dcm, *.json";
  auto target = MakeTarget(options_);
  auto session = (*target)->Open(Task("t2"));
  std::vector<InstanceResult> results;
  (*session)->Send({Instance("a.dcm", "A"), Instance("notes.txt", "N")}, &results);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_TRUE(fs::exists(root_ / "dest" / "t2" / "a.dcm"));
  EXPECT_FALSE(fs::exists(root_ / "dest" / "t2" / "notes.txt"));
}

TEST_F(FolderTargetTest, MissingFolderIsTransient) {
  options_.folder = (root_ / "not-mounted").string();
  auto target = MakeTarget(options_);
  Status check = (*target)->Check();
  EXPECT_FALSE(check.ok());
  EXPECT_FALSE(IsPermanent(check));
  EXPECT_NE(check.message().find("does not exist"), std::string::npos);
  EXPECT_FALSE((*target)->Open(Task("t3")).has_value());
}

TEST_F(FolderTargetTest, UnreadableSourceFailsOnlyThatInstance) {
  auto target = MakeTarget(options_);
  auto session = (*target)->Open(Task("t4"));
  OutgoingInstance missing;
  missing.path = (root_ / "src" / "gone.dcm").string();
  std::vector<InstanceResult> results;
  (*session)->Send({missing, Instance("ok.dcm", "OK")}, &results);
  EXPECT_NE(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
}

TEST(TargetErrors, PermanentOnlyForErrorsRetryCannotFix) {
  EXPECT_TRUE(IsPermanent(Status::PermissionDenied("x")));
  EXPECT_TRUE(IsPermanent(Status::InvalidArgument("x")));
  EXPECT_TRUE(IsPermanent(Status::FailedPrecondition("x")));
  EXPECT_FALSE(IsPermanent(Status::Unavailable("x")));
  EXPECT_FALSE(IsPermanent(Status::IoError("x")));
}

}  // namespace
}  // namespace ferry
