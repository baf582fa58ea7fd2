// The SMMUv3 machine. Sources, cited at each rule:
//   [A]  Arm IHI 0070 (SMMUv3), by section name where the model relies on the architecture.
//   [AA] Arm ARM (DDI 0487), TLB maintenance: "TLBI IPAS2*: not required to apply to caching
//        structures that combine stage 1 and stage 2 translation table entries".
//   [L]  linux-source-6.12 drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c, by function.
//   [QV] QEMU hw/arm/smmuv3.c, [QC] hw/arm/smmu-common.c, by function.
#include "smmuv3/machine.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t bit(unsigned n) {
  return n >= 64 ? 0 : uint64_t(1) << n;
}

// ---- Cache entries and what covers them --------------------------------------------------

enum class Kind : uint8_t { ste, cd, s1_leaf, s1_walk, s2_leaf, s2_walk, combined };

struct Key {
  Kind kind = Kind::ste;
  uint32_t sid = 0, ssid = 0;
  uint16_t vmid = 0, asid = 0;
  bool global = false; // stage-1 leaf with nG = 0: matches every ASID
  uint64_t base = 0, size = 0;
  int level = 0; // of the descriptor: the leaf's level, or the table descriptor's level
};

bool is_s1(Kind k) {
  return k == Kind::s1_leaf || k == Kind::s1_walk || k == Kind::combined;
}
bool is_tlb(Kind k) {
  return k != Kind::ste && k != Kind::cd;
}
bool is_leaf(Kind k) {
  return k == Kind::s1_leaf || k == Kind::s2_leaf || k == Kind::combined;
}

// Input range of a TLBI by address. TG = 0 (or no IDR3.RIL): the one address. Otherwise
// the range form: (NUM + 1) * 2^SCALE pages of the TG granule from Addr ([L]
// arm_smmu_tlb_inv_range_cmd builds it so: "num_pages = NUM+1 << SCALE", tg = (log2(granule)
// - 10) / 2, i.e. 1 = 4K, 2 = 16K, 3 = 64K).
struct Span {
  uint64_t lo, hi; // inclusive
};
Span tlbi_span(uint64_t addr, uint8_t tg, uint8_t scale, uint8_t num, bool ril) {
  if (tg == 0 || !ril) return {addr, addr};
  const unsigned shift = 10 + 2 * tg;
  const uint64_t len = (uint64_t(num) + 1) << (scale + shift);
  const uint64_t hi = addr + len - 1;
  return {addr, hi < addr ? ~uint64_t(0) : hi};
}
bool overlaps(const Span& s, const Key& k) {
  return s.lo <= k.base + (k.size - 1) && k.base <= s.hi;
}
// TTL (with TG != 0) says the leaf's level: entries at other levels, and walk-cache entries,
// are not required to go ([AA] TLBI "TTL hint"; the model takes the weaker reading, so an
// implementation that invalidates them anyway conforms).
bool ttl_ok(uint8_t tg, uint8_t ttl, const Key& k) {
  if (tg == 0 || ttl == 0) return true;
  return is_leaf(k.kind) && k.level == ttl;
}

template <class C>
bool by_va(const C& c, const Key& k, bool asid_match, bool ril) {
  if (!is_s1(k.kind) || k.vmid != c.vmid || !asid_match) return false;
  // Leaf = 1: only entries for the last level (leaf) ([A] CMD_TLBI_NH_VA "Leaf").
  if (c.leaf && k.kind == Kind::s1_walk) return false;
  return ttl_ok(c.tg, c.ttl, k) && overlaps(tlbi_span(c.addr, c.tg, c.scale, c.num, ril), k);
}

bool cfg_sid(const Key& k, uint32_t lo, uint32_t hi) {
  return (k.kind == Kind::ste || k.kind == Kind::cd) && k.sid >= lo && k.sid <= hi;
}

