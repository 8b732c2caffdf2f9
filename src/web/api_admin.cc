// The account, token, config, audit and session endpoints (AddAdminRoutes, AddSessionRoutes).
// Every change and every login attempt is audited (journal event audit.<action>).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/logging.h"
#include "router/rule_set.h"
#include "web/auth.h"
#include "web/first_password.h"
#include "web/route.h"
#include "web/server.h"

namespace ferry::web {
namespace {

using nlohmann::json;

Response DbDown() {
  return Response::Error(503,
                         "the database is unavailable; try again later (see /healthz for why)");
}

// Maps a Status from the account functions to an HTTP answer.
Response FromStatus(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
      return Response::Error(400, s.message());
    case Status::Code::kNotFound:
      return Response::Error(404, s.message());
    case Status::Code::kAlreadyExists:
      return Response::Error(409, s.message());
    case Status::Code::kPermissionDenied:
      return Response::Error(403, s.message());
    case Status::Code::kUnavailable:
      return Response::Error(503, "the database is unavailable: " + s.message());
    default:
      return Response::Error(500, s.message());
  }
}

// The request body as a JSON object, or the 400 answer saying what is wrong.
std::optional<json> BodyObject(const Request& req, Response* error) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    *error = Response::Error(400, "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string StringField(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string IsoFromMicros(int64_t us) {
  if (us == 0) {
    return "";
  }
  return FormatIso8601(WallTime(std::chrono::microseconds(us)));
}

json UserJson(const UserRecord& u) {
  return {{"username", u.username},
          {"role", RoleName(u.role)},
          {"disabled", u.disabled},
          {"created_at", IsoFromMicros(u.created_us)},
          {"updated_at", IsoFromMicros(u.updated_us)}};
}

json TokenJson(const TokenRecord& t) {
  json j = {{"id", t.id},
            {"username", t.username},
            {"name", t.name},
            {"created_at", IsoFromMicros(t.created_us)},
            {"last_used_at", t.last_used_us ? json(IsoFromMicros(t.last_used_us)) : json()}};
  j["expires_at"] = t.expires_us ? json(IsoFromMicros(t.expires_us)) : json();
  return j;
}

int64_t QueryInt(const Request& req, const std::string& key, int64_t fallback, int64_t lo,
                 int64_t hi) {
  auto it = req.query.find(key);
  if (it == req.query.end()) {
    return fallback;
  }
  try {
    return std::clamp<int64_t>(std::stoll(it->second), lo, hi);
  } catch (const std::exception&) {
    return fallback;
  }
}

// ----- config -----

bool LooksSecret(const std::string& key) {
  static const std::regex kSecret(
      "password|secret|token|access_key|api_key|credential|"
      "^database$|private|webhook",
      std::regex::icase);
  return std::regex_search(key, kSecret);
}

// A URL with credentials in it (https://user:password@host/...).
bool HasUrlCredentials(const json& value) {
  static const std::regex kCredentials("^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", std::regex::icase);
  return value.is_string() && std::regex_search(value.get_ref<const std::string&>(), kCredentials);
}

// Flattens a JSON document into "$.a.b[0].c" -> value (leaves only).
void Flatten(const json& value, const std::string& path, const std::string& key,
             std::map<std::string, std::pair<json, bool>>* out) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [k, v] : value.items()) {
      Flatten(v, path + "." + k, k, out);
    }
  } else if (value.is_array() && !value.empty()) {
    for (size_t i = 0; i < value.size(); ++i) {
      Flatten(value[i], fmt::format("{}[{}]", path, i), key, out);
    }
  } else {
    (*out)[path] = {value, LooksSecret(key) || HasUrlCredentials(value)};
  }
}

// The changed JSON paths between two config documents, secrets masked.
json ConfigDiff(const json& before, const json& after) {
  std::map<std::string, std::pair<json, bool>> a;
  std::map<std::string, std::pair<json, bool>> b;
  Flatten(before, "$", "", &a);
  Flatten(after, "$", "", &b);
  auto shown = [](const std::pair<json, bool>* v) -> json {
    if (v == nullptr) {
      return nullptr;
    }
    return v->second ? json("***") : v->first;
  };
  json changes = json::array();
  for (const auto& [path, v] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      changes.push_back({{"path", path}, {"old", shown(&v)}, {"new", nullptr}});
    } else if (it->second.first != v.first) {
      changes.push_back({{"path", path}, {"old", shown(&v)}, {"new", shown(&it->second)}});
    }
  }
  for (const auto& [path, v] : b) {
    if (a.count(path) == 0) {
      changes.push_back({{"path", path}, {"old", nullptr}, {"new", shown(&v)}});
    }
  }
  return changes;
}

