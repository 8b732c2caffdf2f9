#include "router/router.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <random>

#include "core/logging.h"
#include "spool/intake_log.h"
#include "spool/task.h"

namespace ferry {
namespace {

constexpr std::string_view kClaimPrefix = "claim-";
constexpr std::string_view kTaskPrefix = "task-";
constexpr std::string_view kPlanFile = "plan.json";
constexpr std::string_view kStudyClaimPrefix = "studyclaim-";
constexpr std::string_view kNewStudyPrefix = "study-";
constexpr const char* kVersion = "0.1.0";

using Json = nlohmann::json;

std::string TagOr(const rules::TagLookup::Map& tags, const char* key) {
  auto it = tags.find(key);
  return it == tags.end() ? std::string() : it->second;
}

std::string_view PriorityName(Priority p) {
  switch (p) {
    case Priority::kUrgent: return "urgent";
    case Priority::kOffpeak: return "offpeak";
    case Priority::kNormal: return "normal";
  }
  return "normal";
}

std::string_view OutcomeName(rules::Evaluation::Outcome o) {
  switch (o) {
    case rules::Evaluation::Outcome::kTrigger: return "trigger";
    case rules::Evaluation::Outcome::kReject: return "reject";
    case rules::Evaluation::Outcome::kError: return "error";
  }
  return "error";
}

// mercure's .tags form as a map; values that are not strings (hand-edited files) as JSON text.
rules::TagLookup::Map TagsFromJson(const Json& object) {
  rules::TagLookup::Map tags;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) {
      tags[key] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  return tags;
}

// Tags of series.classified events: what the bookkeeper stores and searches for each series.
constexpr const char* kJournalTags[] = {
    "PatientName",     "PatientID",      "PatientBirthDate", "AccessionNumber",
    "StudyInstanceUID", "StudyDescription", "StudyDate",      "SeriesDescription",
    "SeriesDate",      "SeriesNumber",   "Modality",         "SenderAET",
    "SenderAddress",   "ReceiverAET"};

// The task.json fields mercure fills from the tags of the series.
void FillFromTags(const rules::TagLookup::Map& tags, TaskSpec* spec) {
  spec->patient_name = TagOr(tags, "PatientName");
  spec->mrn = TagOr(tags, "PatientID");
  spec->acc = TagOr(tags, "AccessionNumber");
  spec->sender_address = TagOr(tags, "SenderAddress");
  spec->sender_aet = TagOr(tags, "SenderAET");
  spec->receiver_aet = TagOr(tags, "ReceiverAET");
  spec->device_serial_number = TagOr(tags, "DeviceSerialNumber");
}

}  // namespace

std::string NewTaskId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff,
                     hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
}

Router::Router(RouterOptions options, std::shared_ptr<const RuleSet> rules, Spool* spool,
               Journal* journal, Clock* clock)
    : options_(options),
      rules_(std::move(rules)),
      spool_(spool),
      journal_(journal),
      clock_(clock),
      work_dir_(JoinPath(spool->StagePath(kTmp), "router")) {}

std::string Router::RoutedMarkerPath(const std::string& series_uid) const {
  return JoinPath(JoinPath(JoinPath(spool_->root(), "router"), "routed"), series_uid);
}

Result<Router::Pending> Router::Classify(const std::string& series_uid) {
  FileSystem* fs = spool_->fs();
  auto text = fs->ReadFile(JoinPath(spool_->SeriesPath(series_uid), kSeriesTagsFile));
  if (!text) {
    return text.error();
  }
  Pending p;
  auto written = fs->ModificationTime(JoinPath(spool_->SeriesPath(series_uid), kSeriesTagsFile));
  p.first_arrival = written ? *written : clock_->Now();
  Json tags = Json::parse(*text, nullptr, false);
  p.tags = TagsFromJson(tags);
  if (!tags.is_object()) {
    Logger("router")->error("series {}: series.tags is not a JSON object; no rule can match it",
                            series_uid);
  }
  rules::TagLookup lookup(p.tags);
  p.decision = rules_->Classify(lookup);
  std::chrono::milliseconds grace, timeout;
  rules_->CompletionFor(p.decision, options_, &grace, &timeout);
  p.policy = CompletionPolicy{grace, timeout};

  Json outcomes = Json::array();
  for (const auto& o : p.decision.outcomes) {
    outcomes.push_back({{"rule", o.rule}, {"outcome", OutcomeName(o.outcome)},
                        {"reason", o.message}});
    if (o.outcome == rules::Evaluation::Outcome::kError) {
      Logger("router")->warn("rule {} failed on series {}: {}; it does not trigger", o.rule,
                             series_uid, o.message);
      journal_->Append({"rule.error", series_uid, "", {{"rule", o.rule}, {"error", o.message}}});
    }
  }
  // The main tags, for the bookkeeper's series table and searches.
  Json main_tags = Json::object();
  for (const char* key : kJournalTags) {
    std::string value = TagOr(p.tags, key);
    if (!value.empty()) {
      main_tags[key] = value;
    }
  }
  journal_->Append({"series.classified", series_uid, "",
                    {{"triggered", p.decision.triggered},
                     {"discard", p.decision.discard},
                     {"outcomes", outcomes},
                     {"tags", main_tags}}});
  return p;
}

