// `ferry user ...`: manage web accounts and API tokens from the command line (works without
// the web service running; writes the database directly and journals each change for audit).
#pragma once

#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "config/config.h"

namespace ferry {

class UserCli {
 public:
  virtual ~UserCli() = default;
  // True when one of the user subcommands was given on the command line.
  virtual bool parsed() const = 0;
  // Runs the parsed subcommand; returns the exit code.
  virtual int Run(const Config& config) = 0;
};

// Adds `user` and its subcommands to `app`; `add_common` adds --config and --log-level.
std::unique_ptr<UserCli> AddUserCli(CLI::App* app,
                                    const std::function<void(CLI::App*)>& add_common);

}  // namespace ferry
