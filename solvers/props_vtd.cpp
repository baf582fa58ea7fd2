// VT-d page-selective invalidation with an address mask: the one-block encoder Linux uses
// (vtd/range.h psi_block, with the model's fallback), the exact split of the vIOMMU layer
// (block_am, viommu.cpp) and the device-TLB size encoding (dev_tlb_addr), each against the
// model's decoders (am_span, dev_tlb_span: what machine.cpp says a descriptor covers).
#include "props.h"
#include "scenarios.h"

#include <fmt/format.h>

namespace iommuspec::solvers {
namespace {

constexpr const char* kPsi = "vtd.psi_am.covers";
constexpr const char* kSplit = "vtd.piotlb_split.covers";
constexpr const char* kDevTlb = "vtd.devtlb_size.covers";
constexpr uint64_t kPfnLimit = uint64_t(1) << 52;
constexpr uint64_t kMamv = 18; // the scenarios' unit (vtd::Features, QEMU VTD_MAMV)

z3::expr in_span(const arith::SpanOf<z3::expr>& s, const z3::expr& a) {
  return z3::ule(s.lo, a) && z3::ule(a, s.hi);
}

// The descriptor record of an encoder's invalidation.
std::string psi_record(const PsiEncoder& e, bool wide, uint64_t addr, uint64_t am) {
  if (e.pasid_based)
    return wide ? "op=piotlb g=all_in_pasid did=1 pasid=0"
                : fmt::format("op=piotlb g=page_in_pasid did=1 pasid=0 addr={} am={}", hex(addr),
                              am);
  return wide ? "op=iotlb g=domain did=1"
              : fmt::format("op=iotlb g=page did=1 addr={} am={}", hex(addr), am);
}

// An encoder's counterexample as a scenario (the model's unit: MAMV 18): the page its
// descriptor leaves stale.
void psi_scenario(Result& r, const PsiEncoder& e) {
  const uint64_t start = value_of(r, "start"), last = value_of(r, "last"),
                 mamv = value_of(r, "mamv"), page = value_of(r, "page") & ~uint64_t(0xfff);
  if (mamv != kMamv || page >= (uint64_t(1) << 48)) {
    r.detail += " (no scenario: the scenarios' unit has MAMV 18 and 48-bit addresses)";
    return;
  }
  const auto d = e.u(start, last, mamv);
  VtdRemap s;
  s.h.id = "prove-psi-am-" + e.name;
  s.h.title = "Found by `iommuspec prove` (vtd.psi_am.covers, encoder " + e.name +
              "): the invalidation issued for a range must leave each of its pages fresh.";
  s.h.notes = {fmt::format("Encoder '{}' for [{}, {}] with MAMV {}: {}.", e.name, hex(start),
                           hex(last), mamv, psi_record(e, d.wide, d.addr, d.am)),
               fmt::format("The page at {} stays stale.", hex(page))};
  s.first_stage = e.pasid_based;
  s.entries = {page};
  s.descs = {psi_record(e, d.wide, d.addr, d.am), "op=wait"};
  // machine.cpp: AM > MAMV is IQE for an IOTLB descriptor, covers nothing for a PASID-based one.
  s.queue = !d.wide && d.am > kMamv && !e.pasid_based ? "IQE consumed=0" : "ok consumed=2";
  s.checks = {{page, true}};
  s.clauses = e.pasid_based ? std::vector<std::string>{"VTD.INV.PIOTLB.page_scope",
                                                       "VTD.INV.PIOTLB.am", "VTD.INV.WAIT.complete"}
                            : std::vector<std::string>{"VTD.INV.IOTLB.page_scope",
                                                       "VTD.INV.IOTLB.am", "VTD.INV.WAIT.complete"};
  if (auto t = vtd_scenario(s); !t.empty()) r.files.push_back({s.h.id, t});
}

Result run_psi(const PsiEncoder& e, const Options& o) {
  Stopwatch sw;
  z3::context c;
  Query q(c, o);
  const z3::expr start = q.input("start"), last = q.input("last"), mamv = q.input("mamv"),
                 page = q.input("page");
  // Any range of the 64-bit space; CAP.MAMV is 6 bits; `page` any byte of its pages.
  q.require(z3::ule(start, last) && z3::ule(mamv, 63));
  q.require(z3::ule(start & ~k64(c, 0xfff), page) && z3::ule(page, last | 0xfff));
  q.prefer(mamv == int(kMamv));
  q.prefer(z3::ult(page, k64(c, uint64_t(1) << 47)));
  const auto d = e.z(start, last, mamv);
  const auto span = vtd::am_span(d.addr, d.am);
  // machine.cpp: a page-selective descriptor with AM > MAMV covers nothing (IQE for the IOTLB
  // form); the domain- or PASID-selective form covers every page of the domain.
  const z3::expr covered = d.wide || (z3::ule(d.am, mamv) && in_span(span, page));
  const auto out = q.prove(covered);
  Result r = result_of(kPsi, e.name, "z3", out);
  if (out.verdict == Verdict::counterexample) {
    r.detail = q.holds(z3::ule(d.am, mamv))
                   ? fmt::format("AM {} at {} misses the page at {}", q.value(d.am),
                                 hex(q.value(d.addr)), hex(q.value(page)))
                   : fmt::format("AM {} > MAMV {} (undefined: the model takes it as covering "
                                 "nothing) and no fallback",
                                 q.value(d.am), q.value(mamv));
    psi_scenario(r, e);
  } else if (out.verdict == Verdict::proved) {
    // Over-invalidation (block pages minus range pages) when page-selective: at most 2^MAMV - 2
    // for a 2-page range; and less than the range itself when its first page is aligned to
    // the range's size rounded up to a power of two.
    const z3::expr pages = z3::lshr(last, 12) - z3::lshr(start, 12) + 1;
    const z3::expr block = z3::shl(k64(c, 1), d.am);
    const z3::expr rounded = z3::shl(k64(c, 1), arith::Ops<z3::expr>::bit_width(pages - 1));
    const z3::expr aligned = (z3::lshr(start, 12) & (rounded - 1)) == 0;
    const auto bound =
        q.prove(z3::implies(!d.wide, (pages == 1 && block == 1) ||
                                         z3::ule(block - pages, z3::shl(k64(c, 1), mamv) - 2)));
    const auto small = q.prove(z3::implies(!d.wide && aligned, z3::ult(block, 2 * pages)));
    const auto worst =
        q.find(!d.wide && pages == 2 && block == z3::shl(k64(c, 1), mamv) && mamv == int(kMamv));
    r.detail = fmt::format(
        "every page of [start, last] is in the aligned 2^AM-page block (AM <= MAMV) or the "
        "encoder falls back to a domain-selective invalidation; {}{}{}",
        bound.verdict == Verdict::proved ? "over-invalidation <= 2^MAMV - 2 pages"
                                         : "over-invalidation bound not proved",
        worst.verdict == Verdict::counterexample
            ? fmt::format(" (tight: [{}, {}] takes AM {})", hex(value_of(worst.values, "start")),
                          hex(value_of(worst.values, "last")), kMamv)
            : "",
        small.verdict == Verdict::proved ? "; < the range itself when its first page is aligned "
                                           "to its size rounded up to a power of two"
                                         : "");
  }
  r.seconds = sw.seconds();
  return r;
}

// ---- The exact split (convert_s1_invalidate), by induction on its step ---------------------

Result run_split(const BlockSplitter& s, const Options& o) {
  Stopwatch sw;
  z3::context c;
  Query q(c, o);
  const z3::expr pfn = q.input("pfn"), npages = q.input("npages"), mamv = q.input("mamv");
  // Any state of the loop in viommu.cpp blocks(): pages left, within the 64-bit space (the
  // loop starts with npages clamped to 2^52 - pfn).
  q.require(z3::uge(npages, 1) && z3::ule(pfn, k64(c, kPfnLimit)) &&
            z3::ule(npages, k64(c, kPfnLimit) - pfn) && z3::ule(mamv, 63));
  q.prefer(mamv == int(kMamv));
  const z3::expr am = s.z(pfn, npages, mamv);
  const z3::expr blk = z3::shl(k64(c, 1), am);
  const z3::expr first = z3::shl(pfn, 12), after = z3::shl(pfn + blk, 12);
  // The descriptors the model builds for the block (viommu.cpp promise): PASID-based IOTLB
  // (addr = pfn << 12, AM) and PASID-based device-TLB (dev_tlb_addr, S = AM != 0).
  const auto iotlb = vtd::am_span(first, am);
  const auto devtlb = vtd::dev_tlb_span(vtd::dev_tlb_addr(first, am), am != 0);
  const z3::expr fits = z3::ule(am, mamv) && z3::ult(am, 64) && z3::ule(blk, npages);
  const z3::expr natural = (pfn & (blk - 1)) == 0;
  const z3::expr exact_iotlb = iotlb.lo == first && iotlb.hi == after - 1;
  const z3::expr exact_devtlb = devtlb.lo == first && devtlb.hi == after - 1;
  const auto out = q.prove(fits && natural && exact_iotlb && exact_devtlb);
  Result r = result_of(kSplit, s.name, "z3, induction on the split's step", out);
  if (out.verdict == Verdict::proved) {
    r.detail = "each step takes a naturally aligned block of 2^AM pages within the pages left, "
               "AM <= MAMV, and the PASID-based IOTLB and device-TLB descriptors built for it "
               "cover exactly that block; the next step starts where it ends, so the blocks "
               "tile the range exactly (over-invalidation 0) when the loop ends, i.e. up to "
               "kMaxBlocks = 4096 blocks (beyond them the model states nothing: weaker reading)";
  } else if (out.verdict == Verdict::counterexample) {
    r.detail = !q.holds(fits)
                   ? fmt::format("AM {} does not fit (block of {} pages, {} left, "
                                 "MAMV {})",
                                 q.value(am), q.value(blk), q.value(npages), q.value(mamv))
               : !q.holds(natural) ? fmt::format("the block of 2^{} pages at pfn {} is not aligned",
                                                 q.value(am), hex(q.value(pfn)))
                                   : std::string("a descriptor does not cover exactly its block");
    r.detail += " (an over-covering split fails no target: no scenario)";
  }
  r.seconds = sw.seconds();
  return r;
}

// ---- The device-TLB size encoding ----------------------------------------------------------

void devtlb_scenario(Result& r, const DevTlbEncoder& e, uint64_t qw1, bool s, uint64_t page) {
  page &= ~uint64_t(0xfff);
  if (page >= (uint64_t(1) << 48)) {
    r.detail += " (no scenario: the page is beyond 48 bits)";
    return;
  }
  VtdRemap v;
  v.h.id = "prove-devtlb-size-" + e.name;
  v.h.title = "Found by `iommuspec prove` (vtd.devtlb_size.covers, encoder " + e.name +
              "): a device-TLB invalidation must cover the range it encodes.";
  v.h.notes = {fmt::format("Encoder '{}' writes ADDR {} S={}; the page at {} stays in the "
                           "device TLB.",
                           e.name, hex(qw1), int(s), hex(page))};
  v.dev_tlb = true;
  v.entries = {page};
  v.descs = {"op=iotlb g=global", "op=wait",
             fmt::format("op=dev_tlb sid=0x0010 addr={} s={}", hex(qw1), int(s)), "op=wait"};
  v.queue = "ok consumed=4";
  v.checks = {{page, true}};
  v.clauses = {"VTD.INV.DEVTLB.range", "VTD.CACHE.devtlb", "VTD.INV.WAIT.complete"};
  if (auto t = vtd_scenario(v); !t.empty()) r.files.push_back({v.h.id, t});
}

Result run_devtlb(const DevTlbEncoder& e, const Options& o) {
  Stopwatch sw;
  z3::context c;
  Query q(c, o);
  // (1) 2^order pages at an aligned addr decode to exactly those pages.
  const z3::expr addr = q.input("addr"), order = q.input("order");
  // (2) the descriptor Linux sends for [start, last] (cache_tag_flush_devtlb_psi with
  // calculate_psi_aligned_address's block, no MAMV limit) covers every page of it.
  const z3::expr start = q.input("start"), last = q.input("last"), page = q.input("page");
  q.require(z3::ule(order, 52) && (addr & (z3::shl(k64(c, 1), order + 12) - 1)) == 0);
  q.require(z3::ule(start, last) && z3::ule(start & ~k64(c, 0xfff), page) &&
            z3::ule(page, last | 0xfff));
  q.prefer(z3::ult(page, k64(c, uint64_t(1) << 47)));
  const auto one = vtd::dev_tlb_span(e.z(addr, order), order != 0);
  const z3::expr exact = one.lo == addr && one.hi == addr + (z3::shl(k64(c, 1), order + 12) - 1);
  const auto b = vtd::psi_block(start, last);
  const auto two = vtd::dev_tlb_span(e.z(b.addr, b.mask), b.mask != 0);
  const z3::expr covered = in_span(two, page);
  const auto out = q.prove(exact && covered);
  Result r = result_of(kDevTlb, e.name, "z3", out);
  if (out.verdict == Verdict::proved) {
    r.detail = "2^order pages at an aligned address (order 0..52) decode to exactly those pages; "
               "the descriptor for any [start, last] (Linux's one block) covers every page of it";
  } else if (out.verdict == Verdict::counterexample) {
    const bool ex = q.holds(exact);
    const uint64_t qa = ex ? q.value(b.addr) : q.value(addr);
    const uint64_t qo = ex ? q.value(b.mask) : q.value(order);
    const uint64_t qw1 = e.u(qa, qo);
    const auto got = vtd::dev_tlb_span<uint64_t>(qw1, qo != 0);
    const uint64_t want_last = qa + ((qo + 12 >= 64 ? 0 : uint64_t(1) << (qo + 12)) - 1);
    const uint64_t miss = ex ? q.value(page) : got.hi < want_last ? want_last : qa;
    r.detail = fmt::format("{} pages at {} encode as ADDR {} S={}, which covers [{}, {}]",
                           hex(qo >= 64 ? 0 : uint64_t(1) << qo), hex(qa), hex(qw1), int(qo != 0),
                           hex(got.lo), hex(got.hi));
    devtlb_scenario(r, e, qw1, qo != 0, miss);
  }
  r.seconds = sw.seconds();
  return r;
}

} // namespace

Property psi_am_covers(PsiEncoder e) {
  return {kPsi,
          "for every [start, last] of the 64-bit space and every MAMV, the one page-selective "
          "invalidation (or the domain-selective fallback) covers every page of it",
          [e](const Options& o) { return run_psi(e, o); }};
}

Property piotlb_split_covers(BlockSplitter s) {
  return {kSplit,
          "convert_s1_invalidate's PASID-based blocks cover exactly the requested pages, each "
          "within MAMV",
          [s](const Options& o) { return run_split(s, o); }};
}

Property devtlb_size_covers(DevTlbEncoder e) {
  return {kDevTlb,
          "the device-TLB size encoding decodes to exactly the pages encoded, and covers Linux's "
          "block for any range",
          [e](const Options& o) { return run_devtlb(e, o); }};
}

} // namespace iommuspec::solvers
