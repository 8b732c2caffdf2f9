// ferry: the single binary. This is the composition root: the only place that reads the config
// and wires components together. Each subcommand is one service or one tool.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "app/rules_cli.h"
#include "app/targets_cli.h"
#include "app/user_cli.h"
#include "bookkeeper/bookkeeper_service.h"
#include "cleaner/cleaner_service.h"
#include "notify/notifier_service.h"
#include "web/web_service.h"
#include "dispatch/dispatcher.h"
#include "spool/queue_actions.h"
#include "dispatch/dispatcher_service.h"
#include "app/supervisor.h"
#include "config/config.h"
#include "core/logging.h"
#include "dicom/dcmtk_logging.h"
#include "processor/processor_service.h"
#include "receiver/receiver_service.h"
#include "router/router_service.h"
#include "router/rule_set.h"
#include "spool/spool.h"

namespace {

using ferry::Config;

constexpr const char* kVersion = "0.1.0";

// Loads the config or prints every error; the exit code for the caller when it fails.
std::optional<Config> LoadOrReport(const std::string& path) {
  auto config = ferry::LoadConfig(path);
  if (!config) {
    std::cerr << "ferry: " << config.error().message() << "\n";
    return std::nullopt;
  }
  return *config;
}

int ConfigCheck(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "ferry: cannot open config file " << path << ": " << std::strerror(errno)
              << "\n";
    return 1;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::vector<ferry::ConfigError> errors;
  Config config = ferry::ParseConfig(buf.str(), &errors, /*check_filesystem=*/true);
  if (!errors.empty()) {
    std::cout << path << ": " << errors.size() << " error" << (errors.size() == 1 ? "" : "s")
              << "\n";
    for (const auto& e : errors) {
      std::cout << "  " << e.path << ": " << e.reason << "\n";
    }
    return 1;
  }
  std::vector<ferry::RuleSet::Error> rule_errors;
  ferry::RuleSet::Build(config.rules, &rule_errors);
  if (!rule_errors.empty()) {
    std::cout << path << ": " << rule_errors.size() << " error"
              << (rule_errors.size() == 1 ? "" : "s") << "\n";
    for (const auto& e : rule_errors) {
      std::cout << "  " << e.path << ": " << e.reason << "\n";
    }
    return 1;
  }
  config.path = path;
  std::cout << ferry::Summarize(config) << "\n";
  for (const auto& w : ferry::TargetFolderWarnings(config)) {
    std::cout << "  warning: " << w.path << ": " << w.reason
              << " (until then, sending to this target fails and is retried)\n";
  }
  return 0;
}

// `ferry series complete UID` and `ferry series route UID --rule NAME`: asks the router to
// complete a series now (with the named rule, whatever its tags, when `rule` is not empty).
int SeriesComplete(const Config& config, const std::string& uid, const std::string& rule) {
  ferry::Spool spool(config.data_folder, "cli", ferry::DefaultFileSystem());
  if (!ferry::IsSafeFileName(uid)) {
    std::cerr << "ferry: \"" << uid << "\" is not a valid Series Instance UID\n";
    return 1;
  }
  std::string folder = spool.SeriesPath(uid);
  if (!ferry::DefaultFileSystem()->IsDirectory(folder)) {
    std::cerr << "ferry: series " << uid << " is not in " << spool.StagePath(ferry::kIncoming)
              << " (not received, or already routed)\n";
    return 1;
  }
  if (!rule.empty()) {
    bool known = false;
    for (const auto& r : config.rules) {
      known |= r.name == rule && !r.disabled;
    }
    if (!known) {
      std::cerr << "ferry: no enabled rule is named \"" << rule << "\" in " << config.path << "\n";
      return 1;
    }
  }
  ferry::Status s = spool.Init();
  if (s.ok()) {
    s = rule.empty() ? spool.WriteFileAtomic(folder, ferry::kForceCompleteFile, "",
                                             ferry::Durability::kFsync)
                     : spool.WriteFileAtomic(folder, ferry::kForceRuleFile, rule,
                                             ferry::Durability::kFsync);
  }
  if (!s.ok()) {
    std::cerr << "ferry: cannot mark series " << uid << " complete: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "series " << uid << " marked complete"
            << (rule.empty() ? "" : " with rule " + rule) << "; the router routes it now\n";
  return 0;
}

// `ferry task retry ID`.
int TaskRetry(const Config& config, const std::string& id) {
  ferry::FileSystem* fs = ferry::DefaultFileSystem();
  ferry::Spool spool(config.data_folder, "cli", fs);
  ferry::Status s = spool.Init();
  std::unique_ptr<ferry::Journal> journal;
  if (s.ok()) {
    auto opened = ferry::Journal::Open(spool.StagePath(ferry::kJournal), "cli",
                                       ferry::RealClock(), fs);
    if (opened) {
      journal = std::move(*opened);
    } else {
      s = opened.error();
    }
  }
  std::string stage;
  if (s.ok()) {
    auto retried = ferry::RetryTask(&spool, journal.get(), id);
    s = retried.status();
    stage = retried ? *retried : "";
  }
  if (!s.ok()) {
    std::cerr << "ferry: cannot retry task " << id << ": " << s.message() << "\n";
    return 1;
  }
  bool processing = stage == ferry::kProcessing;
  std::cout << "task " << id << " is queued again in "
            << spool.StagePath(processing ? ferry::kProcessing : ferry::kOutgoing)
            << (processing ? "; the processor runs its modules again from the received images\n"
                           : "; the dispatcher sends it now\n");
  return 0;
}

int ConfigInit(const std::string& path, const std::string& data_folder, bool force) {
  if (!force && std::filesystem::exists(path)) {
    std::cerr << "ferry: " << path << " exists; leaving it as it is (use --force to overwrite)\n";
    return 0;
  }
  std::string folder = std::filesystem::absolute(data_folder).lexically_normal().string();
  if (folder.size() > 1 && folder.back() == '/') {
    folder.pop_back();
  }
  // The default rule copies every series into <data>/delivered; a folder target never creates
  // its folder itself (a missing folder may be an unmounted share), so create it here.
  std::error_code ec;
  std::filesystem::create_directories(folder + "/delivered", ec);
  if (ec) {
    std::cerr << "ferry: cannot create " << folder << "/delivered: " << ec.message() << "\n";
    return 1;
  }
  std::ofstream out(path);
  out << ferry::DefaultConfigJson(folder);
  if (!out) {
    std::cerr << "ferry: cannot write " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::cerr << "ferry: wrote " << path << " (data folder " << folder
            << "; every series received is copied to " << folder << "/delivered/<task id>/)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry: a DICOM orchestrator (receive, route by rules, process, dispatch)", "ferry"};
  app.require_subcommand(1);
  std::string config_path = "ferry.json";
  std::string log_level;
  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("-c,--config", config_path, "path of ferry.json")->capture_default_str();
    cmd->add_option("--log-level", log_level,
                    "trace, debug, info, warn, error or off (overrides log_level in the config)");
  };

  CLI::App* serve = app.add_subcommand("serve", "run every service under a supervisor");
  add_common(serve);
  CLI::App* receiver = app.add_subcommand("receiver", "run the DICOM receiver service alone");
  add_common(receiver);
  CLI::App* router = app.add_subcommand("router", "run the router service alone");
  add_common(router);
  CLI::App* processor = app.add_subcommand(
      "processor", "run the processor alone (processing modules on the tasks in processing/)");
  add_common(processor);
  CLI::App* dispatcher = app.add_subcommand("dispatcher", "run the dispatcher service alone");
  add_common(dispatcher);
  CLI::App* bookkeeper = app.add_subcommand(
      "bookkeeper", "run the bookkeeper alone (loads the event journals into the database)");
  add_common(bookkeeper);
  CLI::App* web = app.add_subcommand("web", "run the REST API, /metrics and /healthz alone");
  add_common(web);
  CLI::App* notifier = app.add_subcommand(
      "notifier", "run the notifier alone (webhook and e-mail notifications of rules)");
  add_common(notifier);
  CLI::App* cleaner = app.add_subcommand(
      "cleaner", "run the cleaner alone (deletes finished tasks after their retention)");
  add_common(cleaner);
  std::unique_ptr<ferry::UserCli> user_cli = ferry::AddUserCli(&app, add_common);
  CLI::App* task_cmd = app.add_subcommand("task", "act on tasks");
  task_cmd->require_subcommand(1);
  CLI::App* task_retry = task_cmd->add_subcommand(
      "retry", "put a task from error/ back to work (processing or dispatch, where it failed)");
  add_common(task_retry);
  std::string task_id;
  task_retry->add_option("id", task_id, "task id (its folder name)")->required();

  CLI::App* series_cmd = app.add_subcommand("series", "act on series in incoming/");
  series_cmd->require_subcommand(1);
  CLI::App* complete = series_cmd->add_subcommand("complete", "complete a series now");
  add_common(complete);
  std::string series_uid;
  complete->add_option("uid", series_uid, "Series Instance UID")->required();
  CLI::App* route = series_cmd->add_subcommand(
      "route", "route a series now with the named rule, whatever its tags");
  add_common(route);
  std::string route_rule;
  route->add_option("uid", series_uid, "Series Instance UID")->required();
  route->add_option("--rule", route_rule, "name of the rule to apply")->required();

  CLI::App* config_cmd = app.add_subcommand("config", "check or create a configuration");
  config_cmd->require_subcommand(1);
  CLI::App* check = config_cmd->add_subcommand("check", "validate a config file; exit 1 if bad");
  add_common(check);
  CLI::App* init = config_cmd->add_subcommand("init", "write a default config file");
  add_common(init);
  std::string data_folder = "data";
  bool force = false;
  init->add_option("--data-folder", data_folder, "data folder of the new config")
      ->capture_default_str();
  init->add_flag("--force", force, "overwrite an existing file");

  CLI::App* rules_cmd = app.add_subcommand("rules", "evaluate routing rules");
  rules_cmd->require_subcommand(1);
  CLI::App* rules_eval = rules_cmd->add_subcommand(
      "eval", "evaluate one rule on the tags of a series; prints trigger, reject or error");
  add_common(rules_eval);  // --config and --log-level are accepted and not used by eval
  std::string rule_text;
  std::string tags_file;
  std::string dicom_file;
  bool explain = false;
  rules_eval->add_option("--rule", rule_text, "the rule, as written in the config");
  rules_eval->add_option("--tags", tags_file, "JSON file of the tags (mercure's .tags form)");
  rules_eval->add_option("--dicom", dicom_file, "DICOM file to read the tags from");
  rules_eval->add_flag("--explain", explain, "also print the tags read and why");

  CLI::App* rules_test = rules_cmd->add_subcommand(
      "test", "show each rule's outcome and the resulting action for DICOM files");
  add_common(rules_test);
  std::vector<std::string> test_files;
  rules_test->add_option("files", test_files, "DICOM files")->required();

  CLI::App* targets_cmd = app.add_subcommand("targets", "check targets or send files to one");
  targets_cmd->require_subcommand(1);
  std::string target_name;
  CLI::App* targets_test = targets_cmd->add_subcommand(
      "test", "check that a target is reachable and usable; prints PASS or FAIL and why");
  add_common(targets_test);
  targets_test->add_option("name", target_name, "target name")->required();
  CLI::App* targets_send = targets_cmd->add_subcommand(
      "send", "send DICOM files to a target now, outside the queue");
  add_common(targets_send);
  std::vector<std::string> send_files;
  targets_send->add_option("name", target_name, "target name")->required();
  targets_send->add_option("files", send_files, "DICOM files")->required();
  CLI::App* version = app.add_subcommand("version", "print the version");

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) {
    std::cout << "ferry " << kVersion << "\n";
    return 0;
  }
  if (rules_eval->parsed()) {
    return ferry::RunRulesEval(rule_text, tags_file, dicom_file, explain);
  }
  if (check->parsed()) {
    return ConfigCheck(config_path);
  }
  if (init->parsed()) {
    return ConfigInit(config_path, data_folder, force);
  }