Status Router::PublishTask(const std::string& folder, std::string_view stage,
                           const std::string& id, const Json& task) {
  FileSystem* fs = spool_->fs();
  FERRY_RETURN_IF_ERROR(spool_->WriteFileAtomic(folder, kTaskFile, task.dump(2) + "\n",
                                                Durability::kFsync));
  std::string stage_dir = spool_->StagePath(stage);
  FERRY_RETURN_IF_ERROR(fs->Rename(folder, JoinPath(stage_dir, id)));
  return fs->SyncDir(stage_dir);
}

Priority Router::RoutePriority(const SeriesDecision& d) const {
  for (const auto& name : d.route_rules) {
    const RuleOptions* r = rules_->Find(name);
    if (r != nullptr && r->priority == Priority::kUrgent) {
      return Priority::kUrgent;  // one task for all route rules: the most urgent one counts
    }
  }
  return Priority::kNormal;
}

std::string Router::StreamMarkerPath(const std::string& series_uid) const {
  return JoinPath(JoinPath(JoinPath(spool_->root(), "router"), "streaming"), series_uid);
}

bool Router::Streams(const Pending& p) const {
  const SeriesDecision& d = p.decision;
  if (d.discard || d.route_targets.empty() || !d.processing.empty() || !d.notification.empty() ||
      !d.study.empty() || !p.forced_rule.empty()) {
    return false;
  }
  for (const auto& name : d.route_rules) {
    const RuleOptions* r = rules_->Find(name);
    if (r == nullptr || !r->streaming) {
      return false;
    }
  }
  return true;
}

Status Router::StartStream(const std::string& series_uid, Pending* pending) {
  FileSystem* fs = spool_->fs();
  bool routed = fs->Exists(RoutedMarkerPath(series_uid));
  if (auto existing = fs->ReadFile(StreamMarkerPath(series_uid))) {
    if (!routed) {
      pending->stream_task = *existing;  // started before a restart
      return Status::Ok();
    }
    fs->RemoveFile(StreamMarkerPath(series_uid));  // left by a seal that was interrupted
  }
  if (routed) {
    return Status::Ok();  // a late arrival: routed as a follow-up once complete
  }
  const SeriesDecision& d = pending->decision;
  const auto& tags = pending->tags;
  Priority priority = RoutePriority(d);
  TaskSpec spec;
  spec.id = NewTaskId();
  spec.action = "route";
  spec.uid = series_uid;
  spec.uid_type = "series";
  spec.triggered_rules = d.triggered;
  spec.applied_rule = d.route_rules.front();
  FillFromTags(tags, &spec);
  spec.targets = d.route_targets;
  spec.ferry = {{"priority", PriorityName(priority)},
                {"series_uid", series_uid},
                {"study_uid", TagOr(tags, "StudyInstanceUID")},
                {"streaming", true},
                {"rules", d.route_rules},
                {"stage", "outgoing"},
                {"created", FormatIso8601(clock_->Now())},
                {"received_at", EpochSeconds(pending->first_arrival)}};
  // The marker first: a restart then finds the task instead of starting a second stream.
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(JoinPath(JoinPath(spool_->root(), "router"), "streaming")));
  FERRY_RETURN_IF_ERROR(spool_->WriteFileAtomic(
      JoinPath(JoinPath(spool_->root(), "router"), "streaming"), series_uid, spec.id,
      Durability::kFsync));
  std::string dir = JoinPath(work_dir_, std::string(kTaskPrefix) + spec.id);
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(dir));
  FERRY_RETURN_IF_ERROR(PublishTask(dir, kOutgoing, spec.id, BuildTaskJson(spec, kVersion)));
  pending->stream_task = spec.id;
  journal_->Append({"task.created", series_uid, spec.id,
                    {{"stage", "outgoing"},
                     {"action", "route"},
                     {"targets", spec.targets},
                     {"rule", spec.applied_rule},
                     {"priority", PriorityName(priority)},
                     {"streaming", true},
                     {"patient_name", spec.patient_name},
                     {"mrn", spec.mrn},
                     {"acc", spec.acc}}});
  Logger("router")->info("series {}: streaming to {} as task {} while it arrives", series_uid,
                         fmt::join(spec.targets, ", "), spec.id);
  return Status::Ok();
}

