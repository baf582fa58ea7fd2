// Fuzzing figures (issue 6): generated traces per minute on the model (goal 10,000+; the
// benchmark prints traces/s), per area, generation and judging included; and shrinking
// against qemu-smmuv3 (goal: a failing trace shrunk to at most 12 steps in under 60 s), with
// the replays it took.
//   build/bench/iommuspec_fuzz_bench
#include "fuzz/fuzz.h"
#include "runner/runner.h"
#include "targets/qemu_target.h"
#include "trace.h"

#include <benchmark/benchmark.h>

namespace iommuspec::conformance {
namespace {

generators::TraceOptions options(const std::string& area, const std::set<std::string>& features) {
  generators::TraceOptions o;
  o.area = area;
  o.features = features;
  return o;
}

// One trace per iteration: generate (RapidCheck, seed 1, run i), run on the model target
// (the runner judges every step against a second model), fold into the coverage graph.
void BM_FuzzModel(benchmark::State& state, const std::string& area) {
  auto model = make_model_target(iommufd::Profile::linux_latest);
  const auto o = options(area, model->info().features);
  generators::TransitionGraph g;
  uint64_t run = 0, steps = 0;
  for (auto _ : state) {
    const auto sc = generators::trace_for(o, 1, run++);
    const auto r = run_scenario(sc, *model, iommufd::Profile::linux_latest);
    fuzz::cover(g, sc, r);
    steps += sc.steps.size();
    if (r.verdict != "pass")
      state.SkipWithError(("the model failed its own trace: " + r.message).c_str());
  }
  // Google Benchmark reports rates per second: traces/min is 60 times this.
  state.counters["traces"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["steps/trace"] = double(steps) / double(std::max<uint64_t>(run, 1));
  state.counters["states"] = double(g.states());
}
BENCHMARK_CAPTURE(BM_FuzzModel, smmuv3, std::string("smmuv3"))->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_FuzzModel, vtd, std::string("vtd"))->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_FuzzModel, iommufd, std::string("iommufd"))->UseRealTime()->MinTime(2.0);

// The first failing trace of seed 1 on qemu-smmuv3 (Debian's QEMU 7.2), shrunk against QEMU.
void BM_ShrinkQemuSmmu(benchmark::State& state) {
  fuzz::TargetFactory make = [] { return make_qemu_smmuv3_target(); };
  auto probe = make();
  const auto o = options("smmuv3", probe->info().features);
  scenario::Scenario failing;
  results::ScenarioResult first;
  for (uint64_t run = 0; run < 200 && failing.steps.empty(); ++run) {
    auto sc = generators::trace_for(o, 1, run);
    auto r = run_scenario(sc, *probe, iommufd::Profile::linux_latest);
    if (r.verdict == "fail") {
      failing = std::move(sc);
      first = std::move(r);
    }
  }
  if (failing.steps.empty()) {
    state.SkipWithError("no failing trace in 200 runs");
    return;
  }
  fuzz::ShrinkResult s;
  for (auto _ : state)
    s = fuzz::shrink(failing, fuzz::signature(first), make, {});
  state.counters["steps_before"] = double(failing.steps.size());
  state.counters["steps_after"] = double(s.scenario.steps.size());
  state.counters["replays"] = double(s.replays);
  state.counters["complete"] = s.complete ? 1 : 0;
}
BENCHMARK(BM_ShrinkQemuSmmu)->UseRealTime()->Unit(benchmark::kSecond)->Iterations(3);

} // namespace
} // namespace iommuspec::conformance

BENCHMARK_MAIN();
