// S3 target: one signed PUT per instance over libcurl (see s3_target.h).
#include "targets/s3_target.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/logging.h"
#include "targets/s3_signer.h"

namespace ferry {
namespace s3 {
namespace {

std::string_view Trim(std::string_view s, char c) {
  while (!s.empty() && s.front() == c) {
    s.remove_prefix(1);
  }
  while (!s.empty() && s.back() == c) {
    s.remove_suffix(1);
  }
  return s;
}

// The text of the first <tag>...</tag> in `xml`, with the five predefined entities decoded.
std::string ElementText(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t start = xml.find(open);
  if (start == std::string_view::npos) {
    return "";
  }
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) {
    return "";
  }
  std::string_view raw = xml.substr(start, end - start);
  std::string text;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '&') {
      static constexpr std::pair<std::string_view, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      bool decoded = false;
      for (const auto& [entity, c] : kEntities) {
        if (raw.substr(i).starts_with(entity)) {
          text += c;
          i += entity.size() - 1;
          decoded = true;
          break;
        }
      }
      if (decoded) {
        continue;
      }
    }
    text += raw[i];
  }
  return text;
}

}  // namespace

std::string ObjectKey(std::string_view prefix, const OutgoingInstance& instance) {
  std::string key(Trim(prefix, '/'));
  if (!key.empty()) {
    key += '/';
  }
  return key + instance.study_instance_uid + "/" + instance.series_instance_uid + "/" +
         instance.sop_instance_uid + ".dcm";
}

Result<BucketAddress> AddressOf(const TargetOptions& options) {
  BucketAddress a;
  if (options.endpoint_url.empty()) {
    // Virtual-hosted style, which AWS requires of new buckets; a name with dots would not
    // match the wildcard certificate, so those go path-style.
    if (options.bucket.find('.') == std::string::npos) {
      a.host = fmt::format("{}.s3.{}.amazonaws.com", options.bucket, options.region);
    } else {
      a.host = fmt::format("s3.{}.amazonaws.com", options.region);
      a.bucket_path = "/" + UriEncode(options.bucket, false);
    }
    a.origin = "https://" + a.host;
    return a;
  }
  std::string_view url = options.endpoint_url;
  size_t scheme_end = url.find("://");
  std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return Status::InvalidArgument("the endpoint_url \"" + options.endpoint_url +
                                   "\" must start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    authority.remove_prefix(at + 1);  // credentials in the URL are not S3's; SigV4 signs
  }
  std::string_view base_path =
      path_start == std::string_view::npos ? "" : Trim(rest.substr(path_start), '/');
  if (authority.empty()) {
    return Status::InvalidArgument("the endpoint_url \"" + options.endpoint_url +
                                   "\" names no host");
  }
  a.host = std::string(authority);
  a.origin = std::string(scheme) + "://" + a.host;
  a.bucket_path = (base_path.empty() ? "" : "/" + UriEncode(base_path, true)) + "/" +
                  UriEncode(options.bucket, false);
  return a;
}

std::string ObjectPath(const BucketAddress& address, std::string_view key) {
  return address.bucket_path + "/" + UriEncode(key, true);
}

ErrorDocument ParseError(std::string_view body) {
  return {ElementText(body, "Code"), ElementText(body, "Message")};
}

Status StatusOf(const HttpResponse& response, const TargetOptions& options,
                const std::string& what) {
  const long s = response.status;
  if (s >= 200 && s < 300) {
    return Status::Ok();
  }
  ErrorDocument error = ParseError(response.body);
  std::string status =
      fmt::format("{}: HTTP {}{}", what, s, response.reason.empty() ? "" : " " + response.reason);
  if (!error.code.empty()) {
    status += " " + error.code;
  }
  if (!error.message.empty()) {
    status += " (" + error.message + ")";
  }
  const std::string& code = error.code;
  if (s == 403 || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch") {
    if (code == "RequestTimeTooSkewed") {
      return Status::FailedPrecondition(
          status +
          " — this computer's clock differs too much from the server's; synchronise "
          "it (NTP)");
    }
    if (code == "AccessDenied") {
      return Status::PermissionDenied(
          status +
          " — the credentials were accepted but may not do this; grant them "
          "s3:PutObject (and s3:ListBucket for `ferry targets test`) on bucket " +
          options.bucket);
    }
    return Status::PermissionDenied(
        status +
        " — S3 refused the credentials or the signature; check access_key_id and "
        "secret_access_key");
  }
  if (code == "NoSuchBucket" || (s == 404 && code.empty())) {
    return Status::FailedPrecondition(fmt::format(
        "{} — the bucket \"{}\" does not exist at {}; create it or correct the "
        "target's bucket",
        status, options.bucket,
        options.endpoint_url.empty() ? "AWS region " + options.region : options.endpoint_url));
  }
  if ((s >= 300 && s < 400) || code == "AuthorizationHeaderMalformed" ||
      code == "PermanentRedirect" || code == "IllegalLocationConstraintException") {
    return Status::FailedPrecondition(
        status +
        " — the bucket is not where ferry sent the request; check the target's "
        "region and endpoint_url");
  }
  if (s == 408 || s == 429 || s >= 500 || code == "RequestTimeout" || code == "OperationAborted" ||
      code == "SlowDown") {
    return Status::Unavailable(status);
  }
  if (s >= 400) {
    return Status::InvalidArgument(status);
  }
  return Status::Unavailable(status + " — unexpected answer");
}

}  // namespace s3

