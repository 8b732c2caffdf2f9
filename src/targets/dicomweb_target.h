// DICOMweb target (STOW-RS, PS3.18 §10.5): the pieces of the dicomweb target that do not touch
// the network, exposed for unit tests, and a constructor that takes the HTTP client factory.
//
// A session sends its instances in batches of TargetOptions::batch_size, each one POST of a
// multipart/related; type="application/dicom" body to {url}{stow_url_prefix}/studies, and reads
// the per-instance outcome from the server's DICOM JSON answer (ReferencedSOPSequence: stored;
// FailedSOPSequence with FailureReason: refused).
// Thread-safety: the functions are pure; the target follows target.h.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "targets/http_client.h"
#include "targets/target.h"

namespace ferry {

namespace stow {

// A fresh multipart boundary: "ferry-" and 32 random hex digits, which no DICOM file contains
// by chance.
std::string NewBoundary();

// The Content-Type header value of a STOW-RS request with `boundary`.
std::string ContentType(const std::string& boundary);

// Appends to `body` one application/dicom part per file (path and size), framed by `boundary`,
// and the closing delimiter.
void BuildBody(const std::vector<std::pair<std::string, uint64_t>>& files,
               const std::string& boundary, HttpBody* body);

// One instance the server listed in its answer.
struct ListedInstance {
  int reason = -1;  // FailureReason (failed) or WarningReason (stored); -1: none given
};

// The instances a STOW-RS answer (DICOM JSON) lists, by SOP Instance UID.
struct StowAnswer {
  std::map<std::string, ListedInstance> stored;  // ReferencedSOPSequence
  std::map<std::string, ListedInstance> failed;  // FailedSOPSequence
};

// Parses a DICOM JSON STOW-RS answer; Corruption when `body` is not DICOM JSON. Items without
// a Referenced SOP Instance UID are skipped.
Result<StowAnswer> ParseAnswer(std::string_view body);

// "0xA700 (out of resources)".
std::string ReasonText(int reason);

// True for failure reasons a later attempt may overcome (out of resources, processing
// failure).
bool IsTransientReason(int reason);

// The outcome of each of `sop_instance_uids` from the HTTP answer to their STOW request:
// 200 delivered unless listed as failed; 202 delivered if listed as stored; 400 and 409 (and
// any 4xx with a per-instance answer) per instance; 401/403 permanent, as an authentication
// failure; other 4xx permanent; 5xx and 429 transient. Details name the HTTP status and the
// server's reason.
std::vector<InstanceResult> Classify(const HttpResponse& response,
                                     const std::vector<std::string>& sop_instance_uids);

// "HTTP 401 Unauthorized: <the server's message>", for details.
std::string DescribeStatus(const HttpResponse& response);

}  // namespace stow

// The dicomweb target with the HTTP client of `make_client` (MakeDicomwebTarget passes
// MakeCurlHttpClient).
std::unique_ptr<Target> MakeDicomwebTarget(const TargetOptions& options,
                                           HttpClientFactory make_client);

}  // namespace ferry
