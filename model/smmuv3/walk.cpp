// The SMMUv3 translation walk. See walk.h for the source tags.
#include "smmuv3/walk.h"

#include "smmuv3/walk_step.h"

#include <algorithm>
#include <type_traits>
#include <variant>

namespace iommuspec::smmuv3 {

namespace {

constexpr uint64_t bit(unsigned n) {
  return n >= 64 ? 0 : uint64_t(1) << n;
}
bool fits(uint64_t addr, unsigned bits) {
  return fits_bits(addr, bits);
}

// One of the sizes oas_bits() decodes (L:68-74 IDR5_OAS_*_BIT).
bool known_oas(unsigned bits) {
  switch (bits) {
  case 32:
  case 36:
  case 40:
  case 42:
  case 44:
  case 48:
  case 52:
    return true;
  default:
    return false;
  }
}

bool geometry_ok(const Geometry& geo) {
  if (geo.start < 0 || geo.start > 3) return false;
  if (geo.ia_bits <= level_shift(geo.g, geo.start)) return false;
  // At most 16 concatenated start tables: P:27 ARM_LPAE_S2_MAX_CONCAT_PAGES,
  // [QV] s2_pgtable_config_valid (VMSA_MAX_S2_CONCAT).
  return geo.start_index_bits() <= bits_per_level(geo.g) + 4;
}

// An access against granted permissions: a write needs write, an instruction fetch needs
// execute, any other access needs read ([QI] is_permission_fault / is_permission_fault_s2
// test the IOMMU_RO/IOMMU_WO bits; exec is the model's extension, see README).
bool permits(const Perms& p, const Access& a) {
  return smmuv3::permits(PermsOf<bool>{p.read, p.write, p.exec}, a.write, a.exec);
}

Fault make_fault(FaultClass cls, int stage, int level, uint64_t input) {
  Fault f;
  f.cls = cls;
  f.stage = stage;
  f.level = level;
  f.input_addr = input;
  return f;
}

void append_reads(Walk& w, const Walk& t) {
  w.descriptors_read.insert(w.descriptors_read.end(), t.descriptors_read.begin(),
                            t.descriptors_read.end());
}

Fault s2_fault(FaultClass cls, int level, const Access& a, uint64_t ipa) {
  Fault f = make_fault(cls, 2, level, a.iova);
  f.ipa = ipa; // [QC] smmu_ptw_64_s2 error_ipa: info->addr = ipa
  return f;
}

// Stage-2 walk of one IPA (final IPA, or a stage-1 descriptor address when nested), from the
// root or from a cached table descriptor (`from`).
Walk s2_walk(const Memory& mem, const S2Config& c, uint64_t ipa, const Access& a,
             const std::optional<WalkFrom>& from) {
  Walk w;
  w.descriptors_read.reserve(4);
  w.s2_tables.reserve(3);
  auto fail = [&](FaultClass cls, int level) {
    w.fault = s2_fault(cls, level, a, ipa);
    return w;
  };
  if (!s2_config_valid(c)) return fail(FaultClass::bad_config, 0);
  const unsigned ia_bits = 64 - c.s2t0sz;
  // [QC] smmu_ptw_64_s2: "a stage 2 Translation fault occurs if the IPA is outside the
  // range configured by the relevant S2T0SZ field". No level is named; the model says 0.
  if (!fits(ipa, ia_bits)) return fail(FaultClass::translation, 0);
  const Geometry geo{c.granule, ia_bits, s2_start_level(c)};
  const unsigned ps = eff_oas(c.ps_bits, c.granule);
  const DescFormat fmt{c.granule, Stage::s2, oa52(ps, c.granule)};
  uint64_t table = from ? from->table : geo.align_root(c.s2ttb);
  for (int level = from ? from->level : geo.start; level <= 3; ++level) {
    const uint64_t desc_pa = geo.desc_addr(table, ipa, level);
    w.descriptors_read.push_back(desc_pa);
    const auto word = mem.read64(desc_pa);
    if (!word) { // [QC] get_pte: SMMU_PTW_ERR_WALK_EABT, info->addr = the descriptor address
      Walk r = fail(FaultClass::walk_eabt, level);
      r.fault->fetch_pa = desc_pa;
      return r;
    }
    const Descriptor d = decode_descriptor(*word, fmt, level);
    if (const auto* t = std::get_if<TableDesc>(&d)) {
      // Next-level table address beyond S2PS: address-size fault at this level (the model
      // applies [QC]'s output-address rule to table addresses too; see README).
      if (!fits(t->next_table, ps)) return fail(FaultClass::addr_size, level);
      table = t->next_table;
      w.s2_tables.push_back({level + 1, table, {}});
      continue;
    }
    const auto* leaf = std::get_if<S2Leaf>(&d);
    // Invalid, reserved at level 3, or a block where the granule has none: translation
    // fault ([QI] is_invalid_pte / is_reserved_pte; format.h block_allowed).
    if (!leaf) return fail(FaultClass::translation, level);
    // [QC] "If S2AFFD and PTE.AF are 0 => fault ... An Access fault takes priority over a
    // Permission fault." An entry that faults on AF is not one a TLB holds (see machine.h).
    if (!leaf->af && !c.affd) return fail(FaultClass::access_flag, level);
    const uint64_t size = bit(level_shift(c.granule, level));
    w.s2_entry = S2Entry{level, ipa & ~(size - 1), size, *leaf};
    Walk r = s2_entry_result(c, *w.s2_entry, ipa, a);
    r.descriptors_read = std::move(w.descriptors_read);
    r.s2_tables = std::move(w.s2_tables);
    r.s2_entry = w.s2_entry;
    return r;
  }
  return fail(FaultClass::translation, 3); // unreachable: level 3 has no table descriptor
}

// Stage-1 walk; when s2 is set, every descriptor address is an IPA translated by stage 2
// first ([QC] translate_table_addr_ipa, and decode_cd for TTB0). The stage-2 translation may
// have several candidate results (cached entries, see machine.cpp): the walk branches on
// them and appends one Walk per path to `out`.
void s1_walk(const Memory& mem, const S1Config& c, const S2Translate* s2, const Access& a,
             const std::optional<WalkFrom>& from, std::vector<Walk>& out) {
  Walk w0;
  w0.descriptors_read.reserve(s2 ? 24 : 4);
  w0.s1_descriptors_read.reserve(4);
  w0.s1_tables.reserve(3);
  auto fail = [&](Walk& w, FaultClass cls, int level) {
    w.fault = make_fault(cls, 1, level, a.iova);
    out.push_back(std::move(w));
  };
  if (!s1_config_valid(c)) return fail(w0, FaultClass::bad_config, 0);
  if (c.epd0) return fail(w0, FaultClass::translation, 0); // [QC] "!tt || tt->disabled"
  const unsigned ia_bits = 64 - c.t0sz;
  // [QC] select_tt: with TTB1 not configured, an IOVA whose bits above 64-T0SZ are not all
  // zero selects no table, a stage-1 translation fault. No level is named; the model says 0.
  if (!fits(a.iova, ia_bits)) return fail(w0, FaultClass::translation, 0);
  const Geometry geo{c.granule, ia_bits, s1_start_level(c)};
  const unsigned oas = eff_oas(c.oas_bits, c.granule);
  const DescFormat fmt{c.granule, Stage::s1, oa52(oas, c.granule)};

  struct Path {
    int level;
    uint64_t table;
    HierAttrs attrs; // hierarchical attributes gathered so far (H:217-219, H:146-147)
    Walk w;
    std::optional<uint64_t> desc_pa = {}; // this level's descriptor, already through stage 2
  };
  std::vector<Path> todo;
  todo.push_back(from ? Path{from->level, from->table, from->attrs, std::move(w0)}
                      : Path{geo.start, geo.align_root(c.ttb0), HierAttrs{}, std::move(w0)});
  while (!todo.empty()) {
    Path p = std::move(todo.back());
    todo.pop_back();
    const uint64_t desc_addr = geo.desc_addr(p.table, a.iova, p.level);
    if (s2 && !p.desc_pa) {
      // Stage-1 table walks are reads in IPA space ([QC] translate_table_addr_ipa calls
      // smmu_translate(..., IOMMU_RO) at stage 2). A fault there is a stage-2 fault with
      // CLASS=TT ([QV] SMMU_CLASS_TT; info->is_ipa_descriptor), IPA = the descriptor IPA.
      Access ra = a;
      ra.write = false;
      ra.exec = false;
      std::vector<Walk> opts;
      (*s2)(desc_addr, ra, opts);
      for (size_t i = 0; i < opts.size(); ++i) {
        Path q = i + 1 == opts.size() ? std::move(p) : p;
        append_reads(q.w, opts[i]);
        if (opts[i].fault) {
          q.w.fault = opts[i].fault;
          q.w.fault->s2_on_s1_walk = true;
          out.push_back(std::move(q.w));
        } else {
          q.desc_pa = opts[i].pa;
          todo.push_back(std::move(q));
        }
      }
      continue;
    }
    const uint64_t desc_pa = p.desc_pa.value_or(desc_addr);
    p.desc_pa.reset();
    p.w.descriptors_read.push_back(desc_pa);
    p.w.s1_descriptors_read.push_back(desc_pa);
    const auto word = mem.read64(desc_pa);
    if (!word) { // [QC] get_pte -> WALK_EABT, reported at stage 1 (smmu_ptw_64_s1 "error:")
      p.w.fault = make_fault(FaultClass::walk_eabt, 1, p.level, a.iova);
      p.w.fault->fetch_pa = desc_pa;
      out.push_back(std::move(p.w));
      continue;
    }
    const Descriptor d = decode_descriptor(*word, fmt, p.level);
    if (const auto* t = std::get_if<TableDesc>(&d)) {
      if (!fits(t->next_table, oas)) {
        fail(p.w, FaultClass::addr_size, p.level);
        continue;
      }
      if (!c.had) {
        p.attrs.no_write |= (t->ap_table & 2) != 0;  // APTable[1]: no write below ([QI])
        p.attrs.no_unpriv |= (t->ap_table & 1) != 0; // APTable[0]: no EL0 access below
        p.attrs.pxn |= t->pxn_table;
        p.attrs.uxn |= t->xn_table;
      }
      p.w.s1_tables.push_back({p.level + 1, t->next_table, p.attrs});
      todo.push_back({p.level + 1, t->next_table, p.attrs, std::move(p.w)});
      continue;
    }
    const auto* leaf = std::get_if<S1Leaf>(&d);
    if (!leaf) {
      fail(p.w, FaultClass::translation, p.level);
      continue;
    }
    // [QC] "if AFFD and PTE.AF are 0 we take an Access flag fault ... An Access flag fault
    // takes priority over a Permission fault."
    if (!leaf->af && !c.affd) {
      fail(p.w, FaultClass::access_flag, p.level);
      continue;
    }
    const uint64_t size = bit(level_shift(c.granule, p.level));
    const S1Entry e{p.level, a.iova & ~(size - 1), size, *leaf, p.attrs};
    Walk r = s1_entry_result(c, e, a);
    r.descriptors_read = std::move(p.w.descriptors_read);
    r.s1_descriptors_read = std::move(p.w.s1_descriptors_read);
    r.s1_tables = std::move(p.w.s1_tables);
    r.s1_entry = e;
    out.push_back(std::move(r));
  }
}

} // namespace

// ---- Configuration ------------------------------------------------------------------------

// Effective output size. 52-bit output needs the 64K granule (format.h: LPA2 is not
// modelled); [QV] decode_ste_s2_cfg caps eff_ps at 48 "unless STE.S2TG indicates a 64KB
// granule". The model applies the same cap to CD.IPS.
unsigned eff_oas(unsigned bits, Granule g) {
  return g == Granule::g64k ? bits : std::min(bits, 48u);
}
bool oa52(unsigned bits, Granule g) {
  return g == Granule::g64k && bits > 48; // P:883-886 (oas > 48 adds the 52-bit layout)
}

int s1_start_level(const S1Config& c) {
  return start_level(c.granule, 64u - c.t0sz); // H:26; [QC] level = 4 - (inputsize-4)/stride
}

int s2_start_level(const S2Config& c) {
  // [QI] get_start_level: 4K 2 - SL0, 16K/64K 3 - SL0. Linux writes the inverse
  // (P:1104-1125: sl = start_level, +1 for 4K; vtcr->sl = ~sl & 3).
  return c.granule == Granule::g4k ? 2 - int(c.s2sl0 & 3) : 3 - int(c.s2sl0 & 3);
}

bool s1_config_valid(const S1Config& c) {
  if (c.epd0) return true; // [QV] decode_cd skips a disabled table's checks
  // [QV] decode_cd: "if (tsz < 16 || tsz > 39) goto bad_cd".
  if (c.t0sz < 16 || c.t0sz > 39) return false;
  if (!known_oas(c.oas_bits)) return false;
  // [QV] decode_cd: "if (tt->ttb & ~(MAKE_64BIT_MASK(0, cfg->oas))) goto bad_cd".
  if (!fits(c.ttb0, eff_oas(c.oas_bits, c.granule))) return false;
  return geometry_ok({c.granule, 64u - c.t0sz, s1_start_level(c)});
}

bool s2_config_valid(const S2Config& c) {
  if (!known_oas(c.ps_bits)) return false;
  const unsigned ps = eff_oas(c.ps_bits, c.granule);
  // [QV] s2t0sz_valid: tsz <= 39; tsz >= 64 - eff_ps, and >= 16 unless 64K.
  if (c.s2t0sz > 39 || c.s2t0sz < 64 - ps) return false;
  if (c.granule != Granule::g64k && c.s2t0sz < 16) return false;
  if (!fits(c.s2ttb, ps)) return false;
  // [QV] s2_pgtable_config_valid (at most 16 concatenated tables); the model also rejects a
  // start level that resolves no input bit, or a level outside 0..3 (4K SL0=3).
  return geometry_ok({c.granule, 64u - c.s2t0sz, s2_start_level(c)});
}

std::optional<S1Config> s1_config(const Cd& cd) {
  // [QV] decode_cd: bad CD unless V and AArch64; ENDI (big-endian) and HA/HD ("HTTU = 0")
  // are rejected as QEMU does, since the walk is little-endian and never writes.
  if (!cd.v || !cd.aa64 || cd.endi || cd.ha || cd.hd) return std::nullopt;
  const auto g = granule_from_tg0(cd.tg0);
  const auto ips = oas_bits(cd.ips);
  if (!g || !ips) return std::nullopt;
  S1Config c;
  c.ttb0 = cd.ttb0;
  c.t0sz = cd.t0sz;
  c.granule = *g;
  c.oas_bits = *ips;
  c.epd0 = cd.epd0;
  c.affd = cd.affd;
  c.had = cd.had0;
  c.asid = cd.asid;
  if (!s1_config_valid(c)) return std::nullopt;
  return c;
}

std::optional<S2Config> s2_config(const Ste& ste) {
  // [QV] decode_ste_s2_cfg: S2AA64 required (AArch32 tables unimplemented), S2TG decoded,
  // eff_ps from S2PS; S2ENDI / S2HA / S2HD rejected as for the CD.
  if (!ste.s2_aa64 || ste.s2_endi || ste.s2_ha || ste.s2_hd) return std::nullopt;
  const auto g = granule_from_tg0(ste.s2_tg);
  const auto ps = oas_bits(ste.s2_ps);
  if (!g || !ps) return std::nullopt;
  S2Config c;
  c.s2ttb = ste.s2_ttb;
  c.s2t0sz = ste.s2_t0sz;
  c.s2sl0 = ste.s2_sl0;
  c.granule = *g;
  c.ps_bits = *ps;
  c.affd = ste.s2_affd;
  c.s2ptw = ste.s2_ptw;
  c.vmid = ste.s2_vmid;
  if (!s2_config_valid(c)) return std::nullopt;
  return c;
}

EventType event_type(FaultClass cls, int stage) {
  switch (cls) {
  case FaultClass::translation:
    return EventType::f_translation;
  case FaultClass::addr_size:
    return EventType::f_addr_size;
  case FaultClass::access_flag:
    return EventType::f_access;
  case FaultClass::permission:
    return EventType::f_permission;
  case FaultClass::walk_eabt:
    return EventType::f_walk_eabt;
  case FaultClass::bad_config:
    return stage == 2 ? EventType::c_bad_ste : EventType::c_bad_cd;
  }
  return EventType::f_uut;
}

// ---- Walks --------------------------------------------------------------------------------

Walk s1_entry_result(const S1Config& c, const S1Entry& e, const Access& a) {
  Walk w;
  // AP[2:1]: AP[2] read-only (H:163 PTE_RDONLY, P:97), AP[1] EL0 access (H:162 PTE_USER,
  // P:96 AP_UNPRIV). PXN/UXN (H:170-171). QEMU checks only AP[2] against writes.
  // walk_step.h s1_perms.
  const bool ro = (e.leaf.ap & 2) || e.attrs.no_write;
  const bool user = (e.leaf.ap & 1) && !e.attrs.no_unpriv;
  const auto g =
      s1_perms<bool>(ro, user, e.leaf.pxn || e.attrs.pxn, e.leaf.uxn || e.attrs.uxn, a.priv);
  Perms p;
  p.unpriv = user;
  p.read = g.read;
  p.write = g.write;
  p.exec = g.exec;
  if (!permits(p, a)) {
    w.fault = make_fault(FaultClass::permission, 1, e.level, a.iova);
    return w;
  }
  // [QC] "a stage 1 Address Size fault if it exceeds the range of the effective IPA size".
  if (!fits(e.leaf.oa, eff_oas(c.oas_bits, c.granule))) {
    w.fault = make_fault(FaultClass::addr_size, 1, e.level, a.iova);
    return w;
  }
  w.page_size = e.size;
  w.pa = leaf_output(e.leaf.oa, a.iova, e.size);
  w.perms = p;
  return w;
}

Walk s2_entry_result(const S2Config& c, const S2Entry& e, uint64_t ipa, const Access& a) {
  Walk w;
  // S2AP[0] read, S2AP[1] write, XN = bit 54 (walk_step.h s2_perms; [QI]
  // is_permission_fault_s2; P:78 sets 53+54).
  const auto g = s2_perms<bool>(e.leaf.s2ap & 1, e.leaf.s2ap & 2, e.leaf.xn & 2);
  Perms p;
  p.read = g.read;
  p.write = g.write;
  p.exec = g.exec;
  p.unpriv = true;
  if (!permits(p, a)) {
    w.fault = s2_fault(FaultClass::permission, e.level, a, ipa);
    return w;
  }
  // [QC] "a stage 2 Address Size fault if it exceeds the effective PA output range".
  if (!fits(e.leaf.oa, eff_oas(c.ps_bits, c.granule))) {
    w.fault = s2_fault(FaultClass::addr_size, e.level, a, ipa);
    return w;
  }
  w.page_size = e.size;
  w.pa = leaf_output(e.leaf.oa, ipa, e.size);
  w.perms = p;
  return w;
}

Walk combine_nested(Walk w, const Walk& t) {
  append_reads(w, t);
  w.s2_tables = t.s2_tables;
  w.s2_entry = t.s2_entry;
  if (t.fault) { // the output IPA through stage 2: CLASS=IN ([QC] smmu_ptw SMMU_NESTED)
    w.fault = t.fault;
    return w;
  }
  // [QC] combine_tlb: the smaller page size; PA from the stage-2 entry; both stages'
  // permissions apply (perm and parent_perm).
  w.pa = t.pa;
  w.page_size = std::min(w.page_size, t.page_size);
  w.perms.read = w.perms.read && t.perms.read;
  w.perms.write = w.perms.write && t.perms.write;
  w.perms.exec = w.perms.exec && t.perms.exec;
  return w;
}

void walk_s1_from(const Memory& mem, const S1Config& c, const S2Translate* s2, const Access& a,
                  const std::optional<WalkFrom>& from, std::vector<Walk>& out) {
  s1_walk(mem, c, s2, a, from, out);
}

Walk walk_s2_from(const Memory& mem, const S2Config& c, uint64_t ipa, const Access& a,
                  const std::optional<WalkFrom>& from) {
  Access in = a;
  in.iova = ipa;
  return s2_walk(mem, c, ipa, in, from);
}

Walk walk_s1(const Memory& mem, const S1Config& c, const Access& a) {
  std::vector<Walk> out;
  s1_walk(mem, c, nullptr, a, std::nullopt, out);
  return std::move(out.front());
}

Walk walk_s2(const Memory& mem, const S2Config& c, uint64_t ipa, const Access& a) {
  return walk_s2_from(mem, c, ipa, a, std::nullopt);
}

Walk walk_nested(const Memory& mem, const S1Config& s1, const S2Config& s2, const Access& a) {
  // [QC] smmu_ptw, SMMU_NESTED: the stage-1 walk (its table addresses through stage 2), then
  // the output IPA through stage 2 with the same access; a fault there is CLASS=IN.
  if (!s2_config_valid(s2)) {
    Walk w;
    w.fault = make_fault(FaultClass::bad_config, 2, 0, a.iova);
    return w;
  }
  const S2Translate tr = [&](uint64_t ipa, const Access& ra, std::vector<Walk>& out) {
    out.push_back(s2_walk(mem, s2, ipa, ra, std::nullopt));
  };
  std::vector<Walk> out;
  s1_walk(mem, s1, &tr, a, std::nullopt, out);
  Walk w = std::move(out.front());
  if (w.fault) return w;
  const Walk t = s2_walk(mem, s2, w.pa, a, std::nullopt);
  return combine_nested(std::move(w), t);
}

// ---- PageTableBuilder ---------------------------------------------------------------------

PageTableBuilder::PageTableBuilder(Memory& mem, Range pool, DescFormat f, unsigned ia_bits,
                                   int start_level)
    : mem_(&mem), pool_(pool), next_(pool.start), fmt_(f), ia_bits_(ia_bits),
      start_level_(start_level) {
  const Geometry geo{f.granule, ia_bits, start_level};
  // The root holds 2^start_index_bits entries; tables are at least granule-aligned.
  const uint64_t bytes =
      std::max<uint64_t>(uint64_t(8) << geo.start_index_bits(), bit(granule_shift(f.granule)));
  if (auto r = alloc(bytes)) {
    root_ = *r;
  } else {
    ok_ = false;
  }
}

PageTableBuilder PageTableBuilder::stage1(Memory& mem, Range pool, Granule g, unsigned ia_bits,
                                          bool oa52_) {
  return PageTableBuilder(mem, pool, DescFormat{g, Stage::s1, oa52_}, ia_bits,
                          smmuv3::start_level(g, ia_bits));
}

PageTableBuilder PageTableBuilder::stage2(Memory& mem, Range pool, const S2Config& c) {
  const unsigned ps = eff_oas(c.ps_bits, c.granule);
  return PageTableBuilder(mem, pool, DescFormat{c.granule, Stage::s2, oa52(ps, c.granule)},
                          64u - c.s2t0sz, s2_start_level(c));
}

std::optional<uint64_t> PageTableBuilder::alloc(uint64_t bytes) {
  // Aligned to its own size (a power of two); the memory reads as zero (invalid) until
  // written, so a fresh table needs no clearing as long as the pool was never written.
  const uint64_t at = (next_ + bytes - 1) & ~(bytes - 1);
  if (at < next_ || at + bytes - 1 > pool_.last || at + bytes - 1 < at) return std::nullopt;
  next_ = at + bytes;
  return at;
}

uint64_t PageTableBuilder::index(uint64_t ia, int level) const {
  return Geometry{fmt_.granule, ia_bits_, start_level_}.index(ia, level);
}

std::optional<uint64_t> PageTableBuilder::slot(uint64_t iova, int level) const {
  if (!ok_ || level < start_level_ || level > 3 || !fits(iova, ia_bits_)) return std::nullopt;
  uint64_t table = root_;
  for (int l = start_level_;; ++l) {
    const uint64_t at = table + 8 * index(iova, l);
    if (l == level) return at;
    const auto word = mem_->read64(at + offset_);
    if (!word) return std::nullopt;
    const Descriptor d = decode_descriptor(*word, fmt_, l);
    const auto* t = std::get_if<TableDesc>(&d);
    if (!t) return std::nullopt;
    table = t->next_table;
  }
}

bool PageTableBuilder::map(uint64_t iova, uint64_t pa, uint64_t size, const Perms& p, bool af) {
  if (!ok_ || size == 0 || (size & (size - 1))) return false;
  int level = -1;
  for (int l = start_level_; l <= 3; ++l)
    if (bit(level_shift(fmt_.granule, l)) == size) level = l;
  if (level < 0) return false;
  if (level < 3 && !block_allowed(fmt_.granule, level, fmt_.oa52)) return false;
  if ((iova | pa) & (size - 1)) return false;
  if (!fits(iova + size - 1, ia_bits_) || iova + size - 1 < iova) return false;
  uint64_t table = root_;
  for (int l = start_level_; l < level; ++l) {
    const uint64_t at = table + 8 * index(iova, l);
    const auto word = mem_->read64(at + offset_);
    if (!word) return false;
    const Descriptor d = decode_descriptor(*word, fmt_, l);
    if (const auto* t = std::get_if<TableDesc>(&d)) {
      table = t->next_table;
      continue;
    }
    if (*word & 1) return false; // a leaf already covers this range
    const auto fresh = alloc(bit(granule_shift(fmt_.granule)));
    if (!fresh) return false;
    TableDesc td;
    td.next_table = *fresh;
    if (!mem_->write64(at + offset_, encode(Descriptor{td}, fmt_, l))) return false;
    table = *fresh;
  }
  const uint64_t at = table + 8 * index(iova, level);
  const auto old = mem_->read64(at + offset_);
  if (!old || (*old & 1)) return false; // occupied by a leaf or a table
  Descriptor leaf;
  if (fmt_.stage == Stage::s1) {
    // P:450-458 arm_lpae_prot_to_pte (stage 1): nG, AP_RDONLY unless writable, AP_UNPRIV
    // unless IOMMU_PRIV; P:499-500 XN (both PXN and UXN) for IOMMU_NOEXEC; P:505 AF.
    S1Leaf l;
    l.oa = pa;
    l.ng = true;
    l.ap = uint8_t((p.write ? 0 : 2) | (p.unpriv ? 1 : 0));
    l.pxn = l.uxn = !p.exec;
    l.af = af;
    l.sh = 3;
    leaf = l;
  } else {
    // P:460-464 HAP read/write; XN at bit 54 only (K:87) so that XN means "no execute" with
    // or without XNX.
    S2Leaf l;
    l.oa = pa;
    l.s2ap = uint8_t((p.read ? 1 : 0) | (p.write ? 2 : 0));
    l.xn = p.exec ? 0 : 2;
    l.af = af;
    l.sh = 3;
    l.mem_attr = 0xf; // P:109 MEMATTR_OIWB
    leaf = l;
  }
  return mem_->write64(at + offset_, encode(leaf, fmt_, level));
}

} // namespace iommuspec::smmuv3
