#include "processor/docker_api.h"

#include <curl/curl.h>

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

namespace ferry {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kShortCall{30000};
// Bodies larger than this are cut (logs of a chatty module; the rest is not kept).
constexpr size_t kMaxBody = 16u << 20;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Collect(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t len = size * n;
  if (out->size() < kMaxBody) {
    out->append(data, std::min(len, kMaxBody - out->size()));
  }
  return len;
}

int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// "name:tag" → ("name", "tag"); a digest or no tag gives "latest" only when there is no tag.
std::pair<std::string, std::string> SplitImage(const std::string& image) {
  size_t at = image.find('@');
  if (at != std::string::npos) {
    return {image.substr(0, at), image.substr(at + 1)};
  }
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {image.substr(0, colon), image.substr(colon + 1)};
  }
  return {image, "latest"};
}

}  // namespace

std::string DockerSocketPath(const std::string& configured) {
  std::string value = configured;
  if (value.empty()) {
    const char* env = std::getenv("DOCKER_HOST");
    value = env != nullptr && std::string_view(env).starts_with("unix://") ? env : "";
  }
  if (value.empty()) {
    value = "/var/run/docker.sock";
  }
  if (value.starts_with("unix://")) {
    value = value.substr(7);
  }
  return value;
}

DockerApi::DockerApi(std::string socket_path) : socket_(std::move(socket_path)) {
  InitCurlOnce();
}

std::string DockerApi::Message(const Reply& reply) {
  Json j = Json::parse(reply.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    return j["message"].get<std::string>();
  }
  std::string text = reply.body.substr(0, 500);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text.empty() ? fmt::format("HTTP {}", reply.status) : text;
}

Result<DockerApi::Reply> DockerApi::Call(const std::string& method, const std::string& path,
                                         const std::string& body, milliseconds timeout,
                                         const std::atomic<bool>* cancel) {
  CURL* c = curl_easy_init();
  if (c == nullptr) {
    return Status::Internal("libcurl cannot create a handle");
  }
  Reply reply;
  char error[CURL_ERROR_SIZE] = {};
  // Podman's own endpoints carry their prefix; everything else is the compatible API.
  std::string url = "http://docker" + (path.starts_with("/v4.0.0/") ? path : "/v1.41" + path);
  curl_slist* headers = nullptr;
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  if (cancel != nullptr) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, Progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
  }
  if (method == "POST" || !body.empty()) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return Status::Unavailable("cancelled");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status::Unavailable(fmt::format("{} {} timed out after {} ms", method, path,
                                           timeout.count()));
  }
  if (rc != CURLE_OK) {
    return Status::Unavailable(fmt::format(
        "cannot reach the container engine at {} ({}); is Docker or `podman system service` "
        "running, and is processor.docker_socket right?",
        socket_, error[0] != 0 ? error : curl_easy_strerror(rc)));
  }
  return reply;
}

Result<DockerApi::EngineInfo> DockerApi::Version() {
  FERRY_ASSIGN_OR_RETURN(Reply r, Call("GET", "/version", "", kShortCall));
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object()) {
    return Status::Internal("the container engine's /version answer cannot be read: " +
                            Message(r));
  }
  EngineInfo info;
  info.version = j.value("Version", std::string());
  info.name = "Docker Engine";
  if (j.contains("Components") && j["Components"].is_array()) {
    for (const auto& comp : j["Components"]) {
      std::string name = comp.value("Name", std::string());
      if (name.find("Podman") != std::string::npos) {
        info.name = name;
        info.podman = true;
      }
    }
  }
  podman_ = info.podman ? 1 : 0;
  return info;
}

Result<std::string> DockerApi::ImageId(const std::string& image) {
  FERRY_ASSIGN_OR_RETURN(Reply r, Call("GET", "/images/" + UrlEncode(image) + "/json", "",
                                       kShortCall));
  if (r.status == 404) {
    return Status::NotFound("image " + image + " is not in the container engine's local store");
  }
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object()) {
    return Status::FailedPrecondition("cannot inspect image " + image + ": " + Message(r));
  }
  return j.value("Id", std::string());
}