Status Router::SealStream(const std::string& series_uid, const Pending& pending,
                          CompletionReason reason, int instances) {
  FileSystem* fs = spool_->fs();
  std::string folder = spool_->SeriesPath(series_uid);
  // The folder's modification time is the last arrival (as in ReadSeriesState), read before
  // the seal changes it.
  auto last_arrival = fs->ModificationTime(folder);
  fs->RemoveFile(JoinPath(folder, kForceCompleteFile));
  Status sealed = spool_->WriteFileAtomic(folder, kStreamSealedFile, pending.stream_task,
                                          Durability::kFsync);
  // The dispatcher takes the folder over as soon as it reads the seal, possibly before the
  // folder's fsync here: the folder being gone means the seal was read, so it is done.
  if (!sealed.ok() && !fs->IsDirectory(folder)) {
    sealed = Status::Ok();
  }
  FERRY_RETURN_IF_ERROR(sealed);
  Status marked = spool_->WriteFileAtomic(JoinPath(JoinPath(spool_->root(), "router"), "routed"),
                                          series_uid, pending.stream_task, Durability::kOs);
  if (!marked.ok()) {
    Logger("router")->warn("cannot record that series {} was routed: {}", series_uid,
                           marked.ToString());
  }
  fs->RemoveFile(StreamMarkerPath(series_uid));
  Json complete = {{"reason", CompletionReasonName(reason)},
                   {"instances", instances},
                   {"triggered", pending.decision.triggered},
                   {"streaming", true}};
  if (last_arrival) {
    complete["last_arrival"] = FormatIso8601(*last_arrival);
  }
  journal_->Append({"series.complete", series_uid, pending.stream_task, complete});
  Logger("router")->info("series {} complete ({} instances, {}); task {} finishes sending it",
                         series_uid, instances, CompletionReasonName(reason), pending.stream_task);
  return Status::Ok();
}

