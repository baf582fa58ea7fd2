// Tests of the SMMUv3 ATC in the machine (machine.cpp "ATC"): what a device with ATS may use
// from its ATC, what CMD_ATC_INV removes and when (IHI 0070 4.5.1: after a CMD_SYNC, and only
// if the TLB invalidation completed before it was consumed), STE.EATS legality and the
// commands that need IDR0.ATS. Plus a RapidCheck property: after the full sequence of 4.5.1
// (TLBI, CMD_SYNC, CMD_ATC_INV, CMD_SYNC) the allowed set is the fresh walk alone.
#include "smmuv3/machine.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t kCd = 0x40010000;     // CD table of stream S: kCd + S * 0x1000
constexpr uint64_t kS1Pool = 0x41000000; // stage-1 tables
constexpr uint64_t kData = 0x42000000;   // output pages
constexpr uint64_t kNew = kData + 0x100000;
constexpr uint64_t kFault = ~uint64_t(0);
const Perms kRw{true, true, false, false};

// Streams 0 and 1 share one stage-1 table (ASID 1); the STEs have EATS = `eats`.
struct AtsRig {
  Machine m;
  Memory shadow;
  PageTableBuilder s1;

  explicit AtsRig(uint8_t eats = 1, bool ats = true)
      : m(Layout{}, Features{.ats = ats}), shadow(ram()),
        s1(PageTableBuilder::stage1(shadow, Range{kS1Pool, kS1Pool + 0xfffff}, Granule::g4k, 48)) {
    EXPECT_TRUE(s1.map(0x10000, kData, 0x1000, kRw));
    for (uint32_t sid : {0u, 1u}) {
      cd(sid);
      Ste e = ste(sid);
      e.eats = eats;
      put_ste(sid, e);
    }
    flush();
    cmds({cfgi_all(), CmdSync{}});
  }
  static Memory ram() {
    Memory m;
    m.add_region(Layout{}.ram);
    return m;
  }
  static Ste ste(uint32_t sid) {
    Ste e;
    e.v = true;
    e.config = StreamConfig::s1_trans;
    e.s1_context_ptr = kCd + sid * 0x1000;
    return e;
  }
  void put_ste(uint32_t sid, const Ste& e) { put8(Layout{}.strtab + sid * 64, encode(e)); }
  void cd(uint32_t sid) {
    Cd c;
    c.v = c.aa64 = c.r = c.epd1 = true;
    c.ips = 5;
    c.t0sz = 16;
    c.asid = 1;
    c.ttb0 = s1.root();
    put8(kCd + sid * 0x1000, encode(c));
  }
  void put8(uint64_t pa, const std::array<uint64_t, 8>& w) {
    for (int i = 0; i < 8; ++i)
      shadow.write64(pa + 8 * uint64_t(i), w[size_t(i)]);
  }
  void flush() { ASSERT_TRUE(m.write(hw::writes_between(m.memory(), shadow))); }
  void remap(uint64_t iova, uint64_t pa) {
    shadow.write64(*s1.slot(iova, 3), 0);
    ASSERT_TRUE(s1.map(iova, pa, 0x1000, kRw));
    flush();
  }
  hw::QueueOutcome cmds(std::initializer_list<Command> cs) {
    std::vector<Cmd2> w;
    for (const auto& c : cs)
      w.push_back(encode(c));
    return m.submit(w);
  }
  std::set<uint64_t> pas(uint64_t iova, uint32_t sid = 0,
                         std::optional<uint32_t> ssid = std::nullopt) const {
    hw::DmaRequest r;
    r.sid = sid;
    r.ssid = ssid;
    r.addr = iova;
    std::set<uint64_t> out;
    for (const auto& a : m.dma(r))
      out.insert(a.outcome.kind == hw::DmaOutcome::Kind::ok ? a.outcome.pa : kFault);
    return out;
  }
};

hw::DmaRequest at(uint64_t iova) {
  hw::DmaRequest r;
  r.addr = iova;
  return r;
}

const CmdTlbiNhVa kTlbi{.vmid = 0, .asid = 1, .leaf = true, .addr = 0x10000};
const CmdAtcInv kAtcInv{.sid = 0, .size = 0, .addr = 0x10000};
const std::set<uint64_t> kBoth{kData, kNew};
const std::set<uint64_t> kFresh{kNew};

TEST(SmmuV3Atc, TlbiAloneLeavesTheAtcEntry) {
  AtsRig r;
  r.remap(0x10000, kNew);
  r.cmds({kTlbi, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), kBoth); // the SMMU's TLB is clean, the device's ATC is not
  r.cmds({kAtcInv, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), kFresh);
}

TEST(SmmuV3Atc, WithoutEatsTheDeviceHasNoAtc) {
  for (uint8_t eats : {0, 3}) { // 0b11 without IDR3.DPT behaves as 0b00 (IHI 5.2)
    AtsRig r(eats);
    r.remap(0x10000, kNew);
    r.cmds({kTlbi, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), kFresh) << int(eats);
  }
}

TEST(SmmuV3Atc, AtcInvCompletesOnlyAtASync) {
  AtsRig r;
  r.remap(0x10000, kNew);
  r.cmds({kTlbi, CmdSync{}});
  r.cmds({kAtcInv});
  EXPECT_EQ(r.pas(0x10000), kBoth);
  r.cmds({CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), kFresh);
}

TEST(SmmuV3Atc, AtcInvMustFollowACompletedTlbi) {
  {
    // TLBI and ATC_INV under one CMD_SYNC: the device may have been refilled from the TLB
    // entry the TLBI had not yet removed when the ATC_INV was consumed (IHI 4.5.1).
    AtsRig r;
    r.remap(0x10000, kNew);
    r.cmds({kTlbi, kAtcInv, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), kBoth);
    r.cmds({kAtcInv, CmdSync{}}); // now behind a completed TLBI
    EXPECT_EQ(r.pas(0x10000), kFresh);
  }
  {
    // ATC_INV before the TLBI: the same.
    AtsRig r;
    r.remap(0x10000, kNew);
    r.cmds({kAtcInv, CmdSync{}, kTlbi, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), kBoth);
  }
  {
    // The 4.5.1 sequence in one submission.
    AtsRig r;
    r.remap(0x10000, kNew);
    r.cmds({kTlbi, CmdSync{}, kAtcInv, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), kFresh);
  }
}

TEST(SmmuV3Atc, AtcInvScope) {
  struct Case {
    CmdAtcInv c;
    bool covers;
  };
  for (const Case& k : std::initializer_list<Case>{
           {{.sid = 1, .size = 0, .addr = 0x10000}, false},              // other device
           {{.sid = 0, .size = 0, .addr = 0x11000}, false},              // other page
           {{.sid = 0, .size = 1, .addr = 0x11000}, true},               // 8K span aligned down
           {{.sid = 0, .size = 4, .addr = 0x1f000}, true},               // 64K span 0x10000..
           {{.sid = 0, .size = 52, .addr = 0x0}, true},                  // everything
           {{.sid = 0, .size = 53, .addr = 0x0}, false},                 // UNKNOWN span
           {{.ssv = true, .ssid = 0, .sid = 0, .addr = 0x10000}, false}, // PASID 0 only
       }) {
    AtsRig r;
    r.remap(0x10000, kNew);
    r.cmds({kTlbi, CmdSync{}, k.c, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), k.covers ? kFresh : kBoth)
        << "sid " << k.c.sid << " size " << int(k.c.size) << " addr " << k.c.addr;
  }
}

TEST(SmmuV3Atc, EachDeviceHasItsOwnAtc) {
  AtsRig r;
  r.remap(0x10000, kNew);
  r.cmds({kTlbi, CmdSync{}, kAtcInv, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000, 0), kFresh);
  EXPECT_EQ(r.pas(0x10000, 1), kBoth);
}

TEST(SmmuV3Atc, FaultsAreNotCachedInTheAtc) {
  AtsRig r;
  EXPECT_EQ(r.pas(0x20000), std::set<uint64_t>{kFault});
  ASSERT_TRUE(r.s1.map(0x20000, kNew, 0x1000, kRw));
  r.flush();
  EXPECT_EQ(r.pas(0x20000), kFresh);
}

TEST(SmmuV3Atc, TranslationsOfAnEarlierStreamConfigurationStay) {
  // The device asked while EATS was 0b01; disabling ATS in the STE (and invalidating it)
  // does not reach the ATC: only CMD_ATC_INV does.
  AtsRig r;
  Ste e = AtsRig::ste(0);
  e.eats = 0;
  r.put_ste(0, e);
  r.remap(0x10000, kNew);
  r.cmds({CmdCfgiSte{.sid = 0}, kTlbi, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), kBoth);
  r.cmds({kAtcInv, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), kFresh);
}

TEST(SmmuV3Atc, EatsLegality) {
  const auto kinds = [](const AtsRig& r) { return r.pas(0x10000); };
  {
    // EATS = 0b10 (split-stage) needs Config = 0b111: on a stage-1 stream it is ILLEGAL.
    AtsRig r(2);
    EXPECT_EQ(kinds(r), std::set<uint64_t>{kFault});
    EXPECT_EQ(r.m.dma(at(0x10000)).front().clause, "SMMUV3.STE.eats");
  }
  {
    // Without IDR0.ATS, EATS is IGNORED.
    AtsRig r(2, false);
    EXPECT_EQ(kinds(r), std::set<uint64_t>{kData});
  }
  {
    // EATS = 0b01 with Config = 0b11x and S2S = 1 is ILLEGAL.
    AtsRig r;
    Ste e = AtsRig::ste(0);
    e.config = StreamConfig::s2_trans;
    e.eats = 1;
    e.s2_s = true;
    e.s2_t0sz = 24;
    e.s2_sl0 = 1;
    e.s2_ps = 5;
    e.s2_aa64 = true;
    e.s2_ttb = kS1Pool + 0x80000;
    r.put_ste(0, e);
    r.flush();
    r.cmds({CmdCfgiSte{.sid = 0}, CmdSync{}});
    const auto out = r.m.dma(at(0x10000));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out.front().clause, "SMMUV3.STE.eats");
    EXPECT_EQ(out.back().clause, "SMMUV3.ATC.fill"); // asked while the stage-1 STE was there
    e.s2_s = false;
    r.put_ste(0, e);
    r.flush();
    r.cmds({CmdCfgiSte{.sid = 0}, CmdSync{}});
    EXPECT_NE(r.m.dma(at(0x10000)).front().clause, "SMMUV3.STE.eats");
  }
}

TEST(SmmuV3Atc, AtsAndPriCommandsNeedTheFeature) {
  EXPECT_EQ(command_error(CmdAtcInv{}, Features{.ats = false}), "CERROR_ILL");
  EXPECT_EQ(command_error(CmdAtcInv{}, Features{.ats = true}), "");
  EXPECT_EQ(command_error(CmdPriResp{}, Features{.ats = true}), "CERROR_ILL");
  AtsRig r(1, false);
  const auto q = r.cmds({kTlbi, kAtcInv, CmdSync{}});
  EXPECT_EQ(q.consumed, 1u);
  EXPECT_EQ(q.error, "CERROR_ILL");
}

// Whatever pages get remapped, after TLBI_NH_ALL, CMD_SYNC, ATC_INV (all), CMD_SYNC the
// allowed set is the fresh walk alone; and the ATC only ever adds translations the device
// could have been given (pages the tables mapped at some point).
RC_GTEST_PROP(SmmuV3AtcProp, FullSequenceLeavesTheFreshWalk, ()) {
  AtsRig r;
  std::set<uint64_t> given{kData};
  const auto steps = *rc::gen::inRange<int>(1, 4);
  for (int i = 0; i < steps; ++i) {
    const uint64_t pa = kData + 0x1000 * uint64_t(*rc::gen::inRange<int>(1, 64));
    r.remap(0x10000, pa);
    given.insert(pa);
    if (*rc::gen::arbitrary<bool>()) r.cmds({CmdTlbiNhAll{.vmid = 0}, CmdSync{}});
    for (uint64_t p : r.pas(0x10000))
      RC_ASSERT(given.count(p) == 1);
  }
  r.cmds({CmdTlbiNhAll{.vmid = 0}, CmdSync{}, CmdAtcInv{.sid = 0, .size = 52}, CmdSync{}});
  const auto walked =
      walk_s1(r.m.memory(), S1Config{.ttb0 = r.s1.root(), .t0sz = 16, .asid = 1}, Access{0x10000});
  RC_ASSERT(!walked.fault);
  RC_ASSERT(r.pas(0x10000) == std::set<uint64_t>{walked.pa});
}

} // namespace
} // namespace iommuspec::smmuv3
