#include "router/router.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "testing/fake_clock.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-router-XXXXXX";
    dir_ = mkdtemp(tmpl);
    receiver_ = std::make_unique<Spool>(dir_, "receiver", fs_);
    spool_ = std::make_unique<Spool>(dir_, "router", fs_);
    ASSERT_TRUE(receiver_->Init().ok());
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(dir_ + "/journal", "router", &clock_, fs_);
    ASSERT_TRUE(j.has_value());
    journal_ = std::move(j).value();
  }
  void TearDown() override { fs_->RemoveTree(dir_); }

  // Defines a folder target for every target the rules name, and a module for every module.
  // Rules stream unless they say otherwise only when `streaming` is true (most tests look at
  // tasks built on completion).
  void UseRules(const std::string& rules_json, bool streaming = false) {
    nlohmann::ordered_json rules = nlohmann::ordered_json::parse(rules_json);
    nlohmann::ordered_json targets = nlohmann::ordered_json::object();
    nlohmann::ordered_json modules = nlohmann::ordered_json::object();
    for (auto& [name, rule] : rules.items()) {
      if (rule.contains("processing_module")) {
        modules[rule["processing_module"].get<std::string>()] = {{"docker_tag", "m:1"}};
      }
      if (!rule.contains("streaming")) {
        rule["streaming"] = streaming;
      }
      std::vector<std::string> names;
      if (rule.contains("target") && rule["target"].is_string()) {
        names.push_back(rule["target"]);
      } else if (rule.contains("target")) {
        names = rule["target"].get<std::vector<std::string>>();
      }
      for (const auto& t : names) {
        targets[t] = {{"target_type", "folder"}, {"folder", "/dest/" + t}};
      }
    }
    nlohmann::ordered_json config = {{"data_folder", "/d"}, {"rules", rules},
                                     {"targets", targets}, {"modules", modules}};
    std::vector<ConfigError> errors;
    Config c = ParseConfig(config.dump(), &errors, false);
    ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
    config_ = c;
    std::vector<RuleSet::Error> rule_errors;
    auto set = RuleSet::Build(config_.rules, &rule_errors);
    ASSERT_TRUE(set.has_value()) << rule_errors[0].reason;
    router_ = std::make_unique<Router>(config_.router, *set, spool_.get(), journal_.get(), &clock_);
    ASSERT_TRUE(router_->Recover().ok());
  }

  // Adds an instance as the receiver would, with an association that is still open.
  void Receive(const std::string& series, const std::string& sop, const Json& tags,
               const std::string& association = "a1") {
    std::string tmp = receiver_->NewTempPath(".dcm");
    auto f = fs_->NewWritableFile(tmp);
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE((*f)->Append("DICM " + sop).ok());
    ASSERT_TRUE((*f)->Close().ok());
    ASSERT_TRUE(receiver_->AddInstance(series, sop, tmp, tags.dump(), Durability::kOs).has_value());
    ASSERT_TRUE(receiver_->MarkAssociationOpen(series, association).ok());
  }

  std::vector<std::string> Tasks(std::string_view stage) {
    auto names = fs_->ListDir(spool_->StagePath(stage));
    return names ? *names : std::vector<std::string>{};
  }

  Json TaskJson(std::string_view stage, const std::string& id) {
    auto text = fs_->ReadFile(JoinPath(JoinPath(spool_->StagePath(stage), id), "task.json"));
    return text ? Json::parse(*text) : Json();
  }

  std::vector<Json> Events(const std::string& type) {
    std::vector<Json> out;
    auto events = ReadJournalFile(journal_->path(), fs_);
    for (auto& e : *events) {
      if (e["event"] == type) {
        out.push_back(e);
      }
    }
    return out;
  }

  // Real time matters here: completion is measured from the folder's modification time.
  void Later(std::chrono::milliseconds d) { clock_.SetWall(std::chrono::system_clock::now() + d); }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
  FakeClock clock_;
  Config config_;
  std::unique_ptr<Spool> receiver_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Router> router_;
};

const Json kCt = {{"Modality", "CT"}, {"PatientName", "Doe^John"}, {"PatientID", "P1"},
                  {"AccessionNumber", "A1"}, {"SeriesDescription", "Head"},
                  {"SenderAET", "CT1"}, {"SenderAddress", "10.0.0.1"}};

