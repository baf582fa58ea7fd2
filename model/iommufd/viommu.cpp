// The newer uAPI (linux-latest profile): vIOMMU, vDEVICE, vEVENTQ, HW queues, PASID
// attach. Sources: upstream drivers/iommu/iommufd/viommu.c, eventq.c, driver.c,
// device.c and selftest.c (about v6.17).
#include "iommufd/machine.h"
#include "iommufd/machine_ctx.h"

#include <algorithm>

namespace iommuspec::iommufd {
namespace {
constexpr uint32_t kMockPasidWidth = 20; // MOCK_PASID_WIDTH
} // namespace

Errno Machine::viommu_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_viommu_alloc>();
  if (cmd.flags || cmd.type == 0) return c.fail(C::viommu_alloc_flags, Errno::eopnotsupp);
  if (!get_object(cmd.dev_id, ObjType::device)) return c.fail(C::viommu_alloc_dev, Errno::enoent);
  if (cmd.type != kViommuTypeSelftest) return c.fail(C::viommu_alloc_type, Errno::eopnotsupp);
  auto* parent = get<HwptPagingState>(cmd.hwpt_id, ObjType::hwpt_paging);
  if (!parent) return c.fail(C::viommu_alloc_hwpt, Errno::enoent);
  if (!parent->nest_parent) return c.fail(C::viommu_alloc_hwpt, Errno::einval);
  // mock_viommu_init(): the data is read only when data_len != 0.
  if (cmd.data_len) {
    if (cmd.data_len < 8 || cmd.data_len > 24) return c.fail(C::viommu_alloc_data, Errno::einval);
    if (cmd.data_uptr != kPayloadPtr || c.call.payload.size() < cmd.data_len)
      return c.fail(C::viommu_alloc_data, Errno::efault);
    // out_data = in_data; the mmap offset and length are written back too.
    auto& p = c.obs.payload;
    std::memcpy(p.data() + 4, p.data(), 4);
  }
  ViommuState st;
  st.hwpt = cmd.hwpt_id;
  st.type = cmd.type;
  Object& o = alloc_object(ObjType::viommu, st);
  hold(o.node, cmd.hwpt_id, Hold::viommu_hwpt);
  cmd.out_viommu_id = o.id;
  c.respond(cmd);
  return c.ok(C::viommu_alloc_ok);
}

Errno Machine::vdevice_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_vdevice_alloc>();
  auto* viommu = get<ViommuState>(cmd.viommu_id, ObjType::viommu);
  if (!viommu) return c.fail(C::vdevice_alloc_lookup, Errno::enoent);
  auto* dev = get<DeviceState>(cmd.dev_id, ObjType::device);
  if (!dev) return c.fail(C::vdevice_alloc_lookup, Errno::enoent);
  if (dev->vdevice) return c.fail(C::vdevice_alloc_dev_busy, Errno::eexist);
  if (viommu->vdevs.count(cmd.virt_id)) return c.fail(C::vdevice_alloc_virt_id, Errno::eexist);
  VdeviceState st;
  st.viommu = cmd.viommu_id;
  st.idev = cmd.dev_id;
  st.virt_id = cmd.virt_id;
  Object& o = alloc_object(ObjType::vdevice, st);
  hold(o.node, cmd.viommu_id, Hold::vdevice_viommu);
  hold(o.node, cmd.dev_id, Hold::vdevice_idev);
  viommu->vdevs[cmd.virt_id] = o.id;
  dev->vdevice = o.id;
  cmd.out_vdevice_id = o.id;
  c.respond(cmd);
  return c.ok(C::vdevice_alloc_ok);
}

Errno Machine::viommu_hwpt_alloc(Ctx& c, const uapi::iommu_hwpt_alloc& cmd, Object& viommu,
                                 ObjId& id) {
  if ((cmd.flags & ~(kHwptFaultIdValid | kHwptPasid)) || !cmd.data_len)
    return c.fail(C::viommu_hwpt_flags, Errno::eopnotsupp);
  uint32_t iotlb = 0;
  if (Errno e = read_nested_data(c, cmd.data_type, cmd.data_len, cmd.data_uptr, iotlb);
      e != Errno::ok)
    return e;
  if ((cmd.flags & kHwptFaultIdValid) && !get_object(cmd.fault_id, ObjType::fault))
    return c.fail(C::hwpt_alloc_fault, Errno::enoent);
  const ObjId parent = std::get<ViommuState>(viommu.data).hwpt;
  id = new_hwpt_nested(parent, viommu.id, cmd.flags, iotlb,
                       (cmd.flags & kHwptFaultIdValid) ? cmd.fault_id : 0);
  c.ok(C::hwpt_alloc_nested_ok);
  return Errno::ok;
}

