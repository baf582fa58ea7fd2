// The qemu-vtd target: Debian's qemu-system-x86_64 (7.2) `-M q35 -device intel-iommu` driven
// through qtest (conformance/qemu/), one fresh QEMU per scenario, with an edu device at each
// requester's function of bus 0 issuing the accesses.
//
// What each call observes:
//   hw_reset    a QEMU in the scenario's mode (x-scalable-mode=on unless `mode = legacy`), the
//               unit programmed as Linux programs it (RTADDR, SRTP, queued invalidation, global
//               invalidations, TE) with the layout of conformance/suites/vtd/README.md.
//   hw_write    qtest writes into RAM.
//   hw_submit   descriptors at IQT, IQT moved past them; IQH and FSTS read back.
//   hw_resume   Linux's qi_check_fault: a wait descriptor over the failing one at IQH, FSTS.IQE
//               cleared; IQH and FSTS read back (nothing else: see hw_resume).
//   hw_dma      one edu transfer of at most 4 bytes (QEMU splits a faulted access into 4-byte
//               retries, each translated again, qemu/edu.h), its outcome from QEMU's trace
//               (vtd_dmar_translate, vtd_dmar_fault, vtd_fault_disabled) and, for a drained
//               fault, the fault recording register.
//   hw_records  Linux's dmar_fault: the fault recording registers read and cleared, then FSTS.
//
// A requester QEMU cannot give an edu device (bus 0 functions taken by q35 itself, other buses)
// makes the scenario unsupported.
#include "qemu/edu.h"
#include "qemu/machine.h"
#include "qemu/pci.h"
#include "qemu/qtest.h"
#include "targets/qemu_target.h"
#include "vtd/format.h"
#include "vtd/machine.h"

#include <cinttypes>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <optional>
#include <set>

