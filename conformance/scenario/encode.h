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
// A pinned record of returned data: the listed fields of one record (fault records, vEVENTs,
// the GET_HW_INFO data); values are numbers, flag/enum names, or bound names (IDs).
struct RecordPin {
  std::vector<std::pair<const iommufd::Field*, Value>> fields;
};
struct Pin {
  const iommufd::Field* field = nullptr;
  std::optional<std::vector<RecordPin>> records;       // `records=[{..}]` / `data={..}`
  const iommufd::RecordDesc* record = nullptr;         // how to decode the returned bytes
  bool variable_records = false;                       // vEVENTs: 8-byte LOST header or 12 bytes
  std::optional<std::vector<uint64_t>> bits;           // `bits=[..]` of a returned dirty bitmap
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

// Decode returned data into records for record pins (fault records, vEVENTs, hw_info).
std::vector<std::vector<uint8_t>> split_records(const Pin& pin, const std::vector<uint8_t>& data);

// Known feature names a scenario may require and a target may have.
const std::set<std::string>& known_features();

// Full lint of a parsed scenario: headers, features, profiles, every step encodes, names
// are bound before use and not bound twice, pins name output fields.
void lint(const Scenario& sc, std::vector<Diagnostic>& diags);

} // namespace iommuspec::scenario
