// Config: ferry.json, parsed and validated once into typed option structs.
//
// The composition root (src/app) loads the file with LoadConfig and hands each component only
// its own options struct; no component reads the JSON. Validation is strict and complete: every
// problem is reported with its JSON path and a reason that says how to fix it (unknown keys —
// with a suggestion for likely typos —, wrong types, out-of-range values, folders ferry cannot
// write), so that `ferry config check` shows all of them at once.
// Thread-safety: a Config is an immutable value after loading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace ferry {

enum class DurabilityMode { kFsync, kOs };

struct TlsOptions {
  bool enabled = false;
  std::string key_file;          // PEM private key of the receiver
  std::string certificate_file;  // PEM certificate of the receiver
  std::string ca_file;           // PEM CA certificate(s) trusted for peer certificates
  bool require_peer_certificate = true;  // reject peers without a certificate signed by ca_file
};

struct ReceiverOptions {
  int port = 11112;
  std::string ae_title = "FERRY";
  bool check_called_ae_title = false;
  std::vector<std::string> allowed_calling_ae_titles;  // empty: any
  std::vector<std::string> allowed_networks;           // CIDR, e.g. "10.0.0.0/8"; empty: any
  bool accept_any_sop_class = false;
  int max_associations = 32;
  int max_associations_per_peer = 16;  // connections one sender address may hold at once
  int max_pdu = 131072;
  int network_timeout_s = 30;
  int dimse_timeout_s = 60;
  DurabilityMode durability = DurabilityMode::kFsync;
  // With durability fsync: MiB of disk for the intake log (spool/intake_log.h); 0 turns it off
  // (each instance file and its folder entry are then flushed before the response).
  uint64_t intake_log_mb = 512;
  uint64_t disk_reserve_mb = 1024;
  int shutdown_grace_s = 10;
  TlsOptions tls;
};

// Series and study completion (see src/router/completion.h). Rules may override the series
// values.
struct RouterOptions {
  int series_complete_grace_ms = 3000;
  int series_complete_timeout_s = 60;
  int study_complete_timeout_s = 900;
  int study_force_complete_timeout_s = 5400;
};

enum class RuleAction { kRoute, kBoth, kProcess, kDiscard, kNotification };
enum class RuleTrigger { kSeries, kStudy };
enum class StudyTriggerCondition { kTimeout, kReceivedSeries };
enum class StudyForceAction { kDiscard, kProceed, kIgnore };
enum class Priority { kNormal, kUrgent, kOffpeak };

// One entry of `rules`, with mercure's field names and defaults, so that the rules section of a
// mercure.json loads unchanged. The expression is checked by the rule compiler (src/rules), not
// here.
struct RuleOptions {
  std::string name;
  std::string rule = "False";
  std::vector<std::string> targets;  // mercure "target": a name or a list of names
  bool disabled = false;
  bool fallback = false;
  std::string contact;
  std::string comment;
  std::string tags;
  RuleAction action = RuleAction::kRoute;
  RuleTrigger action_trigger = RuleTrigger::kSeries;
  StudyTriggerCondition study_trigger_condition = StudyTriggerCondition::kTimeout;
  StudyForceAction study_force_completion_action = StudyForceAction::kDiscard;
  std::string study_trigger_series;
  Priority priority = Priority::kNormal;
  std::vector<std::string> processing_modules;  // mercure "processing_module"
  std::string processing_settings_json = "{}";  // object, or list of objects (one per module)
  bool processing_retain_images = false;
  std::string notification_email;
  std::string notification_webhook;
  std::string notification_payload;
  std::string notification_payload_body;
  std::string notification_email_body;
  std::string notification_email_type = "plain";
  bool notification_trigger_reception = true;
  bool notification_trigger_completion = true;
  bool notification_trigger_completion_on_request = false;
  bool notification_trigger_error = true;
  // ferry additions: per-rule completion overrides (0: use the router's value).
  int series_complete_grace_ms = 0;
  int series_complete_timeout_s = 0;
  // ferry addition: a series-level route rule sends each instance as soon as it is routed
  // (streaming dispatch); false waits for the complete series, as mercure does.
  bool streaming = true;
  // mercure's dynamic routing: a processing module's result.json may choose the targets
  // (`__mercure_routing`), only among `dynamic_routing_allowed_targets` (empty: any target).
  bool dynamic_routing = false;
  std::vector<std::string> dynamic_routing_allowed_targets;
  std::string conditional_alternate_target;  // used when the module asks for the alternate
};

