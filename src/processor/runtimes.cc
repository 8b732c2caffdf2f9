#include "processor/runtimes.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "core/logging.h"

extern char** environ;

namespace ferry {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

constexpr std::string_view kInMount = "/tmp/data";
constexpr std::string_view kOutMount = "/tmp/output";
constexpr std::string_view kPersistenceMount = "/tmp/persistence";
constexpr auto kPullInterval = std::chrono::hours(1);

// "512m", "1g", 1024 → bytes (docker-py's units: b, k, m, g).
Result<int64_t> ParseSize(const Json& v, const std::string& key) {
  if (v.is_number_integer()) {
    return v.get<int64_t>();
  }
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    if (!text.empty()) {
      char unit = static_cast<char>(std::tolower(static_cast<unsigned char>(text.back())));
      int64_t mult = unit == 'k' ? 1024 : unit == 'm' ? 1024 * 1024
                     : unit == 'g' ? int64_t{1024} * 1024 * 1024 : 1;
      std::string digits = std::isdigit(static_cast<unsigned char>(text.back()))
                               ? text
                               : text.substr(0, text.size() - (unit == 'b' ? 1 : 1));
      if (!digits.empty() && digits.size() <= 12 &&
          std::all_of(digits.begin(), digits.end(), ::isdigit)) {
        return std::stoll(digits) * mult;  // at most 10^12 units: no overflow
      }
    }
  }
  return Status::InvalidArgument(fmt::format("docker_arguments.{}: {} is not a size (e.g. 512m, "
                                             "2g or a number of bytes)",
                                             key, v.dump()));
}

// docker-py's {"key": value} or ["key=value"] forms → {"key": "value"}.
Json KeyValues(const Json& v) {
  Json out = Json::object();
  if (v.is_object()) {
    for (const auto& [k, x] : v.items()) {
      out[k] = x.is_string() ? x.get<std::string>() : x.dump();
    }
  } else if (v.is_array()) {
    for (const auto& item : v) {
      if (item.is_string()) {
        std::string s = item.get<std::string>();
        size_t eq = s.find('=');
        out[s.substr(0, eq)] = eq == std::string::npos ? "" : s.substr(eq + 1);
      }
    }
  }
  return out;
}

std::string PascalCase(const std::string& snake) {
  std::string out;
  bool up = true;
  for (char c : snake) {
    if (c == '_') {
      up = true;
      continue;
    }
    out.push_back(up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c);
    up = false;
  }
  return out;
}

