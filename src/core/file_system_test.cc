#include "core/file_system.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace ferry {
namespace {

struct JoinCase {
  const char* a;
  const char* b;
  const char* joined;
};

class JoinPathTest : public ::testing::TestWithParam<JoinCase> {};

TEST_P(JoinPathTest, Joins) {
  EXPECT_EQ(JoinPath(GetParam().a, GetParam().b), GetParam().joined)
      << "'" << GetParam().a << "' + '" << GetParam().b << "'";
}

INSTANTIATE_TEST_SUITE_P(Table, JoinPathTest,
                         ::testing::Values(JoinCase{"/data", "incoming", "/data/incoming"},
                                           JoinCase{"/data/", "incoming", "/data/incoming"},
                                           JoinCase{"/data", "/incoming", "/data/incoming"},
                                           JoinCase{"/data//", "//incoming", "/data/incoming"},
                                           JoinCase{"/", "data", "/data"},
                                           JoinCase{"data", "a/b", "data/a/b"},
                                           JoinCase{"", "a", "a"}, JoinCase{"a", "", "a"}));

class FileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-fs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs_->RemoveTree(dir_); }

  std::string Path(std::string_view name) const { return JoinPath(dir_, name); }

  void Write(const std::string& path, std::string_view data) {
    auto file = fs_->NewWritableFile(path);
    ASSERT_TRUE(file.has_value()) << file.error().ToString();
    ASSERT_TRUE((*file)->Append(data).ok());
    ASSERT_TRUE((*file)->Close().ok());
  }

  std::string Read(const std::string& path) {
    auto content = fs_->ReadFile(path);
    EXPECT_TRUE(content.has_value()) << content.error().ToString();
    return content ? *content : "";
  }

  std::vector<std::string> List(const std::string& dir) {
    auto names = fs_->ListDir(dir);
    EXPECT_TRUE(names.has_value()) << names.error().ToString();
    std::vector<std::string> sorted = names ? *names : std::vector<std::string>{};
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
};

TEST_F(FileSystemTest, WriteSyncAndReadBack) {
  std::string big(1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 131 % 251);
  }
  auto file = fs_->NewWritableFile(Path("a.dcm"));
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append(big).ok());
  ASSERT_TRUE((*file)->Append("tail").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_TRUE((*file)->Close().ok()) << "closing twice is harmless";
  EXPECT_FALSE((*file)->Append("x").ok()) << "no writes after Close";
  EXPECT_EQ(Read(Path("a.dcm")), big + "tail");
  EXPECT_EQ(*fs_->FileSize(Path("a.dcm")), big.size() + 4);
}

TEST_F(FileSystemTest, NewWritableFileTruncates) {
  Write(Path("f"), "long old content");
  Write(Path("f"), "new");
  EXPECT_EQ(Read(Path("f")), "new");
}

TEST_F(FileSystemTest, AppendableFileCreatesThenAppends) {
  for (const char* line : {"one\n", "two\n"}) {
    auto file = fs_->NewAppendableFile(Path("journal"));
    ASSERT_TRUE(file.has_value()) << file.error().ToString();
    ASSERT_TRUE((*file)->Append(line).ok());
    ASSERT_TRUE((*file)->Close().ok());
  }
  EXPECT_EQ(Read(Path("journal")), "one\ntwo\n");
}

TEST_F(FileSystemTest, MissingFilesAreNotFound) {
  EXPECT_EQ(fs_->ReadFile(Path("nope")).error().code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->FileSize(Path("nope")).error().code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->SyncFile(Path("nope")).code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->SyncDir(Path("nope")).code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->RemoveFile(Path("nope")).code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->RemoveTree(Path("nope")).code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->ListDir(Path("nope")).error().code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->Rename(Path("nope"), Path("x")).code(), Status::Code::kNotFound);
  EXPECT_EQ(fs_->NewWritableFile(Path("no/dir")).error().code(), Status::Code::kNotFound);
  Status s = fs_->RemoveFile(Path("nope"));
  EXPECT_NE(s.message().find(Path("nope")), std::string::npos) << "errors name the path";
}

TEST_F(FileSystemTest, SyncFileAndDir) {
  Write(Path("f"), "data");
  EXPECT_TRUE(fs_->SyncFile(Path("f")).ok());
  EXPECT_TRUE(fs_->SyncDir(dir_).ok());
}

TEST_F(FileSystemTest, RenameReplacesFile) {
  Write(Path("a"), "new");
  Write(Path("b"), "old");
  ASSERT_TRUE(fs_->Rename(Path("a"), Path("b")).ok());
  EXPECT_FALSE(fs_->Exists(Path("a")));
  EXPECT_EQ(Read(Path("b")), "new");
}

TEST_F(FileSystemTest, RenameDirectoryOntoNonEmptyDirectoryIsAlreadyExists) {
  ASSERT_TRUE(fs_->CreateDir(Path("src")).ok());
  Write(Path("src/x"), "1");
  ASSERT_TRUE(fs_->CreateDir(Path("dst")).ok());
  Write(Path("dst/y"), "2");
  Status s = fs_->Rename(Path("src"), Path("dst"));
  EXPECT_EQ(s.code(), Status::Code::kAlreadyExists) << s.ToString();
  EXPECT_EQ(Read(Path("src/x")), "1");
  EXPECT_EQ(Read(Path("dst/y")), "2");
}

