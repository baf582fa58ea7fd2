// The VT-d machine. Sources, cited at each rule:
//   Qc:NAME  QEMU hw/i386/intel_iommu.c, function NAME (pbo-linaro/qemu-ci @fc8b078e, 10.2.50)
//   Q:NAME   QEMU hw/i386/intel_iommu_internal.h, macro NAME (same commit)
//   dmar.c:N, iommu.h:N, iommu.c:N, pasid.c:N, cache.c:N   linux-source-6.12
//            drivers/iommu/intel
//   [DS]     Intel chipset datasheets reproducing the VT-d registers (FRCD_REG, IVA_REG.IH,
//            FSTS_REG), as quoted in /work/facts/viommu-queues.md §5.2
//   [VTD]    Intel Virtualization Technology for Directed I/O Architecture Specification,
//            rev. 5.10 (D51397-018, November 2025), by section (the device TLB)
// The walks are walk.h's; their rules are cited in walk.cpp.
//
// Where the sources leave open whether an invalidation covers a cached entry, the model takes
// the weaker reading (it does not): a stale entry is only ever *allowed*, so the weaker reading
// never fails a conforming implementation. Each such place says "weaker reading".
#include "vtd/machine.h"

#include "vtd/range.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace iommuspec::vtd {
namespace {

constexpr uint64_t bit(unsigned n) {
  return n >= 64 ? 0 : uint64_t(1) << n;
}
uint64_t low_mask(unsigned n) {
  return n >= 64 ? ~uint64_t(0) : bit(n) - 1;
}
constexpr uint64_t kAddr = 0x000f'ffff'ffff'f000ull; // bits 51:12 (format.h)
constexpr uint64_t kFsG = bit(8);                    // first-stage G flag (x86 pgtable:19)

// ---- Cache entries and what covers them ---------------------------------------------------

enum class Kind : uint8_t { context, pasid, ss_leaf, ss_psc, fs_leaf, fs_psc, nested, pt };

struct Key {
  Kind kind = Kind::context;
  uint16_t sid = 0;
  uint16_t did = 0;
  uint32_t pasid = 0;
  bool global = false; // first-stage leaf (or combined entry) with G = 1
  uint64_t base = 0, size = 0;
  int level = 0; // the leaf's level, or the level of the non-leaf entry
};

bool is_iotlb(Kind k) {
  return k != Kind::context && k != Kind::pasid;
}
// Entries tagged with a PASID: first-stage and nested translations (PASID-granular).
bool fs_scoped(Kind k) {
  return k == Kind::fs_leaf || k == Kind::fs_psc || k == Kind::nested;
}
bool is_psc(Kind k) {
  return k == Kind::ss_psc || k == Kind::fs_psc;
}

// Page-selective invalidation: 2^AM 4K pages, ADDR aligned down to that size (range.h
// am_span: "VT-d HW silently ignores any address bits below the mask", Linux commit
// 1ff00279655d; QEMU vtd_hash_remove_by_page masks with ~((1 << am) - 1); iommu.h:413).
arith::SpanOf<uint64_t> am_span(uint64_t addr, uint8_t am) {
  return vtd::am_span<uint64_t>(addr, am);
}
bool overlaps(const arith::SpanOf<uint64_t>& s, const Key& k) {
  return arith::overlaps<uint64_t>(s, k.base, k.size);
}

// Function mask of a device-selective context-cache invalidation: FM = 1 masks bit 2 of the
// function number, 2 bits 2:1, 3 bits 2:0 (iommu.h:306-309 DMA_CCMD_FM, :415).
uint16_t fm_mask(uint8_t fm) {
  fm &= 3;
  return fm == 0 ? 0 : uint16_t(((1u << fm) - 1) << (3 - fm));
}

bool covers(const QiDescriptor& d, const Key& k, bool scalable, const Features& f) {
  return std::visit(
      [&](const auto& c) -> bool {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, ContextCacheInv>) {
          if (k.kind != Kind::context) return false;
          switch (c.g) {
          case CcGranularity::global:
            return true;
          case CcGranularity::domain:
            // Legacy: entries of the DID. Scalable-mode context entries carry no DID ("The
            // Domain-ID field of the Context-cache Invalidate Descriptor is ignored by hardware
            // when operating in scalable mode", pasid.c intel_context_flush_no_pasid); QEMU
            // treats domain-selective as global (Qc:vtd_process_context_cache_desc). Weaker
            // reading: in scalable mode it covers nothing.
            return !scalable && k.did == c.did;
          case CcGranularity::device: {
            // Source-id under the function mask; legacy: and the DID (CCMD_REG "device
            // source-id and domain-id"; Linux passes the old DID, iommu.c:1623; weaker reading
            // where QEMU ignores the DID, Qc:vtd_context_device_invalidate). Scalable: the DID
            // is ignored (pasid.c, as above).
            const uint16_t m = fm_mask(c.fm);
            if ((k.sid & ~m) != (c.sid & ~m)) return false;
            return scalable || k.did == c.did;
          }
          }
          return false;
        }
        if constexpr (std::is_same_v<T, IotlbInv>) {
          if (!is_iotlb(k.kind)) return false;
          switch (c.g) {
          case IotlbGranularity::global: // every IOTLB and paging-structure-cache entry
            return true;
          case IotlbGranularity::domain: // every entry of the DID, any PASID (Qc:
            return k.did == c.did;       // vtd_iotlb_domain_invalidate; iommu.h:248-250)
          case IotlbGranularity::page: {
            if (k.did != c.did) return false;
            // First-stage and nested entries of the DID are all invalidated, whatever the
            // address: QEMU vtd_hash_remove_by_page ("According to spec, IOTLB entries caching
            // first-stage (PGTT=001b) or nested (PGTT=011b) mapping associated with specified
            // domain-id are invalidated"), and Linux relies on it after a nesting parent's
            // second stage changes (cache.c CACHE_TAG_NESTING_IOTLB: a PSI by the nested DID
            // and the GPA). IH = 1 keeps paging-structure-cache entries ([DS] IVA_REG.IH:
            // "hardware may preserve the cached non-leaf page-table entries").
            if (c.ih && is_psc(k.kind)) return false;
            if (fs_scoped(k.kind)) return true;
            // Second-stage and pass-through entries in the 2^AM pages at ADDR; a large-page
            // entry any part of which is in the range (Qc:vtd_hash_remove_by_page compares the
            // entry's own gfn). AM > MAMV is refused as IQE before it gets here.
            return overlaps(am_span(c.addr, c.am), k);
          }
          }
          return false;
        }
        if constexpr (std::is_same_v<T, PasidCacheInv>) {
          if (k.kind != Kind::pasid) return false;
          switch (c.g) {
          case PasidCacheGranularity::domain: // iommu.h:430-435; Qc:vtd_process_pasid_desc
            return k.did == c.did;
          case PasidCacheGranularity::pasid:
            return k.did == c.did && k.pasid == c.pasid;
          case PasidCacheGranularity::global:
            return true;
          }
          return false;
        }
        if constexpr (std::is_same_v<T, PasidIotlbInv>) {
          // First-stage and nested entries of the DID and PASID only: "PASID-based-IOTLB
          // Invalidation in page granularity doesn't invalidate IOTLB entries caching
          // second-stage (PGTT=010b) or pass-through (PGTT=100b) mappings"
          // (Qc:vtd_hash_remove_by_page_piotlb); second-stage entries carry no PASID tag, so
          // the all-in-PASID form does not select them either (weaker reading where
          // Qc:vtd_hash_remove_by_pasid would).
          if (!fs_scoped(k.kind) || k.did != c.did || k.pasid != c.pasid) return false;
          if (c.g == PasidIotlbGranularity::all_in_pasid)
            // "Non-globals within PASID" (iommu.h:472 QI_GRAN_NONG_PASID): G = 1 leaves stay
            // (weaker reading).
            return !(k.global && !is_psc(k.kind));
          if (c.ih && is_psc(k.kind)) return false;
          // AM above CAP.MAMV: undefined ([DS] IVA_REG.AM; QEMU does not check it for this
          // descriptor and shifts an int, Qc:vtd_piotlb_page_invalidate). Weaker reading:
          // it covers nothing.
          if (c.am > f.mamv) return false;
          return overlaps(am_span(c.addr, c.am), k);
        }
        // Device-TLB descriptors select nothing in the IOMMU's caches (the device TLB is the
        // device's: "Device TLB" below); nor does the interrupt entry cache descriptor.
        return false;
      },
      d);
}

// ---- Outcomes -------------------------------------------------------------------------------

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

