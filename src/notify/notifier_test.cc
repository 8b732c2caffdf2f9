#include "notify/notifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <fstream>

#include "testing/fake_clock.h"
#include "testing/fault_injection_file_system.h"

namespace ferry::notify {
namespace {

using Json = nlohmann::json;
using Kind = DeliveryOutcome::Kind;

// Answers with scripted outcomes (then "sent") and records what it was given.
class FakeDeliverer : public Deliverer {
 public:
  DeliveryOutcome Deliver(const Notification& n) override {
    calls.push_back(n);
    auto& script = n.channel == Channel::kWebhook ? webhook : email;
    if (script.empty()) {
      return {Kind::kSent, 200, ""};
    }
    DeliveryOutcome out = script.front();
    script.pop_front();
    return out;
  }
  int Count(Channel c, Event e) const {
    int k = 0;
    for (const auto& n : calls) {
      k += n.channel == c && n.event == e;
    }
    return k;
  }

  std::deque<DeliveryOutcome> webhook;
  std::deque<DeliveryOutcome> email;
  std::vector<Notification> calls;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/ferry-notify-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs_->RemoveTree(root_);
    ASSERT_TRUE(fs_->CreateDirs(root_).ok());
    spool_ = std::make_unique<Spool>(root_, "notifier", fs_);
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(spool_->StagePath(kJournal), "notifier", &clock_, &journal_fs_);
    ASSERT_TRUE(j);
    journal_ = std::move(*j);
    RuleOptions r;
    r.name = "hook";
    r.notification_webhook = "http://127.0.0.1:9/hook";
    r.notification_payload = R"("event": "{{ event }}", "task": "{{ task_id }}")";
    r.notification_email = "ops@example.org";
    config_.rules = {r};
    config_.data_folder = root_;
    config_.notifications.retry = {1000, 2.0, 4000, 4};
  }

  void TearDown() override { fs_->RemoveTree(root_); }

  std::unique_ptr<Notifier> Start() {
    auto n = std::make_unique<Notifier>(config_, spool_.get(), journal_.get(), &clock_, &fake_);
    Status s = n->Init();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }

  // Appends raw text to the router's journal file.
  void Append(const std::string& text) {
    std::ofstream out(JoinPath(spool_->StagePath(kJournal), "router-20260101T000000Z-1.jsonl"),
                      std::ios::app | std::ios::binary);
    out << text;
  }
  static std::string Event(const std::string& type, const std::string& task,
                           const std::string& rule = "hook") {
    return Json{{"time", "2026-01-01T00:00:00Z"},
                {"service", "router"},
                {"pid", 1},
                {"event", type},
                {"task_id", task},
                {"details", {{"rule", rule}, {"reason", "broken"}}}}
               .dump() +
           "\n";
  }

  std::vector<std::string> Events(const std::string& prefix = "notify.") {
    std::vector<std::string> out;
    auto lines = ReadJournalFile(journal_->path(), fs_);
    for (const auto& l : *lines) {
      std::string e = l["event"];
      if (e.rfind(prefix, 0) == 0) {
        out.push_back(e + ":" + l["details"]["channel"].get<std::string>() + ":" +
                      l["details"]["event"].get<std::string>() + ":" +
                      std::to_string(l["details"]["attempt"].get<int>()));
      }
    }
    return out;
  }

  const Notification& Call(Channel c) const {
    for (const auto& n : fake_.calls) {
      if (n.channel == c) {
        return n;
      }
    }
    ADD_FAILURE() << "no call on channel " << ChannelName(c);
    return fake_.calls.front();
  }

  size_t Files(const std::string& sub) {
    auto names = fs_->ListDir(JoinPath(JoinPath(root_, "notify"), sub));
    return names ? names->size() : 0;
  }

