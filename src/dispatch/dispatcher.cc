#include "dispatch/dispatcher.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <tuple>

#include <fmt/format.h>

#include "core/logging.h"
#include "spool/control.h"
#include "spool/task.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kSeriesMoveDir = ".series";
// How long a streaming job keeps its connection open without new instances before it lets
// another task use its slot.
constexpr auto kStreamLinger = std::chrono::milliseconds(50);
// Instances per Send call.
constexpr size_t kBatch = 256;
// How often a long transfer records what was delivered, so that a dispatcher killed in the
// middle resends at most this much.
constexpr auto kProgressInterval = std::chrono::seconds(5);

WallTime ParseTime(const Json& task, const Json::json_pointer& ptr) {
  if (!task.contains(ptr) || !task.at(ptr).is_number()) {
    return WallTime();
  }
  auto ms = static_cast<int64_t>(task.at(ptr).get<double>() * 1000.0);
  return WallTime() + std::chrono::milliseconds(ms);
}

std::vector<std::string> TaskDestinations(const Json& task) {
  std::vector<std::string> names;
  const Json* list = task.contains("dispatch") ? &task["dispatch"]["target_name"] : nullptr;
  if (list != nullptr && list->is_array()) {
    for (const auto& n : *list) {
      if (n.is_string() && std::find(names.begin(), names.end(), n) == names.end()) {
        names.push_back(n.get<std::string>());
      }
    }
  } else if (list != nullptr && list->is_string() && !list->get<std::string>().empty()) {
    names.push_back(list->get<std::string>());
  }
  return names;
}

bool DestinationComplete(const Json& task, const std::string& name) {
  auto ptr = Json::json_pointer("/dispatch/status/" + name + "/state");
  return task.contains(ptr) && task.at(ptr) == "complete";
}

}  // namespace

Dispatcher::Dispatcher(const Config& config, std::map<std::string, std::unique_ptr<Target>> targets,
                       Spool* spool, Journal* journal, Clock* clock, Describer describe)
    : config_(config),
      targets_(std::move(targets)),
      spool_(spool),
      journal_(journal),
      clock_(clock),
      describe_(std::move(describe)),
      work_dir_(JoinPath(spool->StagePath(kTmp), "dispatcher")),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Dispatcher::~Dispatcher() {
  Shutdown();
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
}

void Dispatcher::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void Dispatcher::DrainWake() {
  uint64_t value;
  while (::read(wake_fd_, &value, sizeof(value)) > 0) {
  }
}

Status Dispatcher::Recover() {
  FileSystem* fs = spool_->fs();
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(work_dir_));
  auto entries = fs->ListDir(work_dir_);
  if (!entries) {
    return entries.error();
  }
  for (const auto& id : *entries) {
    std::string dir = JoinPath(work_dir_, id);
    if (!fs->IsDirectory(dir)) {
      continue;
    }
    FERRY_RETURN_IF_ERROR(MoveSeriesIntoTask(dir));
    std::string to = JoinPath(spool_->StagePath(kOutgoing), id);
    FERRY_RETURN_IF_ERROR(fs->Rename(dir, to));
    Logger("dispatcher")->warn("task {} was being sent when the dispatcher stopped; it is queued "
                               "again (instances not confirmed before are sent again)",
                               id);
    journal_->Append({"task.recovered", "", id, Json::object()});
  }
  return fs->SyncDir(spool_->StagePath(kOutgoing));
}

Result<Dispatcher::Waiting> Dispatcher::ReadWaiting(const std::string& id) {
  auto text = spool_->fs()->ReadFile(JoinPath(JoinPath(spool_->StagePath(kOutgoing), id), kTaskFile));
  if (!text) {
    return text.error();
  }
  Json task = Json::parse(*text, nullptr, false);
  if (!task.is_object()) {
    return Status::Corruption("task.json is not a JSON object");
  }
  Waiting w;
  w.queued.id = id;
  w.queued.priority = TaskPriority(task);
  w.queued.created = ParseTime(task, "/ferry/dispatch/queued_at"_json_pointer);
  if (w.queued.created == WallTime()) {
    auto mtime = spool_->fs()->ModificationTime(JoinPath(spool_->StagePath(kOutgoing), id));
    w.queued.created = mtime ? *mtime : clock_->Now();
  }
  w.queued.not_before = ParseTime(task, "/ferry/dispatch/next_attempt_at"_json_pointer);
  w.study_uid = task.value("/ferry/study_uid"_json_pointer, std::string());
  w.received = ParseTime(task, "/ferry/received_at"_json_pointer);
  if (w.received == WallTime()) {
    w.received = w.queued.created;  // a task from before ferry.received_at
  }
  for (const auto& name : TaskDestinations(task)) {
    if (!DestinationComplete(task, name)) {
      w.pending.push_back(name);
    }
  }
  return w;
}

