#include "processor/processor.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/logging.h"
#include "processor/task_view.h"
#include "spool/control.h"
#include "spool/schedule.h"
#include "spool/task.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kAsReceived = "as_received";
constexpr std::string_view kIn = "in";
constexpr std::string_view kOut = "out";
constexpr std::string_view kLogs = "logs";
constexpr std::string_view kFailedOutput = "failed-output";
constexpr std::string_view kResultFile = "result.json";
constexpr std::string_view kPublishedMarker = "published";

WallTime FromEpoch(const Json& v) {
  if (!v.is_number()) {
    return WallTime();
  }
  return WallTime() + std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000.0));
}

// Lines from the end of a module's log, to name the failure where an operator looks first.
std::string LogTail(const std::string& path, size_t lines) {
  // Only the end: a failing module may have written gigabytes.
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : 0;
  std::streamoff from = std::max<std::streamoff>(0, size - 64 * 1024);
  in.seekg(from);
  std::string text(static_cast<size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<std::string> all;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!line.empty() && !line.starts_with("ferry: ")) {
      all.push_back(line);
    }
    pos = end == std::string::npos ? text.size() : end + 1;
  }
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    std::string line = all[i].substr(0, 300);
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) {
      line.pop_back();  // never cut a UTF-8 character in two
    }
    if (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0xC0) {
      line.pop_back();
    }
    out += (out.empty() ? "" : " | ") + line;
  }
  return out;
}

// task.json as text; bytes that are not UTF-8 (from a module's output) become U+FFFD instead
// of failing the write.
std::string TaskText(const Json& task) {
  return task.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

void AppendLine(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << line << '\n';
}

// A module's output may hold only plain files and folders: links (which could point anywhere on
// the host) and devices are removed before ferry reads or sends anything. Returns what was
// removed, and counts the regular files.
std::vector<std::string> SanitizeOutput(const std::string& dir, int* files, bool* complete) {
  std::vector<std::string> removed;
  std::error_code ec;
  *complete = true;
  std::vector<std::filesystem::path> bad;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::none, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    auto st = it->symlink_status(ec);
    if (ec) {
      break;
    }
    if (std::filesystem::is_symlink(st)) {
      bad.push_back(it->path());
      it.disable_recursion_pending();
    } else if (std::filesystem::is_regular_file(st)) {
      ++*files;
    } else if (!std::filesystem::is_directory(st)) {
      bad.push_back(it->path());
    }
  }
  if (ec) {
    *complete = false;  // a folder that cannot be read may hide a link: refuse the output
  }
  for (const auto& p : bad) {
    std::error_code rm;
    std::filesystem::remove(p, rm);
    *complete &= !rm;
    removed.push_back(std::filesystem::relative(p, dir, rm).string());
  }
  return removed;
}

Status CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    return Status::IoError(fmt::format("cannot copy {} to {}: {}", from, to, ec.message()));
  }
  return Status::Ok();
}

std::string StepLogName(size_t step, const std::string& module) {
  return fmt::format("{}-{}.log", step + 1, module);
}

}  // namespace

Processor::Processor(const Config& config, ModuleRuntime* docker, ModuleRuntime* local,
                     Spool* spool, Journal* journal, Clock* clock, SeriesOf series_of)
    : config_(config),
      docker_(docker),
      local_(local),
      spool_(spool),
      journal_(journal),
      clock_(clock),
      series_of_(std::move(series_of)),
      work_dir_(JoinPath(JoinPath(spool->root(), kTmp), "processor")) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Processor::~Processor() {
  Shutdown();
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
}

void Processor::Wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Processor::DrainWake() {
  uint64_t n;
  while (read(wake_fd_, &n, sizeof(n)) > 0) {
  }
}

ModuleRuntime* Processor::RuntimeFor(const ModuleOptions& module) {
  return module.runtime == ModuleRuntimeKind::kLocal ? local_ : docker_;
}

Status Processor::WriteTask(const std::string& dir, const Json& task) {
  return spool_->WriteFileAtomic(dir, kTaskFile, TaskText(task), Durability::kFsync);
}

