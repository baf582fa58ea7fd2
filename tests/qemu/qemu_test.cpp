// The QEMU driver (conformance/qemu/) against the real binaries: qtest, the machines, PCI
// enumeration, edu DMA with the IOMMU off, and every failure turning into a TargetError.
// They need qemu-system-arm and qemu-system-x86 and fail without them (ctest label qemu).
#include "qemu/edu.h"
#include "qemu/machine.h"
#include "qemu/pci.h"
#include "qemu/qtest.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <gtest/gtest.h>
#include <random>

namespace {

using namespace iommuspec::qemu;
namespace fs = std::filesystem;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v)
    b = uint8_t(g());
  return v;
}

bool process_gone(pid_t pid) {
  return kill(pid, 0) != 0 && errno == ESRCH;
}

// Runs `f` and returns the TargetError it throws (a failure when it throws none).
template <class F>
TargetError target_error(F&& f) {
  try {
    f();
  } catch (const TargetError& e) {
    return e;
  }
  ADD_FAILURE() << "no TargetError";
  return TargetError("none");
}

// --- the machines -----------------------------------------------------------------------

TEST(QemuMachine, SmmuV3RegistersReadOnVirt) {
  const auto m = aarch64_virt_smmuv3();
  auto q = start(m);
  const uint32_t idr0 = q->readl(m.iommu_base);
  EXPECT_NE(idr0, 0u);
  // IDR0.TTF (bits 3:2) 0b10: AArch64 tables; IDR0.S1P (bit 1): stage 1 (IHI 0070 6.3.1).
  EXPECT_EQ((idr0 >> 2) & 3, 2u);
  EXPECT_TRUE(idr0 & 2);
  for (int i = 0; i < 6; ++i)
    RecordProperty("IDR" + std::to_string(i), std::to_string(q->readl(m.iommu_base + 4 * i)));
  // AIDR (0x1C): SMMUv3.x minor revision; 7.2 says 1 (SMMUv3.1).
  RecordProperty("AIDR", std::to_string(q->readl(m.iommu_base + 0x1c)));
}

TEST(QemuMachine, VtdRegistersReadOnQ35) {
  for (const bool scalable : {false, true}) {
    const auto m = x86_64_q35_intel_iommu(scalable);
    auto q = start(m);
    // VER_REG: major 1 minor 0 (VT-d 11.4.1); CAP and ECAP at 0x08 and 0x10.
    EXPECT_EQ(q->readl(m.iommu_base), 0x10u) << m.name;
    const uint64_t cap = q->readq(m.iommu_base + 0x08), ecap = q->readq(m.iommu_base + 0x10);
    EXPECT_NE(cap, 0u);
    // ECAP.SMTS (bit 43): scalable-mode translation, only with x-scalable-mode=on.
    EXPECT_EQ(bool(ecap >> 43 & 1), scalable) << m.name << " ECAP " << std::hex << ecap;
    RecordProperty(m.name + "-CAP", std::to_string(cap));
    RecordProperty(m.name + "-ECAP", std::to_string(ecap));
  }
}

TEST(QemuMachine, MissingBinaryNamesTheDebianPackage) {
  auto m = aarch64_virt_smmuv3();
  m.binary = "qemu-system-iommuspec-missing";
  const auto e = target_error([&] { start(m); });
  EXPECT_NE(std::string(e.what()).find("apt-get install -y qemu-system-arm"), std::string::npos)
      << e.what();
}

TEST(QemuMachine, FirmwareStubsAreBuilt) {
  for (const auto& m : {aarch64_virt_smmuv3(), x86_64_q35_intel_iommu(false)}) {
    const fs::path f = fs::path(firmware_dir(m.firmware)) / m.firmware;
    EXPECT_GT(fs::file_size(f), 0u) << f;
  }
  EXPECT_EQ(fs::file_size(fs::path(firmware_dir("x86_64-idle.bin")) / "x86_64-idle.bin"),
            64u * 1024);
}

// --- the qtest client ---------------------------------------------------------------------

TEST(Qtest, BulkReadWriteAndMemset) {
  const auto m = aarch64_virt_smmuv3();
  auto q = start(m);
  const auto bytes = random_bytes(8192, 1);
  q->write(m.scratch, bytes);
  EXPECT_EQ(q->read(m.scratch, bytes.size()), bytes);
  q->memset(m.scratch + 16, 32, 0xa5);
  const auto back = q->read(m.scratch, 64);
  EXPECT_EQ(back[15], bytes[15]);
  EXPECT_EQ(back[16], 0xa5);
  EXPECT_EQ(back[47], 0xa5);
  EXPECT_EQ(back[48], bytes[48]);
  q->writeq(m.scratch, 0x1122334455667788);
  EXPECT_EQ(q->readl(m.scratch), 0x55667788u);
  EXPECT_EQ(q->readw(m.scratch + 6), 0x1122u);
  EXPECT_EQ(q->readb(m.scratch + 1), 0x77u);
}

