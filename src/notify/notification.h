// Notifications: what the notifier queues for one journal event, one per channel and recipient,
// and how such a record is stored in <data>/notify/{pending,failed,sent}/<id>.json.
//
// BuildNotifications is the pure part of the notifier: it maps a journal event (task.created,
// task.completed, task.failed) to mercure's notification events (RECEIVED, COMPLETED, ERROR),
// checks the rule's trigger flags and renders its templates with mercure's placeholders. The
// id of a notification derives from where its journal line is (file and byte offset), the event
// and the channel, so reading the same line again never yields a second notification.
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"

namespace ferry::notify {

enum class Channel { kWebhook, kEmail };
std::string_view ChannelName(Channel channel);

// mercure's notification events (mercure_events).
enum class Event { kReceived, kCompleted, kError };
std::string_view EventName(Event event);

// One line of an event journal, as the notifier reads it.
struct JournalLine {
  std::string file;      // journal file name (no folder)
  uint64_t offset = 0;   // byte offset of the line in the file
  nlohmann::json event;  // the parsed line
};

struct Notification {
  std::string id;
  Channel channel = Channel::kWebhook;
  std::string destination;  // webhook URL or e-mail address (the pending file keeps it whole)
  std::string rule;
  Event event = Event::kReceived;
  std::string task_id;
  std::string series_uid;
  std::string journal_file;
  uint64_t journal_offset = 0;
  std::string created_at;  // ISO 8601
  // Webhook: the JSON body. E-mail: subject and body, content type text/plain or text/html.
  std::string subject;
  std::string body;
  std::string content_type;
  int attempts = 0;            // delivery attempts made so far
  double next_attempt_at = 0;  // epoch seconds; 0: now
  std::string last_error;
};

nlohmann::json ToJson(const Notification& n);
// InvalidArgument naming the missing or malformed field.
Result<Notification> NotificationFromJson(const nlohmann::json& j);

// The mercure events a journal event stands for: task.created → RECEIVED (and COMPLETED as
// well for a rule whose action is "notification": mercure announces both at once);
// task.completed → COMPLETED; task.failed → ERROR; anything else → none.
std::vector<Event> TriggeredEvents(const nlohmann::json& journal_event);

// Whether `rule` wants notifications for `event` (notification_trigger_reception, _completion,
// _error). With notification_trigger_completion_on_request, a completion is notified only when
// a processing module asked for it (the event's details.notification_requested).
bool RuleWants(const RuleOptions& rule, Event event,
               const nlohmann::json& details = nlohmann::json::object());

// Deterministic id of the notification of `channel` (recipient number `index`) for `event` of
// the journal line at (file, offset): 16 hex digits.
std::string NotificationId(std::string_view file, uint64_t offset, Event event, Channel channel,
                           int index);

// The placeholders of one notification. `phi` allows patient fields (notifications.
// phi_notifications); without it patient_name, mrn and acc are "UNKNOWN" for webhooks, as in
// mercure, and empty for e-mails.
std::map<std::string, std::string> TemplateValues(const nlohmann::json& journal_event,
                                                  const std::string& rule, Event event,
                                                  Channel channel, bool phi);

struct BuildResult {
  std::vector<Notification> notifications;
  // "rule NAME: {{ x }}" for each unknown placeholder (the caller logs each once).
  std::vector<std::string> unknown_placeholders;
  std::string skipped;  // why nothing was built although the event triggers (unknown rule)
};

// The notifications for one journal line under `rules`. `now` stamps created_at and the first
// attempt.
BuildResult BuildNotifications(const JournalLine& line, const std::vector<RuleOptions>& rules,
                               bool phi, WallTime now);

// The webhook body for `rule` and `values`: "{" + notification_payload + "}" rendered with
// JSON escaping (mercure's form), where {{ body }} is the rendered notification_payload_body.
// An empty notification_payload gives {"rule", "event", "task_id", "details"}. `unknown`
// receives unknown placeholders.
std::string RenderWebhookBody(const RuleOptions& rule, std::map<std::string, std::string> values,
                              std::vector<std::string>* unknown);

// The recipients of notification_email: comma-separated, trimmed, empty entries dropped.
std::vector<std::string> SplitAddresses(std::string_view list);

// The destination as the journal shows it: a webhook's scheme://host[:port] only (user
// information, path and query of URLs such as Slack's carry secrets); an e-mail address as is.
std::string PublicDestination(Channel channel, std::string_view destination);

}  // namespace ferry::notify