json ValidateConfigText(const std::string& text) {
  json errors = json::array();
  std::vector<ConfigError> config_errors;
  Config parsed = ParseConfig(text, &config_errors, /*check_filesystem=*/true);
  for (const auto& e : config_errors) {
    errors.push_back({{"path", e.path}, {"reason", e.reason}});
  }
  if (config_errors.empty()) {
    std::vector<RuleSet::Error> rule_errors;
    RuleSet::Build(parsed.rules, &rule_errors);
    for (const auto& e : rule_errors) {
      errors.push_back({{"path", e.path}, {"reason", e.reason}});
    }
  }
  return {{"valid", errors.empty()}, {"errors", errors}};
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::FromErrno(errno, "open " + path);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Temp file in the same folder, fsync, rename over the old file, fsync the folder.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string dir =
      path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  if (dir.empty()) {
    dir = ".";
  }
  std::string tmp = path + ".tmp-" + RandomHex(6);
  // Keep the permissions of the file it replaces (it may hold secrets: 0600).
  struct stat old_stat {};
  mode_t mode = stat(path.c_str(), &old_stat) == 0 ? (old_stat.st_mode & 07777) : 0640;
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return Status::FromErrno(errno, "create " + tmp);
  }
  fchmod(fd, mode);  // open() applied the umask
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      Status s = Status::FromErrno(errno, "write " + tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    Status s = Status::FromErrno(errno, "fsync " + tmp);
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::FromErrno(errno, "rename " + tmp + " to " + path);
    unlink(tmp.c_str());
    return s;
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return Status::Ok();
}

// ----- handlers -----

// A login is a user name and a password: nothing larger is a login.
constexpr size_t kMaxLoginBody = 4096;

Response Login(AuthState* auth, const Request& req, Context& ctx) {
  // JSON only: a cross-site HTML form (text/plain, urlencoded) must not log a browser in.
  if (req.content_type.find("application/json") == std::string::npos) {
    return Response::Error(415, "send the login as JSON (Content-Type: application/json)");
  }
  if (req.body.size() > kMaxLoginBody) {
    return Response::Error(413, "the login request is too large");
  }
  Response error;
  auto body = BodyObject(req, &error);
  if (!body) {
    return error;
  }
  std::string username = StringField(*body, "username");
  std::string password = StringField(*body, "password");
  if (username.empty() || password.empty()) {
    return Response::Error(400, "give \"username\" and \"password\" in the JSON body");
  }
  if (!IsValidUsername(username)) {
    // Not throttled, logged or audited: no account can have this name, and a client must not
    // be able to fill memory or the journal with names of its choosing.
    return Response::Error(401, "wrong user name or password");
  }
  if (ctx.db == nullptr) {
    return DbDown();
  }
  const std::string user_key = "user:" + username;
  const std::string addr_key = "address:" + req.address;
  // Counted before the (slow) password check, so parallel guesses cannot slip past the limit.
  auto wait = auth->throttle->Attempt({user_key, addr_key});
  if (wait.count() > 0) {
    Response r = Response::Error(
        429, fmt::format("too many failed logins; wait {} s before trying again", wait.count()));
    r.headers["Retry-After"] = std::to_string(wait.count());
    // Not audited: refused attempts cost nothing and must not let a client flood the journal.
    Logger("web")->debug("login for '{}' from {} refused for {} s after failures", username,
                         req.address, wait.count());
    return r;
  }
  auto user = CheckLogin(ctx.db, username, password);
  if (!user) {
    if (user.error().code() != Status::Code::kPermissionDenied) {
      return FromStatus(user.error());
    }
    Audit(ctx.journal, "login_failed", username, req.address, username);
    Logger("web")->info("failed login for '{}' from {}", username, req.address);
    return Response::Error(401, user.error().message());
  }
  auth->throttle->Reset(user_key);
  auth->throttle->Reset(addr_key);
  Session s = auth->sessions->Create(user->username, user->role);
  Audit(ctx.journal, "login", user->username, req.address, user->username,
        {{"role", RoleName(user->role)}});
  Response r = Response::Json({{"username", user->username},
                               {"role", RoleName(user->role)},
                               {"csrf_token", s.csrf},
                               {"session_timeout_s", ctx.config->web.session_timeout_s},
                               {"must_change_password",
                                MustChangePassword(ctx.config->data_folder, user->username)}});
  r.headers["Set-Cookie"] =
      fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict{}", kSessionCookie, s.id,
                  ctx.config->web.tls.enabled ? "; Secure" : "");
  return r;
}