Result<int> Router::Route(const std::string& series_uid, const Pending& pending,
                          CompletionReason reason, int instances) {
  FileSystem* fs = spool_->fs();
  auto log = Logger("router");
  std::string claim = JoinPath(work_dir_, std::string(kClaimPrefix) + series_uid);
  // The folder's modification time is the last arrival (as in ReadSeriesState).
  auto last_arrival = fs->ModificationTime(spool_->SeriesPath(series_uid));
  FERRY_RETURN_IF_ERROR(fs->Rename(spool_->SeriesPath(series_uid), claim));
  fs->RemoveTree(JoinPath(claim, kAssociationsDir));
  fs->RemoveFile(JoinPath(claim, kForceCompleteFile));
  fs->RemoveFile(JoinPath(claim, kForceRuleFile));
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(claim));
  std::vector<std::string> files;
  for (const auto& e : entries) {
    if (IsInstanceFileName(e) || e == kSeriesTagsFile) {
      files.push_back(e);
    }
  }
  std::string parent;
  if (auto marker = fs->ReadFile(RoutedMarkerPath(series_uid))) {
    parent = *marker;
  }

  const SeriesDecision& d = pending.decision;
  const auto& tags = pending.tags;
  auto base_spec = [&](std::string action, std::string applied_rule, Priority priority) {
    TaskSpec spec;
    spec.id = NewTaskId();
    spec.action = std::move(action);
    spec.uid = series_uid;
    spec.uid_type = "series";
    spec.triggered_rules = d.triggered;
    spec.applied_rule = std::move(applied_rule);
    FillFromTags(tags, &spec);
    spec.ferry = {{"priority", PriorityName(priority)},
                  {"series_uid", series_uid},
                  {"study_uid", TagOr(tags, "StudyInstanceUID")},
                  {"complete_reason", CompletionReasonName(reason)},
                  {"instances", instances},
                  {"created", FormatIso8601(clock_->Now())},
                  {"received_at", EpochSeconds(pending.first_arrival)}};
    if (!parent.empty()) {
      spec.ferry["parent_task"] = parent;
    }
    return spec;
  };

  struct Planned {
    std::string stage;
    TaskSpec spec;
  };
  std::vector<Planned> tasks;
  if (d.discard) {
    tasks.push_back({std::string(kDiscard), base_spec("discard", d.discard_rule, Priority::kNormal)});
  } else {
    if (!d.route_targets.empty()) {
      TaskSpec spec = base_spec("route", d.route_rules.front(), RoutePriority(d));
      spec.targets = d.route_targets;
      spec.ferry["rules"] = d.route_rules;
      tasks.push_back({std::string(kOutgoing), std::move(spec)});
    }
    for (const RuleOptions* r : d.processing) {
      TaskSpec spec = base_spec(r->action == RuleAction::kBoth ? "both" : "process", r->name,
                                r->priority);
      spec.modules = r->processing_modules;
      spec.module_settings = Json::parse(r->processing_settings_json, nullptr, false);
      spec.retain_input_images = r->processing_retain_images;
      if (r->action == RuleAction::kBoth) {
        spec.targets = r->targets;
      }
      tasks.push_back({std::string(kProcessing), std::move(spec)});
    }
    for (const RuleOptions* r : d.notification) {
      tasks.push_back({std::string(kSuccess), base_spec("notification", r->name, r->priority)});
    }
  }

  std::vector<const RuleOptions*> studies = d.discard ? std::vector<const RuleOptions*>{} : d.study;
  std::vector<Json> bodies;
  for (auto& t : tasks) {
    t.spec.ferry["stage"] = t.stage;
    bodies.push_back(BuildTaskJson(t.spec, kVersion));
  }
  if (tasks.size() == 1 && studies.empty()) {
    // The claimed folder itself becomes the task: instances are handed over by rename.
    FERRY_RETURN_IF_ERROR(PublishTask(claim, tasks[0].stage, tasks[0].spec.id, bodies[0]));
  } else {
    Json plan = Json::array();
    for (size_t i = 0; i < tasks.size(); ++i) {
      plan.push_back({{"id", tasks[i].spec.id}, {"stage", tasks[i].stage}, {"task", bodies[i]}});
    }
    for (const RuleOptions* r : studies) {
      plan.push_back({{"study_rule", r->name}, {"series_uid", series_uid}});
    }
    FERRY_RETURN_IF_ERROR(
        spool_->WriteFileAtomic(claim, kPlanFile, plan.dump() + "\n", Durability::kFsync));
    for (size_t i = 0; i < tasks.size(); ++i) {
      std::string dir = JoinPath(work_dir_, std::string(kTaskPrefix) + tasks[i].spec.id);
      FERRY_RETURN_IF_ERROR(fs->CreateDir(dir));
      for (const auto& f : files) {
        FERRY_RETURN_IF_ERROR(fs->Link(JoinPath(claim, f), JoinPath(dir, f)));
      }
      FERRY_RETURN_IF_ERROR(PublishTask(dir, tasks[i].stage, tasks[i].spec.id, bodies[i]));
    }
    for (const RuleOptions* r : studies) {
      FERRY_RETURN_IF_ERROR(AddToStudy(claim, *r, series_uid, pending.tags));
    }
    FERRY_RETURN_IF_ERROR(fs->RemoveTree(claim));
  }
  Status marked = tasks.empty()
                      ? Status::Ok()
                      : spool_->WriteFileAtomic(
                            JoinPath(JoinPath(spool_->root(), "router"), "routed"), series_uid,
                            tasks.front().spec.id, Durability::kOs);
  if (!marked.ok()) {
    log->warn("cannot record that series {} was routed: {}; a late arrival would not be linked "
              "to task {}",
              series_uid, marked.ToString(), tasks.front().spec.id);
  }

  Json complete = {{"reason", CompletionReasonName(reason)},
                   {"instances", instances},
                   {"triggered", d.triggered}};
  if (last_arrival) {
    complete["last_arrival"] = FormatIso8601(*last_arrival);
  }
  journal_->Append({"series.complete", series_uid, "", complete});
  for (const RuleOptions* r : studies) {
    journal_->Append({"study.series_added", series_uid, "",
                      {{"study_uid", TagOr(tags, "StudyInstanceUID")},
                       {"rule", r->name},
                       {"instances", instances}}});
    log->info("series {} ({} instances) added to study {} for study-level rule {}", series_uid,
              instances, TagOr(tags, "StudyInstanceUID"), r->name);
  }
  for (const auto& t : tasks) {
    Json details = {{"stage", t.stage},
                    {"action", t.spec.action},
                    {"targets", t.spec.targets},
                    {"modules", t.spec.modules},
                    {"rule", t.spec.applied_rule},
                    {"priority", t.spec.ferry["priority"]},
                    {"instances", instances},
                    {"patient_name", t.spec.patient_name},
                    {"mrn", t.spec.mrn},
                    {"acc", t.spec.acc}};
    if (!parent.empty()) {
      details["parent_task"] = parent;
    }
    journal_->Append({t.spec.action == "discard" ? "series.discarded" : "task.created",
                      series_uid, t.spec.id, details});
    if (!parent.empty()) {
      journal_->Append({"task.follow_up", series_uid, t.spec.id, {{"parent_task", parent}}});
    }
    if (t.spec.action == "discard") {
      log->info("series {} ({} instances, {}) discarded: {}; kept in discard/{}", series_uid,
                instances, CompletionReasonName(reason),
                d.discard_rule.empty() ? "no rule triggered" : "rule " + d.discard_rule,
                t.spec.id);
    } else {
      log->info("series {} ({} instances, {}) -> {}/{} task={} action={}{}{}", series_uid,
                instances, CompletionReasonName(reason), t.stage, t.spec.id, t.spec.id,
                t.spec.action, t.spec.targets.empty() ? "" : " targets=" +
                                                                 fmt::format("{}", fmt::join(t.spec.targets, ",")),
                parent.empty() ? "" : " follow-up of task=" + parent);
    }
  }
  return static_cast<int>(tasks.size() + studies.size());
}

std::vector<std::string> Router::PendingSeries() const {
  std::vector<std::string> uids;
  uids.reserve(pending_.size());
  for (const auto& [uid, pending] : pending_) {
    uids.push_back(uid);
  }
  return uids;
}

bool Router::IntakeDurable(WallTime last_arrival,
                           std::optional<std::optional<IntakeCheckpoint>>* gate) {
  if (!gate->has_value()) {
    auto checkpoint = ReadIntakeCheckpoint(spool_->fs(), spool_->root());
    if (!checkpoint) {
      Logger("router")->error("cannot read the receiver's intake checkpoint: {}; routing "
                              "without waiting for it",
                              checkpoint.error().ToString());
      *gate = std::optional<IntakeCheckpoint>();
    } else {
      *gate = *checkpoint;
    }
  }
  const std::optional<IntakeCheckpoint>& cp = **gate;
  return !cp || cp->idle || last_arrival < cp->durable_until;
}

