// Tests of the SMMUv3 machine (machine.h): what a device access may observe before and
// after each invalidation, the command queue's stop-at-error rule and the event queue.
// Plus RapidCheck properties: the fresh walk is always allowed; a completed invalidation
// never adds an outcome; after invalidating everything the allowed set is the fresh walk.
#include "smmuv3/machine.h"

#include <cstdio>
#include <gtest/gtest.h>
#include <optional>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>
#include <string>
#include <tuple>

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
  // Writes the structures, then invalidates every configuration cache as software must
  // after making an STE or CD valid (IHI 0070 3.21.3.1): the invalid all-zero STEs of
  // the first image may be cached until then.
  void configure() {
    flush();
    cmds({cfgi_all(), CmdSync{}});
  }
  void put8(uint64_t pa, const std::array<uint64_t, 8>& w) {
    for (int i = 0; i < 8; ++i)
      shadow.write64(pa + 8 * uint64_t(i), w[size_t(i)]);
  }
  void ste(uint32_t sid, StreamConfig cfg, uint16_t vmid = 0, uint8_t cd_max = 0, uint8_t dss = 0) {
    put8(Layout{}.strtab + sid * 64, encode(make_ste(sid, cfg, vmid, cd_max, dss)));
  }
  Ste make_ste(uint32_t sid, StreamConfig cfg, uint16_t vmid = 0, uint8_t cd_max = 0,
               uint8_t dss = 0) const {
    Ste e;
    e.s1_cd_max = cd_max;
    e.s1_dss = dss;
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
    return e;
  }
  void cd(uint32_t sid, uint16_t asid, bool valid = true, uint32_t ssid = 0) {
    put8(kCd + sid * 0x1000 + ssid * 64, encode(make_cd(asid, valid)));
  }
  Cd make_cd(uint16_t asid, bool valid = true, uint64_t ttb0 = 0) const {
    Cd c;
    c.v = valid;
    c.aa64 = c.r = c.epd1 = true;
    c.ips = 5;
    c.t0sz = 16;
    c.asid = asid;
    c.ttb0 = ttb0 ? ttb0 : s1.root();
    return c;
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
  // The allowed outcomes as "pa" or the event type of the record, for tests that tell
  // faults apart.
  std::set<std::string> kinds(uint64_t iova, std::optional<uint32_t> ssid = std::nullopt,
                              uint32_t sid = 0) const {
    hw::DmaRequest r;
    r.sid = sid;
    r.addr = iova;
    r.ssid = ssid;
    std::set<std::string> out;
    for (const auto& a : m.dma(r))
      out.insert(a.outcome.kind == hw::DmaOutcome::Kind::ok      ? "pa"
                 : a.outcome.kind == hw::DmaOutcome::Kind::abort ? "abort"
                                                                 : type_name(a.outcome));
    return out;
  }
  static std::string type_name(const hw::DmaOutcome& o) {
    switch (EventType(o.record.at(0) & 0xff)) {
    case EventType::c_bad_ste:
      return "C_BAD_STE";
    case EventType::c_bad_cd:
      return "C_BAD_CD";
    case EventType::f_stream_disabled:
      return "F_STREAM_DISABLED";
    case EventType::f_translation:
      return "F_TRANSLATION";
    case EventType::f_addr_size:
      return "F_ADDR_SIZE";
    case EventType::c_bad_streamid:
      return "C_BAD_STREAMID";
    case EventType::f_ste_fetch:
      return "F_STE_FETCH";
    case EventType::c_bad_substreamid:
      return "C_BAD_SUBSTREAMID";
    case EventType::f_cd_fetch:
      return "F_CD_FETCH";
    default:
      return "other";
    }
  }
};

constexpr uint64_t kFault = ~uint64_t(0);
const Perms kRw{true, true, false, false};

Rig s1_rig(uint16_t asid = 1) {
  Rig r;
  EXPECT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(0, asid);
  r.ste(0, StreamConfig::s1_trans);
  r.configure();
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

// A nested stream (VMID 5): VA 0x10000 -> IPA 0x80000000 -> kData.
Rig nested_rig() {
  Rig r(true);
  const Perms rw2{true, true, false, true};
  // Stage 2 maps the stage-1 tables' IPAs and the output IPA 0x80000000.
  EXPECT_TRUE(r.s2.map(kIpaTables, kIpaPhys, 0x200000, rw2));
  EXPECT_TRUE(r.s2.map(0x80000000, kData, 0x1000, rw2));
  EXPECT_TRUE(r.s1.map(0x10000, 0x80000000, 0x1000, kRw));
  r.cd(0, 1);
  r.ste(0, StreamConfig::nested, 5);
  // The CD's IPA: map the CD table's page 1:1.
  EXPECT_TRUE(r.s2.map(kCd, kCd, 0x1000, rw2));
  r.configure();
  return r;
}

// Moves the output IPA's page in stage 2 to kData + 0x300000.
void move_s2_page(Rig& r) {
  r.shadow.write64(*r.s2.slot(0x80000000, 3), 0);
  ASSERT_TRUE(r.s2.map(0x80000000, kData + 0x300000, 0x1000, Perms{true, true, false, true}));
  r.flush();
}

TEST(SmmuV3Machine, NestedS2IpaLeavesCombinedEntries) {
  Rig r = nested_rig();
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData}));
  move_s2_page(r);
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
  // A stopped queue consumes nothing more; what is submitted meanwhile waits in the queue
  // (IHI 0070 7.1: commands at or after CONS are fetched after the restart).
  EXPECT_EQ(r.cmds({CmdSync{}}).consumed, 0u);
  // Resume: the replacing CMD_SYNC, the rest (one TLBI) and the CMD_SYNC submitted while
  // stopped are consumed.
  const auto res = r.m.resume();
  EXPECT_EQ(res.consumed, 3u);
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
  r.configure();
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

// IHI 0070 3.21.3: an STE may be cached while V = 0; making it valid needs CFGI_STE + SYNC
// before the old C_BAD_STE is gone. The CD was unreachable until then, so it was never
// cached (3.21.3.1: "No CMD_CFGI_CD is required").
TEST(SmmuV3Machine, InvalidSteStaysCachedUntilCfgi) {
  Rig r;
  ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(0, 1);
  r.ste(0, StreamConfig::s1_trans);
  r.flush();
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"pa", "C_BAD_STE"}));
  r.cmds({CmdCfgiSte{.sid = 0, .leaf = true}, CmdSync{}});
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"pa"}));
}

// IHI 0070 3.21.3: a CD of a valid STE's CD table may be cached while V = 0.
TEST(SmmuV3Machine, InvalidCdStaysCachedUntilCfgiCd) {
  Rig r;
  ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(0, 1, /*valid=*/false);
  r.ste(0, StreamConfig::s1_trans);
  r.configure();
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"C_BAD_CD"}));
  r.cd(0, 1);
  r.flush();
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"pa", "C_BAD_CD"}));
  r.cmds({CmdCfgiCd{.ssid = 0, .sid = 0, .leaf = true}, CmdSync{}});
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"pa"}));
}

// IHI 0070 5.2 S1DSS, 7.3.7: with S1DSS = 0b10, SubstreamID 0 is F_STREAM_DISABLED (the
// record holds the StreamID only) and traffic without one uses CD 0; 0b11 behaves as 0b00.
TEST(SmmuV3Machine, S1dssSsid0RejectsSubstreamZero) {
  Rig r;
  ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(0, 1);
  r.cd(0, 2, true, /*ssid=*/1);
  r.ste(0, StreamConfig::s1_trans, 0, /*cd_max=*/2, /*dss=*/2);
  r.configure();
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"pa"}));
  EXPECT_EQ(r.kinds(0x10000, 1u), (std::set<std::string>{"pa"}));
  EXPECT_EQ(r.kinds(0x10000, 0u), (std::set<std::string>{"F_STREAM_DISABLED"}));
  hw::DmaRequest q;
  q.addr = 0x10000;
  q.ssid = 0;
  const auto a = r.m.dma(q);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(a[0].clause, std::string_view("SMMUV3.STE.s1dss_ssid0"));
  ASSERT_EQ(a[0].outcome.mask.size(), 4u);
  EXPECT_EQ(a[0].outcome.mask[0], 0xffffffff000000ffull); // StreamID and type only
  r.ste(0, StreamConfig::s1_trans, 0, 2, /*dss=*/3);
  r.configure();
  EXPECT_EQ(r.kinds(0x10000), (std::set<std::string>{"F_STREAM_DISABLED"}));
}

