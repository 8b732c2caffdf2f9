#include "config/config.h"

#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace ferry {
namespace {

std::vector<ConfigError> Errors(const std::string& text, bool fs = false) {
  std::vector<ConfigError> errors;
  ParseConfig(text, &errors, fs);
  return errors;
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/tmp/x"})", &errors, false);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(c.data_folder, "/tmp/x");
  EXPECT_EQ(c.receiver.port, 11112);
  EXPECT_EQ(c.receiver.ae_title, "FERRY");
  EXPECT_EQ(c.receiver.max_associations, 32);
  EXPECT_EQ(c.receiver.durability, DurabilityMode::kFsync);
  EXPECT_FALSE(c.receiver.tls.enabled);
}

TEST(ConfigTest, FullReceiverSection) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d", "log_level": "debug",
    "receiver": {"port": 104, "ae_title": "ROUTER", "check_called_ae_title": true,
      "allowed_calling_ae_titles": ["CT1", "MR2"], "allowed_networks": ["10.0.0.0/8", "::1"],
      "accept_any_sop_class": true, "max_associations": 4, "max_pdu": 65536,
      "network_timeout": 5, "dimse_timeout": 7, "durability": "os", "disk_reserve_mb": 0,
      "shutdown_grace": 3}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << " " << errors[0].reason;
  EXPECT_EQ(c.receiver.port, 104);
  EXPECT_EQ(c.receiver.allowed_calling_ae_titles.size(), 2u);
  EXPECT_EQ(c.receiver.allowed_networks[1], "::1");
  EXPECT_EQ(c.receiver.durability, DurabilityMode::kOs);
  EXPECT_EQ(c.receiver.dimse_timeout_s, 7);
  EXPECT_EQ(c.receiver.shutdown_grace_s, 3);
}

struct BadCase {
  const char* json;
  const char* path;
  const char* reason_part;
};

class ConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrorTest, ReportsPathAndReason) {
  auto errors = Errors(GetParam().json);
  ASSERT_FALSE(errors.empty()) << GetParam().json;
  bool found = false;
  for (const auto& e : errors) {
    if (e.path == GetParam().path && e.reason.find(GetParam().reason_part) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << "got " << errors[0].path << ": " << errors[0].reason;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrorTest,
    ::testing::Values(
        BadCase{"{", "$", "not valid JSON"},
        BadCase{"[]", "$", "must be an object"},
        BadCase{"{}", "$.data_folder", "required"},
        BadCase{R"({"data_folder": 3})", "$.data_folder", "must be a string"},
        BadCase{R"({"data_folder": ""})", "$.data_folder", "empty"},
        BadCase{R"({"data_folder": "/d", "recever": {}})", "$.recever", "did you mean \"receiver\""},
        BadCase{R"({"data_folder": "/d", "receiver": {"prot": 1}})", "$.receiver.prot",
                "did you mean \"port\""},
        BadCase{R"({"data_folder": "/d", "receiver": {"port": 0}})", "$.receiver.port",
                "out of range"},
        BadCase{R"({"data_folder": "/d", "receiver": {"port": 70000}})", "$.receiver.port",
                "from 1 to 65535"},
        BadCase{R"({"data_folder": "/d", "receiver": {"port": "11112"}})", "$.receiver.port",
                "must be an integer"},
        BadCase{R"({"data_folder": "/d", "receiver": {"port": 1.5}})", "$.receiver.port",
                "must be an integer"},
        BadCase{R"({"data_folder": "/d", "receiver": {"ae_title": ""}})", "$.receiver.ae_title",
                "not a valid AE title"},
        BadCase{R"({"data_folder": "/d", "receiver": {"ae_title": "ABCDEFGHIJKLMNOPQ"}})",
                "$.receiver.ae_title", "1 to 16"},
        BadCase{R"({"data_folder": "/d", "receiver": {"durability": "always"}})",
                "$.receiver.durability", "\"fsync\", \"os\""},
        BadCase{R"({"data_folder": "/d", "receiver": {"allowed_networks": ["10.0.0.0/33"]}})",
                "$.receiver.allowed_networks[0]", "not an IP network"},
        BadCase{R"({"data_folder": "/d", "receiver": {"allowed_networks": "10.0.0.0/8"}})",
                "$.receiver.allowed_networks", "array of strings"},
        BadCase{R"({"data_folder": "/d", "receiver": {"allowed_calling_ae_titles": [1]}})",
                "$.receiver.allowed_calling_ae_titles[0]", "must be a string"},
        BadCase{R"({"data_folder": "/d", "receiver": {"max_pdu": 100}})", "$.receiver.max_pdu",
                "out of range"},
        BadCase{R"({"data_folder": "/d", "receiver": {"tls": {"enabled": true}}})",
                "$.receiver.tls.key", "required when TLS is enabled"},
        BadCase{R"({"data_folder": "/d", "receiver": {"tls": {"enabled": true, "key": "k",
                    "certificate": "c"}}})",
                "$.receiver.tls.ca", "require_peer_certificate"},
        BadCase{R"({"data_folder": "/d", "receiver": {"tls": {"enabeld": true}}})",
                "$.receiver.tls.enabeld", "did you mean \"enabled\""},
        BadCase{R"({"data_folder": "/d", "log_level": "loud"})", "$.log_level", "not a log level"},
        BadCase{R"({"data_folder": "/d", "supervisor": {"restart_backoff_initial": 10,
                    "restart_backoff_max": 5}})",
                "$.supervisor.restart_backoff_max", "at least"}));