TEST_F(RouterTest, WaitsWhileTheAssociationIsOpenThenRoutesAfterGrace) {
  UseRules(R"({"ct": {"rule": "@Modality@ == 'CT'", "target": "pacs"}})");
  Receive("1.1", "1.1.1", kCt);
  Receive("1.1", "1.1.2", kCt);
  Later(std::chrono::seconds(10));
  auto pass = router_->RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->tasks_created, 0);
  EXPECT_EQ(pass->series_pending, 1);
  ASSERT_TRUE(pass->next_check.has_value());
  ASSERT_TRUE(receiver_->MarkAssociationEnded("1.1", "a1").ok());
  Later(std::chrono::milliseconds(3100));
  pass = router_->RunOnce();
  ASSERT_TRUE(pass.has_value());
  EXPECT_EQ(pass->tasks_created, 1);
  auto tasks = Tasks(kOutgoing);
  ASSERT_EQ(tasks.size(), 1u);
  Json task = TaskJson(kOutgoing, tasks[0]);
  EXPECT_EQ(task["info"]["action"], "route");
  EXPECT_EQ(task["info"]["uid"], "1.1");
  EXPECT_EQ(task["info"]["mrn"], "P1");
  EXPECT_EQ(task["dispatch"]["target_name"], Json::array({"pacs"}));
  EXPECT_EQ(task["ferry"]["instances"], 2);
  EXPECT_EQ(task["ferry"]["complete_reason"], "associations ended");
  EXPECT_TRUE(fs_->Exists(JoinPath(JoinPath(spool_->StagePath(kOutgoing), tasks[0]), "1.1.1.dcm")));
  EXPECT_FALSE(fs_->Exists(spool_->SeriesPath("1.1")));
  EXPECT_EQ(Events("series.complete").size(), 1u);
  EXPECT_EQ(Events("task.created").size(), 1u);
}

TEST_F(RouterTest, IdleTimeoutCompletesASeriesWhoseAssociationStaysOpen) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})");
  Receive("1.2", "1.2.1", kCt);
  Later(std::chrono::seconds(59));
  EXPECT_EQ(router_->RunOnce()->tasks_created, 0);
  Later(std::chrono::seconds(61));
  EXPECT_EQ(router_->RunOnce()->tasks_created, 1);
  EXPECT_EQ(TaskJson(kOutgoing, Tasks(kOutgoing)[0])["ferry"]["complete_reason"], "idle timeout");
}

TEST_F(RouterTest, NothingTriggeredGoesToDiscard) {
  UseRules(R"({"mr": {"rule": "@Modality@ == 'MR'", "target": "pacs"}})");
  Receive("1.3", "1.3.1", kCt);
  receiver_->MarkAssociationEnded("1.3", "a1");
  Later(std::chrono::seconds(4));
  EXPECT_EQ(router_->RunOnce()->tasks_created, 1);
  ASSERT_EQ(Tasks(kDiscard).size(), 1u);
  EXPECT_EQ(TaskJson(kDiscard, Tasks(kDiscard)[0])["info"]["action"], "discard");
  EXPECT_EQ(Events("series.discarded").size(), 1u);
}

TEST_F(RouterTest, RouteRulesShareOneTaskAndProcessingGetsItsOwnWithHardLinks) {
  UseRules(R"({"a": {"rule": "True", "target": ["pacs", "archive"]},
               "b": {"rule": "True", "target": "pacs", "priority": "urgent"},
               "c": {"rule": "True", "action": "both", "processing_module": "anon",
                     "target": "research"}})");
  Receive("1.4", "1.4.1", kCt);
  receiver_->MarkAssociationEnded("1.4", "a1");
  Later(std::chrono::seconds(4));
  EXPECT_EQ(router_->RunOnce()->tasks_created, 2);
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  ASSERT_EQ(Tasks(kProcessing).size(), 1u);
  Json route = TaskJson(kOutgoing, Tasks(kOutgoing)[0]);
  EXPECT_EQ(route["dispatch"]["target_name"], Json::array({"pacs", "archive"}));
  EXPECT_EQ(route["ferry"]["priority"], "urgent");
  Json proc = TaskJson(kProcessing, Tasks(kProcessing)[0]);
  EXPECT_EQ(proc["info"]["action"], "both");
  EXPECT_EQ(proc["process"]["module_name"], "anon");
  EXPECT_EQ(proc["dispatch"]["target_name"], Json::array({"research"}));
  EXPECT_TRUE(fs_->ListDir(JoinPath(spool_->StagePath(kTmp), "router"))->empty());
}