// Qualified faults are suppressed when an FPD bit of the entries used is set; the others are
// recorded whatever FPD says (Qc:vtd_report_fault with vtd_qualified_faults[]). The faults
// before the context entry is read cannot see its FPD; QEMU also lists the context-entry
// reserved fault and the PASID directory/table access errors as not qualified. Codes QEMU does
// not raise (the scalable-mode root/context codes, 0x45, 0x46 and the walk codes) follow the
// same line: not qualified before the context entry is read, qualified after.
bool qualified(FaultReason r) {
  switch (r) {
  case FaultReason::software:
  case FaultReason::root_not_present:
  case FaultReason::root_table_invalid:
  case FaultReason::context_table_invalid:
  case FaultReason::root_reserved:
  case FaultReason::context_reserved:
  case FaultReason::sm_ttm0_pasid:
  case FaultReason::sm_root_access:
  case FaultReason::sm_root_not_present:
  case FaultReason::sm_root_reserved:
  case FaultReason::sm_context_access:
  case FaultReason::sm_context_reserved:
  case FaultReason::sm_pasid_dir_access:
  case FaultReason::sm_pasid_entry_access:
    return false;
  default:
    return true;
  }
}

// The primary fault record an access raises, with the bits the model defines: FI (the page
// address, bits 63:12, of which hardware keeps bits below MGAW: "Hardware treats bits 63:N as
// reserved (0), where N is the maximum guest address width", [DS] FRCD_REG.FI), SID, FR, T
// (0 write, 1 read), PP and, with PP, the PASID (iommu.h:347-354; Qc:vtd_report_dmar_fault).
// PP says whether the *request* carried a PASID (Linux dmar.c:2016-2017 reads PP=0 as "no
// PASID"). DISAGREE: QEMU records PP=1, PASID 0 for a request without PASID in scalable mode
// (vtd_do_iommu_translate looks it up as PASID_0). F is a status bit, not compared; EXE/PRIV
// and AT have no position in format.h and are not represented.
hw::DmaOutcome fault_record(FaultReason reason, const hw::DmaRequest& r, const Features& f) {
  FaultRecord fr;
  fr.fi = r.addr & ~uint64_t(0xfff);
  fr.sid = uint16_t(r.sid);
  fr.pp = r.ssid.has_value();
  fr.pasid = r.ssid.value_or(0) & 0xfffff;
  fr.reason = uint8_t(reason);
  fr.type = r.write ? FaultType::write : FaultType::read;
  fr.f = true;
  const Words2 w = encode(fr);
  hw::DmaOutcome o;
  o.kind = hw::DmaOutcome::Kind::fault;
  o.record.assign(w.begin(), w.end());
  const uint64_t m0 = low_mask(std::min(f.mgaw, 64u)) & ~uint64_t(0xfff);
  const uint64_t m1 =
      0xffffull | bit(31) | (0xffull << 32) | (fr.pp ? 0xfffffull << 40 : 0) | bit(62);
  o.mask = {m0, m1};
  return o;
}

hw::DmaOutcome fault_outcome(FaultReason reason, bool fpd, const hw::DmaRequest& r,
                             const Features& f) {
  if (fpd && qualified(reason)) return aborted(); // Qc:vtd_report_fault
  return fault_record(reason, r, f);
}

std::string_view fault_clause(FaultReason r, bool fpd) {
  if (fpd && qualified(r)) return "VTD.FAULT.fpd";
  switch (r) {
  case FaultReason::root_not_present:
    return "VTD.ROOT.legacy_not_present";
  case FaultReason::root_reserved:
    return "VTD.ROOT.legacy_reserved";
  case FaultReason::sm_root_not_present:
    return "VTD.ROOT.sm_not_present";
  case FaultReason::sm_root_reserved:
    return "VTD.ROOT.sm_reserved";
  case FaultReason::root_table_invalid:
  case FaultReason::sm_root_access:
    return "VTD.ROOT.access";
  case FaultReason::context_not_present:
    return "VTD.CONTEXT.legacy_not_present";
  case FaultReason::context_reserved:
    return "VTD.CONTEXT.legacy_reserved";
  case FaultReason::context_invalid:
    return "VTD.CONTEXT.legacy_invalid";
  case FaultReason::sm_context_not_present:
    return "VTD.CONTEXT.sm_not_present";
  case FaultReason::sm_context_reserved:
    return "VTD.CONTEXT.sm_reserved";
  case FaultReason::context_table_invalid:
  case FaultReason::sm_context_access:
    return "VTD.CONTEXT.access";
  case FaultReason::sm_ttm0_pasid:
    return "VTD.CONTEXT.legacy_pasid";
  case FaultReason::sm_context_paside_clear:
    return "VTD.CONTEXT.paside";
  case FaultReason::sm_pasid_too_large:
    return "VTD.CONTEXT.pdts";
  case FaultReason::sm_pasid_dir_access:
    return "VTD.PASID.dir_access";
  case FaultReason::sm_pasid_dir_not_present:
    return "VTD.PASID.dir_not_present";
  case FaultReason::sm_pasid_entry_access:
    return "VTD.PASID.entry_access";
  case FaultReason::sm_pasid_entry_not_present:
    return "VTD.PASID.entry_not_present";
  case FaultReason::sm_pasid_entry_invalid:
    return "VTD.PASID.pgtt_invalid";
  case FaultReason::sm_pasid_entry_sre_clear:
    return "VTD.PASID.sre";
  case FaultReason::sm_pasid_entry_ere_clear:
    return "VTD.PASID.ere";
  case FaultReason::beyond_mgaw:
    return "VTD.FAULT.legacy_beyond_mgaw";
  case FaultReason::no_read:
  case FaultReason::no_write:
    return "VTD.FAULT.legacy_permission";
  case FaultReason::pte_reserved:
    return "VTD.FAULT.legacy_reserved";
  case FaultReason::next_table_invalid:
    return "VTD.FAULT.legacy_access";
  case FaultReason::interrupt_addr:
  case FaultReason::sm_interrupt_addr:
    return "VTD.FAULT.interrupt_addr";
  case FaultReason::sm_fs_entry_not_present:
    return "VTD.FAULT.fs_not_present";
  case FaultReason::sm_fs_entry_reserved:
    return "VTD.FAULT.fs_reserved";
  case FaultReason::sm_fs_entry_access:
  case FaultReason::sm_fs_pml4_access:
    return "VTD.FAULT.fs_access";
  case FaultReason::sm_fs_non_canonical:
    return "VTD.FAULT.fs_non_canonical";
  case FaultReason::sm_fs_user_privilege:
    return "VTD.FAULT.fs_user";
  case FaultReason::sm_no_execute:
    return "VTD.FAULT.fs_xd";
  case FaultReason::sm_no_write:
  case FaultReason::sm_no_read:
    return "VTD.FAULT.permission";
  case FaultReason::sm_ss_rw_permission:
    return "VTD.FAULT.ss_not_present";
  case FaultReason::sm_ss_entry_reserved:
    return "VTD.FAULT.ss_reserved";
  case FaultReason::sm_ss_entry_access:
  case FaultReason::sm_ss_ptr_invalid:
    return "VTD.FAULT.ss_access";
  case FaultReason::sm_ss_beyond_max:
    return "VTD.FAULT.ss_beyond";
  case FaultReason::sm_nested_fs_beyond_mgaw:
    return "VTD.FAULT.nested_beyond";
  case FaultReason::sm_nested_fs_pml4_read:
  case FaultReason::sm_nested_fs_read:
    return "VTD.FAULT.nested_fs_read";
  case FaultReason::sm_nested_fs_write:
    return "VTD.FAULT.nested_fs_write";
  default:
    return "VTD.FAULT.other";
  }
}

// A device access as the walks see it. The privileged-mode and execute-requested bits travel
// in the PASID TLP prefix: a request without PASID is a user, non-execute request whatever the
// request structure's defaults say (the scenario README: "a user-mode read without PASID").
Access access_of(const hw::DmaRequest& r) {
  const bool with_pasid = r.ssid.has_value();
  return Access{r.addr, r.write, with_pasid && r.exec && !r.write, with_pasid && r.priv};
}

// ---- Configuration lookup -------------------------------------------------------------------

template <size_t N>
std::optional<std::array<uint64_t, N>> read_words(const Memory& m, uint64_t pa) {
  std::array<uint64_t, N> w{};
  for (size_t i = 0; i < N; ++i) {
    const auto v = m.read64(pa + 8 * i);
    if (!v) return std::nullopt;
    w[i] = *v;
  }
  return w;
}

