// Tests of the SMMUv3 translation walk (walk.h): one GoogleTest case per rule, and two
// RapidCheck properties (map-then-walk; nested isolation under adversarial stage-1 tables).
#include "smmuv3/walk.h"

#include <gtest/gtest.h>
#include <random>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t kTables = 0x1'0000'0000;     // stage-1 table pool
constexpr uint64_t kS2Tables = 0x2'0000'0000;   // stage-2 table pool
constexpr uint64_t kPoolSize = 0x1000'0000;     // 256MB each
constexpr uint64_t kImage = 0x20'0000'0000;     // nested property: stage-2 output pages
constexpr uint64_t kForbidden = 0x30'0000'0000; // backed, never mapped by stage 2

constexpr uint64_t K4 = 0x1000, K16 = 0x4000, K64 = 0x10000, M2 = 0x200000, G1 = 0x40000000;

Range pool(uint64_t base) {
  return Range{base, base + kPoolSize - 1};
}

Memory memory_with_pools() {
  Memory m;
  m.add_region(pool(kTables));
  m.add_region(pool(kS2Tables));
  return m;
}

const Perms kRW{.read = true, .write = true, .exec = false, .unpriv = true};
const Perms kRO{.read = true, .write = false, .exec = false, .unpriv = true};
const Perms kRWX{.read = true, .write = true, .exec = true, .unpriv = true};

Access rd(uint64_t iova) {
  return Access{.iova = iova, .write = false, .exec = false, .priv = true};
}
Access wr(uint64_t iova) {
  return Access{.iova = iova, .write = true, .exec = false, .priv = true};
}
Access ex(uint64_t iova) {
  return Access{.iova = iova, .write = false, .exec = true, .priv = true};
}

S1Config s1cfg(uint64_t ttb, uint8_t t0sz, Granule g, unsigned oas = 48) {
  S1Config c;
  c.ttb0 = ttb;
  c.t0sz = t0sz;
  c.granule = g;
  c.oas_bits = oas;
  return c;
}

S2Config s2cfg(uint8_t t0sz, uint8_t sl0, Granule g, unsigned ps = 48) {
  S2Config c;
  c.s2t0sz = t0sz;
  c.s2sl0 = sl0;
  c.granule = g;
  c.ps_bits = ps;
  return c;
}

void expect_fault(const Walk& w, FaultClass cls, int stage, int level) {
  ASSERT_TRUE(w.fault.has_value());
  EXPECT_EQ(w.fault->cls, cls);
  EXPECT_EQ(w.fault->stage, stage);
  EXPECT_EQ(w.fault->level, level);
}

// ---- Stage 1 -------------------------------------------------------------------------------

TEST(WalkS1, FourLevel4K) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 48);
  EXPECT_EQ(b.start_level(), 0);
  const uint64_t iova = 0x1234'5678'9000;
  ASSERT_TRUE(b.map(iova, 0x8'0000'3000, K4, kRW));
  const S1Config c = s1cfg(b.root(), 16, Granule::g4k);
  const Walk w = walk_s1(m, c, rd(iova + 0xabc));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x8'0000'3abcu);
  EXPECT_EQ(w.page_size, K4);
  EXPECT_EQ(w.perms, kRW);
  ASSERT_EQ(w.descriptors_read.size(), 4u);
  EXPECT_EQ(w.descriptors_read, w.s1_descriptors_read);
  EXPECT_EQ(w.descriptors_read[0], b.root() + 8 * ((iova >> 39) & 511));
  for (int l = 0; l <= 3; ++l)
    EXPECT_EQ(w.descriptors_read[l], *b.slot(iova, l));
  // A neighbouring page is unmapped: translation fault at level 3.
  expect_fault(walk_s1(m, c, rd(iova + K4)), FaultClass::translation, 1, 3);
  // Another 512GB slot: the level-0 descriptor is invalid.
  const Walk far = walk_s1(m, c, rd(iova ^ (uint64_t(1) << 40)));
  expect_fault(far, FaultClass::translation, 1, 0);
  EXPECT_EQ(far.fault->input_addr, iova ^ (uint64_t(1) << 40));
}

TEST(WalkS1, Granule64K) {
  Memory m = memory_with_pools();
  // T0SZ 16, 64K: start level 1 (4 - 44/13), 6 index bits there.
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g64k, 48);
  EXPECT_EQ(b.start_level(), 1);
  EXPECT_EQ(s1_start_level(s1cfg(0, 16, Granule::g64k)), 1);
  const uint64_t iova = 0xfedc'ba98'0000;
  ASSERT_TRUE(b.map(iova, 0x5'0001'0000, K64, kRO));
  ASSERT_TRUE(b.map(0x2000'0000, 0x7'0000'0000, 0x2000'0000, kRW)); // 512MB block, level 2
  const S1Config c = s1cfg(b.root(), 16, Granule::g64k);
  Walk w = walk_s1(m, c, rd(iova + 0x1234));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x5'0001'1234u);
  EXPECT_EQ(w.page_size, K64);
  EXPECT_EQ(w.descriptors_read.size(), 3u);
  w = walk_s1(m, c, rd(0x2000'0000 + 0x123'4567));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x7'0123'4567u);
  EXPECT_EQ(w.page_size, 0x2000'0000u);
  EXPECT_EQ(w.descriptors_read.size(), 2u);
}

