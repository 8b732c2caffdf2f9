#include "config/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ferry {
namespace {

// ordered_json keeps the order of keys as written: rules are evaluated in config order.
using Json = nlohmann::ordered_json;

std::string TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number with a fraction";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Reads the members of one JSON object, remembering which keys it knows, so that Finish() can
// report every unknown key with a suggestion.
class ObjectReader {
 public:
  ObjectReader(const Json* obj, std::string path, std::vector<ConfigError>* errors)
      : obj_(obj), path_(std::move(path)), errors_(errors) {}

  bool Has(const std::string& key) const { return obj_ != nullptr && obj_->contains(key); }

  void String(const std::string& key, std::string* out, bool required = false) {
    const Json* v = Get(key, required);
    if (v == nullptr) {
      return;
    }
    if (!v->is_string()) {
      TypeError(key, *v, "a string");
      return;
    }
    *out = v->get<std::string>();
  }

  void Bool(const std::string& key, bool* out) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if (!v->is_boolean()) {
      TypeError(key, *v, "true or false");
      return;
    }
    *out = v->get<bool>();
  }

  template <typename Int>
  void Integer(const std::string& key, Int* out, int64_t min, int64_t max) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if (!v->is_number_integer()) {
      TypeError(key, *v, "an integer");
      return;
    }
    int64_t value = v->get<int64_t>();
    if (value < min || value > max) {
      Error(key, fmt::format("{} is out of range; use a value from {} to {}", value, min, max));
      return;
    }
    *out = static_cast<Int>(value);
  }

  // A number (fractions allowed) in [min, max]; true when the key was present and valid.
  bool Number(const std::string& key, double* out, double min, double max,
              const char* expected = "a number") {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return false;
    }
    if (!v->is_number()) {
      TypeError(key, *v, expected);
      return false;
    }
    double value = v->get<double>();
    if (value < min || value > max) {
      Error(key, fmt::format("{} is out of range; use a value from {} to {}", value, min, max));
      return false;
    }
    *out = value;
    return true;
  }

  // A TCP port as an integer or, as mercure writes it, a string of digits.
  void Port(const std::string& key, int* out) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    int64_t value = -1;
    if (v->is_number_integer()) {
      value = v->get<int64_t>();
    } else if (v->is_string()) {
      const std::string& text = v->get_ref<const std::string&>();
      if (!text.empty() && text.size() <= 5 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        value = std::stoll(text);
      } else {
        Error(key, fmt::format("\"{}\" is not a port number; use 1 to 65535", text));
        return;
      }
    } else {
      TypeError(key, *v, "a port number (1 to 65535)");
      return;
    }
    if (value < 1 || value > 65535) {
      Error(key, fmt::format("{} is out of range; use a port from 1 to 65535", value));
      return;
    }
    *out = static_cast<int>(value);
  }

  // A secret: the value itself, "env:NAME" (an environment variable) or "file:PATH" (the
  // contents of a file, without a trailing newline).
  void Secret(const std::string& key, std::string* out) {
    std::string raw;
    String(key, &raw);
    if (raw.empty()) {
      return;
    }
    if (raw.starts_with("env:")) {
      const char* value = std::getenv(raw.c_str() + 4);
      if (value == nullptr) {
        Error(key, fmt::format("names the environment variable {}, which is not set; set it in "
                               "ferry's environment or write the value here",
                               raw.substr(4)));
        return;
      }
      *out = value;
      return;
    }
    if (raw.starts_with("file:")) {
      std::ifstream in(raw.substr(5), std::ios::binary);
      if (!in) {
        Error(key, fmt::format("names the file {}, which cannot be read ({}); create it or make "
                               "it readable for ferry",
                               raw.substr(5), std::strerror(errno)));
        return;
      }
      std::stringstream buf;
      buf << in.rdbuf();
      std::string value = buf.str();
      while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
        value.pop_back();
      }
      *out = value;
      return;
    }
    *out = raw;
  }

  // "HH:MM" as minutes after midnight.
  void TimeOfDay(const std::string& key, int* out_min) {
    std::string text;
    String(key, &text);
    if (text.empty()) {
      return;
    }
    int h = -1, m = -1;
    char sep = 0;
    std::istringstream in(text);
    if (text.size() == 5 && (in >> h >> sep >> m) && sep == ':' && h >= 0 && h < 24 && m >= 0 &&
        m < 60) {
      *out_min = h * 60 + m;
      return;
    }
    Error(key, fmt::format("\"{}\" is not a time of day; write it as \"HH:MM\", e.g. \"22:00\"",
                           text));
  }

  // A number of seconds (fractions allowed), stored as milliseconds.
  void Seconds(const std::string& key, int* out_ms, double min, double max) {
    double seconds = 0;
    if (Number(key, &seconds, min, max, "a number of seconds")) {
      *out_ms = static_cast<int>(seconds * 1000.0 + 0.5);
    }
  }

  void StringList(const std::string& key, std::vector<std::string>* out) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if (!v->is_array()) {
      TypeError(key, *v, "an array of strings");
      return;
    }
    out->clear();
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& item = (*v)[i];
      if (!item.is_string()) {
        errors_->push_back({fmt::format("{}.{}[{}]", path_, key, i),
                            "is " + TypeName(item) + "; each entry must be a string"});
        continue;
      }
      out->push_back(item.get<std::string>());
    }
  }

  // mercure allows a single name or a list of names (e.g. "target", "processing_module").
  void StringOrList(const std::string& key, std::vector<std::string>* out) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    out->clear();
    if (v->is_string()) {
      if (!v->get<std::string>().empty()) {
        out->push_back(v->get<std::string>());
      }
      return;
    }
    if (!v->is_array()) {
      TypeError(key, *v, "a string or an array of strings");
      return;
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& item = (*v)[i];
      if (!item.is_string()) {
        errors_->push_back({fmt::format("{}.{}[{}]", path_, key, i),
                            "is " + TypeName(item) + "; each entry must be a string"});
        continue;
      }
      out->push_back(item.get<std::string>());
    }
  }

  // Any JSON value of the given kinds, kept as its serialised text.
  void RawJson(const std::string& key, std::string* out, bool allow_object, bool allow_array) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if ((allow_object && v->is_object()) || (allow_array && v->is_array())) {
      *out = v->dump();
      return;
    }
    TypeError(key, *v, allow_array ? "an object or an array of objects" : "an object");
  }

  // A JSON object written as an object or, as mercure stores some fields, as JSON text ("" is
  // an empty object). Kept as its serialised text.
  void ObjectOrText(const std::string& key, std::string* out) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if (v->is_object()) {
      *out = v->dump();
      return;
    }
    if (v->is_string()) {
      const std::string& text = v->get_ref<const std::string&>();
      if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        *out = "{}";
        return;
      }
      Json parsed = Json::parse(text, nullptr, false);
      if (parsed.is_object()) {
        *out = parsed.dump();
        return;
      }
      Error(key, "is text that is not a JSON object; write an object, e.g. {\"NAME\": \"value\"}");
      return;
    }
    TypeError(key, *v, "an object (or JSON text of one)");
  }

  // Calls `fn(name, reader)` for each member of the object at `key`, in file order.
  template <typename Fn>
  void EachMember(const std::string& key, Fn fn) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    if (!v->is_object()) {
      TypeError(key, *v, "an object with one member per name");
      return;
    }
    for (const auto& [name, member] : v->items()) {
      std::string member_path = path_ + "." + key + "." + name;
      if (!member.is_object()) {
        errors_->push_back({member_path, "is " + TypeName(member) + " but must be an object"});
        continue;
      }
      ObjectReader reader(&member, member_path, errors_);
      fn(name, reader);
      reader.Finish();
    }
  }

  template <typename E>
  void Enum(const std::string& key, E* out, const std::vector<std::pair<std::string, E>>& names) {
    const Json* v = Get(key, false);
    if (v == nullptr) {
      return;
    }
    std::string allowed;
    for (const auto& [name, value] : names) {
      allowed += (allowed.empty() ? "\"" : ", \"") + name + "\"";
    }
    if (v->is_string()) {
      for (const auto& [name, value] : names) {
        if (name == v->get<std::string>()) {
          *out = value;
          return;
        }
      }
      Error(key, fmt::format("\"{}\" is not a valid value; use one of {}", v->get<std::string>(),
                             allowed));
      return;
    }
    TypeError(key, *v, "one of the strings " + allowed);
  }

  // A nested object; absent gives a reader over nothing (all defaults).
  ObjectReader Object(const std::string& key) {
    const Json* v = Get(key, false);
    if (v != nullptr && !v->is_object()) {
      TypeError(key, *v, "an object");
      v = nullptr;
    }
    return ObjectReader(v, path_ + "." + key, errors_);
  }

  std::vector<ConfigError>* errors() { return errors_; }

  void Error(const std::string& key, std::string reason) {
    errors_->push_back({path_ + "." + key, std::move(reason)});
  }

  // Reports every key that was never asked for.
  void Finish() {
    if (obj_ == nullptr) {
      return;
    }
    for (const auto& [key, value] : obj_->items()) {
      if (known_.count(key) != 0) {
        continue;
      }
      std::string best;
      size_t best_distance = 3;
      for (const auto& k : known_) {
        size_t d = EditDistance(key, k);
        if (d < best_distance) {
          best_distance = d;
          best = k;
        }
      }
      std::string reason = "unknown key \"" + key + "\"";
      if (!best.empty()) {
        reason += "; did you mean \"" + best + "\"?";
      } else {
        std::string list;
        for (const auto& k : known_) {
          list += (list.empty() ? "" : ", ") + k;
        }
        reason += "; known keys here: " + list;
      }
      errors_->push_back({path_ + "." + key, reason});
    }
  }

 private:
  const Json* Get(const std::string& key, bool required) {
    known_.insert(key);
    // mercure writes null for optional fields it leaves unset: null means "the default".
    if (obj_ == nullptr || !obj_->contains(key) || (*obj_)[key].is_null()) {
      if (required) {
        errors_->push_back({path_ + "." + key, "is required but missing"});
      }
      return nullptr;
    }
    return &(*obj_)[key];
  }

  void TypeError(const std::string& key, const Json& v, const std::string& expected) {
    Error(key, "is " + TypeName(v) + " but must be " + expected);
  }

  const Json* obj_;
  std::string path_;
  std::vector<ConfigError>* errors_;
  std::set<std::string> known_;
};

