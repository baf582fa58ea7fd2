// Tests of the VT-d machine (machine.h): behaviour cases for the cache and invalidation rules,
// the invalidation queue and fault recording, and a RapidCheck property: after global
// invalidations of every cache and a wait descriptor, the allowed set is exactly the fresh
// walk's outcome.
#include "vtd/machine.h"

#include <algorithm>
#include <deque>
#include <gtest/gtest.h>
#include <map>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>

namespace iommuspec::vtd {
namespace {

constexpr uint64_t k4K = 0x1000, k2M = 0x20'0000;
constexpr uint64_t kRoot = 0x10'0000;    // RTADDR (Layout default)
constexpr uint64_t kCtx = 0x11'0000;     // context tables: + bus * 0x2000
constexpr uint64_t kPasid = 0x30'0000;   // PASID directories and tables
constexpr uint64_t kSsPool = 0x100'0000; // second-stage tables, 1M per table
constexpr uint64_t kFsPool = 0x180'0000; // first-stage tables, 1M per table
constexpr uint64_t kStatus = 0x41'0000;  // wait-descriptor status word
constexpr uint64_t kAddrMask = 0x000f'ffff'ffff'f000ull;

using FR = FaultReason;
using Kind = hw::DmaOutcome::Kind;

// A machine plus a shadow of its memory: tests edit the shadow (through the format layer and
// walk.h's PageTableBuilder) and commit the words that changed as one write step.
class Rig {
public:
  explicit Rig(bool scalable, Features f = {}, Layout lay = {})
      : m(
            [&] {
              lay.scalable = scalable;
              return lay;
            }(),
            f) {
    shadow.add_region(m.layout().ram);
  }

  Machine m;
  Memory shadow;

  PageTableBuilder& table(Stage st, int levels) {
    uint64_t& next = st == Stage::second ? next_ss_ : next_fs_;
    const Range pool{next, next + 0xf'ffff};
    next += 0x10'0000;
    builders_.emplace_back(shadow, st, levels, pool);
    return builders_.back();
  }
  void put(uint64_t pa, uint64_t v) {
    ASSERT_TRUE(shadow.write64(pa, v));
    pages_.insert(pa & ~(k4K - 1));
  }
  bool commit() {
    std::set<uint64_t> pages = pages_;
    for (const auto& b : builders_)
      for (uint64_t p : b.table_pages())
        pages.insert(p);
    std::vector<hw::Write> ws;
    for (uint64_t p : pages)
      for (uint64_t a = p; a < p + k4K; a += 8) {
        const uint64_t v = shadow.read64(a).value_or(0);
        if (v != m.memory().read64(a).value_or(0)) ws.push_back({a, v});
      }
    return m.write(ws);
  }

  // The entry slot for `addr` at `level` in a table tree of the shadow (nullopt when a table
  // on the way is not in memory).
  std::optional<uint64_t> find_slot(uint64_t root, int levels, uint64_t addr, int level) const {
    uint64_t t = root;
    for (int l = levels; l > level; --l) {
      const auto e = shadow.read64(t + 8ull * pt_index(addr, unsigned(l)));
      if (!e) return std::nullopt;
      t = *e & kAddrMask;
    }
    const uint64_t at = t + 8ull * pt_index(addr, unsigned(level));
    if (!shadow.read64(at)) return std::nullopt;
    return at;
  }
  uint64_t slot(uint64_t root, int levels, uint64_t addr, int level) const {
    const auto at = find_slot(root, levels, addr, level);
    EXPECT_TRUE(at.has_value());
    return at.value_or(0);
  }

  // Legacy mode: root entry of the bus, context entry of the device.
  void legacy_context(uint16_t sid, uint16_t did, uint64_t ss_root, int levels,
                      TranslationType tt = TranslationType::multi_level, bool fpd = false) {
    const uint64_t bus = sid >> 8, devfn = sid & 0xff, ctp = kCtx + bus * 0x2000;
    put2(kRoot + 16 * bus, encode(RootEntry{true, ctp}));
    ContextEntry ce;
    ce.present = true;
    ce.fpd = fpd;
    ce.tt = tt;
    ce.slptptr = ss_root;
    ce.aw = uint8_t(levels - 2);
    ce.did = did;
    put2(ctp + 16 * devfn, encode(ce));
  }
  // Scalable mode: root entry halves, context entry with a PASID directory of its own.
  void sm_context(uint16_t sid, bool paside = true, bool fpd = false, bool dte = false) {
    const uint64_t bus = sid >> 8, devfn = sid & 0xff, lower = kCtx + bus * 0x2000;
    SmRootEntry re;
    re.lower_present = re.upper_present = true;
    re.lctp = lower;
    re.uctp = lower + 0x1000;
    put2(kRoot + 16 * bus, encode(re));
    if (!dirs_.count(sid)) dirs_[sid] = alloc_pasid_page();
    SmContextEntry ce;
    ce.present = true;
    ce.fpd = fpd;
    ce.dte = dte;
    ce.paside = paside;
    ce.pasid_dir_ptr = dirs_[sid];
    const Words4 w = encode(ce);
    const uint64_t at = (devfn < 0x80 ? lower : lower + 0x1000) + 32 * (devfn & 0x7f);
    for (int i = 0; i < 4; ++i)
      put(at + 8 * i, w[i]);
  }
  uint64_t pasid_entry_pa(uint16_t sid, uint32_t pasid) {
    const uint64_t de = dirs_.at(sid) + 8ull * pasid_dir_index(pasid);
    PasidDirEntry d = decode_pasid_dir_entry(shadow.read64(de).value_or(0));
    if (!d.present) {
      d.present = true;
      d.pasid_table = alloc_pasid_page();
      put(de, encode(d));
    }
    return d.pasid_table + 64ull * pasid_table_index(pasid);
  }
  void sm_pasid(uint16_t sid, uint32_t pasid, const PasidEntry& pe) {
    const uint64_t at = pasid_entry_pa(sid, pasid);
    const Words8 w = encode(pe);
    for (int i = 0; i < 8; ++i)
      put(at + 8 * i, w[i]);
  }

  hw::QueueOutcome inv(const std::vector<QiDescriptor>& ds) {
    std::vector<uint64_t> words;
    const size_t width = m.layout().scalable ? 4 : 2;
    for (const QiDescriptor& d : ds) {
      const QiDesc q = encode(d);
      for (size_t i = 0; i < width; ++i)
        words.push_back(q[i]);
    }
    return m.submit(words);
  }

private:
  void put2(uint64_t pa, const Words2& w) {
    put(pa, w[0]);
    put(pa + 8, w[1]);
  }
  uint64_t alloc_pasid_page() {
    const uint64_t p = next_pasid_;
    next_pasid_ += k4K;
    return p;
  }
  std::deque<PageTableBuilder> builders_;
  std::set<uint64_t> pages_;
  std::map<uint16_t, uint64_t> dirs_;
  uint64_t next_ss_ = kSsPool, next_fs_ = kFsPool, next_pasid_ = kPasid;
};

PasidEntry fs_entry(uint16_t did, uint64_t root, int levels = 4) {
  PasidEntry pe;
  pe.present = true;
  pe.pgtt = Pgtt::first_stage;
  pe.did = did;
  pe.flptptr = root;
  pe.flpm = levels == 5 ? 1 : 0;
  return pe;
}
PasidEntry ss_entry(uint16_t did, uint64_t root, int levels = 4) {
  PasidEntry pe;
  pe.present = true;
  pe.pgtt = Pgtt::second_stage;
  pe.did = did;
  pe.slptptr = root;
  pe.aw = uint8_t(levels - 2);
  return pe;
}
PasidEntry nested_entry(uint16_t did, uint64_t fs_root, uint64_t ss_root) {
  PasidEntry pe = fs_entry(did, fs_root);
  pe.pgtt = Pgtt::nested;
  pe.slptptr = ss_root;
  pe.aw = 2;
  return pe;
}

uint64_t fs_leaf(uint64_t pa, bool w = true) {
  FsPte e;
  e.p = e.us = e.a = true;
  e.rw = e.d = w;
  e.addr = pa;
  return encode(e);
}
uint64_t ss_leaf(uint64_t pa, bool r = true, bool w = true) {
  SsPte e;
  e.r = r;
  e.w = w;
  e.addr = pa;
  return encode(e);
}

hw::DmaRequest req(uint32_t sid, uint64_t addr, bool write = false,
                   std::optional<uint32_t> pasid = std::nullopt) {
  hw::DmaRequest r;
  r.sid = sid;
  r.addr = addr;
  r.write = write;
  r.ssid = pasid;
  r.priv = false;
  return r;
}

InvWait wait() {
  InvWait w;
  w.sw = true;
  w.status_data = 1;
  w.status_addr = kStatus;
  return w;
}
PasidIotlbInv piotlb_page(uint16_t did, uint32_t pasid, uint64_t addr, uint8_t am = 0,
                          bool ih = false) {
  PasidIotlbInv d;
  d.g = PasidIotlbGranularity::page_in_pasid;
  d.did = did;
  d.pasid = pasid;
  d.addr = addr;
  d.am = am;
  d.ih = ih;
  return d;
}
PasidIotlbInv piotlb_all(uint16_t did, uint32_t pasid) {
  PasidIotlbInv d;
  d.g = PasidIotlbGranularity::all_in_pasid;
  d.did = did;
  d.pasid = pasid;
  return d;
}
IotlbInv iotlb_page(uint16_t did, uint64_t addr, uint8_t am = 0, bool ih = false) {
  IotlbInv d;
  d.g = IotlbGranularity::page;
  d.did = did;
  d.addr = addr;
  d.am = am;
  d.ih = ih;
  return d;
}
IotlbInv iotlb(IotlbGranularity g, uint16_t did = 0) {
  IotlbInv d;
  d.g = g;
  d.did = did;
  return d;
}
ContextCacheInv cc(CcGranularity g, uint16_t did = 0, uint16_t sid = 0) {
  ContextCacheInv d;
  d.g = g;
  d.did = did;
  d.sid = sid;
  return d;
}
PasidCacheInv pc(PasidCacheGranularity g, uint16_t did = 0, uint32_t pasid = 0) {
  PasidCacheInv d;
  d.g = g;
  d.did = did;
  d.pasid = pasid;
  return d;
}

// The output addresses of the allowed set, sorted; faults and aborts are left out.
std::vector<uint64_t> pas(const std::vector<Allowed>& a) {
  std::vector<uint64_t> out;
  for (const Allowed& x : a)
    if (x.outcome.kind == Kind::ok) out.push_back(x.outcome.pa);
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<FaultReason> reasons(const std::vector<Allowed>& a) {
  std::vector<FaultReason> out;
  for (const Allowed& x : a)
    if (x.outcome.kind == Kind::fault)
      out.push_back(
          FaultReason(decode_fault_record({x.outcome.record[0], x.outcome.record[1]}).reason));
  return out;
}
bool only_pa(const std::vector<Allowed>& a, uint64_t pa) {
  return a.size() == 1 && a[0].outcome.kind == Kind::ok && a[0].outcome.pa == pa;
}
bool only_fault(const std::vector<Allowed>& a, FaultReason r) {
  return a.size() == 1 && reasons(a) == std::vector<FaultReason>{r};
}

const hw::QueueOutcome kOk2{2, ""};

// ---- Fresh walks ------------------------------------------------------------------------

TEST(VtdMachine, FreshWalkGivesExactlyOneOutcome) {
  {
    Rig g(false);
    auto& t = g.table(Stage::second, 4);
    ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    g.legacy_context(0x10, 1, t.root(), 4);
    ASSERT_TRUE(g.commit());
    EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10abc)), 0x200'0abc));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x11000)), FR::no_read));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x18, 0x10000)), FR::context_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x110, 0x10000)), FR::root_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x10000, false, 1)), FR::sm_ttm0_pasid));
  }
  {
    Rig g(true);
    auto& t = g.table(Stage::first, 4);
    ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    g.sm_context(0x10);
    g.sm_pasid(0x10, 0, fs_entry(1, t.root()));
    ASSERT_TRUE(g.commit());
    EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10008, true)), 0x200'0008));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x11000)), FR::sm_fs_entry_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x10000, false, 7)), FR::sm_pasid_entry_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x10000, false, 64)), FR::sm_pasid_dir_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x18, 0x10000)), FR::sm_context_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x90, 0x10000)), FR::sm_context_not_present));
    EXPECT_TRUE(only_fault(g.m.dma(req(0x210, 0x10000)), FR::sm_root_not_present));
  }
}

