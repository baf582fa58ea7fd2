// The SMMUv3 machine. Sources, cited at each rule:
//   [A]  Arm IHI 0070 (SMMUv3), by section name where the model relies on the architecture.
//   [AA] Arm ARM (DDI 0487), TLB maintenance: "TLBI IPAS2*: not required to apply to caching
//        structures that combine stage 1 and stage 2 translation table entries".
//   [L]  linux-source-6.12 drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c, by function.
//   [QV] QEMU hw/arm/smmuv3.c, [QC] hw/arm/smmu-common.c, by function.
#include "smmuv3/machine.h"

#include "smmuv3/range.h"
#include "smmuv3/walk_step.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t bit(unsigned n) {
  return n >= 64 ? 0 : uint64_t(1) << n;
}

// ---- Cache entries and what covers them --------------------------------------------------

enum class Kind : uint8_t { ste, cd, s1_leaf, s1_walk, s2_leaf, s2_walk, combined, l1std, l1cd };

struct Key {
  Kind kind = Kind::ste;
  uint32_t sid = 0, ssid = 0;
  uint16_t vmid = 0, asid = 0;
  bool global = false; // stage-1 leaf with nG = 0: matches every ASID
  uint64_t base = 0, size = 0;
  int level = 0; // of the descriptor: the leaf's level, or the table descriptor's level
  // TG encoding of the granule the entry was inserted with (tg_of; a combined entry: tg for
  // stage 1, tg2 for stage 2). 0: not known, so no TG-qualified TLBI is required to match it.
  uint8_t tg = 0, tg2 = 0;
  // A level-1 descriptor: the StreamIDs (L1STD) or SubstreamIDs (L1CD, of StreamID sid) its
  // level-1 index covers, inclusive.
  uint32_t first = 0, last = 0;
};

bool is_s1(Kind k) {
  return k == Kind::s1_leaf || k == Kind::s1_walk || k == Kind::combined;
}
bool is_tlb(Kind k) {
  return k != Kind::ste && k != Kind::cd && k != Kind::l1std && k != Kind::l1cd;
}
bool is_leaf(Kind k) {
  return k == Kind::s1_leaf || k == Kind::s2_leaf || k == Kind::combined;
}

// [A] 4.4.1.1 TG: 0b01 4KB, 0b10 16KB, 0b11 64KB.
uint8_t tg_of(Granule g) {
  return g == Granule::g4k ? 1 : g == Granule::g16k ? 2 : 3;
}
// [A] 4.4.1.1 TTL with TG = 16KB: "If SMMU_IDR5.DS == 1 then leaf entries at level 1 of a
// 16KB Granule table. Otherwise Reserved, and hardware treats as TTL == 0b00". For
// CERROR_ILL the model takes IDR5.DS = 0 (it has no LPA2, README.md), so TTL = 0b01 counts
// as 0b00 there (range.h range_reserved, SMMUV3.CMDQ.ill_range). For the scope it keeps TTL
// = 0b01: a level-1 scope (DS = 1) requires less than any level (DS = 0), and its alignment
// rule (Address[35:12]) implies DS = 0's (Address[13:12]), so it is the weaker reading for
// both.

// Input range of a TLBI by address (range.h tlbi_span: [A] 4.4.1.1 "Range =
// ((NUM+1)*2^SCALE)*Translation_Granule_Size"; TG = 0 or no IDR3.RIL: the one address).
arith::SpanOf<uint64_t> tlbi_span(uint64_t addr, uint8_t tg, uint8_t scale, uint8_t num, bool ril) {
  return smmuv3::tlbi_span<uint64_t>(addr, tg, scale, num, ril);
}
bool overlaps(const arith::SpanOf<uint64_t>& s, const Key& k) {
  return arith::overlaps<uint64_t>(s, k.base, k.size);
}
// The scope TG and TTL leave a range TLBI (range.h range_scope_ok, the weaker reading
// throughout: TG must match the granule the entry was inserted with (both stages' for a
// combined entry), TTL its level (Leaf = 0: table descriptors above TTL), and an Address not
// aligned to TTL's entries leaves an UNPREDICTABLE range, taken as nothing).
// Clauses SMMUV3.TLBI.range_tg, SMMUV3.TLBI.range_ttl, SMMUV3.TLBI.range_unaligned.
bool range_scope_ok(uint64_t addr, uint8_t tg, uint8_t ttl, const Key& k, bool ril) {
  const EntryScope<uint64_t> e{k.tg, k.tg2, k.kind == Kind::combined, is_leaf(k.kind),
                               uint64_t(k.level)};
  return smmuv3::range_scope_ok<uint64_t>(addr, tg, ttl, e, ril);
}

template <class C>
bool by_va(const C& c, const Key& k, bool asid_match, bool ril) {
  if (!is_s1(k.kind) || k.vmid != c.vmid || !asid_match) return false;
  // Leaf = 1: only entries for the last level (leaf) ([A] CMD_TLBI_NH_VA "Leaf").
  if (c.leaf && k.kind == Kind::s1_walk) return false;
  return range_scope_ok(c.addr, c.tg, c.ttl, k, ril) &&
         overlaps(tlbi_span(c.addr, c.tg, c.scale, c.num, ril), k);
}

bool cfg_sid(const Key& k, uint32_t lo, uint32_t hi) {
  return (k.kind == Kind::ste || k.kind == Kind::cd || k.kind == Kind::l1cd) && k.sid >= lo &&
         k.sid <= hi;
}
// An L1STD walked to locate an STE of StreamIDs lo..hi.
bool l1std_in(const Key& k, uint64_t lo, uint64_t hi) {
  return k.kind == Kind::l1std && k.first <= hi && lo <= k.last;
}

bool covers(const Command& cmd, const Key& k, const Features& f) {
  return std::visit(
      [&](const auto& c) -> bool {
        using T = std::decay_t<decltype(c)>;
        // Configuration: CFGI_STE invalidates the STE and the CDs fetched through it
        // ([L] arm_smmu_write_ste sends only CFGI_STE when S1ContextPtr changes; [QV]
        // smmuv3_flush_config drops the stream's whole configuration). [A] 4.3.1: "This
        // command invalidates all Context Descriptors (including L1CD) that were cached using
        // the given StreamID", with either Leaf; the L1STD walked to locate the STE only with
        // Leaf == 0 ("When Leaf == 1 ... the intermediate L1ST descriptors are not required to
        // be invalidated"). Clause SMMUV3.CACHE.l1std.
        if constexpr (std::is_same_v<T, CmdCfgiSte>)
          return cfg_sid(k, c.sid, c.sid) || (!c.leaf && l1std_in(k, c.sid, c.sid));
        if constexpr (std::is_same_v<T, CmdCfgiSteRange>) {
          // 2^(Range+1) StreamIDs aligned ([QV] CFGI_STE_RANGE; Range = 31: all, [L] CFGI_ALL);
          // [A] 4.3.2: also "all caching of intermediate L1ST descriptors walked to locate the
          // STEs in the given range" and the CDs "(including L1CD)" cached through them.
          const uint64_t mask = c.range >= 31 ? 0xffffffffull : bit(c.range + 1) - 1;
          const uint64_t lo = c.sid & ~mask;
          const uint64_t hi = std::min<uint64_t>(lo + mask, 0xffffffff);
          return cfg_sid(k, uint32_t(lo), uint32_t(hi)) || l1std_in(k, lo, hi);
        }
        // [A] 4.3.3: the CD fetched from index SubstreamID; with Leaf == 0 also "an
        // intermediate L1CD descriptor that locates the CD" (5.3.1: "the non-leaf form of
        // CMD_CFGI_CD is the minimum scope"). Clause SMMUV3.CACHE.l1cd.
        if constexpr (std::is_same_v<T, CmdCfgiCd>)
          return (k.kind == Kind::cd && k.sid == c.sid && k.ssid == c.ssid) ||
                 (!c.leaf && k.kind == Kind::l1cd && k.sid == c.sid && k.first <= c.ssid &&
                  c.ssid <= k.last);
        // [A] 4.3.4: every CD of the StreamID, and "all intermediate L1CD descriptors that
        // locate CDs using the given StreamID".
        if constexpr (std::is_same_v<T, CmdCfgiCdAll>)
          return (k.kind == Kind::cd || k.kind == Kind::l1cd) && k.sid == c.sid;
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
          return range_scope_ok(c.addr, c.tg, c.ttl, k, f.range_inv) &&
                 overlaps(tlbi_span(c.addr, c.tg, c.scale, c.num, f.range_inv), k);
        }
        // NSNH_ALL: every Non-secure, non-Hyp entry, all VMIDs ([A] CMD_TLBI_NSNH_ALL).
        if constexpr (std::is_same_v<T, CmdTlbiNsnhAll>) return is_tlb(k.kind);
        // The EL2/EL3 forms tag EL2/EL3 streams (STE.STRW); the model's streams are NS-EL1.
        return false;
      },
      cmd);
}