// The rules section of a mercure.json, as mercure writes it.
constexpr const char* kMercureRules = R"({"data_folder": "/d", "rules": {
  "zz_ct_to_pacs": {"rule": "@Modality@ == 'CT'", "target": "pacs", "disabled": false,
    "fallback": false, "contact": "", "comment": "", "tags": "", "action": "route",
    "action_trigger": "series", "study_trigger_condition": "timeout",
    "study_force_completion_action": "discard", "study_trigger_series": "",
    "priority": "urgent", "processing_module": "", "processing_settings": {},
    "processing_retain_images": false, "notification_email": "", "notification_webhook": "",
    "notification_payload": "", "notification_payload_body": "", "notification_email_body": "",
    "notification_email_type": "plain", "notification_trigger_reception": true,
    "notification_trigger_completion": true, "notification_trigger_completion_on_request": false,
    "notification_trigger_error": true},
  "aa_anonymize": {"rule": "True", "action": "both", "target": ["research", "archive"],
    "processing_module": ["anon", "ai"], "processing_settings": [{"a": 1}, {}],
    "action_trigger": "study", "study_trigger_condition": "received_series",
    "study_trigger_series": "'T1' and 'T2'"},
  "mm_rest": {"rule": "True", "action": "discard", "fallback": true}
}, "targets": {
  "pacs": {"target_type": "dicom", "ip": "10.0.0.5", "port": "104", "aet_target": "PACS",
    "aet_source": "MERCURE", "pass_sender_aet": false, "pass_receiver_aet": false,
    "contact": "", "comment": "", "direction": "push"},
  "research": {"target_type": "dicomweb", "url": "https://pacs.example/dicom-web",
    "qido_url_prefix": null, "wado_url_prefix": null, "stow_url_prefix": null,
    "access_token": "secret", "http_user": null, "http_password": null, "contact": "",
    "comment": ""},
  "archive": {"target_type": "s3", "region": "eu-central-1", "bucket": "b", "prefix": "p",
    "access_key_id": "AK", "secret_access_key": "SK", "contact": "", "comment": ""}
}, "modules": {
  "anon": {"docker_tag": "mercureimaging/mercure-anonymizer:latest", "additional_volumes": "",
    "environment": "", "docker_arguments": "", "settings": {}, "contact": "", "comment": "",
    "constraints": "", "resources": "", "requires_root": false, "requires_persistence": false,
    "persistence_folder_name": "", "network_enabled": true},
  "ai": {"docker_tag": "example/ai:1", "environment": "{\"MODEL\": \"v2\"}",
    "docker_arguments": "{\"mem_limit\": \"4g\", \"nano_cpus\": 2000000000}",
    "settings": {"threshold": 0.5}, "requires_root": true}
}})";

