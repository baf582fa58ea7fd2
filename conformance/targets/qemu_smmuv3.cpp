// qemu-smmuv3: the SMMUv3 of QEMU's `virt` machine (hw/arm/smmuv3.c), driven through qtest.
// The scenario's structures are written into guest RAM at the model's layout
// (model/smmuv3/machine.h Layout, suites/smmuv3/README.md), the unit is programmed and enabled
// as Linux does it (arm_smmu_device_reset), commands go through the command queue, and each
// access is a DMA of an edu device whose requester ID is the access's StreamID.
//
// What the target observes: the physical address an access reached, from QEMU's trace events
// smmuv3_translate_success / smmuv3_translate_bypass (printed for cached translations too);
// event records from the event queue in RAM; CMDQ_CONS (index and ERR) and GERROR.
//
// StreamIDs: slot 0 of bus 0 is virt's host bridge (hw/pci-host/gpex.c, "gpex-root" at devfn
// 0, single-function), so RIDs 0-7 cannot be edu devices. When a scenario's accesses use
// StreamIDs 0-7, the target relabels every StreamID s < 256 as s XOR 0x80 in what the unit
// sees (STE slots of a linear stream table, the SID field of commands, event records back):
// a bijection that maps aligned ranges (CFGI_STE_RANGE) to aligned ranges of the same size.
#include "qemu/edu.h"
#include "qemu/machine.h"
#include "qemu/pci.h"
#include "qemu/qtest.h"
#include "smmuv3/format.h"
#include "smmuv3/machine.h"
#include "targets/qemu_target.h"

#include <algorithm>
#include <array>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::conformance {
namespace {

namespace sm = smmuv3;

// Register offsets: IHI 0070 6.2 (the register map), Linux arm-smmu-v3.h ARM_SMMU_*. EVTQ_PROD
// and EVTQ_CONS are in page 1 (offset 0x10000; Linux arm_smmu_page1).
constexpr uint64_t kIdr0 = 0x0, kIdr1 = 0x4, kIdr3 = 0xc, kIdr5 = 0x14, kAidr = 0x1c;
constexpr uint64_t kCr0 = 0x20, kCr0Ack = 0x24, kCr2 = 0x2c, kGerror = 0x60, kGerrorn = 0x64;
constexpr uint64_t kStrtabBase = 0x80, kStrtabBaseCfg = 0x88;
constexpr uint64_t kCmdqBase = 0x90, kCmdqProd = 0x98, kCmdqCons = 0x9c;
constexpr uint64_t kEvtqBase = 0xa0, kEvtqProd = 0x100a8, kEvtqCons = 0x100ac;
constexpr uint32_t kGerrorCmdqErr = 1u << 0; // GERROR.CMDQ_ERR (IHI 6.3.13)
constexpr uint32_t kCr2RecInvSid = 1u << 1;  // CR2.RECINVSID: record C_BAD_STREAMID (6.3.11)
constexpr unsigned kCmdqLog2 = 8;            // the model's Layout::cmdq_log2
constexpr uint64_t MiB = 1024 * 1024;
constexpr uint64_t kRam = 512 * MiB; // the layout's RAM is 0x40000000..0x4FFFFFFF
constexpr uint64_t kEduBar = 1 * MiB;

// Opcodes whose DW0[63:32] is a StreamID (IHI 4.2-4.7: PREFETCH_CONFIG/ADDR, CFGI_STE,
// CFGI_STE_RANGE, CFGI_CD, CFGI_CD_ALL, ATC_INV, PRI_RESP, RESUME, STALL_TERM).
bool has_sid(uint8_t op) {
  return (op >= 0x01 && op <= 0x06) || op == 0x40 || op == 0x41 || op == 0x44 || op == 0x45;
}

qemu::QemuMachine machine_with(std::vector<qemu::Bdf> devices) {
  qemu::QemuMachine m = qemu::aarch64_virt_smmuv3();
  qemu::set_ram_size(m, kRam);
  m.devices = qemu::edu_devices(devices);
  return m;
}

// What QEMU's trace said about one access.
struct Seen {
  std::optional<uint64_t> pa;
  bool aborted = false; // smmuv3_translate_abort: STE.Config = abort
};

// The hexadecimal value after `key` ("sid=" in "sid=0x8" -> 8) in a trace line, if any.
std::optional<uint64_t> field(const std::string& line, const std::string& key) {
  const auto at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  return qemu::parse_hex(line.substr(at + key.size(), line.find(' ', at) - at - key.size()));
}

// hw/arm/trace-events (7.2): smmuv3_translate_success "%s sid=0x%x iova=0x%"PRIx64"
// translated=0x%"PRIx64" perm=0x%x"; smmuv3_translate_bypass "%s sid=0x%x STE bypass
// iova:0x%"PRIx64" is_write=%d" (as printed by 7.2); smmuv3_translate_disable "%s sid=0x%x bypass
// (smmu disabled) iova:0x%"PRIx64 " is_write=%d"; smmuv3_translate_abort "%s translation aborted
// sid=0x%x iova=0x%"PRIx64".
Seen parse_trace(const std::string& log, uint32_t rid, uint64_t addr) {
  Seen s;
  size_t from = 0;
  while (from < log.size()) {
    const size_t end = std::min(log.find('\n', from), log.size());
    const std::string line = log.substr(from, end - from);
    from = end + 1;
    if (field(line, "sid=").value_or(~0ull) != rid) continue;
    if (line.find("smmuv3_translate_success") != std::string::npos) {
      const auto iova = field(line, "iova="), out = field(line, "translated=");
      if (iova && out && !s.pa) s.pa = *out + (addr - *iova);
    } else if (line.find("smmuv3_translate_bypass") != std::string::npos) {
      if (!s.pa) s.pa = field(line, "iova:");
    } else if (line.find("smmuv3_translate_disable") != std::string::npos) {
      if (!s.pa) s.pa = field(line, "iova:");
    } else if (line.find("smmuv3_translate_abort") != std::string::npos) {
      s.aborted = true;
    }
  }
  return s;
}

class QemuSmmuTarget final : public Target {
public:
  QemuSmmuTarget() { probe(); }

