// HttpClient: the narrow interface through which the dicomweb and s3 targets speak HTTP.
//
// One real implementation over libcurl (MakeCurlHttpClient) keeps one easy handle, so that the
// requests of one target session reuse one TCP (and TLS) connection; unit tests substitute a
// fake. Request bodies are streamed from an HttpBody (literal text and whole files in order),
// so a STOW batch or an S3 object is never held in memory. Transport failures are classified
// where they arise (see Perform); HTTP status codes are left to the target, which knows what a
// 409 means for it.
// Thread-safety: an HttpClient is used by one thread at a time (one per target session).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/result.h"

namespace ferry {

// A request body: pieces of text and whole files, sent one after the other. Files are opened
// when the body is read, one at a time.
class HttpBody {
 public:
  HttpBody() = default;
  HttpBody(const HttpBody&) = delete;
  HttpBody& operator=(const HttpBody&) = delete;
  ~HttpBody();

  void AddText(std::string text);
  // Adds the file at `path`, whose size must stay `size` bytes until the body is sent.
  void AddFile(std::string path, uint64_t size);

  uint64_t size() const { return size_; }

  // Copies up to `n` bytes of the body into `buffer`; returns how many, 0 at the end. An error
  // when a file cannot be opened or read, or no longer has the size it was added with.
  Result<size_t> Read(char* buffer, size_t n);

  // Starts again from the first byte (libcurl resends a body after some redirects).
  void Rewind();

 private:
  struct Piece {
    std::string text;  // when `path` is empty
    std::string path;
    uint64_t size = 0;
  };

  void CloseFile();

  std::vector<Piece> pieces_;
  uint64_t size_ = 0;
  size_t piece_ = 0;     // the piece being read
  uint64_t offset_ = 0;  // bytes of that piece already read
  std::FILE* file_ = nullptr;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, OPTIONS
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  HttpBody* body = nullptr;          // not owned; null: no body
  // HTTP Basic authentication when `user` is not empty.
  std::string user;
  std::string password;
};

struct HttpResponse {
  long status = 0;           // 200, 404, ...
  std::string reason;        // the status line's reason phrase ("Not Found"); may be empty
  std::string content_type;  // of the response, lower case, without parameters
  std::string body;          // at most kMaxResponseBody bytes
  long new_connections = 0;  // connections opened for this request (0: an open one was reused)
  static constexpr size_t kMaxResponseBody = 8 << 20;
};

struct HttpClientOptions {
  // Seconds to connect, and the longest time a request may go without sending or receiving a
  // byte (a peer that stalls), from TargetOptions::timeout_s.
  int timeout_s = 60;
  std::string ca_file;  // PEM CA certificates trusted for https; empty: the system's
  bool verify_peer = true;
  std::string certificate_file;  // optional client certificate (PEM) and its key
  std::string key_file;
  // When set, an ongoing request is aborted soon after it becomes true (ferry shuts down).
  const std::atomic<bool>* cancel = nullptr;
};

// The client options of an HTTP target (timeout and TLS settings from its config).
HttpClientOptions ClientOptionsFor(const TargetOptions& target, const std::atomic<bool>* cancel);

class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Sends `request` and returns the response, whatever its status code. Errors (no response):
  // Unavailable for what may pass (connection refused, DNS failure, timeout, reset, cancelled),
  // FailedPrecondition for TLS trust problems (the server's certificate is not trusted, a
  // bad ca_file), InvalidArgument for a malformed URL, and the body's error when a file could
  // not be read.
  virtual Result<HttpResponse> Perform(const HttpRequest& request) = 0;
};

// The libcurl implementation. Internal when libcurl cannot create a handle.
Result<std::unique_ptr<HttpClient>> MakeCurlHttpClient(const HttpClientOptions& options);

// Creates one HttpClient per target session; the targets take one so that tests can substitute
// a fake.
using HttpClientFactory =
    std::function<Result<std::unique_ptr<HttpClient>>(const HttpClientOptions&)>;

// "https://host:port/a/b" + "c/d" → "https://host:port/a/b/c/d", with exactly one slash
// between the parts; an empty `path` returns `base` without its trailing slashes.
std::string JoinUrl(std::string_view base, std::string_view path);

// Removes user name and password from a URL for messages ("https://u:p@h/x" → "https://h/x").
std::string RedactUrl(std::string_view url);

}  // namespace ferry