namespace {

Outcome OutcomeOf(const Status& s) {
  return IsPermanent(s) ? Outcome::kPermanent : Outcome::kTransient;
}

// Lower-case hex SHA-256 of the file at `path`, which must hold `size` bytes.
Result<std::string> Sha256OfFile(const std::string& path, uint64_t size) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"),
                                                       std::fclose);
  if (!file) {
    return Status::FromErrno(errno, "open " + path);
  }
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Internal("OpenSSL could not start a SHA-256 digest");
  }
  std::vector<char> buffer(1 << 20);
  uint64_t total = 0;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    EVP_DigestUpdate(ctx.get(), buffer.data(), n);
    total += n;
  }
  if (std::ferror(file.get())) {
    return Status::FromErrno(errno, "read " + path);
  }
  if (total != size) {
    return Status::Corruption(path + " changed while it was being read");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return s3::HexEncode(std::string_view(reinterpret_cast<char*>(digest), length));
}

// Builds the signed request for `path` (encoded) in the bucket at `address`.
HttpRequest SignedRequest(const TargetOptions& options, const s3::BucketAddress& address,
                          std::string method, std::string path,
                          std::vector<std::pair<std::string, std::string>> query,
                          std::string payload_sha256, const std::string& content_type,
                          const Clock& clock) {
  s3::SignedRequest r;
  r.method = std::move(method);
  r.path = path.empty() ? "/" : std::move(path);
  r.query = std::move(query);
  r.payload_sha256 = std::move(payload_sha256);
  r.amz_date = FormatCompact(clock.Now());
  r.region = options.region;
  r.headers = {{"host", address.host},
               {"x-amz-content-sha256", r.payload_sha256},
               {"x-amz-date", r.amz_date}};
  if (!content_type.empty()) {
    r.headers.emplace_back("content-type", content_type);
  }
  HttpRequest request;
  request.method = r.method;
  request.url = address.origin + r.path;
  std::string query_string;
  for (const auto& [name, value] : r.query) {
    query_string += (query_string.empty() ? "?" : "&") + s3::UriEncode(name, false) + "=" +
                    s3::UriEncode(value, false);
  }
  request.url += query_string;
  // libcurl sends these exact headers (it leaves a Host header given here alone), so the
  // server sees what was signed.
  for (const auto& [name, value] : r.headers) {
    request.headers.push_back(name + ": " + value);
  }
  request.headers.push_back(
      "Authorization: " +
      s3::Sign(r, s3::Credentials{options.access_key_id, options.secret_access_key}));
  return request;
}

class S3Session : public TargetSession {
 public:
  S3Session(const TargetOptions& options, s3::BucketAddress address, const TaskContext& task,
            std::unique_ptr<HttpClient> client, const Clock* clock)
      : options_(options),
        address_(std::move(address)),
        task_(task),
        client_(std::move(client)),
        clock_(clock) {}

  void Send(const std::vector<OutgoingInstance>& instances,
            std::vector<InstanceResult>* results) override {
    results->assign(instances.size(), InstanceResult{Outcome::kTransient, "not sent"});
    for (size_t i = 0; i < instances.size(); ++i) {
      if (task_.cancel != nullptr && task_.cancel->load(std::memory_order_relaxed)) {
        MarkNotSent(i, Status::Unavailable("ferry is shutting down"), results);
        return;
      }
      uint64_t size = 0;
      auto sha256 = Prepare(instances[i], &size);
      if (!sha256) {
        (*results)[i] = {OutcomeOf(sha256.error()), sha256.error().message()};
        continue;
      }
      Status s = Put(instances[i], size, *sha256);
      (*results)[i] = {s.ok() ? Outcome::kDelivered : OutcomeOf(s), s.ok() ? "" : s.message()};
      // A refusal of this one object (InvalidArgument) or a file that changed or vanished
      // while it was read does not stop the others; an
      // unreachable server, refused credentials or a missing bucket do.
      if (!s.ok() && s.code() != Status::Code::kInvalidArgument &&
          s.code() != Status::Code::kCorruption && s.code() != Status::Code::kNotFound) {
        MarkNotSent(i + 1, s, results);
        return;
      }
    }
  }