namespace iommuspec::conformance {
namespace {

using qemu::Bdf;

// Register offsets (VT-d 11.4; Linux 6.12 include/linux/intel-iommu.h DMAR_*_REG).
namespace reg {
constexpr uint64_t ver = 0x00, cap = 0x08, ecap = 0x10, gcmd = 0x18, gsts = 0x1c, rtaddr = 0x20,
                   ccmd = 0x28, fsts = 0x34, iqh = 0x80, iqt = 0x88, iqa = 0x90;
} // namespace reg

constexpr uint64_t kMiB = 1024 * 1024;
// The layout (suites/vtd/README.md) reaches 0x0FFFFFFF: 512 MiB of RAM covers it (the 128 MiB
// of qemu::x86_64_q35_intel_iommu do not).
constexpr uint64_t kRamSize = 512 * kMiB;
// The model's unit has a 48-bit MGAW and 4-level second stage (vtd::Features); QEMU 7.2's
// default is aw-bits=39 (SAGAW 3-level only, MGAW 39).
constexpr unsigned kAwBits = 48;
constexpr unsigned kQueueEntries = 256;      // vtd::Layout::iq_log2
constexpr uint64_t kResumeStatus = 0x410800; // status word of hw_resume's wait descriptors
constexpr uint64_t kSetupStatus = 0x410c00;  // status word of hw_reset's wait descriptor
constexpr uint64_t kEduBarSize = 1 * kMiB;   // hw/misc/edu.c: memory_region_init_io(.., 1 MiB)
constexpr int kMaxStatusPolls = 1000;        // GSTS polls (QEMU completes commands at once)
// The trace events the outcome of an access is read from (hw/i386/trace-events).
const std::vector<std::string> kTraceEvents = {"vtd_dmar_translate", "vtd_dmar_fault",
                                               "vtd_fault_disabled", "vtd_switch_address_space"};

// The little-endian bytes of consecutive 64-bit words, as qtest's `write` wants them.
std::string hex_words(const std::vector<uint64_t>& words) {
  std::string s = "0x";
  for (uint64_t w : words)
    for (int b = 0; b < 8; ++b)
      s += fmt::format("{:02x}", (w >> (8 * b)) & 0xff);
  return s;
}

qemu::QemuMachine vtd_machine(bool scalable, const std::vector<Bdf>& edus,
                              const std::vector<std::string>& extra_devices = {}) {
  auto m = qemu::x86_64_q35_intel_iommu(scalable);
  qemu::set_ram_size(m, kRamSize);
  // Accesses the memory core refuses are logged (to the trace file) as guest errors.
  m.args.insert(m.args.end(), {"-d", "guest_errors"});
  m.devices = {
      fmt::format("intel-iommu,aw-bits={}{}", kAwBits, scalable ? ",x-scalable-mode=on" : "")};
  m.devices.insert(m.devices.end(), extra_devices.begin(), extra_devices.end());
  const auto edu = qemu::edu_devices(edus);
  m.devices.insert(m.devices.end(), edu.begin(), edu.end());
  return m;
}

// What the registers of a freshly started unit say, in both modes, read once per process.
struct Probe {
  struct Unit {
    uint32_t ver = 0;
    uint64_t cap = 0, ecap = 0;
  };
  std::string version; // first line of `qemu-system-x86_64 --version`
  Unit legacy, scalable;
  bool scalable_ok = false; // x-scalable-mode=on starts and reports ECAP.SMTS
  std::string scalable_error;
};

Probe::Unit read_unit(bool scalable) {
  const auto m = vtd_machine(scalable, {});
  auto q = qemu::start(m);
  Probe::Unit u;
  u.ver = q->readl(m.iommu_base + reg::ver);
  u.cap = q->readq(m.iommu_base + reg::cap);
  u.ecap = q->readq(m.iommu_base + reg::ecap);
  return u;
}

Probe run_probe() {
  Probe p;
  const auto m = vtd_machine(false, {});
  p.version = qemu::version(m);
  p.legacy = read_unit(false);
  try {
    p.scalable = read_unit(true);
    p.scalable_ok = vtd::decode_ecap_reg(p.scalable.ecap).smts;
    if (!p.scalable_ok) p.scalable_error = "ECAP.SMTS is clear with x-scalable-mode=on";
  } catch (const TargetError& e) {
    p.scalable_error = e.what();
  }
  return p;
}

// The probe, made by the first target of the process (a TargetError when QEMU does not
// start: the next target tries again).
const Probe& probe() {
  static std::mutex mu;
  static std::optional<Probe> p;
  std::lock_guard lock(mu);
  if (!p) p = run_probe();
  return *p;
}

// The features the registers report (the names of hwc::hw_features("vtd")).
std::set<std::string> features_of(const Probe& p) {
  const auto lcap = vtd::decode_cap_reg(p.legacy.cap);
  const auto lecap = vtd::decode_ecap_reg(p.legacy.ecap);
  std::set<std::string> f = {"vtd", "legacy"};
  // VT-d 6.5: the register-based invalidation interface "is supported by hardware
  // implementations of this architecture with Major Version 5 or lower (VER_REG)".
  if (((p.legacy.ver >> 4) & 0xf) <= 5) f.insert("register_inv");
  // Every request of an edu device is a request without PASID (user-mode, non-execute: the
  // PASID TLP prefix carries privilege and execute, model/vtd/machine.cpp access_of), so the
  // target has none of the dma_* features; VT-d scenarios need only dma_ssid of them.
  // Legacy mode translates with the second stage; 4-level tables need SAGAW bit 2 (the
  // scenarios' default, vtd::Features::sagaw).
  bool second = (lcap.sagaw & 0b0100) != 0;
  bool pt = lecap.pt;
  bool superpage = (lcap.sllps & 0b11) == 0b11; // 2M and 1G second-stage leaves
  bool five = (lcap.sagaw & 0b1000) != 0;
  if (p.scalable_ok) {
    const auto scap = vtd::decode_cap_reg(p.scalable.cap);
    const auto secap = vtd::decode_ecap_reg(p.scalable.ecap);
    f.insert("scalable");
    second = second && secap.slts;
    pt = pt && secap.pt;
    superpage = superpage && (scap.sllps & 0b11) == 0b11;
    five = five && (scap.sagaw & 0b1000) != 0;
    if (secap.flts) {
      f.insert("first_stage");
      superpage = superpage && scap.fl1gp;
      five = five && scap.fl5lp;
    }
    if (secap.nest) f.insert("nested");
    if (secap.pasid) f.insert("pasid");
    if (secap.dt) f.insert("dev_tlb");
  } else if (lecap.dt) {
    f.insert("dev_tlb");
  }
  if (second) f.insert("second_stage");
  if (pt) f.insert("pass_through");
  if (superpage) f.insert("superpage");
  if (five) f.insert("five_level");
  return f;
}

// Where an edu device with this requester ID goes, or why it cannot.
Bdf place(uint32_t sid) {
  const Bdf b{uint8_t(sid >> 8), uint8_t((sid >> 3) & 0x1f), uint8_t(sid & 7)};
  if (sid > 0xffff) throw TargetUnsupported(fmt::format("requester {:#x} is not a source-id", sid));
  if (b.bus != 0)
    throw TargetUnsupported(fmt::format(
        "requester {:#06x} ({}) is on bus {}: the q35 machine places the edu device on bus 0 only",
        sid, b.str(), b.bus));
  if (b.dev == 0)
    throw TargetUnsupported(fmt::format(
        "requester {:#06x} ({}): device 0 of bus 0 is q35's host bridge (mch)", sid, b.str()));
  if (b.dev == 0x1f)
    throw TargetUnsupported(
        fmt::format("requester {:#06x} ({}): device 31 of bus 0 is q35's ICH9 (LPC, SATA, SMBus)",
                    sid, b.str()));
  return b;
}

// One line of QEMU's trace, parsed where the target reads it.
struct TraceEvent {
  enum class Kind : uint8_t { translate, fault, fault_disabled, rejected, switch_as } kind;
  Bdf dev;            // translate, switch_as
  uint16_t sid = 0;   // fault
  uint64_t iova = 0;  // translate
  uint64_t gpa = 0;   // translate: the page (of the leaf's size)
  uint64_t mask = 0;  // translate: the offset bits within it
  bool iommu = false; // switch_as: the device now translates through the unit
};

std::optional<TraceEvent> parse_event(const std::string& line) {
  TraceEvent e{};
  unsigned bus = 0, dev = 0, fn = 0, on = 0, sid = 0, reason = 0, write = 0;
  uint64_t a = 0, b = 0, c = 0;
  auto after = [&](const char* name) -> const char* {
    const auto at = line.find(name);
    return at == std::string::npos ? nullptr : line.c_str() + at + std::strlen(name);
  };
  // "vtd_dmar_translate dev 00:02.00 iova 0x10000 -> gpa 0x2000000 mask 0xfff"
  if (const char* s = after("vtd_dmar_translate ")) {
    if (std::sscanf(s, "dev %x:%x.%x iova %" SCNx64 " -> gpa %" SCNx64 " mask %" SCNx64, &bus, &dev,
                    &fn, &a, &b, &c) != 6)
      return std::nullopt;
    e.kind = TraceEvent::Kind::translate;
    e.dev = {uint8_t(bus), uint8_t(dev), uint8_t(fn)};
    e.iova = a;
    e.gpa = b;
    e.mask = c;
    return e;
  }
  // "vtd_dmar_fault sid 0x10 fault 6 addr 0x11000 write 0"
  if (const char* s = after("vtd_dmar_fault ")) {
    if (std::sscanf(s, "sid %x fault %u addr %" SCNx64 " write %u", &sid, &reason, &a, &write) != 4)
      return std::nullopt;
    e.kind = TraceEvent::Kind::fault;
    e.sid = uint16_t(sid);
    return e;
  }
  if (after("vtd_fault_disabled")) {
    e.kind = TraceEvent::Kind::fault_disabled;
    return e;
  }
  // `-d guest_errors`: an access the memory core refused (memory_region_access_valid on
  // io_mem_unassigned, where address_space_translate_iommu sends an access whose translation
  // failed or lacks the access's permission): "Invalid write at addr 0x10000, size 4, region
  // '(null)', reason: rejected".
  if (line.starts_with("Invalid read at addr ") || line.starts_with("Invalid write at addr ")) {
    e.kind = TraceEvent::Kind::rejected;
    return e;
  }
  // "vtd_switch_address_space Device 00:02.0 switching address space (iommu enabled=1)"
  if (const char* s = after("vtd_switch_address_space ")) {
    if (std::sscanf(s, "Device %x:%x.%x switching address space (iommu enabled=%u)", &bus, &dev,
                    &fn, &on) != 4)
      return std::nullopt;
    e.kind = TraceEvent::Kind::switch_as;
    e.dev = {uint8_t(bus), uint8_t(dev), uint8_t(fn)};
    e.iommu = on != 0;
    return e;
  }
  return std::nullopt;
}

class QemuVtdTarget final : public Target {
public:
  QemuVtdTarget() : probe_(probe()), features_(features_of(probe_)) {}
  ~QemuVtdTarget() override { stop(); }

