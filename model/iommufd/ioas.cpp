// IOAS ioctls and the io_pagetable rules they rest on: drivers/iommu/iommufd/ioas.c,
// io_pagetable.c, pages.c, vfio_compat.c (iommufd_vfio_ioas), main.c (iommufd_option).
#include "iommufd/machine.h"
#include "iommufd/machine_ctx.h"

#include <algorithm>
#include <bit>

namespace iommuspec::iommufd {
namespace {

constexpr uint64_t kU64Max = ~0ull;
constexpr uint64_t kHugePageSize = 2ull << 20; // HPAGE_SIZE with CONFIG_TRANSPARENT_HUGEPAGE

uint64_t roundup_pow_of_two(uint64_t v) {
  return v <= 1 ? 1 : std::bit_ceil(v);
}

} // namespace

// ---------------------------------------------------------------------------------------
// io_pagetable helpers

// iopt_calculate_iova_alignment(): PAGE_SIZE when huge pages are disabled, else 1, raised
// to each attached domain's smallest page size and each access's alignment.
uint64_t Machine::ioas_alignment(const IoasState& ioas) const {
  uint64_t a = ioas.huge_pages ? 1 : kPageSize;
  if (!ioas.domains.empty()) a = std::max(a, kMockIoPageSize);
  for (ObjId id : ioas.accesses) {
    const Object* o = object(id);
    if (o && (std::get<AccessState>(o->data).flags & kAccessNeedsPinPages))
      a = std::max(a, kPageSize); // device.c iommufd_access_create(): ops->needs_pin_pages
  }
  return a;
}

std::vector<Range> Machine::reserved_ranges(const IoasState& ioas) const {
  std::vector<Range> r;
  r.reserve(ioas.reserved.size());
  for (const auto& x : ioas.reserved)
    r.push_back(x.range);
  return r;
}

bool Machine::user_range_backed(uint64_t va, uint64_t length) const {
  // pin_user_pages works on whole pages.
  const uint64_t first = va & ~(kPageSize - 1);
  const uint64_t last = (va + length - 1) | (kPageSize - 1);
  for (const auto& m : mem_)
    if (m.start <= first && last <= m.last) return true;
  return false;
}

bool Machine::ioas_pins(const IoasState& ioas) const {
  return !ioas.domains.empty();
}

std::vector<Range> Machine::iova_ranges(ObjId id) const {
  const Object* o = object(id);
  if (!o || o->type != ObjType::ioas) return {};
  return holes(reserved_ranges(std::get<IoasState>(o->data)), 0, kU64Max);
}

uint64_t Machine::iova_alignment(ObjId id) const {
  const Object* o = object(id);
  if (!o || o->type != ObjType::ioas) return 0;
  return ioas_alignment(std::get<IoasState>(o->data));
}

// iopt_map_user_pages() / iopt_map_pages(): allocate or check the IOVA, insert the area,
// then fill the attached domains (which pins the user pages).
Errno Machine::iopt_map(Ctx& c, IoasState& ioas, uint64_t& iova, uint64_t user_va, uint64_t length,
                        bool readable, bool writeable, bool fixed, const Field* iova_field) {
  const uint64_t align = ioas_alignment(ioas);
  // pages.c iopt_alloc_pages()
  if (length == 0 || length > kU64Max - kPageSize) return c.fail(C::map_length, Errno::einval);
  if (user_va + length < user_va) return c.fail(C::map_overflow, Errno::eoverflow);
  // iopt_alloc_area_pages()
  if (length & (align - 1)) return c.fail(C::map_length, Errno::einval);

  std::vector<Range> used = reserved_ranges(ioas);
  const auto reserved_end = used.size();
  for (const auto& [s, a] : ioas.areas)
    used.push_back({a.start, a.last});

  if (!fixed) {
    // iopt_alloc_iova()
    if (length >= kU64Max / 2) return c.fail(C::map_overflow, Errno::eoverflow);
    uint64_t natural = roundup_pow_of_two(length);
    if (user_va) natural = std::min<uint64_t>(natural, 1ull << std::countr_zero(user_va));
    natural = std::min(natural, kHugePageSize);
    if (natural < align) return c.fail(C::map_alloc_align, Errno::einval);
    const uint64_t page_offset = user_va % kPageSize;
    // interval_tree_for_each_span() merges adjacent allowed ranges into one span.
    std::vector<Range> spans = ioas.allowed;
    std::sort(spans.begin(), spans.end(),
              [](const Range& a, const Range& b) { return a.start < b.start; });
    std::vector<Range> merged;
    for (const auto& r : spans) {
      if (!merged.empty() && merged.back().last != kU64Max && merged.back().last + 1 >= r.start)
        merged.back().last = std::max(merged.back().last, r.last);
      else
        merged.push_back(r);
    }
    // The promise: any free IOVA inside the allowed spans (everywhere when there are none),
    // aligned for the IOAS.
    IovaSlots slots;
    slots.length = length;
    slots.align = align;
    if (merged.empty()) slots.free = holes(used, 0, kU64Max);
    for (const auto& span : merged)
      for (const auto& hole : holes(used, span.start, span.last))
        slots.free.push_back(hole);
    // The code's choice: the lowest fit in [PAGE_SIZE, ULONG_MAX - PAGE_SIZE], aligned to
    // the natural alignment and OR-ed with the page offset of user_va.
    if (merged.empty()) merged.push_back({0, kU64Max});
    std::optional<uint64_t> found;
    for (const auto& span : merged) {
      if (span.last < kPageSize || span.start > kU64Max - kPageSize) continue;
      for (const auto& hole : holes(used, std::max<uint64_t>(span.start, kPageSize),
                                    std::min(span.last, kU64Max - kPageSize))) {
        uint64_t start = hole.start;
        if (start + (natural - 1) < start) continue;
        start = ((start + natural - 1) & ~(natural - 1)) | page_offset;
        if (start >= hole.last || hole.last - start < length - 1) continue;
        found = start;
        break;
      }
      if (found) break;
    }
    if (!found) return c.fail(C::map_alloc_space, Errno::enospc);
    iova = *found;
    if (auto t = c.followed(iova_field); t && slots.admits(*t)) iova = *t;
    if (iova_field) c.rule({iova_field, FieldRule::Kind::iova, 0, slots});
  } else {
    // iopt_check_iova()
    if (iova & (align - 1)) return c.fail(C::map_fixed_align, Errno::einval);
    if (iova + (length - 1) < iova) return c.fail(C::map_overflow, Errno::eoverflow);
    const Range r{iova, iova + length - 1};
    for (size_t i = 0; i < reserved_end; ++i)
      if (used[i].overlaps(r)) return c.fail(C::map_fixed_reserved, Errno::einval);
    for (size_t i = reserved_end; i < used.size(); ++i)
      if (used[i].overlaps(r)) return c.fail(C::map_fixed_exists, Errno::eexist);
  }
  // iopt_insert_area(): the sub-page offset of the user pages must suit the alignment.
  if ((user_va % kPageSize) & (align - 1)) return c.fail(C::map_fixed_align, Errno::einval);
  // iopt_fill_domains_pages(): domains need the pages now, so they are pinned.
  if (ioas_pins(ioas) && !user_range_backed(user_va, length))
    return c.fail(C::map_fault, Errno::efault);
  Area a;
  a.start = iova;
  a.last = iova + length - 1;
  a.user_va = user_va;
  a.readable = readable;
  a.writeable = writeable;
  a.pages_writable = writeable;
  a.pages_id = ++next_pages_id_;
  ioas.areas[iova] = a;
  return Errno::ok;
}

// iopt_unmap_iova_range(): every area inside [start, last] goes; the first area that
// sticks out stops the walk with -ENOENT, after the ones before it were unmapped.
Errno Machine::iopt_unmap(IoasState& ioas, uint64_t start, uint64_t last, uint64_t& unmapped,
                          ObjId ioas_id) {
  unmapped = 0;
  auto it = ioas.areas.lower_bound(start);
  if (it != ioas.areas.begin()) {
    auto prev = std::prev(it);
    if (prev->second.last >= start) it = prev;
  }
  while (it != ioas.areas.end() && it->second.start <= last) {
    const Area& a = it->second;
    if (a.start < start || a.last > last) return Errno::enoent;
    // An area pinned by an internal access (a HW queue, newer uAPI) cannot go: EBUSY.
    if (ioas_id && range_locked(ioas_id, a.start, a.last)) return Errno::ebusy;
    // iommufd_access_notify_unmap(): the selftest access (iommufd_test_access_unmap())
    // drops every item that intersects the area, then the unmap goes on.
    for (ObjId id : ioas.accesses) {
      Object* o = get_object(id, ObjType::access);
      if (!o) continue;
      std::erase_if(std::get<AccessState>(o->data).items, [&](const auto& it2) {
        return Range{it2.second.iova, it2.second.iova + it2.second.length - 1}.overlaps(
            {a.start, a.last});
      });
    }
    unmapped += a.last - a.start + 1;
    it = ioas.areas.erase(it);
  }
  return Errno::ok;
}

// ---------------------------------------------------------------------------------------
// ioctls

Errno Machine::ioas_alloc(Ctx& c) {
  auto cmd = c.load<uapi::iommu_ioas_alloc>();
  if (cmd.flags) return c.fail(C::ioas_alloc_flags, Errno::eopnotsupp);
  Object& o = alloc_object(ObjType::ioas, IoasState{});
  cmd.out_ioas_id = o.id;
  c.respond(cmd);
  return c.ok(C::ioas_alloc_ok);
}

Errno Machine::ioas_iova_ranges(Ctx& c) {
  auto cmd = c.load<uapi::iommu_ioas_iova_ranges>();
  if (cmd.reserved) return c.fail(C::iova_ranges_reserved, Errno::eopnotsupp);
  auto* ioas = get<IoasState>(cmd.ioas_id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  const uint32_t max_iovas = cmd.num_iovas;
  const auto ranges = holes(reserved_ranges(*ioas), 0, kU64Max);
  cmd.num_iovas = uint32_t(ranges.size());
  cmd.out_iova_alignment = ioas_alignment(*ioas);
  // copy_to_user() of each range that fits, then the struct; then -EMSGSIZE if short.
  const size_t fit = std::min<size_t>(max_iovas, ranges.size());
  auto& p = c.obs.payload;
  if (p.size() < fit * 16) p.resize(fit * 16, 0);
  for (size_t i = 0; i < fit; ++i) {
    uapi::iommu_iova_range r{ranges[i].start, ranges[i].last};
    std::memcpy(p.data() + i * 16, &r, 16);
  }
  c.out.payload_defined = true;
  c.out.payload.assign(p.begin(), p.begin() + fit * 16);
  c.respond(cmd);
  if (cmd.num_iovas > max_iovas) return c.fail(C::iova_ranges_emsgsize, Errno::emsgsize);
  return c.ok(C::iova_ranges_ok);
}

Errno Machine::ioas_allow_iovas(Ctx& c) {
  const auto cmd = c.load<uapi::iommu_ioas_allow_iovas>();
  if (cmd.reserved) return c.fail(C::allow_iovas_reserved, Errno::eopnotsupp);
  auto* ioas = get<IoasState>(cmd.ioas_id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  // iommufd_ioas_load_iovas()
  std::vector<Range> list;
  for (uint32_t i = 0; i < cmd.num_iovas; ++i) {
    if (cmd.allowed_iovas != kPayloadPtr || c.call.payload.size() < (i + 1) * 16ull)
      return c.fail(C::allow_iovas_range, Errno::efault);
    uapi::iommu_iova_range r;
    std::memcpy(&r, c.call.payload.data() + i * 16, 16);
    if (r.start >= r.last) return c.fail(C::allow_iovas_range, Errno::einval);
    const Range nr{r.start, r.last};
    for (const auto& x : list)
      if (x.overlaps(nr)) return c.fail(C::allow_iovas_range, Errno::einval);
    list.push_back(nr);
  }
  // iopt_set_allow_iova()
  for (const auto& a : list)
    for (const auto& res : ioas->reserved)
      if (a.overlaps(res.range)) return c.fail(C::allow_iovas_conflict, Errno::eaddrinuse);
  ioas->allowed = std::move(list);
  return c.ok(C::allow_iovas_ok);
}

Errno Machine::ioas_map(Ctx& c) {
  auto cmd = c.load<uapi::iommu_ioas_map>();
  constexpr uint32_t kFixed = 1, kWrite = 2, kRead = 4;
  if ((cmd.flags & ~(kFixed | kWrite | kRead)) || cmd.reserved)
    return c.fail(C::map_flags, Errno::eopnotsupp);
  if (cmd.iova >= kU64Max || cmd.length >= kU64Max)
    return c.fail(C::map_overflow, Errno::eoverflow);
  if (!(cmd.flags & (kWrite | kRead))) return c.fail(C::map_prot, Errno::einval);
  auto* ioas = get<IoasState>(cmd.ioas_id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  uint64_t iova = cmd.iova;
  const Errno e = iopt_map(c, *ioas, iova, cmd.user_va, cmd.length, cmd.flags & kRead,
                           cmd.flags & kWrite, cmd.flags & kFixed, find_field(c.op, "iova"));
  if (e != Errno::ok) return e;
  cmd.iova = iova;
  c.respond(cmd);
  return c.ok(cmd.flags & kFixed ? C::map_ok : C::map_alloc_ok);
}

Errno Machine::ioas_copy(Ctx& c) {
  auto cmd = c.load<uapi::iommu_ioas_copy>();
  constexpr uint32_t kFixed = 1, kWrite = 2, kRead = 4;
  if (cmd.flags & ~(kFixed | kWrite | kRead)) return c.fail(C::copy_flags, Errno::eopnotsupp);
  if (cmd.length >= kU64Max || cmd.src_iova >= kU64Max || cmd.dst_iova >= kU64Max)
    return c.fail(C::copy_overflow, Errno::eoverflow);
  if (!(cmd.flags & (kWrite | kRead))) return c.fail(C::copy_prot, Errno::einval);
  auto* src = get<IoasState>(cmd.src_ioas_id, ObjType::ioas);
  if (!src) return c.fail(C::ioas_lookup, Errno::enoent);
  // iopt_get_pages(): the source range is covered by contiguous areas.
  if (!cmd.length) return c.fail(C::copy_src, Errno::einval);
  uint64_t src_last = cmd.src_iova + cmd.length - 1;
  if (src_last < cmd.src_iova) return c.fail(C::copy_overflow, Errno::eoverflow);
  std::vector<Area> pieces;
  uint64_t cur = cmd.src_iova;
  while (true) {
    auto it = src->areas.upper_bound(cur);
    if (it == src->areas.begin()) return c.fail(C::copy_src, Errno::enoent);
    const Area& a = std::prev(it)->second;
    if (a.last < cur) return c.fail(C::copy_src, Errno::enoent);
    Area piece = a;
    piece.user_va = a.user_va + (cur - a.start);
    piece.start = cur;
    piece.last = std::min(a.last, src_last);
    pieces.push_back(piece);
    if (piece.last == src_last) break;
    cur = piece.last + 1;
  }
  auto* dst = get<IoasState>(cmd.dst_ioas_id, ObjType::ioas);
  if (!dst) return c.fail(C::ioas_lookup, Errno::enoent);
  // iopt_map_pages() with the pages list of the source: one area per piece; the IOVA
  // checks come first, then iopt_insert_area() refuses WRITE on pages not writable.
  const bool write = cmd.flags & kWrite;
  const uint64_t align = ioas_alignment(*dst);
  if ((cmd.length & (align - 1))) return c.fail(C::map_length, Errno::einval);
  uint64_t iova = cmd.dst_iova;
  {
    // Reuse the IOVA rules of IOAS_MAP on a probe copy, then insert the pieces.
    IoasState probe = *dst;
    const Errno e = iopt_map(c, probe, iova, pieces.front().user_va, cmd.length, cmd.flags & kRead,
                             write, cmd.flags & kFixed, find_field(c.op, "dst_iova"));
    if (e != Errno::ok && e != Errno::efault) return e;
  }
  for (const auto& p : pieces)
    if (write && !p.pages_writable) return c.fail(C::copy_write, Errno::eperm);
  uint64_t at = iova;
  for (const auto& p : pieces) {
    Area a = p;
    const uint64_t len = p.last - p.start + 1;
    a.start = at;
    a.last = at + len - 1;
    a.readable = cmd.flags & kRead;
    a.writeable = write;
    dst->areas[a.start] = a;
    at += len;
  }
  cmd.dst_iova = iova;
  c.respond(cmd);
  return c.ok(C::copy_ok);
}

Errno Machine::ioas_unmap(Ctx& c) {
  auto cmd = c.load<uapi::iommu_ioas_unmap>();
  auto* ioas = get<IoasState>(cmd.ioas_id, ObjType::ioas);
  if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
  uint64_t unmapped = 0;
  if (cmd.iova == 0 && cmd.length == kU64Max) {
    if (Errno e = iopt_unmap(*ioas, 0, kU64Max, unmapped, cmd.ioas_id); e != Errno::ok)
      return c.fail(e == Errno::ebusy ? C::hw_queue_ok : C::unmap_partial, e);
    cmd.length = unmapped;
    c.respond(cmd);
    return c.ok(C::unmap_all);
  }
  if (cmd.iova >= kU64Max || cmd.length >= kU64Max)
    return c.fail(C::unmap_overflow, Errno::eoverflow);
  if (!cmd.length) return c.fail(C::unmap_length, Errno::einval);
  if (cmd.iova + (cmd.length - 1) < cmd.iova) return c.fail(C::unmap_overflow, Errno::eoverflow);
  if (Errno e = iopt_unmap(*ioas, cmd.iova, cmd.iova + cmd.length - 1, unmapped, cmd.ioas_id);
      e != Errno::ok)
    return c.fail(e == Errno::ebusy ? C::hw_queue_ok : C::unmap_partial, e);
  if (!unmapped) return c.fail(C::unmap_absent, Errno::enoent);
  cmd.length = unmapped;
  c.respond(cmd);
  return c.ok(C::unmap_ok);
}

Errno Machine::option(Ctx& c) {
  auto cmd = c.load<uapi::iommu_option>();
  constexpr uint32_t kRlimitMode = 0, kHugePages = 1;
  constexpr uint16_t kSet = 0, kGet = 1;
  if (cmd.reserved) return c.fail(C::option_reserved, Errno::eopnotsupp);
  if (cmd.option_id == kRlimitMode) {
    // ioas.c iommufd_option_rlimit_mode()
    if (cmd.object_id) return c.fail(C::option_rlimit_object, Errno::eopnotsupp);
    if (cmd.op == kGet) {
      cmd.val64 = rlimit_mm_ ? 1 : 0;
    } else if (cmd.op == kSet) {
      // capable(CAP_SYS_RESOURCE): the agent runs as root.
      if (!live_ids().empty()) return c.fail(C::option_rlimit_busy, Errno::ebusy);
      if (cmd.val64 > 1) return c.fail(C::option_value, Errno::einval);
      rlimit_mm_ = cmd.val64 == 1;
    } else {
      return c.fail(C::option_op, Errno::eopnotsupp);
    }
  } else if (cmd.option_id == kHugePages) {
    // ioas.c iommufd_ioas_option(): the IOAS lookup comes before the op checks.
    auto* ioas = get<IoasState>(cmd.object_id, ObjType::ioas);
    if (!ioas) return c.fail(C::ioas_lookup, Errno::enoent);
    if (cmd.op == kGet) {
      cmd.val64 = ioas->huge_pages ? 1 : 0;
    } else if (cmd.op == kSet) {
      if (cmd.val64 == 0) {
        // iopt_disable_large_pages(): a no-op when already disabled; refused once domains
        // hold mappings; then iopt_calculate_iova_alignment() raises the alignment to
        // PAGE_SIZE and refuses (EADDRINUSE, flag restored) if a mapping is misaligned.
        if (ioas->huge_pages) {
          if (!ioas->domains.empty() && !ioas->areas.empty())
            return c.fail(C::option_huge_busy, Errno::einval);
          const uint64_t cur = ioas_alignment(*ioas);
          ioas->huge_pages = false;
          const uint64_t next = ioas_alignment(*ioas);
          if (next > cur)
            for (const auto& [s, a] : ioas->areas)
              if ((a.start & (next - 1)) || ((a.last + 1) & (next - 1)) ||
                  ((a.user_va % kPageSize) & (next - 1))) {
                ioas->huge_pages = true;
                return c.fail(C::option_huge_align, Errno::eaddrinuse);
              }
        }
      } else if (cmd.val64 == 1) {
        ioas->huge_pages = true;
      } else {
        return c.fail(C::option_value, Errno::einval);
      }
    } else {
      return c.fail(C::option_op, Errno::eopnotsupp);
    }
  } else {
    return c.fail(C::option_id, Errno::eopnotsupp);
  }
  // main.c iommufd_option(): only val64 is copied back.
  c.write_back(cmd, "val64");
  return c.ok(C::option_ok);
}

Errno Machine::vfio_ioas(Ctx& c) {
  auto cmd = c.load<uapi::iommu_vfio_ioas>();
  constexpr uint16_t kGet = 0, kSet = 1, kClear = 2;
  if (cmd.reserved) return c.fail(C::vfio_ioas_reserved, Errno::eopnotsupp);
  switch (cmd.op) {
  case kGet:
    if (!vfio_ioas_ || !get_object(vfio_ioas_, ObjType::ioas))
      return c.fail(C::vfio_ioas_get_none, Errno::enodev);
    cmd.ioas_id = vfio_ioas_;
    c.respond(cmd);
    return c.ok(C::vfio_ioas_ok);
  case kSet:
    if (!get_object(cmd.ioas_id, ObjType::ioas)) return c.fail(C::ioas_lookup, Errno::enoent);
    vfio_ioas_ = cmd.ioas_id;
    return c.ok(C::vfio_ioas_ok);
  case kClear:
    vfio_ioas_ = 0;
    return c.ok(C::vfio_ioas_ok);
  default:
    return c.fail(C::vfio_ioas_op, Errno::eopnotsupp);
  }
}

} // namespace iommuspec::iommufd
