// RunRouterService: `ferry router`, the router as a whole process.
//
// Compiles the rules (a broken rule stops the start with the rule's name and column), recovers
// what a killed predecessor left in tmp/router, then runs Router::RunOnce whenever something
// may have changed: inotify reports a new series folder or an association ending, or the
// earliest completion deadline is reached; a rescan every second is the safety net. Stops on
// SIGTERM or SIGINT after the pass in progress. Returns the process exit code.
#pragma once

#include "config/config.h"

namespace ferry {

int RunRouterService(const Config& config);

}  // namespace ferry