Status Processor::Recover() {
  FileSystem* fs = spool_->fs();
  auto log = Logger("processor");
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(work_dir_));
  if (docker_ != nullptr) {
    Status cleaned = docker_->CleanUp();
    if (!cleaned.ok()) {
      log->warn("cannot look for containers left by an earlier processor: {}",
                cleaned.ToString());
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(work_dir_));
  for (const auto& id : entries) {
    std::string dir = JoinPath(work_dir_, id);
    if (!fs->IsDirectory(dir)) {
      fs->RemoveFile(dir);  // a temporary file of a killed write
      continue;
    }
    if (fs->Exists(JoinPath(dir, kPublishedMarker)) && !fs->IsDirectory(JoinPath(dir, kOut))) {
      // Killed after its result was published and before the job folder was removed.
      FERRY_RETURN_IF_ERROR(fs->RemoveTree(dir));
      continue;
    }
    std::string elsewhere;
    for (auto stage : {kProcessing, kOutgoing, kSuccess, kError, kDiscard}) {
      if (fs->IsDirectory(JoinPath(spool_->StagePath(stage), id))) {
        elsewhere = std::string(stage);
      }
    }
    if (!elsewhere.empty()) {
      log->error("task {} is in {} and also in {}/; the copy in {} is left as it is for an "
                 "operator to compare task={}",
                 id, dir, elsewhere, dir, id);
      continue;
    }
    fs->RemoveFile(JoinPath(dir, kPublishedMarker));
    FERRY_RETURN_IF_ERROR(RestoreInput(dir, false));
    FERRY_RETURN_IF_ERROR(fs->Rename(dir, JoinPath(spool_->StagePath(kProcessing), id)));
    log->warn("task {} was being processed when the processor stopped; it is queued again and "
              "runs from its received images task={}",
              id, id);
    journal_->Append({"task.recovered", "", id, {{"stage", "processing"}}});
  }
  return fs->SyncDir(spool_->StagePath(kProcessing));
}

Result<Processor::Waiting> Processor::ReadWaiting(const std::string& id) {
  std::string dir = JoinPath(spool_->StagePath(kProcessing), id);
  FERRY_ASSIGN_OR_RETURN(std::string text, spool_->fs()->ReadFile(JoinPath(dir, kTaskFile)));
  Json task = Json::parse(text, nullptr, false);
  if (!task.is_object()) {
    return Status::Corruption("task.json is not a JSON object");
  }
  Waiting w;
  w.queued.id = id;
  w.queued.priority = TaskPriority(task);
  auto created = ParseIso8601(task.value("/ferry/created"_json_pointer, std::string()));
  if (created) {
    w.queued.created = *created;
  } else {
    auto mtime = spool_->fs()->ModificationTime(dir);
    w.queued.created = mtime ? *mtime : clock_->Now();
  }
  w.queued.not_before = FromEpoch(task.value("/ferry/process/next_attempt_at"_json_pointer, Json()));
  for (const auto& step : ProcessSteps(task)) {
    w.modules.push_back(step.value("module_name", std::string()));
  }
  if (w.modules.empty()) {
    return Status::Corruption("task.json names no processing module (its \"process\" is empty)");
  }
  return w;
}