Result<Router::PassResult> Router::RunOnce() {
  PassResult result;
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> series, spool_->ListIncomingSeries());
  // In the order the series started arriving (readdir order is arbitrary): series classified in
  // one pass get their tasks in that order, as ordered targets expect.
  std::vector<std::pair<WallTime, std::string>> by_arrival;
  for (auto& uid : series) {
    auto known = pending_.find(uid);
    auto written =
        known != pending_.end()
            ? Result<WallTime>(known->second.first_arrival)
            : spool_->fs()->ModificationTime(JoinPath(spool_->SeriesPath(uid), kSeriesTagsFile));
    by_arrival.emplace_back(written ? *written : WallTime::max(), std::move(uid));
  }
  std::stable_sort(by_arrival.begin(), by_arrival.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  series.clear();
  for (auto& [t, uid] : by_arrival) {
    series.push_back(std::move(uid));
  }
  WallTime now = clock_->Now();
  std::optional<std::optional<IntakeCheckpoint>> intake_gate;  // read when first needed
  // Forget decisions about series that left incoming/ some other way.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (std::find(series.begin(), series.end(), it->first) == series.end()) {
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& uid : series) {
    auto it = pending_.find(uid);
    if (it == pending_.end()) {
      if (spool_->fs()->Exists(JoinPath(spool_->SeriesPath(uid), kStreamSealedFile))) {
        continue;  // complete and streamed: the dispatcher takes the folder over
      }
      auto p = Classify(uid);
      if (!p) {
        if (p.error().code() != Status::Code::kNotFound) {
          Logger("router")->error("cannot classify series {}: {}", uid, p.error().ToString());
        }
        continue;
      }
      it = pending_.emplace(uid, std::move(p).value()).first;
      if (Streams(it->second)) {
        Status started = StartStream(uid, &it->second);
        if (!started.ok()) {
          Logger("router")->error("series {}: cannot start streaming it ({}); it is sent when "
                                  "complete instead",
                                  uid, started.ToString());
        }
      }
    }
    auto state = spool_->ReadSeriesState(uid);
    if (!state) {
      continue;
    }
    if (!state->forced_rule.empty() && it->second.forced_rule != state->forced_rule) {
      auto forced = rules_->Force(state->forced_rule);
      if (!forced) {
        Logger("router")->error("series {}: cannot route with rule \"{}\": {}", uid,
                                state->forced_rule, forced.error().message());
        journal_->Append({"router.error", uid, "",
                          {{"error", forced.error().message()}, {"rule", state->forced_rule}}});
        spool_->fs()->RemoveFile(JoinPath(spool_->SeriesPath(uid), kForceRuleFile));
        continue;
      }
      it->second.decision = std::move(forced).value();
      it->second.forced_rule = state->forced_rule;
      journal_->Append({"series.rule_forced", uid, "", {{"rule", state->forced_rule}}});
    }
    SeriesSnapshot snap;
    snap.last_arrival = state->last_arrival;
    snap.forced = state->forced;
    for (const auto& a : state->associations) {
      snap.associations.push_back({a.id, a.ended});
    }
    CompletionDecision d = DecideSeriesCompletion(snap, it->second.policy, now);
    if (d.complete() && !IntakeDurable(state->last_arrival, &intake_gate)) {
      // The receiver's intake log vouches for the last instances, the spool copy is not
      // flushed yet: it will be within one checkpoint (spool/intake_log.h).
      d.recheck_at = now + kIntakeRecheck;
      d.reason = CompletionReason::kNotYet;
    }
    if (!d.complete()) {
      ++result.series_pending;
      if (!result.next_check || d.recheck_at < *result.next_check) {
        result.next_check = d.recheck_at;
      }
      continue;
    }
    if (!it->second.stream_task.empty()) {
      Status sealed = SealStream(uid, it->second, d.reason, state->instances);
      if (!sealed.ok()) {
        Logger("router")->error("cannot seal streamed series {}: {}; will retry", uid,
                                sealed.ToString());
        ++result.series_pending;
        continue;
      }
      pending_.erase(uid);
      continue;
    }
    auto created = Route(uid, it->second, d.reason, state->instances);
    if (!created) {
      Logger("router")->error("cannot route series {}: {}; will retry", uid,
                              created.error().ToString());
      journal_->Append({"router.error", uid, "", {{"error", created.error().ToString()}}});
      ++result.series_pending;
      continue;
    }
    result.tasks_created += *created;
    pending_.erase(uid);
  }
  Status studies = RunStudies(clock_->Now(), &result);
  if (!studies.ok()) {
    Logger("router")->error("cannot check the studies in {}: {}", spool_->StagePath(kStudies),
                            studies.ToString());
  }
  return result;
}

std::string Router::StudyKey(const std::string& study_uid, const std::string& rule) {
  std::string key = (study_uid.empty() ? std::string("unknown") : study_uid) + "-" + rule;
  for (char& c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      c = '_';
    }
  }
  return key.substr(0, 128);
}

