// Closed intervals [start, last] over u64, as the kernel's interval trees hold them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace iommuspec {

struct Range {
  uint64_t start = 0;
  uint64_t last = 0; // inclusive
  friend bool operator==(const Range&, const Range&) = default;
  bool overlaps(const Range& o) const { return start <= o.last && o.start <= last; }
  bool contains(const Range& o) const { return start <= o.start && o.last <= last; }
  bool contains(uint64_t v) const { return start <= v && v <= last; }
};

// The complement of the union of `used` within [lo, hi], as sorted disjoint ranges.
inline std::vector<Range> holes(std::vector<Range> used, uint64_t lo, uint64_t hi) {
  std::sort(used.begin(), used.end(),
            [](const Range& a, const Range& b) { return a.start < b.start; });
  std::vector<Range> out;
  uint64_t cur = lo;
  bool done = false;
  for (const auto& r : used) {
    if (done || r.last < cur) continue;
    if (r.start > hi) break;
    if (r.start > cur) out.push_back({cur, r.start - 1});
    if (r.last >= hi) {
      done = true;
      break;
    }
    cur = r.last + 1;
  }
  if (!done) out.push_back({cur, hi});
  return out;
}

} // namespace iommuspec