TEST(ConfigTest, MercureRulesSectionLoadsInFileOrder) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(kMercureRules, &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
  ASSERT_EQ(c.rules.size(), 3u);
  EXPECT_EQ(c.rules[0].name, "zz_ct_to_pacs");
  EXPECT_EQ(c.rules[1].name, "aa_anonymize");
  EXPECT_EQ(c.rules[2].name, "mm_rest");
  EXPECT_EQ(c.rules[0].targets, std::vector<std::string>{"pacs"});
  EXPECT_EQ(c.rules[0].priority, Priority::kUrgent);
  EXPECT_TRUE(c.rules[0].processing_modules.empty());
  EXPECT_EQ(c.rules[1].action, RuleAction::kBoth);
  EXPECT_EQ(c.rules[1].targets.size(), 2u);
  EXPECT_EQ(c.rules[1].processing_modules.size(), 2u);
  EXPECT_EQ(c.rules[1].processing_settings_json, R"([{"a":1},{}])");
  EXPECT_EQ(c.rules[1].action_trigger, RuleTrigger::kStudy);
  EXPECT_EQ(c.rules[1].study_trigger_condition, StudyTriggerCondition::kReceivedSeries);
  EXPECT_TRUE(c.rules[2].fallback);
  EXPECT_EQ(c.rules[2].action, RuleAction::kDiscard);
  EXPECT_EQ(c.router.series_complete_grace_ms, 3000);
  EXPECT_EQ(c.router.series_complete_timeout_s, 60);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ConfigErrorTest,
    ::testing::Values(
        BadCase{R"({"data_folder": "/d", "rules": []})", "$.rules", "one member per name"},
        BadCase{R"({"data_folder": "/d", "rules": {"r": "True"}})", "$.rules.r",
                "must be an object"},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"rule": "True", "acton": "route"}}})",
                "$.rules.r.acton", "did you mean \"action\""},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"action": "forward"}}})",
                "$.rules.r.action", "\"route\", \"both\""},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"action": "route"}}})",
                "$.rules.r.target", "needs at least one target"},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"action": "process"}}})",
                "$.rules.r.processing_module", "name a module"},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"target": 3}}})", "$.rules.r.target",
                "a string or an array of strings"},
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"priority": "high"}}})",
                "$.rules.r.priority", "\"urgent\""},
        BadCase{R"({"data_folder": "/d", "router": {"series_complete_timeout": 0}})",
                "$.router.series_complete_timeout", "out of range"}));

TEST(ConfigTest, TextThatIsNotJsonIsOneErrorWithAPrintableReason) {
  for (std::string text : {std::string("{\"data_folder\": \"/d\", \"x\": 1e999999}"),
                           std::string("{\"data_folder\": \"/d\xff\xfe\"}"),
                           std::string("{\"data_folder\": ")}) {
    std::vector<ConfigError> errors;
    ParseConfig(text, &errors, false);
    ASSERT_EQ(errors.size(), 1u) << text;
    EXPECT_EQ(errors[0].path, "$");
    EXPECT_NE(errors[0].reason.find("is not valid JSON"), std::string::npos);
    for (unsigned char c : errors[0].reason) {
      EXPECT_TRUE(c >= 0x20 && c < 0x80) << errors[0].reason;
    }
    // What the API sends back must serialise.
    EXPECT_NO_THROW(nlohmann::json({{"reason", errors[0].reason}}).dump());
  }
}

TEST(ConfigTest, MercureModulesSectionLoads) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(kMercureRules, &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
  ASSERT_EQ(c.modules.size(), 2u);
  const ModuleOptions* ai = FindModule(c, "ai");
  ASSERT_NE(ai, nullptr);
  EXPECT_EQ(ai->environment_json, R"({"MODEL":"v2"})");
  EXPECT_EQ(ai->docker_arguments_json, R"({"mem_limit":"4g","nano_cpus":2000000000})");
  EXPECT_TRUE(ai->requires_root);
  EXPECT_EQ(ai->runtime, ModuleRuntimeKind::kDocker);
  EXPECT_EQ(FindModule(c, "anon")->environment_json, "{}");
  EXPECT_TRUE(FindModule(c, "anon")->network_enabled);
  EXPECT_EQ(c.processor.workers, 2);
}

