#include "receiver/receiver.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "core/logging.h"
#include "dicom/instance_header.h"

namespace ferry {
namespace {

std::string Hex16(dicom::StoreStatus s) {
  return fmt::format("0x{:04X}", static_cast<unsigned>(s));
}

}  // namespace

Result<IpNetwork> IpNetwork::Parse(const std::string& text) {
  IpNetwork net;
  auto slash = text.find('/');
  std::string addr = text.substr(0, slash);
  if (inet_pton(AF_INET, addr.c_str(), net.bytes_) == 1) {
    net.family_ = AF_INET;
    net.prefix_bits_ = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), net.bytes_) == 1) {
    net.family_ = AF_INET6;
    net.prefix_bits_ = 128;
  } else {
    return Status::InvalidArgument("\"" + text + "\" is not an IP network");
  }
  if (slash != std::string::npos) {
    try {
      int bits = std::stoi(text.substr(slash + 1));
      if (bits < 0 || bits > net.prefix_bits_) {
        return Status::InvalidArgument("\"" + text + "\" has an invalid prefix length");
      }
      net.prefix_bits_ = bits;
    } catch (const std::exception&) {
      return Status::InvalidArgument("\"" + text + "\" has an invalid prefix length");
    }
  }
  return net;
}

bool IpNetwork::Contains(const std::string& address) const {
  unsigned char buf[16] = {};
  int family = 0;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    family = AF_INET;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    family = AF_INET6;
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 networks.
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family_ == AF_INET && std::memcmp(buf, kMapped, 12) == 0) {
      std::memmove(buf, buf + 12, 4);
      family = AF_INET;
    }
  }
  if (family != family_) {
    return false;
  }
  int full = prefix_bits_ / 8;
  if (std::memcmp(buf, bytes_, full) != 0) {
    return false;
  }
  int rest = prefix_bits_ % 8;
  if (rest == 0) {
    return true;
  }
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (buf[full] & mask) == (bytes_[full] & mask);
}

Receiver::Receiver(const ReceiverOptions& options, Spool* spool, Journal* journal, Clock* clock)
    : options_(options),
      spool_(spool),
      journal_(journal),
      clock_(clock),
      durability_(options.durability == DurabilityMode::kFsync ? Durability::kFsync
                                                               : Durability::kOs) {
  for (const auto& text : options_.allowed_networks) {
    auto net = IpNetwork::Parse(text);
    if (net) {
      networks_.push_back(*net);
    }
  }
}

dicom::AssociationDecision Receiver::OnAssociationRequest(const dicom::AssociationInfo& info,
                                                          std::string* reason) {
  dicom::AssociationDecision decision = dicom::AssociationDecision::kAccept;
  if (options_.check_called_ae_title && info.called_ae != options_.ae_title) {
    decision = dicom::AssociationDecision::kRejectCalledAe;
    *reason = fmt::format("called AE title \"{}\" is not ferry's (\"{}\"); configure the sender "
                          "to call {} or set receiver.check_called_ae_title to false",
                          info.called_ae, options_.ae_title, options_.ae_title);
  } else if (!options_.allowed_calling_ae_titles.empty() &&
             std::find(options_.allowed_calling_ae_titles.begin(),
                       options_.allowed_calling_ae_titles.end(),
                       info.calling_ae) == options_.allowed_calling_ae_titles.end()) {
    decision = dicom::AssociationDecision::kRejectCallingAe;
    *reason = fmt::format("calling AE title \"{}\" is not in receiver.allowed_calling_ae_titles",
                          info.calling_ae);
  } else if (!networks_.empty() &&
             std::none_of(networks_.begin(), networks_.end(),
                          [&](const IpNetwork& n) { return n.Contains(info.peer_address); })) {
    decision = dicom::AssociationDecision::kRejectNoReason;
    *reason = fmt::format("address {} is not in receiver.allowed_networks", info.peer_address);
  }
  if (decision != dicom::AssociationDecision::kAccept) {
    ++counters_.associations_rejected;
    Logger("receiver")->warn("association rejected: {} from {} ({}) to {}: {}", info.id,
                             info.calling_ae, info.peer_address, info.called_ae, *reason);
    journal_->Append({"association.rejected", "", "",
                      {{"association", info.id},
                       {"peer", info.peer_address},
                       {"calling_ae", info.calling_ae},
                       {"called_ae", info.called_ae},
                       {"reason", *reason}}});
    return decision;
  }
  ++counters_.associations;
  {
    std::lock_guard<std::mutex> lock(mu_);
    associations_[info.id];
  }
  Logger("receiver")->debug("association {} opened by {} ({}) calling {}", info.id,
                            info.calling_ae, info.peer_address, info.called_ae);
  journal_->Append({"association.opened", "", "",
                    {{"association", info.id},
                     {"peer", info.peer_address},
                     {"calling_ae", info.calling_ae},
                     {"called_ae", info.called_ae}}});
  return decision;
}

