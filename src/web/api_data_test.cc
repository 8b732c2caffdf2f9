// The data and queue endpoints, called through the route list with a Context on a temporary
// SQLite database and a temporary data folder.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "app/rules_cli.h"
#include "core/clock.h"
#include "core/file_system.h"
#include "db/schema.h"
#include "journal/journal.h"
#include "spool/control.h"
#include "spool/spool.h"
#include "web/api_data_internal.h"
#include "web/route.h"

namespace ferry::web {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kT0 = 1795000000LL * 1000000;  // 2026-11-18T...Z, in microseconds

struct TaskRow {
  std::string id;
  std::string patient_name = "Doe^John";
  std::string patient_id = "P1";
  std::string accession = "A1";
  std::string study_uid = "1.2.3";
  std::string series_uid = "1.2.3.4";
  std::string rule = "ct";
  std::string state = "complete";
  int64_t created_us = kT0;
  std::vector<std::string> targets = {"archive"};
  std::string parent_id = {};
  std::string task_json = {};
};

std::string ReadText(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

class ApiDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry_api_data_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    fs::create_directories(dir_ / "archive");
    config_.path = (dir_ / "ferry.json").string();
    config_.data_folder = (dir_ / "data").string();
    RuleOptions ct;
    ct.name = "ct";
    ct.rule = "@Modality@ == 'CT'";
    ct.targets = {"archive"};
    RuleOptions off = ct;
    off.name = "off";
    off.disabled = true;
    config_.rules = {ct, off};
    TargetOptions archive;
    archive.name = "archive";
    archive.type = TargetType::kFolder;
    archive.folder = (dir_ / "archive").string();
    TargetOptions gone = archive;
    gone.name = "gone";
    gone.folder = (dir_ / "no-such-folder").string();
    config_.targets = {archive, gone};

    Spool spool(config_.data_folder, "test", DefaultFileSystem());
    ASSERT_TRUE(spool.Init().ok());
    std::string uri = "sqlite:" + (dir_ / "ferry.db").string();
    // FERRY_API_DATA_TEST_POSTGRES=<uri of a scratch database> runs the same tests against
    // PostgreSQL (its public schema is dropped before each test).
    if (const char* pg = std::getenv("FERRY_API_DATA_TEST_POSTGRES"); pg != nullptr && *pg) {
      uri = pg;
    }
    auto db = db::Database::Open(uri);
    ASSERT_TRUE(db) << db.error().ToString();
    db_ = std::move(*db);
    if (db_->dialect() == db::Dialect::kPostgres) {
      ASSERT_TRUE(db_->ExecuteScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public").ok());
    }
    ASSERT_TRUE(db::Migrate(db_.get()));
    auto journal = Journal::Open((dir_ / "data" / "journal").string(), "web", RealClock(),
                                 DefaultFileSystem());
    ASSERT_TRUE(journal) << journal.error().ToString();
    journal_ = std::move(*journal);
    ctx_.config = &config_;
    ctx_.db = db_.get();
    ctx_.journal = journal_.get();
    AddDataRoutes(&routes_);
  }

  void TearDown() override { fs::remove_all(dir_); }

  // Calls the route registered for `method` and `pattern`.
  Response Call(const std::string& method, const std::string& pattern, Request req = {}) {
    for (const auto& r : routes_) {
      if (r.method == method && r.path == pattern) {
        req.method = method;
        req.path = pattern;
        if (req.user.empty()) {
          req.user = "olga";
          req.address = "127.0.0.1";
        }
        return r.handler(req, ctx_);
      }
    }
    ADD_FAILURE() << "no route " << method << " " << pattern;
    return {};
  }

  json Get(const std::string& pattern, std::map<std::string, std::string> query = {},
           std::map<std::string, std::string> path_params = {}, int expect = 200) {
    Request req;
    req.query = std::move(query);
    req.path_params = std::move(path_params);
    Response r = Call("GET", pattern, req);
    EXPECT_EQ(r.status, expect) << r.body;
    return json::parse(r.body);
  }

  Response Post(const std::string& pattern, std::map<std::string, std::string> path_params,
                std::string body = "") {
    Request req;
    req.path_params = std::move(path_params);
    req.body = std::move(body);
    req.content_type = "application/json";
    return Call("POST", pattern, req);
  }

  void Insert(const TaskRow& t) {
    auto n = db_->Execute(
        "INSERT INTO tasks (task_id, parent_id, series_uid, study_uid, action, rule, targets, "
        "state, stage, priority, patient_name, patient_id, accession_number, created_us, "
        "updated_us, attempts, task_json) VALUES ($1, $2, $3, $4, 'route', $5, $6, $7, 'success', "
        "'normal', $8, $9, $10, $11, $11, 1, $12)",
        {t.id, t.parent_id.empty() ? db::Param(nullptr) : db::Param(t.parent_id), t.series_uid,
         t.study_uid, t.rule, json(t.targets).dump(), t.state, t.patient_name, t.patient_id,
         t.accession, t.created_us,
         t.task_json.empty() ? db::Param(nullptr) : db::Param(t.task_json)});
    ASSERT_TRUE(n) << n.error().ToString();
    for (const auto& target : t.targets) {
      ASSERT_TRUE(db_->Execute("INSERT INTO task_targets (task_id, target) VALUES ($1, $2)",
                               {t.id, target}));
    }
  }

  void InsertEvent(int64_t ts, const std::string& event, const std::string& task_id,
                   const std::string& series_uid, const std::string& details = "{}") {
    ASSERT_TRUE(db_->Execute(
        "INSERT INTO task_events (ts_us, time, service, pid, event, task_id, series_uid, "
        "details) VALUES ($1, $2, 'router', 1, $3, $4, $5, $6)",
        {ts, data::IsoFromUs(ts), event, task_id, series_uid, details}));
  }

  // A task folder with a dispatch task.json in `stage`.
  void MakeTaskFolder(const std::string& stage, const std::string& id) {
    fs::path d = dir_ / "data" / stage / id;
    fs::create_directories(d);
    json task = {{"id", id},
                 {"info", {{"uid", "1.2.3.4"}, {"action", "route"}}},
                 {"dispatch", {{"target_name", {"archive"}}, {"retries", 3}}},
                 {"ferry", {{"stage", stage}, {"dispatch", {{"attempts", 3}}}}}};
    std::ofstream(d / "task.json") << task.dump(2);
  }

  std::vector<json> JournalEvents(const std::string& type) {
    auto events = ReadJournalFile(journal_->path(), DefaultFileSystem());
    EXPECT_TRUE(events);
    std::vector<json> out;
    for (const auto& e : *events) {
      if (e.value("event", "") == type) {
        out.push_back(e);
      }
    }
    return out;
  }

  std::vector<std::string> Ids(const json& page) {
    std::vector<std::string> ids;
    for (const auto& item : page["items"]) {
      ids.push_back(item.value("task_id", item.value("series_uid", "")));
    }
    return ids;
  }

  fs::path dir_;
  Config config_;
  std::unique_ptr<db::Database> db_;
  std::unique_ptr<ferry::Journal> journal_;
  Context ctx_;
  std::vector<Route> routes_;
};

TEST_F(ApiDataTest, EveryRouteHasARoleASummaryAndAHandler) {
  ASSERT_GE(routes_.size(), 14u);
  for (const auto& r : routes_) {
    EXPECT_TRUE(r.path.starts_with("/api/v1/")) << r.path;
    EXPECT_FALSE(r.summary.empty()) << r.path;
    EXPECT_FALSE(r.anonymous) << r.path;
    EXPECT_TRUE(r.handler) << r.path;
    bool action = r.method == "POST" && r.path != "/api/v1/rules/evaluate";
    EXPECT_EQ(r.min_role, action ? Role::kOperator : Role::kViewer) << r.method << " " << r.path;
  }
}

TEST_F(ApiDataTest, SearchTasksByEachFilter) {
  Insert({.id = "t1", .patient_name = "DOE^JOHN", .created_us = kT0});
  Insert({.id = "t2", .patient_name = "Doe^Jane", .patient_id = "P2", .accession = "A2",
          .study_uid = "9.8", .series_uid = "9.8.1", .rule = "mr", .state = "error",
          .created_us = kT0 + 1000000, .targets = {"pacs", "archive"}});
  Insert({.id = "t3", .patient_name = "Roe^Richard", .patient_id = "P3", .accession = "A3",
          .series_uid = "1.2.3.5", .state = "error", .created_us = kT0 + 2000000,
          .targets = {"pacs"}});

  EXPECT_EQ(Ids(Get("/api/v1/tasks")), (std::vector<std::string>{"t3", "t2", "t1"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name", "doe"}})),
            (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name", "E^j"}})),
            (std::vector<std::string>{"t2", "t1"}));
  // A prefix, case-insensitive, answered from the lower(patient_name) index; a substring
  // that is not a prefix matches nothing; LIKE wildcards are plain characters.
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name_prefix", "doe^j"}})),
            (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name_prefix", "ROE"}})),
            (std::vector<std::string>{"t3"}));
  EXPECT_TRUE(Ids(Get("/api/v1/tasks", {{"patient_name_prefix", "E^j"}})).empty());
  EXPECT_TRUE(Ids(Get("/api/v1/tasks", {{"patient_name_prefix", "%"}})).empty());
  EXPECT_EQ(Get("/api/v1/series", {{"patient_name_prefix", "zzz"}})["total"], 0);
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_id", "P2"}})), std::vector<std::string>{"t2"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"accession", "A3"}})), std::vector<std::string>{"t3"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"study_uid", "9.8"}})), std::vector<std::string>{"t2"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"series_uid", "1.2.3.5"}})),
            std::vector<std::string>{"t3"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"rule", "mr"}})), std::vector<std::string>{"t2"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"target", "pacs"}})),
            (std::vector<std::string>{"t3", "t2"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"state", "error"}, {"target", "archive"}})),
            std::vector<std::string>{"t2"});
  // Time range: ISO 8601 and epoch seconds, both ends inclusive.
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"from", "1795000001"}})),
            (std::vector<std::string>{"t3", "t2"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"to", data::IsoFromUs(kT0 + 1000000)}})),
            (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"from", "1795000000.5"}, {"to", "1795000001.5"}})),
            std::vector<std::string>{"t2"});
  // A date alone as `to` includes that day (kT0 is 2026-11-18T...Z).
  EXPECT_EQ(Get("/api/v1/tasks", {{"to", "2026-11-18"}})["total"], 3);
  EXPECT_EQ(Get("/api/v1/tasks", {{"to", "2026-11-17"}})["total"], 0);
  EXPECT_EQ(Get("/api/v1/tasks", {{"from", "2026-11-18"}, {"to", "2026-11-18"}})["total"], 3);

  json t2 = Get("/api/v1/tasks", {{"patient_id", "P2"}})["items"][0];
  EXPECT_EQ(t2["targets"], json({"archive", "pacs"}));
  EXPECT_EQ(t2["created_us"], kT0 + 1000000);
  EXPECT_EQ(t2["created"], data::IsoFromUs(kT0 + 1000000));
  EXPECT_EQ(t2["attempts"], 1);
  EXPECT_FALSE(t2.contains("task_json"));
}