void Dispatcher::ScanOutgoing() {
  FileSystem* fs = spool_->fs();
  std::string outgoing = spool_->StagePath(kOutgoing);
  auto entries = fs->ListDir(outgoing);
  if (!entries) {
    Logger("dispatcher")->error("cannot list {}: {}", outgoing, entries.error().ToString());
    return;
  }
  std::set<std::string> present(entries->begin(), entries->end());
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (present.count(it->first) == 0) {  // taken away by an operator
      queue_.Remove(it->first);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& id : *entries) {
    if (waiting_.count(id) != 0 || active_.count(id) != 0 || !IsSafeFileName(id) ||
        id[0] == '.') {
      continue;
    }
    auto w = ReadWaiting(id);
    if (!w) {
      // The router renames a task folder in with its task.json already inside, so this one is
      // broken or was put there by hand. Report it once and leave it for an operator.
      if (unreadable_.insert(id).second) {
        Logger("dispatcher")->error("task {} in {} cannot be read ({}); it is not sent. Fix or "
                                    "remove its task.json",
                                    id, outgoing, w.error().ToString());
      }
      continue;
    }
    unreadable_.erase(id);
    queue_.Put(w->queued);
    waiting_[id] = std::move(*w);
  }
}

std::string Dispatcher::ResolveGroup(const std::string& name, bool commit) {
  const TargetGroupOptions* group = FindTargetGroup(config_, name);
  if (group == nullptr) {
    return name;
  }
  size_t cursor = group_cursor_[name];
  std::string member = ChooseGroupMember(
      *group, [this](const std::string& t) { return StateOf(t); }, &cursor);
  if (commit) {
    group_cursor_[name] = cursor;
  }
  return member;
}

bool Dispatcher::GroupHasHealthyMember(const std::string& name) {
  const TargetGroupOptions* group = FindTargetGroup(config_, name);
  if (group == nullptr) {
    return false;
  }
  return std::any_of(group->targets.begin(), group->targets.end(),
                     [this](const std::string& t) { return !StateOf(t).backing_off; });
}

TargetState Dispatcher::StateOf(const std::string& target) {
  TargetState s;
  auto it = health_.find(target);
  if (it != health_.end()) {
    s.in_flight = it->second.in_flight;
    s.backing_off = it->second.backoff_until > clock_->Now();
  }
  return s;
}

bool Dispatcher::CanStart(const Active& a, const Destination& d, std::string* target,
                          bool commit) {
  // A stream that paused goes on where it started: choosing a group member again would split
  // the series over several members (round robin moves on at every choice).
  std::string t = d.parked && !d.target.empty() ? d.target : ResolveGroup(d.name, commit);
  auto found = targets_.find(t);
  if (found == targets_.end()) {
    *target = t;
    return true;  // reported as a permanent failure by the job
  }
  const TargetOptions& o = found->second->options();
  if (health_[t].in_flight >= o.max_parallel) {
    return false;
  }
  if (o.ordered && !a.study_uid.empty()) {
    // Series of one study reach an ordered target in the order they were received (the task
    // id breaks ties, so that two series never go at the same time).
    auto before = [&a](WallTime received, const std::string& id) {
      return std::tie(received, id) < std::tie(a.received, a.id);
    };
    for (const auto& [id, other] : active_) {
      if (other.get() == &a || other->study_uid != a.study_uid ||
          !before(other->received, other->id)) {
        continue;
      }
      for (const auto& od : other->dests) {
        if (!od.complete && !od.permanent && (od.name == t || od.target == t)) {
          return false;
        }
      }
    }
    for (const auto& [id, w] : waiting_) {
      if (id != a.id && w.study_uid == a.study_uid && before(w.received, id)) {
        for (const auto& name : w.pending) {
          if (name == d.name || name == t) {
            return false;
          }
        }
      }
    }
  }
  *target = t;
  return true;
}

