#include "dicom/storage_scu.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <fmt/format.h>

#include "core/scoped_fd.h"
#include "core/logging.h"

namespace ferry::dicom {
namespace {

// DICOM numbers presentation contexts with the odd numbers 1..255.
constexpr size_t kMaxPresentationContexts = 128;

// The uncompressed transfer syntaxes every destination must accept, in the order ferry prefers
// them when it has to convert: explicit VR keeps the value representations.
const char* const kFallbackSyntaxes[] = {UID_LittleEndianExplicitTransferSyntax,
                                         UID_LittleEndianImplicitTransferSyntax};

// Process-wide set-up that DCMTK needs before the first association: done once, never undone.
void InitializeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK reads TCP_NODELAY for every socket it opens; without it, Nagle's algorithm makes
    // each C-STORE wait for the peer's delayed ACK (10-30 times slower over loopback).
    setenv("TCP_NODELAY", "1", 1);
    // DCMTK writes to sockets with write(2): a peer that closes the connection mid-transfer
    // must make that write fail with EPIPE, not kill ferry with SIGPIPE.
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
    // Decoders for converting compressed instances for destinations that accept only
    // uncompressed transfer syntaxes (deflate is built into dcmdata; JPEG 2000 has no decoder
    // in DCMTK).
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

// DCMTK's text for a condition and the conditions under it, without its "0006:031c" codes,
// on one line.
std::string ConditionText(const OFCondition& cond) {
  OFString dump;
  DimseCondition::dump(dump, cond);
  std::string out;
  size_t start = 0;
  std::string text = dump.c_str();
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos
                                                                   : end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    if (line.size() > 10 && line[4] == ':' && line[9] == ' ') {
      line = line.substr(10);
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    if (!line.empty()) {
      out += (out.empty() ? "" : "; ") + line;
    }
  }
  return out;
}

bool Contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

std::string Hex(uint16_t status) { return fmt::format("0x{:04X}", status); }

// Words for the C-STORE status codes of PS3.4 B.2.3 and PS3.7 C.
std::string StatusMeaning(uint16_t s) {
  if (s == 0x0000) return "success";
  if (s == 0x0001 || s == 0xB000) return "coercion of data elements";
  if (s == 0xB006) return "elements discarded";
  if (s == 0xB007) return "data set does not match SOP class (warning)";
  if ((s & 0xFF00) == 0xA700) return "out of resources";
  if ((s & 0xFF00) == 0xA900) return "data set does not match SOP class";
  if ((s & 0xF000) == 0xC000) return "cannot understand";
  switch (s) {
    case 0x0111: return "duplicate SOP instance";
    case 0x0117: return "invalid SOP instance";
    case 0x0122: return "SOP class not supported";
    case 0x0124: return "not authorized";
    case 0x0210: return "duplicate invocation";
    case 0x0211: return "unrecognized operation";
    case 0x0212: return "mistyped argument";
    case 0x0213: return "resource limitation";
    case 0xFE00: return "cancelled";
  }
  return "unknown status";
}

StoreOutcome ClassifyStatus(uint16_t s) {
  if (s == 0x0000 || s == 0x0001 || (s & 0xF000) == 0xB000) {
    return StoreOutcome::kDelivered;
  }
  if ((s & 0xFF00) == 0xA700 || s == 0x0213 || s == 0xFE00) {
    return StoreOutcome::kTransient;
  }
  if ((s & 0xFF00) == 0xA900 || (s & 0xF000) == 0xC000 || s == 0x0111 || s == 0x0117 ||
      s == 0x0122 || s == 0x0124 || s == 0x0211 || s == 0x0212) {
    return StoreOutcome::kPermanent;
  }
  // A failure code ferry does not know: the destination may recover, so let the dispatcher's
  // retry limit decide.
  return StoreOutcome::kTransient;
}

std::string CommandName(unsigned command) {
  return command == DIMSE_C_STORE_RSP ? "C-STORE-RSP" : fmt::format("command 0x{:04X}", command);
}

// Where the dataset of a Part-10 file starts and in which transfer syntax it is encoded.
struct FileLayout {
  bool has_meta = false;  // "DICM" after the preamble and a readable group 0002
  std::string transfer_syntax_uid;
  uint64_t dataset_offset = 0;
  uint64_t size = 0;
};

bool ReadAt(int fd, uint64_t offset, void* buf, size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

uint16_t Le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Walks the file meta information (always explicit VR little endian) without DCMTK, because
// only the transfer syntax and the end of group 0002 are needed. A file without meta
// information, or with one this walk cannot follow, gets has_meta = false and goes through
// DCMTK's parser instead.
FileLayout ReadLayout(int fd, uint64_t size) {
  FileLayout layout;
  layout.size = size;
  unsigned char magic[4];
  if (size < 132 + 12 || !ReadAt(fd, 128, magic, 4) || std::memcmp(magic, "DICM", 4) != 0) {
    return layout;
  }
  uint64_t pos = 132;
  std::string ts;
  while (pos + 8 <= size) {
    unsigned char h[12];
    if (!ReadAt(fd, pos, h, 8)) {
      return layout;
    }
    uint16_t group = Le16(h);
    uint16_t element = Le16(h + 2);
    if (group != 0x0002) {
      break;
    }
    uint64_t length;
    uint64_t header;
    static const char* const kLongVrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                           "SV", "UC", "UN", "UR", "UT", "UV"};
    bool long_vr = false;
    for (const char* vr : kLongVrs) {
      long_vr = long_vr || (h[4] == vr[0] && h[5] == vr[1]);
    }
    if (long_vr) {
      if (pos + 12 > size || !ReadAt(fd, pos + 8, h + 8, 4)) {
        return layout;
      }
      length = Le32(h + 8);
      header = 12;
    } else {
      length = Le16(h + 6);
      header = 8;
    }
    if (length == 0xFFFFFFFFu || pos + header + length > size) {
      return layout;  // undefined length or truncated: let DCMTK sort it out
    }
    if (element == 0x0010 && length > 0 && length <= 64) {
      ts.resize(length);
      if (!ReadAt(fd, pos + header, ts.data(), length)) {
        return layout;
      }
      while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) {
        ts.pop_back();
      }
    }
    pos += header + length;
  }
  if (ts.empty()) {
    return layout;
  }
  layout.has_meta = true;
  layout.transfer_syntax_uid = ts;
  layout.dataset_offset = pos;
  return layout;
}

// C-STORE-RQ command set (PS3.7 9.3.1.1), implicit VR little endian as every DIMSE command.
void AppendElement(std::string* out, uint16_t element, const std::string& value) {
  unsigned char h[8] = {0, 0, static_cast<unsigned char>(element & 0xFF),
                        static_cast<unsigned char>(element >> 8)};
  uint32_t length = static_cast<uint32_t>(value.size());
  for (int i = 0; i < 4; ++i) {
    h[4 + i] = static_cast<unsigned char>(length >> (8 * i));
  }
  out->append(reinterpret_cast<const char*>(h), sizeof(h));
  out->append(value);
}

std::string Us(uint16_t v) {
  return std::string{static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)};
}