void Processor::Scan() {
  auto entries = spool_->fs()->ListDir(spool_->StagePath(kProcessing));
  if (!entries) {
    Logger("processor")->error("cannot list {}: {}", spool_->StagePath(kProcessing),
                               entries.error().ToString());
    return;
  }
  std::set<std::string> present(entries->begin(), entries->end());
  for (auto it = unreadable_.begin(); it != unreadable_.end();) {
    it = present.count(*it) == 0 ? unreadable_.erase(it) : std::next(it);  // gone: forget it
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (present.count(it->first) == 0) {
      queue_.Remove(it->first);  // taken away (discarded by an operator)
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& id : *entries) {
    if (waiting_.count(id) != 0 || jobs_.count(id) != 0 || unreadable_.count(id) != 0 ||
        !IsSafeFileName(id)) {
      continue;
    }
    auto w = ReadWaiting(id);
    if (!w) {
      if (w.error().code() == Status::Code::kNotFound) {
        continue;  // the router is still publishing it, or it was just taken away
      }
      unreadable_.insert(id);
      Logger("processor")->error("task {} in processing/ cannot be read: {}; it stays there "
                                 "until it is fixed or removed task={}",
                                 id, w.error().ToString(), id);
      continue;
    }
    waiting_[id] = *w;
    queue_.Put(w->queued);
  }
}

bool Processor::ModulesHaveRoom(const std::vector<std::string>& modules) const {
  for (const auto& name : modules) {
    const ModuleOptions* m = FindModule(config_, name);
    int limit = m != nullptr && m->max_parallel > 0 ? m->max_parallel : config_.processor.workers;
    auto it = module_running_.find(name);
    if (it != module_running_.end() && it->second >= limit) {
      return false;
    }
  }
  return true;
}

WallTime Processor::RunOnce() {
  WallTime now = clock_->Now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->done.load()) {
      it->second->thread.join();
      for (const auto& m : it->second->modules) {
        --module_running_[m];
      }
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  Scan();
  WallTime next = now + std::chrono::seconds(5);
  bool suspended = IsSuspended(spool_->root(), "processing");
  if (suspended != suspended_) {
    suspended_ = suspended;
    Logger("processor")->warn(suspended ? "processing is suspended by an operator: no new job "
                                          "starts (running ones finish)"
                                        : "processing is resumed");
  }
  if (suspended_) {
    return next;
  }
  bool offpeak = InWindow(LocalMinuteOfDay(now), config_.dispatcher.offpeak_start_min,
                          config_.dispatcher.offpeak_end_min);
  std::optional<WallTime> next_ready;
  for (const auto& id : queue_.Ready(now, offpeak, &next_ready)) {
    if (jobs_.size() >= static_cast<size_t>(config_.processor.workers)) {
      break;
    }
    const Waiting& w = waiting_[id];
    if (!ModulesHaveRoom(w.modules)) {
      continue;
    }
    Waiting copy = w;
    queue_.Remove(id);
    waiting_.erase(id);
    Start(id, copy);
  }
  if (next_ready && *next_ready < next) {
    next = *next_ready;
  }
  return next;
}

void Processor::Start(const std::string& id, const Waiting& w) {
  FileSystem* fs = spool_->fs();
  std::string from = JoinPath(spool_->StagePath(kProcessing), id);
  std::string dir = JoinPath(work_dir_, id);
  Status claimed = fs->Rename(from, dir);
  if (!claimed.ok()) {
    if (claimed.code() != Status::Code::kNotFound) {
      Logger("processor")->error("cannot claim task {} ({}); it is tried again task={}", id,
                                 claimed.ToString(), id);
    }
    return;
  }
  auto job = std::make_unique<Job>();
  job->id = id;
  job->dir = dir;
  job->modules = w.modules;
  auto text = fs->ReadFile(JoinPath(dir, kTaskFile));
  job->task = text ? Json::parse(*text, nullptr, false) : Json();
  for (const auto& m : w.modules) {
    ++module_running_[m];
  }
  Job* raw = job.get();
  jobs_[id] = std::move(job);
  raw->thread = std::thread([this, raw] { RunJob(raw); });
}

void Processor::RunJob(Job* job) {
  try {
    Work(job);
  } catch (const std::exception& e) {
    // Not expected; whatever a module wrote must not take the processor (and, after its
    // restart, the same task again) down with it.
    Logger("processor")->error("task {}: unexpected error while processing: {} task={}", job->id,
                               e.what(), job->id);
    try {
      Fail(job, std::string("unexpected error while processing: ") + e.what(), -1, "");
    } catch (const std::exception&) {
    }
  }
  job->done = true;
  Wake();
}

Status Processor::KeepReceived(const std::string& dir) {
  FileSystem* fs = spool_->fs();
  std::string keep = JoinPath(dir, kAsReceived);
  if (!fs->IsDirectory(keep)) {
    FERRY_RETURN_IF_ERROR(fs->CreateDir(keep));
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(dir));
  for (const auto& e : entries) {
    if (e == kTaskFile || e == kAsReceived || e == kLogs || e == kIn || e == kOut ||
        e == kFailedOutput || e == kPublishedMarker || e.starts_with(".")) {
      continue;
    }
    FERRY_RETURN_IF_ERROR(fs->Rename(JoinPath(dir, e), JoinPath(keep, e)));
  }
  return Status::Ok();
}

Status Processor::RestoreInput(const std::string& dir, bool keep_output) {
  FileSystem* fs = spool_->fs();
  fs->RemoveTree(JoinPath(dir, kIn));
  fs->RemoveTree(JoinPath(dir, kFailedOutput));
  if (keep_output && fs->IsDirectory(JoinPath(dir, kOut))) {
    FERRY_RETURN_IF_ERROR(fs->Rename(JoinPath(dir, kOut), JoinPath(dir, kFailedOutput)));
  }
  fs->RemoveTree(JoinPath(dir, kOut));
  std::string keep = JoinPath(dir, kAsReceived);
  if (!fs->IsDirectory(keep)) {
    return Status::Ok();
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(keep));
  for (const auto& e : entries) {
    FERRY_RETURN_IF_ERROR(fs->Rename(JoinPath(keep, e), JoinPath(dir, e)));
  }
  return fs->RemoveTree(keep);
}

Status Processor::PrepareFirstInput(const Job& job, const std::string& in_dir, int* instances) {
  FileSystem* fs = spool_->fs();
  std::string keep = JoinPath(job.dir, kAsReceived);
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(keep));
  std::sort(entries.begin(), entries.end());
  std::string task_series = job.task.value("/info/uid_type"_json_pointer, std::string()) == "series"
                                ? job.task.value("/info/uid"_json_pointer, std::string())
                                : "";
  for (const auto& e : entries) {
    if (!IsInstanceFileName(e)) {
      continue;
    }
    std::string series = task_series;
    if (e.find('#') != std::string::npos) {
      series.clear();  // already named as mercure names it
    } else if (series.empty()) {
      auto s = series_of_(JoinPath(keep, e));
      series = s ? *s : "";
    }
    std::string name = series.empty() ? e : MercureInstanceName(series, e);
    FERRY_RETURN_IF_ERROR(CopyFile(JoinPath(keep, e), JoinPath(in_dir, name)));
    ++*instances;
    // mercure gives every instance its tags file: the series' tags.
    std::string tags = task_series.empty() ? series + ".tags" : std::string(kSeriesTagsFile);
    if (!series.empty() && fs->Exists(JoinPath(keep, tags))) {
      std::string stem = name.substr(0, name.size() - 4);
      FERRY_RETURN_IF_ERROR(CopyFile(JoinPath(keep, tags), JoinPath(in_dir, stem + ".tags")));
    }
  }
  return Status::Ok();
}

