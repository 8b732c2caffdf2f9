#include "spool/task.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(TaskJsonTest, RouteTaskHasMercureFields) {
  TaskSpec spec;
  spec.id = "t-1";
  spec.action = "route";
  spec.uid = "1.2.3";
  spec.uid_type = "series";
  spec.triggered_rules = {"ct", "all"};
  spec.applied_rule = "ct";
  spec.patient_name = "Doe^John";
  spec.mrn = "P1";
  spec.acc = "A1";
  spec.sender_address = "127.0.0.1";
  spec.targets = {"pacs", "archive"};
  spec.ferry = {{"priority", "urgent"}};
  auto j = BuildTaskJson(spec, "0.1.0");
  EXPECT_EQ(j["id"], "t-1");
  EXPECT_EQ(j["info"]["action"], "route");
  EXPECT_EQ(j["info"]["uid_type"], "series");
  EXPECT_EQ(j["info"]["triggered_rules"]["ct"], true);
  EXPECT_EQ(j["info"]["triggered_rules"].size(), 2u);
  EXPECT_EQ(j["info"]["mrn"], "P1");
  EXPECT_EQ(j["dispatch"]["target_name"].size(), 2u);
  EXPECT_EQ(j["dispatch"]["retries"], 0);
  EXPECT_EQ(j["dispatch"]["series_uid"], "1.2.3");
  EXPECT_TRUE(j["process"].empty());
  EXPECT_TRUE(j["study"].is_object());
  EXPECT_EQ(j["ferry"]["priority"], "urgent");
}

TEST(TaskJsonTest, ProcessingChainGetsOneEntryPerModule) {
  TaskSpec spec;
  spec.id = "t-2";
  spec.action = "process";
  spec.uid = "1.2.3";
  spec.uid_type = "series";
  spec.modules = {"anon"};
  spec.module_settings = {{"mode", "fast"}};
  auto single = BuildTaskJson(spec, "0.1.0");
  ASSERT_TRUE(single["process"].is_object());
  EXPECT_EQ(single["process"]["module_name"], "anon");
  EXPECT_EQ(single["process"]["settings"]["mode"], "fast");
  EXPECT_TRUE(single["dispatch"].empty());

  spec.modules = {"anon", "ai"};
  spec.module_settings = nlohmann::json::array({{{"a", 1}}});
  auto chain = BuildTaskJson(spec, "0.1.0");
  ASSERT_TRUE(chain["process"].is_array());
  ASSERT_EQ(chain["process"].size(), 2u);
  EXPECT_EQ(chain["process"][0]["settings"]["a"], 1);
  EXPECT_TRUE(chain["process"][1]["settings"].empty());
}

}  // namespace
}  // namespace ferry