// Applies one docker_arguments entry (docker-py's name) to the create body.
Status ApplyArgument(const std::string& key, const Json& v, Json* body, Json* host) {
  auto integer = [&](const char* field) -> Status {
    if (!v.is_number_integer()) {
      return Status::InvalidArgument(fmt::format("docker_arguments.{} must be an integer", key));
    }
    (*host)[field] = v;
    return Status::Ok();
  };
  auto text = [&](Json* where, const char* field) -> Status {
    if (!v.is_string()) {
      return Status::InvalidArgument(fmt::format("docker_arguments.{} must be a string", key));
    }
    (*where)[field] = v;
    return Status::Ok();
  };
  if (key == "mem_limit" || key == "memswap_limit" || key == "shm_size") {
    FERRY_ASSIGN_OR_RETURN(int64_t bytes, ParseSize(v, key));
    (*host)[key == "mem_limit" ? "Memory" : key == "memswap_limit" ? "MemorySwap" : "ShmSize"] =
        bytes;
    return Status::Ok();
  }
  if (key == "cpu_period" || key == "cpu_quota" || key == "cpu_shares" || key == "nano_cpus" ||
      key == "blkio_weight" || key == "pids_limit") {
    return integer(PascalCase(key == "nano_cpus" ? "nano_cpus" : key).c_str());
  }
  if (key == "cpuset_cpus" || key == "cpuset_mems") {
    return text(host, key == "cpuset_cpus" ? "CpusetCpus" : "CpusetMems");
  }
  if (key == "runtime") {
    return text(host, "Runtime");
  }
  if (key == "read_only") {
    (*host)["ReadonlyRootfs"] = v.is_boolean() ? v.get<bool>() : false;
    return Status::Ok();
  }
  if (key == "labels") {
    Json labels = KeyValues(v);
    for (const auto& [k, x] : labels.items()) {
      if (!k.starts_with("ferry.")) {
        (*body)["Labels"][k] = x;
      }
    }
    return Status::Ok();
  }
  if (key == "environment" || key == "env") {
    Json env = KeyValues(v);
    for (const auto& [k, x] : env.items()) {
      (*body)["Env"].push_back(k + "=" + x.get<std::string>());
    }
    return Status::Ok();
  }
  if (key.starts_with("device_")) {  // device_read_bps ... : [{"Path": ..., "Rate": ...}]
    std::string field = key == "device_read_bps"    ? "BlkioDeviceReadBps"
                        : key == "device_write_bps" ? "BlkioDeviceWriteBps"
                        : key == "device_read_iops" ? "BlkioDeviceReadIOps"
                                                    : "BlkioDeviceWriteIOps";
    if (!v.is_array()) {
      return Status::InvalidArgument(fmt::format(
          "docker_arguments.{} must be a list of {{\"Path\": ..., \"Rate\": ...}}", key));
    }
    (*host)[field] = v;
    return Status::Ok();
  }
  if (key == "stop_signal") {
    return text(body, "StopSignal");
  }
  if (key == "stop_timeout") {
    if (!v.is_number_integer()) {
      return Status::InvalidArgument("docker_arguments.stop_timeout must be an integer");
    }
    (*body)["StopTimeout"] = v;
    return Status::Ok();
  }
  if (key == "healthcheck") {
    Json hc = Json::object();
    for (const auto& [k, x] : v.items()) {
      hc[PascalCase(k)] = x;
    }
    (*body)["Healthcheck"] = hc;
    return Status::Ok();
  }
  // Not on the allow-list: the config allows it only with allow_unsafe_docker_arguments, as a
  // HostConfig field of the Engine API.
  (*host)[key] = v;
  return Status::Ok();
}

Status AppendToLog(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
  if (!text.empty() && text.back() != '\n') {
    out << '\n';
  }
  return out ? Status::Ok() : Status::IoError("cannot write the module log " + path);
}

std::string ShortId(const std::string& id) {
  std::string s = id.starts_with("sha256:") ? id.substr(7) : id;
  return s.substr(0, 12);
}

}  // namespace

std::vector<std::string> SplitCommand(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word.push_back(c);
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) {
        words.push_back(word);
        word.clear();
        in_word = false;
      }
    } else {
      word.push_back(c);
      in_word = true;
    }
  }
  if (in_word) {
    words.push_back(word);
  }
  return words;
}

