// Reading results back, merging shards, and the KCIDB export.
#include "results.h"
#include "text.h"

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace iommuspec::results {

using nlohmann::json;

Run read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  json j;
  try {
    f >> j;
    Run r;
    r.tool_name = j.at("tool").at("name");
    r.tool_version = j.at("tool").at("version");
    r.target = j.at("target").at("name");
    r.fingerprint = j.at("target").at("fingerprint").get<std::map<std::string, std::string>>();
    r.profile = j.at("profile");
    r.started = j.value("started", "");
    r.seed = j.value("seed", uint64_t(0));
    r.partial = j.value("partial", false);
    r.seconds = j.value("seconds", 0.0);
    if (j.contains("suite")) {
      r.suite.version = j["suite"].value("version", "");
      r.suite.hash = j["suite"].value("hash", "");
      r.suite.scenarios = j["suite"].value("scenarios", 0);
    }
    if (j.contains("shard")) {
      r.shard_index = j["shard"].value("index", 0);
      r.shard_count = j["shard"].value("count", 1);
    }
    for (const auto& s : j.at("scenarios")) {
      ScenarioResult sr;
      sr.id = s.at("id");
      sr.file = s.value("file", "");
      sr.clauses = s.value("clauses", std::vector<std::string>{});
      sr.verdict = s.at("verdict");
      sr.seconds = s.value("seconds", 0.0);
      sr.message = s.value("message", "");
      sr.log = s.value("log", "");
      sr.known_finding = s.value("known_finding", false);
      for (const auto& st : s.value("steps", json::array()))
        sr.steps.push_back({st.value("number", 0), st.value("op", ""), st.value("observed", ""),
                            st.value("allowed", ""), st.value("clause", ""),
                            st.value("verdict", ""), st.value("message", "")});
      r.scenarios.push_back(std::move(sr));
    }
    r.clauses = j.value("clauses", std::map<std::string, std::string>{});
    return r;
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not a results.json of iommuspec (" + e.what() + ")");
  }
}

Run merge(const std::vector<Run>& shards, const std::vector<std::string>& catalogue) {
  if (shards.empty()) throw std::runtime_error("nothing to merge");
  const Run& a = shards.front();
  std::set<int> seen;
  for (const auto& s : shards) {
    auto differ = [&](const char* what, const std::string& x, const std::string& y) {
      if (x != y)
        throw std::runtime_error(fmt::format(
            "refusing to merge: {} differs ('{}' and '{}'); merge only shards of one run", what, x,
            y));
    };
    differ("target", a.target, s.target);
    differ("profile", a.profile, s.profile);
    differ("suite hash", a.suite.hash, s.suite.hash);
    differ("tool version", a.tool_version, s.tool_version);
    differ("shard count", std::to_string(a.shard_count), std::to_string(s.shard_count));
    differ("target fingerprint", nlohmann::json(a.fingerprint).dump(),
           nlohmann::json(s.fingerprint).dump());
    if (!seen.insert(s.shard_index).second)
      throw std::runtime_error(
          fmt::format("refusing to merge: shard {}/{} given twice", s.shard_index, s.shard_count));
  }
  Run m = a;
  m.scenarios.clear();
  m.shard_index = 0;
  m.partial = seen.size() != size_t(a.shard_count);
  m.seconds = 0;
  for (const auto& s : shards) {
    m.seconds = std::max(m.seconds, s.seconds);
    m.partial = m.partial || s.partial;
    m.scenarios.insert(m.scenarios.end(), s.scenarios.begin(), s.scenarios.end());
  }
  m.shard_count = 1;
  std::sort(m.scenarios.begin(), m.scenarios.end(), [](const auto& x, const auto& y) {
    return x.file < y.file || (x.file == y.file && x.id < y.id);
  });
  finalize(m, catalogue);
  return m;
}

std::string kcidb_json(const Run& run, const std::string& origin) {
  // KCIDB I/O schema v4: ids are "<origin>:<anything>"; status PASS/FAIL/SKIP/ERROR.
  const std::string base = fmt::format("{}:iommuspec-{}-{}-{}", origin, run.target, run.profile,
                                       run.suite.hash.empty() ? "nosuite" : run.suite.hash);
  auto kernel = run.fingerprint.count("kernel") ? run.fingerprint.at("kernel") : std::string();
  json checkout = {{"id", base}, {"origin", origin}, {"valid", true}};
  if (!kernel.empty()) checkout["git_commit_name"] = "v" + kernel;
  json build = {{"id", base + ":build"},
                {"checkout_id", base},
                {"origin", origin},
                {"valid", true},
                {"architecture",
                 run.fingerprint.count("machine") ? run.fingerprint.at("machine") : "unknown"}};
  json tests = json::array();
  for (const auto& s : run.scenarios) {
    const std::string status = s.verdict == "pass"          ? "PASS"
                               : s.verdict == "fail"        ? "FAIL"
                               : s.verdict == "unsupported" ? "SKIP"
                                                            : "ERROR";
    json t = {{"id", base + ":" + s.id},  {"build_id", base + ":build"},
              {"origin", origin},         {"path", "iommuspec." + run.target + "." + s.id},
              {"status", status},         {"duration", s.seconds},
              {"start_time", run.started}};
    if (!s.message.empty()) t["log_excerpt"] = s.message.substr(0, 16384);
    t["misc"] = {
        {"clauses", s.clauses}, {"profile", run.profile}, {"known_finding", s.known_finding}};
    tests.push_back(t);
  }
  json out = {{"version", {{"major", 4}, {"minor", 0}}},
              {"checkouts", json::array({checkout})},
              {"builds", json::array({build})},
              {"tests", tests}};
  return out.dump(2) + "\n";
}

} // namespace iommuspec::results