// IHI 0070 3.4: a bypass STE checks the input address against the OAS (F_ADDR_SIZE, S2 = 0,
// CLASS = IN); an OAS the features do not give may be any of 32..56 bits (6.3.6).
TEST(SmmuV3Machine, BypassChecksTheOas) {
  for (unsigned oas : {0u, 48u}) {
    Features f;
    f.oas_bits = oas;
    Rig r;
    r.m = Machine(Layout{}, f);
    r.ste(0, StreamConfig::bypass);
    r.configure();
    EXPECT_EQ(r.kinds(0x42000000), (std::set<std::string>{"pa"}));
    EXPECT_EQ(r.kinds(uint64_t(1) << 56), (std::set<std::string>{"F_ADDR_SIZE"}));
    const std::set<std::string> at40 =
        oas ? std::set<std::string>{"pa"} : std::set<std::string>{"pa", "F_ADDR_SIZE"};
    EXPECT_EQ(r.kinds(uint64_t(1) << 40), at40) << oas;
    if (oas) {
      EXPECT_EQ(r.kinds(uint64_t(1) << oas), (std::set<std::string>{"F_ADDR_SIZE"}));
    }
  }
  Rig r;
  r.ste(0, StreamConfig::bypass);
  r.configure();
  hw::DmaRequest q;
  q.addr = uint64_t(1) << 56;
  const auto a = r.m.dma(q);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(a[0].outcome.record.size(), 4u);
  const auto& w = a[0].outcome.record;
  const EventRecord e = decode_event({w[0], w[1], w[2], w[3]});
  EXPECT_EQ(a[0].clause, std::string_view("SMMUV3.STE.bypass_oas"));
  EXPECT_EQ(e.type, EventType::f_addr_size);
  EXPECT_FALSE(e.s2);
  EXPECT_EQ(e.event_class, 2u); // IN
  EXPECT_EQ(e.input_addr, q.addr);
}

// IHI 0070 4.1.6, 4.4.1.1, 4.4.2.5, 4.4.4.2: the CERROR_ILL cases of the Non-secure queue.
TEST(SmmuV3Machine, IllegalCommandsOnTheNonSecureQueue) {
  const Features f;
  EXPECT_EQ(command_error(CmdCfgiSte{.ssec = true, .sid = 1}, f), "CERROR_ILL");
  EXPECT_EQ(command_error(CmdCfgiCdAll{.ssec = true}, f), "CERROR_ILL");
  EXPECT_EQ(command_error(CmdCfgiSte{.sid = 1}, f), "");
  EXPECT_EQ(command_error(CmdTlbiNhVa{.tg = 1}, f), "CERROR_ILL"); // NUM, SCALE, TTL = 0
  EXPECT_EQ(command_error(CmdTlbiS2Ipa{.tg = 3}, f), "CERROR_ILL");
  EXPECT_EQ(command_error(CmdTlbiNhVa{.ttl = 1, .tg = 2}, f), "CERROR_ILL"); // 16K TTL 1 = 0
  EXPECT_EQ(command_error(CmdTlbiNhVa{.ttl = 3, .tg = 1}, f), "");
  EXPECT_EQ(command_error(CmdTlbiNhVaa{.num = 1, .tg = 1}, f), "");
  EXPECT_EQ(command_error(CmdTlbiNhVa{.scale = 1, .tg = 2}, f), "");
  Features no_ril;
  no_ril.range_inv = false; // TG, NUM, SCALE, TTL are RES0
  EXPECT_EQ(command_error(CmdTlbiNhVa{.tg = 1}, no_ril), "");
  EXPECT_EQ(command_error(CmdTlbiEl3All{}, f), "CERROR_ILL");
  for (uint8_t op : {0x00, 0x1a, 0x50, 0x5a, 0x60, 0x90}) {
    CmdUnknown c;
    c.raw = {op, 0};
    EXPECT_EQ(command_error(decode_command(c.raw), f), "CERROR_ILL") << int(op);
  }
}

// Linux __arm_smmu_cmdq_skip_err: the failing command becomes CMD_SYNC and consumption
// restarts at it, so `resume` counts it; a second error in the rest stops there again.
TEST(SmmuV3Machine, ResumeCountsTheReplacingSync) {
  Rig r = s1_rig();
  remap(r, 0x10000, kData + 0x100000);
  CmdUnknown bad;
  bad.raw = {0x00, 0};
  std::vector<Cmd2> w = {encode(bad), encode(CmdTlbiNhAsid{.vmid = 0, .asid = 1}), encode(bad),
                         encode(CmdSync{})};
  EXPECT_EQ(r.m.submit(w), (hw::QueueOutcome{0, "CERROR_ILL"}));
  EXPECT_EQ(r.pas(0x10000).size(), 2u);
  EXPECT_EQ(r.m.resume(), (hw::QueueOutcome{2, "CERROR_ILL"})); // the SYNC and the TLBI
  EXPECT_EQ(r.m.resume(), (hw::QueueOutcome{2, ""}));           // the SYNC and the SYNC
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x100000}));
}

// IHI 0070 4.4.1.1: a range TLBI is only required to remove entries of the granule TG
// names and, with TTL, of that level.
TEST(SmmuV3Machine, RangeTlbiScopeFollowsTgAndTtl) {
  const std::set<uint64_t> both{kData, kData + 0x100000}, fresh{kData + 0x100000};
  for (const auto& [c, want] : std::initializer_list<std::pair<CmdTlbiNhVa, std::set<uint64_t>>>{
           {{.vmid = 0, .asid = 1, .leaf = true, .ttl = 3, .tg = 2, .addr = 0x10000}, both},
           {{.vmid = 0, .asid = 1, .leaf = true, .ttl = 2, .tg = 1, .addr = 0x10000}, both},
           {{.vmid = 0, .asid = 1, .leaf = true, .ttl = 3, .tg = 1, .addr = 0x10000}, fresh},
           {{.num = 3, .vmid = 0, .asid = 1, .leaf = true, .tg = 1, .addr = 0x10000}, fresh},
       }) {
    Rig r = s1_rig();
    remap(r, 0x10000, kData + 0x100000);
    EXPECT_EQ(r.cmds({c, CmdSync{}}).consumed, 2u);
    EXPECT_EQ(r.pas(0x10000), want) << int(c.tg) << " " << int(c.ttl);
  }
}

// IHI 0070 4.4.1.1: with TTL a base address not aligned to that level's entries gives an
// UNPREDICTABLE range (nothing is required); aligned, the level-2 block goes.
TEST(SmmuV3Machine, RangeTlbiMisalignedBaseIsNotRequired) {
  for (uint64_t base : {0x201000ull, 0x200000ull}) {
    Rig r;
    ASSERT_TRUE(r.s1.map(0x200000, kData, 0x200000, kRw));
    r.cd(0, 1);
    r.ste(0, StreamConfig::s1_trans);
    r.configure();
    r.shadow.write64(*r.s1.slot(0x200000, 2), 0);
    ASSERT_TRUE(r.s1.map(0x200000, kData + 0x400000, 0x200000, kRw));
    r.flush();
    r.cmds({CmdTlbiNhVa{.vmid = 0, .asid = 1, .leaf = true, .ttl = 2, .tg = 1, .addr = base},
            CmdSync{}});
    EXPECT_EQ(r.pas(0x201000).size(), base == 0x200000 ? 1u : 2u) << std::hex << base;
  }
}