std::string Receiver::NewStagingPath() { return spool_->NewTempPath(".dcm"); }

bool Receiver::HasRoom(const dicom::AssociationInfo& info) {
  if (options_.disk_reserve_mb == 0) {
    return true;
  }
  auto space = spool_->fs()->GetDiskSpace(spool_->root());
  if (!space) {
    return true;  // cannot tell; the write itself will fail cleanly if the disk is full
  }
  if (space->available_bytes >= options_.disk_reserve_mb * 1024 * 1024) {
    return true;
  }
  std::string reason = fmt::format(
      "only {} MiB free on the disk of {}, below receiver.disk_reserve_mb ({} MiB); free disk "
      "space, the sender keeps the image and can retry",
      space->available_bytes / (1024 * 1024), spool_->root(), options_.disk_reserve_mb);
  Logger("receiver")->error("instance refused with status 0xA700 (Out of Resources): association "
                            "{} from {} ({}): {}",
                            info.id, info.calling_ae, info.peer_address, reason);
  RecordRejection(info, "", "", Hex16(dicom::StoreStatus::kOutOfResources), reason);
  return false;
}

void Receiver::RecordRejection(const dicom::AssociationInfo& info, const std::string& series_uid,
                               const std::string& sop_uid, const std::string& status,
                               const std::string& reason) {
  ++counters_.instances_rejected;
  nlohmann::json details = {{"association", info.id},
                            {"peer", info.peer_address},
                            {"calling_ae", info.calling_ae},
                            {"reason", reason}};
  if (!sop_uid.empty()) {
    details["sop_instance_uid"] = sop_uid;
  }
  if (!status.empty()) {
    details["status"] = status;
  }
  journal_->Append({"instance.rejected", series_uid, "", std::move(details)});
}

dicom::StoreStatus Receiver::Reject(const dicom::AssociationInfo& info, const std::string& file,
                                    const std::string& sop_uid, dicom::StoreStatus status,
                                    const std::string& reason, std::string* error_comment) {
  spool_->fs()->RemoveFile(file);
  Logger("receiver")->warn("instance rejected with status {}: association {} from {} ({}), SOP "
                           "instance {}: {}",
                           Hex16(status), info.id, info.calling_ae, info.peer_address,
                           sop_uid.empty() ? "(none)" : sop_uid, reason);
  RecordRejection(info, "", sop_uid, Hex16(status), reason);
  *error_comment = "ferry: " + reason;
  return status;
}

