// The VT-d nested-HWPT invalidation (viommu.h): the refusal order, entry_num, and that the
// promised PASID-based invalidations cover exactly the entry's range.
#include "vtd/viommu.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::vtd {
namespace {

constexpr NestedHwpt kH{0x10, 3, 7};

std::vector<PasidIotlbInv> piotlbs(const UserInvalidation& r) {
  std::vector<PasidIotlbInv> out;
  for (const auto& d : r.host)
    if (const auto* p = std::get_if<PasidIotlbInv>(&d)) out.push_back(*p);
  return out;
}

TEST(VtdViommu, FlagsAreCheckedBeforeAlignment) {
  const std::vector<S1Invalidate> e = {{0x10000, 1, kInvFlagsLeaf, 0}, {0x11800, 1, 0x2, 0}};
  const auto r = convert_s1_invalidate(kH, e, 18);
  EXPECT_EQ(r.error, Errno::eopnotsupp);
  EXPECT_EQ(r.handled, 1u);
  ASSERT_EQ(piotlbs(r).size(), 1u);
  EXPECT_TRUE(piotlbs(r)[0].ih) << "LEAF is IH";
  EXPECT_EQ(piotlbs(r)[0].did, 7);
  EXPECT_EQ(piotlbs(r)[0].pasid, 3u);
}

TEST(VtdViommu, ReservedAndAddressChecks) {
  EXPECT_EQ(convert_s1_invalidate(kH, std::vector<S1Invalidate>{{0x1000, 1, 0, 1}}, 18).error,
            Errno::eopnotsupp);
  EXPECT_EQ(convert_s1_invalidate(kH, std::vector<S1Invalidate>{{0x1800, 1, 0, 0}}, 18).error,
            Errno::einval);
  EXPECT_EQ(
      convert_s1_invalidate(kH, std::vector<S1Invalidate>{{0x1000, UINT64_MAX, 0, 0}}, 18).error,
      Errno::einval);
  const auto all = convert_s1_invalidate(kH, std::vector<S1Invalidate>{{0, UINT64_MAX, 0, 0}}, 18);
  ASSERT_EQ(all.error, Errno::ok);
  ASSERT_EQ(piotlbs(all).size(), 1u);
  EXPECT_EQ(piotlbs(all)[0].g, PasidIotlbGranularity::all_in_pasid);
}

TEST(VtdViommu, TheDeviceTlbIsInvalidatedAfterTheIotlbHasCompleted) {
  // pfn 0x11 is odd: two one-page blocks, then a wait, the device-TLB invalidations of the same
  // blocks for the HWPT's device and PASID, and a wait (VTD.INV.DEVTLB.after_iotlb).
  const auto r = convert_s1_invalidate(kH, std::vector<S1Invalidate>{{0x11000, 2, 0, 0}}, 18);
  ASSERT_EQ(r.host.size(), 6u);
  EXPECT_TRUE(std::holds_alternative<PasidIotlbInv>(r.host[0]));
  EXPECT_TRUE(std::holds_alternative<PasidIotlbInv>(r.host[1]));
  EXPECT_TRUE(std::holds_alternative<InvWait>(r.host[2]));
  const auto* d = std::get_if<PasidDevTlbInv>(&r.host[3]);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->sid, 0x10);
  EXPECT_EQ(d->pasid, 3u);
  EXPECT_EQ(dev_tlb_range(d->addr, d->s), (ByteRange{0x11000, 0x11fff}));
  EXPECT_TRUE(std::holds_alternative<PasidDevTlbInv>(r.host[4]));
  EXPECT_TRUE(std::holds_alternative<InvWait>(r.host[5]));
}

// The blocks are aligned, at most MAMV, disjoint and cover exactly the entry's pages.
RC_GTEST_PROP(VtdViommuProp, BlocksCoverExactlyTheRange, ()) {
  const uint64_t pfn = *rc::gen::inRange<uint64_t>(0, 1 << 12);
  const uint64_t npages = *rc::gen::inRange<uint64_t>(1, 1 << 12);
  const uint8_t mamv = uint8_t(*rc::gen::inRange(0, 19));
  const auto r =
      convert_s1_invalidate(kH, std::vector<S1Invalidate>{{pfn << 12, npages, 0, 0}}, mamv);
  RC_ASSERT(r.error == Errno::ok);
  uint64_t next = pfn;
  for (const auto& p : piotlbs(r)) {
    RC_ASSERT(p.g == PasidIotlbGranularity::page_in_pasid);
    RC_ASSERT(p.am <= mamv);
    const uint64_t start = p.addr >> 12, size = uint64_t(1) << p.am;
    RC_ASSERT(start % size == 0u);
    RC_ASSERT(start == next);
    next = start + size;
  }
  RC_ASSERT(next == pfn + npages);
}

} // namespace
} // namespace iommuspec::vtd