// mock_viommu_cache_invalidate() through iommu_copy_struct_from_full_user_array().
Errno Machine::viommu_invalidate(Ctx& c, const uapi::iommu_hwpt_invalidate& cmd,
                                 ViommuState& viommu, uint32_t& done, C& why) {
  constexpr size_t kEntry = sizeof(uapi::iommu_viommu_invalidate_selftest);
  if (cmd.entry_num == 0 && cmd.data_type == kInvalDataSelftest) {
    why = C::viommu_inv_ok;
    return Errno::ok;
  }
  if (cmd.data_type != kInvalDataSelftest || cmd.entry_num == 0) {
    why = C::viommu_inv_type;
    return Errno::einval;
  }
  std::vector<uapi::iommu_viommu_invalidate_selftest> cmds(cmd.entry_num);
  for (uint32_t i = 0; i < cmd.entry_num; ++i) {
    const uint64_t off = uint64_t(i) * cmd.entry_len;
    if (cmd.data_uptr != kPayloadPtr || c.call.payload.size() < off + cmd.entry_len) {
      why = C::viommu_inv_type;
      return Errno::efault;
    }
    // copy_struct_from_user(): zero-extend a short entry, refuse non-zero extra bytes.
    std::memset(&cmds[i], 0, kEntry);
    std::memcpy(&cmds[i], c.call.payload.data() + off, std::min<size_t>(kEntry, cmd.entry_len));
    for (size_t b = kEntry; b < cmd.entry_len; ++b)
      if (c.call.payload[off + b]) {
        why = C::viommu_inv_type;
        return Errno::e2big;
      }
  }
  for (const auto& e : cmds) {
    if (e.flags & ~1u) {
      why = C::viommu_inv_entry;
      return Errno::eopnotsupp;
    }
    // iommufd_test.h kernel-doc: with FLAG_ALL the id is ignored (the code checks it first).
    if (!(e.flags & 1u) && e.cache_id >= kMockDevCacheNum) {
      why = C::viommu_inv_entry;
      return Errno::einval;
    }
    const bool id_ignored = e.cache_id >= kMockDevCacheNum;
    auto it = viommu.vdevs.find(e.vdev_id);
    if (it == viommu.vdevs.end()) {
      why = C::viommu_inv_entry;
      return Errno::einval;
    }
    const ObjId idev = std::get<VdeviceState>(objects_[it->second]->data).idev;
    auto& cache = std::get<DeviceState>(objects_[idev]->data).cache;
    if (e.flags & 1u)
      cache.fill(0);
    else
      cache[e.cache_id] = 0;
    ++done;
    if (id_ignored) why = C::viommu_inv_entry;
  }
  if (why != C::viommu_inv_entry) why = C::viommu_inv_ok;
  return Errno::ok;
}

Errno Machine::dev_check_cache(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  uapi::test_check_dev_cache a;
  std::memcpy(&a, c.kernel_arg.data() + 16, sizeof(a));
  auto* dev = get<DeviceState>(cmd.id, ObjType::device);
  if (!dev) return c.fail(C::dev_check_cache_rule, Errno::enoent);
  if (a.id >= kMockDevCacheNum || dev->cache[a.id] != a.cache)
    return c.fail(C::dev_check_cache_rule, Errno::einval);
  return c.ok(C::dev_check_cache_rule);
}

Errno Machine::veventq_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_veventq_alloc>();
  if (cmd.flags || cmd.reserved || cmd.type == 0)
    return c.fail(C::veventq_alloc_flags, Errno::eopnotsupp);
  if (!cmd.veventq_depth) return c.fail(C::veventq_alloc_depth, Errno::einval);
  auto* viommu = get<ViommuState>(cmd.viommu_id, ObjType::viommu);
  if (!viommu) return c.fail(C::veventq_alloc_viommu, Errno::enoent);
  for (ObjId id : live_ids()) {
    const Object& o = *objects_[id];
    if (o.type == ObjType::veventq && std::get<VeventqState>(o.data).viommu == cmd.viommu_id &&
        std::get<VeventqState>(o.data).type == cmd.type)
      return c.fail(C::veventq_alloc_exists, Errno::eexist);
  }
  VeventqState st;
  st.viommu = cmd.viommu_id;
  st.type = cmd.type;
  st.depth = cmd.veventq_depth;
  Object& o = alloc_object(ObjType::veventq, st);
  hold(o.node, cmd.viommu_id, Hold::veventq_viommu);
  cmd.out_veventq_id = o.id;
  cmd.out_veventq_fd = new_fd(o.id);
  c.respond(cmd);
  return c.ok(C::veventq_alloc_ok);
}

