// Figures for the model (issue 2): uAPI ops per second on one core, and parse + lint time
// of 10,000 scenario files. Run: build/bench/iommuspec_bench
#include "iommufd/machine.h"
#include "iommufd/uapi_structs.h"
#include "runner/runner.h"
#include "scenario/encode.h"
#include "scenario/scenario.h"
#include "smmuv3/machine.h"

#include <benchmark/benchmark.h>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

using namespace iommuspec;
using iommufd::Call;
using iommufd::Machine;
using iommufd::OpId;

Call make(OpId op) {
  const auto& d = iommufd::op_desc(op);
  Call c;
  c.op = op;
  c.user_size = d.size;
  for (const auto& f : d.fields) {
    if (f.role == iommufd::Role::size) iommufd::write_field(c.arg.data(), f, d.size);
    if (f.role == iommufd::Role::uptr) iommufd::write_field(c.arg.data(), f, iommufd::kPayloadPtr);
  }
  if (d.kind == iommufd::OpKind::test_op) std::memcpy(c.arg.data() + 4, &d.test_op, 4);
  return c;
}
void set(Call& c, std::string_view field, uint64_t v) {
  iommufd::write_field(c.arg.data(), *iommufd::find_field(iommufd::op_desc(c.op), field), v);
}
template <typename S>
S as(const Machine::Result& r) {
  S s;
  std::memcpy(&s, r.obs.arg.data(), sizeof s);
  return s;
}

