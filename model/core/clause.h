// A clause is one promise of a specification, with the place it comes from. Every rule in
// the model names the clause it implements, so verdicts and reports speak in clauses.
#pragma once

#include <span>
#include <string_view>

namespace iommuspec {

struct Clause {
  std::string_view id;     // e.g. "IOMMUFD.IOAS_MAP.flags"
  std::string_view source; // spec section, kernel-doc or function
  std::string_view text;   // the promise, in one line
  std::string_view note;   // where the kernel-doc and the code disagree, or ""
};

// The clause of a catalogue with this id, or nullptr.
inline const Clause* find_clause(std::span<const Clause> all, std::string_view id) {
  for (const auto& c : all)
    if (c.id == id) return &c;
  return nullptr;
}

} // namespace iommuspec
