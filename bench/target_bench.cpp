// Figures for the targets (issue 5): calls per second through the line protocol, to the
// model served by `iommuspec serve-model` (external) and to the agent in the test kernel
// (kernel-mock, when the test kernel is cached). Run: build/bench/iommuspec_target_bench
#include "iommufd/uapi_structs.h"
#include "kernel/kernel.h"
#include "targets/protocol_target.h"

#include <benchmark/benchmark.h>
#include <chrono>
#include <cstring>

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

} // namespace

BENCHMARK_MAIN();
