// GET /api/v1/stats/timeseries: the dashboard's live charts as JSON series, counted from the
// bookkeeper's event tables over a window (default: the last hour in 10 s steps). /metrics
// holds only running totals; a chart of the last hour needs the events' times.
//
// Series (one number per step):
//   instances_received   sum of `instances` of association.closed (system_events)
//   series_completed     series.complete events
//   tasks_created        task.created events
//   dispatched{target}   dispatch.complete events per target (tasks delivered)
//   failed{target}       dispatch.failed events per target
//   latency_mean_s, latency_max_s   task.completed time minus the last instance's arrival of its
//                        series (series.complete `last_arrival`), by the step of task.completed
// Reads use the (event, ts_us) and (ts_us) indexes: cost grows with the window's events, not
// with the size of the tables.
#include <fmt/format.h>

#include <chrono>
#include <map>

#include "web/api_data_internal.h"
#include "web/route.h"

namespace ferry::web {
namespace {

using nlohmann::json;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json DetailsOf(const db::Row& row, size_t column) {
  if (row.IsNull(column)) {
    return json::object();
  }
  json d = json::parse(row.Text(column), nullptr, false);
  return d.is_object() ? d : json::object();
}

struct Window {
  int64_t from_us;
  int64_t to_us;
  int64_t step_us;
  size_t buckets;
  // The step `ts_us` falls in, or -1 outside the window.
  int64_t Index(int64_t ts_us) const {
    if (ts_us < from_us || ts_us >= to_us) {
      return -1;
    }
    return (ts_us - from_us) / step_us;
  }
};

Response Timeseries(const Request& req, Context& ctx) {
  auto minutes = data::IntParam(req, "minutes", 60, 1, 24 * 60);
  auto step_s = data::IntParam(req, "step", 10, 1, 3600);
  auto to = data::TimeParam(req, "to");
  if (!minutes || !step_s || !to) {
    Status s = !minutes ? minutes.error() : !step_s ? step_s.error() : to.error();
    return Response::Error(400, s.message());
  }
  if (ctx.db == nullptr) {
    return data::NoDatabase();
  }
  Window w;
  w.step_us = *step_s * 1'000'000;
  // The window ends at the end of the step holding `to` (default now), so steps line up from
  // one poll to the next.
  int64_t end = to->value_or(NowUs());
  w.to_us = (end / w.step_us + 1) * w.step_us;
  int64_t span = *minutes * 60'000'000;
  w.buckets = static_cast<size_t>((span + w.step_us - 1) / w.step_us);
  if (w.buckets > 2000) {
    return Response::Error(400, fmt::format("{} minutes in steps of {} s are {} points; at most "
                                            "2000 (make step larger)",
                                            *minutes, *step_s, w.buckets));
  }
  w.from_us = w.to_us - static_cast<int64_t>(w.buckets) * w.step_us;

  std::vector<double> instances(w.buckets, 0), series(w.buckets, 0), tasks(w.buckets, 0);
  std::vector<double> latency_sum(w.buckets, 0), latency_max(w.buckets, 0);
  std::vector<int> latency_n(w.buckets, 0);
  std::map<std::string, std::vector<double>> dispatched, failed;

  auto received = ctx.db->Query(
      "SELECT ts_us, details FROM system_events WHERE event = 'association.closed' AND "
      "ts_us >= $1 AND ts_us < $2",
      {w.from_us, w.to_us});
  if (!received) {
    return data::DatabaseError(received.error(), "reading association events");
  }
  for (const auto& row : received->rows) {
    int64_t i = w.Index(row.Int(0));
    json d = DetailsOf(row, 1);
    if (i >= 0 && d.contains("instances") && d["instances"].is_number()) {
      instances[i] += d["instances"].get<double>();
    }
  }

  // The series' last arrivals are looked for from an hour before the window: a series that
  // completed then may have its task completed inside the window.
  auto events = ctx.db->Query(
      "SELECT ts_us, event, series_uid, details FROM task_events WHERE ts_us >= $1 AND "
      "ts_us < $2 AND event IN ('series.complete', 'task.created', 'dispatch.complete', "
      "'dispatch.failed', 'task.completed') ORDER BY ts_us",
      {w.from_us - 3'600'000'000, w.to_us});
  if (!events) {
    return data::DatabaseError(events.error(), "reading task events");
  }
  std::map<std::string, int64_t> last_arrival;
  for (const auto& row : events->rows) {
    int64_t ts = row.Int(0);
    std::string event = row.Text(1);
    std::string uid = row.IsNull(2) ? "" : row.Text(2);
    int64_t i = w.Index(ts);
    if (event == "series.complete") {
      json d = DetailsOf(row, 3);
      if (d.contains("last_arrival") && d["last_arrival"].is_string()) {
        if (auto us = data::ParseTimeUs(d["last_arrival"].get<std::string>())) {
          last_arrival[uid] = *us;
        }
      }
      if (i >= 0) {
        series[i] += 1;
      }
      continue;
    }
    if (i < 0) {
      continue;
    }
    if (event == "task.created") {
      tasks[i] += 1;
    } else if (event == "dispatch.complete" || event == "dispatch.failed") {
      json d = DetailsOf(row, 3);
      std::string target = d.value("target", std::string("?"));
      auto& per = (event == "dispatch.complete" ? dispatched : failed)[target];
      per.resize(w.buckets, 0);
      per[i] += 1;
    } else if (event == "task.completed") {
      auto it = last_arrival.find(uid);
      if (it != last_arrival.end() && it->second <= ts) {
        double s = static_cast<double>(ts - it->second) / 1e6;
        latency_sum[i] += s;
        latency_max[i] = std::max(latency_max[i], s);
        latency_n[i] += 1;
      }
    }
  }
  json mean = json::array();
  json max = json::array();
  for (size_t i = 0; i < w.buckets; ++i) {
    mean.push_back(latency_n[i] ? json(latency_sum[i] / latency_n[i]) : json());
    max.push_back(latency_n[i] ? json(latency_max[i]) : json());
  }
  return Response::Json({{"from", data::IsoFromUs(w.from_us)},
                         {"to", data::IsoFromUs(w.to_us)},
                         {"from_us", w.from_us},
                         {"step_s", *step_s},
                         {"points", w.buckets},
                         {"instances_received", instances},
                         {"series_completed", series},
                         {"tasks_created", tasks},
                         {"dispatched", dispatched},
                         {"failed", failed},
                         {"latency_mean_s", mean},
                         {"latency_max_s", max}});
}

}  // namespace

void AddStatsRoutes(std::vector<Route>* routes) {
  routes->push_back(
      {"GET",
       "/api/v1/stats/timeseries",
       Role::kViewer,
       false,
       "Counts per time step for the dashboard's charts: instances received, series completed, "
       "tasks created, tasks dispatched and failed per target, latency from last instance to "
       "dispatched",
       {{"minutes", "query", "integer", "window length, default 60, at most 1440"},
        {"step", "query", "integer", "seconds per point, default 10"},
        {"to", "query", "string", "end of the window (ISO 8601 or epoch seconds), default now"}},
       "",
       Timeseries});
}

}  // namespace ferry::web