// ---- Rebuilt combined entries ----------------------------------------------------------------
// A nested stream may build a combined stage-1+2 entry at any time from what it holds then:
// a stage-1 translation (from the current tables, or a cached stage-1 leaf) and a stage-2
// entry still cached, also after the tables changed ([A] 3.21.1: walks may use any entry not
// yet invalidated; 4.4.3.1: CMD_TLBI_S2_IPA "is not required to invalidate structures
// containing combined stage 1 and stage 2 information"). A stage-1 invalidation removes
// such an entry for sure only if it is performed after one of its sources is gone: issued
// after the CMD_SYNC that completed that source's invalidation ([AA] D8.17.6.1: "TLBI
// IPAS2E1, Xt; DSB; TLBI VMALLE1" is the required sequence), or being that invalidation.
// Times are the history's sequence numbers (Timeline). Clause SMMUV3.CACHE.combined_s2ipa.

constexpr uint64_t kNever = ~uint64_t(0);

// When the epoch that ended at `end` began: the write before it (0: the first epoch).
uint64_t birth_of(const Timeline& t, uint64_t end) {
  uint64_t b = 0;
  for (uint64_t w : t.writes)
    if (w < end) b = w;
  return b;
}

// What a combined entry is built from, and while it was there: the current image (from the
// write that began it on), or an entry cached from the image that ended at `end` (from the
// write that began that image until the entry is surely gone).
struct Source {
  uint64_t birth = 0, death = kNever;
  std::optional<Key> key; // a cached entry
  uint64_t end = 0;
};

// A cached entry is surely gone right after the CMD_SYNC that completed the first covering
// invalidation issued after its image ended.
bool ends(const Source& s, const Logged& l, const Features& f) {
  return s.key && l.issued > s.end && covers(l.cmd, *s.key, f);
}
Source cached_source(const Timeline& t, const Features& f, uint64_t end, const Key& k) {
  Source s{birth_of(t, end), kNever, k, end};
  for (const Logged& l : t.done)
    if (ends(s, l, f)) s.death = std::min(s.death, l.synced + 1);
  return s;
}

// Whether a combined entry kc built from a and b may still be cached: they were there
// together, and no completed command covering kc was surely performed after the last moment
// it could have been built.
bool rebuilt_survives(const Timeline& t, const Features& f, const Source& a, const Source& b,
                      const Key& kc) {
  const uint64_t latest = std::min(a.death, b.death);
  if (std::max(a.birth, b.birth) >= latest) return false; // never there together
  for (const Logged& l : t.done)
    if (covers(l.cmd, kc, f) && (ends(a, l, f) || ends(b, l, f) || l.issued >= latest))
      return false;
  return true;
}

// The key of a combined entry: [AA] D8.17 (RTVTYQ) "If the stage 1 translation information
// contained in a single Block or Page has been collectively cached as one or more smaller
// TLB entries ... then all entries containing that stage 1 information are invalidated", so
// stage-1 scoped commands match it by the whole stage-1 leaf.
Key combined_key(uint16_t vmid, uint16_t asid, const S1Entry& e, Granule g1, Granule g2) {
  return Key{Kind::combined, 0,      0,       vmid,      asid,     !e.leaf.ng,
             e.va_base,      e.size, e.level, tg_of(g1), tg_of(g2)};
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
  hw::DmaOutcome o = event(e, r, false, fetch != 0);
  // [A] 7.3.7: the F_STREAM_DISABLED record holds only the StreamID (no SSV or SubstreamID
  // field), also for a transaction with SubstreamID 0 under S1DSS = 0b10
  // (SMMUV3.STE.s1dss_ssid0).
  if (t == EventType::f_stream_disabled) o.mask[0] = m_type | m_sid;
  return o;
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
  const uint8_t walked = class_is_tt(f.s2_on_s1_walk, s1_fetch) ? class_tt : class_in;
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
  std::vector<Allowed> stop; // the access ends here, with one of these
  bool fetched = false;      // read: cacheable whatever it holds (SMMUV3.CACHE.config_invalid)
  bool valid = false;        // V = 1 and not ILLEGAL
  Ste ste{};
  std::optional<S2Config> s2;
  bool s1 = false;       // stage 1 translates this access (else bypassed)
  uint32_t cd_index = 0; // the CD it uses
  bool end(hw::DmaOutcome o, std::string_view clause) {
    stop.push_back({std::move(o), clause});
    return false;
  }
};

SteResult ended(hw::DmaOutcome o, std::string_view clause) {
  SteResult s;
  s.end(std::move(o), clause);
  return s;
}

// STE.S1CDMax as the SMMU uses it: [A] 5.2 "If SMMU_IDR1.SSIDSIZE == 0, this field is
// IGNORED".
unsigned cd_max_of(const Ste& e, const Features& f) {
  return f.ssid_bits == 0 ? 0 : e.s1_cd_max;
}

// [A] 5.2 STE.EATS (IGNORED without IDR0.ATS, and when Config[1:0] == 0b00): 0b01 "is
// ILLEGAL if ... STE.Config == 0b11x and STE.S2S == 1" (SMMUv3.1 on; for Config == 0b10x
// the check is CONSTRAINED UNPREDICTABLE, and Arm recommends against it: the model does not
// make it, README "Machine"); 0b10 "the STE is ILLEGAL ... if STE.Config != 0b111 or
// STE.S2S == 1" (NS1ATS == 1 as well: the model's unit has NS1ATS = 0); 0b11 with IDR3.DPT
// == 0 is "Reserved ... and behaves as 0b00". ILLEGAL: C_BAD_STE. Clause SMMUV3.STE.eats.
bool eats_legal(const Features& f, const Ste& ste) {
  const uint8_t cfg = uint8_t(ste.config);
  if (!f.ats || (cfg & 3) == 0) return true;
  if (ste.eats == 1) return !((cfg & 6) == 6 && ste.s2_s);
  if (ste.eats == 2) return ste.config == StreamConfig::nested && !ste.s2_s;
  return true;
}

// Whether this STE services ATS Translation Requests: full ATS on a stream that translates
// ([A] 5.2 EATS 0b01 "serviced by translating at all enabled stages"; Config 0b100 and
// 0b000: effectively 0b00; 0b10 behaves as 0b00 with CR0.ATSCHK == 0, the model's unit).
bool serves_translation_requests(const Features& f, const Ste& ste) {
  const uint8_t cfg = uint8_t(ste.config);
  return f.ats && ste.v && ste.eats == 1 && (cfg & 4) && (cfg & 3);
}

// V, Config and the stages the implementation has. False when the access ends here.
bool check_ste(const Features& f, const hw::DmaRequest& r, SteResult& s) {
  // [A] STE.V = 0: C_BAD_STE ([QV] decode_ste "if (!STE_VALID(ste))").
  if (!s.ste.v) return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.valid");
  const auto cfg = s.ste.config;
  // [A] 5.2 STE.Config: 0b000 abort, and 0b001..0b011 behave as abort: no event ([QV]
  // STE_CFG_ABORT: every value without bit 2). 0b100 bypass. A stage the implementation
  // lacks (IDR0.S1P/S2P) is ILLEGAL: C_BAD_STE ([QV] decode_ste "not supported").
  const bool known = cfg == StreamConfig::bypass || cfg == StreamConfig::s1_trans ||
                     cfg == StreamConfig::s2_trans || cfg == StreamConfig::nested;
  if ((s1_enabled(cfg) && !f.stage1) || (s2_enabled(cfg) && !f.stage2) ||
      (cfg == StreamConfig::nested && !f.nested))
    return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.config");
  if (s1_enabled(cfg) && f.ssid_bits != 0) {
    // [A] 5.2 S1CDMax: "The allowable range is 0 to SMMU_IDR1.SSIDSIZE inclusive. Other
    // values are ILLEGAL" (5.2.2 SteIllegal checks it when SSIDSIZE != 0).
    if (s.ste.s1_cd_max > f.ssid_bits)
      return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.s1cdmax_range");
    // [A] 5.2 S1Fmt: "If substreams are supported and enabled and stage 1 is enabled and
    // SMMU_IDR0.CD2L == 0, it is ILLEGAL to set this field != 0b00" (SteIllegal: 0b01 or
    // 0b10, "11 behaves as 00").
    if (s.ste.s1_cd_max != 0 && !f.cd2l && (s.ste.s1_fmt == 1 || s.ste.s1_fmt == 2))
      return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.s1fmt_cd2l");
  }
  if (s2_enabled(cfg)) {
    s.s2 = s2_config(s.ste);
    if (!s.s2) return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.s2_config");
    if (!f.stage1) s.s2->vmid = s.ste.s2_vmid;
  }
  if (!eats_legal(f, s.ste)) return s.end(config_event(EventType::c_bad_ste, r), "SMMUV3.STE.eats");
  s.valid = true;
  if (!known) return s.end(aborted(), "SMMUV3.STE.abort");
  return true;
}

// [A] 3.4: "When a stream selects an STE with STE.Config == 0b100 ... If the input address
// of a transaction exceeds the size of the OAS, the transaction is terminated with an abort
// and a stage 1 Address Size fault (F_ADDR_SIZE) is recorded"; 7.3.14: "If caused by stage 1
// translation bypass ... CLASS == IN and S2 == 0". The OAS is IDR5.OAS, 32 to 56 bits (6.3.6):
// unless the features give it, an address that fits some OAS and not another may do either.
void bypass(const Features& f, const hw::DmaRequest& r, SteResult& s) {
  const unsigned least = f.oas_bits ? f.oas_bits : 32, most = f.oas_bits ? f.oas_bits : 56;
  if (r.addr < bit(most)) s.end(ok(r.addr), "SMMUV3.STE.bypass");
  if (r.addr < bit(least)) return;
  EventRecord e;
  e.type = EventType::f_addr_size;
  e.rnw = !r.write;
  e.input_addr = r.addr;
  e.event_class = class_in;
  s.end(event(e, r, true, false), "SMMUV3.STE.bypass_oas");
}

