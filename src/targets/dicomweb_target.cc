// PLACEHOLDER: the dicomweb target is being implemented; until then it reports that it is unavailable.
#include "targets/target.h"

namespace ferry {
namespace {

class DicomwebTarget : public Target {
 public:
  explicit DicomwebTarget(const TargetOptions& o) : Target(o) {}
  Result<std::unique_ptr<TargetSession>> Open(const TaskContext&) override {
    return Status::FailedPrecondition("dicomweb targets are not available in this build");
  }
  Status Check() override {
    return Status::FailedPrecondition("dicomweb targets are not available in this build");
  }
};

}  // namespace

std::unique_ptr<Target> MakeDicomwebTarget(const TargetOptions& options) {
  return std::make_unique<DicomwebTarget>(options);
}

}  // namespace ferry
