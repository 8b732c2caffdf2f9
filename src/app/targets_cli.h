// `ferry targets test NAME` and `ferry targets send NAME FILE...`: check a target, or deliver
// files to it directly (outside the queue), printing one line per file.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "config/config.h"

namespace ferry {

// Exit code 0 when the target passed, 1 when it failed (the reason is printed).
int RunTargetsTest(const Config& config, const std::string& name, std::ostream& out);

// Exit code 0 when every file was delivered, 1 otherwise.
int RunTargetsSend(const Config& config, const std::string& name,
                   const std::vector<std::string>& files, std::ostream& out);

}  // namespace ferry