  TargetInfo info() const override {
    TargetInfo i;
    i.name = "qemu-vtd";
    i.features = features_;
    auto unit = [](const Probe::Unit& u) {
      return fmt::format("VER {:#x} CAP {:#018x} ECAP {:#018x}", u.ver, u.cap, u.ecap);
    };
    i.fingerprint = {
        {"qemu", probe_.version},
        {"machine", fmt::format("q35, intel-iommu aw-bits={}, {} MiB, edu devices behind it",
                                kAwBits, kRamSize / kMiB)},
        {"legacy", unit(probe_.legacy)},
        {"scalable",
         probe_.scalable_ok ? unit(probe_.scalable) : "unavailable: " + probe_.scalable_error}};
    return i;
  }

  // iommufd scenarios are not this target's (it lists no iommufd features).
  void reset() override { throw TargetError("qemu-vtd runs hardware-level (vtd) scenarios only"); }
  uint64_t mem(uint64_t) override { throw TargetError("qemu-vtd has no iommufd"); }
  iommufd::Observation execute(const iommufd::Call&) override {
    throw TargetError("qemu-vtd has no iommufd");
  }

  void hw_reset(const hwc::Setup& s) override {
    stop();
    if (s.area != "vtd") throw TargetError("qemu-vtd has no area " + s.area);
    if (!s.legacy && !probe_.scalable_ok)
      throw TargetUnsupported("scalable mode is unavailable: " + probe_.scalable_error);
    std::vector<Bdf> bdfs;
    for (uint32_t sid : s.requesters)
      bdfs.push_back(place(sid));
    legacy_ = s.legacy;
    registers_ = s.register_invalidation;
    m_ = vtd_machine(!legacy_, bdfs);
    qemu::QtestOptions o;
    o.trace_events = kTraceEvents;
    q_ = qemu::start(m_, o);
    uint64_t bar_at = 0;
    for (const Bdf& b : bdfs) {
      auto e = std::make_unique<qemu::Edu>(*q_, m_, b, bar_at);
      bar_at = e->bar0() + kEduBarSize;
      edus_[b.rid()] = std::move(e);
    }
    program_unit();
    absorb(q_->take_trace());
  }

