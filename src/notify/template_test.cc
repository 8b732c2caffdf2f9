#include "notify/template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ferry::notify {
namespace {

const std::map<std::string, std::string> kValues = {
    {"rule", "ct_head"}, {"event", "RECEIVED"}, {"name", "O'Brien \"Bob\"\n<b>&"}};

TEST(Template, SubstitutesWithAnySpacing) {
  Rendered r = RenderTemplate("{{rule}} / {{ event }} / {{   rule   }}", kValues, Escape::kNone);
  EXPECT_EQ(r.text, "ct_head / RECEIVED / ct_head");
  EXPECT_TRUE(r.unknown.empty());
}

TEST(Template, LegacyMacros) {
  Rendered r = RenderTemplate("@rule@:@event@", kValues, Escape::kNone);
  EXPECT_EQ(r.text, "ct_head:RECEIVED");
}

TEST(Template, UnknownPlaceholdersRenderEmptyAndAreReported) {
  Rendered r = RenderTemplate("a{{ nope }}b{{ rule | upper }}c", kValues, Escape::kNone);
  EXPECT_EQ(r.text, "abc");
  EXPECT_EQ(r.unknown, (std::vector<std::string>{"nope", "rule | upper"}));
}

TEST(Template, UnclosedBracesAreLiteral) {
  EXPECT_EQ(RenderTemplate("x {{ rule", kValues, Escape::kNone).text, "x {{ rule");
}

TEST(Template, JsonEscapesInsideStrings) {
  Rendered r = RenderTemplate(R"({"text": "{{ name }} for {{ rule }}"})", kValues, Escape::kJson);
  auto j = nlohmann::json::parse(r.text);
  EXPECT_EQ(j["text"], "O'Brien \"Bob\"\n<b>& for ct_head");
}

TEST(Template, JsonQuotesOutsideStrings) {
  // A placeholder outside a string literal becomes a whole string: the result stays JSON.
  Rendered r =
      RenderTemplate(R"({"who": {{ name }}, "q": "a \" {{ rule }}"})", kValues, Escape::kJson);
  auto j = nlohmann::json::parse(r.text);
  EXPECT_EQ(j["who"], "O'Brien \"Bob\"\n<b>&");
  EXPECT_EQ(j["q"], "a \" ct_head");
}

TEST(Template, JsonInjectionIsImpossible) {
  std::map<std::string, std::string> values = {{"x", "\", \"admin\": true, \"y\": \""}};
  auto j = nlohmann::json::parse(RenderTemplate(R"({"a": "{{ x }}"})", values, Escape::kJson).text);
  EXPECT_EQ(j.size(), 1u);
  EXPECT_EQ(j["a"], values["x"]);
}

TEST(Template, HtmlEscapes) {
  EXPECT_EQ(RenderTemplate("<p>{{ name }}</p>", kValues, Escape::kHtml).text,
            "<p>O&#39;Brien &quot;Bob&quot;\n&lt;b&gt;&amp;</p>");
}

TEST(Template, ControlCharactersInJson) {
  EXPECT_EQ(JsonEscape(std::string("a\x01\tb", 4)), "a\\u0001\\tb");
}

}  // namespace
}  // namespace ferry::notify
