// Coverage of generated traces: the abstract transition graph (Boost.Graph) of what runs
// exercised. A trace is folded step by step through an area's abstraction: an abstract
// state (a short string) and, per step, a transition labelled with the step's operation and
// the model's outcome class ("dma:ok", "dma:any" (stale entries allowed), "cmdq:CERROR_ILL",
// "ioas_map:EINVAL"). The abstraction reads the step and the model's allowed outcome only,
// so it is the same whatever target ran the trace.
//
// The graph is compared with the graph reachable under small bounds (`reachable` in
// conformance/fuzz/fuzz.h), and written as DOT: reachable transitions the runs did not
// exercise are drawn dashed.
#pragma once

#include "scenario/scenario.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

namespace iommuspec::generators {

class Abstraction {
public:
  virtual ~Abstraction() = default;
  virtual std::string state() const = 0;
  // Apply one step whose model outcome (results::StepResult::allowed) is `allowed`; returns
  // the transition's label.
  virtual std::string apply(const scenario::Step& st, const std::string& allowed) = 0;
};
std::unique_ptr<Abstraction> make_abstraction(const std::string& area);

// The outcome class of an allowed-set text: its first word ("ok", "any", "EINVAL",
// "F_TRANSLATION", "CERROR_ILL", "abort").
std::string outcome_class(const std::string& allowed);

// The graph is kept as its set of labelled transitions (a value: copied and merged freely);
// dot() lays it out as a Boost.Graph adjacency list.
class TransitionGraph {
public:
  // Returns true when the transition is new.
  bool add(const std::string& from, const std::string& label, const std::string& to);
  size_t states() const { return states_.size(); }
  size_t transitions() const { return edges_.size(); }
  bool has(const std::string& from, const std::string& label, const std::string& to) const {
    return edges_.count({from, label, to}) != 0;
  }
  // Transitions of this graph that `other` has too.
  size_t common(const TransitionGraph& other) const;
  const std::set<std::tuple<std::string, std::string, std::string>>& edges() const {
    return edges_;
  }
  // DOT; with `reachable`, its transitions missing here are drawn dashed and grey.
  std::string dot(const TransitionGraph* reachable = nullptr) const;

private:
  std::set<std::string> states_;
  std::set<std::tuple<std::string, std::string, std::string>> edges_;
};

} // namespace iommuspec::generators