  void hw_write(const std::vector<hw::Write>& ws) override {
    // Runs of consecutive words, one qtest `write` each, all in one round trip.
    std::vector<std::string> lines;
    for (size_t i = 0; i < ws.size();) {
      std::vector<uint64_t> run = {ws[i].value};
      size_t j = i + 1;
      while (j < ws.size() && ws[j].pa == ws[j - 1].pa + 8)
        run.push_back(ws[j++].value);
      lines.push_back(
          fmt::format("write {:#x} {:#x} {}", ws[i].pa, 8 * run.size(), hex_words(run)));
      i = j;
    }
    for (const auto& w : ws)
      shadow_[w.pa] = w.value;
    if (!lines.empty()) client().commands(lines);
  }

  // VT-d 11.4.6.1 CCMD_REG (ICC 63, CIRG 62:61, CAIG 60:59, FM 33:32, SID 31:16, DID 15:0),
  // 11.4.6.3-4 IOTLB_REG at ECAP.IRO * 16 + 8 (IVT 63, IIRG 61:60, IAIG 58:57, DR 49, DW 48,
  // DID 47:32) after IVA_REG at ECAP.IRO * 16 (ADDR 63:12, IH 6, AM 5:0); Linux iommu.h
  // DMA_CCMD_* / DMA_TLB_* and __iommu_flush_context / __iommu_flush_iotlb: write, then poll
  // until ICC / IVT reads 0 (the invalidation has completed).
  uint8_t hw_register_invalidate(const std::vector<uint64_t>& e) override {
    auto& q = client();
    const auto d = vtd::decode_qi_descriptor(vtd::QiDesc{e.at(0), e.at(1), 0, 0});
    if (!d) throw TargetError("reginv: not a context-cache or IOTLB descriptor");
    const uint64_t base = m_.iommu_base;
    auto poll = [&](uint64_t at, const char* what) {
      for (int i = 0; i < kMaxStatusPolls; ++i)
        if (const uint64_t v = q.readq(at); !(v >> 63)) return v;
      throw TargetError(fmt::format("{} never completed", what), q.log_excerpt());
    };
    if (const auto* c = std::get_if<vtd::ContextCacheInv>(&*d)) {
      q.writeq(base + reg::ccmd, uint64_t(1) << 63 | uint64_t(c->g) << 61 |
                                     uint64_t(c->fm & 3) << 32 | uint64_t(c->sid) << 16 | c->did);
      return uint8_t((poll(base + reg::ccmd, "CCMD_REG.ICC") >> 59) & 3);
    }
    if (const auto* t = std::get_if<vtd::IotlbInv>(&*d)) {
      const uint64_t iro = ((probe_.legacy.ecap >> 8) & 0x3ff) * 16;
      q.writeq(base + iro, (t->addr & ~uint64_t(0xfff)) | uint64_t(t->ih) << 6 | (t->am & 0x3f));
      q.writeq(base + iro + 8, uint64_t(1) << 63 | uint64_t(t->g) << 60 | uint64_t(t->dr) << 49 |
                                   uint64_t(t->dw) << 48 | uint64_t(t->did) << 32);
      return uint8_t((poll(base + iro + 8, "IOTLB_REG.IVT") >> 57) & 3);
    }
    throw TargetError("reginv: not a context-cache or IOTLB descriptor");
  }

  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& entries) override {
    const size_t width = legacy_ ? 2 : 4;
    const size_t n = entries.size() / width;
    if (n >= kQueueEntries)
      throw TargetError(
          fmt::format("{} descriptors do not fit the {}-entry queue", n, kQueueEntries));
    // The descriptors at IQT onwards (wrapping), then IQT past them (VT-d 6.5.2: "Software
    // increments this register after writing one or more invalidation descriptors").
    std::vector<std::string> lines;
    for (size_t k = 0; k < n; ++k) {
      const std::vector<uint64_t> d(entries.begin() + std::ptrdiff_t(k * width),
                                    entries.begin() + std::ptrdiff_t((k + 1) * width));
      lines.push_back(fmt::format("write {:#x} {:#x} {}", slot((tail_ + k) % kQueueEntries),
                                  8 * width, hex_words(d)));
    }
    const unsigned head = read_iqh();
    tail_ = unsigned((tail_ + n) % kQueueEntries);
    lines.push_back(fmt::format("writeq {:#x} {:#x}", m_.iommu_base + reg::iqt,
                                vtd::encode(vtd::IqPointer{uint16_t(tail_)}, width_())));
    client().commands(lines);
    return queue_outcome(head);
  }

