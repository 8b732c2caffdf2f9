#include "web/metrics.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "db/schema.h"

namespace ferry::web {
namespace {

db::Rows CounterRows(std::vector<std::array<std::string, 3>> rows) {
  db::Rows out;
  out.columns = {"name", "labels", "value"};
  for (const auto& r : rows) {
    out.rows.push_back({{r[0], r[1], r[2]}});
  }
  return out;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) {
    ++n;
  }
  return n;
}

TEST(Metrics, Labels) {
  EXPECT_EQ(FormatLabels(""), "");
  EXPECT_EQ(FormatLabels("{}"), "");
  EXPECT_EQ(FormatLabels(R"({"target":"pacs","le":"0.5"})"), R"(le="0.5",target="pacs")");
  EXPECT_EQ(FormatLabels(R"({"t":"a\"b"})"), R"(t="a\"b")");
  EXPECT_EQ(FormatLabels(R"(target="pacs")"), R"(target="pacs")");
  EXPECT_EQ(FormatLabels(R"({target="pacs"})"), R"(target="pacs")");
}

TEST(Metrics, CountersHistogramsAndGaugesGetOneTypeLineEach) {
  std::string text = FormatCounters(CounterRows({
      {"ferry_instances_received_total", R"({"receiver":"FERRY"})", "12"},
      {"ferry_dispatch_seconds_bucket", R"({"le":"1"})", "3"},
      {"ferry_dispatch_seconds_bucket", R"({"le":"+Inf"})", "4"},
      {"ferry_dispatch_seconds_sum", "", "2.5"},
      {"ferry_dispatch_seconds_count", "", "4"},
      {"ferry_tasks_total", R"({"state":"error"})", "1"},
      {"ferry_tasks_total", R"({"state":"success"})", "5"},
      {"ferry_queue_depth", "", "7"},
  }));
  EXPECT_NE(text.find("# TYPE ferry_instances_received_total counter\n"
                      "ferry_instances_received_total{receiver=\"FERRY\"} 12\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE ferry_dispatch_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_dispatch_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_dispatch_seconds_sum 2.5\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ferry_queue_depth gauge\n"), std::string::npos);
  EXPECT_EQ(Count(text, "# TYPE "), 4u) << text;
  EXPECT_EQ(Count(text, "# HELP "), 4u) << text;
  EXPECT_EQ(Count(text, "# TYPE ferry_tasks_total counter"), 1u);
}

TEST(Metrics, LiveGaugesFromTheDataFolder) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ferry-metrics-test-" + std::to_string(getpid()));
  fs::create_directories(dir / "outgoing" / "task1");
  fs::create_directories(dir / "outgoing" / "task2");
  fs::create_directories(dir / "error" / "task3");
  fs::create_directories(dir / "journal");
  fs::create_directories(dir / "run");
  std::ofstream(dir / "journal" / "web-1.jsonl") << std::string(100, 'x');
  std::ofstream(dir / "run" / "services.json")
      << R"({"services":{"receiver":{"pid":1,"state":"running","restarts":2},)"
      << R"("router":{"pid":0,"state":"restarting","restarts":5}},"updated_at":"x"})";
  Config config;
  config.data_folder = dir.string();
  std::string text = RenderMetrics(config, nullptr);
  EXPECT_NE(text.find("ferry_database_up 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_spool_entries{stage=\"outgoing\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_spool_entries{stage=\"error\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_spool_entries{stage=\"incoming\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_journal_bytes 100\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_service_up{service=\"receiver\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_service_up{service=\"router\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_service_restarts_total{service=\"router\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_data_disk_total_bytes"), std::string::npos);

  fs::remove(dir / "run" / "services.json");
  EXPECT_EQ(RenderMetrics(config, nullptr).find("ferry_service_up"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Metrics, JournalLagAndCountersFromTheDatabase) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ferry-metrics-db-" + std::to_string(getpid()));
  fs::create_directories(dir / "journal");
  std::ofstream(dir / "journal" / "receiver-1.jsonl") << std::string(300, 'x');
  std::ofstream(dir / "journal" / "router-1.jsonl") << std::string(50, 'x');
  auto db = db::Database::Open("sqlite:" + (dir / "ferry.db").string());
  ASSERT_TRUE(db.has_value());
  ASSERT_TRUE(db::Migrate(db->get()).has_value());
  // receiver-1 is loaded up to byte 250 (recorded with its full path), router-1 completely.
  ASSERT_TRUE((*db)
                  ->Execute("INSERT INTO journal_offsets (file, offset_bytes, updated_us) "
                            "VALUES ($1, 250, 0), ('router-1.jsonl', 50, 0)",
                            {(dir / "journal" / "receiver-1.jsonl").string()})
                  .has_value());
  ASSERT_TRUE((*db)
                  ->Execute("INSERT INTO counters (name, labels, value) VALUES "
                            "('ferry_tasks_total', '{\"state\":\"success\"}', 7)")
                  .has_value());
  Config config;
  config.data_folder = dir.string();
  std::string text = RenderMetrics(config, db->get());
  EXPECT_NE(text.find("ferry_database_up 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_journal_lag_bytes 50\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_tasks_total{state=\"success\"} 7\n"), std::string::npos) << text;
  db->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ferry::web