TEST_F(ApiDataTest, SortsTasksByAnAllowedColumnOnly) {
  Insert({.id = "t1", .patient_name = "Baker", .created_us = kT0 + 2});
  Insert({.id = "t2", .patient_name = "Adams", .created_us = kT0 + 3});
  Insert({.id = "t3", .patient_name = "Clark", .created_us = kT0 + 1});
  auto ids = [](const json& page) {
    std::vector<std::string> out;
    for (const auto& item : page["items"]) {
      out.push_back(item["task_id"]);
    }
    return out;
  };
  EXPECT_EQ(ids(Get("/api/v1/tasks")), (std::vector<std::string>{"t2", "t1", "t3"}));
  EXPECT_EQ(ids(Get("/api/v1/tasks", {{"sort", "created"}})),
            (std::vector<std::string>{"t3", "t1", "t2"}));
  EXPECT_EQ(ids(Get("/api/v1/tasks", {{"sort", "patient_name"}})),
            (std::vector<std::string>{"t2", "t1", "t3"}));
  EXPECT_EQ(ids(Get("/api/v1/tasks", {{"sort", "-patient_name"}, {"limit", "1"}})),
            (std::vector<std::string>{"t3"}));
  json bad = Get("/api/v1/tasks", {{"sort", "task_json; DROP TABLE tasks"}}, {}, 400);
  EXPECT_NE(bad["error"].get<std::string>().find("sort must be one of"), std::string::npos);
  Get("/api/v1/series", {{"sort", "-instances"}});
  Get("/api/v1/series", {{"sort", "created"}}, {}, 400);
}

