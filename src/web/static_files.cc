#include "web/static_files.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <system_error>

namespace ferry::web {
namespace fs = std::filesystem;
namespace {

// Paths the SPA fallback never answers: they belong to the server.
bool IsServerPath(const std::string& path) {
  for (std::string_view prefix : {"/api/", "/metrics", "/healthz"}) {
    if (path.rfind(prefix, 0) == 0) {
      return true;
    }
  }
  return path == "/api";
}

// True when every '/'-separated segment after the leading '/' is a plain name.
bool SafeSegments(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos ||
      path.find('\\') != std::string::npos) {
    return false;
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string_view segment(path.data() + start, end - start);
    if (segment == "." || segment == ".." || (segment.empty() && end != path.size())) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

bool IsWithin(const fs::path& root, const fs::path& file) {
  auto r = root.begin();
  auto f = file.begin();
  for (; r != root.end(); ++r, ++f) {
    if (f == file.end() || *r != *f) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string ContentTypeFor(const fs::path& file) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  std::string ext = file.extension().string();
  for (const auto& [e, type] : kTypes) {
    if (ext == e) {
      return std::string(type);
    }
  }
  return "application/octet-stream";
}

fs::path DefaultStaticFolder() {
#ifdef FERRY_WEB_DIST
  return fs::path(FERRY_WEB_DIST);
#else
  return fs::path("web/dist");
#endif
}

StaticFiles::StaticFiles(fs::path root) : root_(std::move(root)) {}

std::optional<fs::path> StaticFiles::Resolve(const std::string& path) const {
  if (!SafeSegments(path)) {
    return std::nullopt;
  }
  std::error_code ec;
  fs::path root = fs::canonical(root_, ec);
  if (ec) {
    return std::nullopt;
  }
  fs::path relative = fs::path(path.substr(1));
  fs::path candidate = relative.empty() ? root / "index.html" : root / relative;
  fs::path file = fs::canonical(candidate, ec);
  if (ec || !IsWithin(root, file) || !fs::is_regular_file(file, ec)) {
    return std::nullopt;
  }
  return file;
}

Response StaticFiles::FileResponse(const fs::path& file, bool immutable) const {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return Response::Error(500, "cannot read a file of the web UI; see the web service's log");
  }
  Response r;
  r.content_type = ContentTypeFor(file);
  r.body = body.str();
  r.headers["Cache-Control"] = immutable ? "public, max-age=31536000, immutable" : "no-cache";
  r.headers["X-Content-Type-Options"] = "nosniff";
  if (file.extension() == ".html") {
    // The UI loads only its own bundled files and talks only to this server.
    r.headers["Content-Security-Policy"] =
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
    r.headers["X-Frame-Options"] = "DENY";
    r.headers["Referrer-Policy"] = "same-origin";
  }
  return r;
}

Response StaticFiles::Serve(const std::string& path) const {
  if (IsServerPath(path)) {
    return Response::Error(
        404, fmt::format("no endpoint GET {}; see /api/v1/openapi.json for the API", path));
  }
  if (auto file = Resolve(path)) {
    bool immutable = path.rfind("/assets/", 0) == 0;
    return FileResponse(*file, immutable);
  }
  // A missing file with an extension (a stale asset, a typo) is a real 404; anything else is
  // one of the app's routes.
  std::string last = path.substr(path.rfind('/') + 1);
  bool looks_like_file = last.find('.') != std::string::npos;
  if (!looks_like_file && SafeSegments(path)) {
    if (auto index = Resolve("/index.html")) {
      return FileResponse(*index, false);
    }
    return Response::Error(
        404, fmt::format("the web UI is not built: {} has no index.html. Run `make build` (or "
                         "`npm ci && npm run build` in web/), or set web.static_folder",
                         root_.string()));
  }
  return Response::Error(404, fmt::format("no file {} in the web UI", path));
}

}  // namespace ferry::web
