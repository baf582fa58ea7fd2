// Stateful property test (rc::state) of the iommufd model: random sequences of uAPI calls
// keep its invariants. Commands name objects by creation order ("handles"), as scenarios
// name them, so the abstract model needs no knowledge of the IDs the machine picks:
// - a new ID is fresh: in [1, 2^31-1] and no live object's;
// - DESTROY fails with EBUSY exactly when something holds the object, and ENOENT exactly
//   when no object has the ID;
// - the dependency graph stays acyclic and teardown order covers every live object;
// - mappings never overlap each other or a reserved range, respect the IOAS alignment, and
//   automatically placed ones stay inside the allowed ranges.
#include "harness.h"
#include "iommufd/uapi_structs.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

namespace iommuspec::test {
namespace {

constexpr uint64_t kMem = 0x7f0000000000ull;

struct Model {
  size_t handles = 0; // objects named so far (some may have failed: ID 0)
};

struct Sut {
  Sut() : m(Profile::linux_latest) { m.add_mem(kMem, 1 << 22); }
  Machine m;
  std::vector<uint32_t> ids; // handle -> ID (0: creation failed)
};

using Cmd = rc::state::Command<Model, Sut>;

uint32_t pick(const Sut& s, size_t handle) {
  return handle < s.ids.size() ? s.ids[handle] : 0;
}

rc::Gen<size_t> handle(const Model& m) {
  return m.handles ? rc::gen::inRange<size_t>(0, m.handles + 1) : rc::gen::just<size_t>(0);
}

void check_invariants(const Machine& m) {
  RC_ASSERT(m.graph_acyclic());
  const auto live = m.live_ids();
  auto order = m.teardown_order();
  std::sort(order.begin(), order.end());
  RC_ASSERT(order == live);
  for (auto id : live) {
    const auto* o = m.object(id);
    if (o->type != iommufd::ObjType::ioas) continue;
    const auto& ioas = std::get<iommufd::IoasState>(o->data);
    const uint64_t align = m.iova_alignment(id);
    uint64_t prev_last = 0;
    bool first = true;
    for (const auto& [start, a] : ioas.areas) {
      RC_ASSERT(a.start <= a.last);
      RC_ASSERT(first || a.start > prev_last); // disjoint, sorted
      RC_ASSERT((a.start % align) == 0);
      RC_ASSERT(((a.last + 1) % align) == 0);
      for (const auto& r : ioas.reserved)
        RC_ASSERT(!r.range.overlaps({a.start, a.last}));
      prev_last = a.last;
      first = false;
    }
  }
}

// Every successful creation returns fresh IDs; record them as the next handles.
void record(Sut& s, const std::vector<uint32_t>& before, std::vector<uint32_t> created) {
  for (auto id : created) {
    if (id) {
      RC_ASSERT(id >= 1u && id <= 0x7fffffffu);
      RC_ASSERT(std::find(before.begin(), before.end(), id) == before.end());
    }
    s.ids.push_back(id);
  }
  check_invariants(s.m);
}

template <typename S>
S as(const Machine::Result& r) {
  S s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s;
}

struct IoasAlloc : Cmd {
  void apply(Model& m) const override { m.handles += 1; }
  void run(const Model&, Sut& s) const override {
    const auto before = s.m.live_ids();
    const auto r = s.m.execute(CallBuilder(OpId::ioas_alloc));
    RC_ASSERT(r.obs.err == Errno::ok);
    record(s, before, {as<uapi::iommu_ioas_alloc>(r).out_ioas_id});
  }
  void show(std::ostream& os) const override { os << "ioas_alloc"; }
};

struct MockDomain : Cmd {
  size_t pt;
  uint32_t flags;
  explicit MockDomain(const Model& m)
      : pt(*handle(m)), flags(*rc::gen::element<uint32_t>(0, 1, 2, 4)) {}
  void apply(Model& m) const override { m.handles += 3; }
  void run(const Model&, Sut& s) const override {
    const auto before = s.m.live_ids();
    const auto r = s.m.execute(
        CallBuilder(OpId::mock_domain_flags).set("id", pick(s, pt)).set("dev_flags", flags));
    const auto c = as<uapi::iommu_test_cmd>(r);
    if (r.obs.err != Errno::ok) return record(s, before, {0, 0, 0});
    // The HWPT is fresh only when an automatic one was made.
    const bool existing =
        std::find(before.begin(), before.end(), c.mock_domain.out_hwpt_id) != before.end();
    record(s, before,
           {c.mock_domain.out_stdev_id, existing ? 0u : c.mock_domain.out_hwpt_id,
            c.mock_domain.out_idev_id});
    if (existing)
      s.ids.back() = c.mock_domain.out_idev_id, s.ids[s.ids.size() - 2] = c.mock_domain.out_hwpt_id;
  }
  void show(std::ostream& os) const override {
    os << "mock_domain_flags id=h" << pt << " dev_flags=" << flags;
  }
};

struct HwptAlloc : Cmd {
  size_t dev, pt;
  uint32_t flags;
  bool nested;
  explicit HwptAlloc(const Model& m)
      : dev(*handle(m)), pt(*handle(m)), flags(*rc::gen::element<uint32_t>(0, 1, 2, 3, 4, 8)),
        nested(*rc::gen::arbitrary<bool>()) {}
  void apply(Model& m) const override { m.handles += 1; }
  void run(const Model&, Sut& s) const override {
    const auto before = s.m.live_ids();
    CallBuilder c(OpId::hwpt_alloc);
    c.set("dev_id", pick(s, dev))
        .set("pt_id", pick(s, pt))
        .set("flags", nested ? flags & 4 : flags);
    if (nested) c.set("data_type", 0xdead).set("data_len", 4).record(uapi::iommu_hwpt_selftest{7});
    const auto r = s.m.execute(c);
    record(s, before, {r.obs.err == Errno::ok ? as<uapi::iommu_hwpt_alloc>(r).out_hwpt_id : 0u});
  }
  void show(std::ostream& os) const override {
    os << "hwpt_alloc dev_id=h" << dev << " pt_id=h" << pt << " flags=" << flags
       << (nested ? " nested" : "");
  }
};

struct Replace : Cmd {
  size_t stdev, pt;
  explicit Replace(const Model& m) : stdev(*handle(m)), pt(*handle(m)) {}
  void run(const Model&, Sut& s) const override {
    s.m.execute(
        CallBuilder(OpId::mock_domain_replace).set("id", pick(s, stdev)).set("pt_id", pick(s, pt)));
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override {
    os << "mock_domain_replace id=h" << stdev << " pt_id=h" << pt;
  }
};

struct Map : Cmd {
  size_t ioas;
  bool fixed;
  uint64_t iova, length, offset;
  explicit Map(const Model& m)
      : ioas(*handle(m)), fixed(*rc::gen::arbitrary<bool>()),
        iova(*rc::gen::element<uint64_t>(0, 0x1000, 0x800, 0x1000000, 0x1001000, 0x7ffff000,
                                         0x80000000)),
        length(*rc::gen::element<uint64_t>(0x800, 0x1000, 0x3000, 0x10000)),
        offset(*rc::gen::element<uint64_t>(0, 0x800, 0x1000)) {}
  void run(const Model&, Sut& s) const override {
    const uint32_t id = pick(s, ioas);
    const auto* o = s.m.object(id);
    std::vector<Range> allowed;
    if (o && o->type == iommufd::ObjType::ioas)
      allowed = std::get<iommufd::IoasState>(o->data).allowed;
    const auto r = s.m.execute(CallBuilder(OpId::ioas_map)
                                   .set("ioas_id", id)
                                   .set("flags", (fixed ? 1 : 0) | 2 | 4)
                                   .set("iova", iova)
                                   .set("length", length)
                                   .set("user_va", kMem + offset));
    if (r.obs.err == Errno::ok && !fixed && !allowed.empty()) {
      const auto got = as<uapi::iommu_ioas_map>(r).iova;
      bool inside = false;
      for (const auto& a : allowed)
        inside |= a.contains(Range{got, got + length - 1});
      RC_ASSERT(inside);
    }
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override {
    os << "ioas_map ioas_id=h" << ioas << (fixed ? " fixed" : "") << " iova=" << iova
       << " length=" << length;
  }
};

struct Unmap : Cmd {
  size_t ioas;
  uint64_t iova, length;
  explicit Unmap(const Model& m)
      : ioas(*handle(m)), iova(*rc::gen::element<uint64_t>(0, 0x1000, 0x1000000)),
        length(*rc::gen::element<uint64_t>(0x1000, 0x10000, 0x7fffffff, ~0ull)) {}
  void run(const Model&, Sut& s) const override {
    s.m.execute(CallBuilder(OpId::ioas_unmap)
                    .set("ioas_id", pick(s, ioas))
                    .set("iova", iova)
                    .set("length", length));
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override {
    os << "ioas_unmap ioas_id=h" << ioas << " iova=" << iova << " length=" << length;
  }
};

struct AllowIovas : Cmd {
  size_t ioas;
  uint64_t start;
  explicit AllowIovas(const Model& m)
      : ioas(*handle(m)), start(*rc::gen::element<uint64_t>(0x2000000, 0x10000000, 0x100000000)) {}
  void run(const Model&, Sut& s) const override {
    s.m.execute(CallBuilder(OpId::ioas_allow_iovas)
                    .set("ioas_id", pick(s, ioas))
                    .set("num_iovas", 1)
                    .record(uapi::iommu_iova_range{start, start + 0xfffff}));
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override {
    os << "ioas_allow_iovas ioas_id=h" << ioas << " start=" << start;
  }
};

struct AddReserved : Cmd {
  size_t ioas;
  uint64_t start;
  explicit AddReserved(const Model& m)
      : ioas(*handle(m)), start(*rc::gen::element<uint64_t>(0x1000, 0x1000000, 0x2000000)) {}
  void run(const Model&, Sut& s) const override {
    s.m.execute(CallBuilder(OpId::add_reserved)
                    .set("id", pick(s, ioas))
                    .set("start", start)
                    .set("length", 0x10000));
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override {
    os << "add_reserved id=h" << ioas << " start=" << start;
  }
};

struct Destroy : Cmd {
  size_t h;
  explicit Destroy(const Model& m) : h(*handle(m)) {}
  void run(const Model&, Sut& s) const override {
    const uint32_t id = pick(s, h);
    const auto* o = s.m.object(id);
    const bool live = o && !o->tombstone;
    const uint32_t users = s.m.users(id);
    const auto r = destroy(s.m, id);
    if (!live)
      RC_ASSERT(r.obs.err == Errno::enoent);
    else if (users)
      RC_ASSERT(r.obs.err == Errno::ebusy);
    else
      RC_ASSERT(r.obs.err == Errno::ok);
    // (RC_ASSERT decomposes its expression: keep short-circuits outside it.)
    const auto* after = s.m.object(id);
    const bool gone = after == nullptr || after->tombstone;
    if (r.obs.err == Errno::ok) RC_ASSERT(gone);
    if (r.obs.err == Errno::ebusy) RC_ASSERT(!gone);
    check_invariants(s.m);
  }
  void show(std::ostream& os) const override { os << "destroy id=h" << h; }
};

RC_GTEST_PROP(ModelState, RandomUapiSequencesKeepInvariants, ()) {
  Model initial;
  Sut sut;
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<IoasAlloc, MockDomain, HwptAlloc, Replace, Map,
                                                     Unmap, AllowIovas, AddReserved, Destroy>());
}

} // namespace
} // namespace iommuspec::test