INSTANTIATE_TEST_SUITE_P(
    Modules, ConfigErrorTest,
    ::testing::Values(
        BadCase{R"({"data_folder": "/d", "rules": {"r": {"action": "process",
                    "processing_module": "nope"}}})",
                "$.rules.r.processing_module", "not a module"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"settings": {}}}})",
                "$.modules.m.docker_tag", "is empty"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"runtime": "local"}}})",
                "$.modules.m.command", "is empty"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"docker_tag": "x",
                    "docker_arguments": {"privileged": true}}}})",
                "$.modules.m.docker_arguments", "allow-list"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"docker_tag": "x",
                    "environment": "not json"}}})",
                "$.modules.m.environment", "not a JSON object"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"docker_tag": "x",
                    "additional_volumes": {"/etc": {"bind": "/etc2"}}}}})",
                "$.modules.m.additional_volumes", "processor.volumes_folder is not set"},
        BadCase{R"({"data_folder": "/d", "processor": {"volumes_folder": "/srv/v"},
                    "modules": {"m": {"docker_tag": "x",
                    "additional_volumes": {"/srv/v/../../etc": {"bind": "/x"}}}}})",
                "$.modules.m.additional_volumes", "not below"},
        BadCase{R"({"data_folder": "/d", "modules": {"m": {"docker_tag": "x", "timout": 3}}})",
                "$.modules.m.timout", "did you mean \"timeout\""},
        BadCase{R"({"data_folder": "/d", "processor": {"workers": 0}})",
                "$.processor.workers", "out of range"},
        BadCase{R"({"data_folder": "/d", "modules": {"../../etc": {"docker_tag": "x"}}})",
                "$.modules.../../etc", "may hold only letters"}));

TEST(ConfigTest, MercureTargetsSectionLoads) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(kMercureRules, &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
  ASSERT_EQ(c.targets.size(), 3u);
  const TargetOptions* pacs = FindTarget(c, "pacs");
  ASSERT_NE(pacs, nullptr);
  EXPECT_EQ(pacs->type, TargetType::kDicom);
  EXPECT_EQ(pacs->port, 104);
  EXPECT_EQ(pacs->aet_target, "PACS");
  EXPECT_EQ(pacs->aet_source, "MERCURE");
  EXPECT_EQ(FindTarget(c, "research")->access_token, "secret");
  EXPECT_EQ(FindTarget(c, "archive")->region, "eu-central-1");
}

TEST(ConfigTest, RuleNamingAnUndefinedTargetIsAnError) {
  std::vector<ConfigError> errors;
  ParseConfig(R"({"data_folder": "/d", "rules": {"r": {"rule": "True", "target": "nowhere"}}})",
              &errors, false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "$.rules.r.target");
  EXPECT_NE(errors[0].reason.find("neither a target nor a target group"), std::string::npos);
}

TEST(ConfigTest, TargetGroupsAndDispatcher) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d",
    "targets": {"a": {"target_type": "folder", "folder": "/x"},
                "b": {"target_type": "dicomtls", "ip": "h", "port": 11112, "aet_target": "B",
                      "tls_key": "k.pem", "tls_cert": "c.pem", "ca_cert": "ca.pem"}},
    "target_groups": {"g": {"policy": "round_robin", "targets": ["a", "b"]}},
    "rules": {"r": {"rule": "True", "target": ["g", "a"]}},
    "dispatcher": {"workers": 8, "offpeak_start": "20:30", "offpeak_end": "05:00",
                   "retry": {"initial_delay": 0.5, "multiplier": 3, "max_delay": 60,
                             "max_attempts": 4}}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
  ASSERT_NE(FindTargetGroup(c, "g"), nullptr);
  EXPECT_EQ(FindTargetGroup(c, "g")->policy, GroupPolicy::kRoundRobin);
  EXPECT_TRUE(FindTarget(c, "b")->tls.enabled);
  EXPECT_EQ(FindTarget(c, "b")->tls.ca_file, "ca.pem");
  EXPECT_EQ(c.dispatcher.workers, 8);
  EXPECT_EQ(c.dispatcher.offpeak_start_min, 20 * 60 + 30);
  EXPECT_EQ(c.dispatcher.offpeak_end_min, 5 * 60);
  EXPECT_EQ(c.dispatcher.retry.initial_delay_ms, 500);
  EXPECT_EQ(c.dispatcher.retry.multiplier, 3.0);
  EXPECT_EQ(c.dispatcher.retry.max_delay_ms, 60000);
  EXPECT_EQ(c.dispatcher.retry.max_attempts, 4);
}

