// The VT-d clauses (clauses.def): every rule of machine.cpp and walk.cpp names one.
#pragma once

#include "core/clause.h"

namespace iommuspec::vtd {

std::span<const Clause> all_clauses();
const Clause* clause_by_id(std::string_view id);

} // namespace iommuspec::vtd
