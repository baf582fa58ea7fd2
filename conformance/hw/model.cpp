#include "hw/model.h"

#include "smmuv3/machine.h"

namespace iommuspec::conformance::hwc {
namespace {

class SmmuModel final : public HwModel {
public:
  explicit SmmuModel(const Setup& s) : m_(layout(s)) {}

  bool write(const std::vector<hw::Write>& ws) override { return m_.write(ws); }
  hw::QueueOutcome submit(const std::vector<uint64_t>& e) override {
    std::vector<smmuv3::Cmd2> cmds;
    for (size_t i = 0; i + 1 < e.size(); i += 2)
      cmds.push_back({e[i], e[i + 1]});
    return m_.submit(cmds);
  }
  hw::QueueOutcome resume() override { return m_.resume(); }
  std::vector<AllowedOutcome> dma(const hw::DmaRequest& r) const override {
    std::vector<AllowedOutcome> out;
    for (auto& a : m_.dma(r))
      out.push_back({std::move(a.outcome), std::string(a.clause)});
    return out;
  }
  void after_dma(const hw::DmaRequest& r, const std::vector<AllowedOutcome>& allowed,
                 const hw::DmaOutcome& observed) override {
    std::vector<smmuv3::Allowed> a;
    for (const auto& x : allowed)
      a.push_back({x.outcome, {}});
    m_.after_dma(r, a, observed);
  }
  std::vector<std::vector<hw::DmaOutcome>> drain(bool& overflow) override {
    std::vector<std::vector<hw::DmaOutcome>> out;
    for (auto& q : m_.drain_events(overflow))
      out.push_back(std::move(q.may_be));
    return out;
  }
  size_t queued() const override { return m_.queued_events(); }

private:
  static smmuv3::Layout layout(const Setup& s) {
    smmuv3::Layout l;
    l.evtq_log2 = s.evtq_log2;
    return l;
  }
  smmuv3::Machine m_;
};

} // namespace

std::unique_ptr<HwModel> make_hw_model(const Setup& s) {
  if (s.area == "smmuv3") return std::make_unique<SmmuModel>(s);
  return nullptr;
}

const std::vector<std::string>& hw_features(std::string_view area) {
  static const std::vector<std::string> smmu = {"smmuv3",    "stage1",     "stage2",    "nested",
                                                "range_inv", "granule16k", "granule64k"};
  static const std::vector<std::string> none;
  return area == "smmuv3" ? smmu : none;
}

} // namespace iommuspec::conformance::hwc
