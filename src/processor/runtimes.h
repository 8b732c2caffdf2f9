// The two ModuleRuntimes: DockerRuntime (a container image through the Docker Engine API, as
// mercure runs modules) and LocalRuntime (a program on the host, a ferry addition).
//
// DockerRuntime creates one container per step with the module's folders bound at mercure's
// paths (/tmp/data, /tmp/output, /tmp/persistence), mercure's environment, ferry's uid:gid (root
// only for modules that require it, when the site allows), every capability dropped, no network
// unless the module enables it, and the module's allow-listed docker_arguments translated into
// the API's fields. It uses the local image, pulling only when the image is missing or the module
// asks for updates (at most once an hour per image), and recognises MONAI Application Packages
// (/etc/monai/app.json) and Holoscan applications (/etc/holoscan/app.json) by reading the
// manifest out of the created container, remembered per image id. The container is removed when
// the step ends; containers carry labels (ferry.data: this data folder) so that CleanUp removes
// those a killed processor left behind.
// Thread-safety: Run may be called from several threads at once.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "processor/docker_api.h"
#include "processor/module_runtime.h"

namespace ferry {

// The container's Cmd, Entrypoint, HostConfig... for one step: everything create needs, as a
// pure function of the options (unit-tested). `command` overrides the image's CMD when not
// empty; `clear_entrypoint` empties the image's ENTRYPOINT (MONAI packages).
struct ContainerPlan {
  const ModuleOptions* module = nullptr;
  const ProcessorOptions* processor = nullptr;
  std::string image;
  std::string task_id;
  std::string data_label;        // identifies this data folder's containers
  std::string in_dir, out_dir, persistence_dir;
  std::vector<std::string> command;
  std::string working_dir;
  bool as_root = false;
  unsigned uid = 0, gid = 0;
};
// InvalidArgument when a docker_argument cannot be translated.
Result<nlohmann::json> ContainerBody(const ContainerPlan& plan);

// mercure's environment for a module (the module's own `environment` first, then the folder
// variables, which win).
std::vector<std::string> ModuleEnvironment(const ModuleOptions& module, const std::string& in,
                                           const std::string& out, const std::string& persistence);

class DockerRuntime : public ModuleRuntime {
 public:
  // `data_folder` labels this ferry's containers. `options` and `clock` must outlive it.
  DockerRuntime(const ProcessorOptions& options, const std::string& data_folder, Clock* clock);

  Result<ModuleRun> Run(const ModuleJob& job, const std::atomic<bool>& cancel) override;
  Status CleanUp() override;

 private:
  struct ImageKind {
    std::string kind;  // "container", "MONAI Application Package", "Holoscan application"
    std::vector<std::string> command;
    std::string working_dir;
  };
  // The image's id, pulling it when missing (or when the module asks for updates); `note`
  // receives a warning for the job's log.
  Result<std::string> EnsureImage(const ModuleOptions& module, std::string* note,
                                  const std::atomic<bool>& cancel);
  // Whether the created container `id` is a MONAI/Holoscan package; remembered per image id.
  ImageKind Probe(const std::string& image_id, const std::string& container_id);

  const ProcessorOptions& options_;
  std::string data_label_;
  Clock* clock_;
  DockerApi api_;
  std::mutex mu_;
  std::map<std::string, WallTime> pulled_;      // image -> last pull attempt
  std::map<std::string, ImageKind> kinds_;      // image id -> what it is
};

class LocalRuntime : public ModuleRuntime {
 public:
  explicit LocalRuntime(const ProcessorOptions& options) : options_(options) {}
  Result<ModuleRun> Run(const ModuleJob& job, const std::atomic<bool>& cancel) override;

 private:
  const ProcessorOptions& options_;
};

// Splits a command line as a shell would split plain words and quotes ("a 'b c'" → a, b c).
std::vector<std::string> SplitCommand(const std::string& text);

}  // namespace ferry