// Q:VTD_HAW_MASK
uint64_t haw_mask(unsigned haw) {
  return low_mask(haw);
}

struct Stop {
  FaultReason reason = FaultReason::software;
  bool fpd = false;
};

// The context entry of a requester in one image: the checks of Qc:vtd_dev_to_context_entry.
struct Ctx {
  std::optional<Stop> stop;
  bool fpd = false;
  ContextEntry ce{};    // legacy
  SmContextEntry sce{}; // scalable
  uint16_t did = 0;     // legacy: the context entry's DID (the context-cache tag)
};

Ctx resolve_context(const Memory& m, const Layout& lay, const Features& f,
                    const hw::DmaRequest& r) {
  Ctx c;
  auto stop = [&](FaultReason reason) {
    c.stop = Stop{reason, c.fpd};
    return c;
  };
  const uint32_t bus = (r.sid >> 8) & 0xff, devfn = r.sid & 0xff;
  const uint64_t rsvd = 0xffeull | ~haw_mask(f.haw); // Q:VTD_ROOT_ENTRY_RSVD
  if (!lay.scalable) {
    // Legacy mode translates requests without PASID only: 0x31 "TTM 0 for request with
    // PASID" (dmar.c:1767).
    if (r.ssid) return stop(FaultReason::sm_ttm0_pasid);
    const auto rw = read_words<2>(m, lay.root_table + 16ull * bus);
    if (!rw) return stop(FaultReason::root_table_invalid); // Qc:vtd_get_root_entry
    const RootEntry re = decode_root_entry(*rw);
    if (!re.present) return stop(FaultReason::root_not_present); // Qc:vtd_root_entry_present
    // Qc:vtd_root_entry_rsvd_bits_check: hi != 0 or lo & VTD_ROOT_ENTRY_RSVD.
    if ((*rw)[1] != 0 || ((*rw)[0] & rsvd)) return stop(FaultReason::root_reserved);
    const auto cw = read_words<2>(m, re.ctp + 16ull * devfn);
    if (!cw) return stop(FaultReason::context_table_invalid); // Qc:vtd_get_context_entry_from_root
    c.ce = decode_context_entry(*cw);
    c.fpd = c.ce.fpd; // read even when P = 0 (Qc:vtd_do_iommu_translate)
    c.did = c.ce.did;
    if (!c.ce.present) return stop(FaultReason::context_not_present);
    // Q:VTD_CONTEXT_ENTRY_RSVD_HI / _RSVD_LO (Qc:vtd_context_entry_rsvd_bits_check).
    if (((*cw)[1] & 0xffff'ffff'ff00'0080ull) || ((*cw)[0] & (0xff0ull | ~haw_mask(f.haw))))
      return stop(FaultReason::context_reserved);
    // AW must name a level CAP.SAGAW supports, whatever TT says (Qc:vtd_dev_to_context_entry
    // checks it before the type); TT must be one the unit has (Qc:vtd_ce_type_check).
    if (!ss_config(c.ce, f.cap(), f.haw)) return stop(FaultReason::context_invalid);
    const auto tt = uint8_t(c.ce.tt);
    const bool tt_ok = tt == uint8_t(TranslationType::multi_level) ||
                       (tt == uint8_t(TranslationType::dev_iotlb) && f.dev_tlb) ||
                       (tt == uint8_t(TranslationType::pass_through) && f.pass_through);
    if (!tt_ok) return stop(FaultReason::context_invalid);
    return c;
  }
  // Scalable mode. The codes are the scalable-mode ones (dmar.c:1766-1790). DISAGREE: QEMU
  // raises the legacy codes 0x01-0x0b here too.
  const auto rw = read_words<2>(m, lay.root_table + 16ull * bus);
  if (!rw) return stop(FaultReason::sm_root_access);
  const SmRootEntry re = decode_sm_root_entry(*rw);
  const bool upper = devfn >= 0x80; // iommu.c:506-512; Qc:vtd_root_entry_present
  if (!(upper ? re.upper_present : re.lower_present)) return stop(FaultReason::sm_root_not_present);
  // Both halves are checked (Qc:vtd_root_entry_rsvd_bits_check).
  if (((*rw)[0] & rsvd) || ((*rw)[1] & rsvd)) return stop(FaultReason::sm_root_reserved);
  const uint64_t ctp = upper ? re.uctp : re.lctp;
  const auto cw = read_words<4>(m, ctp + 32ull * (devfn & 0x7f)); // iommu.c:512 devfn *= 2
  if (!cw) return stop(FaultReason::sm_context_access);
  c.sce = decode_sm_context_entry(*cw);
  c.fpd = c.sce.fpd;
  if (!c.sce.present) return stop(FaultReason::sm_context_not_present);
  // Q:VTD_SM_CONTEXT_ENTRY_RSVD_VAL0 / _VAL1, words 2 and 3 zero.
  if (((*cw)[0] & (0x1e0ull | ~haw_mask(f.haw))) || ((*cw)[1] & 0xffff'ffff'ffe0'0000ull) ||
      (*cw)[2] || (*cw)[3])
    return stop(FaultReason::sm_context_reserved);
  return c;
}

// What a valid configuration translates with.
enum class Mode : uint8_t { legacy_ss, legacy_pt, ss, fs, nested, pt };

struct Xlate {
  Mode mode = Mode::legacy_ss;
  uint16_t did = 0;
  uint32_t pasid = 0;
  bool fpd = false;
  SsConfig ss{};
  FsConfig fs{};
  bool has_ss() const {
    return mode == Mode::legacy_ss || mode == Mode::ss || mode == Mode::nested;
  }
  bool has_fs() const { return mode == Mode::fs || mode == Mode::nested; }
};

Xlate legacy_xlate(const Ctx& c, const Features& f) {
  Xlate x;
  x.did = c.ce.did;
  x.fpd = c.fpd;
  if (c.ce.tt == TranslationType::pass_through) {
    x.mode = Mode::legacy_pt;
    return x;
  }
  x.mode = Mode::legacy_ss;
  x.ss = *ss_config(c.ce, f.cap(), f.haw);
  x.ss.snp_ok = f.snoop_control; // walk.h: legacy SNP needs ECAP.SC
  return x;
}

// A PASID entry's configuration: PGTT must name a type the unit has, and its levels must be
// supported (Qc:vtd_pe_type_check, vtd_get_pe_in_pasid_leaf_table: 0x5b otherwise).
std::optional<Xlate> pasid_xlate(const PasidEntry& pe, uint32_t pasid, bool fpd,
                                 const Features& f) {
  Xlate x;
  x.did = pe.did;
  x.pasid = pasid;
  x.fpd = fpd;
  const CapReg cap = f.cap();
  switch (uint8_t(pe.pgtt)) {
  case uint8_t(Pgtt::first_stage): {
    const auto fs = fs_config(pe, cap, f.haw);
    if (!f.first_stage || !fs) return std::nullopt;
    x.mode = Mode::fs;
    x.fs = *fs;
    return x;
  }
  case uint8_t(Pgtt::second_stage): {
    const auto ss = ss_config(pe, cap, f.haw);
    if (!f.second_stage || !ss) return std::nullopt;
    x.mode = Mode::ss;
    x.ss = *ss;
    return x;
  }
  case uint8_t(Pgtt::nested): {
    // QEMU has no nested type ("Not support NESTED page table type yet"); Linux writes it for
    // nested domains (pasid.c intel_pasid_setup_nested).
    const auto fs = fs_config(pe, cap, f.haw);
    const auto ss = ss_config(pe, cap, f.haw);
    if (!f.nested || !f.first_stage || !f.second_stage || !fs || !ss) return std::nullopt;
    // [DS] Table 30 SPT.4.4 (5Bh): "For nested translation(PGTT=011b), The FSPTPTR field in
    // the present scalable-mode PASID-table entry represents an address above (2^X - 1),
    // where X is the minimum of MGAW reported in the capability register and value in the
    // Address-Width (AW) field" (ss->width): an invalid entry, not a walk fault (74h).
    // Clause VTD.PASID.pgtt_invalid.
    if (ss->width < 64 && (fs->fsptptr >> ss->width) != 0) return std::nullopt;
    x.mode = Mode::nested;
    x.fs = *fs;
    x.ss = *ss;
    return x;
  }
  case uint8_t(Pgtt::pass_through):
    if (!f.pass_through) return std::nullopt;
    x.mode = Mode::pt;
    return x;
  default:
    return std::nullopt;
  }
}

// The PASID a scalable-mode request uses, and the checks on it against the context entry.
struct PasidSel {
  std::optional<Stop> stop;
  uint32_t pasid = 0;
};
PasidSel select_pasid(const Ctx& c, const hw::DmaRequest& r) {
  PasidSel s;
  // A request without PASID uses RID_PASID (iommu.h:1058-1061). DISAGREE: QEMU always uses
  // PASID 0 (vtd_ce_get_pasid_entry: PCI_NO_PASID -> PASID_0).
  s.pasid = r.ssid ? (*r.ssid & 0xfffff) : c.sce.rid_pasid;
  // PASIDE clear: 0x45 (dmar.c:1780; iommu.h:62; Linux sets it only for PASID-capable devices,
  // pasid.c:780-781). QEMU does not check it.
  if (r.ssid && !c.sce.paside) s.stop = Stop{FaultReason::sm_context_paside_clear, c.fpd};
  // Beyond the directory PDTS sizes: 0x46 (dmar.c:1781; pasid.h:23).
  else if (uint64_t(s.pasid) >= uint64_t(pasid_dir_entries(c.sce.pdts)) * 64)
    s.stop = Stop{FaultReason::sm_pasid_too_large, c.fpd};
  return s;
}

// The PASID entry through a context entry, read from one image (Qc:vtd_ce_get_pasid_fpd and
// vtd_get_pe_from_pasid_table). FPD is taken from the directory and PASID entries even when
// they are not present. DISAGREE: QEMU checks PGTT before P, so an all-zero entry gives 0x5b
// there; the model checks P first (0x59).
struct PasidLookup {
  std::optional<Stop> stop;
  PasidEntry pe{};
  bool pe_fpd = false; // the directory and PASID entries' FPD
  std::optional<Xlate> x;
};
PasidLookup resolve_pasid(const Memory& m, const Ctx& c, uint32_t pasid, const Features& f) {
  PasidLookup l;
  auto stop = [&](FaultReason reason) {
    l.stop = Stop{reason, c.fpd || l.pe_fpd};
    return l;
  };
  const auto dw = m.read64(c.sce.pasid_dir_ptr + 8ull * pasid_dir_index(pasid));
  if (!dw) return stop(FaultReason::sm_pasid_dir_access);
  const PasidDirEntry de = decode_pasid_dir_entry(*dw);
  l.pe_fpd = de.fpd;
  if (!de.present) return stop(FaultReason::sm_pasid_dir_not_present);
  const auto pw = read_words<8>(m, de.pasid_table + 64ull * pasid_table_index(pasid));
  if (!pw) return stop(FaultReason::sm_pasid_entry_access);
  l.pe = decode_pasid_entry(*pw);
  l.pe_fpd = l.pe_fpd || l.pe.fpd;
  if (!l.pe.present) return stop(FaultReason::sm_pasid_entry_not_present);
  l.x = pasid_xlate(l.pe, pasid, c.fpd || l.pe_fpd, f);
  if (!l.x) return stop(FaultReason::sm_pasid_entry_invalid);
  return l;
}

} // namespace

CapReg Features::cap() const {
  CapReg c;
  c.sagaw = sagaw;
  c.mgaw = uint8_t(mgaw - 1);
  c.sllps = sllps;
  c.fl1gp = fl1gp;
  c.fl5lp = fl5lp;
  c.mamv = mamv;
  c.psi = true;
  return c;
}

// ---- Invalidation queue ---------------------------------------------------------------------

std::string_view descriptor_error(const QiDesc& d, bool wide, const Features& f) {
  // [DS] FSTS.IQE: "hardware detecting an erroneous or invalid descriptor". An unknown type
  // (Qc:vtd_process_inv_desc "unknown type"; page-request responses are not modelled, the unit
  // has no ECAP.PRS), a reserved bit set, an unnamed granularity, or a PASID-granular
  // descriptor in a 128-bit queue (Qc:vtd_inv_desc_reserved_check "256-bit ... desc in 128-bit
  // invalidation queue").
  const std::optional<QiDescriptor> dec = decode_qi_descriptor(d);
  if (!dec) return "IQE";
  // Reserved bits: those no source names (format.h k...Fields, the union of the bits Linux and
  // QEMU name; where QEMU reserves a bit Linux sets, the wait descriptor's PD and the
  // device-TLB descriptors' PFSID, the bit is accepted). Words 2 and 3 of a 256-bit
  // descriptor are reserved (QEMU masks them with VTD_INV_DESC_ALL_ONE).
  const QiDesc fields = std::visit(
      [](const auto& c) -> QiDesc {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, ContextCacheInv>) return kContextCacheInvFields;
        if constexpr (std::is_same_v<T, IotlbInv>) return kIotlbInvFields;
        if constexpr (std::is_same_v<T, DevTlbInv>) return kDevTlbInvFields;
        if constexpr (std::is_same_v<T, IecInv>) return kIecInvFields;
        if constexpr (std::is_same_v<T, InvWait>) return kInvWaitFields;
        if constexpr (std::is_same_v<T, PasidCacheInv>) return kPasidCacheInvFields;
        if constexpr (std::is_same_v<T, PasidIotlbInv>) return kPasidIotlbInvFields;
        return kPasidDevTlbInvFields;
      },
      *dec);
  for (size_t i = 0; i < 4; ++i)
    if (d[i] & ~fields[i]) return "IQE";
  return std::visit(
      [&](const auto& c) -> std::string_view {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, ContextCacheInv>) {
          const auto g = uint8_t(c.g); // Qc:vtd_process_context_cache_desc "invalid type"
          return g >= 1 && g <= 3 ? "" : "IQE";
        }
        if constexpr (std::is_same_v<T, IotlbInv>) {
          const auto g = uint8_t(c.g); // Qc:vtd_process_iotlb_desc
          if (g < 1 || g > 3) return "IQE";
          // "am > VTD_MAMV" is invalid (Qc:vtd_process_iotlb_desc)
          if (c.g == IotlbGranularity::page && c.am > f.mamv) return "IQE";
          return "";
        }
        if constexpr (std::is_same_v<T, PasidCacheInv>) {
          if (!wide) return "IQE";
          return c.g == PasidCacheGranularity{2} ? "IQE" : ""; // Qc:vtd_process_pasid_desc
        }
        if constexpr (std::is_same_v<T, PasidIotlbInv>) {
          if (!wide) return "IQE";
          const auto g = uint8_t(c.g); // Qc:vtd_process_piotlb_desc "type mismatch"
          return g == 2 || g == 3 ? "" : "IQE";
        }
        if constexpr (std::is_same_v<T, PasidDevTlbInv>) {
          return wide ? "" : "IQE"; // Qc:vtd_process_device_piotlb_desc
        }
        if constexpr (std::is_same_v<T, InvWait>) {
          // "SW=0, IF=0, FN=1 is also a valid descriptor (VT-d 7.10)"; none of the three is
          // invalid (Qc:vtd_process_wait_desc).
          return c.if_ || c.sw || c.fn ? "" : "IQE";
        }
        // Device-TLB (type 3) and IEC. DISAGREE: "Device-TLB invalidation descriptors are
        // reported as an invalid descriptor type for implementations reporting ... ECAP.DT=0"
        // (VT-d 6.5.2.5, 6.5.2.6); QEMU accepts them whatever ECAP.DT says
        // (Qc:vtd_process_inv_desc). The model accepts them.
        return "";
      },
      *dec);
}

