// What the model allows for one call: the errno (decided by the first failing check in
// the kernel's order, named by its clause) and, for each output field the outcome
// defines, a rule the observed value must satisfy. Fields the outcome does not define are
// not compared (e.g. outputs of a failed call the kernel never writes back).
#pragma once

#include "core/clause.h"
#include "core/errno.h"
#include "core/range.h"
#include "iommufd/call.h"
#include "iommufd/ops.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::iommufd {

// A set of IOVAs an automatic allocation may return: [iova, iova + length - 1] inside one of
// `free` (allowed, not reserved, not mapped) and iova % align == offset.
struct IovaSlots {
  std::vector<Range> free;
  uint64_t length = 0;
  uint64_t align = 1;
  uint64_t offset = 0;
  bool admits(uint64_t iova) const;
  std::string describe() const;
};

struct FieldRule {
  enum class Kind : uint8_t {
    exact,   // the field equals `value`
    new_obj, // a fresh object ID: not 0, not the ID of a live object (checked by the runner)
    obj,     // the target's ID of the object the model knows as `value`
    iova,    // one of `slots`
  };
  const Field* field = nullptr;
  Kind kind = Kind::exact;
  uint64_t value = 0;
  IovaSlots slots;
};

struct Outcome {
  Errno err = Errno::ok;
  const Clause* clause = nullptr; // the rule that decided this outcome
  std::vector<FieldRule> rules;
  bool payload_defined = false; // the payload bytes must equal `payload`
  std::vector<uint8_t> payload;
  std::vector<size_t> payload_obj_offsets; // u32 object IDs inside the payload (model IDs)
};

// Object IDs on the target side are checked through these callbacks: is `target_id` the ID
// of a live object, and which target ID does the model's object `model_id` have.
struct IdView {
  std::function<bool(uint64_t target_id)> live;
  std::function<std::optional<uint64_t>(uint64_t model_id)> to_target;
};

// Empty when `obs` is allowed by `out`; else why not, in one line.
std::optional<std::string> deviation(const OpDesc& op, const Outcome& out, const Observation& obs,
                                     const IdView& ids);

// "ok", "EINVAL", "ok out_ioas_id=<new> iova∈{...}" — the allowed set in scenario syntax.
std::string describe(const OpDesc& op, const Outcome& out);
// "ok out_ioas_id=3 iova=0x1000" — an observation in scenario syntax: the output fields
// `out` defines (all outputs when `out` is null and the call succeeded).
std::string describe(const OpDesc& op, const Observation& obs, const Outcome* out = nullptr);

} // namespace iommuspec::iommufd
