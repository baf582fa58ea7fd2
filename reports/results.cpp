#include "results.h"

#include "text.h"

#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace iommuspec::results {

void finalize(Run& run, const std::vector<std::string>& catalogue) {
  run.summary = {};
  // A clause's status comes from the steps that exercised it: a failing step fails its
  // clause, a passing step passes its; a scenario that passed passes all it declares; an
  // unsupported one leaves its clauses unsupported.
  std::map<std::string, std::set<std::string>> seen;
  for (const auto& s : run.scenarios) {
    if (s.verdict == "pass") {
      ++run.summary.pass;
    } else if (s.verdict == "fail") {
      ++run.summary.fail;
      run.summary.known_findings += s.known_finding ? 1 : 0;
    } else if (s.verdict == "unsupported") {
      ++run.summary.unsupported;
    } else {
      ++run.summary.error;
    }
    if (s.verdict == "pass" || s.verdict == "unsupported")
      for (const auto& c : s.clauses)
        seen[c].insert(s.verdict);
    for (const auto& st : s.steps)
      if (!st.clause.empty() && (st.verdict == "pass" || st.verdict == "fail"))
        seen[st.clause].insert(st.verdict);
  }
  run.clauses.clear();
  for (const auto& c : catalogue)
    run.clauses[c] = "untested";
  for (const auto& [c, v] : seen)
    run.clauses[c] = v.count("fail") ? "fail" : v.count("pass") ? "pass" : "unsupported";
}

std::map<std::string, std::string> read_findings(const std::string& path) {
  std::map<std::string, std::string> m;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ss(line);
    std::string id, clause;
    if (ss >> id >> clause) m[id] = clause;
  }
  return m;
}

FindingsCheck apply_findings(Run& run, const std::map<std::string, std::string>& known) {
  FindingsCheck c;
  std::set<std::string> seen;
  for (auto& s : run.scenarios) {
    if (s.verdict != "fail") continue;
    std::string clause;
    for (const auto& st : s.steps)
      if (st.verdict == "fail") clause = st.clause;
    auto it = known.find(s.id);
    if (it != known.end() && it->second == clause) {
      s.known_finding = true;
      seen.insert(s.id);
    } else {
      c.unexpected.push_back(s.id + " " + clause + ": " + s.message);
    }
  }
  for (const auto& [id, clause] : known)
    if (!seen.count(id)) c.missing.push_back(id + " " + clause);
  return c;
}

void write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    f << content;
    f.flush();
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

void write_json(const Run& run, const std::string& path) {
  using nlohmann::json;
  json j;
  j["tool"] = {{"name", run.tool_name}, {"version", run.tool_version}};
  j["target"] = {{"name", run.target}, {"fingerprint", run.fingerprint}};
  j["profile"] = run.profile;
  j["started"] = run.started;
  j["seed"] = run.seed;
  j["partial"] = run.partial;
  j["seconds"] = run.seconds;
  j["suite"] = {
      {"version", run.suite.version}, {"hash", run.suite.hash}, {"scenarios", run.suite.scenarios}};
  j["shard"] = {{"index", run.shard_index}, {"count", run.shard_count}};
  j["summary"] = {{"pass", run.summary.pass},
                  {"fail", run.summary.fail},
                  {"unsupported", run.summary.unsupported},
                  {"error", run.summary.error},
                  {"known_findings", run.summary.known_findings}};
  json scs = json::array();
  for (const auto& s : run.scenarios) {
    json steps = json::array();
    for (const auto& st : s.steps)
      steps.push_back({{"number", st.number},
                       {"op", st.op},
                       {"observed", st.observed},
                       {"allowed", st.allowed},
                       {"clause", st.clause},
                       {"verdict", st.verdict},
                       {"message", st.message}});
    json o = {{"id", s.id},           {"file", s.file},       {"clauses", s.clauses},
              {"verdict", s.verdict}, {"seconds", s.seconds}, {"steps", steps}};
    if (!s.message.empty()) o["message"] = s.message;
    if (!s.log.empty()) o["log"] = s.log;
    if (s.known_finding) o["known_finding"] = true;
    scs.push_back(o);
  }
  j["scenarios"] = scs;
  j["clauses"] = run.clauses;
  write_atomically(path, j.dump(2) + "\n");
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
    case '&':
      o += "&amp;";
      break;
    case '<':
      o += "&lt;";
      break;
    case '>':
      o += "&gt;";
      break;
    case '"':
      o += "&quot;";
      break;
    default:
      if (uint8_t(c) < 0x20 && c != '\n' && c != '\t')
        o += ' ';
      else
        o += c;
    }
  }
  return o;
}

