#include "qemu/machine.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace iommuspec::qemu {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1024 * 1024;

// What both machines share: TCG (Debian's 7.2 has no qtest accelerator, so the CPU runs,
// idling in the stub), icount without sleep so that device timers (edu's DMA fires
// 100 ms of virtual time after its start) expire as soon as the CPU idles, no default
// devices, no monitor, serial or display (devices that print go to the log).
std::vector<std::string> common_args(uint64_t ram_size) {
  return {"-accel",      "tcg",
          "-icount",     "shift=0,sleep=off",
          "-m",          std::to_string(ram_size / MiB) + "M",
          "-smp",        "1",
          "-nodefaults", "-no-reboot",
          "-display",    "none",
          "-monitor",    "none",
          "-serial",     "none"};
}

// edu with a full DMA mask: its default mask is 28 bits (hw/misc/edu.c, dma_mask), which
// would clamp addresses in virt's RAM at 1 GiB.
const char* const kEdu = "edu,dma_mask=0xffffffffffffffff";

std::vector<fs::path> firmware_candidates() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("IOMMUSPEC_QEMU_FIRMWARE_DIR")) dirs.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    dirs.push_back(bin / "qemu-firmware");
    dirs.push_back(bin.parent_path() / "qemu-firmware");
    dirs.push_back(bin.parent_path() / "share" / "iommuspec" / "qemu-firmware");
  }
#ifdef IOMMUSPEC_QEMU_FIRMWARE_DIR
  dirs.emplace_back(IOMMUSPEC_QEMU_FIRMWARE_DIR);
#endif
  return dirs;
}

} // namespace

std::vector<std::string> QemuMachine::command_line() const {
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"-bios", firmware_dir(firmware) + "/" + firmware});
  for (const auto& d : devices)
    argv.insert(argv.end(), {"-device", d});
  return argv;
}

QemuMachine aarch64_virt_smmuv3() {
  QemuMachine m;
  m.name = "aarch64-virt-smmuv3";
  m.binary = "qemu-system-aarch64";
  m.debian_package = "qemu-system-arm";
  m.ram_base = 0x4000'0000;
  m.ram_size = 128 * MiB;
  // The stub runs at EL1 from the flash at 0 (virt without secure=on or virtualization=on
  // starts there); any 64-bit CPU does, cortex-a57 is the one QEMU's own tests use.
  m.args = {"-M", "virt,iommu=smmuv3", "-cpu", "cortex-a57"};
  const auto common = common_args(m.ram_size);
  m.args.insert(m.args.end(), common.begin(), common.end());
  m.devices = {kEdu};
  m.firmware = "aarch64-idle.bin";
  m.iommu_base = 0x0905'0000; // VIRT_SMMU
  m.pci_access = PciConfigAccess::ecam;
  m.ecam_base = 0x40'1000'0000; // VIRT_HIGH_PCIE_ECAM (highmem is on by default)
  m.bar_window = 0x1000'0000;   // VIRT_PCIE_MMIO
  m.bar_window_size = 0x2eff'0000;
  m.scratch = m.ram_base + 8 * MiB;
  return m;
}

QemuMachine x86_64_q35_intel_iommu(bool scalable) {
  QemuMachine m;
  m.name = scalable ? "x86_64-q35-intel-iommu-scalable" : "x86_64-q35-intel-iommu";
  m.binary = "qemu-system-x86_64";
  m.debian_package = "qemu-system-x86";
  m.ram_base = 0;
  m.ram_size = 128 * MiB;
  m.args = {"-M", "q35"};
  const auto common = common_args(m.ram_size);
  m.args.insert(m.args.end(), common.begin(), common.end());
  m.devices = {scalable ? "intel-iommu,x-scalable-mode=on" : "intel-iommu", kEdu};
  m.firmware = "x86_64-idle.bin";
  m.iommu_base = 0xfed9'0000; // Q35_HOST_BRIDGE_IOMMU_ADDR
  m.pci_access = PciConfigAccess::port_cf8;
  // Between the top of the 128 MiB of RAM and the IOAPIC at 0xFEC00000, clear of the
  // MMCONFIG window (0xB0000000, 256 MiB) that firmware would enable: 0xE0000000.
  m.bar_window = 0xe000'0000;
  m.bar_window_size = 0x1000'0000;
  m.scratch = m.ram_base + 8 * MiB;
  return m;
}

std::string firmware_dir(const std::string& firmware_file) {
  std::string looked;
  for (const auto& d : firmware_candidates()) {
    std::error_code ec;
    if (fs::is_regular_file(d / firmware_file, ec)) return d.string();
    looked += "\n  " + d.string();
  }
  throw TargetError("QEMU firmware stub " + firmware_file +
                    " not found (it is built with the project; set IOMMUSPEC_QEMU_FIRMWARE_DIR "
                    "to its directory). Looked in:" +
                    looked);
}

std::string require_binary(const QemuMachine& m) {
  if (m.binary.find('/') != std::string::npos) {
    if (access(m.binary.c_str(), X_OK) == 0) return m.binary;
  } else if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const fs::path dir(std::string(rest.substr(0, colon)));
      rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
      const fs::path candidate = (dir.empty() ? fs::path(".") : dir) / m.binary;
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  throw TargetError(m.binary + " not found in PATH: the " + m.name +
                    " machine needs it (as root: apt-get install -y " + m.debian_package + ")");
}

void set_ram_size(QemuMachine& m, uint64_t bytes) {
  m.ram_size = bytes;
  for (size_t i = 0; i + 1 < m.args.size(); ++i)
    if (m.args[i] == "-m") m.args[i + 1] = std::to_string(bytes / MiB) + "M";
}

std::string version(const QemuMachine& m) {
  std::string out;
  if (FILE* p = popen((require_binary(m) + " --version 2>&1").c_str(), "r")) {
    char buf[256];
    if (fgets(buf, sizeof buf, p)) out = buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

std::unique_ptr<QtestClient> start(const QemuMachine& m, QtestOptions opts) {
  require_binary(m);
  return std::make_unique<QtestClient>(m.command_line(), std::move(opts));
}

} // namespace iommuspec::qemu