bool ValidAeTitle(const std::string& ae) {
  if (ae.empty() || ae.size() > 16) {
    return false;
  }
  bool has_non_space = false;
  for (char c : ae) {
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      return false;
    }
    has_non_space |= c != ' ';
  }
  return has_non_space;
}

bool ValidCidr(const std::string& cidr) {
  auto slash = cidr.find('/');
  std::string addr = cidr.substr(0, slash);
  unsigned char buf[16];
  int max_bits;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    max_bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    max_bits = 128;
  } else {
    return false;
  }
  if (slash == std::string::npos) {
    return true;
  }
  std::string bits = cidr.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), ::isdigit)) {
    return false;
  }
  return std::stoi(bits) <= max_bits;
}

// The nearest existing ancestor of `path` (or `path` itself).
std::filesystem::path ExistingAncestor(std::filesystem::path p) {
  std::error_code ec;
  p = std::filesystem::absolute(p, ec);
  while (!p.empty() && !std::filesystem::exists(p, ec)) {
    if (p == p.parent_path()) {
      break;
    }
    p = p.parent_path();
  }
  return p;
}

void CheckDataFolder(const std::string& folder, std::vector<ConfigError>* errors,
                     const std::string& json_path = "$.data_folder") {
  std::error_code ec;
  if (std::filesystem::exists(folder, ec)) {
    if (!std::filesystem::is_directory(folder, ec)) {
      errors->push_back({json_path, "\"" + folder + "\" exists but is not a folder; point " +
                                        json_path.substr(2) + " at a folder"});
      return;
    }
    if (access(folder.c_str(), R_OK | W_OK | X_OK) != 0) {
      errors->push_back({json_path, "ferry cannot read and write \"" + folder +
                                        "\"; give the user running ferry write permission "
                                        "(e.g. chown) or choose another folder"});
    }
    return;
  }
  auto ancestor = ExistingAncestor(folder);
  if (access(ancestor.c_str(), W_OK | X_OK) != 0) {
    errors->push_back({json_path, "\"" + folder + "\" does not exist and ferry cannot create "
                                      "it: \"" + ancestor.string() +
                                      "\" is not writable; create the folder and give the "
                                      "user running ferry write permission"});
  }
}

