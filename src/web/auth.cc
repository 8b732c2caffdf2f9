#include "web/auth.h"

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <semaphore>

namespace ferry::web {
namespace {

std::string ToHex(const unsigned char* data, size_t size) {
  std::string out(size * 2, '0');
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

UserRecord UserFromRow(const db::Row& row) {
  UserRecord u;
  u.username = row.Text(0);
  u.password_hash = row.Text(1);
  auto role = ParseRole(row.Text(2));
  u.role = role ? *role : Role::kViewer;
  u.disabled = row.Int(3) != 0;
  u.created_us = row.Int(4);
  u.updated_us = row.Int(5);
  return u;
}

TokenRecord TokenFromRow(const db::Row& row) {
  TokenRecord t;
  t.id = row.Int(0);
  t.username = row.Text(1);
  t.name = row.Text(2);
  t.created_us = row.Int(3);
  t.last_used_us = row.Int(4);
  t.expires_us = row.Int(5);
  return t;
}

// Each argon2id computation takes 64 MiB: at most two at a time bounds the memory a burst of
// logins can claim, whatever the number of worker threads.
std::counting_semaphore<2> hash_slots(2);

class HashSlot {
 public:
  HashSlot() { hash_slots.acquire(); }
  ~HashSlot() { hash_slots.release(); }
  HashSlot(const HashSlot&) = delete;
  HashSlot& operator=(const HashSlot&) = delete;
};

constexpr const char* kUserColumns =
    "username, password_hash, role, disabled, created_us, updated_us";
constexpr const char* kTokenColumns = "id, username, name, created_us, last_used_us, expires_us";

Status RequireChanged(Result<int64_t> changed, const std::string& username) {
  if (!changed) {
    return changed.error();
  }
  if (*changed == 0) {
    return Status::NotFound(fmt::format("there is no user '{}'", username));
  }
  return Status::Ok();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kViewer:
      return "viewer";
  }
  return "viewer";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "admin") {
    return Role::kAdmin;
  }
  if (name == "operator") {
    return Role::kOperator;
  }
  if (name == "viewer") {
    return Role::kViewer;
  }
  return Status::InvalidArgument(
      fmt::format("unknown role '{}': use admin, operator or viewer", name));
}

Status InitCrypto() {
  if (sodium_init() < 0) {
    return Status::Internal("libsodium cannot initialise (no entropy source?)");
  }
  return Status::Ok();
}

Result<std::string> HashPassword(std::string_view password) {
  FERRY_RETURN_IF_ERROR(InitCrypto());
  char out[crypto_pwhash_STRBYTES];
  HashSlot slot;
  if (crypto_pwhash_str_alg(
          out, password.data(), password.size(), crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
          crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status::Internal("cannot hash the password (out of memory?)");
  }
  return std::string(out);
}

bool VerifyPassword(std::string_view encoded_hash, std::string_view password) {
  if (!InitCrypto().ok() || encoded_hash.empty() || encoded_hash.size() >= crypto_pwhash_STRBYTES) {
    return false;
  }
  std::string hash(encoded_hash);  // NUL-terminated copy
  HashSlot slot;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::string RandomHex(size_t bytes) {
  InitCrypto();
  std::vector<unsigned char> buf(bytes);
  randombytes_buf(buf.data(), buf.size());
  return ToHex(buf.data(), buf.size());
}

std::string NewApiToken() { return "ferry_" + RandomHex(32); }

std::string HashToken(std::string_view token) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(token.data()), token.size());
  return ToHex(digest, sizeof(digest));
}

std::string RandomPassword() {
  InitCrypto();
  static constexpr char kAlphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  std::string out;
  for (int i = 0; i < 24; ++i) {
    out += kAlphabet[randombytes_uniform(sizeof(kAlphabet) - 1)];
  }
  return out;
}

bool SecureEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool IsUnsafeMethod(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

bool CsrfAllows(std::string_view method, bool by_cookie, std::string_view header_token,
                std::string_view session_csrf) {
  if (!IsUnsafeMethod(method) || !by_cookie) {
    return true;
  }
  return !header_token.empty() && !session_csrf.empty() && SecureEquals(header_token, session_csrf);
}

// ----- SessionStore -----

SessionStore::SessionStore(Clock* clock, std::chrono::seconds idle_timeout)
    : clock_(clock), idle_timeout_(idle_timeout) {}

Session SessionStore::Create(const std::string& user, Role role) {
  Session s;
  s.id = RandomHex(32);
  s.csrf = RandomHex(32);
  s.user = user;
  s.role = role;
  s.last_used = clock_->SteadyNow();
  std::lock_guard<std::mutex> lock(mu_);
  // Drop expired sessions now and then so that abandoned ones do not accumulate.
  SteadyTime now = s.last_used;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = now - it->second.last_used > idle_timeout_ ? sessions_.erase(it) : std::next(it);
  }
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> SessionStore::Touch(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return std::nullopt;
  }
  SteadyTime now = clock_->SteadyNow();
  if (now - it->second.last_used > idle_timeout_) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void SessionStore::Remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(id);
}

void SessionStore::RemoveUser(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.user == user ? sessions_.erase(it) : std::next(it);
  }
}