std::vector<std::string> ModuleEnvironment(const ModuleOptions& module, const std::string& in,
                                           const std::string& out,
                                           const std::string& persistence) {
  std::map<std::string, std::string> env;
  Json own = Json::parse(module.environment_json, nullptr, false);
  if (own.is_object()) {
    for (const auto& [k, v] : own.items()) {
      env[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  env["MERCURE_IN_DIR"] = in;
  env["MERCURE_OUT_DIR"] = out;
  env["MONAI_INPUTPATH"] = in;
  env["MONAI_OUTPUTPATH"] = out;
  env["HOLOSCAN_INPUT_PATH"] = in;
  env["HOLOSCAN_OUTPUT_PATH"] = out;
  if (!persistence.empty()) {
    env["MODULE_PERSISTENCE_DIR"] = persistence;
  }
  std::vector<std::string> list;
  for (const auto& [k, v] : env) {
    list.push_back(k + "=" + v);
  }
  return list;
}

Result<Json> ContainerBody(const ContainerPlan& plan) {
  const ModuleOptions& m = *plan.module;
  Json body = {{"Image", plan.image},
               {"Labels",
                {{"ferry.data", plan.data_label},
                 {"ferry.task", plan.task_id},
                 {"ferry.module", m.name}}},
               {"Env", ModuleEnvironment(m, std::string(kInMount), std::string(kOutMount),
                                         m.requires_persistence ? std::string(kPersistenceMount)
                                                                : "")}};
  if (!plan.as_root) {
    body["User"] = fmt::format("{}:{}", plan.uid, plan.gid);
  }
  if (!plan.command.empty()) {
    body["Cmd"] = plan.command;
  }
  if (!plan.working_dir.empty()) {
    body["WorkingDir"] = plan.working_dir;
    // Podman keeps the image's entrypoint for an empty list; [""] clears it on both engines.
    body["Entrypoint"] = Json::array({""});
  }
  Json binds = Json::array({plan.in_dir + ":" + std::string(kInMount) + ":rw",
                            plan.out_dir + ":" + std::string(kOutMount) + ":rw"});
  if (m.requires_persistence) {
    binds.push_back(plan.persistence_dir + ":" + std::string(kPersistenceMount) + ":rw");
  }
  Json volumes = Json::parse(m.additional_volumes_json, nullptr, false);
  if (volumes.is_object()) {
    for (const auto& [host, spec] : volumes.items()) {
      std::string mode = spec.value("mode", std::string("rw")) == "ro" ? "ro" : "rw";
      binds.push_back(host + ":" + spec.value("bind", std::string()) + ":" + mode);
    }
  }
  Json host = {{"Binds", binds},
               {"NetworkMode", m.network_enabled ? "bridge" : "none"},
               {"CapDrop", {"ALL"}},
               {"SecurityOpt", {"no-new-privileges"}}};
  if (!plan.as_root) {
    host["GroupAdd"] = {std::to_string(plan.gid)};
  }
  if (!plan.processor->gpu_runtime.empty()) {
    host["Runtime"] = plan.processor->gpu_runtime;
  }
  Json args = Json::parse(m.docker_arguments_json, nullptr, false);
  if (args.is_object()) {
    for (const auto& [k, v] : args.items()) {
      FERRY_RETURN_IF_ERROR(ApplyArgument(k, v, &body, &host));
    }
  }
  body["HostConfig"] = host;
  return body;
}

DockerRuntime::DockerRuntime(const ProcessorOptions& options, const std::string& data_folder,
                             Clock* clock)
    : options_(options),
      data_label_(data_folder),
      clock_(clock),
      api_(DockerSocketPath(options.docker_socket)) {}

Status DockerRuntime::CleanUp() {
  auto ids = api_.ListByLabel("ferry.data", data_label_);
  if (!ids) {
    return ids.error();
  }
  for (const auto& id : *ids) {
    Logger("processor")->warn("removing container {} left by a processor that stopped during a "
                              "job",
                              ShortId(id));
    api_.Remove(id);
  }
  return Status::Ok();
}

Result<std::string> DockerRuntime::EnsureImage(const ModuleOptions& module, std::string* note,
                                               const std::atomic<bool>& cancel) {
  const std::string& image = module.docker_tag;
  Result<std::string> id = api_.ImageId(image);
  if (!id && id.error().code() != Status::Code::kNotFound) {
    return id.error();
  }
  bool want_pull = !id || module.update_image;
  if (want_pull) {
    std::lock_guard<std::mutex> lock(mu_);
    auto last = pulled_.find(image);
    WallTime now = clock_->Now();
    if (id && last != pulled_.end() && now - last->second < kPullInterval) {
      want_pull = false;  // asked for updates, but pulled within the hour
    } else {
      pulled_[image] = now;
    }
  }
  if (!want_pull) {
    return id;
  }
  Status pulled = api_.Pull(image, std::chrono::seconds(600), cancel);
  if (!pulled.ok()) {
    if (pulled.code() == Status::Code::kUnavailable) {
      return pulled;
    }
    if (id) {
      *note = fmt::format("warning: could not pull a newer {} ({}); using the local image {}",
                          image, pulled.message(), ShortId(*id));
      Logger("processor")->warn("module {}: {}", module.name, *note);
      return id;
    }
    return Status::FailedPrecondition(fmt::format(
        "image {} of module {} is not in the container engine's local store and cannot be "
        "pulled ({}); load it (docker load / podman load) or correct docker_tag",
        image, module.name, pulled.message()));
  }
  return api_.ImageId(image);
}

DockerRuntime::ImageKind DockerRuntime::Probe(const std::string& image_id,
                                              const std::string& container_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kinds_.find(image_id);
    if (it != kinds_.end()) {
      return it->second;
    }
  }
  ImageKind kind{"container", {}, ""};
  bool certain = true;  // remembered only when the engine answered both questions
  for (auto [path, name] : {std::pair{"/etc/monai/app.json", "MONAI Application Package"},
                            std::pair{"/etc/holoscan/app.json", "Holoscan application"}}) {
    auto text = api_.ReadFile(container_id, path);
    if (!text) {
      certain &= text.error().code() == Status::Code::kNotFound;
      continue;
    }
    Json manifest = Json::parse(*text, nullptr, false);
    if (!manifest.is_object() || !manifest.contains("command")) {
      Logger("processor")->warn("image {} has {} but it has no \"command\"; running it as a "
                                "plain container",
                                ShortId(image_id), path);
      continue;
    }
    const Json& cmd = manifest["command"];
    if (cmd.is_array()) {
      for (const auto& w : cmd) {
        kind.command.push_back(w.is_string() ? w.get<std::string>() : w.dump());
      }
    } else if (cmd.is_string()) {
      Json as_list = Json::parse(cmd.get<std::string>(), nullptr, false);
      if (as_list.is_array()) {
        for (const auto& w : as_list) {
          kind.command.push_back(w.is_string() ? w.get<std::string>() : w.dump());
        }
      } else {
        kind.command = SplitCommand(cmd.get<std::string>());
      }
    }
    kind.kind = name;
    kind.working_dir = manifest.value("working-directory", std::string("/"));
    if (kind.working_dir.empty()) {
      kind.working_dir = "/";
    }
    break;
  }
  if (certain || !kind.command.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    kinds_[image_id] = kind;
  }
  return kind;
}

Result<ModuleRun> DockerRuntime::Run(const ModuleJob& job, const std::atomic<bool>& cancel) {
  const ModuleOptions& m = *job.module;
  auto log = Logger("processor");
  ModuleRun run;
  std::string note;
  FERRY_ASSIGN_OR_RETURN(std::string image_id, EnsureImage(m, &note, cancel));
  if (!note.empty()) {
    AppendToLog(job.log_path, note);
  }
  run.image = fmt::format("{} ({})", m.docker_tag, ShortId(image_id));

  ContainerPlan plan;
  plan.module = &m;
  plan.processor = &options_;
  plan.image = m.docker_tag;
  plan.task_id = job.task_id;
  plan.data_label = data_label_;
  plan.in_dir = job.in_dir;
  plan.out_dir = job.out_dir;
  plan.persistence_dir = job.persistence_dir;
  plan.command = m.command;
  plan.uid = getuid();
  plan.gid = getgid();
  plan.as_root = m.requires_root;
  std::string name = fmt::format("ferry-{}-{}", job.task_id, job.step);
  ImageKind kind;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kinds_.find(image_id);
    if (it != kinds_.end()) {
      kind = it->second;
      known = true;
    }
  }
  auto apply_kind = [&](const ImageKind& k) {
    if (!k.command.empty()) {
      plan.command = k.command;
      plan.working_dir = k.working_dir;
      plan.as_root = true;  // packages expect root, as mercure runs them
    }
  };
  if (known) {
    apply_kind(kind);
  }
  if (plan.as_root && !options_.allow_root_modules) {
    return Status::FailedPrecondition(fmt::format(
        "module {} needs to run as root{}, but processor.allow_root_modules is false", m.name,
        m.requires_root ? "" : " (it is a " + kind.kind + ")"));
  }
  FERRY_ASSIGN_OR_RETURN(Json body, ContainerBody(plan));
  Result<std::string> created = api_.Create(name, body);
  if (!created && created.error().code() == Status::Code::kAlreadyExists) {
    api_.Remove(name);  // left by an earlier attempt at this step
    created = api_.Create(name, body);
  }
  if (!created) {
    return created.error();
  }
  std::string id = *created;
  // Removes the container when the step ends, however it ends.
  struct Remover {
    Remover(DockerApi* api, std::string id) : api(api), id(std::move(id)) {}
    Remover(const Remover&) = delete;
    Remover& operator=(const Remover&) = delete;
    ~Remover() { api->Remove(id); }
    DockerApi* api;
    std::string id;
  };
  auto remover = std::make_unique<Remover>(&api_, id);
  if (!known) {
    kind = Probe(image_id, id);
    if (!kind.command.empty()) {
      // A package: its manifest names the command; create the container again with it.
      apply_kind(kind);
      if (!options_.allow_root_modules) {
        return Status::FailedPrecondition(fmt::format(
            "module {} is a {} and needs root, but processor.allow_root_modules is false",
            m.name, kind.kind));
      }
      remover.reset();
      FERRY_ASSIGN_OR_RETURN(body, ContainerBody(plan));
      FERRY_ASSIGN_OR_RETURN(id, api_.Create(name, body));
      remover = std::make_unique<Remover>(&api_, id);
    }
  }
  run.kind = kind.kind;
  if (kind.kind != "container") {
    AppendToLog(job.log_path, fmt::format("ferry: {} is a {}; running {}", m.docker_tag,
                                          kind.kind, Json(plan.command).dump()));
  }
  auto start = std::chrono::steady_clock::now();
  FERRY_RETURN_IF_ERROR(api_.Start(id));
  auto timeout = std::chrono::duration_cast<milliseconds>(job.timeout);
  Result<int> code = api_.Wait(id, timeout, &cancel);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!code) {
    bool stopped_waiting = cancel.load() || run.seconds + 0.5 >= std::chrono::duration<double>(
                                                                   job.timeout).count();
    if (code.error().code() != Status::Code::kUnavailable || !stopped_waiting) {
      return code.error();  // the engine went away: the task is tried again later
    }
    run.cancelled = cancel.load();
    run.timed_out = !run.cancelled;
    api_.Stop(id, std::chrono::seconds(options_.stop_grace_s));
    Result<int> after = api_.Wait(id, std::chrono::seconds(options_.stop_grace_s + 30), nullptr);
    run.exit_code = after ? *after : -1;
  } else {
    run.exit_code = *code;
  }
  if (run.exit_code == 137) {
    run.oom_killed = api_.OomKilled(id);
  }
  if (auto text = api_.Logs(id)) {
    AppendToLog(job.log_path, *text);
  } else {
    AppendToLog(job.log_path, "ferry: cannot read the container's output: " +
                                  text.error().message());
  }
  return run;
}

