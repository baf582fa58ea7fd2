#include "harness.h"

#include "iommufd/uapi_structs.h"
#include "scenario/scenario.h"

#include <gtest/gtest.h>
#include <stdexcept>

namespace iommuspec::test {

CallBuilder::CallBuilder(OpId op) {
  const auto& d = iommufd::op_desc(op);
  call_.op = op;
  call_.user_size = d.size;
  for (const auto& f : d.fields) {
    if (f.role == iommufd::Role::size) iommufd::write_field(call_.arg.data(), f, d.size);
    if (f.role == iommufd::Role::uptr)
      iommufd::write_field(call_.arg.data(), f, iommufd::kPayloadPtr);
  }
  if (d.kind == iommufd::OpKind::test_op) std::memcpy(call_.arg.data() + 4, &d.test_op, 4);
}

CallBuilder& CallBuilder::set(std::string_view field, uint64_t v) {
  const auto* f = iommufd::find_field(iommufd::op_desc(call_.op), field);
  if (!f) throw std::invalid_argument("no field " + std::string(field));
  iommufd::write_field(call_.arg.data(), *f, v);
  return *this;
}

CallBuilder& CallBuilder::size(uint32_t user_size) {
  call_.user_size = user_size;
  std::memcpy(call_.arg.data(), &user_size, 4);
  return *this;
}

CallBuilder& CallBuilder::payload(std::vector<uint8_t> p) {
  call_.payload = std::move(p);
  return *this;
}

scenario::Scenario parse_ok(std::string_view text) {
  std::vector<scenario::Diagnostic> d;
  auto sc = scenario::parse(text, "t.scn", d);
  EXPECT_TRUE(d.empty()) << (d.empty() ? "" : d.front().text());
  return sc;
}

results::ScenarioResult run_text(std::string_view text, Profile p) {
  std::vector<scenario::Diagnostic> d;
  auto sc = scenario::parse(text, "test.scn", d);
  if (!d.empty()) throw std::runtime_error(d.front().text());
  auto t = conformance::make_model_target(p);
  return conformance::run_scenario(sc, *t, p);
}

uint32_t ioas_alloc(Machine& m) {
  const auto r = m.execute(CallBuilder(OpId::ioas_alloc));
  EXPECT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_ioas_alloc s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s.out_ioas_id;
}

MockDev mock_domain(Machine& m, uint32_t pt_id, uint32_t dev_flags) {
  const auto r =
      m.execute(CallBuilder(OpId::mock_domain_flags).set("id", pt_id).set("dev_flags", dev_flags));
  EXPECT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_test_cmd s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return {s.mock_domain.out_stdev_id, s.mock_domain.out_hwpt_id, s.mock_domain.out_idev_id};
}

uint32_t hwpt_alloc(Machine& m, uint32_t dev, uint32_t pt, uint32_t flags) {
  const auto r = m.execute(
      CallBuilder(OpId::hwpt_alloc).set("dev_id", dev).set("pt_id", pt).set("flags", flags));
  EXPECT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_hwpt_alloc s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s.out_hwpt_id;
}

uint32_t hwpt_nested(Machine& m, uint32_t dev, uint32_t parent, uint32_t iotlb) {
  uapi::iommu_hwpt_selftest data{iotlb};
  const auto r = m.execute(CallBuilder(OpId::hwpt_alloc)
                               .set("dev_id", dev)
                               .set("pt_id", parent)
                               .set("data_type", 0xdead)
                               .set("data_len", 4)
                               .record(data));
  EXPECT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_hwpt_alloc s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s.out_hwpt_id;
}

Machine::Result map_fixed(Machine& m, uint32_t ioas, uint64_t iova, uint64_t len, uint64_t uva,
                          uint32_t flags) {
  return m.execute(CallBuilder(OpId::ioas_map)
                       .set("ioas_id", ioas)
                       .set("flags", flags)
                       .set("iova", iova)
                       .set("length", len)
                       .set("user_va", uva));
}

Machine::Result destroy(Machine& m, uint32_t id) {
  return m.execute(CallBuilder(OpId::destroy).set("id", id));
}

uint32_t viommu_alloc(Machine& m, uint32_t dev, uint32_t parent) {
  const auto r = m.execute(CallBuilder(OpId::viommu_alloc)
                               .set("type", 0xdeadbeef)
                               .set("dev_id", dev)
                               .set("hwpt_id", parent));
  EXPECT_EQ(r.obs.err, Errno::ok);
  uapi::iommu_viommu_alloc s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s.out_viommu_id;
}

} // namespace iommuspec::test