// IHI 0070 4.4.1.1: with Leaf = 0 and TTL, table descriptors above the TTL level go too
// (level 0..TTL-1); the cached level-1 descriptor survives TTL = 1 but not TTL = 3.
TEST(SmmuV3Machine, RangeTlbiLeaf0ReachesTablesAboveTtl) {
  for (uint8_t ttl : {uint8_t(1), uint8_t(3)}) {
    Rig r = s1_rig();
    const uint64_t l1slot = *r.s1.slot(0x10000, 1);
    r.shadow.write64(l1slot, 0); // detach the old level-2 table (its entries stay in memory)
    ASSERT_TRUE(r.s1.map(0x10000, kData + 0x200000, 0x1000, kRw));
    r.flush();
    r.cmds({CmdTlbiNhVa{.vmid = 0, .asid = 1, .leaf = false, .ttl = ttl, .tg = 1, .addr = 0x10000},
            CmdSync{}});
    EXPECT_EQ(r.pas(0x10000).size(), ttl == 1 ? 2u : 1u) << int(ttl);
  }
}

// IHI 0070 4.4.3.1 and Arm ARM D8.17.6.1 ("TLBI IPAS2E1; DSB; TLBI VMALLE1"): a combined
// entry may be rebuilt from the stale stage-2 entry until the stage-2 invalidation has
// completed, so only a stage-1 invalidation issued after that CMD_SYNC (or one command
// covering both) is sure to remove it.
TEST(SmmuV3Machine, NestedStage1InvalidationMustFollowStage2) {
  const std::set<uint64_t> both{kData, kData + 0x300000}, fresh{kData + 0x300000};
  const CmdTlbiS2Ipa s2{.vmid = 5, .addr = 0x80000000};
  const CmdTlbiNhAll s1{.vmid = 5};
  struct Case {
    std::vector<std::vector<Command>> batches;
    std::set<uint64_t> want;
  };
  for (const Case& c : std::initializer_list<Case>{
           {{{s1, CmdSync{}}, {s2, CmdSync{}}}, both},  // wrong order
           {{{s2, s1, CmdSync{}}}, both},               // no CMD_SYNC between
           {{{s1, s2, CmdSync{}}}, both},               //
           {{{s2, CmdSync{}}, {s1, CmdSync{}}}, fresh}, // Linux's order
           {{{CmdTlbiS12Vmall{.vmid = 5}, CmdSync{}}}, fresh},
       }) {
    Rig r = nested_rig();
    move_s2_page(r);
    for (const auto& b : c.batches) {
      std::vector<Cmd2> w;
      for (const auto& cmd : b)
        w.push_back(encode(cmd));
      ASSERT_EQ(r.m.submit(w).consumed, b.size());
    }
    EXPECT_EQ(r.pas(0x10000), c.want) << c.batches.size() << " " << c.batches[0].size();
    r.cmds({s1, CmdSync{}});
    EXPECT_EQ(r.pas(0x10000), fresh);
  }
}