Response Logout(AuthState* auth, const Request& req, Context& ctx) {
  if (req.session_id.empty()) {
    return Response::Error(400,
                           "this request is not authenticated by a session cookie; API "
                           "tokens are revoked with DELETE /api/v1/tokens/{id}");
  }
  auth->sessions->Remove(req.session_id);
  Audit(ctx.journal, "logout", req.user, req.address, req.user);
  Response r = Response::Json({{"logged_out", true}});
  r.headers["Set-Cookie"] =
      fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", kSessionCookie,
                  ctx.config->web.tls.enabled ? "; Secure" : "");
  return r;
}

Response CreateUserHandler(const Request& req, Context& ctx) {
  Response error;
  auto body = BodyObject(req, &error);
  if (!body) {
    return error;
  }
  if (ctx.db == nullptr) {
    return DbDown();
  }
  std::string username = StringField(*body, "username");
  auto role = ParseRole(StringField(*body, "role"));
  if (!role) {
    return FromStatus(role.error());
  }
  Status s = CreateUser(ctx.db, RealClock(), username, *role, StringField(*body, "password"));
  if (!s.ok()) {
    return FromStatus(s);
  }
  Audit(ctx.journal, "user.created", req.user, req.address, username, {{"role", RoleName(*role)}});
  auto user = GetUser(ctx.db, username);
  return user ? Response::Json(UserJson(*user), 201) : FromStatus(user.error());
}

Response UpdateUser(AuthState* auth, const Request& req, Context& ctx) {
  Response error;
  auto body = BodyObject(req, &error);
  if (!body) {
    return error;
  }
  if (ctx.db == nullptr) {
    return DbDown();
  }
  const std::string& name = req.path_params.at("name");
  bool self = name == req.user;
  if (req.role != Role::kAdmin) {
    // Anyone may change their own password, proving the current one.
    if (!self || body->contains("role") || body->contains("disabled")) {
      return Response::Error(403,
                             "only an admin may change other accounts, roles or the "
                             "disabled flag; you may change your own password");
    }
    // Throttled like a login: a stolen session or token must not become unlimited guessing.
    const std::string user_key = "user:" + name;
    auto wait = auth->throttle->Attempt({user_key});
    if (wait.count() > 0) {
      Response r = Response::Error(
          429, fmt::format("too many wrong passwords; wait {} s before trying again", wait.count()));
      r.headers["Retry-After"] = std::to_string(wait.count());
      return r;
    }
    auto checked = CheckLogin(ctx.db, name, StringField(*body, "current_password"));
    if (!checked) {
      if (checked.error().code() != Status::Code::kPermissionDenied) {
        return FromStatus(checked.error());
      }
      Audit(ctx.journal, "password_change_failed", req.user, req.address, name);
      return Response::Error(403, "give your current password in \"current_password\"");
    }
    auth->throttle->Reset(user_key);
  }
  auto before = GetUser(ctx.db, name);
  if (!before) {
    return FromStatus(before.error());
  }
  json changes = json::object();
  Status s = db::InTransaction(ctx.db, [&]() -> Status {
    if (body->contains("role")) {
      FERRY_ASSIGN_OR_RETURN(Role role, ParseRole(StringField(*body, "role")));
      if (self && role != Role::kAdmin && before->role == Role::kAdmin) {
        return Status::InvalidArgument(
            "you cannot take the admin role from yourself; let another admin do it");
      }
      FERRY_RETURN_IF_ERROR(SetRole(ctx.db, RealClock(), name, role));
      changes["role"] = {{"old", RoleName(before->role)}, {"new", RoleName(role)}};
    }
    if (body->contains("disabled")) {
      if (!(*body)["disabled"].is_boolean()) {
        return Status::InvalidArgument("\"disabled\" must be true or false");
      }
      bool disabled = (*body)["disabled"].get<bool>();
      if (self && disabled) {
        return Status::InvalidArgument("you cannot disable your own account");
      }
      FERRY_RETURN_IF_ERROR(SetDisabled(ctx.db, RealClock(), name, disabled));
      changes["disabled"] = {{"old", before->disabled}, {"new", disabled}};
    }
    if (body->contains("password")) {
      FERRY_RETURN_IF_ERROR(SetPassword(ctx.db, RealClock(), name, StringField(*body, "password")));
      changes["password"] = "changed";
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    return FromStatus(s);
  }
  if (changes.empty()) {
    return Response::Error(400, "nothing to change: give \"role\", \"password\" or \"disabled\"");
  }
  if (changes.contains("password")) {
    ClearGeneratedPassword(ctx.config->data_folder, name);
  }
  Audit(ctx.journal, "user.updated", req.user, req.address, name, {{"changes", changes}});
  if (!self) {
    // A new role, a disabled account or a new password ends the user's sessions: the next
    // request logs in again with what is true now.
    auth->sessions->RemoveUser(name);
  }
  auto user = GetUser(ctx.db, name);
  return user ? Response::Json(UserJson(*user)) : FromStatus(user.error());
}

Response DeleteUserHandler(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return DbDown();
  }
  const std::string& name = req.path_params.at("name");
  if (name == req.user) {
    return Response::Error(400, "you cannot delete your own account; let another admin do it");
  }
  Status s = DeleteUser(ctx.db, name);
  if (!s.ok()) {
    return FromStatus(s);
  }
  Audit(ctx.journal, "user.deleted", req.user, req.address, name);
  return Response::Json({{"deleted", name}});
}

Response ListTokensHandler(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return DbDown();
  }
  std::string user = req.user;
  if (req.role == Role::kAdmin) {
    auto it = req.query.find("user");
    user = it == req.query.end() ? "" : it->second;
  }
  auto tokens = ListTokens(ctx.db, user);
  if (!tokens) {
    return FromStatus(tokens.error());
  }
  json items = json::array();
  for (const auto& t : *tokens) {
    items.push_back(TokenJson(t));
  }
  return Response::Json({{"tokens", items}});
}