bool Dispatcher::Claim(const std::string& id) {
  FileSystem* fs = spool_->fs();
  std::string from = JoinPath(spool_->StagePath(kOutgoing), id);
  std::string dir = JoinPath(work_dir_, id);
  Status s = fs->Rename(from, dir);
  if (!s.ok()) {
    Logger("dispatcher")->warn("cannot claim task {}: {}", id, s.ToString());
    queue_.Remove(id);
    waiting_.erase(id);
    return false;
  }
  auto text = fs->ReadFile(JoinPath(dir, kTaskFile));
  Json task = text ? Json::parse(*text, nullptr, false) : Json();
  if (!task.is_object()) {
    Logger("dispatcher")->error("task {}: task.json is unreadable; moving it to error/", id);
    fs->Rename(dir, JoinPath(spool_->StagePath(kError), id));
    queue_.Remove(id);
    waiting_.erase(id);
    return false;
  }
  auto a = std::make_unique<Active>();
  a->id = id;
  a->dir = dir;
  a->task = task;
  a->streaming = task.value("/ferry/streaming"_json_pointer, false);
  a->series_uid = task.value("/info/uid"_json_pointer, std::string());
  a->study_uid = task.value("/ferry/study_uid"_json_pointer, std::string());
  a->attempt = task.value("/ferry/dispatch/attempts"_json_pointer, 0) + 1;
  a->created = waiting_[id].queued.created;
  a->received = waiting_[id].received;
  a->sealed = !a->streaming || fs->Exists(JoinPath(dir, kStreamSealedFile));
  a->context.task_id = id;
  a->context.sender_address = task.value("/info/sender_address"_json_pointer, std::string());
  a->context.sender_aet = task.value("/info/sender_aet"_json_pointer, std::string());
  a->context.receiver_aet = task.value("/info/receiver_aet"_json_pointer, std::string());
  a->context.cancel = &cancel_;
  a->saved_at = clock_->Now();
  const Json* delivered = task.contains("/ferry/dispatch/delivered"_json_pointer)
                              ? &task.at("/ferry/dispatch/delivered"_json_pointer)
                              : nullptr;
  for (const auto& name : TaskDestinations(task)) {
    Destination d;
    d.name = name;
    d.complete = DestinationComplete(task, name);
    if (delivered != nullptr && delivered->contains(name) && (*delivered)[name].is_array()) {
      for (const auto& f : (*delivered)[name]) {
        d.delivered.insert(f.get<std::string>());
      }
    }
    auto to = "/ferry/dispatch/delivered_to"_json_pointer / name;
    if (task.contains(to) && task.at(to).is_string()) {
      d.delivered_to = task.at(to).get<std::string>();
    }
    a->dests.push_back(std::move(d));
  }
  queue_.Remove(id);
  waiting_.erase(id);
  active_[id] = std::move(a);
  return true;
}

void Dispatcher::StartJobs() {
  // An operator's suspension (ferry web, control/dispatch.suspended): transfers running now
  // finish, no new one starts.
  bool suspended = IsSuspended(config_.data_folder, "dispatch");
  if (suspended != suspended_) {
    suspended_ = suspended;
    if (suspended) {
      Logger("dispatcher")->warn("dispatch suspended by an operator ({}); running transfers "
                                 "finish, no new one starts until it is resumed",
                                 SuspendMarkerPath(config_.data_folder, "dispatch"));
    } else {
      Logger("dispatcher")->info("dispatch resumed");
    }
  }
  if (suspended) {
    return;
  }
  const int workers = config_.dispatcher.workers;
  // Claimed tasks first (their other destinations, parked streams with news), then new ones.
  for (auto& [id, a] : active_) {
    uint64_t changes;
    {
      std::lock_guard<std::mutex> lock(a->mu);
      changes = a->changes;
    }
    for (size_t i = 0; i < a->dests.size() && static_cast<int>(running_) < workers; ++i) {
      Destination& d = a->dests[i];
      if (d.running || d.complete || d.permanent || d.transient) {
        continue;
      }
      if (d.parked && d.parked_at == changes && !a->sealed) {
        continue;
      }
      std::string target;
      if (CanStart(*a, d, &target, /*commit=*/true)) {
        StartJob(a.get(), i, target);
      }
    }
  }
  if (static_cast<int>(running_) >= workers) {
    return;
  }
  std::optional<WallTime> next;
  WallTime now = clock_->Now();
  bool offpeak = InWindow(LocalMinuteOfDay(now), config_.dispatcher.offpeak_start_min,
                          config_.dispatcher.offpeak_end_min);
  for (const auto& id : queue_.Ready(now, offpeak, &next)) {
    if (static_cast<int>(running_) >= workers) {
      break;
    }
    // Claim a task only when one of its destinations can start now.
    Active probe;
    probe.id = id;
    probe.study_uid = waiting_[id].study_uid;
    probe.created = waiting_[id].queued.created;
    probe.received = waiting_[id].received;
    bool startable = waiting_[id].pending.empty();
    for (const auto& name : waiting_[id].pending) {
      Destination d;
      d.name = name;
      std::string target;
      if (CanStart(probe, d, &target, /*commit=*/false)) {
        startable = true;
        break;
      }
    }
    if (!startable || !Claim(id)) {
      continue;
    }
    Active* a = active_[id].get();
    bool any = false;
    for (size_t i = 0; i < a->dests.size() && static_cast<int>(running_) < workers; ++i) {
      Destination& d = a->dests[i];
      std::string target;
      if (!d.complete && CanStart(*a, d, &target, /*commit=*/true)) {
        StartJob(a, i, target);
        any = true;
      }
    }
    if (!any && std::all_of(a->dests.begin(), a->dests.end(),
                            [](const Destination& d) { return d.complete; })) {
      FinishTask(a);
    }
  }
}

