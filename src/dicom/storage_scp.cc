#include "dicom/storage_scp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <fmt/format.h>

#include "core/logging.h"

namespace ferry::dicom {
namespace {

// Transfer syntaxes ferry stores as received. The order is the preference when a sender offers
// several in one presentation context: keep what the sender prefers among those we accept (we
// never transcode on reception), so we simply take the first proposed syntax on this list.
const char* const kTransferSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax,
    UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,
    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_JPEGProcess1TransferSyntax,
    UID_JPEGProcess2_4TransferSyntax,
    UID_JPEGProcess14TransferSyntax,
    UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,
    UID_JPEGLSLossyTransferSyntax,
    UID_JPEG2000LosslessOnlyTransferSyntax,
    UID_JPEG2000TransferSyntax,
    UID_JPEG2000Part2MulticomponentImageCompressionLosslessOnlyTransferSyntax,
    UID_JPEG2000Part2MulticomponentImageCompressionTransferSyntax,
    UID_RLELosslessTransferSyntax,
    UID_MPEG2MainProfileAtMainLevelTransferSyntax,
    UID_MPEG2MainProfileAtHighLevelTransferSyntax,
    UID_MPEG4HighProfileLevel4_1TransferSyntax,
    UID_MPEG4BDcompatibleHighProfileLevel4_1TransferSyntax,
    UID_MPEG4HighProfileLevel4_2_For2DVideoTransferSyntax,
    UID_MPEG4HighProfileLevel4_2_For3DVideoTransferSyntax,
    UID_MPEG4StereoHighProfileLevel4_2TransferSyntax,
    UID_HEVCMainProfileLevel5_1TransferSyntax,
    UID_HEVCMain10ProfileLevel5_1TransferSyntax,
};

bool IsSupportedTransferSyntax(const char* uid) {
  for (const char* ts : kTransferSyntaxes) {
    if (std::strcmp(ts, uid) == 0) {
      return true;
    }
  }
  return false;
}

bool IsStorageSopClass(const char* uid) {
  for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i) {
    if (std::strcmp(dcmAllStorageSOPClassUIDs[i], uid) == 0) {
      return true;
    }
  }
  return false;
}

std::string Trim(const char* s) {
  std::string out(s);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) {
    out.pop_back();
  }
  size_t start = out.find_first_not_of(' ');
  return start == std::string::npos ? std::string() : out.substr(start);
}

std::string ConditionText(const OFCondition& cond) {
  OFString text;
  DimseCondition::dump(text, cond);
  return text.c_str();
}

std::string NewAssociationId() {
  static std::atomic<uint64_t> counter{0};
  static const std::string prefix = [] {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}-{}", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, getpid());
  }();
  return fmt::format("a{}-{}", prefix, ++counter);
}

void CountBytes(void* context, unsigned long bytes) {
  *static_cast<uint64_t*>(context) = bytes;
}

// True when `path` is exactly a file meta header followed by `dataset_bytes` bytes.
bool FileHoldsDataset(const std::string& path, uint64_t dataset_bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return false;
  }
  unsigned char head[144];
  size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  // Preamble (128), "DICM", then (0002,0000) UL 4 <group length>, explicit VR little endian.
  if (n != sizeof(head) || std::memcmp(head + 128, "DICM", 4) != 0 || head[132] != 0x02 ||
      head[133] != 0 || head[134] != 0 || head[135] != 0) {
    return false;
  }
  uint64_t group_length = head[140] | (head[141] << 8) | (head[142] << 16) |
                          (static_cast<uint64_t>(head[143]) << 24);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return false;
  }
  return static_cast<uint64_t>(st.st_size) == sizeof(head) + group_length + dataset_bytes;
}

