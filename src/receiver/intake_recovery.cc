#include "receiver/intake_recovery.h"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "dicom/instance_header.h"
#include "spool/intake_log.h"

namespace ferry {
namespace {

// The context the receiver logs with each instance: "address\calling AE\called AE".
dicom::TransferContext ParseContext(const std::string& text) {
  dicom::TransferContext ctx;
  size_t a = text.find('\\');
  size_t b = a == std::string::npos ? std::string::npos : text.find('\\', a + 1);
  ctx.sender_address = text.substr(0, a);
  if (a != std::string::npos) {
    ctx.sender_aet = text.substr(a + 1, b == std::string::npos ? b : b - a - 1);
  }
  if (b != std::string::npos) {
    ctx.receiver_aet = text.substr(b + 1);
  }
  return ctx;
}

bool TagsReadable(FileSystem* fs, const std::string& folder) {
  auto text = fs->ReadFile(JoinPath(folder, kSeriesTagsFile));
  return text && nlohmann::json::parse(*text, nullptr, false).is_object();
}

// Publishes one record's instance into incoming/ durably.
Status Replay(Spool* spool, const IntakeLog::Record& record, const std::string& payload) {
  FileSystem* fs = spool->fs();
  const std::string tmp = spool->NewTempPath(".dcm");
  {
    FERRY_ASSIGN_OR_RETURN(auto file, fs->NewWritableFile(tmp));
    FERRY_RETURN_IF_ERROR(file->Append(payload));
    FERRY_RETURN_IF_ERROR(file->Close());
  }
  auto header = dicom::ReadInstanceHeader(tmp, ParseContext(record.context));
  if (!header) {
    fs->RemoveFile(tmp);
    return header.error().WithContext("cannot read the logged instance");
  }
  const std::string folder = spool->SeriesPath(record.series_uid);
  auto added =
      spool->AddInstance(record.series_uid, record.sop_uid, tmp, header->tags_json,
                         Durability::kFsync);
  if (!added) {
    fs->RemoveFile(tmp);
    return added.error();
  }
  if (!added->series_created && !TagsReadable(fs, folder)) {
    // The folder survived the power cut but its tags did not.
    FERRY_RETURN_IF_ERROR(spool->WriteFileAtomic(folder, kSeriesTagsFile, header->tags_json,
                                                 Durability::kFsync));
  }
  return Status::Ok();
}

}  // namespace

Result<IntakeRecovery> RecoverIntakeLog(Spool* spool, Journal* journal,
                                        const std::string& boot_id) {
  auto log = Logger("receiver");
  FileSystem* fs = spool->fs();
  FERRY_ASSIGN_OR_RETURN(IntakeLog::ScanResult scan, IntakeLog::Scan(fs, spool->root()));
  IntakeRecovery result;
  result.last_lsn = scan.max_lsn;
  std::set<std::string> series;
  for (const auto& record : scan.after_checkpoint) {
    if (!boot_id.empty() && record.boot_id == boot_id) {
      ++result.same_boot;
      continue;
    }
    if (!IsSafeFileName(record.series_uid) || !IsSafeFileName(record.sop_uid)) {
      continue;  // never logged by the receiver, which checks them first
    }
    FERRY_ASSIGN_OR_RETURN(std::string payload, IntakeLog::ReadPayload(record));
    const std::string path =
        JoinPath(spool->SeriesPath(record.series_uid), record.sop_uid + ".dcm");
    auto existing = fs->ReadFile(path);
    if (existing && *existing == payload) {
      ++result.unchanged;
      continue;
    }
    Status s = Replay(spool, record, payload);
    if (!s.ok()) {
      return s.WithContext(fmt::format("cannot put instance {} of series {} back from the "
                                       "intake log",
                                       record.sop_uid, record.series_uid));
    }
    ++result.replayed;
    series.insert(record.series_uid);
  }
  // Everything the log vouched for is now durable in the spool itself (nothing to do when the
  // last run ended with a checkpoint).
  if (!scan.after_checkpoint.empty()) {
    FERRY_RETURN_IF_ERROR(fs->SyncFileSystem(spool->root()).WithContext("intake log recovery"));
  }
  if (result.replayed > 0) {
    log->warn("put back {} instance(s) of {} series from the intake log into incoming/: the "
              "machine stopped (power cut or crash) before they were flushed from the spool; "
              "{} logged instance(s) were already in place",
              result.replayed, series.size(), result.unchanged);
  }
  if (result.replayed > 0 || result.unchanged > 0) {
    journal->Append({"intake.recovered", "", "",
                     {{"replayed", result.replayed},
                      {"unchanged", result.unchanged},
                      {"series", series.size()}}});
  }
  return result;
}

}  // namespace ferry
