#include "web/server.h"

#include <sys/socket.h>

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <regex>

#include "core/logging.h"
#include "db/schema.h"
#include "web/first_password.h"
#include "web/metrics.h"
#include "web/openapi.h"
#include "web/static_files.h"

namespace ferry::web {
namespace {

constexpr std::chrono::seconds kReconnectInterval{2};

// "/api/v1/tasks/{id}" -> "/api/v1/tasks/([^/]+)" and the parameter names in order.
std::string PathRegex(const std::string& path, std::vector<std::string>* names) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '{') {
      size_t end = path.find('}', i);
      names->push_back(path.substr(i + 1, end - i - 1));
      out += "([^/]+)";
      i = end;
      continue;
    }
    if (std::string_view(".^$|()[]*+?\\").find(c) != std::string_view::npos) {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::string CookieValue(const std::string& header, std::string_view name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) {
      end = header.size();
    }
    std::string_view part(header.data() + pos, end - pos);
    while (!part.empty() && part.front() == ' ') {
      part.remove_prefix(1);
    }
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

void Send(const Response& r, httplib::Response* res) {
  res->status = r.status;
  for (const auto& [k, v] : r.headers) {
    res->set_header(k, v);
  }
  res->set_content(r.body, r.content_type);
}

Response Unauthorized(const std::string& message) {
  Response r = Response::Error(401, message);
  r.headers["WWW-Authenticate"] = "Bearer realm=\"ferry\"";
  return r;
}

}  // namespace

// ----- DbPool -----

DbPool::DbPool(std::string uri, Clock* clock, Journal* journal, std::string data_folder)
    : uri_(std::move(uri)),
      clock_(clock),
      journal_(journal),
      data_folder_(std::move(data_folder)) {}

db::Database* DbPool::ForThisThread() {
  auto id = std::this_thread::get_id();
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot = &slots_[id];  // std::map: the slot's address stays valid
    if (slot->db != nullptr) {
      return slot->db.get();
    }
    if (clock_->SteadyNow() < slot->next_attempt) {
      return nullptr;
    }
    slot->next_attempt = clock_->SteadyNow() + kReconnectInterval;
  }
  auto log = Logger("web");
  auto opened = db::Database::Open(uri_);
  Status s = opened ? Prepare(opened->get()) : opened.error();
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    if (last_error_ != s.message()) {
      log->warn("database {} unavailable (retrying every {} s): {}", db::RedactUri(uri_),
                kReconnectInterval.count(), s.ToString());
    }
    last_error_ = s.message();
    return nullptr;
  }
  if (!last_error_.empty()) {
    log->info("database {} is available again", db::RedactUri(uri_));
  }
  last_error_.clear();
  slot->db = std::move(*opened);
  return slot->db.get();
}

void DbPool::DropThisThread() {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(std::this_thread::get_id());
  if (it != slots_.end()) {
    it->second.db.reset();
    it->second.next_attempt = SteadyTime{};
  }
}

std::string DbPool::Health() {
  // A connection that was open while the database restarted fails its first statement: then
  // the answer is what a fresh connection finds, not what the dead one did.
  for (int attempt = 0; attempt < 2; ++attempt) {
    db::Database* db = ForThisThread();
    if (db == nullptr) {
      break;
    }
    auto r = db->Query("SELECT 1");
    if (r) {
      return "ok";
    }
    DropThisThread();
    Logger("web")->warn("health check: database unavailable: {}", r.error().ToString());
  }
  // The reason (it may name hosts and users) is in the log, not in the anonymous answer.
  return "unavailable";
}

Status DbPool::Prepare(db::Database* db) {
  std::lock_guard<std::mutex> lock(prepare_mu_);
  if (prepared_) {
    return Status::Ok();
  }
  FERRY_RETURN_IF_ERROR(db::Migrate(db).status());
  FERRY_ASSIGN_OR_RETURN(int64_t users, CountUsers(db));
  if (users == 0) {
    std::string password = RandomPassword();
    Status s = CreateUser(db, clock_, "admin", Role::kAdmin, password);
    if (s.code() == Status::Code::kAlreadyExists) {
      s = Status::Ok();  // `ferry user add` got there first
    } else if (s.ok()) {
      Logger("web")->warn(
          "created the first account: user 'admin' with password '{}' (shown only now). Log "
          "in and change it (PUT /api/v1/users/admin), or create your own accounts with "
          "`ferry user add` before the first start",
          password);
      Audit(journal_, "user.created", "system", "", "admin",
            {{"role", "admin"}, {"reason", "first start: the users table was empty"}});
      if (!data_folder_.empty()) {
        Status marked = MarkGeneratedPassword(data_folder_, "admin");
        if (!marked.ok()) {
          Logger("web")->warn("the web UI will not ask to change the generated password: {}",
                              marked.ToString());
        }
      }
    }
    FERRY_RETURN_IF_ERROR(s);
  }
  prepared_ = true;
  return Status::Ok();
}

// ----- WebServer -----

