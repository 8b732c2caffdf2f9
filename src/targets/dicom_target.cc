// PLACEHOLDER: the dicom target is being implemented; until then it reports that it is unavailable.
#include "targets/target.h"

namespace ferry {
namespace {

class DicomTarget : public Target {
 public:
  explicit DicomTarget(const TargetOptions& o) : Target(o) {}
  Result<std::unique_ptr<TargetSession>> Open(const TaskContext&) override {
    return Status::FailedPrecondition("dicom targets are not available in this build");
  }
  Status Check() override {
    return Status::FailedPrecondition("dicom targets are not available in this build");
  }
};

}  // namespace

std::unique_ptr<Target> MakeDicomTarget(const TargetOptions& options) {
  return std::make_unique<DicomTarget>(options);
}

}  // namespace ferry
