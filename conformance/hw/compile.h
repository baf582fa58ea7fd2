// Hardware-level scenarios (areas smmuv3 and vtd): the steps a person writes (`table`,
// `map`, `ste`, `cmdq`, `dma`...) compiled into what a target executes: memory writes, queue
// submissions, accesses and record reads. The compiler owns the memory layout
// (suites/<area>/README.md) and builds structures with the model's own encoders.
#pragma once

#include "core/hw.h"
#include "scenario/scenario.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::conformance::hwc {

bool is_hw_area(std::string_view area);

// What a target is told before the first step.
struct Setup {
  std::string area;       // smmuv3 | vtd
  unsigned evtq_log2 = 5; // SMMUv3 event queue size
  // SMMUv3 stream table, as SMMU_STRTAB_BASE.ADDR and SMMU_STRTAB_BASE_CFG program it
  // (suites/smmuv3/README.md "Memory layout"): LOG2SIZE, FMT (0 linear, 1 two-level) and
  // SPLIT (the value written; IGNORED when linear).
  uint64_t strtab_base = 0x40000000;
  unsigned strtab_log2 = 8;
  unsigned strtab_fmt = 0;
  unsigned strtab_split = 0;
  bool legacy = false; // VT-d legacy root-table mode
  // The features the scenario needs: the unit a target (and the model) presents has them.
  std::vector<std::string> features;
  // What its accesses need of the device that issues them, beyond a privileged data access
  // without PASID: `dma_ssid` (a SubstreamID / PASID), `dma_unpriv`, `dma_exec`. A target
  // whose devices cannot issue them lacks these features, and the scenario is unsupported.
  std::vector<std::string> needs;
  // VT-d: invalidation through the registers (CCMD_REG, IOTLB_REG) with queued invalidation
  // left disabled (VT-d 6.5.1: "can be used only when queued-invalidations are not enabled").
  bool register_invalidation = false;
  // The StreamIDs (VT-d: source-ids) of the accesses, ascending: the devices a target needs.
  std::vector<uint32_t> requesters;
  friend bool operator==(const Setup&, const Setup&) = default;
};

// An expected outcome of an access, as a pin names it: kind, and for faults the record's
// type name and any fields given.
struct Pattern {
  hw::DmaOutcome::Kind kind = hw::DmaOutcome::Kind::ok;
  std::optional<uint64_t> pa;
  std::string name;                       // event / fault reason name
  std::map<std::string, uint64_t> fields; // record fields by name
};

struct Expect {
  bool present = false;
  std::string name;                       // ok | any | abort | CERROR_ILL | EIO | F_TRANSLATION ...
  std::map<std::string, uint64_t> values; // consumed=, count=, overflow=, entry_num=
  std::vector<Pattern> outcomes;          // dma: the allowed set the pin states
};

// A call to the iommufd vIOMMU layer above the unit (feature viommu): `viommu V vmid=N`,
// `vdevice V vsid=X sid=Y`, `hwpt_nested H sid= pasid= did=`, and the invalidations of a
// vIOMMU or nested HWPT with their uAPI entries as 64-bit words (SMMUv3: the 2 command words;
// VT-d: addr, npages, flags | __reserved << 32).
struct ViommuCall {
  std::string op;     // viommu | vdevice | hwpt_nested | invalidate
  std::string object; // the vIOMMU / HWPT the step names
  std::map<std::string, uint64_t> args;
  std::vector<std::vector<uint64_t>> entries;
  friend bool operator==(const ViommuCall&, const ViommuCall&) = default;
};

struct Step {
  // reg_inv: a VT-d register-based invalidation (CCMD_REG / IOTLB_REG), `entries` the
  // equivalent 128-bit descriptor.
  enum class Kind : uint8_t { write, submit, resume, dma, records, viommu, reg_inv };
  int number = 0;
  Kind kind = Kind::write;
  std::vector<hw::Write> writes;
  std::vector<uint64_t> entries; // submit: raw queue entries
  hw::DmaRequest dma;
  ViommuCall call;
  Expect expect;
};

struct Compiled {
  Setup setup;
  std::vector<Step> steps;
};

// Compile a hardware-level scenario; errors (with file:line:col) go to diags.
std::optional<Compiled> compile(const scenario::Scenario& sc,
                                std::vector<scenario::Diagnostic>& diags);

// Headers, features and clauses of a hardware-level scenario, then compile it. Nothing for
// other areas.
void lint(const scenario::Scenario& sc, std::vector<scenario::Diagnostic>& diags);

// The features scenarios of an area may name, and whether a clause id is in its catalogue.
const std::vector<std::string>& hw_area_features(std::string_view area);
bool hw_clause_known(std::string_view area, std::string_view id);

// Record fields by name (for pins and descriptions), per area.
std::map<std::string, uint64_t> record_fields(std::string_view area,
                                              const std::vector<uint64_t>& record);
std::string record_name(std::string_view area, const std::vector<uint64_t>& record);
// "ok pa=0x42000000", "F_TRANSLATION sid=1 addr=0x10000 s2=0", "abort".
std::string describe(std::string_view area, const hw::DmaOutcome& o);
bool matches(std::string_view area, const Pattern& p, const hw::DmaOutcome& o);

} // namespace iommuspec::conformance::hwc
