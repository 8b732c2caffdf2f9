// RecoverIntakeLog: at receiver start, before any association, puts back into incoming/ every
// instance the intake log holds above its checkpoint that the spool lost (spool/intake_log.h).
//
// Records written in the current boot are skipped: the killed process's writes are still in
// the operating system's cache, so the spool has them. After a reboot, a record whose file in
// incoming/<series>/ is missing or differs is published again (durably, with the series
// folder and its series.tags rebuilt from the instance if needed). Then, if the log held any
// record above its checkpoint, the spool is flushed, so that the log can start over.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"
#include "journal/journal.h"
#include "spool/spool.h"

namespace ferry {

struct IntakeRecovery {
  uint64_t last_lsn = 0;     // where the log continues
  int replayed = 0;          // instances put back into incoming/
  int unchanged = 0;         // records the spool already held unchanged
  int same_boot = 0;         // records skipped because no reboot happened since
};

// `boot_id`: this machine's boot id (CurrentBootId(); tests pass another to simulate a reboot).
Result<IntakeRecovery> RecoverIntakeLog(Spool* spool, Journal* journal,
                                        const std::string& boot_id);

}  // namespace ferry