Status DockerApi::Pull(const std::string& image, std::chrono::seconds timeout,
                       const std::atomic<bool>& cancel) {
  auto [name, tag] = SplitImage(image);
  FERRY_ASSIGN_OR_RETURN(
      Reply r, Call("POST", "/images/create?fromImage=" + UrlEncode(name) + "&tag=" + UrlEncode(tag),
                    "", timeout, &cancel));
  if (r.status != 200) {
    return Status::FailedPrecondition("cannot pull " + image + ": " + Message(r));
  }
  // The answer is a stream of JSON objects; a failure is one of them (with HTTP 200).
  size_t pos = 0;
  while (pos < r.body.size()) {
    size_t end = r.body.find('\n', pos);
    if (end == std::string::npos) {
      end = r.body.size();
    }
    Json line = Json::parse(r.body.substr(pos, end - pos), nullptr, false);
    if (line.is_object() && line.contains("error")) {
      return Status::FailedPrecondition("cannot pull " + image + ": " +
                                        line["error"].dump().substr(0, 500));
    }
    pos = end + 1;
  }
  return Status::Ok();
}

Result<std::string> DockerApi::Create(const std::string& name, const nlohmann::json& body) {
  FERRY_ASSIGN_OR_RETURN(
      Reply r, Call("POST", "/containers/create?name=" + UrlEncode(name), body.dump(), kShortCall));
  if (r.status == 404) {
    return Status::NotFound(Message(r));
  }
  if (r.status == 409) {
    return Status::AlreadyExists(Message(r));
  }
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status != 201 || !j.is_object() || !j.contains("Id")) {
    return Status::FailedPrecondition("the container engine refused to create the container: " +
                                      Message(r));
  }
  return j["Id"].get<std::string>();
}

Status DockerApi::Start(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(Reply r, Call("POST", "/containers/" + id + "/start", "", kShortCall));
  if (r.status != 204 && r.status != 304) {
    return Status::FailedPrecondition("the container did not start: " + Message(r));
  }
  return Status::Ok();
}

Result<int> DockerApi::Wait(const std::string& id, milliseconds timeout,
                            const std::atomic<bool>* cancel) {
  if (podman_ < 0) {
    Version();  // learns whether the engine is Podman; on failure the compatible call is used
  }
  // Podman's compatible /wait polls every 250 ms; its own call takes the interval as asked.
  std::string path = podman_ == 1
                         ? "/containers/" + id + "/wait?condition=exited&interval=20ms"
                         : "/containers/" + id + "/wait?condition=not-running";
  Result<Reply> r = Call("POST", podman_ == 1 ? "/v4.0.0/libpod" + path : path, "", timeout,
                         cancel);
  if (!r) {
    return r.error();
  }
  if (r->status != 200) {
    return Status::FailedPrecondition("waiting for the container failed: " + Message(*r));
  }
  Json j = Json::parse(r->body, nullptr, false);
  if (j.is_number_integer()) {
    return j.get<int>();  // libpod answers with the bare exit code
  }
  if (j.is_object() && j.contains("StatusCode")) {
    return j["StatusCode"].get<int>();
  }
  return Status::Internal("cannot read the container's exit code from: " + r->body.substr(0, 200));
}

Status DockerApi::Stop(const std::string& id, std::chrono::seconds grace) {
  FERRY_ASSIGN_OR_RETURN(Reply r, Call("POST", fmt::format("/containers/{}/stop?t={}", id,
                                                           grace.count()),
                                       "", milliseconds(grace) + kShortCall));
  if (r.status != 204 && r.status != 304) {
    return Status::FailedPrecondition("cannot stop the container: " + Message(r));
  }
  return Status::Ok();
}