  TargetInfo info() const override { return info_; }
  void reset() override { no_iommufd(); }
  uint64_t mem(uint64_t) override { no_iommufd(); }
  iommufd::Observation execute(const iommufd::Call&) override { no_iommufd(); }

  void hw_reset(const hwc::Setup& s) override;
  void hw_write(const std::vector<hw::Write>& ws) override;
  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& entries) override;
  hw::QueueOutcome hw_resume() override;
  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override;
  hw::RecordsOutcome hw_records() override;

private:
  TargetInfo info_;
  qemu::QemuMachine m_;
  std::unique_ptr<qemu::QtestClient> q_;
  std::map<uint32_t, qemu::Edu> edu_; // by StreamID as the scenario names it
  hwc::Setup setup_;
  bool relabel_ = false;
  uint32_t cmdq_prod_ = 0; // index | wrap << log2size

  [[noreturn]] void no_iommufd() const {
    throw TargetError("qemu-smmuv3 has no iommufd area (it lists no iommufd feature)");
  }
  uint32_t label(uint64_t sid) const {
    return relabel_ && sid < 256 ? uint32_t(sid ^ 0x80) : uint32_t(sid);
  }
  uint64_t reg(uint64_t off) const { return m_.iommu_base + off; }
  uint32_t rd(uint64_t off) { return q_->readl(reg(off)); }
  void wr(uint64_t off, uint32_t v) { q_->writel(reg(off), v); }
  void wrq(uint64_t off, uint64_t v) { q_->writeq(reg(off), v); }
  void probe();
  void enable();
  std::vector<uint64_t> relabel_record(std::vector<uint64_t> rec) const;
  std::vector<std::vector<uint64_t>> take_events(bool& overflow);
};

