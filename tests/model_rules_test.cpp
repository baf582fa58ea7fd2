// One test (or a few) per rule of the iommufd model, driven through Machine::execute() with
// raw calls: each asserts the errno and state the cited kernel code gives.
#include "harness.h"
#include "iommufd/uapi_structs.h"

#include <gtest/gtest.h>

namespace iommuspec::test {
namespace {

constexpr uint64_t kMem = 0x7f0000000000ull;
constexpr uint32_t kFixedRW = 1 | 2 | 4;

Machine with_mem(Profile p = Profile::linux_latest) {
  Machine m(p);
  m.add_mem(kMem, 1 << 20);
  return m;
}

// ---- dispatch: main.c iommufd_fops_ioctl() ----
TEST(Dispatch, ShortStructIsEinval) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(m.execute(CallBuilder(OpId::ioas_alloc).size(8)).obs.err, Errno::einval);
}
TEST(Dispatch, LongStructWithNonZeroTailIsE2big) {
  Machine m(Profile::linux_6_12);
  auto c = CallBuilder(OpId::ioas_alloc).size(16).call();
  c.tail_nonzero = true;
  EXPECT_EQ(m.execute(c).obs.err, Errno::e2big);
  c.tail_nonzero = false;
  EXPECT_EQ(m.execute(c).obs.err, Errno::ok);
}
TEST(Dispatch, HwptAllocMinSizeIsOffsetofendReserved) {
  // IOCTL_OP(IOMMU_HWPT_ALLOC, ..., __reserved): 24 bytes suffice, 20 do not.
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(m.execute(CallBuilder(OpId::hwpt_alloc).size(20)).obs.err, Errno::einval);
  EXPECT_EQ(m.execute(CallBuilder(OpId::hwpt_alloc).size(24)).obs.err, Errno::enoent); // dev_id 0
}
TEST(Dispatch, NewerIoctlIsEnottyOn612) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(m.execute(CallBuilder(OpId::viommu_alloc)).obs.err, Errno::enotty);
  Machine l(Profile::linux_latest);
  EXPECT_NE(l.execute(CallBuilder(OpId::viommu_alloc)).obs.err, Errno::enotty);
}
TEST(Dispatch, NewerTestOpIsEopnotsuppOn612) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(m.execute(CallBuilder(OpId::trigger_vevent)).obs.err, Errno::eopnotsupp);
}

// ---- objects and DESTROY: main.c ----
TEST(Objects, IdsAreLowestFreeFromOne) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(ioas_alloc(m), 1u);
  EXPECT_EQ(ioas_alloc(m), 2u);
  EXPECT_EQ(ioas_alloc(m), 3u);
  EXPECT_EQ(destroy(m, 2).obs.err, Errno::ok);
  EXPECT_EQ(ioas_alloc(m), 2u); // xa_alloc reuses the lowest free ID
}
TEST(Objects, DestroyUnknownIsEnoent) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(destroy(m, 0).obs.err, Errno::enoent);
  EXPECT_EQ(destroy(m, 77).obs.err, Errno::enoent);
  const auto a = ioas_alloc(m);
  EXPECT_EQ(destroy(m, a).obs.err, Errno::ok);
  EXPECT_EQ(destroy(m, a).obs.err, Errno::enoent);
}
TEST(Objects, MockDomainIdsAndHolds) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  EXPECT_EQ(d.stdev, 2u);
  EXPECT_EQ(d.idev, 3u);
  EXPECT_EQ(d.hwpt, 4u);
  EXPECT_EQ(destroy(m, a).obs.err, Errno::ebusy);      // the auto HWPT holds the IOAS
  EXPECT_EQ(destroy(m, d.hwpt).obs.err, Errno::ebusy); // the device is attached
  EXPECT_EQ(destroy(m, d.idev).obs.err, Errno::ebusy); // the driver holds the idev
  EXPECT_EQ(destroy(m, d.stdev).obs.err, Errno::ok);
  EXPECT_EQ(m.object(d.hwpt), nullptr); // the auto HWPT went with its last device
  EXPECT_EQ(m.object(d.idev), nullptr);
  EXPECT_EQ(destroy(m, a).obs.err, Errno::ok);
  EXPECT_TRUE(m.live_ids().empty());
}
TEST(Objects, TeardownOrderPutsUsersFirst) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  const auto n = hwpt_nested(m, d.idev, p);
  const auto order = m.teardown_order();
  auto pos = [&](uint32_t id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(pos(n), pos(p));
  EXPECT_LT(pos(p), pos(a));
  EXPECT_LT(pos(d.stdev), pos(d.idev));
  EXPECT_TRUE(m.graph_acyclic());
}