TEST_F(ApiDataTest, RetryingTasksSayWhenTheirNextAttemptIs) {
  Insert({.id = "r1", .state = "retrying", .created_us = kT0});
  Insert({.id = "q1", .state = "queued", .created_us = kT0 + 1});
  InsertEvent(kT0 + 10, "dispatch.retry_scheduled", "r1", "1.2.3.4",
              R"({"next_attempt": "2026-11-18T10:00:01Z"})");
  InsertEvent(kT0 + 20, "dispatch.retry_scheduled", "r1", "1.2.3.4",
              R"({"next_attempt": "2026-11-18T10:00:09Z"})");
  InsertEvent(kT0 + 30, "dispatch.retry_scheduled", "q1", "1.2.3.4",
              R"({"next_attempt": "2026-11-18T10:00:05Z"})");
  json page = Get("/api/v1/tasks");
  ASSERT_EQ(page["items"].size(), 2u);
  EXPECT_EQ(page["items"][0]["task_id"], "q1");
  EXPECT_TRUE(page["items"][0]["next_attempt"].is_null());  // not retrying (any more)
  EXPECT_EQ(page["items"][1]["next_attempt"], "2026-11-18T10:00:09Z");
  EXPECT_EQ(Get("/api/v1/tasks/{id}", {}, {{"id", "r1"}})["task"]["next_attempt"],
            "2026-11-18T10:00:09Z");
}