TEST(ConfigTest, ServiceSectionsDefaultsAndValues) {
  std::vector<ConfigError> errors;
  Config d = ParseConfig(R"({"data_folder": "/d"})", &errors, false);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(DatabaseUri(d), "sqlite:/d/ferry.db");
  EXPECT_EQ(d.web.port, 8080);
  EXPECT_EQ(d.cleaner.retention_s, 3 * 86400);
  EXPECT_EQ(d.cleaner.offpeak_start_min, 22 * 60);
  EXPECT_EQ(d.notifications.smtp.port, 25);
  EXPECT_FALSE(d.notifications.phi_notifications);

  setenv("FERRY_TEST_DB", "postgresql://ferry:pw@db/ferry", 1);
  Config c = ParseConfig(R"({"data_folder": "/d",
    "bookkeeper": {"database": "env:FERRY_TEST_DB", "batch_size": 10},
    "web": {"host": "127.0.0.1", "port": "8443", "session_timeout": 600},
    "notifications": {"phi_notifications": true, "timeout": 5,
      "smtp": {"host": "mail", "port": 587, "starttls": true, "user": "u", "password": "p",
               "from": "ferry@hospital.org"},
      "retry": {"initial_delay": 1, "max_attempts": 3}},
    "cleaner": {"retention": 60, "error_retention": 120, "offpeak_start": "00:00",
                "offpeak_end": "23:59", "emergency_threshold": 95, "low_water": 85}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << " " << errors[0].reason;
  EXPECT_EQ(DatabaseUri(c), "postgresql://ferry:pw@db/ferry");
  EXPECT_EQ(c.bookkeeper.batch_size, 10);
  EXPECT_EQ(c.web.port, 8443);
  EXPECT_TRUE(c.notifications.smtp.starttls);
  EXPECT_EQ(c.notifications.retry.initial_delay_ms, 1000);
  EXPECT_EQ(c.notifications.retry.max_attempts, 3);
  EXPECT_EQ(c.cleaner.retention_s, 60);
  EXPECT_EQ(c.cleaner.offpeak_end_min, 23 * 60 + 59);
  EXPECT_EQ(c.cleaner.low_water_percent, 85);
}

TEST(ConfigTest, ServiceSectionErrorsNameThePath) {
  auto errors = Errors(R"({"data_folder": "/d",
    "bookkeeper": {"database": "mysql://x"},
    "web": {"tls": {"enabled": true}, "prot": 1},
    "cleaner": {"emergency_threshold": 80, "low_water": 90},
    "supervisor": {"services": ["receiver", "reciever"]}})");
  std::set<std::string> paths;
  for (const auto& e : errors) {
    paths.insert(e.path);
  }
  EXPECT_TRUE(paths.count("$.bookkeeper.database")) << errors.size();
  EXPECT_TRUE(paths.count("$.web.tls.certificate"));
  EXPECT_TRUE(paths.count("$.web.tls.key"));
  EXPECT_TRUE(paths.count("$.web.prot"));
  EXPECT_TRUE(paths.count("$.cleaner.low_water"));
  EXPECT_TRUE(paths.count("$.supervisor.services[1]"));
}

TEST(ConfigTest, UnusableTargetFolderIsAWarningNotAnError) {
  std::string file = ::testing::TempDir() + "/ferry-config-test-not-a-folder";
  std::ofstream(file) << "x";
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": ")" + ::testing::TempDir() + R"(/ferry-cfg-data",
    "targets": {"share": {"target_type": "folder", "folder": ")" + file + R"("}}})",
                         &errors, /*check_filesystem=*/true);
  EXPECT_TRUE(errors.empty()) << errors[0].path << " " << errors[0].reason;
  auto warnings = TargetFolderWarnings(c);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].path, "$.targets.share.folder");
  EXPECT_NE(warnings[0].reason.find("not a folder"), std::string::npos);
  std::remove(file.c_str());
}