void Dispatcher::StartJob(Active* a, size_t index, const std::string& target_name) {
  Destination& d = a->dests[index];
  d.running = true;
  d.parked = false;
  d.target = target_name;
  d.error.clear();
  if (d.name != target_name) {
    std::lock_guard<std::mutex> lock(a->mu);
    if (!d.delivered.empty() && !d.delivered_to.empty() && d.delivered_to != target_name) {
      Logger("dispatcher")->info("task {}: group {} now sends to {}; {} holds only {} instance(s) "
                                 "of the task, so {} gets all of them",
                                 a->id, d.name, target_name, d.delivered_to, d.delivered.size(),
                                 target_name);
      d.delivered.clear();
      d.failed.clear();
    }
    d.delivered_to = target_name;
  }
  ++running_;
  ++health_[target_name].in_flight;
  auto found = targets_.find(target_name);
  Target* target = found == targets_.end() ? nullptr : found->second.get();
  journal_->Append({"dispatch.begin", a->series_uid, a->id,
                    {{"target", target_name},
                     {"destination", d.name},
                     {"attempt", a->attempt},
                     {"streaming", a->streaming},
                     {"already_delivered", d.delivered.size()}}});
  std::thread t([this, a, index, target] { RunJob(a, index, target); });
  threads_[t.get_id()] = std::move(t);
}