WebServer::WebServer(const Config& config, std::vector<Route> routes, Journal* journal,
                     Clock* clock)
    : config_(config),
      routes_(std::move(routes)),
      journal_(journal),
      clock_(clock),
      sessions_(clock, std::chrono::seconds(config.web.session_timeout_s)),
      throttle_(clock),
      pool_(DatabaseUri(config), clock, journal, config.data_folder) {
  auth_ = {&sessions_, &throttle_, clock_};
  AddSessionRoutes(&routes_, &auth_);
  routes_.push_back({"GET",
                     "/healthz",
                     Role::kViewer,
                     true,
                     "liveness and database reachability (no authentication)",
                     {},
                     "",
                     [this](const Request&, Context&) {
                       return Response::Json({{"status", "ok"}, {"database", pool_.Health()}});
                     }});
  routes_.push_back({"GET",
                     "/metrics",
                     Role::kViewer,
                     false,
                     "Prometheus metrics (text format 0.0.4)",
                     {},
                     "",
                     [](const Request&, Context& ctx) {
                       Response r;
                       r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                       r.body = RenderMetrics(*ctx.config, ctx.db);
                       return r;
                     }});
  routes_.push_back({"GET",
                     "/api/v1/openapi.json",
                     Role::kViewer,
                     false,
                     "this API's OpenAPI 3.0 description",
                     {},
                     "",
                     [this](const Request&, Context&) {
                       return Response::Json(BuildOpenApi(routes_, config_.web.tls.enabled));
                     }});
}

WebServer::~WebServer() = default;

Status WebServer::Bind() {
  auto log = Logger("web");
  if (config_.web.tls.enabled) {
    auto ssl = std::make_unique<httplib::SSLServer>(config_.web.tls.certificate_file.c_str(),
                                                    config_.web.tls.key_file.c_str());
    if (!ssl->is_valid()) {
      return Status::InvalidArgument(fmt::format(
          "cannot load the web TLS certificate {} or key {}: check that both are PEM files, "
          "readable by ferry, and that the key belongs to the certificate",
          config_.web.tls.certificate_file, config_.web.tls.key_file));
    }
    http_ = std::move(ssl);
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  int threads = std::max(1, config_.web.threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // cpp-httplib reads a body before it picks the handler: the cap bounds what any client,
  // logged in or not, can make the server hold (the largest legitimate body is a DICOM file
  // uploaded to /api/v1/rules/evaluate).
  http_->set_payload_max_length(kMaxRequestBody);
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);

  // Routes without path parameters first, so that /tasks/stats wins over /tasks/{id}.
  std::vector<const Route*> order;
  for (const auto& r : routes_) {
    order.push_back(&r);
  }
  std::stable_sort(order.begin(), order.end(), [](const Route* a, const Route* b) {
    return std::count(a->path.begin(), a->path.end(), '{') <
           std::count(b->path.begin(), b->path.end(), '{');
  });
  for (const Route* r : order) {
    Register(*r);
  }
  // Last: every other GET is a file of the web UI or one of its routes (static_files.h).
  auto ui = std::make_shared<StaticFiles>(config_.web.static_folder.empty()
                                              ? DefaultStaticFolder()
                                              : std::filesystem::path(config_.web.static_folder));
  log->info("serving the web UI from {}", ui->root().string());
  http_->Get("/.*", [ui](const httplib::Request& req, httplib::Response& res) {
    Send(ui->Serve(req.path), &res);
  });
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      std::string message = "the request could not be served";
      if (res.status == 404) {
        message = fmt::format("no endpoint {} {}; see /api/v1/openapi.json for the API",
                              req.method, req.path);
      } else if (res.status == 400 && req.method != "GET" && !req.has_header("Content-Length") &&
                 !req.has_header("Transfer-Encoding")) {
        message = fmt::format("{} {} has neither Content-Length nor Transfer-Encoding; send a "
                              "body, or Content-Length: 0 for none (curl: -d '')",
                              req.method, req.path);
      }
      Send(Response::Error(res.status, message), &res);
    }
  });
  http_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        Send(Response::Error(500, "internal error; see the web service's log"), &res);
      });

  // cpp-httplib sets SO_REUSEPORT by default, with which a second ferry on the same port would
  // listen too and the kernel would spread requests over both. SO_REUSEADDR alone lets a
  // restarted service bind at once and refuses a port another process listens on.
  http_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  if (!http_->bind_to_port(config_.web.host, config_.web.port)) {
    return Status::Unavailable(fmt::format(
        "cannot listen on {}:{}: the port is in use (is another ferry web service already "
        "running?) or privileged; stop the other program, or change web.port or web.host in {}",
        config_.web.host, config_.web.port, config_.path));
  }
  log->info("listening on {}://{}:{} with {} worker threads",
            config_.web.tls.enabled ? "https" : "http", config_.web.host, config_.web.port,
            threads);
  return Status::Ok();
}

void WebServer::Serve() { http_->listen_after_bind(); }

void WebServer::Stop() {
  if (http_ != nullptr) {
    http_->stop();
  }
}

