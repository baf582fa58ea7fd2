// The iommufd object machine as userspace sees it through /dev/iommu, with the selftest
// mock driver (CONFIG_IOMMUFD_TEST) as its IOMMU. One Machine is one open iommufd file.
//
// Each call is checked in the kernel's order (drivers/iommu/iommufd/main.c
// iommufd_fops_ioctl(), then the handler); the first failing check decides the errno and
// names its clause. Where the kernel may choose (an automatically allocated IOVA), the
// model allows a set and, when asked to follow a target, takes the target's choice if it
// is in that set.
#pragma once

#include "core/range.h"
#include "iommufd/call.h"
#include "iommufd/clauses.h"
#include "iommufd/outcome.h"
#include "iommufd/uapi_structs.h"

#include <boost/graph/adjacency_list.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace iommuspec::iommufd {

using ObjId = uint32_t;

// include/uapi/.. and drivers/iommu/iommufd/iommufd_private.h enum iommufd_object_type,
// plus the objects of the newer uAPI.
enum class ObjType : uint8_t {
  device,
  hwpt_paging,
  hwpt_nested,
  ioas,
  access,
  fault,
  selftest,
  viommu,
  vdevice,
  veventq,
  hw_queue,
};
std::string_view obj_type_name(ObjType t);

// Why one object holds a users reference on another (an edge of the dependency graph).
enum class Hold : uint8_t {
  ioas_of_hwpt,     // HWPT_PAGING -> its IOAS
  parent_of_nested, // HWPT_NESTED -> its parent HWPT_PAGING (or vIOMMU)
  fault_of_hwpt,    // HWPT -> FAULT
  attached,         // DEVICE -> the HWPT it is attached to
  ioas_of_access,   // ACCESS -> its IOAS
  idev_of_selftest, // SELFTEST object (mock device) -> its DEVICE
  fd_of_object,     // an open fd -> the object behind it
  viommu_hwpt,      // VIOMMU -> its nesting parent HWPT_PAGING
  vdevice_viommu,   // VDEVICE -> VIOMMU
  vdevice_idev,     // VDEVICE -> DEVICE
  veventq_viommu,   // VEVENTQ -> VIOMMU
  hw_queue_viommu,  // HW_QUEUE -> VIOMMU
  pasid_attached,   // DEVICE (a PASID of it) -> HWPT
};

constexpr uint64_t kPageSize = 4096; // x86_64 and arm64 4K: the test kernel's PAGE_SIZE
// drivers/iommu/iommufd/selftest.c: MOCK_IO_PAGE_SIZE = PAGE_SIZE / 2.
constexpr uint64_t kMockIoPageSize = kPageSize / 2;
constexpr uint64_t kMockHugePageSize = 512 * kMockIoPageSize;
// iommufd_test.h
constexpr uint64_t kMockApertureStart = 1ull << 24;
constexpr uint64_t kMockApertureLast = (1ull << 31) - 1;
constexpr uint32_t kMockIotlbNum = 4;
constexpr uint32_t kTestIotlbDefault = 0xbadbeef;
// iommufd_test.h flags
constexpr uint32_t kMockDevNoDirty = 1 << 0;  // MOCK_FLAGS_DEVICE_NO_DIRTY
constexpr uint32_t kMockDevHugeIova = 1 << 1; // MOCK_FLAGS_DEVICE_HUGE_IOVA
constexpr uint32_t kMockDevPasid = 1 << 2;    // MOCK_FLAGS_DEVICE_PASID (latest)
constexpr uint32_t kAccessNeedsPinPages = 1;  // MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
// include/uapi/linux/iommufd.h enum iommufd_hwpt_alloc_flags
constexpr uint32_t kHwptNestParent = 1 << 0;
constexpr uint32_t kHwptDirtyTracking = 1 << 1;
constexpr uint32_t kHwptFaultIdValid = 1 << 2;
constexpr uint32_t kHwptPasid = 1 << 3;
constexpr uint32_t kHwptDataNone = 0;
constexpr uint32_t kHwptDataSelftest = 0xdead;
constexpr uint32_t kInvalDataSelftest = 0xdeadbeef;
constexpr uint32_t kViommuTypeSelftest = 0xdeadbeef;
constexpr uint32_t kVeventqTypeSelftest = 0xbeefbeef;
constexpr uint32_t kHwQueueTypeSelftest = 0xdeadbeef;

