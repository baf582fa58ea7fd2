// SMMUv3 nested isolation: for every content of memory outside the hypervisor's stage-2 tables
// (the stage-1 tables and everything else the guest controls), every IOVA and access, the
// model's nested walk (nested.h, walk.cpp walk_nested) lands in the stage-2 image and
// attributes its faults to the right stage. Stage 2 is concrete: a few fixed mappings written
// with PageTableBuilder, and the property is stated against that list of mappings, not
// against the stage-2 walk. Sources: [A] IHI 0070 3.4.3 (addresses output from stage-1 walks
// in a nested configuration are input to stage 2), 3.12 ("A stage 2 translation fault that
// occurs during a stage 1 translation table walk counts as a stage 2 fault"), 7.3.12-7.3.16
// (S2 and CLASS of F_WALK_EABT, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION).
#include "nested.h"
#include "props.h"
#include "scenarios.h"
#include "smmuv3/walk_step.h"

#include <fmt/format.h>

namespace iommuspec::solvers {
namespace {

constexpr const char* kIsolation = "smmuv3.nested.isolation";

// One stage-2 mapping (PageTableBuilder::map): [ipa, ipa + size) to [pa, pa + size).
struct S2Map {
  uint64_t ipa, pa, size;
  smmuv3::Perms perms;
};
struct S2Case {
  const char* name;
  smmuv3::S2Config c;
  Range pool; // where the stage-2 tables live (the hypervisor's memory)
  std::vector<S2Map> maps;
};

smmuv3::Perms perms(bool r, bool w, bool x) {
  smmuv3::Perms p;
  p.read = r;
  p.write = w;
  p.exec = x;
  return p;
}

smmuv3::S2Config s2_config(uint8_t t0sz, uint8_t sl0) {
  smmuv3::S2Config c;
  c.s2t0sz = t0sz;
  c.s2sl0 = sl0;
  return c;
}

// The stage-2 mappings: pages and blocks of each size, each permission mix (read-only,
// write-only, executable), a concatenated start level, and a 1GB block that maps the stage-2
// tables themselves into the guest's IPA space (the guest then reads, as stage-1 descriptors,
// the hypervisor's words: still isolated).
std::vector<S2Case> s2_cases() {
  return {
      {"40-bit IPA, start level 1 (2 concatenated tables)",
       s2_config(24, 1),
       {0x41000000, 0x410fffff},
       {{0x80000000, 0x41e00000, 0x200000, perms(true, false, false)},
        {0x80200000, 0x41f00000, 0x1000, perms(true, true, false)},
        {0x90000000, 0x42000000, 0x1000, perms(true, true, false)},
        {0x90001000, 0x42001000, 0x1000, perms(true, false, false)},
        {0x90002000, 0x42002000, 0x1000, perms(false, true, false)},
        {0x90003000, 0x42003000, 0x1000, perms(true, false, true)},
        {0xc0000000, 0x40000000, 0x40000000, perms(true, false, false)}}},
      {"48-bit IPA, start level 0",
       s2_config(16, 2),
       {0x41100000, 0x411fffff},
       {{0x0, 0x42010000, 0x1000, perms(true, true, false)},
        {0xfffffffff000, 0x42011000, 0x1000, perms(true, false, false)},
        {0x800000000000, 0x42200000, 0x200000, perms(true, true, true)},
        {0x100000000, 0x80000000, 0x40000000, perms(true, true, false)}}},
  };
}

// The stage-2 image, from the list of mappings: whether stage 2 maps ipa for the access, and
// where.
struct Image {
  const std::vector<S2Map>& maps;
  z3::expr in(const S2Map& m, const z3::expr& ipa) const {
    return z3::uge(ipa, k64(ipa.ctx(), m.ipa)) && z3::ule(ipa, k64(ipa.ctx(), m.ipa + m.size - 1));
  }
  z3::expr maps_for(const z3::expr& ipa, const z3::expr& write, const z3::expr& exec) const {
    z3::context& c = ipa.ctx();
    z3::expr r = c.bool_val(false);
    for (const auto& m : maps) {
      const smmuv3::PermsOf<z3::expr> p{c.bool_val(m.perms.read), c.bool_val(m.perms.write),
                                        c.bool_val(m.perms.exec)};
      r = r || (in(m, ipa) && smmuv3::permits(p, write, exec));
    }
    return r;
  }
  z3::expr pa(const z3::expr& ipa) const {
    z3::expr r = k64(ipa.ctx(), 0);
    for (const auto& m : maps)
      r = z3::ite(in(m, ipa), k64(ipa.ctx(), m.pa) + (ipa - k64(ipa.ctx(), m.ipa)), r);
    return r;
  }
};

std::string fault_name(uint64_t cls) {
  switch (smmuv3::FaultClass(cls)) {
  case smmuv3::FaultClass::translation:
    return "F_TRANSLATION";
  case smmuv3::FaultClass::addr_size:
    return "F_ADDR_SIZE";
  case smmuv3::FaultClass::access_flag:
    return "F_ACCESS";
  case smmuv3::FaultClass::permission:
    return "F_PERMISSION";
  case smmuv3::FaultClass::walk_eabt:
    return "F_WALK_EABT";
  case smmuv3::FaultClass::bad_config:
    break;
  }
  return "C_BAD";
}

Query::Outcome prove_case(const NestedWalker& walker, const S2Case& sc, const Options& o,
                          Result& r) {
  z3::context c;
  // The hypervisor's memory: the stage-2 tables, concrete.
  Memory host;
  host.add_region(sc.pool);
  smmuv3::S2Config s2 = sc.c;
  auto b = smmuv3::PageTableBuilder::stage2(host, sc.pool, s2);
  s2.s2ttb = b.root();
  for (const auto& m : sc.maps)
    if (!b.map(m.ipa, m.pa, m.size, m.perms)) {
      Query::Outcome bad;
      bad.reason = fmt::format("stage 2 '{}': the mapping at {} does not fit", sc.name, hex(m.ipa));
      return bad;
    }
  const MemZ hyp = memory_z(c, host);
  // Everything else: any content, backed or not (an external abort), the same word each time
  // the same address is read.
  const z3::expr guest = c.constant("guest", c.array_sort(c.bv_sort(64), c.bv_sort(64)));
  const z3::expr backed = c.constant("backed", c.array_sort(c.bv_sort(64), c.bool_sort()));
  const MemZ mem{[&](const z3::expr& pa) {
    const z3::expr ours = z3::uge(pa, k64(c, sc.pool.start)) && z3::ule(pa, k64(c, sc.pool.last));
    const auto [p, w] = hyp.read(pa);
    return std::pair{z3::ite(ours, p, z3::select(backed, pa)),
                     z3::ite(ours, w, z3::select(guest, pa))};
  }};

  Query q(c, o, "QF_ABV");
  const AccessZ a{q.input("iova"), q.flag("write"), q.flag("exec"), q.flag("priv")};
  const z3::expr ttb0 = q.input("ttb0");
  // CD.TTB0 is DW1[51:4] (format.h) and within CD.IPS, else C_BAD_CD ([QV] decode_cd).
  q.require((ttb0 & 0xf) == 0 && z3::ult(ttb0, k64(c, uint64_t(1) << 48)));
  smmuv3::S1Config s1; // 48-bit VA (T0SZ 16: levels 0..3), 4KB granule, 48-bit IPA
  s1.t0sz = 16;
  const NestedZ n = walker.z(mem, s1, ttb0, s2, a);
  q.prefer(n.w.ok); // counterexamples that walk to the end read best

  const Image img{sc.maps};
  const z3::expr no = c.bool_val(false);
  const WalkZ& w = n.w;
  // The event record's S2 and CLASS (walk_step.h class_is_tt; machine.cpp walk_outcome).
  const z3::expr tt = smmuv3::class_is_tt(
      w.on_walk, !w.stage2 && w.cls == k64(c, uint64_t(smmuv3::FaultClass::walk_eabt)));
  z3::expr fetches_through_s2 = c.bool_val(true), tt_faults = c.bool_val(true),
           needed_s2_ok = c.bool_val(true), some_s2_miss = no;
  for (const auto& f : n.s1) {
    const z3::expr mapped = img.maps_for(f.ipa, no, no); // table walks are data reads
    fetches_through_s2 = fetches_through_s2 && z3::implies(f.read, mapped && f.pa == img.pa(f.ipa));
    tt_faults =
        tt_faults && z3::implies(f.reached && !mapped, !w.ok && w.stage2 && tt && w.ipa == f.ipa);
    needed_s2_ok = needed_s2_ok && z3::implies(f.reached, mapped);
    some_s2_miss = some_s2_miss || (f.reached && !mapped);
  }
  const z3::expr out_mapped = img.maps_for(n.final_ipa, a.write, a.exec);
  some_s2_miss = some_s2_miss || (n.final_reached && !out_mapped);
  const std::pair<const char*, z3::expr> parts[] = {
      {"a successful walk's PA is not the stage-2 image of its output IPA (with the access's "
       "stage-2 permissions)",
       z3::implies(w.ok, n.final_reached && out_mapped && w.pa == img.pa(n.final_ipa))},
      {"a stage-1 descriptor is read at other than the stage-2 image of its IPA",
       fetches_through_s2},
      {"a stage-1 descriptor IPA that stage 2 does not map does not fault S2=1 CLASS=TT with that "
       "IPA",
       tt_faults},
      {"an output IPA that stage 2 does not map does not fault S2=1 CLASS=IN with that IPA",
       z3::implies(n.final_reached && !out_mapped,
                   !w.ok && w.stage2 && !tt && w.ipa == n.final_ipa)},
      {"a fault is reported at stage 2 (S2=1) although every stage-2 translation it needed "
       "succeeded, or at stage 1 although one failed",
       z3::implies(!w.ok, w.stage2 == some_s2_miss)}};
  Query::Outcome out;
  for (const auto& [why, goal] : parts) {
    out = q.prove(goal);
    if (out.verdict != Verdict::counterexample) {
      if (out.verdict == Verdict::unknown) return out;
      continue;
    }
    // The walk the counterexample takes, level by level.
    std::string walk;
    for (size_t l = 0; l < n.s1.size(); ++l) {
      const auto& f = n.s1[l];
      if (!q.holds(f.reached)) continue;
      walk += fmt::format("; L{} descriptor IPA {}", l, hex(q.value(f.ipa)));
      if (!q.holds(f.read)) continue;
      walk += fmt::format(" read at PA {} (stage 2: {}) = {}", hex(q.value(f.pa)),
                          q.holds(img.maps_for(f.ipa, no, no)) ? hex(q.value(img.pa(f.ipa)))
                                                               : std::string("unmapped"),
                          hex(q.value(f.word)));
      r.values.push_back({fmt::format("l{}_ipa", l), q.value(f.ipa)});
      r.values.push_back({fmt::format("l{}_pa", l), q.value(f.pa)});
      r.values.push_back({fmt::format("l{}_desc", l), q.value(f.word)});
    }
    if (q.holds(n.final_reached))
      walk += fmt::format("; output IPA {} (stage 2: {})", hex(q.value(n.final_ipa)),
                          q.holds(out_mapped) ? hex(q.value(img.pa(n.final_ipa)))
                                              : std::string("unmapped for this access"));
    walk += q.holds(w.ok) ? fmt::format("; walk -> ok pa={}", hex(q.value(w.pa)))
                          : fmt::format("; walk -> {} s2={} class={} ipa={}",
                                        fault_name(q.value(w.cls)), q.holds(w.stage2) ? 1 : 0,
                                        q.holds(tt) ? "tt" : "in", hex(q.value(w.ipa)));
    r.detail = fmt::format("stage 2 '{}': {}{}", sc.name, why, walk);
    std::vector<Value> vs = out.values;
    vs.insert(vs.end(), r.values.begin(), r.values.end());
    if (q.holds(n.final_reached)) vs.push_back({"out_ipa", q.value(n.final_ipa)});
    if (q.holds(w.ok)) vs.push_back({"pa", q.value(w.pa)});
    r.values = vs;
    break;
  }
  return out;
}

Result run_isolation(const NestedWalker& walker, const Options& o) {
  Stopwatch sw;
  Result r;
  r.property = kIsolation;
  r.encoder = walker.name;
  r.method = "z3, memory as an array (QF_ABV), stage 1 unrolled over levels 0-3";
  const auto cases = s2_cases();
  r.verdict = Verdict::proved;
  for (const auto& sc : cases) {
    const auto out = prove_case(walker, sc, o, r);
    if (out.verdict == Verdict::proved) continue;
    r.verdict = out.verdict;
    if (out.verdict == Verdict::unknown)
      r.detail = out.reason.rfind("stage 2", 0) == 0 ? out.reason : "Z3 gave up: " + out.reason;
    break;
  }
  if (r.verdict == Verdict::proved)
    r.detail = fmt::format(
        "for {} stage-2 configurations (pages, 2MB and 1GB blocks, read-only, write-only and "
        "executable mappings, a concatenated start level, stage 2 mapping its own tables), any "
        "memory outside the stage-2 tables, any IOVA, CD.TTB0 and access (read/write/exec, "
        "priv/unpriv): a successful walk's PA is S2(output IPA) with the access's stage-2 "
        "permissions; every stage-1 descriptor (levels 0-3, 4KB granule, 48-bit VA) is read at "
        "S2(its IPA); an unmapped descriptor IPA faults S2=1 CLASS=TT, an unmapped output IPA "
        "S2=1 CLASS=IN, both with that IPA; any other fault is S2=0",
        cases.size());
  r.seconds = sw.seconds();
  return r;
}

} // namespace

Property nested_isolation(NestedWalker w) {
  return {kIsolation,
          "SMMUv3 nested (STE.Config 0b111, stage 1 from CD.TTB0 with a 4KB granule, levels 0-3): "
          "for all memory contents outside the stage-2 tables (symbolic stage-1 tables), every "
          "IOVA, TTB0 and access, and fixed stage-2 mappings, a successful walk lands in the "
          "stage-2 image (IHI 0070 3.4.3), every stage-1 descriptor fetch goes through stage 2, "
          "and a fault is S2=1 with CLASS=TT (descriptor IPA) or CLASS=IN (output IPA) exactly "
          "when a stage-2 translation failed, else S2=0 (3.12, 7.3.13)",
          [w](const Options& o) { return run_isolation(w, o); }};
}

} // namespace iommuspec::solvers
