// The iommufd vIOMMU layer above a VT-d unit: a nested HWPT (a guest first-stage table in a
// PASID entry whose second stage is the host's) and the guest's stage-1 invalidations
// (`struct iommu_hwpt_vtd_s1_invalidate`, include/uapi/linux/iommufd.h:643-681). What a
// successful entry promises is stated as the descriptors a unit must have executed for it, so
// the machine (machine.h) decides what stays allowed; the descriptors are the model's
// statement of the promise, not what a kernel issues (a kernel may cover more).
#pragma once

#include "core/errno.h"
#include "vtd/format.h"

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace iommuspec::vtd {

// The host tags of a nested HWPT: the domain ID and PASID its PASID entry carries, and the
// device it is attached to (for the device TLB).
struct NestedHwpt {
  uint16_t sid = 0;
  uint32_t pasid = 0;
  uint16_t did = 0;
};

// struct iommu_hwpt_vtd_s1_invalidate (uapi iommufd.h:676-681).
struct S1Invalidate {
  uint64_t addr = 0;
  uint64_t npages = 0;
  uint32_t flags = 0; // IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0 (:654-656)
  uint32_t reserved = 0;
};
inline constexpr uint32_t kInvFlagsLeaf = 1u << 0;

struct UserInvalidation {
  std::vector<QiDescriptor> host; // what entries 0..handled-1 promise, wait descriptors included
  uint32_t handled = 0;           // entry_num
  Errno error = Errno::ok;
  std::string_view clause; // the rule that decided the outcome
};

// Checks the entries in order (nested.c:103-130): the first refused one ends the call with its
// errno, entry_num = its index, and the entries before it promise their effect.
UserInvalidation convert_s1_invalidate(const NestedHwpt& h, std::span<const S1Invalidate> entries,
                                       uint8_t mamv);

} // namespace iommuspec::vtd
