#include "fuzz/fuzz.h"

#include "runner/runner.h"

#include <chrono>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
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

// A target from the factory, or nullptr with `why` set when it cannot start (QEMU or the
// test kernel failing to come up is an infrastructure error, not a finding).
std::unique_ptr<Target> start(const TargetFactory& make, std::string& why) {
  try {
    return make();
  } catch (const TargetError& e) {
    why = e.what();
  } catch (const std::exception& e) {
    why = e.what();
  }
  return nullptr;
}

results::ScenarioResult not_started(const scenario::Scenario& sc, const std::string& why) {
  results::ScenarioResult r;
  r.id = sc.id;
  r.verdict = "error";
  r.message = "the target did not start: " + why;
  return r;
}

// Runs shrinking candidates on one target, replacing it after an infrastructure error. A
// candidate the model cannot run (a step removed that later steps need: it no longer
// compiles or encodes) never reaches the target, which would be restarted for nothing.
class Replayer {
public:
  Replayer(const TargetFactory& make, iommufd::Profile profile)
      : make_(make), profile_(profile), model_(make_model_target(profile)) {}
  // std::nullopt for a candidate that is not a scenario the model can run.
  std::optional<results::ScenarioResult> run(const scenario::Scenario& sc) {
    if (run_scenario(sc, *model_, profile_).verdict == "error") return std::nullopt;
    ++runs_;
    std::string why;
    if (!target_) target_ = start(make_, why);
    if (!target_) return not_started(sc, why);
    auto r = run_scenario(sc, *target_, profile_);
    if (r.verdict == "error") target_.reset(); // a fresh target for the next one
    return r;
  }
  size_t runs() const { return runs_; }

private:
  const TargetFactory& make_;
  iommufd::Profile profile_;
  std::unique_ptr<Target> model_;
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
  // An error: where it stopped (the first step not run) and what the target said, with
  // numbers blotted out (addresses, PIDs and step numbers differ between crashes).
  std::string at = "set-up";
  for (const auto& st : r.steps)
    if (st.verdict == "not-run") {
      at = step_op(st.op);
      break;
    }
  std::string what;
  for (char c : r.message.substr(0, 160)) {
    const bool digit = std::isdigit(static_cast<unsigned char>(c));
    if (!digit)
      what += c;
    else if (what.empty() || what.back() != '#')
      what += '#';
  }
  return fmt::format("{} error: {}", at, what);
}