size_t SessionStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

// ----- LoginThrottle -----

std::chrono::seconds LoginThrottle::DelayAfter(int failures) {
  if (failures < kFreeFailures) {
    return std::chrono::seconds(0);
  }
  std::chrono::seconds delay = kFirstDelay;
  for (int i = kFreeFailures; i < failures && delay < kMaxDelay; ++i) {
    delay *= 2;
  }
  return std::min(delay, kMaxDelay);
}

std::chrono::seconds LoginThrottle::WaitLocked(const std::string& key, SteadyTime now) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.blocked_until <= now) {
    return std::chrono::seconds(0);
  }
  // Round up: "Retry-After: 0" while still blocked would invite a busy loop.
  auto left = std::chrono::ceil<std::chrono::seconds>(it->second.blocked_until - now);
  return std::max(left, std::chrono::seconds(1));
}

std::chrono::seconds LoginThrottle::RetryAfter(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return WaitLocked(key, clock_->SteadyNow());
}

std::chrono::seconds LoginThrottle::Attempt(std::initializer_list<std::string> keys) {
  std::lock_guard<std::mutex> lock(mu_);
  SteadyTime now = clock_->SteadyNow();
  std::chrono::seconds wait(0);
  for (const auto& key : keys) {
    wait = std::max(wait, WaitLocked(key, now));
  }
  if (wait.count() > 0) {
    return wait;
  }
  for (const auto& key : keys) {
    Entry& e = entries_[key];
    e.failures++;
    e.blocked_until = now + DelayAfter(e.failures);
  }
  if (entries_.size() > 10000) {  // forget keys quiet for longer than the longest delay
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = now - it->second.blocked_until > kMaxDelay ? entries_.erase(it) : std::next(it);
    }
  }
  return wait;
}

void LoginThrottle::Reset(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(key);
}

// ----- accounts -----

bool IsValidUsername(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
  });
}

Status CheckPasswordPolicy(std::string_view password) {
  if (password.size() < 8) {
    return Status::InvalidArgument("the password is too short: use at least 8 characters");
  }
  if (password.size() > 1024) {
    return Status::InvalidArgument("the password is too long: use at most 1024 characters");
  }
  return Status::Ok();
}

int64_t NowMicros(Clock* clock) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock->Now().time_since_epoch())
      .count();
}

Result<std::vector<UserRecord>> ListUsers(db::Database* db) {
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows,
      db->Query(fmt::format("SELECT {} FROM users ORDER BY username", kUserColumns)));
  std::vector<UserRecord> out;
  for (const auto& row : rows.rows) {
    out.push_back(UserFromRow(row));
  }
  return out;
}

Result<UserRecord> GetUser(db::Database* db, const std::string& username) {
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows,
      db->Query(fmt::format("SELECT {} FROM users WHERE username = $1", kUserColumns), {username}));
  if (rows.empty()) {
    return Status::NotFound(fmt::format("there is no user '{}'", username));
  }
  return UserFromRow(rows[0]);
}