TEST_F(ApiDataTest, APrefixWithManyMatchesGivesTheSamePagesByEitherPlan) {
  // More matches than the search reads by name (kWalkTimeIndexAbove): the newest-first walk.
  ASSERT_TRUE(db_->Execute("BEGIN"));
  for (int i = 0; i < 5200; ++i) {
    Insert({.id = fmt::format("m{:05d}", i),
            .patient_name = i % 2 == 0 ? "Many^Even" : "Many^Odd",
            .created_us = kT0 + i});
  }
  Insert({.id = "few", .patient_name = "Few^Only", .created_us = kT0 + 99999});
  ASSERT_TRUE(db_->Execute("COMMIT"));
  json many = Get("/api/v1/tasks", {{"patient_name_prefix", "many^"}, {"limit", "3"},
                                    {"offset", "2"}});
  EXPECT_EQ(many["total"], 5200);
  EXPECT_EQ(Ids(many), (std::vector<std::string>{"m05197", "m05196", "m05195"}));
  json even = Get("/api/v1/tasks", {{"patient_name_prefix", "MANY^E"}, {"limit", "2"}});
  EXPECT_EQ(even["total"], 2600);
  EXPECT_EQ(Ids(even), (std::vector<std::string>{"m05198", "m05196"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name_prefix", "few"}})),
            std::vector<std::string>{"few"});
}

TEST_F(ApiDataTest, PaginationCountsEverythingAndReturnsOnePage) {
  for (int i = 0; i < 7; ++i) {
    Insert({.id = "t" + std::to_string(i), .created_us = kT0 + i});
  }
  json page = Get("/api/v1/tasks", {{"limit", "3"}});
  EXPECT_EQ(page["total"], 7);
  EXPECT_EQ(page["limit"], 3);
  EXPECT_EQ(page["offset"], 0);
  EXPECT_EQ(Ids(page), (std::vector<std::string>{"t6", "t5", "t4"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"limit", "3"}, {"offset", "3"}})),
            (std::vector<std::string>{"t3", "t2", "t1"}));
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"limit", "3"}, {"offset", "6"}})),
            std::vector<std::string>{"t0"});
  EXPECT_TRUE(Get("/api/v1/tasks", {{"offset", "70"}})["items"].empty());
  EXPECT_EQ(Get("/api/v1/tasks")["limit"], data::kDefaultLimit);
  EXPECT_EQ(Get("/api/v1/tasks", {{"limit", "100000"}})["limit"], data::kMaxLimit);

  json bad = Get("/api/v1/tasks", {{"limit", "0"}}, {}, 400);
  EXPECT_NE(bad["error"].get<std::string>().find("limit"), std::string::npos);
  Get("/api/v1/tasks", {{"limit", "ten"}}, {}, 400);
  Get("/api/v1/tasks", {{"offset", "-1"}}, {}, 400);
  json when = Get("/api/v1/tasks", {{"from", "yesterday"}}, {}, 400);
  EXPECT_NE(when["error"].get<std::string>().find("ISO 8601"), std::string::npos);
  Get("/api/v1/tasks", {{"from", "1795000010"}, {"to", "1795000000"}}, {}, 400);
}

TEST_F(ApiDataTest, InjectionAttemptsMatchNothingAndChangeNothing) {
  Insert({.id = "t1"});
  Insert({.id = "t2", .patient_name = "100%_Pure"});
  const std::vector<std::string> attacks = {
      "' OR '1'='1", "x' OR 1=1 --", "'; DROP TABLE tasks; --", "\") OR 1=1 --",
      "P1' UNION SELECT task_id FROM tasks --"};
  for (const auto& a : attacks) {
    for (const char* field : {"patient_name", "patient_id", "rule", "target", "state"}) {
      json page = Get("/api/v1/tasks", {{field, a}});
      EXPECT_EQ(page["total"], 0) << field << "=" << a;
    }
    EXPECT_EQ(Get("/api/v1/series", {{"patient_id", a}})["total"], 0);
    Get("/api/v1/tasks/{id}", {}, {{"id", a}}, 400);
  }
  // LIKE wildcards are matched literally.
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name", "%"}})), std::vector<std::string>{"t2"});
  EXPECT_EQ(Ids(Get("/api/v1/tasks", {{"patient_name", "0%_p"}})),
            std::vector<std::string>{"t2"});
  EXPECT_EQ(Get("/api/v1/tasks", {{"patient_name", "_"}})["total"], 1);
  EXPECT_EQ(Get("/api/v1/tasks")["total"], 2);  // the table is still there, unchanged
}

TEST_F(ApiDataTest, TaskDetailHasTimelineChildrenAndLiveTaskJson) {
  Insert({.id = "t1", .task_json = R"({"id": "t1", "from": "database"})"});
  Insert({.id = "t1-f", .created_us = kT0 + 5, .parent_id = "t1"});
  InsertEvent(kT0 + 30, "task.completed", "t1", "1.2.3.4");
  InsertEvent(kT0 + 10, "task.created", "t1", "1.2.3.4", R"({"rule": "ct"})");
  InsertEvent(kT0 + 20, "dispatch.begin", "t1", "1.2.3.4");
  InsertEvent(kT0 + 15, "task.created", "other", "1.2.3.4");

  json d = Get("/api/v1/tasks/{id}", {}, {{"id", "t1"}});
  EXPECT_EQ(d["task"]["task_id"], "t1");
  EXPECT_FALSE(d["task"].contains("task_json"));
  ASSERT_EQ(d["events"].size(), 3u);
  EXPECT_EQ(d["events"][0]["event"], "task.created");
  EXPECT_EQ(d["events"][0]["details"]["rule"], "ct");
  EXPECT_EQ(d["events"][1]["event"], "dispatch.begin");
  EXPECT_EQ(d["events"][2]["event"], "task.completed");
  ASSERT_EQ(d["children"].size(), 1u);
  EXPECT_EQ(d["children"][0]["task_id"], "t1-f");
  // Not in the spool: task.json as stored.
  EXPECT_EQ(d["task_json_source"], "database");
  EXPECT_EQ(d["task_json"]["from"], "database");
  EXPECT_TRUE(d["spool_stage"].is_null());

  // In the spool: read live.
  MakeTaskFolder("error", "t1");
  d = Get("/api/v1/tasks/{id}", {}, {{"id", "t1"}});
  EXPECT_EQ(d["task_json_source"], "spool");
  EXPECT_EQ(d["spool_stage"], "error");
  EXPECT_EQ(d["task_json"]["ferry"]["stage"], "error");
  fs::create_directories(dir_ / "data" / "tmp" / "dispatcher");
  fs::rename(dir_ / "data" / "error" / "t1", dir_ / "data" / "tmp" / "dispatcher" / "t1");
  EXPECT_EQ(Get("/api/v1/tasks/{id}", {}, {{"id", "t1"}})["spool_stage"], "tmp/dispatcher");
}

