// StorageScp: the DICOM network side of the receiver (C-ECHO and C-STORE SCP over DCMTK).
//
// It owns the listening socket and one thread per association, up to `max_associations`; an
// association that arrives while all are busy waits in the listen backlog until one ends,
// instead of being rejected. For each C-STORE it streams the dataset straight to a file that
// the handler names (bit-preserving: the dataset bytes are stored exactly as received, after a
// file meta header), then asks the handler what to answer. It never decides anything about
// images itself: the handler (the receiver) checks the peer, publishes the file and chooses the
// DIMSE status. Nagle's algorithm is disabled on every socket (TCP_NODELAY).
//
// Threads: Run() is the accept loop (call it on one thread); each association runs on its own
// worker thread; handler methods are called from worker threads concurrently.
// DCMTK types stay inside src/dicom; this header has none.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ferry::dicom {

struct ScpTlsOptions {
  bool enabled = false;
  std::string key_file;
  std::string certificate_file;
  std::string ca_file;
  bool require_peer_certificate = true;
};

struct ScpOptions {
  int port = 11112;
  bool accept_any_sop_class = false;
  int max_associations = 32;
  // Connections one peer address may hold at once (0: max_associations); the rest of the
  // workers stay free for other senders.
  int max_associations_per_peer = 0;
  int max_pdu = 131072;
  // How long a peer may take to send its A-ASSOCIATE-RQ, and for each DIMSE message how long it
  // may go without delivering another 64 KiB: a peer that drips bytes cannot hold a worker.
  int network_timeout_s = 30;
  int dimse_timeout_s = 60;
  ScpTlsOptions tls;
};

struct AssociationInfo {
  std::string id;            // unique per process run, used in file names and events
  std::string peer_address;  // IP of the sender
  std::string calling_ae;
  std::string called_ae;
};

// DIMSE status codes the handler may answer a C-STORE with.
enum class StoreStatus : uint16_t {
  kSuccess = 0x0000,
  kOutOfResources = 0xA700,
  kDataSetDoesNotMatchSopClass = 0xA900,
  kCannotUnderstand = 0xC000,
};

struct StoreRequest {
  std::string file_path;         // where the SCP wrote the Part-10 file
  std::string sop_class_uid;     // from the C-STORE command
  std::string sop_instance_uid;  // from the C-STORE command
  uint64_t bytes = 0;            // dataset bytes received
};

enum class AssociationEnd {
  kReleased,  // normal A-RELEASE
  kAborted,   // the peer aborted (A-ABORT)
  kTimedOut,  // network or DIMSE timeout
  kError,     // protocol error, broken connection
  kShutdown,  // aborted by us while shutting down
};

std::string_view AssociationEndName(AssociationEnd end);

struct AssociationSummary {
  AssociationEnd end = AssociationEnd::kReleased;
  std::string detail;  // the DCMTK condition text for anything but kReleased
  uint64_t instances_stored = 0;   // answered with success
  uint64_t instances_failed = 0;   // answered with a failure status, or lost mid-transfer
  uint64_t bytes = 0;
  std::chrono::milliseconds duration{0};
};

enum class AssociationDecision {
  kAccept,
  kRejectCallingAe,    // A-ASSOCIATE-RJ: calling AE title not recognized
  kRejectCalledAe,     // A-ASSOCIATE-RJ: called AE title not recognized
  kRejectNoReason,     // A-ASSOCIATE-RJ: no reason given (e.g. address not allowed)
};

class StoreHandler {
 public:
  virtual ~StoreHandler() = default;
  // Called for each association request before it is accepted. `reason` receives a sentence
  // for the log when the decision is a rejection.
  virtual AssociationDecision OnAssociationRequest(const AssociationInfo& info,
                                                   std::string* reason) = 0;
  // A fresh path where the SCP may write the next instance.
  virtual std::string NewStagingPath() = 0;
  // Whether the receiver can take another instance now (e.g. free disk above the reserve).
  // When false the SCP reads and discards the dataset and answers Out of Resources.
  virtual bool HasRoom(const AssociationInfo& info) = 0;
  // The instance is at request.file_path; the handler now owns that file (publishes or removes
  // it) and returns the status to answer. `error_comment` may receive a short text that is sent
  // in the response's Error Comment.
  virtual StoreStatus OnStore(const AssociationInfo& info, const StoreRequest& request,
                              std::string* error_comment) = 0;
  // A C-STORE could not be received completely (connection lost, timeout, bad PDU); the partial
  // file has already been removed.
  virtual void OnStoreAborted(const AssociationInfo& info, const std::string& reason) = 0;
  virtual void OnAssociationEnd(const AssociationInfo& info, const AssociationSummary& s) = 0;
};

class StorageScp {
 public:
  StorageScp(ScpOptions options, StoreHandler* handler);
  ~StorageScp();
  StorageScp(const StorageScp&) = delete;
  StorageScp& operator=(const StorageScp&) = delete;

  // Opens the listening socket (and the TLS layer). Unavailable if the port is taken;
  // InvalidArgument if a TLS file cannot be loaded, with the reason.
  Status Start();

  // Accepts associations until Stop() is called, then returns (in-flight associations go on).
  void Run();

  // Stops accepting new associations. Thread- and signal-safe (only sets a flag).
  void Stop();

  // Waits until no association is active or `timeout` passes; true when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);

  // Asks every active association to abort at its next message boundary.
  void AbortAll();

  int active_associations() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ferry::dicom
