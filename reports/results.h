// Results of a run as plain values: what the reports are written from. Depends on nothing
// else of the project (reports depend on results only).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace iommuspec::results {

struct StepResult {
  int number = 0;
  std::string op;       // the step as written
  std::string observed; // "ok out_ioas_id=3" or "EINVAL"
  std::string allowed;  // the model's allowed set, same syntax
  std::string clause;   // the clause that decided the model's outcome
  std::string verdict;  // pass | fail | not-run
  std::string message;  // why it failed
};

struct ScenarioResult {
  std::string id;
  std::string file;
  std::vector<std::string> clauses; // declared and exercised
  std::string verdict;              // pass | fail | unsupported | error
  double seconds = 0;
  std::string message; // for fail, error, unsupported
  std::string log;     // target log excerpt for errors
  std::vector<StepResult> steps;
  bool known_finding = false; // a failure listed in the target's known findings
};

struct Summary {
  int pass = 0, fail = 0, unsupported = 0, error = 0;
  int known_findings = 0; // of the failures, those listed as known
};

// The suite a run used: merged shards and compared reports must share it.
struct Suite {
  std::string version; // the tool version that ran it
  std::string hash;    // of every scenario file's name and text, in order
  int scenarios = 0;   // in the whole suite (all shards)
};

struct Run {
  std::string tool_name = "iommuspec";
  std::string tool_version;
  std::string target;
  std::map<std::string, std::string> fingerprint;
  std::string profile;
  std::string started; // ISO 8601 UTC
  uint64_t seed = 0;
  Suite suite;
  int shard_index = 0, shard_count = 1;
  double seconds = 0;   // wall time of the run
  bool partial = false; // interrupted before every scenario ran
  Summary summary;
  std::vector<ScenarioResult> scenarios;
  std::map<std::string, std::string> clauses; // clause id -> pass|fail|unsupported|untested
};

// Recompute summary and clause statuses from the scenarios; `catalogue` lists every clause
// id so that clauses no scenario exercised show as "untested".
void finalize(Run& run, const std::vector<std::string>& catalogue);

// Known findings: "scenario-id clause  # why" lines. Marks the failures they list and
// returns what does not match both ways (new failures, listed ones that did not fail).
struct FindingsCheck {
  std::vector<std::string> unexpected; // failures not in the list
  std::vector<std::string> missing;    // listed but not failing
};
std::map<std::string, std::string> read_findings(const std::string& path); // id -> clause
FindingsCheck apply_findings(Run& run, const std::map<std::string, std::string>& known);

// Writers. Each writes to PATH.tmp and renames it over PATH, so a reader never sees a
// half-written report.
void write_json(const Run& run, const std::string& path);
void write_junit(const Run& run, const std::string& path);
// One self-contained HTML report for one or more runs (targets, profiles): clause matrix,
// findings with their traces, coverage (clauses, and the op transition graph drawn by
// Graphviz when `dot` is installed), timings.
void write_html(const std::vector<Run>& runs, const std::string& path);
inline void write_html(const Run& run, const std::string& path) {
  write_html(std::vector<Run>{run}, path);
}
// The ACS-style log: START <area> <clause> ... END <clause> PASSED|FAILED|SKIPPED, totals.
void write_acs_log(const Run& run, const std::string& path);

// Read a results.json back (for merge). Throws std::runtime_error with the reason.
Run read_json(const std::string& path);
// Combine shard results of one suite on one target and profile into one run. Throws
// std::runtime_error naming what differs when they are not shards of the same run.
Run merge(const std::vector<Run>& shards, const std::vector<std::string>& catalogue);
// KCIDB (KernelCI database) submission JSON, schema v4: one checkout, one build, one test
// per scenario (path iommuspec.<target>.<scenario>).
std::string kcidb_json(const Run& run, const std::string& origin);
void write_atomically(const std::string& path, const std::string& content);
// The certification index: one line per (target, profile) run with its report directory.
void write_index(const std::vector<std::pair<Run, std::string>>& runs, const std::string& dir);

} // namespace iommuspec::results