TEST_F(ApiDataTest, UnknownTaskIs404AndASpoolOnlyTaskIsShown) {
  json missing = Get("/api/v1/tasks/{id}", {}, {{"id", "nope"}}, 404);
  EXPECT_NE(missing["error"].get<std::string>().find("no task nope"), std::string::npos);
  Get("/api/v1/tasks/{id}", {}, {{"id", "../../etc"}}, 400);
  MakeTaskFolder("outgoing", "fresh");
  json d = Get("/api/v1/tasks/{id}", {}, {{"id", "fresh"}});
  EXPECT_EQ(d["spool_stage"], "outgoing");
  EXPECT_EQ(d["task_json_source"], "spool");
  EXPECT_TRUE(d.contains("note"));
}

TEST_F(ApiDataTest, SeriesSearchAndDetail) {
  auto add = [&](const std::string& uid, const std::string& name, const std::string& modality,
                 int64_t seen) {
    ASSERT_TRUE(db_->Execute(
        "INSERT INTO series (series_uid, study_uid, patient_name, patient_id, accession_number, "
        "modality, first_seen_us, instances, state) VALUES ($1, '7.7', $2, 'P9', 'ACC9', $3, $4, "
        "12, 'complete')",
        {uid, name, modality, seen}));
  };
  add("1.2.3.4", "Muster^Max", "CT", kT0);
  add("1.2.3.5", "Muster^Erika", "MR", kT0 + 10);
  add("1.2.3.6", "Other^Otto", "MR", kT0 + 20);
  Insert({.id = "t1", .series_uid = "1.2.3.4"});
  InsertEvent(kT0 + 1, "series.complete", "", "1.2.3.4");
  InsertEvent(kT0 + 2, "task.created", "t1", "1.2.3.4");

  EXPECT_EQ(Ids(Get("/api/v1/series", {{"patient_name", "MUSTER"}})),
            (std::vector<std::string>{"1.2.3.5", "1.2.3.4"}));
  EXPECT_EQ(Ids(Get("/api/v1/series", {{"modality", "MR"}, {"limit", "1"}})),
            std::vector<std::string>{"1.2.3.6"});
  EXPECT_EQ(Get("/api/v1/series", {{"modality", "MR"}, {"limit", "1"}})["total"], 2);
  EXPECT_EQ(Get("/api/v1/series", {{"accession", "ACC9"}, {"study_uid", "7.7"}})["total"], 3);
  EXPECT_EQ(Ids(Get("/api/v1/series", {{"to", data::IsoFromUs(kT0 + 5)}})),
            std::vector<std::string>{"1.2.3.4"});

  json d = Get("/api/v1/series/{uid}", {}, {{"uid", "1.2.3.4"}});
  EXPECT_EQ(d["series"]["patient_name"], "Muster^Max");
  EXPECT_EQ(d["series"]["instances"], 12);
  ASSERT_EQ(d["tasks"].size(), 1u);
  EXPECT_EQ(d["tasks"][0]["task_id"], "t1");
  ASSERT_EQ(d["events"].size(), 2u);
  EXPECT_EQ(d["events"][0]["event"], "series.complete");
  EXPECT_TRUE(d["incoming"].is_null());
  Get("/api/v1/series/{uid}", {}, {{"uid", "9.9.9"}}, 404);
}

TEST_F(ApiDataTest, WithoutADatabaseReadsAnswer503AndStatusStillWorks) {
  ctx_.db = nullptr;
  json e = Get("/api/v1/tasks", {}, {}, 503);
  EXPECT_NE(e["error"].get<std::string>().find("database"), std::string::npos);
  Get("/api/v1/series", {}, {}, 503);
  Get("/api/v1/tasks/{id}", {}, {{"id", "t1"}}, 503);
  Get("/api/v1/series/{uid}", {}, {{"uid", "1.2"}}, 503);
  json s = Get("/api/v1/status");
  EXPECT_EQ(s["database"]["available"], false);
}

