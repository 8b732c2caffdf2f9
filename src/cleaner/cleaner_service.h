// RunCleanerService: `ferry cleaner` as a process (alone, or as a child of `ferry serve`).
// Finishes deletions a killed predecessor left in tmp/cleaner/, then runs a Cleaner pass every
// cleaner.interval seconds until SIGTERM/SIGINT (which also ends a pass between two deletions),
// and returns the exit code.
#pragma once

#include "config/config.h"

namespace ferry {

int RunCleanerService(const Config& config);

}  // namespace ferry