std::string Uid(const std::string& uid) {
  std::string v = uid;
  if (v.size() % 2 != 0) {
    v.push_back('\0');
  }
  return v;
}

std::string EncodeStoreCommand(const std::string& sop_class, const std::string& sop_instance,
                               uint16_t message_id) {
  std::string body;
  AppendElement(&body, 0x0002, Uid(sop_class));       // Affected SOP Class UID
  AppendElement(&body, 0x0100, Us(DIMSE_C_STORE_RQ));  // Command Field
  AppendElement(&body, 0x0110, Us(message_id));        // Message ID
  AppendElement(&body, 0x0700, Us(DIMSE_PRIORITY_MEDIUM));
  AppendElement(&body, 0x0800, Us(DIMSE_DATASET_PRESENT));  // Command Data Set Type
  AppendElement(&body, 0x1000, Uid(sop_instance));     // Affected SOP Instance UID
  uint32_t length = static_cast<uint32_t>(body.size());
  std::string group_length(4, '\0');
  for (int i = 0; i < 4; ++i) {
    group_length[i] = static_cast<char>(length >> (8 * i));
  }
  std::string out;
  AppendElement(&out, 0x0000, group_length);  // Command Group Length
  return out + body;
}

enum class CloseMode {
  kRelease,  // A-RELEASE, as at the end of a transfer
  kAbort,    // A-ABORT: the peer is too slow or answered nonsense
  kDrop,     // the connection is already broken: just free it
};

// One presentation context we proposed, and what the destination answered.
struct Context {
  T_ASC_PresentationContextID id = 0;
  std::string sop_class_uid;
  std::string transfer_syntax_uid;
  bool accepted = false;
  T_ASC_P_ResultReason result = ASC_P_NOREASON;
};