TEST(WalkS1, Granule16K) {
  Memory m = memory_with_pools();
  // T0SZ 16, 16K: start level 0 (4 - 44/11) with a 2-entry table; T0SZ 27: level 1.
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g16k, 48);
  EXPECT_EQ(b.start_level(), 0);
  const uint64_t iova = 0x8123'4567'c000;
  ASSERT_TRUE(b.map(iova, 0x3'0000'4000, K16, kRW));
  ASSERT_TRUE(b.map(0x200'0000, 0x3'0200'0000, 0x200'0000, kRW)); // 32MB block, level 2
  const S1Config c = s1cfg(b.root(), 16, Granule::g16k);
  Walk w = walk_s1(m, c, rd(iova + 0x3ff8));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x3'0000'7ff8u);
  EXPECT_EQ(w.descriptors_read.size(), 4u);
  EXPECT_EQ(w.descriptors_read[0], b.root() + 8); // bit 47 set: entry 1 of 2
  w = walk_s1(m, c, rd(0x200'0000 + 0x10));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x3'0200'0010u);
  EXPECT_EQ(w.page_size, 0x200'0000u);

  Memory m2 = memory_with_pools();
  auto b2 = PageTableBuilder::stage1(m2, pool(kTables), Granule::g16k, 37);
  EXPECT_EQ(b2.start_level(), 1);
  ASSERT_TRUE(b2.map(0xf'ffff'c000, 0x4000, K16, kRW));
  w = walk_s1(m2, s1cfg(b2.root(), 27, Granule::g16k), rd(0xf'ffff'c008));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x4008u);
  EXPECT_EQ(w.descriptors_read.size(), 3u);
}

TEST(WalkS1, Blocks4K) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39); // T0SZ 25: level 1
  EXPECT_EQ(b.start_level(), 1);
  ASSERT_TRUE(b.map(G1, 0x40'0000'0000, G1, kRW));         // 1GB block, level 1
  ASSERT_TRUE(b.map(3 * G1 + M2, 0x1'0020'0000, M2, kRO)); // 2MB block, level 2
  EXPECT_FALSE(b.map(G1 + M2, 0x1000'0000, M2, kRW));      // inside the 1GB block
  EXPECT_FALSE(b.map(0x1000, 0x1001, K4, kRW));            // misaligned PA
  const S1Config c = s1cfg(b.root(), 25, Granule::g4k);
  Walk w = walk_s1(m, c, rd(G1 + 0x1234'5678));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x40'1234'5678u);
  EXPECT_EQ(w.page_size, G1);
  EXPECT_EQ(w.descriptors_read.size(), 1u);
  w = walk_s1(m, c, rd(3 * G1 + M2 + 0x1f'fff8));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x1'003f'fff8u);
  EXPECT_EQ(w.page_size, M2);
  EXPECT_EQ(w.perms, kRO);
}

TEST(WalkS1, ReservedAndMisplacedDescriptors) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 48);
  ASSERT_TRUE(b.map(0x40'0000'0000, 0x1000, K4, kRW));
  const S1Config c = s1cfg(b.root(), 16, Granule::g4k);
  // Level 3 with type 0b01 (reserved): translation fault at level 3.
  const uint64_t l3 = *b.slot(0x40'0000'0000, 3);
  ASSERT_TRUE(m.write64(l3, 0x1000 | 0x401));
  expect_fault(walk_s1(m, c, rd(0x40'0000'0000)), FaultClass::translation, 1, 3);
  // A block at level 0 (no 4K block there): translation fault at level 0.
  const uint64_t l0 = *b.slot(0x80'0000'0000, 0);
  ASSERT_TRUE(m.write64(l0, 0x401));
  expect_fault(walk_s1(m, c, rd(0x80'0000'0000)), FaultClass::translation, 1, 0);
  // 16K: a level-1 block is not allowed.
  Memory m16 = memory_with_pools();
  auto b16 = PageTableBuilder::stage1(m16, pool(kTables), Granule::g16k, 48);
  ASSERT_TRUE(b16.map(0, 0x4000, K16, kRW));
  ASSERT_TRUE(m16.write64(*b16.slot(0, 1), 0x401));
  expect_fault(walk_s1(m16, s1cfg(b16.root(), 16, Granule::g16k), rd(0)), FaultClass::translation,
               1, 1);
  // 64K: no level-1 block without 52-bit output.
  Memory m64 = memory_with_pools();
  auto b64 = PageTableBuilder::stage1(m64, pool(kTables), Granule::g64k, 48);
  EXPECT_FALSE(b64.map(0, 0, uint64_t(1) << 42, kRW));
  ASSERT_TRUE(m64.write64(b64.root(), 0x401));
  expect_fault(walk_s1(m64, s1cfg(b64.root(), 16, Granule::g64k), rd(0)), FaultClass::translation,
               1, 1);
}

TEST(WalkS1, InputRangeAndEpd0) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0, 0x1000, K4, kRW));
  S1Config c = s1cfg(b.root(), 25, Granule::g4k);
  const Walk w = walk_s1(m, c, rd(uint64_t(1) << 39));
  expect_fault(w, FaultClass::translation, 1, 0);
  EXPECT_TRUE(w.descriptors_read.empty());
  EXPECT_FALSE(walk_s1(m, c, rd(0)).fault);
  c.epd0 = true;
  expect_fault(walk_s1(m, c, rd(0)), FaultClass::translation, 1, 0);
}

TEST(WalkS1, AccessFlag) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0x1000, 0x9000, K4, kRO, /*af=*/false));
  S1Config c = s1cfg(b.root(), 25, Granule::g4k);
  expect_fault(walk_s1(m, c, rd(0x1000)), FaultClass::access_flag, 1, 3);
  // Access flag before permission ([QC]): a write to this read-only page is F_ACCESS.
  expect_fault(walk_s1(m, c, wr(0x1000)), FaultClass::access_flag, 1, 3);
  c.affd = true;
  EXPECT_FALSE(walk_s1(m, c, rd(0x1000)).fault);
  expect_fault(walk_s1(m, c, wr(0x1000)), FaultClass::permission, 1, 3);
}