  // Linux 6.12 dmar.c qi_check_fault (:1298-1316): with FSTS.IQE set and IQH at the failing
  // descriptor, copy a wait descriptor over it and clear IQE, nothing more: Linux writes IQT
  // again only for its next submission. VT-d 6.5.2: "Hardware fetches descriptors from the IQ
  // in FIFO order starting from the Head Register if all of the following conditions are
  // true ... QIES ... IQ is not empty ... no pending Invalidation Queue Error or Invalidation
  // Time-out Error", so a unit goes on by itself once IQE is clear; what IQH shows then is
  // what this reports (QEMU 7.2 fetches only on an IQT write: vtd_handle_fsts_write's FIXME).
  hw::QueueOutcome hw_resume() override {
    const auto fsts = vtd::decode_fsts(read32(reg::fsts));
    if (!fsts.iqe) return {0, fsts.ite ? "ITE" : fsts.ice ? "ICE" : ""};
    const unsigned head = read_iqh();
    vtd::InvWait w;
    w.sw = true;
    w.status_addr = kResumeStatus;
    w.status_data = ++resumes_;
    const auto d = vtd::encode(vtd::QiDescriptor{w});
    const std::vector<uint64_t> words(d.begin(), d.begin() + (legacy_ ? 2 : 4));
    const std::string lines[] = {
        fmt::format("write {:#x} {:#x} {}", slot(head), 8 * words.size(), hex_words(words)),
        fmt::format("writel {:#x} {:#x}", m_.iommu_base + reg::fsts,
                    vtd::encode(vtd::FstsReg{.iqe = true}))};
    client().commands(lines);
    return queue_outcome(head);
  }

  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override {
    auto it = edus_.find(r.sid);
    if (it == edus_.end()) throw TargetError(fmt::format("no edu device for sid {:#x}", r.sid));
    if (r.ssid) throw TargetError("edu cannot issue requests with PASID");
    const Bdf dev = it->second->bdf();
    absorb(client().take_trace());
    const bool translating = translating_.count(dev.rid()) ? translating_.at(dev.rid()) : true;
    // One access, within its page: QEMU retries a faulted access 4 bytes at a time, each one
    // translated (and faulting) again (qemu/edu.h).
    const size_t len = std::min<uint64_t>(4, 0x1000 - (r.addr & 0xfff));
    it->second->transfer(r.addr, len, r.write);
    const std::string trace = client().take_trace();
    const auto events = absorb(trace);
    hw::DmaOutcome o;
    const TraceEvent* fault = nullptr;
    const TraceEvent* translated = nullptr;
    bool disabled = false, rejected = false;
    for (const auto& e : events) {
      if (e.kind == TraceEvent::Kind::fault && !fault) fault = &e;
      if (e.kind == TraceEvent::Kind::fault_disabled) disabled = true;
      if (e.kind == TraceEvent::Kind::rejected) rejected = true;
      if (e.kind == TraceEvent::Kind::translate && e.dev == dev && !translated) translated = &e;
    }
    if (fault) {
      if (fault->sid != r.sid)
        throw TargetError(
            fmt::format("the access of {:#x} traced a fault of sid {:#x}", r.sid, fault->sid),
            trace);
      o.kind = hw::DmaOutcome::Kind::fault;
      if (r.drain) o.record = take_record();
      return o;
    }
    // A translation to an address outside guest RAM is refused by the memory core too: the
    // unit translated it, there is nothing there.
    if (translated && rejected && (translated->gpa | (r.addr & translated->mask)) >= kRamSize)
      rejected = false;
    if (disabled || rejected) {
      // Blocked with nothing recorded: FPD set (vtd_fault_disabled), or refused by the memory
      // core after a translation without the access's permission (QEMU 7.2 checks R/W only
      // when it walks, not on an IOTLB hit: vtd_do_iommu_translate) or one QEMU failed without
      // a record (vtd_report_dmar_fault drops VTD_FR_RESERVED_ERR).
      o.kind = hw::DmaOutcome::Kind::abort;
      return o;
    }
    if (translated) {
      o.pa = translated->gpa | (r.addr & translated->mask);
    } else if (!translating) {
      // The device's address space is QEMU's direct one (translation off, or the pass-through
      // fast path of vtd_pt_enable_fast_path): no trace, the address is used as it is.
      o.pa = r.addr;
    } else {
      throw TargetError(fmt::format("the access of {:#x} at {:#x} left no trace", r.sid, r.addr),
                        client().log_excerpt());
    }
    if (r.write) restore(o.pa, len);
    return o;
  }

