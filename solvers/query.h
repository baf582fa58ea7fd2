// One Z3 question about the model's arithmetic: named inputs, preconditions, and a goal that
// must hold for every input meeting them. A counterexample is shrunk (each input made as small
// as the solver allows, in order) so that it reads, and replays, well.
#pragma once

#include "prove.h"
#include "z3ops.h"

#include <optional>
#include <string>
#include <vector>

namespace iommuspec::solvers {

class Query {
public:
  // `logic`: the solver's (QF_BV; QF_ABV where memory is an array).
  Query(z3::context& c, const Options& o, const char* logic = "QF_BV");

  // A bit-vector input, reported in counterexamples and witnesses.
  z3::expr input(const std::string& name, unsigned bits = 64);
  z3::expr flag(const std::string& name);
  void require(const z3::expr& pre);
  // Tried in order before shrinking a counterexample or witness; kept when still satisfiable
  // (e.g. values a scenario can use).
  void prefer(const z3::expr& soft);

  struct Outcome {
    Verdict verdict = Verdict::unknown;
    std::vector<Value> values; // the inputs, for a counterexample or a witness
    std::string reason;        // unknown: Z3's reason
  };
  // Does `goal` hold for every input meeting the preconditions?
  Outcome prove(const z3::expr& goal);
  // Inputs meeting the preconditions and `cond` (verdict counterexample = found).
  Outcome find(const z3::expr& cond);

  // The value of e in the last counterexample or witness.
  uint64_t value(const z3::expr& e) const;
  bool holds(const z3::expr& e) const;
  z3::context& ctx() { return c_; }

private:
  Outcome solve(const z3::expr& cond);
  unsigned shrink();
  std::vector<Value> values() const;

  z3::context& c_;
  z3::solver s_;
  std::vector<std::pair<std::string, z3::expr>> inputs_;
  std::vector<z3::expr> soft_;
  std::optional<z3::model> model_;
};

// Wider arithmetic for the architectural side of a property: e zero-extended to 128 bits.
inline z3::expr wide(const z3::expr& e) {
  return z3::zext(e, 128 - e.get_sort().bv_size());
}
// 2^n as a 128-bit value (n a 64-bit expression below 128).
inline z3::expr pow2_128(const z3::expr& n) {
  return z3::shl(n.ctx().bv_val(1, 128), wide(n));
}

} // namespace iommuspec::solvers
