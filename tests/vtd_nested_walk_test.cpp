// solvers/vtd_nested.h against the model: the Z3 terms of the VT-d nested walk, evaluated on
// concrete random tables and requests, say what vtd::walk_nested says (outcome, PA, effective
// permissions, page size; fault reason, stage, on_fs_walk, level, fs_level, GPA; every entry
// read, second- and first-stage, in order; the A/D updates). The per-level arithmetic is
// shared (vtd/walk_step.h); this checks the control flow around it.
#include "solvers/vtd_nested.h"
#include "vtd/walk_step.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::solvers {
namespace {

using namespace vtd;

constexpr uint64_t kRam = 0x40000000, kRamLast = 0x40ffffff;       // data (outputs)
constexpr uint64_t kSsPool = 0x41000000, kSsPoolLast = 0x410fffff; // second-stage tables
constexpr uint64_t kFsPhys = 0x41800000, kFsPhysLast = 0x418fffff; // first-stage tables (PA)
constexpr uint64_t kFsGpa = 0x80000000;                            // first-stage tables (GPA)

uint64_t value(const z3::expr& e) {
  const z3::expr s = e.simplify();
  RC_ASSERT(s.is_numeral());
  return s.get_numeral_uint64();
}
bool truth(const z3::expr& e) {
  const z3::expr s = e.simplify();
  RC_ASSERT((s.is_true() || s.is_false()));
  return s.is_true();
}

// An address near one of `bases` (so that tables and mappings meet), or anywhere below 2^bits.
uint64_t gen_addr(const std::vector<uint64_t>& bases, unsigned bits, uint64_t align) {
  uint64_t a = *rc::gen::arbitrary<uint64_t>();
  if (*rc::gen::weightedElement<bool>({{4, true}, {1, false}}))
    a = *rc::gen::elementOf(bases) + (a & 0x3fffff);
  if (bits < 64) a &= (uint64_t(1) << bits) - 1;
  return a & ~(align - 1);
}

Perms gen_ss_perms() {
  Perms p;
  p.r = *rc::gen::weightedElement<bool>({{5, true}, {1, false}});
  p.w = p.r ? *rc::gen::arbitrary<bool>() : true;
  return p;
}

// The terms' outcome equals the model's walk.
void check(const Walk& w, const VtdNestedZ& n) {
  RC_ASSERT(truth(n.w.ok) == w.ok());
  if (w.ok()) {
    RC_ASSERT(value(n.w.pa) == w.pa);
    RC_ASSERT(truth(n.w.read) == w.read);
    RC_ASSERT(truth(n.w.write) == w.write);
    RC_ASSERT(truth(n.w.exec) == w.exec);
    RC_ASSERT(value(n.w.page_size) == w.page_size);
  } else {
    const Fault& f = *w.fault;
    RC_ASSERT(value(n.w.reason) == uint64_t(f.reason));
    RC_ASSERT(truth(n.w.stage2) == (f.stage == 2));
    RC_ASSERT(truth(n.w.on_fs_walk) == f.on_fs_walk);
    RC_ASSERT(value(n.w.level) == uint64_t(f.level));
    RC_ASSERT(value(n.w.fs_level) == uint64_t(f.fs_level));
    RC_ASSERT(value(n.w.gpa) == f.gpa);
  }
  std::vector<uint64_t> read;
  for (const auto& e : n.entries_read)
    if (truth(e.cond)) read.push_back(value(e.pa));
  RC_ASSERT(read == w.entries_read);
  std::vector<AdUpdate> ad;
  for (const auto& u : n.ad_updates)
    if (truth(u.cond)) ad.push_back({value(u.pa), value(u.value)});
  RC_ASSERT(ad == w.ad_updates);
}

RC_GTEST_PROP(VtdNestedWalkZ, AgreesWithWalkNested, ()) {
  Memory mem;
  mem.add_region({kRam, kRamLast});
  mem.add_region({kSsPool, kSsPoolLast});
  mem.add_region({kFsPhys, kFsPhysLast});
  // Second stage: 3, 4 or 5 levels (AW 1..3: 39, 48, 57 bits).
  const int ss_levels = *rc::gen::weightedElement<int>({{2, 3}, {4, 4}, {1, 5}});
  SsConfig ss;
  ss.levels = ss_levels;
  ss.width = aw_width(uint8_t(ss_levels - 2));
  ss.sllps = *rc::gen::weightedElement<uint8_t>({{6, 0b11}, {1, 0b01}, {1, 0b00}});
  ss.snp_ok = *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  ss.tm_ok = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  PageTableBuilder b2(mem, Stage::second, ss_levels, {kSsPool, kSsPoolLast});
  ss.slptptr = b2.root();
  // Most runs map the first-stage tables' GPAs (a 2MB page, or just their first pages).
  if (*rc::gen::weightedElement<bool>({{6, true}, {1, false}})) {
    Perms p = gen_ss_perms();
    p.r = *rc::gen::weightedElement<bool>({{8, true}, {1, false}});
    if (!p.r) p.w = true;
    if (*rc::gen::arbitrary<bool>())
      b2.map(kFsGpa, kFsPhys, 0x200000, p);
    else
      for (uint64_t off = 0; off < 0x8000; off += 0x1000)
        b2.map(kFsGpa + off, kFsPhys + off, 0x1000, p);
  }
  const std::vector<uint64_t> gpas{kFsGpa, 0x90000000, 0x100000000, 0, 0x7fffe00000};
  std::vector<std::pair<uint64_t, uint64_t>> mapped; // second stage: GPA, size
  const int n2 = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n2; ++i) {
    const uint64_t size = *rc::gen::element<uint64_t>(0x1000, 0x1000, 0x200000, 0x40000000);
    const uint64_t gpa = gen_addr(gpas, ss.width, size);
    const uint64_t pa =
        *rc::gen::elementOf(std::vector<uint64_t>{kRam, kFsPhys, kSsPool, kIntrFirst}) +
        (*rc::gen::arbitrary<uint64_t>() & 0xfffff);
    if (b2.map(gpa, pa & ~(size - 1), size, gen_ss_perms())) mapped.emplace_back(gpa, size);
  }
  // First stage: built at its GPAs in a scratch memory, then stored at kFsPhys.
  const int fs_levels = *rc::gen::weightedElement<int>({{4, 4}, {1, 5}});
  Memory scratch;
  scratch.add_region({kFsGpa, kFsGpa + 0xfffff});
  PageTableBuilder b1(scratch, Stage::first, fs_levels, {kFsGpa, kFsGpa + 0xfffff},
                      *rc::gen::weightedElement<bool>({{3, true}, {1, false}}));
  std::vector<std::pair<uint64_t, uint64_t>> leaves; // first stage: address, size
  const int n1 = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n1; ++i) {
    const uint64_t size = *rc::gen::element<uint64_t>(0x1000, 0x1000, 0x200000, 0x40000000);
    const uint64_t addr = gen_addr({0, 0x10000, 0x7fffffe00000}, 47, size);
    uint64_t gpa = gen_addr(gpas, 52, size); // mostly an output GPA the second stage maps
    if (!mapped.empty() && *rc::gen::weightedElement<bool>({{6, true}, {1, false}})) {
      const auto [at, len] = *rc::gen::elementOf(mapped);
      gpa = (at + (*rc::gen::arbitrary<uint64_t>() & (len - 1))) & ~(size - 1);
    }
    Perms p;
    p.w = *rc::gen::arbitrary<bool>();
    p.x = *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
    p.user = *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
    if (b1.map(addr, gpa, size, p)) leaves.emplace_back(addr, size);
  }
  for (const auto& [at, word] : scratch.words())
    mem.write64(kFsPhys + (at - kFsGpa), word);
  // Some entries of either stage overwritten with arbitrary bits.
  const int corrupt = *rc::gen::weightedElement<int>({{4, 0}, {1, 1}, {1, 2}});
  for (int i = 0; i < corrupt && !mem.words().empty(); ++i) {
    const auto& ws = mem.words();
    const uint64_t at = ws[*rc::gen::inRange<size_t>(0, ws.size())].first;
    mem.write64(at, *rc::gen::arbitrary<uint64_t>());
  }
  FsConfig fs;
  fs.levels = fs_levels;
  fs.fsptptr = *rc::gen::weightedElement<bool>({{8, true}, {1, false}})
                   ? b1.root()
                   : gen_addr(gpas, 64, 1) | (*rc::gen::arbitrary<uint64_t>() & 0xfff);
  fs.wpe = *rc::gen::arbitrary<bool>();
  fs.sre = *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  fs.ere = *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  fs.fl1gp = *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  Access a;
  a.addr = gen_addr({0, 0x10000}, *rc::gen::weightedElement<unsigned>({{8, 47}, {1, 64}}), 1);
  if (!leaves.empty() && *rc::gen::weightedElement<bool>({{8, true}, {1, false}})) {
    const auto [at, len] = *rc::gen::elementOf(leaves);
    a.addr = at + (*rc::gen::arbitrary<uint64_t>() & (len - 1));
  }
  a.write = *rc::gen::weightedElement<bool>({{3, false}, {1, true}});
  a.exec = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  a.priv = *rc::gen::weightedElement<bool>({{1, false}, {1, true}});
  const Walk w = walk_nested(mem, fs, ss, a);

  z3::context c;
  const VtdAccessZ az{c.bv_val(a.addr, 64), c.bool_val(a.write), c.bool_val(a.exec),
                      c.bool_val(a.priv)};
  const VtdFsFieldsZ fz{c.bv_val(fs.fsptptr, 64), c.bool_val(fs.wpe), c.bool_val(fs.sre),
                        c.bool_val(fs.ere)};
  // Memory read concretely once an address is known (memory_z is checked against
  // Memory::read64 in nested_walk_test.cpp).
  const MemZ concrete{[&](const z3::expr& pa) {
    const auto v = mem.read64(value(pa));
    return std::pair{c.bool_val(v.has_value()), c.bv_val(v.value_or(0), 64)};
  }};
  check(w, vtd_nested_walk_z(concrete, fs, fz, ss, az));
  RC_TAG(w.fault
             ? "stage " + std::to_string(w.fault->stage) + " fault " +
                   std::to_string(int(w.fault->reason)) + (w.fault->on_fs_walk ? " (fs walk)" : "")
             : std::string("ok"));
}

} // namespace
} // namespace iommuspec::solvers
