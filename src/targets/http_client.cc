#include "targets/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace ferry {

HttpBody::~HttpBody() { CloseFile(); }

void HttpBody::AddText(std::string text) {
  size_ += text.size();
  pieces_.push_back(Piece{std::move(text), "", 0});
}

void HttpBody::AddFile(std::string path, uint64_t size) {
  size_ += size;
  pieces_.push_back(Piece{"", std::move(path), size});
}

void HttpBody::CloseFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
}

void HttpBody::Rewind() {
  CloseFile();
  piece_ = 0;
  offset_ = 0;
}

Result<size_t> HttpBody::Read(char* buffer, size_t n) {
  size_t done = 0;
  while (done < n && piece_ < pieces_.size()) {
    const Piece& p = pieces_[piece_];
    uint64_t piece_size = p.path.empty() ? p.text.size() : p.size;
    if (offset_ == piece_size) {
      if (file_ != nullptr) {
        // The file must end where its size said: a file that grew would corrupt the body.
        if (std::fgetc(file_) != EOF) {
          CloseFile();
          return Status::Corruption(p.path + " changed while it was being sent");
        }
        CloseFile();
      }
      ++piece_;
      offset_ = 0;
      continue;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, piece_size - offset_));
    if (p.path.empty()) {
      std::memcpy(buffer + done, p.text.data() + offset_, want);
    } else {
      if (file_ == nullptr) {
        file_ = std::fopen(p.path.c_str(), "rbe");
        if (file_ == nullptr) {
          return Status::FromErrno(errno, "open " + p.path);
        }
      }
      size_t got = std::fread(buffer + done, 1, want, file_);
      if (got == 0) {
        Status s = std::ferror(file_) ? Status::FromErrno(errno, "read " + p.path)
                                      : Status::Corruption(p.path +
                                                           " became shorter while it "
                                                           "was being sent");
        CloseFile();
        return s;
      }
      want = got;
    }
    done += want;
    offset_ += want;
  }
  return done;
}

std::string JoinUrl(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') {
    base.remove_suffix(1);
  }
  while (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  std::string url(base);
  if (!path.empty()) {
    url += '/';
    url += path;
  }
  return url;
}

std::string RedactUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    return std::string(url);
  }
  return std::string(url.substr(0, start)) + std::string(url.substr(at + 1));
}

namespace {

// libcurl's global state is set up once, before the first handle, from whichever thread
// comes first.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  HttpBody* body = nullptr;
  Status body_error;
  std::string response;
  std::string reason;
  const std::atomic<bool>* cancel = nullptr;
  bool cancelled = false;
};

size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  auto n = t->body->Read(buffer, size * count);
  if (!n) {
    t->body_error = n.error();
    return CURL_READFUNC_ABORT;
  }
  return *n;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (offset != 0 || origin != SEEK_SET) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->body->Rewind();
  return CURL_SEEKFUNC_OK;
}

size_t OnWrite(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  size_t room =
      HttpResponse::kMaxResponseBody - std::min(t->response.size(), HttpResponse::kMaxResponseBody);
  t->response.append(data, std::min(n, room));
  return n;  // the rest of an oversized answer is dropped, not an error
}

// Keeps the reason phrase of the last status line ("HTTP/1.1 404 Not Found"); a "100 Continue"
// comes first and is replaced by the final one.
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    size_t code = line.find(' ');
    size_t reason = code == std::string_view::npos ? code : line.find(' ', code + 1);
    t->reason.clear();
    if (reason != std::string_view::npos) {
      line.remove_prefix(reason + 1);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
        line.remove_suffix(1);
      }
      t->reason = line;
    }
  }
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel != nullptr && t->cancel->load(std::memory_order_relaxed)) {
    t->cancelled = true;
    return 1;
  }
  return 0;
}

// Maps a libcurl failure to a Status: retrying helps against a peer that is down or slow, not
// against a certificate ferry does not trust or a URL it cannot parse.
Status TransportError(CURLcode code, const char* detail, const std::string& what) {
  std::string reason = detail != nullptr && detail[0] != '\0' ? detail : curl_easy_strerror(code);
  std::string message = fmt::format("{}: {}", what, reason);
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Status::InvalidArgument(message + "; check the target's url");
    case CURLE_PEER_FAILED_VERIFICATION:
      return Status::FailedPrecondition(
          message +
          "; the server's TLS certificate is not trusted: set the target's ca_cert to "
          "the CA that signed it");
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return Status::FailedPrecondition(message + "; check the target's TLS files");
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Unavailable(message + " (no progress within the target's timeout)");
    default:
      return Status::Unavailable(message);
  }
}

