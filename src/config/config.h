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
  int max_pdu = 131072;
  int network_timeout_s = 30;
  int dimse_timeout_s = 60;
  DurabilityMode durability = DurabilityMode::kFsync;
  uint64_t disk_reserve_mb = 1024;
  int shutdown_grace_s = 10;
  TlsOptions tls;
};

struct SupervisorOptions {
  int restart_backoff_initial_s = 1;
  int restart_backoff_max_s = 30;
  int shutdown_timeout_s = 30;
};

struct Config {
  std::string path;  // where it was loaded from
  std::string data_folder;
  std::string log_level = "info";
  ReceiverOptions receiver;
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

// The config `make run` writes on first start, with `data_folder` filled in.
std::string DefaultConfigJson(const std::string& data_folder);

}  // namespace ferry