std::string CamelToWords(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool upper = c >= 'A' && c <= 'Z';
    if (i > 0 && upper) {
      char prev = name[i - 1];
      bool prev_lower = prev >= 'a' && prev <= 'z';
      bool next_lower = i + 1 < name.size() && name[i + 1] >= 'a' && name[i + 1] <= 'z';
      bool prev_upper = prev >= 'A' && prev <= 'Z';
      if (prev_lower || (prev_upper && next_lower)) {
        out.push_back(' ');
      }
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string SopClassName(const std::string& uid) {
  const char* name = dcmFindNameOfUID(uid.c_str(), nullptr);
  return name == nullptr ? uid : CamelToWords(name);
}

std::string TransferSyntaxName(const std::string& uid) {
  DcmXfer xfer(uid.c_str());
  return xfer.getXfer() == EXS_Unknown ? uid : std::string(xfer.getXferName());
}

struct StorageScu::Impl {
  ScuOptions options;
  T_ASC_Network* network = nullptr;
  DcmTLSTransportLayer* tls = nullptr;
  T_ASC_Association* assoc = nullptr;
  std::vector<Context> contexts;     // of the open association
  std::set<StoreNeed> covered;       // needs the open association proposed contexts for
  std::vector<StoreNeed> history;    // needs of every association so far, most recent first
  DIC_US next_message_id = 1;
  bool prepared = false;
  Status prepare_status;

  std::string Peer() const { return fmt::format("{}:{}", options.host, options.port); }
  Status Prepare();
  Status SetUpNetwork();
  Status Associate(const std::vector<std::pair<std::string, std::string>>& contexts);
  Status ConnectError(const OFCondition& cond) const;
  Status RejectError(const T_ASC_RejectParameters& rej) const;
  void Close(CloseMode mode);
  const Context* FindAccepted(const std::string& sop_class, const std::string& ts) const;
  StoreResult Refused(const StoreNeed& need) const;
  StoreResult Broken(const std::string& what, const OFCondition& cond);
  StoreResult SendRaw(int fd, const FileLayout& layout, const Context& pc,
                      const std::string& sop_class, const std::string& sop_instance,
                      DIC_US message_id);
  StoreResult SendDataset(const std::string& path, const std::string& stored_ts,
                          const Context& pc, const std::string& sop_class,
                          const std::string& sop_instance, DIC_US message_id);
  StoreResult AwaitResponse(DIC_US message_id);
};

StorageScu::StorageScu(ScuOptions options) : impl_(new Impl) {
  impl_->options = std::move(options);
}

StorageScu::~StorageScu() {
  Release();
  if (impl_->network != nullptr) {
    ASC_dropNetwork(&impl_->network);
  }
  delete impl_->tls;
  delete impl_;
}

bool StorageScu::is_open() const { return impl_->assoc != nullptr; }

bool StorageScu::Usable(const StoreNeed& need) {
  Impl& m = *impl_;
  if (m.assoc == nullptr) {
    return false;
  }
  // Between our requests a destination sends nothing unless it ends the association (an
  // A-RELEASE-RQ or A-ABORT, or it closes the connection), so anything readable means that.
  if (ASC_dataWaiting(m.assoc, 0)) {
    T_ASC_PresentationContextID pres_id = 0;
    T_DIMSE_Message msg{};
    OFCondition cond = DIMSE_receiveCommand(m.assoc, DIMSE_NONBLOCKING, 0, &pres_id, &msg,
                                            nullptr);
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(m.assoc);
    }
    Logger("dicom")->debug("{} ended the idle association ({}); opening a new one", m.Peer(),
                           ConditionText(cond));
    m.Close(CloseMode::kDrop);
    return false;
  }
  return m.covered.count(need) > 0;
}

void StorageScu::Release() { impl_->Close(CloseMode::kRelease); }

Status StorageScu::Impl::Prepare() {
  // Once only, success or failure: a half set-up TLS layer must never be used.
  if (!prepared) {
    prepared = true;
    prepare_status = SetUpNetwork();
  }
  return prepare_status;
}

Status StorageScu::Impl::SetUpNetwork() {
  InitializeOnce();
  // A requestor opens no socket here; the timeout applies to association negotiation and
  // release. The connect timeout is DCMTK's process-wide dcmConnectionTimeout.
  dcmConnectionTimeout.set(options.timeout_s);
  OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, options.timeout_s, &network);
  if (cond.bad()) {
    network = nullptr;
    return Status::Internal("cannot initialize the DICOM network: " + ConditionText(cond));
  }
  const ScuTlsOptions& t = options.tls;
  if (!t.enabled) {
    return Status::Ok();
  }
  tls = new DcmTLSTransportLayer(NET_REQUESTOR, nullptr, OFTrue);
  tls->setTLSProfile(TSP_Profile_BCP195);
  if (tls->activateCipherSuites().bad()) {
    return Status::FailedPrecondition("cannot activate the TLS cipher suites");
  }
  if (!t.key_file.empty() || !t.certificate_file.empty()) {
    if (t.key_file.empty() || t.certificate_file.empty()) {
      return Status::FailedPrecondition(
          "a TLS client certificate needs both tls.key and tls.certificate");
    }
    if (tls->setPrivateKeyFile(t.key_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::FailedPrecondition("cannot load the TLS private key " + t.key_file +
                                        "; it must be an unencrypted PEM key");
    }
    if (tls->setCertificateFile(t.certificate_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::FailedPrecondition("cannot load the TLS certificate " + t.certificate_file +
                                        "; it must be a PEM certificate");
    }
    if (!tls->checkPrivateKeyMatchesCertificate()) {
      return Status::FailedPrecondition("the TLS private key " + t.key_file +
                                        " does not match the certificate " + t.certificate_file);
    }
  }
  if (!t.ca_file.empty()) {
    if (tls->addTrustedCertificateFile(t.ca_file.c_str(), DCF_Filetype_PEM).bad()) {
      return Status::FailedPrecondition("cannot load the TLS CA certificate " + t.ca_file);
    }
  } else if (t.verify_peer) {
    tls->addTrustedCertificateDir("/etc/ssl/certs", DCF_Filetype_PEM);
  }
  tls->setCertificateVerification(t.verify_peer ? DCV_requireCertificate : DCV_ignoreCertificate);
  if (t.verify_peer && t.verify_host) {
    // DCMTK checks the chain only; the name is checked by OpenSSL during the handshake.
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(tls->getNativeHandle());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // An address is matched against the certificate's IP entries, a name against its DNS
    // entries (set1_ip_asc fails for anything that is not an address).
    if (X509_VERIFY_PARAM_set1_ip_asc(param, options.host.c_str()) != 1 &&
        X509_VERIFY_PARAM_set1_host(param, options.host.c_str(), 0) != 1) {
      return Status::FailedPrecondition(
          fmt::format("cannot set up the TLS host name check for \"{}\"", options.host));
    }
  }
  cond = ASC_setTransportLayer(network, tls, 0);
  if (cond.bad()) {
    return Status::Internal("cannot set the TLS transport layer: " + ConditionText(cond));
  }
  return Status::Ok();
}

Status StorageScu::Impl::ConnectError(const OFCondition& cond) const {
  std::string text = ConditionText(cond);
  if (Contains(text, "Connection refused")) {
    return Status::Unavailable(
        fmt::format("connection refused at {} — is the destination running?", Peer()));
  }
  if (Contains(text, "imeout") || Contains(text, "timed out")) {
    if (Contains(text, "TCP Initialization")) {
      return Status::Unavailable(fmt::format(
          "no answer from {} within {} s; check the address, the port and any firewall between",
          Peer(), options.timeout_s));
    }
    return Status::Unavailable(fmt::format(
        "{} accepted the connection but did not answer the association request within {} s; "
        "is it a DICOM node{}?",
        Peer(), options.timeout_s,
        options.tls.enabled ? " that speaks TLS" : " (or does it expect TLS)"));
  }
  if (Contains(text, "unknown host")) {
    return Status::Unavailable(fmt::format(
        "cannot resolve the host name \"{}\"; check the target's \"ip\"", options.host));
  }
  if (options.tls.enabled && (Contains(text, "TLS") || Contains(text, "SSL"))) {
    return Status::Unavailable(fmt::format(
        "TLS handshake with {} failed: {}; check that the destination speaks DICOM TLS, that "
        "tls.ca holds the CA of its certificate, that the certificate names \"{}\" (the "
        "target's ip; tls.verify_host: false skips this check) and that the destination "
        "trusts ferry's certificate",
        Peer(), text, options.host));
  }
  return Status::Unavailable(fmt::format("cannot open an association with {} ({} -> {}): {}",
                                         Peer(), options.calling_ae, options.called_ae, text));
}

Status StorageScu::Impl::RejectError(const T_ASC_RejectParameters& rej) const {
  bool permanent = rej.result == ASC_RESULT_REJECTEDPERMANENT;
  std::string how = permanent ? "rejected permanent" : "rejected transient";
  std::string prefix = fmt::format("association rejected by {}", Peer());
  auto error = [permanent](std::string message) {
    return permanent ? Status::PermissionDenied(std::move(message))
                     : Status::Unavailable(std::move(message));
  };
  switch (rej.reason) {
    case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED:
      return error(fmt::format(
          "{}: called AE title \"{}\" not recognised ({}); set the target's aet_target to the "
          "AE title the destination is configured with",
          prefix, options.called_ae, how));
    case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED:
      return error(fmt::format(
          "{}: calling AE title \"{}\" not recognised ({}); register \"{}\" (and ferry's "
          "address) as a known sender at the destination, or change the calling AE title "
          "(aet_source, pass_sender_aet, pass_receiver_aet)",
          prefix, options.calling_ae, how, options.calling_ae));
    default:
      break;
  }
  std::string reason;
  switch (rej.reason) {
    case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED:
      reason = "application context name not supported";
      break;
    case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED:
      reason = "protocol version not supported";
      break;
    case ASC_REASON_SP_PRES_TEMPORARYCONGESTION:
      reason = "temporary congestion";
      break;
    case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED:
      reason = "local limit exceeded";
      break;
    default:
      reason = "no reason given";
      break;
  }
  if (permanent) {
    return Status::PermissionDenied(fmt::format(
        "{}: {} ({}) for calling AE title \"{}\" and called AE title \"{}\"; check that the "
        "destination knows ferry under that AE title and address",
        prefix, reason, how, options.calling_ae, options.called_ae));
  }
  return Status::Unavailable(fmt::format("{}: {} ({}); the destination is busy, try again later",
                                         prefix, reason, how));
}

Status StorageScu::Impl::Associate(
    const std::vector<std::pair<std::string, std::string>>& wanted) {
  Close(CloseMode::kRelease);
  FERRY_RETURN_IF_ERROR(Prepare());
  T_ASC_Parameters* params = nullptr;
  OFCondition cond = ASC_createAssociationParameters(&params, options.max_pdu);
  if (cond.bad()) {
    return Status::Internal("cannot create association parameters: " + ConditionText(cond));
  }
  ASC_setAPTitles(params, options.calling_ae.c_str(), options.called_ae.c_str(), nullptr);
  ASC_setTransportLayerType(params, options.tls.enabled ? OFTrue : OFFalse);
  char local[256] = "localhost";
  gethostname(local, sizeof(local) - 1);
  ASC_setPresentationAddresses(params, local, Peer().c_str());
  std::vector<Context> proposed;
  T_ASC_PresentationContextID id = 1;
  for (const auto& [sop_class, ts] : wanted) {
    const char* syntaxes[] = {ts.c_str()};
    cond = ASC_addPresentationContext(params, id, sop_class.c_str(), syntaxes, 1);
    if (cond.bad()) {
      ASC_destroyAssociationParameters(&params);
      return Status::Internal("cannot add a presentation context: " + ConditionText(cond));
    }
    proposed.push_back({id, sop_class, ts, false, ASC_P_NOREASON});
    id = static_cast<T_ASC_PresentationContextID>(id + 2);
  }
  T_ASC_Association* a = nullptr;
  cond = ASC_requestAssociation(network, params, &a);
  if (cond.bad()) {
    Status error;
    if (cond == DUL_ASSOCIATIONREJECTED) {
      T_ASC_RejectParameters rej;
      ASC_getRejectParameters(params, &rej);
      error = RejectError(rej);
    } else {
      error = ConnectError(cond);
    }
    if (a != nullptr) {
      ASC_dropAssociation(a);
      ASC_destroyAssociation(&a);  // also frees params
    } else {
      ASC_destroyAssociationParameters(&params);
    }
    return error;
  }
  assoc = a;
  next_message_id = 1;
  int count = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) {
      continue;
    }
    for (Context& c : proposed) {
      if (c.id == pc.presentationContextID) {
        c.result = pc.resultReason;
        c.accepted = pc.resultReason == ASC_P_ACCEPTANCE &&
                     c.transfer_syntax_uid == pc.acceptedTransferSyntax;
      }
    }
  }
  contexts = std::move(proposed);
  Logger("dicom")->debug("association with {} ({} -> {}) open, {} presentation contexts",
                         Peer(), options.calling_ae, options.called_ae, contexts.size());
  return Status::Ok();
}

