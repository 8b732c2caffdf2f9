// RunNotifierService: `ferry notifier` as a process (alone, or as a child of `ferry serve`).
// Wakes up when a journal in <data>/journal changes (inotify), when a retry is due, and at
// least every 5 s; runs until SIGTERM/SIGINT (after the delivery in progress, at most
// notifications.timeout) and returns the exit code.
#pragma once

#include "config/config.h"

namespace ferry {

int RunNotifierService(const Config& config);

}  // namespace ferry