Processor::Ending Processor::Requeue(Job* job, const std::string& reason, bool count_attempt) {
  FileSystem* fs = spool_->fs();
  auto log = Logger("processor");
  Json& task = job->task;
  Status s = RestoreInput(job->dir, false);
  int attempts = task.value("/ferry/process/attempts"_json_pointer, 0);
  if (count_attempt) {
    ++attempts;
    if (attempts >= config_.processor.retry.max_attempts) {
      return Fail(job, fmt::format("{} (gave up after {} attempts)", reason, attempts), -1, "");
    }
    auto delay = RetryDelay(config_.processor.retry, attempts);
    WallTime at = clock_->Now() + delay;
    task["ferry"]["process"]["attempts"] = attempts;
    task["ferry"]["process"]["next_attempt_at"] = EpochSeconds(at);
    task["ferry"]["process"]["last_error"] = reason;
    log->warn("task {}: {}; trying again in {} s (attempt {} of {}) task={}", job->id, reason,
              std::chrono::duration_cast<std::chrono::seconds>(delay).count(), attempts + 1,
              config_.processor.retry.max_attempts, job->id);
    journal_->Append({"process.retry_scheduled",
                      task.value("/info/uid"_json_pointer, std::string()), job->id,
                      {{"reason", reason},
                       {"attempt", attempts},
                       {"next_attempt_at", FormatIso8601(at)}}});
  }
  if (s.ok()) {
    s = WriteTask(job->dir, task);
  }
  if (s.ok()) {
    s = fs->Rename(job->dir, JoinPath(spool_->StagePath(kProcessing), job->id));
  }
  if (!s.ok()) {
    log->error("task {}: cannot put it back into processing/: {}; the next start of the "
               "processor recovers it task={}",
               job->id, s.ToString(), job->id);
  }
  return Ending::kRequeued;
}

