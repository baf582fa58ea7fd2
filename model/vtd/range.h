// The address arithmetic of VT-d invalidations, written once over a value type
// (core/arith.h): machine.cpp, format.cpp and viommu.cpp use it with uint64_t, solvers/
// proves properties of the same code with Z3 bit-vectors. Sources:
//   iommu.h:N, cache.c   linux-source-6.12 drivers/iommu/intel
//   Qc:NAME              QEMU hw/i386/intel_iommu.c, function NAME
#pragma once

#include "core/arith.h"

#include <cstdint>

namespace iommuspec::vtd {

using arith::SpanOf;

// Page-selective invalidation (IOTLB and PASID-based IOTLB): 2^AM 4K pages, ADDR aligned down
// to that size ("VT-d HW silently ignores any address bits below the mask", Linux commit
// 1ff00279655d; Qc:vtd_hash_remove_by_page masks with ~((1 << am) - 1); iommu.h:413).
// 12 + AM >= 64: everything.
template <class V>
SpanOf<V> am_span(const V& addr, const V& am) {
  using O = arith::Ops<V>;
  const V shift = am + 12;
  const V size = O::shl(O::lit(addr, 1), shift);
  const V lo = addr & ~(size - 1);
  const auto all = O::uge(shift, O::lit(addr, 64));
  return {O::ite(all, O::lit(addr, 0), lo),
          O::ite(all, O::lit(addr, ~uint64_t(0)), lo + (size - 1))};
}

// The range a device-TLB invalidation covers (format.h dev_tlb_range). S = 0: the 4K page
// at ADDR. S = 1: the lowest clear address bit at or above 12 sets the size, 2^(bit + 1)
// bytes aligned ("e.g. address bit 12[0] indicates 8KB, 13[0] indicates 16KB",
// iommu.h:1189-1193; Qc:do_invalidate_device_tlb); bits 63:12 all set: everything.
template <class V>
SpanOf<V> dev_tlb_span(const V& addr, const typename arith::Ops<V>::Bool& s) {
  using O = arith::Ops<V>;
  const V a = addr & O::lit(addr, ~uint64_t(0xfff));
  const V ones = ~(a | O::lit(addr, 0xfff)); // the clear address bits, as set bits
  const V size_bit = ones & (~ones + 1);
  const V size = size_bit + size_bit; // 0 when the size bit is 63: 2^64
  const V start = O::ite(size == 0, O::lit(addr, 0), a & ~(size - 1));
  const V last = O::ite(size == 0, O::lit(addr, ~uint64_t(0)), start + (size - 1));
  const auto all = ones == 0;
  return {O::ite(!s, a, O::ite(all, O::lit(addr, 0), start)),
          O::ite(!s, a + 0xfff, O::ite(all, O::lit(addr, ~uint64_t(0)), last))};
}

// The qw1 address bits of a device-TLB invalidation of 2^order pages at addr (S = order !=
// 0): the bits below the size bit set, the size bit clear (iommu.h:1204-1218
// qi_desc_dev_iotlb_pasid; order bounded to 64 - 12, "a full flush", iommu.h:1186-1187).
template <class V>
V dev_tlb_addr(const V& addr, const V& order) {
  using O = arith::Ops<V>;
  const V o = O::umin(order, O::lit(order, 64 - 12));
  const V qw1 = addr & O::lit(addr, ~uint64_t(0xfff));
  const V below = O::shl(O::lit(addr, 1), o + 12) - 1; // all ones when o + 12 = 64
  const V filled =
      (qw1 | (below & O::lit(addr, ~uint64_t(0xfff)))) & ~O::shl(O::lit(addr, 1), o + 11);
  return O::ite(o == 0, qw1, filled);
}

// The next block of the exact split of a page range (viommu.cpp blocks, convert_s1_invalidate):
// the largest naturally aligned block of 2^am pages at pfn that stays within the npages (>= 1)
// pages left, am at most MAMV: a page-selective descriptor covers exactly such a block
// (iommu.h:437-439 AM).
template <class V>
V block_am(const V& pfn, const V& npages, const V& mamv) {
  using O = arith::Ops<V>;
  const V aligned = O::ite(pfn == 0, O::lit(pfn, 63), O::ctz(pfn));
  return O::umin(O::umin(aligned, O::bit_width(npages) - 1), mamv);
}

// The one aligned block Linux 6.12 invalidates for [start, last] (byte addresses, start <=
// last): cache.c calculate_psi_aligned_address widens the page range to 2^mask pages at addr
// ("If the address isn't aligned to the mask, then compute a mask value needed to ensure the
// target range is flushed": the lowest bit above the rounded size where the first and last
// page numbers agree; none: MAX_AGAW_PFN_WIDTH = 52). The IOTLB descriptor carries it as AM
// when mask <= CAP.MAMV, and is domain-selective otherwise (psi_fits; cache.c
// cache_tag_flush_iotlb "Fallback to domain selective flush if no PSI support or the size is
// too big"); the device-TLB descriptor carries it whatever its size (cache.c
// cache_tag_flush_devtlb_psi, dev_tlb_addr). The page count is last_pfn - first_pfn + 1,
// which is what Linux's aligned_nrpages(start, last - start + 1) computes except when the
// range starts in page 0 and ends in the top page (there the size wraps to 0).
template <class V>
struct PsiBlock {
  V addr, mask;
};
template <class V>
PsiBlock<V> psi_block(const V& start, const V& last) {
  using O = arith::Ops<V>;
  const V pfn = O::lshr(start, O::lit(start, 12));
  const V end_pfn = O::lshr(last, O::lit(start, 12));
  const V pages = end_pfn - pfn + 1;
  const V rounded = O::bit_width(pages - 1); // ilog2(__roundup_pow_of_two(pages))
  const V bitmask = O::shl(O::lit(start, 1), rounded) - 1;
  const V shared = ~(pfn ^ end_pfn) & ~bitmask;
  const V misaligned = O::ite(shared == 0, O::lit(start, 52), O::ctz(shared));
  const V mask = O::ite((bitmask & pfn) != 0, misaligned, rounded);
  return {start & ~(O::shl(O::lit(start, 1), mask + 12) - 1), mask}; // ALIGN_DOWN
}
// Whether the block fits a page-selective IOTLB descriptor (AM <= CAP.MAMV).
template <class V>
typename arith::Ops<V>::Bool psi_fits(const PsiBlock<V>& b, const V& mamv) {
  return arith::Ops<V>::ule(b.mask, mamv);
}

} // namespace iommuspec::vtd