Status Router::AddToStudy(const std::string& claim, const RuleOptions& rule,
                          const std::string& series_uid, const rules::TagLookup::Map& tags) {
  FileSystem* fs = spool_->fs();
  std::string study_uid = TagOr(tags, "StudyInstanceUID");
  std::string dir = JoinPath(spool_->StagePath(kStudies), StudyKey(study_uid, rule.name));
  auto now = clock_->Now();
  int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (!fs->IsDirectory(dir)) {
    std::string fresh = JoinPath(work_dir_, std::string(kNewStudyPrefix) + NewTaskId());
    FERRY_RETURN_IF_ERROR(fs->CreateDir(fresh));
    Json tag_object = Json::object();
    for (const auto& [k, v] : tags) {
      tag_object[k] = v;
    }
    Json state = {{"study_uid", study_uid},      {"rule", rule.name},
                  {"created_ms", now_ms},        {"creation_time", FormatIso8601(now)},
                  {"last_receive_ms", now_ms},   {"last_receive_time", FormatIso8601(now)},
                  {"received_series", Json::array()}, {"received_series_uid", Json::array()},
                  {"tags", tag_object}};
    FERRY_RETURN_IF_ERROR(
        spool_->WriteFileAtomic(fresh, kStudyFile, state.dump() + "\n", Durability::kFsync));
    Status renamed = fs->Rename(fresh, dir);
    if (!renamed.ok()) {
      fs->RemoveTree(fresh);
      if (!fs->IsDirectory(dir)) {
        return renamed;
      }
    }
    FERRY_RETURN_IF_ERROR(fs->SyncDir(spool_->StagePath(kStudies)));
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(claim));
  for (const auto& f : entries) {
    std::string target;
    if (IsInstanceFileName(f)) {
      target = f;
    } else if (f == kSeriesTagsFile) {
      target = series_uid + ".tags";
    } else {
      continue;
    }
    Status linked = fs->Link(JoinPath(claim, f), JoinPath(dir, target));
    if (!linked.ok() && linked.code() != Status::Code::kAlreadyExists) {
      return linked;
    }
  }
  FERRY_RETURN_IF_ERROR(fs->SyncDir(dir));
  FERRY_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(JoinPath(dir, kStudyFile)));
  Json state = Json::parse(text, nullptr, false);
  if (!state.is_object()) {
    return Status::Corruption("cannot parse " + JoinPath(dir, kStudyFile));
  }
  auto& uids = state["received_series_uid"];
  if (std::find(uids.begin(), uids.end(), series_uid) == uids.end()) {
    uids.push_back(series_uid);
    state["received_series"].push_back(TagOr(tags, "SeriesDescription"));
  }
  state["last_receive_ms"] = now_ms;
  state["last_receive_time"] = FormatIso8601(now);
  return spool_->WriteFileAtomic(dir, kStudyFile, state.dump() + "\n", Durability::kFsync);
}

Status Router::FinishStudy(const std::string& key, const Json& state, const RuleOptions* rule,
                           const std::string& reason, bool discard) {
  FileSystem* fs = spool_->fs();
  std::string claim = JoinPath(work_dir_, std::string(kStudyClaimPrefix) + key);
  FERRY_RETURN_IF_ERROR(fs->Rename(JoinPath(spool_->StagePath(kStudies), key), claim));
  fs->RemoveFile(JoinPath(claim, kForceCompleteFile));  // an operator's marker, if any
  rules::TagLookup::Map tags = TagsFromJson(state.value("tags", Json::object()));
  int instances = 0;
  if (auto entries = fs->ListDir(claim)) {
    for (const auto& e : *entries) {
      instances += IsInstanceFileName(e) ? 1 : 0;
    }
  }
  std::string rule_name = state.value("rule", std::string());
  TaskSpec spec;
  spec.id = NewTaskId();
  spec.uid = state.value("study_uid", std::string());
  spec.uid_type = "study";
  spec.triggered_rules = {rule_name};
  spec.applied_rule = rule_name;
  FillFromTags(tags, &spec);
  std::string stage(kDiscard);
  spec.action = "discard";
  if (!discard && rule != nullptr) {
    switch (rule->action) {
      case RuleAction::kRoute:
        spec.action = "route";
        spec.targets = rule->targets;
        stage = kOutgoing;
        break;
      case RuleAction::kBoth:
      case RuleAction::kProcess:
        spec.action = rule->action == RuleAction::kBoth ? "both" : "process";
        spec.modules = rule->processing_modules;
        spec.module_settings = Json::parse(rule->processing_settings_json, nullptr, false);
        spec.retain_input_images = rule->processing_retain_images;
        if (rule->action == RuleAction::kBoth) {
          spec.targets = rule->targets;
        }
        stage = kProcessing;
        break;
      case RuleAction::kNotification:
        spec.action = "notification";
        stage = kSuccess;
        break;
      case RuleAction::kDiscard:
        break;
    }
  }
  spec.ferry = {{"stage", stage},
                {"priority", PriorityName(rule != nullptr ? rule->priority : Priority::kNormal)},
                {"study_uid", spec.uid},
                {"complete_reason", reason},
                {"instances", instances},
                {"created", FormatIso8601(clock_->Now())}};
  Json task = BuildTaskJson(spec, kVersion);
  task["study"] = {
      {"study_uid", spec.uid},
      {"complete_trigger", rule != nullptr && rule->study_trigger_condition ==
                                                  StudyTriggerCondition::kReceivedSeries
                               ? "received_series"
                               : "timeout"},
      {"complete_required_series", rule != nullptr ? rule->study_trigger_series : ""},
      {"creation_time", state.value("creation_time", std::string())},
      {"last_receive_time", state.value("last_receive_time", std::string())},
      {"received_series", state.value("received_series", Json::array())},
      {"received_series_uid", state.value("received_series_uid", Json::array())},
      {"complete_force", reason == "force timeout"},
      {"complete_force_action",
       rule == nullptr ? "discard"
       : rule->study_force_completion_action == StudyForceAction::kProceed ? "proceed"
       : rule->study_force_completion_action == StudyForceAction::kIgnore  ? "ignore"
                                                                           : "discard"}};
  FERRY_RETURN_IF_ERROR(PublishTask(claim, stage, spec.id, task));
  journal_->Append({discard ? "study.discarded" : "study.complete", "", spec.id,
                    {{"study_uid", spec.uid},
                     {"rule", rule_name},
                     {"reason", reason},
                     {"series", task["study"]["received_series_uid"]},
                     {"instances", instances},
                     {"stage", stage}}});
  Logger("router")->info("study {} ({} series, {} instances, {}) for rule {} -> {}/{} task={}",
                         spec.uid, task["study"]["received_series_uid"].size(), instances, reason,
                         rule_name, stage, spec.id, spec.id);
  return Status::Ok();
}

