// The model's nested walk as Z3 terms (nested.h). Each function below follows the walk.cpp
// function it names, check for check, in the same order: a walk ends at its first fault or
// leaf, so the outcome is built as "the first decision taken wins" (Outcome::decide).
#include "nested.h"

#include "smmuv3/walk_step.h"

namespace iommuspec::solvers {
namespace {

using smmuv3::FaultClass;

z3::expr num(z3::context& c, uint64_t v) {
  return c.bv_val(v, 64);
}

// A walk's outcome in walk order: `live` until a check decides it.
struct Outcome {
  z3::expr live;
  WalkZ w;
  explicit Outcome(z3::context& c)
      : live(c.bool_val(true)), w{c.bool_val(false), num(c, 0), num(c, 0), c.bool_val(false),
                                  c.bool_val(false), num(c, 0), num(c, 0), num(c, 0)} {}
  // If nothing is decided yet and cond holds, the outcome is r.
  void decide(const z3::expr& cond, const WalkZ& r) {
    const z3::expr now = live && cond;
    w = WalkZ{z3::ite(now, r.ok, w.ok),           z3::ite(now, r.pa, w.pa),
              z3::ite(now, r.cls, w.cls),         z3::ite(now, r.stage2, w.stage2),
              z3::ite(now, r.on_walk, w.on_walk), z3::ite(now, r.level, w.level),
              z3::ite(now, r.ipa, w.ipa),         z3::ite(now, r.fetch_pa, w.fetch_pa)};
    live = live && !cond;
  }
};

WalkZ fault(z3::context& c, FaultClass k, bool stage2, int level, const z3::expr& ipa,
            const z3::expr& fetch_pa) {
  return {c.bool_val(false),
          num(c, 0),
          num(c, uint64_t(k)),
          c.bool_val(stage2),
          c.bool_val(false),
          num(c, unsigned(level)),
          ipa,
          fetch_pa};
}
WalkZ success(z3::context& c, const z3::expr& pa) {
  return {c.bool_val(true),  pa,        num(c, 0), c.bool_val(false),
          c.bool_val(false), num(c, 0), num(c, 0), num(c, 0)};
}
WalkZ pick(const z3::expr& cond, const WalkZ& a, const WalkZ& b) {
  return {z3::ite(cond, a.ok, b.ok),           z3::ite(cond, a.pa, b.pa),
          z3::ite(cond, a.cls, b.cls),         z3::ite(cond, a.stage2, b.stage2),
          z3::ite(cond, a.on_walk, b.on_walk), z3::ite(cond, a.level, b.level),
          z3::ite(cond, a.ipa, b.ipa),         z3::ite(cond, a.fetch_pa, b.fetch_pa)};
}

// walk.cpp s2_walk from the root (a fresh walk: no caches), for an access (write, exec).
WalkZ s2_walk_z(const MemZ& mem, const smmuv3::S2Config& c, const z3::expr& ipa,
                const z3::expr& write, const z3::expr& exec) {
  using namespace smmuv3;
  z3::context& ctx = ipa.ctx();
  const z3::expr zero = num(ctx, 0);
  Outcome out(ctx);
  auto fail = [&](const z3::expr& cond, FaultClass k, int level, const z3::expr& fetch_pa) {
    out.decide(cond, fault(ctx, k, true, level, ipa, fetch_pa));
  };
  const unsigned ia_bits = 64 - c.s2t0sz;
  // [QC] smmu_ptw_64_s2: an IPA outside S2T0SZ's range: translation fault (the model: level 0).
  fail(!fits_bits(ipa, ia_bits), FaultClass::translation, 0, zero);
  const Geometry geo{c.granule, ia_bits, s2_start_level(c)};
  const unsigned ps = eff_oas(c.ps_bits, c.granule);
  const DescFormat fmt{c.granule, Stage::s2, oa52(ps, c.granule)};
  z3::expr table = geo.align_root(num(ctx, c.s2ttb));
  for (int level = geo.start; level <= 3; ++level) {
    const z3::expr desc_pa = geo.desc_addr(table, ipa, level);
    const auto [present, word] = mem.read(desc_pa);
    fail(!present, FaultClass::walk_eabt, level, desc_pa); // [QC] get_pte: WALK_EABT
    const auto type = descriptor_type(word, fmt, level);
    const z3::expr next = descriptor_oa(word, fmt, granule_shift(c.granule));
    // A next-level table beyond S2PS: address-size fault at this level (walk.cpp).
    fail(type.table && !fits_bits(next, ps), FaultClass::addr_size, level, zero);
    // Invalid, reserved, or a block where none is allowed: translation fault.
    fail(!type.table && !type.leaf, FaultClass::translation, level, zero);
    // [QC] "If S2AFFD and PTE.AF are 0 => fault"; an access fault before a permission fault.
    fail(type.leaf && !desc_bit(word, kDescAf) && ctx.bool_val(!c.affd), FaultClass::access_flag,
         level, zero);
    // walk.cpp s2_entry_result: permission, then the output size ([QC]).
    const auto p =
        s2_perms(desc_bit(word, kDescAp), desc_bit(word, kDescAp + 1), desc_bit(word, kDescUxn));
    fail(type.leaf && !permits(p, write, exec), FaultClass::permission, level, zero);
    const z3::expr oa = descriptor_oa(word, fmt, level_shift(c.granule, level));
    fail(type.leaf && !fits_bits(oa, ps), FaultClass::addr_size, level, zero);
    const z3::expr size = num(ctx, uint64_t(1) << level_shift(c.granule, level));
    out.decide(type.leaf, success(ctx, leaf_output(oa, ipa, size)));
    table = next;
  }
  return out.w;
}

} // namespace

MemZ memory_z(z3::context& c, const Memory& m) {
  std::vector<std::pair<uint64_t, uint64_t>> words = m.words();
  std::vector<Range> regions = m.regions();
  return {[words, regions, &c](const z3::expr& pa) {
    // The words written, as a choice on the address (no array theory: the solver stays in
    // QF_BV for this part); a backed word never written reads as zero.
    z3::expr word = num(c, 0);
    for (const auto& [at, w] : words)
      if (w != 0) word = z3::ite(pa == num(c, at), num(c, w), word);
    // Memory::read64: an aligned word whose 8 bytes are backed (backed8).
    auto in = [&](const z3::expr& a) {
      z3::expr r = c.bool_val(false);
      for (const auto& g : regions)
        r = r || (z3::uge(a, num(c, g.start)) && z3::ule(a, num(c, g.last)));
      return r;
    };
    const z3::expr present = (pa & num(c, 7)) == 0 && in(pa) && in(pa + 7);
    return std::pair{present, word};
  }};
}

NestedZ nested_walk_z(const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                      const smmuv3::S2Config& s2, const AccessZ& a, NestedMistake m) {
  using namespace smmuv3;
  z3::context& ctx = ttb0.ctx();
  const z3::expr zero = num(ctx, 0), no = ctx.bool_val(false);
  NestedZ r{success(ctx, zero),
            {FetchZ{no, no, zero, zero, zero}, FetchZ{no, no, zero, zero, zero},
             FetchZ{no, no, zero, zero, zero}, FetchZ{no, no, zero, zero, zero}},
            no,
            zero};
  Outcome out(ctx);
  auto fail = [&](const z3::expr& cond, FaultClass k, int level, const z3::expr& fetch_pa) {
    out.decide(cond, fault(ctx, k, false, level, zero, fetch_pa));
  };
  // walk_nested checks s2_config_valid, s1_walk s1_config_valid and EPD0 first: the callers'
  // configurations are valid and enabled (C_BAD_STE / C_BAD_CD are not walks).
  const unsigned ia_bits = 64 - s1.t0sz;
  // [QC] select_tt: an IOVA beyond 64 - T0SZ bits selects no table (the model: level 0).
  fail(!fits_bits(a.iova, ia_bits), FaultClass::translation, 0, zero);
  const Geometry geo{s1.granule, ia_bits, s1_start_level(s1)};
  const unsigned oas = eff_oas(s1.oas_bits, s1.granule);
  const DescFormat fmt{s1.granule, Stage::s1, oa52(oas, s1.granule)};
  z3::expr table = geo.align_root(ttb0);
  z3::expr no_write = no, no_unpriv = no, pxn = no, uxn = no; // HierAttrs
  z3::expr out_ipa = zero;
  for (int level = geo.start; level <= 3; ++level) {
    FetchZ& f = r.s1[size_t(level)];
    f.ipa = geo.desc_addr(table, a.iova, level);
    f.reached = out.live;
    z3::expr desc_pa = f.ipa;
    if (m != NestedMistake::s1_fetch_untranslated) {
      // Stage-1 table walks are reads in IPA space ([A] 3.4.3; [QC] translate_table_addr_ipa,
      // IOMMU_RO): a fault there is a stage-2 fault with CLASS=TT ([A] 3.12, 7.3.13).
      WalkZ t = s2_walk_z(mem, s2, f.ipa, no, no);
      t.on_walk = ctx.bool_val(m != NestedMistake::tt_fault_as_in);
      out.decide(!t.ok, t);
      desc_pa = t.pa;
    }
    f.read = out.live;
    f.pa = desc_pa;
    const auto [present, word] = mem.read(desc_pa);
    f.word = word;
    // [QC] get_pte -> WALK_EABT, at stage 1 (walk.cpp).
    fail(!present, FaultClass::walk_eabt, level, desc_pa);
    const auto type = descriptor_type(word, fmt, level);
    const z3::expr next = descriptor_oa(word, fmt, granule_shift(s1.granule));
    fail(type.table && !fits_bits(next, oas), FaultClass::addr_size, level, zero);
    if (!s1.had) { // APTable[1] no write, APTable[0] no EL0, PXNTable, XNTable below ([QI])
      no_write = no_write || (type.table && desc_bit(word, kDescApTable + 1));
      no_unpriv = no_unpriv || (type.table && desc_bit(word, kDescApTable));
      pxn = pxn || (type.table && desc_bit(word, kDescPxnTable));
      uxn = uxn || (type.table && desc_bit(word, kDescXnTable));
    }
    fail(!type.table && !type.leaf, FaultClass::translation, level, zero);
    // [QC] AFFD / AF: an access flag fault before a permission fault.
    fail(type.leaf && !desc_bit(word, kDescAf) && ctx.bool_val(!s1.affd), FaultClass::access_flag,
         level, zero);
    // walk.cpp s1_entry_result: permission, then the output size.
    const z3::expr ro = desc_bit(word, kDescAp + 1) || no_write;
    const z3::expr user = desc_bit(word, kDescAp) && !no_unpriv;
    const auto p = s1_perms(ro, user, desc_bit(word, kDescPxn) || pxn,
                            desc_bit(word, kDescUxn) || uxn, a.priv);
    fail(type.leaf && !permits(p, a.write, a.exec), FaultClass::permission, level, zero);
    const z3::expr oa = descriptor_oa(word, fmt, level_shift(s1.granule, level));
    fail(type.leaf && !fits_bits(oa, oas), FaultClass::addr_size, level, zero);
    const z3::expr size = num(ctx, uint64_t(1) << level_shift(s1.granule, level));
    out_ipa = z3::ite(out.live && type.leaf, leaf_output(oa, a.iova, size), out_ipa);
    out.decide(type.leaf, success(ctx, zero));
    table = next;
  }
  r.final_reached = out.w.ok;
  r.final_ipa = out_ipa;
  if (m == NestedMistake::final_ipa_untranslated) {
    r.w = out.w;
    r.w.pa = out_ipa;
    return r;
  }
  // walk_nested / combine_nested: the output IPA through stage 2 with the same access; a
  // fault there is the walk's (CLASS=IN), else the PA is stage 2's ([QC] smmu_ptw SMMU_NESTED).
  const WalkZ t = s2_walk_z(mem, s2, out_ipa, a.write, a.exec);
  r.w = pick(out.w.ok, t, out.w);
  return r;
}

NestedWalker model_nested_walker() {
  return {"model", [](const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                      const smmuv3::S2Config& s2,
                      const AccessZ& a) { return nested_walk_z(mem, s1, ttb0, s2, a); }};
}

std::vector<std::string> nested_walker_names() {
  return {"model", "s1-fetch-untranslated", "final-ipa-untranslated", "tt-fault-as-in"};
}

std::optional<NestedWalker> nested_walker(const std::string& name) {
  NestedMistake m;
  if (name == "model")
    return model_nested_walker();
  else if (name == "s1-fetch-untranslated")
    m = NestedMistake::s1_fetch_untranslated;
  else if (name == "final-ipa-untranslated")
    m = NestedMistake::final_ipa_untranslated;
  else if (name == "tt-fault-as-in")
    m = NestedMistake::tt_fault_as_in;
  else
    return std::nullopt;
  return NestedWalker{name, [m](const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                                const smmuv3::S2Config& s2, const AccessZ& a) {
                        return nested_walk_z(mem, s1, ttb0, s2, a, m);
                      }};
}

} // namespace iommuspec::solvers
