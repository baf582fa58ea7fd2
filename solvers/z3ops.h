// The model's generic arithmetic (core/arith.h) over Z3 bit-vectors: the same source the model
// runs with uint64_t, instantiated with z3::expr, so that proofs are about the model's code.
// Shifts, comparisons and constants follow SMT-LIB QF_BV, which agrees with Ops<uint64_t>
// (a shift by 64 or more gives 0).
#pragma once

#include "core/arith.h"

#include <z3++.h>

namespace iommuspec::arith {

template <>
struct Ops<z3::expr> {
  using Bool = z3::expr;
  static z3::expr lit(const z3::expr& like, uint64_t n) {
    return like.ctx().bv_val(n, like.get_sort().bv_size());
  }
  static z3::expr truth(const z3::expr& like, bool b) { return like.ctx().bool_val(b); }
  static z3::expr ite(const z3::expr& c, const z3::expr& a, const z3::expr& b) {
    return z3::ite(c, a, b);
  }
  static z3::expr ult(const z3::expr& a, const z3::expr& b) { return z3::ult(a, b); }
  static z3::expr ule(const z3::expr& a, const z3::expr& b) { return z3::ule(a, b); }
  static z3::expr ugt(const z3::expr& a, const z3::expr& b) { return z3::ugt(a, b); }
  static z3::expr uge(const z3::expr& a, const z3::expr& b) { return z3::uge(a, b); }
  static z3::expr shl(const z3::expr& a, const z3::expr& n) { return z3::shl(a, n); }
  static z3::expr lshr(const z3::expr& a, const z3::expr& n) { return z3::lshr(a, n); }
  // Trailing zeros: the lowest set bit wins (width for 0).
  static z3::expr ctz(const z3::expr& a) {
    const unsigned w = a.get_sort().bv_size();
    z3::expr r = lit(a, w);
    for (unsigned i = w; i-- > 0;)
      r = z3::ite(a.extract(i, i) == 1, lit(a, i), r);
    return r;
  }
  // 1 + the highest set bit: the highest set bit wins (0 for 0).
  static z3::expr bit_width(const z3::expr& a) {
    const unsigned w = a.get_sort().bv_size();
    z3::expr r = lit(a, 0);
    for (unsigned i = 0; i < w; ++i)
      r = z3::ite(a.extract(i, i) == 1, lit(a, i + 1), r);
    return r;
  }
  static z3::expr umin(const z3::expr& a, const z3::expr& b) {
    return z3::ite(z3::ult(a, b), a, b);
  }
  static z3::expr umax(const z3::expr& a, const z3::expr& b) {
    return z3::ite(z3::ult(a, b), b, a);
  }
};

} // namespace iommuspec::arith
