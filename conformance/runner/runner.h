// The conformance runner: replays scenarios on a target and judges every observation
// against the model's allowed set (and the scenario's pinned expectations).
#pragma once

#include "results.h"
#include "runner/target.h"
#include "scenario/scenario.h"

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace iommuspec::conformance {

struct RunOptions {
  iommufd::Profile profile = iommufd::Profile::linux_latest;
  uint64_t seed = 0;
  int shard_index = 0, shard_count = 1;
  // Set (by a signal handler) to stop before the next scenario.
  const std::atomic<bool>* stop = nullptr;
  // Called after each scenario: (done, total, result).
  std::function<void(size_t, size_t, const results::ScenarioResult&)> progress;
};

// One scenario on one target (the target is reset first).
results::ScenarioResult run_scenario(const scenario::Scenario& sc, Target& target,
                                     iommufd::Profile profile);

// The model's view of a scenario, step by step, without a target (`iommuspec explain`).
std::string explain(const scenario::Scenario& sc, iommufd::Profile profile);

// Collect scenario files: each argument is a file or a directory searched recursively for
// *.scn, sorted by path.
std::vector<std::string> collect_files(const std::vector<std::string>& args,
                                       std::vector<std::string>& errors);

// Run parsed scenarios on a target (a factory, so a crashed target can be replaced).
results::Run run_all(const std::vector<scenario::Scenario>& scenarios,
                     const std::function<std::unique_ptr<Target>()>& make_target,
                     const RunOptions& opt);

std::vector<std::string> clause_catalogue();

} // namespace iommuspec::conformance
