#include "db/database.h"

#include <cstdlib>

#include "db/postgres.h"
#include "db/sqlite.h"

namespace ferry::db {

int64_t Row::Int(size_t i) const {
  const auto& v = values.at(i);
  if (!v.has_value() || v->empty()) {
    return 0;
  }
  char* end = nullptr;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (end != nullptr && *end == '.') {
    return static_cast<int64_t>(std::strtod(v->c_str(), nullptr));
  }
  return n;
}

double Row::Real(size_t i) const {
  const auto& v = values.at(i);
  return v.has_value() ? std::strtod(v->c_str(), nullptr) : 0.0;
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& uri) {
  if (uri.starts_with("sqlite:")) {
    return OpenSqlite(uri.substr(7));
  }
  if (uri.starts_with("postgresql://") || uri.starts_with("postgres://")) {
    return OpenPostgres(uri);
  }
  return Status::InvalidArgument("database \"" + RedactUri(uri) +
                                 "\" is neither sqlite:PATH nor a postgresql:// URI");
}

std::string RedactUri(const std::string& uri) {
  size_t scheme = uri.find("://");
  if (scheme == std::string::npos) {
    return uri;
  }
  size_t at = uri.find('@', scheme + 3);
  if (at == std::string::npos) {
    return uri;
  }
  size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) {
    return uri;
  }
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

}  // namespace ferry::db
