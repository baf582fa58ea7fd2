#include "fuzz/fuzz.h"

#include "runner/runner.h"

#include <chrono>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <set>
#include <unordered_set>

namespace iommuspec::conformance::fuzz {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The operation of a step's text "12: dma sid=1 ..." (the number changes as steps go).
std::string step_op(const std::string& text) {
  const size_t colon = text.find(": ");
  const std::string rest = colon == std::string::npos ? text : text.substr(colon + 2);
  return rest.substr(0, rest.find(' '));
}

// Runs candidates on one target, replacing it after an infrastructure error.
class Replayer {
public:
  Replayer(const TargetFactory& make, iommufd::Profile profile) : make_(make), profile_(profile) {}
  results::ScenarioResult run(const scenario::Scenario& sc) {
    if (!target_) target_ = make_();
    auto r = run_scenario(sc, *target_, profile_);
    if (r.verdict == "error") target_.reset(); // a fresh target for the next one
    ++runs_;
    return r;
  }
  size_t runs() const { return runs_; }

private:
  const TargetFactory& make_;
  iommufd::Profile profile_;
  std::unique_ptr<Target> target_;
  size_t runs_ = 0;
};

std::string slug(const std::string& s) {
  std::string o;
  for (char c : s)
    o += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return o;
}

} // namespace

std::string signature(const results::ScenarioResult& r) {
  for (const auto& st : r.steps)
    if (st.verdict == "fail")
      return fmt::format("{} [{}] {}", step_op(st.op), st.clause,
                         generators::outcome_class(st.observed));
  return r.verdict + ": " + r.message;
}

ShrinkResult shrink(const scenario::Scenario& sc, const std::string& sig, const TargetFactory& make,
                    const ShrinkOptions& opt) {
  const auto t0 = Clock::now();
  Replayer replay(make, opt.profile);
  ShrinkResult best;
  best.scenario = sc;
  best.result = replay.run(sc);
  auto out_of_time = [&] { return since(t0) > opt.budget_seconds; };
  auto try_candidate = [&](scenario::Scenario c) {
    generators::renumber(c);
    auto r = replay.run(c);
    if (r.verdict != "fail" || signature(r) != sig) return false;
    best.scenario = std::move(c);
    best.result = std::move(r);
    return true;
  };
  // Runs of steps, halving (delta debugging's complements): most of a generated trace is
  // irrelevant, so large cuts pay first. Repeated until no single step can go.
  auto remove_steps = [&] {
    bool any = false, changed = true;
    while (changed && !out_of_time()) {
      changed = false;
      for (size_t len = std::max<size_t>(best.scenario.steps.size() / 2, 1);; len /= 2) {
        size_t i = 0;
        while (i < best.scenario.steps.size() && !out_of_time()) {
          scenario::Scenario c = best.scenario;
          const size_t end = std::min(i + len, c.steps.size());
          c.steps.erase(c.steps.begin() + long(i), c.steps.begin() + long(end));
          if (!c.steps.empty() && try_candidate(std::move(c)))
            changed = any = true;
          else
            i += len;
        }
        if (len <= 1) break;
      }
    }
    return any;
  };
  // Then the commands of a batch and the arguments of a step (defaults are simpler), one
  // at a time in place; after any of them took, steps may have become removable.
  auto remove_parts = [&] {
    bool any = false;
    for (size_t i = 0; i < best.scenario.steps.size() && !out_of_time(); ++i)
      for (size_t a = 0; a < best.scenario.steps[i].args.size() && !out_of_time();) {
        bool took = false;
        const auto* l = std::get_if<scenario::List>(&best.scenario.steps[i].args[a].value.v);
        for (size_t k = 0; l && l->items.size() > 1 && k < l->items.size() && !out_of_time();) {
          scenario::Scenario c = best.scenario;
          auto& items = std::get<scenario::List>(c.steps[i].args[a].value.v).items;
          items.erase(items.begin() + long(k));
          if (try_candidate(std::move(c))) {
            any = true;
            l = std::get_if<scenario::List>(&best.scenario.steps[i].args[a].value.v);
          } else {
            ++k;
          }
        }
        scenario::Scenario c = best.scenario;
        c.steps[i].args.erase(c.steps[i].args.begin() + long(a));
        took = try_candidate(std::move(c));
        any = any || took;
        if (!took) ++a;
      }
    return any;
  };
  remove_steps();
  while (!out_of_time() && remove_parts() && remove_steps()) {
  }
  best.complete = !out_of_time();
  best.replays = replay.runs();
  best.seconds = since(t0);
  return best;
}

