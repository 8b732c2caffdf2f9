// ModuleRuntime: how one step of a processing job runs a module — in a container through the
// Docker Engine API (DockerRuntime), or as a program on the host (LocalRuntime). The processor
// prepares the input and output folders; the runtime runs the module on them, keeps its output
// in the job's log file, and reports how it ended. Tests substitute a fake.
//
// Errors from Run: Unavailable when the runtime could not run the module for a reason that may
// pass (the container engine is down): the task is tried again later. Any other error means the
// module cannot run as configured (image not found, refused by the engine, bad arguments): the
// task fails. A module that ran and failed is not an error: see ModuleRun.
// Thread-safety: Run is called from several job threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>

#include "config/config.h"
#include "core/result.h"

namespace ferry {

struct ModuleJob {
  std::string task_id;
  int step = 0;                 // 0-based position in the chain
  const ModuleOptions* module = nullptr;
  std::string in_dir;           // the module's input ($MERCURE_IN_DIR), read-write
  std::string out_dir;          // its output ($MERCURE_OUT_DIR), empty when it starts
  std::string persistence_dir;  // empty unless module->requires_persistence
  std::string log_path;         // the module's stdout and stderr are appended here
  std::chrono::seconds timeout{3600};
};

struct ModuleRun {
  int exit_code = -1;
  bool timed_out = false;   // stopped after job.timeout
  bool cancelled = false;   // stopped because ferry is stopping
  bool oom_killed = false;  // the engine reports an out-of-memory kill
  std::string image;        // the image and its id (docker), or the program (local)
  std::string kind;         // e.g. "container", "MONAI Application Package", "program"
  double seconds = 0;       // from start to exit of the module itself
};

class ModuleRuntime {
 public:
  virtual ~ModuleRuntime() = default;
  // Runs `job` to its end; returns early (cancelled) soon after `cancel` becomes true.
  virtual Result<ModuleRun> Run(const ModuleJob& job, const std::atomic<bool>& cancel) = 0;
  // Removes what a killed predecessor left running (containers of this data folder).
  virtual Status CleanUp() { return Status::Ok(); }
};

}  // namespace ferry