// ---- IOAS_MAP: ioas.c iommufd_ioas_map(), io_pagetable.c ----
TEST(IoasMap, CheckOrder) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  // unknown flag before everything
  EXPECT_EQ(map_fixed(m, 999, ~0ull, 0, 0, 8).obs.err, Errno::eopnotsupp);
  // U64_MAX iova before the prot check and the lookup
  EXPECT_EQ(map_fixed(m, 999, ~0ull, 0x1000, kMem, 1).obs.err, Errno::eoverflow);
  EXPECT_EQ(map_fixed(m, 999, 0x1000, 0x1000, kMem, 1).obs.err, Errno::einval); // no prot
  EXPECT_EQ(map_fixed(m, 999, 0x1000, 0x1000, kMem).obs.err, Errno::enoent);
  EXPECT_EQ(map_fixed(m, a, 0x1000, 0, kMem).obs.err, Errno::einval); // length 0
}
TEST(IoasMap, FixedOverlapIsEexistAndReservedIsEinval) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  EXPECT_EQ(map_fixed(m, a, 0x100000, 0x2000, kMem).obs.err, Errno::ok);
  EXPECT_EQ(map_fixed(m, a, 0x101000, 0x2000, kMem).obs.err, Errno::eexist);
  EXPECT_EQ(m.execute(CallBuilder(OpId::add_reserved)
                          .set("id", a)
                          .set("start", 0x200000)
                          .set("length", 0x1000))
                .obs.err,
            Errno::ok);
  EXPECT_EQ(map_fixed(m, a, 0x200000, 0x1000, kMem).obs.err, Errno::einval);
}
TEST(IoasMap, AlignmentAfterMockDomain) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  mock_domain(m, a);
  EXPECT_EQ(m.iova_alignment(a), 2048u);
  EXPECT_EQ(map_fixed(m, a, 0x1000400, 0x800, kMem).obs.err, Errno::einval);         // iova
  EXPECT_EQ(map_fixed(m, a, 0x1000000, 0x400, kMem).obs.err, Errno::einval);         // length
  EXPECT_EQ(map_fixed(m, a, 0x1000000, 0x800, kMem + 0x400).obs.err, Errno::einval); // uva
  EXPECT_EQ(map_fixed(m, a, 0x1000000, 0x800, kMem + 0x800).obs.err, Errno::ok);
}
TEST(IoasMap, PinsOnlyWithADomain) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  EXPECT_EQ(map_fixed(m, a, 0x100000, 0x1000, 0x1000).obs.err, Errno::ok); // lazy: not pinned
  const auto b = ioas_alloc(m);
  mock_domain(m, b);
  EXPECT_EQ(map_fixed(m, b, 0x1000000, 0x1000, 0x1000).obs.err, Errno::efault);
  // A domain joining an IOAS with an unbacked mapping pins it then: EFAULT.
  auto r = m.execute(CallBuilder(OpId::mock_domain).set("id", a));
  EXPECT_EQ(r.obs.err, Errno::eaddrinuse); // 0x100000 is outside the mock aperture
}
TEST(IoasMap, AutomaticIovaIsInsideTheSlots) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  auto r = m.execute(CallBuilder(OpId::ioas_map)
                         .set("ioas_id", a)
                         .set("flags", 2 | 4)
                         .set("length", 0x4000)
                         .set("user_va", kMem));
  ASSERT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_ioas_map s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  EXPECT_EQ(s.iova, 0x4000u); // lowest fit at the natural alignment of 16 KiB, above page 0
  ASSERT_EQ(r.allowed.rules.size(), 1u);
  EXPECT_EQ(r.allowed.rules[0].kind, iommufd::FieldRule::Kind::iova);
  EXPECT_TRUE(r.allowed.rules[0].slots.admits(0x100000));
  EXPECT_FALSE(r.allowed.rules[0].slots.admits(~0ull - 0x2000)); // would wrap past U64_MAX
}
TEST(IoasMap, AllowedRangesSteerAllocationAndEnospc) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  uapi::iommu_iova_range r{0x10000000, 0x10003fff};
  ASSERT_EQ(
      m.execute(CallBuilder(OpId::ioas_allow_iovas).set("ioas_id", a).set("num_iovas", 1).record(r))
          .obs.err,
      Errno::ok);
  auto c = CallBuilder(OpId::ioas_map)
               .set("ioas_id", a)
               .set("flags", 6)
               .set("length", 0x4000)
               .set("user_va", kMem);
  auto x = m.execute(c);
  ASSERT_EQ(x.obs.err, Errno::ok);
  uapi::iommu_ioas_map s;
  std::memcpy(&s, x.obs.arg.data(), sizeof s);
  EXPECT_EQ(s.iova, 0x10000000u);
  EXPECT_EQ(m.execute(c).obs.err, Errno::enospc);
}