TEST(ConfigTest, TargetErrorsNameThePath) {
  std::vector<ConfigError> errors;
  ParseConfig(R"({"data_folder": "/d", "targets": {
      "d": {"target_type": "dicom", "port": "http", "aet_target": "WAY_TOO_LONG_AE_TITLE"},
      "x": {"target_type": "ftp"},
      "w": {"target_type": "dicomweb", "url": "pacs/dicom-web"}},
    "target_groups": {"g": {"targets": ["d", "missing"]}},
    "dispatcher": {"offpeak_start": "25:00"}})",
              &errors, false);
  std::set<std::string> paths;
  for (const auto& e : errors) {
    paths.insert(e.path);
  }
  EXPECT_TRUE(paths.count("$.targets.d.ip"));
  EXPECT_TRUE(paths.count("$.targets.d.port"));
  EXPECT_TRUE(paths.count("$.targets.d.aet_target"));
  EXPECT_TRUE(paths.count("$.targets.x.target_type"));
  EXPECT_TRUE(paths.count("$.targets.w.url"));
  EXPECT_TRUE(paths.count("$.target_groups.g.targets[1]"));
  EXPECT_TRUE(paths.count("$.dispatcher.offpeak_start"));
}

TEST(ConfigTest, SecretsFromEnvironmentAndFile) {
  std::string file = ::testing::TempDir() + "/ferry-secret";
  {
    std::ofstream(file) << "from-file\n";
  }
  setenv("FERRY_TEST_TOKEN", "from-env", 1);
  std::vector<ConfigError> errors;
  Config c = ParseConfig(R"({"data_folder": "/d", "targets": {
      "w": {"target_type": "dicomweb", "url": "http://h", "access_token": "env:FERRY_TEST_TOKEN",
            "http_password": "file:)" + file + R"("}}})",
                         &errors, false);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].reason;
  EXPECT_EQ(FindTarget(c, "w")->access_token, "from-env");
  EXPECT_EQ(FindTarget(c, "w")->http_password, "from-file");
  unsetenv("FERRY_TEST_TOKEN");
  ParseConfig(R"({"data_folder": "/d", "targets": {
      "w": {"target_type": "dicomweb", "url": "http://h", "access_token": "env:FERRY_TEST_TOKEN"}}})",
              &errors, false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "$.targets.w.access_token");
  EXPECT_NE(errors[0].reason.find("FERRY_TEST_TOKEN"), std::string::npos);
}

TEST(ConfigTest, ReportsEveryErrorAtOnce) {
  auto errors = Errors(R"({"data_folder": "/d", "receiver": {"port": -1, "ae_title": 5,
      "bogus": true}})");
  EXPECT_EQ(errors.size(), 3u);
}

TEST(ConfigTest, UnknownKeyWithoutCloseMatchListsKnownKeys) {
  auto errors = Errors(R"({"data_folder": "/d", "receiver": {"zzzzzzzzzz": 1}})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].reason.find("known keys here"), std::string::npos);
  EXPECT_NE(errors[0].reason.find("ae_title"), std::string::npos);
}

TEST(ConfigTest, DataFolderPermissions) {
  if (geteuid() == 0) {
    // root can write everywhere; check the "not a folder" path instead.
    char file_template[] = "/tmp/ferry-config-XXXXXX";
    int fd = mkstemp(file_template);
    ASSERT_GE(fd, 0);
    close(fd);
    auto errors = Errors(std::string(R"({"data_folder": ")") + file_template + "\"}", true);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].reason.find("not a folder"), std::string::npos);
    unlink(file_template);
    return;
  }
  auto errors = Errors(R"({"data_folder": "/proc/ferry-cannot-create"})", true);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "$.data_folder");
}

TEST(ConfigTest, MissingTlsFileIsReported) {
  auto errors = Errors(R"({"data_folder": "/tmp", "receiver": {"tls": {"enabled": true,
      "key": "/nonexistent/key.pem", "certificate": "/nonexistent/cert.pem",
      "require_peer_certificate": false}}})",
                       true);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].path, "$.receiver.tls.key");
  EXPECT_NE(errors[0].reason.find("cannot read"), std::string::npos);
}

TEST(ConfigTest, DefaultConfigIsValid) {
  std::vector<ConfigError> errors;
  Config c = ParseConfig(DefaultConfigJson("/var/lib/ferry"), &errors, false);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(c.data_folder, "/var/lib/ferry");
}

TEST(ConfigTest, LoadConfigMissingFile) {
  auto c = LoadConfig("/nonexistent/ferry.json");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace ferry
