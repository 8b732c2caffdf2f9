#include "db/database.h"

#include <cstdlib>
#include <string_view>

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

Result<Rows> Database::Query(std::string_view sql, const Params& params) {
  Rows rows;
  FERRY_RETURN_IF_ERROR(Run(sql, params, &rows, nullptr));
  return rows;
}

Result<int64_t> Database::Execute(std::string_view sql, const Params& params) {
  int64_t changed = 0;
  FERRY_RETURN_IF_ERROR(Run(sql, params, nullptr, &changed));
  return changed;
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
  std::string out = uri;
  // user:password@ in the authority.
  size_t start = scheme + 3;
  size_t end = out.find_first_of("/?", start);
  std::string_view authority = std::string_view(out).substr(
      start, end == std::string::npos ? std::string::npos : end - start);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    size_t colon = authority.substr(0, at).find(':');
    if (colon != std::string_view::npos) {
      out.replace(start + colon + 1, at - colon - 1, "***");
    }
  }
  // password=... and sslpassword=... among the parameters.
  size_t query = out.find('?');
  while (query != std::string::npos && query + 1 < out.size()) {
    size_t key = query + 1;
    size_t eq = out.find('=', key);
    size_t amp = out.find('&', key);
    if (eq != std::string::npos && (amp == std::string::npos || eq < amp)) {
      std::string name = out.substr(key, eq - key);
      if (name == "password" || name == "sslpassword") {
        size_t value_end = amp == std::string::npos ? out.size() : amp;
        out.replace(eq + 1, value_end - eq - 1, "***");
        amp = out.find('&', eq);
      }
    }
    query = amp;
  }
  return out;
}

}  // namespace ferry::db