// ---- IOAS_UNMAP ----
TEST(IoasUnmap, PartialIsEnoentAndNotAtomic) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  ASSERT_EQ(map_fixed(m, a, 0x100000, 0x1000, kMem).obs.err, Errno::ok);
  ASSERT_EQ(map_fixed(m, a, 0x101000, 0x2000, kMem).obs.err, Errno::ok);
  auto r = m.execute(
      CallBuilder(OpId::ioas_unmap).set("ioas_id", a).set("iova", 0x100000).set("length", 0x2000));
  EXPECT_EQ(r.obs.err, Errno::enoent);
  EXPECT_TRUE(r.allowed.rules.empty()); // length is not written back
  // The first area, inside the range, is gone; the second stays.
  EXPECT_EQ(map_fixed(m, a, 0x100000, 0x1000, kMem).obs.err, Errno::ok);
  EXPECT_EQ(map_fixed(m, a, 0x101000, 0x1000, kMem).obs.err, Errno::eexist);
}
TEST(IoasUnmap, AllOnEmptySucceedsOtherwiseEnoent) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  auto all = m.execute(
      CallBuilder(OpId::ioas_unmap).set("ioas_id", a).set("iova", 0).set("length", ~0ull));
  EXPECT_EQ(all.obs.err, Errno::ok);
  auto none = m.execute(
      CallBuilder(OpId::ioas_unmap).set("ioas_id", a).set("iova", 0).set("length", 0x1000));
  EXPECT_EQ(none.obs.err, Errno::enoent);
  auto ovf = m.execute(
      CallBuilder(OpId::ioas_unmap).set("ioas_id", a).set("iova", 1).set("length", ~0ull));
  EXPECT_EQ(ovf.obs.err, Errno::eoverflow);
}

