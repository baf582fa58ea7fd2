// The iommufd vIOMMU layer above an SMMUv3 (Linux arm-smmu-v3-iommufd.c): a vIOMMU holds the
// host VMID its nested streams use and its vDEVICEs (virtual StreamID -> physical SID); the
// guest's commands arrive as `struct iommu_viommu_arm_smmuv3_invalidate` entries (one 2 x 64-bit
// command each) and are converted into host commands. The model states what a successful entry
// promises as the host commands a unit must have executed (followed by CMD_SYNC), so the
// machine (machine.h) decides what stays allowed.
#pragma once

#include "core/errno.h"
#include "smmuv3/format.h"

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace iommuspec::smmuv3 {

struct VSmmu {
  uint16_t vmid = 0;
  std::map<uint64_t, uint32_t> vdevices; // vDEVICE virt_id (the virtual SID) -> physical SID
};

struct UserInvalidation {
  std::vector<Cmd2> host; // what entries 0..handled-1 promise, CMD_SYNC last
  uint32_t handled = 0;   // entry_num
  Errno error = Errno::ok;
  std::string_view clause; // the rule that decided the outcome
};

// Converts the entries in order; the first refused one ends the call with EIO and entry_num =
// its index, and the entries before it promise their effect (SMMUV3.VIOMMU.entry_num).
UserInvalidation convert_user_cmds(const VSmmu& v, std::span<const Cmd2> guest);

// The vEVENT (struct iommu_vevent_arm_smmuv3, four 64-bit words) a host event record becomes
// on this vIOMMU's vEVENTQ, or nothing when it is not forwarded (SMMUV3.VIOMMU.vevent).
std::optional<Evt4> to_vevent(const VSmmu& v, const Evt4& host);

} // namespace iommuspec::smmuv3
