// One level of the VT-d paging walk, written once over a value type (core/arith.h): an
// entry's address, the present / leaf / reserved tests, the next-table and output addresses,
// a first-stage entry's permission and A/D tests, the input-width, canonical and interrupt-
// range checks, and the fault codes a second-stage failure gets from who asked for it.
// walk.cpp runs it with uint64_t; solvers/ (vtd.nested.isolation) walks symbolic tables with
// the same code over Z3 bit-vectors. Levels and configurations are plain numbers (a walk is
// unrolled per level); addresses, entry words and access flags are values. Sources as
// walk.h; [VTD] is the VT-d specification rev 5.10 (format.h).
#pragma once

#include "core/arith.h"
#include "vtd/format.h"

#include <cstdint>

namespace iommuspec::vtd {

inline constexpr uint64_t kPs = 1ull << 7;                            // Q:VTD_PT_PAGE_SIZE_MASK
inline constexpr uint64_t kSsR = 1ull << 0;                           // Q:VTD_SS_R; iommu.h:43
inline constexpr uint64_t kSsW = 1ull << 1;                           // Q:VTD_SS_W; iommu.h:44
inline constexpr uint64_t kSsSnp = 1ull << 11;                        // Q:VTD_SPTE_SNP; iommu.h:46
inline constexpr uint64_t kSsTm = 1ull << 62;                         // Q:VTD_SS_TM
inline constexpr uint64_t kSsIgnCom = 0xbff0'0000'0000'0000ull;       // Q:VTD_SS_IGN_COM
inline constexpr uint64_t kFsP = 1ull << 0;                           // Q:VTD_FS_P
inline constexpr uint64_t kFsRw = 1ull << 1;                          // Q:VTD_FS_RW
inline constexpr uint64_t kFsUs = 1ull << 2;                          // Q:VTD_FS_US
inline constexpr uint64_t kFsA = 1ull << 5;                           // Q:VTD_FS_A
inline constexpr uint64_t kFsD = 1ull << 6;                           // Q:VTD_FS_D
inline constexpr uint64_t kFsXd = 1ull << 63;                         // x86 pgtable:30
inline constexpr uint64_t kFsUpperIgnored = 0xfff0'0000'0000'0000ull; // Q:VTD_FS_UPPER_IGNORED
inline constexpr uint64_t kAddr = 0x000f'ffff'ffff'f000ull;           // bits 51:12 (format.h)
// Q:VTD_INTERRUPT_ADDR_FIRST / _LAST
inline constexpr uint64_t kIntrFirst = 0xfee0'0000ull;
inline constexpr uint64_t kIntrLast = 0xfeef'ffffull;

template <class V>
using BoolOf = typename arith::Ops<V>::Bool;

// Q:VTD_HAW_MASK
inline constexpr uint64_t haw_mask(unsigned haw) {
  return haw >= 64 ? ~0ull : (1ull << haw) - 1;
}

// Is any bit of `mask` set in e?
template <class V>
BoolOf<V> any_bit(const V& e, uint64_t mask) {
  using O = arith::Ops<V>;
  return (e & O::lit(e, mask)) != O::lit(e, 0);
}

// The entry for `addr` at `level` in the table at `table`: 8-byte entries indexed by 9 bits of
// the address per level (iommu.h:910-918 pfn_level_offset; Qc:vtd_get_pte "base_addr +
// index * sizeof(pte)").
template <class V>
V entry_address(const V& table, const V& addr, int level) {
  using O = arith::Ops<V>;
  const V index = O::lshr(addr, O::lit(addr, level_shift(unsigned(level)))) & O::lit(addr, 0x1ff);
  return table + O::shl(index, O::lit(addr, 3));
}

// The table a pointer or a non-leaf entry names: bits 51:12 (Q:VTD_SM_PASID_ENTRY_FSPTPTR,
// VTD_SM_PASID_ENTRY_SSPTPTR; the ADDR field of a paging entry).
template <class V>
V table_address(const V& e) {
  using O = arith::Ops<V>;
  return e & O::lit(e, kAddr);
}

// An entry is a leaf at level 1 or when PS (bit 7) is set (Qc:vtd_is_last_pte; iommu.c:847
// stops at dma_pte_superpage).
template <class V>
BoolOf<V> is_leaf(const V& e, int level) {
  using O = arith::Ops<V>;
  if (level == 1) return O::truth(e, true);
  return any_bit(e, kPs);
}

// A leaf's page base: its ADDR field with the bits below its page size cleared.
template <class V>
V leaf_base(const V& e, int level) {
  using O = arith::Ops<V>;
  return e & O::lit(e, kAddr & ~(level_page_size(unsigned(level)) - 1));
}

// The address a leaf of `level` at `base` gives `addr`: the page offset kept (Qc:vtd_iommu_
// translate "(slpte_addr & ~page_mask) | (addr & page_mask)").
template <class V>
V leaf_output(const V& base, const V& addr, int level) {
  using O = arith::Ops<V>;
  return base | (addr & O::lit(addr, level_page_size(unsigned(level)) - 1));
}

// An input at or above 2^width (Qc:vtd_iova_ss_range_check; iommu.c:296-300).
template <class V>
BoolOf<V> beyond_width(const V& addr, unsigned width) {
  using O = arith::Ops<V>;
  if (width >= 64) return O::truth(addr, false);
  return O::lshr(addr, O::lit(addr, width)) != O::lit(addr, 0);
}

// First-stage input not canonical for the paging mode: bits 63:N-1 not all equal, N = 48 for
// 4 levels and 57 for 5 (iommu.h:56-57; Qc:vtd_iova_fs_check_canonical; [VTD] Table 30 SGN.1).
template <class V>
BoolOf<V> non_canonical(const V& addr, int levels) {
  using O = arith::Ops<V>;
  const unsigned width = levels == 5 ? 57 : 48;
  const uint64_t upper = ~0ull << (width - 1);
  const V top = addr & O::lit(addr, upper);
  return top != O::lit(addr, 0) && top != O::lit(addr, upper);
}

// Does the page [page, page + size - 1] meet the interrupt range (Qc:vtd_do_iommu_translate;
// [VTD] Table 30 SGN.8)?
template <class V>
BoolOf<V> in_interrupt_range(const V& page, const V& size) {
  using O = arith::Ops<V>;
  return O::ule(page, O::lit(page, kIntrLast)) &&
         O::uge(page + (size - O::lit(size, 1)), O::lit(page, kIntrFirst));
}

// --- Second stage ---------------------------------------------------------------------------

// Present when R or W is set (iommu.h dma_pte_present).
template <class V>
BoolOf<V> ss_present(const V& e) {
  return any_bit(e, kSsR | kSsW);
}

// Second-stage reserved bits at `level` (Qc:vtd_sspte_nonzero_rsvd with the masks
// Q:VTD_SPTE_PAGE_L{1..4}_RSVD_MASK and Q:VTD_SPTE_LPAGE_L{2,3}_RSVD_MASK as Qc:vtd_init sets
// them up). Bits haw..51 and bit 62 (TM, unless tm_ok in a leaf) are reserved; 63 and 61:52
// are ignored; SNP is reserved in non-leaf entries and, unless snp_ok, in leaves; a large
// leaf reserves the address bits below its page. Level 5 uses the level-4 mask (QEMU stops
// at 4 levels). PS at level 2/3 not allowed by CAP.SLLPS is treated as reserved
// (format.h ss_large_page_allowed; iommu.h:174-176). `haw`, `sllps`, `snp_ok`, `tm_ok` as in
// SsConfig (walk.h).
template <class V>
V ss_reserved(const V& e, int level, unsigned haw, uint8_t sllps, bool snp_ok, bool tm_ok) {
  using O = arith::Ops<V>;
  const auto leaf = is_leaf(e, level);
  const auto ps = any_bit(e, kPs);
  const V zero = O::lit(e, 0);
  const V ok = O::lit(e, haw_mask(haw) | kSsIgnCom) |
               O::ite(leaf && O::truth(e, tm_ok), O::lit(e, kSsTm), zero);
  V rsvd = ~ok | O::ite(!leaf || O::truth(e, !snp_ok), O::lit(e, kSsSnp), zero);
  if (level >= 4) rsvd = rsvd | O::lit(e, kPs); // Q:VTD_SPTE_PAGE_L4_RSVD_MASK 0x880
  if (level == 2) rsvd = rsvd | O::ite(ps, O::lit(e, 0x1f'f000ull), zero);   // _LPAGE_L2_
  if (level == 3) rsvd = rsvd | O::ite(ps, O::lit(e, 0x3fff'f000ull), zero); // _LPAGE_L3_
  if ((level == 2 || level == 3) && !((sllps >> (level - 2)) & 1))
    rsvd = rsvd | O::ite(ps, O::lit(e, kPs), zero);
  return e & rsvd;
}

// Why a second-stage translation stopped. The code depends on who asked (ss_code,
// nested_fetch_code, nested_output_code).
enum class SsFail : uint8_t {
  none,
  beyond,      // input at or above 2^width
  access_root, // root-table entry fetch failed
  access,      // lower entry fetch failed
  not_present, // R = W = 0 (scalable mode only; legacy folds it into no_read/no_write)
  reserved,
  no_read,
  no_write
};
inline constexpr SsFail kSsFails[] = {SsFail::beyond,      SsFail::access_root, SsFail::access,
                                      SsFail::not_present, SsFail::reserved,    SsFail::no_read,
                                      SsFail::no_write};

// Codes for a second-stage walk asked for by the request itself (walk_ss).
inline FaultReason ss_code(SsFail f, bool scalable) {
  if (!scalable) {
    switch (f) {
    case SsFail::beyond:
      return FaultReason::beyond_mgaw; // Q:VTD_FR_ADDR_BEYOND_MGAW
    case SsFail::access_root:
      return FaultReason::context_invalid; // Q:VTD_FR_CONTEXT_ENTRY_INV
    case SsFail::access:
      return FaultReason::next_table_invalid; // Q:VTD_FR_PAGING_ENTRY_INV
    case SsFail::not_present:
      return FaultReason::no_read; // (not raised in legacy)
    case SsFail::reserved:
      return FaultReason::pte_reserved; // Q:VTD_FR_PAGING_ENTRY_RSVD
    case SsFail::no_read:
      return FaultReason::no_read; // Q:VTD_FR_READ
    case SsFail::no_write:
      return FaultReason::no_write; // Q:VTD_FR_WRITE
    case SsFail::none:
      break;
    }
    return FaultReason::software;
  }
  // Scalable mode, the meanings dmar.c:1806-1818 gives.
  switch (f) {
  case SsFail::beyond:
    // [VTD] Table 30 SGN.5 (84h): "the address in a untranslated or translation request ...
    // using second-stage only translation (PGTT=010) is above (2^X - 1), where X is the
    // minimum of MGAW ... and the value in the Address-Width (AW) field"; 83h (SGN.4) is a
    // host address beyond HAW (translated requests, pass-through).
    return FaultReason::sm_ss_beyond_max; // 0x84
  case SsFail::access_root:
    return FaultReason::sm_ss_ptr_invalid; // 0x7b ([VTD] Table 30 SSS.4)
  case SsFail::access:
    return FaultReason::sm_ss_entry_access; // 0x78 (SSS.1)
  case SsFail::not_present:
    return FaultReason::sm_ss_rw_permission; // 0x79 (SSS.2)
  case SsFail::reserved:
    return FaultReason::sm_ss_entry_reserved; // 0x7a (SSS.3)
  case SsFail::no_read:
    return FaultReason::sm_no_read; // 0x86 (SGN.7)
  case SsFail::no_write:
    return FaultReason::sm_no_write; // 0x85 (SGN.6)
  case SsFail::none:
    break;
  }
  return FaultReason::software;
}

// Nested: the code of a second-stage failure met translating the GPA of a first-stage entry
// at `fs_level` (of `fs_levels`), a read (fs_walk). [VTD] Table 30 SFS.1: "second-stage nested
// translation faults encountered when accessing first-stage paging entries are treated as
// fault conditions SSS.1-SSS.5, SGN.5, SGN.6 or SGN.7"; the model takes the rows written for
// the nested case where there is one: beyond the width SFS.5 (74h, dmar.c:1802 "First-level
// entry address beyond MGAW in Nested translation"), no read permission SFS.6 (75h, the
// FS-PML4/PML5 entry) or SFS.7 (76h, below; dmar.c:1803-1804); the rest as SSS.1-SSS.4.
inline FaultReason nested_fetch_code(SsFail f, int fs_level, int fs_levels) {
  if (f == SsFail::beyond) return FaultReason::sm_nested_fs_beyond_mgaw;
  if (f == SsFail::no_read)
    return fs_level == fs_levels ? FaultReason::sm_nested_fs_pml4_read
                                 : FaultReason::sm_nested_fs_read;
  return ss_code(f, true);
}

// Nested: the code of a second-stage failure translating the first-stage output GPA with the
// request's access: beyond the width SFS.5 (74h: the leaf's ADDR field is above 2^X - 1), else
// as walk_ss in scalable mode (SSS.1-SSS.4, SGN.6 85h / SGN.7 86h).
inline FaultReason nested_output_code(SsFail f) {
  if (f == SsFail::beyond) return FaultReason::sm_nested_fs_beyond_mgaw;
  return ss_code(f, true);
}

// --- First stage ----------------------------------------------------------------------------

// Present when P (bit 0).
template <class V>
BoolOf<V> fs_present(const V& e) {
  return any_bit(e, kFsP);
}

// First-stage reserved bits (Qc:vtd_fspte_nonzero_rsvd with Q:VTD_FPTE_PAGE_L{1..4}_RSVD_MASK
// and Q:VTD_FPTE_LPAGE_L{2,3}_RSVD_MASK): bits haw..51; PS at level 4 (and 5, as x86 reserves
// PS in a PML5E; QEMU has no 5-level first stage); a large leaf reserves the bits between
// its PAT bit (12) and its page. 1G without CAP.FL1GP: PS reserved (iommu.c:408-410).
template <class V>
V fs_reserved(const V& e, int level, unsigned haw, bool fl1gp) {
  using O = arith::Ops<V>;
  const auto ps = any_bit(e, kPs);
  const V zero = O::lit(e, 0);
  V rsvd = O::lit(e, ~(haw_mask(haw) | kFsUpperIgnored));
  if (level >= 4) rsvd = rsvd | O::lit(e, kPs);
  if (level == 2) rsvd = rsvd | O::ite(ps, O::lit(e, 0x1f'e000ull), zero);   // bits 20:13
  if (level == 3) rsvd = rsvd | O::ite(ps, O::lit(e, 0x3fff'e000ull), zero); // bits 29:13
  if (level == 3 && !fl1gp) rsvd = rsvd | O::ite(ps, O::lit(e, kPs), zero);
  return e & rsvd;
}

// A user request needs U/S (0x81, dmar.c:1813; [VTD] Table 30 SGN.2). A supervisor request
// ignores U/S, as in x86 paging.
template <class V>
BoolOf<V> fs_user_denied(const V& e, const BoolOf<V>& priv) {
  return !priv && !any_bit(e, kFsUs);
}
// Does the entry grant write to this request? RW, or a supervisor request with WPE clear
// (pasid.h:229-236 write-protect enable).
template <class V>
BoolOf<V> fs_writable(const V& e, const BoolOf<V>& priv, const BoolOf<V>& wpe) {
  return any_bit(e, kFsRw) || (priv && !wpe);
}
// Does the entry forbid execute? XD (bit 63, x86 pgtable:30).
template <class V>
BoolOf<V> fs_no_execute(const V& e) {
  return any_bit(e, kFsXd);
}

// The A/D flags a walk sets in an entry: A in every entry walked, D in the leaf of a write
// (Qc:vtd_set_flag_in_pte).
template <class V>
V fs_ad_flags(const V& e, const BoolOf<V>& leaf, const BoolOf<V>& write) {
  using O = arith::Ops<V>;
  return O::lit(e, kFsA) | O::ite(leaf && write, O::lit(e, kFsD), O::lit(e, 0));
}
// Must the walk write the entry back (a flag of `flags` is clear)?
template <class V>
BoolOf<V> fs_ad_needed(const V& e, const V& flags) {
  return (e & flags) != flags;
}

} // namespace iommuspec::vtd
