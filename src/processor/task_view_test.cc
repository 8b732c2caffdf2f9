#include "processor/task_view.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using Json = nlohmann::json;

class DynamicRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (std::string n : {"pacs", "research", "backup"}) {
      TargetOptions t;
      t.name = n;
      config_.targets.push_back(t);
    }
    rule_.name = "ai";
    rule_.dynamic_routing = true;
    rule_.dynamic_routing_allowed_targets = {"research", "backup"};
    rule_.conditional_alternate_target = "backup";
  }
  RoutingOutcome Route(Json routing) {
    return DynamicRouting({{"__mercure_routing", routing}}, &rule_, config_);
  }
  Config config_;
  RuleOptions rule_;
};

TEST_F(DynamicRoutingTest, Table) {
  struct Case {
    Json routing;
    bool changed;
    bool discard;
    std::vector<std::string> targets;
  } cases[] = {
      {{{"target", "research"}}, true, false, {"research"}},
      {{{"target", {"research", "backup"}}}, true, false, {"research", "backup"}},
      {{{"target", "pacs"}}, false, false, {}},          // not allowed
      {{{"target", "nowhere"}}, false, false, {}},       // not a target
      {{{"target", {"research", "pacs"}}}, false, false, {}},
      {{{"discard", true}}, true, true, {}},
      {{{"use_alternate_target", true}}, true, false, {"backup"}},
      {{{"use_alternate_target", false}}, false, false, {}},
      {Json::object(), false, false, {}},
      {{{"discard", "yes"}}, false, false, {}},  // not a boolean: ignored, never a crash
      {{{"use_alternate_target", 1}}, false, false, {}},
      {{{"target", 7}}, false, false, {}},
  };
  for (const auto& c : cases) {
    RoutingOutcome out = Route(c.routing);
    EXPECT_EQ(out.changed, c.changed) << c.routing.dump() << ": " << out.note;
    EXPECT_EQ(out.discard, c.discard) << c.routing.dump();
    EXPECT_EQ(out.targets, c.targets) << c.routing.dump();
  }
}

TEST_F(DynamicRoutingTest, OnlyUnderTheRulesDynamicRouting) {
  rule_.dynamic_routing = false;
  RoutingOutcome out = Route({{"target", "research"}});
  EXPECT_FALSE(out.changed);
  EXPECT_NE(out.note.find("does not enable dynamic_routing"), std::string::npos);
  EXPECT_FALSE(DynamicRouting({{"__mercure_routing", {{"discard", true}}}}, nullptr, config_).changed);
  rule_.dynamic_routing = true;
  rule_.dynamic_routing_allowed_targets.clear();  // empty: any target
  EXPECT_EQ(Route({{"target", "pacs"}}).targets, std::vector<std::string>{"pacs"});
}

TEST(ModuleTaskViewTest, MercuresTaskWithTheCurrentStepAndMergedSettings) {
  Json task = {{"id", "t1"},
               {"info", {{"uid", "1.2"}}},
               {"process",
                Json::array({{{"module_name", "a"}, {"settings", {{"x", 1}}},
                              {"retain_input_images", true}},
                             {{"module_name", "b"}, {"settings", {{"y", 2}}}}})},
               {"ferry", {{"priority", "normal"}}}};
  ModuleOptions b;
  b.name = "b";
  b.docker_tag = "img:1";
  b.settings_json = R"({"y": 0, "z": 3})";
  b.environment_json = R"({"A": "1"})";
  Json view = ModuleTaskView(task, 1, b);
  EXPECT_FALSE(view.contains("ferry"));
  EXPECT_EQ(view["process"]["module_name"], "b");
  EXPECT_EQ(view["process"]["settings"], Json({{"y", 2}, {"z", 3}}));
  EXPECT_EQ(view["process"]["module_config"]["docker_tag"], "img:1");
  EXPECT_EQ(view["process"]["module_config"]["environment"], R"({"A": "1"})");
  EXPECT_EQ(view["process"]["module_config"]["docker_arguments"], "");
  EXPECT_EQ(view["process"]["output"], nullptr);
  EXPECT_EQ(ProcessSteps(task).size(), 2u);
}

TEST(ModuleNotificationTest, JoinsTheTextOfEveryStep) {
  Notification n = ModuleNotification(
      {{"a", {{"__mercure_notification", {{"text", "first"}}}}},
       {"b", nullptr},
       {"c", {{"__mercure_notification", {{"text", "third"}, {"requested", true}}}}}});
  EXPECT_EQ(n.text, "a: first\nc: third");
  EXPECT_TRUE(n.requested);
  EXPECT_FALSE(ModuleNotification({{"a", {{"other", 1}}}}).requested);
}

}  // namespace
}  // namespace ferry
