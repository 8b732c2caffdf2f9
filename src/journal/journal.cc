#include "journal/journal.h"

#include <unistd.h>

#include <fmt/format.h>

#include "core/logging.h"

namespace ferry {

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& journal_dir,
                                               const std::string& service, Clock* clock,
                                               FileSystem* fs) {
  FERRY_RETURN_IF_ERROR(fs->CreateDirs(journal_dir));
  std::string path = JoinPath(
      journal_dir, fmt::format("{}-{}-{}.jsonl", service, FormatCompact(clock->Now()), getpid()));
  auto file = fs->NewAppendableFile(path);
  if (!file) {
    return file.error().WithContext("cannot open the event journal");
  }
  // Make the new file's name durable so that later synced appends are reachable after a crash.
  FERRY_RETURN_IF_ERROR(fs->SyncDir(journal_dir));
  return std::unique_ptr<Journal>(new Journal(path, service, clock, std::move(file).value()));
}

Journal::Journal(std::string path, std::string service, Clock* clock,
                 std::unique_ptr<WritableFile> file)
    : path_(std::move(path)), service_(std::move(service)), clock_(clock), file_(std::move(file)) {}

void Journal::Append(const JournalEvent& event) {
  nlohmann::json line = {
      {"time", FormatIso8601(clock_->Now())},
      {"service", service_},
      {"pid", getpid()},
      {"event", event.type},
  };
  if (!event.series_uid.empty()) {
    line["series_uid"] = event.series_uid;
  }
  if (!event.task_id.empty()) {
    line["task_id"] = event.task_id;
  }
  line["details"] = event.details;
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

  std::lock_guard<std::mutex> lock(mu_);
  Status s = file_->Append(text);
  if (s.ok()) {
    s = file_->Sync();
  }
  if (!s.ok()) {
    ++failed_;
    if (!failing_) {
      Logger("journal")->error("cannot write event journal {}: {}; events are being lost until "
                               "this is fixed (check disk space and permissions)",
                               path_, s.ToString());
    }
    failing_ = true;
  } else if (failing_) {
    Logger("journal")->warn("event journal {} writable again after {} lost events", path_,
                            failed_);
    failing_ = false;
  }
}

uint64_t Journal::failed_appends() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

Result<std::vector<nlohmann::json>> ReadJournalFile(const std::string& path, FileSystem* fs) {
  FERRY_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(path));
  std::vector<nlohmann::json> events;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      break;  // partial last line: the writer crashed mid-write
    }
    auto j = nlohmann::json::parse(text.begin() + start, text.begin() + end, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      events.push_back(std::move(j));
    }
    start = end + 1;
  }
  return events;
}

}  // namespace ferry
