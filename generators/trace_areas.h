// The areas' generators (one file each). Internal to generators/.
#pragma once

#include "trace.h"

namespace iommuspec::generators {

std::unique_ptr<TraceGen> make_smmuv3_gen(const TraceOptions& opt);
std::unique_ptr<TraceGen> make_vtd_gen(const TraceOptions& opt);

} // namespace iommuspec::generators