// How a processing module runs: a container image through the Docker Engine API (Docker or
// Podman), or a program on the host (ferry addition, for sites without a container engine).
enum class ModuleRuntimeKind { kDocker, kLocal };

// One entry of `modules`, with mercure's field names (its Module model) so that the modules
// section of a mercure.json loads unchanged; `environment`, `additional_volumes` and
// `docker_arguments` are JSON objects, written as objects or, as mercure stores them, as JSON
// text. The rest are ferry's additions.
struct ModuleOptions {
  std::string name;
  std::string docker_tag;
  std::string additional_volumes_json = "{}";  // docker-py form: {host path: {bind, mode}}
  std::string environment_json = "{}";         // {NAME: value}
  std::string docker_arguments_json = "{}";    // docker-py keyword arguments (allow-listed)
  std::string settings_json = "{}";            // default settings; a rule's override them
  std::string contact;
  std::string comment;
  std::string constraints;  // mercure: Nomad constraints (not used by ferry)
  std::string resources;    // mercure: Nomad resources (not used by ferry)
  bool requires_root = false;
  bool requires_persistence = false;
  std::string persistence_folder_name;  // empty: the module's name
  bool network_enabled = false;  // mercure's default is true; ferry's is no network
  // ferry additions
  ModuleRuntimeKind runtime = ModuleRuntimeKind::kDocker;
  std::vector<std::string> command;  // local: the program and its arguments; docker: the CMD
  int timeout_s = 3600;              // the container is stopped and the task fails after this
  int max_parallel = 0;              // jobs of this module at once; 0: processor.workers
  bool update_image = false;         // pull a newer image (at most once an hour) before a job
};


// One entry of `targets`, with mercure's field names so that the targets section of a
// mercure.json loads unchanged (mercure's "dicomtls" type is "dicom" with TLS enabled). Secrets
// (passwords, tokens, keys) may be written as "env:NAME" or "file:PATH"; they are resolved when
// the config is loaded, so the values here are the secrets themselves.
enum class TargetType { kDicom, kDicomweb, kSftp, kS3, kFolder };

struct ClientTlsOptions {
  bool enabled = false;
  std::string key_file;          // PEM private key of ferry (optional: client certificate)
  std::string certificate_file;  // PEM certificate of ferry
  std::string ca_file;           // PEM CA certificate(s) trusted for the peer; empty: system CAs
  bool verify_peer = true;       // check the peer's certificate
  bool verify_host = true;       // dicom TLS: the certificate must name the target's ip
};

struct TargetOptions {
  std::string name;
  TargetType type = TargetType::kFolder;
  std::string contact;
  std::string comment;
  std::string direction = "push";
  // dicom
  std::string ip;                 // host name or address; "sender": where the series came from
  int port = 0;                   // dicom: 104 if absent; sftp: 22 if absent
  std::string aet_target;         // called AE title
  std::string aet_source = "FERRY";  // calling AE title
  bool pass_sender_aet = false;   // call with the sender's AE title instead of aet_source
  bool pass_receiver_aet = false;  // call with the AE title the series was sent to
  int max_pdu = 131072;
  ClientTlsOptions tls;           // dicom TLS; dicomweb/s3 use ca_file and verify_peer
  // dicomweb
  std::string url;
  std::string qido_url_prefix;
  std::string wado_url_prefix;
  std::string stow_url_prefix;
  std::string access_token;
  std::string http_user;
  std::string http_password;
  int batch_size = 50;            // dicomweb: instances per STOW request
  // sftp (host, port, user, password, folder) and folder (folder)
  std::string host;
  std::string user;
  std::string password;
  std::string key_file;           // sftp: private key file (instead of or besides password)
  std::string known_hosts_file;   // sftp: empty: ~/.ssh/known_hosts
  bool accept_new_host_key = false;  // sftp: trust and record an unknown host key
  std::string folder;
  std::string file_filter;        // folder/sftp: comma-separated glob patterns; empty: all
  // s3
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;
  std::string access_key_id;
  std::string secret_access_key;
  std::string endpoint_url;       // empty: https://s3.<region>.amazonaws.com
  // ferry: dispatch behaviour
  int max_parallel = 2;           // tasks sent to this target at the same time
  int timeout_s = 60;             // connect / response timeout of one request
  bool ordered = false;           // series of one study arrive in the order they were received
};