bool covers(const Command& cmd, const Key& k, const Features& f) {
  return std::visit(
      [&](const auto& c) -> bool {
        using T = std::decay_t<decltype(c)>;
        // Configuration: CFGI_STE invalidates the STE and the CDs fetched through it
        // ([L] arm_smmu_write_ste sends only CFGI_STE when S1ContextPtr changes; [QV]
        // smmuv3_flush_config drops the stream's whole configuration).
        if constexpr (std::is_same_v<T, CmdCfgiSte>) return cfg_sid(k, c.sid, c.sid);
        if constexpr (std::is_same_v<T, CmdCfgiSteRange>) {
          // 2^(Range+1) StreamIDs aligned ([QV] CFGI_STE_RANGE; Range = 31: all, [L] CFGI_ALL)
          const uint64_t mask = c.range >= 31 ? 0xffffffffull : bit(c.range + 1) - 1;
          const uint64_t lo = c.sid & ~mask;
          return cfg_sid(k, uint32_t(lo), uint32_t(std::min<uint64_t>(lo + mask, 0xffffffff)));
        }
        if constexpr (std::is_same_v<T, CmdCfgiCd>)
          return k.kind == Kind::cd && k.sid == c.sid && k.ssid == c.ssid;
        if constexpr (std::is_same_v<T, CmdCfgiCdAll>) return k.kind == Kind::cd && k.sid == c.sid;
        // TLB, by VMID/ASID/VA ([A] CMD_TLBI_NH_*; combined entries are stage-1 scoped).
        if constexpr (std::is_same_v<T, CmdTlbiNhAll>) return is_s1(k.kind) && k.vmid == c.vmid;
        if constexpr (std::is_same_v<T, CmdTlbiNhAsid>)
          return is_s1(k.kind) && k.vmid == c.vmid && !k.global && k.asid == c.asid;
        if constexpr (std::is_same_v<T, CmdTlbiNhVa>)
          return by_va(c, k, k.global || k.asid == c.asid, f.range_inv);
        if constexpr (std::is_same_v<T, CmdTlbiNhVaa>) return by_va(c, k, true, f.range_inv);
        // S12_VMALL: every TLB entry of the VMID, both stages ([A] CMD_TLBI_S12_VMALL).
        if constexpr (std::is_same_v<T, CmdTlbiS12Vmall>) return is_tlb(k.kind) && k.vmid == c.vmid;
        // S2_IPA: stage-2 entries only; combined entries are not required to go ([AA]
        // IPAS2; [L] arm_smmu_tlb_inv_range_domain: a nest_parent S2 change also sends
        // TLBI_NH_ALL "all the nested S1 ASIDs have to be flushed too").
        if constexpr (std::is_same_v<T, CmdTlbiS2Ipa>) {
          if (k.kind != Kind::s2_leaf && k.kind != Kind::s2_walk) return false;
          if (k.vmid != c.vmid || (c.leaf && k.kind == Kind::s2_walk)) return false;
          return ttl_ok(c.tg, c.ttl, k) &&
                 overlaps(tlbi_span(c.addr, c.tg, c.scale, c.num, f.range_inv), k);
        }
        // NSNH_ALL: every Non-secure, non-Hyp entry, all VMIDs ([A] CMD_TLBI_NSNH_ALL).
        if constexpr (std::is_same_v<T, CmdTlbiNsnhAll>) return is_tlb(k.kind);
        // The EL2/EL3 forms tag EL2/EL3 streams (STE.STRW); the model's streams are NS-EL1.
        return false;
      },
      cmd);
}

// ---- Outcomes ------------------------------------------------------------------------------

// The walk's view of an access: an instruction fetch is a read that also needs execute.
Access access_of(const hw::DmaRequest& r) {
  return Access{r.addr, r.write, r.exec && !r.write, r.priv};
}

constexpr uint64_t m_type = 0xff, m_ssv = bit(11), m_ssid = 0xfffffull << 12,
                   m_sid = 0xffffffffull << 32, m_rnw = bit(35), m_s2 = bit(39),
                   m_class = 3ull << 40, m_addr2 = ((bit(52) - 1) & ~uint64_t(7));

// The event an access raises, with the bits the model defines.
hw::DmaOutcome event(EventRecord e, const hw::DmaRequest& r, bool with_addr, bool with_addr2) {
  e.sid = r.sid;
  e.ssv = r.ssid.has_value();
  e.ssid = r.ssid.value_or(0);
  const Evt4 w = encode(e);
  hw::DmaOutcome o;
  o.kind = hw::DmaOutcome::Kind::fault;
  o.record.assign(w.begin(), w.end());
  uint64_t m0 = m_type | m_ssv | m_sid | (e.ssv ? m_ssid : 0);
  uint64_t m1 = 0;
  if (with_addr) m1 |= m_rnw | m_s2 | m_class;
  o.mask = {m0, m1, with_addr ? ~uint64_t(0) : 0, with_addr2 ? m_addr2 : 0};
  return o;
}

hw::DmaOutcome config_event(EventType t, const hw::DmaRequest& r, uint64_t fetch = 0) {
  EventRecord e;
  e.type = t;
  e.addr2 = fetch;
  return event(e, r, false, fetch != 0);
}

hw::DmaOutcome ok(uint64_t pa) {
  hw::DmaOutcome o;
  o.pa = pa;
  return o;
}
hw::DmaOutcome aborted() {
  hw::DmaOutcome o;
  o.kind = hw::DmaOutcome::Kind::abort;
  return o;
}