TEST_F(RouterTest, DiscardRuleStopsEvaluation) {
  UseRules(R"({"drop_scouts": {"rule": "'Head' in @SeriesDescription@", "action": "discard"},
               "all": {"rule": "True", "target": "pacs"}})");
  Receive("1.5", "1.5.1", kCt);
  receiver_->MarkAssociationEnded("1.5", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  EXPECT_EQ(Tasks(kOutgoing).size(), 0u);
  ASSERT_EQ(Tasks(kDiscard).size(), 1u);
  EXPECT_EQ(TaskJson(kDiscard, Tasks(kDiscard)[0])["info"]["applied_rule"], "drop_scouts");
}

TEST_F(RouterTest, FallbackOnlyWhenNothingElseTriggered) {
  UseRules(R"({"mr": {"rule": "@Modality@ == 'MR'", "target": "mr_pacs"},
               "rest": {"rule": "True", "target": "archive", "fallback": true}})");
  Receive("1.6", "1.6.1", kCt);
  receiver_->MarkAssociationEnded("1.6", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  EXPECT_EQ(TaskJson(kOutgoing, Tasks(kOutgoing)[0])["dispatch"]["target_name"],
            Json::array({"archive"}));
}

TEST_F(RouterTest, RuntimeErrorDoesNotTriggerAndIsJournaled) {
  UseRules(R"({"bad": {"rule": "int(@Modality@) > 3", "target": "pacs"}})");
  Receive("1.7", "1.7.1", kCt);
  receiver_->MarkAssociationEnded("1.7", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  EXPECT_EQ(Tasks(kDiscard).size(), 1u);
  auto errors = Events("rule.error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["details"]["rule"], "bad");
}

TEST_F(RouterTest, LateArrivalFormsFollowUpTaskLinkedToTheFirst) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})");
  Receive("1.8", "1.8.1", kCt);
  receiver_->MarkAssociationEnded("1.8", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  std::string first = Tasks(kOutgoing)[0];
  Receive("1.8", "1.8.2", kCt, "a2");
  receiver_->MarkAssociationEnded("1.8", "a2");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  auto tasks = Tasks(kOutgoing);
  ASSERT_EQ(tasks.size(), 2u);
  std::string second = tasks[0] == first ? tasks[1] : tasks[0];
  EXPECT_EQ(TaskJson(kOutgoing, second)["ferry"]["parent_task"], first);
  EXPECT_EQ(Events("task.follow_up").size(), 1u);
}

TEST_F(RouterTest, ForcedSeriesCompletesAtOnce) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})");
  Receive("1.9", "1.9.1", kCt);
  ASSERT_TRUE(spool_->WriteFileAtomic(spool_->SeriesPath("1.9"), kForceCompleteFile, "",
                                      Durability::kOs)
                  .ok());
  Later(std::chrono::milliseconds(0));
  EXPECT_EQ(router_->RunOnce()->tasks_created, 1);
  EXPECT_EQ(TaskJson(kOutgoing, Tasks(kOutgoing)[0])["ferry"]["complete_reason"], "forced");
}

TEST_F(RouterTest, RecoverPutsAClaimedSeriesBackIntoIncoming) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})");
  Receive("2.1", "2.1.1", kCt);
  Receive("2.1", "2.1.2", kCt);
  // A router killed right after claiming the series.
  std::string work = JoinPath(spool_->StagePath(kTmp), "router");
  ASSERT_TRUE(fs_->Rename(spool_->SeriesPath("2.1"), JoinPath(work, "claim-2.1")).ok());
  ASSERT_TRUE(router_->Recover().ok());
  auto state = spool_->ReadSeriesState("2.1");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->instances, 2);
  EXPECT_TRUE(fs_->ListDir(work)->empty());
}

