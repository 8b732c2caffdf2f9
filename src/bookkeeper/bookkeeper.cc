#include "bookkeeper/bookkeeper.h"

#include <fmt/format.h>

#include <algorithm>

#include "bookkeeper/event_mapper.h"
#include "bookkeeper/journal_files.h"
#include "core/file_system.h"
#include "core/logging.h"

namespace ferry::bookkeeper {

Bookkeeper::Bookkeeper(BookkeeperSettings settings, DatabaseOpener opener, Clock* clock,
                       Journal* journal)
    : settings_(std::move(settings)),
      journal_dir_(JoinPath(settings_.data_folder, "journal")),
      opener_(std::move(opener)),
      clock_(clock),
      journal_(journal) {
  settings_.batch_size = std::max(1, settings_.batch_size);
}

uint64_t Bookkeeper::BytesBehind() {
  uint64_t behind = 0;
  auto files = ListJournalFiles(journal_dir_);
  if (!files) {
    return 0;
  }
  for (const auto& f : *files) {
    auto size = JournalFileSize(JoinPath(journal_dir_, f));
    auto it = loaded_.find(f);
    uint64_t done = it == loaded_.end() ? 0 : it->second;
    if (size && *size > done) {
      behind += *size - done;
    }
  }
  return behind;
}

PassResult Bookkeeper::RunOnce() {
  PassResult result;
  if (down_ && clock_->SteadyNow() < retry_at_) {
    result.database_down = true;
    result.retry_at = retry_at_;
    result.bytes_behind = BytesBehind();
    return result;
  }
  if (db_ == nullptr) {
    auto opened = opener_();
    if (!opened) {
      OnFailure(opened.error(), "", BytesBehind());
      result.database_down = true;
      result.retry_at = retry_at_;
      result.bytes_behind = BytesBehind();
      return result;
    }
    db_ = std::move(opened).value();
  }
  auto files = ListJournalFiles(journal_dir_);
  if (!files) {
    if (files.error().code() != Status::Code::kNotFound) {
      Logger("bookkeeper")->warn("cannot list the journals: {}", files.error().ToString());
    }
    OnSuccess();
    return result;
  }
  for (const auto& file : *files) {
    auto size = JournalFileSize(JoinPath(journal_dir_, file));
    if (!size) {
      continue;  // removed by the cleaner meanwhile
    }
    auto known = loaded_.find(file);
    if (known != loaded_.end() && known->second >= *size) {
      continue;
    }
    int64_t loaded = 0;
    bool more = false;
    Status s = LoadBatch(file, &loaded, &more);
    if (!s.ok()) {
      OnFailure(s, file, BytesBehind());
      result.database_down = true;
      result.retry_at = retry_at_;
      result.bytes_behind = BytesBehind();
      return result;
    }
    result.lines_loaded += loaded;
    result.more = result.more || more;
  }
  OnSuccess();
  result.bytes_behind = BytesBehind();
  return result;
}

Status Bookkeeper::LoadBatch(const std::string& file, int64_t* loaded, bool* more) {
  const std::string path = JoinPath(journal_dir_, file);
  EventMapper mapper(db_.get(), settings_.data_folder);
  uint64_t start = 0;
  uint64_t end = 0;
  bool known = false;
  bool offset_read = false;
  bool conflict = false;  // another bookkeeper moved the offset first
  Status s = db::InTransaction(db_.get(), [&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(
        db::Rows rows,
        db_->Query("SELECT offset_bytes FROM journal_offsets WHERE file = $1", {file}));
    known = !rows.empty();
    offset_read = true;
    start = known ? static_cast<uint64_t>(rows[0].Int(0)) : 0;
    end = start;
    FERRY_ASSIGN_OR_RETURN(
        JournalChunk chunk,
        ReadJournalLines(path, start, static_cast<size_t>(settings_.batch_size)));
    if (start > chunk.file_size) {
      // The file is shorter than what was loaded from it: replaced or truncated by hand.
      if (!warned_bad_line_[file + "#short"]) {
        Logger("bookkeeper")
            ->warn(
                "journal {} is shorter ({} bytes) than what was loaded from "
                "it ({} bytes); it is not loaded again",
                path, chunk.file_size, start);
        warned_bad_line_[file + "#short"] = true;
      }
      return Status::Ok();
    }
    if (chunk.lines.empty()) {
      return Status::Ok();
    }
    for (const auto& line : chunk.lines) {
      auto event = nlohmann::json::parse(line.text, nullptr, false);
      if (!event.is_object()) {
        // Not written by a journal (the journal writes whole JSON lines): report, skip.
        if (!warned_bad_line_[file]) {
          Logger("bookkeeper")
              ->warn(
                  "journal {}: the line ending at byte {} is not a JSON "
                  "object; skipped (further bad lines of this file are "
                  "skipped silently)",
                  path, line.end_offset);
          warned_bad_line_[file] = true;
        }
      } else {
        FERRY_RETURN_IF_ERROR(mapper.Apply(event));
      }
      end = line.end_offset;
      ++*loaded;
    }
    FERRY_RETURN_IF_ERROR(mapper.FlushCounters());
    int64_t now_us =
        std::chrono::duration_cast<std::chrono::microseconds>(clock_->Now().time_since_epoch())
            .count();
    if (!known) {
      Status inserted =
          db_->Execute(
                 "INSERT INTO journal_offsets (file, offset_bytes, updated_us) VALUES ($1, "
                 "$2, $3)",
                 {file, static_cast<int64_t>(end), now_us})
              .status();
      conflict = inserted.code() == Status::Code::kAlreadyExists;
      return inserted;
    }
    FERRY_ASSIGN_OR_RETURN(
        int64_t changed,
        db_->Execute("UPDATE journal_offsets SET offset_bytes = $2, updated_us = $3 WHERE file "
                     "= $1 AND offset_bytes = $4",
                     {file, static_cast<int64_t>(end), now_us, static_cast<int64_t>(start)}));
    if (changed != 1) {
      conflict = true;
      return Status::AlreadyExists(fmt::format(
          "journal {} was loaded past byte {} meanwhile (is a second bookkeeper running?)", file,
          start));
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    *loaded = 0;
    mapper.Reset();
    if (conflict) {
      // Not a database problem: that batch is in the database once, loaded by the other one.
      Logger("bookkeeper")
          ->warn(
              "{}; this batch was rolled back and the file is read again "
              "from the stored offset",
              s.message());
      loaded_.erase(file);
      return Status::Ok();
    }
    return s.WithContext(offset_read ? fmt::format("loading journal {} from byte {}", file, start)
                                     : fmt::format("loading journal {}", file));
  }
  loaded_[file] = end;
  auto size = JournalFileSize(path);
  *more = *loaded >= settings_.batch_size && size && *size > end;
  return Status::Ok();
}

void Bookkeeper::OnFailure(const Status& s, const std::string& file, uint64_t bytes_behind) {
  auto log = Logger("bookkeeper");
  // Whatever failed, the next attempt starts from what the database says.
  loaded_.clear();
  db_.reset();
  ++failures_;
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.reconnect_min) *
               (1LL << std::min(failures_ - 1, 16));
  delay = std::min<std::chrono::milliseconds>(delay, settings_.reconnect_max);
  retry_at_ = clock_->SteadyNow() + delay;
  // Driver messages can span lines (libpq's do); the log keeps one line per outage.
  last_error_ = s.ToString();
  for (char& c : last_error_) {
    if (c == '\n' || c == '\t') {
      c = ' ';
    }
  }
  for (size_t pos; (pos = last_error_.find("  ")) != std::string::npos;) {
    last_error_.erase(pos, 1);
  }
  if (down_) {
    log->debug("database {} still unavailable: {}; next attempt in {} ms", settings_.database,
               last_error_, delay.count());
    return;
  }
  down_ = true;
  down_since_ = clock_->Now();
  if (s.retryable()) {
    log->warn(
        "database {} unreachable: {}; events wait in the journal, {} bytes behind; "
        "retrying with backoff up to {} s",
        settings_.database, last_error_, bytes_behind, settings_.reconnect_max.count());
  } else {
    log->error(
        "database {} refused the journal{}: {}; events wait in the journal, {} bytes "
        "behind; retrying with backoff up to {} s (fix the database or its permissions)",
        settings_.database, file.empty() ? "" : " " + file, last_error_, bytes_behind,
        settings_.reconnect_max.count());
  }
  if (journal_ != nullptr) {
    journal_->Append({"database.unreachable",
                      "",
                      "",
                      {{"database", settings_.database},
                       {"error", last_error_},
                       {"bytes_behind", bytes_behind}}});
  }
}

void Bookkeeper::OnSuccess() {
  failures_ = 0;
  if (!down_) {
    return;
  }
  down_ = false;
  double seconds = std::chrono::duration<double>(clock_->Now() - down_since_).count();
  uint64_t behind = BytesBehind();
  Logger("bookkeeper")
      ->info("database {} reachable again after {:.1f} s; loading the journal ({} bytes behind)",
             settings_.database, seconds, behind);
  if (journal_ != nullptr) {
    journal_->Append(
        {"database.reachable",
         "",
         "",
         {{"database", settings_.database}, {"outage_s", seconds}, {"bytes_behind", behind}}});
  }
}

}  // namespace ferry::bookkeeper
