// Sources: UAPI = upstream include/uapi/linux/iommufd.h struct
// iommu_viommu_arm_smmuv3_invalidate ("Supported command list only when passing in a vIOMMU
// via @hwpt_id: CMDQ_OP_TLBI_NSNH_ALL, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_NH_VAA,
// CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_ATC_INV, CMDQ_OP_CFGI_CD,
// CMDQ_OP_CFGI_CD_ALL. -EIO will be returned if the command is not supported."); VSMMU =
// drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-iommufd.c (lines as in /work/facts/
// viommu-queues.md section 1). Clauses SMMUV3.VIOMMU.* (clauses.def).
#include "smmuv3/viommu.h"

#include <optional>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t kOpcode = 0xff;                 // CMDQ_0_OP, bits 7:0
constexpr uint64_t kHigh32 = 0xffff'ffffull << 32; // CMDQ_CFGI_0_SID, bits 63:32
constexpr uint64_t kVmid = 0xffffull << 32;        // CMDQ_TLBI_0_VMID, bits 47:32

// One guest command as the host issues it, or the refusal's clause.
std::optional<Cmd2> convert(const VSmmu& v, Cmd2 c, std::string_view& clause) {
  switch (uint8_t(c[0] & kOpcode)) {
  case CmdTlbiNsnhAll::opcode:
    // All of the guest's stage-1 = TLBI_NH_ALL of the vIOMMU's VMID; nothing of the guest's
    // command is kept (VSMMU :321-326).
    return Cmd2{CmdTlbiNhAll::opcode | uint64_t(v.vmid) << 32, 0};
  case CmdTlbiNhVa::opcode:
  case CmdTlbiNhVaa::opcode:
  case CmdTlbiNhAll::opcode:
  case CmdTlbiNhAsid::opcode:
    // The VMID is the vIOMMU's whatever the guest wrote; every other bit passes (VSMMU
    // :327-333, SMMUV3.VIOMMU.vmid).
    c[0] = (c[0] & ~kVmid) | uint64_t(v.vmid) << 32;
    return c;
  case CmdAtcInv::opcode:
  case CmdCfgiCd::opcode:
  case CmdCfgiCdAll::opcode: {
    // The SID field names a vDEVICE of this vIOMMU (VSMMU :276-296, :334-344).
    auto it = v.vdevices.find(c[0] >> 32);
    if (it == v.vdevices.end()) {
      clause = "SMMUV3.VIOMMU.unknown_vsid";
      return std::nullopt;
    }
    c[0] = (c[0] & ~kHigh32) | uint64_t(it->second) << 32;
    return c;
  }
  default:
    clause = "SMMUV3.VIOMMU.opcodes"; // UAPI: "-EIO ... if the command is not supported"
    return std::nullopt;
  }
}

} // namespace

UserInvalidation convert_user_cmds(const VSmmu& v, std::span<const Cmd2> guest) {
  UserInvalidation r;
  r.clause = "SMMUV3.VIOMMU.entry_num";
  for (const Cmd2& c : guest) {
    auto host = convert(v, c, r.clause);
    if (!host) {
      r.error = Errno::eio;
      break;
    }
    r.host.push_back(*host);
    ++r.handled;
  }
  // The handled entries are complete when the call returns: the host issues them with a
  // CMD_SYNC (VSMMU :381-394, SMMUV3.VIOMMU.sync). On a refusal at entry K, entries 0..K-1
  // "successfully handled" (UAPI iommu_hwpt_invalidate.entry_num) took effect too.
  if (!r.host.empty()) r.host.push_back(encode(Command{CmdSync{}}));
  return r;
}

std::optional<Evt4> to_vevent(const VSmmu& v, const Evt4& host) {
  // The event IDs forwarded (UAPI iommu_vevent_arm_smmuv3: "0x04 C_BAD_STE, 0x06
  // F_STREAM_DISABLED, 0x08 C_BAD_SUBSTREAMID, 0x0a C_BAD_CD, 0x10 F_TRANSLATION, 0x11
  // F_ADDR_SIZE, 0x12 F_ACCESS, 0x13 F_PERMISSION"); a stall goes to the IOPF path and a
  // stage-2 fault (EVTQ_1_S2, bit 39) stays with the host (arm_smmu_handle_event).
  switch (uint8_t(host[0] & 0xff)) {
  case 0x04:
  case 0x06:
  case 0x08:
  case 0x0a:
  case 0x10:
  case 0x11:
  case 0x12:
  case 0x13:
    break;
  default:
    return std::nullopt;
  }
  if (host[1] & (uint64_t(1) << 31 | uint64_t(1) << 39)) return std::nullopt;
  // The stream's vDEVICE on this vIOMMU; only SID[63:32] changes (arm_vmaster_report_event).
  const uint32_t sid = uint32_t(host[0] >> 32);
  for (const auto& [vsid, psid] : v.vdevices) {
    if (psid != sid) continue;
    Evt4 e = host;
    e[0] = (e[0] & 0xffff'ffffull) | (vsid & 0xffff'ffffull) << 32;
    return e;
  }
  return std::nullopt;
}

} // namespace iommuspec::smmuv3
