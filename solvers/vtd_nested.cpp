// The model's VT-d nested walk as Z3 terms (vtd_nested.h). Each function below follows the
// walk.cpp function it names, check for check, in the same order: a walk ends at its first
// fault or leaf, so the outcome is built as "the first decision taken wins" (Outcome::decide).
#include "vtd_nested.h"

#include "vtd/walk_step.h"

namespace iommuspec::solvers {
namespace {

using vtd::FaultReason;
using vtd::SsFail;

z3::expr num(z3::context& c, uint64_t v) {
  return c.bv_val(v, 64);
}

VtdWalkZ blank(z3::context& c) {
  const z3::expr zero = num(c, 0), no = c.bool_val(false);
  return {no, zero, no, no, no, zero, zero, no, no, zero, zero, zero};
}

VtdWalkZ pick(const z3::expr& cond, const VtdWalkZ& a, const VtdWalkZ& b) {
  auto i = [&](const z3::expr& x, const z3::expr& y) { return z3::ite(cond, x, y); };
  return {i(a.ok, b.ok),
          i(a.pa, b.pa),
          i(a.read, b.read),
          i(a.write, b.write),
          i(a.exec, b.exec),
          i(a.page_size, b.page_size),
          i(a.reason, b.reason),
          i(a.stage2, b.stage2),
          i(a.on_fs_walk, b.on_fs_walk),
          i(a.level, b.level),
          i(a.fs_level, b.fs_level),
          i(a.gpa, b.gpa)};
}

// A walk's outcome in walk order: `live` until a check decides it.
struct Outcome {
  z3::expr live;
  VtdWalkZ w;
  explicit Outcome(z3::context& c) : live(c.bool_val(true)), w(blank(c)) {}
  // If nothing is decided yet and cond holds, the outcome is r.
  void decide(const z3::expr& cond, const VtdWalkZ& r) {
    w = pick(live && cond, r, w);
    live = live && !cond;
  }
};

// walk.cpp fs_fault / ss_fault: a fault's fields.
VtdWalkZ fault(z3::context& c, const z3::expr& reason, bool stage2, const z3::expr& level,
               const z3::expr& gpa) {
  VtdWalkZ f = blank(c);
  f.reason = reason;
  f.stage2 = c.bool_val(stage2);
  f.level = level;
  f.gpa = gpa;
  return f;
}
VtdWalkZ fault(z3::context& c, FaultReason reason, bool stage2, int level) {
  return fault(c, num(c, uint64_t(reason)), stage2, num(c, unsigned(level)), num(c, 0));
}

// walk.cpp SsOut: why the second stage stopped (SsFail as a number) and where.
struct SsOutZ {
  z3::expr fail, level, pa, r, w, page_size;
};

// walk.cpp ss_walk, scalable mode (walk_nested sets ssc.scalable): `write` selects the check.
// Every entry read is appended to `log` under the condition that the walk got there.
SsOutZ ss_walk_z(const MemZ& mem, const vtd::SsConfig& c, const z3::expr& gpa,
                 const z3::expr& write, const z3::expr& asked, std::vector<CondAddrZ>& log) {
  using namespace vtd;
  z3::context& ctx = gpa.ctx();
  const z3::expr zero = num(ctx, 0);
  SsOutZ o{
      num(ctx, uint64_t(SsFail::none)), zero, zero, ctx.bool_val(false), ctx.bool_val(false), zero};
  z3::expr live = ctx.bool_val(true);
  auto stop = [&](const z3::expr& cond, SsFail f, int level) {
    const z3::expr now = live && cond;
    o.fail = z3::ite(now, num(ctx, uint64_t(f)), o.fail);
    o.level = z3::ite(now, num(ctx, unsigned(level)), o.level);
    live = live && !cond;
  };
  stop(beyond_width(gpa, c.width), SsFail::beyond, 0);
  z3::expr table = table_address(num(ctx, c.slptptr));
  z3::expr r = ctx.bool_val(true), w = ctx.bool_val(true);
  for (int level = c.levels; level >= 1; --level) {
    const z3::expr epa = entry_address(table, gpa, level);
    log.push_back({asked && live, epa, zero});
    const auto [present, e] = mem.read(epa);
    stop(!present, level == c.levels ? SsFail::access_root : SsFail::access, level);
    stop(!ss_present(e), SsFail::not_present, level);
    stop(ss_reserved(e, level, c.haw, c.sllps, c.snp_ok, c.tm_ok) != 0, SsFail::reserved, level);
    r = r && any_bit(e, kSsR);
    w = w && any_bit(e, kSsW);
    const z3::expr leaf = is_leaf(e, level);
    stop(leaf && write && !w, SsFail::no_write, level);
    stop(leaf && !write && !r, SsFail::no_read, level);
    const z3::expr now = live && leaf;
    o.pa = z3::ite(now, leaf_output(leaf_base(e, level), gpa, level), o.pa);
    o.page_size = z3::ite(now, num(ctx, level_page_size(unsigned(level))), o.page_size);
    o.r = z3::ite(now, r, o.r);
    o.w = z3::ite(now, w, o.w);
    live = live && !leaf;
    table = table_address(e);
  }
  return o;
}

// The code a second-stage failure gets, by who asked (walk_step.h nested_fetch_code /
// nested_output_code), as a choice on the failure.
z3::expr ss_reason(const z3::expr& fail, const std::function<FaultReason(SsFail)>& code) {
  z3::context& c = fail.ctx();
  z3::expr r = num(c, uint64_t(FaultReason::software));
  for (SsFail f : vtd::kSsFails)
    r = z3::ite(fail == num(c, uint64_t(f)), num(c, uint64_t(code(f))), r);
  return r;
}
z3::expr ss_failed(const SsOutZ& o) {
  return o.fail != num(o.fail.ctx(), uint64_t(SsFail::none));
}
// walk.cpp ss_fault: level 0 for an input beyond the width.
z3::expr ss_fault_level(const SsOutZ& o) {
  z3::context& c = o.fail.ctx();
  return z3::ite(o.fail == num(c, uint64_t(SsFail::beyond)), num(c, 0), o.level);
}

} // namespace

VtdNestedZ vtd_nested_walk_z(const MemZ& mem, const vtd::FsConfig& c, const VtdFsFieldsZ& f,
                             const vtd::SsConfig& ss, const VtdAccessZ& a, VtdNestedMistake m) {
  using namespace vtd;
  z3::context& ctx = a.addr.ctx();
  const z3::expr zero = num(ctx, 0), no = ctx.bool_val(false), yes = ctx.bool_val(true);
  const VtdFetchZ none{no, no, zero, zero, zero, no, no};
  VtdNestedZ r{blank(ctx), {none, none, none, none, none, none}, no, zero, {}, {}};
  if (c.levels < 1 || size_t(c.levels) >= r.fs.size()) return r; // not a walk (fs_config)
  Outcome out(ctx);
  auto fs_fail = [&](const z3::expr& cond, FaultReason reason, int level) {
    out.decide(cond, fault(ctx, reason, false, level));
  };
  SsConfig ssc = ss;
  ssc.scalable = true; // PGTT exists only in scalable mode (fs_walk)
  // fs_walk before the walk: SRE (0x5d), ERE (0x5c), canonical (0x80).
  fs_fail(a.priv && !f.sre, FaultReason::sm_pasid_entry_sre_clear, 0);
  fs_fail(a.exec && !f.ere, FaultReason::sm_pasid_entry_ere_clear, 0);
  fs_fail(non_canonical(a.addr, c.levels), FaultReason::sm_fs_non_canonical, 0);
  z3::expr table = table_address(f.fsptptr);
  z3::expr w = yes, x = yes;
  z3::expr out_gpa = zero, out_size = zero, out_w = no, out_x = no;
  for (int level = c.levels; level >= 1; --level) {
    VtdFetchZ& fe = r.fs[size_t(level)];
    fe.gpa = entry_address(table, a.addr, level);
    fe.reached = out.live;
    z3::expr epa = fe.gpa, table_writable = yes;
    if (m != VtdNestedMistake::fs_fetch_untranslated) {
      // The entry's GPA through the second stage, as a read ([VTD] 3.8: first-stage paging-
      // structure addresses are GPAs translated by the second stage).
      const SsOutZ so = ss_walk_z(mem, ssc, fe.gpa, no, out.live, r.entries_read);
      VtdWalkZ t = blank(ctx);
      if (m == VtdNestedMistake::fetch_fault_as_output) {
        t = fault(ctx, ss_reason(so.fail, nested_output_code), true, ss_fault_level(so), fe.gpa);
      } else {
        t = fault(
            ctx,
            ss_reason(so.fail, [&](SsFail s) { return nested_fetch_code(s, level, c.levels); }),
            true, ss_fault_level(so), fe.gpa);
        t.on_fs_walk = yes;
        t.fs_level = num(ctx, unsigned(level));
      }
      out.decide(ss_failed(so), t);
      epa = so.pa;
      table_writable = so.w;
    }
    fe.read = out.live;
    fe.pa = epa;
    r.entries_read.push_back({out.live, epa, zero});
    const auto [present, e] = mem.read(epa);
    fe.word = e;
    fs_fail(!present,
            level == c.levels ? FaultReason::sm_fs_pml4_access : FaultReason::sm_fs_entry_access,
            level);
    fs_fail(!fs_present(e), FaultReason::sm_fs_entry_not_present, level);
    fs_fail(fs_user_denied(e, a.priv), FaultReason::sm_fs_user_privilege, level);
    w = w && fs_writable(e, a.priv, f.wpe);
    x = x && !fs_no_execute(e);
    fs_fail(a.write && !w, FaultReason::sm_no_write, level);
    fs_fail(a.exec && !x, FaultReason::sm_no_execute, level);
    fs_fail(fs_reserved(e, level, c.haw, c.fl1gp) != 0, FaultReason::sm_fs_entry_reserved, level);
    const z3::expr leaf = is_leaf(e, level);
    const z3::expr flags = fs_ad_flags(e, leaf, a.write);
    fe.ad_needed = out.live && fs_ad_needed(e, flags);
    // 0x77: the A/D update needs write permission on the entry's page in the second stage
    // (fs_walk; [VTD] Table 30 SFS.8).
    VtdWalkZ adf =
        fault(ctx, num(ctx, uint64_t(FaultReason::sm_nested_fs_write)), true, zero, fe.gpa);
    adf.on_fs_walk = yes;
    adf.fs_level = num(ctx, unsigned(level));
    out.decide(fs_ad_needed(e, flags) && !table_writable, adf);
    fe.ad_update = fe.ad_needed && out.live;
    r.ad_updates.push_back({fe.ad_update, epa, e | flags});
    const z3::expr now = out.live && leaf;
    out_gpa = z3::ite(now, leaf_output(leaf_base(e, level), a.addr, level), out_gpa);
    out_size = z3::ite(now, num(ctx, level_page_size(unsigned(level))), out_size);
    out_w = z3::ite(now, w, out_w);
    out_x = z3::ite(now, x && f.ere, out_x);
    VtdWalkZ ok = blank(ctx);
    ok.ok = yes;
    out.decide(leaf, ok);
    table = table_address(e);
  }
  r.final_reached = out.w.ok;
  r.final_gpa = out_gpa;
  VtdWalkZ res = out.w;
  res.read = yes;
  res.write = out_w;
  res.exec = out_x;
  res.page_size = out_size;
  if (m == VtdNestedMistake::final_gpa_untranslated) {
    res.pa = out_gpa;
  } else {
    // The output GPA through the second stage with the request's access (fs_walk's final
    // step): a failure is the walk's fault (nested_output_code), else the PA is the second
    // stage's and the permissions the AND of both (exec needs read: no second-stage X).
    const SsOutZ so = ss_walk_z(mem, ssc, out_gpa, a.write, r.final_reached, r.entries_read);
    const VtdWalkZ t =
        fault(ctx, ss_reason(so.fail, nested_output_code), true, ss_fault_level(so), out_gpa);
    res = pick(ss_failed(so), t, res);
    res.pa = so.pa;
    res.read = res.read && so.r;
    res.write = res.write && so.w;
    res.exec = res.exec && so.r;
    res.page_size = z3::ite(z3::ult(so.page_size, res.page_size), so.page_size, res.page_size);
    res = pick(r.final_reached, res, out.w);
  }
  // walk_nested: check_interrupt_range(out, acc, 2, true): 0x87 at stage 2.
  const z3::expr page = res.pa & ~(res.page_size - 1);
  const z3::expr irq = res.ok && in_interrupt_range(page, res.page_size);
  VtdWalkZ irf = fault(ctx, FaultReason::sm_interrupt_addr, true, 0);
  r.w = pick(irq, irf, res);
  return r;
}

VtdNestedWalker model_vtd_nested_walker() {
  return {"model", [](const MemZ& mem, const vtd::FsConfig& fs, const VtdFsFieldsZ& f,
                      const vtd::SsConfig& ss,
                      const VtdAccessZ& a) { return vtd_nested_walk_z(mem, fs, f, ss, a); }};
}

std::vector<std::string> vtd_nested_walker_names() {
  return {"model", "fs-fetch-untranslated", "final-gpa-untranslated", "fetch-fault-as-output"};
}

std::optional<VtdNestedWalker> vtd_nested_walker(const std::string& name) {
  VtdNestedMistake m;
  if (name == "model")
    return model_vtd_nested_walker();
  else if (name == "fs-fetch-untranslated")
    m = VtdNestedMistake::fs_fetch_untranslated;
  else if (name == "final-gpa-untranslated")
    m = VtdNestedMistake::final_gpa_untranslated;
  else if (name == "fetch-fault-as-output")
    m = VtdNestedMistake::fetch_fault_as_output;
  else
    return std::nullopt;
  return VtdNestedWalker{name, [m](const MemZ& mem, const vtd::FsConfig& fs, const VtdFsFieldsZ& f,
                                   const vtd::SsConfig& ss, const VtdAccessZ& a) {
                           return vtd_nested_walk_z(mem, fs, f, ss, a, m);
                         }};
}

} // namespace iommuspec::solvers