struct Area {
  uint64_t start = 0, last = 0;
  uint64_t user_va = 0; // the user address of `start`
  bool readable = false, writeable = false;
  bool pages_writable = false; // the iopt_pages behind it were pinned writable
  uint64_t pages_id = 0;       // iopt_pages identity: one per MAP, shared by COPY
};

struct Reserved {
  Range range;
  uint64_t owner = 0; // 0: IOMMU_TEST_OP_ADD_RESERVED; else the device/domain it came from
};

struct IoasState {
  std::map<uint64_t, Area> areas; // by start
  std::vector<Range> allowed;
  std::vector<Reserved> reserved;
  std::vector<ObjId> domains; // HWPT_PAGING objects filled from this IOAS
  std::vector<uint32_t> accesses;
  bool huge_pages = true;
};

struct HwptPagingState {
  ObjId ioas = 0;
  uint32_t flags = 0; // IOMMU_HWPT_ALLOC_*
  bool auto_domain = false;
  bool nest_parent = false;
  bool dirty_ops = false;      // allocated with DIRTY_TRACKING: the mock sets dirty_ops
  bool dirty_tracking = false; // IOMMU_HWPT_SET_DIRTY_TRACKING enabled
  bool pasid_compat = false;   // IOMMU_HWPT_ALLOC_PASID (latest)
  bool in_ioas = false;        // added to the IOAS as a domain (iopt_table_add_domain)
  ObjId fault = 0;
  std::set<uint64_t> dirty; // mock PTEs marked dirty, by iova / MOCK_IO_PAGE_SIZE
};

struct HwptNestedState {
  ObjId parent = 0; // the nesting parent HWPT_PAGING
  ObjId viommu = 0; // set when allocated on a vIOMMU (latest)
  ObjId fault = 0;
  bool pasid_compat = false;
  std::array<uint32_t, kMockIotlbNum> iotlb{};
};

constexpr uint32_t kMockDevCacheNum = 4;
constexpr uint32_t kTestDevCacheDefault = 0xbaddad;

struct DeviceState {
  ObjId stdev = 0;
  ObjId hwpt = 0; // attached HWPT on the RID (0: none)
  uint32_t dev_flags = 0;
  ObjId vdevice = 0;
  ObjId event_viommu = 0; // mock_dev->viommu cached at attach (latest)
  uint64_t event_vdev_id = 0;
  std::map<uint32_t, ObjId> pasids; // pasid -> HWPT (latest)
  std::array<uint32_t, kMockDevCacheNum> cache{};
};

struct SelftestState {
  ObjId idev = 0;
};

struct AccessState {
  ObjId ioas = 0;
  uint32_t flags = 0; // MOCK_FLAGS_ACCESS_CREATE_*
  struct Item {
    uint64_t iova = 0, length = 0;
  };
  std::map<uint32_t, Item> items; // access_pages_id -> pinned range
  uint32_t next_id = 0;
  uint32_t fd = 0;
};

struct FaultRecord {
  uint32_t flags = 0, dev_id = 0, pasid = 0, grpid = 0, perm = 0;
  uint64_t addr = 0;
  uint32_t cookie = 0;
};
struct FaultState {
  std::vector<FaultRecord> deliver;         // not yet read
  std::map<uint32_t, FaultRecord> response; // read, awaiting a response, by cookie
};

struct ViommuState {
  ObjId hwpt = 0; // nesting parent
  uint32_t type = 0;
  std::map<uint64_t, ObjId> vdevs; // virt_id -> VDEVICE
  std::array<ObjId, 2> hw_queue{}; // mock_viommu->hw_queue[]
};
struct VdeviceState {
  ObjId viommu = 0, idev = 0;
  uint64_t virt_id = 0;
};
struct VeventqState {
  ObjId viommu = 0;
  uint32_t type = 0, depth = 0;
  struct Event {
    bool lost = false;
    uint32_t sequence = 0;
    uint32_t virt_id = 0;
  };
  std::vector<Event> queue;
  uint32_t sequence = 0;
};
struct HwQueueState {
  ObjId viommu = 0;
  uint32_t type = 0, index = 0;
  uint64_t iova = 0, length = 0;
};

using ObjData =
    std::variant<IoasState, HwptPagingState, HwptNestedState, DeviceState, SelftestState,
                 AccessState, FaultState, ViommuState, VdeviceState, VeventqState, HwQueueState>;

