// The QEMU machines that carry an emulated IOMMU with an edu device behind it, described
// as data: which binary, which command line, where the IOMMU's registers, RAM and the PCI
// windows are. The CPU runs a firmware stub that only idles (built by CMake, see
// firmware_gen.cpp), so that everything the machine does comes from qtest commands.
#pragma once

#include "qemu/qtest.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace iommuspec::qemu {

// How the host reaches PCI configuration space.
enum class PciConfigAccess {
  ecam,     // memory-mapped (PCIe ECAM): base + (bus << 20 | dev << 15 | fn << 12 | offset)
  port_cf8, // x86 configuration mechanism #1: address to port 0xCF8, data at 0xCFC..0xCFF
};

struct QemuMachine {
  std::string name;              // "aarch64-virt-smmuv3", "x86_64-q35-intel-iommu[-scalable]"
  std::string binary;            // searched in PATH
  std::string debian_package;    // what provides `binary` on Debian 12
  std::vector<std::string> args; // machine, CPU, memory, IOMMU (everything but devices)
  // -device values, after the IOMMU: a PCI device takes its DMA address space when it is
  // realized (hw/pci/pci.c, pci_init_bus_master), so one created first bypasses the vIOMMU.
  std::vector<std::string> devices;
  std::string firmware;    // file name of the idle stub in the firmware directory
  uint64_t iommu_base = 0; // the IOMMU's register page
  uint64_t ram_base = 0;
  uint64_t ram_size = 0;
  PciConfigAccess pci_access = PciConfigAccess::ecam;
  uint64_t ecam_base = 0;  // PciConfigAccess::ecam only
  uint64_t bar_window = 0; // where BARs are placed (32-bit non-prefetchable window)
  uint64_t bar_window_size = 0;
  // A RAM area of 64 KiB for the edu driver's staging copies and tests' scratch data,
  // above what QEMU itself puts in RAM at reset (the device tree at the base of RAM on
  // virt, hw/arm/boot.c).
  uint64_t scratch = 0;

  // The full command line: binary, args, -bios, -device... (no -qtest options).
  std::vector<std::string> command_line() const;
};

// `-M virt,iommu=smmuv3` (hw/arm/virt.c memmap): SMMUv3 at 0x09050000, RAM at 0x40000000,
// ECAM at 0x40_1000_0000 (highmem), PCI MMIO window 0x10000000..0x3EFEFFFF.
QemuMachine aarch64_virt_smmuv3();
// `-M q35 -device intel-iommu` (hw/i386/intel_iommu.c, Q35_HOST_BRIDGE_IOMMU_ADDR):
// registers at 0xFED90000, RAM at 0, configuration space through ports 0xCF8/0xCFC.
// `scalable` adds x-scalable-mode=on.
QemuMachine x86_64_q35_intel_iommu(bool scalable);

// The directory holding the firmware stubs: $IOMMUSPEC_QEMU_FIRMWARE_DIR when set, else
// qemu-firmware/ beside or above the running executable (a build tree, also when moved),
// else share/iommuspec/qemu-firmware/ above it (an installed layout), else the build
// tree's directory compiled in. Throws TargetError naming the places it looked.
std::string firmware_dir(const std::string& firmware_file);

// The binary's path in PATH; throws TargetError naming the Debian package to install.
std::string require_binary(const QemuMachine& m);

// The machine with `bytes` of RAM (its -m argument and ram_size).
void set_ram_size(QemuMachine& m, uint64_t bytes);

// The first line of `BINARY --version` (for target fingerprints); "" when it prints nothing.
std::string version(const QemuMachine& m);

// Start the machine under qtest (after require_binary and firmware_dir).
std::unique_ptr<QtestClient> start(const QemuMachine& m, QtestOptions opts = {});

} // namespace iommuspec::qemu
