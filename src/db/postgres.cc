#include "db/postgres.h"

#include <libpq-fe.h>

#include <fmt/format.h>

namespace ferry::db {
namespace {

void IgnoreNotice(void*, const char*) {}

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(PGconn* conn, std::string uri) : conn_(conn), uri_(std::move(uri)) {
    PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  }
  ~PostgresDatabase() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::kPostgres; }
  std::string Describe() const override { return RedactUri(uri_); }

  Status ExecuteScript(std::string_view sql) override {
    FERRY_RETURN_IF_ERROR(EnsureConnected());
    std::string text(sql);
    PGresult* res = PQexec(conn_, text.c_str());
    Status s = Check(res, "script");
    PQclear(res);
    return s;
  }

  Status Begin() override { return Execute("BEGIN", {}).status(); }
  Status Commit() override { return Execute("COMMIT", {}).status(); }
  Status Rollback() override {
    if (PQstatus(conn_) != CONNECTION_OK ||
        PQtransactionStatus(conn_) == PQTRANS_IDLE) {
      return Status::Ok();
    }
    return Execute("ROLLBACK", {}).status();
  }

 private:
  Status EnsureConnected() {
    if (PQstatus(conn_) == CONNECTION_OK) {
      return Status::Ok();
    }
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      return Status::Unavailable(fmt::format("PostgreSQL {} is not reachable: {}",
                                             RedactUri(uri_), FirstLine(PQerrorMessage(conn_))));
    }
    PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
    return Status::Ok();
  }

  static std::string FirstLine(const char* text) {
    std::string s = text != nullptr ? text : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
      s.pop_back();
    }
    return s;
  }

  Status Check(PGresult* res, std::string_view what) {
    ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
      return Status::Ok();
    }
    std::string msg = FirstLine(res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
    if (msg.empty()) {
      msg = FirstLine(PQerrorMessage(conn_));
    }
    msg = fmt::format("{} failed: {}", what, msg);
    if (PQstatus(conn_) != CONNECTION_OK) {
      return Status::Unavailable(msg + " (connection to PostgreSQL lost)");
    }
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string code = state != nullptr ? state : "";
    if (code.starts_with("08") || code == "40001" || code == "40P01" ||
        code.starts_with("57P")) {
      return Status::Unavailable(msg);
    }
    if (code.starts_with("53")) {
      return Status::ResourceExhausted(msg);
    }
    if (code == "23505") {
      return Status::AlreadyExists(msg);
    }
    if (code.starts_with("42") || code.starts_with("22")) {
      return Status::InvalidArgument(msg);
    }
    return Status::Internal(msg);
  }

  Status Run(std::string_view sql, const Params& params, Rows* rows,
             int64_t* changed) override {
    FERRY_RETURN_IF_ERROR(EnsureConnected());
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      const Param& p = params[i];
      if (std::holds_alternative<std::nullptr_t>(p)) {
        continue;
      }
      if (const auto* n = std::get_if<int64_t>(&p)) {
        text[i] = std::to_string(*n);
      } else if (const auto* d = std::get_if<double>(&p)) {
        text[i] = fmt::format("{}", *d);
      } else {
        text[i] = std::get<std::string>(p);
      }
      values[i] = text[i].c_str();
    }
    std::string query(sql);
    PGresult* res = PQexecParams(conn_, query.c_str(), static_cast<int>(params.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0);
    Status s = Check(res, fmt::format("\"{}\"", sql.substr(0, 80)));
    if (s.ok() && rows != nullptr) {
      int ncols = PQnfields(res);
      for (int c = 0; c < ncols; ++c) {
        rows->columns.emplace_back(PQfname(res, c));
      }
      int nrows = PQntuples(res);
      rows->rows.reserve(nrows);
      for (int r = 0; r < nrows; ++r) {
        Row row;
        row.values.reserve(ncols);
        for (int c = 0; c < ncols; ++c) {
          if (PQgetisnull(res, r, c)) {
            row.values.emplace_back(std::nullopt);
          } else {
            row.values.emplace_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
          }
        }
        rows->rows.push_back(std::move(row));
      }
    }
    if (s.ok() && changed != nullptr) {
      const char* n = PQcmdTuples(res);
      *changed = (n != nullptr && *n != 0) ? std::stoll(n) : 0;
    }
    PQclear(res);
    return s;
  }

  PGconn* conn_;
  std::string uri_;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenPostgres(const std::string& given_uri) {
  // libpq waits for a connection as long as the kernel does unless told otherwise; a database
  // host that silently drops packets must not hold a service for minutes.
  std::string uri = given_uri;
  if (uri.find("connect_timeout=") == std::string::npos) {
    uri += std::string(uri.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=10";
  }
  PGconn* conn = PQconnectdb(uri.c_str());
  if (conn == nullptr) {
    return Status::ResourceExhausted("cannot allocate a PostgreSQL connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
      msg.pop_back();
    }
    PQfinish(conn);
    return Status::Unavailable(
        fmt::format("cannot connect to PostgreSQL {}: {}", RedactUri(uri), msg));
  }
  return std::unique_ptr<Database>(std::make_unique<PostgresDatabase>(conn, uri));
}

}  // namespace ferry::db