TEST(VtdMachine, FreshNestedAndPassThrough) {
  Rig g(true);
  auto& s = g.table(Stage::second, 4);
  auto& t = g.table(Stage::first, 4);
  ASSERT_TRUE(t.map(0x10000, 0x5000'0000, k4K, Perms{}));
  for (uint64_t p : t.table_pages()) // first-stage tables at GPA == PA
    ASSERT_TRUE(s.map(p, p, k4K, Perms{}));
  ASSERT_TRUE(s.map(0x5000'0000, 0x200'0000, k4K, Perms{}));
  g.sm_context(0x10);
  g.sm_pasid(0x10, 0, nested_entry(1, t.root(), s.root()));
  g.sm_context(0x18);
  PasidEntry pt;
  pt.present = true;
  pt.pgtt = Pgtt::pass_through;
  pt.did = 2;
  g.sm_pasid(0x18, 0, pt);
  ASSERT_TRUE(g.commit());
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10ff8, true)), 0x200'0ff8));
  EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x11000)), FR::sm_fs_entry_not_present));
  EXPECT_TRUE(only_pa(g.m.dma(req(0x18, 0x234'5678)), 0x234'5678));
}

// ---- Cache rules ------------------------------------------------------------------------

// A scalable-mode first-stage device with one page at 0x10000 -> 0x2000000, then remapped to
// 0x2100000 (uncommitted; the caller commits).
struct FsRemap {
  Rig g{true};
  PageTableBuilder& t = g.table(Stage::first, 4);
  FsRemap() {
    EXPECT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    EXPECT_TRUE(t.map(0x40'0000, 0x300'0000, k4K, Perms{}));
    g.sm_context(0x10);
    g.sm_pasid(0x10, 0, fs_entry(1, t.root()));
    EXPECT_TRUE(g.commit());
    EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x200'0000));
  }
  void remap() { g.put(g.slot(t.root(), 4, 0x10000, 1), fs_leaf(0x210'0000)); }
};

TEST(VtdMachine, RemapWithoutInvalidationAllowsOldAndNew) {
  FsRemap s;
  s.remap();
  ASSERT_TRUE(s.g.commit());
  const auto a = s.g.m.dma(req(0x10, 0x10000));
  EXPECT_EQ(pas(a), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  EXPECT_EQ(a[0].outcome.pa, 0x210'0000u); // the fresh walk first
  EXPECT_EQ(a[0].clause, "VTD.WALK.fs");
}

TEST(VtdMachine, PageSelectivePiotlbAndWaitLeaveOnlyTheNew) {
  FsRemap s;
  s.remap();
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, InvalidationWithoutWaitDoesNotCoverYet) {
  FsRemap s;
  s.remap();
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000)}), (hw::QueueOutcome{1, ""}));
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))).size(), 2u);
  EXPECT_EQ(s.g.inv({wait()}), (hw::QueueOutcome{1, ""}));
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, WrongDidPasidOrRangeLeavesTheStaleEntry) {
  FsRemap s;
  s.remap();
  ASSERT_TRUE(s.g.commit());
  const std::vector<uint64_t> both{0x200'0000, 0x210'0000};
  EXPECT_EQ(s.g.inv({piotlb_page(2, 0, 0x10000), wait()}), kOk2); // DID
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), both);
  EXPECT_EQ(s.g.inv({piotlb_page(1, 3, 0x10000), wait()}), kOk2); // PASID
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), both);
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x11000), wait()}), kOk2); // the next page
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), both);
  EXPECT_EQ(s.g.inv({piotlb_all(1, 3), wait()}), kOk2);
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), both);
  // Second-stage-only descriptors do not select first-stage entries by address... but an
  // IOTLB PSI of the DID takes every first-stage entry of the domain (machine.cpp covers()).
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x7000'0000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, AmCoversTwoToTheAmPagesAligned) {
  FsRemap s;
  s.remap();
  ASSERT_TRUE(s.g.commit());
  // AM = 2 at 0x12000: 0x10000..0x13fff (address bits below the mask ignored).
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x12000, 2), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, InvalidationIssuedBeforeTheWriteDoesNotCover) {
  FsRemap s;
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000), wait()}), kOk2);
  s.remap();
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))).size(), 2u);
  // Issued before the write, completed after it: still not covering.
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000)}), (hw::QueueOutcome{1, ""}));
  s.g.put(s.g.slot(s.t.root(), 4, 0x10000, 1), fs_leaf(0x220'0000));
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({wait()}), (hw::QueueOutcome{1, ""}));
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x210'0000, 0x220'0000}));
}

