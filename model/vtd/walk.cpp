// VT-d translation walk. See walk.h for the abbreviations and the summary of the rules.
#include "vtd/walk.h"

#include "vtd/walk_step.h"

#include <algorithm>

namespace iommuspec::vtd {

namespace {

// The reserved bits of an entry under a walk's configuration (walk_step.h).
uint64_t ss_reserved(const SsConfig& c, uint64_t e, int level) {
  return vtd::ss_reserved(e, level, c.haw, c.sllps, c.snp_ok, c.tm_ok);
}
uint64_t fs_reserved(const FsConfig& c, uint64_t e, int level) {
  return vtd::fs_reserved(e, level, c.haw, c.fl1gp);
}

struct SsOut {
  SsFail fail = SsFail::none;
  int level = 0;
  uint64_t pa = 0;
  bool r = false, w = false;
  uint64_t page_size = 0;
};

// The second-stage walk (Qc:vtd_iova_to_sspte).
//  - Width: gpa >= 2^width faults before any fetch (Qc:vtd_iova_ss_range_check; Linux
//    refuses to map such an IOVA, iommu.c:296-300 domain_pfn_supported).
//  - Fetch failure: at the root level QEMU reports an invalid context entry, below it an
//    invalid paging entry (Qc:vtd_iova_to_sspte, "Invalid programming of context-entry").
//  - Legacy mode follows QEMU's order exactly: at each level the bit the access needs (W
//    for a write, R otherwise) must be set, then the reserved bits are checked. A
//    not-present entry (R = W = 0) therefore fails as a permission fault.
//  - Scalable mode: not present (R = W = 0, iommu.h dma_pte_present) is its own fault
//    (dmar.c:1807, 0x79); reserved bits are checked at each level; the permission of the
//    access is checked once against the AND over all levels after the leaf (dmar.c:1817-1818,
//    0x85/0x86). Model choice: QEMU raises its legacy codes in scalable mode too, and checks
//    permission per level; with the AND over levels the accepted set is the same, only
//    which fault wins when two conditions hold differs.
SsOut ss_walk(const Memory& mem, const SsConfig& c, uint64_t gpa, bool write,
              std::vector<uint64_t>& read_log) {
  SsOut o;
  if (beyond_width(gpa, c.width)) {
    o.fail = SsFail::beyond;
    return o;
  }
  uint64_t table = table_address(c.slptptr);
  bool r = true, w = true;
  for (int level = c.levels; level >= 1; --level) {
    const uint64_t epa = entry_address(table, gpa, level);
    read_log.push_back(epa);
    const std::optional<uint64_t> got = mem.read64(epa);
    o.level = level;
    if (!got) {
      o.fail = level == c.levels ? SsFail::access_root : SsFail::access;
      return o;
    }
    const uint64_t e = *got;
    if (!c.scalable) {
      if (!any_bit(e, write ? kSsW : kSsR)) {
        o.fail = write ? SsFail::no_write : SsFail::no_read;
        return o;
      }
    } else if (!ss_present(e)) {
      o.fail = SsFail::not_present;
      return o;
    }
    if (ss_reserved(c, e, level)) {
      o.fail = SsFail::reserved;
      return o;
    }
    r = r && any_bit(e, kSsR);
    w = w && any_bit(e, kSsW);
    if (is_leaf(e, level)) {
      if (write ? !w : !r) {
        o.fail = write ? SsFail::no_write : SsFail::no_read;
        return o;
      }
      o.page_size = level_page_size(unsigned(level));
      o.pa = leaf_output(leaf_base(e, level), gpa, level);
      o.r = r;
      o.w = w;
      return o;
    }
    table = table_address(e);
  }
  return o; // unreachable: level 1 is always a leaf
}

Fault ss_fault(FaultReason reason, const SsOut& o, const Access& acc, uint64_t gpa) {
  Fault f;
  f.reason = reason;
  f.stage = 2;
  f.level = o.fail == SsFail::beyond ? 0 : o.level;
  f.addr = acc.addr;
  f.gpa = gpa;
  return f;
}

Fault fs_fault(FaultReason reason, int level, const Access& acc) {
  Fault f;
  f.reason = reason;
  f.stage = 1;
  f.level = level;
  f.addr = acc.addr;
  return f;
}

// The first-stage walk (Qc:vtd_iova_to_fspte), shared by walk_fs and walk_nested. `ss` is
// null for a first stage alone (table addresses are physical).
//
// Before the walk:
//  - supervisor request with SRE clear: 0x5d (dmar.c:1794; pasid.h:220-227);
//  - execute request with ERE clear: 0x5c (dmar.c:1793);
//  - the address must be canonical for the paging mode, 48 or 57 bits (iommu.h:56-57):
//    0x80 (Qc:vtd_iova_fs_check_canonical). DISAGREE: QEMU takes the width from
//    min(PASID-entry AW, aw-bits) rather than from the first-stage paging mode.
// At each level, in QEMU's order:
//  - fetch failure: 0x73 at the root level (Qc: VTD_FR_PASID_ENTRY_FSPTPTR_INV; Linux names
//    0x73 "Error attempting to access FL-PML4 entry", dmar.c:1801 — the same event), 0x70
//    below (dmar.c:1798);
//  - P clear: 0x71 (dmar.c:1799);
//  - U/S clear on a user request: 0x81 (dmar.c:1813). QEMU faults every request on U/S=0
//    ("No emulated device supports supervisor privilege request yet"); a supervisor request
//    here ignores U/S, as in x86 paging;
//  - write with RW clear: 0x85 (Q:VTD_FR_SM_WRITE). A supervisor write with WPE clear
//    ignores RW (pasid.h:229-236 write-protect enable);
//  - execute with XD set: 0x82 (dmar.c:1814). DISAGREE: QEMU ignores bit 63
//    (Q:VTD_FS_UPPER_IGNORED); the model follows x86 (format.h FsPte);
//  - reserved bits: 0x72 (dmar.c:1800);
//  - A is set in every entry walked and D in the leaf of a write (Qc:vtd_set_flag_in_pte),
//    recorded in ad_updates. DISAGREE (QEMU quirk): QEMU skips the update when any of the
//    flags is already set, so an A=1, D=0 leaf stays clean on a write; the model sets what is
//    missing. The A/D update failure (0x90 Linux / 0x91 QEMU) cannot happen here: the entry
//    was just read from the same backed address.
// Nested, each table fetch first translates the entry's GPA through the second stage as a
// read (Qc has no nested walk; the codes are Linux's names):
//  - GPA beyond the second-stage width: 0x74 (dmar.c:1802);
//  - second-stage entry access error / not present / reserved: 0x78 / 0x79 / 0x7a (root
//    fetch failure 0x7b), as for any second-stage walk;
//  - no read permission: 0x75 for the root (FL-PML4) table, 0x76 below (dmar.c:1803-1804);
//  - an A/D update needs write permission on that page: 0x77 (dmar.c:1805).
// The first-stage output is then a GPA translated by the second stage with the request's
// own access (beyond width: 0x74; the rest as walk_ss in scalable mode). The effective
// permission is the AND of both stages.
Walk fs_walk(const Memory& mem, const FsConfig& c, const SsConfig* ss, const Access& acc) {
  Walk out;
  if (acc.priv && !c.sre) {
    out.fault = fs_fault(FaultReason::sm_pasid_entry_sre_clear, 0, acc);
    return out;
  }
  if (acc.exec && !c.ere) {
    out.fault = fs_fault(FaultReason::sm_pasid_entry_ere_clear, 0, acc);
    return out;
  }
  if (non_canonical(acc.addr, c.levels)) { // iommu.h:56-57
    out.fault = fs_fault(FaultReason::sm_fs_non_canonical, 0, acc);
    return out;
  }
  SsConfig ssc;
  if (ss) {
    ssc = *ss;
    ssc.scalable = true; // PGTT exists only in scalable mode
  }
  uint64_t table = table_address(c.fsptptr);
  bool w = true, x = true;
  for (int level = c.levels; level >= 1; --level) {
    const uint64_t egpa = entry_address(table, acc.addr, level);
    uint64_t epa = egpa;
    bool table_writable = true;
    if (ss) {
      const SsOut so = ss_walk(mem, ssc, egpa, false, out.entries_read);
      if (so.fail != SsFail::none) {
        Fault f = ss_fault(nested_fetch_code(so.fail, level, c.levels), so, acc, egpa);
        f.on_fs_walk = true;
        f.fs_level = level;
        out.fault = f;
        return out;
      }
      epa = so.pa;
      table_writable = so.w;
    }
    out.entries_read.push_back(epa);
    const std::optional<uint64_t> got = mem.read64(epa);
    if (!got) {
      out.fault = fs_fault(level == c.levels ? FaultReason::sm_fs_pml4_access
                                             : FaultReason::sm_fs_entry_access,
                           level, acc);
      return out;
    }
    const uint64_t e = *got;
    if (!fs_present(e)) {
      out.fault = fs_fault(FaultReason::sm_fs_entry_not_present, level, acc);
      return out;
    }
    if (fs_user_denied(e, acc.priv)) {
      out.fault = fs_fault(FaultReason::sm_fs_user_privilege, level, acc);
      return out;
    }
    w = w && fs_writable(e, acc.priv, c.wpe);
    x = x && !fs_no_execute(e);
    if (acc.write && !w) {
      out.fault = fs_fault(FaultReason::sm_no_write, level, acc);
      return out;
    }
    if (acc.exec && !x) {
      out.fault = fs_fault(FaultReason::sm_no_execute, level, acc);
      return out;
    }
    if (fs_reserved(c, e, level)) {
      out.fault = fs_fault(FaultReason::sm_fs_entry_reserved, level, acc);
      return out;
    }
    const bool leaf = is_leaf(e, level);
    const uint64_t flags = fs_ad_flags(e, leaf, acc.write);
    if (fs_ad_needed(e, flags)) {
      if (!table_writable) {
        Fault f;
        f.reason = FaultReason::sm_nested_fs_write;
        f.stage = 2;
        f.on_fs_walk = true;
        f.fs_level = level;
        f.level = 0; // the permission is the second stage's, as a whole
        f.addr = acc.addr;
        f.gpa = egpa;
        out.fault = f;
        return out;
      }
      out.ad_updates.push_back({epa, e | flags});
    }
    if (leaf) {
      out.page_size = level_page_size(unsigned(level));
      out.pa = leaf_output(leaf_base(e, level), acc.addr, level);
      out.read = true;
      out.write = w;
      out.exec = x && c.ere;
      if (ss) {
        const uint64_t gpa = out.pa;
        const SsOut so = ss_walk(mem, ssc, gpa, acc.write, out.entries_read);
        if (so.fail != SsFail::none) {
          out.fault = ss_fault(nested_output_code(so.fail), so, acc, gpa);
          return out;
        }
        out.pa = so.pa;
        out.read = out.read && so.r;
        out.write = out.write && so.w;
        out.exec = out.exec && so.r; // no second-stage X position: exec is a read
        out.page_size = std::min(out.page_size, so.page_size);
      }
      return out;
    }
    table = table_address(e);
  }
  return out;
}

} // namespace

void check_interrupt_range(Walk& w, const Access& acc, int stage, bool scalable) {
  if (w.fault) return;
  const uint64_t page = w.pa & ~(w.page_size - 1);
  if (!in_interrupt_range(page, w.page_size)) return;
  Fault f;
  // Qc:vtd_do_iommu_translate: VTD_FR_SM_INTERRUPT_ADDR in scalable mode, else
  // VTD_FR_INTERRUPT_ADDR.
  f.reason = scalable ? FaultReason::sm_interrupt_addr : FaultReason::interrupt_addr;
  f.stage = stage;
  f.addr = acc.addr;
  w.fault = f;
}

std::optional<SsConfig> ss_config(const ContextEntry& ce, const CapReg& cap, unsigned haw) {
  // AW 1..3 = 3..5 levels (iommu.h:895); SAGAW bit k = AW k (Qc:vtd_is_ss_level_supported)
  if (ce.aw < 1 || ce.aw > 3 || !((cap.sagaw >> ce.aw) & 1)) return std::nullopt;
  SsConfig c;
  c.slptptr = ce.slptptr;
  c.levels = int(aw_levels(ce.aw));
  c.width = std::min(aw_width(ce.aw), cap_mgaw_bits(cap)); // Qc:vtd_iova_limit
  c.haw = haw;
  c.sllps = cap.sllps;
  c.snp_ok = false; // legacy: only with ECAP.SC, which the caller may set
  c.scalable = false;
  return c;
}

std::optional<SsConfig> ss_config(const PasidEntry& pe, const CapReg& cap, unsigned haw) {
  if (pe.aw < 1 || pe.aw > 3 || !((cap.sagaw >> pe.aw) & 1)) return std::nullopt;
  SsConfig c;
  c.slptptr = pe.slptptr;
  c.levels = int(aw_levels(pe.aw)); // Qc VTD_PE_GET_SL_LEVEL
  c.width = std::min(aw_width(pe.aw), cap_mgaw_bits(cap));
  c.haw = haw;
  c.sllps = cap.sllps;
  c.snp_ok = true; // scalable mode (Qc:vtd_init)
  c.scalable = true;
  return c;
}

std::optional<FsConfig> fs_config(const PasidEntry& pe, const CapReg& cap, unsigned haw) {
  const std::optional<unsigned> levels = fs_levels(pe.flpm);
  if (!levels) return std::nullopt;
  if (*levels == 5 && !cap.fl5lp) return std::nullopt; // iommu.h:165 cap_fl5lp_support
  FsConfig c;
  c.fsptptr = pe.flptptr;
  c.levels = int(*levels);
  c.wpe = pe.wpe;
  c.sre = pe.sre;
  c.haw = haw;
  c.fl1gp = cap.fl1gp;
  return c;
}

Walk walk_ss(const Memory& mem, const SsConfig& ss, uint64_t gpa, const Access& acc) {
  Walk out;
  const SsOut so = ss_walk(mem, ss, gpa, acc.write, out.entries_read);
  if (so.fail != SsFail::none) {
    out.fault = ss_fault(ss_code(so.fail, ss.scalable), so, acc, gpa);
    return out;
  }
  out.pa = so.pa;
  out.read = so.r;
  out.write = so.w;
  out.exec = so.r; // no second-stage X position in either source: exec is a read
  out.page_size = so.page_size;
  check_interrupt_range(out, acc, 2, ss.scalable);
  return out;
}

Walk walk_fs(const Memory& mem, const FsConfig& fs, const Access& acc) {
  Walk out = fs_walk(mem, fs, nullptr, acc);
  check_interrupt_range(out, acc, 1, true);
  return out;
}

Walk walk_nested(const Memory& mem, const FsConfig& fs, const SsConfig& ss, const Access& acc) {
  Walk out = fs_walk(mem, fs, &ss, acc);
  check_interrupt_range(out, acc, 2, true);
  return out;
}

bool apply_ad_updates(Memory& mem, const Walk& w) {
  bool ok = true;
  for (const AdUpdate& u : w.ad_updates)
    ok = mem.write64(u.pa, u.value) && ok;
  return ok;
}

// --- Resumable walks (walk.h "Building blocks for the machine") ------------------------
//
// The same rules, checks and order as ss_walk / fs_walk above. The difference: a permission
// fault no longer ends the walk. It is kept as the result (`pending`) and the walk goes on
// with the structural checks alone (fetch, present, reserved, the A flag), so that the leaf a
// cache could hold is found; a structural failure after it still yields the permission fault
// it follows, as the plain walk stops before reaching it.

namespace {

int first_denial(int cur, int level) {
  return cur != 0 ? cur : level;
}

Fault ss_fault_at(FaultReason reason, int level, const Access& acc, uint64_t gpa) {
  Fault f;
  f.reason = reason;
  f.stage = 2;
  f.level = level;
  f.addr = acc.addr;
  f.gpa = gpa;
  return f;
}

// Legacy mode checks the bit the access needs at each level (ss_walk): the highest level whose
// entry lacks it faults.
std::optional<Fault> ss_legacy_denial(const Denials& d, uint64_t gpa, const Access& acc) {
  const int level = acc.write ? d.no_w : d.no_r;
  if (level == 0) return std::nullopt;
  return ss_fault_at(ss_code(acc.write ? SsFail::no_write : SsFail::no_read, false), level, acc,
                     gpa);
}

// The checks fs_walk makes before the walk: SRE, ERE, canonical form.
std::optional<Fault> fs_precheck(const FsConfig& c, const Access& acc) {
  if (acc.priv && !c.sre) return fs_fault(FaultReason::sm_pasid_entry_sre_clear, 0, acc);
  if (acc.exec && !c.ere) return fs_fault(FaultReason::sm_pasid_entry_ere_clear, 0, acc);
  if (non_canonical(acc.addr, c.levels)) return fs_fault(FaultReason::sm_fs_non_canonical, 0, acc);
  return std::nullopt;
}

// The permission fault of one first-stage entry, in fs_walk's order within a level: U/S, R/W,
// XD.
std::optional<Fault> fs_entry_denial(const FsConfig& c, uint64_t e, int level, const Access& acc) {
  if (fs_user_denied(e, acc.priv)) return fs_fault(FaultReason::sm_fs_user_privilege, level, acc);
  if (acc.write && !fs_writable(e, acc.priv, c.wpe))
    return fs_fault(FaultReason::sm_no_write, level, acc);
  if (acc.exec && fs_no_execute(e)) return fs_fault(FaultReason::sm_no_execute, level, acc);
  return std::nullopt;
}

// The permission fault a set of first-stage denials gives: the highest level first, then the
// order within a level.
std::optional<Fault> fs_denial(const FsConfig& c, const Denials& d, const Access& acc) {
  int best_level = 0, best_order = 3;
  FaultReason best = FaultReason::software;
  auto consider = [&](int level, int order, FaultReason r) {
    if (level == 0) return;
    if (level > best_level || (level == best_level && order < best_order)) {
      best_level = level;
      best_order = order;
      best = r;
    }
  };
  if (!acc.priv) consider(d.no_us, 0, FaultReason::sm_fs_user_privilege);
  if (acc.write && !(acc.priv && !c.wpe)) consider(d.no_w, 1, FaultReason::sm_no_write);
  if (acc.exec) consider(d.xd, 2, FaultReason::sm_no_execute);
  if (best_level == 0) return std::nullopt;
  return fs_fault(best, best_level, acc);
}

// 0x77: a first-stage A/D flag must be set in an entry whose table the second stage maps
// read-only (fs_walk).
Fault nested_ad_fault(int fs_level, const Access& acc, uint64_t egpa) {
  Fault f;
  f.reason = FaultReason::sm_nested_fs_write;
  f.stage = 2;
  f.on_fs_walk = true;
  f.fs_level = fs_level;
  f.level = 0;
  f.addr = acc.addr;
  f.gpa = egpa;
  return f;
}

void append_entries(Walk& w, const Walk& t) {
  w.entries_read.insert(w.entries_read.end(), t.entries_read.begin(), t.entries_read.end());
}

} // namespace

Walk walk_ss_from(const Memory& mem, const SsConfig& c, uint64_t gpa, const Access& acc,
                  const std::optional<WalkFrom>& from) {
  Walk out;
  if (beyond_width(gpa, c.width)) {
    out.fault = ss_fault_at(ss_code(SsFail::beyond, c.scalable), 0, acc, gpa);
    return out;
  }
  uint64_t table = from ? from->table : table_address(c.slptptr);
  Denials den = from ? from->den : Denials{};
  std::optional<Fault> pending; // legacy: the first permission fault
  if (!c.scalable) pending = ss_legacy_denial(den, gpa, acc);
  auto stop = [&](SsFail f, int level) {
    out.fault = pending ? *pending : ss_fault_at(ss_code(f, c.scalable), level, acc, gpa);
    return out;
  };
  for (int level = from ? from->level : c.levels; level >= 1; --level) {
    const uint64_t epa = entry_address(table, gpa, level);
    out.entries_read.push_back(epa);
    const std::optional<uint64_t> got = mem.read64(epa);
    if (!got) return stop(level == c.levels ? SsFail::access_root : SsFail::access, level);
    const uint64_t e = *got;
    if (!(e & kSsR)) den.no_r = first_denial(den.no_r, level);
    if (!(e & kSsW)) den.no_w = first_denial(den.no_w, level);
    if (!c.scalable && !pending && !(e & (acc.write ? kSsW : kSsR)))
      pending = ss_legacy_denial(den, gpa, acc);
    if (!ss_present(e)) return stop(SsFail::not_present, level); // legacy: pending is set
    if (ss_reserved(c, e, level)) return stop(SsFail::reserved, level);
    if (is_leaf(e, level)) {
      const uint64_t size = level_page_size(unsigned(level));
      const SsLeaf leaf{level, gpa & ~(size - 1), size, e, den};
      if (pending) {
        out.fault = pending;
        out.ss_leaf = leaf;
        return out;
      }
      Walk r = ss_leaf_result(c, leaf, gpa, acc);
      r.entries_read = std::move(out.entries_read);
      r.ss_tables = std::move(out.ss_tables);
      r.ss_leaf = leaf;
      return r;
    }
    table = table_address(e);
    out.ss_tables.push_back({level - 1, table, den});
  }
  return out; // unreachable: level 1 is always a leaf
}

Walk ss_leaf_result(const SsConfig& c, const SsLeaf& leaf, uint64_t gpa, const Access& acc) {
  Walk out;
  if (beyond_width(gpa, c.width)) {
    out.fault = ss_fault_at(ss_code(SsFail::beyond, c.scalable), 0, acc, gpa);
    return out;
  }
  // Legacy: the first level lacking the bit (ss_walk's per-level check); scalable: the AND
  // over the levels, reported at the leaf.
  const int denied = acc.write ? leaf.den.no_w : leaf.den.no_r;
  if (denied != 0) {
    const SsFail f = acc.write ? SsFail::no_write : SsFail::no_read;
    out.fault = ss_fault_at(ss_code(f, c.scalable), c.scalable ? leaf.level : denied, acc, gpa);
    return out;
  }
  out.page_size = leaf.size;
  out.pa = leaf_output(leaf_base(leaf.entry, leaf.level), gpa, leaf.level);
  out.read = leaf.den.no_r == 0;
  out.write = leaf.den.no_w == 0;
  out.exec = out.read; // no second-stage X position: exec is a read
  return out;
}

void walk_fs_from(const Memory& mem, const FsConfig& c, const SsTranslate* ss, const Access& acc,
                  const std::optional<WalkFrom>& from, std::vector<Walk>& out) {
  if (const auto f = fs_precheck(c, acc)) {
    Walk w;
    w.fault = f;
    out.push_back(std::move(w));
    return;
  }
  struct Path {
    int level = 0;
    uint64_t table = 0; // a GPA when nested
    Denials den{};
    std::optional<Fault> pending;
    Walk w;
    std::optional<uint64_t> epa; // the entry's translated address (nested), once known
    bool table_writable = true;  // the second stage maps the entry's table writable
  };
  Path start;
  start.level = from ? from->level : c.levels;
  start.table = from ? from->table : table_address(c.fsptptr);
  start.den = from ? from->den : Denials{};
  start.pending = fs_denial(c, start.den, acc);
  std::vector<Path> todo;
  todo.push_back(std::move(start));
  auto finish = [&](Path& p, const std::optional<Fault>& f) {
    p.w.fault = p.pending ? p.pending : f;
    out.push_back(std::move(p.w));
  };
  while (!todo.empty()) {
    Path p = std::move(todo.back());
    todo.pop_back();
    const int level = p.level;
    const uint64_t egpa = entry_address(p.table, acc.addr, level);
    if (ss && !p.epa) {
      // Nested: the entry's GPA through the second stage, as a read (fs_walk); each
      // candidate is a branch.
      std::vector<Walk> opts;
      (*ss)(egpa, Access{acc.addr, false, false, acc.priv}, opts);
      // Pushed last to first, so that the first candidate's branch is walked (and output)
      // first: with the fresh candidate first, out.front() is the walk of current memory.
      for (size_t i = opts.size(); i-- > 0;) {
        Path q = i == 0 ? std::move(p) : p;
        append_entries(q.w, opts[i]);
        if (opts[i].fault) {
          Fault f = *opts[i].fault;
          if (f.reason == FaultReason::sm_ss_beyond_max)
            f.reason = FaultReason::sm_nested_fs_beyond_mgaw;
          if (f.reason == FaultReason::sm_no_read)
            f.reason = level == c.levels ? FaultReason::sm_nested_fs_pml4_read
                                         : FaultReason::sm_nested_fs_read;
          f.on_fs_walk = true;
          f.fs_level = level;
          finish(q, f);
        } else {
          q.epa = opts[i].pa;
          q.table_writable = opts[i].write;
          todo.push_back(std::move(q));
        }
      }
      continue;
    }
    const uint64_t epa = p.epa.value_or(egpa);
    p.epa.reset();
    p.w.entries_read.push_back(epa);
    const std::optional<uint64_t> got = mem.read64(epa);
    if (!got) {
      finish(p, fs_fault(level == c.levels ? FaultReason::sm_fs_pml4_access
                                           : FaultReason::sm_fs_entry_access,
                         level, acc));
      continue;
    }
    const uint64_t e = *got;
    if (!fs_present(e)) {
      finish(p, fs_fault(FaultReason::sm_fs_entry_not_present, level, acc));
      continue;
    }
    if (!(e & kFsUs)) p.den.no_us = first_denial(p.den.no_us, level);
    if (!(e & kFsRw)) p.den.no_w = first_denial(p.den.no_w, level);
    if (e & kFsXd) p.den.xd = first_denial(p.den.xd, level);
    if (!p.pending) p.pending = fs_entry_denial(c, e, level, acc);
    if (fs_reserved(c, e, level)) {
      finish(p, fs_fault(FaultReason::sm_fs_entry_reserved, level, acc));
      continue;
    }
    // A is set in every entry walked, whatever the access: without write permission on the
    // table's page that is a structural failure. D (leaf, writes) is per access.
    if (!(e & kFsA) && !p.table_writable) {
      finish(p, nested_ad_fault(level, acc, egpa));
      continue;
    }
    const bool leaf = is_leaf(e, level);
    if (!p.pending) {
      const uint64_t flags = fs_ad_flags(e, leaf, acc.write);
      if (fs_ad_needed(e, flags) && p.table_writable) p.w.ad_updates.push_back({epa, e | flags});
    }
    if (leaf) {
      const uint64_t size = level_page_size(unsigned(level));
      FsLeaf lf;
      lf.level = level;
      lf.base = acc.addr & ~(size - 1);
      lf.size = size;
      lf.entry = e;
      lf.den = p.den;
      lf.d_blocked = !(e & kFsD) && !p.table_writable;
      lf.entry_gpa = egpa;
      p.w.fs_leaf = lf;
      if (p.pending) {
        finish(p, std::nullopt);
        continue;
      }
      Walk r = fs_leaf_result(c, lf, acc);
      r.entries_read = std::move(p.w.entries_read);
      r.ad_updates = std::move(p.w.ad_updates);
      r.fs_tables = std::move(p.w.fs_tables);
      r.fs_leaf = lf;
      out.push_back(std::move(r));
      continue;
    }
    const uint64_t next = table_address(e);
    p.w.fs_tables.push_back({level - 1, next, p.den});
    p.level = level - 1;
    p.table = next;
    p.table_writable = true;
    todo.push_back(std::move(p));
  }
}

Walk fs_leaf_result(const FsConfig& c, const FsLeaf& leaf, const Access& acc) {
  Walk out;
  if (auto f = fs_precheck(c, acc)) {
    out.fault = f;
    return out;
  }
  if (auto f = fs_denial(c, leaf.den, acc)) {
    out.fault = f;
    return out;
  }
  if (acc.write && leaf.d_blocked) {
    out.fault = nested_ad_fault(leaf.level, acc, leaf.entry_gpa);
    return out;
  }
  out.page_size = leaf.size;
  out.pa = leaf_output(leaf_base(leaf.entry, leaf.level), acc.addr, leaf.level);
  out.read = true;
  out.write = leaf.den.no_w == 0 || (acc.priv && !c.wpe);
  out.exec = leaf.den.xd == 0 && c.ere;
  return out;
}

Walk combine_nested(Walk w, const Walk& t) {
  append_entries(w, t);
  w.ss_tables = t.ss_tables;
  w.ss_leaf = t.ss_leaf;
  if (w.fault) return w;
  if (t.fault) { // the output GPA through the second stage (fs_walk's final step)
    w.fault = t.fault;
    if (w.fault->reason == FaultReason::sm_ss_beyond_max)
      w.fault->reason = FaultReason::sm_nested_fs_beyond_mgaw;
    return w;
  }
  w.pa = t.pa;
  w.read = w.read && t.read;
  w.write = w.write && t.write;
  w.exec = w.exec && t.read; // no second-stage X position: exec is a read
  w.page_size = std::min(w.page_size, t.page_size);
  return w;
}

// --- PageTableBuilder -------------------------------------------------------------------

PageTableBuilder::PageTableBuilder(Memory& mem, Stage stage, int levels, Range pool, bool preset_ad)
    : mem_(mem), stage_(stage), levels_(levels), pool_(pool), preset_ad_(preset_ad),
      next_((pool.start + 0xfff) & ~0xfffull) {
  root_ = alloc().value_or(0);
}

std::optional<uint64_t> PageTableBuilder::alloc() {
  if (next_ < pool_.start || next_ + 0xfff > pool_.last || next_ + 0xfff < next_)
    return std::nullopt;
  const uint64_t p = next_;
  next_ += 0x1000;
  for (uint64_t off = 0; off < 0x1000; off += 8)
    mem_.write64(p + off, 0);
  pages_.push_back(p);
  return p;
}

bool PageTableBuilder::is_present(uint64_t w) const {
  return stage_ == Stage::second ? (w & (kSsR | kSsW)) != 0 : (w & kFsP) != 0;
}

uint64_t PageTableBuilder::table_entry(uint64_t next) const {
  if (stage_ == Stage::second) {
    SsPte e; // iommu.c:861 R|W
    e.r = e.w = true;
    e.addr = next;
    return encode(e);
  }
  FsPte e; // iommu.c:861-863 R|W plus US|A for first level
  e.p = e.rw = e.us = true;
  e.a = preset_ad_;
  e.addr = next;
  return encode(e);
}

uint64_t PageTableBuilder::leaf_entry(uint64_t pa, int level, const Perms& p) const {
  if (stage_ == Stage::second) {
    SsPte e;
    e.r = p.r;
    e.w = p.w;
    e.snp = p.snp;
    e.ps = level > 1;
    e.addr = pa;
    return encode(e);
  }
  FsPte e; // iommu.c:1830-1834
  e.p = true;
  e.rw = p.w;
  e.us = p.user;
  e.xd = !p.x;
  e.a = preset_ad_;
  e.d = preset_ad_ && p.w;
  e.ps = level > 1;
  e.addr = pa;
  return encode(e);
}

bool PageTableBuilder::map(uint64_t addr, uint64_t pa, uint64_t size, const Perms& perms) {
  int target = 0;
  for (int l = 1; l <= 3; ++l)
    if (size == level_page_size(unsigned(l))) target = l;
  if (target == 0 || target > levels_ || root_ == 0) return false;
  if ((addr | pa) & (size - 1)) return false;
  if (stage_ == Stage::second && !perms.r && !perms.w) return false; // would not be present
  // First pass: find conflicts and count the tables needed, writing nothing.
  uint64_t table = root_;
  int missing = 0;
  for (int level = levels_; level > target; --level) {
    const uint64_t w = mem_.read64(table + 8ull * pt_index(addr, unsigned(level))).value_or(0);
    if (!is_present(w)) {
      missing = level - target;
      break;
    }
    if (is_leaf(w, level)) return false; // inside an existing large page
    table = w & kAddr;
  }
  if (missing == 0) {
    const uint64_t w = mem_.read64(table + 8ull * pt_index(addr, unsigned(target))).value_or(0);
    if (is_present(w)) return false; // overlaps a page or a table
  }
  if (missing > 0 && (next_ > pool_.last || uint64_t(missing) * 0x1000 - 1 > pool_.last - next_))
    return false;
  // Second pass: write.
  table = root_;
  for (int level = levels_; level > target; --level) {
    const uint64_t epa = table + 8ull * pt_index(addr, unsigned(level));
    const uint64_t w = mem_.read64(epa).value_or(0);
    if (is_present(w)) {
      table = w & kAddr;
      continue;
    }
    const uint64_t t = *alloc();
    mem_.write64(epa, table_entry(t));
    table = t;
  }
  return mem_.write64(table + 8ull * pt_index(addr, unsigned(target)),
                      leaf_entry(pa, target, perms));
}

} // namespace iommuspec::vtd