  FileSystem* fs_ = DefaultFileSystem();
  FaultInjectionFileSystem journal_fs_;  // the notifier's journal, without fsyncs (faster)
  FakeClock clock_;
  FakeDeliverer fake_;
  Config config_;
  std::string root_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(NotifierTest, QueuesAndSendsCompleteLinesOnly) {
  auto n = Start();
  std::string line = Event("task.created", "t1");
  Append(Event("association.closed", "") + line.substr(0, 20));  // a line being written
  n->RunOnce();
  EXPECT_TRUE(fake_.calls.empty());
  Append(line.substr(20));
  n->RunOnce();
  ASSERT_EQ(fake_.calls.size(), 2u);
  const Notification& hook = Call(Channel::kWebhook);
  EXPECT_EQ(Json::parse(hook.body), (Json{{"event", "RECEIVED"}, {"task", "t1"}}));
  EXPECT_EQ(Call(Channel::kEmail).destination, "ops@example.org");
  auto events = Events();
  std::sort(events.begin(), events.end());
  EXPECT_EQ(events, (std::vector<std::string>{"notify.sent:email:RECEIVED:1",
                                              "notify.sent:webhook:RECEIVED:1"}));
  EXPECT_EQ(n->pending(), 0u);
  EXPECT_EQ(Files("pending"), 0u);
  EXPECT_EQ(Files("sent"), 0u);  // the line's position was saved first: nothing to keep
  Json offsets = Json::parse(*fs_->ReadFile(JoinPath(n->folder(), "offsets.json")));
  EXPECT_EQ(offsets.size(), 1u);  // the notifier's own journal is not read
}

TEST_F(NotifierTest, FirstStartDoesNotAnnounceOldHistory) {
  // The journal holds an event from an hour before the notifier ever ran.
  Append(Event("task.created", "old"));
  clock_.Advance(std::chrono::hours(1));
  auto n = Start();
  Json recent = Json::parse(Event("task.created", "new"));
  recent["time"] = FormatIso8601(clock_.Now());
  Append(recent.dump() + "\n");
  n->RunOnce();
  ASSERT_EQ(fake_.calls.size(), 2u);  // webhook and e-mail of the recent event only
  for (const auto& call : fake_.calls) {
    EXPECT_EQ(call.task_id, "new");
  }
  // Once offsets.json exists, a restart announces whatever is new, however old its time.
  n.reset();
  Append(Event("task.completed", "late"));
  auto again = Start();
  again->RunOnce();
  EXPECT_EQ(fake_.calls.size(), 4u);
}

TEST_F(NotifierTest, RetriesWithBackoffThenSends) {
  fake_.webhook = {{Kind::kRetry, 500, "HTTP 500"}, {Kind::kRetry, 0, "connection refused"}};
  auto n = Start();
  Append(Event("task.completed", "t1"));
  WallTime next = n->RunOnce();
  EXPECT_EQ(next, clock_.Now() + std::chrono::seconds(1));
  EXPECT_EQ(Files("pending"), 1u);
  Json stored = Json::parse(*fs_->ReadFile(
      JoinPath(JoinPath(n->folder(), "pending"), Call(Channel::kWebhook).id + ".json")));
  EXPECT_EQ(stored["attempts"], 1);
  EXPECT_EQ(stored["last_error"], "HTTP 500");

  clock_.Advance(std::chrono::milliseconds(999));
  n->RunOnce();
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kCompleted), 1);  // not due yet
  clock_.Advance(std::chrono::milliseconds(1));
  next = n->RunOnce();
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kCompleted), 2);
  EXPECT_EQ(next, clock_.Now() + std::chrono::seconds(2));  // doubled
  clock_.Advance(std::chrono::seconds(2));
  n->RunOnce();
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kCompleted), 3);
  auto events = Events();
  std::sort(events.begin(), events.begin() + 2);
  EXPECT_EQ(events,
            (std::vector<std::string>{
                "notify.retry_scheduled:webhook:COMPLETED:1", "notify.sent:email:COMPLETED:1",
                "notify.retry_scheduled:webhook:COMPLETED:2", "notify.sent:webhook:COMPLETED:3"}));
  EXPECT_EQ(Files("pending"), 0u);
}

TEST_F(NotifierTest, GivesUpAfterTheLastAttemptAndOnPermanentErrors) {
  for (int i = 0; i < 4; ++i) {
    fake_.webhook.push_back({Kind::kRetry, 503, "HTTP 503"});
  }
  fake_.email = {{Kind::kFailed, 550, "mailbox unavailable"}};
  auto n = Start();
  Append(Event("task.failed", "t1"));
  n->RunOnce();
  EXPECT_EQ(Files("failed"), 1u);  // the e-mail, at once
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(std::chrono::seconds(4));
    n->RunOnce();
  }
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kError), 4);
  EXPECT_EQ(Files("failed"), 2u);
  EXPECT_EQ(Files("pending"), 0u);
  auto events = Events();
  EXPECT_EQ(events.back(), "notify.failed:webhook:ERROR:4");
  EXPECT_EQ(std::count(events.begin(), events.end(), "notify.failed:email:ERROR:1"), 1);

  // An operator moves both back: they get a fresh set of attempts and go out.
  std::string notify = n->folder();
  auto failed = fs_->ListDir(JoinPath(notify, "failed"));
  ASSERT_TRUE(failed);
  for (const auto& name : *failed) {
    ASSERT_TRUE(fs_->Rename(JoinPath(JoinPath(notify, "failed"), name),
                            JoinPath(JoinPath(notify, "pending"), name))
                    .ok());
  }
  n->RunOnce();
  EXPECT_EQ(Events().back().substr(0, 12), "notify.sent:");
  EXPECT_EQ(Files("pending"), 0u);
  EXPECT_EQ(Files("failed"), 0u);
}

