// SQLite back end of Database (see database.h).
#pragma once

#include <memory>
#include <string>

#include "db/database.h"

namespace ferry::db {

// Opens (creating if needed) the SQLite file at `path` in WAL mode with a busy timeout, so the
// bookkeeper writing and the web service reading do not block each other.
Result<std::unique_ptr<Database>> OpenSqlite(const std::string& path);

}  // namespace ferry::db
