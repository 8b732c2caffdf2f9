// DockerApi: the calls of the Docker Engine API that the processor makes, over its unix socket.
//
// Docker and Podman (`podman system service`) both serve this API; ferry speaks it directly with
// libcurl (no docker CLI, no extra daemon client). Only what running a module needs is here:
// images (inspect, pull), containers (create, start, wait, stop, logs, remove, list by label)
// and reading one file out of a container (the archive endpoint). Where Podman's compatible
// API is slower than its own (waiting for an exit), the Podman call is used when the engine is
// Podman.
//
// Errors: Unavailable when the engine cannot be reached or a call times out (worth retrying),
// NotFound for a missing image or container, FailedPrecondition for what the engine refused
// (the message carries the engine's own words), Internal for answers that cannot be parsed.
// Thread-safety: each call uses its own connection; one DockerApi may be shared by threads.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace ferry {

// Where the engine's socket is, as Docker's own clients find it: `configured` when set (a path
// or "unix://PATH"), else $DOCKER_HOST (unix://PATH), else /var/run/docker.sock.
std::string DockerSocketPath(const std::string& configured);

class DockerApi {
 public:
  explicit DockerApi(std::string socket_path);

  const std::string& socket_path() const { return socket_; }

  struct EngineInfo {
    std::string name;     // "Docker Engine" / "Podman Engine"
    std::string version;  // the engine's version
    bool podman = false;
  };
  // GET /version. Remembers whether the engine is Podman.
  Result<EngineInfo> Version();

  // GET /images/{name}/json: the image's id, NotFound when it is not in the local store.
  Result<std::string> ImageId(const std::string& image);
  // POST /images/create: pulls the image; the engine's error (no such image, registry
  // unreachable) as FailedPrecondition.
  Status Pull(const std::string& image, std::chrono::seconds timeout,
              const std::atomic<bool>& cancel);

  // POST /containers/create?name=NAME with `body` (the API's JSON). Returns the container id;
  // AlreadyExists when a container has that name, NotFound when the image is missing.
  Result<std::string> Create(const std::string& name, const nlohmann::json& body);
  Status Start(const std::string& id);
  // Waits until the container exits; its exit code. Unavailable ("timed out") when it runs
  // longer than `timeout` or `cancel` becomes true (the container keeps running: stop it).
  Result<int> Wait(const std::string& id, std::chrono::milliseconds timeout,
                   const std::atomic<bool>* cancel);
  // Stops (SIGTERM, SIGKILL after `grace`).
  Status Stop(const std::string& id, std::chrono::seconds grace);
  // stdout and stderr of the container, interleaved in the order written.
  Result<std::string> Logs(const std::string& id);
  // Removes the container (forced, with its anonymous volumes).
  Status Remove(const std::string& id);
  // Ids of the containers (running or not) whose label `key` has `value`.
  Result<std::vector<std::string>> ListByLabel(const std::string& key, const std::string& value);
  // The contents of the file at `path` inside the (created) container; NotFound when absent.
  Result<std::string> ReadFile(const std::string& id, const std::string& path);
  // State.OOMKilled of the container (false when unknown).
  bool OomKilled(const std::string& id);

 private:
  struct Reply {
    long status = 0;
    std::string body;
  };
  Result<Reply> Call(const std::string& method, const std::string& path,
                     const std::string& body, std::chrono::milliseconds timeout,
                     const std::atomic<bool>* cancel = nullptr);
  // The engine's error text from a reply body ({"message": ...}), or the body itself.
  static std::string Message(const Reply& reply);

  std::string socket_;
  std::atomic<int> podman_{-1};  // -1: not known yet
};

// Splits the multiplexed stream of a container's logs (8-byte frame headers: stream, 0, 0, 0,
// big-endian length) into plain text; text without frame headers (a TTY) is returned as is.
std::string DemultiplexLogs(const std::string& raw);

// The contents of file `name` (its base name) from a tar archive; nullopt when it is not there.
std::optional<std::string> FileFromTar(const std::string& tar, const std::string& name);

}  // namespace ferry
