#include "scenarios.h"

#include "smmuv3/machine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace iommuspec::solvers {
namespace {

constexpr uint64_t kSmmuOld = 0x42000000, kSmmuNew = 0x48000000, kSmmuEnd = 0x50000000;
constexpr uint64_t kVtdOld = 0x2000000, kVtdNew = 0x8000000, kVtdEnd = 0x10000000;

struct Steps {
  std::string text;
  int n = 0;
  void add(const std::string& s) { text += fmt::format("{}: {}\n", ++n, s); }
};

std::string head(const std::string& area, const Header& h, const std::vector<std::string>& clauses,
                 const std::string& features) {
  std::string t = fmt::format("{} {}\n\"{}\"\nclauses = {}\nfeatures = {}\n", area, h.id, h.title,
                              fmt::join(clauses, " "), features);
  return t;
}

std::string notes(const Header& h) {
  std::string t;
  for (const auto& n : h.notes)
    t += "# " + n + "\n";
  return t;
}

// The entry holding iova, as its index in `entries` (each `size` bytes), or -1.
int entry_of(const std::vector<uint64_t>& entries, uint64_t size, uint64_t iova) {
  for (size_t j = 0; j < entries.size(); ++j)
    if (iova >= entries[j] && iova - entries[j] < size) return int(j);
  return -1;
}

std::string access(const char* sid, uint64_t iova, uint64_t old_pa, uint64_t new_pa, bool fresh) {
  if (fresh) return fmt::format("dma sid={} iova={} -> ok pa={}", sid, hex(iova), hex(new_pa));
  return fmt::format("dma sid={} iova={} -> any outcomes=[{{pa={}}}, {{pa={}}}]", sid, hex(iova),
                     hex(old_pa), hex(new_pa));
}

} // namespace

std::string hex(uint64_t v) {
  return fmt::format("{:#x}", v);
}

std::string tlbi_record(const smmuv3::RangeTlbi& r) {
  return fmt::format("op=tlbi_nh_va asid=1 addr={} tg={} num={} scale={} ttl={} leaf=1",
                     hex(r.addr), r.tg, r.num, r.scale, r.ttl);
}

std::string smmuv3_queue_pin(const std::vector<smmuv3::RangeTlbi>& cmds) {
  for (size_t k = 0; k < cmds.size(); ++k) {
    const auto& r = cmds[k];
    const smmuv3::Command c = smmuv3::decode_command(
        smmuv3::encode(smmuv3::Command{smmuv3::CmdTlbiNhVa{.num = r.num,
                                                           .scale = r.scale,
                                                           .asid = 1,
                                                           .leaf = true,
                                                           .ttl = r.ttl,
                                                           .tg = r.tg,
                                                           .addr = r.addr}}));
    if (auto e = smmuv3::command_error(c, smmuv3::Features{}); !e.empty())
      return fmt::format("{} consumed={}", e, k);
  }
  return fmt::format("ok consumed={}", cmds.size() + 1);
}

std::string smmuv3_scenario(const SmmuRemap& s) {
  const uint64_t span = s.size * s.entries.size();
  if (kSmmuOld % s.size != 0 || kSmmuNew + span > kSmmuEnd || kSmmuOld + span > kSmmuNew) return {};
  const char* granule = s.tg == 1 ? "4k" : s.tg == 2 ? "16k" : "64k";
  std::string features = "smmuv3 stage1 range_inv";
  if (s.tg == 2) features += " granule16k";
  if (s.tg == 3) features += " granule64k";
  std::string t = head("smmuv3", s.h,
                       {"SMMUV3.TLBI.range", "SMMUV3.TLBI.NH_VA.scope", "SMMUV3.CACHE.stale",
                        "SMMUV3.SYNC.complete"},
                       features) +
                  notes(s.h);
  Steps st;
  st.add(fmt::format("table T stage=1 granule={} ia=48", granule));
  for (size_t j = 0; j < s.entries.size(); ++j)
    st.add(fmt::format("map T iova={} pa={} size={} perm=r|w", hex(s.entries[j]),
                       hex(kSmmuOld + j * s.size), hex(s.size)));
  st.add("cd sid=1 tt=T asid=1");
  st.add("ste sid=1 config=s1");
  st.add("cmdq cmds=[{op=cfgi_ste sid=1 leaf=1}, {op=sync}] -> ok consumed=2");
  for (uint64_t e : s.entries)
    st.add(fmt::format("unmap T iova={} size={}", hex(e), hex(s.size)));
  for (size_t j = 0; j < s.entries.size(); ++j)
    st.add(fmt::format("map T iova={} pa={} size={} perm=r|w", hex(s.entries[j]),
                       hex(kSmmuNew + j * s.size), hex(s.size)));
  std::vector<std::string> recs;
  for (const auto& c : s.cmds)
    recs.push_back("{" + c + "}");
  recs.push_back("{op=sync}");
  st.add(fmt::format("cmdq cmds=[{}] -> {}", fmt::join(recs, ", "), s.queue));
  for (const auto& c : s.checks) {
    const int j = entry_of(s.entries, s.size, c.iova);
    if (j < 0) return {};
    const uint64_t off = c.iova - s.entries[size_t(j)] + uint64_t(j) * s.size;
    st.add(access("1", c.iova, kSmmuOld + off, kSmmuNew + off, c.fresh));
  }
  return t + st.text;
}

std::string vtd_scenario(const VtdRemap& s) {
  constexpr uint64_t kPage = 0x1000;
  if (kVtdNew + kPage * s.entries.size() > kVtdEnd) return {};
  std::string features = s.first_stage ? "vtd scalable first_stage" : "vtd legacy second_stage";
  if (s.dev_tlb) features += " dev_tlb";
  std::string t = head("vtd", s.h, s.clauses, features) +
                  (s.first_stage ? "mode = scalable\n" : "mode = legacy\n") + notes(s.h);
  Steps st;
  st.add(fmt::format("table T stage={} levels=4", s.first_stage ? 1 : 2));
  for (size_t j = 0; j < s.entries.size(); ++j)
    st.add(fmt::format("map T iova={} pa={} size=0x1000", hex(s.entries[j]),
                       hex(kVtdOld + j * kPage)));
  if (s.first_stage) {
    st.add("context sid=0x0010");
    st.add("pasid sid=0x0010 pasid=0 pgtt=fs did=1 fs=T");
  } else {
    st.add(
        fmt::format("context sid=0x0010 did=1 tt={} ss=T", s.dev_tlb ? "dev_iotlb" : "translated"));
  }
  for (uint64_t e : s.entries)
    st.add(fmt::format("unmap T iova={} size=0x1000", hex(e)));
  for (size_t j = 0; j < s.entries.size(); ++j)
    st.add(fmt::format("map T iova={} pa={} size=0x1000", hex(s.entries[j]),
                       hex(kVtdNew + j * kPage)));
  std::vector<std::string> recs;
  for (const auto& d : s.descs)
    recs.push_back("{" + d + "}");
  st.add(fmt::format("invq descs=[{}] -> {}", fmt::join(recs, ", "), s.queue));
  for (const auto& c : s.checks) {
    const int j = entry_of(s.entries, kPage, c.iova);
    if (j < 0) return {};
    const uint64_t off = c.iova - s.entries[size_t(j)] + uint64_t(j) * kPage;
    st.add(access("0x0010", c.iova, kVtdOld + off, kVtdNew + off, c.fresh));
  }
  return t + st.text;
}

} // namespace iommuspec::solvers
