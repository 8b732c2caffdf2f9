// Metrics: /metrics in Prometheus text format 0.0.4. Two sources:
//   - every row of the `counters` table (maintained by the bookkeeper from the journals):
//     names ending in _total are counters, _bucket/_sum/_count rows of one base name are a
//     histogram, anything else a gauge; one # HELP and # TYPE line per family;
//   - live gauges the web process measures itself: spool entries per stage, journal lag (bytes
//     of the journals not yet loaded into the database), disk use of the data folder's file
//     system, and the supervisor's view of the services (<data>/run/services.json, if present).
// Thread-safety: pure functions over their arguments; the file system reads are read-only.
#pragma once

#include <string>

#include "config/config.h"
#include "db/database.h"

namespace ferry::web {

// The counters rows (columns name, labels, value) in exposition format. `labels` may be a
// JSON object ({"target":"pacs"}) or already in Prometheus form (target="pacs"); empty for none.
std::string FormatCounters(const db::Rows& rows);

// `{"a":"x"}` or `a="x"` -> `a="x"` (values escaped); empty for no labels.
std::string FormatLabels(const std::string& labels);

// The live gauges, from the data folder and, when `db` is not null, journal_offsets.
std::string FormatLiveGauges(const Config& config, db::Database* db);

// The whole /metrics body. `db` may be null (database down): the counters are then missing and
// ferry_database_up is 0.
std::string RenderMetrics(const Config& config, db::Database* db);

}  // namespace ferry::web