void Dispatcher::RunJob(Active* a, size_t index, Target* target) {
  Destination& d = a->dests[index];
  JobDone done{a->id, index, false};
  auto finish = [&] {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.push_back(done);
    finished_threads_.push_back(std::this_thread::get_id());
    Wake();
  };
  if (target == nullptr) {
    d.permanent = true;
    d.error = "no target named \"" + d.target + "\" is configured; add it to $.targets";
    finish();
    return;
  }
  FileSystem* fs = spool_->fs();
  std::unique_ptr<TargetSession> session;
  std::string incoming = a->streaming ? spool_->SeriesPath(a->series_uid) : std::string();
  uint64_t instances = 0, bytes = 0;
  auto started = std::chrono::steady_clock::now();
  bool all_done = false;
  std::string stop_error;
  bool stop_permanent = false;
  while (!cancel_.load()) {
    uint64_t seen;
    bool sealed;
    {
      std::lock_guard<std::mutex> lock(a->mu);
      seen = a->changes;
      sealed = a->sealed;
    }
    // What is there to send: the task folder, and the series folder while it still fills.
    std::vector<std::string> paths;
    std::set<std::string> names;
    for (const auto& folder : {a->dir, incoming}) {
      if (folder.empty()) {
        continue;
      }
      auto list = fs->ListDir(folder);
      if (!list) {
        continue;
      }
      std::lock_guard<std::mutex> lock(a->mu);
      for (const auto& name : *list) {
        if (IsInstanceFileName(name) && d.delivered.count(name) == 0 && d.failed.count(name) == 0 &&
            names.insert(name).second) {
          paths.push_back(JoinPath(folder, name));
        }
      }
    }
    if (paths.empty()) {
      if (sealed) {
        all_done = true;
        break;
      }
      std::unique_lock<std::mutex> lock(a->mu);
      if (!a->cv.wait_for(lock, kStreamLinger,
                          [&] { return a->changes != seen || a->sealed || cancel_.load(); })) {
        done.parked = true;  // nothing new for a while: give the slot to others
        d.parked_at = seen;
        break;
      }
      continue;
    }
    std::sort(paths.begin(), paths.end());
    for (size_t start = 0; start < paths.size() && stop_error.empty() && !cancel_.load();
         start += kBatch) {
      std::vector<OutgoingInstance> batch;
      for (size_t i = start; i < std::min(paths.size(), start + kBatch); ++i) {
        auto described = describe_(paths[i]);
        if (described) {
          batch.push_back(std::move(*described));
        } else if (described.error().code() != Status::Code::kNotFound) {
          std::lock_guard<std::mutex> lock(a->mu);
          d.failed[paths[i].substr(paths[i].rfind('/') + 1)] =
              "cannot read the instance: " + described.error().message();
        }  // NotFound: the series was just moved into the task; found again next round
      }
      if (batch.empty()) {
        continue;
      }
      if (!session) {
        auto opened = target->Open(a->context);
        if (!opened) {
          stop_error = opened.error().message();
          stop_permanent = IsPermanent(opened.error());
          break;
        }
        session = std::move(*opened);
      }
      std::vector<InstanceResult> results;
      session->Send(batch, &results);
      std::lock_guard<std::mutex> lock(a->mu);
      for (size_t i = 0; i < batch.size() && i < results.size(); ++i) {
        std::string name = batch[i].path.substr(batch[i].path.rfind('/') + 1);
        const InstanceResult& r = results[i];
        if (r.outcome == Outcome::kDelivered) {
          d.delivered.insert(name);
          ++instances;
          bytes += batch[i].size;
        } else if (!fs->Exists(batch[i].path)) {
          // Moved into the task while it was being sent: send it again from there.
        } else if (r.outcome == Outcome::kPermanent) {
          d.failed[name] = r.detail;
        } else if (stop_error.empty()) {
          stop_error = r.detail;
        }
      }
    }
    if (!stop_error.empty()) {
      break;
    }
  }
  if (all_done && session == nullptr && d.failed.empty() && !cancel_.load()) {
    auto opened = target->Open(a->context);
    if (opened) {
      session = std::move(*opened);
    } else {
      stop_error = opened.error().message();
      stop_permanent = IsPermanent(opened.error());
    }
  }
  if (all_done && stop_error.empty() && d.failed.empty() && session && !cancel_.load()) {
    Status s = session->Finish();
    if (!s.ok()) {
      stop_error = "finishing the transfer failed: " + s.message();
      stop_permanent = IsPermanent(s);
    } else {
      d.complete = true;
    }
  }
  session.reset();  // ends the association / connection before the task moves on
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  {
    std::lock_guard<std::mutex> lock(a->mu);
    if (!d.failed.empty()) {
      d.permanent = true;
      d.error = fmt::format("{} instance(s) refused permanently, e.g. {}: {}", d.failed.size(),
                            d.failed.begin()->first, d.failed.begin()->second);
    }
    if (!stop_error.empty()) {
      d.error = stop_error;
      (stop_permanent ? d.permanent : d.transient) = true;
    }
  }
  if (instances > 0 || d.complete) {
    journal_->Append({d.complete ? "dispatch.complete" : "dispatch.progress", a->series_uid, a->id,
                      {{"target", d.target}, {"destination", d.name}, {"instances", instances},
                       {"bytes", bytes}, {"duration_ms", elapsed.count()},
                       {"attempt", a->attempt}}});
  }
  finish();
}

