// Shared by the property files: timing, and a result from a query's outcome.
#pragma once

#include "prove.h"
#include "query.h"

#include <chrono>
#include <string>

namespace iommuspec::solvers {

class Stopwatch {
public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

inline Result result_of(const std::string& property, const std::string& encoder,
                        const std::string& method, const Query::Outcome& o) {
  Result r;
  r.property = property;
  r.encoder = encoder;
  r.method = method;
  r.verdict = o.verdict;
  r.values = o.values;
  if (o.verdict == Verdict::unknown) r.detail = "Z3 gave up: " + o.reason;
  return r;
}

// "name=0x.." for a value of the counterexample.
inline uint64_t value_of(const std::vector<Value>& values, const std::string& name) {
  for (const auto& v : values)
    if (v.name == name) return v.value;
  return 0;
}
inline uint64_t value_of(const Result& r, const std::string& name) {
  return value_of(r.values, name);
}

// A 64-bit constant of the query's context.
inline z3::expr k64(z3::context& c, uint64_t v) {
  return c.bv_val(v, 64);
}

// A splitter's first n commands over symbolic inputs, and the pages left after them.
struct Unrolled {
  std::vector<smmuv3::RangeFields<z3::expr>> cmds;
  z3::expr left;
};
Unrolled unroll(const RangeSplitter& s, const z3::expr& iova, const z3::expr& size,
                const z3::expr& tg, const z3::expr& ttl, size_t n);

} // namespace iommuspec::solvers