// ---- IOAS_IOVA_RANGES / ALLOW_IOVAS ----
TEST(IovaRanges, EmsgsizeWritesNumBack) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  ASSERT_EQ(
      m.execute(
           CallBuilder(OpId::add_reserved).set("id", a).set("start", 0x1000).set("length", 0x1000))
          .obs.err,
      Errno::ok);
  auto r = m.execute(CallBuilder(OpId::ioas_iova_ranges)
                         .set("ioas_id", a)
                         .set("num_iovas", 1)
                         .payload(std::vector<uint8_t>(16)));
  EXPECT_EQ(r.obs.err, Errno::emsgsize);
  uapi::iommu_ioas_iova_ranges s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  EXPECT_EQ(s.num_iovas, 2u);
}
TEST(AllowIovas, RangeRules) {
  Machine m = with_mem();
  const auto a = ioas_alloc(m);
  uapi::iommu_iova_range one{0x1000, 0x1000};
  EXPECT_EQ(
      m.execute(
           CallBuilder(OpId::ioas_allow_iovas).set("ioas_id", a).set("num_iovas", 1).record(one))
          .obs.err,
      Errno::einval);
  uapi::iommu_iova_range r1{0x1000, 0x2fff}, r2{0x2000, 0x3fff};
  EXPECT_EQ(m.execute(CallBuilder(OpId::ioas_allow_iovas)
                          .set("ioas_id", a)
                          .set("num_iovas", 2)
                          .record(r1)
                          .record(r2))
                .obs.err,
            Errno::einval);
  mock_domain(m, a);
  EXPECT_EQ(
      m.execute(
           CallBuilder(OpId::ioas_allow_iovas).set("ioas_id", a).set("num_iovas", 1).record(r1))
          .obs.err,
      Errno::eaddrinuse);
}

// ---- OPTION ----
TEST(Option, RlimitBusyWhenObjectsExist) {
  Machine m(Profile::linux_6_12);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::option).set("option_id", 0).set("op", 0).set("val64", 1)).obs.err,
      Errno::ok);
  ioas_alloc(m);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::option).set("option_id", 0).set("op", 0).set("val64", 0)).obs.err,
      Errno::ebusy);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::option).set("option_id", 0).set("op", 0).set("val64", 2)).obs.err,
      Errno::ebusy);
  auto g = m.execute(CallBuilder(OpId::option).set("option_id", 0).set("op", 1));
  EXPECT_EQ(g.obs.err, Errno::ok);
  uapi::iommu_option o;
  std::memcpy(&o, g.obs.arg.data(), sizeof o);
  EXPECT_EQ(o.val64, 1u);
}

// ---- HWPT_ALLOC ----
TEST(HwptAlloc, MissingPtIsEnoentAsTheGeneralErrnoRuleSays) {
  // uapi DOC "General ioctl format": ENOENT for an ID that does not exist (the code answers
  // EINVAL: a kernel-doc/code disagreement the model resolves for the doc).
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::hwpt_alloc).set("dev_id", d.idev).set("pt_id", 999)).obs.err,
      Errno::enoent);
  EXPECT_EQ(m.execute(CallBuilder(OpId::hwpt_alloc).set("dev_id", a).set("pt_id", a)).obs.err,
            Errno::enoent);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::hwpt_alloc).set("dev_id", d.idev).set("pt_id", d.idev)).obs.err,
      Errno::einval);
}
TEST(HwptAlloc, FaultIdValidOnPagingDiffersByProfile) {
  for (auto p : {Profile::linux_6_12, Profile::linux_latest}) {
    Machine m(p);
    const auto a = ioas_alloc(m);
    const auto d = mock_domain(m, a);
    auto f = m.execute(CallBuilder(OpId::fault_queue_alloc));
    uapi::iommu_fault_alloc fa;
    std::memcpy(&fa, f.obs.arg.data(), sizeof fa);
    auto r = m.execute(CallBuilder(OpId::hwpt_alloc)
                           .set("dev_id", d.idev)
                           .set("pt_id", a)
                           .set("flags", 4)
                           .set("fault_id", fa.out_fault_id));
    EXPECT_EQ(r.obs.err, p == Profile::linux_6_12 ? Errno::eopnotsupp : Errno::ok);
  }
}
TEST(HwptAlloc, NestedRules) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto plain = hwpt_alloc(m, d.idev, a, 0);
  uapi::iommu_hwpt_selftest data{1};
  auto nested = [&](uint32_t parent, uint32_t type, uint32_t len, uint32_t flags = 0) {
    return m
        .execute(CallBuilder(OpId::hwpt_alloc)
                     .set("dev_id", d.idev)
                     .set("pt_id", parent)
                     .set("flags", flags)
                     .set("data_type", type)
                     .set("data_len", len)
                     .record(data))
        .obs.err;
  };
  EXPECT_EQ(nested(d.hwpt, 0xdead, 4), Errno::einval); // auto domain parent
  EXPECT_EQ(nested(plain, 0xdead, 4), Errno::einval);  // no NEST_PARENT
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  EXPECT_EQ(nested(p, 0xdead, 4, 1), Errno::eopnotsupp); // NEST_PARENT on a nested HWPT
  EXPECT_EQ(nested(p, 0xdeae, 4), Errno::eopnotsupp);
  EXPECT_EQ(nested(p, 0xdead, 5), Errno::einval);
  EXPECT_EQ(nested(p, 0xdead, 4), Errno::ok);
  EXPECT_EQ(destroy(m, p).obs.err, Errno::ebusy); // the nested child holds it
}