Errno Machine::trigger_vevent(Ctx& c) {
  uapi::test_trigger_vevent a;
  std::memcpy(&a, c.kernel_arg.data() + 16, sizeof(a));
  auto* dev = get<DeviceState>(a.dev_id, ObjType::device);
  if (!dev) return c.fail(C::vevent_trigger, Errno::enoent);
  if (!dev->event_viommu || !dev->event_vdev_id) return c.fail(C::vevent_trigger, Errno::enoent);
  VeventqState* q = nullptr;
  for (ObjId id : live_ids()) {
    Object& o = *objects_[id];
    if (o.type == ObjType::veventq && std::get<VeventqState>(o.data).viommu == dev->event_viommu &&
        std::get<VeventqState>(o.data).type == kVeventqTypeSelftest)
      q = &std::get<VeventqState>(o.data);
  }
  if (!q) return c.fail(C::vevent_trigger, Errno::eopnotsupp);
  // iommufd_viommu_report_event() + iommufd_vevent_handler()
  const size_t queued = size_t(
      std::count_if(q->queue.begin(), q->queue.end(), [](const auto& e) { return !e.lost; }));
  VeventqState::Event ev;
  if (queued == q->depth) {
    ev.lost = true;
  } else {
    ev.virt_id = uint32_t(dev->event_vdev_id);
  }
  if (!q->queue.empty() && q->queue.back().lost) q->queue.pop_back();
  ev.sequence = q->sequence;
  q->sequence = (q->sequence + 1) & 0x7fffffffu;
  q->queue.push_back(ev);
  return c.ok(C::vevent_trigger);
}

Errno Machine::veventq_read(Ctx& c) {
  struct {
    uint32_t fd, count, out_count, pad;
  } a;
  std::memcpy(&a, c.kernel_arg.data(), sizeof(a));
  auto it = fds_.find(a.fd);
  if (it == fds_.end()) return c.fail(C::fd_bad, Errno::ebadf);
  auto* q = get<VeventqState>(it->second.first, ObjType::veventq);
  if (!q) return c.fail(C::fd_op_unknown, Errno::einval);
  // `count` is a byte count here: entries are 8 (LOST) or 12 bytes (selftest event).
  std::vector<uint8_t> out;
  uint32_t n = 0;
  while (!q->queue.empty()) {
    const auto& ev = q->queue.front();
    const size_t need = ev.lost ? 8 : 12;
    if (out.size() + need > a.count) break;
    uapi::iommufd_vevent_header h{ev.lost ? 1u : 0u, ev.sequence};
    const size_t at = out.size();
    out.resize(at + need);
    std::memcpy(out.data() + at, &h, 8);
    if (!ev.lost) std::memcpy(out.data() + at + 8, &ev.virt_id, 4);
    q->queue.erase(q->queue.begin());
    ++n;
  }
  c.obs.payload = out;
  a.out_count = uint32_t(out.size());
  std::memcpy(c.obs.arg.data(), &a, sizeof(a));
  c.responded = true;
  c.out.payload_defined = true;
  c.out.payload = out;
  return c.ok(C::veventq_read_rule);
}