// A combined entry may be built while its stage-1 leaf is still cached from an older image
// and the stage-2 entry from a later one: after stage 1 moved VA 0x10000 from IPA X to Y
// (no TLBI) and X's stage-2 page moved twice, X's second page stays allowed although no
// image ever held both it and VA -> X.
TEST(SmmuV3Machine, NestedCombinedFromCachedStage1Leaf) {
  Rig r = nested_rig();
  const Perms rw2{true, true, false, true};
  r.shadow.write64(*r.s1.slot(0x10000, 3) + r.s1.placement_offset(), 0);
  ASSERT_TRUE(r.s1.map(0x10000, 0x80001000, 0x1000, kRw));
  ASSERT_TRUE(r.s2.map(0x80001000, kData + 0x500000, 0x1000, rw2));
  r.flush();
  move_s2_page(r); // X -> kData + 0x300000
  r.shadow.write64(*r.s2.slot(0x80000000, 3), 0);
  ASSERT_TRUE(r.s2.map(0x80000000, kData + 0x400000, 0x1000, rw2));
  r.flush();
  r.cmds({CmdTlbiS2Ipa{.vmid = 5, .addr = 0x80000000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000),
            (std::set<uint64_t>{kData, kData + 0x300000, kData + 0x400000, kData + 0x500000}));
  r.cmds({CmdTlbiNhVa{.vmid = 5, .asid = 1, .leaf = true, .addr = 0x10000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x500000}));
}

// Arm ARM D8.17 (splintering): a stage-1 invalidation of any address of a stage-1 block
// removes every combined entry holding that block, also the 4KB pieces of other addresses.
TEST(SmmuV3Machine, NestedCombinedPiecesGoWithTheirStage1Block) {
  Rig r(true);
  const Perms rw2{true, true, false, true};
  ASSERT_TRUE(r.s2.map(kIpaTables, kIpaPhys, 0x200000, rw2));
  ASSERT_TRUE(r.s2.map(0x80200000, kData, 0x1000, rw2));
  ASSERT_TRUE(r.s2.map(0x80201000, kData + 0x1000, 0x1000, rw2));
  ASSERT_TRUE(r.s1.map(0x200000, 0x80200000, 0x200000, kRw)); // a level-2 block
  ASSERT_TRUE(r.s2.map(kCd, kCd, 0x1000, rw2));
  r.cd(0, 1);
  r.ste(0, StreamConfig::nested, 5);
  r.configure();
  r.shadow.write64(*r.s2.slot(0x80200000, 3), 0);
  ASSERT_TRUE(r.s2.map(0x80200000, kData + 0x300000, 0x1000, rw2));
  r.flush();
  r.cmds({CmdTlbiS2Ipa{.vmid = 5, .addr = 0x80200000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x200000), (std::set<uint64_t>{kData, kData + 0x300000}));
  r.cmds({CmdTlbiNhVa{.vmid = 5, .asid = 1, .leaf = true, .addr = 0x201000}, CmdSync{}});
  EXPECT_EQ(r.pas(0x200000), (std::set<uint64_t>{kData + 0x300000}));
}

// Pruning (Machine::prune) must keep an epoch whose stage-2 entry a surviving rebuilt
// combined entry came from, even when every sample key of the epoch is covered.
TEST(SmmuV3Machine, PruneKeepsEpochsOfRebuiltCombinedEntries) {
  Rig r = nested_rig();
  move_s2_page(r);
  std::vector<Cmd2> s1 = {encode(cfgi_all()), encode(CmdTlbiNhAll{.vmid = 0}),
                          encode(CmdTlbiNhAll{.vmid = 0xffff}), encode(CmdTlbiNhAll{.vmid = 5}),
                          encode(CmdSync{})};
  std::vector<Cmd2> s2 = {encode(CmdTlbiS2Ipa{.vmid = 5, .addr = 0x80000000}), encode(CmdSync{})};
  for (uint16_t vmid : {uint16_t(0), uint16_t(0xffff)})
    for (uint64_t addr : {uint64_t(0), uint64_t(0xfffffffff000)})
      s2.insert(s2.begin(), encode(CmdTlbiS2Ipa{.vmid = vmid, .addr = addr}));
  ASSERT_EQ(r.m.submit(s1).consumed, s1.size());
  ASSERT_EQ(r.m.submit(s2).consumed, s2.size());
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData, kData + 0x300000}));
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
  case 1: // NUM = 0 with SCALE = 0 and TTL = 0 is Reserved (CERROR_ILL, IHI 0070 4.4.1.1)
    return CmdTlbiNhVa{.num = uint8_t(*rc::gen::inRange(1, 8)),
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

// Nested: stage-2 remaps of the output IPA's page and random stage-1/stage-2 invalidations,
// with or without CMD_SYNC (exercises the rebuilt combined entries).
Command random_nested_tlbi() {
  switch (*rc::gen::inRange(0, 4)) {
  case 0:
    return CmdTlbiS2Ipa{.vmid = 5, .leaf = *rc::gen::arbitrary<bool>(), .addr = 0x80000000};
  case 1:
    return CmdTlbiNhAll{.vmid = 5};
  case 2:
    return CmdTlbiNhVa{.vmid = 5, .asid = 1, .leaf = true, .addr = 0x10000};
  default:
    return CmdTlbiS12Vmall{.vmid = 5};
  }
}

void random_nested_history(Rig& r) {
  const int n = *rc::gen::inRange(1, 10);
  for (int i = 0; i < n; ++i) {
    if (*rc::gen::arbitrary<bool>()) {
      r.shadow.write64(*r.s2.slot(0x80000000, 3), 0);
      const uint64_t pa = kData + *rc::gen::inRange<uint64_t>(0, 4) * 0x100000;
      r.s2.map(0x80000000, pa, 0x1000, Perms{true, true, false, true});
      r.flush();
    } else if (*rc::gen::arbitrary<bool>()) {
      r.cmds({random_nested_tlbi(), CmdSync{}});
    } else {
      r.cmds({random_nested_tlbi()});
    }
  }
}

RC_GTEST_PROP(SmmuV3MachineProp, NestedCompletedInvalidationNeverAddsOutcomes, ()) {
  Rig r = nested_rig();
  random_nested_history(r);
  const auto before = outcomes(r.m, 0x10000);
  RC_ASSERT(before.size() >= 1u);
  r.cmds({random_nested_tlbi(), CmdSync{}});
  for (const auto& o : outcomes(r.m, 0x10000))
    RC_ASSERT(before.count(o) == 1u);
  r.cmds({CmdTlbiS12Vmall{.vmid = 5}, CmdSync{}});
  RC_ASSERT(outcomes(r.m, 0x10000).size() == 1u);
}

// ---- two-level stream and CD tables (IHI 0070 3.3.1.2, 3.3.2, 5.1, 5.2 S1Fmt, 5.3) ---------

constexpr uint64_t kL2 = 0x40300000;   // level-2 stream tables (the compiler's layout)
constexpr uint64_t kLeaf = 0x40400000; // CD leaf tables

Layout two_level(uint8_t split = 6) {
  Layout l;
  l.strtab_fmt = 1;
  l.strtab_split = split;
  return l;
}
Rig rig2(Layout lay = two_level(), Features f = {}) {
  Rig r;
  r.m = Machine(lay, f);
  return r;
}
void put_l1std(Rig& r, uint32_t index, uint8_t span, uint64_t l2) {
  r.shadow.write64(Layout{}.strtab + 8 * uint64_t(index), encode(StrtabL1Desc{span, l2}));
}
void put_l1cd(Rig& r, uint64_t table, uint32_t index, bool v, uint64_t l2) {
  r.shadow.write64(table + 8 * uint64_t(index), encode(CdL1Desc{v, l2}));
}
// The STE of sid in a two-level table of SPLIT split whose L2 table is at l2.
void put_ste2(Rig& r, uint64_t l2, unsigned split, const Ste& e, uint32_t sid) {
  r.put8(l2 + (sid & ((1u << split) - 1)) * 64, encode(e));
}

std::string fmt_pa(uint64_t pa) {
  char b[32];
  std::snprintf(b, sizeof b, "pa=%#llx", static_cast<unsigned long long>(pa));
  return b;
}

std::vector<Allowed> dma_of(const Machine& m, uint32_t sid, std::optional<uint32_t> ssid,
                            uint64_t iova) {
  hw::DmaRequest q;
  q.sid = sid;
  q.ssid = ssid;
  q.addr = iova;
  return m.dma(q);
}
std::set<hw::DmaOutcome> outcomes_of(const Machine& m, uint32_t sid, std::optional<uint32_t> ssid,
                                     uint64_t iova) {
  std::set<hw::DmaOutcome> s;
  for (const auto& a : dma_of(m, sid, ssid, iova))
    s.insert(a.outcome);
  return s;
}
// "pa" outcomes as their PA, faults and aborts as their type name.
std::set<std::string> seen(const Machine& m, uint32_t sid, std::optional<uint32_t> ssid,
                           uint64_t iova = 0x10000) {
  std::set<std::string> out;
  for (const auto& a : dma_of(m, sid, ssid, iova))
    out.insert(a.outcome.kind == hw::DmaOutcome::Kind::ok      ? fmt_pa(a.outcome.pa)
               : a.outcome.kind == hw::DmaOutcome::Kind::abort ? "abort"
                                                               : Rig::type_name(a.outcome));
  return out;
}
EventRecord record_of(const Allowed& a) {
  const auto& w = a.outcome.record;
  return decode_event({w.at(0), w.at(1), w.at(2), w.at(3)});
}

const std::string kPa = fmt_pa(kData), kPa2 = fmt_pa(kData + 0x1000);

// IHI 0070 6.3.25: the L1STD of StreamID s is entry s >> SPLIT, its STE entry s[SPLIT-1:0] of
// the level-2 table; SPLIT values other than 6, 8, 10 behave as 6.
TEST(SmmuV3TwoLevel, StreamTableLocatesTheSte) {
  for (uint8_t split : {uint8_t(6), uint8_t(8), uint8_t(10), uint8_t(7), uint8_t(0)}) {
    const unsigned eff = split == 8 || split == 10 ? split : 6;
    Rig r = rig2(two_level(split));
    ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
    for (uint32_t sid : {5u, 70u, 200u}) {
      const uint32_t idx = sid >> eff;
      put_l1std(r, idx, uint8_t(eff + 1), kL2 + idx * 0x10000);
      put_ste2(r, kL2 + idx * 0x10000, eff, r.make_ste(sid, StreamConfig::s1_trans), sid);
      r.cd(sid, 1);
    }
    r.configure();
    for (uint32_t sid : {5u, 70u, 200u})
      EXPECT_EQ(seen(r.m, sid, std::nullopt), (std::set<std::string>{kPa})) << int(split) << sid;
    EXPECT_EQ(seen(r.m, 6, std::nullopt), (std::set<std::string>{"C_BAD_STE"})) << int(split);
  }
}

// IHI 0070 6.3.25 FMT: "Other values are reserved, behave as 0b00"; without IDR0.ST_LEVEL the
// field is RES0: the table is linear.
TEST(SmmuV3TwoLevel, ReservedFmtAndNoStLevelAreLinear) {
  Layout l = two_level();
  l.strtab_fmt = 2;
  Features no_st;
  no_st.st_level = false;
  for (const auto& [lay, f] : {std::pair{l, Features{}}, std::pair{two_level(), no_st}}) {
    Rig r = rig2(lay, f);
    ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
    r.cd(1, 1);
    r.ste(1, StreamConfig::s1_trans);
    r.configure();
    EXPECT_EQ(seen(r.m, 1, std::nullopt), (std::set<std::string>{kPa}));
  }
}

// IHI 0070 5.1 Span, 5.1.1, 7.3.3: Span 0, Reserved (12-31), above SPLIT + 1, or a StreamID
// beyond 2^(Span-1) entries: C_BAD_STREAMID. 5.1 L2Ptr: bits [5+Span-1:0] are treated as 0.
TEST(SmmuV3TwoLevel, SpanDecidesWhichStreamIdsAreValid) {
  const std::set<std::string> bad{"C_BAD_STREAMID"}, good{kPa};
  for (const auto& [span, l2, want] :
       std::initializer_list<std::tuple<uint8_t, uint64_t, std::set<std::string>>>{
           {0, kL2, bad},
           {12, kL2, bad},
           {31, kL2, bad},
           {8, kL2, bad}, // SPLIT + 1 = 7
           {7, kL2, good},
           {2, kL2, good},         // two STEs: 0 and 1
           {1, kL2, bad},          // one STE: StreamID 1 is beyond it
           {7, kL2 + 0xfc0, good}, // L2Ptr[11:0] ignored with Span 7
       }) {
    Rig r = rig2();
    ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
    r.cd(1, 1);
    put_ste2(r, kL2, 6, r.make_ste(1, StreamConfig::s1_trans), 1);
    put_l1std(r, 0, span, l2);
    r.configure();
    const auto a = dma_of(r.m, 1, std::nullopt, 0x10000);
    EXPECT_EQ(seen(r.m, 1, std::nullopt), want) << int(span) << " " << std::hex << l2;
    if (want == bad) {
      EXPECT_EQ(a.front().clause,
                std::string_view(span == 1 ? "SMMUV3.STE.l2_span" : "SMMUV3.STE.l1_span"));
      EXPECT_EQ(record_of(a.front()).sid, 1u);
    }
  }
}

// IHI 0070 6.3.25: the effective LOG2SIZE is MIN(LOG2SIZE, IDR1.SIDSIZE).
TEST(SmmuV3TwoLevel, SidSizeBoundsTheStreamIds) {
  Features f;
  f.sid_bits = 6;
  Rig r = rig2(two_level(), f);
  put_l1std(r, 1, 7, kL2 + 0x10000);
  put_ste2(r, kL2 + 0x10000, 6, r.make_ste(64, StreamConfig::bypass), 64);
  r.configure();
  EXPECT_EQ(seen(r.m, 64, std::nullopt), (std::set<std::string>{"C_BAD_STREAMID"}));
}

// IHI 0070 3.21.3, 7.3.4: an L1STD fetch that aborts is F_STE_FETCH with its address, and
// is not cached.
TEST(SmmuV3TwoLevel, L1stdFetchAbortIsSteFetch) {
  Layout lay = two_level();
  lay.strtab = 0x30000000; // no memory there
  Rig r = rig2(lay);
  const auto a = dma_of(r.m, 65, std::nullopt, 0x10000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].clause, std::string_view("SMMUV3.STE.l1_fetch"));
  EXPECT_EQ(record_of(a[0]).type, EventType::f_ste_fetch);
  EXPECT_EQ(record_of(a[0]).addr2, 0x30000008u);
}