Machine::Machine(Layout layout, Features features)
    : layout_(layout), features_(features), hist_([&] {
        Memory m;
        m.add_region(layout.ram);
        return m;
      }()) {
  if (features_.dev_tlb) {
    dt_.images.push_back(hist_.memory());
    dt_.points.push_back({});
  }
}

bool Machine::write(std::span<const hw::Write> ws) {
  const size_t epochs = hist_.stale().size();
  if (!hist_.write(ws)) return false;
  if (features_.dev_tlb && hist_.stale().size() != epochs) { // a new epoch
    dt_.ends.push_back(++dt_.seq);
    dt_.images.push_back(hist_.memory());
    dt_.points.push_back({dt_.images.size() - 1, dt_.seq});
  }
  return true;
}

// The device-TLB history's side of a wait descriptor: it completes every invalidation before
// it, and the IOMMU may answer differently from then on.
void Machine::wait_done(bool fence) {
  if (!features_.dev_tlb) return;
  ++dt_.seq;
  for (; dt_.pending < dt_.invs.size(); ++dt_.pending)
    dt_.invs[dt_.pending].done = dt_.seq;
  if (fence) dt_.fences.push_back(dt_.seq);
  dt_.points.push_back({dt_.images.size() - 1, dt_.seq});
}

hw::QueueOutcome Machine::run(std::span<const QiDesc> descs) {
  hw::QueueOutcome out;
  for (size_t k = 0; k < descs.size(); ++k) {
    if (auto e = descriptor_error(descs[k], layout_.scalable, features_); !e.empty()) {
      // The queue stops: IQH indexes the failing descriptor, FSTS.IQE; the descriptors before
      // it were fetched and processed, it and later ones were not ([DS] IQH: "incremented
      // after the command has been fetched successfully and has been verified to be a
      // valid/supported command"; Qc:vtd_fetch_inv_desc).
      error_ = std::string(e);
      rest_.assign(descs.begin() + std::ptrdiff_t(k) + 1, descs.end());
      out.error = error_;
      return out;
    }
    const QiDescriptor d = *decode_qi_descriptor(descs[k]);
    // The wait descriptor completes every descriptor before it (its status write / interrupt
    // is how software learns they are done, dmar.c qi_submit_sync). The model does not write
    // the status word: no outcome reads it.
    if (const auto* w = std::get_if<InvWait>(&d)) {
      hist_.complete();
      wait_done(w->fn);
    } else {
      hist_.issue(d);
      if (features_.dev_tlb) {
        DevTlbHistory::Inv inv{d, ++dt_.seq, UINT64_MAX, dt_.batch, SIZE_MAX};
        if (std::holds_alternative<DevTlbInv>(d) || std::holds_alternative<PasidDevTlbInv>(d)) {
          // Where it executes: memory as now, its own set of completed invalidations.
          inv.point = dt_.points.size();
          dt_.points.push_back({dt_.images.size() - 1, dt_.seq, dt_.invs.size()});
        }
        dt_.invs.push_back(std::move(inv));
      }
    }
    ++out.consumed;
  }
  // An epoch is dead once global context-cache, PASID-cache (scalable mode) and IOTLB
  // invalidations issued after it have completed: nothing cached from it remains.
  hist_.prune([&](size_t i) {
    auto done = [&](auto&& is) { return !hist_.survives(i, is); };
    const bool cc = done([](const QiDescriptor& d) {
      const auto* c = std::get_if<ContextCacheInv>(&d);
      return c && c->g == CcGranularity::global;
    });
    const bool pc = !layout_.scalable || done([](const QiDescriptor& d) {
      const auto* c = std::get_if<PasidCacheInv>(&d);
      return c && c->g == PasidCacheGranularity::global;
    });
    const bool tlb = done([](const QiDescriptor& d) {
      const auto* c = std::get_if<IotlbInv>(&d);
      return c && c->g == IotlbGranularity::global;
    });
    return cc && pc && tlb;
  });
  return out;
}