enum class GroupPolicy { kFailover, kRoundRobin, kLeastLoaded };

// A named group of targets; rules name it like a target.
struct TargetGroupOptions {
  std::string name;
  GroupPolicy policy = GroupPolicy::kFailover;
  std::vector<std::string> targets;
};

struct RetryOptions {
  int initial_delay_ms = 10000;
  double multiplier = 2.0;
  int max_delay_ms = 3600 * 1000;
  int max_attempts = 10;
};

struct DispatcherOptions {
  int workers = 4;                 // tasks sent at the same time, over all targets
  RetryOptions retry;
  int offpeak_start_min = 22 * 60;  // minutes after local midnight
  int offpeak_end_min = 6 * 60;     // may be before start: the window wraps midnight
};

// The docker_arguments a module may set without processor.allow_unsafe_docker_arguments
// (mercure's allow-list, docker-py's names).
inline constexpr const char* kMercureDockerArguments[] = {
    "mem_limit",        "memswap_limit",     "cpu_period",        "cpu_quota",
    "cpuset_cpus",      "shm_size",          "runtime",           "labels",
    "cpu_shares",       "cpuset_mems",       "nano_cpus",         "blkio_weight",
    "device_read_bps",  "device_write_bps",  "device_read_iops",  "device_write_iops",
    "pids_limit",       "environment",       "env",               "read_only",
    "stop_signal",      "stop_timeout",      "healthcheck"};

// `ferry processor` (src/processor).
struct ProcessorOptions {
  int workers = 2;                 // jobs at the same time
  std::string docker_socket;       // "": $DOCKER_HOST (unix://...), else /var/run/docker.sock
  bool allow_root_modules = true;  // modules with requires_root may run (as root, no caps)
  bool allow_unsafe_docker_arguments = false;  // docker_arguments beyond mercure's allow-list
  std::string volumes_folder;      // additional_volumes must lie below it; "": none allowed
  std::string persistence_folder;  // "": <data_folder>/persistence
  std::string gpu_runtime;         // e.g. "nvidia": the container runtime for every module
  int stop_grace_s = 10;           // SIGTERM to SIGKILL when a job times out or ferry stops
  RetryOptions retry;              // when the container engine is unreachable
};

// The bookkeeper loads the event journals into a database (src/bookkeeper).
struct BookkeeperOptions {
  // "" : SQLite file <data_folder>/ferry.db; "sqlite:PATH"; or a PostgreSQL connection URI
  // "postgresql://user:password@host:port/dbname" (also "postgres://").
  std::string database;
  int batch_size = 1000;          // journal lines per database transaction
  int poll_interval_ms = 500;     // how often journals are looked at when nothing woke it
  int reconnect_max_s = 30;       // longest wait between attempts while the database is down
};

struct WebTlsOptions {
  bool enabled = false;
  std::string certificate_file;   // PEM certificate (chain) of the web server
  std::string key_file;           // PEM private key
};

// `ferry web`: the REST API, /metrics and /healthz (src/web).
struct WebOptions {
  std::string host = "0.0.0.0";
  int port = 8080;
  int session_timeout_s = 8 * 3600;  // a session ends this long after its last request
  int threads = 8;
  WebTlsOptions tls;
  std::string static_folder;  // the built web UI served at /; empty: the source tree's web/dist
};

// SMTP server used for notification_email (src/notify).
struct SmtpOptions {
  std::string host = "localhost";
  int port = 25;
  bool starttls = false;          // require STARTTLS before authenticating
  std::string user;               // empty: no authentication
  std::string password;
  std::string from = "ferry@localhost";
  bool verify_tls = true;
  std::string ca_file;
};