TEST(WalkS1, Permissions) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0x1000, 0xa000, K4, kRO));
  ASSERT_TRUE(b.map(0x2000, 0xb000, K4, kRWX));
  ASSERT_TRUE(
      b.map(0x3000, 0xc000, K4, {.read = true, .write = true, .exec = true, .unpriv = false}));
  const S1Config c = s1cfg(b.root(), 25, Granule::g4k);
  expect_fault(walk_s1(m, c, wr(0x1000)), FaultClass::permission, 1, 3);
  expect_fault(walk_s1(m, c, ex(0x1000)), FaultClass::permission, 1, 3); // XN
  EXPECT_FALSE(walk_s1(m, c, wr(0x2000)).fault);
  EXPECT_FALSE(walk_s1(m, c, ex(0x2000)).fault);
  // Privileged-only page: EL0 data access faults, privileged access is fine.
  Access user = rd(0x3000);
  user.priv = false;
  expect_fault(walk_s1(m, c, user), FaultClass::permission, 1, 3);
  EXPECT_FALSE(walk_s1(m, c, rd(0x3000)).fault);
  // PXN only: privileged fetch faults, unprivileged fetch is allowed.
  const uint64_t slot = *b.slot(0x2000, 3);
  ASSERT_TRUE(m.write64(slot, *m.read64(slot) | (uint64_t(1) << 53)));
  expect_fault(walk_s1(m, c, ex(0x2000)), FaultClass::permission, 1, 3);
  Access uex = ex(0x2000);
  uex.priv = false;
  EXPECT_FALSE(walk_s1(m, c, uex).fault);
}

TEST(WalkS1, HierarchicalAttributes) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0x1000, 0xa000, K4, kRWX));
  S1Config c = s1cfg(b.root(), 25, Granule::g4k);
  const uint64_t l2 = *b.slot(0x1000, 2);
  const uint64_t table = *m.read64(l2);
  ASSERT_TRUE(m.write64(l2, table | (uint64_t(2) << 61))); // APTable[1]: no write below
  expect_fault(walk_s1(m, c, wr(0x1000)), FaultClass::permission, 1, 3);
  const Walk r = walk_s1(m, c, rd(0x1000));
  ASSERT_FALSE(r.fault);
  EXPECT_FALSE(r.perms.write);
  ASSERT_TRUE(m.write64(l2, table | (uint64_t(1) << 59))); // PXNTable
  expect_fault(walk_s1(m, c, ex(0x1000)), FaultClass::permission, 1, 3);
  c.had = true; // CD.HAD0 disables hierarchical attributes
  EXPECT_FALSE(walk_s1(m, c, ex(0x1000)).fault);
}

