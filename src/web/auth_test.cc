#include "web/auth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "db/schema.h"
#include "testing/fake_clock.h"

namespace ferry::web {
namespace {

using std::chrono::seconds;

TEST(PasswordHash, VerifiesOnlyTheRightPassword) {
  auto hash = HashPassword("correct horse battery");
  ASSERT_TRUE(hash.has_value());
  EXPECT_TRUE(hash->starts_with("$argon2id$")) << *hash;
  EXPECT_TRUE(VerifyPassword(*hash, "correct horse battery"));
  EXPECT_FALSE(VerifyPassword(*hash, "correct horse batterY"));
  EXPECT_FALSE(VerifyPassword(*hash, ""));
  EXPECT_FALSE(VerifyPassword("not a hash", "correct horse battery"));
  EXPECT_FALSE(VerifyPassword("", ""));
}

TEST(PasswordHash, SaltsEveryHash) {
  EXPECT_NE(HashPassword("same password").value(), HashPassword("same password").value());
}

// The cost of a hash is set by its parameters, which the hash records: libsodium's
// "interactive" limits (64 MiB, 2 passes), about 0.1 s on a server core. Checked by value, not
// by the clock, which a busy machine makes meaningless.
TEST(PasswordHash, UsesArgon2idWithInteractiveLimits) {
  auto hash = HashPassword("cost password");
  ASSERT_TRUE(hash.has_value());
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=65536,t=2,p=1$")) << *hash;
}

TEST(Tokens, AreRandomAndHashedDeterministically) {
  std::string a = NewApiToken();
  std::string b = NewApiToken();
  EXPECT_NE(a, b);
  EXPECT_TRUE(a.starts_with("ferry_"));
  EXPECT_EQ(a.size(), 6u + 64u);
  EXPECT_EQ(HashToken(a), HashToken(a));
  EXPECT_NE(HashToken(a), HashToken(b));
  EXPECT_EQ(HashToken(a).size(), 64u);
  EXPECT_EQ(HashToken(a).find(a.substr(6)), std::string::npos);
  // SHA-256 of "abc".
  EXPECT_EQ(HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Roles, ParseAndName) {
  for (Role r : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    EXPECT_EQ(ParseRole(RoleName(r)).value(), r);
  }
  EXPECT_FALSE(ParseRole("root").has_value());
  EXPECT_LT(Role::kViewer, Role::kOperator);
  EXPECT_LT(Role::kOperator, Role::kAdmin);
}

TEST(LoginThrottle, BackoffSchedule) {
  EXPECT_EQ(LoginThrottle::DelayAfter(0), seconds(0));
  EXPECT_EQ(LoginThrottle::DelayAfter(2), seconds(0));
  EXPECT_EQ(LoginThrottle::DelayAfter(3), seconds(1));
  EXPECT_EQ(LoginThrottle::DelayAfter(4), seconds(2));
  EXPECT_EQ(LoginThrottle::DelayAfter(5), seconds(4));
  EXPECT_EQ(LoginThrottle::DelayAfter(11), seconds(256));
  EXPECT_EQ(LoginThrottle::DelayAfter(12), seconds(300));
  EXPECT_EQ(LoginThrottle::DelayAfter(1000), seconds(300));
}

TEST(LoginThrottle, BlocksAfterThreeFailuresAndResets) {
  FakeClock clock;
  LoginThrottle t(&clock);
  for (int i = 0; i < 2; ++i) {
    t.Attempt({"user:a"});
    EXPECT_EQ(t.RetryAfter("user:a"), seconds(0));
  }
  t.Attempt({"user:a"});
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(1));
  EXPECT_EQ(t.RetryAfter("user:b"), seconds(0));  // other keys are unaffected
  clock.Advance(std::chrono::milliseconds(999));
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(1));
  clock.Advance(std::chrono::milliseconds(1));
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(0));
  t.Attempt({"user:a"});
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(2));
  t.Reset("user:a");
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(0));
  t.Attempt({"user:a"});
  EXPECT_EQ(t.RetryAfter("user:a"), seconds(0));  // the count started again
}