Result<int64_t> CountUsers(db::Database* db) {
  FERRY_ASSIGN_OR_RETURN(db::Rows rows, db->Query("SELECT COUNT(*) FROM users"));
  return rows.empty() ? int64_t{0} : rows[0].Int(0);
}

Status CreateUser(db::Database* db, Clock* clock, const std::string& username, Role role,
                  std::string_view password) {
  if (!IsValidUsername(username)) {
    return Status::InvalidArgument(fmt::format(
        "'{}' is not a valid user name: use 1 to 64 letters, digits, '.', '_', '@' or '-'",
        username));
  }
  FERRY_RETURN_IF_ERROR(CheckPasswordPolicy(password));
  auto existing = GetUser(db, username);
  if (existing) {
    return Status::AlreadyExists(fmt::format("the user '{}' exists already", username));
  }
  if (existing.error().code() != Status::Code::kNotFound) {
    return existing.error();
  }
  FERRY_ASSIGN_OR_RETURN(std::string hash, HashPassword(password));
  int64_t now = NowMicros(clock);
  auto inserted = db->Execute(
      "INSERT INTO users (username, password_hash, role, created_us, updated_us, disabled) "
      "VALUES ($1, $2, $3, $4, $5, 0)",
      {username, hash, std::string(RoleName(role)), now, now});
  if (!inserted) {
    // Created by someone else between the check and the insert?
    if (GetUser(db, username)) {
      return Status::AlreadyExists(fmt::format("the user '{}' exists already", username));
    }
    return inserted.error();
  }
  return Status::Ok();
}

Status SetPassword(db::Database* db, Clock* clock, const std::string& username,
                   std::string_view password) {
  FERRY_RETURN_IF_ERROR(CheckPasswordPolicy(password));
  FERRY_ASSIGN_OR_RETURN(std::string hash, HashPassword(password));
  return RequireChanged(
      db->Execute("UPDATE users SET password_hash = $1, updated_us = $2 WHERE username = $3",
                  {hash, NowMicros(clock), username}),
      username);
}

Status SetRole(db::Database* db, Clock* clock, const std::string& username, Role role) {
  return RequireChanged(
      db->Execute("UPDATE users SET role = $1, updated_us = $2 WHERE username = $3",
                  {std::string(RoleName(role)), NowMicros(clock), username}),
      username);
}

Status SetDisabled(db::Database* db, Clock* clock, const std::string& username, bool disabled) {
  return RequireChanged(
      db->Execute("UPDATE users SET disabled = $1, updated_us = $2 WHERE username = $3",
                  {int64_t{disabled ? 1 : 0}, NowMicros(clock), username}),
      username);
}

Status DeleteUser(db::Database* db, const std::string& username) {
  return db::InTransaction(db, [&]() -> Status {
    FERRY_RETURN_IF_ERROR(
        db->Execute("DELETE FROM api_tokens WHERE username = $1", {username}).status());
    return RequireChanged(db->Execute("DELETE FROM users WHERE username = $1", {username}),
                          username);
  });
}

Result<UserRecord> CheckLogin(db::Database* db, const std::string& username,
                              std::string_view password) {
  const Status denied = Status::PermissionDenied("wrong user name or password");
  auto user = GetUser(db, username);
  if (!user) {
    if (user.error().code() != Status::Code::kNotFound) {
      return user.error();
    }
    // Spend the time of a real verification so that unknown names do not answer faster.
    static const std::string kDummy = HashPassword("not a password of anyone").value();
    VerifyPassword(kDummy, password);
    return denied;
  }
  if (!VerifyPassword(user->password_hash, password) || user->disabled) {
    return denied;
  }
  return user;
}