Json Tags(const std::string& description, const std::string& study = "9.1") {
  Json t = kCt;
  t["SeriesDescription"] = description;
  t["StudyInstanceUID"] = study;
  return t;
}

TEST_F(RouterTest, StudyRuleCompletesWhenTheRequiredSeriesArrived) {
  UseRules(R"json({"brain": {"rule": "True", "target": "pacs", "action_trigger": "study",
                         "study_trigger_condition": "received_series",
                         "study_trigger_series": "'T1' and ('T2' or 'FLAIR')"}})json");
  Receive("3.1", "3.1.1", Tags("Ax T1 MPRAGE"));
  Receive("3.1", "3.1.2", Tags("Ax T1 MPRAGE"));
  receiver_->MarkAssociationEnded("3.1", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  EXPECT_TRUE(Tasks(kOutgoing).empty());
  ASSERT_EQ(Tasks(kStudies).size(), 1u);
  Receive("3.2", "3.2.1", Tags("Sag FLAIR"));
  receiver_->MarkAssociationEnded("3.2", "a1");
  Later(std::chrono::seconds(8));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  EXPECT_TRUE(Tasks(kStudies).empty());
  Json task = TaskJson(kOutgoing, Tasks(kOutgoing)[0]);
  EXPECT_EQ(task["info"]["uid_type"], "study");
  EXPECT_EQ(task["info"]["uid"], "9.1");
  EXPECT_EQ(task["study"]["received_series_uid"], Json::array({"3.1", "3.2"}));
  EXPECT_EQ(task["study"]["complete_trigger"], "received_series");
  EXPECT_EQ(task["ferry"]["instances"], 3);
  EXPECT_EQ(task["ferry"]["complete_reason"], "required series received");
  EXPECT_EQ(Events("study.complete").size(), 1u);
}

TEST_F(RouterTest, StudyTimeoutAndForcedDiscard) {
  UseRules(R"({"timeout": {"rule": "@SeriesDescription@ == 'a'", "target": "pacs",
                           "action_trigger": "study"},
               "never": {"rule": "@SeriesDescription@ == 'b'", "target": "pacs",
                         "action_trigger": "study", "study_trigger_condition": "received_series",
                         "study_trigger_series": "'c'"}})");
  Receive("4.1", "4.1.1", Tags("a", "8.1"));
  Receive("4.2", "4.2.1", Tags("b", "8.2"));
  receiver_->MarkAssociationEnded("4.1", "a1");
  receiver_->MarkAssociationEnded("4.2", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kStudies).size(), 2u);
  Later(std::chrono::seconds(910));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  EXPECT_EQ(TaskJson(kOutgoing, Tasks(kOutgoing)[0])["ferry"]["complete_reason"], "study timeout");
  Later(std::chrono::seconds(5410));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kDiscard).size(), 1u);
  Json discarded = TaskJson(kDiscard, Tasks(kDiscard)[0]);
  EXPECT_EQ(discarded["info"]["uid"], "8.2");
  EXPECT_EQ(discarded["study"]["complete_force"], true);
  EXPECT_TRUE(Tasks(kStudies).empty());
}

TEST_F(RouterTest, OperatorForcesAStudyComplete) {
  UseRules(R"json({"brain": {"rule": "True", "target": "pacs", "action_trigger": "study",
                         "study_trigger_condition": "received_series",
                         "study_trigger_series": "'T1' and 'T2'"}})json");
  Receive("5.1", "5.1.1", Tags("Ax T1", "7.1"));
  receiver_->MarkAssociationEnded("5.1", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kStudies).size(), 1u);
  EXPECT_TRUE(Tasks(kOutgoing).empty());
  // What POST /api/v1/studies/7.1/complete writes.
  std::string study = JoinPath(spool_->StagePath(kStudies), Tasks(kStudies)[0]);
  ASSERT_TRUE(spool_->WriteFileAtomic(study, kForceCompleteFile, "", Durability::kFsync).ok());
  Later(std::chrono::seconds(1));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  EXPECT_TRUE(Tasks(kStudies).empty());
  std::string task_dir = JoinPath(spool_->StagePath(kOutgoing), Tasks(kOutgoing)[0]);
  Json task = TaskJson(kOutgoing, Tasks(kOutgoing)[0]);
  EXPECT_EQ(task["ferry"]["complete_reason"], "forced by operator");
  EXPECT_EQ(task["info"]["uid"], "7.1");
  EXPECT_FALSE(DefaultFileSystem()->Exists(JoinPath(task_dir, kForceCompleteFile)));
}