  // Linux 6.12 dmar.c dmar_fault (:1958-2031): from FSTS.FRI on, each fault recording register
  // with F set is read and F cleared (W1C at byte 12), then PFO and PPF are cleared. The model
  // reads FSTS.PFO as `overflow` and clears it with the records (vtd::Machine::drain_faults),
  // so PFO is cleared here even when no record is pending (dmar_fault skips the registers and
  // the FSTS write then).
  hw::RecordsOutcome hw_records() override {
    hw::RecordsOutcome out;
    const auto fsts = vtd::decode_fsts(read32(reg::fsts));
    out.overflow = fsts.pfo;
    const auto cap = vtd::decode_cap_reg(probe_cap());
    const unsigned n = vtd::cap_num_fault_regs(cap);
    unsigned index = fsts.ppf ? fsts.fri % n : 0;
    for (unsigned k = 0; k < n; ++k, index = (index + 1) % n) {
      auto rec = read_record(index);
      if (!(rec[1] >> 63)) break;
      out.records.push_back(std::move(rec));
    }
    client().writel(m_.iommu_base + reg::fsts, vtd::encode(vtd::FstsReg{.pfo = true, .ppf = true}));
    return out;
  }

private:
  qemu::QtestClient& client() {
    if (!q_) throw TargetError("qemu-vtd: hw_reset first");
    return *q_;
  }
  void stop() {
    edus_.clear();
    if (q_) q_->shutdown();
    q_.reset();
    shadow_.clear();
    translating_.clear();
    pending_.clear();
    tail_ = 0;
  }
  vtd::QiWidth width_() const { return legacy_ ? vtd::QiWidth::d128 : vtd::QiWidth::d256; }
  uint64_t slot(unsigned index) const {
    return vtd::Layout{}.iq + uint64_t(index) * (legacy_ ? 16 : 32);
  }
  uint64_t probe_cap() const { return legacy_ ? probe_.legacy.cap : probe_.scalable.cap; }
  uint32_t read32(uint64_t off) { return client().readl(m_.iommu_base + off); }
  unsigned read_iqh() {
    return vtd::decode_iq_pointer(client().readq(m_.iommu_base + reg::iqh), width_()).index;
  }

  // How far IQH moved since `head`, and the error FSTS reports.
  hw::QueueOutcome queue_outcome(unsigned head) {
    const std::string lines[] = {fmt::format("readq {:#x}", m_.iommu_base + reg::iqh),
                                 fmt::format("readl {:#x}", m_.iommu_base + reg::fsts)};
    const auto replies = client().commands(lines);
    const auto iqh = qemu::parse_hex(replies[0]);
    const auto fsts_raw = qemu::parse_hex(replies[1]);
    if (!iqh || !fsts_raw) throw TargetError("malformed IQH/FSTS reply", client().log_excerpt());
    const unsigned now = vtd::decode_iq_pointer(*iqh, width_()).index;
    const auto fsts = vtd::decode_fsts(uint32_t(*fsts_raw));
    hw::QueueOutcome out;
    out.consumed = (now + kQueueEntries - head) % kQueueEntries;
    out.error = fsts.iqe ? "IQE" : fsts.ite ? "ITE" : fsts.ice ? "ICE" : "";
    return out;
  }

