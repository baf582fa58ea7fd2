// The iommufd trace generator (generators/iommufd_trace.cpp) and fuzzing with it: generated
// traces are valid scenarios that pass on the model and mostly name live objects; and two
// deliberately wrong implementations of IOMMU_HWPT_INVALIDATE are found and shrunk.
#include "fuzz/fuzz.h"
#include "iommufd/machine.h"
#include "runner/runner.h"
#include "scenario/encode.h"
#include "trace.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <set>
#include <unistd.h>

namespace iommuspec::generators {
namespace {

using conformance::Target;
using conformance::TargetInfo;
using iommufd::Profile;

const std::vector<Profile> kProfiles = {Profile::linux_6_12, Profile::linux_latest};

TraceOptions options(Profile profile, bool small = false) {
  TraceOptions o;
  o.area = "iommufd";
  o.profile = profile;
  o.small = small;
  o.features = conformance::make_model_target(profile)->info().features;
  return o;
}

std::string lint_text(const scenario::Scenario& sc) {
  std::vector<scenario::Diagnostic> d;
  scenario::lint(sc, d);
  std::string s;
  for (const auto& x : d)
    s += x.text() + "\n";
  return s;
}

results::ScenarioResult on_model(const scenario::Scenario& sc, Profile profile) {
  auto model = conformance::make_model_target(profile);
  return conformance::run_scenario(sc, *model, profile);
}

RC_GTEST_PROP(IommufdTrace, LintsRoundTripsAndPassesOnTheModel, ()) {
  const Profile profile = *rc::gen::elementOf(kProfiles);
  const bool small = *rc::gen::arbitrary<bool>();
  auto sc = *trace(options(profile, small));
  sc.file = "gen.scn";
  const std::string diags = lint_text(sc);
  RC_ASSERT(diags == "");
  const std::string text = scenario::print(sc);
  std::vector<scenario::Diagnostic> d;
  const auto back = scenario::parse(text, "gen.scn", d);
  RC_ASSERT(d.empty());
  RC_ASSERT(scenario::print(back) == text);
  const auto r = on_model(back, profile);
  RC_ASSERT(r.verdict == "pass");
  for (const auto& st : r.steps)
    RC_ASSERT(st.verdict == "pass");
}

// The names a step refers to (not enum or flag names of its fields).
std::vector<std::string> referred(const scenario::Step& st) {
  std::vector<std::string> out;
  const iommufd::OpDesc* op = iommufd::op_by_name(st.op);
  for (const auto& a : st.args) {
    const auto* r = std::get_if<scenario::Ref>(&a.value.v);
    if (!r || a.key.rfind("out_", 0) == 0) continue;
    const iommufd::Field* f = op ? iommufd::find_field(*op, a.key) : nullptr;
    if (f && f->names && iommufd::name_value(*f->names, r->name)) continue;
    out.push_back(r->name);
  }
  return out;
}

// Every name a step refers to was bound by an earlier step the model let succeed (or is
// the mem region): the runner binds nothing else (runner.cpp bind()).
RC_GTEST_PROP(IommufdTrace, StepsReferOnlyToNamesBoundEarlier, ()) {
  const Profile profile = *rc::gen::elementOf(kProfiles);
  const auto sc = *trace(options(profile));
  const auto r = on_model(sc, profile);
  RC_ASSERT(r.steps.size() == sc.steps.size());
  std::set<std::string> bound = {"M"};
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    for (const auto& n : referred(sc.steps[i]))
      RC_ASSERT(bound.count(n) == 1u);
    if (outcome_class(r.steps[i].allowed) != "ok") continue;
    for (const auto& a : sc.steps[i].args)
      if (const auto* ref = std::get_if<scenario::Ref>(&a.value.v);
          ref && a.key.rfind("out_", 0) == 0)
        bound.insert(ref->name);
  }
}

// Over 300 traces per profile, at least half of the steps succeed on the model: the
// generator names live objects most of the time (and fails on purpose the rest).
TEST(IommufdTrace, MostStepsSucceed) {
  for (const Profile profile : kProfiles) {
    size_t ok = 0, steps = 0;
    std::set<std::string> errnos;
    for (uint64_t run = 0; run < 300; ++run) {
      const auto sc = trace_for(options(profile), 11, run);
      const auto r = on_model(sc, profile);
      for (const auto& st : r.steps) {
        const std::string cls = outcome_class(st.allowed);
        ++steps;
        if (cls == "ok")
          ++ok;
        else
          errnos.insert(cls);
      }
    }
    EXPECT_GE(ok * 2, steps) << iommufd::profile_name(profile) << ": " << ok << " of " << steps;
    // ... and the failures are of several kinds, not one wrong pattern.
    for (const char* e : {"ENOENT", "EBUSY", "EINVAL", "EEXIST"})
      EXPECT_TRUE(errnos.count(e)) << iommufd::profile_name(profile) << " never saw " << e;
  }
}

TEST(IommufdTrace, SameSeedSameTrace) {
  const auto opt = options(Profile::linux_latest);
  EXPECT_EQ(scenario::print(trace_for(opt, 5, 9)), scenario::print(trace_for(opt, 5, 9)));
  std::set<std::string> texts;
  for (uint64_t run = 0; run < 10; ++run)
    texts.insert(scenario::print(trace_for(opt, 5, run)));
  EXPECT_GE(texts.size(), 9u);
}

TEST(IommufdTrace, LatestUsesViommuObjectsAndLinux612DoesNot) {
  for (const Profile profile : kProfiles) {
    bool viommu = false;
    for (uint64_t run = 0; run < 200; ++run)
      for (const auto& st : trace_for(options(profile), 3, run).steps)
        viommu = viommu || st.op == "viommu_alloc" || st.op == "vdevice_alloc";
    EXPECT_EQ(viommu, profile == Profile::linux_latest) << iommufd::profile_name(profile);
  }
}

// The small world's reachable graph (depth 3) is enumerated in seconds and covers the
// invalidation states.
TEST(IommufdTrace, SmallWorldReachableGraph) {
  const auto reach = conformance::fuzz::reachable(options(Profile::linux_latest, true), 3);
  EXPECT_GT(reach.graph.states(), 10u);
  bool stale = false, partial = false;
  for (const auto& [from, label, to] : reach.graph.edges()) {
    stale = stale || to.find(" t") != std::string::npos;
    partial = partial || label == "hwpt_invalidate:EINVAL";
  }
  EXPECT_TRUE(stale);
  EXPECT_TRUE(partial);
}

// ---- deliberately wrong implementations ----

const iommufd::Field& entry_num_field() {
  return *iommufd::find_field(iommufd::op_desc(iommufd::OpId::hwpt_invalidate), "entry_num");
}

// The model with IOMMU_HWPT_INVALIDATE's entry_num counting the failing entry as handled
// when an array fails part way (include/uapi/linux/iommufd.h iommu_hwpt_invalidate @entry_num:
// "Output the number of requests successfully handled by kernel.").
class OvercountTarget final : public Target {
public:
  explicit OvercountTarget(Profile p) : inner_(conformance::make_model_target(p)) {}
  TargetInfo info() const override {
    auto i = inner_->info();
    i.name = "overcount";
    return i;
  }
  void reset() override { inner_->reset(); }
  uint64_t mem(uint64_t size) override { return inner_->mem(size); }
  iommufd::Observation execute(const iommufd::Call& call) override {
    auto obs = inner_->execute(call);
    if (call.op != iommufd::OpId::hwpt_invalidate || obs.err == Errno::ok) return obs;
    const uint64_t done = iommufd::read_field(obs.arg.data(), entry_num_field());
    if (done > 0) iommufd::write_field(obs.arg.data(), entry_num_field(), done + 1);
    return obs;
  }

private:
  std::unique_ptr<Target> inner_;
};

// The model with an IOMMU_HWPT_INVALIDATE that succeeds and reports every entry handled,
// but invalidates nothing: `shown_` is the state it shows, `truth_` tells what the call
// should answer.
class ForgetfulTarget final : public Target {
public:
  explicit ForgetfulTarget(Profile p) : profile_(p), shown_(p), truth_(p) {}
  TargetInfo info() const override {
    auto i = conformance::make_model_target(profile_)->info();
    i.name = "forgetful";
    return i;
  }
  void reset() override {
    shown_ = iommufd::Machine(profile_);
    truth_ = iommufd::Machine(profile_);
  }
  uint64_t mem(uint64_t size) override {
    const uint64_t base = shown_.place_mem(size);
    shown_.add_mem(base, size);
    truth_.add_mem(base, size);
    return base;
  }
  iommufd::Observation execute(const iommufd::Call& call) override {
    const auto truth = truth_.execute(call).obs;
    if (call.op != iommufd::OpId::hwpt_invalidate || truth.err != Errno::ok)
      return shown_.execute(call).obs;
    iommufd::Call none = call;
    iommufd::write_field(none.arg.data(), entry_num_field(), 0);
    (void)shown_.execute(none);
    return truth;
  }

private:
  Profile profile_;
  iommufd::Machine shown_, truth_;
};

struct Found {
  conformance::fuzz::Failure failure;
  scenario::Scenario shrunk;
};

// Fuzz `runs` traces on the wrong target; the first failure, its shrunk scenario re-read
// from the file fuzz wrote.
Found fuzz_wrong(const std::string& name, const std::function<std::unique_ptr<Target>()>& make,
                 uint64_t runs) {
  conformance::fuzz::Options o;
  o.target_name = name;
  o.trace = options(Profile::linux_latest);
  o.seed = 1;
  o.runs = runs;
  o.coverage_depth = 0;
  o.shrink_budget_seconds = 60;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("iommuspec-ufd-" + name + "-" + std::to_string(::getpid()));
  o.out_dir = dir.string();
  const auto rep = conformance::fuzz::fuzz(o, make);
  Found f;
  if (rep.failures.empty()) {
    std::filesystem::remove_all(dir);
    return f;
  }
  f.failure = rep.failures.front();
  std::vector<scenario::Diagnostic> d;
  f.shrunk = scenario::parse_file(f.failure.file, d);
  EXPECT_TRUE(d.empty()) << (d.empty() ? "" : d.front().text());
  std::filesystem::remove_all(dir);
  return f;
}

void expect_found_and_shrunk(const Found& f, const std::string& op, Target& wrong) {
  ASSERT_FALSE(f.failure.file.empty()) << "fuzz found nothing";
  EXPECT_EQ(f.failure.verdict, "fail");
  EXPECT_EQ(f.failure.signature.rfind(op, 0), 0u) << f.failure.signature;
  EXPECT_TRUE(f.failure.shrink_complete);
  EXPECT_LE(f.shrunk.steps.size(), 8u) << scenario::print(f.shrunk);
  EXPECT_EQ(lint_text(f.shrunk), "");
  const auto bad = conformance::run_scenario(f.shrunk, wrong, Profile::linux_latest);
  EXPECT_EQ(bad.verdict, "fail") << scenario::print(f.shrunk);
  EXPECT_EQ(conformance::fuzz::signature(bad), f.failure.signature);
  EXPECT_EQ(on_model(f.shrunk, Profile::linux_latest).verdict, "pass") << scenario::print(f.shrunk);
}

TEST(IommufdFuzz, FindsAndShrinksAnEntryNumThatCountsTooMuch) {
  const auto f = fuzz_wrong(
      "overcount", [] { return std::make_unique<OvercountTarget>(Profile::linux_latest); }, 400);
  OvercountTarget wrong(Profile::linux_latest);
  expect_found_and_shrunk(f, "hwpt_invalidate", wrong);
}

TEST(IommufdFuzz, FindsAndShrinksAForgottenInvalidation) {
  const auto f = fuzz_wrong(
      "forgetful", [] { return std::make_unique<ForgetfulTarget>(Profile::linux_latest); }, 400);
  ForgetfulTarget wrong(Profile::linux_latest);
  expect_found_and_shrunk(f, "md_check_iotlb", wrong);
}

} // namespace
} // namespace iommuspec::generators