void QemuSmmuTarget::probe() {
  m_ = machine_with({qemu::Bdf{0, 1, 0}});
  auto q = qemu::start(m_);
  const uint32_t idr0 = q->readl(m_.iommu_base + kIdr0), idr1 = q->readl(m_.iommu_base + kIdr1),
                 idr3 = q->readl(m_.iommu_base + kIdr3), idr5 = q->readl(m_.iommu_base + kIdr5),
                 aidr = q->readl(m_.iommu_base + kAidr);
  q->shutdown();
  const sm::Idr0 i0 = sm::decode_idr0(idr0);
  const sm::Idr1 i1 = sm::decode_idr1(idr1);
  const sm::Idr3 i3 = sm::decode_idr3(idr3);
  const sm::Idr5 i5 = sm::decode_idr5(idr5);
  info_.name = "qemu-smmuv3";
  info_.fingerprint = {{"qemu", qemu::version(m_)},
                       {"machine", "virt,iommu=smmuv3 (" + m_.binary + ")"},
                       {"IDR0", fmt::format("{:#010x}", idr0)},
                       {"IDR1", fmt::format("{:#010x}", idr1)},
                       {"IDR3", fmt::format("{:#010x}", idr3)},
                       {"IDR5", fmt::format("{:#010x}", idr5)},
                       {"AIDR", fmt::format("{:#010x}", aidr)}};
  // The features a scenario may ask for (suites/smmuv3/README.md "Headers"), each from the
  // ID register that states it (IHI 6.3.1-6.3.6).
  auto& f = info_.features;
  f.insert("smmuv3");
  if (i0.s1p) f.insert("stage1");
  if (i0.s2p) f.insert("stage2");
  if (i0.s1p && i0.s2p) f.insert("nested");
  if (i3.ril) f.insert("range_inv");
  if (i5.gran16k) f.insert("granule16k");
  if (i5.gran64k) f.insert("granule64k");
  if (i0.ats) f.insert("ats");
  if (i0.hyp) f.insert("hyp");
  if (i0.st_level == 1) f.insert("strtab_2level");
  if (i0.cd2l) f.insert("cd_2level");
  if (i1.ssidsize >= 6) f.insert("substreams");
}

void QemuSmmuTarget::hw_reset(const hwc::Setup& s) {
  if (s.area != "smmuv3") throw TargetError("qemu-smmuv3 runs area smmuv3, not " + s.area);
  q_.reset(); // the previous scenario's QEMU
  edu_.clear();
  setup_ = s;
  relabel_ =
      std::any_of(s.requesters.begin(), s.requesters.end(), [](uint32_t sid) { return sid < 8; });
  if (relabel_ && s.strtab_fmt != 0)
    throw TargetUnsupported("StreamIDs 0-7 need slot 0 of bus 0 (virt's host bridge), and the "
                            "relabelling that avoids it covers linear stream tables only");
  std::vector<qemu::Bdf> bdfs;
  for (uint32_t sid : s.requesters) {
    const uint32_t rid = label(sid);
    if (rid >= 256 || rid < 8)
      throw TargetUnsupported(fmt::format(
          "StreamID {:#x} needs an edu device with requester ID {:#x}, which bus 0 of virt "
          "cannot hold",
          sid, rid));
    bdfs.push_back(qemu::Bdf{0, uint8_t(rid >> 3), uint8_t(rid & 7)});
  }
  m_ = machine_with(bdfs);
  qemu::QtestOptions o;
  o.trace_events = {"smmuv3_translate_success", "smmuv3_translate_bypass", "smmuv3_translate_abort",
                    "smmuv3_translate_disable"};
  q_ = qemu::start(m_, o);
  uint64_t bar = 0;
  for (size_t i = 0; i < bdfs.size(); ++i) {
    qemu::Edu e(*q_, m_, bdfs[i], bar);
    bar = e.bar0() + kEduBar;
    edu_.emplace(s.requesters[i], std::move(e));
  }
  // RAM as the model starts it: zero (virt put its device tree at the base of RAM, hw/arm/
  // boot.c; the structures' area is the first 16 MiB, the rest is untouched RAM).
  q_->memset(0x4000'0000, 16 * MiB, 0);
  enable();
}

// Linux arm_smmu_device_reset: CR0 = 0; table and queue bases; CR2; then CMDQEN, EVTQEN,
// SMMUEN, each acknowledged in CR0ACK (IHI 6.3.9-6.3.10).
void QemuSmmuTarget::enable() {
  wr(kCr0, 0);
  sm::StrtabBase sb;
  sb.addr = setup_.strtab_base;
  wrq(kStrtabBase, sm::encode(sb));
  sm::StrtabBaseCfg cfg;
  cfg.log2size = uint8_t(setup_.strtab_log2);
  cfg.fmt = uint8_t(setup_.strtab_fmt);
  cfg.split = uint8_t(setup_.strtab_split);
  wr(kStrtabBaseCfg, sm::encode(cfg));
  const sm::Layout lay;
  wrq(kCmdqBase, sm::encode(sm::QueueBase{uint8_t(kCmdqLog2), lay.cmdq, false}));
  wr(kCmdqProd, 0);
  wr(kCmdqCons, 0);
  cmdq_prod_ = 0;
  wrq(kEvtqBase, sm::encode(sm::QueueBase{uint8_t(setup_.evtq_log2), lay.evtq, false}));
  wr(kEvtqProd, 0);
  wr(kEvtqCons, 0);
  wr(kCr2, kCr2RecInvSid);
  sm::Cr0 cr0;
  cr0.cmdqen = cr0.evtqen = cr0.smmuen = true; // ATSCHK = 0 (suites/smmuv3/README.md)
  wr(kCr0, sm::encode(cr0));
  if (rd(kCr0Ack) != sm::encode(cr0))
    throw TargetError("SMMU_CR0ACK does not follow CR0", q_->log_excerpt());
}

void QemuSmmuTarget::hw_write(const std::vector<hw::Write>& ws) {
  const uint64_t table_end = setup_.strtab_base + (uint64_t(1) << setup_.strtab_log2) * 64;
  std::vector<hw::Write> out = ws;
  for (auto& w : out)
    if (relabel_ && w.pa >= setup_.strtab_base && w.pa < table_end) {
      const uint64_t off = w.pa - setup_.strtab_base;
      w.pa = setup_.strtab_base + uint64_t(label(off / 64)) * 64 + off % 64;
    }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pa < b.pa; });
  // Contiguous words as one qtest `write`.
  for (size_t i = 0; i < out.size();) {
    size_t j = i + 1;
    while (j < out.size() && out[j].pa == out[j - 1].pa + 8)
      ++j;
    std::vector<uint8_t> bytes;
    for (size_t k = i; k < j; ++k)
      for (int b = 0; b < 8; ++b)
        bytes.push_back(uint8_t(out[k].value >> (8 * b)));
    q_->write(out[i].pa, bytes);
    i = j;
  }
}