void CheckReadableFile(const std::string& json_path, const std::string& file,
                       std::vector<ConfigError>* errors) {
  if (access(file.c_str(), R_OK) != 0) {
    errors->push_back({json_path, "cannot read \"" + file + "\": " + std::strerror(errno) +
                                      "; check the path and its permissions"});
  }
}

void ParseTargets(ObjectReader& top, bool check_filesystem, Config* config) {
  top.EachMember("targets", [&](const std::string& name, ObjectReader& t) {
    TargetOptions o;
    o.name = name;
    std::string type;
    t.String("target_type", &type, /*required=*/true);
    if (type == "dicomtls") {
      o.type = TargetType::kDicom;
      o.tls.enabled = true;
    } else if (type == "dicom") {
      o.type = TargetType::kDicom;
    } else if (type == "dicomweb") {
      o.type = TargetType::kDicomweb;
    } else if (type == "sftp") {
      o.type = TargetType::kSftp;
    } else if (type == "s3") {
      o.type = TargetType::kS3;
    } else if (type == "folder") {
      o.type = TargetType::kFolder;
    } else if (!type.empty()) {
      t.Error("target_type", fmt::format("\"{}\" is not a target type ferry supports; use one of "
                                         "\"dicom\", \"dicomtls\", \"dicomweb\", \"sftp\", "
                                         "\"s3\", \"folder\"",
                                         type));
    }
    t.String("contact", &o.contact);
    t.String("comment", &o.comment);
    t.Enum<std::string>("direction", &o.direction,
                        {{"push", "push"}, {"pull", "pull"}, {"both", "both"}});
    t.Integer("max_parallel", &o.max_parallel, 1, 64);
    t.Integer("timeout", &o.timeout_s, 1, 3600);
    t.Bool("ordered", &o.ordered);
    auto required = [&](const char* key, const std::string& value) {
      if (value.empty()) {
        t.Error(key, fmt::format("is required for a {} target", type));
      }
    };
    switch (o.type) {
      case TargetType::kDicom: {
        t.String("ip", &o.ip);
        o.port = 104;
        t.Port("port", &o.port);
        t.String("aet_target", &o.aet_target);
        t.String("aet_source", &o.aet_source);
        t.Bool("pass_sender_aet", &o.pass_sender_aet);
        t.Bool("pass_receiver_aet", &o.pass_receiver_aet);
        t.Integer("max_pdu", &o.max_pdu, 4096, 131072);
        // mercure's dicomtls fields, and ferry's tls object.
        t.String("tls_key", &o.tls.key_file);
        t.String("tls_cert", &o.tls.certificate_file);
        t.String("ca_cert", &o.tls.ca_file);
        ObjectReader tls = t.Object("tls");
        tls.Bool("enabled", &o.tls.enabled);
        tls.String("key", &o.tls.key_file);
        tls.String("certificate", &o.tls.certificate_file);
        tls.String("ca", &o.tls.ca_file);
        tls.Bool("verify_peer", &o.tls.verify_peer);
        tls.Bool("verify_host", &o.tls.verify_host);
        tls.Finish();
        required("ip", o.ip);
        required("aet_target", o.aet_target);
        for (auto [key, ae] : {std::pair{"aet_target", o.aet_target},
                               std::pair{"aet_source", o.aet_source}}) {
          if (!ae.empty() && !ValidAeTitle(ae)) {
            t.Error(key, fmt::format("\"{}\" is not a valid AE title; use 1 to 16 characters "
                                     "without backslash or control characters",
                                     ae));
          }
        }
        if (check_filesystem && o.tls.enabled) {
          for (const auto& file : {o.tls.key_file, o.tls.certificate_file, o.tls.ca_file}) {
            if (!file.empty()) {
              CheckReadableFile("$.targets." + name + ".tls", file, t.errors());
            }
          }
        }
        break;
      }
      case TargetType::kDicomweb:
        t.String("url", &o.url);
        t.String("qido_url_prefix", &o.qido_url_prefix);
        t.String("wado_url_prefix", &o.wado_url_prefix);
        t.String("stow_url_prefix", &o.stow_url_prefix);
        t.Secret("access_token", &o.access_token);
        t.String("http_user", &o.http_user);
        t.Secret("http_password", &o.http_password);
        t.Integer("batch_size", &o.batch_size, 1, 10000);
        t.String("ca_cert", &o.tls.ca_file);
        t.Bool("verify_tls", &o.tls.verify_peer);
        required("url", o.url);
        if (!o.url.empty() && !o.url.starts_with("http://") && !o.url.starts_with("https://")) {
          t.Error("url", "must start with http:// or https://");
        }
        break;
      case TargetType::kSftp:
        t.String("host", &o.host);
        o.port = 22;
        t.Port("port", &o.port);
        t.String("user", &o.user);
        t.Secret("password", &o.password);
        t.String("key_file", &o.key_file);
        t.String("known_hosts_file", &o.known_hosts_file);
        t.Bool("accept_new_host_key", &o.accept_new_host_key);
        t.String("folder", &o.folder);
        t.String("file_filter", &o.file_filter);
        required("host", o.host);
        required("user", o.user);
        required("folder", o.folder);
        break;
      case TargetType::kS3:
        t.String("region", &o.region);
        t.String("bucket", &o.bucket);
        t.String("prefix", &o.prefix);
        t.Secret("access_key_id", &o.access_key_id);
        t.Secret("secret_access_key", &o.secret_access_key);
        t.String("endpoint_url", &o.endpoint_url);
        t.String("ca_cert", &o.tls.ca_file);
        t.Bool("verify_tls", &o.tls.verify_peer);
        required("bucket", o.bucket);
        required("region", o.region);
        required("access_key_id", o.access_key_id);
        required("secret_access_key", o.secret_access_key);
        break;
      case TargetType::kFolder:
        t.String("folder", &o.folder);
        t.String("file_filter", &o.file_filter);
        required("folder", o.folder);
        // Whether the folder is usable is checked by TargetFolderWarnings, not here: a share
        // that is unmounted for a while must not stop every service from starting.
        break;
    }
    config->targets.push_back(std::move(o));
  });

  top.EachMember("target_groups", [&](const std::string& name, ObjectReader& g) {
    TargetGroupOptions o;
    o.name = name;
    g.Enum<GroupPolicy>("policy", &o.policy,
                        {{"failover", GroupPolicy::kFailover},
                         {"round_robin", GroupPolicy::kRoundRobin},
                         {"least_loaded", GroupPolicy::kLeastLoaded}});
    g.StringList("targets", &o.targets);
    if (o.targets.empty()) {
      g.Error("targets", "must name at least one target");
    }
    for (size_t i = 0; i < o.targets.size(); ++i) {
      if (FindTarget(*config, o.targets[i]) == nullptr) {
        g.Error(fmt::format("targets[{}]", i),
                fmt::format("\"{}\" is not a target; define it under $.targets (a group cannot "
                            "contain a group)",
                            o.targets[i]));
      }
    }
    if (FindTarget(*config, name) != nullptr) {
      g.Error("policy", fmt::format("the group name \"{}\" is also a target's name; rename one "
                                    "of them",
                                    name));
    }
    config->target_groups.push_back(std::move(o));
  });
}