struct Object {
  ObjId id = 0;
  ObjType type = ObjType::ioas;
  uint32_t node = 0;      // vertex in the dependency graph
  bool tombstone = false; // destroyed by the kernel, ID kept reserved (latest vDEVICE)
  ObjData data;
};

class Machine {
public:
  explicit Machine(Profile profile);

  struct Result {
    Observation obs; // what the model itself does (its choices where it may choose)
    Outcome allowed; // what any conforming target may do
  };
  // Execute one call. With `follow`, where the kernel may choose (allocated IOVA), take the
  // choice from that observation when it is allowed, so that the model's state tracks the
  // target it judges.
  Result execute(const Call& call, const Observation* follow = nullptr);

  // User memory of the caller, [base, base + size): what user_va and uptr may point at.
  void add_mem(uint64_t base, uint64_t size);
  // The model's own placement of a new mem region of `size` bytes.
  uint64_t place_mem(uint64_t size) const;

  Profile profile() const { return profile_; }

  // ---- introspection for invariants, tests and explain ----
  std::vector<ObjId> live_ids() const;
  const Object* object(ObjId id) const;
  uint32_t users(ObjId id) const; // references other objects and fds hold on it
  bool graph_acyclic() const;
  // Objects in the order iommufd_fops_release() may destroy them (users first).
  std::vector<ObjId> teardown_order() const;
  std::vector<Range> iova_ranges(ObjId ioas) const;
  uint64_t iova_alignment(ObjId ioas) const;
  bool fd_live(uint32_t fd) const { return fds_.count(fd) != 0; }

private:
  struct Ctx;
  struct Edge {
    Hold why = Hold::attached;
  };
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS,
                                      boost::no_property, Edge>;

  // dispatch and argument copying (main.c)
  Errno dispatch(Ctx& c);
  Errno run_ioctl(Ctx& c);
  Errno run_test_op(Ctx& c);

  // objects (main.c)
  Object& alloc_object(ObjType type, ObjData data);
  void free_object(ObjId id);
  Object* get_object(ObjId id, std::optional<ObjType> type);
  template <typename T>
  T* get(ObjId id, ObjType type) {
    Object* o = get_object(id, type);
    return o ? &std::get<T>(o->data) : nullptr;
  }
  void hold(uint32_t from_node, ObjId to, Hold why);
  void unhold(uint32_t from_node, ObjId to, Hold why);
  uint32_t new_node();
  void release_node(uint32_t node);
  void destroy_object(ObjId id); // the object's destroy op: drops what it holds
  uint32_t new_fd(ObjId obj);

  // handlers, one per operation (files named after the kernel's)
  Errno destroy(Ctx& c);
  Errno ioas_alloc(Ctx& c);
  Errno ioas_allow_iovas(Ctx& c);
  Errno ioas_copy(Ctx& c);
  Errno ioas_iova_ranges(Ctx& c);
  Errno ioas_map(Ctx& c);
  Errno ioas_unmap(Ctx& c);
  Errno option(Ctx& c);
  Errno vfio_ioas(Ctx& c);
  Errno hwpt_alloc(Ctx& c);
  Errno get_hw_info(Ctx& c);
  Errno hwpt_set_dirty_tracking(Ctx& c);
  Errno hwpt_get_dirty_bitmap(Ctx& c);
  Errno hwpt_invalidate(Ctx& c);
  Errno fault_queue_alloc(Ctx& c);
  Errno viommu_alloc(Ctx& c);
  Errno vdevice_alloc(Ctx& c);
  Errno veventq_alloc(Ctx& c);
  Errno hw_queue_alloc(Ctx& c);
  Errno ioas_change_process(Ctx& c);
  Errno ioas_map_file(Ctx& c);
  Errno add_reserved(Ctx& c);
  Errno mock_domain(Ctx& c);
  Errno mock_domain_replace(Ctx& c);
  Errno md_check_map(Ctx& c);
  Errno md_check_refs(Ctx& c);
  Errno md_check_iotlb(Ctx& c);
  Errno create_access(Ctx& c);
  Errno destroy_access_pages(Ctx& c);
  Errno access_pages(Ctx& c);
  Errno access_rw(Ctx& c);
  Errno set_temp_memory_limit(Ctx& c);
  Errno access_replace_ioas(Ctx& c);
  Errno dirty(Ctx& c);
  Errno trigger_iopf(Ctx& c);
  Errno dev_check_cache(Ctx& c);
  Errno trigger_vevent(Ctx& c);
  Errno pasid_attach(Ctx& c);
  Errno pasid_replace(Ctx& c);
  Errno pasid_detach(Ctx& c);
  Errno pasid_check_hwpt(Ctx& c);
  Errno fault_read(Ctx& c);
  Errno fault_respond(Ctx& c);
  Errno veventq_read(Ctx& c);
  Errno close_fd(Ctx& c);