Response CreateTokenHandler(const Request& req, Context& ctx) {
  Response error;
  auto body = BodyObject(req, &error);
  if (!body) {
    return error;
  }
  if (ctx.db == nullptr) {
    return DbDown();
  }
  std::string user = StringField(*body, "username");
  if (user.empty()) {
    user = req.user;
  }
  if (user != req.user && req.role != Role::kAdmin) {
    return Response::Error(403, "only an admin may create tokens for other users");
  }
  TokenRecord record;
  auto token = CreateToken(ctx.db, RealClock(), user, StringField(*body, "name"), &record);
  if (!token) {
    return FromStatus(token.error());
  }
  Audit(ctx.journal, "token.created", req.user, req.address, user,
        {{"token_id", record.id}, {"name", record.name}});
  json j = TokenJson(record);
  j["token"] = *token;
  j["note"] = "the token is shown only now; send it as \"Authorization: Bearer <token>\"";
  return Response::Json(j, 201);
}

Response DeleteTokenHandler(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return DbDown();
  }
  int64_t id = 0;
  try {
    id = std::stoll(req.path_params.at("id"));
  } catch (const std::exception&) {
    return Response::Error(400, "the token id must be a number (see GET /api/v1/tokens)");
  }
  auto token = GetToken(ctx.db, id);
  if (!token) {
    return FromStatus(token.error());
  }
  if (token->username != req.user && req.role != Role::kAdmin) {
    return Response::Error(403, "only an admin may revoke other users' tokens");
  }
  Status s = DeleteToken(ctx.db, id);
  if (!s.ok()) {
    return FromStatus(s);
  }
  Audit(ctx.journal, "token.deleted", req.user, req.address, token->username,
        {{"token_id", id}, {"name", token->name}});
  return Response::Json({{"deleted", id}});
}

