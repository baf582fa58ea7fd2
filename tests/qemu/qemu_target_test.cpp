// The qemu-smmuv3 target against Debian's qemu-system-aarch64 (label qemu): scenarios pass on
// it through the runner, StreamIDs 0-7 come back relabelled in event records, a requester it
// cannot place is unsupported, and a QEMU killed mid-scenario is an `error` with its log
// while the next scenario runs on a fresh QEMU.
#include "harness.h"
#include "qemu/killing_target.h"
#include "runner/runner.h"
#include "targets/qemu_target.h"

#include <gtest/gtest.h>
#include <string>

namespace iommuspec::conformance {
namespace {

using test::parse_ok;

results::ScenarioResult run(const scenario::Scenario& sc, Target& t) {
  return run_scenario(sc, t, iommufd::Profile::linux_latest);
}

// A stage-1 remap seen through TLBI + CMD_SYNC, and a fault record, on StreamID 1 (relabelled
// to requester ID 0x81 inside QEMU).
constexpr const char* kRemap = R"(smmuv3 remap
clauses = SMMUV3.TLBI.NH_VA SMMUV3.FAULT.translation
features = smmuv3 stage1
1: table T stage=1 granule=4k ia=48
2: map T iova=0x10000 pa=0x42000000 size=0x1000 perm=r|w
3: cd sid=1 ssid=0 tt=T asid=1
4: ste sid=1 config=s1
5: cmdq cmds=[{op=cfgi_ste sid=1 leaf=1}, {op=sync}] -> ok consumed=2
6: dma sid=1 iova=0x10010 -> ok pa=0x42000010
7: unmap T iova=0x10000 size=0x1000
8: map T iova=0x10000 pa=0x42100000 size=0x1000 perm=r|w
9: cmdq cmds=[{op=tlbi_nh_va asid=1 addr=0x10000 leaf=1}, {op=sync}] -> ok consumed=2
10: dma sid=1 iova=0x10000 write=1 -> ok pa=0x42100000
11: ste sid=9 config=bypass
12: cmdq cmds=[{op=cfgi_ste sid=9 leaf=1}, {op=sync}] -> ok consumed=2
13: dma sid=9 iova=0x42345678 -> ok pa=0x42345678
14: cmdq cmds=[{op=cfgi_ste sid=9 leaf=1}, {op=raw w0=0xff}, {op=sync}] -> CERROR_ILL consumed=1
15: resume -> ok consumed=2
)";

// Records the C_BAD_STE of an invalid STE: the StreamID in the record must be the scenario's.
constexpr const char* kBadSte = R"(smmuv3 bad-ste
clauses = SMMUV3.STE.valid
features = smmuv3
1: ste sid=2 config=bypass v=0
2: cmdq cmds=[{op=cfgi_ste sid=2 leaf=1}, {op=sync}] -> ok consumed=2
3: dma sid=2 iova=0x42000000 -> C_BAD_STE sid=2
)";

TEST(QemuSmmuTarget, ScenariosPassAndStreamIdsComeBackAsTheScenarioNamesThem) {
  auto t = make_qemu_smmuv3_target();
  const auto info = t->info();
  EXPECT_EQ(info.name, "qemu-smmuv3");
  EXPECT_TRUE(info.features.count("stage1"));
  EXPECT_FALSE(info.fingerprint.at("IDR0").empty());
  for (const char* text : {kRemap, kBadSte}) {
    const auto r = run(parse_ok(text), *t);
    EXPECT_EQ(r.verdict, "pass") << r.id << ": " << r.message;
  }
}

TEST(QemuSmmuTarget, ARequesterOffBusZeroIsUnsupported) {
  auto t = make_qemu_smmuv3_target();
  const auto r = run(parse_ok(R"(smmuv3 far
clauses = SMMUV3.STE.sid_range
features = smmuv3
1: dma sid=256 iova=0x1000
)"),
                     *t);
  EXPECT_EQ(r.verdict, "unsupported");
  EXPECT_NE(r.message.find("0x100"), std::string::npos) << r.message;
}

TEST(QemuSmmuTarget, AQemuThatDiesIsAnErrorWithItsLogAndTheNextScenarioRuns) {
  int killed = 0;
  qemu_test::KillingTarget k(make_qemu_smmuv3_target(), true, &killed);
  const auto dead = run(parse_ok(kRemap), k);
  EXPECT_EQ(killed, 1);
  EXPECT_EQ(dead.verdict, "error") << dead.message;
  EXPECT_FALSE(dead.log.empty());
  const auto next = run(parse_ok(kBadSte), k);
  EXPECT_EQ(next.verdict, "pass") << next.message;
}

} // namespace
} // namespace iommuspec::conformance