TEST_F(NotifierTest, InvalidPayloadFailsForGood) {
  config_.rules[0].notification_payload = R"("a": {{ event }} }, "b")";
  config_.rules[0].notification_email.clear();
  auto n = Start();
  Append(Event("task.created", "t1"));
  n->RunOnce();
  EXPECT_TRUE(fake_.calls.empty());
  EXPECT_EQ(Files("failed"), 1u);
}

TEST_F(NotifierTest, ReplayNeverSendsTwice) {
  {
    auto n = Start();
    Append(Event("task.created", "t1") + Event("task.completed", "t1"));
    n->RunOnce();
  }
  EXPECT_EQ(fake_.calls.size(), 4u);
  // A restart reads nothing again.
  auto again = Start();
  again->RunOnce();
  EXPECT_EQ(fake_.calls.size(), 4u);

  // The position cannot be saved (a directory is in the way): what is sent meanwhile is kept
  // in sent/, so that reading the lines again after a restart does not send it twice.
  std::string offsets = JoinPath(again->folder(), "offsets.json");
  std::string saved = *fs_->ReadFile(offsets);
  ASSERT_TRUE(fs_->RemoveFile(offsets).ok());
  ASSERT_TRUE(fs_->CreateDir(offsets).ok());
  Append(Event("task.failed", "t2"));
  again->RunOnce();
  EXPECT_EQ(fake_.calls.size(), 6u);
  EXPECT_EQ(Files("sent"), 2u);
  // The disk is fine again and the notifier restarts, with the last position it could save.
  ASSERT_TRUE(fs_->RemoveTree(offsets).ok());
  ASSERT_TRUE(
      spool_->WriteFileAtomic(again->folder(), "offsets.json", saved, Durability::kOs).ok());
  fake_.calls.clear();
  auto third = Start();
  third->RunOnce();
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kError), 0);
  EXPECT_EQ(fake_.Count(Channel::kEmail, Event::kError), 0);
  EXPECT_EQ(Files("sent"), 0u);  // pruned once the position is saved
  auto events = Events();
  EXPECT_EQ(std::count(events.begin(), events.end(), "notify.sent:webhook:ERROR:1"), 1);
}

TEST_F(NotifierTest, RereadLinesFindTheirQueuedNotifications) {
  fake_.webhook = {{Kind::kRetry, 500, "HTTP 500"}, {Kind::kRetry, 500, "HTTP 500"}};
  fake_.email = {{Kind::kRetry, 421, "busy"}, {Kind::kRetry, 421, "busy"}};
  {
    auto n = Start();
    Append(Event("task.created", "t1"));
    n->RunOnce();
  }
  ASSERT_EQ(Files("pending"), 2u);
  ASSERT_TRUE(fs_->RemoveFile(JoinPath(JoinPath(root_, "notify"), "offsets.json")).ok());
  auto n = Start();
  n->RunOnce();  // re-reads the line: same ids, nothing new queued, nothing due yet
  EXPECT_EQ(Files("pending"), 2u);
  EXPECT_EQ(fake_.calls.size(), 2u);
  clock_.Advance(std::chrono::seconds(1));
  n->RunOnce();
  clock_.Advance(std::chrono::seconds(2));
  n->RunOnce();
  EXPECT_EQ(fake_.Count(Channel::kWebhook, Event::kReceived), 3);
  EXPECT_EQ(fake_.Count(Channel::kEmail, Event::kReceived), 3);
  EXPECT_EQ(Files("pending"), 0u);
  auto events = Events();
  EXPECT_EQ(std::count(events.begin(), events.end(), "notify.sent:webhook:RECEIVED:3"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "notify.sent:email:RECEIVED:3"), 1);
}

