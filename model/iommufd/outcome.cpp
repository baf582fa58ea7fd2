#include "iommufd/outcome.h"

#include <cstring>
#include <fmt/format.h>

namespace iommuspec::iommufd {

bool IovaSlots::admits(uint64_t iova) const {
  if (align > 1 && ((iova - offset) & (align - 1))) return false;
  const uint64_t last = iova + (length - 1);
  if (last < iova) return false;
  for (const auto& r : free)
    if (r.contains(Range{iova, last})) return true;
  return false;
}

std::string IovaSlots::describe() const {
  std::string s = "{free in ";
  for (size_t i = 0; i < free.size() && i < 4; ++i)
    s += fmt::format("{}0x{:x}..0x{:x}", i ? ", " : "", free[i].start, free[i].last);
  if (free.size() > 4) s += fmt::format(", +{} more", free.size() - 4);
  if (free.empty()) s += "nothing";
  s += fmt::format("; length 0x{:x}; align 0x{:x}}}", length, align);
  return s;
}

namespace {

bool is_output(Role r) {
  return r == Role::out || r == Role::inout || r == Role::out_obj || r == Role::inout_obj ||
         r == Role::out_fd;
}

std::string value_text(const Field& f, uint64_t v) {
  if (f.names && !f.names->is_flags) {
    const auto n = value_name(*f.names, v);
    if (!n.empty()) return std::string(n);
  }
  return v < 10 ? fmt::format("{}", v) : fmt::format("0x{:x}", v);
}

} // namespace

std::optional<std::string> deviation(const OpDesc& op, const Outcome& out, const Observation& obs,
                                     const IdView& ids) {
  if (obs.err != out.err)
    return fmt::format("returned {} where the model allows {}", errno_name(obs.err),
                       errno_name(out.err));
  for (const auto& r : out.rules) {
    const uint64_t v = read_field(obs.arg.data(), *r.field);
    switch (r.kind) {
    case FieldRule::Kind::exact:
      if (v != r.value)
        return fmt::format("{} = {} where the model allows {}", r.field->name,
                           value_text(*r.field, v), value_text(*r.field, r.value));
      break;
    case FieldRule::Kind::new_obj:
      if (v == 0 || v > 0x7fffffffu || (ids.live && ids.live(v)))
        return fmt::format("{} = {} is not a fresh object ID (IOMMUFD.OBJ.id_unique: not 0, at "
                           "most 2^31-1, no live object's)",
                           r.field->name, v);
      break;
    case FieldRule::Kind::obj: {
      const auto t = ids.to_target ? ids.to_target(r.value) : std::nullopt;
      if (t && *t != v)
        return fmt::format("{} = {} where the model allows the ID of its object {} ({})",
                           r.field->name, v, r.value, *t);
      break;
    }
    case FieldRule::Kind::iova:
      if (!r.slots.admits(v))
        return fmt::format("{} = 0x{:x} where the model allows {}", r.field->name, v,
                           r.slots.describe());
      break;
    }
  }
  if (out.payload_defined) {
    std::vector<uint8_t> want = out.payload;
    for (size_t off : out.payload_obj_offsets) {
      if (off + 4 > want.size()) continue;
      uint32_t model_id;
      std::memcpy(&model_id, want.data() + off, 4);
      if (const auto t = ids.to_target ? ids.to_target(model_id) : std::nullopt) {
        const uint32_t tid = uint32_t(*t);
        std::memcpy(want.data() + off, &tid, 4);
      } else if (off + 4 <= obs.payload.size()) {
        std::memcpy(want.data() + off, obs.payload.data() + off, 4); // unknown: not compared
      }
    }
    if (obs.payload.size() < want.size() ||
        (!want.empty() && std::memcmp(obs.payload.data(), want.data(), want.size()) != 0)) {
      size_t i = 0;
      while (i < want.size() && i < obs.payload.size() && obs.payload[i] == want[i])
        ++i;
      return fmt::format("{} data differs at byte {} (model: {} bytes)", op.name, i, want.size());
    }
  }
  return std::nullopt;
}

std::string describe(const OpDesc& op, const Outcome& out) {
  std::string s(errno_name(out.err));
  for (const auto& r : out.rules) {
    switch (r.kind) {
    case FieldRule::Kind::exact:
      s += fmt::format(" {}={}", r.field->name, value_text(*r.field, r.value));
      break;
    case FieldRule::Kind::new_obj:
      s += fmt::format(" {}=<new>", r.field->name);
      break;
    case FieldRule::Kind::obj:
      s += fmt::format(" {}=<obj {}>", r.field->name, r.value);
      break;
    case FieldRule::Kind::iova:
      s += fmt::format(" {}∈{}", r.field->name, r.slots.describe());
      break;
    }
  }
  if (out.payload_defined && !out.payload.empty())
    s += fmt::format(" data[{}]", out.payload.size());
  (void)op;
  return s;
}

std::string describe(const OpDesc& op, const Observation& obs, const Outcome* out) {
  std::string s(errno_name(obs.err));
  auto show = [&](const Field& f) {
    s += fmt::format(" {}={}", f.name, value_text(f, read_field(obs.arg.data(), f)));
  };
  if (out) {
    for (const auto& r : out->rules)
      show(*r.field);
  } else if (obs.err == Errno::ok) {
    for (const auto& f : op.fields)
      if (is_output(f.role)) show(f);
  }
  if (!obs.payload.empty() && (!out || out->payload_defined))
    s += fmt::format(" data[{}]", obs.payload.size());
  return s;
}

} // namespace iommuspec::iommufd
