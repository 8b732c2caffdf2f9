#include "notify/notifier.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <tuple>
#include <vector>

#include "core/logging.h"
#include "core/scoped_fd.h"
#include "spool/schedule.h"

namespace ferry::notify {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kOffsetsFile = "offsets.json";
// On the first start, events older than this are history, not news.
constexpr auto kFirstStartHistory = std::chrono::minutes(10);
constexpr size_t kChunkBytes = 4 << 20;  // journal bytes read per file and step
constexpr size_t kPassBytes = 16 << 20;  // journal bytes read per pass, over all files
constexpr auto kIdleWait = std::chrono::seconds(5);

// Up to `max` bytes of `path` from `offset` (fewer at the end of the file).
Result<std::string> ReadRange(const std::string& path, uint64_t offset, size_t max) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Status::FromErrno(errno, "open " + path);
  }
  std::string data(max, '\0');
  size_t got = 0;
  while (got < max) {
    ssize_t n = pread(fd.get(), data.data() + got, max - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Status::FromErrno(errno, "read " + path);
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

WallTime FromEpochSeconds(double s) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(s)));
}

}  // namespace

Notifier::Notifier(const Config& config, Spool* spool, Journal* journal, Clock* clock,
                   Deliverer* deliverer)
    : config_(config),
      spool_(spool),
      journal_(journal),
      clock_(clock),
      deliverer_(deliverer),
      dir_(JoinPath(spool->root(), "notify")),
      pending_dir_(JoinPath(dir_, "pending")),
      failed_dir_(JoinPath(dir_, "failed")),
      sent_dir_(JoinPath(dir_, "sent")),
      journal_dir_(spool->StagePath(kJournal)),
      own_prefix_("notifier-") {}

Status Notifier::Init() {
  FileSystem* fs = spool_->fs();
  for (const auto& d : {pending_dir_, failed_dir_, sent_dir_, journal_dir_}) {
    Status s = fs->CreateDirs(d);
    if (!s.ok()) {
      return s.WithContext("cannot create the notifier's folder " + d +
                           " (ferry needs write access to the data folder)");
    }
  }
  // The folders must survive a power cut with what is later published in them.
  for (const auto& d : {spool_->root(), dir_}) {
    Status s = fs->SyncDir(d);
    if (!s.ok()) {
      return s.WithContext("cannot make the notifier's folders durable");
    }
  }
  // Temporary files of a notifier that died while writing: never published.
  std::string tmp = JoinPath(spool_->StagePath(kTmp), "notifier");
  if (auto leftovers = fs->ListDir(tmp)) {
    for (const auto& name : *leftovers) {
      fs->RemoveFile(JoinPath(tmp, name));
    }
  }

  std::string offsets_path = JoinPath(dir_, kOffsetsFile);
  if (!fs->Exists(offsets_path)) {
    // First start (or ferry upgraded to a version with a notifier): the journals may hold
    // months of history that nobody wants announced now. Only recent events notify.
    history_cutoff_ = clock_->Now() - kFirstStartHistory;
    Logger("notify")->info("first start (no {}): journal events older than {} min are not "
                           "notified",
                           offsets_path,
                           std::chrono::duration_cast<std::chrono::minutes>(kFirstStartHistory)
                               .count());
  }
  if (fs->Exists(offsets_path)) {
    FERRY_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(offsets_path));
    Json j = Json::parse(text, nullptr, false);
    if (!j.is_object()) {
      return Status::Corruption(offsets_path +
                                " is not a JSON object; delete it to read every journal again "
                                "(notifications already sent are then sent again)");
    }
    for (const auto& [file, offset] : j.items()) {
      if (offset.is_number_unsigned()) {
        offsets_[file] = offset.get<uint64_t>();
      }
    }
    saved_offsets_ = offsets_;
  }

  LoadPendingFolder();
  if (auto names = fs->ListDir(sent_dir_)) {
    for (const auto& name : *names) {
      auto text = fs->ReadFile(JoinPath(sent_dir_, name));
      Json j = text ? Json::parse(*text, nullptr, false) : Json();
      auto n = NotificationFromJson(j);
      if (n) {
        sent_[n->id] = {n->journal_file, n->journal_offset};
      }
    }
  }

  // A webhook payload that cannot become JSON would fail at every event: say so now.
  for (const auto& rule : config_.rules) {
    if (rule.notification_webhook.empty() || rule.notification_payload.empty()) {
      continue;
    }
    std::vector<std::string> unknown;
    Json sample = {{"task_id", "sample"}, {"details", {{"rule", rule.name}}}};
    std::string body = RenderWebhookBody(
        rule, TemplateValues(sample, rule.name, Event::kReceived, Channel::kWebhook, false),
        &unknown);
    if (!Json::accept(body)) {
      Logger("notify")->error(
          "rule {}: notification_payload does not give valid JSON (\"{}\"); write the members "
          "of a JSON object without the braces, e.g. \"text\": \"{{{{ rule }}}}: {{{{ event "
          "}}}}\"; its webhook notifications will fail",
          rule.name, body);
    }
    for (const auto& name : unknown) {
      WarnOnce("rule " + rule.name + ": {{ " + name + " }}",
               fmt::format("rule {}: unknown placeholder {{{{ {} }}}} in its notification "
                           "templates renders empty (known: rule, event, task_id, details, body, "
                           "patient_name, mrn, acc)",
                           rule.name, name));
    }
  }
  Logger("notify")->info("{} notification(s) pending, {} journal file(s) read before",
                         pending_.size(), offsets_.size());
  return Status::Ok();
}

