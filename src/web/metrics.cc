#include "web/metrics.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "db/counters.h"
#include "spool/control.h"
#include "spool/spool.h"

namespace ferry::web {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", v);
}

std::string Sample(const std::string& name, const std::string& labels, double value) {
  return labels.empty() ? fmt::format("{} {}\n", name, FormatValue(value))
                        : fmt::format("{}{{{}}} {}\n", name, labels, FormatValue(value));
}

void Family(std::ostringstream& out, const std::string& name, const std::string& type,
            const std::string& help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

}  // namespace

std::string FormatLabels(const std::string& labels) {
  std::string text = labels;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.pop_back();
  }
  if (text.empty() || text == "{}") {
    return "";
  }
  if (text.front() == '{') {
    auto parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_object()) {
      std::string out;
      for (const auto& [k, v] : parsed.items()) {
        if (!out.empty()) {
          out += ',';
        }
        out += k + "=\"" + db::EscapeLabelValue(v.is_string() ? v.get<std::string>() : v.dump()) + "\"";
      }
      return out;
    }
    // {a="x"}: Prometheus form with braces.
    if (text.back() == '}') {
      return text.substr(1, text.size() - 2);
    }
  }
  return text;
}

std::string FormatCounters(const db::Rows& rows) {
  // Histogram bases: names that have _bucket rows.
  std::set<std::string> histograms;
  for (const auto& row : rows.rows) {
    std::string name = row.Text(0);
    if (EndsWith(name, "_bucket")) {
      histograms.insert(name.substr(0, name.size() - 7));
    }
  }
  // family -> samples, so that each family's samples are contiguous.
  std::map<std::string, std::pair<std::string, std::string>> families;  // type, samples
  for (const auto& row : rows.rows) {
    std::string name = row.Text(0);
    if (name.empty()) {
      continue;
    }
    std::string family = name;
    std::string type = "gauge";
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (EndsWith(name, suffix)) {
        std::string base = name.substr(0, name.size() - suffix.size());
        if (histograms.count(base) != 0) {
          family = base;
          type = "histogram";
        }
      }
    }
    if (type == "gauge" && EndsWith(name, "_total")) {
      type = "counter";
    }
    auto& f = families[family];
    f.first = type;
    f.second += Sample(name, FormatLabels(row.Text(1)), row.Real(2));
  }
  std::ostringstream out;
  for (const auto& [family, f] : families) {
    Family(out, family, f.first, "ferry " + f.first + " " + family + " (from the journals)");
    out << f.second;
  }
  return out.str();
}

std::string FormatLiveGauges(const Config& config, db::Database* db) {
  namespace fs = std::filesystem;
  std::ostringstream out;
  const fs::path data(config.data_folder);
  std::error_code ec;

  Family(out, "ferry_spool_entries", "gauge", "Entries (series or task folders) per spool stage");
  for (std::string_view stage : {kIncoming, kProcessing, kOutgoing, kSuccess, kError, kDiscard}) {
    int64_t n = 0;
    for (fs::directory_iterator it(data / stage, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->path().filename().string().starts_with(".")) {
        ++n;
      }
    }
    ec.clear();
    out << Sample("ferry_spool_entries", fmt::format("stage=\"{}\"", stage), n);
  }

  // Journal lag: bytes in <data>/journal/*.jsonl that the bookkeeper has not loaded yet.
  std::map<std::string, int64_t> offsets;
  if (db != nullptr) {
    auto rows = db->Query("SELECT file, offset_bytes FROM journal_offsets");
    if (rows) {
      for (const auto& row : rows->rows) {
        offsets[fs::path(row.Text(0)).filename().string()] = row.Int(1);
      }
    }
  }
  int64_t lag = 0;
  int64_t journal_bytes = 0;
  for (fs::directory_iterator it(data / kJournal, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".jsonl") {
      continue;
    }
    std::error_code size_ec;
    auto size = static_cast<int64_t>(fs::file_size(it->path(), size_ec));
    if (size_ec) {
      continue;
    }
    journal_bytes += size;
    auto o = offsets.find(it->path().filename().string());
    lag += std::max<int64_t>(0, size - (o == offsets.end() ? 0 : o->second));
  }
  ec.clear();
  if (db != nullptr) {
    Family(out, "ferry_journal_lag_bytes", "gauge",
           "Bytes of event journals not yet loaded into the database by the bookkeeper");
    out << Sample("ferry_journal_lag_bytes", "", static_cast<double>(lag));
  }
  Family(out, "ferry_journal_bytes", "gauge", "Total size of the event journal files");
  out << Sample("ferry_journal_bytes", "", static_cast<double>(journal_bytes));

  struct statvfs st {};
  if (statvfs(config.data_folder.c_str(), &st) == 0) {
    double total = static_cast<double>(st.f_blocks) * st.f_frsize;
    double avail = static_cast<double>(st.f_bavail) * st.f_frsize;
    double used = total - static_cast<double>(st.f_bfree) * st.f_frsize;
    Family(out, "ferry_data_disk_total_bytes", "gauge",
           "Size of the file system holding the data folder");
    out << Sample("ferry_data_disk_total_bytes", "", total);
    Family(out, "ferry_data_disk_used_bytes", "gauge",
           "Used bytes of the file system holding the data folder");
    out << Sample("ferry_data_disk_used_bytes", "", used);
    Family(out, "ferry_data_disk_available_bytes", "gauge",
           "Bytes available to ferry on the file system holding the data folder");
    out << Sample("ferry_data_disk_available_bytes", "", avail);
    Family(out, "ferry_data_disk_usage_ratio", "gauge",
           "Used share (0..1) of the file system holding the data folder");
    out << Sample("ferry_data_disk_usage_ratio", "", total > 0 ? used / total : 0);
  }

  // The supervisor's view of its services; absent when services run without `ferry serve`.
  std::ifstream in(data / kRunDir / kServicesStatusFile);
  if (in) {
    auto status = nlohmann::json::parse(in, nullptr, false);
    if (status.is_object() && status.contains("services") && status["services"].is_object()) {
      std::string up;
      std::string restarts;
      for (const auto& [name, s] : status["services"].items()) {
        std::string label = fmt::format("service=\"{}\"", db::EscapeLabelValue(name));
        bool running = s.is_object() && s.value("state", "") == "running";
        up += Sample("ferry_service_up", label, running ? 1 : 0);
        int64_t n = s.is_object() && s.contains("restarts") && s["restarts"].is_number()
                        ? s["restarts"].get<int64_t>()
                        : 0;
        restarts += Sample("ferry_service_restarts_total", label, static_cast<double>(n));
      }
      Family(out, "ferry_service_up", "gauge",
             "1 while the supervisor reports the service running, else 0");
      out << up;
      Family(out, "ferry_service_restarts_total", "counter",
             "Restarts of the service by the supervisor since it started");
      out << restarts;
    }
  }
  return out.str();
}

std::string RenderMetrics(const Config& config, db::Database* db) {
  std::ostringstream out;
  bool db_up = false;
  std::string counters;
  if (db != nullptr) {
    auto rows = db->Query("SELECT name, labels, value FROM counters ORDER BY name, labels");
    if (rows) {
      db_up = true;
      counters = FormatCounters(*rows);
    }
  }
  Family(out, "ferry_database_up", "gauge",
         "1 when the web service can read the bookkeeping database, else 0");
  out << Sample("ferry_database_up", "", db_up ? 1 : 0);
  out << counters;
  out << FormatLiveGauges(config, db_up ? db : nullptr);
  return out.str();
}

}  // namespace ferry::web
