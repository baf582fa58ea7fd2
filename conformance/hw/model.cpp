#include "hw/model.h"

#include "smmuv3/machine.h"
#include "smmuv3/viommu.h"
#include "vtd/machine.h"
#include "vtd/viommu.h"

#include <algorithm>
#include <map>

namespace iommuspec::conformance::hwc {
namespace {

template <class Allowed>
std::vector<AllowedOutcome> outcomes(std::vector<Allowed> in) {
  std::vector<AllowedOutcome> out;
  for (auto& a : in)
    out.push_back({std::move(a.outcome), std::string(a.clause)});
  return out;
}

template <class Allowed>
std::vector<Allowed> machine_allowed(const std::vector<AllowedOutcome>& in) {
  std::vector<Allowed> out;
  for (const auto& x : in)
    out.push_back({x.outcome, {}});
  return out;
}

hw::ViommuOutcome outcome(Errno e, uint32_t handled) {
  return {e == Errno::ok ? "" : std::string(errno_name(e)), handled};
}

bool wants(const Setup& s, std::string_view f) {
  return std::find(s.features.begin(), s.features.end(), f) != s.features.end();
}

class SmmuModel final : public HwModel {
public:
  explicit SmmuModel(const Setup& s) : m_(layout(s), features(s)) {}

  bool write(const std::vector<hw::Write>& ws) override { return m_.write(ws); }
  hw::QueueOutcome submit(const std::vector<uint64_t>& e) override {
    std::vector<smmuv3::Cmd2> cmds;
    for (size_t i = 0; i + 1 < e.size(); i += 2)
      cmds.push_back({e[i], e[i + 1]});
    return m_.submit(cmds);
  }
  hw::QueueOutcome resume() override { return m_.resume(); }
  std::vector<AllowedOutcome> dma(const hw::DmaRequest& r) const override {
    return outcomes(m_.dma(r));
  }
  void after_dma(const hw::DmaRequest& r, const std::vector<AllowedOutcome>& allowed,
                 const hw::DmaOutcome& observed) override {
    m_.after_dma(r, machine_allowed<smmuv3::Allowed>(allowed), observed);
  }
  std::vector<RecordsReading> drain() override {
    RecordsReading one;
    for (auto& q : m_.drain_events(one.overflow))
      one.records.push_back(std::move(q.may_be));
    return {std::move(one)};
  }
  size_t queued() const override { return m_.queued_events(); }
  std::optional<std::vector<RecordsReading>> vevents(const std::string& name) override {
    auto v = viommus_.find(name);
    if (v == viommus_.end()) return std::nullopt;
    bool lost = false; // events the unit lost never reach a vEVENTQ either
    // A record whose candidates differ in being forwarded may or may not be there: a reading
    // for each (bounded: the readings only grow the allowed set).
    std::vector<RecordsReading> readings(1);
    for (const auto& q : m_.drain_events(lost)) {
      std::vector<hw::DmaOutcome> forwarded;
      bool dropped = false;
      for (const auto& o : q.may_be) {
        smmuv3::Evt4 w{};
        std::copy_n(o.record.begin(), std::min<size_t>(4, o.record.size()), w.begin());
        if (auto e = smmuv3::to_vevent(v->second, w)) {
          hw::DmaOutcome f = o;
          f.record.assign(e->begin(), e->end());
          forwarded.push_back(std::move(f));
        } else {
          dropped = true;
        }
      }
      std::vector<RecordsReading> next;
      for (const auto& r : readings) {
        if (!forwarded.empty()) {
          next.push_back(r);
          next.back().records.push_back(forwarded);
        }
        if (dropped && next.size() < 64) next.push_back(r);
      }
      readings = std::move(next);
    }
    return readings;
  }
  std::optional<hw::ViommuOutcome> viommu(const ViommuCall& c) override {
    if (c.op == "viommu") {
      viommus_[c.object] = {uint16_t(c.args.at("vmid")), {}};
      return hw::ViommuOutcome{};
    }
    auto v = viommus_.find(c.object);
    if (v == viommus_.end()) return std::nullopt;
    if (c.op == "vdevice") {
      v->second.vdevices[c.args.at("vsid")] = uint32_t(c.args.at("sid"));
      return hw::ViommuOutcome{};
    }
    std::vector<smmuv3::Cmd2> guest;
    for (const auto& e : c.entries)
      guest.push_back({e.at(0), e.at(1)});
    const auto r = smmuv3::convert_user_cmds(v->second, guest);
    m_.submit(r.host);
    // A host command the unit refuses is skipped as Linux does (arm_smmu_cmdq_skip_err): the
    // vIOMMU layer reports no error for it (the uAPI is silent).
    while (m_.stopped())
      m_.resume();
    return outcome(r.error, r.handled);
  }

private:
  static smmuv3::Layout layout(const Setup& s) {
    smmuv3::Layout l;
    l.evtq_log2 = s.evtq_log2;
    l.strtab = s.strtab_base;
    l.strtab_log2 = s.strtab_log2;
    l.strtab_fmt = uint8_t(s.strtab_fmt);
    l.strtab_split = uint8_t(s.strtab_split);
    return l;
  }
  // The unit the scenario asks for: smmuv3::Features' defaults, plus IDR0.ATS with `ats`.
  static smmuv3::Features features(const Setup& s) {
    smmuv3::Features f;
    f.ats = wants(s, "ats");
    // IDR1.SSIDSIZE: 20 bits with `substreams`, else none (the compiler then gives every STE
    // S1CDMax = 0).
    f.ssid_bits = wants(s, "substreams") ? 20 : 0;
    return f;
  }
  smmuv3::Machine m_;
  std::map<std::string, smmuv3::VSmmu> viommus_;
};

class VtdModel final : public HwModel {
public:
  explicit VtdModel(const Setup& s) : m_(layout(s), features(s)) {}

