#include "hw/compile.h"

namespace iommuspec::conformance::hwc {

// VT-d has no machine in the model yet (issue 3): its scenarios parse and lint, and any
// VTD.* clause id is accepted until the catalogue exists.
bool vtd_clause_known(std::string_view id) {
  return id.substr(0, 4) == "VTD.";
}

} // namespace iommuspec::conformance::hwc
