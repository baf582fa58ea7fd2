// Sparse physical memory for table walks: 64-bit little-endian words inside declared
// regions. A read outside every region has no memory behind it (the walk's external abort);
// a word inside a region that was never written reads as zero.
#pragma once

#include "core/range.h"

#include <cstdint>
#include <optional>
#include <unordered_map>
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
  // pa must be 8-byte aligned for a word; an unaligned or unbacked read is nullopt.
  std::optional<uint64_t> read64(uint64_t pa) const {
    if ((pa & 7) || !backed(pa) || !backed(pa + 7)) return std::nullopt;
    auto it = words_.find(pa);
    return it == words_.end() ? 0 : it->second;
  }
  // Writes outside every region are refused (false): tables must live in memory.
  bool write64(uint64_t pa, uint64_t v) {
    if ((pa & 7) || !backed(pa) || !backed(pa + 7)) return false;
    words_[pa] = v;
    return true;
  }
  // Every word ever written, by address, in no order (for diffs of two images).
  const std::unordered_map<uint64_t, uint64_t>& words() const { return words_; }
  friend bool operator==(const Memory&, const Memory&) = default;

private:
  std::unordered_map<uint64_t, uint64_t> words_;
  std::vector<Range> regions_;
};

} // namespace iommuspec
