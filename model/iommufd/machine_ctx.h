// The per-call context of Machine handlers: the typed view of the call's struct, the
// outcome being built, and the rules for which output fields are defined.
#pragma once

#include "iommufd/machine.h"
#include "iommufd/uapi_structs.h"

#include <cstring>

namespace iommuspec::iommufd {

struct Machine::Ctx {
  Ctx(const Call& c, const OpDesc& o, const Observation* f, Observation& ob, Outcome& ou)
      : call(c), op(o), follow(f), obs(ob), out(ou) {}
  const Call& call;
  const OpDesc& op;
  const Observation* follow;
  Observation& obs;
  Outcome& out;
  std::array<uint8_t, kMaxArg> kernel_arg{};  // the struct as the kernel copied it in
  bool responded = false;                     // iommufd_ucmd_respond() wrote the struct back
  std::vector<const Field*> defined_on_error; // outputs a failing handler still writes
  std::vector<FieldRule> overrides;

  template <typename S>
  S load() const {
    static_assert(sizeof(S) <= kMaxArg);
    S s;
    std::memcpy(&s, kernel_arg.data(), sizeof(S));
    return s;
  }
  // iommufd_ucmd_respond(): copy the whole struct back, up to the caller's size.
  template <typename S>
  void respond(const S& s) {
    std::array<uint8_t, kMaxArg> tmp = kernel_arg;
    std::memcpy(tmp.data(), &s, sizeof(S));
    const size_t n = std::min<size_t>(call.user_size, sizeof(S));
    std::memcpy(obs.arg.data(), tmp.data(), n);
    responded = true;
  }
  // Write back only some fields (handlers that put_user() a single field).
  template <typename S>
  void write_back(const S& s, std::string_view field_name) {
    const Field* f = find_field(op, field_name);
    if (!f || f->offset + size_t(f->width) > call.user_size) return;
    std::memcpy(obs.arg.data() + f->offset, reinterpret_cast<const uint8_t*>(&s) + f->offset,
                size_t(f->width));
    defined_on_error.push_back(f);
  }

  Errno fail(C c, Errno e) {
    out.clause = &clause(c);
    return e;
  }
  Errno ok(C c) {
    out.clause = &clause(c);
    return Errno::ok;
  }
  void rule(const FieldRule& r) { overrides.push_back(r); }

  // The target's value of an output field, when following a target that succeeded.
  std::optional<uint64_t> followed(const Field* f) const {
    if (!follow || follow->err != Errno::ok || !f) return std::nullopt;
    return read_field(follow->arg.data(), *f);
  }

  // Build the rules for the output fields this outcome defines.
  void finish() {
    std::vector<const Field*> defined;
    if (out.err == Errno::ok || responded) {
      for (const auto& f : op.fields)
        if (f.offset + size_t(f.width) <= call.user_size) defined.push_back(&f);
    } else {
      defined = defined_on_error;
    }
    for (const Field* f : defined) {
      FieldRule r;
      r.field = f;
      switch (f->role) {
      case Role::out:
      case Role::inout:
        r.kind = FieldRule::Kind::exact;
        break;
      case Role::out_obj:
        r.kind = FieldRule::Kind::new_obj;
        break;
      case Role::inout_obj:
        r.kind = FieldRule::Kind::obj;
        break;
      default:
        continue; // inputs are not compared; out_fd numbers are the target's own
      }
      r.value = read_field(obs.arg.data(), *f);
      if (r.kind == FieldRule::Kind::new_obj && out.err != Errno::ok) continue;
      auto o = std::find_if(overrides.begin(), overrides.end(),
                            [&](const FieldRule& x) { return x.field == f; });
      out.rules.push_back(o != overrides.end() ? *o : r);
    }
  }
};

} // namespace iommuspec::iommufd
