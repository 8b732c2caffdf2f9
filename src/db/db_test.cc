#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "db/counters.h"
#include "db/database.h"
#include "db/schema.h"

namespace ferry::db {
namespace {

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry_db_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    uri_ = "sqlite:" + (dir_ / "ferry.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string uri_;
};

TEST_F(SqliteTest, MigrateCreatesTheSchemaOnceAndIsIdempotent) {
  auto db = Database::Open(uri_);
  ASSERT_TRUE(db) << db.error().ToString();
  auto v = Migrate(db->get());
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_EQ(*v, kSchemaVersion);
  auto again = Migrate(db->get());
  ASSERT_TRUE(again) << again.error().ToString();
  auto rows = (*db)->Query("SELECT COUNT(*) FROM schema_migrations");
  ASSERT_TRUE(rows);
  EXPECT_EQ((*rows)[0].Int(0), kSchemaVersion);
}

TEST_F(SqliteTest, ParametersRoundTripWithNullsAndTypes) {
  auto db = Database::Open(uri_);
  ASSERT_TRUE(db);
  ASSERT_TRUE(Migrate(db->get()));
  auto n = (*db)->Execute(
      "INSERT INTO counters (name, labels, value) VALUES ($1, $2, $3)",
      {std::string("ferry_x_total"), std::string("{target=\"a\"}"), 2.5});
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, 1);
  auto rows = (*db)->Query("SELECT name, labels, value, NULL FROM counters WHERE name = $1",
                           {std::string("ferry_x_total")});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].Text(1), "{target=\"a\"}");
  EXPECT_DOUBLE_EQ((*rows)[0].Real(2), 2.5);
  EXPECT_TRUE((*rows)[0].IsNull(3));
  auto limited = (*db)->Query("SELECT name FROM counters LIMIT $1", {int64_t{0}});
  ASSERT_TRUE(limited);
  EXPECT_TRUE(limited->empty());
}

TEST_F(SqliteTest, FailedTransactionLeavesNothingBehind) {
  auto db = Database::Open(uri_);
  ASSERT_TRUE(db);
  ASSERT_TRUE(Migrate(db->get()));
  Status s = InTransaction(db->get(), [&]() -> Status {
    FERRY_RETURN_IF_ERROR((*db)->Execute("INSERT INTO counters VALUES ('a', '', 1)").status());
    return (*db)->Execute("INSERT INTO counters VALUES ('a', '', 2)").status();  // duplicate
  });
  EXPECT_EQ(s.code(), Status::Code::kAlreadyExists) << s.ToString();
  auto rows = (*db)->Query("SELECT COUNT(*) FROM counters");
  ASSERT_TRUE(rows);
  EXPECT_EQ((*rows)[0].Int(0), 0);
}

TEST_F(SqliteTest, BadStatementNamesTheProblem) {
  auto db = Database::Open(uri_);
  ASSERT_TRUE(db);
  auto rows = (*db)->Query("SELECT nope FROM nowhere");
  ASSERT_FALSE(rows);
  EXPECT_NE(rows.error().message().find("nowhere"), std::string::npos)
      << rows.error().ToString();
}

TEST_F(SqliteTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto db = Database::Open(uri_);
      if (db && Migrate(db->get())) {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 4);
  auto db = Database::Open(uri_);
  ASSERT_TRUE(db);
  auto rows = (*db)->Query("SELECT COUNT(*) FROM schema_migrations");
  ASSERT_TRUE(rows);
  EXPECT_EQ((*rows)[0].Int(0), kSchemaVersion);
}

TEST(LabelTextTest, EscapesValues) {
  EXPECT_EQ(LabelText({}), "");
  EXPECT_EQ(LabelText({{"target", "pacs"}}), "{target=\"pacs\"}");
  EXPECT_EQ(LabelText({{"a", "x\"y\\"}, {"b", "1"}}), "{a=\"x\\\"y\\\\\",b=\"1\"}");
}

TEST(RedactUriTest, HidesThePassword) {
  EXPECT_EQ(RedactUri("postgresql://ferry:s3cret@db:5432/ferry"),
            "postgresql://ferry:***@db:5432/ferry");
  EXPECT_EQ(RedactUri("postgresql://db/ferry"), "postgresql://db/ferry");
  EXPECT_EQ(RedactUri("sqlite:/var/lib/ferry/ferry.db"), "sqlite:/var/lib/ferry/ferry.db");
  EXPECT_EQ(RedactUri("postgresql://ferry@db/ferry?password=hunter2&connect_timeout=10"),
            "postgresql://ferry@db/ferry?password=***&connect_timeout=10");
  EXPECT_EQ(RedactUri("postgresql://db/ferry?sslmode=require&sslpassword=x"),
            "postgresql://db/ferry?sslmode=require&sslpassword=***");
  EXPECT_EQ(RedactUri("postgresql://u:p@ss@db/x"), "postgresql://u:***@db/x");
}

TEST(OpenTest, UnknownSchemeIsRejected) {
  auto db = Database::Open("mysql://x");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), Status::Code::kInvalidArgument);
}

TEST(OpenTest, PostgresThatIsDownIsUnavailable) {
  auto db = Database::Open("postgresql://ferry@127.0.0.1:1/ferry?connect_timeout=2");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), Status::Code::kUnavailable) << db.error().ToString();
}

}  // namespace
}  // namespace ferry::db
