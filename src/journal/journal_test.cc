#include "journal/journal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <thread>

#include "testing/fake_clock.h"

namespace ferry {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-journal-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { DefaultFileSystem()->RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(JournalTest, AppendsOneJsonObjectPerLine) {
  FakeClock clock;
  auto journal = Journal::Open(dir_ + "/journal", "receiver", &clock, DefaultFileSystem());
  ASSERT_TRUE(journal.has_value()) << journal.error().ToString();
  (*journal)->Append({"series.first_seen", "1.2.3", "", {{"instances", 1}}});
  (*journal)->Append({"task.created", "", "t-1", {}});
  auto events = ReadJournalFile((*journal)->path(), DefaultFileSystem());
  ASSERT_TRUE(events.has_value());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0]["event"], "series.first_seen");
  EXPECT_EQ((*events)[0]["series_uid"], "1.2.3");
  EXPECT_EQ((*events)[0]["service"], "receiver");
  EXPECT_EQ((*events)[0]["details"]["instances"], 1);
  EXPECT_FALSE((*events)[0].contains("task_id"));
  EXPECT_EQ((*events)[1]["task_id"], "t-1");
  EXPECT_TRUE((*events)[1]["time"].is_string());
}

TEST_F(JournalTest, ConcurrentAppendsNeverInterleave) {
  auto journal = Journal::Open(dir_, "receiver", RealClock(), DefaultFileSystem());
  ASSERT_TRUE(journal.has_value());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        (*journal)->Append({"e", "", "", {{"t", t}, {"i", i}, {"pad", std::string(500, 'x')}}});
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  auto events = ReadJournalFile((*journal)->path(), DefaultFileSystem());
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(events->size(), 200u);
}

TEST_F(JournalTest, ReaderSkipsPartialLastLine) {
  auto file = DefaultFileSystem()->NewWritableFile(dir_ + "/j.jsonl");
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("{\"event\":\"a\"}\n{\"event\":\"b\"}\n{\"event\":\"c").ok());
  ASSERT_TRUE((*file)->Close().ok());
  auto events = ReadJournalFile(dir_ + "/j.jsonl", DefaultFileSystem());
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(events->size(), 2u);
}

TEST_F(JournalTest, InvalidUtf8InDetailsDoesNotThrow) {
  auto journal = Journal::Open(dir_, "receiver", RealClock(), DefaultFileSystem());
  ASSERT_TRUE(journal.has_value());
  (*journal)->Append({"e", "", "", {{"name", std::string("M\xfcller")}}});
  auto events = ReadJournalFile((*journal)->path(), DefaultFileSystem());
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(events->size(), 1u);
}

}  // namespace
}  // namespace ferry