// ---- HWPT_INVALIDATE ----
TEST(HwptInvalidate, EntryNumCountsHandledEntries) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  const auto n = hwpt_nested(m, d.idev, p, 7);
  uapi::iommu_hwpt_invalidate_selftest e0{0, 0}, bad{0, 4}, e2{0, 2};
  auto r = m.execute(CallBuilder(OpId::hwpt_invalidate)
                         .set("hwpt_id", n)
                         .set("data_type", 0xdeadbeef)
                         .set("entry_len", 8)
                         .set("entry_num", 3)
                         .record(e0)
                         .record(bad)
                         .record(e2));
  EXPECT_EQ(r.obs.err, Errno::einval);
  uapi::iommu_hwpt_invalidate s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  EXPECT_EQ(s.entry_num, 1u);
  auto check = [&](uint32_t id, uint32_t v) {
    return m
        .execute(CallBuilder(OpId::md_check_iotlb).set("id", n).set("iotlb_id", id).set("iotlb", v))
        .obs.err;
  };
  EXPECT_EQ(check(0, 0), Errno::ok);
  EXPECT_EQ(check(2, 7), Errno::ok);
}
TEST(HwptInvalidate, PagingHwptByProfile) {
  for (auto p : {Profile::linux_6_12, Profile::linux_latest}) {
    Machine m(p);
    const auto a = ioas_alloc(m);
    const auto d = mock_domain(m, a);
    auto r = m.execute(
        CallBuilder(OpId::hwpt_invalidate).set("hwpt_id", d.hwpt).set("data_type", 0xdeadbeef));
    EXPECT_EQ(r.obs.err, p == Profile::linux_6_12 ? Errno::enoent : Errno::einval);
  }
}
TEST(HwptInvalidate, AllFlagIgnoresTheIdAsDocumented) {
  // iommufd_test.h kernel-doc: with FLAG_ALL, iotlb_id is ignored (selftest.c checks it first:
  // a kernel-doc/code disagreement the model resolves for the doc).
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto n = hwpt_nested(m, d.idev, hwpt_alloc(m, d.idev, a, 1));
  auto inv = [&](uint32_t flags, uint32_t id) {
    uapi::iommu_hwpt_invalidate_selftest e{flags, id};
    return m
        .execute(CallBuilder(OpId::hwpt_invalidate)
                     .set("hwpt_id", n)
                     .set("data_type", 0xdeadbeef)
                     .set("entry_len", 8)
                     .set("entry_num", 1)
                     .record(e))
        .obs.err;
  };
  EXPECT_EQ(inv(1, 4), Errno::ok);
  EXPECT_EQ(inv(0, 4), Errno::einval);
}

