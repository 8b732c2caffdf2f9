// Service restart requests and the log view: routes called with a Context on a temporary data
// folder and journal.
#include "web/api_services.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/clock.h"
#include "core/file_system.h"
#include "journal/journal.h"
#include "spool/control.h"
#include "web/route.h"

namespace ferry::web {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ApiServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry_api_services_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    fs::create_directories(dir_ / "log");
    config_.data_folder = dir_.string();
    auto journal =
        Journal::Open((dir_ / "journal").string(), "web", RealClock(), DefaultFileSystem());
    ASSERT_TRUE(journal) << journal.error().ToString();
    journal_ = std::move(*journal);
    ctx_.config = &config_;
    ctx_.journal = journal_.get();
    AddServiceRoutes(&routes_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Response Call(const std::string& method, const std::string& path, Request req) {
    for (const auto& r : routes_) {
      if (r.method == method && r.path == path) {
        req.user = "ada";
        req.address = "127.0.0.1";
        return r.handler(req, ctx_);
      }
    }
    ADD_FAILURE() << "no route " << method << " " << path;
    return {};
  }

  json Logs(std::map<std::string, std::string> query, int expect = 200) {
    Request req;
    req.query = std::move(query);
    Response r = Call("GET", "/api/v1/logs", req);
    EXPECT_EQ(r.status, expect) << r.body;
    return json::parse(r.body);
  }

  void WriteLog(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / "log" / name) << text;
  }

  fs::path dir_;
  Config config_;
  std::unique_ptr<Journal> journal_;
  Context ctx_;
  std::vector<Route> routes_;
};

TEST_F(ApiServicesTest, RestartWritesARequestTheSupervisorTakesAndIsAudited) {
  Request req;
  req.path_params["name"] = "dispatcher";
  // Not run by `ferry serve` here: nothing to restart.
  EXPECT_EQ(Call("POST", "/api/v1/services/{name}/restart", req).status, 409);
  std::ofstream(dir_ / "run" / "services.json")
      << R"({"services": {"dispatcher": {"pid": 42, "state": "running"}}})";
  Response r = Call("POST", "/api/v1/services/{name}/restart", req);
  EXPECT_EQ(r.status, 202) << r.body;
  auto taken = TakeRestartRequests(config_.data_folder);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].first, "dispatcher");
  EXPECT_EQ(taken[0].second, "ada");
  EXPECT_TRUE(TakeRestartRequests(config_.data_folder).empty());  // taken once

  req.path_params["name"] = "../../etc";
  EXPECT_EQ(Call("POST", "/api/v1/services/{name}/restart", req).status, 404);
  EXPECT_FALSE(RequestRestart(config_.data_folder, "nonsense", "ada").ok());

  std::string journal;
  for (const auto& e : fs::directory_iterator(dir_ / "journal")) {
    std::ifstream in(e.path());
    journal += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_NE(journal.find("\"audit.service_restart\""), std::string::npos) << journal;
  EXPECT_NE(journal.find("service/dispatcher"), std::string::npos);
}

TEST_F(ApiServicesTest, LogsAreNewestFirstFilteredAndMasked) {
  WriteLog("web.1.log",
           "2026-12-08T04:00:00.000+00:00 warning web[7] web: created the first account: user "
           "'admin' with password 'Zq9sEcReT' (shown only now)\n");
  WriteLog("web.log",
           "2026-12-08T04:00:02.000+00:00 info  web[7] web: listening on http://127.0.0.1:8080\n"
           "a stray line a child printed\n"
           "2026-12-08T04:00:04.000+00:00 debug web[7] web: GET /api/v1/status -> 200\n");
  WriteLog("dispatcher.log",
           "2026-12-08T04:00:03.000+00:00 error dispatcher[8] dispatcher: task=t1 target s3 "
           "failed: https://bob:hunter2@s3.local/bucket, token ferry_" +
               std::string(64, 'a') + " password=swordfish\n");
  json all = Logs({});
  ASSERT_EQ(all["items"].size(), 4u) << all.dump(2);
  EXPECT_EQ(all["items"][0]["level"], "debug");
  EXPECT_EQ(all["items"][1]["service"], "dispatcher");
  EXPECT_EQ(all["items"][3]["time"], "2026-12-08T04:00:00.000+00:00");
  std::string text = all.dump();
  for (const char* secret : {"Zq9sEcReT", "hunter2", "aaaaaaaa", "swordfish"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in " << text;
  }
  EXPECT_NE(text.find("with password '***'"), std::string::npos) << text;
  EXPECT_NE(text.find("https://bob:***@s3.local"), std::string::npos) << text;

  json warn = Logs({{"level", "warn"}});
  ASSERT_EQ(warn["items"].size(), 2u);
  json web = Logs({{"service", "web"}, {"q", "LISTENING"}});
  ASSERT_EQ(web["items"].size(), 1u);
  EXPECT_EQ(web["items"][0]["level"], "info");
  EXPECT_EQ(Logs({{"limit", "1"}})["items"].size(), 1u);
  EXPECT_EQ(Logs({{"limit", "1"}})["total"], 4);
  Logs({{"service", "../etc/passwd"}}, 400);
  Logs({{"level", "loud"}}, 400);
}

TEST(LogLines, ParseAndRedact) {
  auto line = ParseLogLine("2026-12-08T04:00:00.123+00:00 info  web[42] web: hello");
  ASSERT_TRUE(line);
  EXPECT_EQ(line->level, "info");
  EXPECT_EQ(line->message, "web[42] web: hello");
  EXPECT_FALSE(ParseLogLine("hello"));
  EXPECT_FALSE(ParseLogLine("2026-12-08T04:00:00.123+00:00 loud web: x"));
  EXPECT_EQ(ParseLogLine("2026-12-08T04:00:00.123+00:00 warning web[1] web: x")->level, "warn");
  EXPECT_EQ(RedactLogLine("Authorization: Bearer abc.def"), "Authorization: Bearer ***");
  EXPECT_EQ(RedactLogLine("postgresql://ferry:pw@db/ferry"), "postgresql://ferry:***@db/ferry");
  EXPECT_EQ(RedactLogLine("secret_key: xyz, next"), "secret_key: ***, next");
  EXPECT_EQ(RedactLogLine("nothing to hide"), "nothing to hide");
}

}  // namespace
}  // namespace ferry::web