// IHI 0070 3.4.3 (5): an STE address beyond the OAS is truncated to it or F_STE_FETCH.
TEST(SmmuV3TwoLevel, L2PtrBeyondTheOasTruncatesOrFaults) {
  for (unsigned oas : {0u, 48u}) {
    Features f;
    f.oas_bits = oas;
    Rig r = rig2(two_level(), f);
    ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
    r.cd(1, 1);
    put_ste2(r, kL2, 6, r.make_ste(1, StreamConfig::s1_trans), 1);
    put_l1std(r, 0, 7, kL2 | (uint64_t(1) << 40));
    r.configure();
    const std::set<std::string> want =
        oas ? std::set<std::string>{"F_STE_FETCH"} : std::set<std::string>{"F_STE_FETCH", kPa};
    EXPECT_EQ(seen(r.m, 1, std::nullopt), want) << oas;
  }
}

// A configured two-level stream: StreamID 1's STE (stage 1 to kData) in the table at kL2.
Rig two_level_stream() {
  Rig r = rig2();
  EXPECT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(1, 1);
  put_l1std(r, 0, 7, kL2);
  put_ste2(r, kL2, 6, r.make_ste(1, StreamConfig::s1_trans), 1);
  r.configure();
  return r;
}

// IHI 0070 3.21.3, 4.3.1, 4.3.2, 5.1.1: after the L1STD is repointed at a new table (a bypass
// STE for StreamID 1), the cached L1STD may still lead to the old table in memory until a
// CFGI_STE with Leaf = 0 for a StreamID of its span (or a range or CFGI_ALL over it) has
// completed; CFGI_STE with Leaf = 1 removes only the STE.
TEST(SmmuV3TwoLevel, RepointedL1stdNeedsCfgiSteLeaf0) {
  const std::set<std::string> both{kPa, fmt_pa(0x10000)}, fresh{fmt_pa(0x10000)};
  struct Case {
    std::vector<Command> cmds;
    std::set<std::string> want;
  };
  bool first = true;
  for (const Case& c : std::initializer_list<Case>{
           {{CmdCfgiSte{.sid = 1, .leaf = true}}, both},
           {{CmdCfgiSte{.sid = 1, .leaf = false}}, fresh},
           {{CmdCfgiSte{.sid = 1, .leaf = true}, CmdCfgiSte{.sid = 2, .leaf = false}}, fresh},
           {{CmdCfgiSte{.sid = 1, .leaf = true}, CmdCfgiSte{.sid = 64, .leaf = false}}, both},
           {{CmdCfgiSteRange{.sid = 0, .range = 0}}, fresh},
           {{CmdCfgiSte{.sid = 1, .leaf = true}, CmdCfgiSteRange{.sid = 2, .range = 0}}, fresh},
           {{CmdCfgiSte{.sid = 1, .leaf = true}, CmdCfgiSteRange{.sid = 64, .range = 5}}, both},
           {{cfgi_all()}, fresh},
           {{CmdCfgiCdAll{.sid = 1}, CmdCfgiCd{.sid = 1, .leaf = false}}, both},
       }) {
    Rig r = two_level_stream();
    EXPECT_EQ(seen(r.m, 1, std::nullopt), (std::set<std::string>{kPa}));
    put_ste2(r, kL2 + 0x8000, 6, r.make_ste(1, StreamConfig::bypass), 1);
    r.flush();
    put_l1std(r, 0, 7, kL2 + 0x8000);
    r.flush();
    EXPECT_EQ(seen(r.m, 1, std::nullopt), both);
    std::vector<Cmd2> w;
    for (const auto& cmd : c.cmds)
      w.push_back(encode(cmd));
    w.push_back(encode(CmdSync{}));
    ASSERT_EQ(r.m.submit(w).consumed, w.size());
    EXPECT_EQ(seen(r.m, 1, std::nullopt), c.want)
        << c.cmds.size() << " " << int(opcode_of(c.cmds.back()));
    if (first) { // the STE is gone: only the cached L1STD leads to the old table
      const auto a = dma_of(r.m, 1, std::nullopt, 0x10000);
      ASSERT_EQ(a.size(), 2u);
      EXPECT_EQ(a[1].clause, std::string_view("SMMUV3.CACHE.l1std"));
    }
    first = false;
  }
}

// IHI 0070 5.1.1: "Changing an inactive L1STD with Span == 0 to a non-zero active Span ...
// requires an invalidation of the L1STD"; the STE behind it was unreachable, never cached.
TEST(SmmuV3TwoLevel, InvalidL1stdStaysCachedUntilCfgiSteLeaf0) {
  Rig r = rig2();
  ASSERT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
  r.cd(1, 1);
  put_l1std(r, 0, 7, kL2);
  put_ste2(r, kL2, 6, r.make_ste(1, StreamConfig::s1_trans), 1);
  r.flush();
  EXPECT_EQ(seen(r.m, 1, std::nullopt), (std::set<std::string>{kPa, "C_BAD_STREAMID"}));
  r.cmds({CmdCfgiSte{.sid = 1, .leaf = true}, CmdSync{}});
  EXPECT_EQ(seen(r.m, 1, std::nullopt), (std::set<std::string>{kPa, "C_BAD_STREAMID"}));
  r.cmds({CmdCfgiSte{.sid = 1, .leaf = false}, CmdSync{}});
  EXPECT_EQ(seen(r.m, 1, std::nullopt), (std::set<std::string>{kPa}));
}

// Stream 0 (linear stream table), stage 1 with a two-level CD table of format fmt at kCd:
// S1CDMax 12, S1DSS = 0b10; a second stage-1 table maps 0x10000 to kData + 0x1000.
struct CdRig {
  Rig r;
  PageTableBuilder t2;
  unsigned leaf;
  explicit CdRig(uint8_t fmt, Features f = {}, bool nested = false)
      : r(nested),
        t2(PageTableBuilder::stage1(r.shadow, Rig::pool(kS1Pool + 0x300000), Granule::g4k, 48)),
        leaf(fmt == 2 ? 10 : 6) {
    r.m = Machine(Layout{}, f);
    EXPECT_TRUE(t2.map(0x10000, kData + 0x1000, 0x1000, kRw));
    if (!nested) {
      EXPECT_TRUE(r.s1.map(0x10000, kData, 0x1000, kRw));
    }
    ste(fmt, 12);
  }
  void ste(uint8_t fmt, uint8_t cd_max, StreamConfig cfg = StreamConfig::s1_trans) {
    Ste e = r.make_ste(0, cfg, 5, cd_max, 2);
    e.s1_fmt = fmt;
    r.put8(Layout{}.strtab, encode(e));
  }
  // CD ssid in the leaf at `base` (kData through s1, or kData + 0x1000 through t2).
  void cd(uint64_t base, uint32_t ssid, uint16_t asid, bool second = false) {
    r.put8(base + (ssid & ((1u << leaf) - 1)) * 64,
           encode(r.make_cd(asid, true, second ? t2.root() : 0)));
  }
};

