// Dispatch, objects and the dependency graph: drivers/iommu/iommufd/main.c.
#include "iommufd/machine.h"

#include "iommufd/machine_ctx.h"

#include <algorithm>
#include <boost/graph/topological_sort.hpp>
#include <cstring>

namespace iommuspec::iommufd {

std::string_view obj_type_name(ObjType t) {
  switch (t) {
  case ObjType::device:
    return "DEVICE";
  case ObjType::hwpt_paging:
    return "HWPT_PAGING";
  case ObjType::hwpt_nested:
    return "HWPT_NESTED";
  case ObjType::ioas:
    return "IOAS";
  case ObjType::access:
    return "ACCESS";
  case ObjType::fault:
    return "FAULT";
  case ObjType::selftest:
    return "SELFTEST";
  case ObjType::viommu:
    return "VIOMMU";
  case ObjType::vdevice:
    return "VDEVICE";
  case ObjType::veventq:
    return "VEVENTQ";
  case ObjType::hw_queue:
    return "HW_QUEUE";
  }
  return "?";
}

Machine::Machine(Profile profile) : profile_(profile) {
  objects_.emplace_back(); // ID 0 is never allocated (XA_FLAGS_ALLOC1)
  node_obj_.push_back(0);
  boost::add_vertex(graph_); // node 0 unused
}

void Machine::add_mem(uint64_t base, uint64_t size) {
  if (size) mem_.push_back({base, base + size - 1});
}

uint64_t Machine::place_mem(uint64_t size) const {
  // 1 GiB apart and 1 GiB aligned: allocation alignment (iopt_alloc_iova uses the low
  // bits of user_va) then never depends on where earlier regions went.
  (void)size;
  return 0x7f00'0000'0000ull + uint64_t(mem_.size()) * (1ull << 30);
}

// ---------------------------------------------------------------------------------------
// Objects (main.c _iommufd_object_alloc, iommufd_get_object, iommufd_object_remove)

uint32_t Machine::new_node() {
  if (!free_nodes_.empty()) {
    uint32_t n = free_nodes_.back();
    free_nodes_.pop_back();
    return n;
  }
  uint32_t n = uint32_t(boost::add_vertex(graph_));
  node_obj_.push_back(0);
  return n;
}

void Machine::release_node(uint32_t node) {
  boost::clear_vertex(node, graph_);
  node_obj_[node] = 0;
  free_nodes_.push_back(node);
}

Object& Machine::alloc_object(ObjType type, ObjData data) {
  // xa_alloc(..., xa_limit_31b) on an XA_FLAGS_ALLOC1 xarray: the lowest free ID >= 1.
  ObjId id;
  if (!free_ids_.empty()) {
    id = *free_ids_.begin();
    free_ids_.erase(free_ids_.begin());
  } else {
    id = ObjId(objects_.size());
    objects_.emplace_back();
  }
  auto obj = std::make_unique<Object>();
  obj->id = id;
  obj->type = type;
  obj->node = new_node();
  obj->data = std::move(data);
  node_obj_[obj->node] = id;
  objects_[id] = std::move(obj);
  return *objects_[id];
}

void Machine::free_object(ObjId id) {
  release_node(objects_[id]->node);
  objects_[id].reset();
  if (id + 1 == objects_.size()) {
    objects_.pop_back();
    while (objects_.size() > 1 && !objects_.back()) {
      free_ids_.erase(ObjId(objects_.size() - 1));
      objects_.pop_back();
    }
  } else {
    free_ids_.insert(id);
  }
}

Object* Machine::get_object(ObjId id, std::optional<ObjType> type) {
  // iommufd_get_object(): a missing ID and an object of another type are both -ENOENT.
  if (id >= objects_.size() || !objects_[id] || objects_[id]->tombstone) return nullptr;
  Object* o = objects_[id].get();
  if (type && o->type != *type) return nullptr;
  return o;
}

const Object* Machine::object(ObjId id) const {
  return id < objects_.size() ? objects_[id].get() : nullptr;
}

void Machine::hold(uint32_t from_node, ObjId to, Hold why) {
  boost::add_edge(from_node, objects_[to]->node, Edge{why}, graph_);
}

void Machine::unhold(uint32_t from_node, ObjId to, Hold why) {
  const uint32_t to_node = objects_[to]->node;
  auto [it, end] = boost::out_edges(from_node, graph_);
  for (; it != end; ++it) {
    if (boost::target(*it, graph_) == to_node && graph_[*it].why == why) {
      boost::remove_edge(*it, graph_);
      return;
    }
  }
}

uint32_t Machine::users(ObjId id) const {
  const Object* o = object(id);
  return o ? uint32_t(boost::in_degree(o->node, graph_)) : 0;
}

std::vector<ObjId> Machine::live_ids() const {
  std::vector<ObjId> ids;
  for (size_t i = 1; i < objects_.size(); ++i)
    if (objects_[i] && !objects_[i]->tombstone) ids.push_back(ObjId(i));
  return ids;
}

bool Machine::graph_acyclic() const {
  std::vector<boost::graph_traits<Graph>::vertex_descriptor> order;
  try {
    boost::topological_sort(graph_, std::back_inserter(order));
  } catch (const boost::not_a_dag&) {
    return false;
  }
  return true;
}

std::vector<ObjId> Machine::teardown_order() const {
  // iommufd_fops_release(): repeatedly destroy objects whose only reference is the
  // xarray's, i.e. graph vertices without users; a topological order of the "holds" edges.
  std::vector<boost::graph_traits<Graph>::vertex_descriptor> order;
  boost::topological_sort(graph_, std::back_inserter(order));
  std::vector<ObjId> out;
  for (auto it = order.rbegin(); it != order.rend(); ++it)
    if (node_obj_[*it] && !objects_[node_obj_[*it]]->tombstone) out.push_back(node_obj_[*it]);
  return out;
}

// A new fd is the lowest number not open in the process (fs/file.c alloc_fd() searches from
// files->next_fd, the lowest free; POSIX open(): "the lowest numbered file descriptor not
// currently open"), so a closed fd's number comes back: a name bound to the closed fd then
// reaches the new file. Numbers start above stdin/out/err (next_fd_). Clause
// IOMMUFD.FD.lowest.
uint32_t Machine::new_fd(ObjId obj) {
  uint32_t fd = next_fd_;
  while (fds_.count(fd))
    ++fd;
  const uint32_t node = new_node();
  hold(node, obj, Hold::fd_of_object);
  fds_[fd] = {obj, node};
  return fd;
}

// ---------------------------------------------------------------------------------------
// Dispatch (main.c iommufd_fops_ioctl)

Machine::Result Machine::execute(const Call& call, const Observation* follow) {
  Result r;
  const OpDesc& op = op_desc(call.op);
  r.obs.arg = call.arg;
  r.obs.payload = call.payload;
  Ctx c{call, op, follow, r.obs, r.allowed};
  const Errno err = dispatch(c);
  r.obs.err = err;
  r.allowed.err = err;
  c.finish();
  return r;
}

Errno Machine::dispatch(Ctx& c) {
  const OpDesc& op = c.op;
  c.kernel_arg = c.obs.arg;
  if (op.kind == OpKind::fd_read || op.kind == OpKind::fd_write || op.kind == OpKind::fd_close) {
    if (!(op.profiles & mask_of(profile_))) return c.fail(C::fd_op_unknown, Errno::einval);
    switch (op.id) {
    case OpId::fault_read:
      return fault_read(c);
    case OpId::fault_respond:
      return fault_respond(c);
    case OpId::veventq_read:
      return veventq_read(c);
    default:
      return close_fd(c);
    }
  }
  // An ioctl number the profile's table lacks goes to iommufd_vfio_ioctl(), which answers
  // -ENOIOCTLCMD; the ioctl syscall turns that into -ENOTTY (fs/ioctl.c vfs_ioctl()).
  if (op.kind == OpKind::ioctl && !(op.profiles & mask_of(profile_)))
    return c.fail(C::ioctl_unknown, Errno::enotty);
  if (c.call.user_size < op.min_size) return c.fail(C::ioctl_min_size, Errno::einval);
  if (c.call.user_size > op.size && c.call.tail_nonzero)
    return c.fail(C::ioctl_trailing, Errno::e2big);
  // copy_struct_from_user(): a short struct is zero-extended to the kernel's size.
  if (c.call.user_size < op.size)
    std::memset(c.obs.arg.data() + c.call.user_size, 0, op.size - c.call.user_size);
  c.kernel_arg = c.obs.arg;
  if (op.kind == OpKind::test_op) return run_test_op(c);
  return run_ioctl(c);
}

Errno Machine::run_ioctl(Ctx& c) {
  switch (c.op.id) {
  case OpId::destroy:
    return destroy(c);
  case OpId::ioas_alloc:
    return ioas_alloc(c);
  case OpId::ioas_allow_iovas:
    return ioas_allow_iovas(c);
  case OpId::ioas_copy:
    return ioas_copy(c);
  case OpId::ioas_iova_ranges:
    return ioas_iova_ranges(c);
  case OpId::ioas_map:
    return ioas_map(c);
  case OpId::ioas_unmap:
    return ioas_unmap(c);
  case OpId::option:
    return option(c);
  case OpId::vfio_ioas:
    return vfio_ioas(c);
  case OpId::hwpt_alloc:
    return hwpt_alloc(c);
  case OpId::get_hw_info:
    return get_hw_info(c);
  case OpId::hwpt_set_dirty_tracking:
    return hwpt_set_dirty_tracking(c);
  case OpId::hwpt_get_dirty_bitmap:
    return hwpt_get_dirty_bitmap(c);
  case OpId::hwpt_invalidate:
    return hwpt_invalidate(c);
  case OpId::fault_queue_alloc:
    return fault_queue_alloc(c);
  case OpId::viommu_alloc:
    return viommu_alloc(c);
  case OpId::vdevice_alloc:
    return vdevice_alloc(c);
  case OpId::veventq_alloc:
    return veventq_alloc(c);
  case OpId::hw_queue_alloc:
    return hw_queue_alloc(c);
  case OpId::ioas_map_file:
    return ioas_map_file(c);
  case OpId::ioas_change_process:
    return ioas_change_process(c);
  default:
    return c.fail(C::ioctl_unknown, Errno::enotty);
  }
}

Errno Machine::run_test_op(Ctx& c) {
  // selftest.c iommufd_test(): an op the profile's selftest lacks is -EOPNOTSUPP.
  if (!(c.op.profiles & mask_of(profile_))) return c.fail(C::test_op_unknown, Errno::eopnotsupp);
  switch (c.op.id) {
  case OpId::add_reserved:
    return add_reserved(c);
  case OpId::mock_domain:
  case OpId::mock_domain_flags:
    return mock_domain(c);
  case OpId::mock_domain_replace:
    return mock_domain_replace(c);
  case OpId::md_check_map:
    return md_check_map(c);
  case OpId::md_check_refs:
    return md_check_refs(c);
  case OpId::md_check_iotlb:
    return md_check_iotlb(c);
  case OpId::create_access:
    return create_access(c);
  case OpId::access_replace_ioas:
    return access_replace_ioas(c);
  case OpId::access_pages:
    return access_pages(c);
  case OpId::access_rw:
    return access_rw(c);
  case OpId::destroy_access_pages:
    return destroy_access_pages(c);
  case OpId::set_temp_memory_limit:
    return set_temp_memory_limit(c);
  case OpId::dirty:
    return dirty(c);
  case OpId::trigger_iopf:
    return trigger_iopf(c);
  case OpId::dev_check_cache:
    return dev_check_cache(c);
  case OpId::trigger_vevent:
    return trigger_vevent(c);
  case OpId::pasid_attach:
    return pasid_attach(c);
  case OpId::pasid_replace:
    return pasid_replace(c);
  case OpId::pasid_detach:
    return pasid_detach(c);
  case OpId::pasid_check_hwpt:
    return pasid_check_hwpt(c);
  default:
    return c.fail(C::test_op_unknown, Errno::eopnotsupp);
  }
}

// ---------------------------------------------------------------------------------------
// IOMMU_DESTROY (main.c iommufd_destroy -> iommufd_object_remove)

Errno Machine::destroy(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_destroy>();
  Object* o = get_object(cmd.id, std::nullopt);
  if (!o) return c.fail(C::destroy_enoent, Errno::enoent);
  // refcount_dec_if_one(&obj->users): any other holder (an object using it, an open fd,
  // an attached device) makes the destroy fail.
  if (users(cmd.id) != 0) {
    // DEVICE and ACCESS objects are held by the driver that made them (device.c
    // iommufd_device_bind(), iommufd_access_create()): never destroyable by DESTROY.
    if (o->type == ObjType::device) return c.fail(C::device_destroy_busy, Errno::ebusy);
    if (o->type == ObjType::access) return c.fail(C::access_destroy_busy, Errno::ebusy);
    return c.fail(C::destroy_ebusy, Errno::ebusy);
  }
  destroy_object(cmd.id);
  return c.ok(C::destroy_ok);
}

} // namespace iommuspec::iommufd
