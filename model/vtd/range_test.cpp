// Tests of range.h: the generic VT-d address-mask arithmetic with uint64_t (what machine.cpp,
// format.cpp and viommu.cpp run), hand-computed cases from Linux's comments, and the split
// step against the formula it replaced.
#include "vtd/format.h"
#include "vtd/range.h"

#include <algorithm>
#include <bit>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::vtd {
namespace {

TEST(VtdRange, AmSpan) {
  auto s = am_span<uint64_t>(0x13000, 2); // ADDR aligned down to 4 pages
  EXPECT_EQ(s.lo, 0x10000u);
  EXPECT_EQ(s.hi, 0x13fffu);
  s = am_span<uint64_t>(0x13000, 52);
  EXPECT_EQ(s.lo, 0u);
  EXPECT_EQ(s.hi, ~uint64_t(0));
}

TEST(VtdRange, PsiBlockAsLinux) {
  // cache.c calculate_psi_aligned_address: [0x11000, 0x12fff] -> 0x10000, mask 2
  // (conformance/suites/vtd/viommu-inv-range-widened.scn).
  auto b = psi_block<uint64_t>(0x11000, 0x12fff);
  EXPECT_EQ(b.addr, 0x10000u);
  EXPECT_EQ(b.mask, 2u);
  b = psi_block<uint64_t>(0x10000, 0x13fff); // aligned: exact
  EXPECT_EQ(b.addr, 0x10000u);
  EXPECT_EQ(b.mask, 2u);
  b = psi_block<uint64_t>(0x5123, 0x5456); // one page
  EXPECT_EQ(b.addr, 0x5000u);
  EXPECT_EQ(b.mask, 0u);
  // Two pages across a 2^17-page boundary: mask 18, the 1 GiB block at 0.
  b = psi_block<uint64_t>(0x1ffff000, 0x20000fff);
  EXPECT_EQ(b.addr, 0u);
  EXPECT_EQ(b.mask, 18u);
  EXPECT_TRUE(psi_fits<uint64_t>(b, 18));
  EXPECT_FALSE(psi_fits<uint64_t>(b, 17));
}

TEST(VtdRange, DevTlbEncoding) {
  // iommu.h:1189-1193: "address bit 12[0] indicates 8KB, 13[0] indicates 16KB".
  EXPECT_EQ(dev_tlb_addr<uint64_t>(0x10000, 1), 0x10000u);
  EXPECT_EQ(dev_tlb_addr<uint64_t>(0x10000, 2), 0x11000u);
  const auto s = dev_tlb_span<uint64_t>(0x11000, true);
  EXPECT_EQ(s.lo, 0x10000u);
  EXPECT_EQ(s.hi, 0x13fffu);
  const auto all = dev_tlb_span<uint64_t>(dev_tlb_addr<uint64_t>(0, 52), true);
  EXPECT_EQ(all.lo, 0u);
  EXPECT_EQ(all.hi, ~uint64_t(0));
}

// block_am is the formula viommu.cpp had: am = pfn ? ctz(pfn) : 63, at most bit_width(npages)
// - 1 and MAMV.
RC_GTEST_PROP(VtdRangeProp, BlockAmAsBefore, ()) {
  const uint64_t pfn = *rc::gen::arbitrary<uint64_t>();
  const uint64_t npages = *rc::gen::inRange<uint64_t>(1, UINT64_MAX);
  const uint64_t mamv = *rc::gen::inRange<uint64_t>(0, 64);
  unsigned am = pfn ? unsigned(std::countr_zero(pfn)) : 63u;
  am = std::min({am, unsigned(std::bit_width(npages)) - 1u, unsigned(mamv)});
  RC_ASSERT(block_am<uint64_t>(pfn, npages, mamv) == am);
}

// The device-TLB range of an encoded aligned block is that block.
RC_GTEST_PROP(VtdRangeProp, DevTlbRoundTrip, ()) {
  const uint64_t order = *rc::gen::inRange<uint64_t>(0, 52);
  const uint64_t addr = *rc::gen::arbitrary<uint64_t>() & ~((uint64_t(1) << (order + 12)) - 1);
  const auto r = dev_tlb_range(dev_tlb_addr_bits(addr, unsigned(order)), order != 0);
  RC_ASSERT(r.start == addr);
  RC_ASSERT(r.last == addr + ((uint64_t(1) << (order + 12)) - 1));
}

} // namespace
} // namespace iommuspec::vtd