void cover(generators::TransitionGraph& g, const scenario::Scenario& sc,
           const results::ScenarioResult& r) {
  auto abs = generators::make_abstraction(sc.area);
  if (!abs) return;
  for (size_t i = 0; i < r.steps.size() && i < sc.steps.size(); ++i) {
    const auto& sr = r.steps[i];
    if (sr.verdict != "pass" && sr.verdict != "fail") break;
    const std::string from = abs->state();
    const std::string label = abs->apply(sc.steps[i], sr.allowed);
    g.add(from, label, abs->state());
  }
}

Reachable reachable(const generators::TraceOptions& opt_in, size_t depth) {
  generators::TraceOptions opt = opt_in;
  opt.small = true;
  Reachable out;
  auto model = make_model_target(opt.profile);
  // Breadth first over traces given by their choices: a trace that reaches an abstract
  // state no earlier trace reached is expanded by every distinct next action.
  struct Node {
    std::vector<size_t> choices;
    size_t actions;
  };
  std::deque<Node> todo = {{{}, 0}};
  std::set<std::string> expanded;
  while (!todo.empty()) {
    const Node node = todo.front();
    todo.pop_front();
    if (node.actions >= depth) continue;
    std::unordered_set<std::string> seen_text;
    // Every path through the next action's choices, the prefix's replayed as they were.
    std::vector<size_t> forced = node.choices;
    for (;;) {
      generators::ReplayPicker p(forced);
      scenario::Scenario sc;
      sc.area = opt.area;
      auto gen = generators::make_trace_gen(opt);
      gen->begin(sc, p);
      for (size_t a = 0; a <= node.actions; ++a)
        gen->action(sc, p);
      generators::renumber(sc);
      const std::string text = scenario::print(sc);
      if (seen_text.insert(text).second) {
        sc.id = "reachable";
        auto r = run_scenario(sc, *model, opt.profile);
        ++out.runs;
        auto abs = generators::make_abstraction(sc.area);
        bool ran_all = true;
        for (size_t i = 0; i < r.steps.size() && i < sc.steps.size(); ++i) {
          const auto& sr = r.steps[i];
          if (sr.verdict != "pass") {
            ran_all = false;
            break;
          }
          const std::string from = abs->state();
          const std::string label = abs->apply(sc.steps[i], sr.allowed);
          out.graph.add(from, label, abs->state());
        }
        if (ran_all && expanded.insert(abs->state()).second)
          todo.push_back({p.made(), node.actions + 1});
      }
      if (!generators::next_choices(p, node.choices.size(), forced)) break;
    }
  }
  return out;
}

Report fuzz(const Options& opt, const TargetFactory& make) {
  const auto t0 = Clock::now();
  Report rep;
  std::filesystem::create_directories(opt.out_dir);
  std::unique_ptr<Target> target;
  std::map<std::string, size_t> by_signature; // -> index in rep.failures
  for (uint64_t run = 0; run < opt.runs; ++run) {
    if (opt.stop && opt.stop->load()) break;
    scenario::Scenario sc = generators::trace_for(opt.trace, opt.seed, run);
    sc.id = fmt::format("fuzz-{}-s{}-r{}", slug(opt.target_name), opt.seed, run);
    if (!target) target = make();
    const auto tr = Clock::now();
    auto r = run_scenario(sc, *target, opt.trace.profile);
    rep.run_seconds += since(tr);
    ++rep.runs;
    rep.steps += sc.steps.size();
    cover(rep.exercised, sc, r);
    if (r.verdict == "pass") ++rep.pass;
    if (r.verdict == "unsupported") ++rep.unsupported;
    if (r.verdict == "fail" || r.verdict == "error") {
      (r.verdict == "fail" ? rep.fail : rep.error)++;
      if (r.verdict == "error") target.reset();
      const std::string sig = signature(r);
      if (auto it = by_signature.find(sig); it != by_signature.end()) {
        ++rep.failures[it->second].repeats;
      } else {
        Failure f;
        f.run = run;
        f.verdict = r.verdict;
        f.signature = sig;
        f.original_steps = sc.steps.size();
        scenario::Scenario saved = sc;
        results::ScenarioResult saved_result = r;
        if (r.verdict == "fail") {
          // Shrinking replays on targets of its own: this one keeps its state for the next run.
          const auto ts = Clock::now();
          auto s = shrink(sc, sig, make, {opt.trace.profile, opt.shrink_budget_seconds});
          rep.shrink_seconds += since(ts);
          saved = std::move(s.scenario);
          saved_result = std::move(s.result);
          f.replays = s.replays;
          f.shrink_seconds = s.seconds;
          f.shrink_complete = s.complete;
        }
        f.shrunk_steps = saved.steps.size();
        f.message = saved_result.message;
        saved.doc = fmt::format("Found by iommuspec fuzz on {} (seed {}, run {}; {} steps shrunk "
                                "to {}): {}",
                                opt.target_name, opt.seed, run, f.original_steps, f.shrunk_steps,
                                saved_result.message);
        for (char& c : saved.doc)
          if (c == '"' || c == '\n') c = '\'';
        // The clauses the shrunk trace's steps were judged by replace any the generator
        // wrote for the whole trace (a header is given once: the parser refuses a second).
        std::set<std::string> judged;
        for (const auto& st : saved_result.steps)
          if (!st.clause.empty()) judged.insert(st.clause);
        std::vector<std::string> clauses(judged.begin(), judged.end());
        if (clauses.empty()) clauses = saved_result.clauses; // a trace that stopped at set-up
        std::erase_if(saved.headers, [](const scenario::Header& h) { return h.key == "clauses"; });
        saved.headers.insert(saved.headers.begin(), {"clauses", clauses, {}});
        generators::fit_headers(saved);
        saved.headers.push_back({"Generator", {"iommuspec-fuzz", opt.trace.area}, {}});
        saved.headers.push_back({"Seed", {std::to_string(opt.seed)}, {}});
        saved.headers.push_back({"Origin", {opt.target_name, "run", std::to_string(run)}, {}});
        f.file = (std::filesystem::path(opt.out_dir) /
                  fmt::format("{}-s{}-r{}.scn", slug(opt.target_name), opt.seed, run))
                     .string();
        results::write_atomically(f.file, scenario::print(saved));
        if (!saved_result.log.empty())
          results::write_atomically(f.file.substr(0, f.file.size() - 4) + ".log", saved_result.log);
        by_signature[sig] = rep.failures.size();
        rep.failures.push_back(std::move(f));
        // What was found so far survives an interrupted or crashed campaign.
        rep.seconds = since(t0);
        results::write_atomically((std::filesystem::path(opt.out_dir) / "fuzz.json").string(),
                                  report_json(opt, rep));
      }
    }
    if (opt.progress) opt.progress(run + 1, opt.runs, rep.failures.size());
  }
  if (opt.coverage_depth > 0) {
    const auto tc = Clock::now();
    auto reach = reachable(opt.trace, opt.coverage_depth);
    rep.reachable = std::move(reach.graph);
    rep.reachable_runs = reach.runs;
    rep.reachable_seconds = since(tc);
  }
  rep.seconds = since(t0);
  results::write_atomically((std::filesystem::path(opt.out_dir) / "coverage.dot").string(),
                            rep.exercised.dot(opt.coverage_depth ? &rep.reachable : nullptr));
  results::write_atomically((std::filesystem::path(opt.out_dir) / "fuzz.json").string(),
                            report_json(opt, rep));
  return rep;
}