// Which CD the access uses, or how it ends without one. False when the access ends here.
bool select_cd(const Features& f, const hw::DmaRequest& r, SteResult& s) {
  const auto cfg = s.ste.config;
  // [A] a SubstreamID on a stream whose stage 1 is off: C_BAD_SUBSTREAMID.
  if (!s1_enabled(cfg) && r.ssid)
    return s.end(config_event(EventType::c_bad_substreamid, r), "SMMUV3.STE.ssid");
  if (!s1_enabled(cfg)) return true;
  // Substreams ([A] STE.S1CDMax, STE.S1DSS): with S1CDMax = 0 every access uses CD 0 and a
  // SubstreamID is C_BAD_SUBSTREAMID; otherwise a SubstreamID >= 2^S1CDMax is
  // C_BAD_SUBSTREAMID, and an access without one follows S1DSS. Without IDR1.SSIDSIZE,
  // S1CDMax is IGNORED and a SubstreamID is C_BAD_SUBSTREAMID (5.2 S1CDMax, 7.3.9).
  const unsigned cd_max = cd_max_of(s.ste, f);
  if (r.ssid) {
    if (cd_max == 0 || *r.ssid >= bit(cd_max))
      return s.end(config_event(EventType::c_bad_substreamid, r), "SMMUV3.STE.ssid");
    // [A] 5.2 S1DSS 0b10: "Transactions that include a substream and select Substream 0 are
    // terminated. An abort is reported to the device and the F_STREAM_DISABLED event is
    // recorded"; 7.3.7 (the record has the StreamID only).
    if (*r.ssid == 0 && s.ste.s1_dss == 2)
      return s.end(config_event(EventType::f_stream_disabled, r), "SMMUV3.STE.s1dss_ssid0");
    s.cd_index = *r.ssid;
  } else if (cd_max != 0) {
    switch (s.ste.s1_dss) {
    case 1: // [A] 5.2 S1DSS 0b01: "Bypass stage 1 as though STE.Config == 0b1x0"
      if (cfg == StreamConfig::s1_trans) return s.end(ok(r.addr), "SMMUV3.STE.s1dss");
      return true; // nested: stage 2 only
    case 2:        // "translated using the CD associated with Substream 0"
      break;
    default: // 0b00 terminate; 0b11 "Reserved (behaves as 0b00)"
      return s.end(config_event(EventType::f_stream_disabled, r), "SMMUV3.STE.s1dss_terminate");
    }
  }
  s.s1 = true;
  return true;
}

// ---- Two-level tables and SMMU-originated address sizes ----

// The stream table as the SMMU uses SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG ([A] 6.3.24,
// 6.3.25). Clause SMMUV3.STE.two_level.
struct Strtab {
  bool two_level = false;
  unsigned log2 = 0;  // effective LOG2SIZE
  unsigned split = 6; // effective SPLIT
  uint64_t base = 0;  // ADDR as the SMMU aligns it
};

Strtab strtab_of(const Layout& lay, const Features& f) {
  Strtab t;
  // FMT: "0b01 2-level"; "Other values are reserved, behave as 0b00"; without IDR0.ST_LEVEL
  // the field is RES0 (linear).
  t.two_level = f.st_level && lay.strtab_fmt == 1;
  // LOG2SIZE: "the effective LOG2SIZE is MIN(LOG2SIZE, SMMU_IDR1.SIDSIZE) for the purposes
  // of input StreamID range checking and upper/lower/linear Stream table index address
  // calculation".
  t.log2 = std::min(lay.strtab_log2, f.sid_bits);
  // SPLIT: 6, 8 or 10; "Other values are reserved, behave as 6".
  t.split = lay.strtab_split == 8 || lay.strtab_split == 10 ? lay.strtab_split : 6;
  // 6.3.24 ADDR, by the literal LOG2SIZE: linear "ADDR[LOG2SIZE + 5:0] = 0"; 2-level
  // "ADDR[MAX(5, (LOG2SIZE - SPLIT - 1 + 3)):0] = 0".
  const int lg = int(lay.strtab_log2);
  const int top = t.two_level ? std::max(5, lg - int(t.split) + 2) : lg + 5;
  t.base = lay.strtab & ~(bit(unsigned(top) + 1) - 1);
  return t;
}

// The StreamIDs an L1STD covers: StreamID[LOG2SIZE - 1:SPLIT] indexes the level-1 table.
Key l1std_key(const Strtab& t, uint32_t sid) {
  Key k;
  k.kind = Kind::l1std;
  const uint64_t lo = uint64_t(sid) >> t.split << t.split;
  k.first = uint32_t(lo);
  k.last = uint32_t(std::min<uint64_t>(lo + bit(t.split) - 1, 0xffffffff));
  return k;
}
uint64_t l1std_addr(const Strtab& t, uint32_t sid) {
  return t.base + (uint64_t(sid) >> t.split) * 8;
}

// The sizes an address the SMMU computes is checked against ([A] 3.4.3): the OAS for a PA,
// the IAS for an IPA. Unless the features give the OAS it may be any IDR5.OAS size (6.3.6);
// [A] 3.4 "IAS = MAX(SMMU_IDR0.TTF[0]==1 ? 40 : 0, SMMU_IDR0.TTF[1]==1 ? OAS : 0)", with
// TTF[1] (the model's tables are VMSAv8-64) and TTF[0] not known.
std::vector<unsigned> oas_sizes(const Features& f) {
  if (f.oas_bits) return {f.oas_bits};
  return {32, 36, 40, 42, 44, 48, 52, 56};
}
std::vector<unsigned> ias_sizes(const Features& f) {
  std::vector<unsigned> out;
  for (unsigned o : oas_sizes(f))
    for (unsigned s : {o, std::max(40u, o)})
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}

// Where a structure fetch at a computed address `a` may go ([A] 3.4.3): to a itself (beyond
// every size that fails to read: the model's RAM lies below 2^32, the smallest OAS), or to
// a truncated to a size it exceeds; `too_large`: a exceeds some size the target may have.
struct Reach {
  std::vector<uint64_t> addrs; // a first
  bool too_large = false;
};
Reach reach(uint64_t a, const std::vector<unsigned>& sizes) {
  Reach r;
  r.addrs.push_back(a);
  for (unsigned n : sizes) {
    if (a < bit(n)) continue;
    r.too_large = true;
    const uint64_t t = a & (bit(n) - 1);
    if (std::find(r.addrs.begin(), r.addrs.end(), t) == r.addrs.end()) r.addrs.push_back(t);
  }
  return r;
}

// STE candidate addresses through L1STD d, or how the lookup ends there.
std::vector<uint64_t> through_l1std(const Strtab& t, const Features& f, const StrtabL1Desc& d,
                                    const hw::DmaRequest& r, std::optional<SteResult>& stop) {
  // [A] 5.1 Span: "0 L1STD.L2Ptr is invalid"; "12-31 Reserved, behaves as 0"; 5.1.1 and
  // 7.3.3: Span == 0, a Reserved Span, or "L1STD.Span > SMMU_(*_)STRTAB_BASE_CFG.SPLIT + 1"
  // is C_BAD_STREAMID (SMMUV3.STE.l1_span); so is "StreamID[SPLIT - 1:0] >= 2^(L1STD.Span-1)"
  // (SMMUV3.STE.l2_span).
  if (d.span == 0 || d.span > 11 || d.span > t.split + 1) {
    stop = ended(config_event(EventType::c_bad_streamid, r), "SMMUV3.STE.l1_span");
    return {};
  }
  const uint64_t low = r.sid & (bit(t.split) - 1);
  if (low >= bit(d.span - 1u)) {
    stop = ended(config_event(EventType::c_bad_streamid, r), "SMMUV3.STE.l2_span");
    return {};
  }
  // [A] 5.1 L2Ptr: "Bits L2Ptr[N:0] are treated as 0 by the SMMU, where N == 5 + (Span -1)".
  const uint64_t l2 = d.l2_ptr & ~(bit(5u + d.span) - 1);
  // [A] 3.4.3 (5): an STE fetch address beyond the OAS: "It is CONSTRAINED UNPREDICTABLE
  // whether an implementation truncates an STE fetch address (and continues translation)
  // or generates an F_STE_FETCH": both (SMMUV3.STE.l2ptr_range).
  return reach(l2 + low * 64, oas_sizes(f)).addrs;
}

// The L1STD an image holds for the StreamID: cacheable when it could be read ([A] 3.21.3:
// "Any STE or L1STD within the STE table ... can be fetched and cached", whatever its Span).
std::optional<StrtabL1Desc> cacheable_l1std(const Memory& m, const Strtab& t, uint32_t sid) {
  const auto w = m.read64(l1std_addr(t, sid));
  if (!w) return std::nullopt;
  return decode_strtab_l1(*w);
}

