// `iommuspec fuzz` against the QEMU targets (label qemu): Debian's QEMU 7.2 deviates from
// the architecture in ways the known findings list (conformance/findings/), so a short
// campaign must find failures, shrink each against QEMU to a small trace within the time
// the issue names (at most 12 steps, under 60 s), and save a scenario that still fails on
// QEMU with the same signature and passes on the model.
#include "fuzz/fuzz.h"
#include "hw/compile.h"
#include "runner/runner.h"
#include "targets/qemu_target.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace iommuspec::conformance {
namespace {

void campaign(const std::string& name, const fuzz::TargetFactory& make, uint64_t runs) {
  fuzz::Options o;
  o.target_name = name;
  o.trace.features = make()->info().features; // and no idle QEMU kept for the campaign
  o.trace.area = name == "qemu-vtd" ? "vtd" : "smmuv3";
  o.seed = 1;
  o.runs = runs;
  o.coverage_depth = 0;
  o.out_dir = (std::filesystem::temp_directory_path() /
               ("iommuspec-qemu-fuzz-" + name + "-" + std::to_string(::getpid())))
                  .string();
  const auto rep = fuzz::fuzz(o, make);
  EXPECT_EQ(rep.error, 0u);
  ASSERT_FALSE(rep.failures.empty()) << name << ": QEMU 7.2's known deviations not found";
  for (const auto& f : rep.failures) {
    SCOPED_TRACE(f.file + ": " + f.signature);
    EXPECT_TRUE(f.shrink_complete);
    EXPECT_LE(f.shrunk_steps, 12u);
    EXPECT_LT(f.shrink_seconds, 60.0);
    std::vector<scenario::Diagnostic> diags;
    const auto saved = scenario::parse_file(f.file, diags);
    ASSERT_TRUE(diags.empty());
    hwc::lint(saved, diags);
    EXPECT_TRUE(diags.empty()) << (diags.empty() ? "" : diags.front().text());
    auto qemu = make();
    const auto on_qemu = run_scenario(saved, *qemu, iommufd::Profile::linux_latest);
    EXPECT_EQ(on_qemu.verdict, "fail");
    EXPECT_EQ(fuzz::signature(on_qemu), f.signature);
    auto model = make_model_target(iommufd::Profile::linux_latest);
    EXPECT_EQ(run_scenario(saved, *model, iommufd::Profile::linux_latest).verdict, "pass");
  }
  std::filesystem::remove_all(o.out_dir);
}

TEST(QemuFuzz, SmmuFailuresAreShrunkAgainstQemuAndReplay) {
  campaign(
      "qemu-smmuv3", [] { return make_qemu_smmuv3_target(); }, 40);
}

TEST(QemuFuzz, VtdFailuresAreShrunkAgainstQemuAndReplay) {
  campaign(
      "qemu-vtd", [] { return make_qemu_vtd_target(); }, 30);
}

} // namespace
} // namespace iommuspec::conformance
