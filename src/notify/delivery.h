// Delivery: sending one notification over its channel, behind a narrow interface so that the
// notifier's queue logic is unit-tested with a fake and the real implementation (libcurl: HTTP
// POST for webhooks, SMTP for e-mail) is tested against real peers end to end.
//
// Every outcome is classified where it arises: sent; retry (connection refused or reset,
// timeout, DNS failure, HTTP 5xx, 408 and 429, SMTP 4xx replies); or failed for good (other
// HTTP 4xx and 3xx, SMTP 5xx replies, refused login, TLS trust problems, a malformed URL).
// Thread-safety: a Deliverer is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "notify/notification.h"

namespace ferry::notify {

struct DeliveryOutcome {
  enum class Kind { kSent, kRetry, kFailed };
  Kind kind = Kind::kFailed;
  long status = 0;    // HTTP status or SMTP reply code, 0 when there was none
  std::string error;  // what went wrong, for operators (empty when sent)
};

class Deliverer {
 public:
  virtual ~Deliverer() = default;
  virtual DeliveryOutcome Deliver(const Notification& notification) = 0;
};

// The libcurl implementation. The caller initialises libcurl (curl_global_init) before.
std::unique_ptr<Deliverer> MakeCurlDeliverer(const NotificationOptions& options, Clock* clock);

// The RFC 5322 message of an e-mail notification: headers (From, To, Subject — RFC 2047-encoded
// when not ASCII —, Date, Message-ID, MIME) and the base64-encoded UTF-8 body, CRLF line ends.
std::string BuildEmailMessage(const Notification& notification, const std::string& from,
                              WallTime now);

}  // namespace ferry::notify
