// RunBookkeeperService: `ferry bookkeeper` as a process (alone, or as a child of `ferry serve`);
// runs until SIGTERM/SIGINT and returns the exit code.
#pragma once

#include "config/config.h"

namespace ferry {

int RunBookkeeperService(const Config& config);

}  // namespace ferry
