// StorageScu: the DICOM network side of a `dicom` target (C-STORE and C-ECHO SCU over DCMTK).
//
// One StorageScu is one client of one destination: it opens an association that proposes a
// presentation context for every (SOP class, transfer syntax) it was told it will need, plus
// uncompressed fallbacks (explicit and implicit VR little endian) for every SOP class, each in a
// presentation context of its own so that the destination can accept them independently. Store()
// then sends one Part-10 file:
//  - when the destination accepted the file's own transfer syntax, the dataset bytes after the
//    file meta information are streamed from disk into P-DATA PDUs exactly as stored (no
//    parsing, no re-encoding: bit-preserving and as fast as the disk and the network). DCMTK's
//    own file path (DIMSE_storeUser with a file name) parses the file and re-encodes it, so
//    ferry encodes the small C-STORE command itself and hands the file's bytes to DCMTK's
//    upper layer (DUL_WritePDVs);
//  - otherwise, when it accepted an uncompressed fallback, the dataset is decoded with DCMTK's
//    codecs (JPEG, JPEG-LS, RLE; deflate by dcmdata) and sent in that transfer syntax;
//  - otherwise the instance fails permanently, with a reason that names the SOP class or the
//    transfer syntax the destination refused.
// Every C-STORE response is classified (see StoreResult); a broken association fails the
// instance transiently and closes the association, which the caller may reopen. Nagle's
// algorithm is disabled (TCP_NODELAY). DICOM TLS is optional.
//
// Process-wide effects, on first use: the TCP_NODELAY environment variable is set (DCMTK reads
// it per connection), SIGPIPE is ignored if it was at its default (a peer closing the
// connection must not kill ferry), DCMTK's JPEG, JPEG-LS and RLE decoders are registered, and
// DCMTK's global connect timeout (dcmConnectionTimeout) is set from each StorageScu's options.
//
// Threads: a StorageScu is used by one thread at a time; different StorageScu objects may be
// used from different threads concurrently (each has its own DCMTK network and TLS context).
// DCMTK types stay inside src/dicom; this header has none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ferry::dicom {

struct ScuTlsOptions {
  bool enabled = false;
  std::string key_file;          // PEM private key of ferry (optional: client certificate)
  std::string certificate_file;  // PEM certificate of ferry
  std::string ca_file;           // PEM CA certificate(s) trusted for the peer; empty: system CAs
  bool verify_peer = true;
  // With verify_peer: the certificate must name `host` (a DNS name or an IP address in its
  // subjectAltName, or its common name when it has none).
  bool verify_host = true;
};

struct ScuOptions {
  std::string host;        // host name or address of the destination
  int port = 104;
  std::string called_ae;   // the destination's AE title
  std::string calling_ae;  // ours
  int max_pdu = 131072;    // the largest PDU we accept from the peer
  int timeout_s = 60;      // connect, association negotiation and each response
  ScuTlsOptions tls;
};

// What a presentation context is needed for: an instance's SOP class and the transfer syntax
// its file is stored in.
struct StoreNeed {
  std::string sop_class_uid;
  std::string transfer_syntax_uid;
  auto operator<=>(const StoreNeed&) const = default;
};

enum class StoreOutcome {
  kDelivered,  // status success or warning
  kTransient,  // not delivered; retrying later may succeed (out of resources, lost connection)
  kPermanent,  // not delivered; retrying will not help (refused SOP class, cannot convert)
};

struct StoreResult {
  StoreOutcome outcome = StoreOutcome::kTransient;
  std::string detail;      // for operators; names the DIMSE status in hex when there was one
  bool converted = false;  // sent in an uncompressed transfer syntax instead of the stored one
};

class StorageScu {
 public:
  explicit StorageScu(ScuOptions options);
  ~StorageScu();  // releases an open association
  StorageScu(const StorageScu&) = delete;
  StorageScu& operator=(const StorageScu&) = delete;

  // Sets up the network side (and loads the TLS files) without connecting; Open() and Echo()
  // call it too. FailedPrecondition when a TLS file cannot be loaded, with the reason.
  Status Prepare();

  // Opens an association proposing contexts for `needs` together with those of earlier
  // associations of this object (so that alternating SOP classes do not reopen every time),
  // up to DICOM's 128 presentation contexts; `needs` come first. Releases an open association
  // first. Errors: Unavailable for a peer that is down, unreachable, too slow, or rejects the
  // association transiently; PermissionDenied when the destination rejects it permanently
  // (AE titles), with a message that says what to fix; FailedPrecondition when the TLS files
  // cannot be loaded.
  Status Open(const std::vector<StoreNeed>& needs);

  bool is_open() const;

  // True when an association is open, the destination has not ended it meanwhile, and it
  // proposed a presentation context for `need`: Store() can decide about such an instance
  // without a new association. An association left idle (between the instances of a series
  // that is still arriving) may be released, aborted or closed by the destination; that is
  // noticed here, the association is dropped and the answer is false.
  bool Usable(const StoreNeed& need);

  // Sends the Part-10 file at `path` (an instance of `need.sop_class_uid` with SOP Instance UID
  // `sop_instance_uid`) and waits for the response. The file's own transfer syntax, read from
  // its meta information, decides how it is sent. Requires is_open(); when the association
  // breaks the result is transient and is_open() becomes false.
  StoreResult Store(const std::string& path, const StoreNeed& need,
                    const std::string& sop_instance_uid);

  // Releases the association (A-RELEASE; aborts it when the peer does not answer).
  void Release();

  // Releases an open association, then opens one with only the Verification SOP class, sends
  // a C-ECHO and releases it. OK when the destination answered the echo with success, or
  // accepted the association but refused Verification (some archives do; the network and the
  // AE titles are fine then). Errors as Open(), with the address and AE titles in the message.
  Status Echo();

 private:
  struct Impl;
  Impl* impl_;
};

// "CT Image Storage" for 1.2.840.10008.5.1.4.1.1.2; the UID itself when DCMTK does not know it.
std::string SopClassName(const std::string& uid);

// DCMTK's name of a transfer syntax ("JPEG 2000 (Lossless only)"); the UID when unknown.
std::string TransferSyntaxName(const std::string& uid);

}  // namespace ferry::dicom