// ---- replace and auto domains ----
TEST(Replace, AwayFromAutoDomainDestroysIt) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto p = hwpt_alloc(m, d.idev, a, 0);
  auto r = m.execute(CallBuilder(OpId::mock_domain_replace).set("id", d.stdev).set("pt_id", p));
  EXPECT_EQ(r.obs.err, Errno::ok);
  EXPECT_EQ(m.object(d.hwpt), nullptr);
  EXPECT_EQ(destroy(m, p).obs.err, Errno::ebusy);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::mock_domain_replace).set("id", d.idev).set("pt_id", p)).obs.err,
      Errno::enoent);
}
TEST(Attach, DirtyTrackingHwptRefusesNoDirtyDevice) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto h = hwpt_alloc(m, d.idev, a, 2);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::mock_domain_flags).set("id", h).set("dev_flags", 1)).obs.err,
      Errno::einval);
  EXPECT_EQ(
      m.execute(CallBuilder(OpId::mock_domain_flags).set("id", a).set("dev_flags", 8)).obs.err,
      Errno::einval);
}

// ---- faults ----
TEST(Fault, QueueReadRespond) {
  Machine m(Profile::linux_6_12);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  auto f = m.execute(CallBuilder(OpId::fault_queue_alloc));
  uapi::iommu_fault_alloc fa;
  std::memcpy(&fa, f.obs.arg.data(), sizeof fa);
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  uapi::iommu_hwpt_selftest data{0};
  auto n = m.execute(CallBuilder(OpId::hwpt_alloc)
                         .set("dev_id", d.idev)
                         .set("pt_id", p)
                         .set("flags", 4)
                         .set("fault_id", fa.out_fault_id)
                         .set("data_type", 0xdead)
                         .set("data_len", 4)
                         .record(data));
  ASSERT_EQ(n.obs.err, Errno::ok);
  uapi::iommu_hwpt_alloc na;
  std::memcpy(&na, n.obs.arg.data(), sizeof na);
  ASSERT_EQ(
      m.execute(
           CallBuilder(OpId::mock_domain_replace).set("id", d.stdev).set("pt_id", na.out_hwpt_id))
          .obs.err,
      Errno::ok);
  ASSERT_EQ(
      m.execute(CallBuilder(OpId::trigger_iopf).set("dev_id", d.idev).set("addr", 0x1000)).obs.err,
      Errno::ok);
  auto rd = m.execute(CallBuilder(OpId::fault_read).set("fd", fa.out_fault_fd).set("count", 4));
  ASSERT_EQ(rd.obs.err, Errno::ok);
  ASSERT_EQ(rd.obs.payload.size(), sizeof(uapi::iommu_hwpt_pgfault));
  uapi::iommu_hwpt_pgfault rec;
  std::memcpy(&rec, rd.obs.payload.data(), sizeof rec);
  EXPECT_EQ(rec.cookie, 1u);
  EXPECT_EQ(rec.addr, 0x1000u);
  EXPECT_EQ(rec.flags, 2u); // LAST_PAGE, no PASID
  uapi::iommu_hwpt_page_response bad{9, 0}, good{1, 0};
  EXPECT_EQ(
      m.execute(
           CallBuilder(OpId::fault_respond).set("fd", fa.out_fault_fd).set("count", 1).record(bad))
          .obs.err,
      Errno::einval);
  EXPECT_EQ(
      m.execute(
           CallBuilder(OpId::fault_respond).set("fd", fa.out_fault_fd).set("count", 1).record(good))
          .obs.err,
      Errno::ok);
  EXPECT_EQ(destroy(m, fa.out_fault_id).obs.err, Errno::ebusy); // the fd and the HWPT hold it
}

