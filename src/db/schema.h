// Schema: the tables of ferry's database and their versioned migrations.
//
// Migrate() applies, in order and each in its own transaction, every migration whose version is
// not yet recorded in schema_migrations. Both the bookkeeper and the web service call it at
// start; concurrent callers serialise (SQLite's write lock, a PostgreSQL advisory lock), so a
// migration runs exactly once. Times are stored as microseconds since the Unix epoch (UTC) in
// *_us columns; JSON documents as text.
//
// Tables (version 1):
//   journal_offsets(file, offset_bytes, updated_us)       how far each journal file is loaded
//   series(series_uid, study_uid, patient_name, patient_id, patient_birth_date,
//          accession_number, study_description, study_date, series_description, series_date,
//          series_number, modality, sender_aet, sender_address, receiver_aet, first_seen_us,
//          complete_us, instances, state, rule, last_event_us)
//   tasks(task_id, parent_id, series_uid, study_uid, action, rule, targets, state, stage,
//         priority, patient_name, patient_id, accession_number, created_us, updated_us,
//         completed_us, attempts, last_error, task_json)
//   task_targets(task_id, target)                         one row per target a task sends to
//   task_events(id, ts_us, time, service, pid, event, task_id, series_uid, details)
//   system_events(id, ts_us, time, service, pid, event, details)
//   audit(id, ts_us, time, actor, address, action, object, details)
//   users(username, password_hash, role, created_us, updated_us, disabled)
//   api_tokens(id, token_hash, username, name, created_us, last_used_us, expires_us)
//   counters(name, labels, value)                         Prometheus counters and histograms
#pragma once

#include "db/database.h"

namespace ferry::db {

inline constexpr int kSchemaVersion = 2;

// Applies missing migrations. Returns the version now in place.
Result<int> Migrate(Database* db);

}  // namespace ferry::db