TEST_F(ApiDataTest, StatusCountsStagesAndReportsServicesDiskAndSuspension) {
  MakeTaskFolder("outgoing", "o1");
  MakeTaskFolder("outgoing", "o2");
  MakeTaskFolder("error", "e1");
  fs::create_directories(dir_ / "data" / "tmp" / "dispatcher" / "d1");
  std::ofstream(dir_ / "data" / "tmp" / "dispatcher" / "x.tmp") << "staging file, not a task";
  fs::create_directories(dir_ / "data" / "incoming" / "1.2.3");

  json s = Get("/api/v1/status");
  EXPECT_EQ(s["version"], "0.1.0");
  EXPECT_EQ(s["queues"]["outgoing"], 2);
  EXPECT_EQ(s["queues"]["error"], 1);
  EXPECT_EQ(s["queues"]["dispatching"], 1);
  EXPECT_EQ(s["queues"]["incoming"], 1);
  EXPECT_EQ(s["queues"]["success"], 0);
  EXPECT_EQ(s["services"], json::object());
  ASSERT_FALSE(s["notes"].empty());
  EXPECT_NE(s["notes"][0].get<std::string>().find("services.json"), std::string::npos);
  EXPECT_GT(s["disk"]["total_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(s["disk"]["used_percent"].get<double>(), 0.0);
  EXPECT_LE(s["disk"]["used_percent"].get<double>(), 100.0);
  EXPECT_EQ(s["suspended"]["dispatch"]["suspended"], false);

  fs::create_directories(dir_ / "data" / "run");
  std::ofstream(dir_ / "data" / "run" / "services.json")
      << R"({"services": {"receiver": {"pid": 42, "state": "running", "restarts": 0,
            "started_at": "2026-11-24T10:00:00Z"}}, "updated_at": "2026-11-24T10:00:01Z"})";
  ASSERT_TRUE(SetSuspended(config_.data_folder, "processing", true, "olga", "maintenance").ok());
  s = Get("/api/v1/status");
  EXPECT_EQ(s["services"]["receiver"]["state"], "running");
  EXPECT_EQ(s["services_updated_at"], "2026-11-24T10:00:01Z");
  EXPECT_TRUE(s["notes"].empty());
  EXPECT_EQ(s["suspended"]["processing"]["suspended"], true);
  EXPECT_EQ(s["suspended"]["processing"]["reason"], "maintenance");
}

