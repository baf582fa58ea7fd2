// Generated traces and `iommuspec fuzz`: traces are valid scenarios the model passes, the
// same seed gives the same traces, and deliberately wrong implementations (one that forgets
// an invalidation, one whose queue reports more progress than it made) are found and shrunk
// to a small scenario that still fails on them and passes on the model. Coverage: the
// reachable graph under small bounds, and the generator exercising it.
#include "fuzz/fuzz.h"
#include "hw/compile.h"
#include "runner/runner.h"
#include "scenario/scenario.h"
#include "trace.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <rapidcheck/gtest.h>

namespace iommuspec::conformance {
namespace {

namespace gen = iommuspec::generators;

std::set<std::string> model_features() {
  return make_model_target(iommufd::Profile::linux_latest)->info().features;
}

// What qemu-smmuv3 on Debian's QEMU 7.2 presents: stage 1 only, range invalidation.
std::set<std::string> stage1_features() {
  return {"smmuv3", "stage1", "range_inv"};
}

gen::TraceOptions smmu_options(std::set<std::string> features, bool small = false) {
  gen::TraceOptions o;
  o.area = "smmuv3";
  o.features = std::move(features);
  o.small = small;
  return o;
}

// The model behind the Target interface, with a change to what goes into its command queue
// or what the queue reports: "a model variant" as the issue names it. It shows the last
// outcome of each allowed set (DmaChoice::last), so a stale entry it keeps is seen.
class Mutant final : public Target {
public:
  std::function<void(std::vector<uint64_t>&)> edit_commands;
  std::function<void(hw::QueueOutcome&)> edit_outcome;