Result<std::string> CreateToken(db::Database* db, Clock* clock, const std::string& username,
                                const std::string& name, TokenRecord* record) {
  if (name.empty() || name.size() > 128) {
    return Status::InvalidArgument(
        "the token needs a name (1 to 128 characters) saying what uses it");
  }
  FERRY_ASSIGN_OR_RETURN(UserRecord user, GetUser(db, username));
  std::string token = NewApiToken();
  int64_t now = NowMicros(clock);
  FERRY_RETURN_IF_ERROR(
      db->Execute("INSERT INTO api_tokens (token_hash, username, name, created_us) "
                  "VALUES ($1, $2, $3, $4)",
                  {HashToken(token), user.username, name, now})
          .status());
  if (record != nullptr) {
    FERRY_ASSIGN_OR_RETURN(
        db::Rows rows,
        db->Query(fmt::format("SELECT {} FROM api_tokens WHERE token_hash = $1", kTokenColumns),
                  {HashToken(token)}));
    if (!rows.empty()) {
      *record = TokenFromRow(rows[0]);
    }
  }
  return token;
}

Result<std::vector<TokenRecord>> ListTokens(db::Database* db, const std::string& username) {
  Result<db::Rows> rows =
      username.empty()
          ? db->Query(fmt::format("SELECT {} FROM api_tokens ORDER BY id", kTokenColumns))
          : db->Query(fmt::format("SELECT {} FROM api_tokens WHERE username = $1 ORDER BY id",
                                  kTokenColumns),
                      {username});
  if (!rows) {
    return rows.error();
  }
  std::vector<TokenRecord> out;
  for (const auto& row : rows->rows) {
    out.push_back(TokenFromRow(row));
  }
  return out;
}

Result<TokenRecord> GetToken(db::Database* db, int64_t id) {
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows,
      db->Query(fmt::format("SELECT {} FROM api_tokens WHERE id = $1", kTokenColumns), {id}));
  if (rows.empty()) {
    return Status::NotFound(fmt::format("there is no API token with id {}", id));
  }
  return TokenFromRow(rows[0]);
}

Status DeleteToken(db::Database* db, int64_t id) {
  FERRY_ASSIGN_OR_RETURN(int64_t n, db->Execute("DELETE FROM api_tokens WHERE id = $1", {id}));
  if (n == 0) {
    return Status::NotFound(fmt::format("there is no API token with id {}", id));
  }
  return Status::Ok();
}

Result<UserRecord> CheckToken(db::Database* db, Clock* clock, std::string_view token) {
  const Status denied = Status::PermissionDenied(
      "the API token is not valid (unknown, expired, or its user is disabled); create a new "
      "one with POST /api/v1/tokens or `ferry user token`");
  FERRY_ASSIGN_OR_RETURN(
      db::Rows rows,
      db->Query("SELECT t.id, t.expires_us, u.username, u.password_hash, u.role, u.disabled, "
                "u.created_us, u.updated_us FROM api_tokens t JOIN users u ON u.username = "
                "t.username WHERE t.token_hash = $1",
                {HashToken(token)}));
  if (rows.empty()) {
    return denied;
  }
  const db::Row& row = rows[0];
  int64_t now = NowMicros(clock);
  int64_t expires = row.Int(1);
  if (expires != 0 && expires < now) {
    return denied;
  }
  UserRecord u;
  u.username = row.Text(2);
  u.password_hash = row.Text(3);
  auto role = ParseRole(row.Text(4));
  u.role = role ? *role : Role::kViewer;
  u.disabled = row.Int(5) != 0;
  if (u.disabled) {
    return denied;
  }
  // Best effort: a failed bookkeeping update does not refuse the request.
  db->Execute("UPDATE api_tokens SET last_used_us = $1 WHERE id = $2", {now, row.Int(0)});
  return u;
}

void Audit(Journal* journal, const std::string& action, const std::string& actor,
           const std::string& address, const std::string& object, nlohmann::json details) {
  if (journal == nullptr) {
    return;
  }
  if (!details.is_object()) {
    details = nlohmann::json{{"value", details}};
  }
  details["actor"] = actor;
  details["address"] = address;
  details["object"] = object;
  journal->Append({"audit." + action, "", "", std::move(details)});
}

}  // namespace ferry::web
