// Mock devices and in-kernel accesses through IOMMU_TEST_CMD: drivers/iommu/iommufd/device.c,
// selftest.c; and the destroy op of every object type (main.c iommufd_object_ops[]).
#include "iommufd/machine.h"
#include "iommufd/machine_ctx.h"

#include <algorithm>

namespace iommuspec::iommufd {
namespace {

bool latest(Profile p) {
  return p == Profile::linux_latest;
}
constexpr uint64_t kAccessMaxLength = 16ull << 20; // selftest.c: length > 16 MiB -> ENOMEM

} // namespace

// ---------------------------------------------------------------------------------------
// Attach (device.c iommufd_device_change_pt(), iommufd_hw_pagetable_attach(),
// iommufd_device_auto_get_domain(); selftest.c mock_domain_nop_attach())

// Would the mock driver accept `dev` on `hwpt_id`? (mock_domain_nop_attach() and the
// core's PASID compatibility rule for the RID in the newer uAPI)
Errno Machine::attach_check(ObjId idev_id, ObjId hwpt_id, C& why) const {
  const auto& dev = std::get<DeviceState>(objects_[idev_id]->data);
  const Object& h = *objects_[hwpt_id];
  bool pasid_compat = false;
  if (h.type == ObjType::hwpt_paging) {
    const auto& p = std::get<HwptPagingState>(h.data);
    if (p.dirty_ops && (dev.dev_flags & kMockDevNoDirty)) {
      why = C::attach_dirty;
      return Errno::einval;
    }
    pasid_compat = p.pasid_compat;
  } else {
    const auto& n = std::get<HwptNestedState>(h.data);
    pasid_compat = n.pasid_compat;
    if (n.viommu) {
      // mock_domain_nop_attach() -> iommufd_viommu_get_vdev_id(): a vIOMMU-based nested
      // HWPT needs a vDEVICE of this device in that vIOMMU.
      const Object* vd = dev.vdevice ? object(dev.vdevice) : nullptr;
      if (!vd || vd->tombstone || std::get<VdeviceState>(vd->data).viommu != n.viommu) {
        why = C::viommu_attach_vdev;
        return Errno::enoent;
      }
    }
  }
  if (latest(profile_) && !pasid_compat) {
    for (const auto& [pasid, hw] : dev.pasids)
      if (pasid != 0) {
        why = C::pasid_compat;
        return Errno::einval;
      }
  }
  return Errno::ok;
}

// Resolve pt_id to the HWPT the device ends up on; may allocate an automatic HWPT.
Errno Machine::attach_target(ObjId idev_id, ObjId pt_id, ObjId exclude, ObjId& hwpt, bool& created,
                             C& why) {
  created = false;
  Object* pt = pt_id == exclude ? nullptr : get_object(pt_id, std::nullopt);
  if (!pt) {
    why = C::attach_pt_lookup;
    return Errno::enoent;
  }
  if (pt->type == ObjType::hwpt_paging || pt->type == ObjType::hwpt_nested) {
    const ObjId current = std::get<DeviceState>(objects_[idev_id]->data).hwpt;
    if (pt->id != current)
      if (Errno e = attach_check(idev_id, pt->id, why); e != Errno::ok) return e;
    hwpt = pt->id;
    return Errno::ok;
  }
  if (pt->type != ObjType::ioas) {
    why = C::attach_pt_lookup;
    return Errno::einval;
  }
  // iommufd_device_auto_get_domain(): the IOAS's automatic HWPTs in creation order; EINVAL
  // from one means "try the next".
  const ObjId current = std::get<DeviceState>(objects_[idev_id]->data).hwpt;
  for (ObjId d : std::get<IoasState>(pt->data).domains) {
    if (!std::get<HwptPagingState>(objects_[d]->data).auto_domain) continue;
    if (d == current) {
      hwpt = d;
      return Errno::ok;
    }
    const Errno e = attach_check(idev_id, d, why);
    if (e == Errno::ok) {
      hwpt = d;
      return Errno::ok;
    }
    if (e != Errno::einval) return e;
  }
  if (Errno e = ioas_check_add_domain(std::get<IoasState>(pt->data), why); e != Errno::ok) return e;
  hwpt = new_hwpt_paging(pt->id, 0, true);
  created = true;
  return Errno::ok;
}

// Drop the device's attachment to `hwpt` (iommufd_hw_pagetable_detach() + put): answer
// its outstanding faults, destroy an automatic HWPT left without devices.
void Machine::detach_from(ObjId idev_id, ObjId hwpt_id) {
  Object& d = *objects_[idev_id];
  unhold(d.node, hwpt_id, Hold::attached);
  auto_respond_faults(hwpt_id, idev_id);
  Object& h = *objects_[hwpt_id];
  if (h.type == ObjType::hwpt_paging && std::get<HwptPagingState>(h.data).auto_domain &&
      users(hwpt_id) == 0)
    destroy_object(hwpt_id);
}

void Machine::attach_to(ObjId idev_id, ObjId hwpt_id) {
  Object& d = *objects_[idev_id];
  auto& dev = std::get<DeviceState>(d.data);
  hold(d.node, hwpt_id, Hold::attached);
  dev.hwpt = hwpt_id;
  // mock_domain_nop_attach() caches the vIOMMU and virtual ID used for vEVENTs.
  dev.event_viommu = 0;
  dev.event_vdev_id = 0;
  const Object& h = *objects_[hwpt_id];
  if (h.type == ObjType::hwpt_nested) {
    const auto& n = std::get<HwptNestedState>(h.data);
    if (n.viommu && dev.vdevice) {
      dev.event_viommu = n.viommu;
      dev.event_vdev_id = std::get<VdeviceState>(objects_[dev.vdevice]->data).virt_id;
    }
  }
}

// ---------------------------------------------------------------------------------------
// IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS) (selftest.c iommufd_test_mock_domain())

Errno Machine::mock_domain(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  const uint32_t dev_flags =
      c.op.id == OpId::mock_domain_flags ? cmd.mock_domain_flags.dev_flags : 0;
  const uint32_t valid =
      kMockDevNoDirty | kMockDevHugeIova | (latest(profile_) ? kMockDevPasid : 0);
  if (dev_flags & ~valid) return c.fail(C::mock_domain_flags_rule, Errno::einval);
  Object& sobj = alloc_object(ObjType::selftest, SelftestState{});
  const ObjId sobj_id = sobj.id;
  DeviceState ds;
  ds.stdev = sobj_id;
  ds.dev_flags = dev_flags;
  ds.cache.fill(kTestDevCacheDefault);
  Object& idev = alloc_object(ObjType::device, ds);
  const ObjId idev_id = idev.id;
  // The selftest object is not finalized yet: a pt_id naming it is not found.
  ObjId hwpt = 0;
  bool created = false;
  C why = C::attach_ok;
  if (Errno e = attach_target(idev_id, cmd.id, sobj_id, hwpt, created, why); e != Errno::ok) {
    free_object(idev_id);
    free_object(sobj_id);
    return c.fail(why, e);
  }
  std::get<SelftestState>(objects_[sobj_id]->data).idev = idev_id;
  hold(objects_[sobj_id]->node, idev_id, Hold::idev_of_selftest);
  attach_to(idev_id, hwpt);
  cmd.mock_domain.out_stdev_id = sobj_id;
  cmd.mock_domain.out_hwpt_id = hwpt;
  cmd.mock_domain.out_idev_id = idev_id;
  if (!created) c.rule({find_field(c.op, "out_hwpt_id"), FieldRule::Kind::obj, hwpt, {}});
  c.respond(cmd);
  return c.ok(created ? C::attach_auto_domain : C::attach_ok);
}

Errno Machine::mock_domain_replace(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  auto* st = get<SelftestState>(cmd.id, ObjType::selftest);
  if (!st) return c.fail(C::replace_stdev, Errno::enoent);
  const ObjId idev_id = st->idev;
  const ObjId old = std::get<DeviceState>(objects_[idev_id]->data).hwpt;
  ObjId hwpt = 0;
  bool created = false;
  C why = C::replace_ok;
  if (Errno e = attach_target(idev_id, cmd.mock_domain_replace.pt_id, 0, hwpt, created, why);
      e != Errno::ok)
    return c.fail(why, e);
  if (hwpt != old) {
    attach_to(idev_id, hwpt);
    if (old) detach_from(idev_id, old);
  }
  cmd.mock_domain_replace.pt_id = hwpt;
  c.rule({find_field(c.op, "pt_id"),
          created ? FieldRule::Kind::new_obj : FieldRule::Kind::obj,
          hwpt,
          {}});
  c.respond(cmd);
  return c.ok(C::replace_ok);
}

// ---------------------------------------------------------------------------------------
// Destroy ops (main.c iommufd_object_ops[].destroy), after DESTROY or a cascade.

void Machine::destroy_object(ObjId id) {
  Object& o = *objects_[id];
  switch (o.type) {
  case ObjType::ioas: {
    // iommufd_ioas_destroy(): unmap everything; test reservations go with the table.
    auto& ioas = std::get<IoasState>(o.data);
    uint64_t unmapped = 0;
    (void)iopt_unmap(ioas, 0, ~0ull, unmapped);
    if (vfio_ioas_ == id) vfio_ioas_ = 0;
    break;
  }
  case ObjType::hwpt_paging: {
    const auto& p = std::get<HwptPagingState>(o.data);
    if (p.in_ioas) ioas_remove_domain(p.ioas, id);
    break;
  }
  case ObjType::selftest: {
    // iommufd_selftest_destroy(): detach, unbind (the DEVICE goes), remove the mock device.
    const ObjId idev_id = std::get<SelftestState>(o.data).idev;
    if (idev_id && objects_[idev_id]) {
      auto& dev = std::get<DeviceState>(objects_[idev_id]->data);
      const auto pasids = dev.pasids;
      for (const auto& [pasid, hw] : pasids) {
        unhold(objects_[idev_id]->node, hw, Hold::pasid_attached);
        if (objects_[hw] && objects_[hw]->type == ObjType::hwpt_paging &&
            std::get<HwptPagingState>(objects_[hw]->data).auto_domain && users(hw) == 0)
          destroy_object(hw);
      }
      std::get<DeviceState>(objects_[idev_id]->data).pasids.clear();
      if (const ObjId h = std::get<DeviceState>(objects_[idev_id]->data).hwpt) {
        std::get<DeviceState>(objects_[idev_id]->data).hwpt = 0;
        detach_from(idev_id, h);
      }
      destroy_device(idev_id);
    }
    break;
  }
  case ObjType::vdevice: {
    const auto& v = std::get<VdeviceState>(o.data);
    if (objects_[v.viommu]) std::get<ViommuState>(objects_[v.viommu]->data).vdevs.erase(v.virt_id);
    if (objects_[v.idev]) std::get<DeviceState>(objects_[v.idev]->data).vdevice = 0;
    break;
  }
  case ObjType::hw_queue: {
    const auto& q = std::get<HwQueueState>(o.data);
    if (objects_[q.viommu]) std::get<ViommuState>(objects_[q.viommu]->data).hw_queue[q.index] = 0;
    break;
  }
  default:
    break;
  }
  free_object(id);
}

// iommufd_device_unbind() of a mock device: in the newer uAPI its vDEVICE is destroyed
// and its ID kept as a tombstone (REMOVE_OBJ_TOMBSTONE).
void Machine::destroy_device(ObjId idev_id) {
  auto& dev = std::get<DeviceState>(objects_[idev_id]->data);
  if (dev.vdevice && objects_[dev.vdevice]) {
    const ObjId vd = dev.vdevice;
    Object& v = *objects_[vd];
    const auto& vs = std::get<VdeviceState>(v.data);
    if (objects_[vs.viommu])
      std::get<ViommuState>(objects_[vs.viommu]->data).vdevs.erase(vs.virt_id);
    boost::clear_vertex(v.node, graph_);
    v.tombstone = true;
    dev.vdevice = 0;
  }
  free_object(idev_id);
}

// ---------------------------------------------------------------------------------------
// Other selftest ops on IOAS and domains

Errno Machine::add_reserved(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  const uint64_t start = cmd.add_reserved.start, length = cmd.add_reserved.length;
  if (!length) return c.fail(C::add_reserved_rule, Errno::einval);
  if (start + (length - 1) < start) return c.fail(C::add_reserved_rule, Errno::eoverflow);
  auto* ioas = get<IoasState>(cmd.id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  const Range r{start, start + length - 1};
  for (const auto& [s, a] : ioas->areas)
    if (r.overlaps({a.start, a.last})) return c.fail(C::add_reserved_rule, Errno::eaddrinuse);
  for (const auto& al : ioas->allowed)
    if (r.overlaps(al)) return c.fail(C::add_reserved_rule, Errno::eaddrinuse);
  ioas->reserved.push_back({r, 0});
  return c.ok(C::add_reserved_rule);
}

Errno Machine::md_check_map(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& m = cmd.check_map;
  if ((m.iova % kMockIoPageSize) || (m.length % kMockIoPageSize) || (m.uptr % kMockIoPageSize) ||
      m.uptr + m.length < m.uptr)
    return c.fail(C::md_check_map_rule, Errno::einval);
  auto* hwpt = get<HwptPagingState>(cmd.id, ObjType::hwpt_paging);
  if (!hwpt) return c.fail(C::md_check_map_rule, Errno::enoent);
  const auto& ioas = std::get<IoasState>(objects_[hwpt->ioas]->data);
  for (uint64_t off = 0; off < m.length; off += kMockIoPageSize) {
    if (!user_range_backed(m.uptr + off, kMockIoPageSize))
      return c.fail(C::md_check_map_rule, Errno::efault);
    const uint64_t x = m.iova + off;
    auto it = ioas.areas.upper_bound(x);
    if (it == ioas.areas.begin()) return c.fail(C::md_check_map_rule, Errno::einval);
    const Area& a = std::prev(it)->second;
    if (a.last < x || a.user_va + (x - a.start) != m.uptr + off)
      return c.fail(C::md_check_map_rule, Errno::einval);
  }
  return c.ok(C::md_check_map_rule);
}

// How many iopt_pages pin the user page at `va`: each MAP's pages (shared by COPY) pins
// once while a domain holds one of its areas or an access pins part of it.
uint32_t Machine::page_pins(uint64_t va) const {
  std::set<uint64_t> pins;
  for (ObjId id : live_ids()) {
    const Object& o = *objects_[id];
    if (o.type != ObjType::ioas) continue;
    const auto& ioas = std::get<IoasState>(o.data);
    for (const auto& [s, a] : ioas.areas) {
      const uint64_t len = a.last - a.start + 1;
      const uint64_t first = a.user_va & ~(kPageSize - 1);
      const uint64_t last = (a.user_va + len - 1) | (kPageSize - 1);
      if (va < first || va > last) continue;
      bool pinned = !ioas.domains.empty();
      for (ObjId acc : ioas.accesses) {
        if (pinned) break;
        for (const auto& [i, item] : std::get<AccessState>(objects_[acc]->data).items) {
          // The item pins iova pages; find which of them map this user page.
          const uint64_t lo = std::max(item.iova, a.start);
          const uint64_t hi = std::min(item.iova + item.length - 1, a.last);
          if (lo > hi) continue;
          const uint64_t ufirst = (a.user_va + (lo - a.start)) & ~(kPageSize - 1);
          const uint64_t ulast = (a.user_va + (hi - a.start)) | (kPageSize - 1);
          if (va >= ufirst && va <= ulast) pinned = true;
        }
      }
      if (pinned) pins.insert(a.pages_id);
    }
  }
  return uint32_t(pins.size());
}

Errno Machine::md_check_refs(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& r = cmd.check_refs;
  if ((r.length % kPageSize) || (r.uptr % kPageSize) || r.uptr + r.length < r.uptr)
    return c.fail(C::md_check_refs_rule, Errno::einval);
  for (uint64_t off = 0; off < r.length; off += kPageSize) {
    if (!user_range_backed(r.uptr + off, kPageSize))
      return c.fail(C::md_check_refs_rule, Errno::efault);
    if (page_pins(r.uptr + off) != r.refs) return c.fail(C::md_check_refs_rule, Errno::eio);
  }
  return c.ok(C::md_check_refs_rule);
}

Errno Machine::set_temp_memory_limit(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  if (cmd.memory_limit.limit < sizeof(uint64_t) + sizeof(uint32_t))
    return c.fail(C::memory_limit_rule, Errno::einval);
  temp_memory_limit_ = cmd.memory_limit.limit;
  return c.ok(C::memory_limit_rule);
}

// ---------------------------------------------------------------------------------------
// In-kernel accesses (selftest.c staccess; device.c iommufd_access_*)

Errno Machine::create_access(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  if (cmd.create_access.flags & ~kAccessNeedsPinPages)
    return c.fail(C::access_create_flags, Errno::eopnotsupp);
  auto* ioas = get<IoasState>(cmd.id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  // iopt_add_access() -> iopt_calculate_iova_alignment(): a pin-pages access needs
  // PAGE_SIZE alignment of every existing mapping.
  if (cmd.create_access.flags & kAccessNeedsPinPages) {
    const uint64_t next = std::max(ioas_alignment(*ioas), kPageSize);
    for (const auto& [s, a] : ioas->areas)
      if ((a.start & (next - 1)) || ((a.last + 1) & (next - 1)) ||
          ((a.user_va % kPageSize) & (next - 1)))
        return c.fail(C::access_create_ok, Errno::eaddrinuse);
  }
  AccessState st;
  st.ioas = cmd.id;
  st.flags = cmd.create_access.flags;
  Object& o = alloc_object(ObjType::access, st);
  hold(o.node, cmd.id, Hold::ioas_of_access);
  ioas->accesses.push_back(o.id);
  const uint32_t fd = new_fd(o.id);
  std::get<AccessState>(o.data).fd = fd;
  cmd.create_access.out_access_fd = fd;
  c.respond(cmd);
  return c.ok(C::access_create_ok);
}

AccessState* Machine::access_of_fd(uint32_t fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return nullptr;
  return get<AccessState>(it->second.first, ObjType::access);
}

// The areas covering [iova, last] without a gap, or nullopt (iopt_area_contig_*).
std::optional<std::vector<const Area*>>
Machine::contiguous_areas(const IoasState& ioas, uint64_t iova, uint64_t last) const {
  std::vector<const Area*> out;
  uint64_t cur = iova;
  while (true) {
    auto it = ioas.areas.upper_bound(cur);
    if (it == ioas.areas.begin()) return std::nullopt;
    const Area& a = std::prev(it)->second;
    if (a.last < cur) return std::nullopt;
    out.push_back(&a);
    if (a.last >= last) return out;
    cur = a.last + 1;
  }
}

Errno Machine::access_pages(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& ap = cmd.access_pages;
  if (ap.length > kAccessMaxLength) return c.fail(C::access_pages_rule, Errno::enomem);
  if (ap.flags & ~(1u | 0x10000u)) return c.fail(C::access_pages_rule, Errno::eopnotsupp);
  AccessState* acc = access_of_fd(cmd.id);
  if (!acc) return c.fail(C::access_fd, Errno::ebadfd);
  if (!(acc->flags & kAccessNeedsPinPages)) return c.fail(C::access_pages_rule, Errno::eopnotsupp);
  // iommufd_access_pin_pages()
  if (!ap.length) return c.fail(C::access_pages_rule, Errno::einval);
  const uint64_t last = ap.iova + ap.length - 1;
  if (last < ap.iova) return c.fail(C::access_pages_rule, Errno::eoverflow);
  if (!acc->ioas) return c.fail(C::access_pages_rule, Errno::enoent);
  const auto& ioas = std::get<IoasState>(objects_[acc->ioas]->data);
  const bool write = ap.flags & 1u;
  uint64_t cur = ap.iova;
  while (true) {
    auto it = ioas.areas.upper_bound(cur);
    if (it == ioas.areas.begin() || std::prev(it)->second.last < cur)
      return c.fail(C::access_pages_rule, Errno::enoent);
    const Area& a = std::prev(it)->second;
    // check_area_prot() and the page-alignment rule of iopt_area_contig pinning.
    if (((a.user_va + (cur - a.start)) % kPageSize) != 0 ||
        (a.last < last && (a.user_va + (a.last - a.start) + 1) % kPageSize != 0))
      return c.fail(C::access_pages_rule, Errno::einval);
    if (write ? !a.writeable : !a.readable) return c.fail(C::access_pages_rule, Errno::eperm);
    const uint64_t hi = std::min(a.last, last);
    if (!user_range_backed(a.user_va + (cur - a.start), hi - cur + 1))
      return c.fail(C::access_pages_rule, Errno::efault);
    if (hi == last) break;
    cur = hi + 1;
  }
  if (ap.uptr) {
    // The test compares the pinned pages with those of uptr (EBADE on a mismatch).
    auto areas = contiguous_areas(ioas, ap.iova, last);
    const Area& a = *areas->front();
    const uint64_t va = a.user_va + (ap.iova - a.start);
    if (!user_range_backed(ap.uptr, ap.length)) return c.fail(C::access_pages_rule, Errno::efault);
    if ((va & ~(kPageSize - 1)) != ((ap.uptr - ap.iova % kPageSize) & ~(kPageSize - 1)))
      return c.fail(C::access_pages_rule, Errno::ebade);
  }
  const uint32_t item = acc->next_id++;
  acc->items[item] = {ap.iova, ap.length};
  cmd.access_pages.out_access_pages_id = item;
  c.respond(cmd);
  return c.ok(C::access_pages_rule);
}

Errno Machine::destroy_access_pages(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  AccessState* acc = access_of_fd(cmd.id);
  if (!acc) return c.fail(C::access_fd, Errno::ebadfd);
  if (!acc->items.erase(cmd.destroy_access_pages.access_pages_id))
    return c.fail(C::access_destroy_pages_rule, Errno::enoent);
  return c.ok(C::access_destroy_pages_rule);
}

Errno Machine::access_rw(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& rw = cmd.access_rw;
  if (rw.length > kAccessMaxLength) return c.fail(C::access_rw_rule, Errno::enomem);
  if (rw.flags & ~(1u | 4u | 0x10000u)) return c.fail(C::access_rw_rule, Errno::eopnotsupp);
  AccessState* acc = access_of_fd(cmd.id);
  if (!acc) return c.fail(C::access_fd, Errno::ebadfd);
  const bool write = rw.flags & 1u;
  if (write && rw.length && !user_range_backed(rw.uptr, rw.length))
    return c.fail(C::access_rw_rule, Errno::efault);
  if (!rw.length) return c.fail(C::access_rw_rule, Errno::einval);
  const uint64_t last = rw.iova + rw.length - 1;
  if (last < rw.iova) return c.fail(C::access_rw_rule, Errno::eoverflow);
  if (!acc->ioas) return c.fail(C::access_rw_rule, Errno::enoent);
  const auto& ioas = std::get<IoasState>(objects_[acc->ioas]->data);
  uint64_t cur = rw.iova;
  while (true) {
    auto it = ioas.areas.upper_bound(cur);
    if (it == ioas.areas.begin() || std::prev(it)->second.last < cur)
      return c.fail(C::access_rw_rule, Errno::enoent);
    const Area& a = std::prev(it)->second;
    if (write ? !a.writeable : !a.readable) return c.fail(C::access_rw_rule, Errno::eperm);
    if (write && !a.pages_writable) return c.fail(C::access_rw_rule, Errno::eperm);
    const uint64_t hi = std::min(a.last, last);
    if (!user_range_backed(a.user_va + (cur - a.start), hi - cur + 1))
      return c.fail(C::access_rw_rule, Errno::efault);
    if (hi == last) break;
    cur = hi + 1;
  }
  if (!write && !user_range_backed(rw.uptr, rw.length))
    return c.fail(C::access_rw_rule, Errno::efault);
  return c.ok(C::access_rw_rule);
}

Errno Machine::access_replace_ioas(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  auto it = fds_.find(cmd.id);
  AccessState* acc = access_of_fd(cmd.id);
  if (!acc) return c.fail(C::access_fd, Errno::ebadfd);
  if (!acc->ioas) return c.fail(C::access_replace_rule, Errno::enoent);
  const ObjId new_id = cmd.access_replace_ioas.ioas_id;
  auto* ioas = get<IoasState>(new_id, ObjType::ioas);
  if (!ioas) return c.fail(C::access_replace_rule, Errno::enoent);
  if (new_id == acc->ioas) return c.ok(C::access_replace_rule);
  if (acc->flags & kAccessNeedsPinPages) {
    const uint64_t next = std::max(ioas_alignment(*ioas), kPageSize);
    for (const auto& [s, a] : ioas->areas)
      if ((a.start & (next - 1)) || ((a.last + 1) & (next - 1)))
        return c.fail(C::access_replace_rule, Errno::eaddrinuse);
  }
  const ObjId acc_id = it->second.first;
  const ObjId old = acc->ioas;
  acc->items.clear(); // ops->unmap(0, ULONG_MAX) on the old IOAS
  std::erase(std::get<IoasState>(objects_[old]->data).accesses, acc_id);
  unhold(objects_[acc_id]->node, old, Hold::ioas_of_access);
  acc->ioas = new_id;
  ioas->accesses.push_back(acc_id);
  hold(objects_[acc_id]->node, new_id, Hold::ioas_of_access);
  return c.ok(C::access_replace_rule);
}

} // namespace iommuspec::iommufd
