#include "targets/s3_signer.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>

namespace ferry::s3 {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Canonical header values: leading and trailing blanks removed, inner runs of blanks as one
// space.
std::string TrimValue(std::string_view v) {
  std::string out;
  bool blank = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      blank = !out.empty();
      continue;
    }
    if (blank) {
      out += ' ';
      blank = false;
    }
    out += c;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> CanonicalHeaders(const SignedRequest& r) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(r.headers.size());
  for (const auto& [name, value] : r.headers) {
    headers.emplace_back(Lower(name), TrimValue(value));
  }
  std::sort(headers.begin(), headers.end());
  return headers;
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0f];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 0x0f];
    }
  }
  return out;
}

std::string SignedHeaderNames(const SignedRequest& request) {
  std::string names;
  for (const auto& [name, value] : CanonicalHeaders(request)) {
    names += (names.empty() ? "" : ";") + name;
  }
  return names;
}

std::string CanonicalRequest(const SignedRequest& request) {
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : request.query) {
    query.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [name, value] : query) {
    canonical_query += (canonical_query.empty() ? "" : "&") + name + "=" + value;
  }
  std::string canonical_headers;
  for (const auto& [name, value] : CanonicalHeaders(request)) {
    canonical_headers += name + ":" + value + "\n";
  }
  return request.method + "\n" + (request.path.empty() ? "/" : request.path) + "\n" +
         canonical_query + "\n" + canonical_headers + "\n" + SignedHeaderNames(request) + "\n" +
         request.payload_sha256;
}

std::string CredentialScope(const SignedRequest& request) {
  return request.amz_date.substr(0, 8) + "/" + request.region + "/" + request.service +
         "/aws4_request";
}

std::string StringToSign(const SignedRequest& request) {
  return "AWS4-HMAC-SHA256\n" + request.amz_date + "\n" + CredentialScope(request) + "\n" +
         Sha256Hex(CanonicalRequest(request));
}

std::string SigningKey(std::string_view secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service) {
  std::string key = HmacSha256("AWS4" + std::string(secret_access_key), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  return HmacSha256(key, "aws4_request");
}

std::string Sign(const SignedRequest& request, const Credentials& credentials) {
  std::string key = SigningKey(credentials.secret_access_key, request.amz_date.substr(0, 8),
                               request.region, request.service);
  std::string signature = HexEncode(HmacSha256(key, StringToSign(request)));
  return "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" +
         CredentialScope(request) + ",SignedHeaders=" + SignedHeaderNames(request) +
         ",Signature=" + signature;
}

}  // namespace ferry::s3
