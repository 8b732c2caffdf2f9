#include "targets/target.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include "dicom/instance_header.h"

namespace ferry {

Result<OutgoingInstance> DescribeInstance(const std::string& path) {
  auto header = dicom::ReadInstanceHeader(path, dicom::TransferContext{},
                                          [](const std::string&) { return false; });
  if (!header) {
    return header.error();
  }
  OutgoingInstance i;
  i.path = path;
  i.sop_class_uid = header->sop_class_uid;
  i.sop_instance_uid = header->sop_instance_uid;
  i.series_instance_uid = header->series_instance_uid;
  i.study_instance_uid = header->study_instance_uid;
  i.transfer_syntax_uid = header->transfer_syntax_uid;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    i.size = static_cast<uint64_t>(st.st_size);
  }
  return i;
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDelivered: return "delivered";
    case Outcome::kTransient: return "transient failure";
    case Outcome::kPermanent: return "permanent failure";
  }
  return "?";
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool PassesFileFilter(const std::string& filter, const std::string& name) {
  if (filter.empty()) {
    return true;
  }
  size_t start = 0;
  while (start <= filter.size()) {
    size_t comma = filter.find(',', start);
    std::string pattern =
        filter.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t first = pattern.find_first_not_of(' ');
    size_t last = pattern.find_last_not_of(' ');
    pattern = first == std::string::npos ? "" : pattern.substr(first, last - first + 1);
    if (!pattern.empty() && ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) {
      return true;
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return false;
}

bool IsSafeTaskFolderName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

InstanceResult FailedResult(const Status& status) {
  return {IsPermanent(status) ? Outcome::kPermanent : Outcome::kTransient, status.message()};
}

bool IsPermanent(const Status& status) {
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kPermissionDenied:
    case Status::Code::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

Result<std::unique_ptr<Target>> MakeTarget(const TargetOptions& options) {
  switch (options.type) {
    case TargetType::kDicom: return MakeDicomTarget(options);
    case TargetType::kDicomweb: return MakeDicomwebTarget(options);
    case TargetType::kSftp: return MakeSftpTarget(options);
    case TargetType::kS3: return MakeS3Target(options);
    case TargetType::kFolder: return MakeFolderTarget(options);
  }
  return Status::InvalidArgument("target " + options.name + " has an unknown type");
}

}  // namespace ferry