// The CD table of a stage-1 STE ([A] 5.2 S1Fmt, 3.3.2): linear (0), or two-level with leaves
// of 2^6 CDs (0b01: "4KB L2 leaf tables ... of 64 CDs") or 2^10 (0b10: "64KB L2 leaf tables
// ... of 1024 CDs"). "If STE.S1CDMax == 0 (substreams disabled) or SMMU_IDR1.SSIDSIZE == 0
// (substreams unsupported), this field is IGNORED"; "0b11 Reserved (behaves as 0b00)"
// (SMMUV3.CD.s1fmt). Without IDR0.CD2L, 0b01/0b10 make the STE ILLEGAL (check_ste).
unsigned cd_leaf_log2(const Ste& e, const Features& f) {
  if (cd_max_of(e, f) == 0) return 0;
  return e.s1_fmt == 1 ? 6 : e.s1_fmt == 2 ? 10 : 0;
}
// "the L1 table is indexed by SubstreamID[STE.S1CDMax - 1:6]" (0b01; [.. - 1:10] for 0b10):
// an L1CD at S1ContextPtr + 8 * (index >> leaf bits), covering that leaf's SubstreamIDs.
uint64_t l1cd_addr(const Ste& e, unsigned leaf, uint32_t idx) {
  return e.s1_context_ptr + uint64_t(idx >> leaf) * 8;
}
Key l1cd_key(uint32_t sid, unsigned leaf, uint32_t idx) {
  Key k;
  k.kind = Kind::l1cd;
  k.sid = sid;
  k.first = idx >> leaf << leaf;
  k.last = k.first + uint32_t(bit(leaf) - 1);
  return k;
}
// The leaf tables an L1CD may select: "L2 tables are 4KB-aligned: L1CD.L2Ptr[11:0] are taken
// to be zero" (the field starts at bit 12); for 64KB leaves "L1CD.L2Ptr[15:12] are RES0":
// set anyway, the SMMU may use them or not (the weaker reading: both).
std::vector<uint64_t> leaf_bases(const CdL1Desc& d, unsigned leaf) {
  std::vector<uint64_t> out{d.l2_ptr};
  if (leaf == 10 && (d.l2_ptr & 0xf000) != 0) out.push_back(d.l2_ptr & ~uint64_t(0xffff));
  return out;
}
uint64_t cd_in_leaf(uint64_t base, unsigned leaf, uint32_t idx) {
  return base + uint64_t(idx & (bit(leaf) - 1)) * 64;
}