hw::QueueOutcome Machine::submit(std::span<const uint64_t> words) {
  const size_t width = layout_.scalable ? 4 : 2; // IQA.DW (dmar.c:1663-1667)
  std::vector<QiDesc> descs;
  for (size_t i = 0; i + width <= words.size(); i += width) {
    QiDesc d{};
    for (size_t j = 0; j < width; ++j)
      d[j] = words[i + j];
    descs.push_back(d);
  }
  // A stopped queue fetches nothing until IQE is cleared, but descriptors software writes
  // behind IQT meanwhile are in the queue: [DS] 6.5.2, hardware fetches the descriptors
  // from IQH up to IQT, so they run after the stopped submission's rest once fetching
  // resumes (clause VTD.IQ.resume).
  if (stopped()) {
    rest_.insert(rest_.end(), descs.begin(), descs.end());
    return {0, error_};
  }
  dt_.batch = dt_.seq; // a submission begins (Device TLB)
  return run(descs);
}

hw::QueueOutcome Machine::resume() {
  if (!stopped()) return {};
  error_.clear();
  hist_.complete(); // the failing descriptor, now a wait descriptor (dmar.c qi_check_fault)
  wait_done(false); // Linux's wait descriptor has FN = 0 (dmar.c qi_submit_sync)
  const std::vector<QiDesc> rest = std::move(rest_);
  rest_.clear();
  // IQH was left at the failing descriptor, now the wait: it is fetched, and IQH moves past
  // it, before the rest ([DS] IQH "incremented after the command has been fetched
  // successfully"), so consumed counts it as SMMUv3's resume counts the replacing CMD_SYNC.
  // Clause VTD.IQ.resume.
  hw::QueueOutcome out = run(rest);
  ++out.consumed;
  return out;
}

// ---- Device accesses --------------------------------------------------------------------------

namespace {

// One image's view of the requester, for the cache rules: its configuration and, when it
// translates, the walk there (what could have been cached from it).
struct View {
  bool ctx_valid = false;
  Ctx ctx{};
  bool pe_valid = false; // scalable: a valid PASID entry (cacheable)
  PasidEntry pe{};
  bool pe_fpd = false;
  uint32_t pasid = 0;
  std::optional<Xlate> x;     // the translation configuration
  Walk walk;                  // second stage alone, or first stage (nested: output a GPA)
  std::optional<Walk> out_ss; // nested: the second-stage walk of the first-stage output
};

uint64_t fs_leaf_output(const FsLeaf& lf, uint64_t addr) {
  return (lf.entry & kAddr & ~(lf.size - 1)) | (addr & (lf.size - 1));
}

View view(const Memory& m, const Layout& lay, const Features& f, const hw::DmaRequest& r) {
  View v;
  v.ctx = resolve_context(m, lay, f, r);
  if (v.ctx.stop) return v;
  v.ctx_valid = true;
  if (!lay.scalable) {
    v.x = legacy_xlate(v.ctx, f);
  } else {
    const PasidSel s = select_pasid(v.ctx, r);
    if (s.stop) return v;
    v.pasid = s.pasid;
    const PasidLookup l = resolve_pasid(m, v.ctx, s.pasid, f);
    if (l.stop) return v;
    v.pe_valid = true;
    v.pe = l.pe;
    v.pe_fpd = l.pe_fpd;
    v.x = l.x;
  }
  const Xlate& x = *v.x;
  const Access a = access_of(r);
  if (x.mode == Mode::legacy_ss || x.mode == Mode::ss) {
    v.walk = walk_ss_from(m, x.ss, r.addr, a, std::nullopt);
  } else if (x.has_fs()) {
    std::vector<Walk> ws;
    if (x.mode == Mode::nested) {
      const SsConfig ss = x.ss;
      const SsTranslate tr = [&m, ss](uint64_t gpa, const Access& ra, std::vector<Walk>& o) {
        o.push_back(walk_ss_from(m, ss, gpa, ra, std::nullopt));
      };
      walk_fs_from(m, x.fs, &tr, a, std::nullopt, ws);
    } else {
      walk_fs_from(m, x.fs, nullptr, a, std::nullopt, ws);
    }
    v.walk = std::move(ws.front());
    if (x.mode == Mode::nested && v.walk.fs_leaf)
      v.out_ss = walk_ss_from(m, x.ss, fs_leaf_output(*v.walk.fs_leaf, r.addr), a, std::nullopt);
  }
  return v;
}

bool same_result(const Walk& a, const Walk& b) {
  if (a.fault || b.fault) return a.fault == b.fault;
  return a.pa == b.pa && a.page_size == b.page_size && a.read == b.read && a.write == b.write &&
         a.exec == b.exec;
}

// The cache history a lookup reads: memory now, the stale images, and whether an entry cached
// from stale image i may still be there. `Now` is the machine's own; the device-TLB rule reads
// earlier states of the IOMMU (`Then`, below).
struct Now {
  const CacheHistory<QiDescriptor>& h;
  const Memory& memory() const { return h.memory(); }
  size_t stale_count() const { return h.stale().size(); }
  const Memory& image(size_t i) const { return h.stale()[i].mem; }
  template <class Covers>
  bool survives(size_t i, Covers&& covers) const {
    return h.survives(i, covers);
  }
};

// The IOMMU's allowed set for one access (fresh walk first).
template <class History>
class Lookup {
public:
  Lookup(const History& h, const Layout& lay, const Features& f, const hw::DmaRequest& r)
      : h_(h), lay_(lay), f_(f), r_(r), a_(access_of(r)) {
    views_.reserve(h.stale_count());
    for (size_t i = 0; i < h.stale_count(); ++i)
      views_.push_back(view(h.image(i), lay, f, r));
  }