// The plain TCP connections of the receiver (QuickAckLayer creates them for DCMTK).
//
// - They acknowledge what they read at once. Senders that leave Nagle's algorithm on (as many
//   DICOM stacks ship) hold back their next small segment until the last one is acknowledged,
//   and Linux delays acknowledgements by up to 40 ms: each C-STORE would wait for that timer
//   (120 small instances: 5.9 s instead of 0.2 s). TCP_QUICKACK is not permanent, so it is set
//   again after every read.
// - They must make progress: from the first byte of a phase (the association request, then each
//   DIMSE message) a peer has `window` to deliver the next 64 KiB, else the read fails and the
//   worker is freed. DCMTK's own timeout restarts on every byte, so a peer dripping a byte every
//   few seconds could hold a worker for ever.
// - At most `per_peer` connections of one peer address are accepted at once.
// Each connection is used by the one worker thread that accepted it; the worker finds it
// through CurrentConnection() to start a new phase.
class QuickAckLayer;

class GuardedConnection : public DcmTCPConnection {
 public:
  GuardedConnection(DcmNativeSocketType socket, QuickAckLayer* layer, std::string peer,
                    std::chrono::seconds window);
  ~GuardedConnection() override;

  ssize_t read(void* buf, size_t nbyte) override {
    auto now = std::chrono::steady_clock::now();
    if (!armed_) {
      armed_ = true;
      deadline_ = now + window_;
      progress_ = 0;
    } else if (now > deadline_) {
      errno = ETIMEDOUT;
      return -1;
    }
    ssize_t n = DcmTCPConnection::read(buf, nbyte);
    int one = 1;
    setsockopt(getSocket(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    if (n > 0) {
      progress_ += static_cast<size_t>(n);
      if (progress_ >= kProgressBytes) {
        deadline_ = std::chrono::steady_clock::now() + window_;
        progress_ = 0;
      }
    }
    return n;
  }

  // A new phase (the next DIMSE message): its clock starts with its first byte.
  void StartPhase() { armed_ = false; }

  static GuardedConnection* Current();

 private:
  static constexpr size_t kProgressBytes = 64 * 1024;
  QuickAckLayer* layer_;
  std::string peer_;
  std::chrono::seconds window_;
  bool armed_ = true;  // the association request's clock starts at accept
  std::chrono::steady_clock::time_point deadline_;
  size_t progress_ = 0;
};

thread_local GuardedConnection* current_connection = nullptr;

class QuickAckLayer : public DcmTransportLayer {
 public:
  QuickAckLayer() = default;
  void Configure(int per_peer, int window_s) {
    per_peer_ = per_peer;
    window_ = std::chrono::seconds(window_s);
  }

  DcmTransportConnection* createConnection(DcmNativeSocketType socket,
                                           OFBool use_secure_layer) override {
    if (use_secure_layer) {
      return nullptr;
    }
    std::string peer = PeerAddress(socket);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (per_peer_ > 0 && connections_[peer] >= per_peer_) {
        Logger("dicom")->warn("refusing a connection from {}: it already holds {} connection(s) "
                              "(receiver.max_associations_per_peer)",
                              peer, connections_[peer]);
        return nullptr;  // DCMTK closes the socket
      }
      ++connections_[peer];
    }
    return new GuardedConnection(socket, this, peer, window_);
  }

  void Release(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu_);
    if (--connections_[peer] <= 0) {
      connections_.erase(peer);
    }
  }

 private:
  static std::string PeerAddress(DcmNativeSocketType socket) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    char text[INET6_ADDRSTRLEN] = {};
    if (getpeername(socket, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      if (addr.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
      } else if (addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text,
                  sizeof(text));
      }
    }
    return text;
  }

  std::mutex mu_;
  std::map<std::string, int> connections_;
  int per_peer_ = 0;
  std::chrono::seconds window_{30};
};

GuardedConnection::GuardedConnection(DcmNativeSocketType socket, QuickAckLayer* layer,
                                     std::string peer, std::chrono::seconds window)
    : DcmTCPConnection(socket), layer_(layer), peer_(std::move(peer)), window_(window) {
  deadline_ = std::chrono::steady_clock::now() + window_;
  current_connection = this;
}

