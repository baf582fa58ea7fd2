// What a hardware-level target and the model exchange for the smmuv3 and vtd areas: memory
// writes, queue submissions, device accesses and their outcomes. Arch-neutral: records and
// queue entries are raw little-endian words, decoded by the architecture's machine.
#pragma once

#include "core/memory.h"

#include <algorithm>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::hw {

struct Write {
  uint64_t pa = 0;
  uint64_t value = 0;
  friend bool operator==(const Write&, const Write&) = default;
};

// One device access. `ssid` is the SMMUv3 SubstreamID or the VT-d PASID.
struct DmaRequest {
  uint32_t sid = 0;
  std::optional<uint32_t> ssid;
  uint64_t addr = 0;
  bool write = false;
  bool exec = false;
  bool priv = true;
  bool drain = true; // read the access's record back (event queue / fault recording)
  friend bool operator==(const DmaRequest&, const DmaRequest&) = default;
};

// One outcome of an access: it reached `pa`; it was terminated and recorded (`record` holds
// the event or fault record; `mask` the bits of it the model defines: the others are
// IMPLEMENTATION DEFINED or UNKNOWN and are not compared); or terminated silently.
struct DmaOutcome {
  enum class Kind : uint8_t { ok, fault, abort };
  Kind kind = Kind::ok;
  uint64_t pa = 0;
  std::vector<uint64_t> record;
  std::vector<uint64_t> mask;
  // Whether an observation shows this outcome (pa / the defined record bits). An observed
  // fault without a record (not drained) matches on its kind alone.
  bool admits(const DmaOutcome& observed) const;
  friend bool operator==(const DmaOutcome&, const DmaOutcome&) = default;
  friend auto operator<=>(const DmaOutcome&, const DmaOutcome&) = default;
};

// Progress of a queue submission: how many entries were consumed, and the error that
// stopped the queue ("" when none; SMMUv3 CERROR_ILL / CERROR_ABT / CERROR_ATC_INV_SYNC,
// VT-d IQE / ITE / ICE).
struct QueueOutcome {
  uint32_t consumed = 0;
  std::string error;
  friend bool operator==(const QueueOutcome&, const QueueOutcome&) = default;
};

// What a call to the iommufd vIOMMU layer above the unit returned: the errno name ("" for
// success) and entry_num (the entries handled).
struct ViommuOutcome {
  std::string error;
  uint32_t entry_num = 0;
  friend bool operator==(const ViommuOutcome&, const ViommuOutcome&) = default;
};

// Records read back from the event queue / fault recording registers.
struct RecordsOutcome {
  std::vector<std::vector<uint64_t>> records;
  bool overflow = false;
  friend bool operator==(const RecordsOutcome&, const RecordsOutcome&) = default;
};

// The write step that turns image `before` into `after`, by address.
inline std::vector<Write> writes_between(const Memory& before, const Memory& after) {
  std::vector<Write> out;
  for (const auto& [pa, v] : after.words())
    if (before.read64(pa).value_or(0) != v) out.push_back({pa, v});
  std::sort(out.begin(), out.end(), [](const Write& x, const Write& y) { return x.pa < y.pa; });
  return out;
}

inline bool DmaOutcome::admits(const DmaOutcome& o) const {
  if (kind != o.kind) return false;
  if (kind == Kind::ok) return pa == o.pa;
  if (kind == Kind::abort || o.record.empty()) return true;
  if (o.record.size() != record.size()) return false;
  for (size_t i = 0; i < record.size(); ++i) {
    const uint64_t m = i < mask.size() ? mask[i] : ~uint64_t(0);
    if ((record[i] & m) != (o.record[i] & m)) return false;
  }
  return true;
}

} // namespace iommuspec::hw
