// Test helpers: build calls field by field, run scenario text on the model.
#pragma once

#include "iommufd/machine.h"
#include "results.h"
#include "runner/runner.h"
#include "scenario/scenario.h"

#include <string>
#include <string_view>

namespace iommuspec::test {

using iommufd::Call;
using iommufd::Machine;
using iommufd::OpId;
using iommufd::Profile;

// A call to `op` with every field zero, the size field and uptrs set as the encoder does.
class CallBuilder {
public:
  explicit CallBuilder(OpId op);
  CallBuilder& set(std::string_view field, uint64_t v);
  CallBuilder& size(uint32_t user_size);
  CallBuilder& payload(std::vector<uint8_t> p);
  template <typename T>
  CallBuilder& record(const T& r) {
    const auto* b = reinterpret_cast<const uint8_t*>(&r);
    call_.payload.insert(call_.payload.end(), b, b + sizeof(T));
    return *this;
  }
  const Call& call() const { return call_; }
  operator const Call&() const { return call_; }

private:
  Call call_;
};

// Parse scenario text, expecting no diagnostics.
scenario::Scenario parse_ok(std::string_view text);

// Run scenario text on a fresh model target.
results::ScenarioResult run_text(std::string_view text, Profile p = Profile::linux_latest);

// Common set-ups on a Machine: returns the new object's ID (asserting success).
uint32_t ioas_alloc(Machine& m);
struct MockDev {
  uint32_t stdev, hwpt, idev;
};
MockDev mock_domain(Machine& m, uint32_t pt_id, uint32_t dev_flags = 0);
uint32_t hwpt_alloc(Machine& m, uint32_t dev, uint32_t pt, uint32_t flags);
uint32_t hwpt_nested(Machine& m, uint32_t dev, uint32_t parent, uint32_t iotlb = 0xbadbeef);
Machine::Result map_fixed(Machine& m, uint32_t ioas, uint64_t iova, uint64_t len, uint64_t uva,
                          uint32_t flags = 1 | 2 | 4);
Machine::Result destroy(Machine& m, uint32_t id);
// The selftest vIOMMU on a nesting parent (newer uAPI).
uint32_t viommu_alloc(Machine& m, uint32_t dev, uint32_t parent);

} // namespace iommuspec::test