ShrinkResult shrink(const scenario::Scenario& sc, const std::string& sig, const TargetFactory& make,
                    const ShrinkOptions& opt) {
  const auto t0 = Clock::now();
  Replayer replay(make, opt.profile);
  ShrinkResult best;
  best.scenario = sc;
  auto first = replay.run(sc);
  auto finish = [&](bool complete) {
    best.complete = complete;
    best.replays = replay.runs();
    best.seconds = since(t0);
    return best;
  };
  // A failure that does not show again on a fresh target (timing, state outside the trace)
  // is reported as found, not shrunk.
  if (first) best.result = std::move(*first);
  best.reproduced = first && best.result.verdict == "fail" && signature(best.result) == sig;
  if (!best.reproduced) return finish(false);
  auto out_of_time = [&] {
    return since(t0) > opt.budget_seconds || (opt.stop && opt.stop->load());
  };
  auto try_candidate = [&](scenario::Scenario c) {
    generators::renumber(c);
    auto r = replay.run(c);
    if (!r || r->verdict != "fail" || signature(*r) != sig) return false;
    best.scenario = std::move(c);
    best.result = std::move(*r);
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
  for (;;) {
    const bool parts = remove_parts();
    const bool steps = remove_steps();
    if (out_of_time() || (!parts && !steps)) break;
  }
  return finish(!out_of_time());
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

Reachable reachable(const generators::TraceOptions& opt_in, size_t depth,
                    const std::atomic<bool>* stop) {
  generators::TraceOptions opt = opt_in;
  opt.small = true;
  Reachable out;
  if (!generators::make_abstraction(opt.area)) return out;
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
    if (stop && stop->load()) {
      out.complete = false;
      break;
    }
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

namespace {

// The scenario file of a failure: the shrunk trace (or the whole one), with what it shows,
// the clauses its steps were judged by, and how to make it again.
scenario::Scenario saved_scenario(const Options& opt, uint64_t run, const Failure& f,
                                  scenario::Scenario saved, const results::ScenarioResult& r) {
  saved.doc =
      fmt::format("Found by iommuspec fuzz on {} (seed {}, run {}; {} steps{}): {}",
                  opt.target_name, opt.seed, run, f.original_steps,
                  f.shrunk_steps < f.original_steps ? fmt::format(" shrunk to {}", f.shrunk_steps)
                                                    : std::string(),
                  f.message);
  for (char& c : saved.doc)
    if (c == '"' || c == '\n') c = '\'';
  // The clauses the trace's steps were judged by replace any the generator wrote for the
  // whole trace (a header is given once: the parser refuses a second).
  std::set<std::string> judged;
  for (const auto& st : r.steps)
    if (!st.clause.empty()) judged.insert(st.clause);
  std::vector<std::string> clauses(judged.begin(), judged.end());
  if (clauses.empty()) clauses = r.clauses; // a trace that stopped at set-up
  std::erase_if(saved.headers, [](const scenario::Header& h) { return h.key == "clauses"; });
  saved.headers.insert(saved.headers.begin(), {"clauses", clauses, {}});
  generators::fit_headers(saved);
  // What trace_for() needs to make the same trace again (with the target's features).
  std::vector<std::string> gen = {"iommuspec-fuzz", opt.trace.area, "max-actions",
                                  std::to_string(opt.trace.max_actions)};
  if (opt.trace.small) gen.push_back("small");
  saved.headers.push_back({"Generator", gen, {}});
  saved.headers.push_back({"Seed", {std::to_string(opt.seed)}, {}});
  saved.headers.push_back({"Origin", {opt.target_name, "run", std::to_string(run)}, {}});
  return saved;
}

std::string out_path(const Options& opt, const std::string& name) {
  return (std::filesystem::path(opt.out_dir) / name).string();
}

} // namespace

Report fuzz(const Options& opt, const TargetFactory& make) {
  const auto t0 = Clock::now();
  Report rep;
  std::filesystem::create_directories(opt.out_dir);
  auto stopped = [&] { return opt.stop && opt.stop->load(); };
  auto write_json = [&] {
    rep.seconds = since(t0);
    results::write_atomically(out_path(opt, "fuzz.json"), report_json(opt, rep));
  };
  std::unique_ptr<Target> target;
  std::map<std::string, size_t> by_signature; // -> index in rep.failures
  size_t start_failures = 0;                  // in a row
  for (uint64_t run = 0; run < opt.runs; ++run) {
    if (stopped()) {
      rep.interrupted = true;
      break;
    }
    scenario::Scenario sc = generators::trace_for(opt.trace, opt.seed, run);
    sc.id = fmt::format("fuzz-{}-s{}-r{}", slug(opt.target_name), opt.seed, run);
    std::string why;
    if (!target) target = start(make, why);
    const auto tr = Clock::now();
    auto r = target ? run_scenario(sc, *target, opt.trace.profile) : not_started(sc, why);
    rep.run_seconds += since(tr);
    ++rep.runs;
    rep.steps += sc.steps.size();
    cover(rep.exercised, sc, r);
    start_failures = target ? 0 : start_failures + 1;
    if (r.verdict == "pass") ++rep.pass;
    if (r.verdict == "unsupported") ++rep.unsupported;
    if (r.verdict == "fail" || r.verdict == "error") {
      (r.verdict == "fail" ? rep.fail : rep.error)++;
      if (r.verdict == "error") target.reset(); // the next trace gets a fresh one
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
          if (opt.on_shrink) opt.on_shrink(run, sig);
          const auto ts = Clock::now();
          auto s = shrink(sc, sig, make, {opt.trace.profile, opt.shrink_budget_seconds, opt.stop});
          rep.shrink_seconds += since(ts);
          f.reproduced = s.reproduced;
          f.replays = s.replays;
          f.shrink_seconds = s.seconds;
          f.shrink_complete = s.complete;
          if (s.reproduced) {
            saved = std::move(s.scenario);
            saved_result = std::move(s.result);
          }
        }
        f.shrunk_steps = saved.steps.size();
        f.message = saved_result.message;
        f.file = out_path(opt, fmt::format("{}-s{}-r{}.scn", slug(opt.target_name), opt.seed, run));
        results::write_atomically(
            f.file, scenario::print(saved_scenario(opt, run, f, std::move(saved), saved_result)));
        if (!saved_result.log.empty())
          results::write_atomically(f.file.substr(0, f.file.size() - 4) + ".log", saved_result.log);
        by_signature[sig] = rep.failures.size();
        rep.failures.push_back(std::move(f));
        write_json(); // what was found so far survives an interrupted or crashed campaign
      }
    }
    if (opt.progress) opt.progress(run + 1, opt.runs, rep.failures.size());
    if (start_failures >= 3) {
      rep.aborted = "the target did not start three times in a row: " + why;
      break;
    }
  }
  rep.interrupted = rep.interrupted || stopped();
  if (opt.coverage_depth > 0 && !rep.interrupted) {
    const auto tc = Clock::now();
    auto reach = reachable(opt.trace, opt.coverage_depth, opt.stop);
    rep.reachable = std::move(reach.graph);
    rep.reachable_runs = reach.runs;
    rep.reachable_complete = reach.complete && !stopped();
    rep.reachable_seconds = since(tc);
  }
  results::write_atomically(out_path(opt, "coverage.dot"),
                            rep.exercised.dot(opt.coverage_depth ? &rep.reachable : nullptr));
  write_json();
  return rep;
}

std::string report_json(const Options& opt, const Report& r) {
  using nlohmann::json;
  json j;
  j["target"] = opt.target_name;
  j["area"] = opt.trace.area;
  j["seed"] = opt.seed;
  j["options"] = {{"runs", opt.runs},
                  {"max_actions", opt.trace.max_actions},
                  {"small", opt.trace.small},
                  {"profile", std::string(iommufd::profile_name(opt.trace.profile))},
                  {"shrink_seconds", opt.shrink_budget_seconds},
                  {"coverage_depth", opt.coverage_depth}};
  j["summary"] = {{"runs", r.runs},   {"pass", r.pass},
                  {"fail", r.fail},   {"unsupported", r.unsupported},
                  {"error", r.error}, {"steps", r.steps}};
  j["interrupted"] = r.interrupted;
  if (!r.aborted.empty()) j["aborted"] = r.aborted;
  j["seconds"] = {{"total", r.seconds},
                  {"running", r.run_seconds},
                  {"shrinking", r.shrink_seconds},
                  {"reachable", r.reachable_seconds}};
  j["coverage"] = {{"states", r.exercised.states()},
                   {"transitions", r.exercised.transitions()},
                   {"reachable_depth", opt.coverage_depth},
                   {"reachable_complete", r.reachable_complete},
                   {"reachable_states", r.reachable.states()},
                   {"reachable_transitions", r.reachable.transitions()},
                   {"reachable_covered", r.exercised.common(r.reachable)}};
  j["failures"] = json::array();
  for (const auto& f : r.failures)
    j["failures"].push_back({{"run", f.run},
                             {"verdict", f.verdict},
                             {"signature", f.signature},
                             {"message", f.message},
                             {"steps", f.original_steps},
                             {"shrunk_steps", f.shrunk_steps},
                             {"reproduced", f.reproduced},
                             {"replays", f.replays},
                             {"shrink_seconds", f.shrink_seconds},
                             {"shrink_complete", f.shrink_complete},
                             {"repeats", f.repeats},
                             {"file", f.file}});
  // Target output need not be UTF-8: invalid bytes become U+FFFD, so the file stays JSON.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

} // namespace iommuspec::conformance::fuzz