void StorageScu::Impl::Close(CloseMode mode) {
  if (assoc == nullptr) {
    return;
  }
  if (mode == CloseMode::kRelease) {
    if (ASC_releaseAssociation(assoc).bad()) {
      ASC_abortAssociation(assoc);
    }
  } else if (mode == CloseMode::kAbort) {
    ASC_abortAssociation(assoc);
  }
  ASC_dropAssociation(assoc);
  ASC_destroyAssociation(&assoc);
  assoc = nullptr;
  contexts.clear();
  covered.clear();
}

Status StorageScu::Prepare() { return impl_->Prepare(); }

Status StorageScu::Open(const std::vector<StoreNeed>& needs) {
  // New needs first, then what earlier associations needed, each need taking its own context
  // plus the fallbacks of its SOP class, until DICOM's limit.
  std::vector<StoreNeed> order;
  for (const auto& list : {needs, impl_->history}) {
    for (const auto& n : list) {
      if (std::find(order.begin(), order.end(), n) == order.end()) {
        order.push_back(n);
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> wanted;
  std::vector<StoreNeed> included;
  for (const auto& n : order) {
    std::vector<std::pair<std::string, std::string>> add;
    auto want = [&](const std::string& ts) {
      std::pair<std::string, std::string> pc{n.sop_class_uid, ts};
      if (std::find(wanted.begin(), wanted.end(), pc) == wanted.end() &&
          std::find(add.begin(), add.end(), pc) == add.end()) {
        add.push_back(pc);
      }
    };
    if (!n.transfer_syntax_uid.empty()) {
      want(n.transfer_syntax_uid);
    }
    for (const char* ts : kFallbackSyntaxes) {
      want(ts);
    }
    if (wanted.size() + add.size() > kMaxPresentationContexts) {
      continue;
    }
    wanted.insert(wanted.end(), add.begin(), add.end());
    included.push_back(n);
  }
  Status s = impl_->Associate(wanted);
  if (!s.ok()) {
    return s;
  }
  impl_->covered = std::set<StoreNeed>(included.begin(), included.end());
  impl_->history = included;
  return Status::Ok();
}

const Context* StorageScu::Impl::FindAccepted(const std::string& sop_class,
                                              const std::string& ts) const {
  for (const Context& c : contexts) {
    if (c.accepted && c.sop_class_uid == sop_class && c.transfer_syntax_uid == ts) {
      return &c;
    }
  }
  return nullptr;
}

StoreResult StorageScu::Impl::Refused(const StoreNeed& need) const {
  // Every destination must accept implicit VR little endian for a SOP class it supports, so a
  // SOP class whose fallback contexts were refused as well is refused as a whole; name the
  // transfer syntaxes only when the destination said that they were the problem.
  bool syntax_refused = false;
  std::string offered;
  for (const Context& c : contexts) {
    if (c.sop_class_uid != need.sop_class_uid) {
      continue;
    }
    syntax_refused = syntax_refused || c.result == ASC_P_TRANSFERSYNTAXESNOTSUPPORTED;
    offered += (offered.empty() ? "" : ", ") + TransferSyntaxName(c.transfer_syntax_uid);
  }
  StoreResult r;
  r.outcome = StoreOutcome::kPermanent;
  r.detail = fmt::format("destination refused SOP class {} ({}){}; configure {} to accept it",
                         SopClassName(need.sop_class_uid), need.sop_class_uid,
                         syntax_refused ? ": it accepts none of the transfer syntaxes offered (" +
                                              offered + ")"
                                        : "",
                         options.called_ae);
  return r;
}

StoreResult StorageScu::Impl::Broken(const std::string& what, const OFCondition& cond) {
  StoreResult r;
  r.outcome = StoreOutcome::kTransient;
  if (cond == DUL_PEERABORTEDASSOCIATION) {
    r.detail = fmt::format("{} aborted the association {}", Peer(), what);
  } else if (cond == DUL_PEERREQUESTEDRELEASE) {
    r.detail = fmt::format("{} released the association {}", Peer(), what);
  } else {
    r.detail = fmt::format("association with {} broke off {}: {}", Peer(), what,
                           ConditionText(cond));
  }
  // The connection is gone or in an unknown state: neither a release nor an abort can be
  // exchanged any more.
  Close(CloseMode::kDrop);
  return r;
}

StoreResult StorageScu::Store(const std::string& path, const StoreNeed& need,
                              const std::string& sop_instance_uid) {
  Impl& m = *impl_;
  if (m.assoc == nullptr) {
    return {StoreOutcome::kTransient, "no association is open", false};
  }
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
    Status s = Status::FromErrno(errno, "open " + path);
    return {s.retryable() ? StoreOutcome::kTransient : StoreOutcome::kPermanent, s.message(),
            false};
  }
  FileLayout layout = ReadLayout(fd.get(), static_cast<uint64_t>(st.st_size));
  std::string stored_ts = layout.has_meta ? layout.transfer_syntax_uid : need.transfer_syntax_uid;
  DIC_US message_id = m.next_message_id++;
  if (const Context* pc = m.FindAccepted(need.sop_class_uid, stored_ts)) {
    if (layout.has_meta) {
      posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
      return m.SendRaw(fd.get(), layout, *pc, need.sop_class_uid, sop_instance_uid, message_id);
    }
    return m.SendDataset(path, stored_ts, *pc, need.sop_class_uid, sop_instance_uid,
                         message_id);
  }
  for (const char* ts : kFallbackSyntaxes) {
    if (const Context* pc = m.FindAccepted(need.sop_class_uid, ts)) {
      StoreResult r =
          m.SendDataset(path, stored_ts, *pc, need.sop_class_uid, sop_instance_uid, message_id);
      r.converted = r.outcome == StoreOutcome::kDelivered;
      return r;
    }
  }
  return m.Refused(need);
}

StoreResult StorageScu::Impl::SendRaw(int fd, const FileLayout& layout, const Context& pc,
                                      const std::string& sop_class,
                                      const std::string& sop_instance, DIC_US message_id) {
  uint64_t remaining = layout.size - layout.dataset_offset;
  if (remaining == 0) {
    return {StoreOutcome::kPermanent, "the file holds no dataset after its meta information",
            false};
  }
  std::string command = EncodeStoreCommand(sop_class, sop_instance, message_id);
  DUL_PDV pdv{};
  pdv.fragmentLength = command.size();
  pdv.presentationContextID = pc.id;
  pdv.pdvType = DUL_COMMANDPDV;
  pdv.lastPDV = OFTrue;
  pdv.data = command.data();
  DUL_PDVLIST list{};
  list.count = 1;
  list.pdv = &pdv;
  OFCondition cond = DUL_WritePDVs(&assoc->DULassociation, &list);
  if (cond.bad()) {
    return Broken("while sending a C-STORE request", cond);
  }
  // The dataset goes out exactly as stored, one PDV per PDU, each as large as the peer allows
  // (DCMTK sized sendPDVBuffer from the peer's maximum PDU length), and even.
  unsigned char* buf = assoc->sendPDVBuffer;
  unsigned long capacity = assoc->sendPDVLength;
  Uint32 max_outgoing = dcmMaxOutgoingPDUSize.get();
  if (capacity + 12 > max_outgoing) {
    capacity = max_outgoing - 12;
  }
  capacity &= ~1UL;
  uint64_t offset = layout.dataset_offset;
  while (remaining > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(capacity, remaining));
    if (!ReadAt(fd, offset, buf, n)) {
      // The file shrank or the disk failed under us: the peer has a partial dataset, so the
      // association cannot carry on.
      Status s = Status::FromErrno(errno == 0 ? EIO : errno, "read dataset");
      Close(CloseMode::kAbort);
      return {StoreOutcome::kTransient, s.message() + "; association aborted", false};
    }
    offset += n;
    remaining -= n;
    pdv = DUL_PDV{};
    pdv.fragmentLength = n;
    if (n % 2 != 0) {
      buf[pdv.fragmentLength++] = 0;  // only the last fragment of a deflated stream is odd
    }
    pdv.presentationContextID = pc.id;
    pdv.pdvType = DUL_DATASETPDV;
    pdv.lastPDV = remaining == 0 ? OFTrue : OFFalse;
    pdv.data = buf;
    list = DUL_PDVLIST{};
    list.count = 1;
    list.pdv = &pdv;
    cond = DUL_WritePDVs(&assoc->DULassociation, &list);
    if (cond.bad()) {
      return Broken("while sending a dataset", cond);
    }
  }
  return AwaitResponse(message_id);
}

StoreResult StorageScu::Impl::SendDataset(const std::string& path, const std::string& stored_ts,
                                          const Context& pc, const std::string& sop_class,
                                          const std::string& sop_instance, DIC_US message_id) {
  DcmFileFormat file;
  OFCondition cond = file.loadFile(path.c_str());
  if (cond.bad()) {
    return {StoreOutcome::kPermanent,
            fmt::format("cannot read {}: {}", path, ConditionText(cond)), false};
  }
  DcmDataset* dataset = file.getDataset();
  DcmXfer target(pc.transfer_syntax_uid.c_str());
  cond = dataset->chooseRepresentation(target.getXfer(), nullptr);
  if (cond.bad() || !dataset->canWriteXfer(target.getXfer())) {
    std::string why = cond.bad() && cond != EC_CannotChangeRepresentation
                          ? "decoding failed: " + ConditionText(cond)
                          : "ferry has no decoder for it";
    return {StoreOutcome::kPermanent,
            fmt::format("cannot convert {} to a transfer syntax the destination accepts ({}): "
                        "{}; configure the destination to accept {}",
                        TransferSyntaxName(stored_ts), target.getXferName(), why,
                        TransferSyntaxName(stored_ts)),
            false};
  }
  T_DIMSE_Message msg{};
  msg.CommandField = DIMSE_C_STORE_RQ;
  T_DIMSE_C_StoreRQ& rq = msg.msg.CStoreRQ;
  rq.MessageID = message_id;
  OFStandard::strlcpy(rq.AffectedSOPClassUID, sop_class.c_str(), sizeof(rq.AffectedSOPClassUID));
  OFStandard::strlcpy(rq.AffectedSOPInstanceUID, sop_instance.c_str(),
                      sizeof(rq.AffectedSOPInstanceUID));
  rq.DataSetType = DIMSE_DATASET_PRESENT;
  rq.Priority = DIMSE_PRIORITY_MEDIUM;
  cond = DIMSE_sendMessageUsingMemoryData(assoc, pc.id, &msg, nullptr, dataset, nullptr, nullptr);
  if (cond.bad()) {
    return Broken("while sending a converted dataset", cond);
  }
  StoreResult r = AwaitResponse(message_id);
  if (r.outcome == StoreOutcome::kDelivered) {
    std::string note = fmt::format("sent as {} (the destination does not accept {})",
                                   target.getXferName(), TransferSyntaxName(stored_ts));
    r.detail = r.detail.empty() ? note : r.detail + "; " + note;
  }
  return r;
}

StoreResult StorageScu::Impl::AwaitResponse(DIC_US message_id) {
  T_ASC_PresentationContextID pres_id = 0;
  T_DIMSE_Message rsp{};
  DcmDataset* status_detail = nullptr;
  OFCondition cond = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, options.timeout_s, &pres_id,
                                          &rsp, &status_detail);
  std::string comment;
  if (status_detail != nullptr) {
    OFString text;
    if (status_detail->findAndGetOFString(DCM_ErrorComment, text).good()) {
      comment = text.c_str();
    }
    delete status_detail;
  }
  if (cond == DIMSE_NODATAAVAILABLE) {
    Close(CloseMode::kAbort);
    return {StoreOutcome::kTransient,
            fmt::format("no C-STORE response from {} within {} s; association aborted", Peer(),
                        options.timeout_s),
            false};
  }
  if (cond.bad()) {
    return Broken("while waiting for the C-STORE response", cond);
  }
  if (rsp.CommandField != DIMSE_C_STORE_RSP ||
      rsp.msg.CStoreRSP.MessageIDBeingRespondedTo != message_id) {
    Close(CloseMode::kAbort);
    return {StoreOutcome::kTransient,
            fmt::format("{} answered with an unexpected {} (message id {}); association aborted",
                        Peer(), CommandName(rsp.CommandField),
                        rsp.msg.CStoreRSP.MessageIDBeingRespondedTo),
            false};
  }
  uint16_t status = rsp.msg.CStoreRSP.DimseStatus;
  StoreResult r;
  r.outcome = ClassifyStatus(status);
  if (status != 0x0000) {
    r.detail = fmt::format("{} status {} ({}){}",
                           r.outcome == StoreOutcome::kDelivered ? "stored with warning,"
                                                                 : "destination answered",
                           Hex(status), StatusMeaning(status),
                           comment.empty() ? "" : ": " + comment);
  }
  return r;
}

