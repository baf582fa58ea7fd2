// queue.partial_completion on the model's own machines and vIOMMU converters (not arithmetic,
// so checked by exhaustive enumeration: every legal/illegal pattern of up to 8 commands).
// Each hardware run: 8 pages mapped and cached, all remapped, then N invalidations of pages
// 0..N-1 (the illegal ones replaced by an illegal command); the queue must stop at the first
// illegal one k with CONS = k, and after Linux's recovery (the failing command becomes a
// CMD_SYNC / wait descriptor, smmuv3 Machine::resume, vtd Machine::resume) exactly pages
// 0..k-1 must be fresh. Sources: IHI 0070 4.1.3, 7.1 (SMMUV3.CMDQ.error_stop); VT-d IQE
// (VTD.IQ.consume); Linux arm_smmu_cmdq_skip_err, dmar.c qi_check_fault.
#include "encoders.h"
#include "smmuv3/machine.h"
#include "smmuv3/viommu.h"
#include "vtd/machine.h"
#include "vtd/viommu.h"

namespace iommuspec::solvers {
namespace {

constexpr uint64_t kIova = 0x10000, kPage = 0x1000;

// ---- SMMUv3 ----------------------------------------------------------------------------------

namespace sm = smmuv3;
constexpr uint64_t kSmmuCd = 0x40010000, kSmmuPool = 0x41000000, kSmmuData = 0x42000000;
constexpr uint64_t kRemap = 0x100000; // the new page of page i: the old one + 1 MiB

// A stage-1 stream (SID 0, ASID 1) with `n` pages mapped, configured and cached; then every
// page remapped in one write step.
sm::Machine smmu_rig(size_t n) {
  sm::Machine m;
  Memory shadow;
  shadow.add_region(m.layout().ram);
  auto pt =
      sm::PageTableBuilder::stage1(shadow, {kSmmuPool, kSmmuPool + 0xfffff}, sm::Granule::g4k, 48);
  for (size_t i = 0; i < n; ++i)
    pt.map(kIova + i * kPage, kSmmuData + i * kPage, kPage, sm::Perms{true, true, false, true});
  sm::Ste ste;
  ste.v = true;
  ste.config = sm::StreamConfig::s1_trans;
  ste.s1_context_ptr = kSmmuCd;
  sm::Cd cd;
  cd.v = cd.aa64 = cd.r = cd.epd1 = true;
  cd.ips = 5;
  cd.t0sz = 16;
  cd.asid = 1;
  cd.ttb0 = pt.root();
  const auto sw = sm::encode(ste);
  const auto cw = sm::encode(cd);
  for (size_t i = 0; i < 8; ++i) {
    shadow.write64(m.layout().strtab + 8 * i, sw[i]);
    shadow.write64(kSmmuCd + 8 * i, cw[i]);
  }
  m.write(hw::writes_between(m.memory(), shadow));
  const std::vector<sm::Cmd2> cfg = {sm::encode(sm::Command{sm::cfgi_all()}),
                                     sm::encode(sm::Command{sm::CmdSync{}})};
  m.submit(cfg);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t slot = *pt.slot(kIova + i * kPage, 3);
    shadow.write64(slot, *shadow.read64(slot) ^ kRemap);
  }
  m.write(hw::writes_between(m.memory(), shadow));
  return m;
}

// The command for page i: TLBI_NH_VA, or one of three illegal commands (IHI 0070 4.1.3: a
// Reserved opcode; 4.4.1.1 the Reserved NUM = SCALE = TTL = 0 range; 4.5.1 CMD_ATC_INV
// without IDR0.ATS).
sm::Cmd2 smmu_command(size_t i, bool illegal) {
  if (!illegal)
    return sm::encode(
        sm::Command{sm::CmdTlbiNhVa{.asid = 1, .leaf = true, .addr = kIova + i * kPage}});
  switch (i % 3) {
  case 0:
    return sm::Cmd2{0x90, 0}; // IHI 0070 4.1.1: 0x90-0xFF Reserved
  case 1:
    return sm::encode(
        sm::Command{sm::CmdTlbiNhVa{.asid = 1, .leaf = true, .tg = 1, .addr = kIova + i * kPage}});
  default:
    return sm::encode(sm::Command{sm::CmdAtcInv{}});
  }
}

bool smmu_fresh(const sm::Machine& m, size_t i) {
  hw::DmaRequest r;
  r.addr = kIova + i * kPage;
  const auto a = m.dma(r);
  return a.size() == 1 && a.front().outcome.kind == hw::DmaOutcome::Kind::ok &&
         a.front().outcome.pa == kSmmuData + i * kPage + kRemap;
}

QueueRun smmu_cmdq(const std::vector<bool>& illegal) {
  sm::Machine m = smmu_rig(illegal.size());
  std::vector<sm::Cmd2> cmds;
  for (size_t i = 0; i < illegal.size(); ++i)
    cmds.push_back(smmu_command(i, illegal[i]));
  const auto out = m.submit(cmds);
  QueueRun r{out.consumed, !out.error.empty(), {}};
  if (r.stopped)
    m.resume(); // the failing command becomes CMD_SYNC (arm_smmu_cmdq_skip_err)
  else
    m.submit(std::vector<sm::Cmd2>{sm::encode(sm::Command{sm::CmdSync{}})});
  // Stopped: the rest was consumed after the replacing CMD_SYNC, with none after it.
  for (size_t i = 0; i < illegal.size(); ++i)
    r.fresh.push_back(smmu_fresh(m, i));
  return r;
}

UapiRun smmu_viommu(const std::vector<bool>& refused) {
  sm::VSmmu v;
  v.vmid = 3;
  std::vector<sm::Cmd2> guest;
  for (size_t i = 0; i < refused.size(); ++i)
    guest.push_back(refused[i] ? sm::encode(sm::Command{sm::CmdCfgiSte{.sid = uint32_t(i)}})
                               : smmu_command(i, false));
  const auto u = sm::convert_user_cmds(v, guest);
  UapiRun r{u.handled, u.error != Errno::ok, {}};
  for (const auto& c : u.host)
    r.promised.push_back({c[0], c[1]});
  return r;
}

// ---- VT-d ------------------------------------------------------------------------------------

namespace vt = vtd;
constexpr uint64_t kRoot = 0x100000, kCtx = 0x110000, kVtdPool = 0x1000000, kVtdData = 0x2000000;
constexpr uint16_t kSid = 0x10;

void put2(Memory& m, uint64_t pa, const vt::Words2& w) {
  m.write64(pa, w[0]);
  m.write64(pa + 8, w[1]);
}

// Legacy mode, SID 0x10 in domain 1 with a 4-level second stage mapping `n` pages; then
// every page remapped in one write step.
vt::Machine vtd_rig(size_t n) {
  vt::Layout lay;
  lay.scalable = false;
  vt::Machine m(lay, vt::Features{});
  Memory shadow;
  shadow.add_region(lay.ram);
  vt::PageTableBuilder pt(shadow, vt::Stage::second, 4, {kVtdPool, kVtdPool + 0xfffff});
  for (size_t i = 0; i < n; ++i)
    pt.map(kIova + i * kPage, kVtdData + i * kPage, kPage, vt::Perms{});
  put2(shadow, kRoot, vt::encode(vt::RootEntry{true, kCtx}));
  vt::ContextEntry ce;
  ce.present = true;
  ce.tt = vt::TranslationType::multi_level;
  ce.slptptr = pt.root();
  ce.aw = 2;
  ce.did = 1;
  put2(shadow, kCtx + 16 * kSid, vt::encode(ce));
  m.write(hw::writes_between(m.memory(), shadow));
  for (size_t i = 0; i < n; ++i) {
    // The leaf's slot: walk the shadow's tables (levels 4..1).
    uint64_t t = pt.root();
    const uint64_t a = kIova + i * kPage;
    for (unsigned l = 4; l > 1; --l)
      t = *shadow.read64(t + 8 * vt::pt_index(a, l)) & 0x000f'ffff'ffff'f000ull;
    const uint64_t slot = t + 8 * vt::pt_index(a, 1);
    shadow.write64(slot, *shadow.read64(slot) ^ kRemap);
  }
  m.write(hw::writes_between(m.memory(), shadow));
  return m;
}

vt::QiDesc vtd_wait() {
  vt::InvWait w;
  w.sw = true;
  w.status_addr = 0x410000;
  return vt::encode(vt::QiDescriptor{w});
}

// The descriptor for page i: a page-selective IOTLB invalidation, or one of three invalid
// ones (an unknown type; a page-selective invalidation with AM > MAMV; a wait with none of
// IF/SW/FN: machine.cpp descriptor_error).
vt::QiDesc vtd_descriptor(size_t i, bool illegal) {
  vt::IotlbInv d;
  d.g = vt::IotlbGranularity::page;
  d.did = 1;
  d.addr = kIova + i * kPage;
  if (!illegal) return vt::encode(vt::QiDescriptor{d});
  switch (i % 3) {
  case 0:
    return vt::QiDesc{0xf, 0, 0, 0};
  case 1:
    d.am = 40;
    return vt::encode(vt::QiDescriptor{d});
  default:
    return vt::encode(vt::QiDescriptor{vt::InvWait{}});
  }
}

std::vector<uint64_t> legacy_words(const std::vector<vt::QiDesc>& ds) {
  std::vector<uint64_t> w;
  for (const auto& d : ds) {
    w.push_back(d[0]);
    w.push_back(d[1]);
  }
  return w;
}

bool vtd_fresh(const vt::Machine& m, size_t i) {
  hw::DmaRequest r;
  r.sid = kSid;
  r.addr = kIova + i * kPage;
  const auto a = m.dma(r);
  return a.size() == 1 && a.front().outcome.kind == hw::DmaOutcome::Kind::ok &&
         a.front().outcome.pa == kVtdData + i * kPage + kRemap;
}

QueueRun vtd_iq(const std::vector<bool>& illegal) {
  vt::Machine m = vtd_rig(illegal.size());
  std::vector<vt::QiDesc> ds;
  for (size_t i = 0; i < illegal.size(); ++i)
    ds.push_back(vtd_descriptor(i, illegal[i]));
  const auto out = m.submit(legacy_words(ds));
  QueueRun r{out.consumed, !out.error.empty(), {}};
  if (r.stopped)
    m.resume(); // the failing descriptor becomes a wait (qi_check_fault)
  else
    m.submit(legacy_words({vtd_wait()}));
  for (size_t i = 0; i < illegal.size(); ++i)
    r.fresh.push_back(vtd_fresh(m, i));
  return r;
}

UapiRun vtd_hwpt(const std::vector<bool>& refused) {
  const vt::NestedHwpt h{kSid, 1, 7};
  std::vector<vt::S1Invalidate> es;
  for (size_t i = 0; i < refused.size(); ++i) {
    vt::S1Invalidate e;
    e.addr = kIova + i * kPage;
    e.npages = 1;
    if (refused[i]) e.flags = 0x80; // an undefined flag: EOPNOTSUPP (nested.c:110-114)
    es.push_back(e);
  }
  const auto u = vt::convert_s1_invalidate(h, es, 18);
  UapiRun r{u.handled, u.error != Errno::ok, {}};
  for (const auto& d : u.host) {
    const auto w = vt::encode(d);
    r.promised.push_back({w.begin(), w.end()});
  }
  return r;
}

} // namespace

QueueImpl model_queue() {
  return {"model", smmu_cmdq, vtd_iq, smmu_viommu, vtd_hwpt};
}

std::vector<std::string> queue_names() {
  return {"model", "entry-num-one-too-many", "consumes-failing-command"};
}

std::optional<QueueImpl> queue(const std::string& name) {
  QueueImpl q = model_queue();
  q.name = name;
  if (name == "model") return q;
  // entry_num counts the refused entry too.
  if (name == "entry-num-one-too-many") {
    q.smmu_viommu = [](const std::vector<bool>& refused) {
      auto r = smmu_viommu(refused);
      if (r.error) ++r.entry_num;
      return r;
    };
    return q;
  }
  // CONS moves past the illegal command.
  if (name == "consumes-failing-command") {
    q.smmu_cmdq = [](const std::vector<bool>& illegal) {
      auto r = smmu_cmdq(illegal);
      if (r.stopped) ++r.consumed;
      return r;
    };
    return q;
  }
  return std::nullopt;
}

} // namespace iommuspec::solvers