void ParseRetry(ObjectReader& parent, RetryOptions* retry_options) {
  ObjectReader retry = parent.Object("retry");
  retry.Seconds("initial_delay", &retry_options->initial_delay_ms, 0, 86400);
  retry.Number("multiplier", &retry_options->multiplier, 1.0, 100.0);
  retry.Seconds("max_delay", &retry_options->max_delay_ms, 0, 7 * 86400);
  retry.Integer("max_attempts", &retry_options->max_attempts, 1, 1000);
  retry.Finish();
}

void ParseDispatcher(ObjectReader& top, Config* config) {
  DispatcherOptions& d = config->dispatcher;
  ObjectReader r = top.Object("dispatcher");
  r.Integer("workers", &d.workers, 1, 256);
  r.TimeOfDay("offpeak_start", &d.offpeak_start_min);
  r.TimeOfDay("offpeak_end", &d.offpeak_end_min);
  ParseRetry(r, &d.retry);
  r.Finish();
}

bool IsSafeName(const std::string& name) {
  return !name.empty() && name.size() <= 128 && name.front() != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
         });
}

std::vector<std::string> DockerArgumentProblems(const Json& args, bool allow_unsafe) {
  std::vector<std::string> problems;
  for (const auto& [key, value] : args.items()) {
    bool listed = std::find(std::begin(kMercureDockerArguments), std::end(kMercureDockerArguments),
                            key) != std::end(kMercureDockerArguments);
    if (listed) {
      continue;
    }
    if (!allow_unsafe) {
      problems.push_back(fmt::format(
          "\"{}\" is not among the arguments a module may set (mercure's allow-list: mem_limit, "
          "nano_cpus, cpu_quota, shm_size, pids_limit, runtime, ...; see docs/modules.md); set "
          "processor.allow_unsafe_docker_arguments to pass others",
          key));
    } else if (key.empty() || !std::isupper(static_cast<unsigned char>(key[0]))) {
      problems.push_back(fmt::format(
          "\"{}\" is not on the allow-list; other arguments are passed as Docker Engine API "
          "HostConfig fields and must be written as such (e.g. \"Devices\", \"CapAdd\")",
          key));
    }
  }
  return problems;
}

void ParseProcessor(ObjectReader& top, Config* config) {
  ProcessorOptions& p = config->processor;
  ObjectReader r = top.Object("processor");
  r.Integer("workers", &p.workers, 1, 256);
  r.String("docker_socket", &p.docker_socket);
  r.Bool("allow_root_modules", &p.allow_root_modules);
  r.Bool("allow_unsafe_docker_arguments", &p.allow_unsafe_docker_arguments);
  r.String("volumes_folder", &p.volumes_folder);
  r.String("persistence_folder", &p.persistence_folder);
  r.String("gpu_runtime", &p.gpu_runtime);
  r.Integer("stop_grace", &p.stop_grace_s, 0, 3600);
  ParseRetry(r, &p.retry);
  if (!p.volumes_folder.empty() && p.volumes_folder.front() != '/') {
    r.Error("volumes_folder", "must be an absolute path");
  }
  r.Finish();
}