TEST(LoginThrottle, ParallelAttemptsCannotPassTheLimit) {
  FakeClock clock;
  LoginThrottle t(&clock);
  // Sixteen attempts start before any of them has checked its password: only the three free
  // ones may go ahead.
  std::vector<std::thread> threads;
  std::atomic<int> allowed{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if (t.Attempt({"user:admin", "address:10.0.0.9"}).count() == 0) {
        ++allowed;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(allowed.load(), LoginThrottle::kFreeFailures);
  EXPECT_EQ(t.RetryAfter("address:10.0.0.9"), seconds(1));
  // A blocked attempt is not counted; a success resets.
  clock.Advance(seconds(1));
  EXPECT_EQ(t.Attempt({"user:admin"}), seconds(0));
  EXPECT_EQ(t.RetryAfter("user:admin"), seconds(2));
  t.Reset("user:admin");
  EXPECT_EQ(t.Attempt({"user:admin"}), seconds(0));
}

TEST(Csrf, OnlyUnsafeCookieRequestsNeedTheToken) {
  EXPECT_TRUE(CsrfAllows("GET", true, "", "secret"));
  EXPECT_TRUE(CsrfAllows("POST", false, "", "secret"));  // bearer token
  EXPECT_FALSE(CsrfAllows("POST", true, "", "secret"));
  EXPECT_FALSE(CsrfAllows("PUT", true, "wrong!", "secret"));
  EXPECT_FALSE(CsrfAllows("DELETE", true, "secre", "secret"));
  EXPECT_FALSE(CsrfAllows("PATCH", true, "", ""));
  EXPECT_TRUE(CsrfAllows("DELETE", true, "secret", "secret"));
}

TEST(Sessions, ExpireAfterIdleTimeout) {
  FakeClock clock;
  SessionStore store(&clock, seconds(60));
  Session s = store.Create("alice", Role::kOperator);
  EXPECT_EQ(s.id.size(), 64u);
  EXPECT_NE(s.id, s.csrf);
  clock.Advance(seconds(59));
  auto touched = store.Touch(s.id);
  ASSERT_TRUE(touched.has_value());  // and the idle timer restarts
  EXPECT_EQ(touched->user, "alice");
  EXPECT_EQ(touched->role, Role::kOperator);
  clock.Advance(seconds(60));
  EXPECT_TRUE(store.Touch(s.id).has_value());
  clock.Advance(seconds(61));
  EXPECT_FALSE(store.Touch(s.id).has_value());
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Touch("unknown").has_value());
}

TEST(Sessions, LogoutAndRemoveUser) {
  FakeClock clock;
  SessionStore store(&clock, seconds(60));
  Session a = store.Create("alice", Role::kAdmin);
  Session a2 = store.Create("alice", Role::kAdmin);
  Session b = store.Create("bob", Role::kViewer);
  store.Remove(a.id);
  EXPECT_FALSE(store.Touch(a.id).has_value());
  EXPECT_TRUE(store.Touch(a2.id).has_value());
  store.RemoveUser("alice");
  EXPECT_FALSE(store.Touch(a2.id).has_value());
  EXPECT_TRUE(store.Touch(b.id).has_value());
}

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-auth-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto db = db::Database::Open("sqlite:" + (dir_ / "ferry.db").string());
    ASSERT_TRUE(db.has_value()) << db.error().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(db::Migrate(db_.get()).has_value());
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::unique_ptr<db::Database> db_;
  FakeClock clock_;
};

TEST_F(AccountsTest, UsersLoginAndTokens) {
  EXPECT_EQ(CountUsers(db_.get()).value(), 0);
  ASSERT_TRUE(CreateUser(db_.get(), &clock_, "alice", Role::kOperator, "password1").ok());
  EXPECT_EQ(CreateUser(db_.get(), &clock_, "alice", Role::kViewer, "password1").code(),
            Status::Code::kAlreadyExists);
  EXPECT_EQ(CreateUser(db_.get(), &clock_, "bad name", Role::kViewer, "password1").code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(CreateUser(db_.get(), &clock_, "bob", Role::kViewer, "short").code(),
            Status::Code::kInvalidArgument);

  EXPECT_TRUE(CheckLogin(db_.get(), "alice", "password1").has_value());
  EXPECT_EQ(CheckLogin(db_.get(), "alice", "password2").error().code(),
            Status::Code::kPermissionDenied);
  EXPECT_EQ(CheckLogin(db_.get(), "nobody", "password1").error().code(),
            Status::Code::kPermissionDenied);

  auto token = CreateToken(db_.get(), &clock_, "alice", "ci");
  ASSERT_TRUE(token.has_value());
  auto rows = db_->Query("SELECT token_hash FROM api_tokens");
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].Text(0), HashToken(*token));  // only the hash is stored
  auto user = CheckToken(db_.get(), &clock_, *token);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->username, "alice");
  EXPECT_EQ(user->role, Role::kOperator);
  EXPECT_FALSE(CheckToken(db_.get(), &clock_, *token + "x").has_value());

  ASSERT_TRUE(SetDisabled(db_.get(), &clock_, "alice", true).ok());
  EXPECT_FALSE(CheckLogin(db_.get(), "alice", "password1").has_value());
  EXPECT_FALSE(CheckToken(db_.get(), &clock_, *token).has_value());
  ASSERT_TRUE(SetDisabled(db_.get(), &clock_, "alice", false).ok());
  ASSERT_TRUE(SetPassword(db_.get(), &clock_, "alice", "password2").ok());
  EXPECT_TRUE(CheckLogin(db_.get(), "alice", "password2").has_value());
  ASSERT_TRUE(SetRole(db_.get(), &clock_, "alice", Role::kAdmin).ok());
  EXPECT_EQ(GetUser(db_.get(), "alice")->role, Role::kAdmin);

  ASSERT_TRUE(DeleteUser(db_.get(), "alice").ok());
  EXPECT_EQ(DeleteUser(db_.get(), "alice").code(), Status::Code::kNotFound);
  EXPECT_EQ(ListTokens(db_.get(), "")->size(), 0u);  // tokens went with the user
}

}  // namespace
}  // namespace ferry::web