// ---- newer uAPI ----
TEST(Viommu, VdeviceAndInvalidation) {
  Machine m(Profile::linux_latest);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  const uint32_t viommu = viommu_alloc(m, d.idev, p);
  auto vd = m.execute(CallBuilder(OpId::vdevice_alloc)
                          .set("viommu_id", viommu)
                          .set("dev_id", d.idev)
                          .set("virt_id", 0x99));
  ASSERT_EQ(vd.obs.err, Errno::ok);
  EXPECT_EQ(m.execute(CallBuilder(OpId::vdevice_alloc)
                          .set("viommu_id", viommu)
                          .set("dev_id", d.idev)
                          .set("virt_id", 0x98))
                .obs.err,
            Errno::eexist);
  uapi::iommu_viommu_invalidate_selftest e1{0, 0x99, 1}, e2{0, 0x77, 2};
  auto r = m.execute(CallBuilder(OpId::hwpt_invalidate)
                         .set("hwpt_id", viommu)
                         .set("data_type", 0xdeadbeef)
                         .set("entry_len", 12)
                         .set("entry_num", 2)
                         .record(e1)
                         .record(e2));
  EXPECT_EQ(r.obs.err, Errno::einval);
  uapi::iommu_hwpt_invalidate s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  EXPECT_EQ(s.entry_num, 1u);
  auto cache = [&](uint32_t id, uint32_t val) {
    auto c = CallBuilder(OpId::dev_check_cache).set("id", d.idev).set("cache", val).call();
    std::memcpy(c.arg.data() + 16, &id, 4);
    return m.execute(c).obs.err;
  };
  EXPECT_EQ(cache(1, 0), Errno::ok);
  EXPECT_EQ(cache(2, 0xbaddad), Errno::ok);
  EXPECT_EQ(destroy(m, viommu).obs.err, Errno::ebusy);
  // The device goes: its vDEVICE becomes a tombstone whose ID stays taken.
  uapi::iommu_vdevice_alloc vda;
  std::memcpy(&vda, vd.obs.arg.data(), sizeof vda);
  EXPECT_EQ(destroy(m, d.stdev).obs.err, Errno::ok);
  EXPECT_EQ(destroy(m, vda.out_vdevice_id).obs.err, Errno::enoent);
  EXPECT_NE(ioas_alloc(m), vda.out_vdevice_id);
}
TEST(Veventq, SequenceAndLostEvents) {
  Machine m(Profile::linux_latest);
  const auto a = ioas_alloc(m);
  const auto d = mock_domain(m, a);
  const auto p = hwpt_alloc(m, d.idev, a, 1);
  const uint32_t viommu = viommu_alloc(m, d.idev, p);
  ASSERT_EQ(m.execute(CallBuilder(OpId::vdevice_alloc)
                          .set("viommu_id", viommu)
                          .set("dev_id", d.idev)
                          .set("virt_id", 0x99))
                .obs.err,
            Errno::ok);
  const auto n = hwpt_nested(m, d.idev, viommu);
  ASSERT_EQ(
      m.execute(CallBuilder(OpId::mock_domain_replace).set("id", d.stdev).set("pt_id", n)).obs.err,
      Errno::ok);
  auto q = m.execute(CallBuilder(OpId::veventq_alloc)
                         .set("viommu_id", viommu)
                         .set("type", 0xbeefbeef)
                         .set("veventq_depth", 2));
  ASSERT_EQ(q.obs.err, Errno::ok);
  uapi::iommu_veventq_alloc qa;
  std::memcpy(&qa, q.obs.arg.data(), sizeof qa);
  uapi::test_trigger_vevent tv{d.idev};
  auto trig = CallBuilder(OpId::trigger_vevent).call();
  std::memcpy(trig.arg.data() + 16, &tv, 4);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(m.execute(trig).obs.err, Errno::ok);
  auto rd =
      m.execute(CallBuilder(OpId::veventq_read).set("fd", qa.out_veventq_fd).set("count", 64));
  ASSERT_EQ(rd.obs.payload.size(), 12u + 12u + 8u);
  uapi::iommufd_vevent_header h0, h2;
  uint32_t vid;
  std::memcpy(&h0, rd.obs.payload.data(), 8);
  std::memcpy(&vid, rd.obs.payload.data() + 8, 4);
  std::memcpy(&h2, rd.obs.payload.data() + 24, 8);
  EXPECT_EQ(h0.sequence, 0u);
  EXPECT_EQ(vid, 0x99u);   // the virtual ID reaches the VMM, not the physical one
  EXPECT_EQ(h2.flags, 1u); // LOST_EVENTS
  EXPECT_EQ(h2.sequence, 2u);
}

} // namespace
} // namespace iommuspec::test