TEST(WalkS1, AddressSize) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0x1000, 0x1'0000'0000, K4, kRW));
  ASSERT_TRUE(b.map(0x2000, 0xffff'f000, K4, kRW));
  // TTB0 at 0x1'0000'0000 lies above a 32-bit IPS: the CD is rejected (C_BAD_CD).
  EXPECT_EQ(walk_s1(m, s1cfg(b.root(), 25, Granule::g4k, 32), rd(0x1000)).fault->cls,
            FaultClass::bad_config);
  // With the tables below 4GB, a leaf output at 4GB faults on a 32-bit IPS.
  Memory m2;
  m2.add_region({0x100'0000, 0x1ff'ffff});
  auto b2 = PageTableBuilder::stage1(m2, {0x100'0000, 0x1ff'ffff}, Granule::g4k, 39);
  ASSERT_TRUE(b2.map(0x1000, 0x1'0000'0000, K4, kRW));
  ASSERT_TRUE(b2.map(0x2000, 0xffff'f000, K4, kRW));
  const S1Config c32 = s1cfg(b2.root(), 25, Granule::g4k, 32);
  expect_fault(walk_s1(m2, c32, rd(0x1000)), FaultClass::addr_size, 1, 3);
  EXPECT_FALSE(walk_s1(m2, c32, rd(0x2000)).fault);
  // A table address beyond the output size: address-size fault at the table's level.
  const uint64_t l2 = *b2.slot(0x2000, 2);
  ASSERT_TRUE(m2.write64(l2, 0x1'0000'0000 | 3));
  expect_fault(walk_s1(m2, c32, rd(0x2000)), FaultClass::addr_size, 1, 2);
}

TEST(WalkS1, ExternalAbort) {
  Memory m = memory_with_pools();
  auto b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  ASSERT_TRUE(b.map(0x1000, 0xa000, K4, kRW));
  // TTB0 at unbacked memory.
  Walk w = walk_s1(m, s1cfg(0x7000'0000, 25, Granule::g4k), rd(0x1000));
  expect_fault(w, FaultClass::walk_eabt, 1, 1);
  EXPECT_EQ(w.fault->fetch_pa, 0x7000'0000u);
  // A table descriptor pointing to unbacked memory: the abort is at the next level.
  const uint64_t l2 = *b.slot(0x1000, 2);
  ASSERT_TRUE(m.write64(l2, 0x7000'0000 | 3));
  w = walk_s1(m, s1cfg(b.root(), 25, Granule::g4k), rd(0x1000));
  expect_fault(w, FaultClass::walk_eabt, 1, 3);
  EXPECT_EQ(w.fault->fetch_pa, 0x7000'0008u);
  EXPECT_EQ(event_type(w.fault->cls, 1), EventType::f_walk_eabt);
}

// ---- Stage 2 -------------------------------------------------------------------------------

TEST(WalkS2, StartLevelsAndConcatenation) {
  EXPECT_EQ(s2_start_level(s2cfg(25, 1, Granule::g4k)), 1);
  EXPECT_EQ(s2_start_level(s2cfg(16, 2, Granule::g4k)), 0);
  EXPECT_EQ(s2_start_level(s2cfg(25, 1, Granule::g64k)), 2);
  EXPECT_EQ(s2_start_level(s2cfg(25, 2, Granule::g16k)), 1);
  EXPECT_TRUE(s2_config_valid(s2cfg(25, 1, Granule::g4k)));
  EXPECT_FALSE(s2_config_valid(s2cfg(25, 3, Granule::g4k)));     // level -1
  EXPECT_FALSE(s2_config_valid(s2cfg(25, 0, Granule::g4k)));     // level 2: 2^18 entries
  EXPECT_TRUE(s2_config_valid(s2cfg(24, 1, Granule::g4k)));      // 2 concatenated tables
  EXPECT_TRUE(s2_config_valid(s2cfg(21, 1, Granule::g4k)));      // 16 concatenated tables
  EXPECT_FALSE(s2_config_valid(s2cfg(20, 1, Granule::g4k)));     // 32 tables
  EXPECT_FALSE(s2_config_valid(s2cfg(40, 0, Granule::g4k)));     // S2T0SZ > 39
  EXPECT_FALSE(s2_config_valid(s2cfg(25, 1, Granule::g4k, 36))); // T0SZ < 64 - PS

  // 40-bit IPA, 4K, SL0=1: level 1 with 1024 entries over two concatenated pages.
  Memory m = memory_with_pools();
  S2Config c = s2cfg(24, 1, Granule::g4k);
  auto b = PageTableBuilder::stage2(m, pool(kS2Tables), c);
  c.s2ttb = b.root();
  EXPECT_EQ(b.start_level(), 1);
  const uint64_t hi = 0xff'ffff'f000; // index 1023 at level 1
  ASSERT_TRUE(b.map(hi, 0x5000, K4, kRW));
  ASSERT_TRUE(b.map(0x1000, 0x6000, K4, kRO));
  Walk w = walk_s2(m, c, hi + 0x10, rd(0));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x5010u);
  EXPECT_EQ(w.descriptors_read.size(), 3u);
  EXPECT_EQ(w.descriptors_read[0], b.root() + 8 * 1023);
  EXPECT_TRUE(w.s1_descriptors_read.empty());
  w = walk_s2(m, c, 0x1008, rd(0));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x6008u);
  EXPECT_EQ(w.perms, (Perms{.read = true, .write = false, .exec = false, .unpriv = true}));
}

TEST(WalkS2, FaultsCarryTheIpa) {
  Memory m = memory_with_pools();
  S2Config c = s2cfg(25, 1, Granule::g4k);
  auto b = PageTableBuilder::stage2(m, pool(kS2Tables), c);
  c.s2ttb = b.root();
  ASSERT_TRUE(b.map(0x1000, 0x5000, K4, kRO));
  ASSERT_TRUE(b.map(0x2000, 0x6000, K4, {.read = false, .write = true, .exec = false}));
  ASSERT_TRUE(b.map(0x3000, 0x7000, K4, kRW, /*af=*/false));
  ASSERT_TRUE(b.map(0x4000, 0x1'0000'0000, K4, kRW));
  Walk w = walk_s2(m, c, 0x1010, wr(0));
  expect_fault(w, FaultClass::permission, 2, 3);
  EXPECT_EQ(w.fault->ipa, 0x1010u);
  EXPECT_FALSE(w.fault->s2_on_s1_walk);
  expect_fault(walk_s2(m, c, 0x2000, rd(0)), FaultClass::permission, 2, 3); // S2AP no read
  EXPECT_FALSE(walk_s2(m, c, 0x2000, wr(0)).fault);
  expect_fault(walk_s2(m, c, 0x1000, ex(0)), FaultClass::permission, 2, 3); // XN
  expect_fault(walk_s2(m, c, 0x3000, rd(0)), FaultClass::access_flag, 2, 3);
  c.affd = true;
  EXPECT_FALSE(walk_s2(m, c, 0x3000, rd(0)).fault);
  expect_fault(walk_s2(m, c, 0x5000, rd(0)), FaultClass::translation, 2, 3);
  w = walk_s2(m, c, uint64_t(1) << 39, rd(0)); // beyond S2T0SZ
  expect_fault(w, FaultClass::translation, 2, 0);
  EXPECT_TRUE(w.descriptors_read.empty());
  // S2TTB beyond S2PS makes the configuration invalid: C_BAD_STE before any fetch.
  S2Config c36 = c;
  c36.ps_bits = 32;
  c36.s2t0sz = 32;
  const Walk bad = walk_s2(m, c36, 0x1000, rd(0));
  expect_fault(bad, FaultClass::bad_config, 2, 0);
  EXPECT_TRUE(bad.descriptors_read.empty());
}

TEST(WalkS2, AddressSizeAndAbort) {
  Memory m;
  m.add_region({0x100'0000, 0x1ff'ffff});
  S2Config c = s2cfg(32, 1, Granule::g4k, 32); // 32-bit IPA and PA, level 1
  auto b = PageTableBuilder::stage2(m, {0x100'0000, 0x1ff'ffff}, c);
  c.s2ttb = b.root();
  ASSERT_TRUE(s2_config_valid(c));
  ASSERT_TRUE(b.map(0x1000, 0x1'0000'0000, K4, kRW));
  ASSERT_TRUE(b.map(0x2000, 0x3000, K4, kRW));
  expect_fault(walk_s2(m, c, 0x1000, rd(0)), FaultClass::addr_size, 2, 3);
  EXPECT_FALSE(walk_s2(m, c, 0x2000, rd(0)).fault);
  const uint64_t l2 = *b.slot(0x2000, 2);
  ASSERT_TRUE(m.write64(l2, 0x7000'0000 | 3)); // table in unbacked memory
  const Walk w = walk_s2(m, c, 0x2000, rd(0));
  expect_fault(w, FaultClass::walk_eabt, 2, 3);
  EXPECT_EQ(w.fault->fetch_pa, 0x7000'0010u);
  EXPECT_EQ(event_type(FaultClass::bad_config, 2), EventType::c_bad_ste);
}

TEST(WalkS2, Granules16KAnd64K) {
  for (Granule g : {Granule::g16k, Granule::g64k}) {
    Memory m = memory_with_pools();
    S2Config c = s2cfg(24, 1, g); // 40-bit IPA; 16K: level 2 (3-SL0), 64K: level 2
    ASSERT_TRUE(s2_config_valid(c)) << int(g);
    auto b = PageTableBuilder::stage2(m, pool(kS2Tables), c);
    c.s2ttb = b.root();
    const uint64_t page = uint64_t(1) << granule_shift(g);
    const uint64_t ipa = 0xab'cdef'0000 & ~(page - 1);
    ASSERT_TRUE(b.map(ipa, 0x9'0000'0000, page, kRW));
    const Walk w = walk_s2(m, c, ipa + 8, wr(0));
    ASSERT_FALSE(w.fault) << int(g);
    EXPECT_EQ(w.pa, 0x9'0000'0008u);
    EXPECT_EQ(w.page_size, page);
  }
}

// ---- Nested --------------------------------------------------------------------------------

// Stage 2 mapping the stage-1 table pool identically, and a data window with an offset.
struct NestedFixture {
  Memory m = memory_with_pools();
  S2Config s2 = s2cfg(24, 1, Granule::g4k); // 40-bit IPA
  PageTableBuilder s2b = PageTableBuilder::stage2(m, pool(kS2Tables), s2);
  PageTableBuilder s1b = PageTableBuilder::stage1(m, pool(kTables), Granule::g4k, 39);
  S1Config s1 = s1cfg(0, 25, Granule::g4k, 40);
  NestedFixture() {
    s2.s2ttb = s2b.root();
    s1.ttb0 = s1b.root();
    for (uint64_t a = kTables; a < kTables + 16 * M2; a += M2)
      EXPECT_TRUE(s2b.map(a, a, M2, kRO)); // tables: read-only at stage 2 is enough
  }
};

TEST(WalkNested, TranslatesThroughBothStages) {
  NestedFixture f;
  ASSERT_TRUE(f.s1b.map(0x1000, 0x40'0000, K4, kRW));        // IOVA -> IPA 0x40'0000
  ASSERT_TRUE(f.s2b.map(0x40'0000, 0x8'1220'0000, M2, kRO)); // IPA -> PA, read-only
  Walk w = walk_nested(f.m, f.s1, f.s2, rd(0x1234));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, 0x8'1220'0234u);
  EXPECT_EQ(w.page_size, K4);
  EXPECT_EQ(w.perms, kRO); // S1 RW combined with S2 RO
  EXPECT_EQ(w.s1_descriptors_read.size(), 3u);
  // 3 stage-1 descriptors, each preceded by a 3-level stage-2 walk (2MB blocks at level 2),
  // and the final stage-2 walk.
  EXPECT_EQ(w.descriptors_read.size(), 3u + 3 * 2 + 2);
  EXPECT_EQ(w.descriptors_read[2], w.s1_descriptors_read[0]);
  // Writable at stage 1, read-only at stage 2: stage-2 permission fault, CLASS=IN.
  w = walk_nested(f.m, f.s1, f.s2, wr(0x1234));
  expect_fault(w, FaultClass::permission, 2, 2);
  EXPECT_FALSE(w.fault->s2_on_s1_walk);
  EXPECT_EQ(w.fault->ipa, 0x40'0234u);
  EXPECT_EQ(w.fault->input_addr, 0x1234u);
}

TEST(WalkNested, Stage1TableOutsideStage2IsATableWalkFault) {
  NestedFixture f;
  ASSERT_TRUE(f.s1b.map(0x1000, 0x40'0000, K4, kRW));
  // Point the level-1 table descriptor at an IPA (within 40 bits) that stage 2 does not map.
  const uint64_t l1 = *f.s1b.slot(0x1000, 1);
  const uint64_t saved = *f.m.read64(l1);
  ASSERT_TRUE(f.m.write64(l1, 0x77'0000'0000 | 3));
  const Walk w = walk_nested(f.m, f.s1, f.s2, rd(0x1000));
  expect_fault(w, FaultClass::translation, 2, 1);
  EXPECT_TRUE(w.fault->s2_on_s1_walk);
  EXPECT_EQ(w.fault->ipa, 0x77'0000'0000u + 8 * 0); // level-2 index of IOVA 0x1000 is 0
  EXPECT_EQ(w.fault->input_addr, 0x1000u);
  EXPECT_EQ(w.s1_descriptors_read.size(), 1u);
  // TTB0 itself at an unmapped IPA: the very first fetch faults at stage 2, CLASS=TT.
  S1Config s1 = f.s1;
  s1.ttb0 = 0x66'0000'0000;
  const Walk t = walk_nested(f.m, s1, f.s2, rd(0x1000));
  ASSERT_TRUE(t.fault);
  EXPECT_EQ(t.fault->stage, 2);
  EXPECT_TRUE(t.fault->s2_on_s1_walk);
  EXPECT_TRUE(t.s1_descriptors_read.empty());
  // Final IPA unmapped: stage-2 translation fault, CLASS=IN.
  ASSERT_TRUE(f.m.write64(l1, saved));
  const Walk in = walk_nested(f.m, f.s1, f.s2, rd(0x1000));
  expect_fault(in, FaultClass::translation, 2, 1); // stage-2 level-1 entry 0 is invalid
  EXPECT_FALSE(in.fault->s2_on_s1_walk);
  EXPECT_EQ(in.fault->ipa, 0x40'0000u);
}

TEST(WalkNested, Stage1FaultsStayStage1) {
  NestedFixture f;
  ASSERT_TRUE(f.s1b.map(0x1000, 0x40'0000, K4, kRO));
  ASSERT_TRUE(f.s2b.map(0x40'0000, 0x8'0000'0000, M2, kRW));
  expect_fault(walk_nested(f.m, f.s1, f.s2, wr(0x1000)), FaultClass::permission, 1, 3);
  expect_fault(walk_nested(f.m, f.s1, f.s2, rd(0x2000)), FaultClass::translation, 1, 3);
  // Stage-1 output beyond IPS 40 bits.
  ASSERT_TRUE(f.s1b.map(0x3000, 0x100'0000'0000, K4, kRW));
  expect_fault(walk_nested(f.m, f.s1, f.s2, rd(0x3000)), FaultClass::addr_size, 1, 3);
}

TEST(WalkNested, NonIdentityStage2ForTables) {
  // Stage-1 tables live at IPA 0x1000'0000.., stage 2 places each 4K IPA page at a
  // scattered PA; descriptors are written by hand at those PAs.
  Memory m = memory_with_pools();
  m.add_region({kImage, kImage + kPoolSize - 1});
  S2Config s2 = s2cfg(32, 1, Granule::g4k);
  auto s2b = PageTableBuilder::stage2(m, pool(kS2Tables), s2);
  s2.s2ttb = s2b.root();
  ASSERT_TRUE(s2b.map(0x1000'0000, kImage + 0x5000, K4, kRO)); // S1 level-2 table
  ASSERT_TRUE(s2b.map(0x1000'1000, kImage + 0x2000, K4, kRO)); // S1 level-3 table
  ASSERT_TRUE(s2b.map(0x2000'0000, kImage + 0x9000, K4, kRW)); // data
  // T0SZ 39 (25-bit IOVA), 4K: start level 2 with 16 entries.
  const S1Config s1 = s1cfg(0x1000'0000, 39, Granule::g4k, 32);
  ASSERT_EQ(s1_start_level(s1), 2);
  ASSERT_TRUE(m.write64(kImage + 0x5000 + 8 * 1, 0x1000'1000 | 3));            // IOVA bit 21
  ASSERT_TRUE(m.write64(kImage + 0x2000 + 8 * 3, 0x2000'0000 | 0x403 | 0x40)); // page, AF, AP[1]
  const Walk w = walk_nested(m, s1, s2, rd(0x20'3010));
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.pa, kImage + 0x9010);
  EXPECT_EQ(w.s1_descriptors_read,
            (std::vector<uint64_t>{kImage + 0x5000 + 8, kImage + 0x2000 + 24}));
}

// ---- Configuration builders ------------------------------------------------------------------

TEST(WalkConfig, FromCdAndSte) {
  Cd cd;
  cd.v = true;
  cd.aa64 = true;
  cd.t0sz = 25;
  cd.tg0 = 1; // 64K
  cd.ips = 5; // 48 bits
  cd.ttb0 = 0x1234'0000;
  cd.affd = true;
  cd.asid = 7;
  auto c = s1_config(cd);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->granule, Granule::g64k);
  EXPECT_EQ(c->oas_bits, 48u);
  EXPECT_TRUE(c->affd);
  EXPECT_EQ(c->asid, 7);
  Cd bad = cd;
  bad.t0sz = 15;
  EXPECT_FALSE(s1_config(bad));
  bad = cd;
  bad.tg0 = 3;
  EXPECT_FALSE(s1_config(bad));
  bad = cd;
  bad.ips = 1; // 36 bits; fine
  EXPECT_TRUE(s1_config(bad));
  bad.ttb0 = uint64_t(1) << 40; // beyond IPS
  EXPECT_FALSE(s1_config(bad));
  bad = cd;
  bad.endi = true;
  EXPECT_FALSE(s1_config(bad));

  Ste ste;
  ste.v = true;
  ste.config = StreamConfig::s2_trans;
  ste.s2_aa64 = true;
  ste.s2_t0sz = 24;
  ste.s2_sl0 = 1;
  ste.s2_tg = 0;
  ste.s2_ps = 5;
  ste.s2_ttb = 0x8000'0000;
  ste.s2_vmid = 3;
  auto s = s2_config(ste);
  ASSERT_TRUE(s);
  EXPECT_EQ(s2_start_level(*s), 1);
  EXPECT_EQ(s->vmid, 3);
  Ste sbad = ste;
  sbad.s2_sl0 = 3;
  EXPECT_FALSE(s2_config(sbad));
  sbad = ste;
  sbad.s2_tg = 3;
  EXPECT_FALSE(s2_config(sbad));
  sbad = ste;
  sbad.s2_aa64 = false;
  EXPECT_FALSE(s2_config(sbad));
  // A directly built invalid config faults as C_BAD_*.
  Memory m;
  const Walk w = walk_s1(m, s1cfg(0, 50, Granule::g4k), rd(0));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->cls, FaultClass::bad_config);
  EXPECT_EQ(event_type(w.fault->cls, w.fault->stage), EventType::c_bad_cd);
}

// ---- Properties ------------------------------------------------------------------------------

Granule gen_granule() {
  return *rc::gen::element(Granule::g4k, Granule::g16k, Granule::g64k);
}

// Leaf sizes the builder can map for a granule.
std::vector<uint64_t> leaf_sizes(Granule g, int start) {
  std::vector<uint64_t> out;
  for (int l = std::max(start, 1); l <= 3; ++l)
    if (l == 3 || block_allowed(g, l)) out.push_back(uint64_t(1) << level_shift(g, l));
  return out;
}

struct Mapping {
  uint64_t iova, pa, size;
  Perms p;
};

// Random non-overlapping mappings, most of them in a small window so tables are shared.
std::vector<Mapping> build_random(PageTableBuilder& b, Granule g, unsigned ia_bits, unsigned oas,
                                  bool stage1) {
  std::vector<Mapping> maps;
  const auto sizes = leaf_sizes(g, b.start_level());
  const int n = *rc::gen::inRange(1, 24);
  for (int i = 0; i < n; ++i) {
    const uint64_t size = *rc::gen::elementOf(sizes);
    const bool near = *rc::gen::arbitrary<bool>();
    const unsigned span = near ? std::min(ia_bits, level_shift(g, 1) + 1) : ia_bits;
    const uint64_t iova =
        *rc::gen::arbitrary<uint64_t>() & ((uint64_t(1) << span) - 1) & ~(size - 1);
    const uint64_t pa = *rc::gen::arbitrary<uint64_t>() & ((uint64_t(1) << oas) - 1) & ~(size - 1);
    Perms p;
    p.read = stage1 ? true : *rc::gen::arbitrary<bool>();
    p.write = *rc::gen::arbitrary<bool>();
    p.exec = *rc::gen::arbitrary<bool>();
    p.unpriv = stage1 ? *rc::gen::arbitrary<bool>() : true;
    bool overlap = false;
    for (const auto& o : maps)
      if (iova < o.iova + o.size && o.iova < iova + size) overlap = true;
    if (overlap) continue;
    RC_ASSERT(b.map(iova, pa, size, p));
    maps.push_back({iova, pa, size, p});
  }
  return maps;
}

void check_map_then_walk(bool stage1) {
  const Granule g = gen_granule();
  const uint8_t t0sz = *rc::gen::inRange<uint8_t>(16, 40);
  Memory m = memory_with_pools();
  std::optional<PageTableBuilder> b;
  S1Config c1 = s1cfg(0, t0sz, g);
  S2Config c2 = s2cfg(t0sz, 0, g);
  if (stage1) {
    b.emplace(PageTableBuilder::stage1(m, pool(kTables), g, 64u - t0sz));
    c1.ttb0 = b->root();
    RC_PRE(s1_config_valid(c1));
  } else {
    std::vector<uint8_t> sl0s;
    for (uint8_t s = 0; s < 4; ++s) {
      c2.s2sl0 = s;
      if (s2_config_valid(c2)) sl0s.push_back(s);
    }
    RC_PRE(!sl0s.empty());
    c2.s2sl0 = *rc::gen::elementOf(sl0s);
    b.emplace(PageTableBuilder::stage2(m, pool(kS2Tables), c2));
    c2.s2ttb = b->root();
  }
  const auto maps = build_random(*b, g, 64u - t0sz, 48, stage1);
  auto walk = [&](const Access& a) {
    return stage1 ? walk_s1(m, c1, a) : walk_s2(m, c2, a.iova, a);
  };
  for (const auto& mp : maps) {
    const uint64_t off = *rc::gen::inRange<uint64_t>(0, mp.size);
    const Walk w = walk(rd(mp.iova + off));
    if (!mp.p.read) {
      RC_ASSERT(w.fault && w.fault->cls == FaultClass::permission);
      continue;
    }
    RC_ASSERT(!w.fault);
    RC_ASSERT(w.pa == mp.pa + off);
    RC_ASSERT(w.page_size == mp.size);
    RC_ASSERT(w.perms == mp.p);
    const Walk ww = walk(wr(mp.iova + off));
    RC_ASSERT(bool(ww.fault) == !mp.p.write);
    if (ww.fault) RC_ASSERT(ww.fault->cls == FaultClass::permission);
  }
  for (int i = 0; i < 8; ++i) {
    const uint64_t iova = *rc::gen::arbitrary<uint64_t>() &
                          ((uint64_t(1) << *rc::gen::inRange(12u, 64u - t0sz + 2)) - 1);
    bool mapped = false;
    for (const auto& mp : maps)
      if (iova >= mp.iova && iova - mp.iova < mp.size) mapped = true;
    if (mapped) continue;
    const Walk w = walk(rd(iova));
    RC_ASSERT(w.fault.has_value());
    RC_ASSERT(w.fault->cls == FaultClass::translation);
    RC_ASSERT(w.fault->stage == (stage1 ? 1 : 2));
  }
}

RC_GTEST_PROP(WalkProperty, MapThenWalkStage1, ()) {
  check_map_then_walk(true);
}

RC_GTEST_PROP(WalkProperty, MapThenWalkStage2, ()) {
  check_map_then_walk(false);
}

// Nested isolation: whatever stage-1 tables contain, a nested walk reads stage-1
// descriptors only from, and outputs only to, the PAs stage 2 maps.
RC_GTEST_PROP(WalkProperty, NestedIsolation, ()) {
  const Granule g2 = gen_granule();
  const Granule g1 = gen_granule();
  std::mt19937_64 rng(*rc::gen::arbitrary<uint64_t>());
  Memory m;
  m.add_region(pool(kS2Tables));
  m.add_region({kImage, kImage + kPoolSize - 1});
  m.add_region({kForbidden, kForbidden + kPoolSize - 1});
  m.add_region({0, 0x0fff'ffff}); // low memory, also outside the image

  // Stage 2: a 32-bit IPA space; the stage-1 window is IPA [0, 128K) in stage-2 pages.
  S2Config s2 = s2cfg(32, 0, g2);
  for (uint8_t s = 0; s < 4; ++s) {
    s2.s2sl0 = s;
    if (s2_config_valid(s2)) break;
  }
  RC_ASSERT(s2_config_valid(s2));
  auto s2b = PageTableBuilder::stage2(m, pool(kS2Tables), s2);
  s2.s2ttb = s2b.root();
  const uint64_t page2 = uint64_t(1) << granule_shift(g2);
  const uint64_t window = 0x20000;
  std::vector<Range> image;
  std::vector<std::pair<uint64_t, uint64_t>> window_pages; // IPA page -> PA page
  const uint64_t image_pages = kPoolSize / page2;
  auto map2 = [&](uint64_t ipa) {
    const uint64_t pa = kImage + (rng() % image_pages) * page2;
    const bool w = rng() % 2;
    if (s2b.map(ipa, pa, page2, {.read = true, .write = w, .exec = false})) {
      image.push_back({pa, pa + page2 - 1});
      return std::optional<uint64_t>(pa);
    }
    return std::optional<uint64_t>();
  };
  for (uint64_t ipa = 0; ipa < window; ipa += page2)
    if (rng() % 4 != 0)
      if (auto pa = map2(ipa)) window_pages.push_back({ipa, *pa});
  const int extra = *rc::gen::inRange(0, 8);
  for (int i = 0; i < extra; ++i)
    map2((rng() % (uint64_t(1) << 32)) & ~(page2 - 1));

  // Adversarial stage-1 contents: every word of every mapped window page, plus decoys in
  // the forbidden region.
  const uint64_t page1 = uint64_t(1) << granule_shift(g1);
  auto random_word = [&]() -> uint64_t {
    const uint64_t r = rng();
    const uint64_t attrs = rng() & 0xfff0'0000'0000'0ffc; // random upper/lower attributes
    switch (r % 8) {
    case 0:
      return 0;
    case 1:
      return rng();
    case 2:
    case 3:
    case 4: // table into the window
      return ((rng() % window) & ~(page1 - 1)) | 3 | (attrs & ~uint64_t(0xffc));
    case 5: // table anywhere: the forbidden region, low memory, stage-2 tables, far away
    {
      const uint64_t targets[] = {kForbidden, 0, kS2Tables, rng() & 0xffff'ffff'f000};
      return ((targets[rng() % 4] + (rng() % 0x10000)) & 0xffff'ffff'f000 & ~(page1 - 1)) | 3;
    }
    default: // leaf, AF set, output inside the window or anywhere in 32 bits
    {
      const uint64_t oa =
          (r % 3 == 0 ? rng() % (uint64_t(1) << 32) : rng() % window) & ~uint64_t(0xfff);
      return oa | 0x400 | (rng() % 2 ? 3 : 1) | (attrs & 0x0060'0000'0000'00c0);
    }
    }
  };
  for (const auto& [ipa, pa] : window_pages)
    for (uint64_t off = 0; off < page2; off += 8)
      m.write64(pa + off, random_word());
  for (int i = 0; i < 4096; ++i)
    m.write64(kForbidden + 8 * (rng() % (kPoolSize / 8)), random_word());
  for (int i = 0; i < 1024; ++i)
    m.write64(8 * (rng() % (0x1000'0000 / 8)), random_word());

  S1Config s1 = s1cfg(0, *rc::gen::inRange<uint8_t>(16, 40), g1, 48);
  s1.ttb0 = (rng() % window) & ~(page1 - 1);
  s1.affd = *rc::gen::arbitrary<bool>();
  s1.had = *rc::gen::arbitrary<bool>();
  RC_PRE(s1_config_valid(s1));

  auto in_image = [&](uint64_t pa) {
    for (const auto& r : image)
      if (r.contains(pa)) return true;
    return false;
  };
  int ok = 0, deep = 0;
  for (int i = 0; i < 64; ++i) {
    Access a;
    a.iova = rng() & ((uint64_t(1) << (64 - s1.t0sz)) - 1);
    a.write = rng() % 4 == 0;
    a.exec = rng() % 8 == 0;
    a.priv = rng() % 2;
    const Walk w = walk_nested(m, s1, s2, a);
    for (uint64_t d : w.s1_descriptors_read)
      RC_ASSERT(in_image(d));
    for (uint64_t d : w.descriptors_read)
      RC_ASSERT(in_image(d) || pool(kS2Tables).contains(d));
    if (!w.fault) {
      RC_ASSERT(in_image(w.pa));
      ++ok;
    }
    if (w.s1_descriptors_read.size() >= 2) ++deep;
  }
  RC_TAG(ok > 0 ? "some walks succeed" : "no walk succeeds");
  RC_TAG(deep > 0 ? "some walks reach level start+1" : "all walks shallow");
}

} // namespace
} // namespace iommuspec::smmuv3