std::string cerror_name(uint8_t err) {
  switch (sm::CmdqError(err)) {
  case sm::CmdqError::ill:
    return "CERROR_ILL";
  case sm::CmdqError::abt:
    return "CERROR_ABT";
  case sm::CmdqError::atc_inv_sync:
    return "CERROR_ATC_INV_SYNC";
  default:
    return fmt::format("CERROR_{}", err);
  }
}

// Commands written at PROD, PROD moved once; QEMU consumes them in the CMDQ_PROD write
// (smmuv3_cmdq_consume). consumed = how far CONS moved; the error, when GERROR.CMDQ_ERR is
// active, from CMDQ_CONS.ERR (IHI 6.3.27, 7.1).
hw::QueueOutcome QemuSmmuTarget::hw_submit(const std::vector<uint64_t>& entries) {
  const sm::Layout lay;
  const uint32_t size = 1u << kCmdqLog2, mask = 2 * size - 1;
  const uint32_t start = rd(kCmdqCons) & mask;
  for (size_t i = 0; i + 1 < entries.size(); i += 2) {
    uint64_t w0 = entries[i];
    if (has_sid(uint8_t(w0))) w0 = (w0 & 0xffff'ffffull) | uint64_t(label(w0 >> 32)) << 32;
    const uint64_t at = lay.cmdq + uint64_t(cmdq_prod_ & (size - 1)) * 16;
    q_->writeq(at, w0);
    q_->writeq(at + 8, entries[i + 1]);
    cmdq_prod_ = (cmdq_prod_ + 1) & mask;
  }
  wr(kCmdqProd, cmdq_prod_);
  hw::QueueOutcome out;
  const uint32_t cons = rd(kCmdqCons);
  out.consumed = ((cons & mask) - start) & mask;
  if ((rd(kGerror) ^ rd(kGerrorn)) & kGerrorCmdqErr) out.error = cerror_name(uint8_t(cons >> 24));
  return out;
}

// Linux __arm_smmu_cmdq_skip_err: a CMD_SYNC over the command at CONS, then GERRORN
// acknowledges CMDQ_ERR (arm_smmu_gerror_handler); consumption restarts at CONS (IHI 7.1).
hw::QueueOutcome QemuSmmuTarget::hw_resume() {
  const uint32_t size = 1u << kCmdqLog2, mask = 2 * size - 1;
  const uint32_t gerror = rd(kGerror);
  if (!((gerror ^ rd(kGerrorn)) & kGerrorCmdqErr)) return {};
  const uint32_t start = rd(kCmdqCons) & mask;
  const sm::Cmd2 sync = sm::encode(sm::Command{sm::CmdSync{}});
  const uint64_t at = sm::Layout{}.cmdq + uint64_t(start & (size - 1)) * 16;
  q_->writeq(at, sync[0]);
  q_->writeq(at + 8, sync[1]);
  wr(kGerrorn, gerror);
  wr(kCmdqProd, cmdq_prod_); // QEMU consumes on a PROD write
  hw::QueueOutcome out;
  const uint32_t cons = rd(kCmdqCons);
  out.consumed = ((cons & mask) - start) & mask;
  if ((rd(kGerror) ^ rd(kGerrorn)) & kGerrorCmdqErr) out.error = cerror_name(uint8_t(cons >> 24));
  return out;
}

std::vector<uint64_t> QemuSmmuTarget::relabel_record(std::vector<uint64_t> rec) const {
  if (!rec.empty()) rec[0] = (rec[0] & 0xffff'ffffull) | uint64_t(label(rec[0] >> 32)) << 32;
  return rec;
}

// The records between EVTQ_CONS and EVTQ_PROD, then CONS = PROD (OVACKFLG = OVFLG: the
// overflow is acknowledged, Linux arm_smmu_evtq_thread / queue_sync_cons_ovf).
std::vector<std::vector<uint64_t>> QemuSmmuTarget::take_events(bool& overflow) {
  const unsigned log2 = setup_.evtq_log2;
  const uint32_t prod = rd(kEvtqProd), cons = rd(kEvtqCons);
  const sm::QueuePtr p = sm::decode_queue_ptr(prod, log2), c = sm::decode_queue_ptr(cons, log2);
  overflow = p.ovf != c.ovf;
  const uint32_t mask = (2u << log2) - 1;
  const uint32_t n = (((p.index | uint32_t(p.wrap) << log2) & mask) -
                      ((c.index | uint32_t(c.wrap) << log2) & mask)) &
                     mask;
  std::vector<std::vector<uint64_t>> out;
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t idx = (c.index + k) & ((1u << log2) - 1);
    const uint64_t at = sm::Layout{}.evtq + uint64_t(idx) * 32;
    std::vector<uint64_t> rec;
    for (int w = 0; w < 4; ++w)
      rec.push_back(q_->readq(at + 8 * uint64_t(w)));
    out.push_back(relabel_record(std::move(rec)));
  }
  sm::QueuePtr acked = p;
  acked.err = 0;
  wr(kEvtqCons, sm::encode(acked, log2));
  return out;
}

hw::DmaOutcome QemuSmmuTarget::hw_dma(const hw::DmaRequest& r) {
  auto it = edu_.find(r.sid);
  if (it == edu_.end())
    throw TargetError(fmt::format("no device for StreamID {:#x} (not among the scenario's "
                                  "requesters)",
                                  r.sid));
  q_->take_trace();
  const uint32_t prod_before = rd(kEvtqProd);
  // Four bytes at most (QEMU retries a faulted access 4 bytes at a time, so one access is one
  // translation), within the page.
  const size_t len = std::min<uint64_t>(4, 0x1000 - (r.addr & 0xfff));
  it->second.transfer(r.addr, len, r.write);
  const Seen seen = parse_trace(q_->take_trace(), label(r.sid), r.addr);
  hw::DmaOutcome o;
  if (seen.pa) {
    o.pa = *seen.pa;
    return o;
  }
  // No translation: the access was terminated, with an event (a fault: a new record, or only
  // EVTQ_PROD.OVFLG toggled when the queue was full, IHI 7.4) or silently (an abort: what the
  // device sees of a fault is the same, the event is what tells them apart).
  const uint32_t prod_after = rd(kEvtqProd);
  if (seen.aborted || prod_after == prod_before) {
    o.kind = hw::DmaOutcome::Kind::abort;
    return o;
  }
  o.kind = hw::DmaOutcome::Kind::fault;
  if (!r.drain || (prod_after ^ prod_before) == 1u << 31) return o;
  bool overflow = false;
  auto events = take_events(overflow);
  if (!events.empty()) o.record = std::move(events.front());
  return o;
}

hw::RecordsOutcome QemuSmmuTarget::hw_records() {
  hw::RecordsOutcome out;
  out.records = take_events(out.overflow);
  return out;
}

} // namespace

std::unique_ptr<Target> make_qemu_smmuv3_target() {
  return std::make_unique<QemuSmmuTarget>();
}

} // namespace iommuspec::conformance