std::string failure_text(const ScenarioResult& s) {
  std::string t = s.message + "\n";
  for (const auto& st : s.steps)
    t += fmt::format("{}: {}\n   observed: {}\n   allowed:  {}  [{}] {}\n", st.number, st.op,
                     st.observed, st.allowed, st.clause, st.verdict);
  if (!s.log.empty()) t += "--- target log ---\n" + s.log;
  return t;
}

void write_junit(const Run& run, const std::string& path) {
  double total = 0;
  for (const auto& s : run.scenarios)
    total += s.seconds;
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += fmt::format("<testsuites name=\"iommuspec\" tests=\"{}\" failures=\"{}\" errors=\"{}\" "
                   "skipped=\"{}\" time=\"{:.3f}\">\n",
                   run.scenarios.size(), run.summary.fail, run.summary.error,
                   run.summary.unsupported, total);
  x += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" "
                   "skipped=\"{}\" time=\"{:.3f}\">\n",
                   xml_escape(run.target + " " + run.profile), run.scenarios.size(),
                   run.summary.fail, run.summary.error, run.summary.unsupported, total);
  for (const auto& s : run.scenarios) {
    x += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3f}\"",
                     xml_escape(run.target), xml_escape(s.id), s.seconds);
    if (s.verdict == "pass") {
      x += "/>\n";
      continue;
    }
    x += ">\n";
    if (s.verdict == "fail" && s.known_finding)
      x += fmt::format("      <skipped message=\"known finding: {}\"/>\n", xml_escape(s.message));
    else if (s.verdict == "fail")
      x += fmt::format("      <failure message=\"{}\">{}</failure>\n", xml_escape(s.message),
                       xml_escape(failure_text(s)));
    else if (s.verdict == "unsupported")
      x += fmt::format("      <skipped message=\"{}\"/>\n", xml_escape(s.message));
    else
      x += fmt::format("      <error message=\"{}\">{}</error>\n", xml_escape(s.message),
                       xml_escape(failure_text(s)));
    x += "    </testcase>\n";
  }
  x += "  </testsuite>\n</testsuites>\n";
  write_atomically(path, x);
}

void write_index(const std::vector<std::pair<Run, std::string>>& runs, const std::string& dir) {
  nlohmann::json j = nlohmann::json::array();
  std::string h = "<!doctype html><html><head><meta charset=\"utf-8\"><title>iommuspec "
                  "certification</title><style>body{font:14px system-ui,sans-serif;margin:2em}"
                  "td,th{border:1px solid #ccc;padding:2px 8px}table{border-collapse:collapse}"
                  "</style></head><body><h1>iommuspec certification</h1><table><tr><th>target"
                  "</th><th>profile</th><th>pass</th><th>fail</th><th>unsupported</th><th>error"
                  "</th><th>report</th></tr>";
  for (const auto& [run, sub] : runs) {
    j.push_back({{"target", run.target},
                 {"profile", run.profile},
                 {"summary",
                  {{"pass", run.summary.pass},
                   {"fail", run.summary.fail},
                   {"unsupported", run.summary.unsupported},
                   {"error", run.summary.error}}},
                 {"report", sub}});
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td><a href=\"{}/report.html\">{}</a></td></tr>",
                     xml_escape(run.target), xml_escape(run.profile), run.summary.pass,
                     run.summary.fail, run.summary.unsupported, run.summary.error, xml_escape(sub),
                     xml_escape(sub));
  }
  h += "</table></body></html>\n";
  write_atomically(dir + "/summary.json", j.dump(2) + "\n");
  write_atomically(dir + "/index.html", h);
}

} // namespace iommuspec::results