  bool write(const std::vector<hw::Write>& ws) override { return m_.write(ws); }
  hw::QueueOutcome submit(const std::vector<uint64_t>& e) override { return m_.submit(e); }
  hw::QueueOutcome resume() override { return m_.resume(); }
  // The register-based form has the scope of the descriptor of the same granularity (VT-d
  // 6.5.1.1-2 and 6.5.2.1/6.5.2.3 name the same granularities and fields) and is complete
  // when the command bit clears: the descriptor followed by a fencing wait. Clause
  // VTD.REG.granularity.
  uint8_t register_invalidate(const std::vector<uint64_t>& e) override {
    const vtd::QiDesc d{e.at(0), e.at(1), 0, 0};
    const auto q = vtd::decode_qi_descriptor(d);
    uint8_t g = 0;
    if (q)
      std::visit(
          [&g](const auto& x) {
            if constexpr (requires { x.g; }) g = uint8_t(x.g);
          },
          *q);
    if (g == 0) return 0; // CIRG / IIRG 00b: reserved, ignored (CAIG / IAIG = 0)
    vtd::InvWait w;
    w.fn = true;
    const auto wd = vtd::encode(vtd::QiDescriptor{w});
    m_.submit(std::vector<uint64_t>{e.at(0), e.at(1), wd[0], wd[1]});
    return g;
  }
  std::vector<AllowedOutcome> dma(const hw::DmaRequest& r) const override {
    return outcomes(m_.dma(r));
  }
  void after_dma(const hw::DmaRequest& r, const std::vector<AllowedOutcome>& allowed,
                 const hw::DmaOutcome& observed) override {
    m_.after_dma(r, machine_allowed<vtd::Allowed>(allowed), observed);
  }
  std::vector<RecordsReading> drain() override {
    std::vector<RecordsReading> out;
    for (auto& log : m_.drain_fault_logs()) {
      RecordsReading r;
      r.overflow = log.overflow;
      for (auto& q : log.records)
        r.records.push_back(std::move(q.may_be));
      // The reading without collapsing first: it is the one pins state.
      out.insert(log.collapsed ? out.end() : out.begin(), std::move(r));
    }
    return out;
  }
  size_t queued() const override { return m_.queued_faults(); }
  // VT-d reports to a vIOMMU through page requests, which the model does not have.
  std::optional<std::vector<RecordsReading>> vevents(const std::string&) override {
    return std::nullopt;
  }
  std::optional<hw::ViommuOutcome> viommu(const ViommuCall& c) override {
    if (c.op == "hwpt_nested") {
      hwpts_[c.object] = {uint16_t(c.args.at("sid")), uint32_t(c.args.at("pasid")),
                          uint16_t(c.args.at("did"))};
      return hw::ViommuOutcome{};
    }
    auto h = hwpts_.find(c.object);
    if (h == hwpts_.end()) return std::nullopt;
    std::vector<vtd::S1Invalidate> entries;
    for (const auto& e : c.entries)
      entries.push_back({e.at(0), e.at(1), uint32_t(e.at(2)), uint32_t(e.at(2) >> 32)});
    const auto r = vtd::convert_s1_invalidate(h->second, entries, m_.features().mamv);
    std::vector<uint64_t> words;
    for (const auto& d : r.host) {
      const auto w = vtd::encode(d);
      words.insert(words.end(), w.begin(), w.end());
    }
    m_.submit(words);
    while (m_.stopped())
      m_.resume();
    return outcome(r.error, r.handled);
  }

private:
  static vtd::Layout layout(const Setup& s) {
    vtd::Layout l;
    l.scalable = !s.legacy;
    return l;
  }
  // The unit the scenario asks for: QEMU's defaults (vtd::Features), plus 5-level paging
  // (CAP.FL5LP, SAGAW bit 3 and a 57-bit MGAW, iommu.h:165, :173) when it names five_level.
  static vtd::Features features(const Setup& s) {
    vtd::Features f;
    f.dev_tlb = wants(s, "dev_tlb"); // ECAP.DT: legacy TT = device-TLB allowed
    if (wants(s, "five_level")) {
      f.fl5lp = true;
      f.sagaw |= 0b1000;
      f.mgaw = 57;
    }
    return f;
  }
  vtd::Machine m_;
  std::map<std::string, vtd::NestedHwpt> hwpts_;
};

} // namespace

std::unique_ptr<HwModel> make_hw_model(const Setup& s) {
  if (s.area == "smmuv3") return std::make_unique<SmmuModel>(s);
  if (s.area == "vtd") return std::make_unique<VtdModel>(s);
  return nullptr;
}

const std::vector<std::string>& hw_features(std::string_view area) {
  static const std::vector<std::string> smmu = {
      "smmuv3",     "stage1",     "stage2",        "nested",    "range_inv",
      "granule16k", "granule64k", "viommu",        "ats",       "dma_ssid",
      "dma_unpriv", "dma_exec",   "strtab_2level", "cd_2level", "substreams"};
  static const std::vector<std::string> vtd = {
      "vtd",          "legacy",     "scalable",  "first_stage", "second_stage", "nested",
      "pass_through", "pasid",      "superpage", "five_level",  "viommu",       "dev_tlb",
      "dma_ssid",     "dma_unpriv", "dma_exec",  "register_inv"};
  static const std::vector<std::string> none;
  return area == "smmuv3" ? smmu : area == "vtd" ? vtd : none;
}

} // namespace iommuspec::conformance::hwc
