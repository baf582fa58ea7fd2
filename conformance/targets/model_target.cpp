// The `model` target: the executable specification itself, in process. It makes the
// model's own choices where the kernel may choose, so a run on it shows that every
// scenario's pinned expectations agree with the model.
#include "hw/model.h"
#include "iommufd/machine.h"
#include "runner/target.h"
#include "scenario/encode.h"

#include <fmt/format.h>

namespace iommuspec::conformance {
namespace {

class ModelTarget final : public Target {
public:
  ModelTarget(iommufd::Profile p, DmaChoice c) : profile_(p), choice_(c), m_(p) {}

  TargetInfo info() const override {
    TargetInfo i;
    i.name = "model";
    i.profile = profile_;
    i.fingerprint = {{"implementation", "iommuspec reference model"},
                     {"profile", std::string(iommufd::profile_name(profile_))}};
    i.features = scenario::known_features();
    for (const char* area : {"smmuv3", "vtd"})
      for (const auto& f : hwc::hw_features(area))
        i.features.insert(f);
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

  // Hardware-level areas: the model makes its own choice in each allowed set, the fresh
  // walk (listed first), so a run on it checks the pins against the model; or the last, a
  // unit that uses every stale entry it may still use.
  void hw_reset(const hwc::Setup& s) override {
    hw_ = hwc::make_hw_model(s);
    if (!hw_) throw TargetError("the model has no area " + s.area);
  }
  void hw_write(const std::vector<hw::Write>& ws) override {
    if (!hw().write(ws)) throw TargetError("write outside RAM");
  }
  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& e) override { return hw().submit(e); }
  hw::QueueOutcome hw_resume() override { return hw().resume(); }
  uint8_t hw_register_invalidate(const std::vector<uint64_t>& e) override {
    return hw().register_invalidate(e);
  }
  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override {
    const auto allowed = hw().dma(r);
    hw::DmaOutcome o =
        choice_ == DmaChoice::fresh ? allowed.front().outcome : allowed.back().outcome;
    hw().after_dma(r, allowed, o);
    if (!r.drain && o.kind == hw::DmaOutcome::Kind::fault) {
      o.record.clear(); // still in the queue
      o.mask.clear();
    }
    return o;
  }
  hw::ViommuOutcome hw_viommu(const hwc::ViommuCall& c) override {
    auto o = hw().viommu(c);
    if (!o) throw TargetError("no vIOMMU or HWPT named " + c.object);
    return *o;
  }
  hw::RecordsOutcome hw_records() override { return first(hw().drain()); }
  hw::RecordsOutcome hw_vevents(const std::string& viommu) override {
    auto r = hw().vevents(viommu);
    if (!r) throw TargetError("no vIOMMU named " + viommu);
    return first(*r);
  }

private:
  // The model reads as the first (complete) reading, each record as its first candidate.
  static hw::RecordsOutcome first(const std::vector<hwc::RecordsReading>& readings) {
    hw::RecordsOutcome out;
    out.overflow = readings.front().overflow;
    for (const auto& may_be : readings.front().records)
      out.records.push_back(may_be.empty() ? std::vector<uint64_t>{} : may_be.front().record);
    return out;
  }
  hwc::HwModel& hw() {
    if (!hw_) throw TargetError("hw_reset first");
    return *hw_;
  }
  iommufd::Profile profile_;
  DmaChoice choice_;
  iommufd::Machine m_;
  std::unique_ptr<hwc::HwModel> hw_;
};

} // namespace

std::unique_ptr<Target> make_model_target(iommufd::Profile profile, DmaChoice choice) {
  return std::make_unique<ModelTarget>(profile, choice);
}

} // namespace iommuspec::conformance
