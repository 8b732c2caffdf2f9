// DICOM target: C-STORE to a DICOM node (optionally over DICOM TLS), on top of
// dicom::StorageScu.
//
// A session holds at most one association, opened at the first Send() with presentation
// contexts for every (SOP class, transfer syntax) of that batch. A later batch that needs a
// context the association did not propose releases it and opens a new one. The association is
// released when the session ends. The calling AE title is aet_source, or the AE title of the
// sender (pass_sender_aet) or the one the series was sent to (pass_receiver_aet); "ip": "sender"
// sends back to the address the series came from.
#include <algorithm>

#include <fmt/format.h>

#include "dicom/storage_scu.h"
#include "targets/target.h"

namespace ferry {
namespace {

constexpr const char* kSenderIp = "sender";

Outcome ToOutcome(dicom::StoreOutcome o) {
  switch (o) {
    case dicom::StoreOutcome::kDelivered: return Outcome::kDelivered;
    case dicom::StoreOutcome::kTransient: return Outcome::kTransient;
    case dicom::StoreOutcome::kPermanent: return Outcome::kPermanent;
  }
  return Outcome::kTransient;
}

dicom::ScuOptions ScuOptionsFor(const TargetOptions& o) {
  dicom::ScuOptions s;
  s.host = o.ip;
  s.port = o.port;
  s.called_ae = o.aet_target;
  s.calling_ae = o.aet_source;
  s.max_pdu = o.max_pdu;
  s.timeout_s = o.timeout_s;
  s.tls.enabled = o.tls.enabled;
  s.tls.key_file = o.tls.key_file;
  s.tls.certificate_file = o.tls.certificate_file;
  s.tls.ca_file = o.tls.ca_file;
  s.tls.verify_peer = o.tls.verify_peer;
  s.tls.verify_host = o.tls.verify_host;
  return s;
}

class DicomSession : public TargetSession {
 public:
  DicomSession(dicom::ScuOptions options, const std::atomic<bool>* cancel)
      : scu_(std::move(options)), cancel_(cancel) {}

  Status Prepare() { return scu_.Prepare(); }

  void Send(const std::vector<OutgoingInstance>& instances,
            std::vector<InstanceResult>* results) override {
    results->assign(instances.size(), InstanceResult{});
    for (size_t i = 0; i < instances.size(); ++i) {
      InstanceResult& r = (*results)[i];
      const OutgoingInstance& instance = instances[i];
      if (cancel_ != nullptr && cancel_->load()) {
        MarkRest(instances, i, {Outcome::kTransient, "not sent: ferry is shutting down"}, results);
        return;
      }
      if (instance.sop_class_uid.empty() || instance.sop_instance_uid.empty()) {
        r = {Outcome::kPermanent,
             "the file has no SOP Class UID or SOP Instance UID; it cannot "
             "be sent with C-STORE"};
        continue;
      }
      dicom::StoreNeed need{instance.sop_class_uid, instance.transfer_syntax_uid};
      if (!scu_.Usable(need)) {
        Status opened = scu_.Open(NeedsFrom(instances, i));
        if (!opened.ok()) {
          MarkRest(
              instances, i,
              {IsPermanent(opened) ? Outcome::kPermanent : Outcome::kTransient, opened.message()},
              results);
          return;
        }
      }
      dicom::StoreResult stored = scu_.Store(instance.path, need, instance.sop_instance_uid);
      r = {ToOutcome(stored.outcome), stored.detail};
      if (!scu_.is_open() && i + 1 < instances.size()) {
        // The association broke: what has not been confirmed goes back to the dispatcher,
        // which retries it later, rather than hammering a peer that just dropped us.
        MarkRest(
            instances, i + 1,
            {Outcome::kTransient,
             "not sent: the association broke off at an earlier instance (" + stored.detail + ")"},
            results);
        return;
      }
    }
  }

 private:
  // The needs of instances[from...], in order, without repetition.
  static std::vector<dicom::StoreNeed> NeedsFrom(const std::vector<OutgoingInstance>& instances,
                                                 size_t from) {
    std::vector<dicom::StoreNeed> needs;
    for (size_t i = from; i < instances.size(); ++i) {
      if (instances[i].sop_class_uid.empty()) {
        continue;
      }
      dicom::StoreNeed n{instances[i].sop_class_uid, instances[i].transfer_syntax_uid};
      if (std::find(needs.begin(), needs.end(), n) == needs.end()) {
        needs.push_back(n);
      }
    }
    return needs;
  }

  static void MarkRest(const std::vector<OutgoingInstance>& instances, size_t from,
                       const InstanceResult& result, std::vector<InstanceResult>* results) {
    for (size_t i = from; i < instances.size(); ++i) {
      (*results)[i] = result;
    }
  }

  dicom::StorageScu scu_;  // releases the association when the session is destroyed
  const std::atomic<bool>* cancel_;
};

class DicomTarget : public Target {
 public:
  explicit DicomTarget(const TargetOptions& o) : Target(o) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) override {
    dicom::ScuOptions scu = ScuOptionsFor(options());
    if (options().ip == kSenderIp) {
      if (task.sender_address.empty()) {
        return Status::FailedPrecondition(fmt::format(
            "target {} sends back to the sender (\"ip\": \"sender\"), but task {} does not "
            "record the sender's address",
            options().name, task.task_id));
      }
      scu.host = task.sender_address;
    }
    if (options().pass_sender_aet && !task.sender_aet.empty()) {
      scu.calling_ae = task.sender_aet;
    } else if (options().pass_receiver_aet && !task.receiver_aet.empty()) {
      scu.calling_ae = task.receiver_aet;
    }
    auto session = std::make_unique<DicomSession>(std::move(scu), task.cancel);
    FERRY_RETURN_IF_ERROR(session->Prepare());
    return std::unique_ptr<TargetSession>(std::move(session));
  }

  Status Check() override {
    if (options().ip == kSenderIp) {
      return Status::FailedPrecondition(
          "this target sends each series back to the address it came from (\"ip\": "
          "\"sender\"); there is no fixed destination to test");
    }
    dicom::StorageScu scu(ScuOptionsFor(options()));
    return scu.Echo();
  }
};

}  // namespace

std::unique_ptr<Target> MakeDicomTarget(const TargetOptions& options) {
  return std::make_unique<DicomTarget>(options);
}

}  // namespace ferry
