// Control: operator switches and live status shared between ferry's processes through files
// in the data folder, so they work whichever process sets or reads them.
//
//   <data>/control/<activity>.suspended   present while an operator has suspended the activity
//                                         ("dispatch": no new transfer starts; "processing": no
//                                         processing task starts). Contents: JSON {by, at, reason}.
//   <data>/run/services.json              the supervisor's view of its services (see
//                                         ServiceStatus), rewritten atomically on every change.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace ferry {

inline constexpr std::string_view kControlDir = "control";
inline constexpr std::string_view kRunDir = "run";
inline constexpr std::string_view kServicesStatusFile = "services.json";

// The activities an operator can suspend.
bool IsSuspendableActivity(std::string_view activity);  // "dispatch" or "processing"

std::string SuspendMarkerPath(const std::string& data_folder, std::string_view activity);

// True while `activity` is suspended. Cheap: one stat().
bool IsSuspended(const std::string& data_folder, std::string_view activity);

// Suspends (writes the marker durably, with who and why) or resumes (removes it).
Status SetSuspended(const std::string& data_folder, std::string_view activity, bool suspended,
                    std::string_view by, std::string_view reason);

}  // namespace ferry
