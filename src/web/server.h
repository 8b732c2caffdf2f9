// WebServer: ferry's HTTP(S) server (cpp-httplib). It registers every Route (src/web/route.h) —
// the data routes, the admin routes, the session routes and its own /healthz, /metrics and
// /api/v1/openapi.json — and wraps each handler with what every endpoint needs: authentication
// (session cookie or bearer token; 401), the route's minimum role (403), the CSRF check of unsafe
// cookie-authenticated requests (403), a database connection for the calling worker thread, and
// errors turned into JSON answers.
//
// Database: each worker thread opens its own connection lazily from DatabaseUri(config). The
// first successful connection runs db::Migrate and, when the users table is empty, creates the
// `admin` account with a random password that is logged once (warn). While the database cannot
// be reached a handler's Context::db is null (DB-backed routes answer 503) and the connection is
// retried at most every two seconds per thread; a connection whose request ended in 503 is
// dropped and reopened by the next request.
//
// Thread-safety: Start/Stop may be called from different threads (Stop from a signal watcher);
// handlers run on `config.web.threads` worker threads.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "db/database.h"
#include "journal/journal.h"
#include "web/auth.h"
#include "web/route.h"

namespace httplib {
class Server;
}

namespace ferry::web {

// The largest request body the server reads (a DICOM file for rule evaluation).
inline constexpr size_t kMaxRequestBody = size_t{64} << 20;

// Name of the session cookie.
inline constexpr std::string_view kSessionCookie = "ferry_session";

// What the session endpoints share with the server.
struct AuthState {
  SessionStore* sessions = nullptr;
  LoginThrottle* throttle = nullptr;
  Clock* clock = nullptr;
};

// POST/GET/DELETE /api/v1/session (login, who am I, logout); src/web/api_admin.cc.
void AddSessionRoutes(std::vector<Route>* routes, AuthState* auth);

// One database connection per worker thread, opened lazily (see the file comment).
class DbPool {
 public:
  // `data_folder` receives the first-start password marker (first_password.h).
  DbPool(std::string uri, Clock* clock, Journal* journal, std::string data_folder = "");

  // The calling thread's connection, or null while the database is unavailable.
  db::Database* ForThisThread();
  // Closes the calling thread's connection (it failed); the next call reopens it.
  void DropThisThread();
  // "ok" or "unavailable: <reason>" from the last attempt.
  std::string Health();

 private:
  Status Prepare(db::Database* db);  // migrate once, create the first admin

  struct Slot {
    std::unique_ptr<db::Database> db;
    SteadyTime next_attempt{};
  };
  std::string uri_;
  Clock* clock_;
  Journal* journal_;
  std::string data_folder_;
  std::mutex mu_;
  std::map<std::thread::id, Slot> slots_;
  std::mutex prepare_mu_;
  bool prepared_ = false;
  std::string last_error_;
};

class WebServer {
 public:
  // `journal` and `clock` must outlive the server. `routes` are the resource routes
  // (AddDataRoutes, AddAdminRoutes); the server adds the session and service routes.
  WebServer(const Config& config, std::vector<Route> routes, Journal* journal, Clock* clock);
  ~WebServer();

  // Creates the HTTP or HTTPS server and binds config.web.host:port. InvalidArgument when the
  // certificate or key cannot be loaded, Unavailable when the port cannot be bound.
  Status Bind();
  // Serves until Stop(); blocks.
  void Serve();
  void Stop();

  const std::vector<Route>& routes() const { return routes_; }
  DbPool* db_pool() { return &pool_; }

 private:
  void Register(const Route& route);

  const Config& config_;
  std::vector<Route> routes_;
  Journal* journal_;
  Clock* clock_;
  SessionStore sessions_;
  LoginThrottle throttle_;
  AuthState auth_;
  DbPool pool_;
  std::unique_ptr<httplib::Server> http_;
};

}  // namespace ferry::web
