// RapidCheck generators of scenario syntax trees: every operation of the model's table,
// with arguments of the right shapes (numbers at edges, names, flag sets, lists,
// records), so that properties of the format (print/parse round trip) see all of it.
#pragma once

#include "iommufd/ops.h"
#include "scenario/scenario.h"

#include <rapidcheck.h>

namespace iommuspec::generators {

// Numbers mixing edge values (0, 1, page and block boundaries, top of the address width)
// with arbitrary ones.
rc::Gen<uint64_t> edge_u64();
rc::Gen<std::string> name();
rc::Gen<scenario::Value> value(int depth = 2);
rc::Gen<scenario::Step> step(int number);
rc::Gen<scenario::Scenario> scenario_ast();

} // namespace iommuspec::generators
