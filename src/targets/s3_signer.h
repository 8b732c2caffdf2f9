// S3 signer: AWS Signature Version 4 for the s3 target, as pure functions.
//
// The s3 target builds a request (method, path, query, headers, the SHA-256 of the body), and
// Sign() returns the Authorization header value that AWS S3 and S3-compatible stores (MinIO,
// Ceph RGW, s3rver) check. Nothing here does I/O or reads the clock: the caller passes the
// request time as "YYYYMMDDTHHMMSSZ", so the unit tests reproduce AWS's published examples.
// Thread-safety: all functions are pure and may be called from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::s3 {

// SHA-256 of an empty body, the x-amz-content-sha256 of GET and HEAD requests.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

// What SigV4 signs of one request.
struct SignedRequest {
  std::string method;  // "PUT", "GET", "HEAD"
  // The path as it is sent: each segment already URI-encoded (see UriEncode), e.g.
  // "/bucket/a%20b.dcm". "/" when empty.
  std::string path;
  // Query parameters, not encoded; sorted and encoded when signed.
  std::vector<std::pair<std::string, std::string>> query;
  // Headers to sign (name in any case, value as sent). Must include host, x-amz-date and
  // x-amz-content-sha256; every header listed here is signed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_sha256;  // lower-case hex SHA-256 of the body
  std::string amz_date;        // "20130524T000000Z": the x-amz-date header's value
  std::string region;          // "us-east-1"
  std::string service = "s3";
};

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Raw (32-byte) HMAC-SHA256 of `data` with `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

std::string HexEncode(std::string_view bytes);

// Percent-encodes everything but the RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~),
// with upper-case hex digits; '/' is kept when `keep_slash` (object keys in a path).
std::string UriEncode(std::string_view text, bool keep_slash);

// The canonical request of SigV4: method, path, sorted encoded query, sorted lower-case headers
// with trimmed values, the signed header list and the payload hash, one per line.
std::string CanonicalRequest(const SignedRequest& request);

// "host;x-amz-content-sha256;x-amz-date": the lower-case, sorted names of the signed headers.
std::string SignedHeaderNames(const SignedRequest& request);

// "<date>/<region>/<service>/aws4_request".
std::string CredentialScope(const SignedRequest& request);

// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of the canonical request>".
std::string StringToSign(const SignedRequest& request);

// The raw signing key derived from the secret, the date (YYYYMMDD), region and service.
std::string SigningKey(std::string_view secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service);

// The value of the Authorization header: "AWS4-HMAC-SHA256 Credential=<id>/<scope>,
// SignedHeaders=<names>,Signature=<hex>".
std::string Sign(const SignedRequest& request, const Credentials& credentials);

}  // namespace ferry::s3
