// The model of a hardware-level area behind one interface, so that the runner and the
// `model` target treat SMMUv3 and VT-d alike.
#pragma once

#include "core/hw.h"
#include "hw/compile.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::conformance::hwc {

struct AllowedOutcome {
  hw::DmaOutcome outcome;
  std::string clause;
};

// One way the queued records may read: oldest first, each as the outcomes it may be.
struct RecordsReading {
  std::vector<std::vector<hw::DmaOutcome>> records;
  bool overflow = false;
};

class HwModel {
public:
  virtual ~HwModel() = default;
  virtual bool write(const std::vector<hw::Write>& ws) = 0;
  virtual hw::QueueOutcome submit(const std::vector<uint64_t>& entries) = 0;
  virtual hw::QueueOutcome resume() = 0;
  // VT-d register-based invalidation of the descriptor's scope, complete on return (VT-d
  // 6.5.1 "synchronous"): the requested granularity (1 global, 2 domain, 3 device/page; a
  // unit may report any coarser one, 6.5.1.1-2), or 0 for a reserved one (no invalidation).
  virtual uint8_t register_invalidate(const std::vector<uint64_t>&) { return 0; }
  virtual std::vector<AllowedOutcome> dma(const hw::DmaRequest& r) const = 0;
  virtual void after_dma(const hw::DmaRequest& r, const std::vector<AllowedOutcome>& allowed,
                         const hw::DmaOutcome& observed) = 0;
  // Reads and clears the queued records: every reading the architecture allows, the first
  // being that of a unit that records every fault it can (the reading pins state).
  virtual std::vector<RecordsReading> drain() = 0;
  virtual size_t queued() const = 0;
  // A call to the vIOMMU layer; std::nullopt when the call names an object the scenario did
  // not create (a scenario error).
  virtual std::optional<hw::ViommuOutcome> viommu(const ViommuCall& c) = 0;
  // Reads and clears a vIOMMU's vEVENTQ (the unit's events forwarded to it), as readings
  // like drain(); std::nullopt for a vIOMMU the scenario did not create.
  virtual std::optional<std::vector<RecordsReading>> vevents(const std::string& viommu) = 0;
};

// nullptr for an area with no model.
std::unique_ptr<HwModel> make_hw_model(const Setup& s);

// The features the model implements for an area ("smmuv3 stage1 ...").
const std::vector<std::string>& hw_features(std::string_view area);

} // namespace iommuspec::conformance::hwc
