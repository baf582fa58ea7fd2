// Range invalidation by address (Arm IHI 0070 4.4.1.1 "Range-based invalidation and level
// hint"), written once over a value type (core/arith.h): machine.cpp uses it with uint64_t,
// solvers/ proves properties of the same code with Z3 bit-vectors. Sources:
//   [A] IHI 0070 4.4.1.1 (spec text: /work/spec/ihi0070/smmu-4.4.md).
//   [L] linux-source-6.12 drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c
//       __arm_smmu_tlb_inv_range (the splitter below follows its windows).
#pragma once

#include "core/arith.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace iommuspec::smmuv3 {

using arith::SpanOf;

// log2 of TG's granule: [A] TG "0b01 4KB, 0b10 16KB, 0b11 64KB" (machine.cpp
// granule_of_tg: any other value as 64KB).
template <class V>
V tg_granule_shift(const V& tg) {
  using O = arith::Ops<V>;
  return O::ite(tg == 1, O::lit(tg, 12), O::ite(tg == 2, O::lit(tg, 14), O::lit(tg, 16)));
}

// format.h level_shift for TG's granule and a level 0..3: granule + (3 - level) * (granule -
// 3) bits, as a sum (a product of two unknowns is costly for a solver).
template <class V>
V tg_level_shift(const V& tg, const V& level) {
  using O = arith::Ops<V>;
  const V g = tg_granule_shift(tg);
  const V per = g - 3;
  return O::ite(
      level == 3, g,
      O::ite(level == 2, g + per, O::ite(level == 1, g + per + per, g + per + per + per)));
}

// The input range of a TLBI by address, inclusive. TG = 0 (or no IDR3.RIL): the one address.
// Otherwise [A] "Range = ((NUM+1)*2^SCALE)*Translation_Granule_Size ... Address <= A <
// Address + Range"; "The Address is not considered to 'wrap' on overflow": the top of the
// address space ends it. ([L] builds it so: "range is num * 2^scale * pgsize", tg =
// (log2(granule) - 10) / 2.)
template <class V>
SpanOf<V> tlbi_span(const V& addr, const V& tg, const V& scale, const V& num,
                    const typename arith::Ops<V>::Bool& ril) {
  using O = arith::Ops<V>;
  const V shift = 10 + 2 * tg;
  const V len = O::shl(num + 1, scale + shift);
  const V hi = addr + len - 1;
  const V top = O::ite(O::ult(hi, addr), O::lit(addr, ~uint64_t(0)), hi);
  return {addr, O::ite(tg == 0 || !ril, addr, top)};
}

// [A], for 64-bit descriptors: "the range of addresses that is invalidated is UNPREDICTABLE"
// when Address is not aligned to the entries TTL names (TTL = 0: the granule), e.g. 4KB "If
// TTL == 0b10 and bits Address[20:12] are not all zero", 16KB "If TTL == 0b11 or 0b00 and
// bits Address[13:12] are not all zero" (machine.cpp: such a command is required to
// invalidate nothing, SMMUV3.TLBI.range_unaligned).
template <class V>
typename arith::Ops<V>::Bool range_base_aligned(const V& addr, const V& tg, const V& ttl) {
  using O = arith::Ops<V>;
  const V level = O::ite(ttl == 0, O::lit(ttl, 3), ttl);
  return (addr & (O::shl(O::lit(addr, 1), tg_level_shift(tg, level)) - 1)) == 0;
}

// What a cached entry was inserted with, as far as the range scope asks.
template <class V>
struct EntryScope {
  V tg;  // TG encoding of its granule (0: not known)
  V tg2; // a combined entry: its stage-2 granule's TG
  typename arith::Ops<V>::Bool combined, leaf;
  V level; // the leaf's level, or the table descriptor's level
};

// Whether TG and TTL leave the entry in the scope of a TLBI by address (TG != 0 with
// IDR3.RIL; [A], the weaker reading throughout, so an implementation that invalidates more
// conforms): TG: "only required to invalidate TLB entries that were inserted using a
// Translation Granule that matches TG" (a combined entry: both stages'); TTL: "only required
// to invalidate TLB entries that were inserted from a translation table walk level matching
// TTL", and with Leaf = 0 "cached Table descriptors ... at levels between the start of the
// walk and the level before the last level given by TTL"; an unaligned Address: nothing.
// Clauses SMMUV3.TLBI.range_tg, SMMUV3.TLBI.range_ttl, SMMUV3.TLBI.range_unaligned.
template <class V>
typename arith::Ops<V>::Bool range_scope_ok(const V& addr, const V& tg, const V& ttl,
                                            const EntryScope<V>& e,
                                            const typename arith::Ops<V>::Bool& ril) {
  using O = arith::Ops<V>;
  const auto not_range = tg == 0 || !ril;
  const auto granule = e.tg == tg && !(e.combined && e.tg2 != tg);
  const auto level = ttl == 0 || O::ite(e.leaf, e.level == ttl, O::ult(e.level, ttl));
  return not_range || (granule && range_base_aligned(addr, tg, ttl) && level);
}

