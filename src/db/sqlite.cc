#include "db/sqlite.h"

#include <sqlite3.h>

#include <fmt/format.h>

namespace ferry::db {
namespace {

Status SqliteError(sqlite3* handle, int rc, std::string_view what) {
  std::string msg = fmt::format("{}: {}", what, handle != nullptr ? sqlite3_errmsg(handle)
                                                                  : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Status::Unavailable(msg);
    case SQLITE_FULL: return Status::ResourceExhausted(msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: return Status::IoError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return Status::Corruption(msg);
    case SQLITE_CONSTRAINT: return Status::AlreadyExists(msg);
    case SQLITE_READONLY:
    case SQLITE_PERM: return Status::PermissionDenied(msg);
    default: return Status::Internal(msg);
  }
}

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(sqlite3* handle, std::string path) : db_(handle), path_(std::move(path)) {}
  ~SqliteDatabase() override { sqlite3_close_v2(db_); }

  Dialect dialect() const override { return Dialect::kSqlite; }
  std::string Describe() const override { return "sqlite:" + path_; }

  Status ExecuteScript(std::string_view sql) override {
    char* err = nullptr;
    std::string text(sql);
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      return SqliteError(nullptr, rc, "script failed: " + msg);
    }
    return Status::Ok();
  }

  Status Begin() override { return Execute("BEGIN IMMEDIATE", {}).status(); }
  Status Commit() override { return Execute("COMMIT", {}).status(); }
  Status Rollback() override {
    if (sqlite3_get_autocommit(db_) != 0) {
      return Status::Ok();  // nothing open (SQLite may already have rolled back)
    }
    return Execute("ROLLBACK", {}).status();
  }

 private:
  Status Run(std::string_view sql, const Params& params, Rows* rows,
             int64_t* changed) override {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return SqliteError(db_, rc, fmt::format("cannot prepare \"{}\"", sql.substr(0, 80)));
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
    for (size_t i = 0; i < params.size(); ++i) {
      std::string name = "$" + std::to_string(i + 1);
      int index = sqlite3_bind_parameter_index(stmt, name.c_str());
      if (index == 0) {
        continue;  // the statement does not use this parameter
      }
      const Param& p = params[i];
      if (std::holds_alternative<std::nullptr_t>(p)) {
        rc = sqlite3_bind_null(stmt, index);
      } else if (const auto* n = std::get_if<int64_t>(&p)) {
        rc = sqlite3_bind_int64(stmt, index, *n);
      } else if (const auto* d = std::get_if<double>(&p)) {
        rc = sqlite3_bind_double(stmt, index, *d);
      } else {
        const std::string& t = std::get<std::string>(p);
        rc = sqlite3_bind_text(stmt, index, t.data(), static_cast<int>(t.size()),
                               SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) {
        return SqliteError(db_, rc, "cannot bind parameter " + name);
      }
    }
    if (rows != nullptr) {
      int n = sqlite3_column_count(stmt);
      for (int i = 0; i < n; ++i) {
        rows->columns.emplace_back(sqlite3_column_name(stmt, i));
      }
    }
    while (true) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        break;
      }
      if (rc != SQLITE_ROW) {
        return SqliteError(db_, rc, fmt::format("\"{}\" failed", sql.substr(0, 80)));
      }
      if (rows == nullptr) {
        continue;
      }
      Row row;
      int n = sqlite3_column_count(stmt);
      row.values.reserve(n);
      for (int i = 0; i < n; ++i) {
        if (sqlite3_column_type(stmt, i) == SQLITE_NULL) {
          row.values.emplace_back(std::nullopt);
        } else {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
          row.values.emplace_back(std::string(text, sqlite3_column_bytes(stmt, i)));
        }
      }
      rows->rows.push_back(std::move(row));
    }
    if (changed != nullptr) {
      *changed = sqlite3_changes64(db_);
    }
    return Status::Ok();
  }

  sqlite3* db_;
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqlite(const std::string& path) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteError(handle, rc, "cannot open SQLite database " + path);
    sqlite3_close_v2(handle);
    return s;
  }
  sqlite3_busy_timeout(handle, 5000);
  auto db = std::make_unique<SqliteDatabase>(handle, path);
  // WAL: readers (the web service) never block the writer (the bookkeeper). synchronous=FULL
  // so that a committed journal offset survives a power cut together with its rows.
  Status s = db->ExecuteScript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                               "PRAGMA foreign_keys=ON;");
  if (!s.ok()) {
    return s.WithContext("cannot set up SQLite database " + path);
  }
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace ferry::db
