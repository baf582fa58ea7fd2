// queue.partial_completion: the model's queues and vIOMMU converters are code, not arithmetic
// a solver takes in, so every legal/illegal pattern of up to kMaxN commands is run (exhaustive
// enumeration, said so in the result). Rule: with the first illegal command at k, CONS (the
// consumed count) and entry_num are k, and exactly commands 0..k-1 took effect (IHI 0070
// 4.1.3, 7.1 SMMUV3.CMDQ.error_stop; VT-d IQE, VTD.IQ.stop; uapi iommu_hwpt_invalidate /
// iommu_viommu_invalidate entry_num, SMMUV3.VIOMMU.entry_num, VTD.VIOMMU.entry_num).
#include "props.h"
#include "scenarios.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace iommuspec::solvers {
namespace {

constexpr const char* kQueue = "queue.partial_completion";
constexpr size_t kMaxN = 8;

size_t first_set(const std::vector<bool>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i]) return i;
  return v.size();
}

std::string pattern(const std::vector<bool>& v) {
  std::string s;
  for (bool b : v)
    s += b ? 'x' : '.';
  return s;
}

// What a hardware queue run must show; "" when it does.
std::string judge(const QueueRun& r, const std::vector<bool>& illegal) {
  const size_t k = first_set(illegal);
  if (r.consumed != k)
    return fmt::format("consumed {} where the first illegal command is {}", r.consumed, k);
  if (r.stopped != (k < illegal.size())) return fmt::format("stopped={} with k={}", r.stopped, k);
  for (size_t i = 0; i < illegal.size(); ++i)
    if (r.fresh.at(i) != (i < k))
      return fmt::format("command {} {} effect (k={})", i, i < k ? "has no" : "took", k);
  return {};
}

// What a uAPI call must show: entry_num k, and the promise of entries 0..k-1 alone.
std::string judge(const UapiRun& r, const std::vector<bool>& refused,
                  const std::function<UapiRun(const std::vector<bool>&)>& f) {
  const size_t k = first_set(refused);
  if (r.entry_num != k)
    return fmt::format("entry_num {} where entry {} is refused", r.entry_num, k);
  if (r.error != (k < refused.size())) return fmt::format("error={} with k={}", r.error, k);
  if (r.promised != f(std::vector<bool>(k, false)).promised)
    return "the entries before the refused one do not promise what they promise alone";
  return {};
}

// A failing hardware pattern as an SMMUv3 scenario, its pins the model's (the architecture's).
std::string smmu_queue_scenario(const std::string& name, const std::vector<bool>& illegal) {
  constexpr uint64_t kIova = 0x10000, kPage = 0x1000;
  std::vector<std::string> recs;
  for (size_t i = 0; i < illegal.size(); ++i) {
    const uint64_t a = kIova + i * kPage;
    if (!illegal[i])
      recs.push_back(fmt::format("{{op=tlbi_nh_va asid=1 addr={} leaf=1}}", hex(a)));
    else
      recs.push_back("{op=raw w0=0x90 w1=0x0}");
  }
  const size_t k = first_set(illegal);
  std::string t = fmt::format(
      "smmuv3 prove-queue-{}\n\"Found by `iommuspec prove` (queue.partial_completion, "
      "implementation {}): the queue stops at the first illegal command, which is CONS, and "
      "only the commands before it take effect.\"\nclauses = SMMUV3.CMDQ.error_stop "
      "SMMUV3.CMDQ.ill_opcode SMMUV3.CMDQ.resume SMMUV3.TLBI.NH_VA.scope\nfeatures = smmuv3 "
      "stage1\n# pattern {} (x: illegal)\n",
      name, name, pattern(illegal));
  int n = 0;
  auto step = [&](const std::string& s) { t += fmt::format("{}: {}\n", ++n, s); };
  step("table T stage=1 granule=4k ia=48");
  for (size_t i = 0; i < illegal.size(); ++i)
    step(fmt::format("map T iova={} pa={} size=0x1000 perm=r|w", hex(kIova + i * kPage),
                     hex(0x42000000 + i * kPage)));
  step("cd sid=1 tt=T asid=1");
  step("ste sid=1 config=s1");
  step("cmdq cmds=[{op=cfgi_ste sid=1 leaf=1}, {op=sync}] -> ok consumed=2");
  for (size_t i = 0; i < illegal.size(); ++i)
    step(fmt::format("unmap T iova={} size=0x1000", hex(kIova + i * kPage)));
  for (size_t i = 0; i < illegal.size(); ++i)
    step(fmt::format("map T iova={} pa={} size=0x1000 perm=r|w", hex(kIova + i * kPage),
                     hex(0x42100000 + i * kPage)));
  step(fmt::format("cmdq cmds=[{}] -> {}", fmt::join(recs, ", "),
                   k < illegal.size() ? fmt::format("CERROR_ILL consumed={}", k)
                                      : fmt::format("ok consumed={}", k)));
  if (k < illegal.size()) {
    const size_t j = first_set(std::vector<bool>(illegal.begin() + long(k) + 1, illegal.end()));
    const size_t rest = illegal.size() - k - 1;
    step(j < rest ? fmt::format("resume -> CERROR_ILL consumed={}", j + 1)
                  : fmt::format("resume -> ok consumed={}", rest + 1));
  } else {
    step("sync");
  }
  for (size_t i = 0; i < illegal.size(); ++i) {
    const uint64_t a = kIova + i * kPage;
    step(i < k ? fmt::format("dma sid=1 iova={} -> ok pa={}", hex(a), hex(0x42100000 + i * kPage))
               : fmt::format("dma sid=1 iova={} -> any outcomes=[{{pa={}}}, {{pa={}}}]", hex(a),
                             hex(0x42000000 + i * kPage), hex(0x42100000 + i * kPage)));
  }
  return t;
}

