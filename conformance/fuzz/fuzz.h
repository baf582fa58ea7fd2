// `iommuspec fuzz`: generated traces (generators/trace.h) run on a target and judged by the
// model like any scenario; every failing trace is shrunk by replaying candidates on the
// target, and saved as a scenario file that names its seed. Coverage: the abstract
// transition graph of the runs (generators/coverage.h) against the graph reachable under
// small bounds.
#pragma once

#include "coverage.h"
#include "results.h"
#include "runner/target.h"
#include "trace.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace iommuspec::conformance::fuzz {

using TargetFactory = std::function<std::unique_ptr<Target>()>;

// What makes two failures the same: the failing step's operation, the model's clause for
// it, and the observed outcome's class. Shrinking keeps it, so that a candidate failing
// for another reason is not taken.
std::string signature(const results::ScenarioResult& r);

struct ShrinkOptions {
  iommufd::Profile profile = iommufd::Profile::linux_latest;
  double budget_seconds = 120; // stop shrinking (keeping the smallest so far) after this
  const std::atomic<bool>* stop = nullptr; // set: stop as if out of time
};

struct ShrinkResult {
  scenario::Scenario scenario; // the smallest failing trace found
  results::ScenarioResult result;
  size_t replays = 0; // candidates run on the target (those the model can run)
  double seconds = 0;
  bool reproduced = false; // the trace failed the same way on a fresh target
  bool complete = false;   // no single removal fails the same way (not cut by the budget)
};

// Shrink a trace that fails on the target with signature `sig`: remove runs of steps (halves
// down to single steps), then commands of a batch and optional arguments, until nothing
// removable keeps the failure. Every candidate the model can run (it compiles and encodes)
// runs on a target from `make`; a target that errs or does not start is replaced and the
// candidate counts as not failing. A trace that does not fail again on a fresh target is
// returned as it is, not reproduced.
ShrinkResult shrink(const scenario::Scenario& sc, const std::string& sig, const TargetFactory& make,
                    const ShrinkOptions& opt);

struct Failure {
  uint64_t run = 0;
  std::string verdict; // fail | error
  std::string signature;
  std::string message; // of the shrunk trace's run
  size_t original_steps = 0, shrunk_steps = 0;
  size_t replays = 0;
  double shrink_seconds = 0;
  bool reproduced = false; // failed again on a fresh target (fail verdicts; errors are not rerun)
  bool shrink_complete = false;
  std::string file;   // the scenario file written
  size_t repeats = 0; // later traces that failed with the same signature (not shrunk again)
};

struct Options {
  std::string target_name;
  generators::TraceOptions trace;
  uint64_t seed = 0;
  uint64_t runs = 100;
  std::string out_dir; // scenario files, fuzz.json, coverage.dot
  double shrink_budget_seconds = 120;
  size_t coverage_depth = 2; // actions from the start for the reachable graph (0: none)
  const std::atomic<bool>* stop = nullptr;
  // After each trace: (done, total, failures so far); before shrinking a new failure.
  std::function<void(uint64_t, uint64_t, size_t)> progress;
  std::function<void(uint64_t run, const std::string& signature)> on_shrink;
};

struct Report {
  uint64_t runs = 0, pass = 0, fail = 0, unsupported = 0, error = 0;
  size_t steps = 0; // of all traces run
  double seconds = 0, run_seconds = 0, shrink_seconds = 0;
  std::vector<Failure> failures;
  bool interrupted = false; // stopped (SIGINT/SIGTERM) before every trace ran
  std::string aborted;      // why the campaign ended early (the target would not start)
  generators::TransitionGraph exercised;
  generators::TransitionGraph reachable; // empty when coverage_depth is 0
  bool reachable_complete = false;       // the enumeration ran to its depth
  size_t reachable_runs = 0;
  double reachable_seconds = 0;
};

Report fuzz(const Options& opt, const TargetFactory& make);

// Fold one trace's run into the graph through the area's abstraction (the model's allowed
// outcome of each step that ran).
void cover(generators::TransitionGraph& g, const scenario::Scenario& sc,
           const results::ScenarioResult& r);

// The transitions reachable on the model within `depth` actions of the small world
// (TraceOptions::small): every distinct one-action extension of every trace that reached a
// new abstract state, breadth first.
struct Reachable {
  generators::TransitionGraph graph;
  size_t runs = 0;
  bool complete = true; // not stopped
};
Reachable reachable(const generators::TraceOptions& opt, size_t depth,
                    const std::atomic<bool>* stop = nullptr);

// fuzz.json: the campaign's figures, failures and coverage (written atomically).
std::string report_json(const Options& opt, const Report& r);

} // namespace iommuspec::conformance::fuzz