Status Router::RunStudies(WallTime now, PassResult* result) {
  FileSystem* fs = spool_->fs();
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> keys, fs->ListDir(spool_->StagePath(kStudies)));
  int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  for (const auto& key : keys) {
    auto text = fs->ReadFile(JoinPath(JoinPath(spool_->StagePath(kStudies), key), kStudyFile));
    if (!text) {
      continue;
    }
    Json state = Json::parse(*text, nullptr, false);
    if (!state.is_object()) {
      continue;
    }
    std::string rule_name = state.value("rule", std::string());
    const RuleOptions* rule = rules_->Find(rule_name);
    int64_t created = state.value("created_ms", int64_t{0});
    int64_t last = state.value("last_receive_ms", int64_t{0});
    int64_t study_timeout = int64_t{options_.study_complete_timeout_s} * 1000;
    int64_t force_timeout = int64_t{options_.study_force_complete_timeout_s} * 1000;
    std::string reason;
    bool discard = false;
    bool forced = fs->Exists(
        JoinPath(JoinPath(spool_->StagePath(kStudies), key), kForceCompleteFile));
    if (rule == nullptr) {
      reason = "rule " + rule_name + " is no longer configured";
      discard = true;
    } else if (forced) {
      reason = "forced by operator";  // ferry web: POST /api/v1/studies/{uid}/complete
    } else if (rule->study_trigger_condition == StudyTriggerCondition::kReceivedSeries) {
      const StudyTrigger* trigger = rules_->TriggerFor(rule_name);
      std::vector<std::string> descriptions;
      for (const auto& d : state.value("received_series", Json::array())) {
        descriptions.push_back(d.is_string() ? d.get<std::string>() : "");
      }
      if (trigger != nullptr && trigger->Satisfied(descriptions)) {
        reason = "required series received";
      }
    } else if (now_ms - last >= study_timeout) {
      reason = "study timeout";
    }
    if (reason.empty() && rule != nullptr && now_ms - created >= force_timeout) {
      switch (rule->study_force_completion_action) {
        case StudyForceAction::kProceed:
          reason = "force timeout";
          break;
        case StudyForceAction::kDiscard:
          reason = "force timeout";
          discard = true;
          break;
        case StudyForceAction::kIgnore:
          break;
      }
    }
    if (reason.empty()) {
      int64_t next = created + force_timeout;
      if (rule != nullptr && rule->study_trigger_condition == StudyTriggerCondition::kTimeout) {
        next = std::min(next, last + study_timeout);
      }
      WallTime at{std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(next))};
      if (rule != nullptr && rule->study_force_completion_action == StudyForceAction::kIgnore &&
          next == created + force_timeout) {
        continue;  // waits for its series; nothing is due
      }
      if (!result->next_check || at < *result->next_check) {
        result->next_check = at;
      }
      continue;
    }
    Status s = FinishStudy(key, state, rule, reason, discard);
    if (!s.ok()) {
      Logger("router")->error("cannot finish study {}: {}; will retry", key, s.ToString());
      journal_->Append({"router.error", "", "", {{"study", key}, {"error", s.ToString()}}});
      continue;
    }
    ++result->tasks_created;
  }
  return Status::Ok();
}