void Dispatcher::HandleDone(const JobDone& done) {
  auto it = active_.find(done.task_id);
  if (it == active_.end()) {
    return;
  }
  Active* a = it->second.get();
  Destination& d = a->dests[done.dest];
  d.running = false;
  d.parked = done.parked;
  --running_;
  TargetHealth& h = health_[d.target];
  --h.in_flight;
  auto log = Logger("dispatcher");
  if (d.transient || d.permanent) {
    ++h.failures;
    h.backoff_until = clock_->Now() + RetryDelay(config_.dispatcher.retry, h.failures);
    journal_->Append({"dispatch.failed", a->series_uid, a->id,
                      {{"target", d.target}, {"destination", d.name}, {"reason", d.error},
                       {"permanent", d.permanent}, {"delivered", d.delivered.size()},
                       {"attempt", a->attempt}}});
    log->warn("task {}: sending to {} failed ({}): {}", a->id, d.target,
              d.permanent ? "permanent, not retried" : "will retry", d.error);
    if (d.transient && GroupHasHealthyMember(d.name)) {
      // Fail over within this attempt: the next pass picks another member of the group.
      d.transient = false;
      log->info("task {}: trying the next target of group {}", a->id, d.name);
      Wake();
      return;
    }
  } else if (!done.parked) {
    h.failures = 0;
  }
  if (d.complete) {
    log->info("task {}: {} instance(s) delivered to {}", a->id, d.delivered.size(), d.target);
  }
  bool running = std::any_of(a->dests.begin(), a->dests.end(),
                             [](const Destination& x) { return x.running; });
  if (running) {
    return;
  }
  bool all_complete = std::all_of(a->dests.begin(), a->dests.end(),
                                  [](const Destination& x) { return x.complete; });
  bool any_failed = std::any_of(a->dests.begin(), a->dests.end(),
                                [](const Destination& x) { return x.permanent || x.transient; });
  if (all_complete || any_failed) {
    FinishTask(a);
  } else {
    WriteTaskJson(a);  // progress of a parked stream
  }
}

void Dispatcher::WriteTaskJson(Active* a) {
  Json& t = a->task;
  Json delivered = Json::object();
  Json delivered_to = Json::object();
  Json errors = Json::object();
  std::string now = FormatIso8601(clock_->Now());
  {
    std::lock_guard<std::mutex> lock(a->mu);
    for (const auto& d : a->dests) {
      delivered[d.name] = d.delivered;
      if (!d.delivered_to.empty() && d.delivered_to != d.name) {
        delivered_to[d.name] = d.delivered_to;
      }
      std::string state = d.complete ? "complete" : d.permanent || d.transient ? "error" : "waiting";
      t["dispatch"]["status"][d.name] = {{"state", state}, {"time", now}};
      if (!d.error.empty()) {
        errors[d.name] = {{"target", d.target}, {"reason", d.error}, {"permanent", d.permanent}};
      }
    }
  }
  t["ferry"]["dispatch"]["delivered"] = delivered;
  if (delivered_to.empty()) {
    t["ferry"]["dispatch"].erase("delivered_to");
  } else {
    t["ferry"]["dispatch"]["delivered_to"] = delivered_to;
  }
  t["ferry"]["dispatch"]["errors"] = errors;
  Status s = spool_->WriteFileAtomic(a->dir, kTaskFile, t.dump(2) + "\n", Durability::kFsync);
  if (!s.ok()) {
    Logger("dispatcher")->error("task {}: cannot update task.json: {}", a->id, s.ToString());
  }
}

Status Dispatcher::MoveTask(Active* a, std::string_view stage) {
  std::string to = JoinPath(spool_->StagePath(stage), a->id);
  FERRY_RETURN_IF_ERROR(spool_->fs()->Rename(a->dir, to));
  return spool_->fs()->SyncDir(spool_->StagePath(stage));
}