TEST_F(RouterTest, SeriesAndStudyRulesShareTheSeriesByHardLinks) {
  UseRules(R"({"series": {"rule": "True", "target": "pacs"},
               "study": {"rule": "True", "target": "archive", "action_trigger": "study"}})");
  Receive("5.1", "5.1.1", Tags("x", "7.1"));
  receiver_->MarkAssociationEnded("5.1", "a1");
  Later(std::chrono::seconds(4));
  router_->RunOnce();
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  ASSERT_EQ(Tasks(kStudies).size(), 1u);
  std::string study = JoinPath(spool_->StagePath(kStudies), Tasks(kStudies)[0]);
  EXPECT_TRUE(fs_->Exists(JoinPath(study, "5.1.1.dcm")));
  EXPECT_TRUE(fs_->Exists(JoinPath(study, "5.1.tags")));
}

TEST(StudyTriggerTest, Table) {
  struct Case {
    const char* expr;
    std::vector<std::string> series;
    bool satisfied;
  };
  for (const Case& c : std::vector<Case>{
           {"'T1'", {"Ax T1"}, true},
           {"'T1'", {"Ax T2"}, false},
           {"'T1' and 'T2'", {"T1 pre", "T2 ax"}, true},
           {"'T1' and 'T2'", {"T1 pre"}, false},
           {"'T1' or 'T2'", {"T2 ax"}, true},
           {"'A' and ('B' or 'C')", {"A", "C"}, true},
           {"'A' and ('B' or 'C')", {"B", "C"}, false},
           {"\"DWI\" or 'ADC'", {"ep2d DWI"}, true},
           {"'t1'", {"T1"}, false},
       }) {
    auto t = StudyTrigger::Parse(c.expr);
    ASSERT_TRUE(t.has_value()) << c.expr << ": " << t.error().message();
    EXPECT_EQ(t->Satisfied(c.series), c.satisfied) << c.expr;
  }
  for (const char* bad : {"", "'A' and", "'A' xor 'B'", "('A'", "'A", "A"}) {
    auto t = StudyTrigger::Parse(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_NE(t.error().message().find("column"), std::string::npos) << bad;
  }
}

TEST(RuleSetTest, SyntaxErrorsNameTheRuleAndColumn) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d", "rules": {
      "ok": {"rule": "True", "target": "t"},
      "broken": {"rule": "@Modality@ == ", "target": "t"},
      "cond": {"rule": "1 if True else 2", "target": "t"}},
      "targets": {"t": {"target_type": "folder", "folder": "/t"}}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty());
  std::vector<RuleSet::Error> rule_errors;
  auto set = RuleSet::Build(c.rules, &rule_errors);
  EXPECT_FALSE(set.has_value());
  ASSERT_EQ(rule_errors.size(), 2u);
  EXPECT_EQ(rule_errors[0].path, "$.rules.broken.rule");
  EXPECT_NE(rule_errors[0].reason.find("column"), std::string::npos);
  EXPECT_EQ(rule_errors[1].path, "$.rules.cond.rule");
}

TEST(RuleSetTest, DisabledAndEmptyRulesLoadLikeMercure) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d", "rules": {
      "off": {"rule": "this is not python (", "target": "t", "disabled": true},
      "empty": {"rule": "", "target": "t"}},
      "targets": {"t": {"target_type": "folder", "folder": "/t"}}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty());
  std::vector<RuleSet::Error> rule_errors;
  auto set = RuleSet::Build(c.rules, &rule_errors);
  ASSERT_TRUE(set.has_value()) << rule_errors[0].reason;
  rules::TagLookup::Map tags = {{"Modality", "CT"}};
  SeriesDecision d = (*set)->Classify(rules::TagLookup(tags));
  EXPECT_TRUE(d.triggered.empty());
  EXPECT_TRUE(d.discard);
}

