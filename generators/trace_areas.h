// The areas' generators (one file each). Internal to generators/.
#pragma once

#include "trace.h"

namespace iommuspec::generators {

std::unique_ptr<TraceGen> make_smmuv3_gen(const TraceOptions& opt);
std::unique_ptr<TraceGen> make_vtd_gen(const TraceOptions& opt);
std::unique_ptr<TraceGen> make_iommufd_gen(const TraceOptions& opt);
// The features (scenario::known_features()) the steps of an iommufd trace use.
std::vector<std::string> iommufd_features(const scenario::Scenario& sc);

} // namespace iommuspec::generators
