#include "notify/notification.h"

#include <fmt/format.h>

#include <cctype>

#include "notify/template.h"

namespace ferry::notify {
namespace {

using Json = nlohmann::json;

std::string StringField(const Json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) {
    return j[key].get<std::string>();
  }
  return "";
}

// Used when a rule names an e-mail address but no body (mercure would send an empty mail).
constexpr std::string_view kDefaultEmailBody =
    "Rule {{ rule }}: {{ event }}\nTask: {{ task_id }}\n{{ details }}\n";

}  // namespace

std::string_view ChannelName(Channel channel) {
  return channel == Channel::kWebhook ? "webhook" : "email";
}

std::string_view EventName(Event event) {
  switch (event) {
    case Event::kReceived:
      return "RECEIVED";
    case Event::kCompleted:
      return "COMPLETED";
    case Event::kError:
      return "ERROR";
  }
  return "";
}

Json ToJson(const Notification& n) {
  return Json{{"id", n.id},
              {"channel", ChannelName(n.channel)},
              {"destination", n.destination},
              {"rule", n.rule},
              {"event", EventName(n.event)},
              {"task_id", n.task_id},
              {"series_uid", n.series_uid},
              {"source", {{"journal", n.journal_file}, {"offset", n.journal_offset}}},
              {"created_at", n.created_at},
              {"subject", n.subject},
              {"body", n.body},
              {"content_type", n.content_type},
              {"attempts", n.attempts},
              {"next_attempt_at", n.next_attempt_at},
              {"last_error", n.last_error}};
}

Result<Notification> NotificationFromJson(const Json& j) {
  if (!j.is_object()) {
    return Status::InvalidArgument("a notification must be a JSON object");
  }
  for (const char* key : {"id", "channel", "destination", "event", "body"}) {
    if (!j.contains(key) || !j[key].is_string()) {
      return Status::InvalidArgument(fmt::format("field \"{}\" is missing or not a string", key));
    }
  }
  Notification n;
  n.id = j["id"].get<std::string>();
  std::string channel = j["channel"].get<std::string>();
  if (channel == "webhook") {
    n.channel = Channel::kWebhook;
  } else if (channel == "email") {
    n.channel = Channel::kEmail;
  } else {
    return Status::InvalidArgument("unknown channel \"" + channel + "\"");
  }
  std::string event = j["event"].get<std::string>();
  if (event == "RECEIVED") {
    n.event = Event::kReceived;
  } else if (event == "COMPLETED") {
    n.event = Event::kCompleted;
  } else if (event == "ERROR") {
    n.event = Event::kError;
  } else {
    return Status::InvalidArgument("unknown event \"" + event + "\"");
  }
  n.destination = j["destination"].get<std::string>();
  n.body = j["body"].get<std::string>();
  n.rule = StringField(j, "rule");
  n.task_id = StringField(j, "task_id");
  n.series_uid = StringField(j, "series_uid");
  n.created_at = StringField(j, "created_at");
  n.subject = StringField(j, "subject");
  n.content_type = StringField(j, "content_type");
  n.last_error = StringField(j, "last_error");
  if (j.contains("source") && j["source"].is_object()) {
    n.journal_file = StringField(j["source"], "journal");
    if (j["source"].contains("offset") && j["source"]["offset"].is_number_unsigned()) {
      n.journal_offset = j["source"]["offset"].get<uint64_t>();
    }
  }
  if (j.contains("attempts") && j["attempts"].is_number_integer()) {
    n.attempts = j["attempts"].get<int>();
  }
  if (j.contains("next_attempt_at") && j["next_attempt_at"].is_number()) {
    n.next_attempt_at = j["next_attempt_at"].get<double>();
  }
  return n;
}

std::vector<Event> TriggeredEvents(const Json& journal_event) {
  std::string type = StringField(journal_event, "event");
  if (type == "task.created") {
    const Json* details = journal_event.contains("details") ? &journal_event["details"] : nullptr;
    if (details != nullptr && StringField(*details, "action") == "notification") {
      return {Event::kReceived, Event::kCompleted};
    }
    return {Event::kReceived};
  }
  if (type == "task.completed") {
    return {Event::kCompleted};
  }
  if (type == "task.failed") {
    return {Event::kError};
  }
  return {};
}

bool RuleWants(const RuleOptions& rule, Event event, const Json& details) {
  switch (event) {
    case Event::kReceived:
      return rule.notification_trigger_reception;
    case Event::kCompleted:
      // With completion_on_request, only when a processing module asked for it (result.json).
      if (rule.notification_trigger_completion_on_request) {
        return details.is_object() && details.value("notification_requested", false) == true;
      }
      return rule.notification_trigger_completion;
    case Event::kError:
      return rule.notification_trigger_error;
  }
  return false;
}