  std::vector<uint64_t> read_record(unsigned index) {
    const uint64_t at =
        m_.iommu_base + vtd::cap_fault_reg_offset(vtd::decode_cap_reg(probe_cap())) + 16ull * index;
    const std::string lines[] = {fmt::format("readq {:#x}", at),
                                 fmt::format("readq {:#x}", at + 8)};
    const auto replies = client().commands(lines);
    const auto lo = qemu::parse_hex(replies[0]), hi = qemu::parse_hex(replies[1]);
    if (!lo || !hi) throw TargetError("malformed FRCD reply", client().log_excerpt());
    if (*hi >> 63) client().writel(at + 12, 1u << 31); // F, write 1 to clear
    return {*lo, *hi};
  }

  // A drained fault: its record, read and cleared (FRCD_REG.F W1C, which clears PPF too). A
  // fault the trace shows with no record pending reads as the empty registers (F clear).
  std::vector<uint64_t> take_record() {
    const auto fsts = vtd::decode_fsts(read32(reg::fsts));
    const unsigned n = vtd::cap_num_fault_regs(vtd::decode_cap_reg(probe_cap()));
    return read_record(fsts.ppf ? fsts.fri % n : 0);
  }

  // The bytes a write access changed, put back as the scenario wrote them (the model's memory
  // is what the steps wrote; device writes change nothing in it).
  void restore(uint64_t pa, size_t len) {
    const auto ram = vtd::Layout{}.ram;
    const uint64_t first = pa & ~uint64_t(7), last = (pa + len - 1) & ~uint64_t(7);
    if (first < ram.start || last + 7 > ram.last) return;
    std::vector<uint64_t> words;
    for (uint64_t a = first; a <= last; a += 8) {
      const auto w = shadow_.find(a);
      words.push_back(w == shadow_.end() ? 0 : w->second);
    }
    client().write(first,
                   std::span(reinterpret_cast<const uint8_t*>(words.data()), 8 * words.size()));
  }

  // Trace lines since the last call: address-space switches update translating_, the rest is
  // returned in order.
  std::vector<TraceEvent> absorb(const std::string& text) {
    pending_ += text;
    std::vector<TraceEvent> out;
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      const auto e = parse_event(pending_.substr(start, nl - start));
      if (!e) continue;
      if (e->kind == TraceEvent::Kind::switch_as)
        translating_[e->dev.rid()] = e->iommu;
      else
        out.push_back(*e);
    }
    pending_.erase(0, start);
    return out;
  }

  uint32_t wait_gsts(uint32_t bit, bool set, const char* what) {
    for (int i = 0; i < kMaxStatusPolls; ++i) {
      const uint32_t sts = read32(reg::gsts);
      if (bool(sts & bit) == set) return sts;
    }
    throw TargetError(fmt::format("GSTS never showed {}", what), client().log_excerpt());
  }

