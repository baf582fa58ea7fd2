// The SMMUv3 vIOMMU layer (viommu.h): which guest commands are accepted, how VMID and SID are
// enforced, and what entry_num and the promised host commands are on a refusal.
#include "smmuv3/viommu.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::smmuv3 {
namespace {

VSmmu vsmmu() {
  VSmmu v;
  v.vmid = 5;
  v.vdevices[0x20] = 3;
  return v;
}

TEST(SmmuV3Viommu, NsnhAllBecomesNhAllOfTheVmid) {
  const Cmd2 g = encode(Command{CmdTlbiNsnhAll{}});
  const auto r = convert_user_cmds(vsmmu(), std::vector<Cmd2>{{g[0] | 0xabcdull << 32, 7}});
  ASSERT_EQ(r.error, Errno::ok);
  ASSERT_EQ(r.host.size(), 2u);
  EXPECT_EQ(decode_command(r.host[0]), Command{CmdTlbiNhAll{.vmid = 5}});
  EXPECT_EQ(r.host[1][1], 0u) << "dword 1 dropped";
  EXPECT_TRUE(std::holds_alternative<CmdSync>(decode_command(r.host.back())));
}

TEST(SmmuV3Viommu, NhVaKeepsEverythingButTheVmid) {
  const CmdTlbiNhVa va{.num = 3,
                       .scale = 1,
                       .vmid = 77,
                       .asid = 9,
                       .leaf = true,
                       .ttl = 3,
                       .tg = 1,
                       .addr = 0x12345000};
  const auto r = convert_user_cmds(vsmmu(), std::vector<Cmd2>{encode(Command{va})});
  ASSERT_EQ(r.handled, 1u);
  CmdTlbiNhVa want = va;
  want.vmid = 5;
  EXPECT_EQ(decode_command(r.host[0]), Command{want});
}

TEST(SmmuV3Viommu, CfgiCdVirtualSidBecomesPhysical) {
  const auto r = convert_user_cmds(
      vsmmu(), std::vector<Cmd2>{encode(Command{CmdCfgiCd{.ssid = 4, .sid = 0x20, .leaf = true}})});
  ASSERT_EQ(r.error, Errno::ok);
  const Command want = CmdCfgiCd{.ssid = 4, .sid = 3, .leaf = true};
  EXPECT_EQ(decode_command(r.host[0]), want);
}

TEST(SmmuV3Viommu, RefusalAtKHandlesTheEntriesBeforeIt) {
  const std::vector<Cmd2> g = {encode(Command{CmdTlbiNhAsid{.asid = 1}}),
                               encode(Command{CmdCfgiCdAll{.sid = 0x21}}), // no such vDEVICE
                               encode(Command{CmdTlbiNhAll{}})};
  const auto r = convert_user_cmds(vsmmu(), g);
  EXPECT_EQ(r.error, Errno::eio);
  EXPECT_EQ(r.handled, 1u);
  EXPECT_EQ(r.clause, "SMMUV3.VIOMMU.unknown_vsid");
  ASSERT_EQ(r.host.size(), 2u); // entry 0, then CMD_SYNC: it took effect
  const Command want = CmdTlbiNhAsid{.vmid = 5, .asid = 1};
  EXPECT_EQ(decode_command(r.host[0]), want);
}

TEST(SmmuV3Viommu, HostOnlyCommandsAreRefused) {
  for (const Command& c : {Command{CmdSync{}}, Command{CmdCfgiSte{.sid = 3}}, Command{cfgi_all()},
                           Command{CmdTlbiS2Ipa{.vmid = 5}}, Command{CmdTlbiS12Vmall{.vmid = 5}},
                           Command{CmdTlbiEl2All{}}, Command{CmdPrefetchConfig{.sid = 3}}}) {
    const auto r = convert_user_cmds(vsmmu(), std::vector<Cmd2>{encode(c)});
    EXPECT_EQ(r.error, Errno::eio);
    EXPECT_EQ(r.handled, 0u);
    EXPECT_TRUE(r.host.empty()) << "nothing is issued for a refused first entry";
    EXPECT_EQ(r.clause, "SMMUV3.VIOMMU.opcodes");
  }
}

TEST(SmmuV3Viommu, StageOneEventsOfAVdeviceCarryTheVirtualSid) {
  EventRecord e;
  e.type = EventType::f_translation;
  e.sid = 3;
  e.input_addr = 0x20000;
  const auto v = to_vevent(vsmmu(), encode(e));
  ASSERT_TRUE(v);
  EventRecord want = e;
  want.sid = 0x20;
  EXPECT_EQ(decode_event(*v), want);

  e.s2 = true; // stage 2: the host's
  EXPECT_FALSE(to_vevent(vsmmu(), encode(e)));
  e.s2 = false;
  e.sid = 4; // no vDEVICE
  EXPECT_FALSE(to_vevent(vsmmu(), encode(e)));
  e.sid = 3;
  e.type = EventType::f_walk_eabt; // not a forwarded type
  EXPECT_FALSE(to_vevent(vsmmu(), encode(e)));
}

// entry_num is the index of the first refused entry (or the count), and exactly the handled
// entries, then one CMD_SYNC, are promised.
RC_GTEST_PROP(SmmuV3ViommuProp, EntryNumIsTheFirstRefusal, ()) {
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 6));
  std::vector<Cmd2> g;
  size_t first_bad = ops.size();
  for (size_t i = 0; i < ops.size(); ++i) {
    switch (ops[i]) {
    case 0:
      g.push_back(encode(Command{CmdTlbiNhAll{}}));
      break;
    case 1:
      g.push_back(encode(Command{CmdTlbiNhVa{.asid = 1, .addr = 0x1000}}));
      break;
    case 2:
      g.push_back(encode(Command{CmdCfgiCd{.sid = 0x20}}));
      break;
    case 3:
      g.push_back(encode(Command{CmdCfgiCd{.sid = 0x99}}));
      break; // unknown vSID
    case 4:
      g.push_back(encode(Command{CmdSync{}}));
      break; // host only
    default:
      g.push_back(encode(Command{CmdTlbiNsnhAll{}}));
      break;
    }
    if ((ops[i] == 3 || ops[i] == 4) && first_bad == ops.size()) first_bad = i;
  }
  const auto r = convert_user_cmds(vsmmu(), g);
  RC_ASSERT(r.handled == first_bad);
  RC_ASSERT((r.error == Errno::eio) == (first_bad < ops.size()));
  RC_ASSERT(r.host.size() == first_bad + (first_bad > 0 ? 1 : 0));
  for (size_t i = 0; i < first_bad; ++i) {
    const Command c = decode_command(r.host[i]);
    if (const auto* t = std::get_if<CmdTlbiNhAll>(&c)) RC_ASSERT(t->vmid == 5);
    if (const auto* t = std::get_if<CmdTlbiNhVa>(&c)) RC_ASSERT(t->vmid == 5);
    if (const auto* t = std::get_if<CmdCfgiCd>(&c)) RC_ASSERT(t->sid == 3u);
  }
}

} // namespace
} // namespace iommuspec::smmuv3
