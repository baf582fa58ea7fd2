#include "scenario_gen.h"

namespace iommuspec::generators {

rc::Gen<uint64_t> edge_u64() {
  return rc::gen::oneOf(
      rc::gen::element<uint64_t>(0, 1, 9, 10, 0x7ff, 0x800, 0xfff, 0x1000, 0x1fffff, 0x200000,
                                 0xffffff, 0x1000000, 0x7fffffff, 0x80000000, 0xffffffff,
                                 0x1ffffffffffull, ~0ull - 0xfff, ~0ull - 1, ~0ull),
      rc::gen::arbitrary<uint64_t>(), rc::gen::inRange<uint64_t>(0, 0x10000));
}

rc::Gen<std::string> name() {
  return rc::gen::map(
      rc::gen::pair(rc::gen::elementOf(std::string("ABCDEFGHMNPQSTXYZ")), rc::gen::inRange(0, 100)),
      [](const std::pair<char, int>& p) {
        return std::string(1, p.first) + (p.second ? std::to_string(p.second) : "");
      });
}

namespace {

rc::Gen<std::string> ident() {
  return rc::gen::element<std::string>("flags", "iova", "length", "iotlb_id", "vdev_id", "cache_id",
                                       "cookie", "code", "start", "last", "x");
}

scenario::Record record_of(int depth) {
  scenario::Record r;
  const size_t n = *rc::gen::inRange<size_t>(0, 4);
  for (size_t i = 0; i < n; ++i) {
    scenario::Value v =
        depth > 0 ? *value(depth - 1) : scenario::Value{scenario::Number{*edge_u64()}};
    r.args.push_back({*ident(), v, {}});
  }
  return r;
}

} // namespace

rc::Gen<scenario::Value> value(int depth) {
  return rc::gen::exec([depth] {
    using scenario::Value;
    const int kinds = depth > 0 ? 6 : 4;
    switch (*rc::gen::inRange(0, kinds)) {
    case 0:
      return Value{scenario::Number{*edge_u64()}};
    case 1: {
      const uint64_t off = *rc::gen::arbitrary<bool>() ? 0 : *edge_u64();
      return Value{scenario::Ref{*name(), off}};
    }
    case 2: {
      scenario::Flags f;
      const size_t n = *rc::gen::inRange<size_t>(2, 4);
      for (size_t i = 0; i < n; ++i)
        f.names.push_back(*ident());
      f.extra = *rc::gen::arbitrary<bool>() ? 0 : *edge_u64();
      return Value{f};
    }
    case 3: {
      scenario::List l;
      const size_t n = *rc::gen::inRange<size_t>(0, 4);
      for (size_t i = 0; i < n; ++i)
        l.items.emplace_back(scenario::RangeV{*edge_u64(), *edge_u64()});
      return Value{l};
    }
    case 4: {
      scenario::List l;
      const size_t n = *rc::gen::inRange<size_t>(0, 3);
      for (size_t i = 0; i < n; ++i)
        l.items.emplace_back(record_of(depth - 1));
      return Value{l};
    }
    default:
      return Value{record_of(depth - 1)};
    }
  });
}

rc::Gen<scenario::Step> step(int number) {
  return rc::gen::exec([number] {
    scenario::Step s;
    s.number = number;
    const auto ops = iommufd::all_ops();
    const auto& op = ops[*rc::gen::inRange<size_t>(0, ops.size())];
    s.op = std::string(op.name);
    if (*rc::gen::inRange(0, 4) == 0) s.subject = *ident();
    const size_t nargs = *rc::gen::inRange<size_t>(0, 5);
    for (size_t i = 0; i < nargs && i < op.fields.size(); ++i)
      s.args.push_back({std::string(op.fields[i].name), *value(), {}});
    if (*rc::gen::arbitrary<bool>()) {
      s.expect.present = true;
      s.expect.errno_name = *rc::gen::element<std::string>("ok", "EINVAL", "ENOENT", "EBUSY");
      const size_t npins = *rc::gen::inRange<size_t>(0, 3);
      for (size_t i = 0; i < npins; ++i)
        s.expect.pins.push_back({*ident(), *value(1), {}});
    }
    return s;
  });
}

rc::Gen<scenario::Scenario> scenario_ast() {
  return rc::gen::exec([] {
    scenario::Scenario sc;
    sc.area = "iommufd";
    sc.id = *rc::gen::element<std::string>("a", "ioas-map-1", "x.y_z", "hwpt+nested");
    sc.doc = *rc::gen::element<std::string>("", "A description.", "with # and = inside");
    if (*rc::gen::arbitrary<bool>())
      sc.headers.push_back({"clauses", {"IOMMUFD.IOAS_MAP.ok", "IOMMUFD.DESTROY.ebusy"}, {}});
    if (*rc::gen::arbitrary<bool>())
      sc.headers.push_back({"features", {"iommufd", "selftest"}, {}});
    const size_t nmem = *rc::gen::inRange<size_t>(0, 3);
    for (size_t i = 0; i < nmem; ++i)
      sc.mems.push_back(
          {"M" + std::to_string(i), 0x1000 * (*rc::gen::inRange<uint64_t>(1, 64)), {}});
    const int nsteps = *rc::gen::inRange(1, 8);
    for (int i = 1; i <= nsteps; ++i)
      sc.steps.push_back(*step(i));
    return sc;
  });
}

} // namespace iommuspec::generators