Errno Machine::hw_queue_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_hw_queue_alloc>();
  if (cmd.flags || cmd.type == 0) return c.fail(C::hw_queue_rule, Errno::eopnotsupp);
  if (!cmd.length) return c.fail(C::hw_queue_rule, Errno::einval);
  if (cmd.nesting_parent_iova + (cmd.length - 1) < cmd.nesting_parent_iova)
    return c.fail(C::hw_queue_rule, Errno::eoverflow);
  auto* viommu = get<ViommuState>(cmd.viommu_id, ObjType::viommu);
  if (!viommu) return c.fail(C::hw_queue_rule, Errno::enoent);
  if (cmd.type != kHwQueueTypeSelftest) return c.fail(C::hw_queue_rule, Errno::eopnotsupp);
  const auto& parent = std::get<HwptPagingState>(objects_[viommu->hwpt]->data);
  const auto& ioas = std::get<IoasState>(objects_[parent.ioas]->data);
  const uint64_t first = cmd.nesting_parent_iova & ~(kPageSize - 1);
  const uint64_t last = (cmd.nesting_parent_iova + cmd.length - 1) | (kPageSize - 1);
  auto areas = contiguous_areas(ioas, first, last);
  if (!areas) return c.fail(C::hw_queue_rule, Errno::enoent);
  for (const Area* a : *areas)
    if (!a->readable) return c.fail(C::hw_queue_rule, Errno::eperm);
  if (cmd.index >= 2) return c.fail(C::hw_queue_rule, Errno::einval);
  if (viommu->hw_queue[cmd.index]) return c.fail(C::hw_queue_rule, Errno::eexist);
  if (cmd.index > 0 && !viommu->hw_queue[cmd.index - 1])
    return c.fail(C::hw_queue_rule, Errno::eio);
  HwQueueState st;
  st.viommu = cmd.viommu_id;
  st.type = cmd.type;
  st.index = cmd.index;
  st.iova = first;
  st.length = last - first + 1;
  Object& o = alloc_object(ObjType::hw_queue, st);
  hold(o.node, cmd.viommu_id, Hold::hw_queue_viommu);
  hold(o.node, parent.ioas, Hold::ioas_of_access); // its internal access holds the IOAS
  if (cmd.index > 0) hold(o.node, viommu->hw_queue[cmd.index - 1], Hold::hw_queue_viommu);
  viommu->hw_queue[cmd.index] = o.id;
  cmd.out_hw_queue_id = o.id;
  c.respond(cmd);
  return c.ok(C::hw_queue_ok);
}

bool Machine::range_locked(ObjId ioas_id, uint64_t start, uint64_t last) const {
  for (ObjId id : live_ids()) {
    const Object& o = *objects_[id];
    if (o.type != ObjType::hw_queue) continue;
    const auto& q = std::get<HwQueueState>(o.data);
    const auto& v = std::get<ViommuState>(objects_[q.viommu]->data);
    if (std::get<HwptPagingState>(objects_[v.hwpt]->data).ioas != ioas_id) continue;
    if (Range{q.iova, q.iova + q.length - 1}.overlaps({start, last})) return true;
  }
  return false;
}

// IOMMU_IOAS_MAP_FILE (upstream ioas.c iommufd_ioas_map_file()): IOAS_MAP's checks, then the
// fd. The model has no files of its own (memfds are the target's business), so every fd it
// knows is not a mappable file and any other is not open: both fail with EBADF here.
Errno Machine::ioas_map_file(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_ioas_map_file>();
  constexpr uint32_t kFixed = 1, kWrite = 2, kRead = 4;
  if (cmd.flags & ~(kFixed | kWrite | kRead)) return c.fail(C::map_flags, Errno::eopnotsupp);
  if (cmd.iova >= ~0ull || cmd.length >= ~0ull) return c.fail(C::map_overflow, Errno::eoverflow);
  if (!(cmd.flags & (kWrite | kRead))) return c.fail(C::map_prot, Errno::einval);
  if (!get_object(cmd.ioas_id, ObjType::ioas)) return c.fail(C::ioas_lookup, Errno::enoent);
  // The kernel-doc promises nothing about the IOAS after a bad fd: the model holds no
  // reference for it (the upstream code about v6.17 leaks one: DESTROY then says EBUSY).
  return c.fail(C::map_file_fd, Errno::ebadf);
}

Errno Machine::ioas_change_process(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_ioas_change_process>();
  if (cmd.reserved) return c.fail(C::change_process_rule, Errno::eopnotsupp);
  for (ObjId id : live_ids())
    if (objects_[id]->type == ObjType::ioas &&
        !std::get<IoasState>(objects_[id]->data).areas.empty())
      return c.fail(C::change_process_rule, Errno::einval); // no mapping is MAP_FILE here
  return c.ok(C::change_process_rule);
}

// ---------------------------------------------------------------------------------------
// PASID attach (device.c iommufd_device_attach/replace/detach with a pasid)

