// PLACEHOLDER: the sftp target is being implemented; until then it reports that it is unavailable.
#include "targets/target.h"

namespace ferry {
namespace {

class SftpTarget : public Target {
 public:
  explicit SftpTarget(const TargetOptions& o) : Target(o) {}
  Result<std::unique_ptr<TargetSession>> Open(const TaskContext&) override {
    return Status::FailedPrecondition("sftp targets are not available in this build");
  }
  Status Check() override {
    return Status::FailedPrecondition("sftp targets are not available in this build");
  }
};

}  // namespace

std::unique_ptr<Target> MakeSftpTarget(const TargetOptions& options) {
  return std::make_unique<SftpTarget>(options);
}

}  // namespace ferry
