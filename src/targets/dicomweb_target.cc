// DICOMweb target: STOW-RS over libcurl (see dicomweb_target.h for the protocol).
#include "targets/dicomweb_target.h"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/logging.h"

namespace ferry {
namespace stow {
namespace {

using nlohmann::json;

constexpr const char* kReferencedSopSequence = "00081199";
constexpr const char* kFailedSopSequence = "00081198";
constexpr const char* kFailureReason = "00081197";
constexpr const char* kWarningReason = "00081196";
constexpr const char* kReferencedSopInstanceUid = "00081155";

// The first value of `tag` in a DICOM JSON dataset, or null.
const json* FirstValue(const json& dataset, const char* tag) {
  auto element = dataset.find(tag);
  if (element == dataset.end() || !element->is_object()) {
    return nullptr;
  }
  auto value = element->find("Value");
  if (value == element->end() || !value->is_array() || value->empty()) {
    return nullptr;
  }
  return &(*value)[0];
}

// A US value: a number, or (some servers) its decimal or hexadecimal text.
int ReasonOf(const json& item, const char* tag) {
  const json* v = FirstValue(item, tag);
  if (v == nullptr) {
    return -1;
  }
  if (v->is_number_integer() || v->is_number_unsigned()) {
    return v->get<int>();
  }
  if (v->is_number_float()) {
    return static_cast<int>(v->get<double>());
  }
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty() || s.size() > 8) {
      return -1;
    }
    bool decimal = std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    bool hex = std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) != 0; });
    if (decimal || hex) {
      return static_cast<int>(std::stoul(s, nullptr, decimal ? 10 : 16));
    }
  }
  return -1;
}

void ReadSequence(const json& answer, const char* sequence_tag, const char* reason_tag,
                  std::map<std::string, ListedInstance>* out) {
  auto sequence = answer.find(sequence_tag);
  if (sequence == answer.end() || !sequence->is_object()) {
    return;
  }
  auto items = sequence->find("Value");
  if (items == sequence->end() || !items->is_array()) {
    return;
  }
  for (const json& item : *items) {
    if (!item.is_object()) {
      continue;
    }
    const json* uid = FirstValue(item, kReferencedSopInstanceUid);
    if (uid == nullptr || !uid->is_string()) {
      continue;
    }
    (*out)[uid->get<std::string>()] = ListedInstance{ReasonOf(item, reason_tag)};
  }
}

std::string Collapse(std::string_view text, size_t limit) {
  std::string out;
  bool blank = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      blank = !out.empty();
      continue;
    }
    if (blank) {
      out += ' ';
      blank = false;
    }
    out += c;
    if (out.size() >= limit) {
      out += "...";
      break;
    }
  }
  return out;
}

// What the server said about an error, in a line: the message of a JSON error document
// (Orthanc: Message and Details), the title of an HTML page, or the start of plain text.
std::string ServerMessage(const HttpResponse& r) {
  if (r.body.empty()) {
    return "";
  }
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    std::string message;
    for (const char* key : {"Message", "message", "error", "Details", "details"}) {
      auto it = j.find(key);
      if (it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
        message += (message.empty() ? "" : ": ") + it->get<std::string>();
      }
    }
    return Collapse(message, 300);
  }
  if (!j.is_discarded()) {
    return "";  // a DICOM JSON answer: its content is reported per instance
  }
  std::string_view body = r.body;
  size_t title = body.find("<title>");
  if (title != std::string_view::npos) {
    size_t end = body.find("</title>", title);
    return Collapse(body.substr(title + 7, end == std::string_view::npos ? 0 : end - title - 7),
                    300);
  }
  if (body.front() == '<') {
    return "";
  }
  return Collapse(body, 300);
}

InstanceResult FromFailed(const std::string& status, int reason) {
  return {IsTransientReason(reason) ? Outcome::kTransient : Outcome::kPermanent,
          fmt::format("{}: the server refused the instance{}", status,
                      reason < 0 ? "" : ": FailureReason " + ReasonText(reason))};
}

}  // namespace

std::string NewBoundary() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    std::random_device device;
    for (auto& b : bytes) {
      b = static_cast<unsigned char>(device());
    }
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string boundary = "ferry-";
  for (unsigned char b : bytes) {
    boundary += kDigits[b >> 4];
    boundary += kDigits[b & 0x0f];
  }
  return boundary;
}