void Notifier::WarnOnce(const std::string& key, const std::string& message) {
  if (warned_.insert(key).second) {
    Logger("notify")->warn("{}", message);
  }
}

void Notifier::LoadPendingFolder() {
  FileSystem* fs = spool_->fs();
  auto names = fs->ListDir(pending_dir_);
  if (!names) {
    WarnOnce("list pending", "cannot list " + pending_dir_ + ": " + names.error().ToString());
    return;
  }
  for (const auto& name : *names) {
    if (name.size() <= 5 || name.substr(name.size() - 5) != ".json" ||
        pending_.count(name.substr(0, name.size() - 5)) != 0) {
      continue;
    }
    std::string path = JoinPath(pending_dir_, name);
    auto text = fs->ReadFile(path);
    Json j = text ? Json::parse(*text, nullptr, false) : Json();
    auto n = NotificationFromJson(j);
    if (!n || n->id + ".json" != name) {
      WarnOnce("bad " + name,
               fmt::format("{} is not a notification ({}); it is left alone, remove or fix it",
                           path, n ? "its id does not match the file name" : n.error().ToString()));
      continue;
    }
    if (n->attempts >= config_.notifications.retry.max_attempts) {
      // Moved back from failed/ by an operator: it gets a fresh set of attempts.
      n->attempts = 0;
      n->next_attempt_at = 0;
    }
    pending_[n->id] = std::move(*n);
  }
}

bool Notifier::Queue(const JournalLine& line) {
  auto log = Logger("notify");
  if (history_cutoff_) {
    auto when = ParseIso8601(line.event.value("time", std::string()));
    if (when && *when < *history_cutoff_) {
      return true;  // history from before the first start
    }
  }
  BuildResult built = BuildNotifications(line, config_.rules,
                                         config_.notifications.phi_notifications, clock_->Now());
  if (!built.skipped.empty()) {
    WarnOnce("skip " + built.skipped,
             fmt::format("task={}: no notification: {}", line.event.value("task_id", std::string()),
                         built.skipped));
  }
  for (const auto& u : built.unknown_placeholders) {
    WarnOnce(u, u + " is not a known placeholder and renders empty (known: rule, event, "
                    "task_id, details, body, patient_name, mrn, acc)");
  }
  FileSystem* fs = spool_->fs();
  for (auto& n : built.notifications) {
    std::string name = n.id + ".json";
    if (pending_.count(n.id) != 0 || sent_.count(n.id) != 0 ||
        fs->Exists(JoinPath(failed_dir_, name))) {
      continue;  // this line was read before
    }
    Status s =
        spool_->WriteFileAtomic(pending_dir_, name, ToJson(n).dump(2) + "\n", Durability::kFsync);
    if (!s.ok()) {
      if (!disk_failing_) {
        log->error(
            "cannot queue a notification in {}: {}; the journal is read again until it "
            "works (free disk space or fix permissions)",
            pending_dir_, s.ToString());
      }
      disk_failing_ = true;
      return false;
    }
    disk_failing_ = false;
    log->info("task={} queued {} {} notification for rule {} to {}", n.task_id,
              ChannelName(n.channel), EventName(n.event), n.rule,
              PublicDestination(n.channel, n.destination));
    pending_[n.id] = std::move(n);
  }
  return true;
}