TEST_F(NotifierTest, LinesOfOtherRulesAndEventsAreIgnored) {
  auto n = Start();
  Append(Event("task.created", "t1", "other") + Event("dispatch.begin", "t1") +
         Event("series.discarded", "t2") + "not json\n");
  n->RunOnce();
  EXPECT_TRUE(fake_.calls.empty());
  EXPECT_EQ(Files("pending"), 0u);
}

TEST_F(NotifierTest, DeliversAtMostABatchPerPass) {
  config_.rules[0].notification_email.clear();
  auto n = Start();
  std::string lines;
  for (int i = 0; i < Notifier::kMaxDeliveriesPerPass + 3; ++i) {
    lines += Event("task.completed", "t" + std::to_string(i));
  }
  Append(lines);
  WallTime next = n->RunOnce();
  EXPECT_EQ(next, clock_.Now());  // more to do at once
  EXPECT_EQ(fake_.calls.size(), static_cast<size_t>(Notifier::kMaxDeliveriesPerPass));
  n->RunOnce();
  EXPECT_EQ(fake_.calls.size(), static_cast<size_t>(Notifier::kMaxDeliveriesPerPass + 3));
  EXPECT_EQ(fake_.calls[0].task_id, "t0");  // oldest first
}

// Pulls the plug after every possible number of file operations of a pass: after the restart,
// no notification is lost, and one is sent twice only if it was sent before the crash (the
// window between the peer's answer and removing the pending file).
TEST_F(NotifierTest, CrashAtAnyPointLosesNothing) {
  const std::string journal_file = "router-20260101T000000Z-1.jsonl";
  const std::string text = Event("task.created", "t1") + Event("task.completed", "t1");
  // Runs one pass that stops after `ops` file operations, crashes, and runs a clean pass.
  auto run = [&](int64_t ops, FakeDeliverer* before, FakeDeliverer* after) {
    std::string root = root_ + "-crash";
    fs_->RemoveTree(root);
    ASSERT_TRUE(fs_->CreateDirs(JoinPath(root, "journal")).ok());
    ASSERT_TRUE(
        spool_->WriteFileAtomic(JoinPath(root, "journal"), journal_file, text, Durability::kOs)
            .ok());
    {
      FaultInjectionFileSystem faulty(fs_);
      Spool spool(root, "notifier", &faulty);
      ASSERT_TRUE(spool.Init().ok());
      Notifier n(config_, &spool, journal_.get(), &clock_, before);
      ASSERT_TRUE(n.Init().ok());
      faulty.FailAfter(ops);
      n.RunOnce();
      ASSERT_TRUE(faulty.SimulateCrash().ok());
    }
    FaultInjectionFileSystem unsynced(fs_);  // the same, only faster
    Spool spool(root, "notifier", &unsynced);
    ASSERT_TRUE(spool.Init().ok());
    Notifier n(config_, &spool, journal_.get(), &clock_, after);
    ASSERT_TRUE(n.Init().ok()) << "after " << ops << " operations";
    n.RunOnce();
    EXPECT_EQ(n.pending(), 0u) << "after " << ops << " operations";
    fs_->RemoveTree(root);
  };

  FakeDeliverer clean, nothing;
  run(1 << 20, &clean, &nothing);
  std::set<std::string> expected;
  for (const auto& c : clean.calls) {
    expected.insert(c.id);
  }
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_TRUE(nothing.calls.empty());

  constexpr int64_t kOps = 80;  // more than one pass does here
  for (int64_t ops = 0; ops < kOps; ++ops) {
    FakeDeliverer before, after;
    run(ops, &before, &after);
    if (ops == kOps - 1) {
      EXPECT_EQ(before.calls.size(), 4u);  // the range covered the whole pass
      EXPECT_TRUE(after.calls.empty());
    }
    std::map<std::string, int> sent_before, sent_after;
    for (const auto& c : before.calls) {
      sent_before[c.id]++;
    }
    for (const auto& c : after.calls) {
      sent_after[c.id]++;
      EXPECT_EQ(expected.count(c.id), 1u);
    }
    for (const auto& id : expected) {
      EXPECT_LE(sent_after[id], 1) << id << " after " << ops << " operations";
      if (sent_before[id] == 0) {
        EXPECT_EQ(sent_after[id], 1) << id << " lost after " << ops << " operations";
      }
    }
  }
}

}  // namespace
}  // namespace ferry::notify
