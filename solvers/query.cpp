#include "query.h"

namespace iommuspec::solvers {

// The QF_BV solver (bit-vectors, no quantifiers): far faster here than the default one.
Query::Query(z3::context& c, const Options& o, const char* logic) : c_(c), s_(c, logic) {
  z3::params p(c);
  p.set("timeout", o.timeout_ms);
  s_.set(p);
}

z3::expr Query::input(const std::string& name, unsigned bits) {
  z3::expr v = c_.bv_const(name.c_str(), bits);
  inputs_.emplace_back(name, v);
  return v;
}

z3::expr Query::flag(const std::string& name) {
  z3::expr v = c_.bool_const(name.c_str());
  inputs_.emplace_back(name, v);
  return v;
}

void Query::require(const z3::expr& pre) {
  s_.add(pre);
}

void Query::prefer(const z3::expr& soft) {
  soft_.push_back(soft);
}

Query::Outcome Query::prove(const z3::expr& goal) {
  return solve(!goal);
}

Query::Outcome Query::find(const z3::expr& cond) {
  return solve(cond);
}

Query::Outcome Query::solve(const z3::expr& cond) {
  Outcome o;
  model_.reset();
  s_.push();
  s_.add(cond);
  const z3::check_result r = s_.check();
  if (r == z3::unsat) {
    s_.pop();
    o.verdict = Verdict::proved;
    return o;
  }
  if (r == z3::unknown) {
    o.reason = s_.reason_unknown();
    s_.pop();
    return o;
  }
  const unsigned kept = shrink();
  model_ = s_.get_model();
  o.verdict = Verdict::counterexample;
  o.values = values();
  s_.pop(kept + 1);
  return o;
}

// Keeps each preference that stays satisfiable, then bounds each input, in order, by the
// smallest power of two that keeps it so (booleans: false first). Leaves the solver sat with
// the scopes it kept pushed; returns how many.
unsigned Query::shrink() {
  unsigned kept = 0;
  auto keep = [this, &kept](const z3::expr& e) {
    s_.push();
    s_.add(e);
    if (s_.check() == z3::sat) {
      ++kept;
      return true;
    }
    s_.pop();
    return false;
  };
  for (const auto& e : soft_)
    keep(e);
  for (const auto& [name, v] : inputs_) {
    if (v.is_bool()) {
      keep(!v);
      continue;
    }
    const unsigned w = v.get_sort().bv_size();
    for (unsigned k : {0u, 1u, 4u, 8u, 12u, 16u, 20u, 24u, 32u, 40u, 48u, 56u}) {
      if (k >= w) break;
      if (keep(z3::ult(v, z3::shl(c_.bv_val(1, w), c_.bv_val(k, w))))) break;
    }
  }
  s_.check();
  return kept;
}

std::vector<Value> Query::values() const {
  std::vector<Value> out;
  for (const auto& [name, v] : inputs_)
    out.push_back({name, value(v)});
  return out;
}

uint64_t Query::value(const z3::expr& e) const {
  const z3::expr x = model_->eval(e, true);
  if (x.is_bool()) return x.is_true() ? 1 : 0;
  if (x.get_sort().bv_size() > 64) return model_->eval(e.extract(63, 0), true).get_numeral_uint64();
  return x.get_numeral_uint64();
}

bool Query::holds(const z3::expr& e) const {
  return model_->eval(e, true).is_true();
}

} // namespace iommuspec::solvers