void ParseModules(ObjectReader& top, Config* config) {
  const ProcessorOptions& p = config->processor;
  top.EachMember("modules", [&](const std::string& name, ObjectReader& r) {
    ModuleOptions m;
    m.name = name;
    if (!IsSafeName(name)) {
      // It names log files, containers and the persistence folder.
      top.Error("modules." + name, "the module name may hold only letters, digits, . _ and - "
                                   "(and not start with .); it names files and containers");
    }
    r.String("docker_tag", &m.docker_tag);
    r.ObjectOrText("additional_volumes", &m.additional_volumes_json);
    r.ObjectOrText("environment", &m.environment_json);
    r.ObjectOrText("docker_arguments", &m.docker_arguments_json);
    r.RawJson("settings", &m.settings_json, true, false);
    r.String("contact", &m.contact);
    r.String("comment", &m.comment);
    r.String("constraints", &m.constraints);
    r.String("resources", &m.resources);
    r.Bool("requires_root", &m.requires_root);
    r.Bool("requires_persistence", &m.requires_persistence);
    r.String("persistence_folder_name", &m.persistence_folder_name);
    r.Bool("network_enabled", &m.network_enabled);
    r.Enum<ModuleRuntimeKind>("runtime", &m.runtime,
                              {{"docker", ModuleRuntimeKind::kDocker},
                               {"local", ModuleRuntimeKind::kLocal}});
    r.StringOrList("command", &m.command);
    r.Integer("timeout", &m.timeout_s, 1, 7 * 86400);
    r.Integer("max_parallel", &m.max_parallel, 0, 256);
    r.Bool("update_image", &m.update_image);
    if (m.runtime == ModuleRuntimeKind::kDocker && m.docker_tag.empty()) {
      r.Error("docker_tag", "is empty; name the module's container image (e.g. "
                            "\"mercureimaging/mercure-testmodule:latest\"), or set \"runtime\": "
                            "\"local\" with a \"command\"");
    }
    if (m.runtime == ModuleRuntimeKind::kLocal && m.command.empty()) {
      r.Error("command", "is empty but runtime is \"local\"; give the program to run and its "
                         "arguments, e.g. [\"/usr/bin/python3\", \"/opt/module.py\"]");
    }
    if (!m.persistence_folder_name.empty() && !IsSafeName(m.persistence_folder_name)) {
      r.Error("persistence_folder_name", "must be a plain folder name (letters, digits, . _ -)");
    }
    Json env = Json::parse(m.environment_json);
    for (const auto& [k, v] : env.items()) {
      if (!v.is_string() && !v.is_number() && !v.is_boolean()) {
        r.Error("environment", "\"" + k + "\" must be a string, number or boolean");
      }
    }
    for (const auto& problem : DockerArgumentProblems(Json::parse(m.docker_arguments_json),
                                                      p.allow_unsafe_docker_arguments)) {
      r.Error("docker_arguments", problem);
    }
    Json volumes = Json::parse(m.additional_volumes_json);
    for (const auto& [host, spec] : volumes.items()) {
      if (!spec.is_object() || !spec.contains("bind") || !spec["bind"].is_string()) {
        r.Error("additional_volumes", "\"" + host + "\" needs {\"bind\": \"/path/in/container\", "
                                      "\"mode\": \"ro\" or \"rw\"}");
        continue;
      }
      std::string normal = std::filesystem::path(host).lexically_normal().string();
      std::string root = p.volumes_folder;
      while (root.size() > 1 && root.back() == '/') {
        root.pop_back();
      }
      if (root.empty()) {
        r.Error("additional_volumes", "mounts \"" + host + "\", but processor.volumes_folder is "
                                      "not set; set it to the folder under which module volumes "
                                      "may lie");
      } else if (host.empty() || host.front() != '/' ||
                 (normal != root && !normal.starts_with(root + "/"))) {
        r.Error("additional_volumes", "\"" + host + "\" is not below processor.volumes_folder (" +
                                          root + "); move the data there or change that folder");
      }
    }
    config->modules.push_back(std::move(m));
  });
}

void ParseServices(ObjectReader& top, bool check_filesystem, Config* config,
                   std::vector<ConfigError>* errors) {
  BookkeeperOptions& b = config->bookkeeper;
  ObjectReader book = top.Object("bookkeeper");
  book.Secret("database", &b.database);
  if (!b.database.empty() && !b.database.starts_with("sqlite:") &&
      !b.database.starts_with("postgresql://") && !b.database.starts_with("postgres://")) {
    book.Error("database", "is neither \"sqlite:PATH\" nor a PostgreSQL URI "
                           "(\"postgresql://user:password@host:5432/ferry\"); leave it empty "
                           "for the SQLite file in the data folder");
  }
  book.Integer("batch_size", &b.batch_size, 1, 100000);
  book.Integer("poll_interval_ms", &b.poll_interval_ms, 10, 60000);
  book.Integer("reconnect_max", &b.reconnect_max_s, 1, 3600);
  book.Finish();

  WebOptions& w = config->web;
  ObjectReader web = top.Object("web");
  web.String("host", &w.host);
  web.Port("port", &w.port);
  web.Integer("session_timeout", &w.session_timeout_s, 1, 30 * 86400);
  web.Integer("threads", &w.threads, 1, 256);
  web.String("static_folder", &w.static_folder);
  ObjectReader wtls = web.Object("tls");
  wtls.Bool("enabled", &w.tls.enabled);
  wtls.String("certificate", &w.tls.certificate_file);
  wtls.String("key", &w.tls.key_file);
  if (w.tls.enabled) {
    if (w.tls.certificate_file.empty()) {
      wtls.Error("certificate", "is required when TLS is enabled; give the PEM certificate file");
    }
    if (w.tls.key_file.empty()) {
      wtls.Error("key", "is required when TLS is enabled; give the PEM private key file");
    }
    if (check_filesystem) {
      for (auto [key, file] : {std::pair{"certificate", w.tls.certificate_file},
                               std::pair{"key", w.tls.key_file}}) {
        if (!file.empty()) {
          CheckReadableFile(std::string("$.web.tls.") + key, file, errors);
        }
      }
    }
  }
  wtls.Finish();
  web.Finish();

  NotificationOptions& n = config->notifications;
  ObjectReader notify = top.Object("notifications");
  ObjectReader smtp = notify.Object("smtp");
  smtp.String("host", &n.smtp.host);
  smtp.Port("port", &n.smtp.port);
  smtp.Bool("starttls", &n.smtp.starttls);
  smtp.String("user", &n.smtp.user);
  smtp.Secret("password", &n.smtp.password);
  smtp.String("from", &n.smtp.from);
  smtp.Bool("verify_tls", &n.smtp.verify_tls);
  smtp.String("ca_cert", &n.smtp.ca_file);
  smtp.Finish();
  notify.Integer("timeout", &n.timeout_s, 1, 3600);
  notify.Bool("phi_notifications", &n.phi_notifications);
  ParseRetry(notify, &n.retry);
  notify.Finish();

  CleanerOptions& c = config->cleaner;
  ObjectReader clean = top.Object("cleaner");
  clean.Integer("retention", &c.retention_s, 0, int64_t{3650} * 86400);
  clean.Integer("error_retention", &c.error_retention_s, 0, int64_t{3650} * 86400);
  clean.TimeOfDay("offpeak_start", &c.offpeak_start_min);
  clean.TimeOfDay("offpeak_end", &c.offpeak_end_min);
  clean.Integer("emergency_threshold", &c.emergency_threshold_percent, 1, 100);
  clean.Integer("low_water", &c.low_water_percent, 1, 100);
  clean.Integer("interval", &c.interval_s, 1, 86400);
  if (c.low_water_percent >= c.emergency_threshold_percent) {
    clean.Error("low_water", fmt::format("({}%) must be below emergency_threshold ({}%), or "
                                         "emergency deletion would never stop",
                                         c.low_water_percent, c.emergency_threshold_percent));
  }
  clean.Finish();
}

