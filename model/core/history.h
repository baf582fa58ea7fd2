// The cache history both architectures share: which memory images an implementation may
// have cached from, and which invalidations have completed since.
//
// Memory changes only at write steps; each write step ends an *epoch*. An entry cached while
// an epoch's image was current may be used until an invalidation that covers it was issued
// *after the epoch ended* (one issued earlier may have run before the write, and the entry
// been refilled from the old image afterwards) and has *completed* (SMMUv3 CMD_SYNC, VT-d
// wait descriptor). Until then the entry is allowed, never required: a target that
// invalidates more, or earlier, conforms.
#pragma once

#include "core/hw.h"
#include "core/memory.h"

#include <cstdint>
#include <span>
#include <vector>

namespace iommuspec {

template <class Inv>
class CacheHistory {
public:
  struct Epoch {
    Memory mem;   // the image while the epoch was current
    uint64_t end; // the sequence number of the write that ended it
  };

  explicit CacheHistory(Memory initial) : cur_(std::move(initial)) {}

  const Memory& memory() const { return cur_; }
  const std::vector<Epoch>& stale() const { return stale_; }

  // One write step. False (and nothing written) when a word lies outside the memory.
  bool write(std::span<const hw::Write> ws) {
    Memory next = cur_;
    for (const auto& w : ws)
      if (!next.write64(w.pa, w.value)) return false;
    if (next == cur_) return true; // rewriting the same values changes nothing cached
    stale_.push_back({std::move(cur_), ++seq_});
    cur_ = std::move(next);
    return true;
  }
  void issue(const Inv& inv) { pending_.push_back({inv, ++seq_}); }
  // Everything issued so far has completed.
  void complete() {
    for (auto& p : pending_)
      completed_.push_back(std::move(p));
    pending_.clear();
  }
  // Whether an entry cached during stale epoch i may still be present: no completed
  // invalidation issued after the epoch ended covers it.
  template <class Covers>
  bool survives(size_t i, Covers&& covers) const {
    for (const auto& d : completed_)
      if (d.seq > stale_[i].end && covers(d.inv)) return false;
    return true;
  }
  // Forget epochs no entry of which can survive (`dead(i)` decides, per architecture).
  template <class Dead>
  void prune(Dead&& dead) {
    std::vector<Epoch> keep;
    for (size_t i = 0; i < stale_.size(); ++i)
      if (!dead(i)) keep.push_back(std::move(stale_[i]));
    stale_ = std::move(keep);
  }

private:
  struct Issued {
    Inv inv;
    uint64_t seq;
  };
  Memory cur_;
  std::vector<Epoch> stale_;
  std::vector<Issued> pending_, completed_;
  uint64_t seq_ = 0;
};

} // namespace iommuspec
