#include "dispatch/dispatcher.h"
#include "spool/queue_actions.h"

#include <condition_variable>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "spool/task.h"
#include "testing/fake_clock.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

// A target whose answers the test scripts: per file name, how many times it fails (transiently
// or permanently) before it accepts; and a file before which Send() waits until released.
struct Script {
  std::mutex mu;
  std::condition_variable cv;
  std::string hold_at;
  bool holding = false;
  std::map<std::string, int> transient_failures;
  std::set<std::string> permanent;
  std::vector<std::string> sent;  // every attempt, in order
  int finished = 0;
};

class ScriptedTarget : public Target {
 public:
  ScriptedTarget(const TargetOptions& o, Script* script) : Target(o), script_(script) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext&) override {
    return std::unique_ptr<TargetSession>(std::make_unique<Session>(script_));
  }
  Status Check() override { return Status::Ok(); }

 private:
  class Session : public TargetSession {
   public:
    explicit Session(Script* s) : s_(s) {}
    void Send(const std::vector<OutgoingInstance>& instances,
              std::vector<InstanceResult>* results) override {
      std::unique_lock<std::mutex> lock(s_->mu);
      for (const auto& i : instances) {
        std::string name = BaseName(i.path);
        if (name == s_->hold_at) {
          s_->holding = true;
          s_->cv.notify_all();
          s_->cv.wait(lock, [&] { return s_->hold_at.empty(); });
          s_->holding = false;
        }
        s_->sent.push_back(name);
        if (s_->permanent.count(name)) {
          results->push_back({Outcome::kPermanent, "refused"});
        } else if (s_->transient_failures[name] > 0) {
          --s_->transient_failures[name];
          results->push_back({Outcome::kTransient, "busy"});
        } else {
          results->push_back({Outcome::kDelivered, ""});
        }
      }
    }
    Status Finish() override {
      std::lock_guard<std::mutex> lock(s_->mu);
      ++s_->finished;
      return Status::Ok();
    }

   private:
    Script* s_;
  };
  Script* script_;
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ferry-dispatch-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    spool_ = std::make_unique<Spool>(dir_, "dispatcher", fs_);
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(spool_->StagePath(kJournal), "dispatcher", &clock_, fs_);
    ASSERT_TRUE(j.has_value());
    journal_ = std::move(*j);
    config_.data_folder = dir_;
    config_.dispatcher.retry.initial_delay_ms = 1000;
    config_.dispatcher.retry.multiplier = 2;
    config_.dispatcher.retry.max_attempts = 4;
    TargetOptions pacs;
    pacs.name = "pacs";
    config_.targets.push_back(pacs);
  }
  void TearDown() override {
    dispatcher_.reset();
    std::filesystem::remove_all(dir_);
  }

  // `scripts`: the answers of each configured target (default: script_ for "pacs").
  void Start(std::map<std::string, Script*> scripts = {}) {
    if (scripts.empty()) {
      scripts["pacs"] = &script_;
    }
    std::map<std::string, std::unique_ptr<Target>> targets;
    for (const auto& o : config_.targets) {
      targets[o.name] = std::make_unique<ScriptedTarget>(o, scripts.at(o.name));
    }
    dispatcher_ = std::make_unique<Dispatcher>(
        config_, std::move(targets), spool_.get(), journal_.get(), &clock_,
        [](const std::string& path) -> Result<OutgoingInstance> {
          OutgoingInstance i;
          i.path = path;
          i.sop_instance_uid = BaseName(path);
          return i;
        });
    ASSERT_TRUE(dispatcher_->Recover().ok());
  }

  // A route task for `pacs` with `files` in outgoing/.
  std::string AddTask(const std::vector<std::string>& files, const std::string& priority = "normal") {
    TaskSpec spec;
    spec.id = "task-" + std::to_string(++tasks_);
    spec.action = "route";
    spec.uid = "1.2.3";
    spec.uid_type = "series";
    spec.targets = {"pacs"};
    spec.ferry = {{"priority", priority}};
    std::string dir = JoinPath(spool_->StagePath(kOutgoing), spec.id);
    EXPECT_TRUE(fs_->CreateDirs(dir).ok());
    for (const auto& f : files) {
      EXPECT_TRUE(spool_->WriteFileAtomic(dir, f, "x", Durability::kOs).ok());
    }
    EXPECT_TRUE(spool_->WriteFileAtomic(dir, "task.json", BuildTaskJson(spec, "t").dump(),
                                        Durability::kOs).ok());
    return spec.id;
  }

  // Runs passes until the task is in `stage` (bounded).
  bool RunUntil(std::string_view stage, const std::string& id) {
    for (int i = 0; i < 500; ++i) {
      dispatcher_->RunOnce();
      if (fs_->IsDirectory(JoinPath(spool_->StagePath(stage), id))) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  Json TaskJson(std::string_view stage, const std::string& id) {
    auto text = fs_->ReadFile(JoinPath(JoinPath(spool_->StagePath(stage), id), "task.json"));
    return text ? Json::parse(*text) : Json();
  }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
  FakeClock clock_;
  Config config_;
  Script script_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Dispatcher> dispatcher_;
  int tasks_ = 0;
};

TEST_F(DispatcherTest, DeliversAndFinishes) {
  Start();
  std::string id = AddTask({"a.dcm", "b.dcm"});
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(script_.finished, 1);
  Json t = TaskJson(kSuccess, id);
  EXPECT_EQ(t["dispatch"]["status"]["pacs"]["state"], "complete");
  EXPECT_EQ(t["ferry"]["dispatch"]["delivered"]["pacs"], Json::array({"a.dcm", "b.dcm"}));
}

TEST_F(DispatcherTest, TransientFailureIsRetriedWithBackoffAndOnlyWhatFailedIsResent) {
  script_.transient_failures["b.dcm"] = 2;
  Start();
  std::string id = AddTask({"a.dcm", "b.dcm"});
  ASSERT_TRUE(RunUntil(kOutgoing, id));
  // Back in outgoing/ with the schedule in task.json: not before initial_delay has passed.
  Json t = TaskJson(kOutgoing, id);
  EXPECT_EQ(t["ferry"]["dispatch"]["attempts"], 1);
  EXPECT_EQ(t["dispatch"]["retries"], 1);
  double next = t["ferry"]["dispatch"]["next_attempt_at"];
  double now = std::chrono::duration<double>(clock_.Now().time_since_epoch()).count();
  EXPECT_NEAR(next - now, 1.0, 0.01);
  for (int i = 0; i < 20; ++i) {
    dispatcher_->RunOnce();
  }
  EXPECT_TRUE(fs_->IsDirectory(JoinPath(spool_->StagePath(kOutgoing), id)));  // still waiting
  clock_.Advance(std::chrono::milliseconds(1001));
  ASSERT_TRUE(RunUntil(kOutgoing, id));  // second attempt fails too: 2 s backoff now
  for (int i = 0; i < 200 && TaskJson(kOutgoing, id)["ferry"]["dispatch"]["attempts"] != 2; ++i) {
    dispatcher_->RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  t = TaskJson(kOutgoing, id);
  ASSERT_EQ(t["ferry"]["dispatch"]["attempts"], 2);
  next = t["ferry"]["dispatch"]["next_attempt_at"];
  now = std::chrono::duration<double>(clock_.Now().time_since_epoch()).count();
  EXPECT_NEAR(next - now, 2.0, 0.01);
  clock_.Advance(std::chrono::milliseconds(2001));
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(script_.sent, (std::vector<std::string>{"a.dcm", "b.dcm", "b.dcm", "b.dcm"}));
}

TEST_F(DispatcherTest, RestartContinuesTheScheduleFromTaskJson) {
  script_.transient_failures["a.dcm"] = 1;
  Start();
  std::string id = AddTask({"a.dcm"});
  ASSERT_TRUE(RunUntil(kOutgoing, id));
  for (int i = 0; i < 200 && TaskJson(kOutgoing, id)["ferry"]["dispatch"]["attempts"] != 1; ++i) {
    dispatcher_->RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Start();  // a new dispatcher process
  for (int i = 0; i < 20; ++i) {
    dispatcher_->RunOnce();
  }
  EXPECT_EQ(script_.sent.size(), 1u);  // the backoff still holds
  clock_.Advance(std::chrono::seconds(2));
  ASSERT_TRUE(RunUntil(kSuccess, id));
}

TEST_F(DispatcherTest, ALongTransferRecordsItsProgressWhileItRuns) {
  // 300 files: the first batch (256) is delivered, the second waits at its first file.
  std::vector<std::string> files;
  for (int i = 0; i < 300; ++i) {
    files.push_back(fmt::format("{:03}.dcm", i));
  }
  script_.hold_at = files[256];
  Start();
  std::string id = AddTask(files);
  const std::string task_json = JoinPath(JoinPath(spool_->StagePath(kTmp), "dispatcher"), id);
  auto delivered_on_disk = [&] {
    auto text = fs_->ReadFile(JoinPath(task_json, "task.json"));
    Json t = text ? Json::parse(*text, nullptr, false) : Json();
    auto p = "/ferry/dispatch/delivered/pacs"_json_pointer;
    return t.is_object() && t.contains(p) ? t.at(p).size() : size_t{0};
  };
  bool held = false;
  for (int i = 0; i < 400 && !held; ++i) {
    dispatcher_->RunOnce();
    std::lock_guard<std::mutex> lock(script_.mu);
    held = script_.holding;
    if (!held) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ASSERT_TRUE(held);
  dispatcher_->RunOnce();
  EXPECT_EQ(delivered_on_disk(), 0u);  // not yet: at most once per interval
  clock_.Advance(std::chrono::seconds(5));
  dispatcher_->RunOnce();
  // What a dispatcher killed now would resume from: the first batch is not sent again.
  EXPECT_EQ(delivered_on_disk(), 256u);
  {
    std::lock_guard<std::mutex> lock(script_.mu);
    script_.hold_at.clear();
  }
  script_.cv.notify_all();
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(script_.sent.size(), 300u);
  EXPECT_EQ(TaskJson(kSuccess, id)["ferry"]["dispatch"]["delivered"]["pacs"].size(), 300u);
}

TEST_F(DispatcherTest, AFailoverSendsTheWholeSeriesToTheNextMember) {
  TargetOptions primary, backup;
  primary.name = "primary";
  backup.name = "backup";
  config_.targets = {primary, backup};
  config_.target_groups = {{"pacs", GroupPolicy::kFailover, {"primary", "backup"}}};
  Script on_primary, on_backup;
  on_primary.transient_failures["b.dcm"] = 100;  // primary takes a.dcm and c.dcm, not b.dcm
  Start({{"primary", &on_primary}, {"backup", &on_backup}});
  std::string id = AddTask({"a.dcm", "b.dcm", "c.dcm"});  // for "pacs", the group
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(on_primary.sent, (std::vector<std::string>{"a.dcm", "b.dcm", "c.dcm"}));
  // Not only what primary lacked: the backup gets the whole series.
  EXPECT_EQ(on_backup.sent, (std::vector<std::string>{"a.dcm", "b.dcm", "c.dcm"}));
  Json t = TaskJson(kSuccess, id);
  EXPECT_EQ(t["ferry"]["dispatch"]["delivered"]["pacs"],
            Json::array({"a.dcm", "b.dcm", "c.dcm"}));
  EXPECT_EQ(t["ferry"]["dispatch"]["delivered_to"]["pacs"], "backup");
}

TEST_F(DispatcherTest, PermanentFailureGoesToErrorAtOnce) {
  script_.permanent.insert("b.dcm");
  Start();
  std::string id = AddTask({"a.dcm", "b.dcm"});
  ASSERT_TRUE(RunUntil(kError, id));
  Json t = TaskJson(kError, id);
  EXPECT_EQ(t["ferry"]["dispatch"]["attempts"], 1);
  EXPECT_NE(t["ferry"]["dispatch"]["failure"].get<std::string>().find("refused"),
            std::string::npos);
  EXPECT_EQ(t["info"]["fail_stage"], "DISPATCHING");
  // Retry after the operator fixed the destination: only b is sent again.
  script_.permanent.clear();
  ASSERT_EQ(RetryTask(spool_.get(), journal_.get(), id).value(), "outgoing");
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(script_.sent, (std::vector<std::string>{"a.dcm", "b.dcm", "b.dcm"}));
}

TEST_F(DispatcherTest, GivesUpAfterMaxAttempts) {
  script_.transient_failures["a.dcm"] = 100;
  config_.dispatcher.retry.initial_delay_ms = 0;
  Start();
  std::string id = AddTask({"a.dcm"});
  ASSERT_TRUE(RunUntil(kError, id));
  Json t = TaskJson(kError, id);
  EXPECT_EQ(t["ferry"]["dispatch"]["attempts"], 4);
  EXPECT_EQ(script_.sent.size(), 4u);
}

TEST_F(DispatcherTest, UrgentTaskStartsFirst) {
  config_.dispatcher.workers = 1;
  Start();
  std::string normal = AddTask({"n.dcm"});
  clock_.Advance(std::chrono::seconds(1));
  std::string urgent = AddTask({"u.dcm"}, "urgent");
  ASSERT_TRUE(RunUntil(kSuccess, normal));
  ASSERT_TRUE(RunUntil(kSuccess, urgent));
  EXPECT_EQ(script_.sent, (std::vector<std::string>{"u.dcm", "n.dcm"}));
}

}  // namespace
}  // namespace ferry