Status StorageScu::Echo() {
  Impl& m = *impl_;
  m.Close(CloseMode::kRelease);
  FERRY_RETURN_IF_ERROR(m.Associate({{UID_VerificationSOPClass,
                                      UID_LittleEndianImplicitTransferSyntax}}));
  Status result = Status::Ok();
  if (m.FindAccepted(UID_VerificationSOPClass, UID_LittleEndianImplicitTransferSyntax) ==
      nullptr) {
    Logger("dicom")->info("{} accepted the association but not C-ECHO (Verification)", m.Peer());
  } else {
    DIC_US status = 0;
    DcmDataset* detail = nullptr;
    OFCondition cond = DIMSE_echoUser(m.assoc, m.next_message_id++, DIMSE_NONBLOCKING,
                                      m.options.timeout_s, &status, &detail);
    delete detail;
    if (cond.bad()) {
      result = Status::Unavailable(fmt::format("C-ECHO to {} failed: {}", m.Peer(),
                                               ConditionText(cond)));
      m.Close(CloseMode::kAbort);
    } else if (status != STATUS_Success) {
      result = Status::Unavailable(
          fmt::format("{} answered the C-ECHO with status {}", m.Peer(), Hex(status)));
    }
  }
  m.Close(CloseMode::kRelease);
  return result;
}

}  // namespace ferry::dicom