  std::vector<Allowed> run() {
    // Configuration: the context entry from current memory, and cached context entries.
    const Ctx cur = resolve_context(h_.memory(), lay_, f_, r_);
    if (cur.stop)
      add(fault_outcome(cur.stop->reason, cur.stop->fpd, r_, f_),
          fault_clause(cur.stop->reason, cur.stop->fpd));
    else
      with_context(cur, "");
    for (size_t i = 0; i < views_.size(); ++i)
      if (views_[i].ctx_valid && survives(i, ctx_key(views_[i])))
        with_context(views_[i].ctx, "VTD.CACHE.context");
    // IOTLB and paging-structure-cache entries of the requester's earlier translations.
    for (size_t i = 0; i < views_.size(); ++i)
      if (views_[i].x) stale_entries(i);
    return std::move(out_);
  }

private:
  const Memory& image(size_t i) const { return h_.image(i); }
  bool survives(size_t i, const Key& k) const {
    return h_.survives(i, [&](const QiDescriptor& d) { return covers(d, k, lay_.scalable, f_); });
  }
  Key ctx_key(const View& v) const {
    Key k;
    k.kind = Kind::context;
    k.sid = uint16_t(r_.sid);
    k.did = lay_.scalable ? 0 : v.ctx.did;
    return k;
  }
  Key tlb_key(Kind kind, const Xlate& x, uint64_t base, uint64_t size, int level,
              bool global = false) const {
    Key k;
    k.kind = kind;
    k.sid = uint16_t(r_.sid);
    k.did = x.did;
    k.pasid = x.pasid;
    k.global = global;
    k.base = base;
    k.size = size;
    k.level = level;
    return k;
  }

  void add(hw::DmaOutcome o, std::string_view clause) {
    for (const auto& a : out_)
      if (a.outcome == o) return;
    out_.push_back({std::move(o), clause});
  }
  static std::string_view pick(std::string_view cached, std::string_view fresh) {
    return cached.empty() ? fresh : cached;
  }
  // A walk's outcome. A fresh result is named by what it shows (the walk's clause, or the
  // fault's); one that a cache gave (`cached` not empty) by that cache, fault or not.
  void emit(const Walk& w, const Xlate& x, std::string_view fresh, std::string_view cached) {
    if (!w.fault)
      add(ok(w.pa), pick(cached, fresh));
    else
      add(fault_outcome(w.fault->reason, x.fpd, r_, f_),
          pick(cached, fault_clause(w.fault->reason, x.fpd)));
  }

  // Everything a context-entry candidate allows: its translation (legacy), or the PASID
  // entry read through it from current memory and the cached PASID entries (scalable).
  void with_context(const Ctx& c, std::string_view cached) {
    if (!lay_.scalable) {
      translate(legacy_xlate(c, f_), cached);
      return;
    }
    const PasidSel s = select_pasid(c, r_);
    if (s.stop) {
      add(fault_outcome(s.stop->reason, s.stop->fpd, r_, f_),
          pick(cached, fault_clause(s.stop->reason, s.stop->fpd)));
      return;
    }
    const PasidLookup l = resolve_pasid(h_.memory(), c, s.pasid, f_);
    if (l.stop)
      add(fault_outcome(l.stop->reason, l.stop->fpd, r_, f_),
          pick(cached, fault_clause(l.stop->reason, l.stop->fpd)));
    else
      translate(*l.x, cached);
    // Cached PASID entries of this (source-id, PASID): valid entries only.
    for (size_t i = 0; i < views_.size(); ++i) {
      const View& v = views_[i];
      if (!v.pe_valid || v.pasid != s.pasid) continue;
      Key k;
      k.kind = Kind::pasid;
      k.sid = uint16_t(r_.sid);
      k.did = v.pe.did;
      k.pasid = v.pasid;
      if (!survives(i, k)) continue;
      Xlate x = *v.x;
      x.fpd = c.fpd || v.pe_fpd;
      translate(x, "VTD.CACHE.pasid");
    }
  }

  // Second-stage candidates for a GPA under a configuration with this DID: the walk of
  // current memory; a surviving second-stage IOTLB entry of an earlier image; a surviving
  // paging-structure-cache entry, walked on in current memory.
  void ss_options(const SsConfig& ss, uint16_t did, uint64_t gpa, const Access& a,
                  std::vector<Walk>& out, std::vector<std::string_view>* clauses = nullptr) const {
    // Candidates that translate the same way are one branch (this keeps nested walks, which
    // branch at every first-stage table fetch, from multiplying identical paths).
    const size_t first = out.size();
    auto push = [&](Walk w, std::string_view clause) {
      for (size_t k = first; k < out.size(); ++k)
        if (same_result(out[k], w)) return;
      out.push_back(std::move(w));
      if (clauses) clauses->push_back(clause);
    };
    push(walk_ss_from(h_.memory(), ss, gpa, a, std::nullopt), "");
    for (size_t i = 0; i < views_.size(); ++i) {
      const View& v = views_[i];
      if (!v.x || !v.x->has_ss() || v.x->did != did) continue;
      const Xlate& x = *v.x;
      const Walk old = walk_ss_from(image(i), x.ss, gpa, a, std::nullopt);
      if (old.ss_leaf && survives(i, tlb_key(Kind::ss_leaf, x, old.ss_leaf->base, old.ss_leaf->size,
                                             old.ss_leaf->level)))
        push(ss_leaf_result(ss, *old.ss_leaf, gpa, a), "VTD.CACHE.iotlb_fill");
      if (x.ss.levels != ss.levels) continue;
      for (const WalkFrom& t : old.ss_tables) {
        const uint64_t span = level_page_size(unsigned(t.level + 1));
        if (survives(i, tlb_key(Kind::ss_psc, x, gpa & ~(span - 1), span, t.level + 1)))
          push(walk_ss_from(h_.memory(), ss, gpa, a, t), "VTD.CACHE.psc");
      }
    }
  }

  // A first-stage result (fresh or cached), through the second stage when nested.
  void finish_fs(const Walk& w1, const Xlate& x, std::string_view fresh, std::string_view cached) {
    if (w1.fault || x.mode != Mode::nested) {
      Walk w = w1;
      check_interrupt_range(w, a_, 1, true);
      emit(w, x, fresh, cached);
      return;
    }
    std::vector<Walk> opts;
    std::vector<std::string_view> why;
    ss_options(x.ss, x.did, w1.pa, a_, opts, &why);
    for (size_t k = 0; k < opts.size(); ++k) {
      Walk w = combine_nested(w1, opts[k]);
      check_interrupt_range(w, a_, 2, true);
      emit(w, x, fresh, pick(cached, why[k]));
    }
  }

  std::optional<SsTranslate> nested_translate(const Xlate& x) const {
    if (x.mode != Mode::nested) return std::nullopt;
    const SsConfig ss = x.ss;
    const uint16_t did = x.did;
    return SsTranslate([this, ss, did](uint64_t gpa, const Access& ra, std::vector<Walk>& o) {
      ss_options(ss, did, gpa, ra, o);
    });
  }

  static std::string_view walk_clause(Mode m) {
    switch (m) {
    case Mode::legacy_pt:
      return "VTD.CONTEXT.legacy_pass_through";
    case Mode::pt:
      return "VTD.PASID.pgtt_pt";
    case Mode::fs:
      return "VTD.WALK.fs";
    case Mode::nested:
      return "VTD.WALK.nested";
    default:
      return "VTD.WALK.ss";
    }
  }

  // A configuration's translation of the access in current memory (cached second-stage
  // entries of its DID included).
  void translate(const Xlate& x, std::string_view cached) {
    const std::string_view clause = walk_clause(x.mode);
    switch (x.mode) {
    case Mode::legacy_pt:
    case Mode::pt:
      // Pass-through: the address is the output (Qc:vtd_do_iommu_translate, PT path: no
      // interrupt-range check there).
      add(ok(r_.addr), pick(cached, clause));
      return;
    case Mode::legacy_ss:
    case Mode::ss: {
      std::vector<Walk> opts;
      std::vector<std::string_view> why;
      ss_options(x.ss, x.did, r_.addr, a_, opts, &why);
      for (size_t k = 0; k < opts.size(); ++k) {
        Walk w = opts[k];
        check_interrupt_range(w, a_, 2, x.ss.scalable);
        emit(w, x, clause, pick(cached, why[k]));
      }
      return;
    }
    case Mode::fs:
    case Mode::nested: {
      const std::optional<SsTranslate> tr = nested_translate(x);
      std::vector<Walk> ws;
      walk_fs_from(h_.memory(), x.fs, tr ? &*tr : nullptr, a_, std::nullopt, ws);
      for (const Walk& w : ws)
        finish_fs(w, x, clause, cached);
      return;
    }
    }
  }

