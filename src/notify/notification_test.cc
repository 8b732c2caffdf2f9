#include "notify/notification.h"

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace ferry::notify {
namespace {

using Json = nlohmann::json;

JournalLine Line(const std::string& event, Json details, uint64_t offset = 100) {
  return {"router-20260101T000000Z-7.jsonl", offset,
          Json{{"event", event},
               {"task_id", "task-1"},
               {"series_uid", "1.2.3"},
               {"details", std::move(details)}}};
}

Json Created(const std::string& rule, const std::string& action = "route") {
  return Json{{"rule", rule},
              {"action", action},
              {"patient_name", "Doe^Jane"},
              {"mrn", "MRN7"},
              {"acc", "ACC9"}};
}

RuleOptions Rule(const std::string& name) {
  RuleOptions r;
  r.name = name;
  r.notification_webhook = "https://user:secret@hooks.example.org:8443/services/T0/B0/XYZ?k=1";
  r.notification_payload =
      R"("text": "{{ event }} {{ rule }} {{ task_id }}", "who": "{{ patient_name }}", "b": "{{ body }}")";
  r.notification_payload_body = "body of {{ rule }} for {{ patient_name }}";
  r.notification_email = "a@example.org, b@example.org";
  r.notification_email_body = "Task {{ task_id }}: {{ event }} {{ details }} {{ mrn }}";
  return r;
}

TEST(Notification, TriggeredEvents) {
  EXPECT_EQ(TriggeredEvents(Line("task.created", Created("r")).event),
            std::vector<Event>{Event::kReceived});
  EXPECT_EQ(TriggeredEvents(Line("task.created", Created("r", "notification")).event),
            (std::vector<Event>{Event::kReceived, Event::kCompleted}));
  EXPECT_EQ(TriggeredEvents(Line("task.completed", Created("r")).event),
            std::vector<Event>{Event::kCompleted});
  EXPECT_EQ(TriggeredEvents(Line("task.failed", Created("r")).event),
            std::vector<Event>{Event::kError});
  EXPECT_TRUE(TriggeredEvents(Line("series.discarded", Created("r")).event).empty());
  EXPECT_TRUE(TriggeredEvents(Line("association.closed", Json::object()).event).empty());
}

TEST(Notification, OnePerChannelAndRecipient) {
  FakeClock clock;
  auto built =
      BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, false, clock.Now());
  ASSERT_EQ(built.notifications.size(), 3u);
  EXPECT_EQ(built.notifications[0].channel, Channel::kWebhook);
  EXPECT_EQ(built.notifications[1].destination, "a@example.org");
  EXPECT_EQ(built.notifications[2].destination, "b@example.org");
  EXPECT_EQ(built.notifications[1].subject, "[ferry] Rule r: RECEIVED");
  std::set<std::string> ids;
  for (const auto& n : built.notifications) {
    ids.insert(n.id);
    EXPECT_EQ(n.event, Event::kReceived);
    EXPECT_EQ(n.task_id, "task-1");
    EXPECT_EQ(n.attempts, 0);
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST(Notification, TriggerFlagsSelect) {
  FakeClock clock;
  RuleOptions r = Rule("r");
  r.notification_trigger_reception = false;
  r.notification_trigger_error = false;
  EXPECT_TRUE(BuildNotifications(Line("task.created", Created("r")), {r}, false, clock.Now())
                  .notifications.empty());
  EXPECT_TRUE(BuildNotifications(Line("task.failed", Created("r")), {r}, false, clock.Now())
                  .notifications.empty());
  auto done = BuildNotifications(Line("task.completed", Created("r")), {r}, false, clock.Now());
  ASSERT_EQ(done.notifications.size(), 3u);
  EXPECT_EQ(done.notifications[0].event, Event::kCompleted);
  // A notification rule announces reception and completion at once; here only completion.
  auto both = BuildNotifications(Line("task.created", Created("r", "notification")), {r}, false,
                                 clock.Now());
  ASSERT_EQ(both.notifications.size(), 3u);
  EXPECT_EQ(both.notifications[0].event, Event::kCompleted);
}

TEST(Notification, RulesWithoutChannelsOrUnknownRulesGiveNothing) {
  FakeClock clock;
  RuleOptions quiet;
  quiet.name = "quiet";
  EXPECT_TRUE(
      BuildNotifications(Line("task.created", Created("quiet")), {quiet}, false, clock.Now())
          .notifications.empty());
  auto gone =
      BuildNotifications(Line("task.created", Created("gone")), {quiet}, false, clock.Now());
  EXPECT_TRUE(gone.notifications.empty());
  EXPECT_NE(gone.skipped.find("gone"), std::string::npos);
}

TEST(Notification, PhiOnlyWhenAllowed) {
  FakeClock clock;
  auto off =
      BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, false, clock.Now());
  Json hook = Json::parse(off.notifications[0].body);
  EXPECT_EQ(hook["text"], "RECEIVED r task-1");
  EXPECT_EQ(hook["who"], "UNKNOWN");
  EXPECT_EQ(hook["b"], "body of r for UNKNOWN");
  EXPECT_EQ(off.notifications[1].body.find("MRN7"), std::string::npos);
  EXPECT_EQ(off.notifications[1].body, "Task task-1: RECEIVED  ");

  auto on = BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, true, clock.Now());
  hook = Json::parse(on.notifications[0].body);
  EXPECT_EQ(hook["who"], "Doe^Jane");
  EXPECT_EQ(hook["b"], "body of r for Doe^Jane");
  EXPECT_EQ(on.notifications[1].body, "Task task-1: RECEIVED  MRN7");
}

TEST(Notification, ErrorCarriesTheReasonEscaped) {
  FakeClock clock;
  Json details = Created("r");
  details["reason"] = "out: \"folder\" is not a folder\n";
  auto built = BuildNotifications(Line("task.failed", details), {Rule("r")}, false, clock.Now());
  ASSERT_FALSE(built.notifications.empty());
  RuleOptions r = Rule("r");
  r.notification_payload = R"("d": "{{ details }}")";
  built = BuildNotifications(Line("task.failed", details), {r}, false, clock.Now());
  EXPECT_EQ(Json::parse(built.notifications[0].body)["d"], details["reason"]);
  EXPECT_NE(built.notifications[1].body.find("is not a folder"), std::string::npos);
}

TEST(Notification, AModulesNotificationIsTheCompletionDetailsAndCanBeRequested) {
  FakeClock clock;
  RuleOptions r = Rule("r");
  r.notification_payload = R"("d": "{{ details }}")";
  Json details = Created("r");
  details["notification_text"] = "stroke-ai: no bleeding";
  details["notification_requested"] = false;
  auto built = BuildNotifications(Line("task.completed", details), {r}, false, clock.Now());
  ASSERT_FALSE(built.notifications.empty());
  EXPECT_EQ(Json::parse(built.notifications[0].body)["d"], "stroke-ai: no bleeding");
  // Completion only on request: nothing unless the module asked for it.
  r.notification_trigger_completion_on_request = true;
  EXPECT_TRUE(
      BuildNotifications(Line("task.completed", details), {r}, false, clock.Now()).notifications.empty());
  details["notification_requested"] = true;
  EXPECT_FALSE(
      BuildNotifications(Line("task.completed", details), {r}, false, clock.Now()).notifications.empty());
}

TEST(Notification, EmptyPayloadGivesADefaultObject) {
  FakeClock clock;
  RuleOptions r = Rule("r");
  r.notification_payload.clear();
  auto built = BuildNotifications(Line("task.completed", Created("r")), {r}, false, clock.Now());
  Json j = Json::parse(built.notifications[0].body);
  EXPECT_EQ(j,
            (Json{{"rule", "r"}, {"event", "COMPLETED"}, {"task_id", "task-1"}, {"details", ""}}));
}

TEST(Notification, UnknownPlaceholdersAreReported) {
  FakeClock clock;
  RuleOptions r = Rule("r");
  r.notification_email_body = "{{ DeviceSerialNumber }}";
  auto built = BuildNotifications(Line("task.completed", Created("r")), {r}, false, clock.Now());
  ASSERT_EQ(built.unknown_placeholders.size(), 1u);
  EXPECT_NE(built.unknown_placeholders[0].find("DeviceSerialNumber"), std::string::npos);
}

TEST(Notification, IdsAreDeterministic) {
  std::string a = NotificationId("f.jsonl", 10, Event::kReceived, Channel::kWebhook, 0);
  EXPECT_EQ(a, NotificationId("f.jsonl", 10, Event::kReceived, Channel::kWebhook, 0));
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, NotificationId("f.jsonl", 11, Event::kReceived, Channel::kWebhook, 0));
  EXPECT_NE(a, NotificationId("g.jsonl", 10, Event::kReceived, Channel::kWebhook, 0));
  EXPECT_NE(a, NotificationId("f.jsonl", 10, Event::kCompleted, Channel::kWebhook, 0));
  EXPECT_NE(a, NotificationId("f.jsonl", 10, Event::kReceived, Channel::kEmail, 0));
  EXPECT_NE(NotificationId("f.jsonl", 10, Event::kReceived, Channel::kEmail, 0),
            NotificationId("f.jsonl", 10, Event::kReceived, Channel::kEmail, 1));
  FakeClock clock;
  auto one =
      BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, false, clock.Now());
  clock.Advance(std::chrono::hours(1));
  auto two =
      BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, false, clock.Now());
  EXPECT_EQ(one.notifications[0].id, two.notifications[0].id);
}

TEST(Notification, JsonRoundTrip) {
  FakeClock clock;
  auto built =
      BuildNotifications(Line("task.created", Created("r")), {Rule("r")}, false, clock.Now());
  Notification n = built.notifications[1];
  n.attempts = 3;
  n.last_error = "x";
  auto back = NotificationFromJson(ToJson(n));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(n));
  EXPECT_FALSE(NotificationFromJson(Json{{"id", "x"}}));
}

TEST(Notification, PublicDestinationHidesSecrets) {
  EXPECT_EQ(PublicDestination(Channel::kWebhook, Rule("r").notification_webhook),
            "https://hooks.example.org:8443");
  EXPECT_EQ(PublicDestination(Channel::kWebhook, "http://h/x"), "http://h");
  EXPECT_EQ(PublicDestination(Channel::kEmail, "a@b"), "a@b");
}

TEST(Notification, SplitAddresses) {
  EXPECT_EQ(SplitAddresses(" a@x , b@y,,c@z "), (std::vector<std::string>{"a@x", "b@y", "c@z"}));
  EXPECT_TRUE(SplitAddresses("  ").empty());
}

}  // namespace
}  // namespace ferry::notify
