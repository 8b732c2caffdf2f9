// PLACEHOLDER: the s3 target is being implemented; until then it reports that it is unavailable.
#include "targets/target.h"

namespace ferry {
namespace {

class S3Target : public Target {
 public:
  explicit S3Target(const TargetOptions& o) : Target(o) {}
  Result<std::unique_ptr<TargetSession>> Open(const TaskContext&) override {
    return Status::FailedPrecondition("s3 targets are not available in this build");
  }
  Status Check() override {
    return Status::FailedPrecondition("s3 targets are not available in this build");
  }
};

}  // namespace

std::unique_ptr<Target> MakeS3Target(const TargetOptions& options) {
  return std::make_unique<S3Target>(options);
}

}  // namespace ferry
