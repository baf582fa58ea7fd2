// What a target is to the runner: something that executes calls in a fresh iommufd
// context and reports what it did. The model, a kernel agent, a QEMU-driven IOMMU and
// an external program all implement this.
#pragma once

#include "core/hw.h"
#include "hw/compile.h"
#include "iommufd/call.h"
#include "runner/target_error.h"

#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

namespace iommuspec::conformance {

struct TargetInfo {
  std::string name;
  std::map<std::string, std::string> fingerprint;
  std::set<std::string> features;
  iommufd::Profile profile = iommufd::Profile::linux_latest;
};

class Target {
public:
  virtual ~Target() = default;
  virtual TargetInfo info() const = 0;
  // Start over with a fresh iommufd (and fresh user memory).
  virtual void reset() = 0;
  // Map `size` bytes of user memory; returns its address in the target's address space.
  virtual uint64_t mem(uint64_t size) = 0;
  // Execute one call. Throws TargetError on an infrastructure failure.
  virtual iommufd::Observation execute(const iommufd::Call& call) = 0;

  // Hardware-level areas (smmuv3, vtd; conformance/hw/compile.h). A fresh IOMMU with the
  // area's layout programmed and enabled, its RAM zeroed. Targets that have no such area
  // keep these defaults and do not list the area's feature, so they never see them.
  virtual void hw_reset(const hwc::Setup& s) { no_hw(s.area); }
  virtual void hw_write(const std::vector<hw::Write>&) { no_hw(""); }
  virtual hw::QueueOutcome hw_submit(const std::vector<uint64_t>&) { no_hw(""); }
  virtual hw::QueueOutcome hw_resume() { no_hw(""); }
  virtual hw::DmaOutcome hw_dma(const hw::DmaRequest&) { no_hw(""); }
  // VT-d register-based invalidation (hwc::Setup::register_invalidation): the 128-bit
  // descriptor it stands for; returns the actual granularity the unit reports (CAIG/IAIG).
  virtual uint8_t hw_register_invalidate(const std::vector<uint64_t>&) { no_hw(""); }
  virtual hw::RecordsOutcome hw_records() { no_hw(""); }
  // The iommufd vIOMMU layer above the unit (feature viommu).
  virtual hw::ViommuOutcome hw_viommu(const hwc::ViommuCall&) { no_hw(""); }
  virtual hw::RecordsOutcome hw_vevents(const std::string&) { no_hw(""); }

private:
  [[noreturn]] void no_hw(const std::string& area) const {
    throw TargetError(info().name + " has no hardware-level area " + area);
  }
};

// Which outcome of an allowed set the model target shows for an access: the fresh walk
// (listed first), or the last (a stale entry where the model allows one: a unit that keeps
// every entry it may keep).
enum class DmaChoice : uint8_t { fresh, last };

// The reference model behind the Target interface.
std::unique_ptr<Target> make_model_target(iommufd::Profile profile,
                                          DmaChoice choice = DmaChoice::fresh);

} // namespace iommuspec::conformance
