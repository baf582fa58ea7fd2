// From a scenario step to the bytes of a call, on one side (the target's or the model's):
// names resolve to that side's object IDs, fds and addresses. The same code lints
// scenarios (`iommuspec check`) with `Names` that only track which names exist.
#pragma once

#include "core/range.h"
#include "iommufd/call.h"
#include "iommufd/ops.h"
#include "scenario/scenario.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace iommuspec::scenario {

struct Binding {
  enum class Kind { value, mem } kind = Kind::value;
  uint64_t value = 0; // object ID, fd, handle, or a mem region's base address
  uint64_t size = 0;  // mem regions
  int step = 0;       // where it was bound (0: initial state)
};

struct Names {
  std::map<std::string, Binding> bound;
  const Binding* find(const std::string& n) const {
    auto it = bound.find(n);
    return it == bound.end() ? nullptr : &it->second;
  }
};

// A name the step binds to an output field once the call returns.
struct NameOut {
  std::string name;
  const iommufd::Field* field = nullptr;
  Pos pos;
};

struct Encoded {
  iommufd::Call call;
  const iommufd::OpDesc* op = nullptr;
  std::vector<NameOut> binds;
};

// Encode `step` with `names`. Problems are reported to `diags` (file:line:col); the result
// is empty when any was an error.
std::optional<Encoded> encode(const Step& step, const Names& names, const std::string& file,
                              std::vector<Diagnostic>& diags);

// Pinned expectation of one step, decoded for comparison.
struct Pin {
  const iommufd::Field* field = nullptr;
  std::optional<uint64_t> value;                       // a number, a flag set or an enum name
  std::string name;                                    // a name: bind it if new, else compare IDs
  std::optional<std::vector<iommuspec::Range>> ranges; // `ranges=[..]` of IOAS_IOVA_RANGES
  Pos pos;
};
struct Pins {
  std::optional<Errno> err;
  std::vector<Pin> fields;
};
std::optional<Pins> decode_pins(const Step& step, const iommufd::OpDesc& op,
                                const std::string& file, std::vector<Diagnostic>& diags);

// Known feature names a scenario may require and a target may have.
const std::set<std::string>& known_features();

// Full lint of a parsed scenario: headers, features, profiles, every step encodes, names
// are bound before use and not bound twice, pins name output fields.
void lint(const Scenario& sc, std::vector<Diagnostic>& diags);

} // namespace iommuspec::scenario