namespace {
std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += std::string("\\") + c;
    else if (static_cast<unsigned char>(c) < 0x20)
      o += fmt::format("\\u{:04x}", c);
    else
      o += c;
  }
  return o + "\"";
}
} // namespace

std::string report_json(const Options& opt, const Report& r) {
  std::string j = "{\n";
  j += fmt::format("  \"target\": {},\n  \"area\": {},\n  \"seed\": {},\n",
                   json_string(opt.target_name), json_string(opt.trace.area), opt.seed);
  j += fmt::format("  \"summary\": {{\"runs\": {}, \"pass\": {}, \"fail\": {}, \"unsupported\": "
                   "{}, \"error\": {}, \"steps\": {}}},\n",
                   r.runs, r.pass, r.fail, r.unsupported, r.error, r.steps);
  j += fmt::format("  \"seconds\": {{\"total\": {:.3f}, \"running\": {:.3f}, \"shrinking\": "
                   "{:.3f}, \"reachable\": {:.3f}}},\n",
                   r.seconds, r.run_seconds, r.shrink_seconds, r.reachable_seconds);
  j +=
      fmt::format("  \"coverage\": {{\"states\": {}, \"transitions\": {}, \"reachable_depth\": "
                  "{}, \"reachable_states\": {}, \"reachable_transitions\": {}, "
                  "\"reachable_covered\": {}}},\n",
                  r.exercised.states(), r.exercised.transitions(), opt.coverage_depth,
                  r.reachable.states(), r.reachable.transitions(), r.exercised.common(r.reachable));
  j += "  \"failures\": [";
  for (size_t i = 0; i < r.failures.size(); ++i) {
    const auto& f = r.failures[i];
    j += fmt::format("{}\n    {{\"run\": {}, \"verdict\": {}, \"signature\": {}, \"message\": {}, "
                     "\"steps\": {}, \"shrunk_steps\": {}, \"replays\": {}, \"shrink_seconds\": "
                     "{:.3f}, \"shrink_complete\": {}, \"repeats\": {}, \"file\": {}}}",
                     i ? "," : "", f.run, json_string(f.verdict), json_string(f.signature),
                     json_string(f.message), f.original_steps, f.shrunk_steps, f.replays,
                     f.shrink_seconds, f.shrink_complete ? "true" : "false", f.repeats,
                     json_string(f.file));
  }
  j += r.failures.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return j;
}

} // namespace iommuspec::conformance::fuzz
