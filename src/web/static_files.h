// StaticFiles: the web UI's built files (web/dist, made by `vite build`) served at `/` beside
// the API. A GET for a file under the folder answers the file; any other GET outside /api/,
// /metrics and /healthz answers index.html, so the single-page app's own routes (/queue,
// /trace/abc) survive a reload. Vite names the files under assets/ by their content hash:
// those are cached for a year (immutable); everything else, above all index.html, is
// revalidated on every load (no-cache), so a new build shows at once.
//
// Security: the request path is decoded by the HTTP server; Resolve() refuses any path with a
// `..`, `.` or empty segment, a NUL or a backslash, and serves only regular files whose
// canonical path lies inside the canonical root (a symlink out of the folder is refused).
// Thread-safety: immutable after construction; Serve() may run on any worker thread.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "web/route.h"

namespace ferry::web {

class StaticFiles {
 public:
  // `root` is the folder holding index.html; it may not exist yet (then every answer is a 404
  // that says how to build the UI).
  explicit StaticFiles(std::filesystem::path root);

  // The answer to GET `path` (decoded, starting with '/'); never throws.
  Response Serve(const std::string& path) const;

  // The file `path` names inside the root, or nullopt when it names none or escapes the root.
  std::optional<std::filesystem::path> Resolve(const std::string& path) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  Response FileResponse(const std::filesystem::path& file, bool immutable) const;

  std::filesystem::path root_;
};

// The Content-Type for a file name by its extension ("application/octet-stream" if unknown).
std::string ContentTypeFor(const std::filesystem::path& file);

// The folder `ferry web` serves: web.static_folder when set, else the web/dist of the source
// tree this binary was built from (FERRY_WEB_DIST, set by CMake).
std::filesystem::path DefaultStaticFolder();

}  // namespace ferry::web