// Every target a rule names must exist, as a target or a group.
void CheckRuleTargets(const Config& config, std::vector<ConfigError>* errors) {
  for (const auto& rule : config.rules) {
    for (size_t i = 0; i < rule.targets.size(); ++i) {
      const std::string& t = rule.targets[i];
      if (!IsDestination(config, t)) {
        errors->push_back(
            {rule.targets.size() == 1 ? "$.rules." + rule.name + ".target"
                                      : fmt::format("$.rules.{}.target[{}]", rule.name, i),
             fmt::format("\"{}\" is neither a target nor a target group; define it under "
                         "$.targets or $.target_groups, or correct the name",
                         t)});
      }
    }
  }
}

void CheckRuleModules(const Config& config, std::vector<ConfigError>* errors) {
  for (const auto& rule : config.rules) {
    for (size_t i = 0; i < rule.processing_modules.size(); ++i) {
      const std::string& m = rule.processing_modules[i];
      if (FindModule(config, m) == nullptr) {
        errors->push_back(
            {rule.processing_modules.size() == 1
                 ? "$.rules." + rule.name + ".processing_module"
                 : fmt::format("$.rules.{}.processing_module[{}]", rule.name, i),
             fmt::format("\"{}\" is not a module; define it under $.modules, or correct the name",
                         m)});
      }
    }
    Json settings = Json::parse(rule.processing_settings_json, nullptr, false);
    if (settings.is_array() && settings.size() > std::max<size_t>(rule.processing_modules.size(), 1)) {
      errors->push_back({"$.rules." + rule.name + ".processing_settings",
                         fmt::format("has {} entries for {} module(s); give one object per module "
                                     "of the chain",
                                     settings.size(), rule.processing_modules.size())});
    }
    for (const auto& t : rule.dynamic_routing_allowed_targets) {
      if (!IsDestination(config, t)) {
        errors->push_back({"$.rules." + rule.name + ".dynamic_routing_allowed_targets",
                           fmt::format("\"{}\" is neither a target nor a target group", t)});
      }
    }
    const std::string& alt = rule.conditional_alternate_target;
    if (!alt.empty() && !IsDestination(config, alt)) {
      errors->push_back({"$.rules." + rule.name + ".conditional_alternate_target",
                         fmt::format("\"{}\" is neither a target nor a target group", alt)});
    }
  }
}

}  // namespace

const ModuleOptions* FindModule(const Config& config, const std::string& name) {
  for (const auto& m : config.modules) {
    if (m.name == name) {
      return &m;
    }
  }
  return nullptr;
}

