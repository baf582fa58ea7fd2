// solvers/nested.h against the model: the Z3 terms of the nested walk, evaluated on concrete
// random tables and accesses, say what smmuv3::walk_nested says (outcome, PA, fault class,
// stage, CLASS=TT flag, level, IPA, fetch address, and the stage-1 descriptors read). The
// per-level arithmetic is shared (smmuv3/walk_step.h); this checks the control flow around it.
#include "solvers/nested.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::solvers {
namespace {

using namespace smmuv3;

constexpr uint64_t kRam = 0x40000000, kRamLast = 0x40ffffff;       // data (outputs)
constexpr uint64_t kS2Pool = 0x41000000, kS2PoolLast = 0x410fffff; // stage-2 tables
constexpr uint64_t kS1Phys = 0x41800000, kS1PhysLast = 0x418fffff; // stage-1 tables (PA)
constexpr uint64_t kS1Ipa = 0x80000000;                            // stage-1 tables (IPA)

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

Perms gen_perms(bool stage1) {
  Perms p;
  p.read = stage1 ? true : *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  p.write = *rc::gen::arbitrary<bool>();
  p.exec = *rc::gen::arbitrary<bool>();
  p.unpriv = stage1 ? *rc::gen::arbitrary<bool>() : true;
  return p;
}

// An address near one of `bases` (so that tables and mappings meet), or anywhere below 2^bits.
uint64_t gen_addr(const std::vector<uint64_t>& bases, unsigned bits, uint64_t align) {
  uint64_t a = *rc::gen::arbitrary<uint64_t>();
  if (*rc::gen::weightedElement<bool>({{4, true}, {1, false}}))
    a = *rc::gen::elementOf(bases) + (a & 0x3fffff);
  const uint64_t below = bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
  return a & below & ~(align - 1);
}

RC_GTEST_PROP(NestedWalkZ, AgreesWithWalkNested, ()) {
  Memory mem;
  mem.add_region({kRam, kRamLast});
  mem.add_region({kS2Pool, kS2PoolLast});
  mem.add_region({kS1Phys, kS1PhysLast});
  // Stage 2: a 40-bit IPA from level 1 (concatenated), a 39-bit one from level 1, or 48 bits.
  const auto [t0sz, sl0] =
      *rc::gen::element(std::pair<uint8_t, uint8_t>{24, 1}, std::pair<uint8_t, uint8_t>{25, 1},
                        std::pair<uint8_t, uint8_t>{16, 2});
  S2Config s2;
  s2.s2t0sz = t0sz;
  s2.s2sl0 = sl0;
  s2.affd = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  auto b2 = PageTableBuilder::stage2(mem, {kS2Pool, kS2PoolLast}, s2);
  s2.s2ttb = b2.root();
  // Most runs map the stage-1 tables' IPAs (a 2MB block, or just their first pages).
  if (*rc::gen::weightedElement<bool>({{6, true}, {1, false}})) {
    Perms p = gen_perms(false);
    p.read = *rc::gen::weightedElement<bool>({{8, true}, {1, false}});
    b2.map(kS1Ipa, kS1Phys, 0x200000, p);
  }
  const std::vector<uint64_t> ipas{kS1Ipa, 0x90000000, 0x100000000, 0};
  std::vector<std::pair<uint64_t, uint64_t>> mapped; // stage 2: IPA, size
  const int n2 = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n2; ++i) {
    const uint64_t size = *rc::gen::element<uint64_t>(0x1000, 0x1000, 0x200000, 0x40000000);
    const uint64_t ipa = gen_addr(ipas, 64u - t0sz, size);
    const uint64_t pa = *rc::gen::elementOf(std::vector<uint64_t>{kRam, kS1Phys, kS2Pool}) +
                        (*rc::gen::arbitrary<uint64_t>() & 0xfffff);
    if (b2.map(ipa, pa & ~(size - 1), size, gen_perms(false),
               *rc::gen::weightedElement<bool>({{6, true}, {1, false}})))
      mapped.emplace_back(ipa, size);
  }
  // Stage 1: 48-bit VA, tables at kS1Ipa (stored at kS1Phys), outputs near the IPAs above.
  auto b1 = PageTableBuilder::stage1(mem, {kS1Ipa, kS1Ipa + 0xfffff}, Granule::g4k, 48);
  b1.set_placement_offset(kS1Phys - kS1Ipa);
  std::vector<std::pair<uint64_t, uint64_t>> leaves; // stage 1: IOVA, size
  const int n1 = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n1; ++i) {
    const uint64_t size = *rc::gen::element<uint64_t>(0x1000, 0x1000, 0x200000, 0x40000000);
    const uint64_t iova = gen_addr({0, 0x10000, 0x7fffffe00000}, 48, size);
    // Mostly an output IPA that stage 2 maps.
    uint64_t ipa = gen_addr(ipas, 48, size);
    if (!mapped.empty() && *rc::gen::weightedElement<bool>({{6, true}, {1, false}})) {
      const auto [at, len] = *rc::gen::elementOf(mapped);
      ipa = (at + (*rc::gen::arbitrary<uint64_t>() & (len - 1))) & ~(size - 1);
    }
    if (b1.map(iova, ipa, size, gen_perms(true),
               *rc::gen::weightedElement<bool>({{6, true}, {1, false}})))
      leaves.emplace_back(iova, size);
  }
  // Some descriptors of either stage overwritten with arbitrary bits.
  const int corrupt = *rc::gen::weightedElement<int>({{4, 0}, {1, 1}, {1, 2}});
  for (int i = 0; i < corrupt && !mem.words().empty(); ++i) {
    const auto& ws = mem.words();
    const uint64_t at = ws[*rc::gen::inRange<size_t>(0, ws.size())].first;
    mem.write64(at, *rc::gen::arbitrary<uint64_t>());
  }
  S1Config s1;
  s1.t0sz = 16;
  s1.ttb0 = b1.root();
  s1.affd = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  s1.had = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  Access a;
  a.iova = gen_addr({0, 0x10000}, *rc::gen::weightedElement<unsigned>({{8, 48}, {1, 64}}), 1);
  if (!leaves.empty() && *rc::gen::weightedElement<bool>({{8, true}, {1, false}})) {
    const auto [at, len] = *rc::gen::elementOf(leaves);
    a.iova = at + (*rc::gen::arbitrary<uint64_t>() & (len - 1));
  }
  a.write = *rc::gen::weightedElement<bool>({{3, false}, {1, true}});
  a.exec = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
  a.priv = *rc::gen::weightedElement<bool>({{1, false}, {3, true}});
  const Walk w = walk_nested(mem, s1, s2, a);

  z3::context c;
  const AccessZ az{c.bv_val(a.iova, 64), c.bool_val(a.write), c.bool_val(a.exec),
                   c.bool_val(a.priv)};
  // memory_z as Memory::read64, on the addresses the walk read and a few others.
  const MemZ mz = memory_z(c, mem);
  std::vector<uint64_t> probes = w.descriptors_read;
  for (int i = 0; i < 4; ++i)
    probes.push_back(*rc::gen::elementOf(std::vector<uint64_t>{
                         kRam, kS1Phys, kS2Pool, kS2PoolLast - 7, kS2PoolLast + 1, 0}) +
                     (*rc::gen::inRange<uint64_t>(0, 64) & ~uint64_t(i == 0 ? 0 : 7)));
  for (uint64_t pa : probes) {
    const auto [present, word] = mz.read(c.bv_val(pa, 64));
    const auto want = mem.read64(pa);
    RC_ASSERT(truth(present) == want.has_value());
    if (want) RC_ASSERT(value(word) == *want);
  }
  // The walk, with memory read concretely once an address is known (fast; memory_z is checked
  // above): what is under test is the walk's terms.
  const MemZ concrete{[&](const z3::expr& pa) {
    const auto v = mem.read64(value(pa));
    return std::pair{c.bool_val(v.has_value()), c.bv_val(v.value_or(0), 64)};
  }};
  const NestedZ n = nested_walk_z(concrete, s1, c.bv_val(s1.ttb0, 64), s2, az);
  RC_ASSERT(truth(n.w.ok) == !w.fault.has_value());
  if (!w.fault) {
    RC_ASSERT(value(n.w.pa) == w.pa);
  } else {
    const Fault& f = *w.fault;
    RC_ASSERT(value(n.w.cls) == uint64_t(f.cls));
    RC_ASSERT(truth(n.w.stage2) == (f.stage == 2));
    RC_ASSERT(truth(n.w.on_walk) == f.s2_on_s1_walk);
    RC_ASSERT(value(n.w.level) == uint64_t(f.level));
    RC_ASSERT(value(n.w.ipa) == f.ipa);
    RC_ASSERT(value(n.w.fetch_pa) == f.fetch_pa);
  }
  std::vector<uint64_t> read;
  for (const auto& f : n.s1)
    if (truth(f.read)) read.push_back(value(f.pa));
  RC_ASSERT(read == w.s1_descriptors_read);
  RC_TAG(w.fault ? "stage " + std::to_string(w.fault->stage) + " fault " +
                       std::to_string(int(w.fault->cls)) + (w.fault->s2_on_s1_walk ? " (TT)" : "")
                 : std::string("ok"));
}

} // namespace
} // namespace iommuspec::solvers
