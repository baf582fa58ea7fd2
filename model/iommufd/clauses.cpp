#include "iommufd/clauses.h"

namespace iommuspec::iommufd {
namespace {

constexpr Clause kClauses[] = {
#define IOMMUSPEC_CLAUSE(sym, id, source, text, note) Clause{id, source, text, note},
#include "iommufd/clauses.def"
#undef IOMMUSPEC_CLAUSE
};
static_assert(std::size(kClauses) == size_t(C::count_));

} // namespace

const Clause& clause(C c) {
  return kClauses[size_t(c)];
}
std::span<const Clause> all_clauses() {
  return kClauses;
}
const Clause* clause_by_id(std::string_view id) {
  return find_clause(kClauses, id);
}

} // namespace iommuspec::iommufd
