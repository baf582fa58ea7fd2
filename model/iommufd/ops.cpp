#include "iommufd/ops.h"

#include "iommufd/uapi_structs.h"

#include <array>
#include <cstring>

namespace iommuspec::iommufd {
namespace {

using namespace iommuspec::uapi;

template <typename T>
constexpr Width width_of() {
  static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
  return Width(sizeof(T));
}

#define FLD(S, member, role, ...)                                                                  \
  Field {                                                                                          \
#member, width_of < decltype(S::member)>(), uint16_t(offsetof(S, member)), Role::role,         \
        __VA_ARGS__                                                                                \
  }
// Reserved fields are spelled as in the kernel ("__reserved").
#define RSV(S, member, kname)                                                                      \
  Field {                                                                                          \
    kname, width_of<decltype(S::member)>(), uint16_t(offsetof(S, member)), Role::reserved          \
  }
// Union members of iommu_test_cmd are addressed by their offset in the whole struct.
#define TFLD(sub, member, role, ...)                                                               \
  Field {                                                                                          \
#member, width_of < decltype(iommu_test_cmd::sub.member)>(),                                   \
        uint16_t(offsetof(iommu_test_cmd, sub) + offsetof(decltype(iommu_test_cmd::sub), member)), \
        Role::role, __VA_ARGS__                                                                    \
  }

// ---- name sets (include/uapi/linux/iommufd.h enums; iommufd_test.h) ----
constexpr Name kMapFlagNames[] = {{"fixed_iova", 1}, {"writeable", 2}, {"readable", 4}};
constexpr NameSet kMapFlags{true, kMapFlagNames};
constexpr Name kOptionIdNames[] = {{"rlimit_mode", 0}, {"huge_pages", 1}};
constexpr NameSet kOptionIds{false, kOptionIdNames};
constexpr Name kOptionOpNames[] = {{"set", 0}, {"get", 1}};
constexpr NameSet kOptionOps{false, kOptionOpNames};
constexpr Name kVfioIoasOpNames[] = {{"get", 0}, {"set", 1}, {"clear", 2}};
constexpr NameSet kVfioIoasOps{false, kVfioIoasOpNames};
constexpr Name kHwptAllocFlagNames[] = {
    {"nest_parent", 1}, {"dirty_tracking", 2}, {"fault_id_valid", 4}, {"pasid", 8}};
constexpr NameSet kHwptAllocFlags{true, kHwptAllocFlagNames};
constexpr Name kHwptDataTypeNames[] = {
    {"none", 0}, {"vtd_s1", 1}, {"arm_smmuv3", 2}, {"selftest", 0xdead}};
constexpr NameSet kHwptDataTypes{false, kHwptDataTypeNames};
constexpr Name kInvalDataTypeNames[] = {
    {"vtd_s1", 0}, {"arm_smmuv3", 1}, {"selftest", 0xdeadbeef}, {"selftest_invalid", 0xdadbeef}};
constexpr NameSet kInvalDataTypes{false, kInvalDataTypeNames};
constexpr Name kHwInfoTypeNames[] = {
    {"none", 0}, {"intel_vtd", 1}, {"arm_smmuv3", 2}, {"selftest", 0xfeedbeef}};
constexpr NameSet kHwInfoTypes{false, kHwInfoTypeNames};
constexpr Name kDirtyTrackingFlagNames[] = {{"enable", 1}};
constexpr NameSet kDirtyTrackingFlags{true, kDirtyTrackingFlagNames};
constexpr Name kDirtyBitmapFlagNames[] = {{"no_clear", 1}};
constexpr NameSet kDirtyBitmapFlags{true, kDirtyBitmapFlagNames};
constexpr Name kMockDevFlagNames[] = {{"no_dirty", 1}, {"huge_iova", 2}, {"pasid", 4}};
constexpr NameSet kMockDevFlags{true, kMockDevFlagNames};
constexpr Name kCreateAccessFlagNames[] = {{"needs_pin_pages", 1}};
constexpr NameSet kCreateAccessFlags{true, kCreateAccessFlagNames};
constexpr Name kAccessPagesFlagNames[] = {{"write", 1}, {"syz", 0x10000}};
constexpr NameSet kAccessPagesFlags{true, kAccessPagesFlagNames};
constexpr Name kAccessRwFlagNames[] = {{"write", 1}, {"slow_path", 4}};
constexpr NameSet kAccessRwFlags{true, kAccessRwFlagNames};
constexpr Name kTestInvalFlagNames[] = {{"all", 1}};
constexpr NameSet kTestInvalFlags{true, kTestInvalFlagNames};
constexpr Name kVtdS1FlagNames[] = {{"sre", 1}, {"eafe", 2}, {"wpe", 4}};
constexpr NameSet kVtdS1Flags{true, kVtdS1FlagNames};
constexpr Name kVtdInvFlagNames[] = {{"leaf", 1}};
constexpr NameSet kVtdInvFlags{true, kVtdInvFlagNames};
constexpr Name kPgfaultFlagNames[] = {{"pasid_valid", 1}, {"last_page", 2}};
constexpr NameSet kPgfaultFlags{true, kPgfaultFlagNames};
constexpr Name kPgfaultPermNames[] = {{"read", 1}, {"write", 2}, {"exec", 4}, {"priv", 8}};
constexpr NameSet kPgfaultPerms{true, kPgfaultPermNames};
constexpr Name kPageRespCodeNames[] = {{"success", 0}, {"invalid", 1}};
constexpr NameSet kPageRespCodes{false, kPageRespCodeNames};

// ---- records ----
constexpr Field kIovaRangeFields[] = {FLD(iommu_iova_range, start, in),
                                      FLD(iommu_iova_range, last, in)};
constexpr Field kHwptSelftestFields[] = {FLD(iommu_hwpt_selftest, iotlb, in)};
constexpr Field kHwptVtdS1Fields[] = {
    FLD(iommu_hwpt_vtd_s1, flags, in, &kVtdS1Flags), FLD(iommu_hwpt_vtd_s1, pgtbl_addr, in),
    FLD(iommu_hwpt_vtd_s1, addr_width, in), RSV(iommu_hwpt_vtd_s1, reserved, "__reserved")};
constexpr Field kInvalSelftestFields[] = {
    FLD(iommu_hwpt_invalidate_selftest, flags, in, &kTestInvalFlags),
    FLD(iommu_hwpt_invalidate_selftest, iotlb_id, in)};
constexpr Field kInvalVtdS1Fields[] = {FLD(iommu_hwpt_vtd_s1_invalidate, addr, in),
                                       FLD(iommu_hwpt_vtd_s1_invalidate, npages, in),
                                       FLD(iommu_hwpt_vtd_s1_invalidate, flags, in, &kVtdInvFlags),
                                       RSV(iommu_hwpt_vtd_s1_invalidate, reserved, "__reserved")};
constexpr Field kPgfaultFields[] = {FLD(iommu_hwpt_pgfault, flags, out, &kPgfaultFlags),
                                    FLD(iommu_hwpt_pgfault, dev_id, out),
                                    FLD(iommu_hwpt_pgfault, pasid, out),
                                    FLD(iommu_hwpt_pgfault, grpid, out),
                                    FLD(iommu_hwpt_pgfault, perm, out, &kPgfaultPerms),
                                    FLD(iommu_hwpt_pgfault, addr, out),
                                    FLD(iommu_hwpt_pgfault, length, out),
                                    FLD(iommu_hwpt_pgfault, cookie, out)};
constexpr Field kPageRespFields[] = {FLD(iommu_hwpt_page_response, cookie, in),
                                     FLD(iommu_hwpt_page_response, code, in, &kPageRespCodes)};
constexpr Field kTestHwInfoFields[] = {FLD(iommu_test_hw_info, flags, out),
                                       FLD(iommu_test_hw_info, test_reg, out)};

constexpr Field kViommuInvalSelftestFields[] = {
    FLD(iommu_viommu_invalidate_selftest, flags, in, &kTestInvalFlags),
    FLD(iommu_viommu_invalidate_selftest, vdev_id, in),
    FLD(iommu_viommu_invalidate_selftest, cache_id, in)};

constexpr RecordDesc kRecords[] = {
    {"iova_range", 0, sizeof(iommu_iova_range), kIovaRangeFields},
    {"hwpt_selftest", 0xdead, sizeof(iommu_hwpt_selftest), kHwptSelftestFields},
    {"hwpt_vtd_s1", 1, sizeof(iommu_hwpt_vtd_s1), kHwptVtdS1Fields},
    {"hwpt_invalidate_selftest", 0xdeadbeef, sizeof(iommu_hwpt_invalidate_selftest),
     kInvalSelftestFields},
    {"hwpt_vtd_s1_invalidate", 0, sizeof(iommu_hwpt_vtd_s1_invalidate), kInvalVtdS1Fields},
    {"hwpt_pgfault", 0, sizeof(iommu_hwpt_pgfault), kPgfaultFields},
    {"hwpt_page_response", 0, sizeof(iommu_hwpt_page_response), kPageRespFields},
    {"test_hw_info", 0xfeedbeef, sizeof(iommu_test_hw_info), kTestHwInfoFields},
    {"viommu_invalidate_selftest", 0xdeadbeef, sizeof(iommu_viommu_invalidate_selftest),
     kViommuInvalSelftestFields},
};
enum RecordIdx {
  kRecIovaRange,
  kRecHwptSelftest,
  kRecHwptVtdS1,
  kRecInvalSelftest,
  kRecInvalVtdS1,
  kRecPgfault,
  kRecPageResp,
  kRecTestHwInfo,
  kRecViommuInvalSelftest
};

// ---- ioctl structs ----
constexpr Field kDestroy[] = {FLD(iommu_destroy, size, size), FLD(iommu_destroy, id, obj)};
constexpr Field kIoasAlloc[] = {FLD(iommu_ioas_alloc, size, size), FLD(iommu_ioas_alloc, flags, in),
                                FLD(iommu_ioas_alloc, out_ioas_id, out_obj)};
constexpr Field kIoasAllowIovas[] = {
    FLD(iommu_ioas_allow_iovas, size, size), FLD(iommu_ioas_allow_iovas, ioas_id, obj),
    FLD(iommu_ioas_allow_iovas, num_iovas, in), RSV(iommu_ioas_allow_iovas, reserved, "__reserved"),
    FLD(iommu_ioas_allow_iovas, allowed_iovas, uptr)};
constexpr Field kIoasCopy[] = {
    FLD(iommu_ioas_copy, size, size),       FLD(iommu_ioas_copy, flags, in, &kMapFlags),
    FLD(iommu_ioas_copy, dst_ioas_id, obj), FLD(iommu_ioas_copy, src_ioas_id, obj),
    FLD(iommu_ioas_copy, length, in),       FLD(iommu_ioas_copy, dst_iova, inout),
    FLD(iommu_ioas_copy, src_iova, in)};
constexpr Field kIoasIovaRanges[] = {FLD(iommu_ioas_iova_ranges, size, size),
                                     FLD(iommu_ioas_iova_ranges, ioas_id, obj),
                                     FLD(iommu_ioas_iova_ranges, num_iovas, inout),
                                     RSV(iommu_ioas_iova_ranges, reserved, "__reserved"),
                                     FLD(iommu_ioas_iova_ranges, allowed_iovas, uptr),
                                     FLD(iommu_ioas_iova_ranges, out_iova_alignment, out)};
constexpr Field kIoasMap[] = {
    FLD(iommu_ioas_map, size, size),   FLD(iommu_ioas_map, flags, in, &kMapFlags),
    FLD(iommu_ioas_map, ioas_id, obj), RSV(iommu_ioas_map, reserved, "__reserved"),
    FLD(iommu_ioas_map, user_va, uva), FLD(iommu_ioas_map, length, in),
    FLD(iommu_ioas_map, iova, inout)};
constexpr Field kIoasUnmap[] = {
    FLD(iommu_ioas_unmap, size, size), FLD(iommu_ioas_unmap, ioas_id, obj),
    FLD(iommu_ioas_unmap, iova, in), FLD(iommu_ioas_unmap, length, inout)};
constexpr Field kOption[] = {
    FLD(iommu_option, size, size),          FLD(iommu_option, option_id, in, &kOptionIds),
    FLD(iommu_option, op, in, &kOptionOps), RSV(iommu_option, reserved, "__reserved"),
    FLD(iommu_option, object_id, obj),      FLD(iommu_option, val64, inout)};
constexpr Field kVfioIoas[] = {
    FLD(iommu_vfio_ioas, size, size), FLD(iommu_vfio_ioas, ioas_id, inout_obj),
    FLD(iommu_vfio_ioas, op, in, &kVfioIoasOps), RSV(iommu_vfio_ioas, reserved, "__reserved")};
constexpr Field kHwptAlloc[] = {FLD(iommu_hwpt_alloc, size, size),
                                FLD(iommu_hwpt_alloc, flags, in, &kHwptAllocFlags),
                                FLD(iommu_hwpt_alloc, dev_id, obj),
                                FLD(iommu_hwpt_alloc, pt_id, obj),
                                FLD(iommu_hwpt_alloc, out_hwpt_id, out_obj),
                                RSV(iommu_hwpt_alloc, reserved, "__reserved"),
                                FLD(iommu_hwpt_alloc, data_type, in, &kHwptDataTypes),
                                FLD(iommu_hwpt_alloc, data_len, in),
                                FLD(iommu_hwpt_alloc, data_uptr, uptr),
                                FLD(iommu_hwpt_alloc, fault_id, obj),
                                RSV(iommu_hwpt_alloc, reserved2, "__reserved2")};
constexpr Field kGetHwInfo[] = {
    FLD(iommu_hw_info, size, size), FLD(iommu_hw_info, flags, in), FLD(iommu_hw_info, dev_id, obj),
    FLD(iommu_hw_info, data_len, inout), FLD(iommu_hw_info, data_uptr, uptr),
    FLD(iommu_hw_info, out_data_type, out, &kHwInfoTypes),
    // union { in_data_type; out_data_type } (newer uAPI)
    Field{"in_data_type", Width::u32, 24, Role::in, &kHwInfoTypes},
    FLD(iommu_hw_info, out_max_pasid_log2, out),
    // __reserved[3]: each byte must be 0; one field per byte
    Field{"__reserved", Width::u8, 29, Role::reserved},
    Field{"__reserved1", Width::u8, 30, Role::reserved},
    Field{"__reserved2", Width::u8, 31, Role::reserved}, FLD(iommu_hw_info, out_capabilities, out)};
constexpr Field kSetDirtyTracking[] = {
    FLD(iommu_hwpt_set_dirty_tracking, size, size),
    FLD(iommu_hwpt_set_dirty_tracking, flags, in, &kDirtyTrackingFlags),
    FLD(iommu_hwpt_set_dirty_tracking, hwpt_id, obj),
    RSV(iommu_hwpt_set_dirty_tracking, reserved, "__reserved")};
constexpr Field kGetDirtyBitmap[] = {
    FLD(iommu_hwpt_get_dirty_bitmap, size, size),
    FLD(iommu_hwpt_get_dirty_bitmap, hwpt_id, obj),
    FLD(iommu_hwpt_get_dirty_bitmap, flags, in, &kDirtyBitmapFlags),
    RSV(iommu_hwpt_get_dirty_bitmap, reserved, "__reserved"),
    FLD(iommu_hwpt_get_dirty_bitmap, iova, in),
    FLD(iommu_hwpt_get_dirty_bitmap, length, in),
    FLD(iommu_hwpt_get_dirty_bitmap, page_size, in),
    FLD(iommu_hwpt_get_dirty_bitmap, data, uptr)};
constexpr Field kHwptInvalidate[] = {FLD(iommu_hwpt_invalidate, size, size),
                                     FLD(iommu_hwpt_invalidate, hwpt_id, obj),
                                     FLD(iommu_hwpt_invalidate, data_uptr, uptr),
                                     FLD(iommu_hwpt_invalidate, data_type, in, &kInvalDataTypes),
                                     FLD(iommu_hwpt_invalidate, entry_len, in),
                                     FLD(iommu_hwpt_invalidate, entry_num, inout),
                                     RSV(iommu_hwpt_invalidate, reserved, "__reserved")};
constexpr Field kFaultAlloc[] = {
    FLD(iommu_fault_alloc, size, size), FLD(iommu_fault_alloc, flags, in),
    FLD(iommu_fault_alloc, out_fault_id, out_obj), FLD(iommu_fault_alloc, out_fault_fd, out_fd)};

// ---- IOMMU_TEST_CMD ops: size, op, id, __reserved, then the op's union member ----
#define TEST_HEAD(id_role)                                                                         \
  FLD(iommu_test_cmd, size, size), FLD(iommu_test_cmd, id, id_role),                               \
      RSV(iommu_test_cmd, reserved, "__reserved")
constexpr Field kAddReserved[] = {TEST_HEAD(obj), TFLD(add_reserved, start, in),
                                  TFLD(add_reserved, length, in)};
constexpr Field kMockDomain[] = {TEST_HEAD(obj), TFLD(mock_domain, out_stdev_id, out_obj),
                                 TFLD(mock_domain, out_hwpt_id, out_obj),
                                 TFLD(mock_domain, out_idev_id, out_obj)};
constexpr Field kMockDomainFlags[] = {
    TEST_HEAD(obj), TFLD(mock_domain_flags, out_stdev_id, out_obj),
    TFLD(mock_domain_flags, out_hwpt_id, out_obj), TFLD(mock_domain_flags, out_idev_id, out_obj),
    TFLD(mock_domain_flags, dev_flags, in, &kMockDevFlags)};
constexpr Field kMockDomainReplace[] = {TEST_HEAD(obj),
                                        TFLD(mock_domain_replace, pt_id, inout_obj)};
constexpr Field kMdCheckMap[] = {TEST_HEAD(obj), TFLD(check_map, iova, in),
                                 TFLD(check_map, length, in), TFLD(check_map, uptr, uva)};
constexpr Field kMdCheckRefs[] = {TEST_HEAD(obj), TFLD(check_refs, length, in),
                                  TFLD(check_refs, uptr, uva), TFLD(check_refs, refs, in)};
constexpr Field kCreateAccess[] = {TEST_HEAD(obj), TFLD(create_access, out_access_fd, out_fd),
                                   TFLD(create_access, flags, in, &kCreateAccessFlags)};
constexpr Field kDestroyAccessPages[] = {TEST_HEAD(fd),
                                         TFLD(destroy_access_pages, access_pages_id, obj)};
constexpr Field kAccessPages[] = {TEST_HEAD(fd),
                                  TFLD(access_pages, flags, in, &kAccessPagesFlags),
                                  TFLD(access_pages, out_access_pages_id, out),
                                  TFLD(access_pages, iova, in),
                                  TFLD(access_pages, length, in),
                                  TFLD(access_pages, uptr, uva)};
constexpr Field kAccessRw[] = {TEST_HEAD(fd), TFLD(access_rw, iova, in),
                               TFLD(access_rw, length, in), TFLD(access_rw, uptr, uva),
                               TFLD(access_rw, flags, in, &kAccessRwFlags)};
constexpr Field kMemoryLimit[] = {TEST_HEAD(in), TFLD(memory_limit, limit, in)};
constexpr Field kAccessReplaceIoas[] = {TEST_HEAD(fd), TFLD(access_replace_ioas, ioas_id, obj)};
constexpr Field kDirty[] = {TEST_HEAD(obj),
                            TFLD(dirty, flags, in),
                            TFLD(dirty, iova, in),
                            TFLD(dirty, length, in),
                            TFLD(dirty, page_size, in),
                            TFLD(dirty, uptr, uptr),
                            TFLD(dirty, out_nr_dirty, out)};
// check_iotlb.id is spelled iotlb_id (as the selftests' test_cmd_hwpt_check_iotlb() does):
// the command's own `id` names the HWPT.
constexpr Field kCheckIotlb[] = {TEST_HEAD(obj), Field{"iotlb_id", Width::u32, 16, Role::in},
                                 TFLD(check_iotlb, iotlb, in)};
constexpr Field kTriggerIopf[] = {TEST_HEAD(in),
                                  TFLD(trigger_iopf, dev_id, obj),
                                  TFLD(trigger_iopf, pasid, in),
                                  TFLD(trigger_iopf, grpid, in),
                                  TFLD(trigger_iopf, perm, in, &kPgfaultPerms),
                                  TFLD(trigger_iopf, addr, in)};

// ---- newer uAPI ioctls ----
constexpr Name kViommuTypeNames[] = {
    {"default", 0}, {"arm_smmuv3", 1}, {"tegra241_cmdqv", 2}, {"selftest", 0xdeadbeef}};
constexpr NameSet kViommuTypes{false, kViommuTypeNames};
constexpr Name kVeventqTypeNames[] = {
    {"default", 0}, {"arm_smmuv3", 1}, {"tegra241_cmdqv", 2}, {"selftest", 0xbeefbeef}};
constexpr NameSet kVeventqTypes{false, kVeventqTypeNames};
constexpr Name kHwQueueTypeNames[] = {
    {"default", 0}, {"tegra241_cmdqv", 1}, {"selftest", 0xdeadbeef}};
constexpr NameSet kHwQueueTypes{false, kHwQueueTypeNames};
constexpr Field kViommuAlloc[] = {FLD(iommu_viommu_alloc, size, size),
                                  FLD(iommu_viommu_alloc, flags, in),
                                  FLD(iommu_viommu_alloc, type, in, &kViommuTypes),
                                  FLD(iommu_viommu_alloc, dev_id, obj),
                                  FLD(iommu_viommu_alloc, hwpt_id, obj),
                                  FLD(iommu_viommu_alloc, out_viommu_id, out_obj),
                                  FLD(iommu_viommu_alloc, data_len, in),
                                  RSV(iommu_viommu_alloc, reserved, "__reserved"),
                                  FLD(iommu_viommu_alloc, data_uptr, uptr)};
constexpr Field kVdeviceAlloc[] = {
    FLD(iommu_vdevice_alloc, size, size), FLD(iommu_vdevice_alloc, viommu_id, obj),
    FLD(iommu_vdevice_alloc, dev_id, obj), FLD(iommu_vdevice_alloc, out_vdevice_id, out_obj),
    FLD(iommu_vdevice_alloc, virt_id, in)};
constexpr Field kIoasMapFile[] = {
    FLD(iommu_ioas_map_file, size, size),   FLD(iommu_ioas_map_file, flags, in, &kMapFlags),
    FLD(iommu_ioas_map_file, ioas_id, obj), FLD(iommu_ioas_map_file, fd, fd),
    FLD(iommu_ioas_map_file, start, in),    FLD(iommu_ioas_map_file, length, in),
    FLD(iommu_ioas_map_file, iova, inout)};
constexpr Field kChangeProcess[] = {FLD(iommu_ioas_change_process, size, size),
                                    RSV(iommu_ioas_change_process, reserved, "__reserved")};
constexpr Field kVeventqAlloc[] = {FLD(iommu_veventq_alloc, size, size),
                                   FLD(iommu_veventq_alloc, flags, in),
                                   FLD(iommu_veventq_alloc, viommu_id, obj),
                                   FLD(iommu_veventq_alloc, type, in, &kVeventqTypes),
                                   FLD(iommu_veventq_alloc, veventq_depth, in),
                                   FLD(iommu_veventq_alloc, out_veventq_id, out_obj),
                                   FLD(iommu_veventq_alloc, out_veventq_fd, out_fd),
                                   RSV(iommu_veventq_alloc, reserved, "__reserved")};
constexpr Field kHwQueueAlloc[] = {FLD(iommu_hw_queue_alloc, size, size),
                                   FLD(iommu_hw_queue_alloc, flags, in),
                                   FLD(iommu_hw_queue_alloc, viommu_id, obj),
                                   FLD(iommu_hw_queue_alloc, type, in, &kHwQueueTypes),
                                   FLD(iommu_hw_queue_alloc, index, in),
                                   FLD(iommu_hw_queue_alloc, out_hw_queue_id, out_obj),
                                   FLD(iommu_hw_queue_alloc, nesting_parent_iova, in),
                                   FLD(iommu_hw_queue_alloc, length, in)};
#define NFLD(S, member, role, ...)                                                                 \
  Field {                                                                                          \
#member, width_of < decltype(S::member)>(), uint16_t(16 + offsetof(S, member)), Role::role,    \
        __VA_ARGS__                                                                                \
  }
// check_dev_cache.id is spelled cache_id: the command's own `id` names the device.
constexpr Field kDevCheckCache[] = {TEST_HEAD(obj), Field{"cache_id", Width::u32, 16, Role::in},
                                    NFLD(test_check_dev_cache, cache, in)};
constexpr Field kTriggerVevent[] = {TEST_HEAD(in), NFLD(test_trigger_vevent, dev_id, obj)};
constexpr Field kPasidAttach[] = {TEST_HEAD(obj), NFLD(test_pasid, pasid, in),
                                  NFLD(test_pasid, pt_id, inout_obj)};
constexpr Field kPasidDetach[] = {TEST_HEAD(obj), NFLD(test_pasid, pasid, in)};
constexpr Field kPasidCheck[] = {TEST_HEAD(obj), NFLD(test_pasid, pasid, in),
                                 Field{"hwpt_id", Width::u32, 20, Role::obj}};

// ---- file-descriptor operations: pseudo-structs of the project's own ----
// fault_read: read(fault_fd) of up to `count` iommu_hwpt_pgfault records.
struct fd_read_args {
  u32 fd;
  u32 count;
  u32 out_count;
  u32 pad;
};
struct fd_write_args {
  u32 fd;
  u32 count;
  u32 out_count;
  u32 pad;
};
struct fd_close_args {
  u32 fd;
};
constexpr Field kFdRead[] = {FLD(fd_read_args, fd, fd), FLD(fd_read_args, count, in),
                             FLD(fd_read_args, out_count, out)};
constexpr Field kFdWrite[] = {FLD(fd_write_args, fd, fd), FLD(fd_write_args, count, in),
                              FLD(fd_write_args, out_count, out)};
constexpr Field kFdClose[] = {FLD(fd_close_args, fd, fd)};

constexpr ProfileMask k612 = kAllProfiles;
constexpr ProfileMask kLatest = mask_of(Profile::linux_latest);
constexpr uint32_t kTestNr = IOMMUFD_CMD_BASE + 32;
constexpr std::string_view kHdr = "include/uapi/linux/iommufd.h";
constexpr std::string_view kTestHdr = "drivers/iommu/iommufd/iommufd_test.h";

template <typename S>
constexpr uint16_t sz() {
  return uint16_t(sizeof(S));
}
#define OFFEND(S, m) uint16_t(offsetof(S, m) + sizeof(S::m))

// clang-format off
constexpr OpDesc kOps[] = {
  {OpId::destroy, "destroy", OpKind::ioctl, 0x80, 0, sz<iommu_destroy>(), OFFEND(iommu_destroy, id), kDestroy, Payload::none, k612, kHdr},
  {OpId::ioas_alloc, "ioas_alloc", OpKind::ioctl, 0x81, 0, sz<iommu_ioas_alloc>(), OFFEND(iommu_ioas_alloc, out_ioas_id), kIoasAlloc, Payload::none, k612, kHdr},
  {OpId::ioas_allow_iovas, "ioas_allow_iovas", OpKind::ioctl, 0x82, 0, sz<iommu_ioas_allow_iovas>(), OFFEND(iommu_ioas_allow_iovas, allowed_iovas), kIoasAllowIovas, Payload::ranges_in, k612, kHdr},
  {OpId::ioas_copy, "ioas_copy", OpKind::ioctl, 0x83, 0, sz<iommu_ioas_copy>(), OFFEND(iommu_ioas_copy, src_iova), kIoasCopy, Payload::none, k612, kHdr},
  {OpId::ioas_iova_ranges, "ioas_iova_ranges", OpKind::ioctl, 0x84, 0, sz<iommu_ioas_iova_ranges>(), OFFEND(iommu_ioas_iova_ranges, out_iova_alignment), kIoasIovaRanges, Payload::ranges_out, k612, kHdr},
  {OpId::ioas_map, "ioas_map", OpKind::ioctl, 0x85, 0, sz<iommu_ioas_map>(), OFFEND(iommu_ioas_map, iova), kIoasMap, Payload::none, k612, kHdr},
  {OpId::ioas_unmap, "ioas_unmap", OpKind::ioctl, 0x86, 0, sz<iommu_ioas_unmap>(), OFFEND(iommu_ioas_unmap, length), kIoasUnmap, Payload::none, k612, kHdr},
  {OpId::option, "option", OpKind::ioctl, 0x87, 0, sz<iommu_option>(), OFFEND(iommu_option, val64), kOption, Payload::none, k612, kHdr},
  {OpId::vfio_ioas, "vfio_ioas", OpKind::ioctl, 0x88, 0, sz<iommu_vfio_ioas>(), OFFEND(iommu_vfio_ioas, reserved), kVfioIoas, Payload::none, k612, kHdr},
  {OpId::hwpt_alloc, "hwpt_alloc", OpKind::ioctl, 0x89, 0, sz<iommu_hwpt_alloc>(), OFFEND(iommu_hwpt_alloc, reserved), kHwptAlloc, Payload::hwpt_data, k612, kHdr},
  {OpId::get_hw_info, "get_hw_info", OpKind::ioctl, 0x8a, 0, sz<iommu_hw_info>(), OFFEND(iommu_hw_info, reserved), kGetHwInfo, Payload::hw_info_out, k612, kHdr},
  {OpId::hwpt_set_dirty_tracking, "hwpt_set_dirty_tracking", OpKind::ioctl, 0x8b, 0, sz<iommu_hwpt_set_dirty_tracking>(), OFFEND(iommu_hwpt_set_dirty_tracking, reserved), kSetDirtyTracking, Payload::none, k612, kHdr},
  {OpId::hwpt_get_dirty_bitmap, "hwpt_get_dirty_bitmap", OpKind::ioctl, 0x8c, 0, sz<iommu_hwpt_get_dirty_bitmap>(), OFFEND(iommu_hwpt_get_dirty_bitmap, data), kGetDirtyBitmap, Payload::bitmap_out, k612, kHdr},
  {OpId::hwpt_invalidate, "hwpt_invalidate", OpKind::ioctl, 0x8d, 0, sz<iommu_hwpt_invalidate>(), OFFEND(iommu_hwpt_invalidate, reserved), kHwptInvalidate, Payload::inval_entries, k612, kHdr},
  {OpId::fault_queue_alloc, "fault_queue_alloc", OpKind::ioctl, 0x8e, 0, sz<iommu_fault_alloc>(), OFFEND(iommu_fault_alloc, out_fault_fd), kFaultAlloc, Payload::none, k612, kHdr},
  {OpId::add_reserved, "add_reserved", OpKind::test_op, kTestNr, 1, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kAddReserved, Payload::none, k612, kTestHdr},
  {OpId::mock_domain, "mock_domain", OpKind::test_op, kTestNr, 2, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMockDomain, Payload::none, k612, kTestHdr},
  {OpId::md_check_map, "md_check_map", OpKind::test_op, kTestNr, 3, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMdCheckMap, Payload::none, k612, kTestHdr},
  {OpId::md_check_refs, "md_check_refs", OpKind::test_op, kTestNr, 4, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMdCheckRefs, Payload::none, k612, kTestHdr},
  {OpId::create_access, "create_access", OpKind::test_op, kTestNr, 5, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kCreateAccess, Payload::none, k612, kTestHdr},
  {OpId::destroy_access_pages, "destroy_access_pages", OpKind::test_op, kTestNr, 6, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kDestroyAccessPages, Payload::none, k612, kTestHdr},
  {OpId::access_pages, "access_pages", OpKind::test_op, kTestNr, 7, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kAccessPages, Payload::none, k612, kTestHdr},
  {OpId::access_rw, "access_rw", OpKind::test_op, kTestNr, 8, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kAccessRw, Payload::none, k612, kTestHdr},
  {OpId::set_temp_memory_limit, "set_temp_memory_limit", OpKind::test_op, kTestNr, 9, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMemoryLimit, Payload::none, k612, kTestHdr},
  {OpId::mock_domain_replace, "mock_domain_replace", OpKind::test_op, kTestNr, 10, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMockDomainReplace, Payload::none, k612, kTestHdr},
  {OpId::access_replace_ioas, "access_replace_ioas", OpKind::test_op, kTestNr, 11, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kAccessReplaceIoas, Payload::none, k612, kTestHdr},
  {OpId::mock_domain_flags, "mock_domain_flags", OpKind::test_op, kTestNr, 12, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kMockDomainFlags, Payload::none, k612, kTestHdr},
  {OpId::dirty, "dirty", OpKind::test_op, kTestNr, 13, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kDirty, Payload::bitmap_inout, k612, kTestHdr},
  {OpId::md_check_iotlb, "md_check_iotlb", OpKind::test_op, kTestNr, 14, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kCheckIotlb, Payload::none, k612, kTestHdr},
  {OpId::trigger_iopf, "trigger_iopf", OpKind::test_op, kTestNr, 15, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kTriggerIopf, Payload::none, k612, kTestHdr},
  {OpId::viommu_alloc, "viommu_alloc", OpKind::ioctl, 0x90, 0, sz<iommu_viommu_alloc>(), OFFEND(iommu_viommu_alloc, out_viommu_id), kViommuAlloc, Payload::bytes_in, kLatest, kHdr},
  {OpId::vdevice_alloc, "vdevice_alloc", OpKind::ioctl, 0x91, 0, sz<iommu_vdevice_alloc>(), OFFEND(iommu_vdevice_alloc, virt_id), kVdeviceAlloc, Payload::none, kLatest, kHdr},
  {OpId::ioas_map_file, "ioas_map_file", OpKind::ioctl, 0x8f, 0, sz<iommu_ioas_map_file>(), OFFEND(iommu_ioas_map_file, iova), kIoasMapFile, Payload::none, kLatest, kHdr},
  {OpId::ioas_change_process, "ioas_change_process", OpKind::ioctl, 0x92, 0, sz<iommu_ioas_change_process>(), OFFEND(iommu_ioas_change_process, reserved), kChangeProcess, Payload::none, kLatest, kHdr},
  {OpId::veventq_alloc, "veventq_alloc", OpKind::ioctl, 0x93, 0, sz<iommu_veventq_alloc>(), OFFEND(iommu_veventq_alloc, out_veventq_fd), kVeventqAlloc, Payload::none, kLatest, kHdr},
  {OpId::hw_queue_alloc, "hw_queue_alloc", OpKind::ioctl, 0x94, 0, sz<iommu_hw_queue_alloc>(), OFFEND(iommu_hw_queue_alloc, length), kHwQueueAlloc, Payload::none, kLatest, kHdr},
  {OpId::dev_check_cache, "dev_check_cache", OpKind::test_op, kTestNr, 16, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kDevCheckCache, Payload::none, kLatest, kTestHdr},
  {OpId::trigger_vevent, "trigger_vevent", OpKind::test_op, kTestNr, 17, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kTriggerVevent, Payload::none, kLatest, kTestHdr},
  {OpId::pasid_attach, "pasid_attach", OpKind::test_op, kTestNr, 18, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kPasidAttach, Payload::none, kLatest, kTestHdr},
  {OpId::pasid_replace, "pasid_replace", OpKind::test_op, kTestNr, 19, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kPasidAttach, Payload::none, kLatest, kTestHdr},
  {OpId::pasid_detach, "pasid_detach", OpKind::test_op, kTestNr, 20, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kPasidDetach, Payload::none, kLatest, kTestHdr},
  {OpId::pasid_check_hwpt, "pasid_check_hwpt", OpKind::test_op, kTestNr, 21, sz<iommu_test_cmd>(), OFFEND(iommu_test_cmd, last), kPasidCheck, Payload::none, kLatest, kTestHdr},
  {OpId::veventq_read, "veventq_read", OpKind::fd_read, 0, 0, sz<fd_read_args>(), sz<fd_read_args>(), kFdRead, Payload::bytes_out, kLatest, "drivers/iommu/iommufd/eventq.c iommufd_veventq_fops_read()"},
  {OpId::fault_read, "fault_read", OpKind::fd_read, 0, 0, sz<fd_read_args>(), sz<fd_read_args>(), kFdRead, Payload::bytes_out, k612, "drivers/iommu/iommufd/fault.c iommufd_fault_fops_read()"},
  {OpId::fault_respond, "fault_respond", OpKind::fd_write, 0, 0, sz<fd_write_args>(), sz<fd_write_args>(), kFdWrite, Payload::bytes_in, k612, "drivers/iommu/iommufd/fault.c iommufd_fault_fops_write()"},
  {OpId::close, "close", OpKind::fd_close, 0, 0, sz<fd_close_args>(), sz<fd_close_args>(), kFdClose, Payload::none, k612, "close(2) of an iommufd-made file descriptor"},
};
// clang-format on

} // namespace

std::string_view profile_name(Profile p) {
  return p == Profile::linux_6_12 ? "linux-6.12" : "linux-latest";
}
std::optional<Profile> profile_from_name(std::string_view name) {
  if (name == "linux-6.12") return Profile::linux_6_12;
  if (name == "linux-latest") return Profile::linux_latest;
  return std::nullopt;
}

std::span<const OpDesc> all_ops() {
  return kOps;
}

const OpDesc& op_desc(OpId id) {
  for (const auto& d : kOps)
    if (d.id == id) return d;
  return kOps[0];
}

const OpDesc* op_by_name(std::string_view name) {
  for (const auto& d : kOps)
    if (d.name == name) return &d;
  return nullptr;
}

const Field* find_field(std::span<const Field> fields, std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}
const Field* find_field(const OpDesc& op, std::string_view name) {
  return find_field(op.fields, name);
}

const RecordDesc* hwpt_data_record(uint32_t data_type) {
  if (data_type == 0xdead) return &kRecords[kRecHwptSelftest];
  if (data_type == 1) return &kRecords[kRecHwptVtdS1];
  return nullptr;
}
const RecordDesc* inval_record(uint32_t data_type) {
  if (data_type == 0xdeadbeef || data_type == 0xdadbeef) return &kRecords[kRecInvalSelftest];
  if (data_type == 0) return &kRecords[kRecInvalVtdS1];
  return nullptr;
}
const RecordDesc* viommu_inval_record(uint32_t data_type) {
  if (data_type == 0xdeadbeef || data_type == 0xdadbeef) return &kRecords[kRecViommuInvalSelftest];
  return nullptr;
}
const RecordDesc* record_by_name(std::string_view name) {
  for (const auto& r : kRecords)
    if (r.name == name) return &r;
  return nullptr;
}
std::span<const RecordDesc> all_records() {
  return kRecords;
}
const RecordDesc& iova_range_record() {
  return kRecords[kRecIovaRange];
}
const RecordDesc& pgfault_record() {
  return kRecords[kRecPgfault];
}
const RecordDesc& page_response_record() {
  return kRecords[kRecPageResp];
}

std::optional<uint64_t> name_value(const NameSet& set, std::string_view name) {
  for (const auto& n : set.names)
    if (n.name == name) return n.value;
  return std::nullopt;
}
std::string_view value_name(const NameSet& set, uint64_t value) {
  for (const auto& n : set.names)
    if (n.value == value) return n.name;
  return {};
}

uint64_t read_field(const uint8_t* base, const Field& f) {
  uint64_t v = 0;
  std::memcpy(&v, base + f.offset, size_t(f.width)); // little-endian host, as the targets
  return v;
}
void write_field(uint8_t* base, const Field& f, uint64_t v) {
  std::memcpy(base + f.offset, &v, size_t(f.width));
}

} // namespace iommuspec::iommufd