// Reads the STE candidates of the access's StreamID: through the L1STD `l1` when given (a
// cached one), else from m. Ended results say how the lookup stops before an STE.
std::vector<SteResult> fetch_stes(const Memory& m, const Layout& lay, const Features& f,
                                  const hw::DmaRequest& r, const StrtabL1Desc* l1) {
  const Strtab t = strtab_of(lay, f);
  // [A] "StreamID out of range": C_BAD_STREAMID ([QV] smmu_find_ste "sid >= 1 << log2size";
  // 6.3.25 "A transaction having a StreamID >= 2^LOG2SIZE is out of range").
  if (r.sid >= bit(t.log2))
    return {ended(config_event(EventType::c_bad_streamid, r), "SMMUV3.STE.sid_range")};
  std::vector<uint64_t> addrs;
  if (!t.two_level) {
    addrs.push_back(t.base + uint64_t(r.sid) * 64);
  } else {
    StrtabL1Desc d;
    if (l1) {
      d = *l1;
    } else {
      const uint64_t at = l1std_addr(t, r.sid);
      const auto w = m.read64(at);
      // [A] 3.21.3: "a CD/L1CD, STE/L1STD ... that experiences an external abort (F_CD_FETCH,
      // F_STE_FETCH or F_VMS_FETCH) ... does not cause knowledge of the failure to be cached";
      // 7.3.4 "FetchAddr is the Physical Address used for the fetch" (SMMUV3.STE.l1_fetch).
      if (!w) return {ended(config_event(EventType::f_ste_fetch, r, at), "SMMUV3.STE.l1_fetch")};
      d = decode_strtab_l1(*w);
    }
    std::optional<SteResult> stop;
    addrs = through_l1std(t, f, d, r, stop);
    if (stop) return {std::move(*stop)};
  }
  std::vector<SteResult> out;
  for (uint64_t a : addrs) {
    SteResult s;
    const auto w = read8(m, a);
    // [A] F_STE_FETCH: the STE could not be read ([QV] smmu_get_ste "dma_memory_read" error).
    // [A] 3.21.3: such a structure "does not cause knowledge of the failure to be cached".
    if (!w) {
      s.end(config_event(EventType::f_ste_fetch, r, a),
            a == addrs.front() ? "SMMUV3.STE.fetch" : "SMMUV3.STE.l2ptr_range");
    } else {
      s.ste = decode_ste(*w);
      s.fetched = true;
      check_ste(f, r, s);
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Every STE candidate of the access in image m (through the L1STD `l1` when given), each
// with the CD it selects or how it ends. The exact fetch address's candidate comes first.
std::vector<SteResult> resolve_stes(const Memory& m, const Layout& lay, const Features& f,
                                    const hw::DmaRequest& r, const StrtabL1Desc* l1 = nullptr) {
  std::vector<SteResult> out = fetch_stes(m, lay, f, r, l1);
  for (SteResult& s : out) {
    if (!s.stop.empty()) continue;
    if (s.ste.config == StreamConfig::bypass && !r.ssid)
      bypass(f, r, s);
    else
      select_cd(f, r, s);
  }
  return out;
}

SteResult resolve_ste(const Memory& m, const Layout& lay, const Features& f,
                      const hw::DmaRequest& r) {
  return resolve_stes(m, lay, f, r).front();
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

// Image m's STE candidate s (valid, stage 1) and its CD table, read from m alone, every IPA
// through m's stage 2: where the CD of index idx is, or nothing when a fetch or a stage-2
// translation fails or the L1CD is invalid (then no CD is reachable, [A] 3.21.3).
std::optional<uint64_t> pa_in(const Memory& m, const SteResult& s, uint64_t a) {
  if (!s.s2) return a;
  const Walk t = walk_s2(m, *s.s2, a, Access{a, false, false, true});
  if (t.fault) return std::nullopt;
  return t.pa;
}
std::optional<CdL1Desc> l1cd_in(const Memory& m, const SteResult& s, unsigned leaf, uint32_t idx) {
  const auto pa = pa_in(m, s, l1cd_addr(s.ste, leaf, idx));
  if (!pa) return std::nullopt;
  const auto w = m.read64(*pa);
  if (!w) return std::nullopt;
  return decode_cd_l1(*w);
}
std::optional<std::array<uint64_t, 8>> cd_words_in(const Memory& m, const SteResult& s,
                                                   const Features& f, uint32_t idx) {
  const unsigned leaf = cd_leaf_log2(s.ste, f);
  uint64_t addr = s.ste.s1_context_ptr + uint64_t(idx) * 64;
  if (leaf != 0) {
    const auto d = l1cd_in(m, s, leaf, idx);
    if (!d || !d->v) return std::nullopt;
    addr = cd_in_leaf(d->l2_ptr, leaf, idx);
  }
  const auto pa = pa_in(m, s, addr);
  if (!pa) return std::nullopt;
  return read8(m, *pa);
}

// Image m's STE for the access when it is valid and has stage 1, with idx inside its CD
// table: [A] 3.21.3 "A CD is reachable if it is within the table given by the base and size
// indicated by a valid stage 1 S1ContextPtr and S1CDMax of a valid STE".
std::optional<SteResult> stage1_ste(const Memory& m, const Layout& lay, const Features& f,
                                    const hw::DmaRequest& r, uint32_t idx) {
  SteResult s = fetch_stes(m, lay, f, r, nullptr).front();
  if (!s.stop.empty() || !s1_enabled(s.ste.config)) return std::nullopt;
  const unsigned cd_max = cd_max_of(s.ste, f);
  if (cd_max == 0 ? idx != 0 : idx >= bit(cd_max)) return std::nullopt;
  return s;
}

// The CD at index idx of the stream's CD table as image m holds it, when it can be cached
// from there: [A] 3.21.3 (stage1_ste); "permitted to cache any successfully fetched or
// prefetched configuration structure, whether marked as valid or not" (a CD whose fetch, or
// whose stage-2 translation, fails caches nothing; nor does one behind an invalid L1CD).
// Clause SMMUV3.CACHE.config_invalid.
std::optional<CdResult> cacheable_cd(const Memory& m, const Layout& lay, const Features& f,
                                     const hw::DmaRequest& r, uint32_t idx) {
  const auto s = stage1_ste(m, lay, f, r, idx);
  if (!s) return std::nullopt;
  const auto w = cd_words_in(m, *s, f, idx);
  if (!w) return std::nullopt;
  return decode_cd_words(*w, r);
}

// The L1CD locating CD idx in image m, when it can be cached from there ([A] 3.21.3 "Any CD or
// L1CD within a CD table can be fetched and cached", valid or not; an L1CD whose fetch or
// stage-2 translation fails caches nothing), for a stream whose CD table now has the same
// shape: `leaf` bits per leaf, `nested` (the pointers are IPAs). Clause SMMUV3.CACHE.l1cd.
std::optional<CdL1Desc> cacheable_l1cd(const Memory& m, const Layout& lay, const Features& f,
                                       const hw::DmaRequest& r, uint32_t idx, unsigned leaf,
                                       bool nested) {
  const auto s = stage1_ste(m, lay, f, r, idx);
  if (!s || cd_leaf_log2(s->ste, f) != leaf || s->s2.has_value() != nested) return std::nullopt;
  return l1cd_in(m, *s, leaf, idx);
}

} // namespace

// ---- Commands --------------------------------------------------------------------------------

namespace {

// [A] 4.1.6: "A command on the Non-secure Command queue with SSec == 1 is ILLEGAL, regardless
// of whether Secure state is supported, and raises CERROR_ILL" (the model's queue is the
// Non-secure one; [QV] smmuv3_cmdq_consume checks CMD_SSEC). Every command struct with an
// SSec field (format.h) is checked. Clause SMMUV3.CMDQ.ill_ssec.
bool names_secure_stream(const Command& c) {
  return std::visit(
      [](const auto& x) {
        if constexpr (requires { x.ssec; })
          return bool(x.ssec);
        else
          return false;
      },
      c);
}

// [A] 4.4.1.1 (with IDR3.RIL): "The parameter combination of NUM == 0, SCALE == 0 and TTL =
// 0b00 is Reserved. Use of this Reserved combination of parameters causes CERROR_ILL"; TG =
// 16KB with TTL = 0b01 counts as TTL = 0b00 (range_reserved: "a TLBI configured with TG ==
// 0b10 and TTL == 0b01, raises a CERROR_ILL"). [L] arm-smmu-v3.c:2192-2195 avoids it.
// Clause SMMUV3.CMDQ.ill_range.
bool reserved_range(const Command& c, const Features& f) {
  if (!f.range_inv) return false; // TG, NUM, SCALE, TTL are RES0 ([A] 4.4.1.1)
  return std::visit(
      [](const auto& x) {
        if constexpr (requires { x.ttl; }) // NH_VA, NH_VAA, EL2_VA, EL2_VAA, S2_IPA
          return range_reserved<uint64_t>(x.tg, x.num, x.scale, x.ttl);
        else
          return false;
      },
      c);
}

} // namespace

std::string_view command_error(const Command& c, const Features& f) {
  // [A] 4.1.3 "A Command queue CERROR_ILL error occurs when: A Reserved command opcode is
  // encountered" (4.1.1 lists them); the model decodes every opcode it does not know to
  // CmdUnknown, among them the Secure-only CMD_TLBI_EL3_VA (0x1A), CMD_TLBI_S_* (0x50-0x5A)
  // and CMD_TLBI_SNH_ALL (0x60), "CERROR_ILL when used on the Non-secure Command queue"
  // (4.4.2.6, 4.4.2.11-14, 4.4.3.3-4, 4.4.4.2). [QV] smmuv3_cmdq_consume default case;
  // [L] arm_smmu_cmdq_skip_err names CERROR_ILL = 1. SMMUV3.CMDQ.ill_opcode, ill_secure_only.
  if (std::holds_alternative<CmdUnknown>(c)) return "CERROR_ILL";
  // [A] 4.4.2.5 CMD_TLBI_EL3_ALL: "valid only on the Secure Command queue, otherwise a
  // CERROR_ILL is raised" (QEMU smmuv3.c ignores it). SMMUV3.CMDQ.ill_secure_only.
  if (std::holds_alternative<CmdTlbiEl3All>(c)) return "CERROR_ILL";
  if (names_secure_stream(c) || reserved_range(c, f)) return "CERROR_ILL";
  // [A] 4.4.3.1-2: "When issued on an SMMU without stage 2 support, a CERROR_ILL is raised";
  // 4.4.2: the NH commands "On a stage 2-only SMMU, they result in CERROR_ILL".
  if ((std::holds_alternative<CmdTlbiS2Ipa>(c) || std::holds_alternative<CmdTlbiS12Vmall>(c)) &&
      !f.stage2)
    return "CERROR_ILL";
  if ((std::holds_alternative<CmdTlbiNhAll>(c) || std::holds_alternative<CmdTlbiNhAsid>(c) ||
       std::holds_alternative<CmdTlbiNhVa>(c) || std::holds_alternative<CmdTlbiNhVaa>(c)) &&
      !f.stage1)
    return "CERROR_ILL";
  // [A] 4.4.2.7-10: "When SMMU_IDR0.Hyp == 0, this command causes a CERROR_ILL".
  const bool el2 =
      std::holds_alternative<CmdTlbiEl2All>(c) || std::holds_alternative<CmdTlbiEl2Asid>(c) ||
      std::holds_alternative<CmdTlbiEl2Va>(c) || std::holds_alternative<CmdTlbiEl2Vaa>(c);
  if (el2 && !f.hyp) return "CERROR_ILL";
  // [A] 4.5.1 CMD_ATC_INV "is ILLEGAL if ... SMMU_IDR0.ATS == 0" (SMMUV3.CMDQ.ill_ats);
  // 4.5.2 CMD_PRI_RESP "is ILLEGAL if ... SMMU_IDR0.PRI == 0" (the model's unit has no PRI).
  if (std::holds_alternative<CmdAtcInv>(c) && !f.ats) return "CERROR_ILL";
  if (std::holds_alternative<CmdPriResp>(c)) return "CERROR_ILL";
  return "";
}

Machine::Machine(Layout layout, Features features)
    : layout_(layout), features_(features), hist_([&] {
        Memory m;
        m.add_region(layout.ram);
        return m;
      }()) {
  atc_point();
}

void Machine::atc_point() {
  if (features_.ats) atc_points_.push_back({hist_, time_});
}

bool Machine::write(std::span<const hw::Write> ws) {
  const size_t before = hist_.stale().size();
  if (!hist_.write(ws)) return false;
  if (hist_.stale().size() != before) { // memory changed: an epoch ended at this number
    seq_ = hist_.stale().back().end;
    time_.writes.push_back(seq_);
    atc_point();
  }
  return true;
}

// [A] CMD_SYNC completes every command consumed before it.
void Machine::sync() {
  hist_.complete();
  for (Logged& l : pending_) {
    l.synced = seq_;
    time_.done.push_back(std::move(l));
  }
  pending_.clear();
  for (AtcInvalidation& a : atc_invs_)
    a.done = true;
}

hw::QueueOutcome Machine::run(std::span<const Cmd2> cmds) {
  hw::QueueOutcome out;
  for (size_t k = 0; k < cmds.size(); ++k) {
    const Command c = decode_command(cmds[k]);
    if (auto e = command_error(c, features_); !e.empty()) {
      // [A] 4.1.3, 7.1: the queue stops: CONS indexes the failing command, GERROR.CMDQ_ERR,
      // CERROR; commands before it were consumed, it and later ones were not
      // (SMMUV3.CMDQ.error_stop).
      error_ = std::string(e);
      rest_.assign(cmds.begin() + k + 1, cmds.end());
      out.error = error_;
      break;
    }
    if (std::holds_alternative<CmdSync>(c)) {
      sync();
    } else if (const auto* atc = std::get_if<CmdAtcInv>(&c)) {
      // Where it is consumed: the SMMU's state then decides what the device may ask again.
      atc_point();
      atc_invs_.push_back({*atc, atc_points_.size() - 1, false});
    } else {
      hist_.issue(c); // numbered seq_ + 1 by the history
      pending_.push_back({c, ++seq_, 0});
    }
    ++out.consumed;
  }
  prune();
  atc_point();
  return out;
}

// An epoch is dead once completed invalidations issued after it cover every entry it could
// have filled, rebuilt combined entries included. Decided through covers() itself, on sample
// keys at the extremes of every tag (so a command that misses any of them, e.g. one scoped to
// a VMID, keeps the epoch).
namespace {

// Whether any stream of this image translates (an STE with V = 1; with a two-level table,
// any L1STD written at all, conservatively). The model fills TLB and walk-cache entries of an
// epoch from that epoch's own STEs (machine.h "Model limits"), so an image without one can
// only have left configuration entries behind.
bool may_translate(const Memory& m, const Layout& lay, const Features& f) {
  const Strtab t = strtab_of(lay, f);
  const uint64_t end = t.base + (t.two_level ? 8 : 64) * (uint64_t(1) << std::min(t.log2, 40u));
  const auto& w = m.words();
  auto it = std::lower_bound(w.begin(), w.end(), t.base,
                             [](const auto& x, uint64_t a) { return x.first < a; });
  for (; it != w.end() && it->first < end; ++it) {
    if (t.two_level && it->second != 0) return true;
    if (!t.two_level && (it->first - t.base) % 64 == 0 && (it->second & 1)) return true;
  }
  return false;
}

} // namespace

void Machine::prune() {
  hist_.prune([&](size_t i) {
    const bool translates = may_translate(hist_.stale()[i].mem, layout_, features_);
    for (uint32_t id : {0u, 0xffffffffu})
      for (uint16_t tag : {uint16_t(0), uint16_t(0xffff)})
        for (uint64_t base : {uint64_t(0), uint64_t(0xfffffffff000)}) {
          auto sample = [&](Kind k) {
            Key key{k, id, id, tag, tag, false, base, 0x1000, 3};
            key.first = key.last = id; // a level-1 descriptor's StreamIDs / SubstreamIDs
            return key;
          };
          for (Kind k : {Kind::ste, Kind::cd, Kind::s1_leaf, Kind::s1_walk, Kind::s2_leaf,
                         Kind::s2_walk, Kind::combined, Kind::l1std, Kind::l1cd}) {
            if (!translates && is_tlb(k)) continue;
            if (hist_.survives(i,
                               [&](const Command& c) { return covers(c, sample(k), features_); }))
              return false;
          }
          if (!translates) continue;
          // A rebuilt combined entry may outlive its stage-2 source (any stage 1, any time).
          const Source b =
              cached_source(time_, features_, hist_.stale()[i].end, sample(Kind::s2_leaf));
          if (rebuilt_survives(time_, features_, Source{}, b, sample(Kind::combined))) return false;
        }
    return true;
  });
  // Completed commands issued before the oldest epoch ended cover none of its entries and
  // cannot be the last word on a rebuilt one (rebuilt_survives); keep the write that began
  // the oldest epoch (its birth) and every later one.
  const uint64_t oldest = hist_.stale().empty() ? seq_ + 1 : hist_.stale().front().end;
  std::erase_if(time_.done, [&](const Logged& l) { return l.issued < oldest; });
  auto first = std::lower_bound(time_.writes.begin(), time_.writes.end(), oldest);
  if (first != time_.writes.begin()) --first;
  time_.writes.erase(time_.writes.begin(), first);
}

hw::QueueOutcome Machine::submit(std::span<const Cmd2> cmds) {
  // A stopped queue consumes nothing until the error is acknowledged ([A] GERROR.CMDQ_ERR),
  // but what software writes behind PROD meanwhile is in the queue: [A] 7.1 "Commands at or
  // after the CMDQ_CONS.RD position are fetched or re-fetched after command processing is
  // restarted", so they run after the stopped submission's rest (clause SMMUV3.CMDQ.resume).
  if (stopped()) {
    rest_.insert(rest_.end(), cmds.begin(), cmds.end());
    return {0, error_};
  }
  return run(cmds);
}

// [L] __arm_smmu_cmdq_skip_err (arm-smmu-v3.c:391-447) writes a CMD_SYNC over the command at
// CONS ("Convert the erroneous command into a CMD_SYNC") and arm_smmu_gerror_handler
// acknowledges GERROR; [A] 7.1: "Commands at or after the CMDQ_CONS.RD position are fetched
// or re-fetched after command processing is restarted", so that CMD_SYNC is consumed (and
// counted) first, then the rest of the stopped submission.
// Clause SMMUV3.CMDQ.resume.
hw::QueueOutcome Machine::resume() {
  if (!stopped()) return {};
  error_.clear();
  sync(); // the replacing CMD_SYNC
  const std::vector<Cmd2> rest = std::move(rest_);
  rest_.clear();
  hw::QueueOutcome out = run(rest);
  ++out.consumed;
  return out;
}

// ---- Device accesses -------------------------------------------------------------------------

namespace {

// One image's view of a stream, for the cache rules: its configuration and, when it
// translates, the fresh walk there (what could have been cached from it).
struct EpochView {
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
  if (!s.stop.empty()) return v;
  v.ste = s.ste;
  v.s2 = s.s2;
  v.vmid = vmid_of(s.ste, f);
  if (!s.s1) return v;
  const auto w = cd_words_in(m, s, f, s.cd_index); // linear, or through m's L1CD
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
  // treq: the answers to an ATS Translation Request for the access (only STEs that service
  // them count; the caller keeps the translations).
  Lookup(const CacheHistory<Command>& h, const Timeline& t, const Layout& lay, const Features& f,
         const hw::DmaRequest& r, bool treq = false)
      : h_(h), t_(t), lay_(lay), f_(f), r_(r), treq_(treq) {
    views_.reserve(h.stale().size());
    for (const auto& e : h.stale())
      views_.push_back(view(e.mem, lay, f, r));
  }

  std::vector<Allowed> run() {
    for (const SteResult& cur : resolve_stes(h_.memory(), lay_, f_, r_))
      config(cur, "");
    // Cached STEs of earlier images: [A] 3.21.3 "Any STE ... within the STE table ... can be
    // fetched and cached", "whether marked as valid or not" (V = 0 or ILLEGAL: C_BAD_STE).
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!survives(i, ste_key())) continue;
      for (const SteResult& s : resolve_stes(image(i), lay_, f_, r_)) {
        if (!s.fetched) continue; // a failed fetch is not cached
        config(s, s.valid ? "SMMUV3.CACHE.config" : "SMMUV3.CACHE.config_invalid");
      }
    }
    cached_l1stds();
    return std::move(out_);
  }

private:
  const Memory& image(size_t i) const { return h_.stale()[i].mem; }
  bool serves(const SteResult& s) const {
    return !treq_ || (s.valid && serves_translation_requests(f_, s.ste));
  }
  bool survives(size_t i, const Key& k) const {
    return h_.survives(i, [&](const Command& c) { return covers(c, k, f_); });
  }
  // The other streams of image i, seen at this access's address and SubstreamID. TLB
  // entries belong to an address space, not to the stream that inserted them: [A] 3.17
  // (NS-EL1 entries are tagged with VMID and ASID; stage-2 ones with the VMID), 5.4.1 "If
  // multiple CDs exist in the same translation regime representing the same address space,
  // any of these CDs can insert TLB entries matching lookup in that address space"; and any
  // valid STE of the image may have inserted them (3.21.3: structures are fetched and cached
  // without an access). Linear stream tables only (machine.h "Model limits").
  // Clause SMMUV3.CACHE.shared.
  const std::vector<EpochView>& peers(size_t i) const {
    if (peers_.empty()) peers_.resize(views_.size());
    auto& p = peers_[i];
    if (p) return *p;
    p.emplace();
    const Strtab t = strtab_of(lay_, f_);
    if (t.two_level) return *p;
    const uint64_t end = t.base + 64 * (uint64_t(1) << std::min(t.log2, 40u));
    const auto& w = image(i).words();
    auto it = std::lower_bound(w.begin(), w.end(), t.base,
                               [](const auto& x, uint64_t addr) { return x.first < addr; });
    for (; it != w.end() && it->first < end; ++it) {
      if ((it->first - t.base) % 64 != 0 || !(it->second & 1)) continue; // STE.V
      hw::DmaRequest q = r_;
      q.sid = uint32_t((it->first - t.base) / 64);
      if (q.sid == r_.sid) continue;
      EpochView v = view(image(i), lay_, f_, q);
      if (v.s1 || v.s2) p->push_back(std::move(v));
    }
    return *p;
  }

  Key ste_key() const { return Key{Kind::ste, r_.sid}; }
  Key cd_key(uint32_t idx) const { return Key{Kind::cd, r_.sid, idx}; }

  // One STE candidate: how it ends, or everything it allows.
  void config(const SteResult& s, std::string_view cached) {
    if (!serves(s)) return;
    for (const Allowed& a : s.stop)
      add(a.outcome, cached.empty() ? a.clause : cached);
    if (s.stop.empty()) with_ste(s, cached);
  }

  // L1STDs cached from earlier images (any Span: [A] 3.21.3, 5.1.1 "Changing an inactive
  // L1STD with Span == 0 to a non-zero active Span ... requires an invalidation of the L1STD"),
  // each walked on to the STE in current memory, as a cached table descriptor is (3.21.3: a
  // structure is reachable through "a pointer within a precursor structure (either in memory
  // or cached)"). Clause SMMUV3.CACHE.l1std.
  void cached_l1stds() {
    const Strtab t = strtab_of(lay_, f_);
    if (!t.two_level || r_.sid >= bit(t.log2)) return;
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!survives(i, l1std_key(t, r_.sid))) continue;
      const auto d = cacheable_l1std(image(i), t, r_.sid);
      if (!d) continue;
      for (const SteResult& s : resolve_stes(h_.memory(), lay_, f_, r_, &*d))
        config(s, "SMMUV3.CACHE.l1std");
    }
  }

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
    const unsigned leaf = cd_leaf_log2(s.ste, f_);
    if (leaf == 0)
      fetch_cd(s, s.ste.s1_context_ptr + uint64_t(s.cd_index) * 64, cached, "SMMUV3.CD.s2_fetch");
    else
      two_level_cd(s, leaf, cached);
    cached_cds(s);
  }

  // Where a structure at `addr` is read: an IPA through the stream's stage 2 (its candidates),
  // or the PA itself.
  std::vector<Walk> fetch_where(const SteResult& s, uint64_t addr) const {
    std::vector<Walk> where;
    if (s.s2) {
      s2_options(*s.s2, vmid_of(s.ste, f_), addr, Access{addr, false, false, true}, where);
    } else {
      Walk direct;
      direct.pa = addr;
      where.push_back(direct);
    }
    return where;
  }

  // The CD at `addr` (an IPA when nested), read from current memory, then stage 1.
  void fetch_cd(const SteResult& s, uint64_t addr, std::string_view cached,
                std::string_view s2_clause) {
    for (const Walk& t : fetch_where(s, addr)) {
      if (t.fault) { // the CD fetch through stage 2: a stage-2 fault, CLASS=CD ([QV])
        add(walk_outcome(t, s.ste, nullptr, r_, class_cd), pick(cached, s2_clause));
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
  }

  // A two-level CD table ([A] 5.2 S1Fmt, 5.3): the L1CD from current memory (at an IPA
  // through stage 2 when nested: 5.2 "If stage 2 is configured, STE.S1ContextPtr is an IPA.
  // If this field indicates a 2-level table, the pointers in the first-level table are also
  // IPAs"), or an L1CD cached from an earlier image; then the CD in its leaf.
  void two_level_cd(const SteResult& s, unsigned leaf, std::string_view cached) {
    for (const Walk& t : fetch_where(s, l1cd_addr(s.ste, leaf, s.cd_index))) {
      // [A] 7.3.13 stage 2 "If fetching a CD, CLASS == CD"; 3.4.3: "the reported address is
      // the calculated address of the structure being accessed, for example an L1CD address"
      // (SMMUV3.CD.l1_ipa_fetch); not cached (3.21.3).
      if (t.fault) {
        add(walk_outcome(t, s.ste, nullptr, r_, class_cd), pick(cached, "SMMUV3.CD.l1_ipa_fetch"));
        continue;
      }
      // [A] 7.3.10 F_CD_FETCH, 3.21.3 "CD/L1CD ... that experiences an external abort
      // (F_CD_FETCH ...)" (SMMUV3.CD.l1_fetch).
      const auto w = h_.memory().read64(t.pa);
      if (!w) {
        add(config_event(EventType::f_cd_fetch, r_, t.pa), pick(cached, "SMMUV3.CD.l1_fetch"));
        continue;
      }
      through_l1cd(s, leaf, decode_cd_l1(*w), cached);
    }
    // [A] 3.21.3 "Any CD or L1CD within a CD table can be fetched and cached" (valid or not);
    // 5.3.1 "Changing an inactive L1CD with V == 0 to an active V == 1 form ... requires an
    // invalidation of the L1CD". Walked on to the CD in current memory.
    const Key k = l1cd_key(r_.sid, leaf, s.cd_index);
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!survives(i, k)) continue;
      const auto d = cacheable_l1cd(image(i), lay_, f_, r_, s.cd_index, leaf, s.s2.has_value());
      if (d) through_l1cd(s, leaf, *d, pick(cached, "SMMUV3.CACHE.l1cd"));
    }
  }

  void through_l1cd(const SteResult& s, unsigned leaf, const CdL1Desc& d, std::string_view cached) {
    // [A] 5.3.1 "If a CD fetch for a transaction with SubstreamID encounters an L1CD with
    // V == 0, L2Ptr is IGNORED, the transaction is terminated with abort and a
    // C_BAD_SUBSTREAMID event is recorded" (7.3.9). For CD 0 of a transaction without one
    // (S1DSS = 0b10) the text names no event: 7.3.9 records C_BAD_SUBSTREAMID (SubstreamID 0)
    // when such a transaction meets an out-of-range L1CD.L2Ptr, and no CD was found (C_BAD_CD,
    // 7.3.11): the weaker reading allows either.
    if (!d.v) {
      add(config_event(EventType::c_bad_substreamid, r_), pick(cached, "SMMUV3.CD.l1_valid"));
      if (!r_.ssid) add(config_event(EventType::c_bad_cd, r_), pick(cached, "SMMUV3.CD.l1_valid"));
      return;
    }
    for (uint64_t base : leaf_bases(d, leaf)) {
      // [A] 3.4.3 L1CD.L2Ptr beyond the OAS (stage 1 only) or IAS (nested): SMMUv3.1 and
      // later C_BAD_SUBSTREAMID; CONSTRAINED UNPREDICTABLE in SMMUv3.0 (F_CD_FETCH with the
      // address, or truncation) and, nested, a stage-2 Translation fault on the whole IPA or
      // (3.0) on the truncated one. The model has no SMMU version: all of them
      // (SMMUV3.CD.l2ptr_range).
      const Reach rc =
          reach(cd_in_leaf(base, leaf, s.cd_index), s.s2 ? ias_sizes(f_) : oas_sizes(f_));
      if (rc.too_large)
        add(config_event(EventType::c_bad_substreamid, r_), pick(cached, "SMMUV3.CD.l2ptr_range"));
      for (uint64_t a : rc.addrs)
        fetch_cd(s, a, cached, "SMMUV3.CD.l1_ipa_fetch");
    }
  }

  // CDs of this (StreamID, SubstreamID) cached from earlier images, valid or not ([A]
  // 3.21.3, cacheable_cd): an invalid one gives C_BAD_CD.
  void cached_cds(const SteResult& s) {
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!survives(i, cd_key(s.cd_index))) continue;
      const auto c = cacheable_cd(image(i), lay_, f_, r_, s.cd_index);
      if (!c) continue;
      if (c->stop)
        add(*c->stop, "SMMUV3.CACHE.config_invalid");
      else
        translate_s1(s, c->cd, c->s1, "SMMUV3.CACHE.config");
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
      s2_stale(s2, vmid, ipa, a, i, views_[i], out);
      for (const EpochView& peer : peers(i))
        s2_stale(s2, vmid, ipa, a, i, peer, out);
    }
  }

  // Stage-2 entries of image i inserted through view v (this stream's or a peer's: stage-2
  // entries are tagged by VMID alone, [A] 3.17).
  void s2_stale(const S2Config& s2, uint16_t vmid, uint64_t ipa, const Access& a, size_t i,
                const EpochView& v, std::vector<Walk>& out) const {
    if (!v.s2 || v.vmid != vmid || !same_s2_geometry(*v.s2, s2)) return;
    const Walk old = walk_s2_from(image(i), *v.s2, ipa, a, std::nullopt);
    const uint8_t tg = tg_of(s2.granule);
    if (old.s2_entry && survives(i, Key{Kind::s2_leaf, 0, 0, vmid, 0, false, old.s2_entry->ipa_base,
                                        old.s2_entry->size, old.s2_entry->level, tg}))
      out.push_back(s2_entry_result(s2, *old.s2_entry, ipa, a));
    for (const WalkFrom& t : old.s2_tables) {
      const uint64_t span = span_of(s2.granule, t.level - 1);
      if (survives(i, Key{Kind::s2_walk, 0, 0, vmid, 0, false, ipa & ~(span - 1), span, t.level - 1,
                          tg}))
        out.push_back(walk_s2_from(h_.memory(), s2, ipa, a, t));
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

  // The stage-1 side of one STE and CD candidate pair.
  struct S1Ctx {
    const SteResult& s;
    const Cd& cd;
    const S1Config& s1;
    std::string_view cached;
    Access a;
    uint16_t vmid = 0;
    std::optional<S2Translate> tr; // nested: stage 2 for the stage-1 table addresses
  };

  void translate_s1(const SteResult& s, const Cd& cd, const S1Config& s1, std::string_view cached) {
    S1Ctx x{s, cd, s1, cached, access_of(r_), vmid_of(s.ste, f_), std::nullopt};
    if (s.s2) {
      const S2Config s2 = *s.s2;
      const uint16_t vmid = x.vmid;
      x.tr = [this, s2, vmid](uint64_t ipa, const Access& ra, std::vector<Walk>& o) {
        s2_options(s2, vmid, ipa, ra, o);
      };
    }
    std::vector<Walk> fresh;
    walk_s1_from(h_.memory(), s1, x.tr ? &*x.tr : nullptr, x.a, std::nullopt, fresh);
    for (const Walk& w : fresh)
      finish(x, w, w.fault ? fault_clause(w) : "SMMUV3.WALK.translate");
    for (size_t i = 0; i < views_.size(); ++i) {
      stale_s1(x, i, views_[i], false);
      for (const EpochView& peer : peers(i))
        stale_s1(x, i, peer, true);
    }
    if (s.s2) rebuilt_combined(x, fresh);
  }

  // Through stage 2 (nested) or not: each stage-1 result gives its outcome(s).
  void finish(const S1Ctx& x, const Walk& w1, std::string_view clause) {
    if (w1.fault || !x.s.s2) {
      add(walk_outcome(w1, x.s.ste, &x.cd, r_), pick(x.cached, clause));
      return;
    }
    std::vector<Walk> opts;
    s2_options(*x.s.s2, x.vmid, w1.pa, x.a, opts);
    for (size_t k = 0; k < opts.size(); ++k) {
      const Walk w = combine_nested(w1, opts[k]);
      add(walk_outcome(w, x.s.ste, &x.cd, r_),
          pick(x.cached, k == 0 ? clause : std::string_view("SMMUV3.CACHE.s2")));
    }
  }

  // Surviving stage-1 entries of earlier image i with the same tags ([A] TLB tagging: VMID,
  // ASID unless the entry is global; [A] 4.4.1.1: the granule it was inserted with).
  // v: this stream's view of image i, or (peer) another stream's (peers()).
  void stale_s1(const S1Ctx& x, size_t i, const EpochView& v, bool peer) {
    if (!v.s1 || v.vmid != x.vmid || !same_s1_geometry(*v.s1, x.s1)) return;
    if (v.s2.has_value() != x.s.s2.has_value()) return;
    const Walk& old = v.s1_walk;
    if (old.s1_entry && (!old.s1_entry->leaf.ng || v.asid == x.cd.asid))
      stale_s1_leaf(x, i, v, peer);
    if (v.asid != x.cd.asid) return; // walk-cache entries are ASID-tagged
    for (const WalkFrom& t : old.s1_tables) {
      const uint64_t span = span_of(x.s1.granule, t.level - 1);
      const Key k{
          Kind::s1_walk,      0, 0, x.vmid, v.asid, false, r_.addr & ~(span - 1), span, t.level - 1,
          tg_of(x.s1.granule)};
      if (!survives(i, k)) continue;
      std::vector<Walk> ws;
      walk_s1_from(h_.memory(), x.s1, x.tr ? &*x.tr : nullptr, x.a, t, ws);
      for (const Walk& w : ws)
        finish(x, w, peer ? "SMMUV3.CACHE.shared" : "SMMUV3.CACHE.walk");
    }
  }

  void stale_s1_leaf(const S1Ctx& x, size_t i, const EpochView& v, bool peer) {
    const Walk& old = v.s1_walk;
    const S1Entry& e = *old.s1_entry;
    const bool global = !e.leaf.ng;
    const Key k{Kind::s1_leaf, 0,         0,      x.vmid,  v.asid,
                global,        e.va_base, e.size, e.level, tg_of(x.s1.granule)};
    if (survives(i, k))
      finish(x, s1_entry_result(x.s1, e, x.a), peer ? "SMMUV3.CACHE.shared" : "SMMUV3.CACHE.tlb");
    // A combined stage-1+2 entry ([A] "combined" TLB entries; [AA]): the old image's whole
    // translation, removed by stage-1 scoped commands and S12_VMALL only.
    if (!x.s.s2 || old.fault || !v.s2 || !same_s2_geometry(*v.s2, *x.s.s2)) return;
    const Walk t = walk_s2_from(image(i), *v.s2, old.pa, x.a, std::nullopt);
    if (!t.s2_entry) return;
    const Key kc = combined_key(x.vmid, v.asid, e, x.s1.granule, x.s.s2->granule);
    if (!survives(i, kc)) return;
    const Walk w = combine_nested(s1_entry_result(x.s1, e, x.a),
                                  s2_entry_result(*x.s.s2, *t.s2_entry, old.pa, x.a));
    add(walk_outcome(w, x.s.ste, &x.cd, r_),
        peer ? "SMMUV3.CACHE.shared" : "SMMUV3.CACHE.combined");
  }

  // A stage-1 translation a combined entry could be built from: the current image's (the
  // fresh walks), or a stage-1 leaf cached from stale image j (while it stayed cached).
  struct S1Source {
    const Walk* walk;
    uint16_t asid;
    Source when;
  };

  // Combined entries built from a stage-2 entry of an earlier image while it was still
  // cached, possibly after that image ended (rebuilt_survives, SMMUV3.CACHE.combined_s2ipa).
  void rebuilt_combined(const S1Ctx& x, const std::vector<Walk>& fresh) {
    std::vector<S1Source> from;
    const uint64_t now = t_.writes.empty() ? 0 : t_.writes.back();
    for (const Walk& w : fresh)
      from.push_back({&w, x.cd.asid, Source{now, kNever, std::nullopt, 0}});
    for (size_t j = 0; j < views_.size(); ++j) {
      const EpochView& v = views_[j];
      if (!v.s1 || !v.s2 || v.vmid != x.vmid || !same_s1_geometry(*v.s1, x.s1)) continue;
      if (!v.s1_walk.s1_entry) continue;
      const S1Entry& e = *v.s1_walk.s1_entry;
      const Key k{Kind::s1_leaf, 0,         0,      x.vmid,  v.asid,
                  !e.leaf.ng,    e.va_base, e.size, e.level, tg_of(x.s1.granule)};
      from.push_back({&v.s1_walk, v.asid, cached_source(t_, f_, h_.stale()[j].end, k)});
    }
    for (const S1Source& src : from) {
      const Walk& w = *src.walk;
      if (w.fault || !w.s1_entry || (w.s1_entry->leaf.ng && src.asid != x.cd.asid)) continue;
      for (size_t i = 0; i < views_.size(); ++i)
        rebuilt_from(x, src, i);
    }
  }

  void rebuilt_from(const S1Ctx& x, const S1Source& src, size_t i) {
    const EpochView& v = views_[i];
    if (!v.s2 || v.vmid != x.vmid || !same_s2_geometry(*v.s2, *x.s.s2)) return;
    const uint64_t ipa = src.walk->pa; // stage-1 output
    const Walk t = walk_s2_from(image(i), *v.s2, ipa, x.a, std::nullopt);
    if (!t.s2_entry) return;
    const S2Entry& b = *t.s2_entry;
    const Key kb{Kind::s2_leaf, 0,          0,      x.vmid,  0,
                 false,         b.ipa_base, b.size, b.level, tg_of(x.s.s2->granule)};
    const Key kc =
        combined_key(x.vmid, src.asid, *src.walk->s1_entry, x.s1.granule, x.s.s2->granule);
    if (!rebuilt_survives(t_, f_, src.when, cached_source(t_, f_, h_.stale()[i].end, kb), kc))
      return;
    const Walk w = combine_nested(s1_entry_result(x.s1, *src.walk->s1_entry, x.a),
                                  s2_entry_result(*x.s.s2, b, ipa, x.a));
    add(walk_outcome(w, x.s.ste, &x.cd, r_), "SMMUV3.CACHE.combined_s2ipa");
  }

  const CacheHistory<Command>& h_;
  const Timeline& t_;
  const Layout& lay_;
  const Features& f_;
  const hw::DmaRequest& r_;
  bool treq_ = false;
  std::vector<EpochView> views_;
  mutable std::vector<std::optional<std::vector<EpochView>>> peers_; // peers(), on first use
  std::vector<Allowed> out_;
};

// ---- ATC -------------------------------------------------------------------------------------
// With Features::ats, a device whose STE services ATS Translation Requests (EATS = 0b01) may
// have asked at any earlier point, and hold what the SMMU could have answered then: the
// translations of its allowed set there, stale cached entries included ([A] 3.9.1.2; 5.2
// EATS "Translated traffic from the StreamID of the STE is allowed to bypass"). A fault
// answers nothing ([A] 3.9.1.2: the response carries no translation; with REC_CFG_ATS = 0
// no event is recorded): the device then sends the untranslated access, whose outcomes are
// the SMMU's set. Clause SMMUV3.ATC.fill.
//
// A CMD_ATC_INV covering the access (atc_covers) removes such a translation for good once a
// later CMD_SYNC has completed ([A] 4.5.1 "Completion is ensured by the completion of a
// subsequent CMD_SYNC"), if, from the point it was consumed on, the SMMU could no longer
// answer with it: otherwise the device may have asked again and been answered from an entry
// whose TLB invalidation had not completed ([A] 4.5.1: "after ensuring completion of the SMMU
// translation invalidate, issue a CMD_ATC_INV"). Consumption is the earliest point it can
// act (the weaker reading). Clauses SMMUV3.ATC.inv, SMMUV3.ATC.after_tlbi.

// [A] 4.5.1: "Sends an invalidation request to StreamID, and SubstreamID when SSV == 1, for
// translations spanned by Address plus span of 4096 * 2^Size. The Address span is aligned to
// its size by the SMMU"; "A Size value of 52 corresponds to a 2^64 byte span"; a larger Size
// "might cause an UNKNOWN span to be used, which might mean no invalidation occurs" (the
// weaker reading: none). SSV == 0 reaches the translations of requests without a PASID (the
// note on S1DSS == 0b10: "software must issue CMD_ATC_INV with SSV == 0" for them), SSV == 1
// those of its SubstreamID; Global is only a hint for other PASIDs' global entries (PCIe ATS),
// so it is required to cover no more. The device may hold the 4K page of the access alone
// (the STU is at least 4K), so the span must hold that page. Clause SMMUV3.ATC.scope.
bool atc_covers(const CmdAtcInv& c, const hw::DmaRequest& r) {
  if (c.sid != r.sid || c.ssv != r.ssid.has_value()) return false;
  if (c.ssv && c.ssid != *r.ssid) return false;
  if (c.size > 52) return false;
  const uint64_t mask = c.size >= 52 ? ~uint64_t(0) : (bit(12 + c.size) - 1);
  return ((r.addr & ~uint64_t(0xfff)) & ~mask) == (c.addr & ~mask);
}

} // namespace