Errno Machine::pasid_attach(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  uapi::test_pasid a;
  std::memcpy(&a, c.kernel_arg.data() + 16, sizeof(a));
  auto* st = get<SelftestState>(cmd.id, ObjType::selftest);
  if (!st) return c.fail(C::replace_stdev, Errno::enoent);
  const ObjId idev_id = st->idev;
  auto& dev = std::get<DeviceState>(objects_[idev_id]->data);
  const bool replace = c.op.id == OpId::pasid_replace;
  Object* pt = get_object(a.pt_id, std::nullopt);
  if (!pt) return c.fail(C::attach_pt_lookup, Errno::enoent);
  if (pt->type == ObjType::ioas) return c.fail(C::pasid_attach_rule, Errno::einval);
  if (pt->type != ObjType::hwpt_paging && pt->type != ObjType::hwpt_nested)
    return c.fail(C::attach_pt_lookup, Errno::einval);
  auto cur = dev.pasids.find(a.pasid);
  if (replace) {
    if (cur == dev.pasids.end()) return c.fail(C::pasid_replace_rule, Errno::einval);
    if (cur->second == pt->id) {
      std::memcpy(c.obs.arg.data() + 16, &a, sizeof(a));
      c.responded = true;
      return c.ok(C::pasid_replace_rule);
    }
  } else if (cur != dev.pasids.end()) {
    return c.fail(C::pasid_attach_rule, Errno::ebusy);
  }
  const bool compat = pt->type == ObjType::hwpt_paging
                          ? std::get<HwptPagingState>(pt->data).pasid_compat
                          : std::get<HwptNestedState>(pt->data).pasid_compat;
  if (a.pasid != 0 && !compat) return c.fail(C::pasid_compat, Errno::einval);
  if (a.pasid != 0 && dev.hwpt) {
    const Object& rid = *objects_[dev.hwpt];
    const bool rid_compat = rid.type == ObjType::hwpt_paging
                                ? std::get<HwptPagingState>(rid.data).pasid_compat
                                : std::get<HwptNestedState>(rid.data).pasid_compat;
    if (!rid_compat) return c.fail(C::pasid_compat, Errno::einval);
  }
  const uint64_t max_pasids = (dev.dev_flags & kMockDevPasid) ? (1ull << kMockPasidWidth) : 1;
  if (a.pasid >= max_pasids) return c.fail(C::pasid_attach_rule, Errno::einval);
  if (pt->type == ObjType::hwpt_paging && std::get<HwptPagingState>(pt->data).dirty_ops &&
      (dev.dev_flags & kMockDevNoDirty))
    return c.fail(C::attach_dirty, Errno::einval);
  if (replace) {
    const ObjId old = cur->second;
    unhold(objects_[idev_id]->node, old, Hold::pasid_attached);
  }
  dev.pasids[a.pasid] = pt->id;
  hold(objects_[idev_id]->node, pt->id, Hold::pasid_attached);
  std::memcpy(c.obs.arg.data() + 16, &a, sizeof(a));
  c.responded = true;
  return c.ok(replace ? C::pasid_replace_rule : C::pasid_attach_rule);
}

Errno Machine::pasid_replace(Ctx& c) {
  return pasid_attach(c);
}

Errno Machine::pasid_detach(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  uapi::test_pasid a;
  std::memcpy(&a, c.kernel_arg.data() + 16, sizeof(a));
  auto* st = get<SelftestState>(cmd.id, ObjType::selftest);
  if (!st) return c.fail(C::replace_stdev, Errno::enoent);
  auto& dev = std::get<DeviceState>(objects_[st->idev]->data);
  auto it = dev.pasids.find(a.pasid);
  if (it != dev.pasids.end()) {
    unhold(objects_[st->idev]->node, it->second, Hold::pasid_attached);
    dev.pasids.erase(it);
  }
  return c.ok(C::pasid_detach_rule);
}

Errno Machine::pasid_check_hwpt(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  uapi::test_pasid a;
  std::memcpy(&a, c.kernel_arg.data() + 16, sizeof(a));
  auto* st = get<SelftestState>(cmd.id, ObjType::selftest);
  if (!st) return c.fail(C::replace_stdev, Errno::enoent);
  const auto& dev = std::get<DeviceState>(objects_[st->idev]->data);
  auto it = dev.pasids.find(a.pasid);
  const ObjId attached = it == dev.pasids.end() ? 0 : it->second;
  if (a.pt_id == 0) {
    if (attached) return c.fail(C::pasid_check_rule, Errno::einval);
    return c.ok(C::pasid_check_rule);
  }
  Object* h = get_object(a.pt_id, std::nullopt);
  if (!h) return c.fail(C::pasid_check_rule, Errno::enoent);
  if ((h->type != ObjType::hwpt_paging && h->type != ObjType::hwpt_nested) || attached != h->id)
    return c.fail(C::pasid_check_rule, Errno::einval);
  return c.ok(C::pasid_check_rule);
}

} // namespace iommuspec::iommufd
