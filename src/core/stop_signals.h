// How a service learns that it should stop: SIGTERM and SIGINT are blocked for every thread
// and delivered through a signalfd that the service's loop polls.
#pragma once

namespace ferry {

// Blocks SIGTERM and SIGINT in the calling thread (call it before starting threads, which
// inherit the mask) and returns a signalfd that becomes readable when one arrives (-1 if the
// kernel refuses one).
int BlockStopSignals();

}  // namespace ferry