void Dispatcher::FinishTask(Active* a) {
  auto log = Logger("dispatcher");
  bool all_complete = std::all_of(a->dests.begin(), a->dests.end(),
                                  [](const Destination& x) { return x.complete; });
  bool permanent = std::any_of(a->dests.begin(), a->dests.end(),
                               [](const Destination& x) { return x.permanent; });
  if (!all_complete && (permanent || a->attempt >= config_.dispatcher.retry.max_attempts) &&
      a->streaming && !a->sealed) {
    // The series is still arriving. The task goes to error/ when the router seals it
    // (UpdateStreams), with all its instances: moved now, it would leave them in incoming/,
    // where nothing routes a sealed series.
    if (!a->fail_when_sealed) {
      log->warn("task {} failed; it moves to error/ once series {} is complete", a->id,
                a->series_uid);
    }
    a->fail_when_sealed = true;
    WriteTaskJson(a);
    return;
  }
  Json& t = a->task;
  t["ferry"]["dispatch"]["attempts"] = a->attempt;
  std::string_view stage;
  std::string event;
  // Who the task was for: the notifier and the bookkeeper read these from the journal.
  Json details = TaskAudience(t);
  details["attempt"] = a->attempt;
  // What a processing module asked to be told (result.json's __mercure_notification).
  const Json note = t.value("/ferry/process/notification"_json_pointer, Json());
  if (note.is_object()) {
    details["notification_text"] = note.value("text", std::string());
    details["notification_requested"] = note.value("requested", false);
  }
  if (all_complete) {
    stage = kSuccess;
    event = "task.completed";
    t["ferry"]["stage"] = "success";
    t["ferry"]["dispatch"]["completed_at"] = FormatIso8601(clock_->Now());
    t["dispatch"]["next_retry_at"] = nullptr;
  } else if (permanent || a->attempt >= config_.dispatcher.retry.max_attempts) {
    stage = kError;
    event = "task.failed";
    t["info"]["fail_stage"] = "DISPATCHING";  // mercure's FailStage names
    t["ferry"]["stage"] = "error";
    std::string reasons;
    for (const auto& d : a->dests) {
      if (!d.complete && !d.error.empty()) {
        reasons += (reasons.empty() ? "" : "; ") + d.target + ": " + d.error;
      }
    }
    t["ferry"]["dispatch"]["failure"] =
        permanent ? reasons : fmt::format("gave up after {} attempts; last: {}", a->attempt, reasons);
    details["reason"] = t["ferry"]["dispatch"]["failure"];
    details["permanent"] = permanent;
    log->error("task {} failed and moved to error/: {} (ferry task retry {} sends it again)",
               a->id, t["ferry"]["dispatch"]["failure"].get<std::string>(), a->id);
  } else {
    stage = kOutgoing;
    event = "dispatch.retry_scheduled";
    auto delay = RetryDelay(config_.dispatcher.retry, a->attempt);
    WallTime next = clock_->Now() + delay;
    t["dispatch"]["retries"] = a->attempt;
    t["dispatch"]["next_retry_at"] = EpochSeconds(next);
    t["ferry"]["dispatch"]["next_attempt_at"] = EpochSeconds(next);
    t["ferry"]["dispatch"]["queued_at"] = EpochSeconds(a->created);
    details["next_attempt"] = FormatIso8601(next);
    details["delay_s"] = std::chrono::duration<double>(delay).count();
    log->info("task {}: attempt {} of {} failed; next attempt in {:.1f} s", a->id, a->attempt,
              config_.dispatcher.retry.max_attempts,
              std::chrono::duration<double>(delay).count());
  }
  WriteTaskJson(a);
  Status s = MoveTask(a, stage);
  if (!s.ok()) {
    log->error("task {}: cannot move it to {}/: {}; it stays in {}", a->id, stage, s.ToString(),
               a->dir);
    return;  // stays active; a restart recovers it
  }
  journal_->Append({event, a->series_uid, a->id, details});
  active_.erase(a->id);
}

Status Dispatcher::MoveSeriesIntoTask(const std::string& dir) {
  FileSystem* fs = spool_->fs();
  std::string moved = JoinPath(dir, kSeriesMoveDir);
  if (!fs->IsDirectory(moved)) {
    return Status::Ok();
  }
  auto entries = fs->ListDir(moved);
  if (!entries) {
    return entries.error();
  }
  for (const auto& name : *entries) {
    std::string to = JoinPath(dir, name);
    if (name == kTaskFile || fs->Exists(to)) {
      continue;  // never replace the task's own files
    }
    FERRY_RETURN_IF_ERROR(fs->Rename(JoinPath(moved, name), to));
  }
  FERRY_RETURN_IF_ERROR(fs->RemoveTree(moved));
  return fs->SyncDir(dir);
}

Status Dispatcher::SealStream(Active* a) {
  FileSystem* fs = spool_->fs();
  std::string series = spool_->SeriesPath(a->series_uid);
  auto marker = fs->ReadFile(JoinPath(series, kStreamSealedFile));
  if (!marker || *marker != a->id) {
    return Status::Ok();  // not sealed yet, or sealed for another task
  }
  // One rename takes the whole series; instances the receiver adds later start a new series
  // folder, which the router routes as a follow-up.
  FERRY_RETURN_IF_ERROR(fs->Rename(series, JoinPath(a->dir, kSeriesMoveDir)));
  FERRY_RETURN_IF_ERROR(MoveSeriesIntoTask(a->dir));
  std::lock_guard<std::mutex> lock(a->mu);
  a->sealed = true;
  ++a->changes;
  a->cv.notify_all();
  return Status::Ok();
}