  // The IOTLB and paging-structure-cache entries the requester's translation in stale image
  // i could have filled, used under that image's configuration (the entry holds what it was
  // filled with), whatever the current configuration is.
  void stale_entries(size_t i) {
    const View& v = views_[i];
    const Xlate& x = *v.x;
    const uint64_t addr = r_.addr;
    switch (x.mode) {
    case Mode::legacy_pt:
    case Mode::pt: {
      // Pass-through translations may be cached too: page-selective PASID-based invalidation
      // "doesn't invalidate IOTLB entries caching ... pass-through (PGTT=100b) mappings"
      // (Qc:vtd_hash_remove_by_page_piotlb). 4K entries, as QEMU's PT translation gives.
      if (survives(i, tlb_key(Kind::pt, x, addr & ~uint64_t(0xfff), 0x1000, 1)))
        add(ok(addr), "VTD.CACHE.iotlb_fill");
      return;
    }
    case Mode::legacy_ss:
    case Mode::ss: {
      const Walk& old = v.walk;
      if (old.ss_leaf && survives(i, tlb_key(Kind::ss_leaf, x, old.ss_leaf->base, old.ss_leaf->size,
                                             old.ss_leaf->level))) {
        Walk w = ss_leaf_result(x.ss, *old.ss_leaf, addr, a_);
        check_interrupt_range(w, a_, 2, x.ss.scalable);
        emit(w, x, "", "VTD.CACHE.iotlb_fill");
      }
      for (const WalkFrom& t : old.ss_tables) {
        const uint64_t span = level_page_size(unsigned(t.level + 1));
        if (!survives(i, tlb_key(Kind::ss_psc, x, addr & ~(span - 1), span, t.level + 1))) continue;
        Walk w = walk_ss_from(h_.memory(), x.ss, addr, a_, t);
        check_interrupt_range(w, a_, 2, x.ss.scalable);
        emit(w, x, "", "VTD.CACHE.psc");
      }
      return;
    }
    case Mode::fs:
    case Mode::nested: {
      const Walk& old = v.walk;
      const std::optional<SsTranslate> tr = nested_translate(x);
      if (old.fs_leaf) {
        const FsLeaf& lf = *old.fs_leaf;
        const bool global = (lf.entry & kFsG) != 0;
        if (survives(i, tlb_key(Kind::fs_leaf, x, lf.base, lf.size, lf.level, global)))
          finish_fs(fs_leaf_result(x.fs, lf, a_), x, "", "VTD.CACHE.iotlb_fill");
        // A combined nested entry: the old image's whole translation.
        if (x.mode == Mode::nested && v.out_ss && v.out_ss->ss_leaf) {
          const SsLeaf& sl = *v.out_ss->ss_leaf;
          const uint64_t size = std::min(lf.size, sl.size);
          if (survives(i, tlb_key(Kind::nested, x, addr & ~(size - 1), size, lf.level, global))) {
            Walk w = combine_nested(fs_leaf_result(x.fs, lf, a_),
                                    ss_leaf_result(x.ss, sl, fs_leaf_output(lf, addr), a_));
            check_interrupt_range(w, a_, 2, true);
            emit(w, x, "", "VTD.CACHE.nested");
          }
        }
      }
      for (const WalkFrom& t : old.fs_tables) {
        const uint64_t span = level_page_size(unsigned(t.level + 1));
        if (!survives(i, tlb_key(Kind::fs_psc, x, addr & ~(span - 1), span, t.level + 1))) continue;
        std::vector<Walk> ws;
        walk_fs_from(h_.memory(), x.fs, tr ? &*tr : nullptr, a_, t, ws);
        for (const Walk& w : ws)
          finish_fs(w, x, "", "VTD.CACHE.psc");
      }
      return;
    }
    }
  }

