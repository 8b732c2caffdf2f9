// Auth: the accounts and security of ferry's web service — password and token hashing (libsodium),
// the in-memory session store with its CSRF tokens, the login throttle, and the account and token
// operations on the database that both the web service and `ferry user` use.
//
// Passwords are hashed with argon2id (crypto_pwhash_str_alg, "interactive" limits: about 0.1 s
// and 64 MiB per hash); the encoded hash carries its own salt and parameters. API tokens are 32
// random bytes, shown once and stored only as their SHA-256 (a token has full entropy, so a
// fast hash is enough and lookup by hash is an index search).
//
// Thread-safety: the free functions are thread-safe (database functions use the caller's
// connection). SessionStore and LoginThrottle are internally locked and may be shared by all of
// the server's worker threads.
#pragma once

#include <chrono>
#include <initializer_list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "db/database.h"
#include "journal/journal.h"
#include "web/route.h"

namespace ferry::web {

// "admin", "operator", "viewer".
std::string_view RoleName(Role role);
// InvalidArgument naming the three roles for anything else.
Result<Role> ParseRole(std::string_view name);

// Initialises libsodium (idempotent). Internal when the library cannot start.
Status InitCrypto();

// The argon2id hash of `password` in libsodium's encoded form ("$argon2id$v=19$..."). Internal
// when hashing fails (out of memory).
Result<std::string> HashPassword(std::string_view password);
// True when `password` matches `encoded_hash`; false for a mismatch or a malformed hash.
bool VerifyPassword(std::string_view encoded_hash, std::string_view password);

// `bytes` random bytes, hex-encoded (2 * bytes characters).
std::string RandomHex(size_t bytes);
// A new API token: "ferry_" + 64 hex digits.
std::string NewApiToken();
// Hex SHA-256 of a token: the only form in which tokens are stored.
std::string HashToken(std::string_view token);
// A random password for the first-start admin account (24 characters of [A-Za-z0-9]).
std::string RandomPassword();

// Constant-time comparison of two strings (for CSRF tokens).
bool SecureEquals(std::string_view a, std::string_view b);

// True for the methods that change state: POST, PUT, PATCH, DELETE.
bool IsUnsafeMethod(std::string_view method);
// Whether a request may proceed as far as CSRF is concerned: safe methods and requests
// authenticated by a bearer token always pass; an unsafe request authenticated by a session
// cookie needs `header_token` equal to the session's CSRF token.
bool CsrfAllows(std::string_view method, bool by_cookie, std::string_view header_token,
                std::string_view session_csrf);

// A logged-in browser session.
struct Session {
  std::string id;    // the cookie value
  std::string csrf;  // must come back in X-CSRF-Token on unsafe requests
  std::string user;
  Role role = Role::kViewer;
  SteadyTime last_used;
};

// Sessions in memory: they end `idle_timeout` after their last request, on logout, or when the
// process stops (users log in again after a restart).
class SessionStore {
 public:
  SessionStore(Clock* clock, std::chrono::seconds idle_timeout);

  Session Create(const std::string& user, Role role);
  // The live session with this id, its idle timer restarted; nullopt when unknown or expired
  // (an expired session is removed).
  std::optional<Session> Touch(const std::string& id);
  void Remove(const std::string& id);
  // Ends every session of `user` (account deleted or disabled, password or role changed).
  void RemoveUser(const std::string& user);
  size_t size() const;

 private:
  Clock* clock_;
  std::chrono::seconds idle_timeout_;
  mutable std::mutex mu_;
  std::map<std::string, Session> sessions_;
};

// Slows down password guessing: after `kFreeFailures` failed logins for a key (a user name or a
// client address) further attempts are refused for 1 s, doubling with each failure up to 5 min.
// A successful login resets the user name's and the address's record.
class LoginThrottle {
 public:
  static constexpr int kFreeFailures = 3;
  static constexpr std::chrono::seconds kFirstDelay{1};
  static constexpr std::chrono::seconds kMaxDelay{300};

