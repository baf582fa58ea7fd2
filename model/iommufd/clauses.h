// The catalogue of iommufd uAPI clauses. Each rule of the machine names one; reports list
// the whole catalogue so that a clause no scenario exercised shows as "untested".
#pragma once

#include "core/clause.h"

#include <span>

namespace iommuspec::iommufd {

enum class C : uint16_t {
#define IOMMUSPEC_CLAUSE(sym, id, source, text, note) sym,
#include "iommufd/clauses.def"
#undef IOMMUSPEC_CLAUSE
  count_
};

const Clause& clause(C c);
std::span<const Clause> all_clauses();
const Clause* clause_by_id(std::string_view id);

} // namespace iommuspec::iommufd
