// The processor's job state machine with a fake runtime: claims, chains, outcomes, requeues,
// recovery, limits and the suspend switch. Real containers are tested end to end
// (tests/e2e/test_process.py).
#include "processor/processor.h"

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "spool/control.h"
#include "spool/queue_actions.h"
#include "spool/task.h"
#include "testing/fake_clock.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

// Runs a step by calling the test's function on the job (which writes into out/ like a module).
class FakeRuntime : public ModuleRuntime {
 public:
  using Fn = std::function<Result<ModuleRun>(const ModuleJob&, const std::atomic<bool>&)>;
  Fn fn;
  std::atomic<int> runs{0};
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};

  Result<ModuleRun> Run(const ModuleJob& job, const std::atomic<bool>& cancel) override {
    ++runs;
    int now = ++running;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
    Result<ModuleRun> r = fn(job, cancel);
    --running;
    return r;
  }
};

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A module that copies every .dcm of its input, appending its name to the contents, passes other
// files on, and writes what it saw of task.json into seen-<step>.json.
Result<ModuleRun> CopyModule(const ModuleJob& job, const std::atomic<bool>&) {
  for (const auto& e : std::filesystem::directory_iterator(job.in_dir)) {
    std::string name = e.path().filename().string();
    if (name.ends_with(".dcm")) {
      Write(job.out_dir + "/" + name, Read(e.path().string()) + "+" + job.module->name);
    } else if (name != "task.json" && !name.ends_with(".tags")) {
      Write(job.out_dir + "/" + name, Read(e.path().string()));
    }
  }
  Write(job.out_dir + "/seen-" + std::to_string(job.step) + ".json",
        Read(job.in_dir + "/task.json"));
  ModuleRun run;
  run.exit_code = 0;
  run.image = "fake";
  return run;
}

class ProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ferry-processor-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    spool_ = std::make_unique<Spool>(dir_, "processor", fs_);
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(spool_->StagePath(kJournal), "processor", &clock_, fs_);
    ASSERT_TRUE(j.has_value());
    journal_ = std::move(*j);
    config_.data_folder = dir_;
    config_.processor.workers = 2;
    config_.processor.retry.initial_delay_ms = 1000;
    config_.processor.retry.max_attempts = 3;
    for (std::string name : {"blur", "segment"}) {
      ModuleOptions m;
      m.name = name;
      m.docker_tag = "x";
      m.settings_json = R"({"strength": 1, "mode": "fast"})";
      config_.modules.push_back(m);
    }
    TargetOptions pacs;
    pacs.name = "pacs";
    config_.targets.push_back(pacs);
    TargetOptions other;
    other.name = "other";
    config_.targets.push_back(other);
    RuleOptions rule;
    rule.name = "ai";
    rule.action = RuleAction::kBoth;
    rule.targets = {"pacs"};
    rule.dynamic_routing = true;
    rule.dynamic_routing_allowed_targets = {"other"};
    config_.rules.push_back(rule);
    runtime_.fn = CopyModule;
  }
  void TearDown() override {
    processor_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start() {
    processor_ = std::make_unique<Processor>(
        config_, &runtime_, &runtime_, spool_.get(), journal_.get(), &clock_,
        [](const std::string&) -> Result<std::string> { return std::string("9.9"); });
    ASSERT_TRUE(processor_->Recover().ok());
  }

  // A processing task in processing/ for `modules`, with two instances and series.tags.
  std::string AddTask(std::vector<std::string> modules, Json settings = Json::object(),
                      std::vector<std::string> targets = {}, bool retain = false,
                      std::string priority = "normal") {
    TaskSpec spec;
    spec.id = "task-" + std::to_string(++tasks_);
    spec.action = targets.empty() ? "process" : "both";
    spec.uid = "1.2.3";
    spec.uid_type = "series";
    spec.applied_rule = "ai";
    spec.modules = modules;
    spec.module_settings = settings;
    spec.retain_input_images = retain;
    spec.targets = targets;
    spec.ferry = {{"priority", priority}, {"created", FormatIso8601(clock_.Now())}};
    clock_.Advance(std::chrono::milliseconds(1));
    std::string dir = JoinPath(spool_->StagePath(kProcessing), spec.id);
    EXPECT_TRUE(fs_->CreateDirs(dir).ok());
    for (std::string f : {"1.2.3.1.dcm", "1.2.3.2.dcm"}) {
      Write(dir + "/" + f, "received-" + f);
    }
    Write(dir + "/series.tags", R"({"Modality": "CT"})");
    Write(dir + "/task.json", BuildTaskJson(spec, "t").dump());
    return spec.id;
  }

  bool RunUntil(std::string_view stage, const std::string& id) {
    for (int i = 0; i < 1000; ++i) {
      processor_->RunOnce();
      if (fs_->IsDirectory(JoinPath(spool_->StagePath(stage), id)) && processor_->running() == 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  std::string Path(std::string_view stage, const std::string& id, const std::string& file = "") {
    std::string d = JoinPath(spool_->StagePath(stage), id);
    return file.empty() ? d : d + "/" + file;
  }

  Json TaskJson(std::string_view stage, const std::string& id) {
    return Json::parse(Read(Path(stage, id, "task.json")));
  }

  std::vector<Json> Events(const std::string& type) {
    std::vector<Json> out;
    auto lines = ReadJournalFile(journal_->path(), fs_);
    for (const auto& e : lines ? *lines : std::vector<Json>{}) {
      if (e.value("event", "") == type) {
        out.push_back(e);
      }
    }
    return out;
  }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
  FakeClock clock_;
  Config config_;
  FakeRuntime runtime_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Processor> processor_;
  int tasks_ = 0;
};

TEST_F(ProcessorTest, OneStepGivesTheModuleMercuresViewAndPublishesTheResult) {
  Start();
  std::string id = AddTask({"blur"}, {{"strength", 5}}, {"pacs"});
  ASSERT_TRUE(RunUntil(kOutgoing, id));
  // Input named as mercure names it, with a tags file per instance.
  std::string out = Path(kOutgoing, id);
  EXPECT_EQ(Read(out + "/1.2.3#1.2.3.1.dcm"), "received-1.2.3.1.dcm+blur");
  EXPECT_FALSE(fs_->Exists(out + "/1.2.3.1.dcm"));  // the received images are not sent
  Json seen = Json::parse(Read(out + "/seen-0.json"));
  EXPECT_FALSE(seen.contains("ferry"));
  EXPECT_EQ(seen["process"]["module_name"], "blur");
  EXPECT_EQ(seen["process"]["settings"], Json({{"strength", 5}, {"mode", "fast"}}));
  EXPECT_EQ(seen["process"]["module_config"]["docker_tag"], "x");
  Json task = TaskJson(kOutgoing, id);
  EXPECT_EQ(task["ferry"]["stage"], "outgoing");
  EXPECT_EQ(task["dispatch"]["target_name"], Json({"pacs"}));
  EXPECT_EQ(task["ferry"]["process"]["steps"].size(), 1u);
  EXPECT_TRUE(fs_->Exists(out + "/logs/1-blur.log"));
  EXPECT_FALSE(fs_->Exists(JoinPath(JoinPath(JoinPath(dir_, "tmp"), "processor"), id)));
  ASSERT_EQ(Events("process.complete").size(), 1u);
  EXPECT_EQ(Events("process.complete")[0]["details"]["instances_in"], 2);
  EXPECT_EQ(Events("process.complete")[0]["details"]["instances_out"], 2);
  EXPECT_TRUE(Events("task.completed").empty());  // the dispatcher completes it
}

TEST_F(ProcessorTest, AChainPassesEachOutputOnWithItsOwnSettingsAndRetainsTheInput) {
  Start();
  std::string id = AddTask({"blur", "segment"},
                           Json::array({{{"strength", 2}}, {{"mode", "slow"}}}), {}, true);
  ASSERT_TRUE(RunUntil(kSuccess, id));
  std::string out = Path(kSuccess, id);
  // The retained received images are added after the last step, under mercure's names (over a
  // module output of the same name, as mercure copies them).
  EXPECT_EQ(Read(out + "/1.2.3#1.2.3.2.dcm"), "received-1.2.3.2.dcm");
  Json first = Json::parse(Read(out + "/seen-0.json"));
  Json second = Json::parse(Read(out + "/seen-1.json"));
  EXPECT_EQ(first["process"]["settings"], Json({{"strength", 2}, {"mode", "fast"}}));
  EXPECT_EQ(second["process"]["settings"], Json({{"strength", 1}, {"mode", "slow"}}));
  EXPECT_EQ(second["process"]["module_name"], "segment");
  Json results = Json::parse(Read(out + "/result.json"));
  ASSERT_TRUE(results.is_array());
  EXPECT_EQ(results.size(), 2u);
  EXPECT_EQ(Events("task.completed").size(), 1u);
}

TEST_F(ProcessorTest, ANonZeroExitFailsTheTaskWithItsImagesAndLogForARetry) {
  Start();
  runtime_.fn = [](const ModuleJob& job, const std::atomic<bool>&) -> Result<ModuleRun> {
    Write(job.log_path, "Traceback: no pixel data\n");
    ModuleRun run;
    run.exit_code = 3;
    return run;
  };
  std::string id = AddTask({"blur"});
  ASSERT_TRUE(RunUntil(kError, id));
  Json task = TaskJson(kError, id);
  EXPECT_EQ(task["info"]["fail_stage"], "PROCESSING");
  std::string reason = task["ferry"]["process"]["failure"]["reason"];
  EXPECT_NE(reason.find("exited with code 3"), std::string::npos) << reason;
  EXPECT_NE(reason.find("no pixel data"), std::string::npos) << reason;
  EXPECT_EQ(Read(Path(kError, id, "1.2.3.1.dcm")), "received-1.2.3.1.dcm");
  EXPECT_TRUE(fs_->Exists(Path(kError, id, "series.tags")));
  EXPECT_TRUE(fs_->Exists(Path(kError, id, "logs/1-blur.log")));
  EXPECT_EQ(Events("task.failed").size(), 1u);

  // Retried after the module is fixed: it runs again from the received images.
  runtime_.fn = CopyModule;
  ASSERT_EQ(RetryTask(spool_.get(), journal_.get(), id).value(), "processing");
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(Read(Path(kSuccess, id, "1.2.3#1.2.3.1.dcm")), "received-1.2.3.1.dcm+blur");
}

TEST_F(ProcessorTest, OutputThatIsNotUtf8StillFailsTheTaskCleanly) {
  Start();
  runtime_.fn = [](const ModuleJob& job, const std::atomic<bool>&) -> Result<ModuleRun> {
    // Latin-1 and a progress bar cut in the middle of a character.
    Write(job.log_path, "Fehler: Gr\xf6\xdfe \xe2\x96\x88\xe2\x96" + std::string(400, 'x') + "\n");
    ModuleRun run;
    run.exit_code = 1;
    return run;
  };
  std::string id = AddTask({"blur"});
  ASSERT_TRUE(RunUntil(kError, id));
  Json task = TaskJson(kError, id);  // parses
  EXPECT_NE(task["ferry"]["process"]["failure"]["reason"].get<std::string>().find("Fehler"),
            std::string::npos);
}

TEST_F(ProcessorTest, EmptyOutputTimeoutAndUnrunnableModulesFail) {
  Start();
  runtime_.fn = [](const ModuleJob&, const std::atomic<bool>&) -> Result<ModuleRun> {
    ModuleRun run;
    run.exit_code = 0;
    return run;
  };
  std::string empty = AddTask({"blur"});
  ASSERT_TRUE(RunUntil(kError, empty));
  EXPECT_NE(TaskJson(kError, empty)["ferry"]["process"]["failure"]["reason"].get<std::string>().find(
                "wrote no output"),
            std::string::npos);

  runtime_.fn = [](const ModuleJob&, const std::atomic<bool>&) -> Result<ModuleRun> {
    ModuleRun run;
    run.timed_out = true;
    run.exit_code = 137;
    return run;
  };
  std::string slow = AddTask({"blur"});
  ASSERT_TRUE(RunUntil(kError, slow));
  EXPECT_NE(TaskJson(kError, slow)["ferry"]["process"]["failure"]["reason"].get<std::string>().find(
                "timeout of 3600 s"),
            std::string::npos);

  runtime_.fn = [](const ModuleJob&, const std::atomic<bool>&) -> Result<ModuleRun> {
    return Status::FailedPrecondition("image x is not in the local store");
  };
  std::string missing = AddTask({"blur"});
  ASSERT_TRUE(RunUntil(kError, missing));
  EXPECT_NE(TaskJson(kError, missing)["ferry"]["process"]["failure"]["reason"].get<std::string>().find(
                "image x"),
            std::string::npos);
}

TEST_F(ProcessorTest, AnUnreachableEngineRequeuesWithBackoffUntilTheLastAttempt) {
  Start();
  runtime_.fn = [](const ModuleJob&, const std::atomic<bool>&) -> Result<ModuleRun> {
    return Status::Unavailable("cannot reach the container engine");
  };
  std::string id = AddTask({"blur"});
  processor_->RunOnce();
  for (int i = 0; i < 500 && runtime_.runs < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(RunUntil(kProcessing, id));
  Json task = TaskJson(kProcessing, id);
  EXPECT_EQ(task["ferry"]["process"]["attempts"], 1);
  EXPECT_EQ(Read(Path(kProcessing, id, "1.2.3.1.dcm")), "received-1.2.3.1.dcm");
  // Not before its backoff.
  for (int i = 0; i < 20; ++i) {
    processor_->RunOnce();
  }
  EXPECT_EQ(runtime_.runs, 1);
  clock_.Advance(std::chrono::seconds(2));
  for (int i = 0; i < 500 && runtime_.runs < 2; ++i) {
    processor_->RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(runtime_.runs, 2);
  ASSERT_TRUE(RunUntil(kProcessing, id));  // back, with its second backoff
  EXPECT_EQ(TaskJson(kProcessing, id)["ferry"]["process"]["attempts"], 2);
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(RunUntil(kError, id));
  EXPECT_NE(TaskJson(kError, id)["ferry"]["process"]["failure"]["reason"].get<std::string>().find(
                "gave up after 3 attempts"),
            std::string::npos);
}

TEST_F(ProcessorTest, DynamicRoutingIsHonouredOnlyForAllowedTargets) {
  Start();
  auto routing = [](Json result) {
    return [result](const ModuleJob& job, const std::atomic<bool>& c) -> Result<ModuleRun> {
      Write(job.out_dir + "/result.json", result.dump());
      return CopyModule(job, c);
    };
  };
  runtime_.fn = routing({{"__mercure_routing", {{"target", "other"}}},
                         {"__mercure_notification", {{"text", "found 2 nodules"},
                                                     {"requested", true}}}});
  std::string allowed = AddTask({"blur"}, Json::object(), {"pacs"});
  ASSERT_TRUE(RunUntil(kOutgoing, allowed));
  EXPECT_EQ(TaskJson(kOutgoing, allowed)["dispatch"]["target_name"], Json({"other"}));
  ASSERT_EQ(Events("process.notification").size(), 1u);
  EXPECT_EQ(Events("process.notification")[0]["details"]["text"], "blur: found 2 nodules");

  runtime_.fn = routing({{"__mercure_routing", {{"target", "pacs2"}}}});
  std::string refused = AddTask({"blur"}, Json::object(), {"pacs"});
  ASSERT_TRUE(RunUntil(kOutgoing, refused));
  EXPECT_EQ(TaskJson(kOutgoing, refused)["dispatch"]["target_name"], Json({"pacs"}));

  runtime_.fn = routing({{"__mercure_routing", {{"discard", true}}}});
  std::string discarded = AddTask({"blur"}, Json::object(), {"pacs"});
  ASSERT_TRUE(RunUntil(kSuccess, discarded));
  EXPECT_EQ(TaskJson(kSuccess, discarded)["dispatch"], Json::object());
}

TEST_F(ProcessorTest, RunsUpToWorkersJobsAtOnceAndAModuleLimitHolds) {
  config_.processor.workers = 3;
  config_.modules[1].max_parallel = 1;
  Start();
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  runtime_.fn = [&](const ModuleJob& job, const std::atomic<bool>& c) -> Result<ModuleRun> {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
    return CopyModule(job, c);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(AddTask({"blur"}));
  }
  for (int i = 0; i < 200 && runtime_.running < 3; ++i) {
    processor_->RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(runtime_.running, 3);
  EXPECT_EQ(processor_->running(), 3u);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (const auto& id : ids) {
    ASSERT_TRUE(RunUntil(kSuccess, id));
  }
  EXPECT_EQ(runtime_.max_running, 3);

  // segment allows one job at a time.
  runtime_.max_running = 0;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(AddTask({"segment"}));
  }
  for (size_t i = 5; i < ids.size(); ++i) {
    ASSERT_TRUE(RunUntil(kSuccess, ids[i]));
  }
  EXPECT_EQ(runtime_.max_running, 1);
}

TEST_F(ProcessorTest, SuspendedProcessingStartsNothingUntilResumed) {
  Start();
  ASSERT_TRUE(SetSuspended(dir_, "processing", true, "test", "maintenance").ok());
  std::string id = AddTask({"blur"});
  for (int i = 0; i < 20; ++i) {
    processor_->RunOnce();
  }
  EXPECT_EQ(runtime_.runs, 0);
  EXPECT_TRUE(fs_->IsDirectory(Path(kProcessing, id)));
  ASSERT_TRUE(SetSuspended(dir_, "processing", false, "test", "").ok());
  ASSERT_TRUE(RunUntil(kSuccess, id));
}

TEST_F(ProcessorTest, UrgentTasksStartFirst) {
  config_.processor.workers = 1;
  Start();
  std::vector<std::string> order;
  std::mutex mu;
  runtime_.fn = [&](const ModuleJob& job, const std::atomic<bool>& c) -> Result<ModuleRun> {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(job.task_id);
    return CopyModule(job, c);
  };
  std::string normal = AddTask({"blur"});
  std::string urgent = AddTask({"blur"}, Json::object(), {}, false, "urgent");
  ASSERT_TRUE(RunUntil(kSuccess, normal));
  ASSERT_TRUE(RunUntil(kSuccess, urgent));
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], urgent);
}

TEST_F(ProcessorTest, ShutdownAndRecoveryPutTheTaskBackWithItsReceivedImages) {
  Start();
  runtime_.fn = [](const ModuleJob& job, const std::atomic<bool>& cancel) -> Result<ModuleRun> {
    Write(job.out_dir + "/partial.dcm", "half");
    for (int i = 0; i < 5000 && !cancel; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ModuleRun run;
    run.cancelled = true;
    return run;
  };
  std::string id = AddTask({"blur"});
  for (int i = 0; i < 500 && runtime_.running == 0; ++i) {
    processor_->RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  processor_->Shutdown();
  ASSERT_TRUE(fs_->IsDirectory(Path(kProcessing, id)));
  EXPECT_EQ(Read(Path(kProcessing, id, "1.2.3.1.dcm")), "received-1.2.3.1.dcm");
  EXPECT_FALSE(fs_->Exists(Path(kProcessing, id, "in")));
  EXPECT_EQ(TaskJson(kProcessing, id).value("/ferry/process/attempts"_json_pointer, 0), 0);

  // A processor killed in the middle of a job: its claim is recovered at the next start.
  std::string claimed = JoinPath(JoinPath(JoinPath(dir_, "tmp"), "processor"), id);
  ASSERT_TRUE(fs_->Rename(Path(kProcessing, id), claimed).ok());
  ASSERT_TRUE(fs_->CreateDirs(claimed + "/as_received").ok());
  ASSERT_TRUE(fs_->Rename(claimed + "/1.2.3.1.dcm", claimed + "/as_received/1.2.3.1.dcm").ok());
  ASSERT_TRUE(fs_->CreateDirs(claimed + "/in").ok());
  ASSERT_TRUE(fs_->CreateDirs(claimed + "/out").ok());
  runtime_.fn = CopyModule;
  Start();
  EXPECT_EQ(Read(Path(kProcessing, id, "1.2.3.1.dcm")), "received-1.2.3.1.dcm");
  EXPECT_FALSE(fs_->Exists(Path(kProcessing, id, "as_received")));
  EXPECT_EQ(Events("task.recovered").size(), 1u);
  ASSERT_TRUE(RunUntil(kSuccess, id));
  EXPECT_EQ(Read(Path(kSuccess, id, "1.2.3#1.2.3.1.dcm")), "received-1.2.3.1.dcm+blur");

  // Killed after publishing (the marker is written, out/ renamed away) and before cleaning up:
  // the leftover is removed, nothing runs again.
  ASSERT_TRUE(fs_->CreateDirs(claimed + "/as_received").ok());
  Write(claimed + "/as_received/1.2.3.1.dcm", "received");
  Write(claimed + "/published", "success");
  int runs = runtime_.runs;
  Start();
  EXPECT_FALSE(fs_->Exists(claimed));
  EXPECT_FALSE(fs_->IsDirectory(Path(kProcessing, id)));
  EXPECT_EQ(runtime_.runs, runs);

  // Killed before publishing, but a folder of that id is in a stage anyway (an operator's
  // copy?): nothing is deleted or run, the claim is left for a person to compare.
  ASSERT_TRUE(fs_->CreateDirs(claimed + "/as_received").ok());
  Write(claimed + "/as_received/1.2.3.1.dcm", "received");
  Start();
  EXPECT_EQ(Read(claimed + "/as_received/1.2.3.1.dcm"), "received");
  EXPECT_TRUE(fs_->IsDirectory(Path(kSuccess, id)));
  EXPECT_EQ(runtime_.runs, runs);
}

TEST_F(ProcessorTest, OutputLinksAreRemovedBeforeAnythingReadsThem) {
  Start();
  runtime_.fn = [](const ModuleJob& job, const std::atomic<bool>& c) -> Result<ModuleRun> {
    EXPECT_EQ(symlink("/etc/passwd", (job.out_dir + "/secret.dcm").c_str()), 0);
    return CopyModule(job, c);
  };
  std::string id = AddTask({"blur"}, Json::object(), {"pacs"});
  ASSERT_TRUE(RunUntil(kOutgoing, id));
  std::error_code ec;
  EXPECT_FALSE(std::filesystem::is_symlink(Path(kOutgoing, id, "secret.dcm"), ec));
  EXPECT_FALSE(fs_->Exists(Path(kOutgoing, id, "secret.dcm")));
  EXPECT_NE(Read(Path(kOutgoing, id, "logs/1-blur.log")).find("removed secret.dcm"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry
