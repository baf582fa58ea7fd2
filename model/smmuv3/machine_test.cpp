// Tests of the SMMUv3 machine (machine.h): what a device access may observe before and
// after each invalidation, the command queue's stop-at-error rule and the event queue.
// Plus RapidCheck properties: the fresh walk is always allowed; a completed invalidation
// never adds an outcome; after invalidating everything the allowed set is the fresh walk.
#include "smmuv3/machine.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t kCd = 0x40010000;        // CD table of stream 0 (the compiler's layout)
constexpr uint64_t kS1Pool = 0x41000000;    // stage-1 tables
constexpr uint64_t kS2Pool = 0x41100000;    // stage-2 tables
constexpr uint64_t kData = 0x42000000;      // output pages
constexpr uint64_t kIpaTables = 0x10000000; // nested: stage-1 tables at this IPA...
constexpr uint64_t kIpaPhys = 0x41200000;   // ...stored here

// A machine and a shadow image the tests edit with the model's encoders; flush() hands the
// difference to the machine as one write step.
struct Rig {
  Machine m;
  Memory shadow;
  PageTableBuilder s1, s2;
  S2Config s2c;

  explicit Rig(bool nested = false)
      : shadow(ram()),
        s1(PageTableBuilder::stage1(shadow, pool(nested ? kIpaTables : kS1Pool), Granule::g4k, 48)),
        s2(PageTableBuilder::stage2(shadow, pool(kS2Pool), s2_cfg())), s2c(s2_cfg()) {
    if (nested) s1.set_placement_offset(kIpaPhys - kIpaTables);
  }
  static Memory ram() {
    Memory m;
    m.add_region(Layout{}.ram);
    return m;
  }
  static Range pool(uint64_t b) { return Range{b, b + 0xfffff}; }
  static S2Config s2_cfg() {
    S2Config c;
    c.s2t0sz = 24; // 40-bit IPA
    c.s2sl0 = 1;   // start at level 1
    c.ps_bits = 48;
    return c;
  }
  void flush() { ASSERT_TRUE(m.write(hw::writes_between(m.memory(), shadow))); }
  void put8(uint64_t pa, const std::array<uint64_t, 8>& w) {
    for (int i = 0; i < 8; ++i)
      shadow.write64(pa + 8 * uint64_t(i), w[size_t(i)]);
  }
  void ste(uint32_t sid, StreamConfig cfg, uint16_t vmid = 0) {
    Ste e;
    e.v = true;
    e.config = cfg;
    e.s1_context_ptr = kCd + sid * 0x1000;
    e.s2_vmid = vmid;
    e.s2_ttb = s2.root();
    e.s2_t0sz = s2c.s2t0sz;
    e.s2_sl0 = s2c.s2sl0;
    e.s2_ps = 5;
    e.s2_aa64 = true;
    e.s2_r = true;
    put8(Layout{}.strtab + sid * 64, encode(e));
  }
  void cd(uint32_t sid, uint16_t asid) {
    Cd c;
    c.v = c.aa64 = c.r = c.epd1 = true;
    c.ips = 5;
    c.t0sz = 16;
    c.asid = asid;
    c.ttb0 = s1.root();
    put8(kCd + sid * 0x1000, encode(c));
  }
  hw::QueueOutcome cmds(std::initializer_list<Command> cs) {
    std::vector<Cmd2> w;
    for (const auto& c : cs)
      w.push_back(encode(c));
    return m.submit(w);
  }
  std::set<uint64_t> pas(uint64_t iova, uint32_t sid = 0, bool write = false) const {
    hw::DmaRequest r;
    r.sid = sid;
    r.addr = iova;
    r.write = write;
    std::set<uint64_t> out;
    for (const auto& a : m.dma(r))
      out.insert(a.outcome.kind == hw::DmaOutcome::Kind::ok ? a.outcome.pa : ~uint64_t(0));
    return out;
  }
};

constexpr uint64_t kFault = ~uint64_t(0);
const Perms kRw{true, true, false, false};

Rig s1_rig(uint16_t asid = 1) {
  Rig r;
  EXPECT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(0, asid);
  r.ste(0, StreamConfig::s1_trans);
  r.flush();
  return r;
}

void remap(Rig& r, uint64_t iova, uint64_t pa) {
  r.shadow.write64(*r.s1.slot(iova, 3) + r.s1.placement_offset(), 0);
  ASSERT_TRUE(r.s1.map(iova, pa, 0x1000, kRw));
  r.flush();
}

TEST(SmmuV3Machine, FreshWalkIsTheOnlyOutcome) {
  Rig r = s1_rig();
  EXPECT_EQ(r.pas(0x10010), (std::set<uint64_t>{kData + 0x10}));
  EXPECT_EQ(r.pas(0x20000), (std::set<uint64_t>{kFault}));
}

TEST(SmmuV3Machine, RemapAllowsOldUntilTlbiAndSync) {
  Rig r = s1_rig();
  remap(r, 0x10000, kData + 0x100000);
  const std::set<uint64_t> both{kData, kData + 0x100000};
  EXPECT_EQ(r.pas(0x10000), both);
  // Issued but not synced: not yet guaranteed.
  EXPECT_EQ(r.cmds({CmdTlbiNhVa{.vmid = 0, .asid = 1, .leaf = true, .addr = 0x10000}}).consumed,
            1u);
  EXPECT_EQ(r.pas(0x10000), both);
  EXPECT_EQ(r.cmds({CmdSync{}}).consumed, 1u);
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x100000}));
}

TEST(SmmuV3Machine, OutOfScopeTlbiLeavesStale) {
  const std::set<uint64_t> both{kData, kData + 0x100000};
  for (Command c : std::initializer_list<Command>{
           CmdTlbiNhVa{.vmid = 0, .asid = 2, .addr = 0x10000}, // other ASID
           CmdTlbiNhVa{.vmid = 7, .asid = 1, .addr = 0x10000}, // other VMID
           CmdTlbiNhVa{.vmid = 0, .asid = 1, .addr = 0x11000}, // other page
           CmdTlbiNhAsid{.vmid = 0, .asid = 2},                // other ASID
           CmdTlbiS2Ipa{.vmid = 0, .addr = 0x10000},           // stage 2 only
           CmdCfgiSte{.sid = 0},                               // configuration only
       }) {
    Rig r = s1_rig();
    remap(r, 0x10000, kData + 0x100000);
    r.cmds({c, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), both) << "opcode " << int(opcode_of(c));
  }
}

TEST(SmmuV3Machine, InScopeTlbiRemovesStale) {
  for (Command c : std::initializer_list<Command>{
           CmdTlbiNhVa{.vmid = 0, .asid = 1, .addr = 0x10fff},
           CmdTlbiNhVaa{.vmid = 0, .addr = 0x10000},
           CmdTlbiNhAsid{.vmid = 0, .asid = 1},
           CmdTlbiNhAll{.vmid = 0},
           CmdTlbiS12Vmall{.vmid = 0},
           CmdTlbiNsnhAll{},
           // range form: 2 pages of 4K from 0xf000 covers 0x10000
           CmdTlbiNhVa{.num = 1, .vmid = 0, .asid = 1, .tg = 1, .addr = 0xf000},
       }) {
    Rig r = s1_rig();
    remap(r, 0x10000, kData + 0x100000);
    r.cmds({c, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x100000}))
        << "opcode " << int(opcode_of(c));
  }
}

TEST(SmmuV3Machine, RangeEdgeOnePagePastIsNotCovered) {
  Rig r = s1_rig();
  remap(r, 0x10000, kData + 0x100000);
  // 2 pages from 0xe000: 0xe000..0xffff, one page short of 0x10000.
  r.cmds({CmdTlbiNhVa{.num = 1, .vmid = 0, .asid = 1, .tg = 1, .addr = 0xe000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000).size(), 2u);
}

TEST(SmmuV3Machine, TlbiIssuedBeforeTheWriteDoesNotCover) {
  Rig r = s1_rig();
  r.cmds({CmdTlbiNhAll{.vmid = 0}});
  remap(r, 0x10000, kData + 0x100000);
  r.cmds({CmdSync{}});
  EXPECT_EQ(r.pas(0x10000).size(), 2u);
}

TEST(SmmuV3Machine, LeafOnlyTlbiKeepsTheWalkCache) {
  // Replace the level-2 table that maps 0x10000 by a new one mapping it elsewhere: a
  // cached level-1 descriptor (walk cache) still points at the old table, which still
  // maps the old page; Leaf = 1 does not remove walk-cache entries.
  Rig r = s1_rig();
  const uint64_t l1slot = *r.s1.slot(0x10000, 1);
  const uint64_t old_l1 = *r.shadow.read64(l1slot);
  r.shadow.write64(l1slot, 0); // detach the old level-2 table (its entries stay in memory)
  ASSERT_TRUE(r.s1.map(0x10000, kData + 0x200000, 0x1000, kRw));
  ASSERT_NE(*r.shadow.read64(l1slot), old_l1);
  r.flush();
  r.cmds({CmdTlbiNhVa{.vmid = 0, .asid = 1, .leaf = true, .addr = 0x10000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData, kData + 0x200000}));
  r.cmds({CmdTlbiNhVa{.vmid = 0, .asid = 1, .leaf = false, .addr = 0x10000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x200000}));
}

TEST(SmmuV3Machine, NestedS2IpaLeavesCombinedEntries) {
  Rig r(true);
  // Stage 2 maps the stage-1 tables' IPAs and the output IPA 0x80000000.
  ASSERT_TRUE(r.s2.map(kIpaTables, kIpaPhys, 0x200000, Perms{true, true, false, true}));
  ASSERT_TRUE(r.s2.map(0x80000000, kData, 0x1000, Perms{true, true, false, true}));
  ASSERT_TRUE(r.s1.map(0x10000, 0x80000000, 0x1000, kRw));
  r.cd(0, 1);
  r.ste(0, StreamConfig::nested, 5);
  // The CD's IPA: map the CD table's page 1:1.
  ASSERT_TRUE(r.s2.map(kCd, kCd, 0x1000, Perms{true, true, false, true}));
  r.flush();
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData}));
  // Move the output IPA's page in stage 2.
  r.shadow.write64(*r.s2.slot(0x80000000, 3), 0);
  ASSERT_TRUE(r.s2.map(0x80000000, kData + 0x300000, 0x1000, Perms{true, true, false, true}));
  r.flush();
  r.cmds({CmdTlbiS2Ipa{.vmid = 5, .addr = 0x80000000}, CmdSync{}});
  // [AA] IPAS2 need not remove combined stage-1+2 entries.
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData, kData + 0x300000}));
  r.cmds({CmdTlbiNhAll{.vmid = 5}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x300000}));
}

TEST(SmmuV3Machine, SteChangeNeedsCfgi) {
  Rig r = s1_rig();
  r.ste(0, StreamConfig::abort);
  r.flush();
  hw::DmaRequest q;
  q.addr = 0x10000;
  std::set<hw::DmaOutcome::Kind> kinds;
  for (const auto& a : r.m.dma(q))
    kinds.insert(a.outcome.kind);
  EXPECT_EQ(kinds, (std::set<hw::DmaOutcome::Kind>{hw::DmaOutcome::Kind::ok,
                                                   hw::DmaOutcome::Kind::abort}));
  r.cmds({CmdCfgiSte{.sid = 0, .leaf = true}, CmdSync{}});
  ASSERT_EQ(r.m.dma(q).size(), 1u);
  EXPECT_EQ(r.m.dma(q).front().outcome.kind, hw::DmaOutcome::Kind::abort);
}

TEST(SmmuV3Machine, QueueStopsAtIllegalCommand) {
  Rig r = s1_rig();
  remap(r, 0x10000, kData + 0x100000);
  CmdUnknown bad;
  bad.raw = {0x7f, 0};
  std::vector<Cmd2> w = {encode(CmdTlbiNhAll{.vmid = 0}), encode(CmdSync{}), encode(bad),
                         encode(CmdTlbiNhAll{.vmid = 0})};
  const auto out = r.m.submit(w);
  EXPECT_EQ(out.consumed, 2u);
  EXPECT_EQ(out.error, "CERROR_ILL");
  EXPECT_TRUE(r.m.stopped());
  EXPECT_EQ(r.pas(0x10000).size(), 1u); // the commands before it took effect
  // A stopped queue consumes nothing more.
  EXPECT_EQ(r.cmds({CmdSync{}}).consumed, 0u);
  // Resume: the rest (one TLBI) is consumed.
  const auto res = r.m.resume();
  EXPECT_EQ(res.consumed, 1u);
  EXPECT_TRUE(res.error.empty());
  EXPECT_FALSE(r.m.stopped());
}

TEST(SmmuV3Machine, IllegalWhenTheStageIsMissing) {
  Features f;
  f.stage2 = false;
  EXPECT_EQ(command_error(CmdTlbiS2Ipa{}, f), "CERROR_ILL");
  EXPECT_EQ(command_error(CmdTlbiNhVa{}, f), "");
  EXPECT_EQ(command_error(CmdTlbiEl2All{}, Features{}), "CERROR_ILL");
}

TEST(SmmuV3Machine, EventQueueOverflows) {
  Layout lay;
  lay.evtq_log2 = 1; // two entries
  Rig r;
  r.m = Machine(lay);
  r.cd(0, 1);
  r.ste(0, StreamConfig::s1_trans);
  r.flush();
  hw::DmaRequest q;
  q.addr = 0x5000;
  q.drain = false;
  for (int i = 0; i < 3; ++i) {
    const auto allowed = r.m.dma(q);
    ASSERT_EQ(allowed.front().outcome.kind, hw::DmaOutcome::Kind::fault);
    r.m.after_dma(q, allowed, allowed.front().outcome);
  }
  bool overflow = false;
  const auto evs = r.m.drain_events(overflow);
  EXPECT_EQ(evs.size(), 2u);
  EXPECT_TRUE(overflow);
  const EventRecord e = decode_event({evs[0].may_be[0].record[0], evs[0].may_be[0].record[1],
                                      evs[0].may_be[0].record[2], evs[0].may_be[0].record[3]});
  EXPECT_EQ(e.type, EventType::f_translation);
  EXPECT_EQ(e.input_addr, 0x5000u);
  EXPECT_TRUE(e.rnw);
  r.m.drain_events(overflow);
  EXPECT_FALSE(overflow);
}

// ---- properties ----------------------------------------------------------------------------

// A random history: pages mapped, remapped and unmapped in a 16-page window of stage 1,
// with random TLBIs (with or without CMD_SYNC) in between.
struct History {
  std::vector<std::tuple<int, uint64_t, uint64_t>> ops; // (kind, page, target)
};

Command random_tlbi() {
  const uint64_t page = *rc::gen::inRange<uint64_t>(0, 16) * 0x1000;
  const uint16_t asid = uint16_t(*rc::gen::inRange(0, 3));
  const bool leaf = *rc::gen::arbitrary<bool>();
  switch (*rc::gen::inRange(0, 5)) {
  case 0:
    return CmdTlbiNhVa{.vmid = 0, .asid = asid, .leaf = leaf, .addr = page};
  case 1:
    return CmdTlbiNhVa{.num = uint8_t(*rc::gen::inRange(0, 8)),
                       .vmid = 0,
                       .asid = asid,
                       .leaf = leaf,
                       .tg = 1,
                       .addr = page};
  case 2:
    return CmdTlbiNhAsid{.vmid = 0, .asid = asid};
  case 3:
    return CmdTlbiNhVaa{.vmid = 0, .leaf = leaf, .addr = page};
  default:
    return CmdTlbiNhAll{.vmid = uint16_t(*rc::gen::inRange(0, 2))};
  }
}