GuardedConnection::~GuardedConnection() {
  layer_->Release(peer_);
  if (current_connection == this) {
    current_connection = nullptr;
  }
}

GuardedConnection* GuardedConnection::Current() { return current_connection; }

// Workers compete in accept() on DCMTK's listening socket; if it blocked, the losers would
// hang in accept() until the next connection. DCMTK does not expose the socket, so find it among
// this process's descriptors: the listening TCP socket bound to our port.
bool MakeListenSocketNonBlocking(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
      continue;
    }
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
      continue;
    }
    int bound = 0;
    if (addr.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
    if (bound == port) {
      int flags = fcntl(fd, F_GETFL);
      return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
    }
  }
  return false;
}

}  // namespace

std::string_view AssociationEndName(AssociationEnd end) {
  switch (end) {
    case AssociationEnd::kReleased: return "released";
    case AssociationEnd::kAborted: return "aborted";
    case AssociationEnd::kTimedOut: return "timed out";
    case AssociationEnd::kError: return "error";
    case AssociationEnd::kShutdown: return "shutdown";
  }
  return "unknown";
}

struct StorageScp::Impl {
  ScpOptions options;
  StoreHandler* handler;
  T_ASC_Network* network = nullptr;
  DcmTLSTransportLayer* tls = nullptr;
  QuickAckLayer quick_ack;
  std::atomic<bool> stop{false};
  std::atomic<bool> abort_all{false};
  bool listen_nonblocking = false;
  mutable std::mutex mu;
  std::condition_variable cv;
  int active = 0;        // associations being served
  int live_workers = 0;  // worker threads still running

  void WorkerLoop();

  void Negotiate(T_ASC_Association* assoc, const AssociationInfo& info);
  void Serve(T_ASC_Association* assoc, AssociationInfo info);
  AssociationSummary Loop(T_ASC_Association* assoc, const AssociationInfo& info);
  // Returns false when the association can no longer be used.
  bool HandleStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                   T_DIMSE_C_StoreRQ* req, const AssociationInfo& info, AssociationSummary* sum,
                   std::string* fatal);
};

StorageScp::StorageScp(ScpOptions options, StoreHandler* handler) : impl_(new Impl) {
  impl_->options = std::move(options);
  impl_->handler = handler;
}

StorageScp::~StorageScp() {
  Stop();
  bool workers_gone;
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    workers_gone = impl_->cv.wait_for(lock, std::chrono::seconds(3),
                                      [this] { return impl_->live_workers == 0; });
  }
  if (!workers_gone) {
    // A worker is still blocked in DCMTK (a peer that never sent its association request, or a
    // transfer past its grace). It still uses the network object, so leave it alive: this only
    // happens when the process is about to exit.
    return;
  }
  if (impl_->network != nullptr) {
    ASC_dropNetwork(&impl_->network);
  }
  delete impl_->tls;
  delete impl_;
}

