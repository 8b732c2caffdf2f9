// How a service learns that it should stop: SIGTERM and SIGINT are blocked for every thread
// and delivered through a signalfd that the service's loop polls.
#pragma once

#include <chrono>
#include <string_view>

namespace ferry {

// Blocks SIGTERM and SIGINT in the calling thread (call it before starting threads, which
// inherit the mask) and returns a signalfd that becomes readable when one arrives (-1 if the
// kernel refuses one).
int BlockStopSignals();

// Waits up to `timeout` for a stop signal on `signal_fd` or for input on `event_fd` (an inotify
// descriptor, drained here; -1: none). `settle` is waited after an event, so that a burst of
// changes is handled in one pass. Returns false when a stop signal arrived; the signal is
// logged for `service` ("received SIGTERM; stopping"). Without a signalfd (-1) it sleeps.
bool WaitForWork(int signal_fd, int event_fd, std::chrono::milliseconds timeout,
                 std::string_view service,
                 std::chrono::milliseconds settle = std::chrono::milliseconds(0));

}  // namespace ferry
