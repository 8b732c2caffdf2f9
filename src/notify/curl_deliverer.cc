#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

#include "core/logging.h"
#include "notify/delivery.h"

namespace ferry::notify {
namespace {

using Kind = DeliveryOutcome::Kind;

std::string Base64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                 (static_cast<unsigned char>(data[i + 1]) << 8) |
                 static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    uint32_t v = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) {
      v |= static_cast<unsigned char>(data[i + 1]) << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      return false;
    }
  }
  return true;
}

// A header value: as is when printable ASCII, else an RFC 2047 encoded word.
std::string HeaderText(std::string_view s) {
  return IsPrintableAscii(s) ? std::string(s) : "=?UTF-8?B?" + Base64(s) + "?=";
}

// A header address: only printable ASCII without angle brackets is accepted (no header injection).
std::string HeaderAddress(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f && c != '<' &&
        c != '>') {
      out += c;
    }
  }
  return out;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

struct Upload {
  std::string_view data;
  size_t offset = 0;
};

size_t ReadUpload(char* buffer, size_t size, size_t n, void* user) {
  auto* up = static_cast<Upload*>(user);
  size_t len = std::min(size * n, up->data.size() - up->offset);
  std::memcpy(buffer, up->data.data() + up->offset, len);
  up->offset += len;
  return len;
}

// Transport errors (no usable reply): what may pass is retried; configuration problems are not.
DeliveryOutcome FromCurlCode(CURLcode code, const char* error_buffer) {
  std::string what = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return {Kind::kFailed, 0, "invalid URL: " + what};
    case CURLE_LOGIN_DENIED:
      return {Kind::kFailed, 0,
              "login refused: " + what + " (check notifications.smtp.user and password)"};
    case CURLE_USE_SSL_FAILED:
      return {Kind::kFailed, 0,
              "the server does not offer STARTTLS: " + what +
                  " (turn notifications.smtp.starttls off or use a server with TLS)"};
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return {Kind::kFailed, 0,
              "TLS: " + what + " (check the CA file, or verify_tls for a test server)"};
    default:
      return {Kind::kRetry, 0, what};
  }
}

class CurlDeliverer final : public Deliverer {
 public:
  CurlDeliverer(const NotificationOptions& options, Clock* clock)
      : options_(options), clock_(clock) {}

  DeliveryOutcome Deliver(const Notification& n) override {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) {
      return {Kind::kRetry, 0, "libcurl could not create a handle"};
    }
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.timeout_s));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(options_.timeout_s));
    DeliveryOutcome out =
        n.channel == Channel::kWebhook ? Post(curl, n, error) : Mail(curl, n, error);
    curl_easy_cleanup(curl);
    return out;
  }

 private:
  DeliveryOutcome Post(CURL* curl, const Notification& n, char* error) {
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    // Receivers can drop a repeated delivery (a crash between the reply and our bookkeeping).
    headers = curl_slist_append(headers, ("Idempotency-Key: " + n.id).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, n.destination.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, n.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(n.body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "ferry-notifier");
    CURLcode code = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
      return FromCurlCode(code, error);
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      return {Kind::kSent, status, ""};
    }
    std::string what = fmt::format("HTTP {}", status);
    if (status >= 500 || status == 408 || status == 429) {
      return {Kind::kRetry, status, what};
    }
    return {Kind::kFailed, status,
            what +
                " (the webhook refused the request; check the URL and "
                "notification_payload of the rule)"};
  }

  DeliveryOutcome Mail(CURL* curl, const Notification& n, char* error) {
    const SmtpOptions& smtp = options_.smtp;
    // Port 465 is SMTP over TLS from the first byte; elsewhere STARTTLS when asked for.
    std::string url =
        fmt::format("{}://{}:{}", smtp.port == 465 ? "smtps" : "smtp", smtp.host, smtp.port);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (smtp.starttls) {
      curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    }
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, smtp.verify_tls ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, smtp.verify_tls ? 2L : 0L);
    if (!smtp.ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, smtp.ca_file.c_str());
    }
    if (!smtp.user.empty()) {
      curl_easy_setopt(curl, CURLOPT_USERNAME, smtp.user.c_str());
      curl_easy_setopt(curl, CURLOPT_PASSWORD, smtp.password.c_str());
    }
    std::string from = "<" + HeaderAddress(smtp.from) + ">";
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
    curl_slist* rcpt =
        curl_slist_append(nullptr, ("<" + HeaderAddress(n.destination) + ">").c_str());
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    std::string message = BuildEmailMessage(n, smtp.from, clock_->Now());
    Upload upload{message, 0};
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadUpload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
    CURLcode code = curl_easy_perform(curl);
    curl_slist_free_all(rcpt);
    long reply = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
    if (code == CURLE_OK) {
      return {Kind::kSent, reply, ""};
    }
    DeliveryOutcome out = FromCurlCode(code, error);
    out.status = reply;
    // A reply from the server says whether it is worth trying again (RFC 5321: 4xx transient,
    // 5xx permanent); a refused login stays permanent either way.
    if (reply >= 500 && reply < 600) {
      out.kind = Kind::kFailed;
      out.error = fmt::format("the SMTP server refused with {}: {}", reply, out.error);
    } else if (reply >= 400 && reply < 500 && code != CURLE_LOGIN_DENIED) {
      out.kind = Kind::kRetry;
      out.error = fmt::format("the SMTP server answered {}: {}", reply, out.error);
    }
    return out;
  }

  NotificationOptions options_;
  Clock* clock_;
};

}  // namespace

std::string BuildEmailMessage(const Notification& n, const std::string& from, WallTime now) {
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char date[64];
  std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  std::string domain =
      from.substr(from.find('@') == std::string::npos ? from.size() : from.find('@') + 1);
  std::string body = Base64(n.body);
  std::string wrapped;
  for (size_t i = 0; i < body.size(); i += 76) {
    wrapped += body.substr(i, 76) + "\r\n";
  }
  return fmt::format(
      "From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@{}>\r\n"
      "MIME-Version: 1.0\r\nContent-Type: {}; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\nX-Ferry-Notification: {}\r\n\r\n{}",
      HeaderAddress(from), HeaderAddress(n.destination), HeaderText(n.subject), date, n.id,
      domain.empty() ? "ferry" : HeaderAddress(domain),
      n.content_type.empty() ? "text/plain" : n.content_type, n.id, wrapped);
}

std::unique_ptr<Deliverer> MakeCurlDeliverer(const NotificationOptions& options, Clock* clock) {
  return std::make_unique<CurlDeliverer>(options, clock);
}

}  // namespace ferry::notify
