// Figures for the targets (issue 5): calls per second through the line protocol, to the
// model served by `iommuspec serve-model` (external) and to the agent in the test kernel
// (kernel-mock, when the test kernel is cached); and for the QEMU machines (issue 4):
// spawn to first qtest reply, qtest round trips and edu DMAs per second.
// Run: build/bench/iommuspec_target_bench
#include "hw/compile.h"
#include "hw/model.h"
#include "iommufd/uapi_structs.h"
#include "kernel/kernel.h"
#include "qemu/edu.h"
#include "qemu/machine.h"
#include "runner/runner.h"
#include "scenario/scenario.h"
#include "targets/protocol_target.h"
#include "targets/qemu_target.h"

#include <benchmark/benchmark.h>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace {

using namespace iommuspec;

iommufd::Call make(iommufd::OpId op) {
  const auto& d = iommufd::op_desc(op);
  iommufd::Call c;
  c.op = op;
  c.user_size = d.size;
  iommufd::write_field(c.arg.data(), d.fields[0], d.size);
  return c;
}

// IOAS_ALLOC then DESTROY of the new ID: two calls per iteration.
void alloc_destroy(benchmark::State& state, conformance::Target& t) {
  const auto alloc = make(iommufd::OpId::ioas_alloc);
  auto destroy = make(iommufd::OpId::destroy);
  int64_t calls = 0;
  for (auto _ : state) {
    const auto o = t.execute(alloc);
    std::memcpy(destroy.arg.data() + 4, o.arg.data() + 8, 4);
    benchmark::DoNotOptimize(t.execute(destroy));
    calls += 2;
  }
  state.counters["calls/s"] = benchmark::Counter(double(calls), benchmark::Counter::kIsRate);
}

void BM_ExternalServeModel(benchmark::State& state) {
  auto t = conformance::make_external_target(std::string(IOMMUSPEC_BIN) + " serve-model");
  alloc_destroy(state, *t);
}
BENCHMARK(BM_ExternalServeModel)->UseRealTime();