std::string NotificationId(std::string_view file, uint64_t offset, Event event, Channel channel,
                           int index) {
  // FNV-1a (64 bit): stable across builds and machines, unlike std::hash.
  std::string key = fmt::format("{}\n{}\n{}\n{}\n{}", file, offset, EventName(event),
                                ChannelName(channel), index);
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

std::map<std::string, std::string> TemplateValues(const Json& journal_event,
                                                  const std::string& rule, Event event,
                                                  Channel channel, bool phi) {
  const Json details = journal_event.contains("details") && journal_event["details"].is_object()
                           ? journal_event["details"]
                           : Json::object();
  std::map<std::string, std::string> values = {
      {"rule", rule},
      {"event", std::string(EventName(event))},
      {"task_id", StringField(journal_event, "task_id")},
      {"details", event == Event::kError       ? StringField(details, "reason")
                  : event == Event::kCompleted ? StringField(details, "notification_text")
                                               : ""},
  };
  for (const char* key : {"patient_name", "mrn", "acc"}) {
    if (phi) {
      values[key] = StringField(details, key);
    } else {
      values[key] = channel == Channel::kWebhook ? "UNKNOWN" : "";
    }
  }
  return values;
}

std::string RenderWebhookBody(const RuleOptions& rule, std::map<std::string, std::string> values,
                              std::vector<std::string>* unknown) {
  if (rule.notification_payload.empty()) {
    return Json{{"rule", values["rule"]},
                {"event", values["event"]},
                {"task_id", values["task_id"]},
                {"details", values["details"]}}
        .dump();
  }
  Rendered body = RenderTemplate(rule.notification_payload_body, values, Escape::kNone);
  unknown->insert(unknown->end(), body.unknown.begin(), body.unknown.end());
  values["body"] = body.text;
  Rendered payload = RenderTemplate("{" + rule.notification_payload + "}", values, Escape::kJson);
  unknown->insert(unknown->end(), payload.unknown.begin(), payload.unknown.end());
  return payload.text;
}

std::vector<std::string> SplitAddresses(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = Trim(list.substr(0, comma));
    if (!item.empty()) {
      out.emplace_back(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string PublicDestination(Channel channel, std::string_view destination) {
  if (channel == Channel::kEmail) {
    return std::string(destination);
  }
  size_t scheme = destination.find("://");
  if (scheme == std::string_view::npos) {
    return "(not a URL)";
  }
  std::string_view authority = destination.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  return std::string(destination.substr(0, scheme + 3)) + std::string(authority);
}

BuildResult BuildNotifications(const JournalLine& line, const std::vector<RuleOptions>& rules,
                               bool phi, WallTime now) {
  BuildResult out;
  std::vector<Event> events = TriggeredEvents(line.event);
  if (events.empty()) {
    return out;
  }
  const Json& details = line.event.contains("details") ? line.event["details"] : Json::object();
  std::string rule_name = StringField(details, "rule");
  const RuleOptions* rule = nullptr;
  for (const auto& r : rules) {
    if (r.name == rule_name) {
      rule = &r;
      break;
    }
  }
  if (rule == nullptr) {
    if (!rule_name.empty()) {
      out.skipped = "rule \"" + rule_name + "\" is not in the config (renamed or removed?)";
    }
    return out;
  }
  std::vector<std::string> addresses = SplitAddresses(rule->notification_email);
  if (rule->notification_webhook.empty() && addresses.empty()) {
    return out;
  }
  auto note_unknown = [&](const std::vector<std::string>& names) {
    for (const auto& n : names) {
      out.unknown_placeholders.push_back("rule " + rule->name + ": {{ " + n + " }}");
    }
  };
  for (Event event : events) {
    if (!RuleWants(*rule, event, details)) {
      continue;
    }
    Notification base;
    base.rule = rule->name;
    base.event = event;
    base.task_id = StringField(line.event, "task_id");
    base.series_uid = StringField(line.event, "series_uid");
    base.journal_file = line.file;
    base.journal_offset = line.offset;
    base.created_at = FormatIso8601(now);
    base.next_attempt_at = EpochSeconds(now);
    if (!rule->notification_webhook.empty()) {
      Notification n = base;
      n.channel = Channel::kWebhook;
      n.id = NotificationId(line.file, line.offset, event, n.channel, 0);
      n.destination = rule->notification_webhook;
      n.content_type = "application/json";
      std::vector<std::string> unknown;
      n.body = RenderWebhookBody(
          *rule, TemplateValues(line.event, rule->name, event, Channel::kWebhook, phi), &unknown);
      note_unknown(unknown);
      out.notifications.push_back(std::move(n));
    }
    if (!addresses.empty()) {
      bool html = rule->notification_email_type == "html";
      auto values = TemplateValues(line.event, rule->name, event, Channel::kEmail, phi);
      Rendered body = RenderTemplate(rule->notification_email_body.empty()
                                         ? kDefaultEmailBody
                                         : std::string_view(rule->notification_email_body),
                                     values, html ? Escape::kHtml : Escape::kNone);
      note_unknown(body.unknown);
      for (size_t i = 0; i < addresses.size(); ++i) {
        Notification n = base;
        n.channel = Channel::kEmail;
        n.id = NotificationId(line.file, line.offset, event, n.channel, static_cast<int>(i));
        n.destination = addresses[i];
        n.subject = fmt::format("[ferry] Rule {}: {}", rule->name, EventName(event));
        n.body = body.text;
        n.content_type = html ? "text/html" : "text/plain";
        out.notifications.push_back(std::move(n));
      }
    }
  }
  return out;
}

}  // namespace ferry::notify