// IHI 0070 5.2 S1Fmt, 5.3: L1CD at S1ContextPtr + 8 * (SubstreamID >> 6 or >> 10), the CD at
// L2Ptr + 64 * SubstreamID[5:0] or [9:0]; 5.3.1 an L1CD with V = 0 is C_BAD_SUBSTREAMID.
TEST(SmmuV3TwoLevel, CdTableLocatesTheCd) {
  for (uint8_t fmt : {uint8_t(1), uint8_t(2)}) {
    CdRig c(fmt);
    const uint32_t far = (3u << c.leaf) + 7; // L1 index 3
    put_l1cd(c.r, kCd, 0, true, kLeaf);
    put_l1cd(c.r, kCd, 3, true, kLeaf + 0x10000);
    c.cd(kLeaf, 0, 1);
    c.cd(kLeaf, 5, 5, true);
    c.cd(kLeaf + 0x10000, far, 9, true);
    put_l1cd(c.r, kCd, 2, false, kLeaf + 0x20000); // V = 0, a valid-looking L2Ptr
    c.cd(kLeaf + 0x20000, 2u << c.leaf, 9, true);
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, std::nullopt), (std::set<std::string>{kPa})) << int(fmt);
    EXPECT_EQ(seen(c.r.m, 0, 5u), (std::set<std::string>{kPa2})) << int(fmt);
    EXPECT_EQ(seen(c.r.m, 0, far), (std::set<std::string>{kPa2})) << int(fmt);
    EXPECT_EQ(seen(c.r.m, 0, 1u << c.leaf), (std::set<std::string>{"C_BAD_SUBSTREAMID"}));
    const auto a = dma_of(c.r.m, 0, 2u << c.leaf, 0x10000);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].clause, std::string_view("SMMUV3.CD.l1_valid"));
    EXPECT_EQ(record_of(a[0]).ssid, 2u << c.leaf);
    // CD 0 of a transaction without SubstreamID (S1DSS = 0b10) behind an invalid L1CD: the
    // text names no event for it (5.3.1 speaks of transactions with SubstreamID).
    put_l1cd(c.r, kCd, 0, false, kLeaf);
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, std::nullopt),
              (std::set<std::string>{"C_BAD_SUBSTREAMID", "C_BAD_CD"}));
  }
}

// IHI 0070 3.21.3: "A CD is reachable if it is ... within the 2nd-level table indicated by a
// valid L1CD": behind an invalid L1CD no CD can be cached, whatever its L2Ptr points at.
TEST(SmmuV3TwoLevel, NoCdIsCachedBehindAnInvalidL1cd) {
  CdRig c(1);
  put_l1cd(c.r, kCd, 1, false, kLeaf); // V = 0, pointing at a valid CD 70
  c.cd(kLeaf, 70, 1);
  c.r.configure();
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{"C_BAD_SUBSTREAMID"}));
  put_l1cd(c.r, kCd, 1, true, kLeaf + 0x10000);
  c.cd(kLeaf + 0x10000, 70, 2, true);
  c.r.flush();
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{kPa2, "C_BAD_SUBSTREAMID"}));
}

// IHI 0070 7.3.10, 3.21.3: an L1CD fetch that aborts is F_CD_FETCH with its address.
TEST(SmmuV3TwoLevel, L1cdFetchAbortIsCdFetch) {
  CdRig c(1);
  Ste e = c.r.make_ste(0, StreamConfig::s1_trans, 5, 8, 2);
  e.s1_fmt = 1;
  e.s1_context_ptr = 0x30000000; // no memory there
  c.r.put8(Layout{}.strtab, encode(e));
  c.r.configure();
  const auto a = dma_of(c.r.m, 0, 70u, 0x10000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].clause, std::string_view("SMMUV3.CD.l1_fetch"));
  EXPECT_EQ(record_of(a[0]).type, EventType::f_cd_fetch);
  EXPECT_EQ(record_of(a[0]).addr2, 0x30000008u);
}

// IHI 0070 5.2 S1Fmt: 0b11 behaves as 0b00 (linear); S1Fmt is IGNORED with S1CDMax = 0;
// without IDR0.CD2L, 0b01/0b10 with substreams make the STE ILLEGAL.
TEST(SmmuV3TwoLevel, S1FmtReservedIgnoredAndIllegal) {
  Features no_cd2l;
  no_cd2l.cd2l = false;
  for (const Features& f : {Features{}, no_cd2l}) {
    CdRig c(3, f);
    c.r.cd(0, 5, true, 5); // linear slot 5 of the CD table at kCd
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, 5u), (std::set<std::string>{kPa}));
    c.ste(1, 0); // S1CDMax = 0: one CD at S1ContextPtr
    c.r.cd(0, 1);
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, std::nullopt), (std::set<std::string>{kPa}));
    c.ste(1, 6);
    put_l1cd(c.r, kCd, 0, true, kLeaf);
    c.cd(kLeaf, 5, 7, true); // a new ASID: the TLB entries of ASID 5 may survive
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, 5u),
              (std::set<std::string>{f.cd2l ? kPa2 : std::string("C_BAD_STE")}));
  }
}

// IHI 0070 5.2 S1CDMax: above IDR1.SSIDSIZE it is ILLEGAL; without SSIDSIZE it is IGNORED.
TEST(SmmuV3TwoLevel, S1CdMaxIsBoundedBySsidSize) {
  Features small;
  small.ssid_bits = 4;
  Features none;
  none.ssid_bits = 0;
  struct Case {
    Features f;
    uint8_t cd_max;
    std::optional<uint32_t> ssid;
    std::string want;
  };
  for (const Case& k : std::initializer_list<Case>{
           {small, 5, 1u, "C_BAD_STE"},
           {small, 4, 1u, kPa},
           {Features{}, 21, 1u, "C_BAD_STE"},
           {Features{}, 20, 1u, kPa},
           {none, 5, std::nullopt, kPa}, // S1CDMax IGNORED: one CD, S1DSS not consulted
           {none, 5, 1u, "C_BAD_SUBSTREAMID"},
       }) {
    CdRig c(0, k.f);
    c.ste(0, k.cd_max);
    c.r.cd(0, 1, true, 0);
    c.r.cd(0, 1, true, 1);
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, k.ssid), (std::set<std::string>{k.want}))
        << k.f.ssid_bits << " " << int(k.cd_max);
  }
}

// IHI 0070 5.2 S1Fmt (note), 7.3.13, 3.4.3: nested, the L1CD address and L1CD.L2Ptr are IPAs;
// a stage-2 fault on either fetch has S2 = 1, CLASS = CD and the structure's IPA.
TEST(SmmuV3TwoLevel, NestedCdTableThroughStage2) {
  CdRig c(1, Features{}, /*nested=*/true);
  Rig& r = c.r;
  const Perms rw2{true, true, false, true};
  ASSERT_TRUE(r.s2.map(kIpaTables, kIpaPhys, 0x200000, rw2));
  ASSERT_TRUE(r.s2.map(0x80000000, kData, 0x1000, rw2));
  ASSERT_TRUE(r.s1.map(0x10000, 0x80000000, 0x1000, kRw));
  ASSERT_TRUE(r.s2.map(kCd, kCd, 0x1000, rw2));
  ASSERT_TRUE(r.s2.map(kLeaf, kLeaf, 0x1000, rw2)); // leaf 0; leaf 1 (kLeaf + 0x10000) unmapped
  c.ste(1, 8, StreamConfig::nested);
  put_l1cd(r, kCd, 0, true, kLeaf);
  put_l1cd(r, kCd, 1, true, kLeaf + 0x10000);
  c.cd(kLeaf, 0, 1);
  c.cd(kLeaf + 0x10000, 67, 1);
  r.configure();
  EXPECT_EQ(seen(r.m, 0, std::nullopt), (std::set<std::string>{kPa}));
  auto a = dma_of(r.m, 0, 67u, 0x10000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].clause, std::string_view("SMMUV3.CD.l1_ipa_fetch"));
  EventRecord e = record_of(a[0]);
  EXPECT_EQ(e.type, EventType::f_translation);
  EXPECT_TRUE(e.s2);
  EXPECT_EQ(e.event_class, 0u);        // CD
  EXPECT_EQ(e.addr2, kLeaf + 0x10000); // DW3 IPA[51:12] of the CD's IPA
  EXPECT_EQ(a[0].outcome.mask[3] & 0xfff, 0u);
  // The L1 table itself at an IPA stage 2 does not map.
  Ste st = r.make_ste(0, StreamConfig::nested, 5, 8, 2);
  st.s1_fmt = 1;
  st.s1_context_ptr = 0x50000000;
  r.put8(Layout{}.strtab, encode(st));
  r.configure();
  a = dma_of(r.m, 0, 67u, 0x10000);
  ASSERT_EQ(a.size(), 1u);
  e = record_of(a[0]);
  EXPECT_EQ(e.type, EventType::f_translation);
  EXPECT_EQ(e.event_class, 0u);
  EXPECT_EQ(e.addr2 & ~uint64_t(0xfff), 0x50000000u);
}