  auto config = LoadOrReport(config_path);
  if (!config) {
    return 1;
  }
  // A broken rule stops every service from starting, not only the router: nothing runs
  // half-configured.
  std::vector<ferry::RuleSet::Error> rule_errors;
  ferry::RuleSet::Build(config->rules, &rule_errors);
  if (!rule_errors.empty()) {
    std::cerr << "ferry: " << config_path << " has " << rule_errors.size() << " error"
              << (rule_errors.size() == 1 ? "" : "s") << ":\n";
    for (const auto& e : rule_errors) {
      std::cerr << "  " << e.path << ": " << e.reason << "\n";
    }
    return 1;
  }
  std::string level = log_level.empty() ? config->log_level : log_level;
  std::string process = serve->parsed()        ? "supervisor"
                        : router->parsed()     ? "router"
                        : processor->parsed()  ? "processor"
                        : dispatcher->parsed() ? "dispatcher"
                        : bookkeeper->parsed() ? "bookkeeper"
                        : web->parsed()        ? "web"
                        : notifier->parsed()   ? "notifier"
                        : cleaner->parsed()    ? "cleaner"
                        : user_cli->parsed()   ? "ferry"
                                               : "receiver";
  ferry::Status s = ferry::InitLogging(level, process);
  if (!s.ok()) {
    std::cerr << "ferry: " << s.message() << "\n";
    return 1;
  }
  if (receiver->parsed()) {
    ferry::dicom::ConfigureDcmtkLogging(level);
    return ferry::RunReceiverService(*config);
  }
  if (router->parsed()) {
    return ferry::RunRouterService(*config);
  }
  if (processor->parsed()) {
    ferry::dicom::ConfigureDcmtkLogging("error");
    return ferry::RunProcessorService(*config);
  }
  if (dispatcher->parsed()) {
    ferry::dicom::ConfigureDcmtkLogging(level);
    return ferry::RunDispatcherService(*config);
  }
  if (bookkeeper->parsed()) {
    return ferry::RunBookkeeperService(*config);
  }
  if (web->parsed()) {
    // Rule evaluation parses uploaded files that may be anything: DCMTK's complaints about a
    // bad upload would flood the log (one line per element), and the API answers with what
    // went wrong anyway.
    ferry::dicom::ConfigureDcmtkLogging("error");
    return ferry::RunWebService(*config);
  }
  if (notifier->parsed()) {
    return ferry::RunNotifierService(*config);
  }
  if (cleaner->parsed()) {
    return ferry::RunCleanerService(*config);
  }
  if (user_cli->parsed()) {
    return user_cli->Run(*config);
  }
  if (task_retry->parsed()) {
    return TaskRetry(*config, task_id);
  }
  if (complete->parsed()) {
    return SeriesComplete(*config, series_uid, "");
  }
  if (route->parsed()) {
    return SeriesComplete(*config, series_uid, route_rule);
  }
  if (targets_test->parsed() || targets_send->parsed()) {
    ferry::InitLogging(log_level.empty() ? "warn" : log_level, "ferry");
    ferry::dicom::ConfigureDcmtkLogging(log_level.empty() ? "error" : log_level);
    int code = targets_test->parsed()
                   ? ferry::RunTargetsTest(*config, target_name, std::cout)
                   : ferry::RunTargetsSend(*config, target_name, send_files, std::cout);
    std::cout.flush();
    return code;
  }
  if (rules_test->parsed()) {
    ferry::InitLogging("warn", "ferry");
    ferry::dicom::ConfigureDcmtkLogging("error");
    int code = ferry::RunRulesTest(*config, test_files, std::cout);
    std::cout.flush();
    return code;
  }
  std::string abs_config = std::filesystem::absolute(config_path).string();
  std::vector<ferry::ServiceSpec> services;
  for (const char* name : ferry::kServiceNames) {
    const auto& chosen = config->supervisor.services;
    if (chosen.empty() || std::find(chosen.begin(), chosen.end(), name) != chosen.end()) {
      services.push_back({name, {"ferry", name, "--config", abs_config, "--log-level", level}});
    }
  }
  return ferry::RunSupervisor(*config, services);
}