Result<std::string> DockerApi::Logs(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(
      Reply r, Call("GET", "/containers/" + id + "/logs?stdout=1&stderr=1", "", kShortCall));
  if (r.status != 200) {
    return Status::FailedPrecondition("cannot read the container's output: " + Message(r));
  }
  return DemultiplexLogs(r.body);
}

Status DockerApi::Remove(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(Reply r,
                         Call("DELETE", "/containers/" + id + "?force=1&v=1", "", kShortCall));
  if (r.status != 204 && r.status != 200 && r.status != 404) {
    return Status::FailedPrecondition("cannot remove container " + id + ": " + Message(r));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> DockerApi::ListByLabel(const std::string& key,
                                                        const std::string& value) {
  Json filters = {{"label", {key + "=" + value}}};
  FERRY_ASSIGN_OR_RETURN(
      Reply r, Call("GET", "/containers/json?all=1&filters=" + UrlEncode(filters.dump()), "",
                    kShortCall));
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_array()) {
    return Status::FailedPrecondition("cannot list containers: " + Message(r));
  }
  std::vector<std::string> ids;
  for (const auto& c : j) {
    if (c.is_object() && c.contains("Id")) {
      ids.push_back(c["Id"].get<std::string>());
    }
  }
  return ids;
}

Result<std::string> DockerApi::ReadFile(const std::string& id, const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(
      Reply r, Call("GET", "/containers/" + id + "/archive?path=" + UrlEncode(path), "",
                    kShortCall));
  if (r.status == 404) {
    return Status::NotFound(path + " is not in the container");
  }
  if (r.status != 200) {
    return Status::FailedPrecondition("cannot read " + path + " from the container: " +
                                      Message(r));
  }
  size_t slash = path.rfind('/');
  auto file = FileFromTar(r.body, slash == std::string::npos ? path : path.substr(slash + 1));
  if (!file) {
    return Status::NotFound(path + " is not a file in the container");
  }
  return *file;
}

bool DockerApi::OomKilled(const std::string& id) {
  auto r = Call("GET", "/containers/" + id + "/json", "", kShortCall);
  if (!r || r->status != 200) {
    return false;
  }
  Json j = Json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("State") && j["State"].value("OOMKilled", false);
}

std::string DemultiplexLogs(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos + 8 <= raw.size()) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(raw[pos + i]); };
    if (b(0) > 2 || b(1) != 0 || b(2) != 0 || b(3) != 0) {
      return pos == 0 ? raw : out + raw.substr(pos);  // not framed (a TTY), or broken
    }
    size_t len = (size_t{b(4)} << 24) | (size_t{b(5)} << 16) | (size_t{b(6)} << 8) | b(7);
    out.append(raw, pos + 8, std::min(len, raw.size() - pos - 8));
    pos += 8 + len;
  }
  return pos == 0 ? raw : out;
}

std::optional<std::string> FileFromTar(const std::string& tar, const std::string& name) {
  size_t pos = 0;
  while (pos + 512 <= tar.size()) {
    const char* h = tar.data() + pos;
    if (h[0] == 0) {
      return std::nullopt;  // end of archive
    }
    std::string entry(h, strnlen(h, 100));
    std::string size_text(h + 124, strnlen(h + 124, 12));
    uint64_t size = std::strtoull(size_text.c_str(), nullptr, 8);
    char type = h[156];
    size_t slash = entry.rfind('/', entry.size() > 1 ? entry.size() - 2 : 0);
    std::string base = slash == std::string::npos ? entry : entry.substr(slash + 1);
    if ((type == '0' || type == 0) && base == name) {
      if (pos + 512 + size > tar.size()) {
        return std::nullopt;
      }
      return tar.substr(pos + 512, size);
    }
    pos += 512 + ((size + 511) / 512) * 512;
  }
  return std::nullopt;
}

}  // namespace ferry