std::string ContentType(const std::string& boundary) {
  return "multipart/related; type=\"application/dicom\"; boundary=" + boundary;
}

void BuildBody(const std::vector<std::pair<std::string, uint64_t>>& files,
               const std::string& boundary, HttpBody* body) {
  for (const auto& [path, size] : files) {
    body->AddText("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n");
    body->AddFile(path, size);
    body->AddText("\r\n");
  }
  body->AddText("--" + boundary + "--\r\n");
}

Result<StowAnswer> ParseAnswer(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("the STOW-RS answer is not a DICOM JSON object");
  }
  StowAnswer answer;
  try {
    ReadSequence(j, kReferencedSopSequence, kWarningReason, &answer.stored);
    ReadSequence(j, kFailedSopSequence, kFailureReason, &answer.failed);
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("the STOW-RS answer is malformed: ") + e.what());
  }
  return answer;
}

std::string ReasonText(int reason) {
  std::string_view text;
  if (reason == 0x0110) {
    text = "processing failure";
  } else if (reason == 0x0111) {
    text = "duplicate SOP instance";
  } else if (reason == 0x0117) {
    text = "invalid object instance";
  } else if (reason == 0x0122) {
    text = "SOP class not supported";
  } else if (reason == 0x0124) {
    text = "not authorized";
  } else if (reason == 0x0213) {
    text = "resource limitation";
  } else if (reason == 0xC122) {
    text = "transfer syntax not supported";
  } else if (reason == 0xB000) {
    text = "coercion of data elements";
  } else if (reason == 0xB006) {
    text = "elements discarded";
  } else if (reason == 0xB007) {
    text = "data set does not match SOP class";
  } else if ((reason & 0xFF00) == 0xA700) {
    text = "out of resources";
  } else if ((reason & 0xFF00) == 0xA900) {
    text = "data set does not match SOP class";
  } else if ((reason & 0xF000) == 0xC000) {
    text = "cannot understand";
  }
  std::string code = fmt::format("0x{:04X}", reason);
  return text.empty() ? code : code + " (" + std::string(text) + ")";
}

bool IsTransientReason(int reason) {
  // No reason given: the server did not say it can never work, so try again later.
  return reason < 0 || (reason & 0xFF00) == 0xA700 || reason == 0x0110 || reason == 0x0213;
}

std::string DescribeStatus(const HttpResponse& response) {
  std::string text = fmt::format("HTTP {}", response.status);
  if (!response.reason.empty()) {
    text += " " + response.reason;
  }
  std::string message = ServerMessage(response);
  if (!message.empty()) {
    text += ": " + message;
  }
  return text;
}

std::vector<InstanceResult> Classify(const HttpResponse& response,
                                     const std::vector<std::string>& sop_instance_uids) {
  const long s = response.status;
  const std::string status = DescribeStatus(response);
  auto all = [&](Outcome outcome, const std::string& detail) {
    return std::vector<InstanceResult>(sop_instance_uids.size(), InstanceResult{outcome, detail});
  };
  if (s == 401 || s == 403) {
    return all(Outcome::kPermanent,
               status +
                   " — authentication failed — check access_token/http_user and "
                   "http_password");
  }
  if (s == 429 || s >= 500) {
    return all(Outcome::kTransient, status);
  }
  if (s >= 300 && s < 400) {
    return all(Outcome::kPermanent,
               status +
                   " — the server redirects STOW-RS requests; set the target's url to the "
                   "address it redirects to");
  }
  if (s < 200) {
    return all(Outcome::kTransient, status + " — not a final answer");
  }
  auto answer = ParseAnswer(response.body);
  bool listed = answer && (!answer->stored.empty() || !answer->failed.empty());
  if (s >= 400 && !listed) {
    return all(Outcome::kPermanent, status + " — the server refused the request");
  }
  std::vector<InstanceResult> results;
  results.reserve(sop_instance_uids.size());
  for (const auto& uid : sop_instance_uids) {
    if (answer) {
      auto failed = answer->failed.find(uid);
      if (failed != answer->failed.end()) {
        results.push_back(FromFailed(status, failed->second.reason));
        continue;
      }
      auto stored = answer->stored.find(uid);
      if (stored != answer->stored.end()) {
        int warning = stored->second.reason;
        results.push_back(
            {Outcome::kDelivered, warning < 0 ? "" : "stored with warning " + ReasonText(warning)});
        continue;
      }
    }
    if (s >= 400) {
      results.push_back({Outcome::kPermanent, status + " — the instance is not listed as stored"});
    } else if (s == 202) {
      // Accepted with failures: only what the answer lists as stored is known to be stored.
      results.push_back({Outcome::kTransient,
                         status + " — the server did not confirm that it stored the instance"});
    } else {
      results.push_back({Outcome::kDelivered, ""});
    }
  }
  return results;
}

}  // namespace stow