  // The unit as Linux 6.12 brings it up (iommu.c init_dmars / intel_iommu_init_qi, then
  // iommu_set_root_entry, then iommu_enable_translation), with the layout's addresses.
  void program_unit() {
    auto& q = client();
    const uint64_t base = m_.iommu_base;
    const vtd::Layout layout;
    // The structures the unit reads, zeroed (a fresh QEMU's RAM is zero: guest RAM is
    // anonymous memory and the -bios stub loads nothing into it; zeroing the 255 MiB of the
    // layout through qtest would cost ~200 ms a scenario, these 3 MiB ~3 ms).
    q.memset(layout.root_table, 0x420000 - layout.root_table, 0);
    uint32_t gcmd = 0;
    if (registers_) {
      // Register-based invalidation: queued invalidation stays off (VT-d 6.5.1); the root
      // table, then the global context-cache and IOTLB invalidations through the registers
      // (iommu.c iommu_set_root_entry with flush.flush_context / flush_iotlb =
      // __iommu_flush_context / __iommu_flush_iotlb when QI is unavailable).
      q.writeq(base + reg::rtaddr,
               vtd::encode(vtd::RtaddrReg{.smt = false, .rta = layout.root_table}));
      q.writel(base + reg::gcmd, vtd::encode(vtd::GcmdReg{.srtp = true}));
      wait_gsts(vtd::encode(vtd::GstsReg{.rtps = true}), true, "RTPS");
      for (const vtd::QiDescriptor& d :
           {vtd::QiDescriptor{vtd::ContextCacheInv{vtd::CcGranularity::global}},
            vtd::QiDescriptor{vtd::IotlbInv{vtd::IotlbGranularity::global}}}) {
        const auto w = vtd::encode(d);
        hw_register_invalidate({w[0], w[1]});
      }
      gcmd |= vtd::encode(vtd::GcmdReg{.te = true});
      q.writel(base + reg::gcmd, gcmd);
      wait_gsts(vtd::encode(vtd::GstsReg{.tes = true}), true, "TES");
      return;
    }
    // dmar.c __dmar_enable_qi (:1652-1687): IQT = 0; IQA = queue | DW=1, QS=1 when ECAP.SMTS
    // (256 descriptors of 256 bits), else QS=0 (256 of 128 bits); GCMD.QIE; wait GSTS.QIES.
    q.writel(base + reg::iqt, 0);
    vtd::IqaReg iqa;
    iqa.iqa = layout.iq;
    iqa.dw = width_();
    iqa.qs = legacy_ ? 0 : 1;
    q.writeq(base + reg::iqa, vtd::encode(iqa));
    gcmd |= vtd::encode(vtd::GcmdReg{.qie = true});
    q.writel(base + reg::gcmd, gcmd);
    wait_gsts(vtd::encode(vtd::GstsReg{.qies = true}), true, "QIES");
    // iommu.c iommu_set_root_entry (:1120-1152): RTADDR = root table | TTM scalable when
    // sm_supported, GCMD.SRTP (one-shot, with the persistent bits), wait GSTS.RTPS; then
    // (CAP.ESRTPS clear) global context-cache, PASID-cache (scalable) and IOTLB invalidations,
    // each completed by qi_submit_sync's wait descriptor (dmar.c :1436-1444).
    q.writeq(base + reg::rtaddr,
             vtd::encode(vtd::RtaddrReg{.smt = !legacy_, .rta = layout.root_table}));
    q.writel(base + reg::gcmd, gcmd | vtd::encode(vtd::GcmdReg{.srtp = true}));
    wait_gsts(vtd::encode(vtd::GstsReg{.rtps = true}), true, "RTPS");
    if (!vtd::decode_cap_reg(probe_cap()).esrtps) {
      std::vector<vtd::QiDescriptor> ds = {vtd::ContextCacheInv{vtd::CcGranularity::global}};
      if (!legacy_) ds.push_back(vtd::PasidCacheInv{vtd::PasidCacheGranularity::global});
      ds.push_back(vtd::IotlbInv{vtd::IotlbGranularity::global});
      vtd::InvWait w;
      w.sw = true;
      w.status_addr = kSetupStatus;
      w.status_data = 1;
      ds.push_back(w);
      std::vector<uint64_t> words;
      for (const auto& d : ds) {
        const auto e = vtd::encode(d);
        words.insert(words.end(), e.begin(), e.begin() + (legacy_ ? 2 : 4));
      }
      const auto o = hw_submit(words);
      if (o.consumed != ds.size() || !o.error.empty() || q.readl(kSetupStatus) != 1)
        throw TargetError(fmt::format("the set-up invalidations: {} of {} consumed, error '{}'",
                                      o.consumed, ds.size(), o.error),
                          q.log_excerpt());
    }
    // iommu.c iommu_enable_translation (:1349-1363): GCMD.TE, wait GSTS.TES.
    gcmd |= vtd::encode(vtd::GcmdReg{.te = true});
    q.writel(base + reg::gcmd, gcmd);
    wait_gsts(vtd::encode(vtd::GstsReg{.tes = true}), true, "TES");
  }

  const Probe& probe_;
  const std::set<std::string> features_;
  bool registers_ = false; // register-based invalidation, queued invalidation off
  qemu::QemuMachine m_;
  std::unique_ptr<qemu::QtestClient> q_;
  std::map<uint32_t, std::unique_ptr<qemu::Edu>> edus_; // by requester ID
  bool legacy_ = false;
  unsigned tail_ = 0;                    // IQT, in descriptors
  uint32_t resumes_ = 0;                 // status data of hw_resume's wait descriptors
  std::map<uint64_t, uint64_t> shadow_;  // every word the scenario wrote
  std::map<uint16_t, bool> translating_; // requester -> its address space is the unit's
  std::string pending_;                  // a trace line not yet complete
};

} // namespace

std::unique_ptr<Target> make_qemu_vtd_target() {
  return std::make_unique<QemuVtdTarget>();
}

} // namespace iommuspec::conformance