 private:
  static void MarkNotSent(size_t from, const Status& why, std::vector<InstanceResult>* results) {
    for (size_t i = from; i < results->size(); ++i) {
      (*results)[i] = {OutcomeOf(why), "not sent: " + why.message()};
    }
  }

  // Reads the size and SHA-256 of the instance's file, which SigV4 signs.
  static Result<std::string> Prepare(const OutgoingInstance& instance, uint64_t* size) {
    struct stat st {};
    if (::stat(instance.path.c_str(), &st) != 0) {
      int err = errno;
      Status s = Status::FromErrno(err, "stat " + instance.path);
      // A file gone from the spool will not come back.
      return err == ENOENT ? Status::FailedPrecondition(s.message()) : s;
    }
    *size = static_cast<uint64_t>(st.st_size);
    return Sha256OfFile(instance.path, *size);
  }

  Status Put(const OutgoingInstance& instance, uint64_t size, const std::string& sha256) {
    std::string key = s3::ObjectKey(options_.prefix, instance);
    HttpBody body;
    body.AddFile(instance.path, size);
    HttpRequest request = SignedRequest(options_, address_, "PUT", s3::ObjectPath(address_, key),
                                        {}, sha256, "application/dicom", *clock_);
    request.body = &body;
    auto started = std::chrono::steady_clock::now();
    auto response = client_->Perform(request);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    std::string what = fmt::format("PUT s3://{}/{}", options_.bucket, key);
    if (!response) {
      Logger("targets")->debug("task={} target={} {} failed after {} ms: {}", task_.task_id,
                               options_.name, what, ms, response.error().message());
      return response.error();
    }
    Logger("targets")->debug("task={} target={} {} ({} bytes): HTTP {} in {} ms{}",
                             task_.task_id, options_.name, what, size, response->status, ms,
                             response->new_connections > 0 ? " (new connection)" : "");
    return s3::StatusOf(*response, options_, what);
  }

  TargetOptions options_;
  s3::BucketAddress address_;
  TaskContext task_;
  std::unique_ptr<HttpClient> client_;
  const Clock* clock_;
};

class S3Target : public Target {
 public:
  S3Target(const TargetOptions& options, HttpClientFactory make_client, const Clock* clock)
      : Target(options), make_client_(std::move(make_client)), clock_(clock) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) override {
    FERRY_ASSIGN_OR_RETURN(s3::BucketAddress address, s3::AddressOf(options()));
    FERRY_ASSIGN_OR_RETURN(auto client, make_client_(ClientOptionsFor(options(), task.cancel)));
    return std::unique_ptr<TargetSession>(std::make_unique<S3Session>(
        options(), std::move(address), task, std::move(client), clock_));
  }

  // Lists at most zero keys of the bucket (ListObjectsV2, max-keys=0): signed like a PUT, it
  // proves that the server answers, the bucket exists and the credentials are accepted, and
  // stores nothing.
  Status Check() override {
    FERRY_ASSIGN_OR_RETURN(s3::BucketAddress address, s3::AddressOf(options()));
    FERRY_ASSIGN_OR_RETURN(auto client, make_client_(ClientOptionsFor(options(), nullptr)));
    HttpRequest request = SignedRequest(options(), address, "GET", address.bucket_path,
                                        {{"list-type", "2"}, {"max-keys", "0"}},
                                        std::string(s3::kEmptySha256), "", *clock_);
    auto response = client->Perform(request);
    if (!response) {
      const Status& e = response.error();
      return e.code() == Status::Code::kUnavailable ? e.WithContext("cannot reach the S3 server")
                                                    : e;
    }
    return s3::StatusOf(*response, options(), "list s3://" + options().bucket);
  }

 private:
  HttpClientFactory make_client_;
  const Clock* clock_;
};

}  // namespace

std::unique_ptr<Target> MakeS3Target(const TargetOptions& options, HttpClientFactory make_client,
                                     const Clock* clock) {
  return std::make_unique<S3Target>(options, std::move(make_client), clock);
}

std::unique_ptr<Target> MakeS3Target(const TargetOptions& options) {
  return MakeS3Target(options, MakeCurlHttpClient, RealClock());
}

}  // namespace ferry
