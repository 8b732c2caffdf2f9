// Database: the small SQL interface the bookkeeper and the web service share, with SQLite
// (sqlite3) and PostgreSQL (libpq) behind it.
//
// Statements use PostgreSQL's positional placeholders ($1, $2, ...) for both back ends; SQLite
// accepts them as named parameters. Values come back as text (NULL as std::nullopt); callers
// convert. Errors are Status values: a lost connection, a database that is not up yet or a busy
// SQLite file is Unavailable (retry later), a bad statement is InvalidArgument or Internal.
// Thread-safety: one Database is one connection; use it from one thread at a time (the web
// service keeps one per worker thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"

namespace ferry::db {

enum class Dialect { kSqlite, kPostgres };

using Param = std::variant<std::nullptr_t, int64_t, double, std::string>;
using Params = std::vector<Param>;

struct Row {
  std::vector<std::optional<std::string>> values;

  bool IsNull(size_t i) const { return !values.at(i).has_value(); }
  std::string Text(size_t i) const { return values.at(i).value_or(""); }
  int64_t Int(size_t i) const;      // 0 for NULL or text that is not a number
  double Real(size_t i) const;      // 0 for NULL
};

struct Rows {
  std::vector<std::string> columns;
  std::vector<Row> rows;

  bool empty() const { return rows.empty(); }
  size_t size() const { return rows.size(); }
  const Row& operator[](size_t i) const { return rows[i]; }
};

class Database {
 public:
  virtual ~Database() = default;

  // "sqlite:PATH" (the file is created, WAL mode) or "postgresql://..." / "postgres://...".
  static Result<std::unique_ptr<Database>> Open(const std::string& uri);

  virtual Dialect dialect() const = 0;

  // One statement; its rows, if any.
  Result<Rows> Query(std::string_view sql, const Params& params = {});
  // One statement whose rows are not needed; returns the number of rows changed.
  Result<int64_t> Execute(std::string_view sql, const Params& params = {});
  // Several statements separated by semicolons, without parameters (schema changes).
  virtual Status ExecuteScript(std::string_view sql) = 0;

  // Transactions. SQLite begins IMMEDIATE (the write lock is taken at once), so two writers
  // serialise at the start instead of one failing at commit.
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;

  // The URI with any password replaced by "***", for logs.
  virtual std::string Describe() const = 0;

 protected:
  // Runs one statement; fills `rows` and `changed` when they are not null.
  virtual Status Run(std::string_view sql, const Params& params, Rows* rows,
                     int64_t* changed) = 0;
};

// Runs `fn` inside a transaction: commits when it returns OK, rolls back otherwise.
template <typename Fn>
Status InTransaction(Database* db, Fn&& fn) {
  Status begun = db->Begin();
  if (!begun.ok()) {
    return begun;
  }
  Status s = fn();
  if (!s.ok()) {
    db->Rollback();
    return s;
  }
  Status committed = db->Commit();
  if (!committed.ok()) {
    db->Rollback();
  }
  return committed;
}

// "postgresql://ferry:secret@host/db" -> "postgresql://ferry:***@host/db".
std::string RedactUri(const std::string& uri);

}  // namespace ferry::db
