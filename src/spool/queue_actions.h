// Queue actions on the spool that the CLI (`ferry task retry`), the REST API and the services
// share: they move task folders between stages exactly as the services themselves do.
// Thread-safety: functions; concurrent callers are resolved by the atomicity of rename(2).
#pragma once

#include <string>

#include "core/result.h"
#include "journal/journal.h"
#include "spool/spool.h"

namespace ferry {

// Puts a task from error/ back to work for a fresh round of attempts: a task that failed while
// processing goes back into processing/ (its module chain runs again on the received images,
// which the processor keeps for this); any other task with targets goes back into outgoing/
// (what was already delivered is not sent again). NotFound when the task is not in error/,
// FailedPrecondition when it has nothing to redo. Journals `task.retry_requested` with the stage.
// Returns the stage the task went to ("processing" or "outgoing").
Result<std::string> RetryTask(Spool* spool, Journal* journal, const std::string& task_id);

}  // namespace ferry
