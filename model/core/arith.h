// Arithmetic written once over a value type, so that the same code is the model (with
// uint64_t) and the subject of proofs (with Z3 bit-vectors, solvers/z3ops.h). Generic code
// uses the built-in operators that mean the same on both (+ - * & | ^ ~ == != && || !, all
// modulo 2^64) and, for everything else, the operations of Ops<V>:
//   Ops<V>::Bool               the truth type (bool; a Z3 Boolean)
//   lit(like, n), truth(like, b)  constants of like's type
//   ite(c, a, b)               c ? a : b
//   ult, ule, ugt, uge         unsigned comparisons
//   shl(a, n), lshr(a, n)      shifts; a shift by 64 or more gives 0 (as SMT-LIB bvshl/bvlshr)
//   ctz(a)                     trailing zeros; 64 for 0
//   bit_width(a)               1 + the index of the highest set bit; 0 for 0 (std::bit_width)
//   umin, umax
#pragma once

#include <bit>
#include <cstdint>

namespace iommuspec::arith {

template <class V>
struct Ops;

template <>
struct Ops<uint64_t> {
  using Bool = bool;
  static uint64_t lit(uint64_t, uint64_t n) { return n; }
  static bool truth(uint64_t, bool b) { return b; }
  static uint64_t ite(bool c, uint64_t a, uint64_t b) { return c ? a : b; }
  static bool ite(bool c, bool a, bool b) { return c ? a : b; }
  static bool ult(uint64_t a, uint64_t b) { return a < b; }
  static bool ule(uint64_t a, uint64_t b) { return a <= b; }
  static bool ugt(uint64_t a, uint64_t b) { return a > b; }
  static bool uge(uint64_t a, uint64_t b) { return a >= b; }
  static uint64_t shl(uint64_t a, uint64_t n) { return n >= 64 ? 0 : a << n; }
  static uint64_t lshr(uint64_t a, uint64_t n) { return n >= 64 ? 0 : a >> n; }
  static uint64_t ctz(uint64_t a) { return uint64_t(std::countr_zero(a)); }
  static uint64_t bit_width(uint64_t a) { return uint64_t(std::bit_width(a)); }
  static uint64_t umin(uint64_t a, uint64_t b) { return a < b ? a : b; }
  static uint64_t umax(uint64_t a, uint64_t b) { return a < b ? b : a; }
};

// An inclusive interval [lo, hi] of addresses.
template <class V>
struct SpanOf {
  V lo, hi;
};

// Does [lo, hi] meet the entry [base, base + size - 1]?
template <class V>
typename Ops<V>::Bool overlaps(const SpanOf<V>& s, const V& base, const V& size) {
  using O = Ops<V>;
  return O::ule(s.lo, base + (size - 1)) && O::ule(base, s.hi);
}

} // namespace iommuspec::arith
