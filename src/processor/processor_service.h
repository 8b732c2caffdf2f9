// RunProcessorService: the processor as a process (`ferry processor`, or a child of
// `ferry serve`). Wakes up on new tasks in processing/ (inotify), when a job ends, when an
// operator suspends or resumes processing, and when a retry is due; stops on SIGTERM/SIGINT,
// stopping running modules and putting their tasks back into processing/.
#pragma once

#include "config/config.h"

namespace ferry {

int RunProcessorService(const Config& config);

}  // namespace ferry