Processor::Ending Processor::Fail(Job* job, const std::string& reason, int step,
                                  const std::string& module) {
  FileSystem* fs = spool_->fs();
  Json& task = job->task;
  std::string uid = task.value("/info/uid"_json_pointer, std::string());
  Logger("processor")->error("task {} failed while processing: {}; its images are in "
                             "error/{} (retry with `ferry task retry {}`) task={}",
                             job->id, reason, job->id, job->id, job->id);
  Status s = RestoreInput(job->dir, true);
  task["info"]["fail_stage"] = "PROCESSING";  // mercure's FailStage names
  task["ferry"]["stage"] = "error";
  Json failure = {{"reason", reason}, {"at", FormatIso8601(clock_->Now())}};
  if (step >= 0) {
    failure["step"] = step + 1;
    failure["module"] = module;
  }
  task["ferry"]["process"]["failure"] = failure;
  if (s.ok()) {
    s = WriteTask(job->dir, task);
  }
  if (s.ok()) {
    s = fs->Rename(job->dir, JoinPath(spool_->StagePath(kError), job->id));
  }
  if (s.ok()) {
    s = fs->SyncDir(spool_->StagePath(kError));
  }
  if (!s.ok()) {
    Logger("processor")->error("task {}: cannot move it to error/: {}; the next start of the "
                               "processor recovers it task={}",
                               job->id, s.ToString(), job->id);
    return Ending::kRequeued;
  }
  Json details = {{"reason", reason}, {"stage", "processing"}};
  if (step >= 0) {
    details["step"] = step + 1;
    details["module"] = module;
  }
  journal_->Append({"process.failed", uid, job->id, details});
  Json failed = TaskAudience(task);
  failed.update(details);
  journal_->Append({"task.failed", uid, job->id, failed});
  return Ending::kFailed;
}