Status StorageScp::Start() {
  // DCMTK reads TCP_NODELAY for every socket it accepts or opens; without it, Nagle's algorithm
  // makes DIMSE exchanges over loopback 10-30 times slower.
  setenv("TCP_NODELAY", "1", 1);
  dcmDisableGethostbyaddr.set(OFTrue);  // no reverse DNS per association
  OFCondition cond = ASC_initializeNetwork(NET_ACCEPTOR, impl_->options.port,
                                           impl_->options.network_timeout_s, &impl_->network);
  if (cond.bad()) {
    return Status::Unavailable(fmt::format(
        "cannot listen on DICOM port {}: {}; is another DICOM receiver already using it? Change "
        "receiver.port or stop the other program",
        impl_->options.port, ConditionText(cond)));
  }
  impl_->listen_nonblocking = MakeListenSocketNonBlocking(impl_->options.port);
  const ScpTlsOptions& t = impl_->options.tls;
  if (!t.enabled) {
    int per_peer = impl_->options.max_associations_per_peer;
    impl_->quick_ack.Configure(per_peer > 0 ? per_peer : impl_->options.max_associations,
                               impl_->options.network_timeout_s);
    cond = ASC_setTransportLayer(impl_->network, &impl_->quick_ack, 0);
    if (cond.bad()) {
      return Status::Internal("cannot set the TCP transport layer: " + ConditionText(cond));
    }
  }
  if (t.enabled) {
    auto* layer = new DcmTLSTransportLayer(NET_ACCEPTOR, nullptr, OFTrue);
    impl_->tls = layer;
    layer->setTLSProfile(TSP_Profile_BCP195);
    if (layer->activateCipherSuites().bad()) {
      return Status::InvalidArgument("cannot activate the TLS cipher suites");
    }
    if (layer->setPrivateKeyFile(t.key_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::InvalidArgument("cannot load the TLS private key " + t.key_file +
                                     "; it must be an unencrypted PEM key");
    }
    if (layer->setCertificateFile(t.certificate_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::InvalidArgument("cannot load the TLS certificate " + t.certificate_file +
                                     "; it must be a PEM certificate");
    }
    if (!layer->checkPrivateKeyMatchesCertificate()) {
      return Status::InvalidArgument("the TLS private key " + t.key_file +
                                     " does not match the certificate " + t.certificate_file);
    }
    if (!t.ca_file.empty() &&
        layer->addTrustedCertificateFile(t.ca_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::InvalidArgument("cannot load the TLS CA certificate " + t.ca_file);
    }
    layer->setCertificateVerification(t.require_peer_certificate ? DCV_requireCertificate
                                                                 : DCV_ignoreCertificate);
    cond = ASC_setTransportLayer(impl_->network, layer, 0);
    if (cond.bad()) {
      return Status::Internal("cannot set the TLS transport layer: " + ConditionText(cond));
    }
  }
  return Status::Ok();
}

void StorageScp::Run() {
  // One worker per allowed association, each accepting for itself: a peer that connects and
  // then stays silent (or sends half a PDU) occupies only its own worker while DCMTK waits for
  // its A-ASSOCIATE-RQ, never the others. When every worker is busy, nobody accepts and new
  // connections wait in the kernel's listen backlog instead of being rejected.
  int n = impl_->options.max_associations;
  for (int i = 0; i < n; ++i) {
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      ++impl_->live_workers;
    }
    std::thread([this] {
      impl_->WorkerLoop();
      std::lock_guard<std::mutex> lock(impl_->mu);
      --impl_->live_workers;
      impl_->cv.notify_all();
    }).detach();
  }
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [this] { return impl_->stop.load(); });
}

void StorageScp::Impl::WorkerLoop() {
  auto log = Logger("dicom");
  while (!stop.load()) {
    T_ASC_Association* assoc = nullptr;
    // Waits up to one second for a connection (so that Stop() is noticed), accepts it, and
    // reads the A-ASSOCIATE-RQ within receiver.network_timeout.
    OFCondition cond = ASC_receiveAssociation(network, &assoc, options.max_pdu, nullptr, nullptr,
                                              options.tls.enabled ? OFTrue : OFFalse,
                                              DUL_NOBLOCK, 1);
    if (cond == DUL_NOASSOCIATIONREQUEST ||
        (cond.bad() && listen_nonblocking && std::string(cond.text()).find("accept failed") !=
                                                 std::string::npos)) {
      // No connection, or another worker accepted it first.
      if (assoc != nullptr) {
        ASC_destroyAssociation(&assoc);
      }
      continue;
    }
    AssociationInfo info;
    info.id = NewAssociationId();
    if (assoc != nullptr && assoc->params != nullptr) {
      info.peer_address = Trim(assoc->params->DULparams.callingPresentationAddress);
      info.calling_ae = Trim(assoc->params->DULparams.callingAPTitle);
      info.called_ae = Trim(assoc->params->DULparams.calledAPTitle);
    }
    if (cond.good() && info.calling_ae.empty() && info.called_ae.empty()) {
      // A TCP connection that closed without an A-ASSOCIATE-RQ: a port probe (monitoring, load
      // balancer health check). Not worth more than a debug line.
      log->debug("connection from {} closed without an association request", info.peer_address);
      ASC_dropAssociation(assoc);
      ASC_destroyAssociation(&assoc);
      continue;
    }
    if (cond.bad()) {
      log->warn("connection from {} failed before negotiation: {}",
                info.peer_address.empty() ? "unknown peer" : info.peer_address,
                ConditionText(cond));
      if (assoc != nullptr) {
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
      }
      continue;
    }
    if (stop.load()) {
      // Accepted just as ferry began to shut down: ask the peer to try again later.
      T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                                 ASC_REASON_SP_PRES_TEMPORARYCONGESTION};
      ASC_rejectAssociation(assoc, &rej);
      ASC_dropAssociation(assoc);
      ASC_destroyAssociation(&assoc);
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      ++active;
    }
    Serve(assoc, info);
  }
}