// CLASS of a stage-2 fault ([QV] SMMU_CLASS_CD / _TT / _IN; Linux EVTQ_1_CLASS_TT = 1).
enum : uint8_t { class_cd = 0, class_tt = 1, class_in = 2 };

// A walk's outcome. Translation-related faults are recorded only when CD.R (stage 1) or
// STE.S2R (stage 2) is set, and the transaction is terminated either way ([QV] decode_cd
// "record_faults = CD_R", decode_ste_s2_cfg "record_faults = STE_S2R"; [L] sets both).
hw::DmaOutcome walk_outcome(const Walk& w, const Ste& ste, const Cd* cd, const hw::DmaRequest& r,
                            uint8_t cls_override = 0xff) {
  if (!w.fault) return ok(w.pa);
  const Fault& f = *w.fault;
  const EventType t = event_type(f.cls, f.stage);
  const bool translation_related =
      f.cls == FaultClass::translation || f.cls == FaultClass::addr_size ||
      f.cls == FaultClass::access_flag || f.cls == FaultClass::permission;
  if (translation_related && ((f.stage == 1 && cd && !cd->r) || (f.stage == 2 && !ste.s2_r)))
    return aborted();
  if (f.cls == FaultClass::bad_config) return config_event(t, r);
  EventRecord e;
  e.type = t;
  e.rnw = !r.write;
  e.input_addr = r.addr;
  e.s2 = f.stage == 2;
  // [A] 7.3.13: stage 2: CLASS = CD (CD fetch), TT (stage-1 table walk) or IN (the IPA of
  // the transaction); stage 1: IN, or TT when the stage-1 table fetch itself failed.
  const bool s1_fetch = f.stage == 1 && f.cls == FaultClass::walk_eabt;
  const uint8_t walked = f.s2_on_s1_walk || s1_fetch ? class_tt : class_in;
  e.event_class = cls_override != 0xff ? cls_override : walked;
  bool addr2 = false;
  if (f.cls == FaultClass::walk_eabt) {
    e.addr2 = f.fetch_pa;
    addr2 = true;
  } else if (e.s2) {
    e.addr2 = f.ipa & ~uint64_t(0xfff); // DW3 IPA[51:12] (L:457 EVTQ_3_IPA)
    addr2 = true;
  }
  hw::DmaOutcome o = event(e, r, true, addr2);
  if (addr2 && f.cls != FaultClass::walk_eabt) o.mask[3] &= ~uint64_t(0xfff);
  return o;
}

std::string_view fault_clause(const Walk& w) {
  if (!w.fault) return "SMMUV3.WALK.translate";
  switch (w.fault->cls) {
  case FaultClass::translation:
    return "SMMUV3.FAULT.translation";
  case FaultClass::addr_size:
    return "SMMUV3.FAULT.addr_size";
  case FaultClass::access_flag:
    return "SMMUV3.FAULT.access";
  case FaultClass::permission:
    return "SMMUV3.FAULT.permission";
  case FaultClass::walk_eabt:
    return "SMMUV3.FAULT.walk_eabt";
  case FaultClass::bad_config:
    return "SMMUV3.FAULT.bad_config";
  }
  return "SMMUV3.FAULT.translation";
}

// ---- Configuration lookup --------------------------------------------------------------------

std::optional<std::array<uint64_t, 8>> read8(const Memory& m, uint64_t pa) {
  std::array<uint64_t, 8> w{};
  for (int i = 0; i < 8; ++i) {
    const auto v = m.read64(pa + 8 * i);
    if (!v) return std::nullopt;
    w[i] = *v;
  }
  return w;
}

bool s1_enabled(StreamConfig c) {
  return c == StreamConfig::s1_trans || c == StreamConfig::nested;
}
bool s2_enabled(StreamConfig c) {
  return c == StreamConfig::s2_trans || c == StreamConfig::nested;
}

// A stream's configuration as one image gives it: the STE, then (stage 1) the CD.
struct SteResult {
  std::optional<hw::DmaOutcome> stop; // the access ends here
  std::string_view clause;
  Ste ste{};
  std::optional<S2Config> s2;
  bool s1 = false;       // stage 1 translates this access (else bypassed)
  uint32_t cd_index = 0; // the CD it uses
};