TEST(VtdMachine, IhKeepsAChangedNonLeafEntryStale) {
  // Legacy second stage: a new last-level table for 0x10000 replaces the old one in the
  // level-2 entry; the old table still maps 0x2000000.
  Rig g(false);
  auto& t = g.table(Stage::second, 4);
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
  g.legacy_context(0x10, 1, t.root(), 4);
  ASSERT_TRUE(g.commit());
  const uint64_t fresh_table = 0x300'0000;
  g.put(fresh_table + 8 * pt_index(0x10000, 1), ss_leaf(0x210'0000));
  SsPte nl;
  nl.r = nl.w = true;
  nl.addr = fresh_table;
  g.put(g.slot(t.root(), 4, 0x10000, 2), encode(nl));
  ASSERT_TRUE(g.commit());
  const std::vector<uint64_t> both{0x200'0000, 0x210'0000};
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), both);
  EXPECT_EQ(g.inv({iotlb_page(1, 0x10000, 0, true), wait()}), kOk2);
  const auto a = g.m.dma(req(0x10, 0x10000));
  EXPECT_EQ(pas(a), both);
  EXPECT_TRUE(std::any_of(a.begin(), a.end(),
                          [](const Allowed& x) { return x.clause == "VTD.CACHE.psc"; }));
  EXPECT_EQ(g.inv({iotlb_page(1, 0x10000, 0, false), wait()}), kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, PiotlbIhKeepsFirstStagePagingStructureEntries) {
  FsRemap s;
  // Repoint the level-2 entry to a new last-level table mapping 0x2100000.
  const uint64_t fresh_table = 0x300'0000;
  s.g.put(fresh_table + 8 * pt_index(0x10000, 1), fs_leaf(0x210'0000));
  FsPte nl;
  nl.p = nl.rw = nl.us = nl.a = true;
  nl.addr = fresh_table;
  s.g.put(s.g.slot(s.t.root(), 4, 0x10000, 2), encode(nl));
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000, 0, true), wait()}), kOk2);
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000, 0, false), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, ContextCacheInvalidationAfterAContextEntryChange) {
  Rig g(false);
  auto& t1 = g.table(Stage::second, 4);
  auto& t2 = g.table(Stage::second, 4);
  ASSERT_TRUE(t1.map(0x10000, 0x200'0000, k4K, Perms{}));
  ASSERT_TRUE(t2.map(0x10000, 0x210'0000, k4K, Perms{}));
  g.legacy_context(0x10, 1, t1.root(), 4);
  ASSERT_TRUE(g.commit());
  g.legacy_context(0x10, 2, t2.root(), 4); // another domain
  ASSERT_TRUE(g.commit());
  const std::vector<uint64_t> both{0x200'0000, 0x210'0000};
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), both);
  // The IOTLB entries of DID 1 go; the cached context entry (DID 1) still walks T1.
  EXPECT_EQ(g.inv({iotlb(IotlbGranularity::domain, 1), wait()}), kOk2);
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), both);
  // Device-selective with the wrong DID (legacy: source-id and DID select).
  EXPECT_EQ(g.inv({cc(CcGranularity::device, 2, 0x10), wait()}), kOk2);
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), both);
  // Function mask 3 covers the whole device 2 (devfn 0x10..0x17).
  EXPECT_EQ(g.inv({[] {
                     auto d = cc(CcGranularity::device, 1, 0x17);
                     d.fm = 3;
                     return d;
                   }(),
                   wait()}),
            kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, IotlbEntriesOutliveTheContextCacheInvalidation) {
  // The requester's IOTLB entries may be used until their own DID is invalidated, whatever
  // the context entry now says (machine.h).
  Rig g(false);
  auto& t1 = g.table(Stage::second, 4);
  auto& t2 = g.table(Stage::second, 4);
  ASSERT_TRUE(t1.map(0x10000, 0x200'0000, k4K, Perms{}));
  ASSERT_TRUE(t2.map(0x10000, 0x210'0000, k4K, Perms{}));
  g.legacy_context(0x10, 1, t1.root(), 4);
  ASSERT_TRUE(g.commit());
  g.legacy_context(0x10, 2, t2.root(), 4);
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(g.inv({cc(CcGranularity::global), wait()}), kOk2);
  const auto a = g.m.dma(req(0x10, 0x10000));
  EXPECT_EQ(pas(a), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  EXPECT_EQ(a[1].clause, "VTD.CACHE.iotlb_fill");
  EXPECT_EQ(g.inv({iotlb(IotlbGranularity::domain, 1), wait()}), kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, ScalableContextCacheDomainSelectiveCoversNothing) {
  FsRemap s;
  // Point the context entry at another PASID directory whose RID_PASID entry maps elsewhere.
  auto& t2 = s.g.table(Stage::first, 4);
  ASSERT_TRUE(t2.map(0x10000, 0x230'0000, k4K, Perms{}));
  const uint64_t dir = 0x3f'0000, table = 0x3f'1000;
  s.g.put(dir, encode(PasidDirEntry{true, false, table}));
  const Words8 pe = encode(fs_entry(2, t2.root()));
  for (int i = 0; i < 8; ++i)
    s.g.put(table + 8 * i, pe[i]);
  const uint64_t ce_at = kCtx + 32 * 0x10;
  SmContextEntry ce =
      decode_sm_context_entry({*s.g.shadow.read64(ce_at), *s.g.shadow.read64(ce_at + 8), 0, 0});
  ce.pasid_dir_ptr = dir;
  s.g.put(ce_at, encode(ce)[0]);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000, 0x230'0000}));
  // Domain-selective context-cache invalidation: scalable-mode context entries have no DID
  // (weaker reading: it covers nothing). The PASID-cache entry and IOTLB entries of DID 1 go.
  EXPECT_EQ(s.g.inv({cc(CcGranularity::domain, 1), pc(PasidCacheGranularity::global),
                     piotlb_all(1, 0), wait()}),
            (hw::QueueOutcome{4, ""}));
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000, 0x230'0000}));
  EXPECT_EQ(s.g.inv({cc(CcGranularity::device, 7, 0x10), wait()}), kOk2); // DID ignored
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x10000)), 0x230'0000));
}

TEST(VtdMachine, PasidCacheAfterAPasidEntryChange) {
  FsRemap s;
  // PGTT = 5: no type (0x5b), as the suite's sm-pasid-entry-invalid-pgtt.
  const uint64_t at = s.g.pasid_entry_pa(0x10, 0);
  s.g.put(at, (*s.g.shadow.read64(at) & ~0x1c0ull) | (5ull << 6));
  ASSERT_TRUE(s.g.commit());
  auto a = s.g.m.dma(req(0x10, 0x10000));
  EXPECT_EQ(pas(a), (std::vector<uint64_t>{0x200'0000}));
  EXPECT_EQ(reasons(a), (std::vector<FaultReason>{FR::sm_pasid_entry_invalid}));
  EXPECT_EQ(a[0].outcome.kind, Kind::fault); // the fresh lookup first
  // The PASID-cache entry goes; the IOTLB entry stays until the PASID-based invalidation.
  EXPECT_EQ(s.g.inv({pc(PasidCacheGranularity::pasid, 1, 0), wait()}), kOk2);
  EXPECT_EQ(pas(s.g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000}));
  EXPECT_EQ(s.g.inv({piotlb_all(1, 0), wait()}), kOk2);
  EXPECT_TRUE(only_fault(s.g.m.dma(req(0x10, 0x10000)), FR::sm_pasid_entry_invalid));
}

TEST(VtdMachine, NestedSecondStageRemapAndIotlbPsiOfTheDid) {
  Rig g(true);
  auto& s = g.table(Stage::second, 4);
  auto& t = g.table(Stage::first, 4);
  ASSERT_TRUE(t.map(0x10000, 0x5000'0000, k4K, Perms{}));
  for (uint64_t p : t.table_pages())
    ASSERT_TRUE(s.map(p, p, k4K, Perms{}));
  ASSERT_TRUE(s.map(0x5000'0000, 0x200'0000, k4K, Perms{}));
  g.sm_context(0x10);
  g.sm_pasid(0x10, 0, nested_entry(1, t.root(), s.root()));
  ASSERT_TRUE(g.commit());
  g.put(g.slot(s.root(), 4, 0x5000'0000, 1), ss_leaf(0x210'0000));
  ASSERT_TRUE(g.commit());
  const auto a = g.m.dma(req(0x10, 0x10000));
  EXPECT_EQ(pas(a), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  // A PASID-based invalidation of the first-stage page takes the combined entry but leaves
  // the second-stage IOTLB entry of the GPA, which the fresh first-stage walk may still use.
  EXPECT_EQ(g.inv({piotlb_page(1, 0, 0x10000), wait()}), kOk2);
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  EXPECT_EQ(g.inv({iotlb_page(1, 0x5000'0000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, SecondStageEntriesAreNotPasidScoped) {
  Rig g(true);
  auto& t = g.table(Stage::second, 4);
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
  g.sm_context(0x10);
  g.sm_pasid(0x10, 0, ss_entry(1, t.root()));
  ASSERT_TRUE(g.commit());
  g.put(g.slot(t.root(), 4, 0x10000, 1), ss_leaf(0x210'0000));
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(g.inv({piotlb_page(1, 0, 0x10000), piotlb_all(1, 0), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))), (std::vector<uint64_t>{0x200'0000, 0x210'0000}));
  EXPECT_EQ(g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
}

TEST(VtdMachine, LargePageEntryGoesWithAnyPageInside) {
  Rig g(false);
  auto& t = g.table(Stage::second, 4);
  ASSERT_TRUE(t.map(0x20'0000, 0x220'0000, k2M, Perms{}));
  g.legacy_context(0x10, 1, t.root(), 4);
  ASSERT_TRUE(g.commit());
  SsPte big;
  big.r = big.w = big.ps = true;
  big.addr = 0x240'0000;
  g.put(g.slot(t.root(), 4, 0x20'0000, 2), encode(big));
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x2f'f000))), (std::vector<uint64_t>{0x22f'f000, 0x24f'f000}));
  EXPECT_EQ(g.inv({iotlb_page(1, 0x3f'f000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x2f'f000)), 0x24f'f000));
}

TEST(VtdMachine, NoNegativeCaching) {
  FsRemap s;
  EXPECT_TRUE(only_fault(s.g.m.dma(req(0x10, 0x11000)), FR::sm_fs_entry_not_present));
  ASSERT_TRUE(s.t.map(0x11000, 0x210'0000, k4K, Perms{}));
  ASSERT_TRUE(s.t.map(0x4000'0000, 0x220'0000, k4K, Perms{})); // new tables below level 4
  ASSERT_TRUE(s.g.commit());
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x11000)), 0x210'0000));
  EXPECT_TRUE(only_pa(s.g.m.dma(req(0x10, 0x4000'0000)), 0x220'0000));
}

TEST(VtdMachine, FpdBlocksQualifiedFaultsOnly) {
  Rig g(false);
  auto& t = g.table(Stage::second, 4);
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
  g.legacy_context(0x10, 1, t.root(), 4, TranslationType::multi_level, true);
  ASSERT_TRUE(g.commit());
  const auto a = g.m.dma(req(0x10, 0x11000));
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].outcome.kind, Kind::abort);
  EXPECT_EQ(a[0].clause, "VTD.FAULT.fpd");
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x200'0000));
  // Context entry reserved bit: not a qualified fault in QEMU's table, recorded despite FPD.
  const uint64_t ce_hi = kCtx + 16 * 0x10 + 8;
  g.put(ce_hi, *g.shadow.read64(ce_hi) | (1ull << 63));
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(g.inv({cc(CcGranularity::global), iotlb(IotlbGranularity::global), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_TRUE(only_fault(g.m.dma(req(0x10, 0x10000)), FR::context_reserved));
}

TEST(VtdMachine, FaultRecordFields) {
  Rig g(true);
  auto& t = g.table(Stage::first, 4);
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
  g.sm_context(0x218);
  g.sm_pasid(0x218, 0, fs_entry(1, t.root()));
  g.sm_pasid(0x218, 5, fs_entry(1, t.root()));
  ASSERT_TRUE(g.commit());
  auto a = g.m.dma(req(0x218, 0x11234, true, 5));
  ASSERT_EQ(a.size(), 1u);
  const hw::DmaOutcome o = a[0].outcome;
  const FaultRecord fr = decode_fault_record({o.record[0], o.record[1]});
  EXPECT_EQ(fr.reason, uint8_t(FR::sm_fs_entry_not_present));
  EXPECT_EQ(fr.sid, 0x218);
  EXPECT_EQ(fr.fi, 0x11000u);
  EXPECT_TRUE(fr.pp);
  EXPECT_EQ(fr.pasid, 5u);
  EXPECT_EQ(fr.type, FaultType::write);
  EXPECT_EQ(o.mask[1] & (0xfffffull << 40), 0xfffffull << 40);
  // Without PASID: PP = 0 is defined, the PASID bits are not.
  a = g.m.dma(req(0x218, 0x12ff8));
  const hw::DmaOutcome o2 = a[0].outcome;
  EXPECT_FALSE(decode_fault_record({o2.record[0], o2.record[1]}).pp);
  EXPECT_EQ(decode_fault_record({o2.record[0], o2.record[1]}).type, FaultType::read);
  EXPECT_EQ(o2.mask[1] & (0xfffffull << 40), 0u);
  EXPECT_NE(o2.mask[1] & (1ull << 31), 0u);
  // An observation with another PASID is not admitted.
  hw::DmaOutcome other = o;
  FaultRecord fr2 = fr;
  fr2.pasid = 6;
  const Words2 w = encode(fr2);
  other.record = {w[0], w[1]};
  EXPECT_FALSE(o.admits(other));
  EXPECT_TRUE(o.admits(o));
}

TEST(VtdMachine, SupervisorAndExecuteNeedAPasid) {
  Rig g(true);
  auto& t = g.table(Stage::first, 4);
  Perms sup;
  sup.user = false;
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, sup));
  g.sm_context(0x10);
  PasidEntry pe = fs_entry(1, t.root());
  pe.sre = true;
  g.sm_pasid(0x10, 0, pe);
  g.sm_pasid(0x10, 5, pe);
  ASSERT_TRUE(g.commit());
  hw::DmaRequest r = req(0x10, 0x10000);
  r.priv = true; // no PASID: a user request regardless
  EXPECT_TRUE(only_fault(g.m.dma(r), FR::sm_fs_user_privilege));
  r.ssid = 5;
  EXPECT_TRUE(only_pa(g.m.dma(r), 0x200'0000));
}

// ---- Invalidation queue -----------------------------------------------------------------

TEST(VtdMachine, DescriptorErrors) {
  const Features f;
  auto err = [&](const QiDescriptor& d, bool wide) { return descriptor_error(encode(d), wide, f); };
  EXPECT_EQ(err(piotlb_page(1, 0, 0x10000), true), "");
  EXPECT_EQ(err(piotlb_page(1, 0, 0x10000), false), "IQE"); // 256-bit only
  EXPECT_EQ(err(pc(PasidCacheGranularity::global), false), "IQE");
  EXPECT_EQ(err(pc(PasidCacheGranularity{2}), true), "IQE");
  EXPECT_EQ(err(iotlb_page(1, 0x10000, 18), false), "");
  EXPECT_EQ(err(iotlb_page(1, 0x10000, 19), false), "IQE"); // AM > MAMV
  EXPECT_EQ(err(iotlb(IotlbGranularity{0}), false), "IQE");
  EXPECT_EQ(err(cc(CcGranularity{0}), false), "IQE");
  EXPECT_EQ(err(wait(), false), "");
  EXPECT_EQ(err(InvWait{}, false), "IQE"); // none of IF, SW, FN
  InvWait pd = wait();
  pd.pd = true; // QEMU reserves PD without ECAP.PDS; Linux sets it: accepted
  EXPECT_EQ(err(pd, false), "");
  QiDesc d = encode(iotlb(IotlbGranularity::global));
  d[0] |= 1ull << 8; // reserved
  EXPECT_EQ(descriptor_error(d, false, f), "IQE");
  d = encode(iotlb(IotlbGranularity::global));
  d[2] = 1; // a 256-bit descriptor's upper half is reserved
  EXPECT_EQ(descriptor_error(d, true, f), "IQE");
  EXPECT_EQ(descriptor_error(QiDesc{0xf, 0, 0, 0}, true, f), "IQE"); // unknown type
  EXPECT_EQ(descriptor_error(QiDesc{0x9, 0, 0, 0}, true, f), "IQE"); // page response
}

TEST(VtdMachine, IqeStopsTheQueueWithEarlierDescriptorsEffective) {
  Rig g(false);
  auto& t = g.table(Stage::second, 4);
  ASSERT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
  ASSERT_TRUE(t.map(0x20000, 0x200'1000, k4K, Perms{}));
  g.legacy_context(0x10, 1, t.root(), 4);
  ASSERT_TRUE(g.commit());
  g.put(g.slot(t.root(), 4, 0x10000, 1), ss_leaf(0x210'0000));
  g.put(g.slot(t.root(), 4, 0x20000, 1), ss_leaf(0x210'1000));
  ASSERT_TRUE(g.commit());
  const QiDesc a = encode(iotlb_page(1, 0x10000)), w = encode(wait()),
               b = encode(iotlb_page(1, 0x20000));
  const std::vector<uint64_t> words{a[0], a[1], 0xf, 0, w[0], w[1], b[0], b[1], w[0], w[1]};
  EXPECT_EQ(g.m.submit(words), (hw::QueueOutcome{1, "IQE"}));
  EXPECT_TRUE(g.m.stopped());
  // The first descriptor took effect but has not completed: both pages still stale.
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))).size(), 2u);
  // A stopped queue consumes nothing; what is submitted meanwhile waits in the queue
  // (VT-d 6.5.2: descriptors from IQH up to IQT are fetched once fetching resumes).
  EXPECT_EQ(g.inv({wait()}), (hw::QueueOutcome{0, "IQE"}));
  EXPECT_EQ(pas(g.m.dma(req(0x10, 0x10000))).size(), 2u);
  // Resume: the failing descriptor becomes a wait (completing the first), then the rest,
  // then the wait submitted while stopped.
  EXPECT_EQ(g.m.resume(), (hw::QueueOutcome{5, ""})); // the wait, 3, then 1
  EXPECT_FALSE(g.m.stopped());
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x10000)), 0x210'0000));
  EXPECT_TRUE(only_pa(g.m.dma(req(0x10, 0x20000)), 0x210'1000));
  EXPECT_EQ(g.m.resume(), (hw::QueueOutcome{}));
}

TEST(VtdMachine, LegacyQueueRefusesPasidGranularDescriptors) {
  Rig g(false);
  EXPECT_EQ(g.inv({wait(), piotlb_all(1, 0), wait()}), (hw::QueueOutcome{1, "IQE"}));
  EXPECT_EQ(g.m.resume(), (hw::QueueOutcome{2, ""}));
}

// ---- Fault recording --------------------------------------------------------------------

struct TwoDevices {
  Rig g;
  explicit TwoDevices(unsigned records)
      : g(false, Features{}, [records] {
          Layout l;
          l.fault_records = records;
          return l;
        }()) {
    auto& t = g.table(Stage::second, 4);
    EXPECT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    g.legacy_context(0x10, 1, t.root(), 4);
    g.legacy_context(0x18, 1, t.root(), 4);
    EXPECT_TRUE(g.commit());
  }
  void fault(uint16_t sid, uint64_t addr) {
    hw::DmaRequest r = req(sid, addr);
    r.drain = false;
    const auto a = g.m.dma(r);
    hw::DmaOutcome seen;
    seen.kind = Kind::fault;
    g.m.after_dma(r, a, seen);
  }
};

TEST(VtdMachine, FaultOverflow) {
  TwoDevices d(1);
  d.fault(0x10, 0x11000);
  d.fault(0x18, 0x12000); // lost: the only register is full
  EXPECT_EQ(d.g.m.queued_faults(), 1u);
  bool overflow = false;
  auto q = d.g.m.drain_faults(overflow);
  EXPECT_TRUE(overflow);
  ASSERT_EQ(q.size(), 1u);
  ASSERT_EQ(q[0].may_be.size(), 1u);
  EXPECT_EQ(decode_fault_record({q[0].may_be[0].record[0], q[0].may_be[0].record[1]}).sid, 0x10);
  // Read and cleared: recorded again afterwards.
  d.fault(0x18, 0x12000);
  q = d.g.m.drain_faults(overflow);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(q.size(), 1u);
  q = d.g.m.drain_faults(overflow);
  EXPECT_FALSE(overflow);
  EXPECT_TRUE(q.empty());
  // Drained accesses and translations leave the registers alone.
  hw::DmaRequest r = req(0x10, 0x11000);
  d.g.m.after_dma(r, d.g.m.dma(r), d.g.m.dma(r)[0].outcome);
  EXPECT_EQ(d.g.m.queued_faults(), 0u);
}

TEST(VtdMachine, FaultOverflowWithMoreRegistersAndPfoSticky) {
  TwoDevices d(2);
  d.fault(0x10, 0x11000);
  d.fault(0x18, 0x11000);
  EXPECT_EQ(d.g.m.queued_faults(), 2u);
  d.fault(0x20, 0x11000); // no context: CONTEXT_NOT_PRESENT, lost
  bool overflow = false;
  EXPECT_EQ(d.g.m.drain_faults(overflow).size(), 2u);
  EXPECT_TRUE(overflow);
}

TEST(VtdMachine, FaultsOfOneRequesterMayCollapse) {
  TwoDevices d(2);
  d.fault(0x10, 0x11000);
  d.fault(0x10, 0x12000);
  d.fault(0x18, 0x11000);
  auto logs = d.g.m.drain_fault_logs();
  // Recorded all it can: [0x10, 0x10], 0x18 lost (PFO); or the second collapsed: [0x10, 0x18].
  ASSERT_EQ(logs.size(), 2u);
  std::vector<std::pair<size_t, bool>> shapes;
  for (const auto& l : logs)
    shapes.push_back({l.records.size(), l.overflow});
  std::sort(shapes.begin(), shapes.end());
  EXPECT_EQ(shapes, (std::vector<std::pair<size_t, bool>>{{2, false}, {2, true}}));
  EXPECT_EQ(d.g.m.queued_faults(), 0u);
}

// ---- Device TLB (ATS) --------------------------------------------------------------------
//
// The first five replay conformance/pending/vtd/devtlb-*.scn step by step.

Features with_dev_tlb() {
  Features f;
  f.dev_tlb = true;
  return f;
}
DevTlbInv devtlb(uint16_t sid, uint64_t addr, bool s = false) {
  DevTlbInv d;
  d.sid = sid;
  d.addr = addr;
  d.s = s;
  return d;
}
PasidDevTlbInv pdevtlb(uint16_t sid, uint32_t pasid, uint64_t addr, bool s = false,
                       bool g = false) {
  PasidDevTlbInv d;
  d.sid = sid;
  d.pasid = pasid;
  d.addr = addr;
  d.s = s;
  d.g = g;
  return d;
}
InvWait fence() {
  InvWait w = wait();
  w.fn = true;
  return w;
}
// S = 1 with ADDR bits 63:12 all set: everything ([VTD] 6.5.3.3 "Global Device-TLB").
DevTlbInv devtlb_all(uint16_t sid) {
  return devtlb(sid, dev_tlb_addr_bits(0, 52), true);
}
std::string_view clause_of(const std::vector<Allowed>& a, uint64_t pa) {
  for (const Allowed& x : a)
    if (x.outcome.kind == Kind::ok && x.outcome.pa == pa) return x.clause;
  return "";
}

// Legacy mode, second stage, device 0x10 in domain 1 (TT = device-TLB by default), with
// 0x10000 -> 0x2000000 used once.
struct LegacyAts {
  Rig g;
  PageTableBuilder& t;
  explicit LegacyAts(TranslationType tt = TranslationType::dev_iotlb, Features f = with_dev_tlb())
      : g(false, f), t(g.table(Stage::second, 4)) {
    EXPECT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    g.legacy_context(0x10, 1, t.root(), 4, tt);
    EXPECT_TRUE(g.commit());
  }
  void remap(uint64_t iova, uint64_t pa) { g.put(g.slot(t.root(), 4, iova, 1), ss_leaf(pa)); }
  std::vector<Allowed> dma(uint64_t iova) { return g.m.dma(req(0x10, iova)); }
};
const std::vector<uint64_t> kOldNew{0x200'0000, 0x210'0000};

// Scalable mode, first stage, device 0x10 with DTE = 1, RID_PASID (0) and PASID 5 on the same
// table in domain 1, 0x10000 -> 0x2000000 used once through both.
struct ScalableAts {
  Rig g;
  PageTableBuilder& t;
  explicit ScalableAts(bool dte = true, Features f = with_dev_tlb())
      : g(true, f), t(g.table(Stage::first, 4)) {
    EXPECT_TRUE(t.map(0x10000, 0x200'0000, k4K, Perms{}));
    g.sm_context(0x10, true, false, dte);
    g.sm_pasid(0x10, 0, fs_entry(1, t.root()));
    g.sm_pasid(0x10, 5, fs_entry(1, t.root()));
    EXPECT_TRUE(g.commit());
  }
  void remap() {
    g.put(g.slot(t.root(), 4, 0x10000, 1), fs_leaf(0x210'0000));
    EXPECT_TRUE(g.commit());
  }
  std::vector<Allowed> dma(std::optional<uint32_t> pasid = std::nullopt) {
    return g.m.dma(req(0x10, 0x10000, false, pasid));
  }
};

TEST(VtdDevTlb, LegacyAfterIotlb) { // devtlb-legacy-after-iotlb.scn
  LegacyAts s;
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x200'0000)); // 4
  s.remap(0x10000, 0x210'0000);                     // 5
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2); // 6
  const auto a = s.dma(0x10000);                              // 7
  EXPECT_EQ(pas(a), kOldNew);
  EXPECT_EQ(a[0].outcome.pa, 0x210'0000u); // the fresh walk first
  EXPECT_EQ(clause_of(a, 0x200'0000), "VTD.CACHE.devtlb");
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2); // 8
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));          // 9
}

TEST(VtdDevTlb, PasidBased) { // devtlb-pasid.scn
  ScalableAts s;
  EXPECT_TRUE(only_pa(s.dma(5), 0x200'0000));                     // 6
  s.remap();                                                      // 7
  EXPECT_EQ(s.g.inv({piotlb_page(1, 5, 0x10000), wait()}), kOk2); // 8
  EXPECT_EQ(pas(s.dma(5)), kOldNew);                              // 9
  EXPECT_EQ(s.g.inv({pdevtlb(0x10, 6, 0x10000), wait()}), kOk2);  // 10: another PASID
  EXPECT_EQ(pas(s.dma(5)), kOldNew);                              // 11
  EXPECT_EQ(s.g.inv({pdevtlb(0x10, 5, 0x10000), wait()}), kOk2);  // 12
  EXPECT_TRUE(only_pa(s.dma(5), 0x210'0000));                     // 13
}

TEST(VtdDevTlb, RangeSize) { // devtlb-range-size.scn
  LegacyAts s;
  ASSERT_TRUE(s.t.map(0x11000, 0x200'1000, k4K, Perms{})); // 3
  ASSERT_TRUE(s.t.map(0x12000, 0x200'2000, k4K, Perms{})); // 4
  ASSERT_TRUE(s.g.commit());
  s.remap(0x10000, 0x210'0000); // 6-8
  s.remap(0x11000, 0x210'1000);
  s.remap(0x12000, 0x210'2000);
  ASSERT_TRUE(s.g.commit());
  // 9: IOTLB AM = 2 (0x10000..0x13fff); device TLB S = 1 at 0x10000 (bit 12 clear): 8K.
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000, 2), wait(), devtlb(0x10, 0x10000, true), wait()}),
            (hw::QueueOutcome{4, ""}));
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));                                // 10
  EXPECT_TRUE(only_pa(s.dma(0x11000), 0x210'1000));                                // 11
  EXPECT_EQ(pas(s.dma(0x12000)), (std::vector<uint64_t>{0x200'2000, 0x210'2000})); // 12
}

TEST(VtdDevTlb, WrongOrder) { // devtlb-wrong-order.scn
  LegacyAts s;
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x200'0000)); // 4
  s.remap(0x10000, 0x210'0000);                     // 5
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);  // 6
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);                    // 7
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2); // 8
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);                    // 9: refilled in between
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);  // 10
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));           // 11
}

TEST(VtdDevTlb, WrongSid) { // devtlb-wrong-sid.scn
  LegacyAts s;
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x200'0000)); // 4
  s.remap(0x10000, 0x210'0000);                     // 5
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait(), devtlb(0x18, 0x10000), wait()}),
            (hw::QueueOutcome{4, ""}));                      // 6
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);                   // 7
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2); // 8
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));          // 9
}

TEST(VtdDevTlb, RangeEncodings) {
  // S = 1 at 0x11000 (bit 12 set, bit 13 clear): 16K, 0x10000..0x13fff; 0x14000 is outside.
  LegacyAts s;
  for (uint64_t p = 0x11000; p <= 0x14000; p += k4K)
    ASSERT_TRUE(s.t.map(p, 0x200'0000 + (p - 0x10000), k4K, Perms{}));
  ASSERT_TRUE(s.g.commit());
  for (uint64_t p = 0x10000; p <= 0x14000; p += k4K)
    s.remap(p, 0x210'0000 + (p - 0x10000));
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb(IotlbGranularity::domain, 1), wait()}), kOk2);
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x11000, true), wait()}), kOk2);
  for (uint64_t p = 0x10000; p <= 0x13000; p += k4K)
    EXPECT_TRUE(only_pa(s.dma(p), 0x210'0000 + (p - 0x10000))) << std::hex << p;
  EXPECT_EQ(pas(s.dma(0x14000)), (std::vector<uint64_t>{0x200'4000, 0x210'4000}));
  // S = 0 ignores the low address bits' size meaning: 0x15000 alone, not 0x14000.
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x15000), wait()}), kOk2);
  EXPECT_EQ(pas(s.dma(0x14000)).size(), 2u);
  // Everything: S = 1, ADDR 63:12 all ones.
  EXPECT_EQ(s.g.inv({devtlb_all(0x10), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(0x14000), 0x210'4000));
}

TEST(VtdDevTlb, IssuedAheadOfTheIotlbInvalidationLeavesTheStalePage) {
  // In one submission, the device-TLB invalidation ahead of the IOTLB one may execute first;
  // the device asks again and gets the stale IOTLB entry.
  LegacyAts s;
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), iotlb_page(1, 0x10000), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);
  // Behind it ([VTD] 6.5.2.12: a type 3 descriptor executes after the IOTLB invalidations
  // ahead of it have completed), one submission is enough.
  LegacyAts t;
  t.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(t.g.commit());
  EXPECT_EQ(t.g.inv({iotlb_page(1, 0x10000), devtlb(0x10, 0x10000), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_TRUE(only_pa(t.dma(0x10000), 0x210'0000));
  // An IOTLB invalidation that does not cover the entry (another domain) does not help.
  LegacyAts u;
  u.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(u.g.commit());
  EXPECT_EQ(u.g.inv({iotlb_page(2, 0x10000), devtlb(0x10, 0x10000), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(u.dma(0x10000)), kOldNew);
}

TEST(VtdDevTlb, DeviceTlbInvalidationWithoutWaitHasNotCompleted) {
  LegacyAts s;
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait(), devtlb(0x10, 0x10000)}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);
  EXPECT_EQ(s.g.inv({wait()}), (hw::QueueOutcome{1, ""}));
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));
}

TEST(VtdDevTlb, Type3IsNotOrderedBehindPasidBasedIotlb) {
  // Scalable first stage, requests without PASID (RID_PASID): the IOTLB entry goes with a
  // PASID-based IOTLB invalidation, the device TLB's with type 3, which [VTD] 6.5.2.12 orders
  // behind iotlb_inv_dsc only.
  auto run = [](std::vector<QiDescriptor> ds) {
    ScalableAts s;
    EXPECT_TRUE(only_pa(s.dma(), 0x200'0000));
    s.remap();
    EXPECT_EQ(s.g.inv(ds), (hw::QueueOutcome{uint32_t(ds.size()), ""}));
    return pas(s.dma());
  };
  const std::vector<uint64_t> fresh{0x210'0000};
  EXPECT_EQ(run({piotlb_page(1, 0, 0x10000), devtlb(0x10, 0x10000), wait()}), kOldNew);
  // A wait with FN = 0 does not hold back the descriptors after it.
  EXPECT_EQ(run({piotlb_page(1, 0, 0x10000), wait(), devtlb(0x10, 0x10000), wait()}), kOldNew);
  // A fence does; so does a wait of an earlier submission.
  EXPECT_EQ(run({piotlb_page(1, 0, 0x10000), fence(), devtlb(0x10, 0x10000), wait()}), fresh);
  ScalableAts s;
  s.remap();
  EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000), wait()}), kOk2);
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(), 0x210'0000));
  // The PASID-based device-TLB invalidation is ordered behind the PASID-based IOTLB one.
  ScalableAts p;
  EXPECT_TRUE(only_pa(p.dma(5), 0x200'0000));
  p.remap();
  EXPECT_EQ(p.g.inv({piotlb_page(1, 5, 0x10000), pdevtlb(0x10, 5, 0x10000), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_TRUE(only_pa(p.dma(5), 0x210'0000));
}

TEST(VtdDevTlb, PasidCacheInvalidationOrderedThroughTheIotlbOne) {
  // PASID 5 moves to another table: its cached PASID entry still walks the old one until a
  // PASID-cache invalidation. [PC, P_IOTLB, P_DEVTLB]: the PASID-based IOTLB invalidation
  // executes after the PASID-cache one, the device-TLB one after it ([VTD] 6.5.2.12).
  auto run = [](std::vector<QiDescriptor> ds) {
    ScalableAts s;
    EXPECT_TRUE(only_pa(s.dma(5), 0x200'0000));
    auto& t2 = s.g.table(Stage::first, 4);
    EXPECT_TRUE(t2.map(0x10000, 0x210'0000, k4K, Perms{}));
    s.g.sm_pasid(0x10, 5, fs_entry(1, t2.root()));
    EXPECT_TRUE(s.g.commit());
    EXPECT_EQ(s.g.inv(ds), (hw::QueueOutcome{uint32_t(ds.size()), ""}));
    return pas(s.dma(5));
  };
  const auto pc5 = pc(PasidCacheGranularity::pasid, 1, 5);
  EXPECT_EQ(run({pc5, piotlb_all(1, 5), pdevtlb(0x10, 5, 0x10000), wait()}),
            (std::vector<uint64_t>{0x210'0000}));
  // Not ordered behind the PASID-cache invalidation without an IOTLB one in between.
  EXPECT_EQ(run({piotlb_all(1, 5), pc5, pdevtlb(0x10, 5, 0x10000), wait()}), kOldNew);
}

TEST(VtdDevTlb, ResumeCompletesWhatWasAhead) {
  // The failing descriptor becomes a wait: the PASID-based IOTLB invalidation ahead of it has
  // completed before the next submission's type 3 descriptor.
  ScalableAts s;
  EXPECT_TRUE(only_pa(s.dma(), 0x200'0000));
  s.remap();
  const QiDesc a = encode(piotlb_page(1, 0, 0x10000));
  EXPECT_EQ(s.g.m.submit(std::vector<uint64_t>{a[0], a[1], a[2], a[3], 0xf, 0, 0, 0}),
            (hw::QueueOutcome{1, "IQE"}));
  EXPECT_EQ(s.g.m.resume(), (hw::QueueOutcome{1, ""})); // the replacing wait
  EXPECT_EQ(pas(s.dma()), kOldNew);
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(), 0x210'0000));
}

TEST(VtdDevTlb, PasidTagsOfTheInvalidations) {
  ScalableAts s;
  EXPECT_TRUE(only_pa(s.dma(), 0x200'0000));
  EXPECT_TRUE(only_pa(s.dma(5), 0x200'0000));
  s.remap();
  EXPECT_EQ(s.g.inv({piotlb_all(1, 0), piotlb_all(1, 5), wait()}), (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(s.dma()), kOldNew);
  EXPECT_EQ(pas(s.dma(5)), kOldNew);
  // Type 8 with G: every PASID of the device, not its requests without PASID (weaker reading).
  EXPECT_EQ(s.g.inv({pdevtlb(0x10, 9, 0x10000, false, true), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(5), 0x210'0000));
  EXPECT_EQ(pas(s.dma()), kOldNew);
  // Type 8 for RID_PASID is not type 3 either.
  EXPECT_EQ(s.g.inv({pdevtlb(0x10, 0, 0x10000), wait()}), kOk2);
  EXPECT_EQ(pas(s.dma()), kOldNew);
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(), 0x210'0000));
  // And type 3 covers no translation for requests with PASID (weaker reading).
  ScalableAts t;
  EXPECT_TRUE(only_pa(t.dma(5), 0x200'0000));
  t.remap();
  EXPECT_EQ(t.g.inv({piotlb_all(1, 5), wait()}), kOk2);
  EXPECT_EQ(t.g.inv({devtlb(0x10, 0x10000), devtlb_all(0x10), wait()}), (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(pas(t.dma(5)), kOldNew);
  EXPECT_EQ(t.g.inv({pdevtlb(0x10, 5, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(t.dma(5), 0x210'0000));
}

TEST(VtdDevTlb, NoDeviceTlbWithoutAts) {
  // TT = multi-level: translation requests are UR ([VTD] 4.2.3 Table 10).
  LegacyAts l(TranslationType::multi_level);
  l.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(l.g.commit());
  EXPECT_EQ(l.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_pa(l.dma(0x10000), 0x210'0000));
  // DTE = 0, or no ECAP.DT.
  for (const auto& [dte, f] : {std::pair{false, with_dev_tlb()}, std::pair{true, Features{}}}) {
    ScalableAts s(dte, f);
    s.remap();
    EXPECT_EQ(s.g.inv({piotlb_page(1, 0, 0x10000), wait()}), kOk2);
    EXPECT_TRUE(only_pa(s.dma(), 0x210'0000));
  }
  // TT = device-TLB without ECAP.DT is an invalid context entry (Qc:vtd_ce_type_check).
  LegacyAts n(TranslationType::dev_iotlb, Features{});
  EXPECT_TRUE(only_fault(n.dma(0x10000), FR::context_invalid));
}

TEST(VtdDevTlb, OnlyAnswersGivenOnceAtsIsAllowed) {
  // TT = multi-level while the old page was in use and until the IOTLB forgot it; then TT =
  // device-TLB: the device never got the old translation.
  LegacyAts s(TranslationType::multi_level);
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x200'0000));
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  s.g.legacy_context(0x10, 1, s.t.root(), 4, TranslationType::dev_iotlb);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({cc(CcGranularity::device, 1, 0x10), wait()}), kOk2);
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x210'0000));
  // From then on it keeps what it is given.
  s.remap(0x10000, 0x220'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  EXPECT_EQ(pas(s.dma(0x10000)), (std::vector<uint64_t>{0x210'0000, 0x220'0000}));
}

TEST(VtdDevTlb, FaultsAreNotCached) {
  LegacyAts s;
  EXPECT_TRUE(only_fault(s.dma(0x11000), FR::no_read));
  ASSERT_TRUE(s.t.map(0x11000, 0x220'0000, k4K, Perms{}));
  ASSERT_TRUE(s.g.commit());
  EXPECT_TRUE(only_pa(s.dma(0x11000), 0x220'0000));
  // Unmapped: the IOMMU faults once its IOTLB entry is gone; the device TLB keeps the page.
  s.g.put(s.g.slot(s.t.root(), 4, 0x10000, 1), 0);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  auto a = s.dma(0x10000);
  EXPECT_EQ(pas(a), (std::vector<uint64_t>{0x200'0000}));
  EXPECT_EQ(reasons(a), (std::vector<FaultReason>{FR::no_read}));
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);
  EXPECT_TRUE(only_fault(s.dma(0x10000), FR::no_read));
}

TEST(VtdDevTlb, OutlivesTheIommuCaches) {
  LegacyAts s;
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({cc(CcGranularity::global), iotlb(IotlbGranularity::global), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_EQ(s.g.m.stale_epochs(), 0u); // nothing left in the IOMMU's caches
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);
  // A later write and remap back and forth do not matter; the device-TLB invalidation does.
  s.remap(0x10000, 0x230'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb(IotlbGranularity::global), devtlb_all(0x10), wait()}),
            (hw::QueueOutcome{3, ""}));
  EXPECT_TRUE(only_pa(s.dma(0x10000), 0x230'0000));
}

TEST(VtdDevTlb, IotlbInvalidationIssuedBeforeTheWriteDoesNotCount) {
  // The IOTLB invalidation ahead of the device-TLB one was issued before the remap: the IOMMU
  // may still have answered with the old page when the device-TLB invalidation executed.
  LegacyAts s;
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000)}), (hw::QueueOutcome{1, ""}));
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({devtlb(0x10, 0x10000), wait()}), kOk2);
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);
}

TEST(VtdDevTlb, InvalidationBeforeTheWriteDoesNotCover) {
  LegacyAts s;
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), devtlb(0x10, 0x10000), wait()}),
            (hw::QueueOutcome{3, ""}));
  s.remap(0x10000, 0x210'0000);
  ASSERT_TRUE(s.g.commit());
  EXPECT_EQ(s.g.inv({iotlb_page(1, 0x10000), wait()}), kOk2);
  EXPECT_EQ(pas(s.dma(0x10000)), kOldNew);
}

// ---- Property ---------------------------------------------------------------------------

// Random mappings, remaps, unmaps and arbitrary table words, with random partial
// invalidations in between; after global context-cache, PASID-cache and IOTLB invalidations and
// a wait, every access allows exactly the fresh walk's outcome. At every step the fresh walk's
// outcome comes first in the allowed set.
RC_GTEST_PROP(VtdMachineProps, GlobalInvalidationLeavesOnlyTheFreshWalk, ()) {
  enum class M { legacy, fs, ss, nested };
  const M mode = *rc::gen::element(M::legacy, M::fs, M::ss, M::nested);
  Rig g(mode != M::legacy);
  const int ss_levels = mode == M::nested ? 4 : *rc::gen::element(3, 4);
  PageTableBuilder* s = nullptr;
  PageTableBuilder* t = nullptr;
  if (mode != M::fs) s = &g.table(Stage::second, ss_levels);
  if (mode == M::fs || mode == M::nested) t = &g.table(Stage::first, 4);
  PageTableBuilder& main = t ? *t : *s;
  const int levels = t ? 4 : ss_levels;
  const uint16_t did = *rc::gen::inRange<uint16_t>(1, 4);
  std::vector<uint64_t> addrs;
  auto data = [] { return 0x200'0000 + *rc::gen::inRange<uint64_t>(0, 256) * k4K; };
  auto gpa_of = [](uint64_t pa) { return pa + 0x4000'0000; }; // nested: first-stage outputs
  auto map_one = [&] {
    const uint64_t addr = *rc::gen::inRange<uint64_t>(0, 64) * k4K +
                          *rc::gen::element<uint64_t>(0, 0x20'0000, 0x4000'0000, 0x80'0000'0000);
    const uint64_t pa = data();
    Perms p;
    p.w = *rc::gen::arbitrary<bool>();
    if (mode == M::nested) {
      if (t->map(addr, gpa_of(pa), k4K, p)) {
        (void)s->map(gpa_of(pa), pa, k4K, Perms{});
        addrs.push_back(addr);
      }
    } else if (main.map(addr, pa, k4K, p)) {
      addrs.push_back(addr);
    }
  };
  const int n = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n; ++i)
    map_one();
  RC_PRE(!addrs.empty());
  if (mode == M::nested)
    for (uint64_t p : t->table_pages())
      RC_ASSERT(s->map(p, p, k4K, Perms{}));
  if (mode == M::legacy) {
    g.legacy_context(0x10, did, s->root(), ss_levels);
  } else {
    g.sm_context(0x10);
    g.sm_pasid(0x10, 0,
               mode == M::fs   ? fs_entry(did, t->root())
               : mode == M::ss ? ss_entry(did, s->root(), ss_levels)
                               : nested_entry(did, t->root(), s->root()));
  }
  RC_ASSERT(g.commit());

  // The fresh walk, computed with walk.h's plain walks on the machine's memory.
  auto fresh = [&](uint64_t addr, bool write) -> Walk {
    const Memory& mem = g.m.memory();
    const Access acc{addr, write, false, false};
    const Features f;
    if (mode == M::legacy) {
      SsConfig c = *ss_config(
          decode_context_entry({*mem.read64(kCtx + 16 * 0x10), *mem.read64(kCtx + 16 * 0x10 + 8)}),
          f.cap(), f.haw);
      c.snp_ok = false;
      return walk_ss(mem, c, addr, acc);
    }
    PasidEntry pe = mode == M::fs   ? fs_entry(did, t->root())
                    : mode == M::ss ? ss_entry(did, s->root(), ss_levels)
                                    : nested_entry(did, t->root(), s->root());
    if (mode == M::fs) return walk_fs(mem, *fs_config(pe, f.cap(), f.haw), acc);
    if (mode == M::ss) return walk_ss(mem, *ss_config(pe, f.cap(), f.haw), addr, acc);
    return walk_nested(mem, *fs_config(pe, f.cap(), f.haw), *ss_config(pe, f.cap(), f.haw), acc);
  };
  auto matches = [&](const hw::DmaOutcome& o, const Walk& w) {
    if (w.ok()) return o.kind == Kind::ok && o.pa == w.pa;
    return o.kind == Kind::fault &&
           decode_fault_record({o.record[0], o.record[1]}).reason == uint8_t(w.fault->reason);
  };
  bool stale_seen = false;
  auto probe = [&](bool exact) {
    for (int i = 0; i < 6; ++i) {
      const uint64_t addr = *rc::gen::element(addrs[*rc::gen::inRange<size_t>(0, addrs.size())],
                                              *rc::gen::inRange<uint64_t>(0, 0x80) * k4K) +
                            *rc::gen::inRange<uint64_t>(0, k4K / 8) * 8;
      const bool write = *rc::gen::arbitrary<bool>();
      const auto a = g.m.dma(req(0x10, addr, write));
      RC_ASSERT(!a.empty());
      RC_ASSERT(matches(a[0].outcome, fresh(addr, write)));
      if (exact) RC_ASSERT(a.size() == 1u);
      stale_seen = stale_seen || a.size() > 1;
    }
  };
  probe(true);

  const int steps = *rc::gen::inRange(1, 6);
  for (int step = 0; step < steps; ++step) {
    const int what = *rc::gen::inRange(0, 6);
    if (what == 0) { // remap or unmap a leaf of the main table
      const uint64_t addr = addrs[*rc::gen::inRange<size_t>(0, addrs.size())];
      uint64_t v = 0;
      if (*rc::gen::arbitrary<bool>()) {
        const uint64_t pa = data();
        v = t ? fs_leaf(mode == M::nested ? gpa_of(pa) : pa) : ss_leaf(pa);
      }
      // (an arbitrary word written earlier may have taken the table out of memory)
      if (const auto at = g.find_slot(main.root(), levels, addr, 1)) g.put(*at, v);
    } else if (what == 1) { // map more
      map_one();
    } else if (what == 2) { // an arbitrary word in a table page (any level)
      const auto& pages = main.table_pages();
      const uint64_t page = pages[*rc::gen::inRange<size_t>(0, pages.size())];
      g.put(page + 8 * *rc::gen::inRange<uint64_t>(0, 512),
            *rc::gen::element<uint64_t>(0, ss_leaf(data()), fs_leaf(data()),
                                        pages[*rc::gen::inRange<size_t>(0, pages.size())] | 0x27,
                                        *rc::gen::arbitrary<uint64_t>()));
    } else if (what == 5 && mode == M::nested) {
      // Remap a second-stage page: a first-stage table's GPA or a data GPA, to another
      // first-stage table page or data page.
      const auto& fs_pages = t->table_pages();
      const uint64_t gpa = *rc::gen::arbitrary<bool>()
                               ? fs_pages[*rc::gen::inRange<size_t>(0, fs_pages.size())]
                               : gpa_of(data());
      const uint64_t to = *rc::gen::arbitrary<bool>()
                              ? fs_pages[*rc::gen::inRange<size_t>(0, fs_pages.size())]
                              : data();
      if (const auto at = g.find_slot(s->root(), 4, gpa, 1)) g.put(*at, ss_leaf(to));
    } else if (what == 3 && mode != M::legacy) { // switch the PASID entry's DID
      const uint64_t at = g.pasid_entry_pa(0x10, 0);
      g.put(at + 8, *rc::gen::inRange<uint64_t>(1, 4));
    } else { // a partial invalidation, with or without a wait
      std::vector<QiDescriptor> ds;
      const uint64_t addr = addrs[*rc::gen::inRange<size_t>(0, addrs.size())];
      const uint16_t d = *rc::gen::inRange<uint16_t>(1, 4);
      switch (*rc::gen::inRange(0, 4)) {
      case 0:
        ds.push_back(
            iotlb_page(d, addr, *rc::gen::inRange<uint8_t>(0, 3), *rc::gen::arbitrary<bool>()));
        break;
      case 1:
        ds.push_back(iotlb(IotlbGranularity::domain, d));
        break;
      case 2:
        if (mode != M::legacy)
          ds.push_back(piotlb_page(d, 0, addr, *rc::gen::inRange<uint8_t>(0, 3),
                                   *rc::gen::arbitrary<bool>()));
        break;
      default:
        ds.push_back(cc(CcGranularity::device, d, 0x10));
        break;
      }
      if (*rc::gen::arbitrary<bool>()) ds.push_back(wait());
      RC_ASSERT(g.inv(ds).error.empty());
    }
    RC_ASSERT(g.commit());
    probe(false);
  }

  std::vector<QiDescriptor> all{cc(CcGranularity::global), iotlb(IotlbGranularity::global)};
  if (mode != M::legacy) all.push_back(pc(PasidCacheGranularity::global));
  all.push_back(wait());
  RC_ASSERT(g.inv(all) == (hw::QueueOutcome{uint32_t(all.size()), ""}));
  RC_ASSERT(g.m.stale_epochs() == 0u); // pruned
  probe(true);
  RC_TAG(mode == M::legacy ? "legacy" : mode == M::fs ? "fs" : mode == M::ss ? "ss" : "nested");
  RC_TAG(stale_seen ? "stale outcomes allowed before" : "no stale outcome");
}

// With a device TLB and no device-TLB invalidation, every translation an access was allowed
// stays allowed; after global IOMMU invalidations, a wait, and a device-TLB invalidation of
// everything and a wait, only the fresh walk's outcome is.
RC_GTEST_PROP(VtdDevTlbProps, DeviceTlbKeepsWhatItWasGivenUntilInvalidated, ()) {
  const bool scalable = *rc::gen::arbitrary<bool>();
  Rig g(scalable, with_dev_tlb());
  PageTableBuilder& t = g.table(scalable ? Stage::first : Stage::second, 4);
  std::vector<uint64_t> addrs;
  auto data = [] { return 0x200'0000 + *rc::gen::inRange<uint64_t>(0, 64) * k4K; };
  const int n = *rc::gen::inRange(1, 6);
  for (int i = 0; i < n; ++i) {
    const uint64_t addr = *rc::gen::inRange<uint64_t>(0, 32) * k4K +
                          *rc::gen::element<uint64_t>(0, 0x20'0000, 0x4000'0000);
    if (t.map(addr, data(), k4K, Perms{})) addrs.push_back(addr);
  }
  RC_PRE(!addrs.empty());
  if (scalable) {
    g.sm_context(0x10, true, false, true);
    g.sm_pasid(0x10, 0, fs_entry(1, t.root()));
  } else {
    g.legacy_context(0x10, 1, t.root(), 4, TranslationType::dev_iotlb);
  }
  RC_ASSERT(g.commit());
  std::map<uint64_t, std::set<uint64_t>> seen; // page -> every PA allowed so far
  auto probe = [&] {
    for (uint64_t addr : addrs) {
      std::set<uint64_t> now;
      for (uint64_t pa : pas(g.m.dma(req(0x10, addr))))
        now.insert(pa);
      for (uint64_t pa : seen[addr])
        RC_ASSERT(now.count(pa) == 1u);
      seen[addr].insert(now.begin(), now.end());
    }
  };
  probe();
  const int steps = *rc::gen::inRange(1, 7);
  for (int step = 0; step < steps; ++step) {
    const uint64_t addr = addrs[*rc::gen::inRange<size_t>(0, addrs.size())];
    switch (*rc::gen::inRange(0, 4)) {
    case 0: { // remap or unmap
      const uint64_t v =
          *rc::gen::arbitrary<bool>() ? (scalable ? fs_leaf(data()) : ss_leaf(data())) : 0;
      g.put(g.slot(t.root(), 4, addr, 1), v);
      RC_ASSERT(g.commit());
      break;
    }
    case 1: // an IOTLB invalidation of the page, with or without a wait
      RC_ASSERT(g.inv({scalable ? QiDescriptor{piotlb_page(1, 0, addr)}
                                : QiDescriptor{iotlb_page(1, addr)}})
                    .error.empty());
      if (*rc::gen::arbitrary<bool>()) RC_ASSERT(g.inv({wait()}).error.empty());
      break;
    case 2: // the whole domain
      RC_ASSERT(g.inv({iotlb(IotlbGranularity::domain, 1), wait()}).error.empty());
      break;
    default: // a device-TLB invalidation of another device
      RC_ASSERT(g.inv({devtlb(0x18, addr), wait()}).error.empty());
      break;
    }
    probe();
  }
  std::vector<QiDescriptor> all{cc(CcGranularity::global), iotlb(IotlbGranularity::global)};
  if (scalable) all.push_back(pc(PasidCacheGranularity::global));
  all.push_back(wait());
  RC_ASSERT(g.inv(all).error.empty());
  RC_ASSERT(g.m.stale_epochs() == 0u);
  probe(); // the device TLB still holds everything
  RC_ASSERT(g.inv({devtlb_all(0x10), wait()}) == kOk2);
  for (uint64_t addr : addrs)
    RC_ASSERT(g.m.dma(req(0x10, addr)).size() == 1u);
}

} // namespace
} // namespace iommuspec::vtd
