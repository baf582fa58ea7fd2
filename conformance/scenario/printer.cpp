#include "scenario/scenario.h"

#include <fmt/format.h>

namespace iommuspec::scenario {
namespace {

void print_args(std::string& out, const std::vector<Arg>& args) {
  for (const auto& a : args)
    out += fmt::format(" {}={}", a.key, print(a.value));
}

std::string print_record(const Record& r) {
  std::string s = "{";
  for (size_t i = 0; i < r.args.size(); ++i)
    s += fmt::format("{}{}={}", i ? " " : "", r.args[i].key, print(r.args[i].value));
  return s + "}";
}

} // namespace

std::string print_number(uint64_t v) {
  return v < 10 ? fmt::format("{}", v) : fmt::format("0x{:x}", v);
}

std::string print(const Value& v) {
  struct V {
    std::string operator()(const Number& n) const { return print_number(n.v); }
    std::string operator()(const Ref& r) const {
      return r.offset ? fmt::format("{}+{}", r.name, print_number(r.offset)) : r.name;
    }
    std::string operator()(const Flags& f) const {
      std::string s;
      // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict) on `"|" + name` here.
      auto add = [&s](const std::string& x) {
        if (!s.empty()) s += '|';
        s += x;
      };
      for (const auto& n : f.names)
        add(n);
      if (f.extra || s.empty()) add(print_number(f.extra));
      if (f.names.size() + (f.extra ? 1 : 0) == 1 && f.extra) s += "|0"; // keep it a set
      return s;
    }
    std::string operator()(const List& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) s += ", ";
        if (const auto* r = std::get_if<RangeV>(&l.items[i]))
          s += fmt::format("{}..{}", print_number(r->start), print_number(r->last));
        else if (const auto* n = std::get_if<Number>(&l.items[i]))
          s += print_number(n->v);
        else
          s += print_record(std::get<Record>(l.items[i]));
      }
      return s + "]";
    }
    std::string operator()(const Record& r) const { return print_record(r); }
  };
  return std::visit(V{}, v.v);
}

std::string print(const Scenario& s) {
  std::string out = fmt::format("{} {}\n", s.area, s.id);
  if (!s.doc.empty()) out += fmt::format("\"{}\"\n", s.doc);
  for (const auto& h : s.headers) {
    out += h.key + " =";
    for (const auto& v : h.values)
      out += " " + v;
    out += "\n";
  }
  if (!s.mems.empty()) {
    out += "{\n";
    for (const auto& m : s.mems)
      out += fmt::format("  mem {} {}\n", m.name, print_number(m.size));
    out += "}\n";
  }
  for (const auto& st : s.steps) {
    out += fmt::format("{}: {}", st.number, st.op);
    if (!st.subject.empty()) out += " " + st.subject;
    print_args(out, st.args);
    if (st.expect.present) {
      out += " -> " + st.expect.errno_name;
      print_args(out, st.expect.pins);
    }
    out += "\n";
  }
  return out;
}

} // namespace iommuspec::scenario
