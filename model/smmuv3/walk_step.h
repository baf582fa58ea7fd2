// One level of the VMSAv8-64 translation walk, written once over a value type (core/arith.h):
// the descriptor's address, its type, the output or next-table address it holds, the output-
// size check, a leaf's permissions and the CLASS of a fault's event record. walk.cpp,
// format.cpp and machine.cpp run it with uint64_t; solvers/ (smmuv3.nested.isolation) walks
// symbolic tables with the same code over Z3 bit-vectors. Granule, level and widths are plain
// numbers (a walk is unrolled per level); addresses, descriptor words and permission bits are
// values. Sources as walk.h and format.h: [P] io-pgtable-arm.c, [H] pgtable-hwdef.h,
// [K] kvm_pgtable.h, [QC]/[QI] QEMU smmu-common.c / smmu-internal.h, [A] IHI 0070.
#pragma once

#include "core/arith.h"
#include "smmuv3/format.h"

#include <cstdint>

namespace iommuspec::smmuv3 {

// Descriptor bits the walk reads (format.cpp's field tables use the same constants).
inline constexpr unsigned kDescAf = 10;       // AF (P:80 ARM_LPAE_PTE_AF; K:79 at stage 2)
inline constexpr unsigned kDescAp = 6;        // AP[2:1] [7:6] (H:162-163); S2AP [7:6] (K:75-76)
inline constexpr unsigned kDescPxn = 53;      // PXN (H:170); stage 2: XN[0] (P:78)
inline constexpr unsigned kDescUxn = 54;      // UXN (H:171); stage 2: XN[1] (K:87 S2_XN)
inline constexpr unsigned kDescPxnTable = 59; // PXNTable (H:146)
inline constexpr unsigned kDescXnTable = 60;  // UXNTable / XNTable (H:147)
inline constexpr unsigned kDescApTable = 61;  // APTable [62:61] (H:219)

// Bit n of w as a truth value.
template <class V>
typename arith::Ops<V>::Bool desc_bit(const V& w, unsigned n) {
  using O = arith::Ops<V>;
  return (O::lshr(w, O::lit(w, n)) & O::lit(w, 1)) != O::lit(w, 0);
}

// addr < 2^bits (bits >= 64: always).
template <class V>
typename arith::Ops<V>::Bool fits_bits(const V& addr, unsigned bits) {
  using O = arith::Ops<V>;
  if (bits >= 64) return O::truth(addr, true);
  return O::lshr(addr, O::lit(addr, bits)) == O::lit(addr, 0);
}

// The index of `ia` in a table whose entries resolve input bits [shift + width - 1 : shift]
// ([QI] iova_level_offset; at a concatenated stage-2 start level the width is wider,
// [QI] pgd_concat_idx).
template <class V>
V level_index(const V& ia, unsigned shift, unsigned width) {
  using O = arith::Ops<V>;
  const uint64_t mask = width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1;
  return O::lshr(ia, O::lit(ia, shift)) & O::lit(ia, mask);
}

// The address of the descriptor for `ia` in the table at `table`: 8-byte descriptors
// ([QC] smmu_ptw_64_s1 "pte_addr = baseaddr + offset * sizeof(pte)"; P:58 ARM_LPAE_LVL_IDX).
template <class V>
V descriptor_address(const V& table, const V& ia, unsigned shift, unsigned width) {
  using O = arith::Ops<V>;
  return table + O::shl(level_index(ia, shift, width), O::lit(ia, 3));
}

// The walk geometry: granule, input size and start level. The start-level table indexes
// every input bit above level_shift(start), so at stage 2 it may be a concatenation of up to
// 16 tables ([QI] pgd_concat_idx; P:57 ARM_LPAE_PGD_IDX, P:1090-1098 concatenation).
struct Geometry {
  Granule g;
  unsigned ia_bits;
  int start;
  unsigned start_index_bits() const { return ia_bits - level_shift(g, start); }
  unsigned index_bits(int level) const {
    return level == start ? start_index_bits() : bits_per_level(g);
  }
  template <class V>
  V index(const V& ia, int level) const {
    return level_index(ia, level_shift(g, level), index_bits(level));
  }
  // The descriptor for ia at `level` in the table at `table`.
  template <class V>
  V desc_addr(const V& table, const V& ia, int level) const {
    return descriptor_address(table, ia, level_shift(g, level), index_bits(level));
  }
  // Base of the start table: [QC] "baseaddr &= ~indexmask" with VMSA_IDXMSK, i.e. the
  // TTB aligned down to the start table's size.
  template <class V>
  V align_root(const V& ttb) const {
    using O = arith::Ops<V>;
    return ttb & O::lit(ttb, ~((uint64_t(1) << (start_index_bits() + 3)) - 1));
  }
};

// What a descriptor word is at `level`: a table (type 0b11 at levels 0..2, P:72), a leaf (a
// page, type 0b11 at level 3, P:73, or a block, type 0b01 where the granule allows one at this
// level, P:71 and format.h block_allowed), or neither: invalid (bit 0 clear, P:85), reserved
// (0b01 at level 3) or a block where none is allowed ([QI] is_invalid_pte, is_reserved_pte,
// is_block_pte), which the walk takes as a translation fault.
template <class V>
struct DescTypeOf {
  typename arith::Ops<V>::Bool table, leaf;
};
template <class V>
DescTypeOf<V> descriptor_type(const V& w, const DescFormat& f, int level) {
  using O = arith::Ops<V>;
  const auto no = O::truth(w, false);
  if (level < 0 || level > 3) return {no, no};
  const V type = w & O::lit(w, 3); // P:69 ARM_LPAE_PTE_TYPE_MASK
  if (level == 3) return {no, type == O::lit(w, 3)};
  return {type == O::lit(w, 3),
          block_allowed(f.granule, level, f.oa52) ? type == O::lit(w, 1) : no};
}

// The output address of a leaf whose lowest output bit is `lo` (level_shift), or the next-
// level table of a table descriptor (lo = granule_shift): bits [47:lo] in place, and with the
// 64K granule and a 52-bit OA, OA[51:48] from bits [15:12] (P:198-199 iopte_to_paddr).
template <class V>
V descriptor_oa(const V& w, const DescFormat& f, unsigned lo) {
  using O = arith::Ops<V>;
  const uint64_t in_place = ((uint64_t(1) << 48) - 1) & ~((uint64_t(1) << lo) - 1);
  V oa = w & O::lit(w, in_place);
  if (f.granule == Granule::g64k && f.oa52)
    oa = oa | O::shl(O::lshr(w, O::lit(w, 12)) & O::lit(w, 0xf), O::lit(w, 48));
  return oa;
}

// The address a leaf of `size` bytes at `oa` gives `ia`: [QC] "(pte_addr & ~mask) | (iova &
// mask)" (smmu_ptw_64_s1 / _s2 tlbe.translated_addr with the offset within the block).
template <class V>
V leaf_output(const V& oa, const V& ia, const V& size) {
  return oa | (ia & (size - 1));
}

// Permissions (Bool-valued: bool, or a Z3 Boolean).
template <class B>
struct PermsOf {
  B read, write, exec;
};

// Stage 1: `ro` AP[2] or APTable[1], `user` AP[1] without APTable[0], `pxn` / `uxn` the leaf's
// or a table's (H:162-163 PTE_USER / PTE_RDONLY, H:170-171 PXN / UXN, H:217-219 APTable).
// A privileged access may read, write unless read-only, execute unless PXN; an unprivileged
// one needs AP[1] for data and UXN clear to execute.
template <class B>
PermsOf<B> s1_perms(const B& ro, const B& user, const B& pxn, const B& uxn, const B& priv) {
  return {priv || user, !ro && (priv || user), (priv && !pxn) || (!priv && !uxn)};
}

// Stage 2: S2AP[0] read, S2AP[1] write (P:107-108 HAP_READ / HAP_WRITE), XN bit 54 no execute
// (K:87 KVM_PTE_LEAF_ATTR_HI_S2_XN).
template <class B>
PermsOf<B> s2_perms(const B& s2ap_read, const B& s2ap_write, const B& xn) {
  return {s2ap_read, s2ap_write, !xn};
}

// An access against granted permissions: a write needs write, an instruction fetch execute,
// any other access read ([QI] is_permission_fault / is_permission_fault_s2; exec is the
// model's extension, see README).
template <class B>
B permits(const PermsOf<B>& p, const B& write, const B& exec) {
  return (write && p.write) || (!write && exec && p.exec) || (!write && !exec && p.read);
}

// CLASS of a walk fault's event record ([QV] SMMU_CLASS_CD / _TT / _IN; Linux
// EVTQ_1_CLASS_TT = 1).
enum : uint8_t { class_cd = 0, class_tt = 1, class_in = 2 };
// CLASS == TT: a stage-2 fault while translating a stage-1 descriptor's IPA ([A] 7.3.13
// F_TRANSLATION "If walking stage 1 translation table, CLASS == TT"), or an external abort
// fetching a stage-1 descriptor ([A] 7.3.12 F_WALK_EABT "S2 == 0 (stage 1), CLASS == TT");
// any other walk fault is CLASS == IN.
template <class B>
B class_is_tt(const B& s2_on_s1_walk, const B& s1_walk_eabt) {
  return s2_on_s1_walk || s1_walk_eabt;
}

} // namespace iommuspec::smmuv3