// IHI 0070 3.4.3 (3): a CD address from L1CD.L2Ptr beyond the OAS (stage 1 only) is
// C_BAD_SUBSTREAMID, or in SMMUv3.0 F_CD_FETCH or a read at the truncated address; within
// the OAS it is an ordinary fetch (F_CD_FETCH where nothing answers). 5.2 S1Fmt 0b10:
// "L1CD.L2Ptr[15:12] are RES0": set anyway, used or not.
TEST(SmmuV3TwoLevel, L1cdL2PtrRangeAndRes0Bits) {
  for (unsigned oas : {0u, 48u}) {
    Features f;
    f.oas_bits = oas;
    CdRig c(1, f);
    put_l1cd(c.r, kCd, 0, true, kLeaf | (uint64_t(1) << 40));
    c.cd(kLeaf, 0, 1);
    c.r.configure();
    const std::set<std::string> want =
        oas ? std::set<std::string>{"F_CD_FETCH"}
            : std::set<std::string>{"F_CD_FETCH", "C_BAD_SUBSTREAMID", kPa};
    EXPECT_EQ(seen(c.r.m, 0, std::nullopt), want) << oas;
  }
  CdRig c(2);
  put_l1cd(c.r, kCd, 0, true, kLeaf + 0x1000);
  c.cd(kLeaf, 0, 1);
  c.r.configure();
  EXPECT_EQ(seen(c.r.m, 0, std::nullopt), (std::set<std::string>{kPa, "C_BAD_CD"}));
}

// IHI 0070 3.21.3, 4.3.3, 4.3.4, 5.3.1: after L1CD 1 is repointed at a new leaf, the cached
// L1CD may still lead to the old leaf in memory until CFGI_CD with Leaf = 0 (any SubstreamID
// of that L1 index), CFGI_CD_ALL or CFGI_STE of the stream has completed.
TEST(SmmuV3TwoLevel, RepointedL1cdNeedsCfgiCdLeaf0) {
  const std::set<std::string> both{kPa, kPa2}, fresh{kPa2};
  struct Case {
    std::vector<Command> cmds;
    std::set<std::string> want;
  };
  for (const Case& k : std::initializer_list<Case>{
           {{CmdCfgiCd{.ssid = 70, .sid = 0, .leaf = true}}, both},
           {{CmdCfgiCd{.ssid = 70, .sid = 0, .leaf = false}}, fresh},
           {{CmdCfgiCd{.ssid = 70, .sid = 0, .leaf = true},
             CmdCfgiCd{.ssid = 65, .sid = 0, .leaf = false}},
            fresh},
           {{CmdCfgiCd{.ssid = 70, .sid = 0, .leaf = true},
             CmdCfgiCd{.ssid = 5, .sid = 0, .leaf = false}},
            both},
           {{CmdCfgiCd{.ssid = 70, .sid = 1, .leaf = false}}, both},
           {{CmdCfgiCdAll{.sid = 0}}, fresh},
           {{CmdCfgiSte{.sid = 0, .leaf = true}}, fresh},
           {{CmdCfgiSteRange{.sid = 0, .range = 3}}, fresh},
       }) {
    CdRig c(1);
    put_l1cd(c.r, kCd, 1, true, kLeaf);
    c.cd(kLeaf, 70, 1);
    c.r.configure();
    EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{kPa}));
    c.cd(kLeaf + 0x10000, 70, 2, true);
    c.r.flush();
    put_l1cd(c.r, kCd, 1, true, kLeaf + 0x10000);
    c.r.flush();
    EXPECT_EQ(seen(c.r.m, 0, 70u), both);
    std::vector<Cmd2> w;
    for (const auto& cmd : k.cmds)
      w.push_back(encode(cmd));
    w.push_back(encode(CmdSync{}));
    ASSERT_EQ(c.r.m.submit(w).consumed, w.size());
    EXPECT_EQ(seen(c.r.m, 0, 70u), k.want) << k.cmds.size() << " " << int(opcode_of(k.cmds.back()));
  }
}

// IHI 0070 5.3.1: "Changing an inactive L1CD with V == 0 to an active V == 1 form ... requires
// an invalidation of the L1CD only".
TEST(SmmuV3TwoLevel, InvalidL1cdStaysCachedUntilCfgiCdLeaf0) {
  CdRig c(1);
  c.r.configure();
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{"C_BAD_SUBSTREAMID"}));
  put_l1cd(c.r, kCd, 1, true, kLeaf);
  c.cd(kLeaf, 70, 1);
  c.r.flush();
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{kPa, "C_BAD_SUBSTREAMID"}));
  c.r.cmds({CmdCfgiCd{.ssid = 70, .sid = 0, .leaf = true}, CmdSync{}});
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{kPa, "C_BAD_SUBSTREAMID"}));
  c.r.cmds({CmdCfgiCd{.ssid = 127, .sid = 0, .leaf = false}, CmdSync{}});
  EXPECT_EQ(seen(c.r.m, 0, 70u), (std::set<std::string>{kPa}));
}

// ---- two-level properties ------------------------------------------------------------

// For any StreamID, a two-level stream table (every L1STD valid, full span) holding the same
// STEs as a linear one allows exactly the same outcomes.
RC_GTEST_PROP(SmmuV3TwoLevelProp, StreamTableMatchesLinear, ()) {
  const uint8_t split = *rc::gen::element<uint8_t>(6, 8, 10);
  Rig lin;
  Rig two = rig2(two_level(split));
  for (Rig* r : {&lin, &two}) {
    RC_ASSERT(r->s1.map(0x10000, kData, 0x1000, kRw));
    RC_ASSERT(r->s1.map(0x11000, kData + 0x5000, 0x1000, kRw));
  }
  for (uint32_t idx = 0; idx <= (255u >> split); ++idx)
    put_l1std(two, idx, uint8_t(split + 1), kL2 + idx * 0x10000);
  std::vector<uint32_t> sids;
  const int n = *rc::gen::inRange(1, 8);
  for (int i = 0; i < n; ++i) {
    const uint32_t sid = *rc::gen::inRange<uint32_t>(0, 256);
    const StreamConfig cfg = *rc::gen::element(StreamConfig::s1_trans, StreamConfig::bypass,
                                               StreamConfig::abort, StreamConfig::s1_trans);
    Ste e = lin.make_ste(sid, cfg, 0, uint8_t(*rc::gen::inRange(0, 3)), 2);
    e.v = *rc::gen::inRange(0, 5) != 0;
    const uint16_t asid = uint16_t(*rc::gen::inRange(1, 4));
    for (Rig* r : {&lin, &two}) {
      r->cd(sid, asid);
      r->cd(sid, asid, true, 1);
    }
    lin.put8(Layout{}.strtab + sid * 64, encode(e));
    put_ste2(two, kL2 + (sid >> split) * 0x10000, split, e, sid);
    sids.push_back(sid);
  }
  sids.push_back(*rc::gen::inRange<uint32_t>(0, 300));
  lin.configure();
  two.configure();
  for (uint32_t sid : sids)
    for (std::optional<uint32_t> ssid : {std::optional<uint32_t>{}, std::optional<uint32_t>{1}})
      for (uint64_t iova : {uint64_t(0x10000), uint64_t(0x11008), uint64_t(0x12000)})
        RC_ASSERT(outcomes_of(lin.m, sid, ssid, iova) == outcomes_of(two.m, sid, ssid, iova));
}