dicom::StoreStatus Receiver::OnStore(const dicom::AssociationInfo& info,
                                     const dicom::StoreRequest& request,
                                     std::string* error_comment) {
  dicom::TransferContext ctx{info.peer_address, info.calling_ae, info.called_ae};
  // The tags are needed only when the instance starts a series folder.
  FileSystem* fs = spool_->fs();
  auto header = dicom::ReadInstanceHeader(
      request.file_path, ctx, [&](const std::string& series_uid) {
        return !IsSafeFileName(series_uid) || !fs->IsDirectory(spool_->SeriesPath(series_uid));
      });
  if (!header) {
    return Reject(info, request.file_path, request.sop_instance_uid,
                  dicom::StoreStatus::kCannotUnderstand,
                  "the dataset cannot be parsed: " + header.error().message(), error_comment);
  }
  const std::string& sop = header->sop_instance_uid;
  const std::string& series = header->series_instance_uid;
  if (sop.empty()) {
    return Reject(info, request.file_path, request.sop_instance_uid,
                  dicom::StoreStatus::kCannotUnderstand,
                  "the dataset has no SOP Instance UID (0008,0018)", error_comment);
  }
  if (!IsSafeFileName(sop)) {
    return Reject(info, request.file_path, sop, dicom::StoreStatus::kCannotUnderstand,
                  "the SOP Instance UID \"" + sop + "\" is malformed", error_comment);
  }
  if (series.empty()) {
    return Reject(info, request.file_path, sop, dicom::StoreStatus::kCannotUnderstand,
                  "the dataset has no Series Instance UID (0020,000E)", error_comment);
  }
  if (!IsSafeFileName(series)) {
    return Reject(info, request.file_path, sop, dicom::StoreStatus::kCannotUnderstand,
                  "the Series Instance UID \"" + series + "\" is malformed", error_comment);
  }
  if (!request.sop_class_uid.empty() && !header->sop_class_uid.empty() &&
      request.sop_class_uid != header->sop_class_uid) {
    return Reject(info, request.file_path, sop,
                  dicom::StoreStatus::kDataSetDoesNotMatchSopClass,
                  "the dataset's SOP Class UID " + header->sop_class_uid +
                      " differs from the C-STORE request's " + request.sop_class_uid,
                  error_comment);
  }
  if (sop != request.sop_instance_uid) {
    Logger("receiver")->warn("association {} from {}: the dataset's SOP Instance UID {} differs "
                             "from the C-STORE request's {}; storing under the dataset's",
                             info.id, info.calling_ae, sop, request.sop_instance_uid);
  }

  // With the intake log, the instance is durable once its record is flushed; the spool copy
  // is made durable by the log's next checkpoint.
  Durability durability = durability_;
  std::optional<uint64_t> lsn;
  if (intake_ != nullptr) {
    auto appended = intake_->Append(
        series, sop, info.peer_address + "\\" + info.calling_ae + "\\" + info.called_ae,
        request.file_path);
    if (appended) {
      lsn = *appended;
      durability = Durability::kOs;
    } else {
      WarnIntakeFallback(request.file_path, appended.error());
    }
  }
  auto added = spool_->AddInstance(series, sop, request.file_path, header->tags_json, durability);
  if (!added && added.error().code() == Status::Code::kFailedPrecondition) {
    // The series folder was routed away between the check and the publish: this instance
    // starts a new (follow-up) folder, which needs the tags.
    auto full = dicom::ReadInstanceHeader(request.file_path, ctx);
    if (full) {
      added = spool_->AddInstance(series, sop, request.file_path, full->tags_json, durability);
    }
  }
  if (lsn) {
    intake_->Published(*lsn);
  } else if (intake_ != nullptr) {
    intake_->NoteDirectWrite();
  }
  if (!added) {
    spool_->fs()->RemoveFile(request.file_path);
    Logger("receiver")->error("cannot store instance {} of series {} from {} ({}): {}; answered "
                              "Out of Resources so the sender can retry",
                              sop, series, info.calling_ae, info.peer_address,
                              added.error().ToString());
    RecordRejection(info, series, sop, Hex16(dicom::StoreStatus::kOutOfResources),
                    added.error().ToString());
    *error_comment = "ferry: cannot store the instance";
    return dicom::StoreStatus::kOutOfResources;
  }

  bool mark = false;
  bool warn_charset = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AssociationState& state = associations_[info.id];
    mark = state.series.insert(series).second || added->series_created;
    for (const auto& keyword : header->unconvertible) {
      warn_charset |= state.warned_unconvertible.insert(keyword).second;
    }
  }
  if (mark) {
    Status s = spool_->MarkAssociationOpen(series, info.id);
    if (!s.ok()) {
      Logger("receiver")->warn("cannot record association {} on series {}: {}", info.id, series,
                               s.ToString());
    }
  }
  if (warn_charset) {
    std::string keywords;
    for (const auto& k : header->unconvertible) {
      keywords += (keywords.empty() ? "" : ", ") + k;
    }
    Logger("receiver")->warn("series {} from {}: values of {} could not be converted to UTF-8 "
                             "from their SpecificCharacterSet; kept escaped and flagged in the "
                             "tags",
                             series, info.calling_ae, keywords);
  }
  if (added->series_created) {
    journal_->Append({"series.first_seen", series, "",
                      {{"association", info.id},
                       {"study_uid", header->study_instance_uid},
                       {"sop_class_uid", header->sop_class_uid},
                       {"transfer_syntax_uid", header->transfer_syntax_uid},
                       {"peer", info.peer_address},
                       {"calling_ae", info.calling_ae},
                       {"called_ae", info.called_ae}}});
  }
  if (added->replaced) {
    Logger("receiver")->info("instance {} of series {} received again from {}; replaced the "
                             "earlier copy",
                             sop, series, info.calling_ae);
    journal_->Append({"instance.replaced", series, "",
                      {{"association", info.id}, {"sop_instance_uid", sop}}});
  }
  ++counters_.instances_stored;
  counters_.bytes_stored += request.bytes;
  return dicom::StoreStatus::kSuccess;
}

