// Scenario files (conformance/suites/smmuv3/README.md, conformance/suites/vtd/README.md) for
// what the properties find: entries mapped, remapped, then invalidated with an encoder's
// commands, and accesses whose pins say what must (or may) be seen. A pin of the fresh page
// that the commands do not guarantee is how a counterexample reproduces: the model (and so
// every target's run) reports that it also allows the stale page.
#pragma once

#include "prove.h"
#include "smmuv3/range.h"

#include <cstdint>
#include <string>
#include <vector>

namespace iommuspec::solvers {

// An access after the invalidation: `fresh` pins the new page alone, otherwise either page.
struct Check {
  uint64_t iova = 0;
  bool fresh = true;
};

struct Header {
  std::string id, title;
  std::vector<std::string> notes; // comment lines
};

// SMMUv3: a stage-1 stream (SID 1, ASID 1), a table of TG's granule with entries of `size`
// bytes at `entries` (each remapped), then `cmds` (scenario records, e.g. "op=tlbi_nh_va
// asid=1 addr=0x10000 tg=1 num=3 scale=0 ttl=3 leaf=1") and a CMD_SYNC. `queue` is the
// submission's pin ("ok consumed=3"). Empty when the entries do not fit the layout.
struct SmmuRemap {
  Header h;
  uint8_t tg = 1;
  uint64_t size = 0x1000;
  std::vector<uint64_t> entries;
  std::vector<std::string> cmds;
  std::string queue;
  std::vector<Check> checks;
};
std::string smmuv3_scenario(const SmmuRemap& s);
// The scenario record of a range TLBI_NH_VA (ASID 1, Leaf 1) with these fields.
std::string tlbi_record(const smmuv3::RangeTlbi& r);
// The submission's pin for these commands plus a CMD_SYNC on a unit with RIL (the model's
// command_error): "ok consumed=N+1" or "CERROR_ILL consumed=K".
std::string smmuv3_queue_pin(const std::vector<smmuv3::RangeTlbi>& cmds);

// VT-d: a legacy second-stage domain (SID 0x10, DID 1) or, with `first_stage`, a scalable
// first-stage PASID (PASID 0, DID 1); with `dev_tlb` the device has a device TLB (legacy
// TT = device-TLB). 4K entries at `entries`, each remapped, then `descs` (scenario records,
// "op=iotlb g=page did=1 addr=0x10000 am=2") with the queue pin `queue`.
struct VtdRemap {
  Header h;
  bool first_stage = false;
  bool dev_tlb = false;
  std::vector<uint64_t> entries;
  std::vector<std::string> descs;
  std::string queue;
  std::vector<Check> checks;
  std::vector<std::string> clauses;
};
std::string vtd_scenario(const VtdRemap& s);

std::string hex(uint64_t v);

} // namespace iommuspec::solvers