bool Notifier::ScanJournals() {
  FileSystem* fs = spool_->fs();
  auto names = fs->ListDir(journal_dir_);
  if (!names) {
    WarnOnce("list journal", "cannot list " + journal_dir_ + ": " + names.error().ToString());
    return false;
  }
  std::sort(names->begin(), names->end());
  bool changed = false;
  bool more = false;
  size_t budget = kPassBytes;
  std::set<std::string> present;
  for (const auto& file : *names) {
    if (file.size() < 6 || file.substr(file.size() - 6) != ".jsonl") {
      continue;
    }
    present.insert(file);
    if (file.rfind(own_prefix_, 0) == 0) {
      continue;
    }
    std::string path = JoinPath(journal_dir_, file);
    uint64_t offset = offsets_.count(file) != 0 ? offsets_[file] : 0;
    auto size = fs->FileSize(path);
    if (!size) {
      continue;  // removed meanwhile
    }
    if (*size < offset) {
      WarnOnce("shrunk " + file, fmt::format("journal {} is shorter than what was read of it "
                                             "({} < {} bytes); only new lines are read",
                                             path, *size, offset));
      offsets_[file] = *size;
      changed = true;
      continue;
    }
    while (offset < *size && budget > 0) {
      size_t want = std::min<uint64_t>(*size - offset, kChunkBytes);
      auto data = ReadRange(path, offset, want);
      if (!data) {
        WarnOnce("read " + file, "cannot read journal " + path + ": " + data.error().ToString());
        break;
      }
      size_t end = data->rfind('\n');
      while (end == std::string::npos && data->size() == want && offset + want < *size) {
        want = std::min<uint64_t>(*size - offset, want * 2);  // a very long line
        data = ReadRange(path, offset, want);
        if (!data) {
          break;
        }
        end = data->rfind('\n');
      }
      if (!data || end == std::string::npos) {
        break;  // only a partial last line: read it when it is complete
      }
      bool queued = true;
      size_t pos = 0;
      while (pos <= end) {
        size_t nl = data->find('\n', pos);
        std::string_view text(data->data() + pos, nl - pos);
        // Only task events trigger notifications: skip the parse of everything else.
        if (text.find("\"task.") != std::string_view::npos) {
          Json event = Json::parse(text, nullptr, false);
          if (event.is_object()) {
            if (!Queue({file, offset + pos, std::move(event)})) {
              queued = false;
              break;
            }
          }
        }
        pos = nl + 1;
      }
      offset += pos;
      offsets_[file] = offset;
      changed = true;
      budget -= std::min(budget, pos);
      if (!queued) {
        return false;  // the disk refused a write: try again at the next pass
      }
    }
    if (offset < *size && budget == 0) {
      more = true;
    }
  }
  for (auto it = offsets_.begin(); it != offsets_.end();) {
    if (present.count(it->first) == 0) {
      it = offsets_.erase(it);  // the journal file is gone
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) {
    Status s = SaveOffsets();
    if (!s.ok()) {
      WarnOnce("offsets", "cannot save " + JoinPath(dir_, kOffsetsFile) + ": " + s.ToString() +
                              "; a restart reads those journal lines again (nothing is queued "
                              "twice)");
    } else {
      PruneSent();
    }
  }
  return more;
}

Status Notifier::SaveOffsets() {
  Json j = Json::object();
  for (const auto& [file, offset] : offsets_) {
    j[file] = offset;
  }
  FERRY_RETURN_IF_ERROR(
      spool_->WriteFileAtomic(dir_, kOffsetsFile, j.dump(1) + "\n", Durability::kFsync));
  saved_offsets_ = offsets_;
  return Status::Ok();
}

bool Notifier::Committed(const Notification& n) const {
  auto it = saved_offsets_.find(n.journal_file);
  return it == saved_offsets_.end() ? !spool_->fs()->Exists(JoinPath(journal_dir_, n.journal_file))
                                    : it->second > n.journal_offset;
}

void Notifier::PruneSent() {
  for (auto it = sent_.begin(); it != sent_.end();) {
    Notification probe;
    probe.journal_file = it->second.first;
    probe.journal_offset = it->second.second;
    if (Committed(probe)) {
      spool_->fs()->RemoveFile(JoinPath(sent_dir_, it->first + ".json"));
      it = sent_.erase(it);
    } else {
      ++it;
    }
  }
}

void Notifier::Record(const std::string& type, const Notification& n, Json extra) {
  Json details = {
      {"id", n.id},           {"channel", ChannelName(n.channel)},
      {"rule", n.rule},       {"event", EventName(n.event)},
      {"task_id", n.task_id}, {"destination", PublicDestination(n.channel, n.destination)},
      {"attempt", n.attempts}};
  details.update(extra);
  journal_->Append({type, n.series_uid, n.task_id, std::move(details)});
}

void Notifier::Attempt(Notification n) {
  auto log = Logger("notify");
  FileSystem* fs = spool_->fs();
  const RetryOptions& retry = config_.notifications.retry;
  std::string name = n.id + ".json";
  DeliveryOutcome out;
  if (n.channel == Channel::kWebhook && !Json::accept(n.body)) {
    out = {DeliveryOutcome::Kind::kFailed, 0,
           "the rendered notification_payload of rule " + n.rule +
               " is not valid JSON; fix the rule's template"};
  } else {
    out = deliverer_->Deliver(n);
  }
  n.attempts += 1;
  std::string where = PublicDestination(n.channel, n.destination);
  Json result = out.status != 0 ? Json{{"status", out.status}} : Json::object();
  if (!out.error.empty()) {
    result["error"] = out.error;
  }

  if (out.kind == DeliveryOutcome::Kind::kSent) {
    Status s = Committed(n) ? fs->RemoveFile(JoinPath(pending_dir_, name))
                            : fs->Rename(JoinPath(pending_dir_, name), JoinPath(sent_dir_, name));
    if (s.ok()) {
      s = fs->SyncDir(pending_dir_);
    }
    if (!s.ok()) {
      log->error(
          "task={}: notification {} was sent but cannot be taken out of {}: {}; it may be "
          "sent again after a restart",
          n.task_id, n.id, pending_dir_, s.ToString());
    } else if (!Committed(n)) {
      sent_[n.id] = {n.journal_file, n.journal_offset};
    }
    log->info("task={} sent {} {} notification for rule {} to {} (attempt {})", n.task_id,
              ChannelName(n.channel), EventName(n.event), n.rule, where, n.attempts);
    Record("notify.sent", n, result);
    pending_.erase(n.id);
    return;
  }

  n.last_error = out.error;
  if (out.kind == DeliveryOutcome::Kind::kRetry && n.attempts < retry.max_attempts) {
    auto delay = RetryDelay(retry, n.attempts);
    WallTime next = clock_->Now() + delay;
    n.next_attempt_at = EpochSeconds(next);
    Status s =
        spool_->WriteFileAtomic(pending_dir_, name, ToJson(n).dump(2) + "\n", Durability::kFsync);
    if (!s.ok()) {
      log->warn("task={}: cannot record attempt {} of notification {}: {}", n.task_id, n.attempts,
                n.id, s.ToString());
    }
    log->warn(
        "task={} {} {} notification for rule {} to {}: attempt {} of {} failed: {}; next "
        "attempt in {:.1f} s",
        n.task_id, ChannelName(n.channel), EventName(n.event), n.rule, where, n.attempts,
        retry.max_attempts, out.error, std::chrono::duration<double>(delay).count());
    result["next_attempt"] = FormatIso8601(next);
    result["delay_s"] = std::chrono::duration<double>(delay).count();
    Record("notify.retry_scheduled", n, result);
    pending_[n.id] = std::move(n);
    return;
  }

  result["permanent"] = out.kind == DeliveryOutcome::Kind::kFailed;
  Status s =
      spool_->WriteFileAtomic(failed_dir_, name, ToJson(n).dump(2) + "\n", Durability::kFsync);
  if (s.ok()) {
    s = fs->RemoveFile(JoinPath(pending_dir_, name));
  }
  if (s.ok()) {
    s = fs->SyncDir(pending_dir_);
  }
  if (!s.ok()) {
    log->error("task={}: cannot move notification {} to {}: {}", n.task_id, n.id, failed_dir_,
               s.ToString());
  }
  log->error(
      "task={} {} {} notification for rule {} to {} failed{}: {}; it is kept in {} (move "
      "it back to pending/ to try again)",
      n.task_id, ChannelName(n.channel), EventName(n.event), n.rule, where,
      out.kind == DeliveryOutcome::Kind::kFailed ? ""
                                                 : fmt::format(" after {} attempts", n.attempts),
      out.error, failed_dir_);
  Record("notify.failed", n, result);
  pending_.erase(n.id);
}

WallTime Notifier::RunOnce() {
  WallTime now = clock_->Now();
  bool more = ScanJournals();
  LoadPendingFolder();

  std::vector<const Notification*> due;
  for (const auto& [id, n] : pending_) {
    if (FromEpochSeconds(n.next_attempt_at) <= now) {
      due.push_back(&n);
    }
  }
  // Oldest events first, so that a task's RECEIVED goes out before its COMPLETED.
  std::sort(due.begin(), due.end(), [](const Notification* a, const Notification* b) {
    return std::tie(a->created_at, a->journal_file, a->journal_offset, a->id) <
           std::tie(b->created_at, b->journal_file, b->journal_offset, b->id);
  });
  if (due.size() > static_cast<size_t>(kMaxDeliveriesPerPass)) {
    due.resize(kMaxDeliveriesPerPass);
    more = true;
  }
  std::vector<Notification> batch;
  batch.reserve(due.size());
  for (const Notification* n : due) {
    batch.push_back(*n);
  }
  for (auto& n : batch) {
    Attempt(std::move(n));
  }

  now = clock_->Now();
  if (more) {
    return now;
  }
  WallTime next = now + kIdleWait;
  for (const auto& [id, n] : pending_) {
    next = std::min(next, FromEpochSeconds(n.next_attempt_at));
  }
  return next;
}

}  // namespace ferry::notify