Response GetConfigHandler(const Request& req, Context& ctx) {
  auto text = ReadText(ctx.config->path);
  if (!text) {
    return Response::Error(500, "cannot read the config file: " + text.error().message());
  }
  json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded()) {
    return Response::Error(500, fmt::format("the config file {} is not valid JSON any more; fix "
                                            "it on disk",
                                            ctx.config->path));
  }
  Response r = Response::Json(doc);
  r.headers["X-Ferry-Config-Path"] = ctx.config->path;
  return r;
}

Response ValidateConfigHandler(const Request& req, Context&) {
  return Response::Json(ValidateConfigText(req.body));
}

Response PutConfigHandler(const Request& req, Context& ctx) {
  json result = ValidateConfigText(req.body);
  if (!result["valid"].get<bool>()) {
    Audit(ctx.journal, "config.rejected", req.user, req.address, ctx.config->path,
          {{"errors", result["errors"]}});
    Response r = Response::Json(result, 422);
    return r;
  }
  auto old_text = ReadText(ctx.config->path);
  json before = old_text ? json::parse(*old_text, nullptr, false) : json::object();
  if (before.is_discarded()) {
    before = json::object();
  }
  json after = json::parse(req.body);
  std::string text = req.body;
  if (text.empty() || text.back() != '\n') {
    text += '\n';
  }
  Status s = WriteFileAtomically(ctx.config->path, text);
  if (!s.ok()) {
    return Response::Error(500, "cannot write the config file: " + s.message());
  }
  json changes = ConfigDiff(before, after);
  Audit(ctx.journal, "config.changed", req.user, req.address, ctx.config->path,
        {{"changes", changes}});
  Logger("web")->info("{} changed {} ({} setting(s)) from {}", req.user, ctx.config->path,
                      changes.size(), req.address);
  result["written"] = ctx.config->path;
  result["changes"] = changes;
  result["note"] = "restart ferry (or the affected services) to apply the new config";
  return Response::Json(result);
}

Response AuditHandler(const Request& req, Context& ctx) {
  if (ctx.db == nullptr) {
    return DbDown();
  }
  int64_t limit = QueryInt(req, "limit", 100, 1, 1000);
  int64_t offset = QueryInt(req, "offset", 0, 0, INT64_MAX);
  std::string where = "WHERE 1 = 1";
  db::Params params;
  for (const char* key : {"actor", "action", "object"}) {
    auto it = req.query.find(key);
    if (it != req.query.end() && !it->second.empty()) {
      params.push_back(it->second);
      where += fmt::format(" AND {} = ${}", key, params.size());
    }
  }
  auto total = ctx.db->Query("SELECT COUNT(*) FROM audit " + where, params);
  if (!total) {
    return FromStatus(total.error());
  }
  db::Params page = params;
  page.push_back(limit);
  page.push_back(offset);
  auto rows = ctx.db->Query(
      fmt::format("SELECT id, time, actor, address, action, object, details FROM audit {} "
                  "ORDER BY ts_us DESC, id DESC LIMIT ${} OFFSET ${}",
                  where, params.size() + 1, params.size() + 2),
      page);
  if (!rows) {
    return FromStatus(rows.error());
  }
  json items = json::array();
  for (const auto& row : rows->rows) {
    json details = json::parse(row.Text(6), nullptr, false);
    items.push_back({{"id", row.Int(0)},
                     {"time", row.Text(1)},
                     {"actor", row.Text(2)},
                     {"address", row.Text(3)},
                     {"action", row.Text(4)},
                     {"object", row.Text(5)},
                     {"details", details.is_discarded() ? json(row.Text(6)) : details}});
  }
  int64_t count = (*total)[0].Int(0);
  return Response::Json({{"items", items},
                         {"total", count},
                         {"limit", limit},
                         {"offset", offset},
                         {"next_offset", offset + limit < count ? json(offset + limit) : json()}});
}

}  // namespace