void BM_KernelMockAgent(benchmark::State& state) {
  if (!kernel::cached()) {
    state.SkipWithError("the test kernel is not built (iommuspec kernel build)");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto t = kernel::make_kernel_mock_target(IOMMUSPEC_AGENT);
  state.counters["boot_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  alloc_destroy(state, *t);
}
BENCHMARK(BM_KernelMockAgent)->UseRealTime()->MinTime(2.0);

qemu::QemuMachine machine(int64_t which) {
  return which == 0 ? qemu::aarch64_virt_smmuv3() : qemu::x86_64_q35_intel_iommu(false);
}

// A QEMU machine from exec to its first qtest reply (the handshake), then shut down.
void BM_QemuSpawnToFirstReply(benchmark::State& state) {
  const auto m = machine(state.range(0));
  state.SetLabel(m.name);
  double first_reply_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto q = qemu::start(m);
    first_reply_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    q->shutdown();
  }
  state.counters["first_reply_ms"] = 1000 * first_reply_s / double(state.iterations());
}
BENCHMARK(BM_QemuSpawnToFirstReply)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// One qtest command and its reply: readl of the IOMMU's first register.
void BM_QtestRoundTrip(benchmark::State& state) {
  const auto m = machine(state.range(0));
  state.SetLabel(m.name);
  auto q = qemu::start(m);
  for (auto _ : state)
    benchmark::DoNotOptimize(q->readl(m.iommu_base));
  state.counters["round_trips/s"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_QtestRoundTrip)->Arg(0)->Arg(1)->UseRealTime();

// One edu transfer of `range(1)` bytes from RAM into the buffer (IOMMU off): 4 register
// writes, then command-register polls until done; the mean polls per DMA is reported.
void BM_EduDma(benchmark::State& state) {
  const auto m = machine(state.range(0));
  state.SetLabel(m.name);
  auto q = qemu::start(m);
  qemu::Edu edu(*q, m);
  int64_t polls = 0;
  for (auto _ : state) {
    edu.transfer(m.scratch, size_t(state.range(1)), false);
    polls += edu.last_polls();
  }
  state.counters["dmas/s"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["polls/dma"] = double(polls) / double(state.iterations());
}
BENCHMARK(BM_EduDma)->Args({0, 8})->Args({0, 4095})->Args({1, 8})->Args({1, 4095})->UseRealTime();

// A stage-1 stream of qemu-smmuv3 with two pages mapped (StreamID 9: no relabelling).
constexpr const char* kSmmuSetup = R"(smmuv3 bench
clauses = SMMUV3.WALK.translate
features = smmuv3 stage1
1: table T stage=1 granule=4k ia=48
2: map T iova=0x10000 pa=0x42000000 size=0x1000 perm=r|w
3: map T iova=0x11000 pa=0x42100000 size=0x1000 perm=r|w
4: cd sid=9 tt=T asid=1
5: ste sid=9 config=s1
6: cmdq cmds=[{op=cfgi_all}, {op=sync}]
)";

// DMA checks through qtest: the access on QEMU's SMMUv3 (edu DMA, trace, event queue), the
// model's allowed set for it, and the judgement, per iteration (issue 4 goal: 2,000/s).
void BM_QemuSmmuDmaCheck(benchmark::State& state) {
  std::vector<scenario::Diagnostic> diags;
  const auto sc = scenario::parse(kSmmuSetup, "bench.scn", diags);
  const auto c = conformance::hwc::compile(sc, diags);
  if (!c) {
    state.SkipWithError("the bench scenario does not compile");
    return;
  }
  auto t = conformance::make_qemu_smmuv3_target();
  auto model = conformance::hwc::make_hw_model(c->setup);
  auto setup = c->setup;
  setup.requesters = {9}; // the accesses below
  t->hw_reset(setup);
  for (const auto& st : c->steps) {
    if (st.kind == conformance::hwc::Step::Kind::write) {
      t->hw_write(st.writes);
      model->write(st.writes);
    } else if (st.kind == conformance::hwc::Step::Kind::submit) {
      t->hw_submit(st.entries);
      model->submit(st.entries);
    }
  }
  hw::DmaRequest r;
  r.sid = 9;
  int64_t bad = 0, n = 0;
  for (auto _ : state) {
    r.addr = (n++ & 1) ? 0x11008 : 0x10008;
    const auto seen = t->hw_dma(r);
    bool ok = false;
    for (const auto& a : model->dma(r))
      ok = ok || a.outcome.admits(seen);
    bad += !ok;
  }
  state.counters["checks/s"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["deviations"] = double(bad);
}
BENCHMARK(BM_QemuSmmuDmaCheck)->UseRealTime();

// Wall time of the whole smmuv3 suite on qemu-smmuv3, one QEMU per scenario, one job.
void BM_QemuSmmuSuite(benchmark::State& state) {
  std::vector<scenario::Scenario> scs;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(IOMMUSPEC_SUITES_DIR) + "/smmuv3")) {
    if (e.path().extension() != ".scn") continue;
    std::vector<scenario::Diagnostic> diags;
    scs.push_back(scenario::parse_file(e.path().string(), diags));
  }
  auto t = conformance::make_qemu_smmuv3_target();
  int64_t ran = 0;
  for (auto _ : state)
    for (const auto& sc : scs)
      ran += conformance::run_scenario(sc, *t, iommufd::Profile::linux_latest).verdict !=
             "unsupported";
  state.counters["scenarios"] = double(scs.size());
  state.counters["run (not unsupported)"] = double(ran) / double(state.iterations());
}
BENCHMARK(BM_QemuSmmuSuite)->UseRealTime()->Unit(benchmark::kSecond)->Iterations(1);

} // namespace

BENCHMARK_MAIN();