void Dispatcher::UpdateStreams(bool all, const std::set<std::string>& changed) {
  std::vector<Active*> failed;
  for (auto& [id, a] : active_) {
    if (!a->streaming || a->sealed) {
      continue;
    }
    Status s = SealStream(a.get());
    if (!s.ok()) {
      Logger("dispatcher")->error("task {}: cannot take over the complete series {}: {}", id,
                                  a->series_uid, s.ToString());
    }
    if (a->sealed && a->fail_when_sealed &&
        std::all_of(a->dests.begin(), a->dests.end(), [](const Destination& d) {
          return !d.running && (d.complete || d.permanent || d.transient);
        })) {
      failed.push_back(a.get());  // else a destination still sends and finishes the task
      continue;
    }
    if (!all && changed.count(spool_->SeriesPath(a->series_uid)) == 0) {
      continue;  // a parked stream restarts only on news (SealStream counts as news)
    }
    std::lock_guard<std::mutex> lock(a->mu);
    ++a->changes;
    a->cv.notify_all();
  }
  for (Active* a : failed) {
    FinishTask(a);
  }
}

std::vector<std::string> Dispatcher::StreamingFolders() const {
  std::vector<std::string> folders;
  for (const auto& [id, a] : active_) {
    if (a->streaming && !a->sealed) {
      folders.push_back(spool_->SeriesPath(a->series_uid));
    }
  }
  return folders;
}

WallTime Dispatcher::RunOnce(bool streams_changed) { return Pass(streams_changed, {}); }

WallTime Dispatcher::RunOnce(const std::set<std::string>& changed_folders) {
  return Pass(false, changed_folders);
}

WallTime Dispatcher::Pass(bool all, const std::set<std::string>& changed) {
  std::vector<JobDone> done;
  std::vector<std::thread::id> finished;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done.swap(done_);
    finished.swap(finished_threads_);
  }
  for (const auto& tid : finished) {
    auto it = threads_.find(tid);
    if (it != threads_.end()) {
      it->second.join();
      threads_.erase(it);
    }
  }
  for (const auto& d : done) {
    HandleDone(d);
  }
  UpdateStreams(all, changed);
  ScanOutgoing();
  StartJobs();
  WallTime now = clock_->Now();
  WallTime next = now + std::chrono::seconds(30);
  SaveProgress(now, &next);
  std::optional<WallTime> ready;
  queue_.Ready(now, false, &ready);
  if (ready && *ready < next) {
    next = *ready;
  }
  for (const auto& [t, h] : health_) {
    if (h.backoff_until > now && h.backoff_until < next) {
      next = h.backoff_until;  // a group may fail back to this target
    }
  }
  return next;
}

void Dispatcher::SaveProgress(WallTime now, WallTime* next) {
  for (auto& [id, a] : active_) {
    // `running` is this thread's state; only the delivered sets need the jobs' lock.
    if (std::none_of(a->dests.begin(), a->dests.end(),
                     [](const Destination& d) { return d.running; })) {
      continue;
    }
    WallTime due = a->saved_at + kProgressInterval;
    if (now >= due) {
      size_t delivered = 0;
      {
        std::lock_guard<std::mutex> lock(a->mu);
        for (const auto& d : a->dests) {
          delivered += d.delivered.size();
        }
      }
      if (delivered != a->saved_delivered) {
        WriteTaskJson(a.get());
        a->saved_delivered = delivered;
      }
      a->saved_at = now;
      due = now + kProgressInterval;
    }
    *next = std::min(*next, due);
  }
}

void Dispatcher::Shutdown() {
  cancel_ = true;
  for (auto& [id, a] : active_) {
    std::lock_guard<std::mutex> lock(a->mu);
    a->cv.notify_all();
  }
  for (auto& [tid, t] : threads_) {
    t.join();
  }
  threads_.clear();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.clear();
    finished_threads_.clear();
  }
  running_ = 0;
  for (auto& [id, a] : active_) {
    for (auto& d : a->dests) {
      d.running = false;
      if (d.transient && d.error.find("cancel") != std::string::npos) {
        d.transient = false;
      }
    }
    WriteTaskJson(a.get());
    Status s = MoveTask(a.get(), kOutgoing);
    if (!s.ok()) {
      Logger("dispatcher")->error("task {}: cannot put it back into outgoing/: {}; the next "
                                  "start recovers it",
                                  id, s.ToString());
    }
  }
  active_.clear();
}

}  // namespace ferry
