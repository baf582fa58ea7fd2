// Tests of the SMMUv3 machine (machine.h): what a device access may observe before and
// after each invalidation, the command queue's stop-at-error rule and the event queue.
// Plus RapidCheck properties: the fresh walk is always allowed; a completed invalidation
// never adds an outcome; after invalidating everything the allowed set is the fresh walk.
#include "smmuv3/machine.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>
#include <string>

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
    put8(Layout{}.strtab + sid * 64, encode(e));
  }
  void cd(uint32_t sid, uint16_t asid, bool valid = true, uint32_t ssid = 0) {
    Cd c;
    c.v = valid;
    c.aa64 = c.r = c.epd1 = true;
    c.ips = 5;
    c.t0sz = 16;
    c.asid = asid;
    c.ttb0 = s1.root();
    put8(kCd + sid * 0x1000 + ssid * 64, encode(c));
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
  std::set<std::string> kinds(uint64_t iova, std::optional<uint32_t> ssid = std::nullopt) const {
    hw::DmaRequest r;
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
  // A stopped queue consumes nothing more.
  EXPECT_EQ(r.cmds({CmdSync{}}).consumed, 0u);
  // Resume: the replacing CMD_SYNC and the rest (one TLBI) are consumed.
  const auto res = r.m.resume();
  EXPECT_EQ(res.consumed, 2u);
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

} // namespace
} // namespace iommuspec::smmuv3
