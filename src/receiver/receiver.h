// Receiver: the service that takes images in over DICOM and puts them into the spool.
//
// It implements dicom::StoreHandler: it decides which peers may connect (called AE title check,
// allow-lists of calling AE titles and IP networks), reads each received instance's header,
// rejects what cannot be routed (unparseable data, missing or unsafe UIDs) with a DIMSE failure
// status, publishes the rest durably into incoming/<series uid>/ before the success response
// (through the intake log when one is set: spool/intake_log.h),
// records which associations delivered to each series and when they ended, and writes the
// journal events of all of this. The DICOM side (sockets, DCMTK) is dicom::StorageScp.
//
// Threads: handler methods run concurrently on the SCP's association threads; the Receiver
// protects its own state with a mutex. Spool and Journal are thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "dicom/storage_scp.h"
#include "journal/journal.h"
#include "spool/intake_log.h"
#include "spool/spool.h"

namespace ferry {

// An IPv4 or IPv6 network ("10.0.0.0/8", "192.168.1.7", "fd00::/8").
class IpNetwork {
 public:
  static Result<IpNetwork> Parse(const std::string& text);
  bool Contains(const std::string& address) const;

 private:
  int family_ = 0;
  unsigned char bytes_[16] = {};
  int prefix_bits_ = 0;
};

struct ReceiverCounters {
  std::atomic<uint64_t> associations{0};
  std::atomic<uint64_t> associations_rejected{0};
  std::atomic<uint64_t> instances_stored{0};
  std::atomic<uint64_t> instances_rejected{0};
  std::atomic<uint64_t> bytes_stored{0};
};

class Receiver final : public dicom::StoreHandler {
 public:
  // `spool`, `journal` and `clock` must outlive the Receiver.
  Receiver(const ReceiverOptions& options, Spool* spool, Journal* journal, Clock* clock);

  dicom::AssociationDecision OnAssociationRequest(const dicom::AssociationInfo& info,
                                                  std::string* reason) override;
  std::string NewStagingPath() override;
  bool HasRoom(const dicom::AssociationInfo& info) override;
  dicom::StoreStatus OnStore(const dicom::AssociationInfo& info,
                             const dicom::StoreRequest& request,
                             std::string* error_comment) override;
  void OnStoreAborted(const dicom::AssociationInfo& info, const std::string& reason) override;
  void OnAssociationEnd(const dicom::AssociationInfo& info,
                        const dicom::AssociationSummary& summary) override;

  const ReceiverCounters& counters() const { return counters_; }

  // With durability fsync: make instances durable through `log` (must outlive the Receiver)
  // instead of flushing each file and folder entry. Call before the first association.
  void UseIntakeLog(IntakeLog* log) { intake_ = log; }

 private:
  // Counts a refused or lost instance and journals instance.rejected (empty fields are left out).
  void RecordRejection(const dicom::AssociationInfo& info, const std::string& series_uid,
                       const std::string& sop_uid, const std::string& status,
                       const std::string& reason);
  void WarnIntakeFallback(const std::string& file, const Status& why);
  dicom::StoreStatus Reject(const dicom::AssociationInfo& info, const std::string& file,
                            const std::string& sop_uid, dicom::StoreStatus status,
                            const std::string& reason, std::string* error_comment);

  struct AssociationState {
    std::set<std::string> series;          // series this association delivered to
    std::set<std::string> warned_unconvertible;
  };

  ReceiverOptions options_;
  Spool* spool_;
  Journal* journal_;
  Clock* clock_;
  Durability durability_;
  IntakeLog* intake_ = nullptr;
  std::atomic<int64_t> intake_warned_at_{0};  // steady-clock seconds of the last warning
  std::vector<IpNetwork> networks_;
  ReceiverCounters counters_;
  std::mutex mu_;
  std::map<std::string, AssociationState> associations_;  // by association id
};

}  // namespace ferry