// A failing vIOMMU pattern as a scenario: entry_num is the index of the refused entry.
std::string viommu_scenario(const std::string& name, const std::vector<bool>& refused) {
  std::vector<std::string> recs;
  for (size_t i = 0; i < refused.size(); ++i)
    recs.push_back(refused[i] ? fmt::format("{{op=cfgi_ste sid={} leaf=1}}", i)
                              : fmt::format("{{op=tlbi_nh_va asid=1 addr={} leaf=1}}",
                                            hex(0x10000 + i * 0x1000)));
  const size_t k = first_set(refused);
  return fmt::format(
      "smmuv3 prove-viommu-entry-num-{}\n\"Found by `iommuspec prove` (queue.partial_completion, "
      "implementation {}): entry_num is the index of the first refused entry.\"\nclauses = "
      "SMMUV3.VIOMMU.entry_num SMMUV3.VIOMMU.opcodes\nfeatures = smmuv3 stage1 viommu\n"
      "1: viommu V vmid=5\n2: viommu_invalidate V cmds=[{}] -> {} entry_num={}\n",
      name, name, fmt::join(recs, ", "), k < refused.size() ? "EIO" : "ok", k);
}

Result run_queue(const QueueImpl& q, const Options&) {
  Stopwatch sw;
  Result r;
  r.property = kQueue;
  r.encoder = q.name;
  r.method = fmt::format("exhaustive, N <= {}", kMaxN);
  r.verdict = Verdict::proved;
  size_t runs = 0;
  for (size_t n = 1; n <= kMaxN && r.verdict == Verdict::proved; ++n) {
    for (uint32_t mask = 0; mask < (1u << n) && r.verdict == Verdict::proved; ++mask) {
      std::vector<bool> bad(n);
      for (size_t i = 0; i < n; ++i)
        bad[i] = (mask >> i) & 1;
      struct Part {
        const char* what;
        std::string why;
      };
      const Part parts[] = {
          {"SMMUv3 command queue", judge(q.smmu_cmdq(bad), bad)},
          {"VT-d invalidation queue", judge(q.vtd_iq(bad), bad)},
          {"SMMUv3 vIOMMU entry_num", judge(q.smmu_viommu(bad), bad, q.smmu_viommu)},
          {"VT-d HWPT entry_num", judge(q.vtd_hwpt(bad), bad, q.vtd_hwpt)}};
      runs += 4;
      for (const auto& p : parts) {
        if (p.why.empty()) continue;
        r.verdict = Verdict::counterexample;
        r.values = {{"n", n}, {"illegal_mask", mask}};
        r.detail = fmt::format("{}, pattern {} (x: illegal): {}", p.what, pattern(bad), p.why);
        if (std::string(p.what) == "SMMUv3 command queue")
          r.files.push_back({"prove-queue-" + q.name, smmu_queue_scenario(q.name, bad)});
        if (std::string(p.what) == "SMMUv3 vIOMMU entry_num")
          r.files.push_back({"prove-viommu-entry-num-" + q.name, viommu_scenario(q.name, bad)});
        break;
      }
    }
  }
  if (r.verdict == Verdict::proved)
    r.detail = fmt::format("every legal/illegal pattern of 1..{} commands ({} runs): CONS and "
                           "entry_num = the first illegal index k, exactly commands 0..k-1 took "
                           "effect (SMMUv3 and VT-d queues after Linux's recovery; both vIOMMU "
                           "converters)",
                           kMaxN, runs);
  r.seconds = sw.seconds();
  return r;
}

} // namespace

Property queue_partial_completion(QueueImpl q) {
  return {kQueue,
          "if command (entry) k is the first illegal one, CONS and entry_num are k and exactly "
          "commands 0..k-1 took effect",
          [q](const Options& o) { return run_queue(q, o); }};
}

} // namespace iommuspec::solvers
