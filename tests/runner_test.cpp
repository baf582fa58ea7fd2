// The runner judges targets: deliberately wrong targets must be caught with the clause
// that they break; a crashing target is an error and the run goes on with a fresh one.
#include "harness.h"
#include "iommufd/uapi_structs.h"
#include "scenario/encode.h"
#include "scenario/scenario.h"

#include <functional>
#include <gtest/gtest.h>

namespace iommuspec::conformance {
namespace {

using test::parse_ok;

using iommufd::Observation;

// The model target with a hook that may corrupt each observation.
class LyingTarget : public Target {
public:
  using Hook = std::function<void(const iommufd::Call&, Observation&, int step)>;
  explicit LyingTarget(Hook h)
      : inner_(make_model_target(iommufd::Profile::linux_6_12)), hook_(h) {}
  TargetInfo info() const override {
    auto i = inner_->info();
    i.name = "liar";
    return i;
  }
  void reset() override {
    inner_->reset();
    step_ = 0;
  }
  uint64_t mem(uint64_t size) override { return inner_->mem(size); }
  Observation execute(const iommufd::Call& c) override {
    auto o = inner_->execute(c);
    hook_(c, o, ++step_);
    return o;
  }

private:
  std::unique_ptr<Target> inner_;
  Hook hook_;
  int step_ = 0;
};

constexpr const char* kInvalidate = R"(iommufd inv
clauses = IOMMUFD.HWPT_INVALIDATE.entry_num
1: ioas_alloc out_ioas_id=A
2: mock_domain id=A out_stdev_id=S out_hwpt_id=H out_idev_id=D
3: hwpt_alloc dev_id=D pt_id=A flags=nest_parent out_hwpt_id=P
4: hwpt_alloc dev_id=D pt_id=P data_type=selftest data={iotlb=1} out_hwpt_id=N
5: hwpt_invalidate hwpt_id=N data_type=selftest entries=[{iotlb_id=1}, {iotlb_id=9}]
6: destroy id=N
)";

TEST(Runner, HonestTargetPasses) {
  LyingTarget t([](const auto&, auto&, int) {});
  const auto r = run_scenario(parse_ok(kInvalidate), t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "pass") << r.message;
}

TEST(Runner, EntryNumThatCountsTooMuchIsCaught) {
  LyingTarget t([](const iommufd::Call& c, Observation& o, int) {
    if (c.op == iommufd::OpId::hwpt_invalidate) {
      uapi::iommu_hwpt_invalidate s;
      std::memcpy(&s, o.arg.data(), sizeof s);
      s.entry_num = 2; // counts the failing entry as handled
      std::memcpy(o.arg.data(), &s, sizeof s);
    }
  });
  const auto r = run_scenario(parse_ok(kInvalidate), t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "fail");
  ASSERT_EQ(r.steps.size(), 6u);
  EXPECT_EQ(r.steps[4].verdict, "fail");
  EXPECT_EQ(r.steps[4].clause, "IOMMUFD.HWPT_INVALIDATE.entry_id");
  EXPECT_NE(r.steps[4].message.find("entry_num"), std::string::npos);
  EXPECT_EQ(r.steps[5].verdict, "not-run");
}

TEST(Runner, WrongErrnoIsCaught) {
  LyingTarget t([](const iommufd::Call& c, Observation& o, int) {
    if (c.op == iommufd::OpId::destroy) o.err = Errno::ebusy;
  });
  const auto r = run_scenario(parse_ok(kInvalidate), t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_EQ(r.steps[5].clause, "IOMMUFD.DESTROY.ok");
}

TEST(Runner, ReusedLiveIdIsCaught) {
  LyingTarget t([](const iommufd::Call& c, Observation& o, int step) {
    if (c.op == iommufd::OpId::ioas_alloc && step == 2) {
      uint32_t one = 1; // the first IOAS is still live
      std::memcpy(o.arg.data() + 8, &one, 4);
    }
  });
  const auto r =
      run_scenario(parse_ok("iommufd ids\nclauses = IOMMUFD.IOAS_ALLOC.ok\n"
                            "1: ioas_alloc out_ioas_id=A\n2: ioas_alloc out_ioas_id=B\n"),
                   t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("fresh"), std::string::npos) << r.message;
}

TEST(Runner, IovaOutsideTheAllowedSlotsIsCaughtAndOthersAreFollowed) {
  const char* text =
      "iommufd alloc\nclauses = IOMMUFD.IOAS_MAP.alloc_ok\n{\n  mem M 0x10000\n}\n"
      "1: ioas_alloc out_ioas_id=A\n"
      "2: ioas_map ioas_id=A flags=readable user_va=M length=0x1000\n"
      "3: ioas_map ioas_id=A flags=readable|fixed_iova user_va=M iova=0x500000 length=0x1000\n";
  auto with_iova = [&](uint64_t iova) {
    LyingTarget t([iova](const iommufd::Call& c, Observation& o, int step) {
      if (c.op == iommufd::OpId::ioas_map && step == 2) std::memcpy(o.arg.data() + 32, &iova, 8);
    });
    return run_scenario(parse_ok(text), t, iommufd::Profile::linux_6_12);
  };
  // Another free IOVA is allowed (the kernel-doc promises none in particular), and the
  // model follows it: the fixed map at step 3 then collides on the target and the model alike.
  EXPECT_EQ(with_iova(0x900000).verdict, "pass");
  const auto collide = with_iova(0x500000);
  EXPECT_EQ(collide.verdict, "fail"); // the model followed: step 3 must be EEXIST
  EXPECT_EQ(collide.steps[2].clause, "IOMMUFD.IOAS_MAP.fixed_exists");
  // An IOVA that wraps is not allowed.
  EXPECT_EQ(with_iova(~0ull - 0x10).verdict, "fail");
}

TEST(Runner, PinnedExpectationThatTheModelRejectsIsAnError) {
  auto t = make_model_target(iommufd::Profile::linux_6_12);
  const auto r = run_scenario(
      parse_ok("iommufd pin\nclauses = IOMMUFD.DESTROY.enoent\n1: destroy id=5 -> ok\n"), *t,
      iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "error");
  EXPECT_NE(r.message.find("model disagrees"), std::string::npos);
}

TEST(Runner, UnsupportedWhenProfileOrFeatureIsMissing) {
  auto t = make_model_target(iommufd::Profile::linux_6_12);
  const auto r1 = run_scenario(
      parse_ok(
          "iommufd p\nclauses = IOMMUFD.DESTROY.ok\nprofile = linux-latest\n1: destroy id=1\n"),
      *t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r1.verdict, "unsupported");
  const auto r2 = run_scenario(
      parse_ok("iommufd f\nclauses = IOMMUFD.DESTROY.ok\nfeatures = viommu\n1: destroy id=1\n"), *t,
      iommufd::Profile::linux_6_12);
  EXPECT_EQ(r2.verdict, "unsupported");
  EXPECT_NE(r2.message.find("viommu"), std::string::npos);
}

// A target that crashes on its 2nd call; the run records an error with the log and goes on
// with a fresh target.
class CrashingTarget : public Target {
public:
  explicit CrashingTarget(int* made) { ++*made; }
  TargetInfo info() const override {
    return {"crasher", {}, scenario::known_features(), iommufd::Profile::linux_6_12};
  }
  void reset() override { calls_ = 0; }
  uint64_t mem(uint64_t) override { return 0x7f0000000000ull; }
  Observation execute(const iommufd::Call& c) override {
    if (++calls_ == 2 && c.op == iommufd::OpId::destroy)
      throw TargetError("target died", "kernel BUG at x.c:1");
    return model_.execute(c).obs;
  }

private:
  int calls_ = 0;
  iommufd::Machine model_{iommufd::Profile::linux_6_12};
};

TEST(Runner, CrashIsAnErrorWithLogAndTheRunGoesOn) {
  std::vector<scenario::Scenario> scs = {
      parse_ok("iommufd a\nclauses = IOMMUFD.DESTROY.ok\n1: ioas_alloc out_ioas_id=A\n2: destroy "
               "id=A\n"),
      parse_ok("iommufd b\nclauses = IOMMUFD.IOAS_ALLOC.ok\n1: ioas_alloc out_ioas_id=A\n")};
  int made = 0;
  RunOptions o;
  o.profile = iommufd::Profile::linux_6_12;
  const auto run = run_all(
      scs, [&] { return std::make_unique<CrashingTarget>(&made); }, o);
  ASSERT_EQ(run.scenarios.size(), 2u);
  EXPECT_EQ(run.scenarios[0].verdict, "error");
  EXPECT_EQ(run.scenarios[0].log, "kernel BUG at x.c:1");
  EXPECT_EQ(run.scenarios[1].verdict, "pass");
  EXPECT_EQ(made, 2); // a fresh target after the crash
}

TEST(Runner, ShardsPartitionTheSuite) {
  std::vector<scenario::Scenario> scs;
  for (int i = 0; i < 7; ++i)
    scs.push_back(parse_ok("iommufd s" + std::to_string(i) +
                           "\nclauses = IOMMUFD.IOAS_ALLOC.ok\n1: ioas_alloc out_ioas_id=A\n"));
  std::set<std::string> seen;
  size_t total = 0;
  for (int k = 0; k < 3; ++k) {
    RunOptions o;
    o.shard_index = k;
    o.shard_count = 3;
    const auto run = run_all(
        scs, [] { return make_model_target(iommufd::Profile::linux_latest); }, o);
    for (const auto& s : run.scenarios)
      seen.insert(s.id);
    total += run.scenarios.size();
  }
  EXPECT_EQ(total, 7u);
  EXPECT_EQ(seen.size(), 7u);
}

} // namespace
} // namespace iommuspec::conformance
