// PostgreSQL back end of Database (see database.h), over libpq.
#pragma once

#include <memory>
#include <string>

#include "db/database.h"

namespace ferry::db {

// Connects to `uri` (libpq connection URI; connect_timeout=10 is added unless it sets one). A
// server that is down gives Unavailable; the connection is re-established on the next
// statement after it was lost.
Result<std::unique_ptr<Database>> OpenPostgres(const std::string& uri);

}  // namespace ferry::db
