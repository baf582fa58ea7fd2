// SMMUv3 range invalidation (Arm IHI 0070 4.4.1.1): the decoder (what a TLBI by address
// covers, smmuv3/range.h tlbi_span, range_base_aligned) against the text, and the splitter
// (range_tlbi_begin / range_tlbi_next) against the decoder.
#include "props.h"
#include "scenarios.h"

#include <fmt/format.h>

namespace iommuspec::solvers {
namespace {

constexpr const char* kSound = "smmuv3.range_tlbi.sound";
constexpr const char* kSplit = "smmuv3.range_split.covers";
// Commands unrolled: enough for every input within the widths below (proved: nothing is left).
constexpr size_t kUnroll = 8;

// [A] 4.4.1.1, 64-bit descriptors: the Address bits that must be zero for TG and TTL (else
// "the range of addresses that is invalidated is UNPREDICTABLE"), as the text lists them:
// 4KB TTL=01 [29:12], 10 [20:12]; 16KB 01 [35:12] (the IDR5.DS = 1 row, which machine.cpp
// reads), 10 [24:12], 11/00 [13:12]; 64KB 01 [41:12], 10 [28:12], 11/00 [15:12].
z3::expr spec_alignment_mask(z3::context& c, const z3::expr& tg, const z3::expr& ttl) {
  auto bits = [&c](unsigned hi) {
    return k64(c, ((uint64_t(1) << (hi + 1)) - 1) & ~uint64_t(0xfff));
  };
  const z3::expr t4k = z3::ite(ttl == 1, bits(29), z3::ite(ttl == 2, bits(20), k64(c, 0)));
  const z3::expr t16k = z3::ite(ttl == 1, bits(35), z3::ite(ttl == 2, bits(24), bits(13)));
  const z3::expr t64k = z3::ite(ttl == 1, bits(41), z3::ite(ttl == 2, bits(28), bits(15)));
  return z3::ite(tg == 1, t4k, z3::ite(tg == 2, t16k, t64k));
}

// The input address width: 48 bits (4KB, 16KB), 52 (64KB) without LPA2 (IDR5.DS = 0).
z3::expr width_limit(z3::context& c, const z3::expr& tg) {
  return z3::ite(tg == 3, k64(c, uint64_t(1) << 52), k64(c, uint64_t(1) << 48));
}
z3::expr granule(z3::context& c, const z3::expr& tg) {
  return z3::shl(k64(c, 1), smmuv3::tg_granule_shift(tg));
}
// The block of TTL's level (TTL 0: the granule), as a mask of the bits below it.
z3::expr ttl_block_mask(z3::context& c, const z3::expr& tg, const z3::expr& ttl) {
  const z3::expr lvl = z3::ite(ttl == 0, k64(c, 3), ttl);
  return z3::shl(k64(c, 1), smmuv3::tg_level_shift(tg, lvl)) - 1;
}

// The architectural last byte of a TLBI by address: [A] "Address <= A < Address + Range",
// Range = ((NUM+1)*2^SCALE)*granule, computed without wrapping; past 2^64 the address space
// ends it ("The Address is not considered to 'wrap' on overflow").
uint64_t arch_last(uint64_t addr, uint64_t tg, uint64_t scale, uint64_t num, bool ril) {
  if (tg == 0 || !ril) return addr;
  const uint64_t len = (num + 1) << (scale + 10 + 2 * tg); // at most 2^52
  return len - 1 > ~addr ? ~uint64_t(0) : addr + (len - 1);
}

// A decoder's counterexample as a scenario: the range's first and last pages must be fresh
// after the command (on the model they are; a target with this decoder's mistake fails).
void sound_scenario(Result& r, const SpanDecoder& d) {
  const uint64_t addr = value_of(r, "addr"), tg = value_of(r, "tg"), scale = value_of(r, "scale"),
                 num = value_of(r, "num"), ttl = value_of(r, "ttl");
  const bool ril = value_of(r, "ril") != 0;
  const auto got = d.u(addr, tg, scale, num, ril);
  const uint64_t last = arch_last(addr, tg, scale, num, ril);
  if (!ril || tg == 0 || (ttl != 0 && ttl != 3) || got.hi >= last || last >= (uint64_t(1) << 48) ||
      smmuv3::range_reserved<uint64_t>(tg, num, scale, ttl)) {
    r.detail += " (no scenario: only a decoder that covers less than the range, with page "
                "entries within 48 bits, makes one)";
    return;
  }
  const uint64_t g = uint64_t(1) << smmuv3::tg_granule_shift<uint64_t>(tg);
  const smmuv3::RangeTlbi cmd{addr, uint8_t(tg), uint8_t(scale), uint8_t(num), uint8_t(ttl)};
  SmmuRemap s;
  s.h.id = "prove-range-tlbi-" + d.name;
  s.h.title = "Found by `iommuspec prove` (smmuv3.range_tlbi.sound, decoder " + d.name +
              "): a range TLBI must leave its last page fresh.";
  s.h.notes = {"IHI 0070 4.4.1.1: Range = ((NUM+1)*2^SCALE)*Translation_Granule_Size, "
               "Address <= A < Address + Range.",
               fmt::format("The decoder '{}' covers up to {} instead of {}.", d.name, hex(got.hi),
                           hex(last))};
  s.tg = uint8_t(tg);
  s.size = g;
  const uint64_t lastpage = last & ~(g - 1);
  s.entries =
      lastpage == addr ? std::vector<uint64_t>{addr} : std::vector<uint64_t>{addr, lastpage};
  s.cmds = {tlbi_record(cmd)};
  s.queue = smmuv3_queue_pin({cmd});
  for (uint64_t e : s.entries)
    s.checks.push_back({e, true});
  if (auto t = smmuv3_scenario(s); !t.empty()) r.files.push_back({s.h.id, t});
}

Result run_sound(const SpanDecoder& d, const Options& o) {
  Stopwatch sw;
  z3::context c;
  Query q(c, o);
  const z3::expr addr = q.input("addr"), tg = q.input("tg"), scale = q.input("scale"),
                 num = q.input("num"), ttl = q.input("ttl");
  const z3::expr ril = q.flag("ril");
  // The fields as a command carries them: Address [63:12], TG and TTL 2 bits, SCALE and NUM 5.
  q.require((addr & 0xfff) == 0 && z3::ule(tg, 3) && z3::ule(scale, 31) && z3::ule(num, 31) &&
            z3::ule(ttl, 3));
  q.prefer(ril);
  const auto span = d.z(addr, tg, scale, num, ril);
  const z3::expr len = z3::shl(wide(num) + 1, wide(scale + 10 + 2 * tg));
  const z3::expr end = wide(addr) + len;
  const z3::expr top = c.bv_val(~uint64_t(0), 128);
  const z3::expr single = tg == 0 || !ril;
  const z3::expr last = z3::ite(single, wide(addr), z3::ite(z3::ugt(end, top + 1), top, end - 1));
  const z3::expr exact = span.lo == addr && wide(span.hi) == last;
  // Counterexamples a scenario can show: the decoder misses a whole page of the range.
  const z3::expr g = wide(granule(c, tg));
  q.prefer(z3::ult(wide(span.hi) + 1, last - (g - 1)));
  q.prefer(tg == 1);
  q.prefer(ttl == 3);
  const z3::expr aligned =
      z3::implies(!single, smmuv3::range_base_aligned(addr, tg, ttl) ==
                               ((addr & spec_alignment_mask(c, tg, ttl)) == 0));
  const auto out = q.prove(exact && aligned);
  Result r = result_of(kSound, d.name, "z3", out);
  if (out.verdict == Verdict::proved) {
    const bool bounded =
        q.prove(z3::implies(!single, z3::ule(len, pow2_128(k64(c, 52))))).verdict ==
        Verdict::proved;
    r.detail = fmt::format(
        "span = [Addr, Addr + (NUM+1)*2^SCALE*granule) exactly (over-invalidation 0); past 2^64 "
        "it ends at 2^64-1 (no wrap); Address alignment per TTL = the 4.4.1.1 table{}",
        bounded ? "; the largest range is 2^52 bytes (64KB, NUM = SCALE = 31)" : "");
  } else if (out.verdict == Verdict::counterexample) {
    r.detail = q.holds(exact) ? fmt::format("range_base_aligned disagrees with the 4.4.1.1 table")
                              : fmt::format("the decoder gives [{}, {}], the architecture [{}, {}]",
                                            hex(q.value(span.lo)), hex(q.value(span.hi)),
                                            hex(q.value(addr)), hex(q.value(last)));
    sound_scenario(r, d);
  }
  r.seconds = sw.seconds();
  return r;
}

// ---- The splitter --------------------------------------------------------------------------

// Legal as a command: no CERROR_ILL ([A] the Reserved NUM = SCALE = TTL = 0), every field
// within its width, Address [63:12].
z3::expr legal(const smmuv3::RangeFields<z3::expr>& f) {
  return z3::implies(f.valid, !smmuv3::range_reserved(f.tg, f.num, f.scale, f.ttl) &&
                                  z3::ule(f.scale, 31) && z3::ule(f.num, 31) && z3::ule(f.tg, 3) &&
                                  z3::ule(f.ttl, 3) && (f.addr & 0xfff) == 0);
}

// What the model's machine says the command invalidates of a leaf entry (machine.cpp
// by_va: range_scope_ok and the span, RIL on).
z3::expr invalidates(const smmuv3::RangeFields<z3::expr>& f, const smmuv3::EntryScope<z3::expr>& e,
                     const z3::expr& base, const z3::expr& size) {
  const z3::expr ril = base.ctx().bool_val(true);
  return f.valid && smmuv3::range_scope_ok(f.addr, f.tg, f.ttl, e, ril) &&
         arith::overlaps(smmuv3::tlbi_span(f.addr, f.tg, f.scale, f.num, ril), base, size);
}

// A splitter's counterexample as a scenario: the page its commands leave stale.
void split_scenario(Result& r, const RangeSplitter& s, bool over_only) {
  const uint64_t iova = value_of(r, "iova"), size = value_of(r, "size"), tg = value_of(r, "tg"),
                 ttl = value_of(r, "ttl"), level = value_of(r, "level"), page = value_of(r, "page");
  const auto cmds = split(s, iova, size, uint8_t(tg), uint8_t(ttl));
  const uint64_t esize = uint64_t(1) << smmuv3::tg_level_shift<uint64_t>(tg, level);
  const uint64_t base = page & ~(esize - 1);
  bool fits = !over_only && base + esize <= (uint64_t(1) << 48);
  for (const auto& c : cmds)
    fits = fits && c.scale <= 31 && c.num <= 31 && c.ttl <= 3 && c.tg <= 3;
  if (!fits) {
    r.detail += over_only ? " (over-invalidation fails no target: no scenario)"
                          : " (no scenario: the entry or a field does not fit a scenario)";
    return;
  }
  SmmuRemap sc;
  sc.h.id = "prove-range-split-" + s.name;
  sc.h.title = "Found by `iommuspec prove` (smmuv3.range_split.covers, splitter " + s.name +
               "): the range TLBIs for a range must leave each of its pages fresh.";
  sc.h.notes = {fmt::format("Splitter '{}' for iova={} size={} TG={} TTL={}: {} command(s); the "
                            "entry at {} ({} bytes) stays stale.",
                            s.name, hex(iova), hex(size), tg, ttl, cmds.size(), hex(base),
                            hex(esize))};
  sc.tg = uint8_t(tg);
  sc.size = esize;
  sc.entries = {base};
  for (const auto& c : cmds)
    sc.cmds.push_back(tlbi_record(c));
  sc.queue = smmuv3_queue_pin(cmds);
  sc.checks = {{page & ~uint64_t(7), true}};
  if (auto t = smmuv3_scenario(sc); !t.empty()) r.files.push_back({sc.h.id, t});
}

// A level that holds leaves for TG's granule: 3 and 2, and 1 but for 16KB (format.h
// block_allowed; 64KB level 1 with a 52-bit OA).
z3::expr leaf_level(const z3::expr& tg, const z3::expr& level) {
  return level == 3 || level == 2 || (level == 1 && tg != 2);
}

// What every cursor of the loop satisfies: what is left, [addr, addr + pages * granule), is
// granule-aligned and within the input width, and block-aligned for a TTL it carries (so
// that each command's Address is aligned for its TTL, [A] 4.4.1.1).
z3::expr cursor_ok(z3::context& c, const smmuv3::RangeCursor<z3::expr>& k) {
  const z3::expr g = granule(c, k.tg), limit = width_limit(c, k.tg);
  const z3::expr bytes = z3::shl(k.pages, smmuv3::tg_granule_shift(k.tg));
  return z3::uge(k.tg, 1) && z3::ule(k.tg, 3) && z3::ule(k.ttl, 3) && !(k.tg == 2 && k.ttl == 1) &&
         (k.addr & (g - 1)) == 0 &&
         z3::ule(k.pages, z3::lshr(limit, smmuv3::tg_granule_shift(k.tg))) &&
         z3::ule(k.addr, limit - bytes) &&
         z3::implies(k.ttl != 0, ((k.addr | bytes) & ttl_block_mask(c, k.tg, k.ttl)) == 0);
}

// Base: the first cursor holds [iova, iova + size) and no more than its granule rounding,
// keeps the caller's TTL or drops it, and is a cursor of the loop.
Query::Outcome split_begin(const RangeSplitter& s, const Options& o, Result& r, bool& over_only) {
  z3::context c;
  Query q(c, o);
  const z3::expr iova = q.input("iova"), size = q.input("size"), tg = q.input("tg"),
                 ttl = q.input("ttl");
  const z3::expr limit = width_limit(c, tg);
  q.require(z3::uge(tg, 1) && z3::ule(tg, 3) && z3::ule(ttl, 3) && z3::uge(size, 1) &&
            z3::ult(iova, limit) && z3::ule(size, limit) && z3::ule(iova + size, limit));
  q.require(ttl == 0 || leaf_level(tg, ttl));
  if (s.aligned_inputs) q.require(((iova | size) & ttl_block_mask(c, tg, ttl)) == 0);
  if (s.leaf_only) q.require(ttl != 0);
  q.prefer(tg == 1);
  q.prefer(ttl == 3);
  const auto k = s.begin_z(iova, size, tg, ttl);
  const z3::expr g = granule(c, tg);
  const z3::expr end = k.addr + z3::shl(k.pages, smmuv3::tg_granule_shift(tg));
  const z3::expr holds = z3::ule(k.addr, iova) && z3::ule(iova + size, end);
  const z3::expr rounded =
      z3::ule(iova & ~(g - 1), k.addr) && z3::ule(end - 1, (iova + size - 1) | (g - 1));
  const z3::expr hint = k.ttl == 0 || k.ttl == ttl;
  const std::pair<const char*, z3::expr> parts[] = {
      {"", holds},
      {"it starts with more than the range rounded to the granule", rounded},
      {"its first cursor changes TG or the caller's TTL", hint && k.tg == tg},
      {"its first cursor breaks the loop's invariant", cursor_ok(c, k)}};
  Query::Outcome out;
  for (const auto& [why, goal] : parts) {
    out = q.prove(goal);
    if (out.verdict != Verdict::counterexample) {
      if (out.verdict == Verdict::unknown) return out;
      continue;
    }
    over_only = std::string(why).find("more than") != std::string::npos;
    r.detail = *why ? std::string(why)
                    : fmt::format("it starts with [{}, {}) for [{}, {}): pages are missing",
                                  hex(q.value(k.addr)), hex(q.value(end)), hex(q.value(iova)),
                                  hex(q.value(iova + size)));
    r.values = out.values;
    r.values.push_back({"level", 3});
    r.values.push_back({"page", q.value(z3::ite(z3::ult(iova, k.addr), iova, iova + size - 1))});
    break;
  }
  return out;
}

// Step: from any cursor with pages left, the command is legal, takes 1..pages pages from the
// front, invalidates every entry holding a page it takes (leaves at TTL's level, or any
// level without TTL: the model's by_va rule), names nothing beyond what is left, and leaves
// a cursor of the loop; with nothing left it is not emitted.
Query::Outcome split_step(const RangeSplitter& s, const Options& o, Result& r, bool& over_only) {
  z3::context c;
  Query q(c, o);
  const z3::expr addr = q.input("iova"), pages = q.input("pages"), tg = q.input("tg"),
                 ttl = q.input("ttl"), level = q.input("level"), page = q.input("page");
  const smmuv3::RangeCursor<z3::expr> k{addr, pages, tg, ttl};
  q.require(cursor_ok(c, k) && leaf_level(tg, level) && z3::implies(ttl != 0, level == ttl));
  if (s.leaf_only) q.require(ttl != 0);
  q.prefer(tg == 1);
  q.prefer(level == 3);
  q.prefer(ttl == 3);
  const auto [f, rest] = s.next_z(k);
  const z3::expr gshift = smmuv3::tg_granule_shift(tg);
  const z3::expr taken = pages - rest.pages;
  const z3::expr taken_end = addr + z3::shl(taken, gshift);
  const z3::expr left_end = addr + z3::shl(pages, gshift);
  q.require(z3::implies(pages != 0, z3::ule(addr, page) && z3::ult(page, taken_end)));
  const z3::expr esize = z3::shl(k64(c, 1), smmuv3::tg_level_shift(tg, level));
  const smmuv3::EntryScope<z3::expr> e{tg, tg, c.bool_val(false), c.bool_val(true), level};
  const auto span = smmuv3::tlbi_span(f.addr, f.tg, f.scale, f.num, c.bool_val(true));
  const z3::expr moves = z3::uge(taken, 1) && z3::ule(taken, pages) && rest.addr == taken_end &&
                         rest.tg == tg && rest.ttl == ttl;
  const z3::expr covers = invalidates(f, e, page & ~(esize - 1), esize);
  const z3::expr within = z3::ule(addr, span.lo) && z3::ult(span.hi, left_end);
  // Each part proved on its own (the same "for all", in smaller questions); the first that
  // fails is the counterexample.
  const std::pair<const char*, z3::expr> parts[] = {
      {"a command is emitted with nothing left", z3::implies(pages == 0, !f.valid)},
      {"no command while pages are left", z3::implies(pages != 0, f.valid)},
      {"the cursor does not move by what the command takes", z3::implies(pages != 0, moves)},
      {"", z3::implies(pages != 0, covers)},
      {"", z3::implies(pages != 0, within)},
      {"a command is illegal (CERROR_ILL or a field out of range)", legal(f)},
      {"the cursor after the command breaks the loop's invariant",
       z3::implies(pages != 0, cursor_ok(c, rest))}};
  Query::Outcome out;
  for (const auto& [why, goal] : parts) {
    out = q.prove(goal);
    if (out.verdict == Verdict::proved) continue;
    if (out.verdict == Verdict::unknown) return out;
    over_only = !*why && q.holds(covers);
    r.detail = *why ? std::string(why)
               : !q.holds(covers)
                   ? fmt::format("the entry holding {} is not invalidated", hex(q.value(page)))
                   : fmt::format("the command names [{}, {}] beyond what is left [{}, {})",
                                 hex(q.value(span.lo)), hex(q.value(span.hi)), hex(q.value(addr)),
                                 hex(q.value(left_end)));
    r.values = out.values;
    // As an input of the splitter: the range this cursor stands for.
    for (auto& v : r.values)
      if (v.name == "pages") v = {"size", q.value(z3::shl(pages, gshift))};
    break;
  }
  return out;
}

// How many commands the splitter needs at most: from any cursor of the loop (the first one
// included, by the base case), nothing is left after kUnroll steps.
Query::Outcome split_count(const RangeSplitter& s, const Options& o) {
  z3::context c;
  Query q(c, o);
  smmuv3::RangeCursor<z3::expr> k{q.input("iova"), q.input("pages"), q.input("tg"), q.input("ttl")};
  q.require(cursor_ok(c, k));
  if (s.leaf_only) q.require(k.ttl != 0);
  for (size_t i = 0; i < kUnroll; ++i)
    k = s.next_z(k).second;
  return q.prove(k.pages == 0);
}

// An input that needs all kUnroll commands with the concrete splitter: a page count with a
// set bit in each 5-bit window below 31 (7 commands), then 2^35 (SCALE capped at 31).
std::string tight_count(const RangeSplitter& s) {
  uint64_t pages = uint64_t(1) << 35;
  for (unsigned w = 0; w < 31; w += 5)
    pages |= uint64_t(1) << w;
  const uint64_t size = pages << 12;
  const size_t n = split(s, 0, size, 1, 0).size();
  return n == kUnroll ? fmt::format(" (tight: iova=0 size={} TG=4KB needs {})", hex(size), n) : "";
}

Result run_split(const RangeSplitter& s, const Options& o) {
  Stopwatch sw;
  Result r;
  r.property = kSplit;
  r.encoder = s.name;
  r.method = "z3, induction on the splitter's step";
  bool over_only = false;
  const auto base = split_begin(s, o, r, over_only);
  const auto step = base.verdict == Verdict::proved ? split_step(s, o, r, over_only) : base;
  r.verdict = step.verdict;
  if (step.verdict == Verdict::unknown) r.detail = "Z3 gave up: " + step.reason;
  if (step.verdict == Verdict::counterexample) split_scenario(r, s, over_only);
  if (step.verdict == Verdict::proved) {
    const auto count = split_count(s, o);
    const std::string tight = tight_count(s);
    r.detail = fmt::format(
        "from its first cursor (the range rounded out to the granule) each command is legal, "
        "takes pages from the front and invalidates every leaf entry holding one (levels 1-3, "
        "TTL kept only when aligned), naming nothing beyond what is left: the union is the "
        "range's pages, over-invalidation <= 2*(granule-1) bytes from the rounding only "
        "(inputs within 48 bits, 52 with 64KB); {}",
        count.verdict == Verdict::proved ? fmt::format("at most {} commands{}", kUnroll, tight)
                                         : std::string("command count bound not proved in time"));
  }
  r.seconds = sw.seconds();
  return r;
}

} // namespace

Unrolled unroll(const RangeSplitter& s, const z3::expr& iova, const z3::expr& size,
                const z3::expr& tg, const z3::expr& ttl, size_t n) {
  auto c = s.begin_z(iova, size, tg, ttl);
  std::vector<smmuv3::RangeFields<z3::expr>> cmds;
  for (size_t i = 0; i < n; ++i) {
    auto [f, rest] = s.next_z(c);
    cmds.push_back(f);
    c = rest;
  }
  return {cmds, c.pages};
}

Property range_tlbi_sound(SpanDecoder d) {
  return {kSound,
          "for every Addr/TG/SCALE/NUM/TTL/RIL, the span of a TLBI by address is exactly "
          "[Addr, Addr + (NUM+1)*2^SCALE*granule) (IHI 0070 4.4.1.1), with the text's alignment "
          "rule",
          [d](const Options& o) { return run_sound(d, o); }};
}

Property range_split_covers(RangeSplitter s) {
  return {kSplit,
          "for every [iova, iova+size) within the input width, the range TLBIs of the splitter "
          "are legal and invalidate every page of it, and nothing beyond its granule rounding",
          [s](const Options& o) { return run_split(s, o); }};
}

} // namespace iommuspec::solvers