Result<ModuleRun> LocalRuntime::Run(const ModuleJob& job, const std::atomic<bool>& cancel) {
  const ModuleOptions& m = *job.module;
  ModuleRun run;
  run.kind = "program";
  run.image = m.command.empty() ? "" : m.command.front();
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (!kv.starts_with("MERCURE_") && !kv.starts_with("MONAI_") &&
        !kv.starts_with("HOLOSCAN_")) {
      env_text.emplace_back(kv);
    }
  }
  for (auto& kv : ModuleEnvironment(m, job.in_dir, job.out_dir, job.persistence_dir)) {
    env_text.push_back(kv);
  }
  std::vector<char*> argv;
  for (const auto& a : m.command) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& kv : env_text) {
    envp.push_back(kv.data());
  }
  envp.push_back(nullptr);
  int log_fd = open(job.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Status::FromErrno(errno, "cannot open the module log " + job.log_path);
  }
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    return Status::FromErrno(errno, "pipe");
  }
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    // The service blocks SIGTERM and SIGINT (it reads them from a signalfd) and ignores
    // SIGPIPE; the module gets the defaults, so that a timeout's SIGTERM reaches it.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    if (chdir(job.out_dir.c_str()) != 0) {
      _exit(126);
    }
    execve(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!write(err_pipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(err_pipe[1]);
  close(log_fd);
  if (pid < 0) {
    close(err_pipe[0]);
    return Status::FromErrno(errno, "fork");
  }
  int exec_errno = 0;
  bool exec_failed = read(err_pipe[0], &exec_errno, sizeof(exec_errno)) == sizeof(exec_errno);
  close(err_pipe[0]);
  int status = 0;
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_at{};
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      break;
    }
    auto now = std::chrono::steady_clock::now();
    if (!stopping && (cancel.load() || now - start > job.timeout)) {
      run.cancelled = cancel.load();
      run.timed_out = !run.cancelled;
      kill(-pid, SIGTERM);
      stopping = true;
      stop_at = now + std::chrono::seconds(options_.stop_grace_s);
    } else if (stopping && now > stop_at) {
      kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (exec_failed) {
    return Status::FailedPrecondition(fmt::format("cannot run {} for module {}: {}",
                                                  m.command.front(), m.name,
                                                  std::strerror(exec_errno)));
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

}  // namespace ferry