void WebServer::Register(const Route& route) {
  std::vector<std::string> names;
  std::string pattern = PathRegex(route.path, &names);
  const Route* r = &route;
  auto handler = [this, r, names](const httplib::Request& hreq, httplib::Response& hres) {
    auto started = clock_->SteadyNow();
    Request req;
    req.method = hreq.method;
    req.path = hreq.path;
    for (size_t i = 0; i < names.size() && i + 1 < hreq.matches.size(); ++i) {
      req.path_params[names[i]] = hreq.matches[i + 1].str();
    }
    for (const auto& [k, v] : hreq.params) {
      req.query.emplace(k, v);
    }
    req.body = hreq.body;
    req.content_type = hreq.get_header_value("Content-Type");
    for (const auto& [field, f] : hreq.files) {
      req.files.push_back({field, f.filename, f.content});
    }
    req.address = hreq.remote_addr;

    Context ctx{&config_, nullptr, journal_};
    bool db_opened = false;
    auto db = [&]() {
      if (!db_opened) {
        ctx.db = pool_.ForThisThread();
        db_opened = true;
      }
      return ctx.db;
    };

    Response res;
    bool allowed = true;
    if (!r->anonymous) {
      allowed = false;
      std::string authorization = hreq.get_header_value("Authorization");
      std::string cookie = CookieValue(hreq.get_header_value("Cookie"), kSessionCookie);
      if (authorization.rfind("Bearer ", 0) == 0) {
        if (db() == nullptr) {
          res = Response::Error(503,
                                "the database is unavailable, so API tokens cannot be "
                                "checked; try again later (see /healthz)");
        } else {
          auto user = CheckToken(ctx.db, clock_, authorization.substr(7));
          if (user) {
            req.user = user->username;
            req.role = user->role;
            allowed = true;
          } else if (user.error().code() == Status::Code::kPermissionDenied) {
            res = Unauthorized(user.error().message());
          } else {
            res = Response::Error(503, "cannot check the API token: " + user.error().message());
          }
        }
      } else if (!cookie.empty()) {
        auto session = sessions_.Touch(cookie);
        if (!session) {
          res = Unauthorized(
              "your session has expired or is unknown; log in again (POST /api/v1/session)");
        } else {
          req.user = session->user;
          req.role = session->role;
          req.session_id = session->id;
          allowed = true;
          // The account may have changed since login: take its current role, and end the
          // session of a deleted or disabled account. An account that cannot be checked (no
          // database) is not trusted with the role it had at login.
          auto account = db() != nullptr
                             ? GetUser(ctx.db, session->user)
                             : Result<UserRecord>(Status::Unavailable("no database"));
          if (account && !account->disabled) {
            req.role = account->role;
          } else if ((account && account->disabled) ||
                     account.error().code() == Status::Code::kNotFound) {
            sessions_.RemoveUser(session->user);
            res = Unauthorized("your account was deleted or disabled; ask an administrator");
            allowed = false;
          } else {
            Logger("web")->warn("cannot check the account of session user '{}': {}",
                                session->user, account.error().ToString());
            res = Response::Error(503,
                                  "the database is unavailable, so your account cannot be "
                                  "checked; try again later (see /healthz)");
            allowed = false;
          }
          if (allowed &&
              !CsrfAllows(req.method, true, hreq.get_header_value("X-CSRF-Token"), session->csrf)) {
            res = Response::Error(
                403,
                "missing or wrong X-CSRF-Token header: send the csrf_token returned at "
                "login (POST /api/v1/session) with every POST, PUT, PATCH and DELETE");
            allowed = false;
          }
        }
      } else {
        res = Unauthorized(
            "authentication required: log in (POST /api/v1/session with username and "
            "password) or send \"Authorization: Bearer <API token>\"");
      }
      if (allowed && req.role < r->min_role) {
        res = Response::Error(
            403,
            fmt::format("{} {} needs the {} role; {} has the {} role (ask an administrator)",
                        r->method, r->path, RoleName(r->min_role), req.user, RoleName(req.role)));
        allowed = false;
      }
    }
    if (allowed) {
      db();
      try {
        res = r->handler(req, ctx);
      } catch (const std::exception& e) {
        Logger("web")->error("{} {} failed: {}", req.method, req.path, e.what());
        res = Response::Error(500, fmt::format("internal error: {}", e.what()));
      }
    }
    if (res.status == 503 && ctx.db != nullptr) {
      pool_.DropThisThread();  // the connection may be broken: reconnect on the next request
    }
    Send(res, &hres);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->SteadyNow() - started);
    Logger("web")->debug("{} {} -> {} ({} ms, user {})", req.method, req.path, res.status,
                         ms.count(), req.user.empty() ? "-" : req.user);
  };
  if (route.method == "GET") {
    http_->Get(pattern, handler);
  } else if (route.method == "POST") {
    http_->Post(pattern, handler);
  } else if (route.method == "PUT") {
    http_->Put(pattern, handler);
  } else if (route.method == "PATCH") {
    http_->Patch(pattern, handler);
  } else if (route.method == "DELETE") {
    http_->Delete(pattern, handler);
  } else {
    Logger("web")->error("route {} {}: unsupported method, not registered", route.method,
                         route.path);
  }
}

}  // namespace ferry::web
