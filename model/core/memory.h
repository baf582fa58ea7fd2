// Sparse physical memory for table walks: 64-bit little-endian words inside declared
// regions. A read outside every region has no memory behind it (the walk's external abort);
// a word inside a region that was never written reads as zero.
#pragma once

#include "core/range.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace iommuspec {

class Memory {
public:
  void add_region(Range r) { regions_.push_back(r); }
  bool backed(uint64_t pa) const {
    for (const auto& r : regions_)
      if (r.contains(pa)) return true;
    return false;
  }
  // The 8 bytes at pa are backed (one region holds them, or two adjacent ones do).
  bool backed8(uint64_t pa) const {
    for (const auto& r : regions_)
      if (r.contains(pa) && r.contains(pa + 7)) return true;
    return backed(pa) && backed(pa + 7);
  }
  // pa must be 8-byte aligned for a word; an unaligned or unbacked read is nullopt.
  std::optional<uint64_t> read64(uint64_t pa) const {
    if ((pa & 7) || !backed8(pa)) return std::nullopt;
    const auto it = find(pa);
    return it != words_.end() && it->first == pa ? it->second : 0;
  }
  // Writes outside every region are refused (false): tables must live in memory.
  bool write64(uint64_t pa, uint64_t v) {
    if ((pa & 7) || !backed8(pa)) return false;
    const auto it = find(pa);
    if (it != words_.end() && it->first == pa)
      words_[size_t(it - words_.begin())].second = v;
    else
      words_.insert(it, {pa, v});
    return true;
  }
  // Every word ever written, by address, ascending (for diffs of two images).
  const std::vector<std::pair<uint64_t, uint64_t>>& words() const { return words_; }
  // The regions declared, in order (a symbolic copy of this memory needs them: solvers/).
  const std::vector<Range>& regions() const { return regions_; }
  friend bool operator==(const Memory&, const Memory&) = default;

private:
  // Sorted by address: walks read far more often than scenarios write, and a binary search
  // over a few hundred contiguous words beats a hash lookup's division (bench/model_bench.cpp
  // BM_SmmuNestedDmaCheck).
  std::vector<std::pair<uint64_t, uint64_t>> words_;
  std::vector<std::pair<uint64_t, uint64_t>>::const_iterator find(uint64_t pa) const {
    return std::lower_bound(words_.begin(), words_.end(), pa,
                            [](const auto& w, uint64_t a) { return w.first < a; });
  }
  std::vector<Range> regions_;
};

} // namespace iommuspec