// [A] "The parameter combination of NUM == 0, SCALE == 0 and TTL = 0b00 is Reserved. Use of
// this Reserved combination of parameters causes CERROR_ILL"; TG = 16KB with TTL = 0b01
// counts as TTL = 0b00 (IDR5.DS = 0: "a TLBI configured with TG == 0b10 and TTL == 0b01,
// raises a CERROR_ILL"). Clause SMMUV3.CMDQ.ill_range.
template <class V>
typename arith::Ops<V>::Bool range_reserved(const V& tg, const V& num, const V& scale,
                                            const V& ttl) {
  using O = arith::Ops<V>;
  const V ill_ttl = O::ite(tg == 2 && ttl == 1, O::lit(ttl, 0), ttl);
  return tg != 0 && num == 0 && scale == 0 && ill_ttl == 0;
}

// ---- Splitting [iova, iova + size) into range TLBIs --------------------------------------

// The range fields of one TLBI by address (CMD_TLBI_NH_VA, NH_VAA, EL2_VA, EL2_VAA, S2_IPA),
// and whether the splitter emitted it.
template <class V>
struct RangeFields {
  typename arith::Ops<V>::Bool valid;
  V addr, tg, scale, num, ttl;
};
// What a splitter has left: `pages` pages of TG's granule from `addr`, with TTL `ttl`.
template <class V>
struct RangeCursor {
  V addr, pages, tg, ttl;
};

// The pages of TG's granule that [iova, iova + size) touches (iova + size <= 2^64), and the
// TTL the commands carry: the caller's (leaf entries at that level, as [L] derives it from
// the leaf granule) when iova and size are aligned to that level's block, so that every
// command's Address is too; otherwise 0 (any level), since a TTL with an unaligned Address
// makes the range UNPREDICTABLE ([A]). TTL 0b01 with 16KB is Reserved (IDR5.DS = 0): 0.
template <class V>
RangeCursor<V> range_tlbi_begin(const V& iova, const V& size, const V& tg, const V& ttl) {
  using O = arith::Ops<V>;
  const V g = tg_granule_shift(tg);
  const V first = O::lshr(iova, g);
  const V pages = O::ite(size == 0, O::lit(size, 0), O::lshr(iova + size - 1, g) - first + 1);
  const V block = O::shl(O::lit(iova, 1), tg_level_shift(tg, ttl)) - 1;
  const auto keep = ttl != 0 && !(tg == 2 && ttl == 1) && ((iova | size) & block) == 0;
  return {O::shl(first, g), pages, tg, O::ite(keep, ttl, O::lit(ttl, 0))};
}

// The next command and what is left after it. As [L] __arm_smmu_tlb_inv_range: the command
// takes the lowest 5-bit window of the page count, SCALE = its lowest set bit and NUM + 1 =
// the window ("range = (num_pages & (0x1f << __ffs(num_pages)))"), starting where the last
// one ended. Two departures, both to stay inside what [A] defines:
//  - SCALE is a 5-bit field (IDR5.DS = 0; the model has no LPA2): from bit 31 on, a command
//    takes up to 32 units of 2^31 pages. ([L] puts __ffs(num_pages) in the field whatever
//    it is: a count with 32 or more trailing zeros loses SCALE's high bits.)
//  - A one-page command without TTL would be the Reserved NUM = SCALE = TTL = 0 (CERROR_ILL):
//    it is sent in the single-address form (TG = 0), which covers the entries holding Addr
//    at any level and granule ([L] instead adds a page to the count, one page more).
// With nothing left (pages = 0) the command is not valid and the cursor does not move.
template <class V>
std::pair<RangeFields<V>, RangeCursor<V>> range_tlbi_next(const RangeCursor<V>& c) {
  using O = arith::Ops<V>;
  const V n = c.pages;
  const V scale = O::umin(O::ctz(n), O::lit(n, 31));
  const V units = O::lshr(n, scale);
  const V count = O::ite(scale == 31, O::umin(units, O::lit(n, 32)), units & 31);
  const V taken = O::shl(count, scale);
  const auto single = scale == 0 && count == 1 && c.ttl == 0;
  const RangeFields<V> f{n != 0, c.addr,    O::ite(single, O::lit(n, 0), c.tg),
                         scale,  count - 1, c.ttl};
  const RangeCursor<V> rest{c.addr + O::shl(taken, tg_granule_shift(c.tg)), n - taken, c.tg, c.ttl};
  return {f, rest};
}

// The model's splitter with concrete values (range.cpp): the commands for [iova, iova +
// size) on a unit with IDR3.RIL, granule TG (1 4KB, 2 16KB, 3 64KB), TTL hint `ttl` (0: any
// level). Their union is the pages the range touches and nothing else (solvers/
// smmuv3.range_split.covers proves it). Requires iova + size <= 2^64.
struct RangeTlbi {
  uint64_t addr = 0;
  uint8_t tg = 0, scale = 0, num = 0, ttl = 0;
  friend bool operator==(const RangeTlbi&, const RangeTlbi&) = default;
};
std::vector<RangeTlbi> range_tlbi_commands(uint64_t iova, uint64_t size, uint8_t tg,
                                           uint8_t ttl = 0);

} // namespace iommuspec::smmuv3