void StorageScp::Stop() {
  impl_->stop.store(true);
  impl_->cv.notify_all();
}

bool StorageScp::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [this] { return impl_->active == 0; });
}

void StorageScp::AbortAll() { impl_->abort_all.store(true); }

int StorageScp::active_associations() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->active;
}

void StorageScp::Impl::Negotiate(T_ASC_Association* assoc, const AssociationInfo& info) {
  int count = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) {
      continue;
    }
    bool verification = std::strcmp(pc.abstractSyntax, UID_VerificationSOPClass) == 0;
    bool wanted = verification || options.accept_any_sop_class ||
                  IsStorageSopClass(pc.abstractSyntax);
    if (!wanted) {
      ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                    ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
      continue;
    }
    const char* chosen = nullptr;
    for (int t = 0; t < pc.transferSyntaxCount && chosen == nullptr; ++t) {
      if (IsSupportedTransferSyntax(pc.proposedTransferSyntaxes[t])) {
        chosen = pc.proposedTransferSyntaxes[t];
      }
    }
    if (chosen == nullptr) {
      ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                    ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
      continue;
    }
    ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, chosen);
  }
}

void StorageScp::Impl::Serve(T_ASC_Association* assoc, AssociationInfo info) {
  auto log = Logger("dicom");
  std::string reason;
  AssociationDecision decision = handler->OnAssociationRequest(info, &reason);
  if (decision != AssociationDecision::kAccept) {
    T_ASC_RejectParameters rej;
    rej.result = ASC_RESULT_REJECTEDPERMANENT;
    rej.source = ASC_SOURCE_SERVICEUSER;
    rej.reason = decision == AssociationDecision::kRejectCallingAe
                     ? ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED
                 : decision == AssociationDecision::kRejectCalledAe
                     ? ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED
                     : ASC_REASON_SU_NOREASON;
    ASC_rejectAssociation(assoc, &rej);
  } else {
    Negotiate(assoc, info);
    OFCondition cond = ASC_acknowledgeAssociation(assoc);
    if (cond.bad()) {
      // E.g. an empty calling AE title, which DCMTK cannot put into the answer: tell the peer
      // (A-ABORT) and free the worker instead of leaving the connection open.
      ASC_abortAssociation(assoc);
      AssociationSummary sum;
      sum.end = AssociationEnd::kError;
      sum.detail = "cannot acknowledge association: " + ConditionText(cond);
      handler->OnAssociationEnd(info, sum);
    } else {
      AssociationSummary sum = Loop(assoc, info);
      handler->OnAssociationEnd(info, sum);
    }
  }
  // After a release the peer closes the connection; a peer that does not is not waited for
  // longer than this (DCMTK's default is 180 s per worker).
  ASC_dropSCPAssociation(assoc, 2);
  ASC_destroyAssociation(&assoc);
  {
    std::lock_guard<std::mutex> lock(mu);
    --active;
  }
  cv.notify_all();
}

