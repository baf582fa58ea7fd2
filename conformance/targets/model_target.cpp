// The `model` target: the executable specification itself, in process. It makes the
// model's own choices where the kernel may choose, so a run on it shows that every
// scenario's pinned expectations agree with the model.
#include "iommufd/machine.h"
#include "runner/target.h"
#include "scenario/encode.h"

#include <fmt/format.h>

namespace iommuspec::conformance {
namespace {

class ModelTarget final : public Target {
public:
  explicit ModelTarget(iommufd::Profile p) : profile_(p), m_(p) {}

  TargetInfo info() const override {
    TargetInfo i;
    i.name = "model";
    i.profile = profile_;
    i.fingerprint = {{"implementation", "iommuspec reference model"},
                     {"profile", std::string(iommufd::profile_name(profile_))}};
    i.features = scenario::known_features();
    if (profile_ == iommufd::Profile::linux_6_12) {
      for (const char* f : {"viommu", "veventq", "hw-queue", "pasid"})
        i.features.erase(f);
    }
    return i;
  }
  void reset() override { m_ = iommufd::Machine(profile_); }
  uint64_t mem(uint64_t size) override {
    const uint64_t base = m_.place_mem(size);
    m_.add_mem(base, size);
    return base;
  }
  iommufd::Observation execute(const iommufd::Call& call) override { return m_.execute(call).obs; }

private:
  iommufd::Profile profile_;
  iommufd::Machine m_;
};

} // namespace

std::unique_ptr<Target> make_model_target(iommufd::Profile profile) {
  return std::make_unique<ModelTarget>(profile);
}

} // namespace iommuspec::conformance
