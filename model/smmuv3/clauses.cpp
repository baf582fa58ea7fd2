#include "smmuv3/clauses.h"

#include <array>

namespace iommuspec::smmuv3 {
namespace {

constexpr Clause kClauses[] = {
#define IOMMUSPEC_CLAUSE(id, source, text) Clause{id, source, text, ""},
#include "smmuv3/clauses.def"
#undef IOMMUSPEC_CLAUSE
};

} // namespace

std::span<const Clause> all_clauses() {
  return kClauses;
}

const Clause* clause_by_id(std::string_view id) {
  return find_clause(kClauses, id);
}

} // namespace iommuspec::smmuv3
