// HWPT ioctls and the mock IOMMU domains behind them: drivers/iommu/iommufd/hw_pagetable.c,
// io_pagetable.c (domains, dirty tracking), device.c (GET_HW_INFO), selftest.c (mock).
#include "iommufd/machine.h"
#include "iommufd/machine_ctx.h"

#include <algorithm>

namespace iommuspec::iommufd {
namespace {

constexpr uint64_t kU64Max = ~0ull;
constexpr uint32_t kEntryNumMax = 1u << 19; // IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX

bool latest(Profile p) {
  return p == Profile::linux_latest;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Domains joining and leaving an IOAS (io_pagetable.c iopt_table_add_domain(),
// iopt_table_remove_domain()). The mock paging domain: pgsize 2048, aperture
// [MOCK_APERTURE_START, MOCK_APERTURE_LAST] (selftest.c mock_domain_alloc_paging()).

Errno Machine::ioas_check_add_domain(const IoasState& ioas, C& why) const {
  const uint64_t cur = ioas_alignment(ioas);
  const uint64_t next = std::max(cur, kMockIoPageSize);
  if (next != cur) {
    // iopt_check_iova_alignment()
    for (const auto& [s, a] : ioas.areas) {
      const uint64_t len = a.last - a.start + 1;
      if ((a.start & (next - 1)) || (len & (next - 1)) || ((a.user_va % kPageSize) & (next - 1))) {
        why = C::hwpt_alloc_domain_conflict;
        return Errno::eaddrinuse;
      }
    }
  }
  // iopt_reserve_iova() of the space outside the aperture: refused over areas and
  // allowed ranges.
  const Range outside[] = {{0, kMockApertureStart - 1}, {kMockApertureLast + 1, kU64Max}};
  for (const auto& r : outside) {
    for (const auto& [s, a] : ioas.areas)
      if (r.overlaps({a.start, a.last})) {
        why = C::hwpt_alloc_domain_conflict;
        return Errno::eaddrinuse;
      }
    for (const auto& al : ioas.allowed)
      if (r.overlaps(al)) {
        why = C::hwpt_alloc_domain_conflict;
        return Errno::eaddrinuse;
      }
  }
  // iopt_fill_domain(): every mapping is pinned into the new domain.
  for (const auto& [s, a] : ioas.areas)
    if (!user_range_backed(a.user_va, a.last - a.start + 1)) {
      why = C::hwpt_alloc_domain_pin;
      return Errno::efault;
    }
  return Errno::ok;
}

void Machine::ioas_add_domain(ObjId ioas_id, ObjId hwpt_id) {
  auto& ioas = std::get<IoasState>(objects_[ioas_id]->data);
  ioas.domains.push_back(hwpt_id);
  ioas.reserved.push_back({{0, kMockApertureStart - 1}, hwpt_id});
  ioas.reserved.push_back({{kMockApertureLast + 1, kU64Max}, hwpt_id});
  std::get<HwptPagingState>(objects_[hwpt_id]->data).in_ioas = true;
}

void Machine::ioas_remove_domain(ObjId ioas_id, ObjId hwpt_id) {
  auto& ioas = std::get<IoasState>(objects_[ioas_id]->data);
  std::erase(ioas.domains, hwpt_id);
  std::erase_if(ioas.reserved, [&](const Reserved& r) { return r.owner == hwpt_id; });
}

// A paging HWPT object: holds its IOAS, its domain joins the IOAS.
ObjId Machine::new_hwpt_paging(ObjId ioas_id, uint32_t flags, bool auto_domain) {
  HwptPagingState st;
  st.ioas = ioas_id;
  st.flags = flags;
  st.auto_domain = auto_domain;
  st.nest_parent = flags & kHwptNestParent;
  st.dirty_ops = flags & kHwptDirtyTracking;
  st.pasid_compat = flags & kHwptPasid;
  Object& o = alloc_object(ObjType::hwpt_paging, st);
  hold(o.node, ioas_id, Hold::ioas_of_hwpt);
  ioas_add_domain(ioas_id, o.id);
  return o.id;
}

// ---------------------------------------------------------------------------------------
// IOMMU_HWPT_ALLOC (hw_pagetable.c iommufd_hwpt_alloc())

Errno Machine::hwpt_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_hwpt_alloc>();
  if (cmd.reserved) return c.fail(C::hwpt_alloc_reserved, Errno::eopnotsupp);
  if ((cmd.data_type == kHwptDataNone && cmd.data_len) ||
      (cmd.data_type != kHwptDataNone && !cmd.data_len))
    return c.fail(C::hwpt_alloc_data, Errno::einval);
  auto* idev = get<DeviceState>(cmd.dev_id, ObjType::device);
  if (!idev) return c.fail(C::hwpt_alloc_dev, Errno::enoent);
  Object* pt = get_object(cmd.pt_id, std::nullopt);
  // The uAPI's general errno rule (include/uapi/linux/iommufd.h, "ENOENT: An ID or IOVA
  // provided does not exist") is the promise; the 6.12 code answers EINVAL here
  // (hw_pagetable.c: iommufd_get_object() failure -> -EINVAL). The model keeps the promise.
  if (!pt) return c.fail(C::hwpt_alloc_pt_missing, Errno::enoent);

  ObjId id = 0;
  switch (pt->type) {
  case ObjType::ioas: {
    // iommufd_hwpt_paging_alloc()
    const uint32_t valid =
        latest(profile_) ? kHwptNestParent | kHwptDirtyTracking | kHwptFaultIdValid | kHwptPasid
                         : kHwptNestParent | kHwptDirtyTracking;
    if (cmd.flags & ~valid) return c.fail(C::hwpt_alloc_flags, Errno::eopnotsupp);
    if ((cmd.flags & kHwptDirtyTracking) && (idev->dev_flags & kMockDevNoDirty))
      return c.fail(C::hwpt_alloc_dirty_cap, Errno::eopnotsupp);
    if ((cmd.flags & kHwptFaultIdValid) && (cmd.flags & kHwptNestParent))
      return c.fail(C::hwpt_alloc_flags, Errno::eopnotsupp);
    if (cmd.data_len) return c.fail(C::hwpt_alloc_paging_data, Errno::eopnotsupp);
    C why = C::hwpt_alloc_domain_conflict;
    if (Errno e = ioas_check_add_domain(std::get<IoasState>(pt->data), why); e != Errno::ok)
      return c.fail(why, e);
    if ((cmd.flags & kHwptFaultIdValid) && !get_object(cmd.fault_id, ObjType::fault))
      return c.fail(C::hwpt_alloc_fault, Errno::enoent);
    id = new_hwpt_paging(pt->id, cmd.flags & ~kHwptFaultIdValid, false);
    if (cmd.flags & kHwptFaultIdValid) {
      std::get<HwptPagingState>(objects_[id]->data).fault = cmd.fault_id;
      hold(objects_[id]->node, cmd.fault_id, Hold::fault_of_hwpt);
    }
    c.ok(C::hwpt_alloc_paging_ok);
    break;
  }
  case ObjType::hwpt_paging: {
    // iommufd_hwpt_nested_alloc(), then selftest.c mock_domain_alloc_nested()
    const auto& parent = std::get<HwptPagingState>(pt->data);
    const uint32_t valid = latest(profile_) ? kHwptFaultIdValid | kHwptPasid : kHwptFaultIdValid;
    if ((cmd.flags & ~valid) || !cmd.data_len)
      return c.fail(C::hwpt_alloc_nested_flags, Errno::eopnotsupp);
    if (parent.auto_domain || !parent.nest_parent)
      return c.fail(C::hwpt_alloc_nested_parent, Errno::einval);
    uint32_t iotlb = 0;
    if (Errno e = read_nested_data(c, cmd.data_type, cmd.data_len, cmd.data_uptr, iotlb);
        e != Errno::ok)
      return e;
    if ((cmd.flags & kHwptFaultIdValid) && !get_object(cmd.fault_id, ObjType::fault))
      return c.fail(C::hwpt_alloc_fault, Errno::enoent);
    id = new_hwpt_nested(pt->id, 0, cmd.flags, iotlb,
                         (cmd.flags & kHwptFaultIdValid) ? cmd.fault_id : 0);
    c.ok(C::hwpt_alloc_nested_ok);
    break;
  }
  case ObjType::viommu:
    if (latest(profile_)) {
      if (Errno e = viommu_hwpt_alloc(c, cmd, *pt, id); e != Errno::ok) return e;
      break;
    }
    [[fallthrough]];
  default:
    return c.fail(C::hwpt_alloc_pt, Errno::einval);
  }
  cmd.out_hwpt_id = id;
  c.respond(cmd);
  return Errno::ok;
}

// The selftest nested data: struct iommu_hwpt_selftest, copied with
// iommu_copy_struct_from_user(..., IOMMU_HWPT_DATA_SELFTEST, iotlb).
Errno Machine::read_nested_data(Ctx& c, uint32_t data_type, uint32_t data_len, uint64_t data_uptr,
                                uint32_t& iotlb) {
  if (data_type != kHwptDataSelftest) return c.fail(C::hwpt_alloc_nested_type, Errno::eopnotsupp);
  if (data_len != sizeof(uapi::iommu_hwpt_selftest))
    return c.fail(C::hwpt_alloc_nested_len, Errno::einval);
  if (data_uptr != kPayloadPtr || c.call.payload.size() < data_len)
    return c.fail(C::hwpt_alloc_nested_len, Errno::efault);
  std::memcpy(&iotlb, c.call.payload.data(), sizeof(iotlb));
  return Errno::ok;
}

// A nested HWPT holds its parent (or its vIOMMU) and, with FAULT_ID_VALID, its FAULT.
ObjId Machine::new_hwpt_nested(ObjId parent, ObjId viommu, uint32_t flags, uint32_t iotlb,
                               ObjId fault) {
  HwptNestedState st;
  st.parent = parent;
  st.viommu = viommu;
  st.fault = fault;
  st.pasid_compat = flags & kHwptPasid;
  st.iotlb.fill(iotlb);
  Object& o = alloc_object(ObjType::hwpt_nested, st);
  hold(o.node, viommu ? viommu : parent, Hold::parent_of_nested);
  if (fault) hold(o.node, fault, Hold::fault_of_hwpt);
  return o.id;
}

// ---------------------------------------------------------------------------------------
// IOMMU_HWPT_INVALIDATE (hw_pagetable.c iommufd_hwpt_invalidate())

Errno Machine::hwpt_invalidate(Ctx& c) {
  auto cmd = c.load<uapi::iommu_hwpt_invalidate>();
  uint32_t done = 0;
  // Every exit writes entry_num (the number handled) back with the whole struct.
  auto finish = [&](Errno e, C why) {
    cmd.entry_num = done;
    c.respond(cmd);
    return e == Errno::ok ? c.ok(why) : c.fail(why, e);
  };
  if (cmd.reserved) return finish(Errno::eopnotsupp, C::hwpt_inv_reserved);
  // The PAGE_SIZE and 2^19 bounds are in Debian's 6.12.117 (hw_pagetable.c:435-440); the
  // newest upstream source we can read checks only the NULL array and zero entry_len.
  const bool bounded = profile_ == Profile::linux_6_12;
  if (cmd.entry_num && (!cmd.data_uptr || !cmd.entry_len ||
                        (bounded && (cmd.entry_len > kPageSize || cmd.entry_num > kEntryNumMax))))
    return finish(Errno::einval, C::hwpt_inv_array);
  Object* o = get_object(cmd.hwpt_id, std::nullopt);
  if (!latest(profile_) && o && o->type != ObjType::hwpt_nested) o = nullptr;
  if (!o) return finish(Errno::enoent, C::hwpt_inv_lookup);
  if (o->type == ObjType::viommu) {
    C why = C::hwpt_inv_ok;
    const Errno e = viommu_invalidate(c, cmd, std::get<ViommuState>(o->data), done, why);
    return finish(e, why);
  }
  if (o->type != ObjType::hwpt_nested) return finish(Errno::einval, C::hwpt_inv_lookup);
  auto& nested = std::get<HwptNestedState>(o->data);
  // selftest.c mock_domain_cache_invalidate_user()
  if (cmd.data_type != kInvalDataSelftest) return finish(Errno::einval, C::hwpt_inv_type);
  C decided = C::hwpt_inv_ok; // the entry-id rule decides when FLAG_ALL let an id pass
  for (uint32_t i = 0; i < cmd.entry_num; ++i) {
    if (cmd.entry_len != sizeof(uapi::iommu_hwpt_invalidate_selftest))
      return finish(Errno::einval, C::hwpt_inv_entry_len);
    const uint64_t off = uint64_t(i) * cmd.entry_len;
    if (cmd.data_uptr != kPayloadPtr || c.call.payload.size() < off + cmd.entry_len)
      return finish(Errno::efault, C::hwpt_inv_entry_len);
    uapi::iommu_hwpt_invalidate_selftest e;
    std::memcpy(&e, c.call.payload.data() + off, sizeof(e));
    if (e.flags & ~1u) return finish(Errno::eopnotsupp, C::hwpt_inv_entry_flags);
    // iommufd_test.h kernel-doc: with IOMMU_TEST_INVALIDATE_FLAG_ALL, @iotlb_id is ignored.
    // (selftest.c checks the id first; the model keeps the documented promise.)
    if (!(e.flags & 1u) && e.iotlb_id >= kMockIotlbNum)
      return finish(Errno::einval, C::hwpt_inv_entry_id);
    if (e.iotlb_id >= kMockIotlbNum) decided = C::hwpt_inv_entry_id;
    if (e.flags & 1u)
      nested.iotlb.fill(0);
    else
      nested.iotlb[e.iotlb_id] = 0;
    ++done;
  }
  return finish(Errno::ok, decided);
}

Errno Machine::md_check_iotlb(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_test_cmd>();
  auto* nested = get<HwptNestedState>(cmd.id, ObjType::hwpt_nested);
  if (!nested) return c.fail(C::md_check_iotlb_rule, Errno::enoent);
  if (cmd.check_iotlb.id >= kMockIotlbNum) return c.fail(C::md_check_iotlb_rule, Errno::einval);
  if (nested->iotlb[cmd.check_iotlb.id] != cmd.check_iotlb.iotlb)
    return c.fail(C::md_check_iotlb_rule, Errno::einval);
  return c.ok(C::md_check_iotlb_rule);
}

// ---------------------------------------------------------------------------------------
// IOMMU_GET_HW_INFO (device.c iommufd_get_hw_info(); selftest.c mock_domain_hw_info())

Errno Machine::get_hw_info(Ctx& c) {
  auto cmd = c.load<uapi::iommu_hw_info>();
  const uint32_t valid_flags = latest(profile_) ? 1u /* INPUT_TYPE */ : 0u;
  if ((cmd.flags & ~valid_flags) || cmd.reserved[0] || cmd.reserved[1] || cmd.reserved[2])
    return c.fail(C::hw_info_flags, Errno::eopnotsupp);
  auto* idev = get<DeviceState>(cmd.dev_id, ObjType::device);
  if (!idev) return c.fail(C::hw_info_dev, Errno::enoent);
  if (latest(profile_) && (cmd.flags & 1u) && cmd.out_data_type != 0 &&
      cmd.out_data_type != 0xfeedbeef)
    return c.fail(C::hw_info_flags, Errno::eopnotsupp);
  const uapi::iommu_test_hw_info info{0, 0xdeadbeef};
  const uint32_t copy_len = std::min<uint32_t>(cmd.data_len, sizeof(info));
  if (cmd.data_len && (cmd.data_uptr != kPayloadPtr || c.call.payload.size() < cmd.data_len))
    return c.fail(C::hw_info_ok, Errno::efault);
  auto& p = c.obs.payload;
  std::fill(p.begin(), p.begin() + cmd.data_len, 0); // clear_user() of the tail
  if (copy_len) std::memcpy(p.data(), &info, copy_len);
  c.out.payload_defined = true;
  c.out.payload.assign(p.begin(), p.begin() + cmd.data_len);
  cmd.data_len = sizeof(info);
  cmd.out_data_type = 0xfeedbeef;                                     // IOMMU_HW_INFO_TYPE_SELFTEST
  cmd.out_capabilities = (idev->dev_flags & kMockDevNoDirty) ? 0 : 1; // IOMMU_HW_CAP_DIRTY_TRACKING
  cmd.out_max_pasid_log2 = (latest(profile_) && (idev->dev_flags & kMockDevPasid)) ? 20 : 0;
  c.respond(cmd);
  return c.ok(C::hw_info_ok);
}

// ---------------------------------------------------------------------------------------
// Dirty tracking (hw_pagetable.c, io_pagetable.c, selftest.c mock_domain_*_dirty*)

Errno Machine::hwpt_set_dirty_tracking(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_hwpt_set_dirty_tracking>();
  if (cmd.flags & ~1u) return c.fail(C::dirty_tracking_flags, Errno::eopnotsupp);
  auto* hwpt = get<HwptPagingState>(cmd.hwpt_id, ObjType::hwpt_paging);
  if (!hwpt) return c.fail(C::dirty_hwpt_lookup, Errno::enoent);
  if (!hwpt->dirty_ops) return c.fail(C::dirty_tracking_ops, Errno::eopnotsupp);
  if (cmd.flags & 1u) hwpt->dirty.clear();
  hwpt->dirty_tracking = cmd.flags & 1u;
  return c.ok(C::dirty_tracking_ok);
}

bool Machine::domain_maps(const HwptPagingState& hwpt, uint64_t iova) const {
  const auto& ioas = std::get<IoasState>(objects_[hwpt.ioas]->data);
  auto it = ioas.areas.upper_bound(iova);
  if (it == ioas.areas.begin()) return false;
  return std::prev(it)->second.last >= iova;
}

Errno Machine::hwpt_get_dirty_bitmap(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_hwpt_get_dirty_bitmap>();
  if ((cmd.flags & ~1u) || cmd.reserved) return c.fail(C::dirty_bitmap_flags, Errno::eopnotsupp);
  auto* hwpt = get<HwptPagingState>(cmd.hwpt_id, ObjType::hwpt_paging);
  if (!hwpt) return c.fail(C::dirty_hwpt_lookup, Errno::enoent);
  // iommufd_check_iova_range()
  const uint64_t align = ioas_alignment(std::get<IoasState>(objects_[hwpt->ioas]->data));
  if (!cmd.length) return c.fail(C::dirty_bitmap_range, Errno::einval);
  const uint64_t last = cmd.iova + cmd.length - 1;
  if (last < cmd.iova) return c.fail(C::dirty_bitmap_range, Errno::eoverflow);
  if ((cmd.iova & (align - 1)) || ((last + 1) & (align - 1)))
    return c.fail(C::dirty_bitmap_range, Errno::einval);
  if (!cmd.page_size) return c.fail(C::dirty_bitmap_range, Errno::einval);
  if ((cmd.iova & (cmd.page_size - 1)) || ((last + 1) & (cmd.page_size - 1)))
    return c.fail(C::dirty_bitmap_range, Errno::einval);
  if (!hwpt->dirty_ops) return c.fail(C::dirty_bitmap_ops, Errno::eopnotsupp);
  // The walk: only while tracking (the mock refuses otherwise, and the error is dropped),
  // contiguous mapped areas from iova, stopping at the first hole.
  auto& p = c.obs.payload;
  if (hwpt->dirty_tracking && cmd.data == kPayloadPtr) {
    const unsigned shift = unsigned(std::countr_zero(cmd.page_size));
    for (uint64_t x = cmd.iova; x <= last && x >= cmd.iova; x += kMockIoPageSize) {
      if (!domain_maps(*hwpt, x)) break;
      const uint64_t idx = x / kMockIoPageSize;
      if (!hwpt->dirty.count(idx)) continue;
      const uint64_t bit = (x - cmd.iova) >> shift;
      if (bit / 8 < p.size()) p[bit / 8] |= uint8_t(1u << (bit % 8));
      if (!(cmd.flags & 1u)) hwpt->dirty.erase(idx);
    }
  }
  c.out.payload_defined = true;
  c.out.payload = p;
  return c.ok(C::dirty_bitmap_ok);
}

Errno Machine::dirty(Ctx& c) {
  auto cmd = c.load<uapi::iommu_test_cmd>();
  const auto& d = cmd.dirty;
  if (!d.page_size || !d.length || (d.iova % d.page_size) || (d.length % d.page_size) || !d.uptr)
    return c.fail(C::test_dirty_rule, Errno::einval);
  const uint64_t max_bits = uint64_t(16) << 20 << 3; // 16M * BITS_PER_BYTE
  if (d.length / d.page_size > max_bits) return c.fail(C::test_dirty_rule, Errno::eoverflow);
  auto* hwpt = get<HwptPagingState>(cmd.id, ObjType::hwpt_paging);
  if (!hwpt) return c.fail(C::test_dirty_rule, Errno::enoent);
  if (!hwpt->dirty_tracking) return c.fail(C::test_dirty_rule, Errno::einval);
  const uint64_t nbits = d.length / d.page_size;
  if (d.uptr != kPayloadPtr || c.call.payload.size() * 8 < nbits)
    return c.fail(C::test_dirty_rule, Errno::efault);
  uint64_t hits = 0;
  for (uint64_t i = 0; i < nbits; ++i) {
    if (!(c.call.payload[i / 8] & (1u << (i % 8)))) continue;
    // The PTE index is (iova + i * page_size) / page_size of the 2048-byte xarray: right
    // only for page_size 2048, as the selftests use.
    const uint64_t idx = (d.iova + i * d.page_size) / d.page_size;
    if (!domain_maps(*hwpt, idx * kMockIoPageSize)) continue;
    hwpt->dirty.insert(idx);
    ++hits;
  }
  cmd.dirty.out_nr_dirty = hits;
  c.respond(cmd);
  return c.ok(C::test_dirty_rule);
}

} // namespace iommuspec::iommufd