namespace {

// The base of STOW-RS requests: {url}{stow_url_prefix}.
std::string StowBase(const TargetOptions& o) { return JoinUrl(o.url, o.stow_url_prefix); }

// Adds the target's credentials: a bearer token, else HTTP Basic.
void Authorize(const TargetOptions& o, HttpRequest* request) {
  if (!o.access_token.empty()) {
    request->headers.push_back("Authorization: Bearer " + o.access_token);
  } else if (!o.http_user.empty()) {
    request->user = o.http_user;
    request->password = o.http_password;
  }
}

Outcome OutcomeOf(const Status& s) {
  return IsPermanent(s) ? Outcome::kPermanent : Outcome::kTransient;
}

class DicomwebSession : public TargetSession {
 public:
  DicomwebSession(const TargetOptions& options, const TaskContext& task,
                  std::unique_ptr<HttpClient> client)
      : options_(options), task_(task), client_(std::move(client)) {}

  void Send(const std::vector<OutgoingInstance>& instances,
            std::vector<InstanceResult>* results) override {
    results->assign(instances.size(), InstanceResult{Outcome::kTransient, "not sent"});
    std::vector<size_t> pending;
    std::vector<uint64_t> sizes(instances.size(), 0);
    for (size_t i = 0; i < instances.size(); ++i) {
      struct stat st {};
      if (::stat(instances[i].path.c_str(), &st) != 0) {
        int err = errno;
        (*results)[i] = {err == ENOENT ? Outcome::kPermanent : Outcome::kTransient,
                         Status::FromErrno(err, "stat " + instances[i].path).message()};
        continue;
      }
      sizes[i] = static_cast<uint64_t>(st.st_size);
      pending.push_back(i);
    }
    const size_t batch = static_cast<size_t>(std::max(1, options_.batch_size));
    for (size_t next = 0; next < pending.size();) {
      if (Cancelled()) {
        MarkNotSent(pending, next, Status::Unavailable("ferry is shutting down"), results);
        return;
      }
      size_t end = std::min(pending.size(), next + batch);
      Status stop =
          SendBatch(instances, {pending.begin() + next, pending.begin() + end}, sizes, results);
      next = end;
      if (!stop.ok()) {
        // The peer is unreachable, refuses the credentials or is overloaded: the rest would
        // fail the same way.
        MarkNotSent(pending, next, stop, results);
        return;
      }
    }
  }

 private:
  static void MarkNotSent(const std::vector<size_t>& pending, size_t from, const Status& why,
                          std::vector<InstanceResult>* results) {
    for (size_t k = from; k < pending.size(); ++k) {
      (*results)[pending[k]] = {OutcomeOf(why), "not sent: " + why.message()};
    }
  }

  bool Cancelled() const {
    return task_.cancel != nullptr && task_.cancel->load(std::memory_order_relaxed);
  }

