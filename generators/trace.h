// Generated traces: scenarios (the suites' format, no pinned expectations: the model judges
// every step) built one action at a time from a small world of names, addresses and IDs
// chosen so that aliasing, holes and stale entries are likely.
//
// Every choice a generator makes goes through a Picker. Under RapidCheck the picker draws
// from rc::gen (trace() below: same seed, same trace); for the coverage graph's reachable
// part (coverage.h) a picker replays a fixed sequence of choices, so the same generator
// code enumerates every one-action extension of a trace.
#pragma once

#include "iommufd/machine.h"
#include "scenario/scenario.h"

#include <memory>
#include <rapidcheck.h>
#include <set>
#include <string>
#include <vector>

namespace iommuspec::generators {

class Picker {
public:
  virtual ~Picker() = default;
  // A number in [0, n); n >= 1.
  virtual size_t pick(size_t n) = 0;
  template <class T>
  const T& one_of(const std::vector<T>& v) {
    return v[pick(v.size())];
  }
  bool coin() { return pick(2) == 1; }
  // True with probability about 1/n.
  bool one_in(size_t n) { return pick(n) == 0; }
};

// Draws from RapidCheck: valid only inside rc::gen::exec (or a property).
class RcPicker final : public Picker {
public:
  size_t pick(size_t n) override;
};

// Replays `forced` choices, then answers 0, and records every choice's range (`ranges`) so
// that the next sequence of choices can be enumerated (coverage.cpp).
class ReplayPicker final : public Picker {
public:
  explicit ReplayPicker(std::vector<size_t> forced) : forced_(std::move(forced)) {}
  size_t pick(size_t n) override;
  const std::vector<size_t>& made() const { return made_; }
  const std::vector<size_t>& ranges() const { return ranges_; }

private:
  std::vector<size_t> forced_, made_, ranges_;
};

// Enumeration: after a run of `p`, the next sequence of choices (odometer order) that keeps
// the first `fixed` choices; false when every sequence was visited. Starting from the
// fixed prefix alone, repeated calls visit every distinct path through the choices.
bool next_choices(const ReplayPicker& p, size_t fixed, std::vector<size_t>& forced);

struct TraceOptions {
  std::string area = "smmuv3";    // smmuv3 | vtd | iommufd
  std::set<std::string> features; // the target's: a trace uses no other
  iommufd::Profile profile = iommufd::Profile::linux_latest;
  size_t max_actions = 16; // a trace has 1..max_actions actions after its set-up
  bool small = false;      // the small world of the coverage bounds (fewer values)
};

// One area's generator. begin() writes the set-up (headers, first steps); each action()
// appends one or more steps. The generator keeps what it needs to choose valid next steps
// (for iommufd: the model's machine, so that it names only objects that exist).
class TraceGen {
public:
  virtual ~TraceGen() = default;
  virtual void begin(scenario::Scenario& sc, Picker& p) = 0;
  virtual void action(scenario::Scenario& sc, Picker& p) = 0;
};

// The areas with a generator, and whether a target with `features` can run one.
const std::vector<std::string>& trace_areas();
bool area_supported(const std::string& area, const std::set<std::string>& features);
std::unique_ptr<TraceGen> make_trace_gen(const TraceOptions& opt);

// A whole trace: set-up, then 1..max_actions actions (the count is the picker's first
// choice after the set-up). Steps are numbered 1..n.
scenario::Scenario generate(const TraceOptions& opt, Picker& p);
// The same under RapidCheck.
rc::Gen<scenario::Scenario> trace(const TraceOptions& opt);
// Trace number `run` of a fuzz campaign with `seed`: a pure function of its arguments.
scenario::Scenario trace_for(const TraceOptions& opt, uint64_t seed, uint64_t run);

// Renumber steps 1..n (after steps were removed).
void renumber(scenario::Scenario& sc);
// After steps were removed: the headers name only what the remaining steps use (iommufd:
// `features`; the other areas' headers are fixed by their set-up).
void fit_headers(scenario::Scenario& sc);
// A step `op k=v ...` from text args (values in the scenario syntax), for generators.
scenario::Step make_step(const std::string& op, const std::vector<scenario::Arg>& args);
// Append a step; a first argument with an empty key (ref("", "T")) is its subject, the
// bare name after the op (`map T iova=...`).
void append(scenario::Scenario& sc, scenario::Step st);
scenario::Arg num(const std::string& key, uint64_t v);
scenario::Arg ref(const std::string& key, const std::string& name);
scenario::Arg flags(const std::string& key, const std::vector<std::string>& names);
scenario::Arg records(const std::string& key, const std::vector<std::vector<scenario::Arg>>& recs);

} // namespace iommuspec::generators