std::vector<Allowed> Machine::dma(const hw::DmaRequest& r) const {
  std::vector<Allowed> out = Lookup(hist_, time_, layout_, features_, r).run();
  if (features_.ats) atc(r, out);
  return out;
}

void Machine::atc(const hw::DmaRequest& r, std::vector<Allowed>& out) const {
  // What a Translation Request for this access was answered with at each point.
  std::vector<std::vector<hw::DmaOutcome>> answers(atc_points_.size());
  for (size_t p = 0; p < atc_points_.size(); ++p)
    for (Allowed& a :
         Lookup(atc_points_[p].hist, atc_points_[p].time, layout_, features_, r, true).run())
      if (a.outcome.kind == hw::DmaOutcome::Kind::ok) answers[p].push_back(std::move(a.outcome));
  auto answered_from = [&](size_t k, const hw::DmaOutcome& o) {
    for (size_t q = k; q < answers.size(); ++q)
      if (std::find(answers[q].begin(), answers[q].end(), o) != answers[q].end()) return true;
    return false;
  };
  for (const auto& at : answers)
    for (const hw::DmaOutcome& o : at) {
      if (std::any_of(out.begin(), out.end(), [&](const Allowed& a) { return a.outcome == o; }))
        continue;
      const bool gone = std::any_of(atc_invs_.begin(), atc_invs_.end(), [&](const auto& inv) {
        return inv.done && atc_covers(inv.cmd, r) && !answered_from(inv.point, o);
      });
      if (!gone) out.push_back({o, "SMMUV3.ATC.fill"});
    }
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