void Receiver::WarnIntakeFallback(const std::string& file, const Status& why) {
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = intake_warned_at_.load();
  if (now - last < 60 || !intake_warned_at_.compare_exchange_strong(last, now)) {
    return;
  }
  // A large instance is expected now and then; a full or failing log deserves attention.
  auto size = spool_->fs()->FileSize(file);
  auto level = size && *size > intake_->max_payload() ? spdlog::level::info : spdlog::level::warn;
  Logger("receiver")->log(level,
                          "intake log not used for an instance ({}); flushing the instance file "
                          "itself, which is slower but just as safe (logged at most once a "
                          "minute)",
                          why.ToString());
}

void Receiver::OnStoreAborted(const dicom::AssociationInfo& info, const std::string& reason) {
  Logger("receiver")->warn("association {} from {} ({}): an instance was not received "
                           "completely and was discarded: {}",
                           info.id, info.calling_ae, info.peer_address, reason);
  RecordRejection(info, "", "", "", "incomplete transfer: " + reason);
}

void Receiver::OnAssociationEnd(const dicom::AssociationInfo& info,
                                const dicom::AssociationSummary& s) {
  std::set<std::string> series;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = associations_.find(info.id);
    if (it != associations_.end()) {
      series = std::move(it->second.series);
      associations_.erase(it);
    }
  }
  for (const auto& uid : series) {
    Status st = spool_->MarkAssociationEnded(uid, info.id);
    if (!st.ok()) {
      Logger("receiver")->warn("cannot record the end of association {} on series {}: {}",
                               info.id, uid, st.ToString());
    }
  }
  double seconds = static_cast<double>(s.duration.count()) / 1000.0;
  std::string size = s.bytes >= 1000000 ? fmt::format("{:.1f} MB", s.bytes / 1e6)
                                         : fmt::format("{:.1f} kB", s.bytes / 1e3);
  auto log = Logger("receiver");
  auto level = s.end == dicom::AssociationEnd::kReleased && s.instances_failed == 0
                   ? spdlog::level::info
                   : spdlog::level::warn;
  log->log(level,
           "association {} from {} ({}) to {} {}: {} instances stored, {} failed, {} series, "
           "{} in {:.2f} s{}",
           info.id, info.calling_ae, info.peer_address, info.called_ae,
           dicom::AssociationEndName(s.end), s.instances_stored, s.instances_failed,
           series.size(), size, seconds, s.detail.empty() ? "" : " (" + s.detail + ")");
  journal_->Append({"association.closed", "", "",
                    {{"association", info.id},
                     {"peer", info.peer_address},
                     {"calling_ae", info.calling_ae},
                     {"called_ae", info.called_ae},
                     {"result", std::string(dicom::AssociationEndName(s.end))},
                     {"detail", s.detail},
                     {"instances", s.instances_stored},
                     {"failed", s.instances_failed},
                     {"series", series.size()},
                     {"bytes", s.bytes},
                     {"duration_ms", s.duration.count()}}});
}

}  // namespace ferry