Status Router::Restore(const std::string& claim_dir) {
  FileSystem* fs = spool_->fs();
  std::string uid = claim_dir.substr(claim_dir.rfind('/') + 1 + kClaimPrefix.size());
  std::string tags = "{}";
  if (auto t = fs->ReadFile(JoinPath(claim_dir, kSeriesTagsFile))) {
    tags = *t;
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(claim_dir));
  int restored = 0;
  for (const auto& e : entries) {
    if (!IsInstanceFileName(e)) {
      continue;
    }
    auto added = spool_->AddInstance(uid, e.substr(0, e.size() - 4), JoinPath(claim_dir, e), tags,
                                     Durability::kFsync);
    if (!added) {
      return added.error();
    }
    ++restored;
  }
  Logger("router")->warn("series {}: {} instances claimed by a router that was killed were put "
                         "back into incoming/",
                         uid, restored);
  return fs->RemoveTree(claim_dir);
}

Status Router::Recover() {
  FileSystem* fs = spool_->fs();
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(work_dir_));
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(JoinPath(JoinPath(spool_->root(), "router"), "routed")));
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs->ListDir(work_dir_));
  auto log = Logger("router");
  // Task folders first: a finished one is published, a partial one only holds links.
  for (const auto& name : entries) {
    std::string path = JoinPath(work_dir_, name);
    if (!name.starts_with(kTaskPrefix)) {
      continue;
    }
    auto text = fs->ReadFile(JoinPath(path, kTaskFile));
    Json task = text ? Json::parse(*text, nullptr, false) : Json();
    if (task.is_object() && task.contains("ferry") && task["ferry"].contains("stage")) {
      std::string id = task.value("id", name.substr(kTaskPrefix.size()));
      FERRY_RETURN_IF_ERROR(fs->Rename(path, JoinPath(spool_->StagePath(task["ferry"]["stage"].get<std::string>()), id)));
      log->info("published task {} left unpublished by a killed router", id);
    } else {
      FERRY_RETURN_IF_ERROR(fs->RemoveTree(path));
    }
  }
  for (const auto& name : entries) {
    std::string path = JoinPath(work_dir_, name);
    if (name.starts_with(kTaskPrefix)) {
      continue;
    }
    if (name.starts_with(kStudyClaimPrefix)) {
      // A study being finished: publish it if its task.json is written, else put it back.
      auto text = fs->ReadFile(JoinPath(path, kTaskFile));
      Json task = text ? Json::parse(*text, nullptr, false) : Json();
      if (task.is_object() && task.contains("ferry")) {
        FERRY_RETURN_IF_ERROR(PublishTask(path, task["ferry"]["stage"].get<std::string>(),
                                          task["id"].get<std::string>(), task));
      } else {
        FERRY_RETURN_IF_ERROR(fs->Rename(
            path, JoinPath(spool_->StagePath(kStudies), name.substr(kStudyClaimPrefix.size()))));
      }
      continue;
    }
    if (!name.starts_with(kClaimPrefix)) {
      fs->RemoveTree(path);  // a temporary file of WriteFileAtomic, or an unpublished new study
      continue;
    }
    if (auto text = fs->ReadFile(JoinPath(path, kTaskFile))) {
      Json task = Json::parse(*text, nullptr, false);
      if (task.is_object() && task.contains("ferry")) {
        FERRY_RETURN_IF_ERROR(PublishTask(path, task["ferry"]["stage"].get<std::string>(),
                                          task["id"].get<std::string>(), task));
        continue;
      }
    }
    if (auto text = fs->ReadFile(JoinPath(path, kPlanFile))) {
      Json plan = Json::parse(*text, nullptr, false);
      FERRY_ASSIGN_OR_RETURN(std::vector<std::string> files, fs->ListDir(path));
      for (const auto& step : plan) {
        if (step.contains("study_rule")) {
          const RuleOptions* r = rules_->Find(step["study_rule"].get<std::string>());
          std::string uid = step.value("series_uid", std::string());
          rules::TagLookup::Map tags;
          if (auto t = fs->ReadFile(JoinPath(path, kSeriesTagsFile))) {
            tags = TagsFromJson(Json::parse(*t, nullptr, false));
          }
          if (r != nullptr) {
            FERRY_RETURN_IF_ERROR(AddToStudy(path, *r, uid, tags));
          }
          continue;
        }
        std::string id = step["id"];
        std::string stage = step["stage"];
        if (fs->Exists(JoinPath(spool_->StagePath(stage), id))) {
          continue;
        }
        std::string dir = JoinPath(work_dir_, std::string(kTaskPrefix) + id);
        FERRY_RETURN_IF_ERROR(fs->CreateDirs(dir));
        for (const auto& f : files) {
          if (IsInstanceFileName(f) || f == kSeriesTagsFile) {
            Status s = fs->Link(JoinPath(path, f), JoinPath(dir, f));
            if (!s.ok() && s.code() != Status::Code::kAlreadyExists) {
              return s;
            }
          }
        }
        FERRY_RETURN_IF_ERROR(PublishTask(dir, stage, id, step["task"]));
        log->info("finished task {} planned by a killed router", id);
      }
      FERRY_RETURN_IF_ERROR(fs->RemoveTree(path));
      continue;
    }
    FERRY_RETURN_IF_ERROR(Restore(path));
  }
  return Status::Ok();
}

}  // namespace ferry