// For any SubstreamID, a two-level CD table (every L1CD of the table valid) holding the same
// CDs as a linear one allows exactly the same outcomes, S1DSS and S1CDMax bounds included.
RC_GTEST_PROP(SmmuV3TwoLevelProp, CdTableMatchesLinear, ()) {
  const uint8_t fmt = *rc::gen::element<uint8_t>(1, 2);
  const uint8_t cd_max = uint8_t(*rc::gen::inRange(1, 13));
  const uint8_t dss = uint8_t(*rc::gen::inRange(0, 3));
  CdRig lin(0), two(fmt);
  for (CdRig* c : {&lin, &two}) {
    Ste e = c->r.make_ste(0, StreamConfig::s1_trans, 5, cd_max, dss);
    e.s1_fmt = c == &two ? fmt : 0;
    c->r.put8(Layout{}.strtab, encode(e));
  }
  const uint32_t leaves = std::max(1u, (1u << cd_max) >> two.leaf);
  for (uint32_t i = 0; i < leaves; ++i)
    put_l1cd(two.r, kCd, i, true, kLeaf + i * 0x10000);
  std::vector<std::optional<uint32_t>> ssids{std::nullopt};
  const int n = *rc::gen::inRange(1, 6);
  for (int i = 0; i < n; ++i) {
    const uint32_t ssid = *rc::gen::inRange<uint32_t>(0, 1u << cd_max);
    const uint16_t asid = uint16_t(*rc::gen::inRange(1, 4));
    const bool second = *rc::gen::arbitrary<bool>();
    const bool valid = *rc::gen::inRange(0, 5) != 0;
    const Cd cd = lin.r.make_cd(asid, valid, second ? lin.t2.root() : 0);
    lin.r.put8(kCd + uint64_t(ssid) * 64, encode(cd));
    two.r.put8(kLeaf + uint64_t(ssid >> two.leaf) * 0x10000 +
                   uint64_t(ssid & ((1u << two.leaf) - 1)) * 64,
               encode(cd));
    ssids.push_back(ssid);
  }
  ssids.push_back(*rc::gen::inRange<uint32_t>(0, 2u << cd_max));
  lin.r.configure();
  two.r.configure();
  for (const auto& ssid : ssids)
    RC_ASSERT(outcomes_of(lin.r.m, 0, ssid, 0x10000) == outcomes_of(two.r.m, 0, ssid, 0x10000));
}

// Random histories over two-level tables: the L1STD of StreamID 1 repointed between two
// level-2 tables (or made invalid), its L1CD 1 between two leaves (or made invalid), CDs
// rewritten, and random CFGI commands with or without CMD_SYNC. A completed invalidation never
// adds an outcome; CFGI_ALL + TLBI_NSNH_ALL + CMD_SYNC leaves the fresh outcome alone.
Command random_cfgi() {
  const bool leaf = *rc::gen::arbitrary<bool>();
  switch (*rc::gen::inRange(0, 6)) {
  case 0:
    return CmdCfgiSte{.sid = *rc::gen::element(1u, 2u, 64u), .leaf = leaf};
  case 1:
    return CmdCfgiSteRange{.sid = *rc::gen::element(0u, 64u),
                           .range = uint8_t(*rc::gen::inRange(0, 7))};
  case 2:
    return CmdCfgiCd{
        .ssid = *rc::gen::element(70u, 65u, 5u), .sid = *rc::gen::element(1u, 2u), .leaf = leaf};
  case 3:
    return CmdCfgiCdAll{.sid = *rc::gen::element(1u, 2u)};
  case 4:
    return cfgi_all();
  default:
    return CmdTlbiNhAll{.vmid = 5};
  }
}

RC_GTEST_PROP(SmmuV3TwoLevelProp, CompletedCfgiNeverAddsOutcomes, ()) {
  Rig r = rig2();
  PageTableBuilder t2 =
      PageTableBuilder::stage1(r.shadow, Rig::pool(kS1Pool + 0x300000), Granule::g4k, 48);
  RC_ASSERT(r.s1.map(0x10000, kData, 0x1000, kRw));
  RC_ASSERT(t2.map(0x10000, kData + 0x1000, 0x1000, kRw));
  const std::vector<uint64_t> tables{kL2, kL2 + 0x8000}, leaves{kLeaf, kLeaf + 0x10000};
  for (uint64_t t : tables) {
    Ste e = r.make_ste(1, StreamConfig::s1_trans, 5, 8, 2);
    e.s1_fmt = 1;
    if (t != kL2) e.config = StreamConfig::bypass;
    put_ste2(r, t, 6, e, 1);
  }
  put_l1std(r, 0, 7, kL2);
  put_l1cd(r, kCd + 0x1000, 1, true, kLeaf);
  r.put8(kLeaf + 6 * 64, encode(r.make_cd(1)));
  r.put8(kLeaf + 0x10000 + 6 * 64, encode(r.make_cd(2, true, t2.root())));
  r.configure();
  const int n = *rc::gen::inRange(1, 10);
  for (int i = 0; i < n; ++i) {
    switch (*rc::gen::inRange(0, 4)) {
    case 0:
      put_l1std(r, 0, *rc::gen::element<uint8_t>(7, 0, 1), *rc::gen::elementOf(tables));
      r.flush();
      break;
    case 1:
      put_l1cd(r, kCd + 0x1000, 1, *rc::gen::inRange(0, 3) != 0, *rc::gen::elementOf(leaves));
      r.flush();
      break;
    case 2:
      r.put8(*rc::gen::elementOf(leaves) + 6 * 64,
             encode(r.make_cd(uint16_t(*rc::gen::inRange(1, 3)), *rc::gen::arbitrary<bool>(),
                              *rc::gen::arbitrary<bool>() ? t2.root() : 0)));
      r.flush();
      break;
    default:
      if (*rc::gen::arbitrary<bool>())
        r.cmds({random_cfgi(), CmdSync{}});
      else
        r.cmds({random_cfgi()});
    }
  }
  const std::optional<uint32_t> ssid =
      *rc::gen::element(std::optional<uint32_t>{70u}, std::optional<uint32_t>{});
  const auto before = outcomes_of(r.m, 1, ssid, 0x10000);
  r.cmds({random_cfgi(), CmdSync{}});
  for (const auto& o : outcomes_of(r.m, 1, ssid, 0x10000))
    RC_ASSERT(before.count(o) == 1u);
  r.cmds({cfgi_all(), CmdTlbiNsnhAll{}, CmdSync{}});
  RC_ASSERT(r.m.stale_epochs() == 0u);
  // Exactly what a machine that never saw the history allows for the same memory.
  Machine fresh(two_level());
  RC_ASSERT(fresh.write(hw::writes_between(fresh.memory(), r.m.memory())));
  std::vector<Cmd2> all{encode(cfgi_all()), encode(CmdTlbiNsnhAll{}), encode(CmdSync{})};
  fresh.submit(all);
  RC_ASSERT(outcomes_of(r.m, 1, ssid, 0x10000) == outcomes_of(fresh, 1, ssid, 0x10000));
}

} // namespace
} // namespace iommuspec::smmuv3

namespace iommuspec::smmuv3 {
namespace {

// An image in which no stream translates (no STE with V = 1) can have left only
// configuration entries behind, so a CFGI_ALL + CMD_SYNC retires it; an image with a
// translating stream also needs its TLB entries invalidated (machine.cpp prune).
TEST(SmmuV3Machine, PruneRetiresImagesThatCouldOnlyCacheConfiguration) {
  Rig r = s1_rig(); // the all-zero first image, then CFGI_ALL + CMD_SYNC
  EXPECT_EQ(r.m.stale_epochs(), 0u);
  remap(r, 0x10000, kData + 0x100000);
  EXPECT_EQ(r.m.stale_epochs(), 1u);
  r.cmds({cfgi_all(), CmdSync{}});
  EXPECT_EQ(r.m.stale_epochs(), 1u); // its TLB entries may survive a configuration invalidation
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData, kData + 0x100000}));
  r.cmds({CmdTlbiNsnhAll{}, CmdSync{}});
  EXPECT_EQ(r.m.stale_epochs(), 0u);
  EXPECT_EQ(r.pas(0x10000), (std::set<uint64_t>{kData + 0x100000}));
}

} // namespace
} // namespace iommuspec::smmuv3