  // io_pagetable.c
  uint64_t ioas_alignment(const IoasState& ioas) const;
  std::vector<Range> reserved_ranges(const IoasState& ioas) const;
  bool user_range_backed(uint64_t va, uint64_t length) const;
  bool ioas_pins(const IoasState& ioas) const; // a domain is attached: map pins pages
  Errno iopt_map(Ctx& c, IoasState& ioas, uint64_t& iova, uint64_t user_va, uint64_t length,
                 bool readable, bool writeable, bool fixed, const Field* iova_field);
  Errno iopt_unmap(IoasState& ioas, uint64_t start, uint64_t last, uint64_t& unmapped,
                   ObjId ioas_id = 0);
  std::optional<std::vector<const Area*>> contiguous_areas(const IoasState& ioas, uint64_t iova,
                                                           uint64_t last) const;
  Errno ioas_check_add_domain(const IoasState& ioas, C& why) const;
  void ioas_add_domain(ObjId ioas_id, ObjId hwpt_id);
  void ioas_remove_domain(ObjId ioas_id, ObjId hwpt_id);
  bool range_locked(ObjId ioas_id, uint64_t start, uint64_t last) const;
  uint32_t page_pins(uint64_t va) const;

  // hw_pagetable.c and the mock domains
  ObjId new_hwpt_paging(ObjId ioas_id, uint32_t flags, bool auto_domain);
  ObjId new_hwpt_nested(ObjId parent, ObjId viommu, uint32_t flags, uint32_t iotlb, ObjId fault);
  Errno read_nested_data(Ctx& c, uint32_t data_type, uint32_t data_len, uint64_t data_uptr,
                         uint32_t& iotlb);
  bool domain_maps(const HwptPagingState& hwpt, uint64_t iova) const;
  Errno viommu_hwpt_alloc(Ctx& c, const uapi::iommu_hwpt_alloc& cmd, Object& viommu, ObjId& id);
  Errno viommu_invalidate(Ctx& c, const uapi::iommu_hwpt_invalidate& cmd, ViommuState& viommu,
                          uint32_t& done, C& why);

  // device.c and selftest.c
  Errno attach_check(ObjId idev_id, ObjId hwpt_id, C& why) const;
  Errno attach_target(ObjId idev_id, ObjId pt_id, ObjId exclude, ObjId& hwpt, bool& created,
                      C& why);
  void attach_to(ObjId idev_id, ObjId hwpt_id);
  void detach_from(ObjId idev_id, ObjId hwpt_id);
  void destroy_device(ObjId idev_id);
  AccessState* access_of_fd(uint32_t fd);

  // fault.c
  ObjId fault_of_hwpt(ObjId hwpt_id) const;
  void auto_respond_faults(ObjId hwpt_id, ObjId idev_id);

  Profile profile_;
  std::vector<std::unique_ptr<Object>> objects_; // by ID; null when free
  std::set<ObjId> free_ids_;                     // below objects_.size()
  Graph graph_;
  std::vector<uint32_t> free_nodes_;
  std::vector<ObjId> node_obj_;                        // node -> object (0: an fd's node)
  std::map<uint32_t, std::pair<ObjId, uint32_t>> fds_; // fd -> (object, node)
  // The lowest number a new fd may take (new_fd). A target's process numbers its fds the
  // same way only if it has no free number below its first object fd (the agent opens
  // /dev/iommu first and nothing else between steps); names, not numbers, are compared.
  uint32_t next_fd_ = 3;
  std::vector<Range> mem_;
  ObjId vfio_ioas_ = 0;
  bool rlimit_mm_ = false;
  uint32_t temp_memory_limit_ = 0;
  uint64_t next_pages_id_ = 0;
};

} // namespace iommuspec::iommufd