  // Sends one STOW-RS request with the instances at `indices` and fills in their results.
  // Returns an error when the failure concerns the whole target rather than these instances
  // (no connection, TLS or authentication refused, server overloaded), so that the caller
  // stops.
  Status SendBatch(const std::vector<OutgoingInstance>& instances,
                   const std::vector<size_t>& indices, const std::vector<uint64_t>& sizes,
                   std::vector<InstanceResult>* results) {
    std::vector<std::pair<std::string, uint64_t>> files;
    std::vector<std::string> uids;
    for (size_t i : indices) {
      files.emplace_back(instances[i].path, sizes[i]);
      uids.push_back(instances[i].sop_instance_uid);
    }
    std::string boundary = stow::NewBoundary();
    HttpBody body;
    stow::BuildBody(files, boundary, &body);
    HttpRequest request;
    request.method = "POST";
    request.url = JoinUrl(StowBase(options_), "studies");
    request.headers = {"Content-Type: " + stow::ContentType(boundary),
                       "Accept: application/dicom+json"};
    Authorize(options_, &request);
    request.body = &body;

    auto started = std::chrono::steady_clock::now();
    auto response = client_->Perform(request);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    if (!response) {
      Logger("targets")->debug("task={} target={} STOW-RS of {} instances failed after {} ms: {}",
                               task_.task_id, options_.name, indices.size(), ms,
                               response.error().message());
      const Status& e = response.error();
      for (size_t i : indices) {
        (*results)[i] = {OutcomeOf(e), e.message()};
      }
      // A file of this batch that could not be read fails only this batch.
      bool file_error = e.code() == Status::Code::kNotFound ||
                        e.code() == Status::Code::kCorruption ||
                        e.code() == Status::Code::kIoError;
      return file_error ? Status::Ok() : e;
    }
    Logger("targets")->debug(
        "task={} target={} STOW-RS of {} instances ({} bytes): HTTP {} in {} ms{}", task_.task_id,
        options_.name, indices.size(), body.size(), response->status, ms,
        response->new_connections > 0 ? " (new connection)" : "");
    std::vector<InstanceResult> batch = stow::Classify(*response, uids);
    for (size_t k = 0; k < indices.size(); ++k) {
      (*results)[indices[k]] = batch[k];
    }
    long s = response->status;
    if (s == 401 || s == 403) {
      return Status::PermissionDenied(batch.front().detail);
    }
    if (s == 429 || s >= 500) {
      return Status::Unavailable(stow::DescribeStatus(*response));
    }
    return Status::Ok();
  }

  TargetOptions options_;
  TaskContext task_;
  std::unique_ptr<HttpClient> client_;
};

class DicomwebTarget : public Target {
 public:
  DicomwebTarget(const TargetOptions& options, HttpClientFactory make_client)
      : Target(options), make_client_(std::move(make_client)) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) override {
    FERRY_ASSIGN_OR_RETURN(auto client, make_client_(ClientOptionsFor(options(), task.cancel)));
    return std::unique_ptr<TargetSession>(
        std::make_unique<DicomwebSession>(options(), task, std::move(client)));
  }

  // A QIDO-RS search for one study on the STOW-RS path: it proves that the server answers and
  // accepts the credentials, and stores nothing. A server that serves only STOW-RS there
  // answers 405 (method not allowed), which proves the same.
  Status Check() override {
    FERRY_ASSIGN_OR_RETURN(auto client, make_client_(ClientOptionsFor(options(), nullptr)));
    std::string base = StowBase(options());
    HttpRequest request;
    request.url = JoinUrl(base, "studies") + "?limit=1";
    request.headers = {"Accept: application/dicom+json"};
    Authorize(options(), &request);
    auto response = client->Perform(request);
    if (!response) {
      const Status& e = response.error();
      return e.code() == Status::Code::kUnavailable
                 ? e.WithContext("cannot reach the DICOMweb server")
                 : e;
    }
    long s = response->status;
    std::string status = stow::DescribeStatus(*response);
    std::string where = RedactUrl(request.url);
    if ((s >= 200 && s < 300) || s == 405) {
      return Status::Ok();
    }
    if (s == 401 || s == 403) {
      return Status::PermissionDenied(fmt::format(
          "GET {}: {} — authentication failed — check access_token/http_user and http_password",
          where, status));
    }
    if (s == 404) {
      return Status::FailedPrecondition(fmt::format(
          "GET {}: {} — no DICOMweb service there; check url and stow_url_prefix", where, status));
    }
    if (s == 429 || s >= 500) {
      return Status::Unavailable(fmt::format("GET {}: {}", where, status));
    }
    return Status::FailedPrecondition(fmt::format("GET {}: {}", where, status));
  }

 private:
  HttpClientFactory make_client_;
};

}  // namespace

std::unique_ptr<Target> MakeDicomwebTarget(const TargetOptions& options,
                                           HttpClientFactory make_client) {
  return std::make_unique<DicomwebTarget>(options, std::move(make_client));
}

std::unique_ptr<Target> MakeDicomwebTarget(const TargetOptions& options) {
  return MakeDicomwebTarget(options, MakeCurlHttpClient);
}

}  // namespace ferry