  // A unit that keeps every entry it may: a forgotten invalidation then shows.
  Mutant() : inner_(make_model_target(iommufd::Profile::linux_latest, DmaChoice::last)) {}
  TargetInfo info() const override {
    auto i = inner_->info();
    i.name = "mutant";
    return i;
  }
  void reset() override { inner_->reset(); }
  uint64_t mem(uint64_t size) override { return inner_->mem(size); }
  iommufd::Observation execute(const iommufd::Call& c) override { return inner_->execute(c); }
  void hw_reset(const hwc::Setup& s) override { inner_->hw_reset(s); }
  void hw_write(const std::vector<hw::Write>& ws) override { inner_->hw_write(ws); }
  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& e) override {
    auto cmds = e;
    if (edit_commands) edit_commands(cmds);
    auto q = inner_->hw_submit(cmds);
    if (edit_outcome) edit_outcome(q);
    return q;
  }
  hw::QueueOutcome hw_resume() override {
    auto q = inner_->hw_resume();
    if (edit_outcome) edit_outcome(q);
    return q;
  }
  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override { return inner_->hw_dma(r); }
  hw::RecordsOutcome hw_records() override { return inner_->hw_records(); }

private:
  std::unique_ptr<Target> inner_;
};

// IHI 0070 4.4.2.4 CMD_TLBI_NH_VA is opcode 0x12; CMD_SYNC is 0x46 (4.7.3). The mutant
// executes a CMD_SYNC in its place: the queue's progress is right, the entry stays.
void forget_nh_va(std::vector<uint64_t>& cmds) {
  for (size_t i = 0; i + 1 < cmds.size(); i += 2)
    if ((cmds[i] & 0xff) == 0x12) {
      cmds[i] = 0x46;
      cmds[i + 1] = 0;
    }
}

// On a command error the queue reports one command more than it consumed (CONS past the
// failing command): "an entry_num that counts too much".
void count_one_too_many(hw::QueueOutcome& q) {
  if (!q.error.empty()) ++q.consumed;
}

std::string temp_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() /
                 ("iommuspec-fuzz-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

RC_GTEST_PROP(FuzzTrace, SmmuTracesCompileRoundTripAndPassOnTheModel, ()) {
  const bool full = *rc::gen::arbitrary<bool>();
  const auto sc = *gen::trace(smmu_options(full ? model_features() : stage1_features()));
  std::vector<scenario::Diagnostic> diags;
  RC_ASSERT(hwc::compile(sc, diags).has_value());
  const auto reparsed = scenario::parse(scenario::print(sc), "trace.scn", diags);
  RC_ASSERT(diags.empty());
  RC_ASSERT(reparsed == sc);
  auto model = make_model_target(iommufd::Profile::linux_latest);
  const auto r = run_scenario(sc, *model, iommufd::Profile::linux_latest);
  RC_ASSERT(r.verdict == "pass");
}

RC_GTEST_PROP(FuzzTrace, StageOneTracesUseOnlyStageOneFeatures, ()) {
  const auto sc = *gen::trace(smmu_options(stage1_features()));
  for (const auto& f : sc.values("features"))
    RC_ASSERT(stage1_features().count(f) == 1);
}

TEST(FuzzTrace, SameSeedSameTraceOtherRunOtherTrace) {
  const auto o = smmu_options(model_features());
  EXPECT_EQ(scenario::print(gen::trace_for(o, 42, 7)), scenario::print(gen::trace_for(o, 42, 7)));
  EXPECT_NE(scenario::print(gen::trace_for(o, 42, 7)), scenario::print(gen::trace_for(o, 42, 8)));
  EXPECT_NE(scenario::print(gen::trace_for(o, 42, 7)), scenario::print(gen::trace_for(o, 43, 7)));
}

TEST(FuzzTrace, TracesExerciseStaleEntriesAndQueueErrors) {
  // The generator's point is aliasing and stale entries: across a few hundred traces the
  // model must have allowed a stale translation ("any") and stopped the queue on an error.
  const auto o = smmu_options(model_features());
  std::set<std::string> labels;
  gen::TransitionGraph g;
  auto model = make_model_target(iommufd::Profile::linux_latest);
  for (uint64_t run = 0; run < 300; ++run) {
    const auto sc = gen::trace_for(o, 1, run);
    fuzz::cover(g, sc, run_scenario(sc, *model, iommufd::Profile::linux_latest));
  }
  for (const auto& [from, label, to] : g.edges())
    labels.insert(label);
  EXPECT_TRUE(labels.count("dma:any"));
  EXPECT_TRUE(labels.count("cmdq:CERROR_ILL"));
  EXPECT_TRUE(labels.count("resume:ok"));
  EXPECT_TRUE(labels.count("dma:F_TRANSLATION"));
  EXPECT_TRUE(labels.count("dma:C_BAD_STE"));
}

// Fuzz a mutant: it must fail within the runs, be shrunk to at most `max_steps` steps, and
// the saved scenario must fail on the mutant and pass on the model.
void expect_found_and_shrunk(const std::function<void(Mutant&)>& mutate, size_t max_steps,
                             const std::string& name, const std::string& op) {
  fuzz::Options o;
  o.target_name = "mutant";
  o.trace = smmu_options(model_features());
  o.seed = 1;
  o.runs = 300;
  o.out_dir = temp_dir(name);
  o.coverage_depth = 0;
  auto make = [&]() -> std::unique_ptr<Target> {
    auto m = std::make_unique<Mutant>();
    mutate(*m);
    return m;
  };
  const auto rep = fuzz::fuzz(o, make);
  ASSERT_FALSE(rep.failures.empty()) << name << ": not found in " << o.runs << " traces";
  // The failure the mutation is about shows at a step of this operation.
  EXPECT_TRUE(
      std::any_of(rep.failures.begin(), rep.failures.end(),
                  [&](const fuzz::Failure& f) { return f.signature.rfind(op + " ", 0) == 0; }))
      << name << ": no failure at a " << op << " step";
  for (const auto& f : rep.failures) {
    std::printf("%s: %s, %zu steps shrunk to %zu (%zu replays)\n", name.c_str(),
                f.signature.c_str(), f.original_steps, f.shrunk_steps, f.replays);
    SCOPED_TRACE(f.file);
    EXPECT_EQ(f.verdict, "fail");
    EXPECT_TRUE(f.shrink_complete);
    EXPECT_LE(f.shrunk_steps, max_steps) << f.signature;
    EXPECT_TRUE(f.reproduced);
    EXPECT_LT(f.shrunk_steps, f.original_steps);
    std::vector<scenario::Diagnostic> diags;
    const auto saved = scenario::parse_file(f.file, diags);
    ASSERT_TRUE(diags.empty()) << diags.front().text();
    hwc::lint(saved, diags);
    EXPECT_TRUE(diags.empty()) << (diags.empty() ? "" : diags.front().text());
    auto wrong = make();
    const auto on_wrong = run_scenario(saved, *wrong, iommufd::Profile::linux_latest);
    EXPECT_EQ(on_wrong.verdict, "fail");
    EXPECT_EQ(fuzz::signature(on_wrong), f.signature);
    auto model = make_model_target(iommufd::Profile::linux_latest);
    EXPECT_EQ(run_scenario(saved, *model, iommufd::Profile::linux_latest).verdict, "pass");
  }
  std::filesystem::remove_all(o.out_dir);
}

TEST(Fuzz, FindsAndShrinksAForgottenInvalidation) {
  // Minimal: table, map, cd, ste, cfgi+sync, dma (cache it), unmap, map elsewhere, tlbi+sync,
  // dma: at most 10 steps, fewer when the shrinker finds a shorter way to a stale entry.
  expect_found_and_shrunk([](Mutant& m) { m.edit_commands = forget_nh_va; }, 10, "forget", "dma");
}

TEST(Fuzz, FindsAndShrinksAQueueThatCountsTooMuch) {
  // One batch with an illegal command is enough.
  expect_found_and_shrunk([](Mutant& m) { m.edit_outcome = count_one_too_many; }, 2, "count",
                          "cmdq");
}

TEST(Fuzz, TheSuitesPassOnAUnitThatKeepsEveryStaleEntry) {
  // The mutants above show the last allowed outcome; so must the hand-written suites pass
  // on such a unit: a pin that lists fewer outcomes than the model allows would fail here.
  std::vector<std::string> errors;
  size_t hw = 0;
  for (const auto& f : collect_files({IOMMUSPEC_SUITES_DIR}, errors)) {
    std::vector<scenario::Diagnostic> diags;
    const auto sc = scenario::parse_file(f, diags);
    if (!hwc::is_hw_area(sc.area)) continue;
    ++hw;
    auto t = make_model_target(iommufd::Profile::linux_latest, DmaChoice::last);
    const auto r = run_scenario(sc, *t, iommufd::Profile::linux_latest);
    EXPECT_TRUE(r.verdict == "pass" || r.verdict == "unsupported") << f << ": " << r.message;
  }
  EXPECT_GT(hw, 250u);
}

TEST(Fuzz, TheModelPassesItsOwnTraces) {
  fuzz::Options o;
  o.target_name = "model";
  o.trace = smmu_options(model_features());
  o.seed = 3;
  o.runs = 500;
  o.out_dir = temp_dir("model");
  o.coverage_depth = 0;
  const auto rep = fuzz::fuzz(o, [] { return make_model_target(iommufd::Profile::linux_latest); });
  EXPECT_EQ(rep.pass, 500u);
  EXPECT_TRUE(rep.failures.empty());
  std::ifstream in(o.out_dir + "/fuzz.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["summary"]["pass"], 500);
  EXPECT_EQ(j["options"]["max_actions"], o.trace.max_actions);
  EXPECT_FALSE(j["interrupted"].get<bool>());
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/coverage.dot"));
  std::filesystem::remove_all(o.out_dir);
}

TEST(Fuzz, ATargetThatCannotStartEndsTheCampaignWithItsReports) {
  fuzz::Options o;
  o.target_name = "absent";
  o.trace = smmu_options(model_features());
  o.runs = 50;
  o.out_dir = temp_dir("absent");
  o.coverage_depth = 1;
  const auto rep = fuzz::fuzz(o, []() -> std::unique_ptr<Target> {
    throw TargetError("qemu-system-aarch64: cannot allocate memory");
  });
  EXPECT_EQ(rep.runs, 3u); // three start failures in a row end it
  EXPECT_EQ(rep.error, 3u);
  EXPECT_NE(rep.aborted.find("cannot allocate memory"), std::string::npos) << rep.aborted;
  ASSERT_EQ(rep.failures.size(), 1u); // one signature: numbers do not tell errors apart
  EXPECT_EQ(rep.failures.front().repeats, 2u);
  std::ifstream in(o.out_dir + "/fuzz.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["summary"]["error"], 3);
  EXPECT_NE(j["aborted"].get<std::string>().find("cannot allocate"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/coverage.dot"));
  std::filesystem::remove_all(o.out_dir);
}

TEST(Fuzz, ErrorSignaturesIgnoreNumbers) {
  results::ScenarioResult a, b;
  a.verdict = b.verdict = "error";
  a.message = "step 7: qemu-smmuv3: QEMU (pid 4242) exited with status 134";
  b.message = "step 12: qemu-smmuv3: QEMU (pid 977) exited with status 134";
  a.steps = {{1, "1: table T1 stage=1", "", "", "", "pass", ""},
             {2, "2: dma sid=1 iova=0x10000", "", "", "", "not-run", ""}};
  b.steps = {{1, "1: dma sid=2 iova=0x11000", "", "", "", "not-run", ""}};
  EXPECT_EQ(fuzz::signature(a), fuzz::signature(b));
  EXPECT_EQ(fuzz::signature(a).rfind("dma error: ", 0), 0u) << fuzz::signature(a);
}

TEST(Fuzz, AFailureThatDoesNotReproduceIsReportedNotShrunk) {
  // Only the first target the campaign makes forgets invalidations: the replays on fresh
  // ones pass, so the failure is saved as it was found.
  auto made = std::make_shared<int>(0);
  fuzz::Options o;
  o.target_name = "flaky";
  o.trace = smmu_options(model_features());
  o.seed = 1;
  o.runs = 300;
  o.out_dir = temp_dir("flaky");
  o.coverage_depth = 0;
  const auto rep = fuzz::fuzz(o, [made]() -> std::unique_ptr<Target> {
    auto m = std::make_unique<Mutant>();
    if ((*made)++ == 0) m->edit_commands = forget_nh_va;
    return m;
  });
  ASSERT_FALSE(rep.failures.empty());
  const auto& f = rep.failures.front();
  EXPECT_FALSE(f.reproduced);
  EXPECT_FALSE(f.shrink_complete);
  EXPECT_EQ(f.shrunk_steps, f.original_steps);
  std::vector<scenario::Diagnostic> diags;
  EXPECT_EQ(scenario::parse_file(f.file, diags).steps.size(), f.original_steps);
  std::filesystem::remove_all(o.out_dir);
}

TEST(Fuzz, AStopEndsTheCampaignAndTheReportSaysSo) {
  std::atomic<bool> stop{true};
  fuzz::Options o;
  o.target_name = "model";
  o.trace = smmu_options(model_features());
  o.runs = 100;
  o.out_dir = temp_dir("stop");
  o.stop = &stop;
  const auto rep = fuzz::fuzz(o, [] { return make_model_target(iommufd::Profile::linux_latest); });
  EXPECT_TRUE(rep.interrupted);
  EXPECT_EQ(rep.runs, 0u);
  std::ifstream in(o.out_dir + "/fuzz.json");
  EXPECT_TRUE(nlohmann::json::parse(in)["interrupted"].get<bool>());
  std::filesystem::remove_all(o.out_dir);
}

TEST(Fuzz, ShrinkKeepsTheSignature) {
  // A trace the mutant fails for a stale entry: shrinking never trades it for another
  // failure, and every step of the result is needed.
  Mutant probe;
  probe.edit_commands = forget_nh_va;
  const auto o = smmu_options(model_features());
  for (uint64_t run = 0; run < 300; ++run) {
    const auto sc = gen::trace_for(o, 5, run);
    const auto r = run_scenario(sc, probe, iommufd::Profile::linux_latest);
    if (r.verdict != "fail") continue;
    const std::string sig = fuzz::signature(r);
    auto make = [] {
      auto m = std::make_unique<Mutant>();
      m->edit_commands = forget_nh_va;
      return std::unique_ptr<Target>(std::move(m));
    };
    const auto s = fuzz::shrink(sc, sig, make, {});
    EXPECT_EQ(fuzz::signature(s.result), sig);
    EXPECT_LE(s.scenario.steps.size(), sc.steps.size());
    for (size_t i = 0; i < s.scenario.steps.size(); ++i) {
      auto fewer = s.scenario;
      fewer.steps.erase(fewer.steps.begin() + long(i));
      gen::renumber(fewer);
      Mutant m;
      m.edit_commands = forget_nh_va;
      const auto rr = run_scenario(fewer, m, iommufd::Profile::linux_latest);
      EXPECT_FALSE(rr.verdict == "fail" && fuzz::signature(rr) == sig) << "step " << i + 1;
    }
    return;
  }
  FAIL() << "no trace of 300 showed the forgotten invalidation";
}

TEST(Coverage, ReachableGraphIsExercisedBySmallWorldFuzzing) {
  const auto o = smmu_options(model_features(), /*small=*/true);
  const auto reach = fuzz::reachable(o, 2);
  EXPECT_GT(reach.graph.states(), 10u);
  EXPECT_GT(reach.graph.transitions(), 50u);
  gen::TransitionGraph exercised;
  auto model = make_model_target(iommufd::Profile::linux_latest);
  for (uint64_t run = 0; run < 3000; ++run) {
    const auto sc = gen::trace_for(o, 11, run);
    fuzz::cover(exercised, sc, run_scenario(sc, *model, iommufd::Profile::linux_latest));
  }
  // Every transition reachable within two actions is exercised by 3000 traces (measured:
  // all of them; the generator's weights would have to starve an action to miss one).
  EXPECT_EQ(exercised.common(reach.graph), reach.graph.transitions());
}

TEST(Coverage, DotDrawsUnexercisedReachableTransitionsDashed) {
  gen::TransitionGraph run, reach;
  run.add("a", "dma:ok", "a");
  reach.add("a", "dma:ok", "a");
  reach.add("a", "ste", "b");
  const std::string dot = run.dot(&reach);
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("label=\"ste\", style=dashed"), std::string::npos);
  EXPECT_EQ(dot.find("label=\"dma:ok\", style=dashed"), std::string::npos);
  EXPECT_EQ(run.common(reach), 1u);
}

TEST(Coverage, NextChoicesEnumeratesEveryPath) {
  // A first choice of 2 values, then 3 values after a 0 and 1 value after a 1: 4 paths, and
  // a fixed first choice leaves the paths below it.
  auto walk = [](std::vector<size_t> forced, size_t fixed) {
    std::set<std::vector<size_t>> seen;
    for (;;) {
      gen::ReplayPicker p(forced);
      if (p.pick(2) == 0) p.pick(3);
      seen.insert(p.made());
      if (!gen::next_choices(p, fixed, forced)) return seen;
    }
  };
  const auto all = walk({}, 0);
  EXPECT_EQ(all.size(), 4u);
  EXPECT_TRUE(all.count({1}));
  EXPECT_TRUE(all.count({0, 2}));
  EXPECT_EQ(walk({0}, 1).size(), 3u);
  EXPECT_EQ(walk({1}, 1).size(), 1u);
}

} // namespace
} // namespace iommuspec::conformance
