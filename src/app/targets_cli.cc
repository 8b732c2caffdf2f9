#include "app/targets_cli.h"

#include <ostream>

#include <fmt/format.h>

#include "targets/target.h"

namespace ferry {
namespace {

// A URL as operators may see it: "https://user:secret@host/..." loses its "user:secret@".
std::string WithoutCredentials(const std::string& url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@', scheme == std::string::npos ? 0 : scheme + 3);
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme == std::string::npos || at == std::string::npos ||
      (slash != std::string::npos && at > slash)) {
    return url;
  }
  return url.substr(0, scheme + 3) + url.substr(at + 1);
}

std::string Describe(const TargetOptions& t) {
  switch (t.type) {
    case TargetType::kDicom:
      return fmt::format("dicom{} {}@{}:{}", t.tls.enabled ? " (TLS)" : "", t.aet_target, t.ip,
                         t.port);
    case TargetType::kDicomweb: return "dicomweb " + WithoutCredentials(t.url);
    case TargetType::kSftp: return fmt::format("sftp {}@{}:{}{}", t.user, t.host, t.port, t.folder);
    case TargetType::kS3:
      return fmt::format("s3 bucket {} ({})", t.bucket,
                         t.endpoint_url.empty() ? "region " + t.region : t.endpoint_url);
    case TargetType::kFolder: return "folder " + t.folder;
  }
  return "";
}

Result<std::unique_ptr<Target>> Find(const Config& config, const std::string& name) {
  const TargetOptions* options = FindTarget(config, name);
  if (options == nullptr) {
    std::string known;
    for (const auto& t : config.targets) {
      known += (known.empty() ? "" : ", ") + t.name;
    }
    return Status::NotFound(fmt::format("no target is named \"{}\" in {}; {}", name, config.path,
                                        known.empty() ? "the config defines none"
                                                      : "targets: " + known));
  }
  return MakeTarget(*options);
}

}  // namespace

int RunTargetsTest(const Config& config, const std::string& name, std::ostream& out) {
  auto target = Find(config, name);
  if (!target) {
    out << "FAIL " << name << ": " << target.error().message() << "\n";
    return 1;
  }
  Status s = (*target)->Check();
  if (!s.ok()) {
    out << "FAIL " << name << " (" << Describe((*target)->options()) << "): " << s.message()
        << "\n";
    return 1;
  }
  out << "PASS " << name << " (" << Describe((*target)->options()) << ")\n";
  return 0;
}

int RunTargetsSend(const Config& config, const std::string& name,
                   const std::vector<std::string>& files, std::ostream& out) {
  auto target = Find(config, name);
  if (!target) {
    out << "FAIL " << name << ": " << target.error().message() << "\n";
    return 1;
  }
  std::vector<OutgoingInstance> instances;
  int failed = 0;
  for (const auto& f : files) {
    auto i = DescribeInstance(f);
    if (!i) {
      out << f << ": not sent: " << i.error().message() << "\n";
      ++failed;
      continue;
    }
    instances.push_back(*i);
  }
  TaskContext task;
  task.task_id = fmt::format("send-{}", ::getpid());
  auto session = (*target)->Open(task);
  if (!session) {
    out << "FAIL " << name << " (" << (IsPermanent(session.error()) ? "permanent" : "transient")
        << "): " << session.error().message() << "\n";
    return 1;
  }
  std::vector<InstanceResult> results;
  if (!instances.empty()) {
    (*session)->Send(instances, &results);
  }
  for (size_t i = 0; i < instances.size(); ++i) {
    const InstanceResult& r = results[i];
    out << instances[i].path << ": " << OutcomeName(r.outcome)
        << (r.detail.empty() ? "" : ": " + r.detail) << "\n";
    failed += r.outcome == Outcome::kDelivered ? 0 : 1;
  }
  if (failed == 0) {
    Status s = (*session)->Finish();
    if (!s.ok()) {
      out << "FAIL " << name << ": finishing the transfer failed: " << s.message() << "\n";
      return 1;
    }
  }
  out << (failed == 0 ? "PASS " : "FAIL ") << name << ": " << files.size() - failed << " of "
      << files.size() << " delivered\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace ferry