  explicit LoginThrottle(Clock* clock) : clock_(clock) {}

  // How long `key` must still wait; zero when an attempt is allowed now.
  std::chrono::seconds RetryAfter(const std::string& key) const;
  void Reset(const std::string& key);

  // Check and count in one step, so that parallel attempts cannot all pass the check before
  // the first failure is recorded: when none of `keys` must wait, the attempt is counted as a
  // failure for each of them (Reset them on success) and zero is returned; otherwise nothing
  // is counted and the longest wait is returned.
  std::chrono::seconds Attempt(std::initializer_list<std::string> keys);

  // The delay after `failures` consecutive failures (zero up to kFreeFailures).
  static std::chrono::seconds DelayAfter(int failures);

 private:
  struct Entry {
    int failures = 0;
    SteadyTime blocked_until{};
  };
  std::chrono::seconds WaitLocked(const std::string& key, SteadyTime now) const;

  Clock* clock_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// ----- accounts in the database (users / api_tokens tables, src/db/schema.h) -----

struct UserRecord {
  std::string username;
  std::string password_hash;
  Role role = Role::kViewer;
  bool disabled = false;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

struct TokenRecord {
  int64_t id = 0;
  std::string username;
  std::string name;
  int64_t created_us = 0;
  int64_t last_used_us = 0;  // 0: never used
  int64_t expires_us = 0;    // 0: does not expire
};

// A user name ferry accepts: 1..64 characters of [A-Za-z0-9._@-].
bool IsValidUsername(std::string_view name);
// InvalidArgument saying why a new password is refused (shorter than 8 characters).
Status CheckPasswordPolicy(std::string_view password);

int64_t NowMicros(Clock* clock);

Result<std::vector<UserRecord>> ListUsers(db::Database* db);
// NotFound when there is no such user.
Result<UserRecord> GetUser(db::Database* db, const std::string& username);
Result<int64_t> CountUsers(db::Database* db);
// AlreadyExists when the name is taken; InvalidArgument for a bad name or password.
Status CreateUser(db::Database* db, Clock* clock, const std::string& username, Role role,
                  std::string_view password);
Status SetPassword(db::Database* db, Clock* clock, const std::string& username,
                   std::string_view password);
Status SetRole(db::Database* db, Clock* clock, const std::string& username, Role role);
Status SetDisabled(db::Database* db, Clock* clock, const std::string& username, bool disabled);
// Deletes the user and their API tokens. NotFound when there is no such user.
Status DeleteUser(db::Database* db, const std::string& username);

// The user that `password` logs in, if the account exists, is enabled and the password matches.
// PermissionDenied otherwise (the same message for every reason, so that names cannot be probed);
// Unavailable when the database is down.
Result<UserRecord> CheckLogin(db::Database* db, const std::string& username,
                              std::string_view password);

// Creates a token for `username` and returns it (the only time it is visible).
Result<std::string> CreateToken(db::Database* db, Clock* clock, const std::string& username,
                                const std::string& name, TokenRecord* record = nullptr);
// The tokens of `username`, or of everyone when it is empty.
Result<std::vector<TokenRecord>> ListTokens(db::Database* db, const std::string& username);
Result<TokenRecord> GetToken(db::Database* db, int64_t id);
Status DeleteToken(db::Database* db, int64_t id);
// The enabled user a bearer token belongs to (and records its use); PermissionDenied for an
// unknown, expired or disabled one.
Result<UserRecord> CheckToken(db::Database* db, Clock* clock, std::string_view token);

// Appends an audit event "audit.<action>" with {actor, address, object, ...details}.
void Audit(Journal* journal, const std::string& action, const std::string& actor,
           const std::string& address, const std::string& object,
           nlohmann::json details = nlohmann::json::object());

}  // namespace ferry::web