AssociationSummary StorageScp::Impl::Loop(T_ASC_Association* assoc, const AssociationInfo& info) {
  AssociationSummary sum;
  auto started = std::chrono::steady_clock::now();
  auto idle_since = started;
  bool new_message = true;
  for (;;) {
    if (abort_all.load()) {
      ASC_abortAssociation(assoc);
      sum.end = AssociationEnd::kShutdown;
      sum.detail = "aborted because ferry is shutting down";
      break;
    }
    T_ASC_PresentationContextID pres_id = 0;
    T_DIMSE_Message msg;
    if (new_message) {
      if (GuardedConnection* c = GuardedConnection::Current()) {
        c->StartPhase();  // the next message's clock starts with its first byte
      }
      new_message = false;
    }
    // Poll in one-second steps so that a shutdown can abort an idle association promptly.
    OFCondition cond =
        DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 1, &pres_id, &msg, nullptr);
    if (cond == DIMSE_NODATAAVAILABLE) {
      if (std::chrono::steady_clock::now() - idle_since >
          std::chrono::seconds(options.dimse_timeout_s)) {
        ASC_abortAssociation(assoc);
        sum.end = AssociationEnd::kTimedOut;
        sum.detail = fmt::format("no message from the peer for {} s (receiver.dimse_timeout)",
                                 options.dimse_timeout_s);
        break;
      }
      continue;
    }
    idle_since = std::chrono::steady_clock::now();
    new_message = true;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc);
      sum.end = AssociationEnd::kReleased;
      break;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) {
      sum.end = AssociationEnd::kAborted;
      sum.detail = "the peer aborted the association";
      break;
    }
    if (cond.bad()) {
      ASC_abortAssociation(assoc);
      sum.end = AssociationEnd::kError;
      sum.detail = ConditionText(cond);
      break;
    }
    if (msg.CommandField == DIMSE_C_ECHO_RQ) {
      cond = DIMSE_sendEchoResponse(assoc, pres_id, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
    } else if (msg.CommandField == DIMSE_C_STORE_RQ) {
      std::string fatal;
      if (!HandleStore(assoc, pres_id, &msg.msg.CStoreRQ, info, &sum, &fatal)) {
        ASC_abortAssociation(assoc);
        sum.end = fatal.find("timeout") != std::string::npos ||
                          fatal.find("Timeout") != std::string::npos
                      ? AssociationEnd::kTimedOut
                      : AssociationEnd::kError;
        sum.detail = fatal;
        break;
      }
      continue;
    } else {
      Logger("dicom")->warn("association {} from {} ({}): unsupported DIMSE command 0x{:04x}; "
                            "aborting",
                            info.id, info.calling_ae, info.peer_address,
                            static_cast<unsigned>(msg.CommandField));
      ASC_abortAssociation(assoc);
      sum.end = AssociationEnd::kError;
      sum.detail = fmt::format("unsupported DIMSE command 0x{:04x}",
                               static_cast<unsigned>(msg.CommandField));
      break;
    }
    if (cond.bad()) {
      ASC_abortAssociation(assoc);
      sum.end = AssociationEnd::kError;
      sum.detail = "cannot send response: " + ConditionText(cond);
      break;
    }
  }
  sum.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  return sum;
}