TEST_F(FileSystemTest, RenameDirectoryOntoEmptyDirectoryReplacesIt) {
  ASSERT_TRUE(fs_->CreateDir(Path("src")).ok());
  Write(Path("src/x"), "1");
  ASSERT_TRUE(fs_->CreateDir(Path("dst")).ok());
  ASSERT_TRUE(fs_->Rename(Path("src"), Path("dst")).ok());
  EXPECT_EQ(Read(Path("dst/x")), "1");
  EXPECT_FALSE(fs_->Exists(Path("src")));
}

TEST_F(FileSystemTest, LinkGivesASecondName) {
  Write(Path("a"), "data");
  ASSERT_TRUE(fs_->Link(Path("a"), Path("b")).ok());
  ASSERT_TRUE(fs_->RemoveFile(Path("a")).ok());
  EXPECT_EQ(Read(Path("b")), "data");
  Write(Path("c"), "other");
  EXPECT_EQ(fs_->Link(Path("b"), Path("c")).code(), Status::Code::kAlreadyExists);
}

TEST_F(FileSystemTest, CreateDir) {
  ASSERT_TRUE(fs_->CreateDir(Path("d")).ok());
  EXPECT_TRUE(fs_->IsDirectory(Path("d")));
  EXPECT_EQ(fs_->CreateDir(Path("d")).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(fs_->CreateDir(Path("x/y")).code(), Status::Code::kNotFound);
}

TEST_F(FileSystemTest, CreateDirsCreatesParentsAndIsIdempotent) {
  ASSERT_TRUE(fs_->CreateDirs(Path("a/b/c")).ok());
  EXPECT_TRUE(fs_->IsDirectory(Path("a/b/c")));
  EXPECT_TRUE(fs_->CreateDirs(Path("a/b/c")).ok());
  EXPECT_TRUE(fs_->CreateDirs(Path("a/b/c/")).ok());
  EXPECT_TRUE(fs_->CreateDirs(dir_).ok());
  Write(Path("file"), "x");
  EXPECT_FALSE(fs_->CreateDirs(Path("file")).ok());
  EXPECT_FALSE(fs_->CreateDirs(Path("file/sub")).ok());
}

TEST_F(FileSystemTest, RemoveTree) {
  ASSERT_TRUE(fs_->CreateDirs(Path("t/a/b")).ok());
  Write(Path("t/a/b/f1"), "1");
  Write(Path("t/a/f2"), "2");
  Write(Path("t/f3"), "3");
  ASSERT_TRUE(fs_->CreateDir(Path("t/empty")).ok());
  ASSERT_TRUE(fs_->RemoveTree(Path("t")).ok());
  EXPECT_FALSE(fs_->Exists(Path("t")));
  Write(Path("lone"), "x");
  EXPECT_TRUE(fs_->RemoveTree(Path("lone")).ok()) << "a plain file is removed too";
  EXPECT_FALSE(fs_->Exists(Path("lone")));
}

TEST_F(FileSystemTest, ListDirAndQueries) {
  ASSERT_TRUE(fs_->CreateDir(Path("sub")).ok());
  Write(Path("f"), "12345");
  EXPECT_EQ(List(dir_), (std::vector<std::string>{"f", "sub"}));
  EXPECT_TRUE(List(Path("sub")).empty());
  EXPECT_TRUE(fs_->Exists(Path("f")));
  EXPECT_TRUE(fs_->Exists(Path("sub")));
  EXPECT_FALSE(fs_->Exists(Path("g")));
  EXPECT_TRUE(fs_->IsDirectory(Path("sub")));
  EXPECT_FALSE(fs_->IsDirectory(Path("f")));
  EXPECT_FALSE(fs_->IsDirectory(Path("g")));
  EXPECT_EQ(*fs_->FileSize(Path("f")), 5u);
}

TEST_F(FileSystemTest, DiskSpace) {
  auto space = fs_->GetDiskSpace(dir_);
  ASSERT_TRUE(space.has_value()) << space.error().ToString();
  EXPECT_GT(space->total_bytes, 0u);
  EXPECT_LE(space->available_bytes, space->total_bytes);
  EXPECT_EQ(fs_->GetDiskSpace(Path("nope")).error().code(), Status::Code::kNotFound);
}

TEST_F(FileSystemTest, ConcurrentWritersInOneDirectory) {
  constexpr int kThreads = 8;
  constexpr int kFiles = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        std::string name = Path("f" + std::to_string(t) + "-" + std::to_string(i));
        auto file = fs_->NewWritableFile(name + ".tmp");
        ASSERT_TRUE(file.has_value());
        ASSERT_TRUE((*file)->Append(std::string(1000 + i, 'a' + t)).ok());
        ASSERT_TRUE((*file)->Close().ok());
        ASSERT_TRUE(fs_->Rename(name + ".tmp", name).ok());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(List(dir_).size(), static_cast<size_t>(kThreads * kFiles));
  EXPECT_EQ(Read(Path("f3-7")), std::string(1007, 'd'));
}

}  // namespace
}  // namespace ferry
