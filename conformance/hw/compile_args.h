// Shared by the area compilers (compile.cpp for SMMUv3, compile_vtd.cpp for VT-d): a step's
// arguments by name, the error that carries a position, and expectations. Internal to hw/.
#pragma once

#include "hw/compile.h"

#include <fmt/format.h>

// In a set_field(T& c, std::string_view k, uint64_t v): sets c.field from v when k names it
// and T has it (each area lists its structures' fields, one IOMMUSPEC_SET per line).
#define IOMMUSPEC_SET(field)                                                                       \
  if constexpr (requires { c.field; })                                                             \
    if (k == #field) {                                                                             \
      c.field = decltype(c.field)(v);                                                              \
      return true;                                                                                 \
    }

namespace iommuspec::conformance::hwc::detail {

struct Error {
  scenario::Pos pos;
  std::string message;
};

class Args {
public:
  Args(const std::vector<scenario::Arg>& args, scenario::Pos pos) : args_(args), pos_(pos) {}
  const scenario::Arg* find(std::string_view k) const {
    for (const auto& a : args_)
      if (a.key == k) return &a;
    return nullptr;
  }
  bool has(std::string_view k) const { return find(k) != nullptr; }
  uint64_t num(std::string_view k) const {
    const scenario::Arg* a = find(k);
    if (!a) throw Error{pos_, fmt::format("missing {}=", k)};
    return number(*a);
  }
  uint64_t num(std::string_view k, uint64_t dflt) const {
    const scenario::Arg* a = find(k);
    return a ? number(*a) : dflt;
  }
  static uint64_t number(const scenario::Arg& a) {
    if (const auto* n = std::get_if<scenario::Number>(&a.value.v)) return n->v;
    throw Error{a.pos, fmt::format("{}= takes a number", a.key)};
  }
  std::string name(std::string_view k) const {
    const scenario::Arg* a = find(k);
    if (!a) throw Error{pos_, fmt::format("missing {}=", k)};
    if (const auto* r = std::get_if<scenario::Ref>(&a->value.v); r && r->offset == 0)
      return r->name;
    throw Error{a->pos, fmt::format("{}= takes a name", k)};
  }
  std::string name(std::string_view k, std::string dflt) const { return has(k) ? name(k) : dflt; }
  // a|b|c, or a single name, or 0.
  std::vector<std::string> flags(std::string_view k, std::vector<std::string> dflt) const {
    const scenario::Arg* a = find(k);
    if (!a) return dflt;
    if (const auto* f = std::get_if<scenario::Flags>(&a->value.v)) return f->names;
    if (const auto* r = std::get_if<scenario::Ref>(&a->value.v)) return {r->name};
    if (const auto* n = std::get_if<scenario::Number>(&a->value.v); n && n->v == 0) return {};
    throw Error{a->pos, fmt::format("{}= takes flags like r|w", k)};
  }
  // key=[{...}, {...}]: the records' argument lists.
  std::vector<const std::vector<scenario::Arg>*> records(std::string_view k) const {
    const scenario::Arg* l = find(k);
    if (!l || !std::holds_alternative<scenario::List>(l->value.v))
      throw Error{pos_, fmt::format("missing {}=[{{...}}, ...]", k)};
    std::vector<const std::vector<scenario::Arg>*> out;
    for (const auto& item : std::get<scenario::List>(l->value.v).items) {
      const auto* rec = std::get_if<scenario::Record>(&item);
      if (!rec) throw Error{l->pos, fmt::format("{}= lists records {{...}}", k)};
      out.push_back(&rec->args);
    }
    return out;
  }
  const std::vector<scenario::Arg>& all() const { return args_; }
  scenario::Pos pos() const { return pos_; }

private:
  const std::vector<scenario::Arg>& args_;
  scenario::Pos pos_;
};

// The expectation of a step (`-> ok consumed=2`, `-> F_TRANSLATION ...`, `-> any outcomes=`).
Expect expect_from(const scenario::Expect& e, Step::Kind kind);

// The steps every area shares: dma (with the area's PASID key and privilege default), and the
// step-subject rule (`table T`, `map T`...).
void check_subject(const scenario::Step& st);

Compiled compile_vtd(const scenario::Scenario& sc);
std::map<std::string, uint64_t> vtd_record_fields(const std::vector<uint64_t>& record);
std::string vtd_record_name(const std::vector<uint64_t>& record);
bool vtd_field_defined(const hw::DmaOutcome& o, std::string_view k);

} // namespace iommuspec::conformance::hwc::detail