  const History& h_;
  const Layout& lay_;
  const Features& f_;
  const hw::DmaRequest& r_;
  const Access a_;
  std::vector<View> views_;
  std::vector<Allowed> out_;
};

// ---- Device TLB ------------------------------------------------------------------------------
//
// A device whose context entry allows translation requests (legacy TT = 01b, "second-stage
// with ATS allowed"; TT = 00b and 10b treat translation requests as UR, [VTD] 4.2.3 Table 10;
// scalable DTE = 1, [VTD] 4.2; iommu.h:59-61, :1067-1070; Linux sets them when ATS is
// supported, iommu.c:1698-1701, pasid.c:778-779) caches what the IOMMU answers its translation
// requests with, and then accesses memory through translated requests that the IOMMU passes
// untranslated ([VTD] 4.1.3, 4.2.5). So the device may use any translation the IOMMU could
// have given it at any earlier point, stale cached entries included (VTD.CACHE.devtlb): the
// IOMMU looks its IOTLB up for translation requests as for other requests ("translation
// requests-without-PASID from a device may be serviced by hardware from the IOTLB", [VTD]
// 6.5.2.5; Qc:vtd_iommu_ats_do_translate calls vtd_iommu_translate). A fault gives no
// translation (R = W = 0, or UR / CA: [VTD] 4.2.3), so nothing is cached for it; the device
// then issues the untranslated request, whose outcomes are the IOMMU's set.
//
// A device-TLB invalidation D removes such a translation for good if it covers it, has
// completed (a later wait, VTD.INV.WAIT.complete), and from the point D executed on the IOMMU
// could no longer return it: otherwise the device may have asked again after D and been
// answered from the stale IOTLB (VTD.INV.DEVTLB.after_iotlb; Linux always issues the IOTLB
// invalidation first, cache.c cache_tag_flush_range, pasid.c:504-515). D executes at the
// earliest (weaker reading) once, of the descriptors ahead of it, those [VTD] 6.5.2.12 orders
// it behind have completed: "Hardware must execute a Device-TLB invalidation descriptor
// (dev_tlb_inv_dsc) only after all IOTLB invalidation descriptors (iotlb_inv_dsc) and Interrupt
// Entry Cache invalidation descriptors (iec_inv_dsc) ahead of it in the Invalidation Queue are
// completed", the PASID-based one after those and the PASID-based-IOTLB ones; IOTLB
// invalidations execute after the context- and PASID-cache ones ahead of them; a wait with
// FN = 1 orders everything after it behind everything before it, one with FN = 0 does not
// ("hardware may execute descriptors following the inv_wait_dsc before the wait command is
// completed"). Waits of an earlier submission have completed when a submission begins
// (software saw their status write, as Linux qi_submit_sync does before returning).
// So [IOTLB, device-TLB, wait] in one submission is enough (Linux's batches), but a type 3
// descriptor behind a PASID-based-IOTLB one is not ordered after it: that takes a wait
// software has seen complete, or a fence.
//
// Coverage (VTD.INV.DEVTLB.*): the descriptor's source-id is the requester's (iommu.h:420,
// :451; Qc:vtd_process_device_iotlb_desc, vtd_process_device_piotlb_desc); its range
// (dev_tlb_range, VTD.INV.DEVTLB.range; Qc:do_invalidate_device_tlb) holds the 4K page of the
// access; type 3 covers translations for requests without PASID ([VTD] 6.5.2.5), type 8 those
// for its PASID, or for every PASID with G ("the invalidation affects all PASID values",
// [VTD] 4.1.4; Qc:vtd_process_device_piotlb_desc). Weaker readings: a type 3 descriptor does
// not cover translations for requests with PASID (QEMU invalidates the no-PASID address space
// only, vtd_get_as_by_sid), nor type 8 with G those without PASID (QEMU skips PCI_NO_PASID);
// the device may hold a translation as its 4K page alone ([VTD] 6.5.3.2 allows fractured
// translations), so a range must hold the access's page, not just part of its large page.

// Whether the requester's context entry in this image lets it use a device TLB.
bool ats_allowed(const Memory& m, const Layout& lay, const Features& f, const hw::DmaRequest& r) {
  if (!f.dev_tlb) return false;
  const Ctx c = resolve_context(m, lay, f, r);
  if (c.stop) return false;
  return lay.scalable ? c.sce.dte : c.ce.tt == TranslationType::dev_iotlb;
}

bool covers_device_tlb(const QiDescriptor& d, const hw::DmaRequest& r) {
  const uint64_t page = r.addr & ~uint64_t(0xfff);
  auto holds = [&](uint64_t addr, bool s) {
    const ByteRange b = dev_tlb_range(addr, s);
    return b.start <= page && page <= b.last;
  };
  if (const auto* t = std::get_if<DevTlbInv>(&d))
    return !r.ssid && t->sid == uint16_t(r.sid) && holds(t->addr, t->s);
  if (const auto* t = std::get_if<PasidDevTlbInv>(&d))
    return r.ssid && t->sid == uint16_t(r.sid) && (t->g || t->pasid == (*r.ssid & 0xfffff)) &&
           holds(t->addr, t->s);
  return false;
}

// Whether invalidation x has completed where device-TLB invalidation v executes ([VTD]
// 6.5.2.12, above).
bool done_before(const DevTlbHistory& h, size_t x, size_t v) {
  const DevTlbHistory::Inv& X = h.invs[x];
  const DevTlbHistory::Inv& D = h.invs[v];
  if (X.seq >= D.seq) return false;
  if (X.done <= D.batch) return true; // completed by a wait of an earlier submission
  const auto f = std::upper_bound(h.fences.begin(), h.fences.end(), X.seq);
  if (f != h.fences.end() && *f < D.seq) return true; // a fence in between
  const bool pasid_based = std::holds_alternative<PasidDevTlbInv>(D.d);
  auto ordered = [&](const QiDescriptor& d) {
    return std::holds_alternative<IotlbInv>(d) || std::holds_alternative<IecInv>(d) ||
           (pasid_based && std::holds_alternative<PasidIotlbInv>(d));
  };
  if (ordered(X.d)) return true;
  // Context- and PASID-cache invalidations ahead of an (ordered) IOTLB invalidation ahead of D.
  if (!std::holds_alternative<ContextCacheInv>(X.d) && !std::holds_alternative<PasidCacheInv>(X.d))
    return false;
  for (size_t y = x + 1; y < v; ++y)
    if (!std::holds_alternative<IecInv>(h.invs[y].d) && ordered(h.invs[y].d)) return true;
  return false;
}

// The IOMMU as it was at one point of the history: that epoch's image, the epochs before it,
// and the invalidations completed there.
class Then {
public:
  Then(const DevTlbHistory& h, size_t point) : h_(h), p_(h.points[point]) {
    for (size_t x = 0; x < h.invs.size(); ++x)
      if (p_.inv == SIZE_MAX ? h.invs[x].done <= p_.seq : done_before(h, x, p_.inv))
        done_.push_back(x);
  }
  const Memory& memory() const { return h_.images[p_.epoch]; }
  size_t stale_count() const { return p_.epoch; }
  const Memory& image(size_t i) const { return h_.images[i]; }
  template <class Covers>
  bool survives(size_t i, Covers&& covers) const {
    for (size_t x : done_)
      if (h_.invs[x].seq > h_.ends[i] && covers(h_.invs[x].d)) return false;
    return true;
  }

private:
  const DevTlbHistory& h_;
  const DevTlbHistory::Point& p_;
  std::vector<size_t> done_;
};

// The translations the device TLB may still hold for this access, added to `out` (the
// IOMMU's set) when not already there.
void device_tlb(const DevTlbHistory& h, const Layout& lay, const Features& f,
                const hw::DmaRequest& r, std::vector<Allowed>& out) {
  // From the first image whose context entry allows translation requests on. Weaker reading:
  // once allowed, a later context entry (fresh or cached) is not asked again, as the IOTLB
  // entries the device asks through are used whatever the context entry now says.
  std::vector<bool> ats(h.images.size());
  bool any = false;
  for (size_t e = 0; e < h.images.size(); ++e)
    ats[e] = any = any || ats_allowed(h.images[e], lay, f, r);
  if (!any) return;
  // What a translation request was answered with at each point (translations only).
  std::vector<std::vector<hw::DmaOutcome>> answers(h.points.size());
  for (size_t p = 0; p < h.points.size(); ++p) {
    if (!ats[h.points[p].epoch]) continue;
    const Then then(h, p);
    for (Allowed& a : Lookup<Then>(then, lay, f, r).run())
      if (a.outcome.kind == hw::DmaOutcome::Kind::ok) answers[p].push_back(std::move(a.outcome));
  }
  auto answered = [&](size_t p, const hw::DmaOutcome& o) {
    return std::find(answers[p].begin(), answers[p].end(), o) != answers[p].end();
  };
  // Completed device-TLB invalidations covering the access, by the point they executed at.
  std::vector<size_t> kills;
  for (const DevTlbHistory::Inv& d : h.invs)
    if (d.point != SIZE_MAX && d.done != UINT64_MAX && covers_device_tlb(d.d, r))
      kills.push_back(d.point);
  for (size_t p = 0; p < h.points.size(); ++p)
    for (const hw::DmaOutcome& o : answers[p]) {
      if (std::any_of(out.begin(), out.end(), [&](const Allowed& a) { return a.outcome == o; }))
        continue;
      const bool gone = std::any_of(kills.begin(), kills.end(), [&](size_t k) {
        for (size_t q = k; q < h.points.size(); ++q)
          if (answered(q, o)) return false; // asked again after the invalidation
        return true;
      });
      if (!gone) out.push_back({o, "VTD.CACHE.devtlb"});
    }
}

} // namespace

std::vector<Allowed> Machine::dma(const hw::DmaRequest& r) const {
  std::vector<Allowed> out = Lookup<Now>(Now{hist_}, layout_, features_, r).run();
  if (features_.dev_tlb) device_tlb(dt_, layout_, features_, r, out);
  return out;
}

// ---- Fault recording ------------------------------------------------------------------------
//
// The registers are used in turn and drained (read and cleared) all at once, so a reading is
// the list of recorded faults since the last drain. A fault is recorded unless PFO is set
// ("New fault is not recorded due to Primary Fault Overflow", Qc:vtd_report_frcd_fault) or
// every register is full, which sets PFO and loses it; it may also be collapsed into a pending
// record of the same source-id ([DS] FRCD_REG.F; Qc:vtd_try_collapse_fault). Each World is one
// way the registers may read.

void Machine::after_dma(const hw::DmaRequest& r, const std::vector<Allowed>& allowed,
                        const hw::DmaOutcome& observed) {
  if (r.drain || observed.kind != hw::DmaOutcome::Kind::fault) return;
  Queued q;
  for (const auto& a : allowed)
    if (a.outcome.kind == hw::DmaOutcome::Kind::fault) q.may_be.push_back(a.outcome);
  const size_t idx = log_.size();
  log_.push_back(std::move(q));
  log_sid_.push_back(uint16_t(r.sid));
  std::vector<World> next;
  auto keep = [&](World w) {
    for (World& n : next)
      if (n.recorded == w.recorded && n.pfo == w.pfo) {
        n.collapsed = n.collapsed && w.collapsed;
        return;
      }
    next.push_back(std::move(w));
  };
  for (const World& w : worlds_) {
    if (w.pfo) {
      keep(w);
      continue;
    }
    const bool same_sid = std::any_of(w.recorded.begin(), w.recorded.end(),
                                      [&](size_t j) { return log_sid_[j] == uint16_t(r.sid); });
    if (same_sid) {
      World c = w;
      c.collapsed = true;
      keep(std::move(c));
    }
    World rec = w;
    if (rec.recorded.size() < layout_.fault_records)
      rec.recorded.push_back(idx);
    else
      rec.pfo = true; // Qc:vtd_report_frcd_fault "Next Fault Recording Reg is used ... set PFO"
    keep(std::move(rec));
  }
  worlds_ = std::move(next);
}

std::vector<Machine::Queued> Machine::drain_faults(bool& overflow) {
  std::vector<Queued> out;
  overflow = false;
  for (const World& w : worlds_) {
    if (w.collapsed) continue;
    for (size_t j : w.recorded)
      out.push_back(log_[j]);
    overflow = w.pfo;
    break;
  }
  // Software reads the records, clears F in each, then PFO (dmar.c:2011-2031 dmar_fault).
  log_.clear();
  log_sid_.clear();
  worlds_ = {World{}};
  return out;
}

std::vector<Machine::FaultLog> Machine::drain_fault_logs() {
  std::vector<FaultLog> out;
  for (const World& w : worlds_) {
    FaultLog l;
    for (size_t j : w.recorded)
      l.records.push_back(log_[j]);
    l.overflow = w.pfo;
    l.collapsed = w.collapsed;
    out.push_back(std::move(l));
  }
  log_.clear();
  log_sid_.clear();
  worlds_ = {World{}};
  return out;
}

size_t Machine::queued_faults() const {
  for (const World& w : worlds_)
    if (!w.collapsed) return w.recorded.size();
  return 0;
}

} // namespace iommuspec::vtd
