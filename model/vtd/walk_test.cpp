// Tests for the VT-d translation walk (walk.h): one GoogleTest case per rule, and RapidCheck
// properties for map-then-walk and nested isolation.
#include "vtd/walk.h"

#include <gtest/gtest.h>
#include <random>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::vtd {
namespace {

constexpr uint64_t k4K = 0x1000, k2M = 0x20'0000, k1G = 0x4000'0000;
constexpr Range kPool{0x10'0000, 0x1f'ffff};  // second-stage tables
constexpr Range kPool2{0x20'0000, 0x2f'ffff}; // first-stage tables

using FR = FaultReason;

Memory mem_with(std::initializer_list<Range> rs) {
  Memory m;
  for (const Range& r : rs)
    m.add_region(r);
  return m;
}

SsConfig ss_cfg(uint64_t root, int levels = 4, bool scalable = true) {
  SsConfig c;
  c.slptptr = root;
  c.levels = levels;
  c.width = levels == 3 ? 39 : levels == 4 ? 48 : 57;
  c.haw = 48;
  c.scalable = scalable;
  c.snp_ok = scalable;
  return c;
}

FsConfig fs_cfg(uint64_t root, int levels = 4) {
  FsConfig c;
  c.fsptptr = root;
  c.levels = levels;
  c.sre = true;
  return c;
}

Access rd(uint64_t a) {
  return Access{a, false, false, false};
}
Access wr(uint64_t a) {
  return Access{a, true, false, false};
}

uint64_t entry_pa(uint64_t table, uint64_t addr, int level) {
  return table + 8ull * pt_index(addr, unsigned(level));
}

// The PA of the entry at `level` for `addr` in a well-formed table.
uint64_t walk_to(const Memory& m, uint64_t root, int levels, uint64_t addr, int level) {
  uint64_t t = root;
  for (int l = levels; l > level; --l)
    t = *m.read64(entry_pa(t, addr, l)) & 0x000f'ffff'ffff'f000ull;
  return entry_pa(t, addr, level);
}

void poke(Memory& m, uint64_t pa, uint64_t set, uint64_t clear = 0) {
  const uint64_t v = *m.read64(pa);
  ASSERT_TRUE(m.write64(pa, (v | set) & ~clear));
}

// ---- second stage ------------------------------------------------------------------------

TEST(WalkSs, FourLevel4K) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0x1234'5000, 0xab'cd00'0000, k4K, {}));
  Walk w = walk_ss(m, ss_cfg(b.root()), 0x1234'5678, rd(0x1234'5678));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0xab'cd00'0678u);
  EXPECT_EQ(w.page_size, k4K);
  EXPECT_TRUE(w.read && w.write);
  ASSERT_EQ(w.entries_read.size(), 4u);
  EXPECT_EQ(w.entries_read[0], entry_pa(b.root(), 0x1234'5678, 4));
  for (int l = 4; l >= 1; --l)
    EXPECT_EQ(w.entries_read[size_t(4 - l)], walk_to(m, b.root(), 4, 0x1234'5678, l));
}

TEST(WalkSs, FiveLevel) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 5, kPool);
  const uint64_t gpa = 0x1'2000'0000'3000ull; // bit 48 set: needs the fifth level
  ASSERT_TRUE(b.map(gpa, 0x5000'0000, k4K, {}));
  Walk w = walk_ss(m, ss_cfg(b.root(), 5), gpa + 8, rd(gpa + 8));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x5000'0008u);
  EXPECT_EQ(w.entries_read.size(), 5u);
  // The same GPA is beyond a 4-level (48-bit) second stage.
  Walk w4 = walk_ss(m, ss_cfg(b.root(), 4), gpa, rd(gpa));
  ASSERT_TRUE(w4.fault);
  EXPECT_EQ(w4.fault->reason, FR::sm_ss_beyond_max);
  EXPECT_EQ(w4.fault->level, 0);
  EXPECT_TRUE(w4.entries_read.empty());
}

TEST(WalkSs, ThreeLevelAndWidth) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 3, kPool);
  ASSERT_TRUE(b.map(0x7f'ffff'f000ull, 0x9000'0000, k4K, {}));
  Walk w = walk_ss(m, ss_cfg(b.root(), 3), 0x7f'ffff'f010ull, rd(0x7f'ffff'f010ull));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x9000'0010u);
  EXPECT_EQ(w.entries_read.size(), 3u);
  Walk beyond = walk_ss(m, ss_cfg(b.root(), 3), 1ull << 39, rd(1ull << 39));
  ASSERT_TRUE(beyond.fault);
  EXPECT_EQ(beyond.fault->reason, FR::sm_ss_beyond_max);
  EXPECT_EQ(beyond.fault->stage, 2);
  EXPECT_EQ(beyond.fault->gpa, 1ull << 39);
}

TEST(WalkSs, LargePages) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0x4000'0000, 0x1'8000'0000, k1G, {}));
  ASSERT_TRUE(b.map(0x20'0000, 0x60'0000, k2M, {true, false}));
  Walk g = walk_ss(m, ss_cfg(b.root()), 0x4123'4567, rd(0x4123'4567));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.pa, 0x1'8123'4567u);
  EXPECT_EQ(g.page_size, k1G);
  EXPECT_EQ(g.entries_read.size(), 2u);
  Walk t = walk_ss(m, ss_cfg(b.root()), 0x3f'fff8, rd(0x3f'fff8));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.pa, 0x7f'fff8u);
  EXPECT_EQ(t.page_size, k2M);
  EXPECT_FALSE(t.write);
  // Overlapping maps are refused.
  EXPECT_FALSE(b.map(0x4000'0000 + k2M, 0, k2M, {}));
  EXPECT_FALSE(b.map(0x20'0000, 0, k1G, {}));
  EXPECT_FALSE(b.map(0x21'0000, 0, k4K, {}));
  EXPECT_FALSE(b.map(0x1000, 0x800, k4K, {})); // misaligned PA
}

TEST(WalkSs, NotPresentScalable) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  Walk empty = walk_ss(m, ss_cfg(b.root()), 0x5000, rd(0x5000));
  ASSERT_TRUE(empty.fault);
  EXPECT_EQ(empty.fault->reason, FR::sm_ss_rw_permission); // 0x79: R = W = 0
  EXPECT_EQ(empty.fault->level, 4);
  EXPECT_EQ(empty.fault->stage, 2);
  ASSERT_TRUE(b.map(0x4000, 0x8000'0000, k4K, {}));
  Walk nb = walk_ss(m, ss_cfg(b.root()), 0x5000, wr(0x5000));
  ASSERT_TRUE(nb.fault);
  EXPECT_EQ(nb.fault->reason, FR::sm_ss_rw_permission);
  EXPECT_EQ(nb.fault->level, 1);
}

TEST(WalkSs, LegacyCodes) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0x4000, 0x8000'0000, k4K, {true, false}));
  const SsConfig c = ss_cfg(b.root(), 4, false);
  auto reason = [&](const SsConfig& cc, uint64_t a, bool write) {
    Walk w = walk_ss(m, cc, a, write ? wr(a) : rd(a));
    return w.fault ? w.fault->reason : FR::software;
  };
  // Qc:vtd_iova_to_sspte: not present is a permission fault in legacy mode.
  EXPECT_EQ(reason(c, 0x5000, false), FR::no_read);
  EXPECT_EQ(reason(c, 0x5000, true), FR::no_write);
  EXPECT_EQ(reason(c, 0x4000, true), FR::no_write);
  EXPECT_EQ(reason(c, 1ull << 48, false), FR::beyond_mgaw);
  SsConfig bad_root = c;
  bad_root.slptptr = 0x9000'0000; // no memory there
  EXPECT_EQ(reason(bad_root, 0x4000, false), FR::context_invalid);
  const uint64_t l3 = walk_to(m, b.root(), 4, 0x4000, 3);
  poke(m, l3, 0x3'0000'0000ull, 0x000f'ffff'ffff'f000ull); // L2 table pointer to nowhere
  EXPECT_EQ(reason(c, 0x4000, false), FR::next_table_invalid);
  poke(m, l3, 0, 0x000f'ffff'ffff'f000ull);
  poke(m, l3, 1ull << 51); // reserved above HAW 48
  EXPECT_EQ(reason(c, 0x4000, false), FR::pte_reserved);
}

TEST(WalkSs, Permissions) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0x1000, 0x8000'0000, k4K, {true, false}));   // read-only
  ASSERT_TRUE(b.map(0x2000, 0x8000'1000, k4K, {false, true}));   // write-only
  ASSERT_TRUE(b.map(0x40'0000, 0x8000'2000, k4K, {true, true})); // other L2 slot
  const SsConfig c = ss_cfg(b.root());
  Walk w1 = walk_ss(m, c, 0x1000, wr(0x1000));
  ASSERT_TRUE(w1.fault);
  EXPECT_EQ(w1.fault->reason, FR::sm_no_write);
  EXPECT_EQ(w1.fault->level, 1);
  Walk w2 = walk_ss(m, c, 0x2000, rd(0x2000));
  ASSERT_TRUE(w2.fault);
  EXPECT_EQ(w2.fault->reason, FR::sm_no_read);
  Walk w3 = walk_ss(m, c, 0x2000, wr(0x2000));
  EXPECT_TRUE(w3.ok());
  EXPECT_FALSE(w3.read);
  // Exec has no second-stage X position: checked as a read.
  Walk x = walk_ss(m, c, 0x2000, Access{0x2000, false, true, false});
  ASSERT_TRUE(x.fault);
  EXPECT_EQ(x.fault->reason, FR::sm_no_read);
  // W cleared in a non-leaf entry removes write for everything below it.
  poke(m, walk_to(m, b.root(), 4, 0x40'0000, 3), 0, 2);
  Walk w4 = walk_ss(m, c, 0x40'0000, wr(0x40'0000));
  ASSERT_TRUE(w4.fault);
  EXPECT_EQ(w4.fault->reason, FR::sm_no_write);
  Walk w5 = walk_ss(m, c, 0x40'0000, rd(0x40'0000));
  ASSERT_TRUE(w5.ok());
  EXPECT_FALSE(w5.write);
}

TEST(WalkSs, ReservedBits) {
  auto check = [](auto mutate, uint64_t size, int fault_level, SsConfig (*cfg)(uint64_t)) {
    Memory m = mem_with({kPool});
    PageTableBuilder b(m, Stage::second, 4, kPool);
    EXPECT_TRUE(b.map(0, 0x8000'0000, size, {}));
    mutate(m, b.root());
    Walk w = walk_ss(m, cfg(b.root()), 0x10, rd(0x10));
    if (fault_level == 0) {
      EXPECT_TRUE(w.ok());
      return;
    }
    ASSERT_TRUE(w.fault);
    EXPECT_EQ(w.fault->reason, FR::sm_ss_entry_reserved);
    EXPECT_EQ(w.fault->level, fault_level);
  };
  auto dflt = +[](uint64_t r) { return ss_cfg(r); };
  auto at = [](int level, uint64_t set) {
    return [=](Memory& m, uint64_t root) { poke(m, walk_to(m, root, 4, 0, level), set); };
  };
  check(at(1, 1ull << 50), k4K, 1, dflt); // above HAW
  check(at(1, 1ull << 63), k4K, 0, dflt); // ignored (Q:VTD_SS_IGN_COM)
  check(at(1, 1ull << 55), k4K, 0, dflt); // ignored
  check(at(1, 1ull << 62), k4K, 1, dflt); // TM without tm_ok
  check(at(1, 1ull << 11), k4K, 0, dflt); // SNP in a leaf, scalable
  check(at(3, 1ull << 11), k4K, 3, dflt); // SNP in a non-leaf
  check(at(4, 1ull << 7), k4K, 4, dflt);  // PS at level 4
  check(at(2, 1ull << 12), k2M, 2, dflt); // address bit below a 2M page
  check(at(3, 1ull << 29), k1G, 3, dflt); // address bit below a 1G page
  check(at(1, 0x7fcull), k4K, 0, dflt);   // bits 10:2: QEMU reserves none
  check([](Memory&, uint64_t) {}, k1G, 3,
        +[](uint64_t r) {
          SsConfig c = ss_cfg(r);
          c.sllps = 0b01; // no 1G pages
          return c;
        });
  check(
      at(1, 1ull << 62), k4K, 0, +[](uint64_t r) {
        SsConfig c = ss_cfg(r);
        c.tm_ok = true;
        return c;
      });
  check(
      at(1, 1ull << 11), k4K, 1, +[](uint64_t r) {
        SsConfig c = ss_cfg(r, 4, false); // legacy without snoop control
        c.scalable = true;                // keep the scalable codes for the comparison
        return c;
      });
}

TEST(WalkSs, MissingMemory) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0, 0x8000'0000, k4K, {}));
  SsConfig c = ss_cfg(b.root());
  c.slptptr = 0x7000'0000;
  Walk w = walk_ss(m, c, 0, rd(0));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_ss_ptr_invalid);
  EXPECT_EQ(w.fault->level, 4);
  EXPECT_EQ(w.entries_read, std::vector<uint64_t>{0x7000'0000});
  const uint64_t l4 = walk_to(m, b.root(), 4, 0, 4);
  poke(m, l4, 0x7000'0000, 0x000f'ffff'ffff'f000ull);
  Walk w2 = walk_ss(m, ss_cfg(b.root()), 0, rd(0));
  ASSERT_TRUE(w2.fault);
  EXPECT_EQ(w2.fault->reason, FR::sm_ss_entry_access);
  EXPECT_EQ(w2.fault->level, 3);
}

TEST(WalkSs, InterruptRange) {
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, Stage::second, 4, kPool);
  ASSERT_TRUE(b.map(0x1000, 0xfee0'0000, k4K, {}));
  Walk w = walk_ss(m, ss_cfg(b.root()), 0x1000, rd(0x1000));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_interrupt_addr);
  Walk l = walk_ss(m, ss_cfg(b.root(), 4, false), 0x1000, rd(0x1000));
  ASSERT_TRUE(l.fault);
  EXPECT_EQ(l.fault->reason, FR::interrupt_addr);
}

// ---- first stage -------------------------------------------------------------------------

TEST(WalkFs, FourAndFiveLevel) {
  for (int levels : {4, 5}) {
    Memory m = mem_with({kPool2});
    PageTableBuilder b(m, Stage::first, levels, kPool2);
    const uint64_t va = levels == 5 ? 0x00ff'1234'5678'9000ull : 0x7fff'1234'5000ull;
    ASSERT_TRUE(b.map(va, 0x3'0000'0000ull, k4K, {}));
    Walk w = walk_fs(m, fs_cfg(b.root(), levels), rd(va + 0x123));
    ASSERT_TRUE(w.ok()) << levels;
    EXPECT_EQ(w.pa, 0x3'0000'0123ull);
    EXPECT_EQ(w.entries_read.size(), size_t(levels));
    EXPECT_TRUE(w.ad_updates.empty()); // Linux presets A and D
  }
}

TEST(WalkFs, Canonical) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2);
  const uint64_t hi = 0xffff'8000'0000'0000ull; // canonical upper half
  ASSERT_TRUE(b.map(hi, 0x3000'0000, k2M, {}));
  Walk ok = walk_fs(m, fs_cfg(b.root()), rd(hi + 0x10));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.pa, 0x3000'0010u);
  EXPECT_EQ(ok.page_size, k2M);
  for (uint64_t a : {0x0000'8000'0000'0000ull, 0xfff0'0000'0000'0000ull}) {
    Walk w = walk_fs(m, fs_cfg(b.root()), rd(a));
    ASSERT_TRUE(w.fault);
    EXPECT_EQ(w.fault->reason, FR::sm_fs_non_canonical);
    EXPECT_EQ(w.fault->stage, 1);
    EXPECT_EQ(w.fault->level, 0);
  }
  // 0x0000'8000'0000'0000 is canonical with 5 levels.
  Walk w5 = walk_fs(m, fs_cfg(b.root(), 5), rd(0x0000'8000'0000'0000ull));
  ASSERT_TRUE(w5.fault);
  EXPECT_EQ(w5.fault->reason, FR::sm_fs_entry_not_present);
  EXPECT_EQ(w5.fault->level, 5);
}

TEST(WalkFs, LargePages) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2);
  ASSERT_TRUE(b.map(0x4000'0000, 0x1'c000'0000, k1G, {}));
  ASSERT_TRUE(b.map(0x20'0000, 0x40'0000, k2M, {}));
  Walk g = walk_fs(m, fs_cfg(b.root()), rd(0x7fff'fff8));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.pa, 0x1'ffff'fff8u);
  EXPECT_EQ(g.page_size, k1G);
  const uint64_t pde = walk_to(m, b.root(), 4, 0x20'0000, 2);
  poke(m, pde, 1ull << 12); // PAT in a 2M leaf: not reserved, not address
  Walk t = walk_fs(m, fs_cfg(b.root()), rd(0x21'0000));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.pa, 0x41'0000u);
  poke(m, pde, 1ull << 13); // reserved in a 2M leaf
  Walk r = walk_fs(m, fs_cfg(b.root()), rd(0x21'0000));
  ASSERT_TRUE(r.fault);
  EXPECT_EQ(r.fault->reason, FR::sm_fs_entry_reserved);
  EXPECT_EQ(r.fault->level, 2);
  FsConfig no1g = fs_cfg(b.root());
  no1g.fl1gp = false;
  Walk n = walk_fs(m, no1g, rd(0x4000'0000));
  ASSERT_TRUE(n.fault);
  EXPECT_EQ(n.fault->reason, FR::sm_fs_entry_reserved);
  EXPECT_EQ(n.fault->level, 3);
}

TEST(WalkFs, NotPresentAndMissingMemory) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2);
  ASSERT_TRUE(b.map(0x1000, 0x3000'0000, k4K, {}));
  Walk w = walk_fs(m, fs_cfg(b.root()), rd(0x2000));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_fs_entry_not_present);
  EXPECT_EQ(w.fault->level, 1);
  FsConfig c = fs_cfg(0x9000'0000);
  Walk root = walk_fs(m, c, rd(0x1000));
  ASSERT_TRUE(root.fault);
  EXPECT_EQ(root.fault->reason, FR::sm_fs_pml4_access);
  EXPECT_EQ(root.fault->level, 4);
  poke(m, walk_to(m, b.root(), 4, 0x1000, 2), 0x9000'0000, 0x000f'ffff'ffff'f000ull);
  Walk low = walk_fs(m, fs_cfg(b.root()), rd(0x1000));
  ASSERT_TRUE(low.fault);
  EXPECT_EQ(low.fault->reason, FR::sm_fs_entry_access);
  EXPECT_EQ(low.fault->level, 1);
}

TEST(WalkFs, Permissions) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2);
  Perms ro;
  ro.w = false;
  Perms sup;
  sup.user = false;
  Perms nx;
  nx.x = false;
  ASSERT_TRUE(b.map(0x1000, 0x3000'0000, k4K, ro));
  ASSERT_TRUE(b.map(0x2000, 0x3000'1000, k4K, sup));
  ASSERT_TRUE(b.map(0x3000, 0x3000'2000, k4K, nx));
  FsConfig c = fs_cfg(b.root());
  auto reason = [&](const FsConfig& cc, const Access& a) {
    Walk w = walk_fs(m, cc, a);
    return w.fault ? w.fault->reason : FR::software;
  };
  EXPECT_EQ(reason(c, rd(0x1000)), FR::software);
  EXPECT_EQ(reason(c, wr(0x1000)), FR::sm_no_write);
  EXPECT_EQ(reason(c, rd(0x2000)), FR::sm_fs_user_privilege);
  EXPECT_EQ(reason(c, Access{0x2000, true, false, true}), FR::software); // supervisor
  EXPECT_EQ(reason(c, Access{0x3000, false, true, false}), FR::sm_no_execute);
  EXPECT_EQ(reason(c, Access{0x1000, false, true, false}), FR::software);
  // Supervisor write to a read-only page: allowed unless WPE.
  EXPECT_EQ(reason(c, Access{0x1000, true, false, true}), FR::software);
  FsConfig wp = c;
  wp.wpe = true;
  EXPECT_EQ(reason(wp, Access{0x1000, true, false, true}), FR::sm_no_write);
  FsConfig nosre = c;
  nosre.sre = false;
  EXPECT_EQ(reason(nosre, Access{0x1000, false, false, true}), FR::sm_pasid_entry_sre_clear);
  FsConfig noere = c;
  noere.ere = false;
  EXPECT_EQ(reason(noere, Access{0x1000, false, true, false}), FR::sm_pasid_entry_ere_clear);
  // Effective permissions reported.
  Walk w = walk_fs(m, c, rd(0x3000));
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w.read && w.write && !w.exec);
  // U/S clear in a non-leaf entry: user requests fault at that level.
  poke(m, walk_to(m, b.root(), 4, 0x1000, 3), 0, 4);
  Walk u = walk_fs(m, c, rd(0x1000));
  ASSERT_TRUE(u.fault);
  EXPECT_EQ(u.fault->reason, FR::sm_fs_user_privilege);
  EXPECT_EQ(u.fault->level, 3);
}

TEST(WalkFs, ReservedBits) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2);
  ASSERT_TRUE(b.map(0x1000, 0x3000'0000, k4K, {}));
  FsConfig c = fs_cfg(b.root());
  const uint64_t pml4e = walk_to(m, b.root(), 4, 0x1000, 4);
  poke(m, pml4e, 1ull << 7); // PS at level 4
  Walk w = walk_fs(m, c, rd(0x1000));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_fs_entry_reserved);
  EXPECT_EQ(w.fault->level, 4);
  poke(m, pml4e, 0, 1ull << 7);
  const uint64_t pte = walk_to(m, b.root(), 4, 0x1000, 1);
  poke(m, pte, 1ull << 48); // above HAW 48
  Walk w1 = walk_fs(m, c, rd(0x1000));
  ASSERT_TRUE(w1.fault);
  EXPECT_EQ(w1.fault->reason, FR::sm_fs_entry_reserved);
  EXPECT_EQ(w1.fault->level, 1);
  poke(m, pte, 0x7ffull << 52, 1ull << 48); // ignored bits 62:52
  EXPECT_TRUE(walk_fs(m, c, rd(0x1000)).ok());
}

TEST(WalkFs, AccessedDirty) {
  Memory m = mem_with({kPool2});
  PageTableBuilder b(m, Stage::first, 4, kPool2, /*preset_ad=*/false);
  ASSERT_TRUE(b.map(0x1000, 0x3000'0000, k4K, {}));
  FsConfig c = fs_cfg(b.root());
  Walk r = walk_fs(m, c, rd(0x1000));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.ad_updates.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.ad_updates[i].pa, r.entries_read[i]);
    EXPECT_EQ(r.ad_updates[i].value, *m.read64(r.entries_read[i]) | 0x20);
  }
  ASSERT_TRUE(apply_ad_updates(m, r));
  EXPECT_TRUE(walk_fs(m, c, rd(0x1000)).ad_updates.empty());
  Walk w = walk_fs(m, c, wr(0x1000));
  ASSERT_EQ(w.ad_updates.size(), 1u); // only D in the leaf
  EXPECT_EQ(w.ad_updates[0].pa, w.entries_read[3]);
  EXPECT_EQ(w.ad_updates[0].value & 0x60, 0x60u);
  // A faulting walk keeps the updates of the levels before the fault.
  Memory m2 = mem_with({kPool2});
  PageTableBuilder b2(m2, Stage::first, 4, kPool2, false);
  ASSERT_TRUE(b2.map(0x1000, 0x3000'0000, k4K, {}));
  Walk f = walk_fs(m2, fs_cfg(b2.root()), rd(0x2000));
  ASSERT_TRUE(f.fault);
  EXPECT_EQ(f.ad_updates.size(), 3u);
}

// ---- nested ------------------------------------------------------------------------------

// Second stage maps the first-stage table pool one to one (GPA == PA), so the first-stage
// builder's physical addresses are also its GPAs.
struct NestedFixture {
  Memory m = mem_with({kPool, kPool2});
  PageTableBuilder ss{m, Stage::second, 4, kPool};
  PageTableBuilder fs{m, Stage::first, 4, kPool2, false};
  void identity(uint64_t page, Perms p = {}) { ASSERT_TRUE(ss.map(page, page, k4K, p)); }
  void identity_all() {
    for (uint64_t p : fs.table_pages())
      identity(p);
  }
  SsConfig ssc() const { return ss_cfg(ss.root()); }
  FsConfig fsc() const { return fs_cfg(fs.root()); }
};

TEST(WalkNested, Success) {
  NestedFixture n;
  ASSERT_TRUE(n.fs.map(0x1000'0000, 0x2000'0000, k4K, {}));
  n.identity_all();
  ASSERT_TRUE(n.ss.map(0x2000'0000, 0x3'0000'0000ull, k2M, {}));
  Walk w = walk_nested(n.m, n.fsc(), n.ssc(), rd(0x1000'0abc));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x3'0000'0abcull);
  EXPECT_EQ(w.page_size, k4K);
  // 4 first-stage fetches, each after a 4-level second-stage walk, then the final one.
  EXPECT_EQ(w.entries_read.size(), 4u * 5 + 3);
  EXPECT_EQ(w.ad_updates.size(), 4u);
}

TEST(WalkNested, FsTableNotMappedBySs) {
  NestedFixture n;
  ASSERT_TRUE(n.fs.map(0x1000'0000, 0x2000'0000, k4K, {}));
  ASSERT_EQ(n.fs.table_pages().size(), 4u);
  n.identity(n.fs.table_pages()[0]); // only the root; the level-3 table is unmapped
  Walk w = walk_nested(n.m, n.fsc(), n.ssc(), rd(0x1000'0000));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_ss_rw_permission);
  EXPECT_EQ(w.fault->stage, 2);
  EXPECT_TRUE(w.fault->on_fs_walk);
  EXPECT_EQ(w.fault->fs_level, 3);
  EXPECT_EQ(w.fault->gpa, entry_pa(n.fs.table_pages()[1], 0x1000'0000, 3));
}

TEST(WalkNested, FsTableReadWritePermission) {
  {
    NestedFixture n;
    ASSERT_TRUE(n.fs.map(0x1000'0000, 0x2000'0000, k4K, {}));
    n.identity(n.fs.table_pages()[0], {false, true}); // root page write-only
    Walk w = walk_nested(n.m, n.fsc(), n.ssc(), rd(0x1000'0000));
    ASSERT_TRUE(w.fault);
    EXPECT_EQ(w.fault->reason, FR::sm_nested_fs_pml4_read);
    EXPECT_TRUE(w.fault->on_fs_walk);
  }
  {
    NestedFixture n;
    ASSERT_TRUE(n.fs.map(0x1000'0000, 0x2000'0000, k4K, {}));
    n.identity(n.fs.table_pages()[0]);
    n.identity(n.fs.table_pages()[1], {false, true});
    Walk w = walk_nested(n.m, n.fsc(), n.ssc(), rd(0x1000'0000));
    ASSERT_TRUE(w.fault);
    EXPECT_EQ(w.fault->reason, FR::sm_nested_fs_read);
    EXPECT_EQ(w.fault->fs_level, 3);
  }
  {
    NestedFixture n; // A must be set in the root entry but its page is read-only
    ASSERT_TRUE(n.fs.map(0x1000'0000, 0x2000'0000, k4K, {}));
    for (uint64_t p : n.fs.table_pages())
      n.identity(p, {true, false});
    Walk w = walk_nested(n.m, n.fsc(), n.ssc(), rd(0x1000'0000));
    ASSERT_TRUE(w.fault);
    EXPECT_EQ(w.fault->reason, FR::sm_nested_fs_write);
    EXPECT_EQ(w.fault->fs_level, 4);
    EXPECT_TRUE(w.ad_updates.empty());
  }
}

TEST(WalkNested, WidthAndFinalStage) {
  NestedFixture n;
  ASSERT_TRUE(n.fs.map(0x1000, 0x2000'0000, k4K, {}));
  ASSERT_TRUE(n.fs.map(0x2000, 1ull << 47, k4K, {}));             // GPA beyond a 39-bit stage 2
  ASSERT_TRUE(n.fs.map(0x3000, 0x2000'1000, k4K, {}));            // not mapped by stage 2
  ASSERT_TRUE(n.fs.map(0x4000, 0x2000'2000, k4K, {true, false})); // FS read-only
  n.identity_all();
  ASSERT_TRUE(n.ss.map(0x2000'0000, 0x4000'0000, k4K, {true, false})); // SS read-only
  ASSERT_TRUE(n.ss.map(0x2000'2000, 0x4000'2000, k4K, {}));
  const SsConfig c = n.ssc();
  // Both stages must allow the access.
  Walk r = walk_nested(n.m, n.fsc(), c, rd(0x1000));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.read);
  EXPECT_FALSE(r.write);
  Walk w = walk_nested(n.m, n.fsc(), c, wr(0x1000));
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->reason, FR::sm_no_write);
  EXPECT_EQ(w.fault->stage, 2);
  EXPECT_FALSE(w.fault->on_fs_walk);
  EXPECT_EQ(w.fault->gpa, 0x2000'0000u);
  Walk w4 = walk_nested(n.m, n.fsc(), c, wr(0x4000));
  ASSERT_TRUE(w4.fault);
  EXPECT_EQ(w4.fault->reason, FR::sm_no_write);
  EXPECT_EQ(w4.fault->stage, 1);
  Walk np = walk_nested(n.m, n.fsc(), c, rd(0x3000));
  ASSERT_TRUE(np.fault);
  EXPECT_EQ(np.fault->reason, FR::sm_ss_rw_permission);
  EXPECT_FALSE(np.fault->on_fs_walk);
  SsConfig narrow = c;
  narrow.width = 39;
  Walk b = walk_nested(n.m, n.fsc(), narrow, rd(0x2000));
  ASSERT_TRUE(b.fault);
  EXPECT_EQ(b.fault->reason, FR::sm_nested_fs_beyond_mgaw);
  EXPECT_FALSE(b.fault->on_fs_walk);
  FsConfig far = n.fsc();
  far.fsptptr = 1ull << 40; // the first-stage root GPA itself is beyond
  Walk f = walk_nested(n.m, far, narrow, rd(0x1000));
  ASSERT_TRUE(f.fault);
  EXPECT_EQ(f.fault->reason, FR::sm_nested_fs_beyond_mgaw);
  EXPECT_TRUE(f.fault->on_fs_walk);
  EXPECT_EQ(f.fault->fs_level, 4);
}

// ---- builders from entries ---------------------------------------------------------------

TEST(WalkConfig, FromEntries) {
  CapReg cap;
  cap.sagaw = 0b0110; // AW 1, 2: 3 and 4 levels
  cap.mgaw = 47;      // 48 bits
  cap.sllps = 1;
  PasidEntry pe;
  pe.aw = 2;
  pe.slptptr = 0x5000;
  pe.flptptr = 0x6000;
  pe.flpm = 0;
  pe.wpe = true;
  auto s = ss_config(pe, cap, 46);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->levels, 4);
  EXPECT_EQ(s->width, 48u);
  EXPECT_EQ(s->haw, 46u);
  EXPECT_EQ(s->slptptr, 0x5000u);
  EXPECT_TRUE(s->scalable);
  auto f = fs_config(pe, cap, 46);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->levels, 4);
  EXPECT_TRUE(f->wpe);
  EXPECT_FALSE(f->sre);
  pe.aw = 3;
  EXPECT_FALSE(ss_config(pe, cap, 46)); // 5 levels not in SAGAW
  pe.flpm = 1;
  EXPECT_FALSE(fs_config(pe, cap, 46)); // no FL5LP
  ContextEntry ce;
  ce.aw = 1;
  ce.slptptr = 0x7000;
  auto l = ss_config(ce, cap, 46);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->levels, 3);
  EXPECT_EQ(l->width, 39u);
  EXPECT_FALSE(l->scalable);
}

// ---- properties --------------------------------------------------------------------------

struct Mapping {
  uint64_t addr, pa, size;
  Perms perms;
};

rc::Gen<Mapping> gen_mapping() {
  return rc::gen::exec([] {
    const uint64_t size = *rc::gen::element(k4K, k4K, k2M, k1G);
    // Inputs below 2^39 (valid for every paging mode); outputs between 4G and 2^46, away
    // from the interrupt range.
    const uint64_t addr = *rc::gen::inRange<uint64_t>(0, (1ull << 39) / size) * size;
    const uint64_t pa =
        *rc::gen::inRange<uint64_t>((1ull << 32) / size, (1ull << 46) / size) * size;
    Perms p;
    p.r = *rc::gen::arbitrary<bool>();
    p.w = *rc::gen::arbitrary<bool>();
    if (!p.r && !p.w) p.r = true;
    p.x = *rc::gen::arbitrary<bool>();
    p.user = *rc::gen::arbitrary<bool>();
    return Mapping{addr, pa, size, p};
  });
}

RC_GTEST_PROP(WalkProps, MapThenWalk, ()) {
  const Stage stage = *rc::gen::element(Stage::first, Stage::second);
  const int levels = stage == Stage::first ? *rc::gen::element(4, 5) : *rc::gen::element(3, 4, 5);
  const auto ms = *rc::gen::container<std::vector<Mapping>>(gen_mapping());
  Memory m = mem_with({kPool});
  PageTableBuilder b(m, stage, levels, kPool);
  std::vector<Mapping> kept;
  for (const Mapping& x : ms) {
    const Range r{x.addr, x.addr + x.size - 1};
    bool overlap = false;
    for (const Mapping& k : kept)
      overlap = overlap || r.overlaps({k.addr, k.addr + k.size - 1});
    if (overlap) continue;
    RC_ASSERT(b.map(x.addr, x.pa, x.size, x.perms));
    kept.push_back(x);
  }
  SsConfig ss = ss_cfg(b.root(), levels);
  FsConfig fs = fs_cfg(b.root(), levels);
  auto walk = [&](uint64_t a, bool write, bool priv) {
    const Access acc{a, write, false, priv};
    return stage == Stage::second ? walk_ss(m, ss, a, acc) : walk_fs(m, fs, acc);
  };
  for (const Mapping& x : kept) {
    const uint64_t off = *rc::gen::inRange<uint64_t>(0, x.size);
    const bool write = stage == Stage::second && !x.perms.r;
    const bool priv = stage == Stage::first && !x.perms.user;
    const Walk w = walk(x.addr + off, write, priv);
    RC_ASSERT(w.ok());
    RC_ASSERT(w.pa == x.pa + off);
    RC_ASSERT(w.page_size == x.size);
    if (stage == Stage::second) {
      RC_ASSERT(w.read == x.perms.r);
      RC_ASSERT(w.write == x.perms.w);
    } else {
      RC_ASSERT(w.write == (x.perms.w || priv)); // supervisor, WPE clear
      RC_ASSERT(w.exec == x.perms.x);
      RC_ASSERT(w.ad_updates.empty());
    }
  }
  for (int i = 0; i < 20; ++i) {
    uint64_t a = *rc::gen::inRange<uint64_t>(0, 1ull << 39);
    if (!kept.empty() && *rc::gen::arbitrary<bool>()) {
      // near a mapping, often just outside it
      const Mapping& x = kept[*rc::gen::inRange<size_t>(0, kept.size())];
      a = (x.addr + x.size + *rc::gen::inRange<uint64_t>(0, 4) * k4K) % (1ull << 39);
    }
    bool mapped = false;
    for (const Mapping& k : kept)
      mapped = mapped || (k.addr <= a && a - k.addr < k.size);
    if (mapped) continue;
    const Walk w = walk(a, false, true);
    RC_ASSERT(w.fault.has_value());
    RC_ASSERT(w.fault->reason ==
              (stage == Stage::second ? FR::sm_ss_rw_permission : FR::sm_fs_entry_not_present));
  }
}

// Nested isolation: whatever the first-stage tables hold, a nested walk reads only
// second-stage tables and pages the second stage maps, and outputs only such pages.
RC_GTEST_PROP(WalkProps, NestedIsolation, ()) {
  constexpr Range kFsRegion{0x40'0000, 0x40'ffff}; // 16 pages of guest memory
  constexpr Range kSecret{0x80'0000, 0x80'3fff};   // never mapped by the second stage
  constexpr uint64_t kWindow = 16 * k4K;           // GPAs [0, 64K)
  Memory m = mem_with({kPool, kFsRegion, kSecret});
  const int ss_levels = *rc::gen::element(3, 4, 5);
  PageTableBuilder ss(m, Stage::second, ss_levels, kPool);
  std::vector<Range> image;
  std::vector<uint64_t> mapped; // GPAs the second stage maps
  const int n_maps = *rc::gen::inRange(1, 40);
  for (int i = 0; i < n_maps; ++i) {
    const uint64_t gpa = *rc::gen::inRange<uint64_t>(0, kWindow / k4K) * k4K;
    const bool in_fs = *rc::gen::weightedElement<bool>({{12, true}, {1, false}});
    const uint64_t pa = in_fs ? kFsRegion.start + *rc::gen::inRange<uint64_t>(0, 16) * k4K
                              : 0x1'0000'0000ull + *rc::gen::inRange<uint64_t>(0, 64) * k4K;
    Perms p;
    p.r = *rc::gen::weightedElement<bool>({{10, true}, {1, false}});
    p.w = *rc::gen::weightedElement<bool>({{6, true}, {1, false}});
    if (!p.r && !p.w) p.w = true;
    if (ss.map(gpa, pa, k4K, p)) {
      image.push_back({pa, pa + k4K - 1});
      mapped.push_back(gpa);
    }
  }
  RC_PRE(!mapped.empty());
  for (uint64_t t : ss.table_pages())
    image.push_back({t, t + k4K - 1});
  // Arbitrary first-stage contents: the bulk comes from a generated seed. Most words point
  // into the GPA window (so walks get deep), some anywhere, some are zero or random.
  std::mt19937_64 rng(*rc::gen::arbitrary<uint64_t>());
  auto word = [&]() -> uint64_t {
    const uint64_t kind = rng() % 8;
    if (kind == 0) return rng();
    if (kind == 1) return 0;
    const uint64_t target = kind <= 5   ? mapped[rng() % mapped.size()]
                            : kind == 6 ? (rng() % (kWindow / k4K)) * k4K
                                        : rng() & 0xff'ffff'f000ull;
    uint64_t low = (rng() & 0xfff) | 1;
    if (rng() % 4) low &= ~0x80ull; // PS less often
    if (rng() % 4) low |= 0x26;     // RW, U/S and A more often
    const uint64_t xd = rng() % 4 == 0 ? 1ull << 63 : 0;
    return target | low | xd;
  };
  for (const Range& r : {kFsRegion, kSecret})
    for (uint64_t a = r.start; a < r.last; a += 8)
      m.write64(a, word());
  FsConfig fs;
  fs.levels = *rc::gen::element(4, 5);
  fs.fsptptr = *rc::gen::weightedElement<bool>({{9, true}, {1, false}})
                   ? mapped[*rc::gen::inRange<size_t>(0, mapped.size())]
                   : *rc::gen::inRange<uint64_t>(0, 1ull << 40) & ~0xfffull;
  fs.sre = *rc::gen::weightedElement<bool>({{7, true}, {1, false}});
  fs.wpe = *rc::gen::arbitrary<bool>();
  const SsConfig ssc = ss_cfg(ss.root(), ss_levels);
  auto inside = [&](uint64_t pa) {
    for (const Range& r : image)
      if (r.contains(pa)) return true;
    return false;
  };
  int ok = 0;
  for (int i = 0; i < 128; ++i) {
    Access acc;
    acc.addr = rng() & ((1ull << 47) - 1);
    acc.write = rng() % 3 == 0;
    acc.exec = rng() % 8 == 0;
    acc.priv = rng() % 2 == 0;
    const Walk w = walk_nested(m, fs, ssc, acc);
    for (uint64_t e : w.entries_read)
      RC_ASSERT(inside(e));
    for (const AdUpdate& u : w.ad_updates)
      RC_ASSERT(inside(u.pa));
    if (w.ok()) {
      ++ok;
      RC_ASSERT(inside(w.pa));
      RC_ASSERT(inside(w.pa & ~(w.page_size - 1)));
    }
  }
  RC_TAG(ok > 0 ? "some walks succeed" : "all walks fault");
}

// The resumable walks (walk_ss_from, walk_fs_from, combine_nested) give the outcome the plain
// walks give, fault for fault, on arbitrary table contents: the machine's fresh walk is
// walk_ss / walk_fs / walk_nested.
RC_GTEST_PROP(WalkProps, ResumableWalksAgree, ()) {
  constexpr Range kRegion{0x40'0000, 0x40'ffff}; // 16 pages of arbitrary entries
  constexpr uint64_t kPages = 16;
  Memory m = mem_with({kRegion});
  std::mt19937_64 rng(*rc::gen::arbitrary<uint64_t>());
  auto page = [&] { return kRegion.start + (rng() % kPages) * k4K; };
  // Entries point into the region most of the time (so walks get deep), with flags biased
  // towards present and permissive; some words are zero or random.
  auto word = [&]() -> uint64_t {
    const uint64_t kind = rng() % 8;
    if (kind == 0) return rng();
    if (kind == 1) return 0;
    const uint64_t target = kind <= 6 ? page() : rng() & 0xff'ffff'f000ull;
    uint64_t low = rng() & 0xfff;
    if (rng() % 4) low &= ~0x880ull; // PS and SNP less often
    if (rng() % 3) low |= 0x27;      // P/R, RW/W, U/S, A more often
    const uint64_t hi = rng() % 6 == 0 ? 1ull << 63 : rng() % 9 == 0 ? 1ull << 62 : 0;
    return target | low | hi;
  };
  for (uint64_t a = kRegion.start; a < kRegion.last; a += 8)
    m.write64(a, word());
  SsConfig ss = ss_cfg(page(), *rc::gen::element(3, 4, 5), *rc::gen::arbitrary<bool>());
  ss.tm_ok = *rc::gen::arbitrary<bool>();
  ss.sllps = *rc::gen::element<uint8_t>(0, 1, 3);
  FsConfig fs = fs_cfg(page(), *rc::gen::element(4, 5));
  fs.sre = *rc::gen::arbitrary<bool>();
  fs.wpe = *rc::gen::arbitrary<bool>();
  fs.ere = *rc::gen::weightedElement<bool>({{5, true}, {1, false}});
  fs.fl1gp = *rc::gen::arbitrary<bool>();
  SsConfig nss = ss;
  nss.scalable = true; // walk_nested treats the second stage as scalable
  const SsTranslate fresh = [&](uint64_t gpa, const Access& a, std::vector<Walk>& out) {
    out.push_back(walk_ss_from(m, nss, gpa, a, std::nullopt));
  };
  auto same = [](const Walk& x, const Walk& y) {
    RC_ASSERT(x.fault == y.fault);
    if (!x.fault) {
      RC_ASSERT(x.pa == y.pa);
      RC_ASSERT(x.page_size == y.page_size);
      RC_ASSERT(x.read == y.read);
      RC_ASSERT(x.write == y.write);
      RC_ASSERT(x.exec == y.exec);
    }
  };
  int ok = 0;
  for (int i = 0; i < 64; ++i) {
    Access acc;
    acc.addr = rng() % 4 == 0 ? rng() : rng() & ((1ull << 48) - 1);
    acc.write = rng() % 3 == 0;
    acc.exec = !acc.write && rng() % 6 == 0;
    acc.priv = rng() % 2 == 0;
    {
      Walk got = walk_ss_from(m, ss, acc.addr, acc, std::nullopt);
      check_interrupt_range(got, acc, 2, ss.scalable);
      const Walk want = walk_ss(m, ss, acc.addr, acc);
      same(got, want);
      ok += want.ok();
    }
    {
      std::vector<Walk> ws;
      walk_fs_from(m, fs, nullptr, acc, std::nullopt, ws);
      RC_ASSERT(ws.size() == 1u);
      check_interrupt_range(ws.front(), acc, 1, true);
      same(ws.front(), walk_fs(m, fs, acc));
    }
    {
      std::vector<Walk> ws;
      walk_fs_from(m, fs, &fresh, acc, std::nullopt, ws);
      RC_ASSERT(ws.size() == 1u);
      Walk got = ws.front();
      if (!got.fault) got = combine_nested(got, walk_ss_from(m, nss, got.pa, acc, std::nullopt));
      check_interrupt_range(got, acc, 2, true);
      const Walk want = walk_nested(m, fs, ss, acc);
      same(got, want);
      ok += want.ok();
    }
  }
  RC_TAG(ok > 0 ? "some walks succeed" : "all walks fault");
}

} // namespace
} // namespace iommuspec::vtd