SteResult resolve_ste(const Memory& m, const Layout& lay, const Features& f,
                      const hw::DmaRequest& r) {
  SteResult s;
  auto stop = [&](hw::DmaOutcome o, std::string_view clause) {
    s.stop = std::move(o);
    s.clause = clause;
    return s;
  };
  // [A] "StreamID out of range": C_BAD_STREAMID ([QV] smmu_find_ste "sid >= 1 << log2size").
  if (r.sid >= bit(lay.strtab_log2))
    return stop(config_event(EventType::c_bad_streamid, r), "SMMUV3.STE.sid_range");
  const uint64_t addr = lay.strtab + uint64_t(r.sid) * 64;
  const auto w = read8(m, addr);
  // [A] F_STE_FETCH: the STE could not be read ([QV] smmu_get_ste "dma_memory_read" error).
  if (!w) return stop(config_event(EventType::f_ste_fetch, r, addr), "SMMUV3.STE.fetch");
  s.ste = decode_ste(*w);
  // [A] STE.V = 0: C_BAD_STE ([QV] decode_ste "if (!STE_VALID(ste))").
  if (!s.ste.v) return stop(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.valid");
  const auto cfg = s.ste.config;
  // [A] 5.2 STE.Config: 0b000 abort, and 0b001..0b011 behave as abort: no event ([QV]
  // STE_CFG_ABORT: every value without bit 2). 0b100 bypass. A stage the implementation
  // lacks (IDR0.S1P/S2P) is ILLEGAL: C_BAD_STE ([QV] decode_ste "not supported").
  const bool known = cfg == StreamConfig::bypass || cfg == StreamConfig::s1_trans ||
                     cfg == StreamConfig::s2_trans || cfg == StreamConfig::nested;
  if (!known) return stop(aborted(), "SMMUV3.STE.abort");
  if ((s1_enabled(cfg) && !f.stage1) || (s2_enabled(cfg) && !f.stage2) ||
      (cfg == StreamConfig::nested && !f.nested))
    return stop(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.config");
  if (s2_enabled(cfg)) {
    s.s2 = s2_config(s.ste);
    if (!s.s2) return stop(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.s2_config");
    if (!f.stage1) s.s2->vmid = s.ste.s2_vmid;
  }
  if (!s1_enabled(cfg)) {
    // [A] a SubstreamID on a stream whose stage 1 is off: C_BAD_SUBSTREAMID.
    if (r.ssid) return stop(config_event(EventType::c_bad_substreamid, r), "SMMUV3.STE.ssid");
    if (cfg == StreamConfig::bypass) return stop(ok(r.addr), "SMMUV3.STE.bypass");
    return s;
  }
  // Substreams ([A] STE.S1CDMax, STE.S1DSS): with S1CDMax = 0 every access uses CD 0 and a
  // SubstreamID is C_BAD_SUBSTREAMID; otherwise a SubstreamID >= 2^S1CDMax is
  // C_BAD_SUBSTREAMID, and an access without one follows S1DSS: terminate
  // (F_STREAM_DISABLED), bypass stage 1, or use CD 0.
  if (r.ssid) {
    if (s.ste.s1_cd_max == 0 || *r.ssid >= bit(s.ste.s1_cd_max))
      return stop(config_event(EventType::c_bad_substreamid, r), "SMMUV3.STE.ssid");
    s.cd_index = *r.ssid;
  } else if (s.ste.s1_cd_max != 0) {
    switch (s.ste.s1_dss) {
    case 0:
      return stop(config_event(EventType::f_stream_disabled, r), "SMMUV3.STE.s1dss");
    case 1:
      if (cfg == StreamConfig::s1_trans) return stop(ok(r.addr), "SMMUV3.STE.s1dss");
      return s; // nested: stage 2 only
    case 2:
      break;
    default:
      return stop(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.s1dss");
    }
  }
  s.s1 = true;
  return s;
}

struct CdResult {
  std::optional<hw::DmaOutcome> stop;
  std::string_view clause;
  Cd cd{};
  S1Config s1{};
};

CdResult decode_cd_words(const std::array<uint64_t, 8>& w, const hw::DmaRequest& r) {
  CdResult c;
  c.cd = decode_cd(w);
  // [A] CD.V = 0, or a CD the walk cannot use: C_BAD_CD ([QV] decode_cd "goto bad_cd").
  const auto s1 = s1_config(c.cd);
  if (!s1) {
    c.stop = config_event(EventType::c_bad_cd, r);
    c.clause = "SMMUV3.CD.valid";
    return c;
  }
  c.s1 = *s1;
  return c;
}

} // namespace

// ---- Commands --------------------------------------------------------------------------------

std::string_view command_error(const Command& c, const Features& f) {
  // [A] "Command errors": an unknown opcode, or a command for a feature the implementation
  // lacks, is CERROR_ILL ([QV] smmuv3_cmdq_consume: default case and the stage checks
  // "cmd_error = SMMU_CERROR_ILL"; [L] arm_smmu_cmdq_skip_err names CERROR_ILL = 1).
  if (std::holds_alternative<CmdUnknown>(c)) return "CERROR_ILL";
  if ((std::holds_alternative<CmdTlbiS2Ipa>(c) || std::holds_alternative<CmdTlbiS12Vmall>(c)) &&
      !f.stage2)
    return "CERROR_ILL";
  if ((std::holds_alternative<CmdTlbiNhAll>(c) || std::holds_alternative<CmdTlbiNhAsid>(c) ||
       std::holds_alternative<CmdTlbiNhVa>(c) || std::holds_alternative<CmdTlbiNhVaa>(c)) &&
      !f.stage1)
    return "CERROR_ILL";
  const bool el2 =
      std::holds_alternative<CmdTlbiEl2All>(c) || std::holds_alternative<CmdTlbiEl2Asid>(c) ||
      std::holds_alternative<CmdTlbiEl2Va>(c) || std::holds_alternative<CmdTlbiEl2Vaa>(c);
  if (el2 && !f.hyp) return "CERROR_ILL";
  if (std::holds_alternative<CmdTlbiEl3All>(c)) return "CERROR_ILL"; // Secure only
  return "";
}

Machine::Machine(Layout layout, Features features)
    : layout_(layout), features_(features), hist_([&] {
        Memory m;
        m.add_region(layout.ram);
        return m;
      }()) {}

bool Machine::write(std::span<const hw::Write> ws) {
  return hist_.write(ws);
}

hw::QueueOutcome Machine::run(std::span<const Cmd2> cmds) {
  hw::QueueOutcome out;
  for (size_t k = 0; k < cmds.size(); ++k) {
    const Command c = decode_command(cmds[k]);
    if (auto e = command_error(c, features_); !e.empty()) {
      // [A] the queue stops: CONS indexes the failing command, GERROR.CMDQ_ERR, CERROR;
      // commands before it were consumed, it and later ones were not.
      error_ = std::string(e);
      rest_.assign(cmds.begin() + k + 1, cmds.end());
      out.error = error_;
      return out;
    }
    // [A] CMD_SYNC completes every command consumed before it.
    if (std::holds_alternative<CmdSync>(c))
      hist_.complete();
    else
      hist_.issue(c);
    ++out.consumed;
  }
  // An epoch is dead once completed invalidations issued after it cover every entry it could
  // have filled. Decided through covers() itself, on sample keys at the extremes of every
  // tag (so a command that misses any of them, e.g. one scoped to a VMID, keeps the epoch).
  hist_.prune([&](size_t i) {
    std::vector<Key> samples;
    for (Kind k : {Kind::ste, Kind::cd, Kind::s1_leaf, Kind::s1_walk, Kind::s2_leaf, Kind::s2_walk,
                   Kind::combined})
      for (uint32_t id : {0u, 0xffffffffu})
        for (uint16_t tag : {uint16_t(0), uint16_t(0xffff)})
          for (uint64_t base : {uint64_t(0), uint64_t(0xfffffffff000)})
            samples.push_back(Key{k, id, id, tag, tag, false, base, 0x1000, 3});
    for (const Key& k : samples)
      if (hist_.survives(i, [&](const Command& c) { return covers(c, k, features_); }))
        return false;
    return true;
  });
  return out;
}

hw::QueueOutcome Machine::submit(std::span<const Cmd2> cmds) {
  // A stopped queue consumes nothing until the error is acknowledged ([A] GERROR.CMDQ_ERR).
  if (stopped()) return {0, error_};
  return run(cmds);
}

hw::QueueOutcome Machine::resume() {
  if (!stopped()) return {};
  error_.clear();
  hist_.complete(); // the failing command, now CMD_SYNC ([L] arm_smmu_cmdq_skip_err)
  const std::vector<Cmd2> rest = std::move(rest_);
  rest_.clear();
  return run(rest);
}

// ---- Device accesses -------------------------------------------------------------------------

namespace {

// One image's view of a stream, for the cache rules: its configuration and, when it
// translates, the fresh walk there (what could have been cached from it).
struct EpochView {
  bool valid = false;
  Ste ste{};
  std::optional<Cd> cd;
  std::optional<S1Config> s1;
  std::optional<S2Config> s2;
  uint16_t vmid = 0, asid = 0;
  Walk s1_walk; // stage 1 (nested: its table addresses through stage 2 of this image)
};

uint16_t vmid_of(const Ste& ste, const Features& f) {
  return f.stage2 ? ste.s2_vmid : 0; // S1-only streams are tagged with STE.S2VMID too ([A])
}

EpochView view(const Memory& m, const Layout& lay, const Features& f, const hw::DmaRequest& r) {
  EpochView v;
  const SteResult s = resolve_ste(m, lay, f, r);
  if (s.stop) return v;
  v.ste = s.ste;
  v.s2 = s.s2;
  v.vmid = vmid_of(s.ste, f);
  v.valid = true;
  if (!s.s1) return v;
  uint64_t cd_addr = s.ste.s1_context_ptr + uint64_t(s.cd_index) * 64;
  if (s.s2) {
    const Walk t = walk_s2(m, *s.s2, cd_addr, Access{cd_addr, false, false, true});
    if (t.fault) return v;
    cd_addr = t.pa;
  }
  const auto w = read8(m, cd_addr);
  if (!w) return v;
  const CdResult c = decode_cd_words(*w, r);
  if (c.stop) return v;
  v.cd = c.cd;
  v.s1 = c.s1;
  v.asid = c.cd.asid;
  const Access a = access_of(r);
  std::vector<Walk> out;
  if (s.s2) {
    const S2Config s2 = *s.s2;
    const S2Translate tr = [&](uint64_t ipa, const Access& ra, std::vector<Walk>& o) {
      o.push_back(walk_s2_from(m, s2, ipa, ra, std::nullopt));
    };
    walk_s1_from(m, c.s1, &tr, a, std::nullopt, out);
  } else {
    walk_s1_from(m, c.s1, nullptr, a, std::nullopt, out);
  }
  v.s1_walk = std::move(out.front());
  return v;
}

bool same_s1_geometry(const S1Config& a, const S1Config& b) {
  return a.granule == b.granule && a.t0sz == b.t0sz;
}
bool same_s2_geometry(const S2Config& a, const S2Config& b) {
  return a.granule == b.granule && a.s2t0sz == b.s2t0sz && a.s2sl0 == b.s2sl0;
}

// The span of one entry of a table descriptor at `level` (which points at level + 1).
uint64_t span_of(Granule g, int level) {
  return bit(level_shift(g, level));
}

class Lookup {
public:
  Lookup(const CacheHistory<Command>& h, const Layout& lay, const Features& f,
         const hw::DmaRequest& r)
      : h_(h), lay_(lay), f_(f), r_(r) {
    views_.reserve(h.stale().size());
    for (const auto& e : h.stale())
      views_.push_back(view(e.mem, lay, f, r));
  }

  std::vector<Allowed> run() {
    const SteResult cur = resolve_ste(h_.memory(), lay_, f_, r_);
    if (cur.stop)
      add(*cur.stop, cur.clause);
    else
      with_ste(cur, "");
    // Cached STEs of earlier images ([A] configuration cache; only valid STEs are cached).
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!views_[i].valid || !survives(i, ste_key())) continue;
      const SteResult s = resolve_ste(image(i), lay_, f_, r_);
      if (s.stop)
        add(*s.stop, "SMMUV3.CACHE.config");
      else
        with_ste(s, "SMMUV3.CACHE.config");
    }
    return std::move(out_);
  }

private:
  const Memory& image(size_t i) const { return h_.stale()[i].mem; }
  bool survives(size_t i, const Key& k) const {
    return h_.survives(i, [&](const Command& c) { return covers(c, k, f_); });
  }
  Key ste_key() const { return Key{Kind::ste, r_.sid}; }
  Key cd_key(uint32_t idx) const { return Key{Kind::cd, r_.sid, idx}; }

  void add(hw::DmaOutcome o, std::string_view clause) {
    for (const auto& a : out_)
      if (a.outcome == o) return;
    out_.push_back({std::move(o), clause});
  }

  // Everything an STE candidate allows: the CD fetched through it from current memory, or
  // a cached CD of this (StreamID, SubstreamID).
  void with_ste(const SteResult& s, std::string_view cached) {
    if (!s.s1) { // stage 2 only (or nested with stage 1 bypassed by S1DSS)
      translate_s2_only(s, cached);
      return;
    }
    const uint64_t cd_ipa = s.ste.s1_context_ptr + uint64_t(s.cd_index) * 64;
    std::vector<Walk> where;
    if (s.s2)
      s2_options(*s.s2, vmid_of(s.ste, f_), cd_ipa, Access{cd_ipa, false, false, true}, where);
    else {
      Walk direct;
      direct.pa = cd_ipa;
      where.push_back(direct);
    }
    for (const Walk& t : where) {
      if (t.fault) { // the CD fetch through stage 2: a stage-2 fault, CLASS=CD ([QV])
        Walk w = t;
        add(walk_outcome(w, s.ste, nullptr, r_, class_cd), pick(cached, "SMMUV3.CD.s2_fetch"));
        continue;
      }
      const auto words = read8(h_.memory(), t.pa);
      if (!words) {
        add(config_event(EventType::f_cd_fetch, r_, t.pa), pick(cached, "SMMUV3.CD.fetch"));
        continue;
      }
      const CdResult c = decode_cd_words(*words, r_);
      if (c.stop)
        add(*c.stop, pick(cached, c.clause));
      else
        translate_s1(s, c.cd, c.s1, cached);
    }
    for (size_t i = 0; i < views_.size(); ++i) {
      const EpochView& v = views_[i];
      if (!v.cd || !survives(i, cd_key(s.cd_index))) continue;
      translate_s1(s, *v.cd, *v.s1, "SMMUV3.CACHE.config");
    }
  }

  static std::string_view pick(std::string_view cached, std::string_view fresh) {
    return cached.empty() ? fresh : cached;
  }

  // Stage-2 candidates for an IPA: the fresh walk; a surviving stage-2 TLB entry of an
  // earlier image; or a surviving stage-2 walk-cache entry, walked on from current memory.
  // Candidates that differ only in how they were found (which entry, which reads) give the
  // same outcome: keep one of each (fault or PA, permissions, size), so that walks branch
  // only where the outcome can differ.
  static void add_unique(std::vector<Walk>& out, Walk w) {
    for (const auto& o : out)
      if (o.fault == w.fault &&
          (w.fault || (o.pa == w.pa && o.perms == w.perms && o.page_size == w.page_size)))
        return;
    out.push_back(std::move(w));
  }

  void s2_options(const S2Config& s2, uint16_t vmid, uint64_t ipa, const Access& a,
                  std::vector<Walk>& out) const {
    if (views_.empty()) { // no earlier image: the fresh walk is the only candidate
      out.push_back(walk_s2_from(h_.memory(), s2, ipa, a, std::nullopt));
      return;
    }
    std::vector<Walk> all;
    s2_candidates(s2, vmid, ipa, a, all);
    for (auto& w : all)
      add_unique(out, std::move(w));
  }

  void s2_candidates(const S2Config& s2, uint16_t vmid, uint64_t ipa, const Access& a,
                     std::vector<Walk>& out) const {
    out.push_back(walk_s2_from(h_.memory(), s2, ipa, a, std::nullopt));
    for (size_t i = 0; i < views_.size(); ++i) {
      const EpochView& v = views_[i];
      if (!v.s2 || v.vmid != vmid || !same_s2_geometry(*v.s2, s2)) continue;
      const Walk old = walk_s2_from(image(i), *v.s2, ipa, a, std::nullopt);
      if (old.s2_entry &&
          survives(i, Key{Kind::s2_leaf, 0, 0, vmid, 0, false, old.s2_entry->ipa_base,
                          old.s2_entry->size, old.s2_entry->level}))
        out.push_back(s2_entry_result(s2, *old.s2_entry, ipa, a));
      for (const WalkFrom& t : old.s2_tables) {
        const uint64_t span = span_of(s2.granule, t.level - 1);
        if (survives(
                i, Key{Kind::s2_walk, 0, 0, vmid, 0, false, ipa & ~(span - 1), span, t.level - 1}))
          out.push_back(walk_s2_from(h_.memory(), s2, ipa, a, t));
      }
    }
  }

  void translate_s2_only(const SteResult& s, std::string_view cached) {
    const Access a = access_of(r_);
    std::vector<Walk> opts;
    s2_options(*s.s2, vmid_of(s.ste, f_), r_.addr, a, opts);
    for (size_t k = 0; k < opts.size(); ++k)
      add(walk_outcome(opts[k], s.ste, nullptr, r_),
          pick(cached, k == 0 ? fault_clause(opts[k]) : "SMMUV3.CACHE.s2"));
  }

  void translate_s1(const SteResult& s, const Cd& cd, const S1Config& s1, std::string_view cached) {
    const Access a = access_of(r_);
    const uint16_t vmid = vmid_of(s.ste, f_);
    std::optional<S2Translate> tr;
    if (s.s2) {
      const S2Config s2 = *s.s2;
      tr = [this, s2, vmid](uint64_t ipa, const Access& ra, std::vector<Walk>& o) {
        s2_options(s2, vmid, ipa, ra, o);
      };
    }
    // Through stage 2 (nested) or not: each stage-1 result gives its outcome(s).
    auto finish = [&](const Walk& w1, std::string_view clause) {
      if (w1.fault || !s.s2) {
        add(walk_outcome(w1, s.ste, &cd, r_), pick(cached, clause));
        return;
      }
      std::vector<Walk> opts;
      s2_options(*s.s2, vmid, w1.pa, a, opts);
      for (size_t k = 0; k < opts.size(); ++k) {
        const Walk w = combine_nested(w1, opts[k]);
        add(walk_outcome(w, s.ste, &cd, r_),
            pick(cached, k == 0 ? clause : std::string_view("SMMUV3.CACHE.s2")));
      }
    };
    std::vector<Walk> fresh;
    walk_s1_from(h_.memory(), s1, tr ? &*tr : nullptr, a, std::nullopt, fresh);
    for (const Walk& w : fresh)
      finish(w, w.fault ? fault_clause(w) : "SMMUV3.WALK.translate");
    // Surviving stage-1 entries of earlier images with the same tags ([A] TLB tagging:
    // VMID, ASID unless the entry is global).
    for (size_t i = 0; i < views_.size(); ++i) {
      const EpochView& v = views_[i];
      if (!v.s1 || v.vmid != vmid || !same_s1_geometry(*v.s1, s1)) continue;
      if (v.s2.has_value() != s.s2.has_value()) continue;
      const Walk& old = v.s1_walk;
      if (old.s1_entry) {
        const S1Entry& e = *old.s1_entry;
        const bool global = !e.leaf.ng;
        if (global || v.asid == cd.asid) {
          const Key k{Kind::s1_leaf, 0, 0, vmid, v.asid, global, e.va_base, e.size, e.level};
          if (survives(i, k)) finish(s1_entry_result(s1, e, a), "SMMUV3.CACHE.tlb");
          // A combined stage-1+2 entry ([A] "combined" TLB entries; [AA]): the old image's
          // whole translation, removed by stage-1 scoped commands and S12_VMALL only.
          if (s.s2 && !old.fault && v.s2) {
            const Walk t = walk_s2_from(image(i), *v.s2, old.pa, a, std::nullopt);
            if (t.s2_entry) {
              const uint64_t size = std::min(e.size, t.s2_entry->size);
              const Key kc{Kind::combined,        0,    0,      vmid, v.asid, global,
                           r_.addr & ~(size - 1), size, e.level};
              if (survives(i, kc)) {
                const Walk w = combine_nested(s1_entry_result(s1, e, a),
                                              s2_entry_result(*s.s2, *t.s2_entry, old.pa, a));
                add(walk_outcome(w, s.ste, &cd, r_), "SMMUV3.CACHE.combined");
              }
            }
          }
        }
      }
      if (v.asid != cd.asid) continue; // walk-cache entries are ASID-tagged
      for (const WalkFrom& t : old.s1_tables) {
        const uint64_t span = span_of(s1.granule, t.level - 1);
        const Key k{Kind::s1_walk,         0,    0,          vmid, v.asid, false,
                    r_.addr & ~(span - 1), span, t.level - 1};
        if (!survives(i, k)) continue;
        std::vector<Walk> ws;
        walk_s1_from(h_.memory(), s1, tr ? &*tr : nullptr, a, t, ws);
        for (const Walk& w : ws)
          finish(w, "SMMUV3.CACHE.walk");
      }
    }
  }

  const CacheHistory<Command>& h_;
  const Layout& lay_;
  const Features& f_;
  const hw::DmaRequest& r_;
  std::vector<EpochView> views_;
  std::vector<Allowed> out_;
};

} // namespace

std::vector<Allowed> Machine::dma(const hw::DmaRequest& r) const {
  return Lookup(hist_, layout_, features_, r).run();
}

void Machine::after_dma(const hw::DmaRequest& r, const std::vector<Allowed>& allowed,
                        const hw::DmaOutcome& observed) {
  if (r.drain || observed.kind != hw::DmaOutcome::Kind::fault) return;
  Queued q;
  for (const auto& a : allowed)
    if (a.outcome.kind == hw::DmaOutcome::Kind::fault) q.may_be.push_back(a.outcome);
  // [A] event queue full: the event is lost and EVTQ_PROD.OVFLG toggles ([L]
  // arm_smmu_evtq_thread "if (queue_sync_prod_in(q) == -EOVERFLOW)").
  if (evtq_.size() >= bit(layout_.evtq_log2)) {
    overflow_ = true;
    return;
  }
  evtq_.push_back(std::move(q));
}

std::vector<Machine::Queued> Machine::drain_events(bool& overflow) {
  overflow = overflow_;
  overflow_ = false; // software acknowledges: EVTQ_CONS.OVACKFLG = EVTQ_PROD.OVFLG
  return std::exchange(evtq_, {});
}

} // namespace iommuspec::smmuv3
