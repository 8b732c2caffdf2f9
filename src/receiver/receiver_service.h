// RunReceiverService: `ferry receiver`, the receiver as a whole process.
//
// Opens the spool (recovering what a killed predecessor left: partial files in tmp/, open
// association markers), the journal and the DICOM listener, serves until SIGTERM or SIGINT, then
// stops accepting associations, lets in-flight ones finish for receiver.shutdown_grace seconds,
// aborts the rest and returns. Returns the process exit code: 0 after a clean stop, 1 when it
// cannot start (the log says why).
#pragma once

#include "config/config.h"

namespace ferry {

int RunReceiverService(const Config& config);

}  // namespace ferry
