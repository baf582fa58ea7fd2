// The qemu-vtd target (conformance/targets/qemu_vtd.cpp) against the real qemu-system-x86_64:
// suite scenarios pass, a known QEMU deviation shows as a failing step, a requester the
// machine cannot hold is unsupported, and a QEMU that dies mid-scenario is an error with its
// log while the next scenario runs on a fresh QEMU. Label qemu: they need qemu-system-x86.
#include "qemu/killing_target.h"
#include "runner/runner.h"
#include "targets/qemu_target.h"

#include <gtest/gtest.h>

namespace {

using namespace iommuspec;
using namespace iommuspec::conformance;

constexpr auto kProfile = iommufd::Profile::linux_latest;

scenario::Scenario suite_scenario(const std::string& id) {
  std::vector<scenario::Diagnostic> d;
  auto sc = scenario::parse_file(std::string(IOMMUSPEC_SUITES_DIR) + "/vtd/" + id + ".scn", d);
  EXPECT_TRUE(d.empty()) << (d.empty() ? "" : d.front().text());
  return sc;
}

scenario::Scenario text_scenario(std::string_view text) {
  std::vector<scenario::Diagnostic> d;
  auto sc = scenario::parse(text, "t.scn", d);
  EXPECT_TRUE(d.empty()) << (d.empty() ? "" : d.front().text());
  return sc;
}

std::string steps_of(const results::ScenarioResult& r) {
  std::string s = r.verdict + ": " + r.message + "\n";
  for (const auto& st : r.steps)
    s += st.op + " -> " + st.verdict + " (observed " + st.observed + ")\n";
  return s;
}

TEST(QemuVtdTarget, InfoReportsWhatTheRegistersSay) {
  const auto t = make_qemu_vtd_target();
  const auto i = t->info();
  EXPECT_EQ(i.name, "qemu-vtd");
  for (const char* f : {"vtd", "legacy", "scalable", "second_stage", "pass_through", "superpage"})
    EXPECT_TRUE(i.features.count(f)) << f;
  // QEMU 7.2: no first stage, nesting, device TLB, 5-level or PASID without extra options; edu
  // issues no request with PASID and none with execute.
  for (const char* f : {"first_stage", "nested", "dev_tlb", "five_level", "pasid", "viommu",
                        "dma_ssid", "dma_exec"})
    EXPECT_FALSE(i.features.count(f)) << f;
  EXPECT_NE(i.fingerprint.at("qemu").find("QEMU emulator version"), std::string::npos);
  // aw-bits=48: MGAW 47, SAGAW 3- and 4-level (CAP bits 21:16 and 12:8).
  EXPECT_NE(i.fingerprint.at("legacy").find("CAP 0x"), std::string::npos);
}

// Suite scenarios covering translation, pass-through, fault recording and overflow, FPD,
// IOTLB invalidation by page and DID, and scalable mode.
TEST(QemuVtdTarget, SuiteScenariosPass) {
  auto t = make_qemu_vtd_target();
  for (const char* id :
       {"legacy-ss-translate", "legacy-pass-through", "legacy-ss-not-present", "frcd-overflow",
        "frcd-read-clears", "legacy-fpd-abort", "iotlb-page-did", "cc-device-sid",
        "legacy-ss-2m-superpage", "sm-ss-translate", "sm-pt-translate", "sm-ss-iotlb-not-piotlb"}) {
    const auto r = run_scenario(suite_scenario(id), *t, kProfile);
    EXPECT_EQ(r.verdict, "pass") << id << "\n" << steps_of(r);
  }
}

// QEMU 7.2 checks R/W only when it walks: a write hitting an IOTLB entry filled by a read of a
// read-only page is refused by the memory core without a fault record. The target must show
// that (abort), not the translation it traced.
TEST(QemuVtdTarget, PermissionOnAnIotlbHitIsAFailingStep) {
  auto t = make_qemu_vtd_target();
  const auto r = run_scenario(suite_scenario("legacy-ss-no-write"), *t, kProfile);
  EXPECT_EQ(r.verdict, "fail") << steps_of(r);
  ASSERT_EQ(r.steps.size(), 5u);
  EXPECT_EQ(r.steps[3].verdict, "pass");
  EXPECT_EQ(r.steps[4].verdict, "fail");
  EXPECT_EQ(r.steps[4].observed, "abort");
}

// The queue: an invalid descriptor stops it with IQE at that descriptor (legacy mode, the
// batch before it consumed).
TEST(QemuVtdTarget, InvalidDescriptorStopsTheQueue) {
  auto t = make_qemu_vtd_target();
  const auto r = run_scenario(text_scenario(R"(vtd iqe
clauses = VTD.IQ.consume
features = vtd legacy second_stage
mode = legacy
1: invq descs=[{op=cc g=global}, {op=wait}, {op=raw w0=0xf w1=0}, {op=wait}] -> IQE consumed=2
2: invq descs=[{op=wait}] -> IQE consumed=0
)"),
                              *t, kProfile);
  EXPECT_EQ(r.verdict, "pass") << steps_of(r);
}

TEST(QemuVtdTarget, RequesterTheMachineCannotHoldIsUnsupported) {
  auto t = make_qemu_vtd_target();
  for (const auto& [sid, why] : std::vector<std::pair<std::string, std::string>>{
           {"0x00f8", "ICH9"}, {"0x0000", "host bridge"}, {"0x0108", "bus 1"}}) {
    const auto r = run_scenario(text_scenario(R"(vtd placed
clauses = VTD.CONTEXT.legacy_not_present
features = vtd legacy second_stage
mode = legacy
1: dma sid=)" + sid + R"( iova=0x10000 -> ROOT_NOT_PRESENT sid=)" +
                                              sid + R"( addr=0x10000
)"),
                                *t, kProfile);
    EXPECT_EQ(r.verdict, "unsupported") << sid << "\n" << steps_of(r);
    EXPECT_NE(r.message.find(why), std::string::npos) << r.message;
    EXPECT_NE(r.message.find(sid), std::string::npos) << r.message;
  }
  // The target still runs scenarios afterwards.
  const auto ok = run_scenario(suite_scenario("legacy-ss-translate"), *t, kProfile);
  EXPECT_EQ(ok.verdict, "pass") << steps_of(ok);
}

TEST(QemuVtdTarget, QemuDyingMidScenarioIsAnErrorAndTheNextScenarioPasses) {
  const std::vector<scenario::Scenario> scs = {suite_scenario("legacy-ss-translate"),
                                               suite_scenario("legacy-ss-translate")};
  int made = 0;
  int killed = 0;
  const auto run = run_all(
      scs,
      [&]() -> std::unique_ptr<Target> {
        return std::make_unique<qemu_test::KillingTarget>(make_qemu_vtd_target(), made++ == 0,
                                                          &killed);
      },
      RunOptions{});
  ASSERT_EQ(run.scenarios.size(), 2u);
  EXPECT_EQ(killed, 1); // its one QEMU
  const auto& dead = run.scenarios[0];
  EXPECT_EQ(dead.verdict, "error") << steps_of(dead);
  EXPECT_NE(dead.message.find("died"), std::string::npos) << dead.message;
  EXPECT_NE(dead.message.find("killed"), std::string::npos) << dead.message;
  EXPECT_FALSE(dead.log.empty());
  EXPECT_EQ(run.scenarios[1].verdict, "pass") << steps_of(run.scenarios[1]);
  EXPECT_EQ(made, 2); // the dead target was replaced
  EXPECT_TRUE(qemu_test::qemu_children().size() <= 1u);
}

} // namespace
