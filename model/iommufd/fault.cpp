// Fault queues and file descriptors: drivers/iommu/iommufd/fault.c, selftest.c
// (TRIGGER_IOPF, the access fd), eventq.c (latest).
#include "iommufd/machine.h"
#include "iommufd/machine_ctx.h"

#include <algorithm>

namespace iommuspec::iommufd {

Errno Machine::fault_queue_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_fault_alloc>();
  if (cmd.flags) return c.fail(C::fault_alloc_flags, Errno::eopnotsupp);
  Object& o = alloc_object(ObjType::fault, FaultState{});
  cmd.out_fault_id = o.id;
  cmd.out_fault_fd = new_fd(o.id);
  c.respond(cmd);
  return c.ok(C::fault_alloc_ok);
}

ObjId Machine::fault_of_hwpt(ObjId hwpt_id) const {
  const Object* h = object(hwpt_id);
  if (!h) return 0;
  if (h->type == ObjType::hwpt_nested) return std::get<HwptNestedState>(h->data).fault;
  if (h->type == ObjType::hwpt_paging) return std::get<HwptPagingState>(h->data).fault;
  return 0;
}

void Machine::auto_respond_faults(ObjId hwpt_id, ObjId idev_id) {
  const ObjId f = fault_of_hwpt(hwpt_id);
  if (!f || !objects_[f]) return;
  auto& q = std::get<FaultState>(objects_[f]->data);
  std::erase_if(q.deliver, [&](const FaultRecord& r) { return r.dev_id == idev_id; });
  std::erase_if(q.response, [&](const auto& kv) { return kv.second.dev_id == idev_id; });
}

Errno Machine::trigger_iopf(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& t = cmd.trigger_iopf;
  auto* dev = get<DeviceState>(t.dev_id, ObjType::device);
  if (!dev) return c.fail(C::iopf_trigger, Errno::enoent);
  // iommu_report_device_fault(): the RID's attach handle; in linux-6.12 only a nested
  // domain has an iopf handler. Its result is ignored: the op always returns 0.
  const ObjId hwpt = dev->hwpt;
  const Object* h = hwpt ? object(hwpt) : nullptr;
  const bool handled = h && (h->type == ObjType::hwpt_nested || profile_ == Profile::linux_latest);
  const ObjId f = handled ? fault_of_hwpt(hwpt) : 0;
  if (f) {
    FaultRecord r;
    r.flags = 2u /* LAST_PAGE */ | (t.pasid ? 1u /* PASID_VALID */ : 0u);
    r.dev_id = t.dev_id;
    r.pasid = t.pasid;
    r.grpid = t.grpid;
    r.perm = t.perm;
    r.addr = t.addr;
    std::get<FaultState>(objects_[f]->data).deliver.push_back(r);
  }
  return c.ok(C::iopf_trigger);
}

namespace {
struct FdArgs {
  uint32_t fd, count, out_count, pad;
};
} // namespace

Errno Machine::fault_read(Ctx& c) {
  FdArgs a;
  std::memcpy(&a, c.kernel_arg.data(), sizeof(a));
  auto it = fds_.find(a.fd);
  if (it == fds_.end()) return c.fail(C::fd_bad, Errno::ebadf);
  auto* q = get<FaultState>(it->second.first, ObjType::fault);
  if (!q) return c.fail(C::fd_op_unknown, Errno::einval);
  constexpr size_t kRec = sizeof(uapi::iommu_hwpt_pgfault);
  auto& p = c.obs.payload;
  p.assign(size_t(a.count) * kRec, 0);
  uint32_t n = 0;
  while (!q->deliver.empty()) {
    if (n == a.count) {
      if (n == 0) return c.fail(C::fault_read_rule, Errno::einval);
      break;
    }
    FaultRecord r = q->deliver.front();
    q->deliver.erase(q->deliver.begin());
    uint32_t cookie = 1; // xa_alloc(): the lowest free cookie >= 1
    while (q->response.count(cookie))
      ++cookie;
    r.cookie = cookie;
    q->response[cookie] = r;
    uapi::iommu_hwpt_pgfault rec{};
    rec.flags = r.flags;
    rec.dev_id = r.dev_id;
    rec.pasid = r.pasid;
    rec.grpid = r.grpid;
    rec.perm = r.perm;
    rec.addr = r.addr;
    rec.cookie = r.cookie;
    std::memcpy(p.data() + n * kRec, &rec, kRec);
    ++n;
  }
  p.resize(n * kRec);
  a.out_count = n;
  std::memcpy(c.obs.arg.data(), &a, sizeof(a));
  c.responded = true;
  c.out.payload_defined = true;
  c.out.payload = p;
  for (uint32_t i = 0; i < n; ++i)
    c.out.payload_obj_offsets.push_back(i * kRec + 4); // dev_id
  return c.ok(C::fault_read_rule);
}

Errno Machine::fault_respond(Ctx& c) {
  FdArgs a;
  std::memcpy(&a, c.kernel_arg.data(), sizeof(a));
  auto it = fds_.find(a.fd);
  if (it == fds_.end()) return c.fail(C::fd_bad, Errno::ebadf);
  auto* q = get<FaultState>(it->second.first, ObjType::fault);
  if (!q) return c.fail(C::fd_op_unknown, Errno::einval);
  constexpr size_t kRec = sizeof(uapi::iommu_hwpt_page_response);
  uint32_t n = 0;
  Errno err = Errno::ok;
  for (; n < a.count; ++n) {
    if (c.call.payload.size() < (n + 1) * kRec) {
      err = Errno::efault;
      break;
    }
    uapi::iommu_hwpt_page_response r;
    std::memcpy(&r, c.call.payload.data() + n * kRec, kRec);
    if (r.code > 1 || !q->response.erase(r.cookie)) {
      err = Errno::einval;
      break;
    }
  }
  // write() returns the bytes taken if any, else the error.
  if (n == 0 && err != Errno::ok) return c.fail(C::fault_respond_rule, err);
  a.out_count = n;
  std::memcpy(c.obs.arg.data(), &a, sizeof(a));
  c.responded = true;
  return c.ok(C::fault_respond_rule);
}

Errno Machine::close_fd(Ctx& c) {
  uint32_t fd;
  std::memcpy(&fd, c.kernel_arg.data(), sizeof(fd));
  auto it = fds_.find(fd);
  if (it == fds_.end()) return c.fail(C::fd_bad, Errno::ebadf);
  const auto [obj, node] = it->second;
  fds_.erase(it);
  release_node(node);
  Object* o = get_object(obj, std::nullopt);
  if (o && o->type == ObjType::access) {
    // iommufd_test_staccess_release() -> iommufd_access_destroy()
    auto& acc = std::get<AccessState>(o->data);
    if (acc.ioas && objects_[acc.ioas])
      std::erase(std::get<IoasState>(objects_[acc.ioas]->data).accesses, obj);
    destroy_object(obj);
  }
  return c.ok(C::fd_close_rule);
}

} // namespace iommuspec::iommufd
