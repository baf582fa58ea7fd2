// The certification report: one self-contained HTML file (inline CSS and SVG, no network).
#include "results.h"
#include "text.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace iommuspec::results {

std::string clause_area(const std::string& clause) {
  const auto a = clause.find('.');
  if (a == std::string::npos) return clause;
  const auto b = clause.find('.', a + 1);
  return clause.substr(0, b);
}

std::string step_op(const std::string& step) {
  std::istringstream ss(step);
  std::string num, op;
  ss >> num >> op;
  return op;
}

namespace {

std::string esc(const std::string& s) {
  return xml_escape(s);
}

const char* kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}header a{color:#fff}
main{padding:8px 32px 40px;max-width:1400px}
h2{border-bottom:2px solid #1f3a5f;padding-bottom:4px;margin-top:32px}
h3{margin:20px 0 6px}
table{border-collapse:collapse;margin:6px 0;background:#fff}
td,th{border:1px solid #d0d4da;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d4da;border-radius:8px;padding:12px 16px;min-width:260px}
.card h3{margin:0 0 6px}
.n{font-size:22px;font-weight:700;margin-right:10px}
.pass{color:#0f7b3a}.fail{color:#b3261e}.unsupported,.untested,.not-run{color:#6b7280}.error{color:#a15c00}
td.pass{background:#e7f6ec}td.fail{background:#fde8e7}td.unsupported,td.untested{background:#f3f4f6}td.error{background:#fff3e0}
.known{background:#fff3cd;color:#7a5b00;border-radius:4px;padding:0 5px;font-size:12px}
.partial{background:#b3261e;color:#fff;padding:8px 12px;border-radius:6px;font-weight:700}
pre{background:#f3f4f6;padding:8px;white-space:pre-wrap;word-break:break-all;font-size:12px}
code{font-size:12px;white-space:pre-wrap;word-break:break-word}
td{word-break:break-word;max-width:900px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.graph svg{max-width:100%;height:auto;background:#fff;border:1px solid #d0d4da}
.muted{color:#6b7280}
)";

std::string column(const Run& r) {
  return r.target + " " + r.profile;
}

// The op transition graph of every scenario that ran, as DOT.
std::string transition_dot(const std::vector<Run>& runs) {
  std::map<std::pair<std::string, std::string>, int> edges;
  std::map<std::string, int> nodes;
  for (const auto& r : runs)
    for (const auto& s : r.scenarios) {
      std::string prev = "start";
      for (const auto& st : s.steps) {
        if (st.verdict == "not-run") break;
        const std::string op = step_op(st.op);
        ++nodes[op];
        ++edges[{prev, op}];
        prev = op;
      }
    }
  // Drawn so that it stays readable at page width: a compact layout, and only the
  // transitions taken at least twice.
  std::string d = "digraph transitions {\n  graph [rankdir=TB, nodesep=0.25, ranksep=0.35, "
                  "size=\"11,14\", ratio=compress, splines=true];\n"
                  "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef1f5\", "
                  "fontname=Helvetica, fontsize=16];\n"
                  "  edge [color=\"#6b7280\", arrowsize=0.6];\n  start [shape=circle, label=\"\", "
                  "width=0.25, fillcolor=\"#1f3a5f\"];\n";
  for (const auto& [n, c] : nodes)
    d += fmt::format("  \"{}\" [label=\"{} ({})\"];\n", n, n, c);
  for (const auto& [e, c] : edges)
    if (c >= 2)
      d += fmt::format("  \"{}\" -> \"{}\" [penwidth={:.1f}];\n", e.first, e.second,
                       std::min(6.0, 0.8 + c / 8.0));
  return d + "}\n";
}

// Graphviz's SVG of `dot`, or "" when `dot` is not installed.
std::string render_svg(const std::string& dot) {
  if (std::system("command -v dot >/dev/null 2>&1") != 0) return {};
  char in[] = "/tmp/iommuspec-dotXXXXXX";
  const int fd = mkstemp(in);
  if (fd < 0) return {};
  { std::ofstream(in) << dot; }
  ::close(fd);
  std::string svg;
  if (FILE* p = popen(fmt::format("dot -Tsvg '{}' 2>/dev/null", in).c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
      svg.append(buf, n);
    pclose(p);
  }
  std::remove(in);
  const auto at = svg.find("<svg");
  return at == std::string::npos ? std::string() : svg.substr(at);
}

std::string trace_table(const ScenarioResult& s) {
  std::string h = "<table><tr><th>step</th><th>observed</th><th>allowed by the model</th>"
                  "<th>clause</th><th></th></tr>";
  for (const auto& st : s.steps)
    h += fmt::format("<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td>"
                     "<td><code>{}</code></td><td class=\"{}\">{}{}</td></tr>",
                     esc(st.op), esc(st.observed), esc(st.allowed), esc(st.clause), st.verdict,
                     st.verdict, st.message.empty() ? "" : "<br>" + esc(st.message));
  return h + "</table>";
}

} // namespace

void write_html(const std::vector<Run>& runs, const std::string& path) {
  std::string h = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
                  "iommuspec report</title><style>";
  h += kStyle;
  h += "</style></head><body><header><h1>iommuspec conformance report</h1>";
  const Run* first = runs.empty() ? nullptr : &runs.front();
  if (first)
    h += fmt::format("<p>iommuspec {} &middot; suite {} ({} scenarios) &middot; {}</p>",
                     esc(first->tool_version), esc(first->suite.hash), first->suite.scenarios,
                     esc(first->started));
  h += "<p><a href=\"#findings\">findings</a> &middot; <a href=\"#clauses\">clause matrix</a> "
       "&middot; <a href=\"#coverage\">coverage</a> &middot; <a href=\"#timings\">timings</a> "
       "&middot; <a href=\"#scenarios\">scenarios</a></p></header><main>";
  for (const auto& r : runs)
    if (r.partial)
      h += fmt::format("<p class=\"partial\">PARTIAL: the run on {} was interrupted; {} of {} "
                       "scenarios ran.</p>",
                       esc(column(r)), r.scenarios.size(), r.suite.scenarios);

  // Summary cards
  h += "<h2 id=\"summary\">Summary</h2><div class=\"cards\">";
  for (const auto& r : runs) {
    h += fmt::format("<div class=\"card\"><h3>{}</h3><span class=\"n pass\">{} pass</span>"
                     "<span class=\"n fail\">{} fail</span><br><span class=unsupported>{} "
                     "unsupported</span> &middot; <span class=error>{} error</span>",
                     esc(column(r)), r.summary.pass, r.summary.fail, r.summary.unsupported,
                     r.summary.error);
    if (r.summary.known_findings)
      h += fmt::format(" &middot; <span class=known>{} known findings</span>",
                       r.summary.known_findings);
    int exercised = 0;
    for (const auto& [c, st] : r.clauses)
      exercised += st == "pass" || st == "fail";
    h += fmt::format("<br><span class=muted>{} of {} clauses exercised &middot; {:.2f}s"
                     "{}</span></div>",
                     exercised, r.clauses.size(), r.seconds,
                     r.shard_count > 1
                         ? fmt::format(" &middot; shard {}/{}", r.shard_index, r.shard_count)
                         : std::string());
  }
  h += "</div>";

  // Targets
  h += "<h2 id=\"targets\">Targets</h2>";
  for (const auto& r : runs) {
    h += fmt::format("<h3>{}</h3><table><tr><th>target</th><td>{}</td></tr><tr><th>uAPI profile"
                     "</th><td>{}</td></tr><tr><th>started</th><td>{}</td></tr><tr><th>seed</th>"
                     "<td>{}</td></tr><tr><th>suite</th><td>{} &middot; hash {} &middot; {} "
                     "scenarios</td></tr>",
                     esc(column(r)), esc(r.target), esc(r.profile), esc(r.started), r.seed,
                     esc(r.suite.version), esc(r.suite.hash), r.suite.scenarios);
    for (const auto& [k, v] : r.fingerprint)
      h += fmt::format("<tr><th>{}</th><td><code>{}</code></td></tr>", esc(k), esc(v));
    h += "</table>";
  }

  // Findings
  h += "<h2 id=\"findings\">Findings</h2>";
  bool any = false;
  for (const auto& r : runs)
    for (const auto& s : r.scenarios) {
      if (s.verdict != "fail") continue;
      any = true;
      std::string clause;
      for (const auto& st : s.steps)
        if (st.verdict == "fail") clause = st.clause;
      h += fmt::format("<details open><summary><span class=fail>{}</span> on {} &mdash; <code>{}"
                       "</code> {}</summary><p>{}</p>{}</details>",
                       esc(s.id), esc(column(r)), esc(clause),
                       s.known_finding ? "<span class=known>known finding</span>" : "",
                       esc(s.message), trace_table(s));
    }
  if (!any) h += "<p class=pass>No target deviated from the model.</p>";
  bool errors = false;
  for (const auto& r : runs)
    for (const auto& s : r.scenarios)
      if (s.verdict == "error") {
        if (!errors) h += "<h2 id=\"errors\">Errors</h2>";
        errors = true;
        h += fmt::format("<details><summary><span class=error>{}</span> on {}</summary><p>{}</p>"
                         "{}{}</details>",
                         esc(s.id), esc(column(r)), esc(s.message), trace_table(s),
                         s.log.empty() ? "" : "<pre>" + esc(s.log) + "</pre>");
      }

  // Clause matrix by area
  h += "<h2 id=\"clauses\">Clause matrix</h2><table><tr><th>clause</th>";
  for (const auto& r : runs)
    h += "<th>" + esc(column(r)) + "</th>";
  h += "</tr>";
  std::map<std::string, std::vector<std::string>> by_area;
  std::set<std::string> all;
  for (const auto& r : runs)
    for (const auto& [c, st] : r.clauses)
      all.insert(c);
  for (const auto& c : all)
    by_area[clause_area(c)].push_back(c);
  for (const auto& [area, cs] : by_area) {
    h += fmt::format("<tr><th colspan=\"{}\">{}</th></tr>", runs.size() + 1, esc(area));
    for (const auto& c : cs) {
      h += "<tr><td><code>" + esc(c) + "</code></td>";
      for (const auto& r : runs) {
        auto it = r.clauses.find(c);
        const std::string st = it == r.clauses.end() ? "untested" : it->second;
        h += fmt::format("<td class=\"{}\">{}</td>", st, st);
      }
      h += "</tr>";
    }
  }
  h += "</table>";

  // Coverage graph
  h += "<h2 id=\"coverage\">Coverage</h2><p>Operations the scenarios exercised (how often) "
       "and the transitions between consecutive steps taken at least twice.</p>";
  const std::string svg = render_svg(transition_dot(runs));
  if (!svg.empty())
    h += "<div class=\"graph\">" + svg + "</div>";
  else
    h += "<p class=muted>(Graphviz's <code>dot</code> is not installed here: no graph.)</p>";

  // Timings
  h += "<h2 id=\"timings\">Timings</h2><table><tr><th>target</th><th>wall time</th><th>slowest "
       "scenarios</th></tr>";
  for (const auto& r : runs) {
    std::vector<const ScenarioResult*> v;
    for (const auto& s : r.scenarios)
      v.push_back(&s);
    std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seconds > b->seconds; });
    std::string slow;
    for (size_t i = 0; i < v.size() && i < 5; ++i)
      slow += fmt::format("{} ({:.3f}s)<br>", esc(v[i]->id), v[i]->seconds);
    h += fmt::format("<tr><td>{}</td><td>{:.2f}s</td><td>{}</td></tr>", esc(column(r)), r.seconds,
                     slow);
  }
  h += "</table><h2 id=\"scenarios\">Scenarios</h2>";
  for (const auto& r : runs) {
    h += fmt::format("<details><summary>{}: {} scenarios</summary><table><tr><th>scenario</th>"
                     "<th>verdict</th><th>seconds</th><th>clauses</th></tr>",
                     esc(column(r)), r.scenarios.size());
    for (const auto& s : r.scenarios) {
      std::string cl;
      for (const auto& c : s.clauses)
        cl += esc(c) + " ";
      h += fmt::format("<tr><td>{}</td><td class=\"{}\">{}</td><td>{:.3f}</td><td><code>{}</code>"
                       "</td></tr>",
                       esc(s.id), s.verdict, s.verdict, s.seconds, cl);
    }
    h += "</table></details>";
  }
  h += "</main></body></html>\n";
  write_atomically(path, h);
}

void write_acs_log(const Run& run, const std::string& path) {
  std::string out = fmt::format("iommuspec {} conformance log: target {} ({}), suite {}\n\n",
                                run.tool_version, run.target, run.profile, run.suite.hash);
  std::map<std::string, std::vector<const ScenarioResult*>> by_clause;
  for (const auto& s : run.scenarios)
    for (const auto& c : s.clauses)
      by_clause[c].push_back(&s);
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& [clause, status] : run.clauses) {
    out += fmt::format("START {} {}\n", clause_area(clause), clause);
    for (const auto* s : by_clause[clause])
      out += fmt::format("    {:<11} {}{}\n", s->verdict, s->id,
                         s->verdict == "fail" && !s->message.empty() ? ": " + s->message : "");
    const char* end = status == "pass" ? "PASSED" : status == "fail" ? "FAILED" : "SKIPPED";
    (status == "pass" ? passed : status == "fail" ? failed : skipped) += 1;
    out += fmt::format("END {} {}\n\n", clause, end);
  }
  out += fmt::format("TOTAL CLAUSES: {}  PASSED: {}  FAILED: {}  SKIPPED: {}\n", run.clauses.size(),
                     passed, failed, skipped);
  out += fmt::format("TOTAL SCENARIOS: {}  PASS: {}  FAIL: {}  UNSUPPORTED: {}  ERROR: {}{}\n",
                     run.scenarios.size(), run.summary.pass, run.summary.fail,
                     run.summary.unsupported, run.summary.error, run.partial ? "  (PARTIAL)" : "");
  write_atomically(path, out);
}

} // namespace iommuspec::results