bool StorageScp::Impl::HandleStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                                   T_DIMSE_C_StoreRQ* req, const AssociationInfo& info,
                                   AssociationSummary* sum, std::string* fatal) {
  T_DIMSE_C_StoreRSP rsp;
  std::memset(&rsp, 0, sizeof(rsp));
  rsp.MessageIDBeingRespondedTo = req->MessageID;
  OFStandard::strlcpy(rsp.AffectedSOPClassUID, req->AffectedSOPClassUID,
                      sizeof(rsp.AffectedSOPClassUID));
  OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req->AffectedSOPInstanceUID,
                      sizeof(rsp.AffectedSOPInstanceUID));
  rsp.DataSetType = DIMSE_DATASET_NULL;
  rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
  std::string comment;

  if (!handler->HasRoom(info)) {
    DIC_UL bytes = 0;
    DIC_UL pdvs = 0;
    OFCondition cond = DIMSE_ignoreDataSet(assoc, DIMSE_BLOCKING, options.dimse_timeout_s, &bytes,
                                           &pdvs);
    if (cond.bad()) {
      *fatal = "lost while discarding a dataset: " + ConditionText(cond);
      ++sum->instances_failed;
      return false;
    }
    rsp.DimseStatus = static_cast<DIC_US>(StoreStatus::kOutOfResources);
    comment = "ferry: free disk space below the configured reserve";
    ++sum->instances_failed;
  } else {
    std::string path = handler->NewStagingPath();
    DcmOutputFileStream* stream = nullptr;
    OFCondition cond = DIMSE_createFilestream(path.c_str(), req, assoc, pres_id,
                                              /*writeMetaheader=*/OFTrue, &stream);
    if (cond.bad()) {
      // Cannot create the staging file: drain the dataset and answer Out of Resources.
      DIC_UL bytes = 0;
      DIC_UL pdvs = 0;
      Logger("dicom")->error("cannot create staging file {}: {}", path, ConditionText(cond));
      cond = DIMSE_ignoreDataSet(assoc, DIMSE_BLOCKING, options.dimse_timeout_s, &bytes, &pdvs);
      ++sum->instances_failed;
      if (cond.bad()) {
        *fatal = "lost while discarding a dataset: " + ConditionText(cond);
        return false;
      }
      rsp.DimseStatus = static_cast<DIC_US>(StoreStatus::kOutOfResources);
      comment = "ferry: cannot create a file in the spool";
    } else {
      T_ASC_PresentationContextID data_pres_id = pres_id;
      uint64_t received = 0;
      cond = DIMSE_receiveDataSetInFile(assoc, DIMSE_BLOCKING, options.dimse_timeout_s,
                                        &data_pres_id, stream, &CountBytes, &received);
      bool write_ok = stream->good();
      delete stream;  // flushes and closes the file
      // The last buffer is written when the stream is destroyed, where DCMTK cannot report a
      // failure: check that the file holds the meta header plus every byte received.
      write_ok = write_ok && FileHoldsDataset(path, received);
      if (cond.bad() || !write_ok) {
        unlink(path.c_str());
        ++sum->instances_failed;
        std::string why = cond.bad() ? ConditionText(cond) : "cannot write the staging file";
        handler->OnStoreAborted(info, why);
        if (cond.bad()) {
          *fatal = "transfer of an instance broke off: " + why;
          return false;
        }
        rsp.DimseStatus = static_cast<DIC_US>(StoreStatus::kOutOfResources);
        comment = "ferry: cannot write to the spool";
      } else {
        StoreRequest request;
        request.file_path = path;
        request.sop_class_uid = Trim(req->AffectedSOPClassUID);
        request.sop_instance_uid = Trim(req->AffectedSOPInstanceUID);
        request.bytes = received;
        StoreStatus status = handler->OnStore(info, request, &comment);
        rsp.DimseStatus = static_cast<DIC_US>(status);
        if (status == StoreStatus::kSuccess) {
          ++sum->instances_stored;
          sum->bytes += request.bytes;
        } else {
          ++sum->instances_failed;
        }
      }
    }
  }
  DcmDataset* detail = nullptr;
  if (!comment.empty() && rsp.DimseStatus != STATUS_Success) {
    detail = new DcmDataset;
    detail->putAndInsertString(DCM_ErrorComment, comment.substr(0, 64).c_str());
  }
  OFCondition cond = DIMSE_sendStoreResponse(assoc, pres_id, req, &rsp, detail);
  delete detail;
  if (cond.bad()) {
    *fatal = "cannot send the C-STORE response: " + ConditionText(cond);
    return false;
  }
  return true;
}

}  // namespace ferry::dicom