const TargetOptions* FindTarget(const Config& config, const std::string& name) {
  for (const auto& t : config.targets) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

bool IsDestination(const Config& config, const std::string& name) {
  return FindTarget(config, name) != nullptr || FindTargetGroup(config, name) != nullptr;
}

const TargetGroupOptions* FindTargetGroup(const Config& config, const std::string& name) {
  for (const auto& g : config.target_groups) {
    if (g.name == name) {
      return &g;
    }
  }
  return nullptr;
}

std::string_view TargetTypeName(TargetType type) {
  switch (type) {
    case TargetType::kDicom: return "dicom";
    case TargetType::kDicomweb: return "dicomweb";
    case TargetType::kSftp: return "sftp";
    case TargetType::kS3: return "s3";
    case TargetType::kFolder: return "folder";
  }
  return "folder";
}

std::vector<ConfigError> TargetFolderWarnings(const Config& config) {
  std::vector<ConfigError> warnings;
  for (const auto& t : config.targets) {
    if (t.type == TargetType::kFolder && !t.folder.empty()) {
      CheckDataFolder(t.folder, &warnings, "$.targets." + t.name + ".folder");
    }
  }
  return warnings;
}

std::string DatabaseUri(const Config& config) {
  if (!config.bookkeeper.database.empty()) {
    return config.bookkeeper.database;
  }
  return "sqlite:" + config.data_folder + "/ferry.db";
}

Config ParseConfig(const std::string& json_text, std::vector<ConfigError>* errors,
                   bool check_filesystem) {
  Config config;
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    // Parse errors, numbers out of range (1e999999), invalid UTF-8. The library's message may
    // quote the offending bytes: keep it printable, so that it can be shown and sent as JSON.
    std::string reason = e.what();
    for (char& c : reason) {
      if (static_cast<unsigned char>(c) >= 0x80 || static_cast<unsigned char>(c) < 0x20) {
        c = '?';
      }
    }
    errors->push_back({"$", "is not valid JSON: " + reason});
    return config;
  }
  if (!root.is_object()) {
    errors->push_back({"$", "is " + TypeName(root) + " but must be an object"});
    return config;
  }

  ObjectReader top(&root, "$", errors);
  top.String("data_folder", &config.data_folder, /*required=*/true);
  if (top.Has("data_folder") && config.data_folder.empty()) {
    top.Error("data_folder", "is empty; set it to the folder where ferry keeps its spool");
  }
  top.String("log_level", &config.log_level);
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (kLevels.count(config.log_level) == 0) {
    top.Error("log_level", "\"" + config.log_level +
                               "\" is not a log level; use trace, debug, info, warn, error or off");
  }

  ReceiverOptions& r = config.receiver;
  ObjectReader rec = top.Object("receiver");
  rec.Integer("port", &r.port, 1, 65535);
  rec.String("ae_title", &r.ae_title);
  if (!ValidAeTitle(r.ae_title)) {
    rec.Error("ae_title", "\"" + r.ae_title +
                              "\" is not a valid AE title; use 1 to 16 printable ASCII characters "
                              "without backslash");
  }
  rec.Bool("check_called_ae_title", &r.check_called_ae_title);
  rec.StringList("allowed_calling_ae_titles", &r.allowed_calling_ae_titles);
  for (size_t i = 0; i < r.allowed_calling_ae_titles.size(); ++i) {
    if (!ValidAeTitle(r.allowed_calling_ae_titles[i])) {
      errors->push_back({fmt::format("$.receiver.allowed_calling_ae_titles[{}]", i),
                         "\"" + r.allowed_calling_ae_titles[i] +
                             "\" is not a valid AE title (1 to 16 printable ASCII characters)"});
    }
  }
  rec.StringList("allowed_networks", &r.allowed_networks);
  for (size_t i = 0; i < r.allowed_networks.size(); ++i) {
    if (!ValidCidr(r.allowed_networks[i])) {
      errors->push_back({fmt::format("$.receiver.allowed_networks[{}]", i),
                         "\"" + r.allowed_networks[i] +
                             "\" is not an IP network; write it like \"192.168.1.0/24\", "
                             "\"10.1.2.3\" or \"fd00::/8\""});
    }
  }
  rec.Bool("accept_any_sop_class", &r.accept_any_sop_class);
  rec.Integer("max_associations", &r.max_associations, 1, 1024);
  rec.Integer("max_associations_per_peer", &r.max_associations_per_peer, 1, 1024);
  rec.Integer("max_pdu", &r.max_pdu, 4096, 131072);
  rec.Integer("network_timeout", &r.network_timeout_s, 1, 3600);
  rec.Integer("dimse_timeout", &r.dimse_timeout_s, 1, 3600);
  rec.Enum<DurabilityMode>("durability", &r.durability,
                           {{"fsync", DurabilityMode::kFsync}, {"os", DurabilityMode::kOs}});
  rec.Integer("intake_log_mb", &r.intake_log_mb, 0, 65536);
  if (r.intake_log_mb != 0 && r.intake_log_mb < 8) {
    errors->push_back({"$.receiver.intake_log_mb",
                       fmt::format("{} MiB is too small for the intake log; use at least 8 "
                                   "(default 512), or 0 to turn it off",
                                   r.intake_log_mb)});
  }
  rec.Integer("disk_reserve_mb", &r.disk_reserve_mb, 0, int64_t{1} << 40);
  rec.Integer("shutdown_grace", &r.shutdown_grace_s, 0, 3600);
  ObjectReader tls = rec.Object("tls");
  tls.Bool("enabled", &r.tls.enabled);
  tls.String("key", &r.tls.key_file);
  tls.String("certificate", &r.tls.certificate_file);
  tls.String("ca", &r.tls.ca_file);
  tls.Bool("require_peer_certificate", &r.tls.require_peer_certificate);
  if (r.tls.enabled) {
    if (r.tls.key_file.empty()) {
      tls.Error("key", "is required when TLS is enabled; give the PEM private key file");
    }
    if (r.tls.certificate_file.empty()) {
      tls.Error("certificate", "is required when TLS is enabled; give the PEM certificate file");
    }
    if (r.tls.require_peer_certificate && r.tls.ca_file.empty()) {
      tls.Error("ca", "is required when require_peer_certificate is true; give the PEM file of "
                      "the CA that signs the senders' certificates, or set "
                      "require_peer_certificate to false");
    }
    if (check_filesystem) {
      for (auto [key, file] : {std::pair{"key", r.tls.key_file},
                               std::pair{"certificate", r.tls.certificate_file},
                               std::pair{"ca", r.tls.ca_file}}) {
        if (!file.empty()) {
          CheckReadableFile(std::string("$.receiver.tls.") + key, file, errors);
        }
      }
    }
  }
  tls.Finish();
  rec.Finish();

  RouterOptions& ro = config.router;
  ObjectReader router = top.Object("router");
  router.Seconds("series_complete_grace", &ro.series_complete_grace_ms, 0, 3600);
  router.Integer("series_complete_timeout", &ro.series_complete_timeout_s, 1, 86400);
  router.Integer("study_complete_timeout", &ro.study_complete_timeout_s, 1, 7 * 86400);
  router.Integer("study_force_complete_timeout", &ro.study_force_complete_timeout_s, 1,
                 30 * 86400);
  router.Finish();

  top.EachMember("rules", [&](const std::string& name, ObjectReader& r) {
    RuleOptions rule;
    rule.name = name;
    r.String("rule", &rule.rule);
    r.StringOrList("target", &rule.targets);
    r.Bool("disabled", &rule.disabled);
    r.Bool("fallback", &rule.fallback);
    r.String("contact", &rule.contact);
    r.String("comment", &rule.comment);
    r.String("tags", &rule.tags);
    r.Enum<RuleAction>("action", &rule.action,
                       {{"route", RuleAction::kRoute},
                        {"both", RuleAction::kBoth},
                        {"process", RuleAction::kProcess},
                        {"discard", RuleAction::kDiscard},
                        {"notification", RuleAction::kNotification}});
    r.Enum<RuleTrigger>("action_trigger", &rule.action_trigger,
                        {{"series", RuleTrigger::kSeries}, {"study", RuleTrigger::kStudy}});
    r.Enum<StudyTriggerCondition>(
        "study_trigger_condition", &rule.study_trigger_condition,
        {{"timeout", StudyTriggerCondition::kTimeout},
         {"received_series", StudyTriggerCondition::kReceivedSeries}});
    r.Enum<StudyForceAction>("study_force_completion_action",
                             &rule.study_force_completion_action,
                             {{"discard", StudyForceAction::kDiscard},
                              {"proceed", StudyForceAction::kProceed},
                              {"ignore", StudyForceAction::kIgnore}});
    r.String("study_trigger_series", &rule.study_trigger_series);
    r.Enum<Priority>("priority", &rule.priority,
                     {{"normal", Priority::kNormal},
                      {"urgent", Priority::kUrgent},
                      {"offpeak", Priority::kOffpeak}});
    r.StringOrList("processing_module", &rule.processing_modules);
    r.RawJson("processing_settings", &rule.processing_settings_json, true, true);
    r.Bool("processing_retain_images", &rule.processing_retain_images);
    r.String("notification_email", &rule.notification_email);
    r.String("notification_webhook", &rule.notification_webhook);
    r.String("notification_payload", &rule.notification_payload);
    r.String("notification_payload_body", &rule.notification_payload_body);
    r.String("notification_email_body", &rule.notification_email_body);
    r.String("notification_email_type", &rule.notification_email_type);
    r.Bool("notification_trigger_reception", &rule.notification_trigger_reception);
    r.Bool("notification_trigger_completion", &rule.notification_trigger_completion);
    r.Bool("notification_trigger_completion_on_request",
           &rule.notification_trigger_completion_on_request);
    r.Bool("notification_trigger_error", &rule.notification_trigger_error);
    r.Seconds("series_complete_grace", &rule.series_complete_grace_ms, 0, 3600);
    r.Integer("series_complete_timeout", &rule.series_complete_timeout_s, 0, 86400);
    r.Bool("streaming", &rule.streaming);
    r.Bool("dynamic_routing", &rule.dynamic_routing);
    r.StringOrList("dynamic_routing_allowed_targets", &rule.dynamic_routing_allowed_targets);
    r.String("conditional_alternate_target", &rule.conditional_alternate_target);
    bool routes = rule.action == RuleAction::kRoute || rule.action == RuleAction::kBoth;
    bool processes = rule.action == RuleAction::kProcess || rule.action == RuleAction::kBoth;
    if (routes && rule.targets.empty() && !rule.disabled) {
      r.Error("target", "is empty but action \"" +
                            std::string(rule.action == RuleAction::kRoute ? "route" : "both") +
                            "\" needs at least one target; name one, or change the action");
    }
    if (processes && rule.processing_modules.empty() && !rule.disabled) {
      r.Error("processing_module", "is empty but the action processes images; name a module, "
                                   "or change the action");
    }
    config.rules.push_back(std::move(rule));
  });

  ParseTargets(top, check_filesystem, &config);
  ParseDispatcher(top, &config);
  ParseProcessor(top, &config);
  ParseModules(top, &config);
  ParseServices(top, check_filesystem, &config, errors);
  CheckRuleTargets(config, errors);
  CheckRuleModules(config, errors);

  SupervisorOptions& s = config.supervisor;
  ObjectReader sup = top.Object("supervisor");
  sup.StringList("services", &s.services);
  for (size_t i = 0; i < s.services.size(); ++i) {
    const std::string& name = s.services[i];
    if (std::find(std::begin(kServiceNames), std::end(kServiceNames), name) ==
        std::end(kServiceNames)) {
      errors->push_back({fmt::format("$.supervisor.services[{}]", i),
                         fmt::format("\"{}\" is not a service; use receiver, router, processor, "
                                     "dispatcher, bookkeeper, web, notifier or cleaner",
                                     name)});
    }
  }
  sup.Integer("restart_backoff_initial", &s.restart_backoff_initial_s, 1, 3600);
  sup.Integer("restart_backoff_max", &s.restart_backoff_max_s, 1, 86400);
  sup.Integer("shutdown_timeout", &s.shutdown_timeout_s, 1, 3600);
  if (s.restart_backoff_max_s < s.restart_backoff_initial_s) {
    sup.Error("restart_backoff_max", "must be at least restart_backoff_initial");
  }
  sup.Finish();

  top.Finish();

  if (check_filesystem && !config.data_folder.empty()) {
    CheckDataFolder(config.data_folder, errors);
  }
  return config;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Status::FromErrno(errno, "cannot open config file " + path);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::vector<ConfigError> errors;
  Config config = ParseConfig(buf.str(), &errors, /*check_filesystem=*/true);
  if (!errors.empty()) {
    std::string msg = fmt::format("{} has {} error{}:", path, errors.size(),
                                  errors.size() == 1 ? "" : "s");
    for (const auto& e : errors) {
      msg += "\n  " + e.path + ": " + e.reason;
    }
    return Status::InvalidArgument(msg);
  }
  config.path = path;
  return config;
}