void random_history(Rig& r) {
  const int n = *rc::gen::inRange(1, 12);
  for (int i = 0; i < n; ++i) {
    const uint64_t iova = 0x10000 + *rc::gen::inRange<uint64_t>(0, 16) * 0x1000;
    const uint64_t pa = kData + *rc::gen::inRange<uint64_t>(0, 64) * 0x1000;
    switch (*rc::gen::inRange(0, 3)) {
    case 0:
      if (auto s = r.s1.slot(iova, 3)) r.shadow.write64(*s, 0);
      r.s1.map(iova, pa, 0x1000, kRw);
      r.flush();
      break;
    case 1:
      if (auto s = r.s1.slot(iova, 3)) r.shadow.write64(*s, 0);
      r.flush();
      break;
    default:
      if (*rc::gen::arbitrary<bool>())
        r.cmds({random_tlbi(), CmdSync{}});
      else
        r.cmds({random_tlbi()});
    }
  }
}

std::set<hw::DmaOutcome> outcomes(const Machine& m, uint64_t iova) {
  hw::DmaRequest q;
  q.addr = iova;
  std::set<hw::DmaOutcome> s;
  for (const auto& a : m.dma(q))
    s.insert(a.outcome);
  return s;
}

RC_GTEST_PROP(SmmuV3MachineProp, FreshWalkIsAlwaysAllowedAndFirst, ()) {
  Rig r = s1_rig();
  random_history(r);
  const uint64_t iova = 0x10000 + *rc::gen::inRange<uint64_t>(0, 16) * 0x1000;
  hw::DmaRequest q;
  q.addr = iova;
  const Walk fresh = walk_s1(r.m.memory(), *s1_config(decode_cd([&] {
                               std::array<uint64_t, 8> w{};
                               for (int i = 0; i < 8; ++i)
                                 w[size_t(i)] = *r.m.memory().read64(kCd + 8 * uint64_t(i));
                               return w;
                             }())),
                             Access{iova, false, false, true});
  const auto allowed = r.m.dma(q);
  RC_ASSERT(!allowed.empty());
  RC_ASSERT((allowed.front().outcome.kind == hw::DmaOutcome::Kind::ok) == !fresh.fault);
  if (!fresh.fault) RC_ASSERT(allowed.front().outcome.pa == fresh.pa);
}

RC_GTEST_PROP(SmmuV3MachineProp, CompletedInvalidationNeverAddsOutcomes, ()) {
  Rig r = s1_rig();
  random_history(r);
  const uint64_t iova = 0x10000 + *rc::gen::inRange<uint64_t>(0, 16) * 0x1000;
  const auto before = outcomes(r.m, iova);
  r.cmds({random_tlbi(), CmdSync{}});
  const auto after = outcomes(r.m, iova);
  for (const auto& o : after)
    RC_ASSERT(before.count(o) == 1u);
}

RC_GTEST_PROP(SmmuV3MachineProp, CoveringInvalidationLeavesTheFreshWalk, ()) {
  Rig r = s1_rig();
  random_history(r);
  r.cmds({CmdTlbiNsnhAll{}, cfgi_all(), CmdSync{}});
  for (uint64_t iova = 0x10000; iova < 0x20000; iova += 0x1000)
    RC_ASSERT(outcomes(r.m, iova).size() == 1u);
  RC_ASSERT(r.m.stale_epochs() == 0u); // and the history is pruned
}

} // namespace
} // namespace iommuspec::smmuv3
