// The iommufd uAPI structures, laid out byte for byte as in the kernel's
// include/uapi/linux/iommufd.h (linux-source-6.12 and the newest upstream header) and
// drivers/iommu/iommufd/iommufd_test.h. The model decodes calls from these bytes exactly
// as the kernel's copy_struct_from_user() would, so size and layout rules are modelled,
// not assumed. Field names are the kernel's (a leading "__" becomes "reserved").
#pragma once

#include <cstddef>
#include <cstdint>

namespace iommuspec::uapi {

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using au64 = alignas(8) uint64_t; // __aligned_u64

constexpr u32 IOMMUFD_TYPE = ';';
constexpr u32 IOMMUFD_CMD_BASE = 0x80;
// _IO(type, nr): no direction and no size bits (include/uapi/asm-generic/ioctl.h).
constexpr u32 io_cmd(u32 nr) {
  return (IOMMUFD_TYPE << 8) | nr;
}

struct iommu_destroy {
  u32 size;
  u32 id;
};
struct iommu_ioas_alloc {
  u32 size;
  u32 flags;
  u32 out_ioas_id;
};
struct iommu_iova_range {
  au64 start;
  au64 last;
};
struct iommu_ioas_iova_ranges {
  u32 size;
  u32 ioas_id;
  u32 num_iovas;
  u32 reserved;
  au64 allowed_iovas;
  au64 out_iova_alignment;
};
struct iommu_ioas_allow_iovas {
  u32 size;
  u32 ioas_id;
  u32 num_iovas;
  u32 reserved;
  au64 allowed_iovas;
};
struct iommu_ioas_map {
  u32 size;
  u32 flags;
  u32 ioas_id;
  u32 reserved;
  au64 user_va;
  au64 length;
  au64 iova;
};
struct iommu_ioas_copy {
  u32 size;
  u32 flags;
  u32 dst_ioas_id;
  u32 src_ioas_id;
  au64 length;
  au64 dst_iova;
  au64 src_iova;
};
struct iommu_ioas_unmap {
  u32 size;
  u32 ioas_id;
  au64 iova;
  au64 length;
};
struct iommu_option {
  u32 size;
  u32 option_id;
  u16 op;
  u16 reserved;
  u32 object_id;
  au64 val64;
};
struct iommu_vfio_ioas {
  u32 size;
  u32 ioas_id;
  u16 op;
  u16 reserved;
};
struct iommu_hwpt_alloc {
  u32 size;
  u32 flags;
  u32 dev_id;
  u32 pt_id;
  u32 out_hwpt_id;
  u32 reserved;
  u32 data_type;
  u32 data_len;
  au64 data_uptr;
  u32 fault_id;
  u32 reserved2;
};
struct iommu_hw_info {
  u32 size;
  u32 flags;
  u32 dev_id;
  u32 data_len;
  au64 data_uptr;
  u32 out_data_type;
  u8 out_max_pasid_log2;
  u8 reserved[3];
  au64 out_capabilities;
};
struct iommu_hwpt_set_dirty_tracking {
  u32 size;
  u32 flags;
  u32 hwpt_id;
  u32 reserved;
};
struct iommu_hwpt_get_dirty_bitmap {
  u32 size;
  u32 hwpt_id;
  u32 flags;
  u32 reserved;
  au64 iova;
  au64 length;
  au64 page_size;
  au64 data;
};
struct iommu_hwpt_invalidate {
  u32 size;
  u32 hwpt_id;
  au64 data_uptr;
  u32 data_type;
  u32 entry_len;
  u32 entry_num;
  u32 reserved;
};
struct iommu_fault_alloc {
  u32 size;
  u32 flags;
  u32 out_fault_id;
  u32 out_fault_fd;
};
struct iommu_hwpt_pgfault {
  u32 flags;
  u32 dev_id;
  u32 pasid;
  u32 grpid;
  u32 perm;
  u32 reserved;
  au64 addr;
  u32 length;
  u32 cookie;
};
struct iommu_hwpt_page_response {
  u32 cookie;
  u32 code;
};

// Driver data records (the payload behind data_uptr).
struct iommu_hwpt_vtd_s1 {
  au64 flags;
  au64 pgtbl_addr;
  u32 addr_width;
  u32 reserved;
};
struct iommu_hwpt_vtd_s1_invalidate {
  au64 addr;
  au64 npages;
  u32 flags;
  u32 reserved;
};
struct iommu_hwpt_selftest {
  u32 iotlb;
};
struct iommu_hwpt_invalidate_selftest {
  u32 flags;
  u32 iotlb_id;
};
struct iommu_test_hw_info {
  u32 flags;
  u32 test_reg;
};

// IOMMU_TEST_CMD (iommufd_test.h): one struct, a union selected by op.
struct iommu_test_cmd {
  u32 size;
  u32 op;
  u32 id;
  u32 reserved;
  union {
    struct {
      au64 start;
      au64 length;
    } add_reserved;
    struct {
      u32 out_stdev_id;
      u32 out_hwpt_id;
      u32 out_idev_id;
    } mock_domain;
    struct {
      u32 out_stdev_id;
      u32 out_hwpt_id;
      u32 out_idev_id;
      u32 dev_flags;
    } mock_domain_flags;
    struct {
      u32 pt_id;
    } mock_domain_replace;
    struct {
      au64 iova;
      au64 length;
      au64 uptr;
    } check_map;
    struct {
      au64 length;
      au64 uptr;
      u32 refs;
    } check_refs;
    struct {
      u32 out_access_fd;
      u32 flags;
    } create_access;
    struct {
      u32 access_pages_id;
    } destroy_access_pages;
    struct {
      u32 flags;
      u32 out_access_pages_id;
      au64 iova;
      au64 length;
      au64 uptr;
    } access_pages;
    struct {
      au64 iova;
      au64 length;
      au64 uptr;
      u32 flags;
    } access_rw;
    struct {
      u32 limit;
    } memory_limit;
    struct {
      u32 ioas_id;
    } access_replace_ioas;
    struct {
      u32 flags;
      au64 iova;
      au64 length;
      au64 page_size;
      au64 uptr;
      au64 out_nr_dirty;
    } dirty;
    struct {
      u32 id;
      u32 iotlb;
    } check_iotlb;
    struct {
      u32 dev_id;
      u32 pasid;
      u32 grpid;
      u32 perm;
      u64 addr;
    } trigger_iopf;
    u8 union_bytes[48];
  };
  u32 last;
};

static_assert(sizeof(iommu_ioas_map) == 40 && offsetof(iommu_ioas_map, iova) == 32);
static_assert(sizeof(iommu_hwpt_alloc) == 48 && offsetof(iommu_hwpt_alloc, fault_id) == 40);
static_assert(sizeof(iommu_hw_info) == 40 && offsetof(iommu_hw_info, out_capabilities) == 32);
static_assert(sizeof(iommu_hwpt_invalidate) == 32);
static_assert(sizeof(iommu_hwpt_pgfault) == 40);
static_assert(offsetof(iommu_test_cmd, last) == 64 && sizeof(iommu_test_cmd) == 72);

// ---- newer uAPI (upstream, about v6.17): vIOMMU, vDEVICE, vEVENTQ, HW_QUEUE ----
struct iommu_ioas_map_file {
  u32 size;
  u32 flags;
  u32 ioas_id;
  int32_t fd;
  au64 start;
  au64 length;
  au64 iova;
};
struct iommu_viommu_alloc {
  u32 size;
  u32 flags;
  u32 type;
  u32 dev_id;
  u32 hwpt_id;
  u32 out_viommu_id;
  u32 data_len;
  u32 reserved;
  au64 data_uptr;
};
struct iommu_vdevice_alloc {
  u32 size;
  u32 viommu_id;
  u32 dev_id;
  u32 out_vdevice_id;
  au64 virt_id;
};
struct iommu_ioas_change_process {
  u32 size;
  u32 reserved;
};
struct iommu_veventq_alloc {
  u32 size;
  u32 flags;
  u32 viommu_id;
  u32 type;
  u32 veventq_depth;
  u32 out_veventq_id;
  u32 out_veventq_fd;
  u32 reserved;
};
struct iommu_hw_queue_alloc {
  u32 size;
  u32 flags;
  u32 viommu_id;
  u32 type;
  u32 index;
  u32 out_hw_queue_id;
  au64 nesting_parent_iova;
  au64 length;
};
struct iommufd_vevent_header {
  u32 flags;
  u32 sequence;
};
struct iommu_viommu_invalidate_selftest {
  u32 flags;
  u32 vdev_id;
  u32 cache_id;
};
struct iommu_viommu_event_selftest {
  u32 virt_id;
};
// Newer IOMMU_TEST_CMD union members (ops 16..21), at offset 16 of iommu_test_cmd.
struct test_check_dev_cache {
  u32 id;
  u32 cache;
};
struct test_trigger_vevent {
  u32 dev_id;
};
struct test_pasid {
  u32 pasid;
  u32 pt_id; // hwpt_id for PASID_CHECK_HWPT
};

static_assert(sizeof(iommu_viommu_alloc) == 40 && offsetof(iommu_viommu_alloc, data_uptr) == 32);
static_assert(sizeof(iommu_vdevice_alloc) == 24 && offsetof(iommu_vdevice_alloc, virt_id) == 16);
static_assert(sizeof(iommu_veventq_alloc) == 32);
static_assert(sizeof(iommu_hw_queue_alloc) == 40 && offsetof(iommu_hw_queue_alloc, length) == 32);
static_assert(sizeof(iommu_ioas_map_file) == 40);

} // namespace iommuspec::uapi
