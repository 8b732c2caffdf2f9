// EventMapper: writes one journal event into the database tables (events, audit, series,
// tasks, task targets) and collects its Prometheus counter increments.
//
// The bookkeeper calls Apply() for every line of a batch inside one transaction and then
// FlushCounters() in the same transaction, so rows and counters commit together with the
// journal offset. Journals of different services are loaded file by file, so events about one
// task or series can arrive out of order (the dispatcher's task.completed before the router's
// task.created): every write is an upsert, and a state change only applies when its event is
// not older than the last state change already stored (tasks.updated_us, series.last_event_us).
// Thread-safety: one mapper per bookkeeper thread; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "db/database.h"

namespace ferry::bookkeeper {

// "2026-11-24T17:30:36.123456Z" (also without fraction or with an offset such as "+01:00")
// -> microseconds since the Unix epoch. nullopt when it is not such a time.
std::optional<int64_t> ParseIso8601Micros(const std::string& text);


// Upper bounds (seconds) of the ferry_series_latency_seconds buckets; +Inf is added.
inline constexpr double kLatencyBuckets[] = {0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

class EventMapper {
 public:
  // `data_folder` is where terminal tasks' task.json snapshots are looked up.
  EventMapper(db::Database* db, std::string data_folder);

  // Writes the rows for one parsed journal line. `event` must be a JSON object. Errors are the
  // database's (the caller rolls the transaction back).
  Status Apply(const nlohmann::json& event);

  // Adds the counter increments collected since the last flush to the counters table and
  // forgets them. Call inside the transaction that applied the events; call Reset() instead
  // when that transaction is rolled back.
  Status FlushCounters();
  void Reset() { pending_.clear(); }

 private:
  struct Event {
    int64_t ts_us;
    std::string time, service, type, task_id, series_uid;
    int64_t pid;
    const nlohmann::json* details;
  };

  void Count(const std::string& name, const std::string& labels, double by = 1);
  void ObserveLatency(double seconds);

  Status InsertEventRows(const Event& e);
  Status ApplySeries(const Event& e);
  Status ApplyTask(const Event& e);
  Status ApplyCounters(const Event& e);

  Status UpsertSeries(const Event& e, const std::map<std::string, db::Param>& columns,
                      const char* state, bool add_instances);
  Status EnsureTask(const Event& e);
  Status CreateTask(const Event& e, const std::string& action, const std::string& state,
                    const std::string& stage, const std::string& study_uid);
  // Sets state columns of a task if `e` is not older than its last state change.
  Status UpdateTaskState(const Event& e, const std::string& state,
                         const std::map<std::string, db::Param>& columns);
  db::Param TaskSnapshot(const std::string& task_id, const char* stage) const;
  std::string ActionOfStudyTask(const std::string& task_id, const std::string& stage) const;
  Status LatencyOnTaskCompleted(const Event& e);
  Status LatencyOnSeriesComplete(const Event& e);

  db::Database* db_;
  std::string data_folder_;
  std::map<std::pair<std::string, std::string>, double> pending_;
};

}  // namespace ferry::bookkeeper