Processor::Ending Processor::Work(Job* job) {
  FileSystem* fs = spool_->fs();
  auto log = Logger("processor");
  Json& task = job->task;
  if (!task.is_object()) {
    return Fail(job, "task.json cannot be read", -1, "");
  }
  std::string uid = task.value("/info/uid"_json_pointer, std::string());
  std::vector<Json> steps = ProcessSteps(task);
  int attempt = task.value("/ferry/process/attempts"_json_pointer, 0) + 1;
  auto job_start = std::chrono::steady_clock::now();
  Status s = KeepReceived(job->dir);
  if (!s.ok()) {
    return Requeue(job, "cannot set the received images aside: " + s.ToString(), true);
  }
  std::string logs = JoinPath(job->dir, kLogs);
  fs->CreateDirs(logs);
  journal_->Append({"process.begin", uid, job->id,
                    {{"modules", job->modules}, {"attempt", attempt}, {"steps", steps.size()}}});
  log->info("task {}: processing with {} (attempt {}) task={}", job->id,
            fmt::join(job->modules, " -> "), attempt, job->id);

  std::string in = JoinPath(job->dir, kIn);
  std::string out = JoinPath(job->dir, kOut);
  std::vector<std::pair<std::string, Json>> outputs;
  Json step_records = Json::array();
  int input_instances = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    std::string name = steps[i].value("module_name", std::string());
    const ModuleOptions* module = FindModule(config_, name);
    if (module == nullptr) {
      return Fail(job, fmt::format("module \"{}\" is not in the config (any more); add it, or "
                                   "change the rule, then retry the task",
                                   name),
                  static_cast<int>(i), name);
    }
    ModuleRuntime* runtime = RuntimeFor(*module);
    if (runtime == nullptr) {
      return Fail(job, "no runtime for module " + name, static_cast<int>(i), name);
    }
    if (i == 0) {
      fs->RemoveTree(in);
      s = fs->CreateDir(in);
      if (s.ok()) {
        s = PrepareFirstInput(*job, in, &input_instances);
      }
    } else {
      fs->RemoveTree(in);
      s = fs->Rename(out, in);
    }
    fs->RemoveTree(out);
    if (s.ok()) {
      s = fs->CreateDir(out);
    }
    if (s.ok()) {
      s = spool_->WriteFileAtomic(in, kTaskFile, TaskText(ModuleTaskView(task, i, *module)),
                                  Durability::kOs);
    }
    if (!s.ok()) {
      return Requeue(job, "cannot prepare the module's folders: " + s.ToString(), true);
    }
    ModuleJob mj;
    mj.task_id = job->id;
    mj.step = static_cast<int>(i);
    mj.module = module;
    mj.in_dir = in;
    mj.out_dir = out;
    mj.timeout = std::chrono::seconds(module->timeout_s);
    mj.log_path = JoinPath(logs, StepLogName(i, name));
    if (module->requires_persistence) {
      std::string root = config_.processor.persistence_folder.empty()
                             ? JoinPath(spool_->root(), "persistence")
                             : config_.processor.persistence_folder;
      mj.persistence_dir = JoinPath(root, module->persistence_folder_name.empty()
                                              ? module->name
                                              : module->persistence_folder_name);
      fs->CreateDirs(mj.persistence_dir);
    }
    AppendLine(mj.log_path, fmt::format("ferry: {} step {}/{}: module {}, attempt {}",
                                        FormatIso8601(clock_->Now()), i + 1, steps.size(), name,
                                        attempt));
    journal_->Append({"process.step_begin", uid, job->id,
                      {{"step", i + 1}, {"module", name}, {"attempt", attempt}}});
    Result<ModuleRun> run = runtime->Run(mj, cancel_);
    if (!run) {
      AppendLine(mj.log_path, "ferry: the module could not run: " + run.error().message());
      if (cancel_.load()) {
        return Requeue(job, "the processor is stopping", false);
      }
      if (run.error().code() == Status::Code::kUnavailable) {
        return Requeue(job, run.error().message(), true);
      }
      return Fail(job, fmt::format("module {} could not run: {}", name, run.error().message()),
                  static_cast<int>(i), name);
    }
    Json record = {{"step", i + 1},
                   {"module", name},
                   {"image", run->image},
                   {"kind", run->kind},
                   {"exit_code", run->exit_code},
                   {"seconds", run->seconds}};
    if (run->cancelled) {
      AppendLine(mj.log_path, "ferry: stopped because the processor is stopping");
      return Requeue(job, "the processor is stopping", false);
    }
    std::string failure;
    if (run->timed_out) {
      failure = fmt::format("module {} ran longer than its timeout of {} s and was stopped "
                            "(modules.{}.timeout)",
                            name, module->timeout_s, name);
    } else if (run->exit_code != 0) {
      failure = fmt::format("module {} exited with code {}{}", name, run->exit_code,
                            run->oom_killed ? " (killed for exceeding its memory limit)" : "");
      std::string tail = LogTail(mj.log_path, 3);
      if (!tail.empty()) {
        failure += "; its last output: " + tail;
      }
    }
    // Only ferry may change the output from here on.
    chmod(out.c_str(), 0700);
    int files = 0;
    bool readable = true;
    std::vector<std::string> removed = SanitizeOutput(out, &files, &readable);
    for (const auto& r : removed) {
      AppendLine(mj.log_path, "ferry: removed " + r + " from the output: only plain files and "
                              "folders are accepted (no links or devices)");
    }
    int produced = files - (fs->Exists(JoinPath(out, kTaskFile)) ? 1 : 0);
    record["output_files"] = produced;
    if (failure.empty() && !readable) {
      failure = fmt::format("the output of module {} cannot be checked completely (a folder "
                            "ferry cannot read, or a link it cannot remove); it is not used",
                            name);
    }
    if (failure.empty() && produced <= 0) {
      failure = fmt::format("module {} wrote no output to $MERCURE_OUT_DIR (out/ is empty)", name);
    }
    if (!failure.empty()) {
      AppendLine(mj.log_path, "ferry: " + failure);
      journal_->Append({"process.step_failed", uid, job->id, record});
      return Fail(job, failure, static_cast<int>(i), name);
    }
    Json result;
    if (auto text = fs->ReadFile(JoinPath(out, kResultFile))) {
      result = Json::parse(*text, nullptr, false);
      if (result.is_discarded()) {
        AppendLine(mj.log_path, "ferry: result.json is not valid JSON; ignored");
        result = nullptr;
      }
    }
    outputs.emplace_back(name, result);
    if (task["process"].is_array()) {
      task["process"][i]["output"] = result;
    } else {
      task["process"]["output"] = result;
    }
    if (i + 1 < steps.size()) {
      fs->RemoveFile(JoinPath(out, kResultFile));
    }
    AppendLine(mj.log_path, fmt::format("ferry: exit code {} after {:.2f} s; {} output file(s)",
                                        run->exit_code, run->seconds, produced));
    journal_->Append({"process.step_complete", uid, job->id, record});
    log->info("task {}: step {}/{} {} done in {:.2f} s ({}, {} output file(s)) task={}", job->id,
              i + 1, steps.size(), name, run->seconds, run->image, produced, job->id);
    step_records.push_back(record);
  }

  // The result: the last out/, with the received images when the rule retains them.
  bool retain = !steps.empty() && steps[0].value("retain_input_images", false);
  if (retain) {
    std::string keep = JoinPath(job->dir, kAsReceived);
    fs->RemoveTree(in);
    s = fs->CreateDir(in);
    int n = 0;
    if (s.ok()) {
      s = PrepareFirstInput(*job, in, &n);
    }
    if (s.ok()) {
      auto names = fs->ListDir(in);
      for (const auto& e : names ? *names : std::vector<std::string>{}) {
        if (IsInstanceFileName(e) && s.ok()) {
          s = fs->Rename(JoinPath(in, e), JoinPath(out, e));
        }
      }
    }
    if (!s.ok()) {
      return Requeue(job, "cannot add the received images to the result: " + s.ToString(), true);
    }
  }
  if (steps.size() > 1) {
    Json list = Json::array();
    for (const auto& [m, o] : outputs) {
      list.push_back({m, o});
    }
    spool_->WriteFileAtomic(out, kResultFile, TaskText(list), Durability::kOs);
  }
  Notification note = ModuleNotification(outputs);
  if (!note.text.empty() || note.requested) {
    // Kept in task.json too: the dispatcher's task.completed carries it for `both` tasks.
    task["ferry"]["process"]["notification"] = {{"text", note.text},
                                                {"requested", note.requested}};
    journal_->Append({"process.notification", uid, job->id,
                      {{"text", note.text}, {"requested", note.requested}}});
  }
  const RuleOptions* rule = nullptr;
  std::string applied = task.value("/info/applied_rule"_json_pointer, std::string());
  for (const auto& r : config_.rules) {
    if (r.name == applied) {
      rule = &r;
    }
  }
  RoutingOutcome routing =
      DynamicRouting(outputs.empty() ? Json() : outputs.back().second, rule, config_);
  if (!routing.note.empty()) {
    log->info("task {}: {} task={}", job->id, routing.note, job->id);
  }
  if (routing.changed) {
    if (routing.discard) {
      task["dispatch"] = Json::object();
    } else {
      task["dispatch"] = {{"target_name", routing.targets},
                          {"status", Json::object()},
                          {"retries", 0},
                          {"next_retry_at", 0},
                          {"series_uid", task.value("/info/uid_type"_json_pointer, std::string()) ==
                                                 "series"
                                             ? uid
                                             : ""}};
    }
  }
  bool dispatch = task.contains("dispatch") && task["dispatch"].is_object() &&
                  task["dispatch"].contains("target_name") &&
                  !task["dispatch"]["target_name"].empty() &&
                  task["dispatch"]["target_name"] != "";
  std::string_view stage = dispatch ? kOutgoing : kSuccess;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - job_start).count();
  task["ferry"]["stage"] = std::string(stage);
  task["ferry"]["process"]["steps"] = step_records;
  task["ferry"]["process"]["attempts"] = attempt;
  task["ferry"]["process"]["completed_at"] = FormatIso8601(clock_->Now());
  task["ferry"]["process"]["seconds"] = seconds;
  if (!routing.note.empty()) {
    task["ferry"]["process"]["routing"] = routing.note;
  }
  if (dispatch) {
    task["ferry"]["dispatch"]["queued_at"] = EpochSeconds(clock_->Now());
  }
  int results = 0;  // counted now: the dispatcher may take the folder at once
  if (auto names = fs->ListDir(out)) {
    for (const auto& e : *names) {
      results += IsInstanceFileName(e) ? 1 : 0;
    }
  }
  // The published folder: the module's output, ferry's task.json (with the module outputs in
  // "process") and the logs.
  s = fs->Rename(logs, JoinPath(out, kLogs));
  if (s.ok()) {
    s = spool_->WriteFileAtomic(out, kTaskFile, TaskText(task), Durability::kOs);
  }
  if (s.ok()) {
    // The module wrote its output without flushing it: make it durable before it is published.
    s = fs->SyncFileSystem(out);
  }
  if (s.ok()) {
    // With out/ gone, this marker tells Recover that the result was published.
    s = spool_->WriteFileAtomic(job->dir, kPublishedMarker, std::string(stage), Durability::kFsync);
  }
  if (s.ok()) {
    s = fs->Rename(out, JoinPath(spool_->StagePath(stage), job->id));
    if (s.ok()) {
      // Published: from here on the task is the dispatcher's (or done); it never runs again.
      Status synced = fs->SyncDir(spool_->StagePath(stage));
      if (!synced.ok()) {
        log->warn("task {}: published in {}/ but the folder could not be synced: {} task={}",
                  job->id, stage, synced.ToString(), job->id);
      }
    }
  }
  if (!s.ok()) {
    if (fs->IsDirectory(JoinPath(out, kLogs))) {
      fs->Rename(JoinPath(out, kLogs), logs);
    }
    fs->RemoveFile(JoinPath(job->dir, kPublishedMarker));
    return Requeue(job, "cannot publish the result: " + s.ToString(), true);
  }
  fs->RemoveTree(job->dir);
  Json details = {{"stage", std::string(stage)},
                  {"modules", job->modules},
                  {"instances_in", input_instances},
                  {"instances_out", results},
                  {"seconds", seconds},
                  {"attempt", attempt}};
  if (dispatch) {
    details["targets"] = task["dispatch"]["target_name"];
  }
  if (!routing.note.empty()) {
    details["routing"] = routing.note;
  }
  journal_->Append({"process.complete", uid, job->id, details});
  if (stage == kSuccess) {
    Json done = TaskAudience(task);
    done["attempt"] = attempt;
    done["stage"] = "success";
    done["processed"] = true;
    if (!note.text.empty() || note.requested) {
      done["notification_text"] = note.text;
      done["notification_requested"] = note.requested;
    }
    journal_->Append({"task.completed", uid, job->id, done});
  }
  log->info("task {}: processed in {:.2f} s ({} -> {} instance(s)); {} task={}", job->id, seconds,
            input_instances, results,
            dispatch ? "queued for " + task["dispatch"]["target_name"].dump() : "filed in success/",
            job->id);
  return Ending::kPublished;
}

void Processor::Shutdown() {
  cancel_ = true;
  for (auto& [id, job] : jobs_) {
    if (job->thread.joinable()) {
      job->thread.join();
    }
  }
  jobs_.clear();
  module_running_.clear();
}

}  // namespace ferry