TEST_F(ApiDataTest, SuspendAndResumeWriteTheMarkerAndAnAudit) {
  Response r = Post("/api/v1/queue/{activity}/suspend", {{"activity", "dispatch"}},
                    R"({"reason": "PACS upgrade"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(IsSuspended(config_.data_folder, "dispatch"));
  json marker = json::parse(ReadText(SuspendMarkerPath(config_.data_folder, "dispatch")));
  EXPECT_EQ(marker["by"], "olga");
  EXPECT_EQ(marker["reason"], "PACS upgrade");
  EXPECT_NE(json::parse(r.body)["message"].get<std::string>().find("no new transfer"),
            std::string::npos);
  auto audits = JournalEvents("audit.suspend");
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0]["details"]["actor"], "olga");
  EXPECT_EQ(audits[0]["details"]["address"], "127.0.0.1");
  EXPECT_EQ(audits[0]["details"]["object"], "queue/dispatch");
  EXPECT_EQ(audits[0]["details"]["reason"], "PACS upgrade");

  r = Post("/api/v1/queue/{activity}/resume", {{"activity", "dispatch"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(IsSuspended(config_.data_folder, "dispatch"));
  EXPECT_EQ(JournalEvents("audit.resume").size(), 1u);

  EXPECT_EQ(Post("/api/v1/queue/{activity}/suspend", {{"activity", "receiving"}}).status, 404);
  EXPECT_EQ(Post("/api/v1/queue/{activity}/suspend", {{"activity", "dispatch"}}, "{oops").status,
            400);
  EXPECT_FALSE(IsSuspended(config_.data_folder, "dispatch"));
}

TEST_F(ApiDataTest, RetryMovesAnErroredTaskBackToOutgoing) {
  MakeTaskFolder("error", "e1");
  Response r = Post("/api/v1/tasks/{id}/retry", {{"id", "e1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(fs::exists(dir_ / "data" / "error" / "e1"));
  json task = json::parse(ReadText(dir_ / "data" / "outgoing" / "e1" / "task.json"));
  EXPECT_EQ(task["ferry"]["dispatch"]["attempts"], 0);
  EXPECT_EQ(JournalEvents("task.retry_requested").size(), 1u);
  auto audits = JournalEvents("audit.retry");
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0]["task_id"], "e1");
  EXPECT_EQ(audits[0]["series_uid"], "1.2.3.4");
  EXPECT_EQ(audits[0]["details"]["object"], "task/e1");

  // Now in outgoing/: not retryable again; unknown: 404; not an id: 400.
  r = Post("/api/v1/tasks/{id}/retry", {{"id", "e1"}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("outgoing/"), std::string::npos);
  EXPECT_EQ(Post("/api/v1/tasks/{id}/retry", {{"id", "nope"}}).status, 404);
  EXPECT_EQ(Post("/api/v1/tasks/{id}/retry", {{"id", "../outgoing/e1"}}).status, 400);
  EXPECT_EQ(JournalEvents("audit.retry").size(), 1u);
}

TEST_F(ApiDataTest, ActionsThatCannotBeAuditedAreRefused) {
  MakeTaskFolder("error", "e1");
  ctx_.journal = nullptr;
  Response r = Post("/api/v1/tasks/{id}/retry", {{"id", "e1"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("audited"), std::string::npos) << r.body;
  EXPECT_EQ(Post("/api/v1/tasks/{id}/discard", {{"id", "e1"}}).status, 500);
  EXPECT_EQ(Post("/api/v1/queue/{activity}/suspend", {{"activity", "dispatch"}}).status, 500);
  EXPECT_TRUE(fs::exists(dir_ / "data" / "error" / "e1"));
  EXPECT_FALSE(IsSuspended(config_.data_folder, "dispatch"));
  EXPECT_EQ(Get("/api/v1/status")["version"], "0.1.0");  // reads need no journal
}

TEST_F(ApiDataTest, DiscardMovesOnlyErroredTasks) {
  MakeTaskFolder("error", "e1");
  MakeTaskFolder("success", "s1");
  Response r = Post("/api/v1/tasks/{id}/discard", {{"id", "e1"}}, R"({"reason": "duplicate"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(fs::exists(dir_ / "data" / "error" / "e1"));
  EXPECT_TRUE(fs::exists(dir_ / "data" / "discard" / "e1" / "task.json"));
  auto discarded = JournalEvents("task.discarded");
  ASSERT_EQ(discarded.size(), 1u);
  EXPECT_EQ(discarded[0]["task_id"], "e1");
  EXPECT_EQ(discarded[0]["details"]["by"], "olga");
  EXPECT_EQ(discarded[0]["details"]["reason"], "duplicate");
  EXPECT_EQ(JournalEvents("audit.discard").size(), 1u);

  r = Post("/api/v1/tasks/{id}/discard", {{"id", "e1"}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("discard/"), std::string::npos);
  r = Post("/api/v1/tasks/{id}/discard", {{"id", "s1"}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_TRUE(fs::exists(dir_ / "data" / "success" / "s1"));
  EXPECT_EQ(Post("/api/v1/tasks/{id}/discard", {{"id", "nope"}}).status, 404);
  EXPECT_EQ(JournalEvents("task.discarded").size(), 1u);
}

TEST_F(ApiDataTest, ForceCompleteAndRouteWriteTheRoutersMarkers) {
  fs::path series = dir_ / "data" / "incoming" / "1.2.3.4";
  fs::create_directories(series);
  Response r = Post("/api/v1/series/{uid}/complete", {{"uid", "1.2.3.4"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(fs::exists(series / kForceCompleteFile));
  EXPECT_EQ(JournalEvents("audit.series_complete").size(), 1u);

  EXPECT_EQ(Post("/api/v1/series/{uid}/route", {{"uid", "1.2.3.4"}}, R"({"rule": "off"})").status,
            400);
  r = Post("/api/v1/series/{uid}/route", {{"uid", "1.2.3.4"}}, R"({"rule": "nosuch"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("enabled rules: ct"), std::string::npos) << r.body;
  EXPECT_EQ(Post("/api/v1/series/{uid}/route", {{"uid", "1.2.3.4"}}, "{}").status, 400);
  EXPECT_FALSE(fs::exists(series / kForceRuleFile));
  r = Post("/api/v1/series/{uid}/route", {{"uid", "1.2.3.4"}}, R"({"rule": "ct"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ReadText(series / kForceRuleFile), "ct");
  auto audits = JournalEvents("audit.series_route");
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0]["details"]["rule"], "ct");
  EXPECT_EQ(audits[0]["series_uid"], "1.2.3.4");

  EXPECT_EQ(Post("/api/v1/series/{uid}/complete", {{"uid", "5.5.5"}}).status, 404);
  EXPECT_EQ(Post("/api/v1/series/{uid}/complete", {{"uid", "../x"}}).status, 400);
  EXPECT_EQ(Post("/api/v1/studies/{uid}/complete", {{"uid", "1.2.3"}}).status, 404);
  fs::path study = fs::path(config_.data_folder) / "studies" / "1.2.3-brain";
  fs::create_directories(study);
  std::ofstream(study / "study.json") << R"({"study_uid": "1.2.3", "rule": "brain"})";
  r = Post("/api/v1/studies/{uid}/complete", {{"uid", "1.2.3"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(fs::exists(study / kForceCompleteFile));
  EXPECT_EQ(JournalEvents("audit.study_complete").size(), 1u);
}

TEST_F(ApiDataTest, RuleEvaluationGivesTheCliResult) {
  json tags = {{"Modality", "CT"}, {"SeriesDescription", "Thorax"}};
  std::string tags_path = (dir_ / "series.tags").string();
  std::ofstream(tags_path) << tags.dump();
  for (const std::string rule :
       {"@Modality@ == 'CT'", "@Modality@ == 'MR'", "@Modality@ ==", "int(@Modality@) > 1",
        "@PatientAge@ == '040Y'"}) {
    Response r = Post("/api/v1/rules/evaluate", {}, json({{"rule", rule}, {"tags", tags}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    json out = json::parse(r.body);
    std::ostringstream cli;
    RulesEvalOptions options;
    options.rule = rule;
    options.tags_file = tags_path;
    options.explain = true;
    RunRulesEval(options, cli);
    EXPECT_EQ(out["output"], cli.str()) << rule;
    std::string first = cli.str().substr(0, cli.str().find('\n'));
    EXPECT_TRUE(first.starts_with(out["outcome"].get<std::string>())) << first;
  }
  json t = json::parse(
      Post("/api/v1/rules/evaluate", {}, json({{"rule", "@Modality@ == 'CT'"}, {"tags", tags}}).dump())
          .body);
  EXPECT_EQ(t["outcome"], "trigger");
  ASSERT_EQ(t["tags_read"].size(), 1u);
  EXPECT_EQ(t["tags_read"][0]["name"], "Modality");
  EXPECT_EQ(t["tags_read"][0]["value"], "CT");
  json named = json::parse(
      Post("/api/v1/rules/evaluate", {}, json({{"rule_name", "ct"}, {"tags", tags}}).dump()).body);
  EXPECT_EQ(named["outcome"], "trigger");
  json bad_tags = json::parse(
      Post("/api/v1/rules/evaluate", {}, R"({"rule": "True", "tags": {"Rows": 512}})").body);
  EXPECT_EQ(bad_tags["outcome"], "error");
  EXPECT_NE(bad_tags["message"].get<std::string>().find("must be strings"), std::string::npos);

  EXPECT_EQ(Post("/api/v1/rules/evaluate", {}, R"({"rule": "True"})").status, 400);
  EXPECT_EQ(Post("/api/v1/rules/evaluate", {}, R"({"tags": {}})").status, 400);
  EXPECT_EQ(Post("/api/v1/rules/evaluate", {}, R"({"rule_name": "x", "tags": {}})").status, 404);
  EXPECT_EQ(Post("/api/v1/rules/evaluate", {}, "not json").status, 400);

  // A multipart upload that is not DICOM: the reader's error, naming the upload, not tmp/.
  Request up;
  up.content_type = "multipart/form-data; boundary=x";
  up.files = {{"file", "scan.dcm", "definitely not DICOM"}, {"rule", "", "True"}};
  Response r = Call("POST", "/api/v1/rules/evaluate", up);
  ASSERT_EQ(r.status, 200) << r.body;
  json e = json::parse(r.body);
  EXPECT_EQ(e["outcome"], "error");
  EXPECT_NE(e["message"].get<std::string>().find("scan.dcm"), std::string::npos) << r.body;
  EXPECT_TRUE(fs::is_empty(dir_ / "data" / "tmp" / "web"));
}

TEST_F(ApiDataTest, TargetTestReportsPassAndFail) {
  Response r = Post("/api/v1/targets/{name}/test", {{"name", "archive"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json ok = json::parse(r.body);
  EXPECT_EQ(ok["ok"], true);
  EXPECT_EQ(ok["name"], "archive");
  json fail = json::parse(Post("/api/v1/targets/{name}/test", {{"name", "gone"}}).body);
  EXPECT_EQ(fail["ok"], false);
  EXPECT_NE(fail["message"].get<std::string>().find("no-such-folder"), std::string::npos)
      << fail.dump();
  EXPECT_EQ(Post("/api/v1/targets/{name}/test", {{"name", "nope"}}).status, 404);
  EXPECT_EQ(JournalEvents("audit.target_test").size(), 2u);
}

TEST(ParseTimeUsTest, AcceptsIsoAndEpochAndRejectsTheRest) {
  using data::ParseTimeUs;
  EXPECT_EQ(ParseTimeUs("1795000000"), 1795000000LL * 1000000);
  EXPECT_EQ(ParseTimeUs("1795000000.25"), 1795000000LL * 1000000 + 250000);
  EXPECT_EQ(ParseTimeUs("1970-01-02"), 86400LL * 1000000);
  EXPECT_EQ(ParseTimeUs("1970-01-01T00:01:00Z"), 60LL * 1000000);
  EXPECT_EQ(ParseTimeUs("1970-01-01T01:01:00+01:00"), 60LL * 1000000);
  EXPECT_EQ(ParseTimeUs("1970-01-01 00:00:01.5"), 1500000);
  EXPECT_EQ(ParseTimeUs("1970-01-01T00:00"), 0);
  EXPECT_EQ(ParseTimeUs(data::IsoFromUs(kT0 + 123456)), kT0 + 123456);
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-24T25:00", "2026-11-24X",
                          "1e9", "2026-11-24T10:00:00+", "12345678901234567890"}) {
    EXPECT_FALSE(ParseTimeUs(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace ferry::web