TEST(RuleSetTest, BadStudyTriggerSeriesIsAConfigError) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d", "rules": {
      "study": {"rule": "True", "target": "t", "action_trigger": "study",
                "study_trigger_condition": "received_series", "study_trigger_series": "'T1' and"}}})",
                         &errors, false);
  std::vector<RuleSet::Error> rule_errors;
  EXPECT_FALSE(RuleSet::Build(c.rules, &rule_errors).has_value());
  ASSERT_EQ(rule_errors.size(), 1u);
  EXPECT_EQ(rule_errors[0].path, "$.rules.study.study_trigger_series");
  EXPECT_NE(rule_errors[0].reason.find("column"), std::string::npos);
}

TEST(TaskIdTest, LooksLikeAUuid4AndIsUnique) {
  std::string a = NewTaskId();
  EXPECT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_NE(a, NewTaskId());
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

class StreamingRouterTest : public RouterTest {};

TEST_F(StreamingRouterTest, RouteOnlySeriesGetsItsTaskAtFirstSightAndIsSealedOnCompletion) {
  UseRules(R"({"ct": {"rule": "@Modality@ == 'CT'", "target": "pacs"}})", /*streaming=*/true);
  Receive("2.1", "2.1.1", kCt);
  auto pass = router_->RunOnce();
  ASSERT_TRUE(pass.has_value());
  auto tasks = Tasks(kOutgoing);
  ASSERT_EQ(tasks.size(), 1u);
  Json task = TaskJson(kOutgoing, tasks[0]);
  EXPECT_EQ(task["ferry"]["streaming"], true);
  EXPECT_EQ(task["info"]["uid"], "2.1");
  EXPECT_EQ(task["dispatch"]["target_name"], Json::array({"pacs"}));
  // The instances stay in incoming/ while the series arrives.
  EXPECT_TRUE(fs_->Exists(JoinPath(spool_->SeriesPath("2.1"), "2.1.1.dcm")));
  Receive("2.1", "2.1.2", kCt);
  ASSERT_TRUE(router_->RunOnce().has_value());
  EXPECT_EQ(Tasks(kOutgoing).size(), 1u);
  ASSERT_TRUE(receiver_->MarkAssociationEnded("2.1", "a1").ok());
  Later(std::chrono::milliseconds(3100));
  ASSERT_TRUE(router_->RunOnce().has_value());
  auto sealed = fs_->ReadFile(JoinPath(spool_->SeriesPath("2.1"), kStreamSealedFile));
  ASSERT_TRUE(sealed.has_value());
  EXPECT_EQ(*sealed, tasks[0]);
  // A sealed series is the dispatcher's: no second task, ever.
  Later(std::chrono::seconds(100));
  ASSERT_TRUE(router_->RunOnce().has_value());
  EXPECT_EQ(Tasks(kOutgoing).size(), 1u);
  EXPECT_EQ(Events("series.complete").size(), 1u);
}

TEST_F(StreamingRouterTest, RestartedRouterReusesTheStreamingTask) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})", /*streaming=*/true);
  Receive("2.2", "2.2.1", kCt);
  ASSERT_TRUE(router_->RunOnce().has_value());
  ASSERT_EQ(Tasks(kOutgoing).size(), 1u);
  UseRules(R"({"ct": {"rule": "True", "target": "pacs"}})", /*streaming=*/true);  // restart
  ASSERT_TRUE(router_->RunOnce().has_value());
  EXPECT_EQ(Tasks(kOutgoing).size(), 1u);
}

TEST_F(StreamingRouterTest, ProcessingOrStreamingFalseWaitsForCompletion) {
  UseRules(R"({"ct": {"rule": "True", "target": "pacs", "streaming": false},
               "ai": {"rule": "True", "target": "pacs", "action": "both",
                      "processing_module": "m"}})",
           /*streaming=*/true);
  Receive("2.3", "2.3.1", kCt);
  ASSERT_TRUE(router_->RunOnce().has_value());
  EXPECT_TRUE(Tasks(kOutgoing).empty());
}

}  // namespace
}  // namespace ferry
