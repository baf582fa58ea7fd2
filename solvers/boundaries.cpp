// Boundary scenarios: for each invalidation encoding, Z3 finds inputs where coverage is
// tight (the range's first and last entries, the entry just past it, alignment boundaries,
// the largest NUM/SCALE, the largest AM before the fallback) under the model's own
// arithmetic; each becomes a scenario whose pins are what the model allows: the entries the
// encoding covers fresh, the one just outside it either page.
#include "props.h"
#include "scenarios.h"

#include <algorithm>
#include <fmt/format.h>

namespace iommuspec::solvers {
namespace {

constexpr uint64_t kIa = uint64_t(1) << 48; // the scenarios' input address width
constexpr uint64_t kMamv = 18;              // the scenarios' VT-d unit

// ---- SMMUv3: one range TLBI ------------------------------------------------------------------

struct RangeAsk {
  std::string id, what;
  uint64_t tg, scale, num, ttl;
};

// Z3 picks Addr: aligned for TTL (range_base_aligned), the range and the entry past it within
// 48 bits when there is room, and nothing else asked. Entries: the first, the last, the next.
std::optional<ScenarioFile> range_boundary(const RangeAsk& a, const Options& o) {
  z3::context c;
  Query q(c, o);
  const z3::expr addr = q.input("addr");
  const z3::expr tg = k64(c, a.tg), scale = k64(c, a.scale), num = k64(c, a.num),
                 ttl = k64(c, a.ttl);
  const z3::expr level = z3::ite(ttl == 0, k64(c, 3), ttl);
  const z3::expr esize = z3::shl(k64(c, 1), smmuv3::tg_level_shift(tg, level));
  const auto span = smmuv3::tlbi_span(addr, tg, scale, num, c.bool_val(true));
  q.require(smmuv3::range_base_aligned(addr, tg, ttl) && z3::ult(span.lo, span.hi + 1));
  const z3::expr next = (span.hi & ~(esize - 1)) + esize; // the entry past the last one
  const z3::expr room = z3::ugt(next, span.hi) && z3::ule(next + esize, k64(c, kIa));
  const z3::expr fits = z3::ult(span.hi, k64(c, kIa));
  q.prefer(room);
  q.prefer(z3::ugt(addr, 0));
  const auto w = q.find(fits);
  if (w.verdict != Verdict::counterexample) return std::nullopt;
  const uint64_t first = q.value(addr), last = q.value(span.hi), es = q.value(esize);
  SmmuRemap s;
  s.h.id = "boundary-" + a.id;
  s.h.title = "Boundary found by `iommuspec prove --boundaries`: " + a.what;
  s.h.notes = {"IHI 0070 4.4.1.1: Range = ((NUM+1)*2^SCALE)*Translation_Granule_Size, Address <= "
               "A < Address + Range; TTL names the leaves' level.",
               fmt::format("Z3 (model range.h tlbi_span, range_base_aligned): Addr={} covers up "
                           "to {}.",
                           hex(first), hex(last))};
  s.tg = uint8_t(a.tg);
  s.size = es;
  const uint64_t last_entry = last & ~(es - 1);
  s.entries = {first};
  if (last_entry != first) s.entries.push_back(last_entry);
  s.checks = {{first, true}, {last & ~uint64_t(7), true}};
  if (q.holds(room)) {
    s.entries.push_back(last_entry + es);
    s.checks.push_back({last_entry + es, false});
  }
  const smmuv3::RangeTlbi cmd{first, uint8_t(a.tg), uint8_t(a.scale), uint8_t(a.num),
                              uint8_t(a.ttl)};
  s.cmds = {tlbi_record(cmd)};
  s.queue = smmuv3_queue_pin({cmd});
  auto t = smmuv3_scenario(s);
  if (t.empty()) return std::nullopt;
  return ScenarioFile{s.h.id, t};
}

// ---- SMMUv3: the splitter -------------------------------------------------------------------

// The model's splitter (4KB, TTL 0) for a range Z3 picks under `cond`: the range's first and
// last pages fresh, the pages just outside it either page.
std::optional<ScenarioFile> split_boundary(
    const std::string& id, const std::string& what, const Options& o,
    const std::function<z3::expr(const z3::expr&, const z3::expr&, const Unrolled&)>& cond) {
  z3::context c;
  Query q(c, o);
  const z3::expr iova = q.input("iova"), size = q.input("size");
  const z3::expr tg = k64(c, 1), ttl = k64(c, 0);
  q.require(z3::uge(iova, 0x1000) && z3::uge(size, 1) &&
            z3::ule(iova + size + 0x1000, k64(c, kIa)));
  const Unrolled u = unroll(model_range_splitter(), iova, size, tg, ttl, 8);
  const auto w = q.find(cond(iova, size, u) && u.left == 0);
  if (w.verdict != Verdict::counterexample) return std::nullopt;
  const uint64_t i = q.value(iova), n = q.value(size);
  const uint64_t first = i & ~uint64_t(0xfff), last = (i + n - 1) & ~uint64_t(0xfff);
  const auto cmds = smmuv3::range_tlbi_commands(i, n, 1);
  SmmuRemap s;
  s.h.id = "boundary-" + id;
  s.h.title = "Boundary found by `iommuspec prove --boundaries`: " + what;
  s.h.notes = {fmt::format("The model's splitter (smmuv3/range.h range_tlbi_commands) for iova={} "
                           "size={} (4KB, no TTL): {} command(s).",
                           hex(i), hex(n), cmds.size())};
  s.entries = {first - 0x1000, first};
  if (last != first) s.entries.push_back(last);
  s.entries.push_back(last + 0x1000);
  for (const auto& c1 : cmds)
    s.cmds.push_back(tlbi_record(c1));
  s.queue = smmuv3_queue_pin(cmds);
  s.checks = {{first - 0x1000, false}, {first, true}, {last, true}, {last + 0x1000, false}};
  auto t = smmuv3_scenario(s);
  if (t.empty()) return std::nullopt;
  return ScenarioFile{s.h.id, t};
}

// ---- VT-d ---------------------------------------------------------------------------------------

// Pages (4K) and what the model allows after the descriptors: fresh or either page.
struct VtdAsk {
  std::string id, what;
  std::vector<std::string> notes, descs, clauses;
  bool first_stage = false, dev_tlb = false;
  std::vector<Check> checks;
};

std::optional<ScenarioFile> vtd_boundary(const VtdAsk& a) {
  VtdRemap v;
  v.h.id = "boundary-" + a.id;
  v.h.title = "Boundary found by `iommuspec prove --boundaries`: " + a.what;
  v.h.notes = a.notes;
  v.first_stage = a.first_stage;
  v.dev_tlb = a.dev_tlb;
  for (const auto& c : a.checks)
    if (std::find(v.entries.begin(), v.entries.end(), c.iova) == v.entries.end())
      v.entries.push_back(c.iova);
  v.descs = a.descs;
  v.queue = fmt::format("ok consumed={}", a.descs.size());
  v.checks = a.checks;
  v.clauses = a.clauses;
  auto t = vtd_scenario(v);
  if (t.empty()) return std::nullopt;
  return ScenarioFile{v.h.id, t};
}

// Linux's one block (vtd/range.h psi_block, MAMV 18) for a range Z3 picks under `cond`: the
// range's pages and the block's edges fresh, the page past the block either page (or, when
// the fallback is domain-selective, every page fresh).
std::optional<ScenarioFile>
psi_boundary(const std::string& id, const std::string& what, const Options& o,
             const std::function<z3::expr(const vtd::PsiBlock<z3::expr>&, const z3::expr&)>& cond) {
  z3::context c;
  Query q(c, o);
  const z3::expr start = q.input("start"), last = q.input("last");
  q.require(z3::ule(start, last) && (start & 0xfff) == 0 && (last & 0xfff) == 0xfff &&
            z3::ult(last, k64(c, uint64_t(1) << 47)) && z3::uge(start, 0x1000));
  const auto b = vtd::psi_block(start, last);
  const z3::expr pages = z3::lshr(last, 12) - z3::lshr(start, 12) + 1;
  if (q.find(cond(b, pages)).verdict != Verdict::counterexample) return std::nullopt;
  const uint64_t s0 = q.value(start), l0 = q.value(last);
  const auto bu = vtd::psi_block<uint64_t>(s0, l0);
  const bool wide = !vtd::psi_fits<uint64_t>(bu, kMamv);
  const uint64_t bend = bu.addr + (uint64_t(1) << (bu.mask + 12)); // past the block
  VtdAsk a;
  a.id = id;
  a.what = what;
  a.clauses = {"VTD.INV.IOTLB.page_scope", "VTD.INV.IOTLB.am", "VTD.INV.IOTLB.domain",
               "VTD.INV.WAIT.complete"};
  a.notes = {fmt::format("Linux's encoder (vtd/range.h psi_block; cache.c "
                         "calculate_psi_aligned_address) for [{}, {}]: block {} AM {}{}.",
                         hex(s0), hex(l0), hex(bu.addr), bu.mask,
                         wide ? ", above MAMV 18: domain-selective (cache_tag_flush_iotlb)" : "")};
  a.descs = {wide ? "op=iotlb g=domain did=1"
                  : fmt::format("op=iotlb g=page did=1 addr={} am={}", hex(bu.addr), bu.mask),
             "op=wait"};
  a.checks = {{s0, true}, {l0 & ~uint64_t(0xfff), true}};
  if (!wide) {
    a.checks.push_back({bu.addr, true});
    a.checks.push_back({bend - 0x1000, true});
  }
  if (bend + 0x1000 <= kIa) a.checks.push_back({bend, wide});
  return vtd_boundary(a);
}

// The model's exact split (vtd/range.h block_am, viommu.cpp) of pages Z3 picks: every page of
// the range fresh at its edges, the pages around it either page.
std::optional<ScenarioFile> split_blocks_boundary(const Options& o) {
  z3::context c;
  Query q(c, o);
  const z3::expr pfn = q.input("pfn"), npages = q.input("npages");
  const z3::expr mamv = k64(c, kMamv);
  const z3::expr am0 = vtd::block_am(pfn, npages, mamv);
  const z3::expr next = pfn + z3::shl(k64(c, 1), am0);
  const z3::expr am1 = vtd::block_am(next, npages - z3::shl(k64(c, 1), am0), mamv);
  // A misaligned first page, then a block of the largest size MAMV allows, with few blocks.
  q.require(z3::ugt(pfn, 1) && am0 == 0 && am1 == int(kMamv) &&
            z3::uge(npages, k64(c, (uint64_t(1) << kMamv) + 2)) &&
            z3::ule(npages, k64(c, (uint64_t(1) << kMamv) + 4)) &&
            z3::ult(pfn + npages, k64(c, uint64_t(1) << 35)));
  if (q.find(c.bool_val(true)).verdict != Verdict::counterexample) return std::nullopt;
  uint64_t p = q.value(pfn), n = q.value(npages);
  const uint64_t first = p << 12, last = (p + n - 1) << 12;
  VtdAsk a;
  a.id = "piotlb-split-edges";
  a.what = "the exact split of a range into PASID-based blocks (AM <= MAMV) covers its first "
           "and last page, not the pages around it.";
  a.clauses = {"VTD.INV.PIOTLB.page_scope", "VTD.INV.PIOTLB.am", "VTD.INV.WAIT.complete"};
  a.first_stage = true;
  size_t blocks = 0;
  while (n > 0) {
    const uint64_t am = vtd::block_am<uint64_t>(p, n, kMamv);
    a.descs.push_back(
        fmt::format("op=piotlb g=page_in_pasid did=1 pasid=0 addr={} am={}", hex(p << 12), am));
    p += uint64_t(1) << am;
    n -= uint64_t(1) << am;
    ++blocks;
  }
  a.descs.push_back("op=wait");
  a.notes = {fmt::format("vtd/range.h block_am (viommu.cpp convert_s1_invalidate's split) for "
                         "[{}, {}]: {} blocks.",
                         hex(first), hex(last + 0xfff), blocks)};
  a.checks = {{first - 0x1000, false}, {first, true}, {last, true}, {last + 0x1000, false}};
  return vtd_boundary(a);
}

// The device-TLB size encoding (vtd/range.h dev_tlb_addr) of 2^order pages at an address Z3
// picks: the encoded range's first and last page fresh, the page past it either page.
std::optional<ScenarioFile> devtlb_boundary(uint64_t order, const Options& o) {
  z3::context c;
  Query q(c, o);
  const z3::expr addr = q.input("addr");
  const z3::expr ord = k64(c, order);
  const auto span = vtd::dev_tlb_span(vtd::dev_tlb_addr(addr, ord), ord != 0);
  q.require((addr & (z3::shl(k64(c, 1), ord + 12) - 1)) == 0 && z3::ugt(addr, 0) &&
            z3::ult(span.hi + 0x1000, k64(c, uint64_t(1) << 40)));
  if (q.find(span.lo == addr).verdict != Verdict::counterexample) return std::nullopt;
  const uint64_t at = q.value(addr);
  const uint64_t qw1 = vtd::dev_tlb_addr<uint64_t>(at, order);
  const uint64_t end = at + (uint64_t(1) << (order + 12));
  VtdAsk a;
  a.id = fmt::format("devtlb-order-{}", order);
  a.what = fmt::format("a device-TLB invalidation of 2^{} pages covers its first and last page, "
                       "not the page past it.",
                       order);
  a.notes = {fmt::format("vtd/range.h dev_tlb_addr (iommu.h qi_desc_dev_iotlb_pasid) of 2^{} "
                         "pages at {}: ADDR {} S={}.",
                         order, hex(at), hex(qw1), int(order != 0))};
  a.descs = {"op=iotlb g=global", "op=wait",
             fmt::format("op=dev_tlb sid=0x0010 addr={} s={}", hex(qw1), int(order != 0)),
             "op=wait"};
  a.clauses = {"VTD.INV.DEVTLB.range", "VTD.CACHE.devtlb", "VTD.INV.WAIT.complete"};
  a.dev_tlb = true;
  a.checks = {{at, true}, {end - 0x1000, true}, {end, false}};
  return vtd_boundary(a);
}

} // namespace

std::vector<ScenarioFile> boundary_scenarios(const Options& o) {
  std::vector<std::optional<ScenarioFile>> all = {
      range_boundary({"range-tlbi-max-num",
                      "NUM = 31 (SCALE 0, 4KB, TTL 3) covers 32 pages: the "
                      "first and last fresh, the next may stay stale.",
                      1, 0, 31, 3},
                     o),
      range_boundary({"range-tlbi-max-scale",
                      "SCALE = 31 (NUM 0, 4KB, TTL 3) covers 2^31 "
                      "pages: the first and last fresh, the next may "
                      "stay stale.",
                      1, 31, 0, 3},
                     o),
      range_boundary({"range-tlbi-max-num-scale",
                      "NUM = SCALE = 31 (4KB, TTL 3) covers the "
                      "whole 48-bit space: the first and last page "
                      "fresh.",
                      1, 31, 31, 3},
                     o),
      range_boundary({"range-tlbi-ttl2-blocks",
                      "TTL = 2 (4KB) at a 2MB-aligned Address, NUM = "
                      "1, SCALE = 9: two 2MB blocks fresh, the next "
                      "may stay stale.",
                      1, 9, 1, 2},
                     o),
      range_boundary({"range-tlbi-16k",
                      "16KB granule, NUM = 3, SCALE = 1: the first and last "
                      "16KB page fresh, the next may stay stale.",
                      2, 1, 3, 3},
                     o),
      range_boundary({"range-tlbi-64k",
                      "64KB granule, NUM = 31, SCALE = 2: the first and last "
                      "64KB page fresh, the next may stay stale.",
                      3, 2, 31, 3},
                     o),
      split_boundary(
          "range-split-eight-commands",
          "a range whose page count needs the most commands (8) is covered from its "
          "first to its last page, not beyond.",
          o,
          [](const z3::expr&, const z3::expr&, const Unrolled& u) { return u.cmds.back().valid; }),
      split_boundary("range-split-page-rounding",
                     "an unaligned 2-byte range across a page boundary invalidates both pages.", o,
                     [](const z3::expr& iova, const z3::expr& size, const Unrolled&) {
                       return (iova & 0xfff) == 0xfff && size == 2;
                     }),
      split_boundary("range-split-scale-clamp",
                     "2^32 pages (16 TiB): SCALE stops at 31 (5-bit field) and NUM takes the "
                     "rest; the first and last page are covered.",
                     o,
                     [](const z3::expr& iova, const z3::expr& size, const Unrolled&) {
                       return size == k64(size.ctx(), uint64_t(1) << 44) && (iova & 0xfff) == 0;
                     }),
      split_boundary("range-split-one-page",
                     "one page without TTL is sent as a single-address TLBI (TG = 0), not the "
                     "Reserved NUM = SCALE = TTL = 0.",
                     o,
                     [](const z3::expr& iova, const z3::expr& size, const Unrolled&) {
                       return size == 0x1000 && (iova & 0xfff) == 0;
                     }),
      psi_boundary("psi-am-largest",
                   "two pages across a 2^17-page boundary need AM = 18 = MAMV: "
                   "the whole 1 GiB block is invalidated, not the page past it.",
                   o,
                   [](const vtd::PsiBlock<z3::expr>& b, const z3::expr& pages) {
                     return b.mask == int(kMamv) && pages == 2;
                   }),
      psi_boundary("psi-am-fallback",
                   "two pages across a 2^18-page boundary need AM = 19 > MAMV: "
                   "the invalidation falls back to domain-selective.",
                   o,
                   [](const vtd::PsiBlock<z3::expr>& b, const z3::expr& pages) {
                     return b.mask == int(kMamv) + 1 && pages == 2;
                   }),
      psi_boundary("psi-am-aligned-exact",
                   "an aligned 4-page range takes AM = 2 exactly: the "
                   "page past it may stay stale.",
                   o,
                   [](const vtd::PsiBlock<z3::expr>& b, const z3::expr& pages) {
                     return b.mask == 2 && pages == 4;
                   }),
      split_blocks_boundary(o),
      devtlb_boundary(1, o),
      devtlb_boundary(9, o),
  };
  std::vector<ScenarioFile> out;
  for (auto& f : all)
    if (f) out.push_back(std::move(*f));
  return out;
}

} // namespace iommuspec::solvers
