// RunDispatcherService: the dispatcher as a process (`ferry dispatcher`, or a child of
// `ferry serve`). Wakes up on new tasks in outgoing/ (inotify), on new instances of streamed
// series, when a job ends, and when a retry is due; stops on SIGTERM/SIGINT, putting tasks
// in flight back into outgoing/.
#pragma once

#include "config/config.h"

namespace ferry {

int RunDispatcherService(const Config& config);

}  // namespace ferry
