// RunWebService: `ferry web` as a process (alone, or as a child of `ferry serve`); runs
// until SIGTERM/SIGINT and returns the exit code.
#pragma once

#include "config/config.h"

namespace ferry {

int RunWebService(const Config& config);

}  // namespace ferry