struct NotificationOptions {
  SmtpOptions smtp;
  bool phi_notifications = false;  // patient fields may appear in notifications (mercure's name)
  int timeout_s = 10;             // per webhook call or SMTP session
  RetryOptions retry;             // how failed deliveries are retried
};

// The cleaner deletes finished tasks (src/cleaner).
struct CleanerOptions {
  int64_t retention_s = 3 * 86400;        // success/ and discard/
  int64_t error_retention_s = 14 * 86400;  // error/
  int offpeak_start_min = 22 * 60;
  int offpeak_end_min = 6 * 60;
  int emergency_threshold_percent = 90;   // disk usage that starts emergency deletion
  int low_water_percent = 80;             // emergency deletion stops below this
  int interval_s = 60;                    // how often it looks
};

// The services `ferry serve` runs, in start order.
inline constexpr const char* kServiceNames[] = {"receiver", "router",   "processor",
                                               "dispatcher", "bookkeeper", "web",
                                               "notifier", "cleaner"};

struct SupervisorOptions {
  // Which services `ferry serve` runs; empty: all of kServiceNames. A site that runs, say, the
  // web service elsewhere leaves it out.
  std::vector<std::string> services;
  int restart_backoff_initial_s = 1;
  int restart_backoff_max_s = 30;
  int shutdown_timeout_s = 30;
};

struct Config {
  std::string path;  // where it was loaded from
  std::string data_folder;
  std::string log_level = "info";
  ReceiverOptions receiver;
  RouterOptions router;
  std::vector<RuleOptions> rules;  // in the order of the file: rules are evaluated in order
  std::vector<TargetOptions> targets;
  std::vector<TargetGroupOptions> target_groups;
  DispatcherOptions dispatcher;
  std::vector<ModuleOptions> modules;
  ProcessorOptions processor;
  BookkeeperOptions bookkeeper;
  WebOptions web;
  NotificationOptions notifications;
  CleanerOptions cleaner;
  SupervisorOptions supervisor;
};

struct ConfigError {
  std::string path;    // JSON path, e.g. "$.receiver.port"
  std::string reason;  // what is wrong and how to fix it
};

// Parses and validates JSON text. `errors` receives every problem; the Config is meaningful only
// when `errors` is empty. `check_filesystem` also verifies that folders and files named in the
// config exist (or can be created) with the permissions ferry needs.
Config ParseConfig(const std::string& json_text, std::vector<ConfigError>* errors,
                   bool check_filesystem);

// Reads and validates the file at `path`. InvalidArgument listing every error (one per line,
// "<json path>: <reason>") when it is not valid; NotFound when the file is missing.
Result<Config> LoadConfig(const std::string& path);

// One line for operators, e.g. "ferry.json: data folder /var/lib/ferry, receiver FERRY on port
// 11112 (durability fsync, TLS off)".
std::string Summarize(const Config& config);

const TargetOptions* FindTarget(const Config& config, const std::string& name);
const ModuleOptions* FindModule(const Config& config, const std::string& name);
const TargetGroupOptions* FindTargetGroup(const Config& config, const std::string& name);
// True when `name` is a target or a target group: something a rule can send to.
bool IsDestination(const Config& config, const std::string& name);
std::string_view TargetTypeName(TargetType type);

// Problems with the folders of folder targets (missing and not creatable, not a folder, not
// writable). Not config errors: a share may be unmounted for a while, and the dispatcher treats
// such a target as failing (and retries) while every other service keeps running. `ferry config
// check` prints them as warnings; the dispatcher logs them at start.
std::vector<ConfigError> TargetFolderWarnings(const Config& config);

// The database the bookkeeper writes and the web service reads: bookkeeper.database, or
// "sqlite:<data_folder>/ferry.db" when that is empty.
std::string DatabaseUri(const Config& config);

// The config `make run` writes on first start, with `data_folder` filled in.
std::string DefaultConfigJson(const std::string& data_folder);

}  // namespace ferry
