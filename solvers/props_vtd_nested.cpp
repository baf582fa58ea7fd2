// VT-d nested isolation: for every content of memory outside the host's second-stage tables
// (the first-stage tables and everything else the guest controls), every input address, access
// and PASID-entry first-stage field, the model's nested walk (vtd_nested.h, walk.cpp
// walk_nested) lands in the second-stage image and attributes its faults to the right stage
// with the right reason. The second stage is concrete: a few fixed mappings written with
// PageTableBuilder, and the property is stated against that list of mappings, not against the
// second-stage walk. Sources: [VTD] VT-d rev 5.10 3.8 (nested translation: "all the memory
// accesses (first-stage paging-structure entries and the final page) are subject to
// second-stage translation"), 3.8.1 (access rights of nested translation: the AND of both
// stages), Table 30 (fault conditions; the codes are cited at each use below).
#include "props.h"
#include "scenarios.h"
#include "vtd/walk_step.h"
#include "vtd_nested.h"

#include <fmt/format.h>

namespace iommuspec::solvers {
namespace {

constexpr const char* kIsolation = "vtd.nested.isolation";

// One second-stage mapping (PageTableBuilder::map): [gpa, gpa + size) to [pa, pa + size).
struct SsMap {
  uint64_t gpa, pa, size;
  bool r, w;
};
struct SsCase {
  const char* name;
  int levels;     // 3 or 4 (AW 1 or 2)
  unsigned width; // min(AW width, MGAW)
  Range pool;     // where the second-stage tables live (the host's memory)
  std::vector<SsMap> maps;
};

// The second-stage mappings: pages, 2MB and 1GB pages, read-only, write-only and read-write,
// the top of the input width, a page whose image is the interrupt range, and (in the 3-level
// case, the cheaper to prove) a 1GB page that maps the second-stage tables themselves into the
// guest (the guest then reads, as first-stage entries, the host's words: still isolated). Each
// mapping's image lies wholly inside the interrupt range or wholly outside it.
std::vector<SsCase> ss_cases() {
  return {
      {"4 levels, 48-bit GPA",
       4,
       48,
       {0x41000000, 0x410fffff},
       {{0x80000000, 0x41e00000, 0x200000, true, false},
        {0x90000000, 0x42000000, 0x1000, true, true},
        {0x90002000, 0x42002000, 0x1000, false, true},
        {0x90003000, vtd::kIntrFirst, 0x1000, true, true},
        {0xfffffffff000, 0x42011000, 0x1000, true, true}}},
      {"3 levels, 39-bit GPA",
       3,
       39,
       {0x41100000, 0x411fffff},
       {{0x0, 0x42010000, 0x1000, true, true},
        {0x7ffffff000, 0x42011000, 0x1000, true, false},
        {0x4000000000, 0x42200000, 0x200000, true, true},
        {0x100000000, 0x80000000, 0x40000000, true, true},
        {0x40000000, 0x40000000, 0x40000000, true, false}}},
  };
}

// The second-stage image, from the list of mappings.
struct Image {
  const SsCase& sc;
  z3::expr in(const SsMap& m, const z3::expr& gpa) const {
    return z3::uge(gpa, k64(gpa.ctx(), m.gpa)) && z3::ule(gpa, k64(gpa.ctx(), m.gpa + m.size - 1));
  }
  z3::expr any(const z3::expr& gpa, bool (*pred)(const SsMap&)) const {
    z3::expr r = gpa.ctx().bool_val(false);
    for (const auto& m : sc.maps)
      if (pred(m)) r = r || in(m, gpa);
    return r;
  }
  z3::expr covered(const z3::expr& gpa) const {
    return any(gpa, [](const SsMap&) { return true; });
  }
  z3::expr readable(const z3::expr& gpa) const {
    return any(gpa, [](const SsMap& m) { return m.r; });
  }
  z3::expr writable(const z3::expr& gpa) const {
    return any(gpa, [](const SsMap& m) { return m.w; });
  }
  // [VTD] 3.7.1 / 3.8.1: a write needs W, any other request (exec included: the second stage
  // has no execute permission in the model) R.
  z3::expr permits(const z3::expr& gpa, const z3::expr& write) const {
    return z3::ite(write, writable(gpa), readable(gpa));
  }
  z3::expr irq(const z3::expr& gpa) const {
    return any(gpa,
               [](const SsMap& m) { return m.pa <= vtd::kIntrLast && m.pa >= vtd::kIntrFirst; });
  }
  z3::expr pa(const z3::expr& gpa) const {
    z3::expr r = k64(gpa.ctx(), 0);
    for (const auto& m : sc.maps)
      r = z3::ite(in(m, gpa), k64(gpa.ctx(), m.pa) + (gpa - k64(gpa.ctx(), m.gpa)), r);
    return r;
  }
  z3::expr beyond(const z3::expr& gpa) const {
    return z3::uge(gpa, k64(gpa.ctx(), uint64_t(1) << sc.width));
  }
  z3::expr code(vtd::FaultReason r, const z3::expr& like) const {
    return k64(like.ctx(), uint64_t(r));
  }
  // The reason for a first-stage entry's GPA the second stage does not map for reading
  // (walk.cpp fs_walk; the codes of walk_step.h nested_fetch_code, restated from Table 30):
  // above 2^X - 1, X = min(MGAW, AW): SFS.5 (74h); no present second-stage entry: SSS.2 (79h,
  // "a second-stage paging entry ... with R=W=0"); present without R: SFS.6 (75h) for the
  // FS-PML4 entry, SFS.7 (76h) below.
  z3::expr fetch_reason(const z3::expr& gpa, int fs_level, int fs_levels) const {
    using vtd::FaultReason;
    return z3::ite(beyond(gpa), code(FaultReason::sm_nested_fs_beyond_mgaw, gpa),
                   z3::ite(!covered(gpa), code(FaultReason::sm_ss_rw_permission, gpa),
                           code(fs_level == fs_levels ? FaultReason::sm_nested_fs_pml4_read
                                                      : FaultReason::sm_nested_fs_read,
                                gpa)));
  }
  // The reason for an output GPA the second stage does not map for the access: SFS.5 (74h,
  // the leaf's ADDR field above 2^X - 1), SSS.2 (79h), SGN.6 (85h, write) or SGN.7 (86h, read
  // "when translating leaf entry ... through second-stage mappings").
  z3::expr output_reason(const z3::expr& gpa, const z3::expr& write) const {
    using vtd::FaultReason;
    return z3::ite(beyond(gpa), code(FaultReason::sm_nested_fs_beyond_mgaw, gpa),
                   z3::ite(!covered(gpa), code(FaultReason::sm_ss_rw_permission, gpa),
                           z3::ite(write, code(FaultReason::sm_no_write, gpa),
                                   code(FaultReason::sm_no_read, gpa))));
  }
};

std::string reason_name(uint64_t r) {
  const std::string_view n = vtd::fault_reason_name(uint8_t(r));
  return fmt::format("{:#04x}{}{}", r, n.empty() ? "" : " ", n);
}

Query::Outcome prove_case(const VtdNestedWalker& walker, const SsCase& sc, const Options& o,
                          Result& r) {
  z3::context c;
  // The host's memory: the second-stage tables, concrete.
  Memory host;
  host.add_region(sc.pool);
  vtd::PageTableBuilder b(host, vtd::Stage::second, sc.levels, sc.pool);
  for (const auto& m : sc.maps) {
    vtd::Perms p;
    p.r = m.r;
    p.w = m.w;
    const bool irq_in = m.pa >= vtd::kIntrFirst && m.pa + m.size - 1 <= vtd::kIntrLast;
    const bool irq_out = m.pa + m.size - 1 < vtd::kIntrFirst || m.pa > vtd::kIntrLast;
    if (!b.map(m.gpa, m.pa, m.size, p) || (!irq_in && !irq_out)) {
      Query::Outcome bad;
      bad.reason =
          fmt::format("second stage '{}': the mapping at {} does not fit", sc.name, hex(m.gpa));
      return bad;
    }
  }
  vtd::SsConfig ss; // scalable mode, HAW 48, SLLPS 2MB and 1GB
  ss.slptptr = b.root();
  ss.levels = sc.levels;
  ss.width = sc.width;
  const MemZ hyp = memory_z(c, host);
  // Everything else: any content, backed or not (an access error), the same word each time the
  // same address is read.
  const z3::expr guest = c.constant("guest", c.array_sort(c.bv_sort(64), c.bv_sort(64)));
  const z3::expr backed = c.constant("backed", c.array_sort(c.bv_sort(64), c.bool_sort()));
  const MemZ mem{[&](const z3::expr& pa) {
    const z3::expr ours = z3::uge(pa, k64(c, sc.pool.start)) && z3::ule(pa, k64(c, sc.pool.last));
    const auto [p, w] = hyp.read(pa);
    return std::pair{z3::ite(ours, p, z3::select(backed, pa)),
                     z3::ite(ours, w, z3::select(guest, pa))};
  }};

  Query q(c, o, "QF_ABV");
  const VtdAccessZ a{q.input("addr"), q.flag("write"), q.flag("exec"), q.flag("priv")};
  const VtdFsFieldsZ f{q.input("fsptptr"), q.flag("wpe"), q.flag("sre"), q.flag("ere")};
  vtd::FsConfig fs; // 4-level first stage (FSPM 00b), HAW 48, CAP.FL1GP
  fs.levels = 4;
  const VtdNestedZ n = walker.z(mem, fs, f, ss, a);
  q.prefer(n.w.ok); // counterexamples that walk to the end read best

  const Image img{sc};
  const VtdWalkZ& w = n.w;
  const z3::expr no = c.bool_val(false);
  z3::expr fetches = c.bool_val(true), fetch_faults = c.bool_val(true),
           ad_faults = c.bool_val(true), some_ss_failed = no;
  for (int l = fs.levels; l >= 1; --l) {
    const VtdFetchZ& fe = n.fs[size_t(l)];
    const z3::expr mapped = img.readable(fe.gpa); // entry fetches are reads
    fetches = fetches && z3::implies(fe.read, mapped && fe.pa == img.pa(fe.gpa)) &&
              z3::implies(fe.ad_update, img.writable(fe.gpa) && fe.pa == img.pa(fe.gpa));
    fetch_faults =
        fetch_faults &&
        z3::implies(fe.reached && !mapped, !w.ok && w.stage2 && w.on_fs_walk && w.fs_level == l &&
                                               w.gpa == fe.gpa &&
                                               w.reason == img.fetch_reason(fe.gpa, l, fs.levels));
    // [VTD] Table 30 SFS.8 (77h): an A/D update "blocked due to lack of write permissions in
    // the nested second-stage translation".
    const z3::expr ad_blocked = fe.ad_needed && !img.writable(fe.gpa);
    ad_faults =
        ad_faults &&
        z3::implies(fe.reached && mapped && ad_blocked,
                    !w.ok && w.stage2 && w.on_fs_walk && w.fs_level == l && w.gpa == fe.gpa &&
                        w.reason == k64(c, uint64_t(vtd::FaultReason::sm_nested_fs_write)));
    some_ss_failed = some_ss_failed || (fe.reached && !mapped) || ad_blocked;
  }
  const z3::expr out_ok = img.permits(n.final_gpa, a.write);
  some_ss_failed = some_ss_failed || (n.final_reached && !out_ok);
  // SGN.8 (87h): an output in the interrupt range; walk_nested reports it at stage 2.
  const z3::expr irq = n.final_reached && out_ok && img.irq(n.final_gpa);
  const std::pair<const char*, z3::expr> parts[] = {
      {"a successful walk's PA is not the second stage's image of its output GPA, or it has "
       "permissions the second stage does not grant, or it is in the interrupt range",
       z3::implies(w.ok, n.final_reached && out_ok && w.pa == img.pa(n.final_gpa) &&
                             z3::implies(w.read || w.exec, img.readable(n.final_gpa)) &&
                             z3::implies(w.write, img.writable(n.final_gpa)) &&
                             !img.irq(n.final_gpa))},
      {"a first-stage entry is read (or its A/D flags written) at other than the second stage's "
       "image of its GPA",
       fetches},
      {"a first-stage entry GPA that the second stage does not map for reading does not fault at "
       "stage 2 on the first-stage walk with that GPA and the reason of Table 30",
       fetch_faults},
      {"an A/D update to a first-stage entry whose page the second stage maps read-only does "
       "not fault 0x77 (SFS.8) at stage 2 on the first-stage walk",
       ad_faults},
      {"an output GPA that the second stage does not map for the access does not fault at stage "
       "2 (not on the first-stage walk) with that GPA and the reason of Table 30",
       z3::implies(n.final_reached && !out_ok,
                   !w.ok && w.stage2 && !w.on_fs_walk && w.gpa == n.final_gpa &&
                       w.reason == img.output_reason(n.final_gpa, a.write))},
      {"a fault is reported at stage 2 although every second-stage translation the walk needed "
       "succeeded (and the output is outside the interrupt range), or at stage 1 although one "
       "failed",
       z3::implies(!w.ok, w.stage2 == (some_ss_failed || irq))}};
  // All parts at once (one solver call when the walk is right); part by part only to name
  // the one a counterexample breaks.
  z3::expr all = c.bool_val(true);
  for (const auto& part : parts)
    all = all && part.second;
  Query::Outcome out = q.prove(all);
  if (out.verdict != Verdict::counterexample) return out;
  for (const auto& [why, goal] : parts) {
    out = q.prove(goal);
    if (out.verdict != Verdict::counterexample) {
      if (out.verdict == Verdict::unknown) return out;
      continue;
    }
    // The walk the counterexample takes, level by level.
    std::string walk = fmt::format("; FSPTPTR {}", hex(q.value(f.fsptptr)));
    for (int l = fs.levels; l >= 1; --l) {
      const auto& fe = n.fs[size_t(l)];
      if (!q.holds(fe.reached)) continue;
      walk += fmt::format("; L{} entry GPA {}", l, hex(q.value(fe.gpa)));
      if (!q.holds(fe.read)) continue;
      walk += fmt::format(" read at PA {} (second stage: {}) = {}", hex(q.value(fe.pa)),
                          q.holds(img.readable(fe.gpa)) ? hex(q.value(img.pa(fe.gpa)))
                                                        : std::string("unmapped for reading"),
                          hex(q.value(fe.word)));
      r.values.push_back({fmt::format("l{}_gpa", l), q.value(fe.gpa)});
      r.values.push_back({fmt::format("l{}_pa", l), q.value(fe.pa)});
      r.values.push_back({fmt::format("l{}_entry", l), q.value(fe.word)});
    }
    if (q.holds(n.final_reached))
      walk += fmt::format("; output GPA {} (second stage: {})", hex(q.value(n.final_gpa)),
                          q.holds(out_ok) ? hex(q.value(img.pa(n.final_gpa)))
                                          : std::string("unmapped for this access"));
    walk +=
        q.holds(w.ok)
            ? fmt::format("; walk -> ok pa={}", hex(q.value(w.pa)))
            : fmt::format("; walk -> fault {} stage={} on_fs_walk={} fs_level={} gpa={}",
                          reason_name(q.value(w.reason)), q.holds(w.stage2) ? 2 : 1,
                          q.holds(w.on_fs_walk) ? 1 : 0, q.value(w.fs_level), hex(q.value(w.gpa)));
    r.detail = fmt::format("second stage '{}': {}{}", sc.name, why, walk);
    std::vector<Value> vs = out.values;
    vs.insert(vs.end(), r.values.begin(), r.values.end());
    if (q.holds(n.final_reached)) vs.push_back({"out_gpa", q.value(n.final_gpa)});
    if (q.holds(w.ok)) vs.push_back({"pa", q.value(w.pa)});
    r.values = vs;
    break;
  }
  return out;
}

Result run_isolation(const VtdNestedWalker& walker, const Options& o) {
  Stopwatch sw;
  Result r;
  r.property = kIsolation;
  r.encoder = walker.name;
  r.method = "z3, memory as an array (QF_ABV), first stage unrolled over levels 4-1";
  const auto cases = ss_cases();
  r.verdict = Verdict::proved;
  for (const auto& sc : cases) {
    const auto out = prove_case(walker, sc, o, r);
    if (out.verdict == Verdict::proved) continue;
    r.verdict = out.verdict;
    if (out.verdict == Verdict::unknown)
      r.detail =
          out.reason.rfind("second stage", 0) == 0 ? out.reason : "Z3 gave up: " + out.reason;
    break;
  }
  if (r.verdict == Verdict::proved)
    r.detail = fmt::format(
        "for {} second-stage configurations (3 and 4 levels; 4KB, 2MB and 1GB pages; read-only, "
        "write-only and read-write; the top of the width; an image in the interrupt range; the "
        "second stage mapping its own tables), any memory outside the second-stage tables, any "
        "input address, FSPTPTR, WPE/SRE/ERE and request (read/write/exec, user/supervisor): a "
        "successful walk's PA is SS(output GPA) with permissions the second stage grants; every "
        "first-stage entry (4 levels) is read, and its A/D flags written, at SS(its GPA); an "
        "unmapped entry GPA faults at stage 2 on the walk (74h/79h/75h/76h), a blocked A/D "
        "update 77h, an unmapped output GPA at stage 2 (74h/79h/85h/86h), each with that GPA; "
        "any other fault but 87h is at stage 1",
        cases.size());
  r.seconds = sw.seconds();
  return r;
}

} // namespace

Property vtd_nested_isolation(VtdNestedWalker w) {
  return {kIsolation,
          "VT-d nested (scalable-mode PASID entry PGTT=011b, 4-level first stage): for all memory "
          "contents outside the second-stage tables (symbolic first-stage tables), every input "
          "address, FSPTPTR, WPE/SRE/ERE and request, and fixed second-stage mappings, a "
          "successful walk lands in the second-stage image with its permissions (VT-d 3.8, "
          "3.8.1), every first-stage entry is read at the second stage's image of its GPA, and "
          "a fault is a second-stage fault exactly when a second-stage translation the walk "
          "needed failed, with the reason of Table 30 (SFS.5-SFS.8, SSS.2, SGN.6, SGN.7)",
          [w](const Options& o) { return run_isolation(w, o); }};
}

} // namespace iommuspec::solvers