std::string Summarize(const Config& c) {
  return fmt::format(
      "{}: valid; data folder {}, receiver AE {} on port {} (durability {}, TLS {}, up to {} "
      "associations), {} rule{}, {} target{}",
      c.path.empty() ? "config" : c.path, c.data_folder, c.receiver.ae_title, c.receiver.port,
      c.receiver.durability == DurabilityMode::kFsync ? "fsync" : "os",
      c.receiver.tls.enabled ? "on" : "off", c.receiver.max_associations, c.rules.size(),
      c.rules.size() == 1 ? "" : "s", c.targets.size(), c.targets.size() == 1 ? "" : "s");
}

std::string DefaultConfigJson(const std::string& data_folder) {
  std::string delivered = data_folder + "/delivered";
  Json j = {
      {"data_folder", data_folder},
      {"log_level", "info"},
      {"receiver",
       {{"port", 11112}, {"ae_title", "FERRY"}, {"durability", "fsync"}, {"disk_reserve_mb", 1024}}},
      {"targets",
       {{"delivered", {{"target_type", "folder"}, {"folder", delivered}}}}},
      {"rules",
       {{"everything",
         {{"rule", "True"},
          {"target", "delivered"},
          {"comment", "Copies every series to the delivered folder; replace with your own rules"}}}}},
  };
  return j.dump(2) + "\n";
}

}  // namespace ferry
