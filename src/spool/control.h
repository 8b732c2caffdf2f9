// Control: operator switches and live status shared between ferry's processes through files
// in the data folder, so they work whichever process sets or reads them.
//
//   <data>/control/<activity>.suspended   present while an operator has suspended the activity
//                                         ("dispatch": no new transfer starts; "processing": no
//                                         processing task starts). Contents: JSON {by, at, reason}.
//   <data>/run/services.json              the supervisor's view of its services (see
//                                         ServiceStatus), rewritten atomically on every change.
//   <data>/control/restart/<service>      an admin asked `ferry serve` to restart the service
//                                         (JSON {by, at}); the supervisor takes the request
//                                         (removes the file) and restarts the service at once.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace ferry {

inline constexpr std::string_view kControlDir = "control";
inline constexpr std::string_view kRunDir = "run";
inline constexpr std::string_view kServicesStatusFile = "services.json";
// <data>/log/<service>.log: each supervised service's recent log lines (core/logging.h).
inline constexpr std::string_view kLogDir = "log";

// The activities an operator can suspend.
bool IsSuspendableActivity(std::string_view activity);  // "dispatch" or "processing"

std::string SuspendMarkerPath(const std::string& data_folder, std::string_view activity);

// True while `activity` is suspended. Cheap: one stat().
bool IsSuspended(const std::string& data_folder, std::string_view activity);

// Suspends (writes the marker durably, with who and why) or resumes (removes it).
Status SetSuspended(const std::string& data_folder, std::string_view activity, bool suspended,
                    std::string_view by, std::string_view reason);

// Asks the supervisor to restart `service` (a name of kServiceNames; InvalidArgument otherwise).
// Written durably; a second request before the first is taken is one request.
Status RequestRestart(const std::string& data_folder, std::string_view service,
                      std::string_view by);

// Takes the pending restart requests: returns {service, requested by} for each and removes the
// files. Cheap when there is none (one opendir of a small folder).
std::vector<std::pair<std::string, std::string>> TakeRestartRequests(
    const std::string& data_folder);

}  // namespace ferry