TEST(Qtest, BatchIsAnsweredInOrder) {
  const auto m = x86_64_q35_intel_iommu(false);
  auto q = start(m);
  const std::string a = std::to_string(m.scratch);
  const std::vector<std::string> lines = {"writel " + a + " 0x12345678", "readl " + a, "readw " + a,
                                          "endianness"};
  const auto replies = q->commands(lines);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0], "");
  EXPECT_EQ(parse_hex(replies[1]), 0x12345678u);
  EXPECT_EQ(parse_hex(replies[2]), 0x5678u);
  EXPECT_EQ(replies[3], "little");
}

TEST(Qtest, FailReplyIsATargetErrorAndTheClientStaysFailed) {
  auto q = start(aarch64_virt_smmuv3());
  for (int i = 0; i < 3; ++i)
    q->readl(0x0905'0000);
  const auto e = target_error([&] { q->command("no_such_command 1"); });
  EXPECT_NE(std::string(e.what()).find("FAIL"), std::string::npos) << e.what();
  // The commands that led there, repeats counted once.
  EXPECT_NE(e.log.find("readl 0x9050000 (x3)\nno_such_command 1\n"), std::string::npos) << e.log;
  const auto again = target_error([&] { q->readl(0x0905'0000); });
  EXPECT_NE(std::string(again.what()).find("already failed"), std::string::npos);
}

TEST(Qtest, CommandTimeoutIsATargetErrorAndShutdownStillReaps) {
  auto q = start(x86_64_q35_intel_iommu(false));
  const pid_t pid = q->pid();
  const std::string dir = q->dir();
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  q->set_command_timeout(200);
  const auto e = target_error([&] { q->readl(0xfed9'0000); });
  EXPECT_NE(std::string(e.what()).find("did not answer within 200 ms"), std::string::npos)
      << e.what();
  q->shutdown(); // SIGTERM stays pending on a stopped process: SIGKILL after the grace
  EXPECT_TRUE(process_gone(pid));
  EXPECT_FALSE(fs::exists(dir));
}

TEST(Qtest, ExitAtStartIsATargetErrorWithTheLog) {
  // QEMU connects before it creates devices: a bad one kills it right after connecting.
  auto m = aarch64_virt_smmuv3();
  m.devices.push_back("no-such-device-iommuspec");
  const auto late = target_error([&] { start(m); });
  EXPECT_NE(std::string(late.what()).find("died after `endianness` (exited 1)"), std::string::npos)
      << late.what();
  EXPECT_NE(late.log.find("'no-such-device-iommuspec' is not a valid device model name"),
            std::string::npos)
      << late.log;
  // A bad option is refused before QEMU connects at all.
  m = aarch64_virt_smmuv3();
  m.args.push_back("-no-such-option-iommuspec");
  const auto early = target_error([&] { start(m); });
  EXPECT_NE(std::string(early.what()).find("exited before connecting"), std::string::npos)
      << early.what();
  EXPECT_NE(early.log.find("no-such-option-iommuspec"), std::string::npos) << early.log;
}

TEST(Qtest, ShutdownReapsQemuAndRemovesItsDirectory) {
  pid_t pid = -1;
  std::string dir;
  {
    auto q = start(aarch64_virt_smmuv3());
    pid = q->pid();
    dir = q->dir();
    EXPECT_TRUE(fs::exists(fs::path(dir) / "qemu.log"));
    EXPECT_FALSE(fs::exists(fs::path(dir) / "qtest.sock")); // removed once connected
  }
  EXPECT_TRUE(process_gone(pid));
  EXPECT_FALSE(fs::exists(dir));
}

// --- PCI and edu, on each machine -----------------------------------------------------------

class OnEachMachine : public testing::TestWithParam<int> {
protected:
  QemuMachine machine() const {
    return GetParam() == 0 ? aarch64_virt_smmuv3() : x86_64_q35_intel_iommu(GetParam() == 2);
  }
};

TEST_P(OnEachMachine, PciEnumerationFindsEduAndEnablesBar0) {
  const auto m = machine();
  auto q = start(m);
  PciConfig cfg(*q, m);
  const auto d = find_device(cfg, Edu::vendor, Edu::device);
  ASSERT_TRUE(d) << m.name;
  EXPECT_EQ(d->bus, 0);
  EXPECT_EQ(d->rid(), d->dev << 3 | d->fn);
  EXPECT_FALSE(find_device(cfg, 0x1234, 0xdead));
  const Bar bar = enable_bar0(cfg, *d, m);
  EXPECT_EQ(bar.size, 1u << 20); // edu's 1 MiB of MMIO
  EXPECT_GE(bar.base, m.bar_window);
  EXPECT_EQ(cfg.read16(*d, pcireg::command) & 6, 6);
  // edu's identification register: 0x010000ed (version 1.0, "ed"u).
  EXPECT_EQ(q->readl(bar.base), 0x010000edu);
  // Its DMA buffer is not behind BAR0: reads past the registers answer all ones.
  EXPECT_EQ(q->readl(bar.base + Edu::buffer), 0xffffffffu);
}

TEST_P(OnEachMachine, EduDmaRoundTripWithTheIommuOff) {
  const auto m = machine();
  auto q = start(m);
  Edu edu(*q, m);
  const uint64_t a = m.scratch + 0x1'0000, b = m.scratch + 0x2'0000;
  // The device reads what qtest wrote.
  const auto in = random_bytes(Edu::max_transfer, 2);
  q->write(a, in);
  EXPECT_EQ(edu.dma_read(a, in.size()), in);
  EXPECT_EQ(edu.dma_read(a + 5, 3), std::vector<uint8_t>(in.begin() + 5, in.begin() + 8));
  // qtest reads what the device wrote, and nothing around it changed.
  q->memset(b, 0x2000, 0xee);
  const auto out = random_bytes(1000, 3);
  edu.dma_write(b + 0x10, out);
  EXPECT_EQ(q->read(b + 0x10, out.size()), out);
  EXPECT_EQ(q->readb(b + 0xf), 0xee);
  EXPECT_EQ(q->readb(b + 0x10 + out.size()), 0xee);
}

TEST_P(OnEachMachine, OversizedEduTransferIsRefusedBeforeQemuSeesIt) {
  const auto m = machine();
  auto q = start(m);
  Edu edu(*q, m);
  EXPECT_THROW(edu.transfer(m.scratch, 4096, false), std::invalid_argument);
  EXPECT_THROW(edu.transfer(m.scratch, 0, false), std::invalid_argument);
  EXPECT_THROW(edu.transfer(m.scratch, 2, false, 4094), std::invalid_argument);
  edu.transfer(m.scratch, 1, false, 4094); // the last byte of the buffer is fine
}

TEST_P(OnEachMachine, QemuAbortIsATargetErrorWithItsLogAndAFreshMachineWorks) {
  const auto m = machine();
  {
    auto q = start(m);
    Edu edu(*q, m);
    // A 4096-byte transfer, past the driver's check: 7.2's edu_check_range calls hw_error.
    const auto e = target_error([&] {
      q->writeq(edu.bar0() + 0x80, m.scratch);
      q->writeq(edu.bar0() + 0x88, Edu::buffer);
      q->writeq(edu.bar0() + 0x90, 4096);
      q->writeq(edu.bar0() + 0x98, 1);
      for (int i = 0; i < 100000; ++i)
        q->readq(edu.bar0() + 0x98);
    });
    EXPECT_NE(std::string(e.what()).find("died"), std::string::npos) << e.what();
    EXPECT_NE(e.log.find("EDU: DMA range"), std::string::npos) << e.log;
    EXPECT_NE(std::string(e.what()).find("(killed by Aborted)"), std::string::npos) << e.what();
    EXPECT_NE(e.log.find("writeq 0x"), std::string::npos) << e.log; // the commands sent
  }
  auto fresh = start(m);
  EXPECT_NE(fresh->readl(m.iommu_base), 0u);
  Edu edu(*fresh, m);
  const std::vector<uint8_t> nonce = {1, 2, 3, 4};
  edu.dma_write(m.scratch + 0x100, nonce);
  EXPECT_EQ(fresh->read(m.scratch + 0x100, 4), nonce);
}

INSTANTIATE_TEST_SUITE_P(Qemu, OnEachMachine, testing::Values(0, 1, 2),
                         [](const testing::TestParamInfo<int>& i) {
                           return std::string(i.param == 0   ? "virt_smmuv3"
                                              : i.param == 1 ? "q35_vtd"
                                                             : "q35_vtd_scalable");
                         });

// --- the physical page a DMA reached, from QEMU's trace --------------------------------------

TEST(QemuTrace, SmmuBypassTraceNamesTheAddressTheDeviceWrote) {
  const auto m = aarch64_virt_smmuv3();
  QtestOptions o;
  o.trace_events = {"smmuv3_translate_*"};
  auto q = start(m, o);
  Edu edu(*q, m);
  q->take_trace();
  const std::vector<uint8_t> nonce = {0xde, 0xad, 0xbe, 0xef};
  edu.dma_write(m.scratch + 0x3000, nonce);
  const std::string t = q->take_trace();
  // "smmuv3_translate_disable <mr> sid=0x8 bypass (smmu disabled) iova:0x40803000 is_write=1"
  char iova[64], sid[32];
  std::snprintf(iova, sizeof iova, "iova:0x%llx", (unsigned long long)(m.scratch + 0x3000));
  std::snprintf(sid, sizeof sid, "sid=0x%x ", unsigned(edu.bdf().rid()));
  EXPECT_NE(t.find(std::string(sid) + "bypass (smmu disabled) " + iova), std::string::npos) << t;
  EXPECT_EQ(q->read(m.scratch + 0x3000, 4), nonce);
}

} // namespace