void AddSessionRoutes(std::vector<Route>* routes, AuthState* auth) {
  routes->push_back({"POST",
                     "/api/v1/session",
                     Role::kViewer,
                     true,
                     "log in: sets the session cookie and returns the CSRF token",
                     {},
                     "{\"username\": string, \"password\": string}",
                     [auth](const Request& req, Context& ctx) { return Login(auth, req, ctx); }});
  routes->push_back(
      {"GET",
       "/api/v1/session",
       Role::kViewer,
       false,
       "who am I: the user name and role of the caller, and whether their password is the "
       "one generated at first start",
       {},
       "",
       [](const Request& req, Context& ctx) {
         return Response::Json(
             {{"username", req.user},
              {"role", RoleName(req.role)},
              {"must_change_password", MustChangePassword(ctx.config->data_folder, req.user)}});
       }});
  routes->push_back({"DELETE",
                     "/api/v1/session",
                     Role::kViewer,
                     false,
                     "log out: ends the session of the cookie",
                     {},
                     "",
                     [auth](const Request& req, Context& ctx) { return Logout(auth, req, ctx); }});
  routes->push_back({"PUT",
                     "/api/v1/users/{name}",
                     Role::kViewer,
                     false,
                     "change an account's role, password or disabled flag (admin); change "
                     "your own password (anyone, with current_password)",
                     {{"name", "path", "string", "user name", true}},
                     "{\"role\"?, \"password\"?, \"disabled\"?, \"current_password\"?}",
                     [auth](const Request& req, Context& ctx) { return UpdateUser(auth, req, ctx); }});
}

void AddAdminRoutes(std::vector<Route>* routes) {
  const RouteParam name_param{"name", "path", "string", "user name", true};
  routes->push_back({"GET",
                     "/api/v1/users",
                     Role::kAdmin,
                     false,
                     "list the accounts",
                     {},
                     "",
                     [](const Request&, Context& ctx) {
                       if (ctx.db == nullptr) {
                         return DbDown();
                       }
                       auto users = ListUsers(ctx.db);
                       if (!users) {
                         return FromStatus(users.error());
                       }
                       json items = json::array();
                       for (const auto& u : *users) {
                         items.push_back(UserJson(u));
                       }
                       return Response::Json({{"users", items}});
                     }});
  routes->push_back({"POST",
                     "/api/v1/users",
                     Role::kAdmin,
                     false,
                     "create an account",
                     {},
                     "{\"username\", \"password\" (8+ characters), \"role\": "
                     "admin|operator|viewer}",
                     CreateUserHandler});
  routes->push_back({"DELETE",
                     "/api/v1/users/{name}",
                     Role::kAdmin,
                     false,
                     "delete an account and its API tokens",
                     {name_param},
                     "",
                     DeleteUserHandler});
  routes->push_back({"GET",
                     "/api/v1/tokens",
                     Role::kViewer,
                     false,
                     "list API tokens (yours; an admin sees everyone's or ?user=NAME)",
                     {{"user", "query", "string", "only this user's tokens (admin)", false}},
                     "",
                     ListTokensHandler});
  routes->push_back({"POST",
                     "/api/v1/tokens",
                     Role::kViewer,
                     false,
                     "create an API token (for yourself; an admin for anyone); the token is "
                     "returned only once",
                     {},
                     "{\"name\": label, \"username\"?: owner (admin)}",
                     CreateTokenHandler});
  routes->push_back({"DELETE",
                     "/api/v1/tokens/{id}",
                     Role::kViewer,
                     false,
                     "revoke an API token (your own; an admin any)",
                     {{"id", "path", "integer", "token id", true}},
                     "",
                     DeleteTokenHandler});
  routes->push_back({"GET",
                     "/api/v1/config",
                     Role::kAdmin,
                     false,
                     "the config file as written (secrets as env:/file: references)",
                     {},
                     "",
                     GetConfigHandler});
  routes->push_back({"POST",
                     "/api/v1/config/validate",
                     Role::kAdmin,
                     false,
                     "check a config document: {valid, errors: [{path, reason}]}",
                     {},
                     "the complete ferry.json document",
                     ValidateConfigHandler});
  routes->push_back({"PUT",
                     "/api/v1/config",
                     Role::kAdmin,
                     false,
                     "replace the config file (only when valid; 422 with the errors "
                     "otherwise); takes effect when the services restart",
                     {},
                     "the complete ferry.json document",
                     PutConfigHandler});
  routes->push_back({"GET",
                     "/api/v1/audit",
                     Role::kAdmin,
                     false,
                     "the audit log, newest first",
                     {{"limit", "query", "integer", "entries per page (1..1000, default 100)"},
                      {"offset", "query", "integer", "entries to skip"},
                      {"actor", "query", "string", "only this actor"},
                      {"action", "query", "string", "only this action, e.g. login_failed"},
                      {"object", "query", "string", "only this object"}},
                     "",
                     AuditHandler});
}

}  // namespace ferry::web