// IOAS lifecycle: alloc, two fixed maps, an automatic map, unmap-all, destroy (6 ops).
void BM_ModelIoasOps(benchmark::State& state) {
  Machine m(iommufd::Profile::linux_6_12);
  m.add_mem(0x7f0000000000ull, 1 << 24);
  Call alloc = make(OpId::ioas_alloc);
  Call map = make(OpId::ioas_map);
  set(map, "flags", 7);
  set(map, "length", 0x4000);
  set(map, "user_va", 0x7f0000000000ull);
  Call amap = map;
  set(amap, "flags", 6);
  Call unmap = make(OpId::ioas_unmap);
  set(unmap, "length", ~0ull);
  Call destroy = make(OpId::destroy);
  int64_t ops = 0;
  for (auto _ : state) {
    const auto id = as<uapi::iommu_ioas_alloc>(m.execute(alloc)).out_ioas_id;
    set(map, "ioas_id", id);
    set(map, "iova", 0x100000);
    benchmark::DoNotOptimize(m.execute(map));
    set(map, "iova", 0x200000);
    benchmark::DoNotOptimize(m.execute(map));
    set(amap, "ioas_id", id);
    benchmark::DoNotOptimize(m.execute(amap));
    set(unmap, "ioas_id", id);
    benchmark::DoNotOptimize(m.execute(unmap));
    set(destroy, "id", id);
    benchmark::DoNotOptimize(m.execute(destroy));
    ops += 6;
  }
  state.SetItemsProcessed(ops);
  state.counters["ops/s"] = benchmark::Counter(double(ops), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModelIoasOps);

// Nested set-up and invalidation: mock device, nest parent, nested HWPT, 4 invalidations,
// IOTLB check, destroys (11 ops).
void BM_ModelNestedOps(benchmark::State& state) {
  Machine m(iommufd::Profile::linux_6_12);
  const auto ioas = as<uapi::iommu_ioas_alloc>(m.execute(make(OpId::ioas_alloc))).out_ioas_id;
  Call dev = make(OpId::mock_domain);
  set(dev, "id", ioas);
  Call parent = make(OpId::hwpt_alloc);
  set(parent, "pt_id", ioas);
  set(parent, "flags", 1);
  Call nested = make(OpId::hwpt_alloc);
  set(nested, "data_type", 0xdead);
  set(nested, "data_len", 4);
  nested.payload = {0xef, 0xbe, 0xad, 0x0b};
  Call inv = make(OpId::hwpt_invalidate);
  set(inv, "data_type", 0xdeadbeef);
  set(inv, "entry_len", 8);
  set(inv, "entry_num", 1);
  inv.payload.assign(8, 0);
  Call check = make(OpId::md_check_iotlb);
  Call destroy = make(OpId::destroy);
  int64_t ops = 0;
  for (auto _ : state) {
    const auto d = as<uapi::iommu_test_cmd>(m.execute(dev)).mock_domain;
    set(parent, "dev_id", d.out_idev_id);
    const auto p = as<uapi::iommu_hwpt_alloc>(m.execute(parent)).out_hwpt_id;
    set(nested, "dev_id", d.out_idev_id);
    set(nested, "pt_id", p);
    const auto n = as<uapi::iommu_hwpt_alloc>(m.execute(nested)).out_hwpt_id;
    set(inv, "hwpt_id", n);
    for (uint32_t i = 0; i < 4; ++i) {
      std::memcpy(inv.payload.data() + 4, &i, 4);
      benchmark::DoNotOptimize(m.execute(inv));
    }
    set(check, "id", n);
    benchmark::DoNotOptimize(m.execute(check));
    for (uint32_t id : {n, p, d.out_stdev_id}) {
      set(destroy, "id", id);
      benchmark::DoNotOptimize(m.execute(destroy));
    }
    ops += 11;
  }
  state.SetItemsProcessed(ops);
  state.counters["ops/s"] = benchmark::Counter(double(ops), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModelNestedOps);

// 10,000 scenario files: read, parse and lint (iommuspec check without the model run).
void BM_ParseLint10k(benchmark::State& state) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "iommuspec-bench-10k";
  std::vector<std::string> errs;
  const auto sources = conformance::collect_files({IOMMUSPEC_SUITES_DIR}, errs);
  if (sources.empty()) {
    state.SkipWithError("no suites found");
    return;
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> texts;
  for (const auto& s : sources) {
    std::ifstream f(s);
    texts.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  for (int i = 0; i < 10000; ++i) {
    std::ofstream(dir / ("s" + std::to_string(i) + ".scn")) << texts[size_t(i) % texts.size()];
  }
  for (auto _ : state) {
    const auto files = conformance::collect_files({dir.string()}, errs);
    size_t bad = 0;
    for (const auto& f : files) {
      std::vector<scenario::Diagnostic> d;
      auto sc = scenario::parse_file(f, d);
      if (d.empty()) scenario::lint(sc, d);
      bad += d.size();
    }
    if (bad) state.SkipWithError("lint errors in the suites");
    benchmark::DoNotOptimize(bad);
  }
  state.counters["files"] = 10000;
  fs::remove_all(dir);
}
BENCHMARK(BM_ParseLint10k)->Unit(benchmark::kMillisecond)->Iterations(3);

// Issue 3: DMA steps checked per second on the SMMUv3 machine, nested, 4-level stage 1
// (48-bit VA) over 4-level stage 2 (48-bit IPA): 4 stage-1 descriptors, each through a
// 4-level stage-2 walk, then the output IPA through stage 2: 24 descriptor reads per check,
// plus the STE and CD. `stale` earlier images (remaps without invalidation) add cached
// candidates to every check.
namespace sm = iommuspec::smmuv3;

sm::Machine nested_machine(int stale) {
  sm::Machine m;
  Memory shadow;
  shadow.add_region(sm::Layout{}.ram);
  sm::S2Config s2c;
  s2c.s2t0sz = 16;
  s2c.s2sl0 = 2; // start level 0: four levels
  s2c.ps_bits = 48;
  auto s2 = sm::PageTableBuilder::stage2(shadow, Range{0x41100000, 0x411fffff}, s2c);
  auto s1 =
      sm::PageTableBuilder::stage1(shadow, Range{0x10000000, 0x100fffff}, sm::Granule::g4k, 48);
  s1.set_placement_offset(0x41200000 - 0x10000000);
  const sm::Perms rw{true, true, false, true};
  s2.map(0x10000000, 0x41200000, 0x200000, rw);
  s2.map(0x40010000, 0x40010000, 0x1000, rw);
  for (uint64_t p = 0; p < 64; ++p) {
    s2.map(0x80000000 + p * 0x1000, 0x42000000 + p * 0x1000, 0x1000, rw);
    s1.map(0x7f0000000000 + p * 0x1000, 0x80000000 + p * 0x1000, 0x1000, rw);
  }
  sm::Ste e;
  e.v = e.s2_aa64 = e.s2_r = true;
  e.config = sm::StreamConfig::nested;
  e.s1_context_ptr = 0x40010000;
  e.s2_vmid = 1;
  e.s2_ttb = s2.root();
  e.s2_t0sz = 16;
  e.s2_sl0 = 2;
  e.s2_ps = 5;
  sm::Cd c;
  c.v = c.aa64 = c.r = c.epd1 = true;
  c.ips = 5;
  c.t0sz = 16;
  c.asid = 1;
  c.ttb0 = s1.root();
  const auto ew = sm::encode(e);
  const auto cw = sm::encode(c);
  for (int i = 0; i < 8; ++i) {
    shadow.write64(0x40000000 + 8 * uint64_t(i), ew[size_t(i)]);
    shadow.write64(0x40010000 + 8 * uint64_t(i), cw[size_t(i)]);
  }
  auto flush = [&] { m.write(hw::writes_between(m.memory(), shadow)); };
  flush();
  // The STE and CD were invalid before this write, and an SMMU may cache invalid
  // configuration (IHI 0070 3.21.3): software invalidates after setting them up.
  const std::vector<sm::Cmd2> cfgi = {sm::encode(sm::Command{sm::cfgi_all()}),
                                      sm::encode(sm::Command{sm::CmdSync{}})};
  m.submit(cfgi);
  for (int k = 0; k < stale; ++k) { // remap every page elsewhere, no invalidation
    for (uint64_t p = 0; p < 64; ++p) {
      const uint64_t iova = 0x7f0000000000 + p * 0x1000;
      shadow.write64(*s1.slot(iova, 3) + s1.placement_offset(), 0);
      s1.map(iova, 0x80000000 + ((p + uint64_t(k) + 1) % 64) * 0x1000, 0x1000, rw);
    }
    flush();
  }
  return m;
}

void BM_SmmuNestedDmaCheck(benchmark::State& state) {
  const sm::Machine m = nested_machine(int(state.range(0)));
  hw::DmaRequest r;
  uint64_t p = 0, allowed = 0;
  for (auto _ : state) {
    r.addr = 0x7f0000000000 + (p++ % 64) * 0x1000 + 0x18;
    const auto a = m.dma(r);
    allowed += a.size();
    benchmark::DoNotOptimize(a.data());
  }
  state.counters["checks/s"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["allowed/check"] = double(allowed) / double(state.iterations());
  state.counters["stale images"] = double(m.stale_epochs());
}
BENCHMARK(BM_SmmuNestedDmaCheck)->Arg(0)->Arg(1)->Arg(2);

} // namespace

BENCHMARK_MAIN();