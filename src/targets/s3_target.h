// S3 target: the pieces of the s3 target that do not touch the network, exposed for unit
// tests, and a constructor that takes the HTTP client factory and the clock.
//
// A session PUTs each instance as one object, <prefix>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm,
// signed with AWS Signature Version 4 (s3_signer.h) over the SHA-256 of the file. Without an
// endpoint_url requests go to AWS (https://<bucket>.s3.<region>.amazonaws.com, or path-style
// https://s3.<region>.amazonaws.com/<bucket> for bucket names with dots); with one
// (MinIO, Ceph, s3rver) they use path-style addressing, <endpoint_url>/<bucket>/<key>.
// Thread-safety: the functions are pure; the target follows target.h.
#pragma once

#include <string>
#include <string_view>

#include "core/clock.h"
#include "targets/http_client.h"
#include "targets/target.h"

namespace ferry {
namespace s3 {

// "<prefix>/<study>/<series>/<sop>.dcm", without a leading slash and without a double slash
// whatever slashes `prefix` starts or ends with.
std::string ObjectKey(std::string_view prefix, const OutgoingInstance& instance);

// Where the requests for one bucket go.
struct BucketAddress {
  std::string origin;       // "https://examplebucket.s3.us-east-1.amazonaws.com"
  std::string host;         // the Host header: "examplebucket.s3.us-east-1.amazonaws.com"
  std::string bucket_path;  // "/examplebucket" (path-style, encoded) or "" (virtual host)
};

// The address of `options.bucket`; InvalidArgument for an endpoint_url that is not http(s).
Result<BucketAddress> AddressOf(const TargetOptions& options);

// The encoded request path of `key` in the bucket at `address`: "/examplebucket/a/b.dcm".
std::string ObjectPath(const BucketAddress& address, std::string_view key);

struct ErrorDocument {
  std::string code;     // "NoSuchBucket", "SignatureDoesNotMatch", ...
  std::string message;  // the server's words
};

// Reads <Code> and <Message> from an S3 XML error document; empty fields when absent.
ErrorDocument ParseError(std::string_view body);

// What an S3 answer means for the request `what` (e.g. "PUT s3://bucket/key"): OK for 2xx;
// PermissionDenied when credentials or signature are refused; FailedPrecondition for a missing
// bucket, a wrong region or another request the configuration must fix; Unavailable for
// 5xx, 408, 429 and other answers that may pass; InvalidArgument for a refusal of this one
// object (too large, bad key).
Status StatusOf(const HttpResponse& response, const TargetOptions& options,
                const std::string& what);

}  // namespace s3

// The s3 target with the HTTP client of `make_client` and the wall clock `clock` (for the
// request time that SigV4 signs); MakeS3Target passes MakeCurlHttpClient and RealClock().
std::unique_ptr<Target> MakeS3Target(const TargetOptions& options, HttpClientFactory make_client,
                                     const Clock* clock);

}  // namespace ferry