std::string ContentTypeOf(CURL* curl) {
  char* type = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) != CURLE_OK || type == nullptr) {
    return "";
  }
  std::string t(type);
  t = t.substr(0, t.find(';'));
  while (!t.empty() && t.back() == ' ') {
    t.pop_back();
  }
  for (char& c : t) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return t;
}

class CurlHttpClient : public HttpClient {
 public:
  CurlHttpClient(CURL* curl, HttpClientOptions options)
      : curl_(curl), options_(std::move(options)) {}
  ~CurlHttpClient() override { curl_easy_cleanup(curl_); }

  Result<HttpResponse> Perform(const HttpRequest& request) override {
    // Options are set afresh for every request; the handle keeps its open connection.
    Transfer t;
    t.body = request.body;
    t.cancel = options_.cancel;
    if (t.body != nullptr) {
      t.body->Rewind();
    }
    error_[0] = '\0';
    CURL* c = curl_;
    curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ferry");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.timeout_s));
    // A stalled transfer (under one byte per second for timeout_s) fails; a large upload that
    // keeps moving does not.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.timeout_s));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, options_.verify_peer ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, options_.verify_peer ? 2L : 0L);
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    if (!options_.certificate_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, options_.certificate_file.c_str());
    }
    if (!options_.key_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLKEY, options_.key_file.c_str());
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (!request.user.empty()) {
      curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(c, CURLOPT_USERNAME, request.user.c_str());
      curl_easy_setopt(c, CURLOPT_PASSWORD, request.password.c_str());
    }

    const std::string& m = request.method;
    if (m == "GET") {
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (m == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (m == "PUT") {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(t.body != nullptr ? t.body->size() : 0));
    } else if (m == "POST") {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t.body != nullptr ? t.body->size() : 0));
      if (t.body == nullptr) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
      }
    } else {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
    }
    if (t.body != nullptr) {
      curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(c, CURLOPT_READDATA, &t);
      curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    }

    curl_slist* headers = nullptr;
    for (const auto& h : request.headers) {
      headers = curl_slist_append(headers, h.c_str());
    }
    if (t.body != nullptr) {
      // No "Expect: 100-continue" before large bodies: servers that never answer it (Orthanc)
      // would cost a one-second wait per request. A server that refuses the request early
      // still gets heard: libcurl stops sending when an error answer arrives.
      headers = curl_slist_append(headers, "Expect:");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    CURLcode code = curl_easy_perform(c);
    curl_slist_free_all(headers);
    HttpResponse response;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
    response.content_type = ContentTypeOf(c);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &response.new_connections);
    // The handle must not keep pointers to this call's headers and transfer state.
    curl_easy_reset(c);
    if (t.body != nullptr) {
      t.body->Rewind();  // closes the file it was reading
    }

    std::string what = fmt::format("{} {}", m, RedactUrl(request.url));
    if (t.cancelled) {
      return Status::Unavailable(what + ": cancelled because ferry is shutting down");
    }
    if (!t.body_error.ok()) {
      return t.body_error.WithContext(what);
    }
    if (code != CURLE_OK) {
      return TransportError(code, error_, what);
    }
    response.reason = std::move(t.reason);
    response.body = std::move(t.response);
    return response;
  }

 private:
  CURL* curl_;
  HttpClientOptions options_;
  char error_[CURL_ERROR_SIZE] = "";
};

}  // namespace

Result<std::unique_ptr<HttpClient>> MakeCurlHttpClient(const HttpClientOptions& options) {
  InitCurlOnce();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    return Status::Internal("libcurl could not create a handle");
  }
  return std::unique_ptr<HttpClient>(std::make_unique<CurlHttpClient>(curl, options));
}

HttpClientOptions ClientOptionsFor(const TargetOptions& o, const std::atomic<bool>* cancel) {
  HttpClientOptions c;
  c.timeout_s = o.timeout_s;
  c.ca_file = o.tls.ca_file;
  c.verify_peer = o.tls.verify_peer;
  c.certificate_file = o.tls.certificate_file;
  c.key_file = o.tls.key_file;
  c.cancel = cancel;
  return c;
}

}  // namespace ferry
